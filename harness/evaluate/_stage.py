"""Stage 4, evaluate: every model on every task, through inspect's eval_set.

One deterministic log dir per model alias (`logs/<alias>/`), so re-running the same command resumes
through eval_set instead of starting over, and the logs open with `inspect view`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..cache import digest, write_text
from ..config import EvalConfig, GraderConfig
from ..data import EvalItem
from ..errors import HarnessError, redact_text
from ._scorers import build_scorer
from ._task import qa_task


@dataclass(frozen=True)
class EvalModel:
    alias: str
    model: str  # inspect model string
    args: dict[str, Any]
    context: bool = False
    # base_url/api_key of an OpenAI-compatible endpoint: passed to get_model, never hashed or logged
    # (a served model gets a new port and key every run; a key must not reach a file)
    connect: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class EvaluateOutput:
    log_dir: Path
    logs: dict[str, list[str]] = field(default_factory=dict)  # alias -> log files
    calls: dict[str, int] = field(default_factory=dict)  # alias -> samples generated in this run


def _headers(log_dir: Path) -> list[tuple[Any, str | None, str | None]]:
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


def _by_task(log_dir: Path) -> dict[str, list[tuple[Any, str]]]:
    """task -> [(log info, status)] of the readable logs directly in `log_dir`, newest first."""
    out: dict[str, list[tuple[Any, str]]] = {}
    for info, task, status in _headers(log_dir):
        if task is not None and status is not None:
            out.setdefault(task, []).append((info, status))
    for logs in out.values():
        logs.sort(key=lambda x: x[0].mtime or 0, reverse=True)
    return out


def _completed(log_dir: Path, since: float | None = None) -> int:
    """Samples finished in the newest log of each task in `log_dir` (eval_set seeds a resumed
    task's new log with every sample its earlier logs finished, so those hold nothing more). With
    `since` (epoch seconds): only the samples started at or after it -- the requests this run sent,
    not the ones an interrupted run had finished and eval_set re-used."""
    from datetime import datetime, timezone

    from inspect_ai.log import read_eval_log_sample_summaries

    n = 0
    for logs in _by_task(log_dir).values():
        try:
            samples = read_eval_log_sample_summaries(logs[0][0])
        except Exception:  # an unreadable partial log counts as nothing done
            continue
        n += sum(1 for s in samples if s.completed and (
            since is None or not s.started_at or datetime.fromisoformat(s.started_at) >= datetime.fromtimestamp(since, timezone.utc)))
    return n


def _drop_interrupted(log_dir: Path) -> None:
    """Delete the logs a killed run left `started` once their task has a finished log: eval_set
    seeded that log with every sample they held, so they only duplicate it (in `inspect view`, or
    for anything reading the dir). inspect removes such logs itself only for attempts made by its
    own process, as it cannot tell whether another process is still writing one; a harness run
    dir has one writer (the run of its command), so here they are debris."""
    for logs in _by_task(log_dir).values():
        if any(status == "success" for _, status in logs):
            for info, status in logs:
                if status == "started":
                    Path(info.name.removeprefix("file://")).unlink(missing_ok=True)


def _finished(log_dir: Path, tasks: list[str]) -> list[str] | None:
    """The log files if `log_dir` (already claimed for this evaluation) has a successful log of
    every task, else None (then eval_set runs, resuming whatever is there; so does an unreadable log)."""
    found: dict[str, str] = {}
    for info, task, status in _headers(log_dir):
        if task is None:
            return None
        if status == "success":
            found.setdefault(task, info.name)
    return sorted(found[t] for t in tasks) if all(t in found for t in tasks) else None


def _claim(log_dir: Path, key: str) -> None:
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


class Judge:
    """The model bound to inspect's `grader` role, opened on first use (`.model`).

    Opening an `hf/` judge loads its weights (seconds and a GB of memory), a remote one is checked
    with one tiny request; a warm re-run whose judged logs are all finished needs neither."""

    def __init__(self, name: str, cfg: GraderConfig, args: dict[str, Any], eval_cfg: EvalConfig) -> None:
        assert cfg.judge is not None
        self.name, self.judge, self.args, self.eval_cfg = name, cfg.judge, args, eval_cfg
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._open()
        return self._model

    def _open(self) -> Any:
        import asyncio

        from inspect_ai.model import GenerateConfig, get_model

        cfg = self.eval_cfg
        try:
            model = get_model(self.judge.model, config=GenerateConfig(max_connections=cfg.batch_size, max_retries=cfg.max_retries,
                                                                       attempt_timeout=cfg.timeout), **self.args)
            if not self.judge.model.startswith("hf/"):  # an in-process model is checked by loading it
                asyncio.run(model.generate("Reply with the word yes.", config=GenerateConfig(max_tokens=2, max_retries=1, timeout=60)))
        except Exception as e:  # unreachable server, bad key, unknown model: one line, nothing graded yet
            while hasattr(e, "last_attempt") and e.last_attempt.exception() is not None:  # tenacity's RetryError
                e = e.last_attempt.exception()
            where = f" at {self.args['base_url']}" if "base_url" in self.args else ""
            raise HarnessError(f"graders.{self.name}.judge: cannot use judge model '{self.judge.model}'{where} "
                               f"({type(e).__name__}: {redact_text(' '.join(str(e).split()))[:200]}); check the model name, "
                               "that its server is up, and its key") from None
        print(f"[judge] {self.judge.model}: {'loaded' if self.judge.model.startswith('hf/') else 'checked, it answers'}", flush=True)
        return model


def open_judge(graders: dict[str, GraderConfig], judge_args: dict[str, Any] | None, cfg: EvalConfig,
               pending: bool = True) -> Judge | None:
    """The judge (None without judge graders). With `pending` work it is opened and checked now --
    the pipeline calls this before any stage runs, so an unreachable judge costs seconds, not a
    fine-tune; when every judged evaluation is already finished (see `judged`), it is opened only
    if some verdict turns out to be missing after all."""
    judges = {n: g for n, g in graders.items() if g.kind in ("judge", "pairwise")}
    if not judges:
        return None
    name, g = next(iter(judges.items()))
    assert g.judge is not None
    judge = Judge(name, g, dict(judge_args or g.judge.args), cfg)
    if pending:
        judge.model  # noqa: B018 -- open and check it now
    else:
        print(f"[judge] {g.judge.model}: not opened (every judged evaluation of this run is finished)", flush=True)
    return judge


def judged(run_dir: Path, cfg: Any) -> bool:
    """True when this run dir holds a finished run of this very config (`summary.json`) whose
    judged logs are all still complete: the judge has nothing to do, so it need not be opened
    (nor checked) up front. Anything else (a first run, an edited config, a missing or partial
    log) counts as pending. `cfg`: the HarnessConfig."""
    import json

    from ..pipeline import redact

    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False

    def same(c: dict[str, Any]) -> dict[str, Any]:  # where the run's files go does not change its results
        return {k: v for k, v in c.items() if k not in ("cache", "cache_dir", "results_dir")}

    now = json.loads(json.dumps(redact(asdict(cfg)), default=str))
    if not isinstance(summary.get("config"), dict) or same(summary["config"]) != same(now):
        return False
    by_task = (summary.get("data") or {}).get("n_eval_by_task") or {}
    tasks = [t for t in cfg.eval.tasks if by_task.get(t)]
    if any(g.kind == "judge" for g in cfg.graders.values()):
        for alias in summary.get("models") or {}:
            if not (run_dir / "logs" / alias).is_dir() or _finished(run_dir / "logs" / alias, tasks) is None:
                return False
    for name, g in cfg.graders.items():
        if g.kind == "pairwise":
            log_dir = run_dir / "judge" / name
            if not log_dir.is_dir() or _finished(log_dir, [f"{name}_{a}_vs_{b}" for a, b in g.pairs]) is None:
                return False
    return True


def run_evaluate(
    models: list[EvalModel], items: list[EvalItem], cfg: EvalConfig, graders: dict[str, GraderConfig], log_root: Path,
    judge: Any = None,
) -> EvaluateOutput:
    """`judge`: from open_judge(), bound to inspect's `grader` role for judge graders (opened only
    if some model's evaluation has to run)."""
    from inspect_ai import eval_set
    from inspect_ai.model import GenerateConfig, get_model

    unknown = [t for t in cfg.tasks if t not in {"heldout", "control"}]
    if unknown:
        raise HarnessError(f"eval.tasks: unknown task(s) {unknown}; available: heldout, control")
    by_task = {t: [it for it in items if it.task == t] for t in cfg.tasks}
    by_task = {t: v for t, v in by_task.items() if v}
    out = EvaluateOutput(log_root)
    display = None if sys.stdout.isatty() else "plain"
    # pairwise graders compare two models' answers after evaluation (see _pairwise.py)
    scorers = [build_scorer(name, g) for name, g in graders.items() if g.kind != "pairwise"]
    judging = any(g.kind == "judge" for g in graders.values())  # pairwise graders judge later, not here
    if judge is None and judging:
        raise HarnessError("graders: a judge grader needs a judge model; call open_judge() first")
    for m in models:
        log_dir = log_root / m.alias
        _claim(log_dir, digest({"model": m.model, "args": m.args, "context": m.context, "eval": asdict(cfg),
                                "graders": {k: asdict(g) for k, g in graders.items()},
                                "items": [asdict(i) for i in items]}))
        done = _finished(log_dir, list(by_task))
        _drop_interrupted(log_dir)  # a kill after eval_set finished, before it tidied up
        if done is not None:
            # a finished evaluation: nothing to send, and no model to load (loading an hf/ model
            # alone costs more than the rest of a warm re-run)
            out.logs[m.alias], out.calls[m.alias] = done, 0
            print(f"[evaluate] {m.alias}: finished logs in {log_dir} (nothing to run)", flush=True)
            continue
        tasks = [
            qa_task(t, its, cfg.prompt, cfg.context_prompt if m.context else None, scorers, cfg.system)
            for t, its in by_task.items()
        ]
        model = get_model(
            m.model,
            config=GenerateConfig(
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                max_connections=cfg.batch_size,
                max_retries=cfg.max_retries,
                # per attempt (README: "every request has eval.timeout"): inspect's `timeout` bounds
                # all attempts together, so one stalled request would use up every retry
                attempt_timeout=cfg.timeout,
            ),
            **m.connect,
            **m.args,
        )
        started = time.time()
        ok, logs = eval_set(
            tasks,
            log_dir=str(log_dir),
            model=model,
            epochs=cfg.epochs,
            limit=cfg.limit,
            fail_on_error=cfg.fail_on_error,
            retry_attempts=2,
            display=display,
            log_level="warning",
            tags=[m.alias],
            metadata={"alias": m.alias},
            model_roles={"grader": judge.model} if judge is not None and judging else None,
        )
        if not ok:
            raise RuntimeError(f"evaluation of '{m.alias}' did not complete; logs in {log_dir}, re-run to resume")
        out.logs[m.alias] = sorted(log.location for log in logs)
        _drop_interrupted(log_dir)
        out.calls[m.alias] = _completed(log_dir, since=started)
    return out
