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

from ..cache import digest
from ..config import EvalConfig, GraderConfig, ModelConfig
from ..data import EvalItem
from ..errors import HarnessError
from ._logs import claim, completed, drop_interrupted, finished
from ._scorers import build_scorer
from ._task import check_inspect_task, inspect_task_spec, is_inspect_task, qa_task

# the tasks an experiment can evaluate: items the data stage marks `heldout` (the domain's evaluation
# questions) and `control` (general knowledge, shows forgetting)
TASKS = ("heldout", "control")


def register_model_info(model: str, args: dict[str, Any]) -> None:
    """Tell inspect what a local `hf/` checkpoint is, so it never loads it a second time to find out.

    inspect (0.3.28x) looks up the model info of every model call's model (its live-session usage
    figures); for a name its database does not know it instantiates the provider to ask it, on the
    event loop, so every sample waits. For an `hf/` model that is a `from_pretrained(<model name>)`:
    measured 8 s once per process offline, and over 50 s of Hub retries (per model name) when the Hub
    is not offline, while a batch of answers could have been generated. A registered info is a dict
    lookup. The context length is the one the pre-flight checks prompts against (the checkpoint's
    config.json; None if unreadable)."""
    from inspect_ai.model import ModelInfo, set_model_info

    from ..models import context_window

    path = args.get("model_path")
    if not model.startswith("hf/") or not isinstance(path, str) or not Path(path).is_dir():
        return
    window = context_window(ModelConfig(model=model, args=args))
    set_model_info(model, ModelInfo(context_length=window[0] if window else None))


def _samples(n: int, cfg: EvalConfig) -> int:
    """How many samples eval_set runs for a task of n items (eval.limit, then eval.epochs)."""
    return min(n, cfg.limit if cfg.limit is not None else n) * cfg.epochs


def check_tasks(cfg: EvalConfig) -> None:
    """eval.tasks names known tasks (checked up front by harness.preflight, and here for direct
    callers): the harness's own item sets, or inspect tasks (`path/to/file.py@task`, a registry name)."""
    if not cfg.tasks:
        raise HarnessError(f"eval.tasks is empty; list at least one of {', '.join(TASKS)} or an inspect task (path/to/file.py@task)")
    unknown = [t for t in cfg.tasks if t not in TASKS and not is_inspect_task(t)]
    if unknown:
        raise HarnessError(f"eval.tasks: unknown task(s) {unknown}; available: {', '.join(TASKS)}, or an inspect task as "
                           "path/to/file.py@task or a registry name (inspect_evals/<task>)")
    names = [task_names(cfg)[t] for t in cfg.tasks]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise HarnessError(f"eval.tasks: two entries are the task '{clash[0]}'; list each task once")


def task_names(cfg: EvalConfig) -> dict[str, str]:
    """eval.tasks entry -> the task name its logs (and so the report and the gate) carry."""
    return {t: t if t in TASKS else check_inspect_task(t) for t in cfg.tasks}


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
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)  # judge grader -> its gate.json record


