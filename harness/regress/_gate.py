"""The regression gate: is a candidate model at least as good as the current one, within a margin?

Reads finished run dirs only (harness.runs), never calls a model. Per gated cell (task x grader):
the paired per-item difference d = candidate - current, epochs averaged within each item first,
clusters of items (paraphrases of one source) kept together; a one-sided (1 - alpha) interval of
mean d from harness.stats.gate_cell decides

- pass (non-inferior): lower bound > -margin -- the overall pass is an intersection-union test
  (every gated cell must pass), which needs no multiplicity adjustment;
- regression: upper bound < -margin (strict: < 0) -- claims of regression are Holm-adjusted over
  the gated cells, because any one of them fails the gate;
- inconclusive otherwise: never "no difference"; the cell says how many items would decide it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cache import read_jsonl
from ..config import EvalConfig, RegressConfig, grader_fingerprint
from ..errors import HarnessError
from ..report import choice_contrasts, degenerate_cells, excluded_reason
from ..runs import Source, is_run_dir, open_source
from ..sources import check_alike
from ..stats import adjust, gate_cell, gate_outcome
from ._growing import log_plan, open_growing
from ._render import headline
from ._sequential import ORDER_FILE, Status, apply, batch_items, check_sequential, read_plan, scan

SCHEMA_VERSION = 1
EXIT = {"pass": 0, "regression": 3, "inconclusive": 4}
INCONCLUSIVE_POLICIES = ("fail", "pass")


@dataclass(frozen=True)
class RunRef:
    """A model inside a finished run, `RUN_DIR[:alias]`; or a foreign evaluation, `LOG[:model]` (an
    inspect log or log dir, an lm-eval output), whose one model needs no alias."""

    dir: Path
    alias: str
    explicit: bool = False  # the alias was given (`:alias`), not the default

    def __str__(self) -> str:
        return f"{self.dir}:{self.alias}"


def parse_ref(text: str, default_alias: str, flag: str) -> RunRef:
    """`PATH[:alias]` -> RunRef. The alias is what follows the last ':' when the whole text is
    not itself an existing path (a dir name may contain ':')."""
    path, alias, explicit = Path(text), default_alias, False
    if not path.exists() and ":" in text:
        head, _, tail = text.rpartition(":")
        path, alias, explicit = Path(head), tail or default_alias, bool(tail)
    if not path.exists():
        raise HarnessError(f"{flag}: {path}: no such run dir or log; pass RUN_DIR[:alias] of a finished `harness run`, an "
                           "inspect log (.eval/.json) or log dir, or an lm-eval --output_path")
    return RunRef(path, alias, explicit)


def check_settings(s: RegressConfig, where: str = "regress") -> None:
    if not 0 <= s.margin < 1:
        raise HarnessError(f"{where}.margin must be in [0, 1) (a drop in accuracy, 0.05 = 5 pp), got {s.margin}")
    if not 0 < s.alpha < 1:
        raise HarnessError(f"{where}.alpha must be in (0, 1), got {s.alpha}")
    if s.inconclusive not in INCONCLUSIVE_POLICIES:
        raise HarnessError(f"{where}.inconclusive: '{s.inconclusive}' is not one of {', '.join(INCONCLUSIVE_POLICIES)}")
    if s.sequential:
        check_sequential(s, where)


@dataclass
class _Side:
    ref: RunRef
    source: Source
    frame: pd.DataFrame  # this alias's rows only
    items: pd.DataFrame  # task, id, question, answer of the run's evaluation items

    @property
    def summary(self) -> dict[str, Any]:
        return self.source.summary

    @property
    def model(self) -> str:
        return str((self.summary.get("models") or {}).get(self.ref.alias, ""))

    @property
    def where(self) -> Path:
        """The file that holds this side's items, for messages."""
        return self.ref.dir if self.source.foreign else self.ref.dir / "data" / "eval.jsonl"


