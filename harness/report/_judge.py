"""Judge validation: how far the LLM judge agrees with exact match on the same samples.

A judge is only worth its verdicts if it agrees with a check we trust. On every run that has a
judge and its reference match grader, the same samples (all models, aligned by model x item x
epoch) give a 2x2 confusion matrix, raw agreement, Cohen's kappa (statsmodels), McNemar on the
discordant cells (is the judge systematically more lenient?) and the parse-failure rate. Below
kappa 0.6 the report says the judge is unreliable for the task -- for the embedded 135M model,
that is the honest outcome.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KAPPA_MIN = 0.6


def agreement(judge: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """judge, ref: 0/1 arrays of the same samples (judge NaN = verdict not parsed)."""
    from scipy import stats
    from statsmodels.stats.inter_rater import cohens_kappa

    failed = int(np.isnan(judge).sum())
    ok = ~np.isnan(judge) & ~np.isnan(ref)
    j, r = judge[ok] >= 0.5, ref[ok] >= 0.5
    # rows: judge says correct / wrong; columns: reference says correct / wrong
    table = [[int((j & r).sum()), int((j & ~r).sum())], [int((~j & r).sum()), int((~j & ~r).sum())]]
    n = int(ok.sum())
    kappa = None
    if n and len({*j.tolist(), *r.tolist()}) > 1:
        with warnings.catch_warnings():  # its SE is NaN for degenerate tables; we use only kappa
            warnings.simplefilter("ignore")
            k = float(cohens_kappa(np.array(table)).kappa)
        kappa = None if np.isnan(k) else k
    b, c = table[0][1], table[1][0]
    p = float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    # agreement is 0 when nothing could be compared (n = 0): the contract wants a number
    return {"n": n, "agreement": round((table[0][0] + table[1][1]) / n, 6) if n else 0.0,
            "kappa": None if kappa is None else round(kappa, 6), "parse_failures": failed,
            "parse_failure_rate": round(failed / judge.size, 6) if judge.size else 0.0,
            "confusion": table, "mcnemar_p": p, "unreliable": kappa is None or kappa < KAPPA_MIN}


def judge_agreement(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per task x judge grader: the judge against its reference match grader."""
    if frame.empty or "judge" not in frame.columns:
        return []
    judged = frame[frame["judge"] != ""]
    out = []
    for (task, grader, label), g in judged.groupby(["task", "grader", "judge"], sort=True):
        judge_model, _, reference = label.rpartition(" vs ")
        ref = frame[(frame["task"] == task) & (frame["grader"] == reference)]
        keys = ["alias", "id", "epoch"]
        both = g[keys + ["value"]].merge(ref[keys + ["value"]], on=keys, how="left", suffixes=("_judge", "_ref"))
        row = agreement(both["value_judge"].to_numpy(float), both["value_ref"].to_numpy(float))
        out.append({"task": task, "judge": grader, "judge_model": judge_model, "reference": reference, **row})
    return sorted(out, key=lambda r: r["task"] != "heldout")


def unreliable_sentence(row: dict[str, Any]) -> str:
    k = "undefined" if row["kappa"] is None else f"{row['kappa']:.2f}"
    return (f"judge unreliable for this task — do not use its verdicts (κ = {k} against {row['reference']}, "
            f"below {KAPPA_MIN})")


def position_consistency(verdicts: dict[str, dict[str, str | None]], a: str, b: str) -> dict[str, Any]:
    """verdicts: item -> {"ab": "A"|"B"|"tie"|None, "ba": ...}; in order "ab" answer A is a's, in
    "ba" answer A is b's. A verdict counts only when both orders name the same winner (or tie)."""
    from scipy import stats

    parsed = consistent = a_wins = b_wins = ties = 0
    for d in verdicts.values():
        ab, ba = d.get("ab"), d.get("ba")
        if ab is None or ba is None:
            continue
        parsed += 1
        w1 = {"A": a, "B": b, "tie": "tie"}[ab]
        w2 = {"A": b, "B": a, "tie": "tie"}[ba]
        if w1 == w2:
            consistent += 1
            a_wins += w1 == a
            b_wins += w1 == b
            ties += w1 == "tie"
    p = float(stats.binomtest(a_wins, a_wins + b_wins, 0.5).pvalue) if a_wins + b_wins else 1.0
    return {"n_items": len(verdicts), "n_parsed": parsed, "consistent": consistent,
            "consistency_rate": round(consistent / parsed, 6) if parsed else None,
            "a_wins": a_wins, "b_wins": b_wins, "ties": ties, "p_value": p, "test": "sign test (exact binomial), ties excluded"}


