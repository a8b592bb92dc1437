"""Noise diagnostics: how much of a report's signal its items and epochs can carry.

Per task x grader: items no model ever gets right or ever gets wrong (they cannot separate any two
models: uninformative), models at the ceiling or floor (little room to move), pairs of models whose
answers are identical on every item (their difference is a true null, exactly 0, not an error),
and, where a task has several epochs, pass@k and pass^k per model (Chen et al. 2021's unbiased
estimator) and the share of score variance that lies within items (epoch to epoch) rather than
between them, which says how much more epochs could narrow an interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

CEILING, FLOOR = 0.95, 0.05  # accuracy at or beyond: a model with (almost) no room up / down


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, eq. 1): 1 - C(n-c, k) / C(n, k)."""
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k (all k tries right; Yao et al. 2024, tau-bench): C(c, k) / C(n, k)."""
    return math.comb(c, k) / math.comb(n, k)


def _variance_split(v: pd.DataFrame) -> tuple[float, float]:
    """(between-item, within-item) variance of one model's epoch scores (one-way random-effects
    ANOVA: within = mean per-item sample variance; between = var of item means - within / k)."""
    k = v.shape[1]
    within = float(np.nanmean(v.var(axis=1, ddof=1)))
    between = max(0.0, float(v.mean(axis=1).var(ddof=1)) - within / k) if len(v) > 1 else 0.0
    return between, within


def _epochs(f: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for alias, g in f.groupby("alias", sort=True):
        v = g.pivot_table(index="id", columns="epoch", values="value", aggfunc="mean").dropna()
        k = v.shape[1]
        if k < 2 or v.empty:
            continue
        row: dict[str, Any] = {"model": str(alias), "epochs": k, "n": int(len(v))}
        if v.isin([0.0, 1.0]).all().all():
            c = v.sum(axis=1).astype(int)
            row["pass_at_k"] = round(float(np.mean([pass_at_k(k, int(ci), k) for ci in c])), 6)
            row["pass_hat_k"] = round(float(np.mean([pass_hat_k(k, int(ci), k) for ci in c])), 6)
        between, within = _variance_split(v)
        total = between + within / k
        # SE of the mean over items with k epochs ∝ sqrt(between + within / k); infinitely many epochs
        # would leave sqrt(between): the most any number of epochs could narrow an interval
        row.update(var_between=round(between, 6), var_within=round(within, 6),
                   within_share=round(within / (between + within), 6) if between + within > 0 else None,
                   se_left_with_infinite_epochs=round(math.sqrt(between / total), 6) if total > 0 else None)
        out.append(row)
    return out


def _identical(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Pairs of models whose answers are the same on every item and epoch they share (all tasks).
    Answers and (task, id, epoch) keys become integer codes first: a million rows cost two
    factorisations and a dense code matrix, not a string pivot."""
    if "answer" not in frame.columns or frame.empty:
        return []
    answer = pd.factorize(frame["answer"].astype(str))[0]
    key = frame.groupby(["task", "id", "epoch"], sort=False, observed=True).ngroup().to_numpy()
    alias_code, aliases = pd.factorize(frame["alias"].astype(str), sort=True)
    m = np.full((int(key.max()) + 1, len(aliases)), -1)
    m[key, alias_code] = answer
    out = []
    for i, a in enumerate(aliases):
        for j in range(i + 1, len(aliases)):
            both = (m[:, i] >= 0) & (m[:, j] >= 0)
            if both.any() and (m[both, i] == m[both, j]).all():
                out.append({"a": str(a), "b": str(aliases[j]), "n": int(both.sum())})
    return out