def _load(ref: RunRef, flag: str, sources: dict[Path, Source], growing: bool = False) -> _Side:
    key = ref.dir.resolve()
    if key not in sources:
        # --sequential: an inspect log may still be being written (read as it is now)
        sources[key] = (growing and open_growing(ref.dir)) or open_source(ref.dir)
    src = sources[key]
    models = src.summary.get("models") or {}
    if src.foreign and not ref.explicit and len(models) == 1:
        ref = replace(ref, alias=next(iter(models)))  # a log of one model: that model, whatever the default alias
    if ref.alias not in models:
        what = "model" if src.foreign else "alias"
        raise HarnessError(f"{flag}: {ref.dir} has no {what} '{ref.alias}'; its {what}s: {', '.join(models) or 'none'} "
                           f"(pass {ref.dir}:<{what}>)")
    frame = src.frame[src.frame["alias"] == ref.alias]
    if frame.empty:
        raise HarnessError(f"{flag}: {ref.dir / 'logs' / ref.alias}: no finished inspect logs; re-run the same `harness run` "
                           "command to finish that run")
    items = src.items[src.items["task"].isin(set(frame["task"]))] if src.foreign else _items(ref.dir, frame)
    return _Side(ref, src, frame, items)


def _items(run_dir: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The evaluation items' inputs and targets (data/eval.jsonl), or the targets the logs hold (an
    inspect task of eval.tasks, whose items are its own dataset's, not in data/eval.jsonl)."""
    from_logs = frame.drop_duplicates(["task", "id"])[["task", "id", "target"]].rename(columns={"target": "answer"}).assign(question="")
    f = run_dir / "data" / "eval.jsonl"
    if not f.is_file():
        return from_logs
    # a multiple-choice item is its question with its choices (in file order: a shuffled run shows the same item)
    own = pd.DataFrame([(r["task"], str(r["id"]), r["question"] + "".join(f"\n{c}" for c in r.get("choices") or ()), r["answer"])
                        for r in read_jsonl(f)], columns=["task", "id", "question", "answer"])
    other = from_logs[~from_logs["task"].isin(set(own["task"]))]
    return pd.concat([own, other[["task", "id", "question", "answer"]]], ignore_index=True) if len(other) else own


def _comparable(base: _Side, cand: _Side, s: RegressConfig) -> tuple[set[tuple[str, str]], dict[str, int], list[str]]:
    """The (task, id) items to compare, the dropped counts, and warnings. Raises (exit 2) when the
    two runs were not evaluated alike: different items (unless allow_subset), grader definitions,
    or prompts."""
    warnings: list[str] = []
    same_run = base.ref.dir.resolve() == cand.ref.dir.resolve()
    tb, tc = set(base.frame["task"]), set(cand.frame["task"])
    if not tb & tc:
        raise HarnessError(f"{cand.ref.dir}: a log of task {', '.join(map(repr, sorted(tc)))}, but the baseline {base.ref.dir} is of "
                           f"task {', '.join(map(repr, sorted(tb)))}; gate two evaluations of the same task")
    if base.source.foreign or cand.source.foreign:
        warnings += _foreign_notes(base, cand)
    elif not same_run:
        cb, cc = base.summary.get("config") or {}, cand.summary.get("config") or {}
        for key in ("system", "prompt", "context_prompt", "choices_prompt"):
            # a run stored before a key existed ran with its default
            default = getattr(EvalConfig, key, None)
            vb, vc = (cb.get("eval") or {}).get(key, default), (cc.get("eval") or {}).get(key, default)
            if vb != vc:
                raise HarnessError(f"eval.{key} differs between {base.ref.dir} ({vb!r}) and {cand.ref.dir} ({vc!r}); "
                                   "the models saw different prompts, so the gate would measure the prompt — re-run one of them")
        sb, sc = (cb.get("eval") or {}).get("shuffle_choices"), (cc.get("eval") or {}).get("shuffle_choices")
        if sb != sc:
            warnings.append(f"multiple-choice items were shown in another order: eval.shuffle_choices = {sb} in the baseline's run, "
                            f"{sc} in the candidate's (a robustness check: same items, same golds, choices moved)")
        fb, fc = _fingerprints(base.summary), _fingerprints(cand.summary)
        for name in sorted(set(fb) & set(fc)):
            if fb[name] != fc[name]:
                raise HarnessError(f"graders.{name} differs between {base.ref.dir} and {cand.ref.dir} (extraction, rubric, "
                                   "judge model or its settings); scores from different graders cannot be compared — "
                                   "re-run one of them with the other's grader")
    # a run's items file holds the question (and items of tasks it did not evaluate), a log the rendered
    # input (an lm-eval output the doc's hash): across kinds an item is its task, id and target, of an evaluated task
    alike = base.source.kind == cand.source.kind

    def keyed(side: _Side) -> dict[tuple[str, str], tuple[str, str]]:
        its = side.items if alike else side.items[side.items["task"].isin(set(side.frame["task"]))]
        return {(t, i): (q if alike else "", a) for t, i, q, a in its[["task", "id", "question", "answer"]].itertuples(index=False)}

    kb, kc = keyed(base), keyed(cand)
    changed = {k for k in set(kb) & set(kc) if kb[k] != kc[k]}
    shared = (set(kb) & set(kc)) - changed
    only_b, only_c = len(set(kb) - set(kc)) + len(changed), len(set(kc) - set(kb)) + len(changed)
    if (only_b or only_c) and not s.allow_subset:
        raise HarnessError(f"{cand.where}: evaluation items differ from {base.where} "
                           f"({only_b} of the baseline's and {only_c} of the candidate's items are not in the other run, or "
                           "have another question or answer); gate runs on the same items, or pass --allow-subset to "
                           "compare the items they share")
    if not shared:
        raise HarnessError(f"{base.ref.dir} and {cand.ref.dir} share no evaluation item; nothing to compare")
    if only_b or only_c:
        warnings.append(f"--allow-subset: compared on the {len(shared)} items both runs share; dropped {only_b} of the "
                        f"baseline's and {only_c} of the candidate's")
    return shared, {"baseline": only_b, "candidate": only_c}, warnings


def _foreign_notes(base: _Side, cand: _Side) -> list[str]:
    """A foreign log records neither the harness's prompts nor its grader definitions: the two sides
    are compared by item (id, input, target) and score name. Different task arguments are said."""
    if base.source.kind == cand.source.kind:  # another task version, prompt or target: refused (harness.sources)
        check_alike(*((side.summary.get("source") or {}).get("fingerprints") or {} for side in (base, cand)), base.where, cand.where)
    notes = []
    for task in sorted(set(base.frame["task"]) & set(cand.frame["task"])):
        ab = ((base.summary.get("source") or {}).get("task_args") or {}).get(task)
        ac = ((cand.summary.get("source") or {}).get("task_args") or {}).get(task)
        if ab is not None and ac is not None and ab != ac:
            notes.append(f"{task}: the task arguments differ (baseline {ab}, candidate {ac}); the gate measures the model "
                         "and those arguments together")
    return notes


def _fingerprints(summary: dict[str, Any]) -> dict[str, str]:
    """grader name -> fingerprint: recorded in summary.json, or computed from its config (older runs)."""
    if summary.get("grader_fingerprints"):
        return dict(summary["grader_fingerprints"])
    c = summary.get("config") or {}
    return {n: grader_fingerprint(g, c.get("eval") or {}) for n, g in (c.get("graders") or {}).items()}


def _degenerate(base: _Side, cand: _Side, keep: set[tuple[str, str]], s: RegressConfig) -> dict[tuple[str, str], str]:
    """(task, grader) -> why it is not gated: cells whose verdicts the gold alone fixes, and the
    contrasts of a multiple-choice task (every grader but its choice grader) -- flagged in either
    run's report, or found on the two gated models' answers to the compared items
    (harness.report.degenerate_cells, choice_contrasts: the same rule for a stored run and a foreign
    log). A contrast named in regress.graders is gated: the user asked for it."""
    out: dict[tuple[str, str], str] = {}
    for side in (base, cand):
        for c in side.summary.get("grader_checks") or []:
            if c.get("excluded"):  # a contrast is a rule, not a finding of that run: said without the run
                why = excluded_reason(c)
                out.setdefault((c["task"], c["grader"]), why if why.startswith("contrast") else f"{why} in {side.ref.dir}'s report")
    both = pd.concat([base.frame.assign(alias="baseline"), cand.frame.assign(alias="candidate")], ignore_index=True)
    both = both[[k in keep for k in zip(both["task"], both["id"])]]
    kinds = {n: g.get("kind", "match") for side in (base, cand) for n, g in ((side.summary.get("config") or {}).get("graders") or {}).items()}
    for c in degenerate_cells(both, kinds):
        out.setdefault((c["task"], c["grader"]), "grader degenerate: verdicts fixed by the gold alone on the compared answers of both models")
    for c in choice_contrasts(both, kinds):
        out.setdefault((c["task"], c["grader"]), excluded_reason(c))
    return {k: why for k, why in out.items() if not (why.startswith("contrast") and k[1] in s.graders)}


def _judge_ok(summary: dict[str, Any], task: str, grader: str) -> bool | None:
    """True/False: the judge grader passed/failed its validation on `task` in this run; None: not a judge."""
    rows = [r for r in summary.get("judge_agreement") or [] if r["task"] == task and r["judge"] == grader]
    if not rows:
        kind = (((summary.get("config") or {}).get("graders") or {}).get(grader) or {}).get("kind")
        return False if kind == "judge" else None
    return not rows[0]["unreliable"]


def _per_item(side: _Side, keep: set[tuple[str, str]]) -> pd.DataFrame:
    """task, grader, id -> mean score over epochs, correct epochs, epochs, cluster, first answer."""
    f = side.frame
    f = f[[k in keep for k in zip(f["task"], f["id"])]]
    g = f.sort_values("epoch").groupby(["task", "grader", "id"], sort=True)
    return pd.DataFrame({"mean": g["value"].mean(), "correct": g["value"].sum(),  # NaN-skipping, all-NaN -> 0: np.nansum per group, vectorised
                         "epochs": g["value"].size(), "cluster": g["cluster"].first(), "answer": g["answer"].first(),
                         "target": g["target"].first()})


def gate(baseline: RunRef, candidate: RunRef, s: RegressConfig, flips: int = 10) -> dict[str, Any]:
    """The gate's result (regress.json's content); raises HarnessError on bad input."""
    check_settings(s)
    if baseline.dir.resolve() == candidate.dir.resolve() and baseline.alias == candidate.alias:
        raise HarnessError(f"--baseline and --candidate are the same model ({baseline}); name two models")
    sources: dict[Path, Source] = {}
    base = _load(baseline, "--baseline", sources, s.sequential)
    cand = _load(candidate, "--candidate", sources, s.sequential)
    on_logs = s.sequential and (base.source.foreign or cand.source.foreign)
    # over logs still being written the item sets differ until both finish: the plan checks the items
    shared, dropped, warnings = _comparable(base, cand, replace(s, allow_subset=True) if on_logs else s)
    if on_logs and not s.allow_subset:
        warnings = [w for w in warnings if not w.startswith("--allow-subset")]
        dropped = {"baseline": 0, "candidate": 0}
    seq = _sequential(base, cand, s, warnings)
    if seq:  # only the batches up to the stop: the verdict is read there
        shared &= batch_items(seq[1]["batches"], seq[0].done)
    pb, pc = _per_item(base, shared), _per_item(cand, shared)
    keys = sorted(set(pb.index.droplevel(2)) & set(pc.index.droplevel(2)), key=lambda k: (k[0] != "heldout", k))
    for name, wanted in (("tasks", s.tasks), ("graders", s.graders)):
        have = {k[0 if name == "tasks" else 1] for k in keys}
        unknown = sorted(set(wanted) - have)
        if unknown:
            raise HarnessError(f"regress.{name}: {', '.join(unknown)} not in both runs; available: {', '.join(sorted(have))}")
    cells, flip_rows = [], []
    degenerate = _degenerate(base, cand, shared, s)
    for task, grader in keys:
        row, fl = _cell(task, grader, pb.loc[(task, grader)], pc.loc[(task, grader)], base, cand, s, flips)
        if row["gated"] and (task, grader) in degenerate:
            row.update(gated=False, skipped=degenerate[(task, grader)])
        if row["skipped"] and row["skipped"].startswith(("judge", "grader degenerate", "contrast")):
            warnings.append(f"{task} · {grader}: shown, not gated: {row['skipped']}")
        cells.append(row)
        flip_rows += fl
    verdict, code, n_gated = _decide(cells, s)
    flip_rows.sort(key=lambda f: (f["direction"] != "right→wrong", f["task"] != "heldout", -abs(f["change"])))
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "regress",
        "verdict": verdict,
        "exit_code": code,
        "baseline": _side_info(base),
        "candidate": _side_info(cand),
        "settings": {k: v for k, v in asdict(s).items() if k not in ("enabled", "baseline", "candidate")},
        "items": {"n_compared": len(shared), "dropped": dropped},
        "correction": f"holm over {n_gated} regression claims (pass: intersection-union, no adjustment)",
        "cells": cells,
        "flips": flip_rows,
        "warnings": warnings,
    }
    if seq:
        apply(result, seq[0], s, seq[1])
    for r in cells:  # the outcome vocabulary every report shares (docs/statistics.md), read from the final verdict
        r["outcome"] = gate_outcome(r["verdict"], r["lower"], r["upper"], s.margin, r["n"], r["mde"])
    result["headline"] = headline(result)
    return result