def run_evaluate(
    models: list[EvalModel], items: list[EvalItem], cfg: EvalConfig, graders: dict[str, GraderConfig], log_root: Path,
    judge: Any = None, judge_root: Path | None = None,
) -> EvaluateOutput:
    """`judge`: from open_judge(), for judge graders: they grade after every model's evaluation
    (_judge.run_judge; opened only if some verdict is missing), their requests logged under
    `judge_root`/<grader>/ (default: `log_root`'s sibling `judge/`)."""
    from inspect_ai import eval_set
    from inspect_ai.model import GenerateConfig, get_model

    from ..models import batch_plan, batched_hf, temperature_for

    check_tasks(cfg)
    by_task = {t: [it for it in items if it.task == t] for t in cfg.tasks if t in TASKS}
    by_task = {t: v for t, v in by_task.items() if v}
    # inspect tasks of eval.tasks: their own dataset, solver and scorers; eval_set resolves the spec
    # (the same resume, retries, limits and epochs as the harness's own tasks)
    foreign = {check_inspect_task(t): inspect_task_spec(t) for t in cfg.tasks if t not in TASKS}
    out = EvaluateOutput(log_root)
    display = None if sys.stdout.isatty() else "plain"
    # pairwise graders compare two models' answers after evaluation (see _pairwise.py)
    # and judge graders grade once every model is evaluated (see _judge.run_judge)
    scorers = {name: build_scorer(name, g) for name, g in graders.items() if g.kind not in ("pairwise", "judge")}
    # a choice grader grades multiple-choice tasks only (the pre-flight refuses a task that mixes them)
    task_scorers = {t: [sc for name, sc in scorers.items() if graders[name].kind != "choice" or any(it.choices for it in its)]
                    for t, its in by_task.items()}
    judging = any(g.kind == "judge" for g in graders.values())  # pairwise graders judge later, not here
    if judge is None and judging:
        raise HarnessError("graders: a judge grader needs a judge model; call open_judge() first")
    for m in models:
        log_dir = log_root / m.alias
        # eval.auto_choice acts through `graders` only (the grader it adds): not part of what was evaluated;
        # judges grade after the evaluation, into these logs (_judge.record_scores replaces another
        # judge's verdicts): a new judge, or its calibration settings, keep the answers
        claim(log_dir, digest({"model": m.model, "args": m.args, "context": m.context,
                               "eval": {k: v for k, v in asdict(cfg).items() if k != "auto_choice"},
                               "graders": {k: {f: v for f, v in asdict(g).items() if f != "calibrate"} for k, g in graders.items()
                                           if g.kind not in ("judge", "pairwise")},
                               "items": [asdict(i) for i in items],
                               **({"inspect_tasks": {n: d for n, (_, d) in foreign.items()}} if foreign else {})}))
        done = finished(log_dir, list(by_task) + list(foreign))
        drop_interrupted(log_dir)  # a kill after eval_set finished, before it tidied up
        if done is not None:
            # a finished evaluation: nothing to send, and no model to load (loading an hf/ model
            # alone costs more than the rest of a warm re-run)
            out.logs[m.alias], out.calls[m.alias] = done, 0
            print(f"[evaluate] {m.alias}: finished logs in {log_dir} (nothing to run)", flush=True)
            continue
        tasks: list[Any] = [
            qa_task(t, its, cfg.prompt, cfg.context_prompt if m.context else None, task_scorers[t], cfg.system,
                    cfg.choices_prompt, cfg.shuffle_choices)
            for t, its in by_task.items()
        ] + [spec for spec, _ in foreign.values()]
        register_model_info(m.model, m.args)
        model = get_model(
            m.model,
            config=GenerateConfig(
                max_tokens=cfg.max_tokens,
                temperature=temperature_for(m.model, m.args, cfg.temperature),
                max_connections=cfg.batch_size,
                max_retries=cfg.max_retries,
                # per attempt (README: "every request has eval.timeout"): inspect's `timeout` bounds
                # all attempts together, so one stalled request would use up every retry
                attempt_timeout=cfg.timeout,
            ),
            **m.connect,
            **m.args,
        )
        # a local hf/ model: each batch fires when it is complete, not on inspect's 2 s timer (an
        # inspect task's sample count is its own: no plan, inspect's batching)
        model = batched_hf(model, [] if foreign else batch_plan([_samples(len(its), cfg) for its in by_task.values()], cfg.batch_size))
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
        )
        if not ok:
            raise RuntimeError(f"evaluation of '{m.alias}' did not complete; logs in {log_dir}, re-run to resume")
        out.logs[m.alias] = sorted(log.location for log in logs)
        drop_interrupted(log_dir)
        out.calls[m.alias] = completed(log_dir, since=started)
    from ._judge import run_judge

    for name, g in graders.items():
        if g.kind == "judge" and by_task:
            out.gates[name] = run_judge(name, g, judge, out.logs, list(by_task), cfg, (judge_root or log_root.parent / "judge") / name)
    return out
