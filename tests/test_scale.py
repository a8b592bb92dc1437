"""Devices, precision, gradient accumulation, many processes, the kept adapter, the vLLM student.

One module fixture trains the real embedded model a few LoRA steps four ways on a 16-row chat file
(the same seed, rows and settings): one process with a batch of 8; one process with 2 micro-batches
of 4 (grad_accumulation=2); two CPU processes (gloo, launched by the harness through
run_finetune, as `harness run` does); and the reference again through run_finetune's cache. The
tests read those runs. A second one (`distil`) trains kd in 1 and in 2 processes and on_policy in 2,
with the in-context teacher (the base reading the fact), for the objectives across processes.

Tolerances: the same float32 sums split differently differ by rounding only (measured ~1e-6
relative), so per-step losses and gradient norms (before clipping) must agree within 1e-4 relative.
The gradient norm is the sharp check of the per-token normalisation: a global-batch gradient
computed as a mean of per-process or per-micro-batch means (pieces with unequal token counts: the
rows differ in length) or not multiplied back by the world size is off by far more. The trained
adapters are compared by the relative L2 difference of lora_B (it starts at 0, so it is all
update): AdamW divides each gradient element by its own running RMS, so an element whose
contributions nearly cancel gets a rounding-sized gradient and still a full-sized (lr) step --
rounding shows in single weights (max |diff| measured 4e-4 at lr 1e-2), not in the whole update
(measured 4.3e-6 relative for both; tolerance 1e-4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import FinetuneConfig, LoraConfig, ModelConfig
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]
ROWS = 16


def _train_file(path: Path) -> Path:
    """Rows of different lengths, so splitting a batch splits its labelled tokens unevenly."""
    rows = [{"messages": [{"role": "system", "content": "Answer the question in one sentence."},
                          {"role": "user", "content": f"What is the capital of island {i}?"},
                          {"role": "assistant", "content": f"The capital of island {i} is Town{i * 7}." + " It is old." * (i % 4)}]}
            for i in range(ROWS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _cfg(**kw) -> FinetuneConfig:
    # 3 steps of 8 rows over 16 rows: the 3rd step starts a second epoch (a fresh shuffle)
    return replace(FinetuneConfig(max_steps=3, batch_size=8, lr=1e-2, warmup_ratio=0.0, lora=LoraConfig(r=4, alpha=8)), **kw)


def _log(entry: Path) -> list[dict]:
    return [json.loads(x) for x in (entry / "train_log.jsonl").read_text().splitlines()]


def _adapter(entry: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(entry / "adapter" / "adapter_model.safetensors"))


def _update_diff(a: dict, b: dict) -> float:
    """||B_a - B_b|| / ||B_a|| over every lora_B tensor (B starts at 0: the whole trained update)."""
    keys = [k for k in a if "lora_B" in k]
    num = sum(float(((a[k] - b[k]) ** 2).sum()) for k in keys) ** 0.5
    return num / sum(float((a[k] ** 2).sum()) for k in keys) ** 0.5


@pytest.fixture(scope="module")
def runs(module_tmp):
    import torch

    from harness.finetune import run_finetune
    from harness.finetune._local import train_local
    from harness.models import embedded_path

    # one thread, as each of the 2 launched processes gets on 2 cores: on a loaded (or xdist-shared)
    # machine 2 threads per process measured ~8x slower (their per-op barriers wait on each other)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = module_tmp("scale")
    base = str(embedded_path("smollm2-135m-instruct", os.environ["HARNESS_CACHE"]))
    train = _train_file(tmp / "train.jsonl")
    student = ModelConfig(model="hf/smollm2-135m-instruct", args={"model_path": "embedded:smollm2-135m-instruct"})
    out = {"base": base}
    # the reference (1 process, batch 8) and the 2-process run, each into its own fresh cache
    for name, cfg in (("one", _cfg()), ("two", _cfg(processes=2))):
        ft = run_finetune(student, base, train, cfg, tmp / name / "cache", tmp / name / "run", use_cache=True)
        out[name] = (ft, Path(ft.model_path).parent)
    out["one_key_cfg"] = run_finetune(student, base, train, _cfg(processes=2, gradient_checkpointing=True), tmp / "one" / "cache",
                                      tmp / "one" / "run2", use_cache=True)
    # 2 micro-batches of 4 per step: the same global batches as the reference
    acc = tmp / "acc"
    m = train_local(base, train, _cfg(batch_size=4, grad_accumulation=2), acc / "model")
    out["acc"] = (m, acc)
    a = _adapter(out["one"][1])
    print(f"\n[scale] update diff: accumulation {_update_diff(a, _adapter(acc)):.2e}, 2 processes {_update_diff(a, _adapter(out['two'][1])):.2e}")
    torch.set_num_threads(threads)
    return out


@pytest.mark.slow
def test_grad_accumulation_2x4_equals_batch_8(runs):
    (one, one_dir), (acc_m, acc_dir) = runs["one"], runs["acc"]
    assert acc_m["global_batch"] == one.metrics["global_batch"] == 8 and acc_m["grad_accumulation"] == 2
    a, b = _log(one_dir), _log(acc_dir)
    assert [x["rows"] for x in a] == [x["rows"] for x in b]  # the same global batches, in the same order
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4) and y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
    wa, wb = _adapter(one_dir), _adapter(acc_dir)
    assert _update_diff(wa, wb) < 1e-4
    assert max(float(wa[k].abs().max()) for k in wa if "lora_B" in k) > 1e-3  # it trained: B starts at 0


@pytest.mark.slow
def test_two_processes_equal_one(runs):
    (one, one_dir), (two, two_dir) = runs["one"], runs["two"]
    assert two.metrics["world_size"] == 2 and two.metrics["distributed"] == "multi_cpu" and one.metrics["world_size"] == 1
    assert two.metrics["data_order"] == one.metrics["data_order"]
    a, b = _log(one_dir), _log(two_dir)
    assert len(a) == len(b) == 3 and [x["rows"] for x in a] == [x["rows"] for x in b]  # what both processes trained, together
    assert a[2]["rows"] != a[0]["rows"]  # the 2nd epoch re-shuffled
    for x, y in zip(a, b):  # the gradient of the whole global batch, split across processes
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4) and y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
    assert two.metrics["loss_curve"] == pytest.approx(one.metrics["loss_curve"], rel=1e-3)
    assert _update_diff(_adapter(one_dir), _adapter(two_dir)) < 1e-4


@pytest.mark.slow
def test_one_checkpoint_and_world_size_in_the_run_dir(runs):
    two, entry = runs["two"]
    cache = entry.parent
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [entry.name]  # one entry, no temp dir left
    assert sorted(p.name for p in entry.iterdir()) == ["adapter", "metrics.json", "model", "train_log.jsonl"]
    assert (entry / "model" / "model.safetensors").is_file()
    run_dir = cache.parent.parent / "run"
    student = json.loads((run_dir / "student.json").read_text())
    assert student["metrics"]["world_size"] == 2 and student["model_path"] == str(entry / "model")
    assert (run_dir / "launch.log").is_file()  # the launcher's and processes' stderr, not the terminal's


@pytest.mark.slow
def test_how_it_ran_is_not_in_the_key(runs):
    """processes and gradient checkpointing change how, not what: the 1-process entry serves them."""
    one, _ = runs["one"]
    again = runs["one_key_cfg"]
    assert again.key == one.key and again.cached and runs["two"][0].key == one.key


@pytest.mark.slow
def test_adapter_is_kept_and_loads_on_the_base(runs):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    _, entry = runs["one"]
    cfg = json.loads((entry / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["peft_type"] == "LORA"
    base = AutoModelForCausalLM.from_pretrained(runs["base"], dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(entry / "adapter")).merge_and_unload().state_dict()
    saved = load_file(str(entry / "model" / "model.safetensors"))
    changed = [k for k in saved if "q_proj" in k]
    assert changed and all(torch.allclose(merged[k], saved[k], atol=1e-6) for k in saved if k in merged)
    untuned = load_file(str(Path(runs["base"]) / "model.safetensors"))
    assert any(not torch.allclose(untuned[k], saved[k]) for k in changed)  # the adapter is the trained one


# --- kd and on_policy across processes ------------------------------------------------------------

def _teacher(base: str, cache: Path):
    """The in-context teacher of the demo, on the test's rows: the student's own base weights (LoRA:
    its disabled adapter) reading the fact the student is not shown."""
    from harness.finetune import Teacher

    prompts = [[{"role": "system", "content": "Answer the question in one sentence."},
                {"role": "user", "content": f"The capital of island {i} is Town{i * 7}.\n\nWhat is the capital of island {i}?"}]
               for i in range(ROWS)]
    return Teacher({"model": "hf/smollm2-135m-instruct", "context": True}, base, prompts, cache)


@pytest.fixture(scope="module")
def distil(module_tmp):
    """kd (top-64, cached) in 1 process (in this one) and in 2 gloo processes launched by
    run_finetune, each with a fresh teacher cache (so the 2 processes compute the top-k themselves);
    on_policy in 2 processes (1 step, 8 sampled tokens at most: the cheapest run that samples)."""
    import torch

    from harness.config import KDConfig, OnPolicyConfig
    from harness.finetune import run_finetune
    from harness.finetune._local import train_local
    from harness.models import embedded_path

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in `runs`: one thread, as each launched process gets
    tmp = module_tmp("distil")
    base = str(embedded_path("smollm2-135m-instruct", os.environ["HARNESS_CACHE"]))
    train = _train_file(tmp / "train.jsonl")
    student = ModelConfig(model="hf/smollm2-135m-instruct", args={"model_path": "embedded:smollm2-135m-instruct"})
    # batch 8 as in `runs` (pieces of 4 rows: with 2-row pieces AdamW's near-cancelling elements left
    # 1.6e-4 relative, measured, still 13 of 622k elements; 2.2e-6 at batch 8)
    kd = _cfg(objective="kd", max_steps=2, kd=KDConfig(weight=0.5, top_k=64))
    out = {"kd_one": (train_local(base, train, kd, tmp / "one" / "model", teacher=_teacher(base, tmp / "one")), tmp / "one")}
    ft = run_finetune(student, base, train, replace(kd, processes=2), tmp / "two", tmp / "two" / "run", teacher=_teacher(base, tmp / "two"))
    out["kd_two"] = (ft.metrics, Path(ft.model_path).parent)
    # past the on-policy probe (docs/distillation.md): this checks the split of the sampling, not the recipe
    op = _cfg(objective="on_policy", processes=2, max_steps=1, batch_size=4,
              on_policy=OnPolicyConfig(max_new_tokens=8, if_base_preferred="continue"))
    ft = run_finetune(student, base, train, op, tmp / "op", tmp / "op" / "run", teacher=_teacher(base, tmp / "op"))
    out["op_two"] = (ft.metrics, Path(ft.model_path).parent)
    out["tmp"] = tmp
    print(f"\n[scale] kd update diff, 2 processes: {_update_diff(_adapter(tmp / 'one'), _adapter(out['kd_two'][1])):.2e}")
    torch.set_num_threads(threads)
    return out


@pytest.mark.slow
def test_kd_in_two_processes_equals_one(distil):
    """Each process computes kd on its own pieces of the global batch (inside the DDP-wrapped forward,
    or its gradient would not be reduced): the 1-process run's rows, losses, gradient norms and update."""
    (one, one_dir), (two, two_dir) = distil["kd_one"], distil["kd_two"]
    assert two["world_size"] == 2 and two["objective"] == one["objective"] == "kd"
    a, b = _log(one_dir), _log(two_dir)
    assert len(a) == len(b) == 2 and [x["rows"] for x in a] == [x["rows"] for x in b]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4) and y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
    assert _update_diff(_adapter(one_dir), _adapter(two_dir)) < 1e-4
    # the top-k was computed once, in this run (a fresh cache): one entry, none of it left half-written
    assert two["teacher_logits_cached"] is False and one["teacher_logits_cached"] is False
    assert two["teacher_seconds"] > 0  # the process that computed it, whichever took the lock first
    entries = [p for p in (distil["tmp"] / "two" / "teacher").iterdir() if not p.name.endswith(".lock")]
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file()