def _sequential(base: _Side, cand: _Side, s: RegressConfig, warnings: list[str]) -> tuple[Status, dict[str, Any]] | None:
    """A run evaluated sequentially (regress.sequential) is gated with its confidence sequences, read
    at the batch where it stopped: after optional stopping a fixed-n interval no longer holds."""
    same_run = base.ref.dir.resolve() == cand.ref.dir.resolve()
    doc = read_plan(base.ref.dir) if same_run and is_run_dir(base.ref.dir) else None
    if s.sequential and doc is None and (base.source.foreign or cand.source.foreign):
        return _sequential_logs(base, cand, s)
    if not same_run:
        for side in (base, cand):
            if (side.ref.dir / ORDER_FILE).is_file():
                warnings.append(f"{side.ref.dir} was evaluated sequentially and stopped when its own gate was decided: a "
                                "fixed-n gate over its items against another run is only approximate")
    if doc is None:
        if s.sequential:
            raise HarnessError(f"regress.sequential: {base.ref.dir / ORDER_FILE} not found; the sequential gate reads one run "
                               "evaluated with regress.sequential=true (both models in the same run dir)")
        return None
    if not s.sequential:
        warnings.append(f"{base.ref.dir} was evaluated sequentially (regress.sequential): gated with its anytime-valid "
                        "confidence sequences at the batch where it stopped")

    degenerate = _degenerate(base, cand, set(zip(base.frame["task"], base.frame["id"])) | set(zip(cand.frame["task"], cand.frame["id"])), s)

    def gated(task: str, grader: str) -> bool:
        return ((not s.tasks or task in s.tasks) and (not s.graders or grader in s.graders) and (task, grader) not in degenerate
                and False not in (_judge_ok(base.summary, task, grader), _judge_ok(cand.summary, task, grader)))

    frame = pd.concat([base.frame, cand.frame], ignore_index=True)
    return scan(frame, doc["batches"], replace(s, baseline=base.ref.alias, candidate=cand.ref.alias), gated), doc


