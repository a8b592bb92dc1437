"""The analysis behind every report: scores, paired comparisons, gap closed, categories, flips.

Stats over the tidy frame (harness.runs.load_frame); no rendering here. Epochs are averaged per
item once (`per_item`) and every table reads that, so a large frame is grouped once, not per table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import RegressConfig, ReportConfig
from ..stats import adjust, gap_closed, mde, outcome, paired_interval, proportion_ci
from ._graders import degenerate_excluded, grader_checks
from ._judge import KAPPA_MIN, judge_agreement
from ._noise import noise_table

SCHEMA_VERSION = 1


def item_means(frame: pd.DataFrame) -> pd.Series:
    """Mean score per (task, grader, id, alias): repeated epochs of an item averaged first, so every
    table counts items, never samples. NaN = the item's answer could not be scored. Computed once
    per report and passed to every table (a 1M-row frame is grouped once, not per table); the keys
    become categoricals first, so the strings are hashed once per column, not once per grouping."""
    keys = ["task", "grader", "id", "alias"]
    cats = pd.DataFrame({k: pd.Categorical(frame[k].astype(str)) for k in keys})
    return cats.assign(value=frame["value"].to_numpy(float)).groupby(keys, sort=True, observed=True)["value"].mean()


def _wide(means: pd.Series) -> pd.DataFrame:
    """Items x aliases per (task, grader)."""
    return means.unstack("alias")


def _tally(means: pd.Series, levels: list[str], extra: tuple[str, np.ndarray, list[str]] | None = None
           ) -> list[tuple[tuple[str, ...], int, float, int]]:
    """(labels, n items, sum of scores with unscored = 0, n unscored) per combination of `levels` of
    `means` (+ `extra`: a name, a code per row and its labels), in sorted order. Counted with numpy
    over the index codes: a million items cost one bincount, not a regrouping."""
    idx = means.index
    codes = [idx.codes[idx.names.index(lv)] for lv in levels]
    labels = [list(idx.levels[idx.names.index(lv)]) for lv in levels]
    if extra is not None:
        codes.append(extra[1])
        labels.append(extra[2])
    shape = [len(lab) for lab in labels]
    key = np.ravel_multi_index(codes, shape)
    v = means.to_numpy(float)
    unscored = np.isnan(v)
    size = np.bincount(key, minlength=int(np.prod(shape)))
    total = np.bincount(key, weights=np.where(unscored, 0.0, v), minlength=size.size)
    nans = np.bincount(key, weights=unscored, minlength=size.size)
    out = []
    for flat in np.flatnonzero(size):
        where = np.unravel_index(flat, shape)
        out.append((tuple(str(labels[i][w]) for i, w in enumerate(where)), int(size[flat]), float(total[flat]), int(nans[flat])))
    return out


def score_table(frame: pd.DataFrame, means: pd.Series | None = None) -> list[dict[str, Any]]:
    """Accuracy per task x model x grader with a 95 % Wilson interval.

    Repeated epochs are averaged per item first, so n is the number of distinct items; items whose
    score is missing (NaN) are not silently dropped from n -- they count as wrong.
    """
    if frame.empty:
        return []
    means = item_means(frame) if means is None else means
    out = []
    for (task, alias, grader), n, k, unscored in _tally(means, ["task", "alias", "grader"]):
        lo, hi = proportion_ci(k, n)
        out.append({"task": task, "model": alias, "grader": grader, "n": n,
                    "accuracy": round(k / n, 6), "ci_low": round(lo, 6), "ci_high": round(hi, 6), "n_unscored": unscored})
    return out


# (a, b) pairs compared in every run that has these aliases: a - b
PAIRS = [("student", "baseline"), ("teacher", "student"), ("teacher", "baseline")]
ALPHA = ReportConfig.alpha
MARGIN = RegressConfig.margin  # the experiment's margin (regress.margin) when it sets none


def default_pairs(students: list[str]) -> list[tuple[str, str]]:
    """Each student against the baseline and the teacher, the teacher against the baseline, and
    every pair of students (a model grid). One student named `student`: PAIRS."""
    out = [p for s in students for p in ((s, "baseline"), ("teacher", s))] + [("teacher", "baseline")]
    return out + [(a, b) for i, a in enumerate(students) for b in students[i + 1:]]


def pairs_for(rc: ReportConfig, students: tuple[str, ...] | list[str] = ("student",), aliases: list[str] | None = None,
              ) -> list[tuple[str, str]]:
    """The default pairs plus the ones the experiment asks for (report.pairs), without repeats. An
    evaluation-only run (no student, no teacher) compares every pair of its models, each later
    model against each earlier one in config order (d = later - earlier: candidate - current)."""
    if not students and aliases and "teacher" not in aliases:
        out = [(aliases[j], aliases[i]) for i in range(len(aliases)) for j in range(i + 1, len(aliases))]
    else:
        out = default_pairs(list(students))
    for a, b in (tuple(p) for p in rc.pairs):
        if (a, b) not in out:
            out.append((a, b))
    return out


def model_order(aliases: list[str], students: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Report column order: teacher, baseline, the students, then any other model as configured."""
    first = ["teacher", "baseline", "student", *students]
    return sorted(aliases, key=lambda a: first.index(a) if a in first else len(first))


def _clusters(frame: pd.DataFrame) -> pd.Series:
    """(task, id) -> cluster label, only for tasks where some cluster holds several items (an item
    that shares no source with another is independent: nothing to correct for)."""
    if "cluster" not in frame.columns:
        return pd.Series(dtype=object)
    c = frame.drop_duplicates(["task", "id"])[["task", "id", "cluster"]].astype(str)
    shared = c.duplicated(["task", "cluster"], keep=False)
    tasks = set(c.loc[shared, "task"])
    return c[c["task"].isin(tasks)].set_index(["task", "id"])["cluster"]


