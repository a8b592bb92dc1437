"""Which distillation objective? sft, kd, on_policy (and mixtures) on the demo's data, in one run.

Data and teacher: `experiment=demo`'s data stage and generate stage (the in-context SmolLM2 teacher's
answers to the 120 training questions), through the harness's own functions and its cache, as in
bench/finetune_throughput.py. Each arm is one `finetune.objective` setting, fine-tuned by
`harness.finetune.run_finetune` (what `harness run` calls; cached by content hash, so a re-run of
the bench re-trains nothing) and evaluated by the harness's own evaluation (`run_evaluate`: inspect,
the `contains` and `exact` graders) on the held-out items; teacher and baseline are evaluated once.
Gap closed = (student - baseline) / (teacher - baseline) on held-out `contains`, with the harness's
paired-bootstrap CI (`harness.stats.gap_closed`), and each arm against sft with the harness's paired
test (`harness.stats.paired_binary`: exact McNemar), Holm over the arms.

Nothing is tuned here: every arm runs at its documented default setting (README "Distillation
objectives"), so no held-out item picks a setting; tune on a validation split of the training
questions (`harness.finetune.answer_divergence` on held-back training rows) before reading held-out.

Arms (--arms, in this order by default):
  sft              finetune.objective=sft (the demo's student)
  kd               finetune.objective=kd: 0.5 SFT + 0.5 forward KL to the teacher's top-64 log-probs
  pd               finetune=pd: the published prompt distillation (pure forward KL at T = 2, whole vocabulary)
  sft_on_policy    finetune.objective=on_policy on_policy.steps=60 (sft -> on_policy: the whole SFT
                   budget, then 60 on-policy steps; the probe may stop it: the arm is then the sft student)
  sft_on_policy_go_on  the same past the probe (on_policy.if_base_preferred=continue)
  kd_only          kd.weight=1 (pure forward KL, the issue's probe)
  on_policy        on_policy.steps=0 (on-policy from the untuned base, past the probe)
  kd_k8 / kd_full  kd with top_k 8 / the whole vocabulary (what k costs)

Train seconds = the training loop + the teacher's log-probs computed before it (kd). `ratio` = the
best arm's (highest held-out gap closed) train seconds / sft's.

What k costs (--k-fidelity 1,8,64,256): on the training answers, the share of the whole-vocabulary
forward KL(teacher || untuned student) that the {top-k, rest} support keeps, and the teacher's mass
in its top k (`--arms none`: only this, no fine-tune).

Run: .venv/bin/python bench/distil_objectives.py [--arms sft,kd,...] [--threads N] [overrides]
  overrides are Hydra overrides on top of experiment=demo, e.g. data.n_islands=3 (a reduced run).
At the demo's size: ~4 min per sft arm on 2 idle cores, on_policy ~2-3x that. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.cli import compose  # noqa: E402
from harness.config import HarnessConfig, model_identity, student_finetune, to_dataclass  # noqa: E402
from harness.data import run_data  # noqa: E402
from harness.evaluate import EvalModel, run_evaluate  # noqa: E402
from harness.finetune import Teacher, run_finetune  # noqa: E402
from harness.generate import GenerateInput, run_generate, teacher_prompt  # noqa: E402
from harness.models import resolve_args  # noqa: E402
from harness.pipeline import _drift_prompts  # noqa: E402  (what the pipeline measures a student's KL to the base on)
from harness.runs import load_frame  # noqa: E402

ARMS = {
    "sft": ["finetune.objective=sft"],
    "kd": ["finetune.objective=kd"],
    "pd": ["finetune=pd"],
    # 60 on-policy steps: what sft_fraction 0.5 gave the demo's 120-step budget, now after all of SFT
    "sft_on_policy": ["finetune.objective=on_policy", "finetune.on_policy.steps=60"],
    "sft_on_policy_go_on": ["finetune.objective=on_policy", "finetune.on_policy.steps=60", "finetune.on_policy.if_base_preferred=continue"],
    "kd_only": ["finetune.objective=kd", "finetune.kd.weight=1.0"],
    "on_policy": ["finetune.objective=on_policy", "finetune.on_policy.steps=0", "finetune.on_policy.if_base_preferred=continue"],
    "kd_k8": ["finetune.objective=kd", "finetune.kd.top_k=8"],
    "kd_full": ["finetune.objective=kd", "finetune.kd.top_k=0"],
}


def config(overrides: list[str]) -> HarnessConfig:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(compose(["experiment=demo", *overrides]), resolve=False)
    plain.pop("hydra", None)
    cfg = to_dataclass(OmegaConf.create(plain))
    # the match graders only: the demo's embedded judges cost evaluation time and say nothing here
    cfg.graders = {k: g for k, g in cfg.graders.items() if g.kind == "match"}
    return cfg


def heldout(frame: Any, alias: str, grader: str) -> dict[str, float]:
    f = frame[(frame.alias == alias) & (frame.task == "heldout") & (frame.grader == grader)]
    return f.groupby("id")["value"].mean().to_dict()  # epochs averaged within the item


def k_fidelity(base_path: str, teacher: Any, train_file: Path, ks: list[int], temperature: float = 1.0) -> dict[str, Any]:
    """What top-k costs the kd loss itself: on the training answers, the forward KL(teacher || base
    student) over {top-k, rest} as a share of the whole-vocabulary KL, and the teacher's mass in its top k,
    both distributions softened by `temperature` as kd's loss softens them (a flatter teacher at T > 1
    puts more of its mass, and of the KL, outside any top k)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.finetune import divergence
    from harness.finetune._local import encode, load_rows  # the bench rebuilds the loop's rows; not an API
    from harness.finetune._objectives import _answer_logits, topk_support

    tok = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).eval()
    rows = [encode(tok, m) for m in load_rows(train_file)]
    pad = tok.eos_token_id
    full, part, mass, n = 0.0, {k: 0.0 for k in ks}, {k: 0.0 for k in ks}, 0
    with torch.no_grad():
        for b in range(0, len(rows), 8):
            chunk = list(range(b, min(b + 8, len(rows))))
            split = [(ids[: sum(x == -100 for x in lab)], ids[sum(x == -100 for x in lab):]) for ids, lab in (rows[i] for i in chunk)]
            answers = [a for _, a in split]
            t_prompts = [tok(tok.apply_chat_template(teacher.prompts[i], tokenize=False, add_generation_prompt=True),
                             add_special_tokens=False).input_ids for i in chunk]
            s = torch.log_softmax(_answer_logits(model.model, model.lm_head, [p for p, _ in split], answers, pad) / temperature, -1)
            t = torch.log_softmax(_answer_logits(model.model, model.lm_head, t_prompts, answers, pad) / temperature, -1)
            full += float(divergence(s, t, 0.0).sum())
            for k in ks:
                idx = t.topk(k, -1).indices
                part[k] += float(divergence(topk_support(s, idx), topk_support(t, idx), 0.0).sum())
                mass[k] += float(t.gather(-1, idx).exp().sum())
            n += len(s)
    return {"tokens": n, "temperature": temperature, "full_kl_per_token": round(full / n, 4),
            "kl_share_captured": {k: round(part[k] / full, 4) for k in ks}, "teacher_mass_in_top_k": {k: round(mass[k] / n, 4) for k in ks}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", default="sft,kd,sft_on_policy,kd_only,on_policy")
    ap.add_argument("--out", default=str(REPO / "results" / "bench_distil_objectives"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--k-fidelity", default="1,8,64,256", help="top-k values whose share of the full KL is measured ('' = skip)")
    args, overrides = ap.parse_known_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from harness.stats import adjust, gap_closed, paired_binary

    out = Path(args.out)
    cfg = config(overrides)
    cache_dir = Path(cfg.cache_dir)
    t0 = time.time()
    data = run_data(cfg.data, out / "data", cache_dir=cache_dir)
    teacher = cfg.models["teacher"]
    t_args = resolve_args("teacher", teacher.args, cache_dir)
    gen = run_generate(GenerateInput(data.train, teacher, t_args, cfg.generate, student_prompt=cfg.eval.prompt, system=cfg.eval.system,
                                     data_key=data.train_key, cache_dir=cache_dir, out_dir=out / "data"))
    print(f"[bench] data + teacher answers: {len(data.train)} training rows, {len(data.eval)} eval items, {time.time() - t0:.0f}s", flush=True)
    by_id = {q.id: q for q in data.train}
    prompts = []
    for p in (json.loads(x) for x in gen.provenance_file.read_text().splitlines()):
        msgs = teacher_prompt(by_id[p["id"]], teacher, cfg.generate, cfg.eval.prompt, cfg.eval.system)
        assert hashlib.sha256(json.dumps(msgs).encode()).hexdigest() == p["teacher_prompt_sha256"]
        prompts.append(msgs)
    the_teacher = Teacher(model_identity(teacher), t_args["model_path"], prompts, cache_dir)

    fidelity = None
    if args.k_fidelity:
        t = time.time()
        fidelity = k_fidelity(t_args["model_path"], the_teacher, gen.train_file, [int(k) for k in args.k_fidelity.split(",")],
                              student_finetune(cfg, "student").kd.temperature)  # finetune=pd: at its T = 2
        print(f"[bench] top-k fidelity ({time.time() - t:.0f}s): {json.dumps(fidelity)}", flush=True)
        if args.arms == "none":
            print(json.dumps({"bench": "distil_objectives", "overrides": overrides, "k_fidelity": fidelity, "ratio": None}))
            return

    t = time.time()
    refs = [EvalModel(a, cfg.models[a].model, resolve_args(a, cfg.models[a].args, cache_dir), cfg.models[a].context)
            for a in ("teacher", "baseline")]
    run_evaluate(refs, data.eval, cfg.eval, cfg.graders, out / "logs")
    print(f"[bench] teacher + baseline evaluated in {time.time() - t:.0f}s", flush=True)

    results: dict[str, dict[str, Any]] = {}
    for arm in args.arms.split(","):
        acfg = config([*overrides, *ARMS[arm]])
        ftc = student_finetune(acfg, "student")
        student = acfg.models["student"]
        base = resolve_args("student", student.args, cache_dir)
        t = time.time()
        ft = run_finetune(student, base["model_path"], gen.train_file, ftc, cache_dir, out / arm,
                          teacher=the_teacher if ftc.objective != "sft" else None, drift_prompts=_drift_prompts(acfg, data))
        wall = time.time() - t
        m = ft.metrics
        model = f"hf/{student.model.split('/', 1)[1]}-{ftc.method}-{ft.key[:8]}"
        t = time.time()
        run_evaluate([EvalModel(f"student_{arm}", model, {**base, "model_path": ft.model_path})], data.eval, acfg.eval,
                     acfg.graders, out / "logs")
        frame = load_frame(out / "logs")
        row: dict[str, Any] = {"arm": arm, "overrides": ARMS[arm], "cached": ft.cached, "fit_wall_s": round(wall, 1),
                               "eval_s": round(time.time() - t, 1), "train_seconds": m["train_seconds"],
                               "teacher_logits_seconds": m.get("teacher_logits_seconds", 0.0), "steps": m["steps"],
                               "tokens": m.get("tokens"), "sampled_tokens": m.get("sampled_tokens"),
                               "weight_delta_norm": m.get("weight_delta_norm"), "kl_to_base": (m.get("kl_to_base") or {}).get("per_token"),
                               "probe": m.get("probe")}
        row["cost_seconds"] = round(row["train_seconds"] + row["teacher_logits_seconds"], 1)
        for grader in ("contains", "exact"):
            tt, bb, ss = (heldout(frame, a, grader) for a in ("teacher", "baseline", f"student_{arm}"))
            ids = sorted(set(tt) & set(bb) & set(ss))
            g = gap_closed([tt[i] for i in ids], [bb[i] for i in ids], [ss[i] for i in ids])
            row[grader] = {"student": round(sum(ss[i] for i in ids) / len(ids), 4), "teacher": round(sum(tt[i] for i in ids) / len(ids), 4),
                           "baseline": round(sum(bb[i] for i in ids) / len(ids), 4), "n": len(ids),
                           "gap_closed": g.value, "gap_ci": [g.ci_low, g.ci_high]}
        ctl = frame[(frame.alias == f"student_{arm}") & (frame.task == "control") & (frame.grader == "contains")]
        row["control_contains"] = round(float(ctl.value.mean()), 4) if len(ctl) else None
        results[arm] = row
        print(f"[bench] {json.dumps(row)}", flush=True)

    # each arm vs sft on held-out contains: exact McNemar, Holm over the arms
    vs = {}
    if "sft" in results:
        frame = load_frame(out / "logs")
        s0 = heldout(frame, "student_sft", "contains")
        tests = {}
        for arm in results:
            if arm != "sft":
                sa = heldout(frame, f"student_{arm}", "contains")
                ids = sorted(set(s0) & set(sa))
                tests[arm] = paired_binary([sa[i] for i in ids], [s0[i] for i in ids])
        padj = adjust([r.p_value for r in tests.values()], "holm") if tests else []
        vs = {arm: {"diff": round(r.diff, 4), "ci": [round(r.ci_low, 4), round(r.ci_high, 4)], "p": r.p_value, "p_holm": p}
              for (arm, r), p in zip(tests.items(), padj)}
    gaps = {a: r["contains"]["gap_closed"] for a, r in results.items()}
    best = max((a for a in gaps if gaps[a] is not None), key=lambda a: gaps[a], default=None)
    ratio = round(results[best]["cost_seconds"] / results["sft"]["cost_seconds"], 3) if best and "sft" in results else None
    print(json.dumps({"bench": "distil_objectives", "overrides": overrides, "threads": args.threads or None,
                      "gap_closed_heldout_contains": gaps, "vs_sft_heldout_contains": vs,
                      "train_seconds": {a: r["cost_seconds"] for a, r in results.items()}, "best": best, "ratio": ratio,
                      "k_fidelity": fidelity,
                      "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