def noise_table(frame: pd.DataFrame, means: pd.Series | None) -> dict[str, Any]:
    """summary.json's `noise` section (docs/summary.md)."""
    if frame.empty or means is None:
        return {"cells": [], "identical_outputs": [], "epochs": []}
    cells = []
    several = "epoch" in frame.columns and frame["epoch"].nunique() > 1
    wide = means.unstack("alias")
    for (task, grader), g in wide.groupby(level=[0, 1], sort=True):
        g = g.dropna(axis=1, how="all")
        vals = g.to_numpy(float)
        seen = ~np.isnan(vals)
        never = int(((np.where(seen, vals, 0) == 0) & seen.any(axis=1, keepdims=True)).all(axis=1).sum())
        always = int(((np.where(seen, vals, 1) == 1) & seen.any(axis=1, keepdims=True)).all(axis=1).sum())
        acc = {str(a): float(np.nanmean(g[a].to_numpy(float))) for a in g.columns}
        f = frame[(frame["task"].astype(str) == str(task)) & (frame["grader"].astype(str) == str(grader))] if several else None
        cells.append({"task": str(task), "grader": str(grader), "n_items": int(len(g)), "never_right": never, "always_right": always,
                      "ceiling": sorted(a for a, v in acc.items() if v >= CEILING),
                      "floor": sorted(a for a, v in acc.items() if v <= FLOOR),
                      "epochs": [dict(task=str(task), grader=str(grader), **r) for r in _epochs(f)] if several else []})
    epochs = [r for c in cells for r in c.pop("epochs")]
    return {"cells": cells, "identical_outputs": _identical(frame), "epochs": epochs}


NOISE_NOTE = ("Uninformative items: no model ever right (never) or every model always right (always): they "
              "cannot separate two models, so the effective n of a comparison is smaller than n. Ceiling / floor: a "
              f"model at ≥ {100 * CEILING:.0f} % / ≤ {100 * FLOOR:.0f} % has little room to move. Identical outputs: "
              "two models gave the same answer to every item, so their difference is a true null (exactly 0), not an "
              "error. Epochs: pass@k (any of k right) and pass^k (all k right), unbiased estimators (Chen et al. 2021); "
              "within-item share = the part of the score variance that varies from epoch to epoch; 'SE left' = the "
              "fraction of the standard error that would remain with infinitely many epochs (near 1: more epochs will "
              "not help, more items will).")


def noise_markdown(noise: dict[str, Any] | None) -> list[str]:
    """The compact 'Noise diagnostics' section of report.md (report.html shows the same lines)."""
    if not noise or not (noise.get("cells") or noise.get("identical_outputs")):
        return []
    from ._fmt import md

    # model aliases and task names are the user's text: escaped like every other cell
    return ["", "## Noise diagnostics", "", NOISE_NOTE, "", *[f"- {md(line[2:], 2000)}" for line in noise_sentences(noise)]]


def noise_sentences(noise: dict[str, Any]) -> list[str]:
    """One bullet per finding, the same for report.md and report.html."""
    out = []
    for c in noise.get("cells") or []:
        bits = [f"{c['never_right']} never right, {c['always_right']} always right of {c['n_items']} items"]
        if c["ceiling"]:
            bits.append("ceiling: " + ", ".join(c["ceiling"]))
        if c["floor"]:
            bits.append("floor: " + ", ".join(c["floor"]))
        out.append(f"- {c['task']} · {c['grader']}: " + "; ".join(bits) + ".")
    same = noise.get("identical_outputs") or []
    for p in same[:5]:
        out.append(f"- {p['a']} and {p['b']}: identical outputs on all {p['n']} items × epochs — a true null "
                   "(difference exactly 0), not an error.")
    if len(same) > 5:
        out.append(f"- … and {len(same) - 5} more pairs with identical outputs (summary.json `noise.identical_outputs`).")
    for e in noise.get("epochs") or []:
        pk = (f"pass@{e['epochs']} {100 * e['pass_at_k']:.1f} %, pass^{e['epochs']} {100 * e['pass_hat_k']:.1f} %; "
              if "pass_at_k" in e else "")
        share = "—" if e["within_share"] is None else f"{100 * e['within_share']:.0f} %"
        left = "—" if e["se_left_with_infinite_epochs"] is None else f"{100 * e['se_left_with_infinite_epochs']:.0f} %"
        out.append(f"- {e['task']} · {e['grader']} · {e['model']} ({e['epochs']} epochs, n = {e['n']}): {pk}"
                   f"within-item variance share {share}, SE left with infinite epochs {left}.")
    return out