@pytest.mark.slow
def test_on_policy_in_two_processes_samples_each_process_its_own_share(distil):
    m, entry = distil["op_two"]
    assert m["world_size"] == 2 and m["objective"] == "on_policy" and m["on_policy"]["on_policy_steps"] == 1
    # a step of 4 rows: each process sampled its 2 rows, not the whole batch
    assert m["sampled_rows_per_process"] == [2, 2] and 0 < m["sampled_tokens"] <= 4 * 8
    log = _log(entry)
    assert [len(x["rows"]) for x in log] == [4] and log[0]["grad_norm"] > 0
    assert max(float(v.abs().max()) for k, v in _adapter(entry).items() if "lora_B" in k) > 0  # it trained


# --- quick: resolution, refusal, composition -------------------------------------------------------

def test_cpu_bf16_is_measured_once_and_decides_auto(tmp_path, monkeypatch):
    """finetune.precision auto on a CPU: bf16 exactly when the measured speed-up clears the bar, the
    measurement kept per CPU in the per-user cache (the second call reads it), the env override wins."""
    from harness.models import _device, resolve_precision

    monkeypatch.setenv("HARNESS_MODEL_CACHE", str(tmp_path))
    monkeypatch.delenv("HARNESS_CPU_BF16", raising=False)
    measured = _device.measure_cpu_bf16()
    assert measured["fp32_s"] > 0 and measured["bf16_s"] > 0
    fast = measured["speedup"] >= _device.CPU_BF16_MIN
    assert resolve_precision("auto", "cpu") == ("bf16" if fast else "fp32")
    [entry] = (tmp_path / "cpu").iterdir()
    assert json.loads((entry / "value.txt").read_text())["speedup"] > 0
    # a cached verdict is read, not re-measured: rewrite it and the decision follows the file
    (entry / "value.txt").write_text(json.dumps({"speedup": 0.1}))
    assert resolve_precision("auto", "cpu") == "fp32"
    (entry / "value.txt").write_text(json.dumps({"speedup": 2.0}))
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"  # an explicit precision is never second-guessed
    monkeypatch.setenv("HARNESS_CPU_BF16", "0")
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv("HARNESS_CPU_BF16", "1")
    assert resolve_precision("auto", "cpu") == "bf16"


