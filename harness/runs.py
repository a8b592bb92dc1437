"""Finished runs, as everything after a run reads them: the run dir, its summary.json, its
settings (the Hydra overrides that name it), and its inspect logs as one tidy frame.

The floor under report/ and regress/: both read stored runs and never call a model. `load_frame`
(through harness.sources, the one reader of inspect logs and lm-eval samples) turns logs into scores
(a row per model alias x task x grader x item x epoch), and `open_source` reads a foreign evaluation
(an inspect log, an lm-eval output) into the same frame; the evaluate stage reads log headers only
to resume, and report/_usage reads their model events for tokens and latency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import NOT_RESULT_KEYS
from .errors import HarnessError
from .sources import COLUMNS, ITEM_COLUMNS, log_rows, read_foreign

__all__ = ["COLUMNS", "Run", "Source", "find_runs", "is_run_dir", "item_keys", "load_frame", "load_runs", "open_source",
           "read_summary", "run_students", "same_items"]


def load_frame(log_dir: Path) -> pd.DataFrame:
    """Read every finished log under `log_dir` (recursively). The alias comes from the log's own
    metadata, so the frame can be rebuilt from the logs alone. The rows are harness.sources'
    (`log_rows`): the same reader as for a log written by a plain `inspect eval`."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    rows = []
    for info in list_eval_logs(str(log_dir), recursive=True):
        if "/.superseded/" in info.name:  # logs of an earlier, different evaluation (see evaluate._claim)
            continue
        try:
            log = read_eval_log(info)
        except Exception as e:  # a truncated or foreign file: name it, say what to do
            path = info.name.removeprefix("file://")
            raise HarnessError(f"{path}: not a readable inspect log ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                               "delete it and re-run the same `harness run` command to evaluate it again") from None
        if log.status != "success":
            continue
        rows += log_rows(log)
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass
class Source:
    """What one path given to `harness regress` / `harness report` holds, read into the tidy frame:
    a finished `harness run` dir (kind "run"), an inspect log or log dir ("inspect"), an
    lm-evaluation-harness --log_samples output ("lm-eval"), or another tool's results ("eee", "helm",
    "lighteval", "promptfoo": harness.sources)."""

    path: Path
    kind: str
    summary: dict[str, Any]  # a run's summary.json; for a foreign source: models, task args, the files read
    frame: pd.DataFrame
    items: pd.DataFrame | None  # foreign: (task, id, question, answer) from the logs; a run: None (data/eval.jsonl)

    @property
    def foreign(self) -> bool:
        return self.kind != "run"


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "summary.json").exists() or (path / ".hydra").is_dir())


def open_source(path: Path) -> Source:
    """A run dir (its summary.json and logs), or a foreign evaluation (harness.sources.read_foreign);
    raises HarnessError naming the file for anything unreadable."""
    if is_run_dir(path):
        return Source(path, "run", read_summary(path), load_frame(path / "logs"), None)
    f = read_foreign(path)
    frame = pd.DataFrame(f.rows, columns=COLUMNS)
    items = pd.DataFrame(f.items, columns=ITEM_COLUMNS)
    summary = {"experiment": path.name, "run": str(path), "models": dict(f.models), "students": [], "config": {},
               "source": {"kind": f.kind, "path": str(path), "files": f.files, "task_args": f.task_args,
                          "fingerprints": f.fingerprints}}
    return Source(path, f.kind, summary, frame, items)


@dataclass(frozen=True)
class Run:
    dir: Path
    setting: str  # readable and unique: the run dir's name (Hydra's override_dirname)
    summary: dict[str, Any]
    overrides: dict[str, str]


def read_summary(run_dir: Path) -> dict[str, Any]:
    f = run_dir / "summary.json"
    if not f.is_file():
        raise HarnessError(f"{run_dir}: no summary.json, not a finished run dir; run `harness run` first")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{f}: not valid JSON ({e.msg} at line {e.lineno}); re-run the experiment to rewrite it") from None


def find_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run dirs under `paths`: each path is a run dir (has summary.json or
    .hydra/) or a dir of run dirs, e.g. a sweep dir (searched two levels deep)."""
    finished: list[Path] = []
    unfinished: list[Path] = []
    for p in paths:
        if not p.is_dir():
            raise HarnessError(f"{p}: no such directory; pass a run dir or a sweep dir (results/<experiment>/...)")
        candidates = [p] if (p / "summary.json").exists() or (p / ".hydra").is_dir() else \
            sorted({c.parent for pat in ("*/.hydra", "*/*/.hydra", "*/summary.json", "*/*/summary.json") for c in p.glob(pat)})
        for c in candidates:
            (finished if (c / "summary.json").is_file() else unfinished).append(c)
    if not finished:
        where = ", ".join(map(str, paths))
        raise HarnessError(f"{where}: no finished run here (no summary.json in it or the dirs below it), and no inspect log or "
                           "lm-eval output; run `harness run` (or finish the sweep) first")
    return finished, unfinished


def _overrides(run_dir: Path) -> dict[str, str]:
    f = run_dir / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return {}
    import yaml

    out = {}
    for o in yaml.safe_load(f.read_text()) or []:
        k, _, v = str(o).lstrip("+~").partition("=")
        if k not in NOT_RESULT_KEYS and not k.startswith("hydra"):
            out[k] = v
    return out


def load_runs(dirs: list[Path]) -> list[Run]:
    runs = [Run(d, d.name, read_summary(d), _overrides(d)) for d in dirs]
    names = [r.setting for r in runs]
    if len(set(names)) < len(names):  # e.g. results/a/default and results/b/default
        runs = [Run(r.dir, f"{r.dir.parent.name}/{r.dir.name}", r.summary, r.overrides) for r in runs]
    return runs


def run_students(summary: dict[str, Any]) -> list[str]:
    """The students of a run. Summaries from before model grids have no `students` key and one
    student named `student`; an evaluation-only run has an empty list."""
    students = summary.get("students")
    return ["student"] if students is None else list(students)


def same_items(frames: dict[str, pd.DataFrame], dirs: dict[str, Path]) -> None:
    """Runs are only comparable on the same evaluation items (task, id and gold answer): fail in one
    line naming the two eval files otherwise. `frames`/`dirs` are keyed alike; the first is the reference."""
    keys = list(frames)
    ref = item_keys(frames[keys[0]])

    def where(p: Path) -> Path:  # a run's items file, or the foreign log itself
        return p / "data" / "eval.jsonl" if is_run_dir(p) else p

    for k in keys[1:]:
        items = item_keys(frames[k])
        if items != ref:
            raise HarnessError(f"{where(dirs[k])}: evaluation items differ from {where(dirs[keys[0]])} "
                               f"({len(items ^ ref)} items in only one of them); only runs evaluated on the same items can be "
                               "compared — report them separately")


def item_keys(frame: pd.DataFrame) -> set[tuple[str, str, str]]:
    """The (task, id, target) triples a run was evaluated on."""
    return set(frame[["task", "id", "target"]].itertuples(index=False, name=None))
