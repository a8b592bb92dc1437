"""The analysis behind every report: scores, paired comparisons, gap closed, categories, flips.

Stats over the tidy frame (harness.runs.load_frame); no rendering here. Epochs are averaged per
item once (`per_item`) and every table reads that, so a large frame is grouped once, not per table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..config import ReportConfig
from ..stats import adjust, gap_closed, mde, paired_binary, paired_continuous, proportion_ci
from ._judge import KAPPA_MIN, judge_agreement

SCHEMA_VERSION = 1


def item_means(frame: pd.DataFrame) -> pd.Series:
    """Mean score per (task, grader, id, alias): repeated epochs of an item averaged first, so every
    table counts items, never samples. NaN = the item's answer could not be scored. Computed once
    per report and passed to every table (a 1M-row frame is grouped once, not per table)."""
    return frame.groupby(["task", "grader", "id", "alias"], sort=True, observed=True)["value"].mean()


def _wide(means: pd.Series) -> pd.DataFrame:
    """Items x aliases per (task, grader)."""
    return means.unstack("alias")


def score_table(frame: pd.DataFrame, means: pd.Series | None = None) -> list[dict[str, Any]]:
    """Accuracy per task x model x grader with a 95 % Wilson interval.

    Repeated epochs are averaged per item first, so n is the number of distinct items; items whose
    score is missing (NaN) are not silently dropped from n -- they count as wrong.
    """
    out: list[dict[str, Any]] = []
    if frame.empty:
        return out
    means = item_means(frame) if means is None else means
    levels = ["task", "alias", "grader"]
    n = means.groupby(level=levels, sort=True).size()
    k = means.fillna(0.0).groupby(level=levels, sort=True).sum()
    unscored = means.isna().groupby(level=levels, sort=True).sum()
    for (task, alias, grader), n_cell in n.items():
        kk = float(k[(task, alias, grader)])
        lo, hi = proportion_ci(kk, int(n_cell))
        out.append({"task": task, "model": alias, "grader": grader, "n": int(n_cell),
                    "accuracy": round(kk / n_cell, 6), "ci_low": round(lo, 6), "ci_high": round(hi, 6),
                    "n_unscored": int(unscored[(task, alias, grader)])})
    return out


# (a, b) pairs compared in every run that has these aliases: a - b
PAIRS = [("student", "baseline"), ("teacher", "student"), ("teacher", "baseline")]
ALPHA = ReportConfig.alpha


def default_pairs(students: list[str]) -> list[tuple[str, str]]:
    """Each student against the baseline and the teacher, the teacher against the baseline, and
    every pair of students (a model grid). One student named `student`: PAIRS."""
    out = [p for s in students for p in ((s, "baseline"), ("teacher", s))] + [("teacher", "baseline")]
    return out + [(a, b) for i, a in enumerate(students) for b in students[i + 1:]]


def pairs_for(rc: ReportConfig, students: list[str] = ["student"]) -> list[tuple[str, str]]:
    """The default pairs plus the ones the experiment asks for (report.pairs), without repeats."""
    out = default_pairs(students)
    for a, b in (tuple(p) for p in rc.pairs):
        if (a, b) not in out:
            out.append((a, b))
    return out


def model_order(aliases: list[str], students: list[str] = []) -> list[str]:
    """Report column order: teacher, baseline, the students, then any other model as configured."""
    first = ["teacher", "baseline", "student", *students]
    return sorted(aliases, key=lambda a: first.index(a) if a in first else len(first))


def _clusters(frame: pd.DataFrame) -> pd.Series:
    """(task, id) -> cluster label (an item's own id when it shares no source with another item)."""
    if "cluster" not in frame.columns:
        return pd.Series(dtype=object)
    return frame.drop_duplicates(["task", "id"]).set_index(["task", "id"])["cluster"]


def comparison_table(frame: pd.DataFrame, pairs: list[tuple[str, str]] = PAIRS, alpha: float = ALPHA,
                     correction: str = "holm", means: pd.Series | None = None,
                     excluded: dict[tuple[str, str], str] | None = None) -> list[dict[str, Any]]:
    """Paired comparisons aligned by sample id, adjusted over every comparison of the report.

    Items whose metadata puts several of them in one cluster get cluster-robust SEs (see
    harness.stats.paired_binary). `excluded`: (task, grader) -> why its comparisons are shown but
    left out of the tested family (a judge that failed its validation): they get no adjusted p and
    are never called significant, and they do not enlarge the correction of the others."""
    rows: list[dict[str, Any]] = []
    if frame.empty:
        return rows
    excluded = excluded or {}
    clusters = _clusters(frame)
    means = item_means(frame) if means is None else means
    for (task, grader), g in _wide(means).groupby(level=[0, 1], sort=True):
        c = clusters.reindex(pd.MultiIndex.from_arrays([g.index.get_level_values(0), g.index.get_level_values(2)])).to_numpy() \
            if not clusters.empty else None
        for a, b in pairs:
            if a not in g.columns or b not in g.columns:
                continue
            x, y = g[a].to_numpy(), g[b].to_numpy()
            binary = set(pd.unique(pd.Series(list(x) + list(y)).dropna())) <= {0.0, 1.0}
            r = paired_binary(x, y, alpha, clusters=c) if binary else paired_continuous(x, y, alpha, clusters=c)
            row = {"task": task, "grader": grader, "a": a, "b": b, "n_pairs": r.n, "n_dropped": r.n_dropped,
                   "diff": round(r.diff, 6), "ci_low": round(r.ci_low, 6), "ci_high": round(r.ci_high, 6),
                   "p_value": r.p_value, "test": r.test, "mde": round(mde(r.n, alpha=alpha), 6)}
            if (task, grader) in excluded:
                row["excluded"] = excluded[(task, grader)]
            rows.append(row)
    tested = [r for r in rows if "excluded" not in r]
    for row, p_adj in zip(tested, adjust([r["p_value"] for r in tested], correction)):
        row["p_adjusted"] = p_adj
        row["correction"] = f"{correction} over {len(tested)} comparisons"
        row["significant"] = bool(p_adj < alpha)
    for row in rows:
        if "excluded" in row:
            row.update(p_adjusted=None, correction=f"not tested: {row['excluded']}", significant=False)
    return sorted(rows, key=lambda r: r["task"] != "heldout")  # stable: held-out task first


def gap_table(frame: pd.DataFrame, alpha: float = ALPHA,
              triples: list[tuple[str, str, str]] = [("teacher", "baseline", "student")],
              means: pd.Series | None = None) -> list[dict[str, Any]]:
    """Gap closed per task x grader for each (teacher, baseline, student) alias triple."""
    out: list[dict[str, Any]] = []
    if frame.empty:
        return out
    means = item_means(frame) if means is None else means
    for (task, grader), g in _wide(means).groupby(level=[0, 1], sort=True):
        for t, b, s in triples:
            if {t, b, s} <= set(g.columns):
                r = gap_closed(g[t], g[b], g[s], alpha)
                row = {"task": task, "grader": grader, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n}
                if s != "student" or len(triples) > 1:
                    row["student"] = s
                out.append(row)
    return out


def category_table(frame: pd.DataFrame, means: pd.Series | None = None) -> list[dict[str, Any]]:
    """Accuracy per task x grader x group (the item's category metadata) x model."""
    if frame.empty:
        return []
    means = item_means(frame) if means is None else means
    groups = frame.drop_duplicates(["task", "id"]).set_index(["task", "id"])["group"]
    idx = means.index
    grp = groups.reindex(pd.MultiIndex.from_arrays([idx.get_level_values("task"), idx.get_level_values("id")])).to_numpy()
    df = pd.DataFrame({"task": idx.get_level_values("task"), "grader": idx.get_level_values("grader"), "group": grp,
                       "alias": idx.get_level_values("alias"), "value": means.fillna(0.0).to_numpy()})
    agg = df.groupby(["task", "grader", "group", "alias"], sort=True, observed=True)["value"].agg(["size", "mean"])
    return [{"task": t, "grader": g, "group": grp, "model": a, "n": int(r["size"]), "accuracy": round(float(r["mean"]), 6)}
            for (t, g, grp, a), r in agg.iterrows()]


def flip_table(frame: pd.DataFrame, pairs: list[tuple[str, str]] = PAIRS, limit: int = 5,
               means: pd.Series | None = None) -> list[dict[str, Any]]:
    """Items that flipped between two models (b wrong -> a right, and a wrong where b was right),
    judged on the first epoch. `means`: item_means of the frame, re-used when it has one epoch."""
    if frame.empty:
        return []
    single = frame["epoch"].nunique() == 1
    first = frame if single else frame[frame.epoch == frame.epoch.min()]
    val = _wide(means if means is not None and single else item_means(first))
    picked = []
    for a, b in pairs:
        if a not in val.columns or b not in val.columns:
            continue
        for direction, mask in (("wrong→right", (val[b] == 0) & (val[a] == 1)), ("right→wrong", (val[b] == 1) & (val[a] == 0))):
            picked += [(a, b, direction, key) for key in list(val.index[mask])[:limit]]
    # look the answers up only for the few picked items, not the whole frame
    sub = first[first["id"].isin({key[2] for *_, key in picked})]
    ans = sub.drop_duplicates(["task", "grader", "id", "alias"]).set_index(["task", "grader", "id", "alias"])
    out = [{"task": t, "grader": g, "a": a, "b": b, "id": item, "direction": direction,
            "target": ans.loc[(t, g, item, a), "target"],
            "answer_a": ans.loc[(t, g, item, a), "answer"], "answer_b": ans.loc[(t, g, item, b), "answer"]}
           for a, b, direction, (t, g, item) in picked]
    return sorted(out, key=lambda f: f["task"] != "heldout")  # stable: held-out items first


def unreliable_cells(agreement: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(task, judge grader) -> why its comparisons are left out of the tested family."""
    out = {}
    for r in agreement:
        if r["unreliable"]:
            k = "undefined" if r["kappa"] is None else f"{r['kappa']:.2f}"
            out[(r["task"], r["judge"])] = f"judge unreliable for this task (κ = {k} < {KAPPA_MIN} against {r['reference']})"
    return out


def analyse(frame: pd.DataFrame, rc: ReportConfig = ReportConfig(), students: list[str] = ["student"]) -> dict[str, Any]:
    """Every frame-derived section of summary.json (a run and `harness report` share this)."""
    pairs = pairs_for(rc, students)
    triples = [("teacher", "baseline", s) for s in students]
    means = item_means(frame) if not frame.empty else None
    agreement = judge_agreement(frame)
    excluded = {} if rc.include_unreliable else unreliable_cells(agreement)
    return {"alpha": rc.alpha, "scores": score_table(frame, means),
            "comparisons": comparison_table(frame, pairs, rc.alpha, rc.correction, means, excluded),
            "gap_closed": gap_table(frame, rc.alpha, triples, means), "categories": category_table(frame, means),
            "flips": flip_table(frame, pairs, rc.flips, means), "judge_agreement": agreement}