def test_device_and_precision_resolution():
    import torch

    from harness.models import eval_device_args, resolve_device, resolve_precision

    here = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto") == here and resolve_device("cpu") == "cpu"
    assert resolve_precision("auto", "cpu") == "fp32"  # the suite pins fp32 (conftest: HARNESS_CPU_BF16=0)
    assert resolve_precision("auto", "cpu", bf16=True) == "bf16"  # the older flag keeps its meaning
    assert resolve_precision("fp16", "cpu", bf16=True) == "fp16"  # an explicit precision wins
    if torch.cuda.is_available():
        assert resolve_precision("auto", "cuda") == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    hf = {"model_path": "/m", "device": "cpu"}
    assert eval_device_args("hf/x", hf, "cpu") == hf
    assert eval_device_args("hf/x", {"model_path": "/m"}, "cpu") == {"model_path": "/m", "device": "cpu"}
    assert eval_device_args("openai/gpt-4o", {}, "cpu") == {}
    if here == "cpu":  # auto on a CPU-only machine: the args (and every key made from them) stay as they were
        assert eval_device_args("hf/x", {"model_path": "/m"}, "auto") == {"model_path": "/m"}
    else:
        assert eval_device_args("hf/x", hf, "auto")["device"] == ("cuda:0" if here == "cuda" else "mps")
        assert eval_device_args("hf/x", {"device": "cuda:1"}, "auto") == {"device": "cuda:1"}


