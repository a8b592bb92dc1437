"""Which distillation recipe? sft, more wordings, sampled answers, prompt distillation, on-policy after
the best: each a real `harness run experiment=demo` (one job of one sweep dir), then the harness's own
sweep report over them, and a last JSON line.

Every arm is `harness run` with `experiment=demo` plus the arm's overrides (and the bench's own, e.g.
`data.seed=1`), written to `<out>/<tag>/<arm>/` with Hydra's overrides recorded, so `harness report
<out>/<tag>` (run here at the end) is the sweep report a user gets from `harness run -m`: each student's
gap closed with its paired-bootstrap CI, every student - student paired test in one Holm family, the
Fine-tunes table (train seconds, tokens). The stages are cached by content hash, so the teacher's and
the baseline's evaluation, and each arm's data, answers and fine-tune, are computed once: a re-run of
the bench re-trains nothing. The demo's embedded LLM judge and pairwise judge are left out
(`~graders.judge ~graders.pairwise`): they cost evaluation time and say nothing about the recipe.

The JSON line, per arm: held-out `contains` / `exact` and gap closed [95 % paired-bootstrap CI],
control `contains` (forgetting), train seconds (+ the teacher's log-probs for kd), training rows and
tokens; each arm against sft on held-out `contains` (the paired score interval and its p, Holm over the arms)
and on control `contains`; `ratio` = the best arm's (highest held-out gap closed) train seconds / sft's.

Nothing here reads a held-out item to pick a setting: the arms' settings were chosen on a validation
split of the *training* questions (README "Measured: which recipe?" says how); this bench only
measures them.

Arms (--arms, default: the recipes of issue 28, in order):
  sft              the demo's student: one greedy teacher answer per training question, 5 epochs
  sft_wordings     + generate.paraphrases=2: the teacher writes 2 more wordings of each question, 2.5 epochs
  sft_sampled      + generate.samples_per_question=4 at sample_temperature 0.7, 1.25 epochs (about sft's steps)
  pd               finetune=pd (the published prompt distillation: pure forward KL at T=2, whole vocabulary) on the sampled answers
  sft_on_policy    sft's data and budget, then 30 on-policy steps (the probe may stop it: then it is the sft student)
  sft_on_policy_go_on  the same past the probe (on_policy.if_base_preferred=continue)
  (by name: kd, pd_greedy, kd_full: the objectives on the greedy answers)

What k costs (--k-fidelity 64,256,1024): on the demo's greedy training answers, the share of the
whole-vocabulary forward KL(teacher || untuned student) that the {top-k, rest} support keeps
(`--arms none`: only this).

Run: .venv/bin/python bench/distil_objectives.py [--arms sft,pd,...] [--tag seed0] [overrides...]
At the demo's size: ~4 min per sft-sized arm on 2 idle cores. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# N = 4 sampled teacher answers per question at generate.sample_temperature (0.7), each a row, 1.25
# epochs: about sft's 75 steps, each answer seen ~1.25 times instead of one answer seen 5 times
SAMPLED = ["generate.samples_per_question=4", "finetune.epochs=1.25"]
ARMS: dict[str, list[str]] = {
    "sft": [],
    # 2 teacher-written wordings per question (~106 of 240 kept), 2.5 epochs: about sft's steps again
    "sft_wordings": ["generate.paraphrases=2", "finetune.epochs=2.5"],
    "sft_sampled": SAMPLED,
    # the published recipe: its loss (finetune=pd) on sampled teacher answers
    "pd": ["finetune=pd", *SAMPLED],
    # the best data recipe (sft's own) with on-policy after its whole SFT budget, at on_policy.lr; the
    # probe may stop it before any on-policy step (the arm is then its SFT student); _go_on: past the probe
    "sft_on_policy": ["finetune.objective=on_policy", "finetune.on_policy.steps=30"],
    "sft_on_policy_go_on": ["finetune.objective=on_policy", "finetune.on_policy.steps=30",
                            "finetune.on_policy.if_base_preferred=continue"],
    # the objectives on the demo's greedy answers (the 2026-12-03 table)
    "kd": ["finetune.objective=kd"],
    "pd_greedy": ["finetune=pd"],
    "kd_full": ["finetune.objective=kd", "finetune.kd.top_k=0"],
}
NO_JUDGES = ["~graders.judge", "~graders.pairwise"]


def run_arm(arm: str, overrides: list[str], out: Path, threads: int) -> Path:
    """One `harness run` (the CLI, as a user runs it) into out/<arm>; returns the run dir."""
    run_dir = out / arm
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    cmd = [str(Path(sys.executable).parent / "harness"), "run", "experiment=demo", *NO_JUDGES, *overrides, *ARMS[arm],
           f"hydra.run.dir={run_dir}"]
    t = time.time()
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{arm}.log"  # the run's own terminal output, as it happens
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise SystemExit(f"bench: arm {arm} failed (exit {rc}; {log}): " + " | ".join(tail))
    print(f"[bench] {arm}: {time.time() - t:.0f}s", flush=True)
    return run_dir


def scores(frame: Any, alias: str, task: str, grader: str) -> dict[str, float]:
    f = frame[(frame.alias == alias) & (frame.task == task) & (frame.grader == grader)]
    return f.groupby("id")["value"].mean().to_dict()  # epochs averaged within the item


def arm_row(arm: str, run_dir: Path) -> tuple[dict[str, Any], Any]:
    from harness.runs import load_frame
    from harness.stats import gap_closed

    frame = load_frame(run_dir / "logs")
    summary = json.loads((run_dir / "summary.json").read_text())
    m = (summary.get("finetunes") or {}).get("student") or {}
    row: dict[str, Any] = {"arm": arm, "overrides": ARMS[arm], "train_seconds": m.get("train_seconds"),
                           "teacher_logits_seconds": m.get("teacher_logits_seconds", 0.0), "steps": m.get("steps"),
                           "rows": m.get("examples"), "tokens": m.get("tokens"), "sampled_tokens": m.get("sampled_tokens"),
                           "weight_delta_norm": m.get("weight_delta_norm"),
                           "kl_to_base": (m.get("kl_to_base") or {}).get("per_token"), "probe": m.get("probe")}
    if row["weight_delta_norm"] is None:  # a fine-tune cached before the drift figures existed: measured now
        row.update(missing_drift(run_dir, summary))
    row["cost_seconds"] = round((row["train_seconds"] or 0) + (row["teacher_logits_seconds"] or 0), 1)
    for grader in ("contains", "exact"):
        tt, bb, ss = (scores(frame, a, "heldout", grader) for a in ("teacher", "baseline", "student"))
        ids = sorted(set(tt) & set(bb) & set(ss))
        g = gap_closed([tt[i] for i in ids], [bb[i] for i in ids], [ss[i] for i in ids])
        row[grader] = {"student": round(sum(ss[i] for i in ids) / len(ids), 4), "teacher": round(sum(tt[i] for i in ids) / len(ids), 4),
                       "baseline": round(sum(bb[i] for i in ids) / len(ids), 4), "n": len(ids),
                       "gap_closed": g.value, "gap_ci": [g.ci_low, g.ci_high]}
    ctl = scores(frame, "student", "control", "contains")
    row["control_contains"] = round(sum(ctl.values()) / len(ctl), 4) if ctl else None
    return row, frame


def missing_drift(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The drift figures run_finetune reports today (harness/finetune/_drift.py), for a student whose
    fine-tune was cached before they existed: the same function on the same held-out prompts."""
    from harness.cache import user_cache_dir
    from harness.finetune._drift import drift
    from harness.models import resolve_args
    from harness.prompts import chat, render

    cfg = summary["config"]
    base = resolve_args("student", cfg["models"]["student"]["args"], user_cache_dir())["model_path"]
    items = [json.loads(x) for x in (run_dir / "data" / "eval.jsonl").read_text().splitlines()]
    prompts = [chat(cfg["eval"]["system"], render(cfg["eval"]["prompt"], it["question"])) for it in items if it["task"] == "heldout"]
    d = drift(base, str(REPO / summary["paths"]["student"]), prompts)
    return {"weight_delta_norm": d["weight_delta_norm"], "kl_to_base": d["kl_to_base"]["per_token"], "drift_measured_by_bench": True}