def _sequential_logs(base: _Side, cand: _Side, s: RegressConfig) -> tuple[Status, dict[str, Any]]:
    """--sequential over logs (harness.regress._growing): the in-run gate's plan over the items the
    candidate's log will hold, read up to the batches both logs hold whole, with the same rule."""
    sl = replace(s, baseline="__baseline__", candidate="__candidate__")  # the two logs may name the same model
    doc, frame = log_plan(base.source, base.frame, cand.source, cand.frame, sl, str(cand.ref.dir))
    degenerate = _degenerate(base, cand, set(zip(frame["task"], frame["id"])), s)

    def gated(task: str, grader: str) -> bool:
        return (not s.tasks or task in s.tasks) and (not s.graders or grader in s.graders) and (task, grader) not in degenerate

    return scan(frame, doc["batches"], sl, gated), doc


def _cell(task: str, grader: str, b: pd.DataFrame, c: pd.DataFrame, base: _Side, cand: _Side, s: RegressConfig,
          flips: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One task x grader: the paired statistics on the items both sides answered, whether it is
    gated, and its flip list."""
    ids = sorted(set(b.index) & set(c.index))
    b, c = b.loc[ids], c.loc[ids]
    row: dict[str, Any] = {"task": task, "grader": grader, "gated": True, "skipped": None,
                           "baseline_accuracy": round(float(np.nanmean(b["mean"])), 6),
                           "candidate_accuracy": round(float(np.nanmean(c["mean"])), 6),
                           "epochs": int(max(b["epochs"].max(), c["epochs"].max()))}
    if (s.tasks and task not in s.tasks) or (s.graders and grader not in s.graders):
        row.update(gated=False, skipped="not gated (regress.tasks / regress.graders)")
    ok = [_judge_ok(x.summary, task, grader) for x in (base, cand)]
    if row["gated"] and False in ok:
        row.update(gated=False, skipped="judge failed its validation (κ < 0.6 against its reference grader) in "
                   + " and ".join(n for n, v in zip(("the baseline's run", "the candidate's run"), ok) if v is False))
    r = gate_cell(c["mean"].to_numpy(float), b["mean"].to_numpy(float), s.margin, s.alpha, s.strict,
                  clusters=b["cluster"].astype(str).to_numpy())
    row.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(r).items()})
    row["cell_verdict_unadjusted"] = row.pop("verdict")
    return row, _flips(task, grader, b, c, flips)


def _decide(cells: list[dict[str, Any]], s: RegressConfig) -> tuple[str, int, int]:
    """Cell verdicts and the overall one: regression claims Holm-adjusted over the gated cells;
    pass only if every gated cell passes (intersection-union). Returns (verdict, exit code, n gated)."""
    gated = [r for r in cells if r["gated"]]
    if not gated:
        raise HarnessError("regress: no cell left to gate (every task x grader is filtered out, has an unreliable judge or a degenerate "
                           "grader, or is a contrast of a multiple-choice task); "
                           "check regress.tasks / regress.graders")
    for r, p in zip(gated, adjust([r["p_regression"] for r in gated], "holm")):
        r["p_regression_adjusted"] = p
    for r in cells:
        if not r["gated"]:
            r["verdict"] = "not gated"
        elif r["p_regression_adjusted"] < s.alpha:
            r["verdict"] = "regression"
        elif r["lower"] > -s.margin:
            r["verdict"] = "pass"
        else:
            r["verdict"] = "inconclusive"
    verdicts = {r["verdict"] for r in gated}
    verdict = "regression" if "regression" in verdicts else "pass" if verdicts == {"pass"} else "inconclusive"
    code = 0 if verdict == "inconclusive" and s.inconclusive == "pass" else EXIT[verdict]
    return verdict, code, len(gated)


def _side_info(side: _Side) -> dict[str, Any]:
    return {"run_dir": str(side.ref.dir), "alias": side.ref.alias, "model": side.model,
            "experiment": side.summary.get("experiment"), "run": side.summary.get("run"), "source": side.source.kind}


def _flips(task: str, grader: str, b: pd.DataFrame, c: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """Items whose score changed, per direction, largest change first, with per-item epoch rates.
    They explain a verdict; they never decide it."""
    change = c["mean"] - b["mean"]
    out = []
    for direction, mask in (("right→wrong", change < 0), ("wrong→right", change > 0)):
        ids = change[mask].abs().sort_values(ascending=False, kind="stable").index[:limit]
        for i in ids:
            out.append({"task": task, "grader": grader, "id": str(i), "direction": direction, "change": round(float(change[i]), 6),
                        "baseline": f"{b.at[i, 'correct']:g}/{b.at[i, 'epochs']}", "candidate": f"{c.at[i, 'correct']:g}/{c.at[i, 'epochs']}",
                        "target": str(b.at[i, "target"]), "answer_baseline": str(b.at[i, "answer"]),
                        "answer_candidate": str(c.at[i, "answer"])})
    counts = {"right→wrong": int((change < 0).sum()), "wrong→right": int((change > 0).sum())}
    for f in out:
        f["n_direction"] = counts[f["direction"]]
    return out
