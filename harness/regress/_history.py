"""Run history (`harness history`): many evaluations of the same task, one per model version, in the
order given. Per version the accuracy with its 95 % Wilson interval (the report's score table, epochs
averaged per item first); per consecutive pair, and first -> last, the regression gate's paired
verdict (the same `gate` as `harness regress`: candidate = the later version). A slow drift -- each
step within the margin, the sum of them not -- shows in the first -> last row and the plot, where no
single gate between neighbours catches it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..cache import write_json, write_text
from ..config import RegressConfig
from ..errors import HarnessError
from ..report import score_table
from ._gate import RunRef, _load, gate
from ._render import _pp, untrusted

CSV_COLUMNS = ["version", "label", "path", "model", "task", "grader", "n", "accuracy", "ci_low", "ci_high",
               "vs_previous", "diff", "diff_lower", "diff_upper", "p_regression_adjusted"]


def _label(ref: RunRef, i: int) -> str:
    """The run dir's name, or a log file's (logs/v1.2.eval -> v1.2), or the folder of a log
    named by inspect (logs/v1.2/2026-01-05T10-00-00_task_id.eval -> v1.2)."""
    name = ref.dir.name if ref.dir.is_dir() else ref.dir.stem
    if ref.dir.is_file() and re.match(r"^\d{4}-\d{2}-\d{2}T", name):
        name = ref.dir.parent.name
    return name + (f":{ref.alias}" if ref.explicit else "")


def history(refs: list[RunRef], s: RegressConfig) -> dict[str, Any]:
    """The history document (history.json's content); raises HarnessError on bad input."""
    if len(refs) < 2:
        raise HarnessError("harness history: name at least two runs or logs, oldest first (one per model version)")
    versions = []
    for i, ref in enumerate(refs):
        side = _load(ref, f"version {i + 1}", {})
        label = _label(ref, i)
        rows = score_table(side.frame.assign(alias=label))
        versions.append({"version": i + 1, "label": label, "path": str(ref.dir), "alias": side.ref.alias, "model": side.model,
                         "source": side.source.kind, "scores": rows})
    pairs = [(i, i + 1) for i in range(len(refs) - 1)] + ([(0, len(refs) - 1)] if len(refs) > 2 else [])
    gates = []
    for a, b in pairs:
        g = gate(refs[a], refs[b], replace(s, baseline=refs[a].alias, candidate=refs[b].alias))
        gates.append({"from": a + 1, "to": b + 1, "kind": "step" if b == a + 1 else "drift", "verdict": g["verdict"],
                      "headline": g["headline"], "n": g["items"]["n_compared"], "warnings": g["warnings"],
                      "cells": [{k: c.get(k) for k in ("task", "grader", "gated", "verdict", "diff", "lower", "upper",
                                                       "p_regression_adjusted", "n", "method")} for c in g["cells"]]})
    return {"kind": "history", "settings": {"margin": s.margin, "alpha": s.alpha, "strict": s.strict}, "versions": versions,
            "gates": gates}


def _cell(gates: list[dict[str, Any]], to: int, task: str, grader: str) -> dict[str, Any] | None:
    for g in gates:
        if g["kind"] == "step" and g["to"] == to:
            return next((c for c in g["cells"] if (c["task"], c["grader"]) == (task, grader)), None)
    return None


def table(doc: dict[str, Any]) -> pd.DataFrame:
    """One row per version x task x grader (history.csv)."""
    rows = []
    for v in doc["versions"]:
        for r in v["scores"]:
            c = _cell(doc["gates"], v["version"], r["task"], r["grader"]) or {}
            rows.append([v["version"], v["label"], v["path"], v["model"], r["task"], r["grader"], r["n"], r["accuracy"], r["ci_low"],
                         r["ci_high"], c.get("verdict", ""), c.get("diff"), c.get("lower"), c.get("upper"), c.get("p_regression_adjusted")])
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def markdown(doc: dict[str, Any], plot: str | None) -> str:
    s = doc["settings"]
    lines = ["# Run history", "",
             f"{len(doc['versions'])} versions, oldest first. Accuracy with its 95 % Wilson interval (epochs averaged per item first). "
             f"Each version is gated against the one before it, and the last against the first, with the regression gate "
             f"(`harness regress`: paired per-item difference, one-sided {100 * (1 - s['alpha']):g} % bounds, margin "
             f"{100 * s['margin']:g} pp, Holm over the gated cells): a drift of small steps shows in the first → last row.", ""]
    t = table(doc)
    for (task, grader), rows in t.groupby(["task", "grader"], sort=True):
        lines += [f"## {untrusted(task, 60)} · {untrusted(grader, 60)}", "",
                  "| version | model | n | accuracy % [95 % CI] | vs previous: d (pp) [one-sided bounds] | verdict |", "|---|---|---|---|---|---|"]
        for r in rows.itertuples(index=False):
            vs = "—" if not r.vs_previous else f"{_pp(r.diff)} [{_pp(r.diff_lower)}, {_pp(r.diff_upper)}]"
            lines.append(f"| v{r.version} · {untrusted(r.label, 60)} | {untrusted(r.model, 60)} | {r.n} | {_pp(r.accuracy, False)} "
                         f"[{_pp(r.ci_low, False)}, {_pp(r.ci_high, False)}] | {vs} | {r.vs_previous or '—'} |")
        lines.append("")
    lines += ["## Gates", "", "| from → to | kind | n | verdict |", "|---|---|---|---|"]
    lines += [f"| v{g['from']} → v{g['to']} | {'first → last' if g['kind'] == 'drift' else 'consecutive'} | {g['n']} | **{g['verdict']}** |"
              for g in doc["gates"]]
    lines += ["", *(f"- v{g['from']} → v{g['to']}: {untrusted(g['headline'], 600)}" for g in doc["gates"])]
    if plot:
        lines += ["", f"![accuracy per version]({plot})"]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    """Accuracy per version with its interval, one panel per task x grader; each step's verdict marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    t = table(doc)
    keys = sorted({(a, b) for a, b in zip(t["task"], t["grader"])})
    fig, axes = plt.subplots(1, len(keys), figsize=(max(4.0, 0.9 * len(doc["versions"]) + 2) * len(keys), 3.4), sharey=True, squeeze=False)
    colour = {"pass": "C2", "regression": "C3", "inconclusive": "C7"}
    for ax, (task, grader) in zip(axes[0], keys):
        r = t[(t["task"] == task) & (t["grader"] == grader)].sort_values("version")
        x = r["version"].to_numpy()
        acc = 100 * r["accuracy"].to_numpy()
        err = [acc - 100 * r["ci_low"].to_numpy(), 100 * r["ci_high"].to_numpy() - acc]
        ax.errorbar(x, acc, yerr=err, fmt="-o", color="C0", capsize=4, label="accuracy (95 % CI)")
        for xi, yi, v in zip(x, acc, r["vs_previous"]):
            if v:
                ax.annotate(v, (xi, yi), textcoords="offset points", xytext=(0, 10), ha="center", fontsize=7, color=colour.get(v, "k"))
        ax.set_xticks(x, [f"v{i}" for i in x])
        drift = next((c for g in doc["gates"] if g["kind"] == "drift" for c in g["cells"] if (c["task"], c["grader"]) == (task, grader)), None)
        ax.set_title(f"{task} · {grader}" + (f"\nfirst → last: {drift['verdict']}" if drift else ""), fontsize=10)
        ax.set_xlabel("version (oldest first)")
        ax.set_ylim(0, 105)
    axes[0][0].set_ylabel("accuracy %")
    fig.savefig(path.with_name(f".{path.name}.tmp"), format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    path.with_name(f".{path.name}.tmp").replace(path)


def write_history(doc: dict[str, Any], out: Path) -> list[Path]:
    """history.json, history.csv, history.png, history.md in `out` (each written whole, then renamed)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "history.json", doc)
    write_text(out / "history.csv", table(doc).to_csv(index=False))
    plot(doc, out / "history.png")
    write_text(out / "history.md", markdown(doc, "history.png"))
    return [out / n for n in ("history.md", "history.csv", "history.png", "history.json")]