def test_keys_of_earlier_entries_are_kept():
    """The new settings at their defaults leave a CPU fine-tune's cache key as it was."""
    from dataclasses import asdict

    from harness.finetune import keyed_settings, numerics_key

    cfg = FinetuneConfig()
    old = {k: v for k, v in asdict(cfg).items() if k not in ("confirm", "openai", "device", "precision", "grad_accumulation",
                                                             "gradient_checkpointing", "processes", "accelerate_config")}
    if not __import__("torch").cuda.is_available():
        assert keyed_settings(cfg) == old and numerics_key(cfg) == {}
        assert keyed_settings(replace(cfg, processes=4, gradient_checkpointing=True, device="cpu")) == old
    assert keyed_settings(replace(cfg, grad_accumulation=2))["grad_accumulation"] == 2  # a bigger global batch: a new key
    assert numerics_key(replace(cfg, device="cpu", precision="bf16")) == {"numerics": ["cpu", "bf16"]}


def _config(overrides: list[str]):
    """The config `harness run` would compose (real Hydra composition)."""
    from omegaconf import OmegaConf

    from harness.cli import compose
    from harness.config import to_dataclass

    plain = OmegaConf.to_container(compose(overrides), resolve=False)
    plain.pop("hydra", None)
    return to_dataclass(OmegaConf.create(plain))


