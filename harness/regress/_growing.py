"""The sequential gate over evaluations the harness did not run (`harness regress --sequential`):
inspect logs still being written, re-read as samples arrive.

An inspect log records at its start every item it will evaluate (`eval.dataset.sample_ids`), so the
order is planned exactly as `harness run regress.sequential=true` plans it (`_sequential.plan`: the
items shuffled with the seed, batches of `batch` items, up to `max_items`), before any score is
seen, and the same anytime-valid rule reads it (`_sequential.scan`, the in-run gate's `status`
after each batch). A batch counts once both logs hold every one of its items; a look at a later time
only adds batches. Looking again is therefore safe: the confidence sequences hold at every batch at
once, and the stop found is the one the in-run gate finds on the same paired scores.

The unit is an item (its epochs averaged; in a log still being written an item counts once all its
epochs are in, so its mean never changes at a later look): a log's own `cluster` metadata is not
known for items not yet evaluated, so it cannot shape a plan made before them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..config import RegressConfig
from ..errors import HarnessError
from ..runs import COLUMNS, Source
from ..sources import ITEM_COLUMNS, kind_of, log_items, log_rows

GROWING = ("started", "success")


def open_growing(path: Path) -> Source | None:
    """An inspect log file read as it is now, finished or still being written (status "started");
    None for anything else (run dirs, log dirs, lm-eval outputs: read finished, by harness.runs)."""
    if not (path.is_file() and kind_of(path) == "inspect"):
        return None
    from inspect_ai.log import read_eval_log

    try:
        log = read_eval_log(str(path))
    except Exception as e:  # noqa: BLE001 - a file cut mid-write: named, one line
        raise HarnessError(f"{path}: not a readable inspect log ({type(e).__name__}: {' '.join(str(e).split())[:160]}); "
                           "if inspect is writing it, re-run in a moment") from None
    if log.status not in GROWING:
        raise HarnessError(f"{path}: the evaluation ended with status '{log.status}'; finish it (`inspect eval-retry` that log) "
                           "or gate the logs that finished")
    planned = [str(i) for i in (log.eval.dataset.sample_ids or [])]
    if not planned:
        raise HarnessError(f"{path}: the log does not list its items (eval.dataset.sample_ids); the sequential gate plans "
                           "its order from them — gate it without --sequential once it has finished")
    frame = pd.DataFrame(log_rows(log), columns=COLUMNS)
    if log.status != "success":  # an item counts once all its epochs are in: its mean must not change at a later look
        epochs = int(log.eval.config.epochs or 1)
        done = frame.groupby(["task", "id"])["epoch"].transform("nunique") >= epochs
        frame = frame[done]
    summary = {"experiment": path.name, "run": str(path), "models": {log.eval.model: log.eval.model}, "students": [], "config": {},
               "source": {"kind": "inspect", "path": str(path), "files": [str(path)], "task_args": {log.eval.task: dict(log.eval.task_args or {})},
                          "status": log.status, "planned": planned, "task": log.eval.task}}
    return Source(path, "inspect", summary, frame, pd.DataFrame(log_items(log), columns=ITEM_COLUMNS))


def planned_items(src: Source, frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(task, id, cluster=id) of every item the evaluation will hold: a log's list from its start,
    else the items it holds (a finished source)."""
    g = (src.summary.get("source") or {})
    if g.get("planned"):
        return [(g["task"], i, i) for i in g["planned"]]
    return [(t, str(i), str(i)) for t, i in frame.drop_duplicates(["task", "id"])[["task", "id"]].itertuples(index=False)]


def finished(src: Source) -> bool:
    return (src.summary.get("source") or {}).get("status", "success") == "success"


def complete_batches(batches: list[list[tuple[str, str]]], frames: list[pd.DataFrame]) -> int:
    """How many leading batches every side holds whole (each of its items scored by some grader)."""
    have = [set(zip(f["task"], f["id"])) for f in frames]
    n = 0
    for b in batches:
        if not all(k in h for h in have for k in b):
            break
        n += 1
    return n


def log_plan(base_src: Source, base: pd.DataFrame, cand_src: Source, cand: pd.DataFrame, s: RegressConfig,
             where: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """The plan (order.json's content) over the candidate's items and the two sides' frames (aliases
    `s.baseline` / `s.candidate`) restricted to the batches both hold whole."""
    from ._sequential import check_sequential, plan

    check_sequential(s, "--sequential")
    items = planned_items(cand_src, cand)
    theirs = {(t, i) for t, i, _ in planned_items(base_src, base)}
    missing = [k for k in ((t, i) for t, i, _ in items) if k not in theirs]
    if missing and not s.allow_subset:
        raise HarnessError(f"{where}: {len(missing)} of the candidate's {len(items)} planned items are not among the baseline's "
                           f"(e.g. {missing[0][1]!r}); gate logs of the same items, or pass --allow-subset")
    items = [x for x in items if (x[0], x[1]) in theirs]
    batches = plan(items, s)
    frame = pd.concat([base.assign(alias=s.baseline, cluster=base["id"]), cand.assign(alias=s.candidate, cluster=cand["id"])],
                      ignore_index=True)
    done = complete_batches(batches, [base, cand])
    if done == 0:
        first = set(batches[0]) if batches else set()
        have = len(first & set(zip(cand["task"], cand["id"])) & set(zip(base["task"], base["id"])))
        raise HarnessError(f"{where}: no complete batch yet ({have} of the first batch's {len(first)} items are in both logs, "
                           f"--batch {s.batch}); re-run when more samples have arrived")
    keep = {k for b in batches[:done] for k in b}
    frame = frame[[k in keep for k in zip(frame["task"], frame["id"])]]
    doc = {"seed": s.seed, "batch": s.batch, "max_items": s.max_items, "n_items": len(items), "batches": batches,
           "source": "logs", "finished": finished(base_src) and finished(cand_src)}
    return doc, frame