def versus_sft(frames: dict[str, Any], task: str) -> dict[str, Any]:
    """Each arm's student against sft's on `task` contains: the paired score interval (Tango ∪ SCAS, the
    report's and the gate's: never a point when no item differs) and its dual p, Holm over the arms."""
    from harness.stats import adjust, paired_interval

    s0 = scores(frames["sft"], "student", task, "contains")
    tests = {}
    for arm, f in frames.items():
        if arm != "sft":
            sa = scores(f, "student", task, "contains")
            ids = sorted(set(s0) & set(sa))
            tests[arm] = (paired_interval([sa[i] for i in ids], [s0[i] for i in ids]), len(ids))
    padj = adjust([r.p_value for r, _ in tests.values()], "holm") if tests else []
    return {arm: {"diff": round(r.diff, 4), "ci": [round(r.ci_low, 4), round(r.ci_high, 4)], "n": n, "p": r.p_value, "p_holm": p}
            for (arm, (r, n)), p in zip(tests.items(), padj)}


def k_fidelity(ks: list[int], overrides: list[str]) -> dict[str, Any]:
    """The share of the whole-vocabulary forward KL(teacher || untuned student) kept by {top-k, rest},
    on the demo's greedy training answers (the run dir of the sft arm holds them)."""
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.cli import compose
    from harness.config import to_dataclass
    from harness.data import run_data
    from harness.finetune import divergence
    from harness.finetune._local import encode  # the bench rebuilds the loop's rows; not an API
    from harness.finetune._objectives import _answer_logits, _split, topk_support
    from harness.generate import GenerateInput, run_generate, teacher_prompt
    from harness.models import resolve_args

    plain = OmegaConf.to_container(compose(["experiment=demo", *overrides]), resolve=False)
    plain.pop("hydra", None)
    cfg = to_dataclass(OmegaConf.create(plain))
    cache, tmp = Path(cfg.cache_dir), REPO / "results" / "bench_distil_objectives" / "k_fidelity"
    data = run_data(cfg.data, tmp, cache_dir=cache)
    teacher = cfg.models["teacher"]
    t_args = resolve_args("teacher", teacher.args, cache)
    gen = run_generate(GenerateInput(data.train, teacher, t_args, cfg.generate, cfg.eval.prompt, cfg.eval.system, data.train_key, cache, tmp))
    by_id = {q.id: q for q in data.train}
    prov = [json.loads(x) for x in gen.provenance_file.read_text().splitlines()]
    rows = [json.loads(x)["messages"] for x in gen.train_file.read_text().splitlines()]
    path = t_args["model_path"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    # at kd's temperature, as its loss softens both (finetune=pd: T = 2, a flatter teacher: less in any top k)
    temp = cfg.finetune.kd.temperature
    full, part, n = 0.0, {k: 0.0 for k in ks}, 0
    with torch.no_grad():
        for b in range(0, len(rows), 8):
            enc = [_split(*encode(tok, m)) for m in rows[b:b + 8]]
            t_msgs = [teacher_prompt(by_id[p["id"]], teacher, cfg.generate, cfg.eval.prompt, cfg.eval.system) for p in prov[b:b + 8]]
            t_ids = [tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
                     for m in t_msgs]
            answers = [a for _, a in enc]
            s = torch.log_softmax(_answer_logits(model.model, model.lm_head, [p for p, _ in enc], answers, tok.eos_token_id) / temp, -1)
            t = torch.log_softmax(_answer_logits(model.model, model.lm_head, t_ids, answers, tok.eos_token_id) / temp, -1)
            full += float(divergence(s, t, 0.0).sum())
            for k in ks:
                idx = t.topk(k, -1).indices
                part[k] += float(divergence(topk_support(s, idx), topk_support(t, idx), 0.0).sum())
            n += len(s)
    return {"tokens": n, "temperature": temp, "full_kl_per_token": round(full / n, 4), "kl_share_captured": {k: round(part[k] / full, 4) for k in ks}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arms", default="sft,sft_wordings,sft_sampled,pd,sft_on_policy,sft_on_policy_go_on")
    ap.add_argument("--out", default=str(REPO / "results" / "bench_distil_objectives"))
    ap.add_argument("--tag", default="sweep", help="the sweep dir's name under --out (e.g. seed0, seed1)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    ap.add_argument("--k-fidelity", default="", help="top-k values whose share of the full KL is measured, e.g. 64,256,1024")
    args, overrides = ap.parse_known_args()
    t0 = time.time()
    fidelity = k_fidelity([int(k) for k in args.k_fidelity.split(",")], overrides) if args.k_fidelity else None
    if fidelity:
        print(f"[bench] top-k fidelity: {json.dumps(fidelity)}", flush=True)
    if args.arms == "none":
        print(json.dumps({"bench": "distil_objectives", "overrides": overrides, "k_fidelity": fidelity, "ratio": None}))
        return
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"bench: unknown arm(s) {', '.join(unknown)}; available: {', '.join(ARMS)}")
    out = Path(args.out) / args.tag
    results, frames = {}, {}
    for arm in arms:
        results[arm], frames[arm] = arm_row(arm, run_arm(arm, overrides, out, args.threads))
        print(f"[bench] {json.dumps(results[arm])}", flush=True)
    from harness.report import report

    sweep = report([out])  # the harness's own sweep report over the arms' run dirs
    print(f"[bench] sweep report: {sweep}", flush=True)
    vs = {task: versus_sft(frames, task) for task in ("heldout", "control")} if "sft" in frames and len(frames) > 1 else {}
    gaps = {a: r["contains"]["gap_closed"] for a, r in results.items()}
    best = max((a for a in gaps if gaps[a] is not None), key=lambda a: gaps[a], default=None)
    ratio = round(results[best]["cost_seconds"] / results["sft"]["cost_seconds"], 3) if best and "sft" in results else None
    print(json.dumps({"bench": "distil_objectives", "overrides": overrides, "threads": args.threads or None,
                      "gap_closed_heldout_contains": gaps, "gap_ci": {a: r["contains"]["gap_ci"] for a, r in results.items()},
                      "control_contains": {a: r["control_contains"] for a, r in results.items()},
                      "vs_sft_contains": vs, "train_seconds": {a: r["cost_seconds"] for a, r in results.items()},
                      "rows": {a: r["rows"] for a, r in results.items()}, "best": best, "ratio": ratio,
                      "k_fidelity": fidelity, "sweep_report": str(sweep), "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