NO_GPU = pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")


def _refused_by_the_cli(tmp_path: Path, *overrides: str, **env_vars: str) -> str:
    """`harness run experiment=tiny <overrides>` (with `env_vars` set): exit 2, one line, no stage ran;
    returns the line."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_vars}
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "experiment=tiny", *overrides, f"results_dir={tmp_path}/r"],
                       capture_output=True, text=True, env=env, timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr + p.stdout, p.stderr[-2000:]
    assert "[data]" not in p.stdout and not (tmp_path / "r").exists()  # before any stage: nothing written
    return lines[0]


@NO_GPU
def test_absent_device_is_refused_up_front(tmp_path):
    """`harness run ... finetune.device=cuda` on this CPU-only machine."""
    line = _refused_by_the_cli(tmp_path, "finetune.device=cuda")
    assert line.startswith("harness: error: finetune.device=cuda: this machine has no CUDA device"), line


def test_kd_under_a_sharded_accelerate_config_is_refused_up_front(tmp_path):
    fsdp = tmp_path / "fsdp.yaml"
    fsdp.write_text("distributed_type: FSDP\n")
    line = _refused_by_the_cli(tmp_path, "finetune.objective=kd", "finetune.processes=2", f"finetune.accelerate_config={fsdp}")
    assert line.startswith("harness: error: finetune.objective=kd trains on the teacher's token distributions, and "
                           f"finetune.accelerate_config={fsdp} shards the model (distributed_type FSDP)"), line


@pytest.mark.parametrize("var, value, words", [
    ("HARNESS_CPU_BF16", "yes", "$HARNESS_CPU_BF16='yes': use 1 (train in bf16 on the CPU) or 0 (fp32), or unset it"),
    ("HARNESS_HF_WORKERS", "0", "$HARNESS_HF_WORKERS='0': use a whole number >= 1"),
])
def test_a_bad_environment_override_is_refused_not_ignored(tmp_path, var, value, words):
    """Each was quietly taken for its default (measure / 2 batches); now one line, before any stage."""
    line = _refused_by_the_cli(tmp_path, **{var: value})
    assert line.startswith(f"harness: error: {words}"), line


@NO_GPU
@pytest.mark.parametrize("overrides, words", [
    (["finetune.device=tpu"], "finetune.device: unknown device 'tpu'"),
    (["finetune.precision=fp8"], "finetune.precision: unknown precision 'fp8'"),
    (["finetune.processes=0"], "finetune.processes must be >= 1"),
    (["finetune.grad_accumulation=0"], "finetune.grad_accumulation must be >= 1"),
    (["finetune.accelerate_config=/nonexistent/fsdp.yaml"], "finetune.accelerate_config: no such file"),
    (["+models.student.finetune={device: mps}"], "models.student.finetune.device=mps: this machine has no MPS device"),
    (["experiment=upgrade", "finetune.device=cuda"], "finetune.device=cuda"),  # no student: the evaluation follows it
    (["model@models.student=vllm_student"], "the vllm package is not installed"),
    (["model@models.student=vllm_student", "finetune=full", "models.student.args.student_weights=adapter"],
     "student_weights=adapter serves the LoRA adapter"),
])
def test_bad_scale_settings_are_refused(overrides, words):
    from harness.preflight import validate

    with pytest.raises(HarnessError) as e:
        validate(_config(["experiment=tiny", *overrides] if not overrides[0].startswith("experiment=") else overrides))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_kd_and_on_policy_run_on_ddp_and_are_refused_only_sharded(tmp_path):
    """Lifted: kd / on_policy with processes > 1 (DDP; an accelerate config without sharding too).
    Kept: a sharded accelerate config (FSDP, DeepSpeed), one line naming the key."""
    from harness.preflight import validate

    ddp, fsdp = tmp_path / "ddp.yaml", tmp_path / "fsdp.yaml"
    ddp.write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    fsdp.write_text("distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n")
    (tmp_path / "ds.json").write_text(json.dumps({"distributed_type": "DEEPSPEED", "deepspeed_config": {"zero_stage": 3}}))
    for objective in ("kd", "on_policy"):
        validate(_config(["experiment=tiny", f"finetune.objective={objective}", "finetune.processes=2"]))
        validate(_config(["experiment=tiny", f"finetune.objective={objective}", f"finetune.accelerate_config={ddp}"]))
    validate(_config(["experiment=tiny", f"finetune.accelerate_config={fsdp}"]))  # sft shards
    for path, kind in ((fsdp, "FSDP"), (tmp_path / "ds.json", "DEEPSPEED")):
        with pytest.raises(HarnessError) as e:
            validate(_config(["experiment=tiny", "finetune.objective=kd", f"finetune.accelerate_config={path}"]))
        assert f"finetune.accelerate_config={path} shards the model (distributed_type {kind})" in str(e.value)
        assert "\n" not in str(e.value)


def test_finetune_settings_round_trip_through_the_launch_spec():
    """What a launched process is handed (JSON) comes back as the same dataclasses (config layer)."""
    from harness.config import KDConfig, OnPolicyConfig, finetune_from_json, finetune_to_json

    cfg = _cfg(objective="on_policy", processes=2, kd=KDConfig(top_k=8), on_policy=OnPolicyConfig(max_new_tokens=3))
    back = finetune_from_json(json.loads(json.dumps(finetune_to_json(cfg))))
    assert back == cfg and isinstance(back.on_policy, OnPolicyConfig) and isinstance(back.lora, LoraConfig)


def test_run_under_a_launcher_is_refused():
    from harness.finetune import check_scale

    os.environ["WORLD_SIZE"] = "2"
    try:
        with pytest.raises(HarnessError, match="finetune.processes=N"):
            check_scale(FinetuneConfig())
    finally:
        del os.environ["WORLD_SIZE"]


def test_vllm_student_config_composes(tmp_path):
    """Real Hydra composition of the packaged vLLM configs; the student's served form from a real
    adapter config (rank 12 -> vLLM's next allowed --max-lora-rank, 16)."""
    from harness.models import vllm_served, vllm_student

    cfg = _config(["experiment=demo", "model@models.student=vllm_student", "model@models.baseline=vllm_base"])
    s, b = cfg.models["student"], cfg.models["baseline"]
    assert s.student and not b.student and s.model == b.model == "vllm/smollm2-135m-instruct"
    assert s.args["student_weights"] == "adapter" and s.args["model_path"] == b.args["model_path"]
    assert list(cfg.models) == ["teacher", "student", "baseline"]
    entry = tmp_path / "finetune" / "abc"
    (entry / "adapter").mkdir(parents=True)
    (entry / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 12, "peft_type": "LORA"}))
    args = {**s.args, "model_path": "/base"}
    model, served = vllm_student(args, str(entry / "model"), "lora")
    assert model == f"vllm//base:{entry / 'adapter'}"  # inspect: provider vllm, base /base, adapter after the colon
    assert served["enable_lora"] is True and served["max_lora_rank"] == 16 and "model_path" not in served
    assert served["lora_modules"] == f"{entry / 'adapter'}={entry / 'adapter'}" and "student_weights" not in served
    merged, margs = vllm_student({**args, "student_weights": "merged"}, str(entry / "model"), "lora")
    assert merged == f"vllm/{entry / 'model'}" and "enable_lora" not in margs
    # baseline on the same base: served from its path, and given the student's LoRA server flags
    # (one server for both, whichever is evaluated first)
    out = vllm_served([(model, served), ("vllm/smollm2-135m-instruct", {"model_path": "/base", "max_model_len": 2048}),
                       ("hf/x", {"model_path": "/base"})])
    assert out[1][0] == "vllm//base" and out[1][1]["lora_modules"] == served["lora_modules"] and out[1][1]["max_model_len"] == 2048
    assert out[2] == ("hf/x", {"model_path": "/base"})