def pairwise_table(judge_dir: Path) -> list[dict[str, Any]]:
    """From the pairwise judge logs: per task x pair, the position-consistency rate and the wins
    among order-consistent verdicts, with an exact sign test (ties excluded)."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    if not judge_dir.is_dir():
        return []
    rows: list[tuple[str, str, str, str, str, str, str, str | None]] = []
    for info in list_eval_logs(str(judge_dir), recursive=True):
        if "/.superseded/" in info.name:
            continue
        log = read_eval_log(info)
        if log.status != "success":
            continue
        alias = str((log.eval.metadata or {}).get("alias", ""))
        if not alias.startswith("pairwise:"):  # a judge grader's requests (judge/<grader>/): not pairs
            continue
        grader = alias.removeprefix("pairwise:")
        for s in log.samples or []:
            m = s.metadata or {}
            sc = next(iter((s.scores or {}).values()), None)
            v = sc.value if sc is not None and sc.value in ("A", "B", "tie") else None
            rows.append((grader, log.eval.model, m["task"], m["a"], m["b"], str(m["item"]), m["order"], v))
    out = []
    df = pd.DataFrame(rows, columns=["grader", "judge_model", "task", "a", "b", "item", "order", "verdict"])
    for (grader, judge_model, task, a, b), g in df.groupby(["grader", "judge_model", "task", "a", "b"], sort=True):
        verdicts: dict[str, dict[str, str | None]] = {}
        for item, order, v in zip(g["item"], g["order"], g["verdict"]):
            verdicts.setdefault(item, {})[order] = v
        out.append({"task": task, "judge": grader, "judge_model": judge_model, "a": a, "b": b,
                    **position_consistency(verdicts, a, b)})
    return sorted(out, key=lambda r: r["task"] != "heldout")


def read_gates(root: Path) -> list[dict[str, Any]]:
    """summary.json's `judge_gate`: every judge's calibration record (`gate.json`, written by
    harness.evaluate._calibrate) under a run's judge/ dir, in path order."""
    import json

    out = []
    for p in sorted(root.rglob("gate.json")) if root.is_dir() else []:
        if "/.superseded/" in p.as_posix():
            continue
        try:
            out.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def gate_sentence(g: dict[str, Any]) -> str:
    """The report's line for a judge its calibration stopped."""
    last = g["looks"][-1] if g.get("looks") else {}
    est = "" if last.get("estimate") is None else f"{last['estimate']:.2f}, "
    return (f"judge '{g['grader']}' stopped after {g['judged']} of {g['units']} {'items' if g['kind'] == 'pairwise' else 'samples'}: "
            f"{g['statistic']} {est}one-sided {100 * (1 - g['alpha'] / g['max_looks']):.2f} % upper bound {last.get('high', 0):.2f} "
            f"is below {g['threshold']} — unreliable, its verdicts cover the judged {'items' if g['kind'] == 'pairwise' else 'samples'} "
            f"only; {g['calls_saved']} judge calls saved")


def gate_text(g: dict[str, Any]) -> str:
    """One sentence per judge on its calibration (summary.json's judge_gate row)."""
    if g["decision"] == "stopped":
        return gate_sentence(g)
    what = "items" if g["kind"] == "pairwise" else "samples"
    if not g.get("looks"):
        why = "calibration off" if not g.get("enabled") else "the calibration sample covers every one"
        return f"judge '{g['grader']}' judged all {g['units']} {what} ({why}); {g['calls']} calls"
    last = g["looks"][-1]
    est = "—" if last.get("estimate") is None else f"{last['estimate']:.2f}"
    return (f"judge '{g['grader']}' checked on {last['judged']} {what} first: {g['statistic']} {est}, one-sided "
            f"{100 * (1 - g['alpha'] / g['max_looks']):.2f} % bounds [{last['low']:.2f}, {last['high']:.2f}] vs {g['threshold']} — "
            f"{'reliable' if g['decision'] == 'reliable' else 'undecided after ' + str(len(g['looks'])) + ' looks'}; "
            f"judged all {g['units']} {what} ({g['calls']} calls)")


LABEL_COLUMNS = ("task", "id", "model", "label")


def read_labels(path: str | Path) -> pd.DataFrame:
    """Human labels for judge calibration: a CSV with columns task,id,model,label (label 0/1;
    model = a model alias). A bad row fails as `file:line: what is wrong`."""
    import csv

    from ..errors import HarnessError

    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"{p}: calibration file not found (graders.<judge>.calibration)")
    rows = []
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise HarnessError(f"{p}:1: missing column(s) {', '.join(missing)}; the header must have {','.join(LABEL_COLUMNS)}")
        for line, r in enumerate(reader, start=2):
            if r["label"] not in ("0", "1"):
                raise HarnessError(f"{p}:{line}: label must be 0 or 1, got '{r['label']}'")
            if not r["id"] or not r["model"] or not r["task"]:
                raise HarnessError(f"{p}:{line}: task, id and model must not be empty")
            rows.append((r["task"], r["id"], r["model"], float(r["label"])))
    return pd.DataFrame(rows, columns=["task", "id", "alias", "label"])


def calibration_table(frame: pd.DataFrame, files: dict[str, str]) -> list[dict[str, Any]]:
    """Judge vs human labels, computed exactly as the judge-vs-exact agreement."""
    out = []
    for grader, path in files.items():
        labels = read_labels(path)
        j = frame[frame["grader"] == grader].groupby(["task", "id", "alias"])["value"].mean().reset_index()
        both = labels.merge(j, on=["task", "id", "alias"], how="left")
        unmatched = int(both["value"].isna().sum())
        row = agreement(both["value"].to_numpy(float), both["label"].to_numpy(float))
        out.append({"judge": grader, "reference": "human labels", "file": str(path), "labels": len(labels),
                    "unmatched_or_unparsed": unmatched, **row})
    return out