def comparison_table(frame: pd.DataFrame, pairs: list[tuple[str, str]] = PAIRS, alpha: float = ALPHA,
                     correction: str = "holm", means: pd.Series | None = None,
                     excluded: dict[tuple[str, str], str] | None = None, margin: float = MARGIN) -> list[dict[str, Any]]:
    """Paired comparisons aligned by sample id, adjusted over every comparison of the report.

    Interval and test: harness.stats.paired_interval, the gate's method for the kind of score (a
    paired score interval for 0/1 scores, t with Hall's correction for means; cluster-robust where
    several items share a cluster), so the report, the sweep report and the gate print one answer.
    Each row gets an `outcome` (harness.stats.outcome) against `margin` (the gate's, regress.margin)
    and the items that would decide it (`required_n`). `excluded`: (task, grader) -> why its
    comparisons are shown but left out of the tested family (a judge that failed its validation):
    they get no adjusted p and are never called significant, and they do not enlarge the correction
    of the others."""
    rows: list[dict[str, Any]] = []
    if frame.empty:
        return rows
    excluded = excluded or {}
    clusters = _clusters(frame)
    clustered_tasks = set(clusters.index.get_level_values(0))
    means = item_means(frame) if means is None else means
    for (task, grader), g in _wide(means).groupby(level=[0, 1], sort=True):
        c = None
        if str(task) in clustered_tasks:
            c = clusters.reindex(pd.MultiIndex.from_arrays([g.index.get_level_values(0).astype(str),
                                                            g.index.get_level_values(2).astype(str)])).to_numpy()
        for a, b in pairs:
            if a not in g.columns or b not in g.columns:
                continue
            r = paired_interval(g[a].to_numpy(float), g[b].to_numpy(float), alpha, margin, clusters=c)
            row = {"task": task, "grader": grader, "a": a, "b": b, "n_pairs": r.n, "n_dropped": r.n_dropped,
                   "diff": round(r.diff, 6), "ci_low": round(r.ci_low, 6), "ci_high": round(r.ci_high, 6),
                   "p_value": r.p_value, "test": r.method, "mde": round(mde(r.n, alpha=alpha), 6),
                   "margin": margin, "required_n": r.required_n, "_mde_margin": r.mde}
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
        row["outcome"] = outcome(row["diff"], row["ci_low"], row["ci_high"], row["significant"], margin, row["n_pairs"],
                                 row.pop("_mde_margin"))
    return sorted(rows, key=lambda r: r["task"] != "heldout")  # stable: held-out task first


def gap_table(frame: pd.DataFrame, alpha: float = ALPHA,
              triples: tuple[tuple[str, str, str], ...] | list[tuple[str, str, str]] = (("teacher", "baseline", "student"),),
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
    groups = frame.drop_duplicates(["task", "id"]).astype({"task": str, "id": str, "group": str}).set_index(["task", "id"])["group"]
    idx = means.index
    keys = pd.MultiIndex.from_arrays([idx.get_level_values("task").astype(str), idx.get_level_values("id").astype(str)])
    group = pd.Categorical(groups.reindex(keys).fillna("").to_numpy())
    by_alias = _tally(means, ["task", "grader", "alias"], ("group", group.codes, list(group.categories)))
    out = [{"task": t, "grader": g, "group": grp, "model": a, "n": n, "accuracy": round(k / n, 6)}
           for (t, g, a, grp), n, k, _ in by_alias]
    return sorted(out, key=lambda r: (r["task"], r["grader"], r["group"], r["model"]))


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


def excluded_cells(agreement: list[dict[str, Any]], checks: list[dict[str, Any]], rc: ReportConfig) -> dict[tuple[str, str], str]:
    """(task, grader) -> why its comparisons are left out of the tested family: a judge that failed its
    validation, a degenerate grader (`judge_agreement` and `grader_checks` rows); none with
    report.include_unreliable. One rule for a run's report and the sweep's (report._sweep)."""
    return {} if rc.include_unreliable else {**unreliable_cells(agreement), **degenerate_excluded(checks)}


def analyse(frame: pd.DataFrame, rc: ReportConfig | None = None, students: tuple[str, ...] | list[str] = ("student",),
            aliases: list[str] | None = None, graders: dict[str, dict[str, Any]] | None = None,
            margin: float = MARGIN) -> dict[str, Any]:
    """Every frame-derived section of summary.json (a run and `harness report` share this).
    `aliases`: the run's models in config order (an evaluation-only run compares every pair);
    `graders`: the run's grader configs (plain dicts), for the grader checks (report._graders).
    Cells of an unreliable judge or a degenerate grader are left out of the tested family.
    `margin`: the experiment's margin (regress.margin), which each comparison's outcome is read against."""
    rc = rc or ReportConfig()
    pairs = pairs_for(rc, students, aliases)
    triples = [("teacher", "baseline", s) for s in students]
    means = item_means(frame) if not frame.empty else None
    agreement = judge_agreement(frame)
    checks = grader_checks(frame, graders) if not frame.empty else []
    excluded = excluded_cells(agreement, checks, rc)
    return {"alpha": rc.alpha, "scores": score_table(frame, means), "grader_checks": checks,
            "comparisons": comparison_table(frame, pairs, rc.alpha, rc.correction, means, excluded, margin),
            "gap_closed": gap_table(frame, rc.alpha, triples, means), "categories": category_table(frame, means),
            "flips": flip_table(frame, pairs, rc.flips, means), "judge_agreement": agreement,
            "noise": noise_table(frame, means)}
