"""The evaluate stage's own bookkeeping of inspect logs: which log dir holds which evaluation, what
is finished, what a killed run left behind. It reads log headers and sample summaries only (the
scores are read by harness.runs.load_frame); both the per-model evaluation and pairwise judging
resume through it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..cache import write_text


def headers(log_dir: Path) -> list[tuple[Any, str | None, str | None]]:
    """(log info, task, status) of every log directly in `log_dir`, as inspect lists them; task and
    status are None for a log that cannot be read (e.g. one cut off mid-write)."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    if not log_dir.exists():
        return []
    out: list[tuple[Any, str | None, str | None]] = []
    for info in list_eval_logs(str(log_dir), recursive=False):
        try:
            log = read_eval_log(info, header_only=True)
        except Exception:
            out.append((info, None, None))
            continue
        out.append((info, log.eval.task, log.status))
    return out


def by_task(log_dir: Path) -> dict[str, list[tuple[Any, str]]]:
    """task -> [(log info, status)] of the readable logs directly in `log_dir`, newest first."""
    out: dict[str, list[tuple[Any, str]]] = {}
    for info, task, status in headers(log_dir):
        if task is not None and status is not None:
            out.setdefault(task, []).append((info, status))
    for logs in out.values():
        logs.sort(key=lambda x: x[0].mtime or 0, reverse=True)
    return out


def completed(log_dir: Path, since: float | None = None) -> int:
    """Samples finished in the newest log of each task in `log_dir` (eval_set seeds a resumed
    task's new log with every sample its earlier logs finished, so those hold nothing more). With
    `since` (epoch seconds): only the samples started at or after it -- the requests this run sent,
    not the ones an interrupted run had finished and eval_set re-used."""
    from datetime import datetime, timezone

    from inspect_ai.log import read_eval_log_sample_summaries

    n = 0
    for logs in by_task(log_dir).values():
        try:
            samples = read_eval_log_sample_summaries(logs[0][0])
        except Exception:  # an unreadable partial log counts as nothing done
            continue
        n += sum(1 for s in samples if s.completed and (
            since is None or not s.started_at or datetime.fromisoformat(s.started_at) >= datetime.fromtimestamp(since, timezone.utc)))
    return n


def drop_interrupted(log_dir: Path) -> None:
    """Delete the logs a killed run left `started` once their task has a finished log: eval_set
    seeded that log with every sample they held, so they only duplicate it (in `inspect view`, or
    for anything reading the dir). inspect removes such logs itself only for attempts made by its
    own process, as it cannot tell whether another process is still writing one; a harness run
    dir has one writer (the run of its command), so here they are debris."""
    for logs in by_task(log_dir).values():
        if any(status == "success" for _, status in logs):
            for info, status in logs:
                if status == "started":
                    Path(info.name.removeprefix("file://")).unlink(missing_ok=True)


def finished(log_dir: Path, tasks: list[str]) -> list[str] | None:
    """The log files if `log_dir` (already claimed for this evaluation) has a successful log of
    every task, else None (then eval_set runs, resuming whatever is there; so does an unreadable log)."""
    found: dict[str, str] = {}
    for info, task, status in headers(log_dir):
        if task is None:
            return None
        if status == "success":
            found.setdefault(task, info.name)
    return sorted(found[t] for t in tasks) if all(t in found for t in tasks) else None


def claim(log_dir: Path, key: str) -> None:
    """eval_set resumes from whatever logs are in its dir; make sure they are logs of *this*
    evaluation. Logs of a different one (changed items, prompts, model or graders under the same
    run name) are moved aside to `logs/.superseded/`, never deleted and never silently re-used."""
    stamp = log_dir / ".harness-key"
    if log_dir.exists() and (not stamp.exists() or stamp.read_text().strip() != key):
        dest = log_dir.parent / ".superseded" / f"{log_dir.name}-{time.strftime('%Y%m%dT%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        log_dir.rename(dest)
        print(f"[evaluate] {log_dir} held logs of a different evaluation; moved to {dest}", flush=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    write_text(stamp, key + "\n")
