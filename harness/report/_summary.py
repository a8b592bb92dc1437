"""summary.json (the machine-readable contract, see docs/summary.md) and report.md."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..stats import proportion_ci

SCHEMA_VERSION = 1


def score_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy per task x model x grader with a 95 % Wilson interval.

    Repeated epochs are averaged per item first, so n is the number of distinct items; items whose
    score is missing (NaN) are not silently dropped from n -- they count as wrong.
    """
    out = []
    if frame.empty:
        return out
    per_item = frame.groupby(["task", "alias", "grader", "id"], sort=True)["value"].mean().fillna(0.0)
    for (task, alias, grader), s in per_item.groupby(level=[0, 1, 2], sort=True):
        n, k = int(s.size), float(s.sum())
        lo, hi = proportion_ci(k, n)
        out.append({"task": task, "model": alias, "grader": grader, "n": n,
                    "accuracy": round(k / n, 6), "ci_low": round(lo, 6), "ci_high": round(hi, 6)})
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def render_markdown(summary: dict[str, Any], order: list[str]) -> str:
    s = summary
    lines = [f"# {s['experiment']} — run `{s['run']}`", ""]
    lines += ["## Models", "", "| alias | model | notes |", "|---|---|---|"]
    for alias in order:
        lines.append(f"| {alias} | `{s['models'][alias]}` | {s['model_notes'].get(alias, '')} |")
    d = s["data"]
    lines += ["", "## Data", "",
              f"- training questions: {d['n_train']} (teacher answers containing the gold: {d.get('n_train_gold', 'n/a')})",
              f"- evaluation items: {d['n_eval']} ({', '.join(f'{t}: {n}' for t, n in d['n_eval_by_task'].items())})",
              f"- evaluation questions that appear verbatim in training: {d['leak_overlap_rate']:.0%}", ""]
    lines += ["## Scores", "",
              "Accuracy in % with 95 % Wilson intervals; n = items per cell. "
              "`exact`: extracted answer equals the gold after normalisation; "
              "`contains`: the gold appears in the normalised answer as whole tokens.", ""]
    tasks = sorted({r["task"] for r in s["scores"]}, key=lambda t: (t != "heldout", t))
    graders = sorted({r["grader"] for r in s["scores"]})
    cell = {(r["task"], r["grader"], r["model"]): r for r in s["scores"]}
    lines += ["| task | grader | n | " + " | ".join(order) + " |", "|---|---|---|" + "---|" * len(order)]
    for t in tasks:
        for g in graders:
            row = [cell.get((t, g, a)) for a in order]
            n = next((r["n"] for r in row if r), 0)
            vals = [f"{_pct(r['accuracy'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]" if r else "—" for r in row]
            lines.append(f"| {t} | {g} | {n} | " + " | ".join(vals) + " |")
    ft = s.get("finetune") or {}
    if ft:
        lines += ["", "## Fine-tune", "", "| " + " | ".join(k for k in ft if k != "loss_curve") + " |",
                  "|" + "---|" * len([k for k in ft if k != "loss_curve"]),
                  "| " + " | ".join(str(v) for k, v in ft.items() if k != "loss_curve") + " |"]
    lines += ["", "## Stage timings", "", "| stage | seconds | model calls |", "|---|---|---|"]
    for stage, sec in s["stage_seconds"].items():
        lines.append(f"| {stage} | {sec:.1f} | {s['stage_calls'].get(stage, 0)} |")
    lines += ["", "## Where things are", "",
              "- inspect logs: `logs/<alias>/` — open with `inspect view --log-dir " + s["paths"]["logs"] + "`",
              "- training file (OpenAI chat fine-tuning JSONL): `data/train.jsonl`, provenance: `data/provenance.jsonl`",
              "- domain document: `data/domain.md`; evaluation items: `data/eval.jsonl`",
              f"- student weights: `{s['paths']['student']}`",
              "- resolved config: `.hydra/config.yaml`; machine-readable results: `summary.json`", ""]
    return "\n".join(lines)
