"""The pipeline, read top to bottom: data -> generate -> finetune -> evaluate -> report.

`run()` takes plain dataclasses (no Hydra) and a run dir, so it is as easy to call from a test or a
notebook as from the CLI. Each stage has a typed output; expensive stages are cached by content
hash in `cache_dir` and referenced from the run dir.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .cache import write_json, write_text
from .config import HarnessConfig
from .data import build, check_answers, data_summary, run_data
from .errors import HarnessError
from .evaluate import EvalModel, run_evaluate
from .evaluate._scorers import check_grader
from .finetune import METHODS, run_finetune
from .generate import check_generate, run_generate, run_questions
from .models import resolve_args
from .report import SCHEMA_VERSION, analyse, load_frame, model_order, render_html, render_markdown


_SECRET_WORDS = ("key", "token", "secret", "password")


def redact(obj: Any) -> Any:
    """Drop the values of secret-looking keys (api_key, token, ...) before anything is written."""
    if isinstance(obj, dict):
        return {k: "<redacted>" if any(w in str(k).lower() for w in _SECRET_WORDS) else redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def validate(cfg: HarnessConfig) -> None:
    """Everything that can be checked before any work starts (and before anything is written)."""
    if "teacher" not in cfg.models:
        raise HarnessError("models.teacher is missing: the teacher writes the training answers")
    students = [a for a, m in cfg.models.items() if m.student]
    if len(students) != 1:
        raise HarnessError(f"exactly one model must have student: true, found {students or 'none'}")
    for alias, m in cfg.models.items():
        path = m.args.get("model_path")
        if isinstance(path, str) and not path.startswith("embedded:") and not Path(path).exists():
            raise HarnessError(f"models.{alias}.args.model_path: no such file or directory: {path}")
    if cfg.finetune.method not in METHODS:
        raise HarnessError(f"finetune.method: unknown method '{cfg.finetune.method}'; available: {', '.join(METHODS)}")
    if not cfg.graders:
        raise HarnessError("graders is empty: add at least one, e.g. grader@graders.exact=exact")
    for name, g in cfg.graders.items():
        check_grader(name, g)
    for alias, m in cfg.models.items():
        if not m.model or "/" not in m.model:
            raise HarnessError(f"models.{alias}.model: '{m.model}' is not an inspect model string like 'hf/<name>' or 'openai/gpt-4o'")
    build(cfg.data)  # bad data files fail here, before a run dir exists
    check_generate(cfg.generate)


def check_writable(path: Path, key: str = "results_dir") -> None:
    """Fail with one line if `path` cannot be created/written (probes the nearest existing parent,
    creating nothing)."""
    import tempfile

    p = path.resolve()
    while not p.exists():
        p = p.parent
    try:
        if not p.is_dir():
            raise NotADirectoryError(str(p))
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError:
        raise HarnessError(f"{key}: {path} is not writable ({p} is not a writable directory); pass {key}=<a writable dir>") from None


def run(cfg: HarnessConfig, run_dir: Path) -> dict[str, Any]:
    validate(cfg)
    cache_dir = Path(cfg.cache_dir)
    check_writable(run_dir)
    check_writable(cache_dir, "cache_dir")
    # resolve model paths first: a missing model file fails before any stage runs
    resolved = {alias: resolve_args(alias, m.args, cache_dir) for alias, m in cfg.models.items()}
    student_alias = next(a for a, m in cfg.models.items() if m.student)
    teacher = cfg.models["teacher"]

    seconds: dict[str, float] = {}
    stage_calls: dict[str, int] = {}
    calls = {alias: 0 for alias in cfg.models}

    synth = None
    if cfg.generate.questions.enabled:  # the teacher writes (more) training questions first
        t = time.time()
        source_train, _, document, _ = build(cfg.data)
        synth = run_questions(source_train, document, teacher, resolved["teacher"], cfg.generate, cache_dir, run_dir / "data", cfg.cache)
        seconds["questions"] = time.time() - t
        stage_calls["questions"] = calls["teacher"] = synth.calls
        print(f"[questions] {synth.stats['accepted']} of {synth.stats['prompts']} synthesised questions accepted"
              f"{' (cached)' if not synth.calls else ''}", flush=True)

    t = time.time()
    data = run_data(cfg.data, run_dir / "data", synth.questions if synth else None, cfg.generate.questions.replace)
    seconds["data"] = time.time() - t
    print(f"[data] {len(data.train)} training questions ({len(data.removed)} duplicates removed), {len(data.eval)} evaluation items, "
          f"{data.leak.rate:.1%} of them match a training question -> {data.dir}", flush=True)

    t = time.time()
    gen = run_generate(data.train, teacher, resolved["teacher"], cfg.generate, cfg.eval.prompt, cfg.eval.system,
                       data.key, cache_dir, run_dir / "data", cfg.cache)
    seconds["generate"] = time.time() - t
    stage_calls["generate"] = gen.calls
    calls["teacher"] += gen.calls
    removed = f", filters removed {', '.join(f'{k} {v}' for k, v in gen.filters.items())}" if gen.filters else ""
    print(f"[generate] {gen.n_rows} rows ({gen.n_gold} contain the gold{removed}){' (cached)' if not gen.calls else ''}", flush=True)
    if gen.n_rows == 0:
        raise HarnessError(f"generate: no training rows left (removed by the answer filters: {gen.filters}); relax them")
    leak = check_answers(data, cfg.data, gen.train_file, gen.provenance_file)  # before anything is fine-tuned

    t = time.time()
    student = cfg.models[student_alias]
    base_path = resolved[student_alias].get("model_path")
    if not base_path:
        raise HarnessError(f"models.{student_alias}.args.model_path: a local student needs a local checkpoint")
    ft = run_finetune(student, base_path, gen.train_file, cfg.finetune, cache_dir, run_dir / "student", cfg.cache)
    seconds["finetune"] = time.time() - t
    print(f"[finetune] {cfg.finetune.method}: {ft.model_path}{' (cached)' if ft.cached else ''}", flush=True)
    # the student is evaluated from the fine-tuned checkpoint, on the same backend as its base
    base_name = student.model.split("/", 1)[1]
    student_model = student.model if cfg.finetune.method == "none" else f"hf/{base_name}-{cfg.finetune.method}-{ft.key[:8]}"
    resolved[student_alias] = {**resolved[student_alias], "model_path": ft.model_path}

    t = time.time()
    models = [
        EvalModel(alias, student_model if alias == student_alias else m.model, resolved[alias], m.context)
        for alias, m in cfg.models.items()
    ]
    ev = run_evaluate(models, data.eval, cfg.eval, cfg.graders, run_dir / "logs")
    seconds["evaluate"] = time.time() - t
    stage_calls["evaluate"] = sum(ev.calls.values())
    for alias, n in ev.calls.items():
        calls[alias] += n

    t = time.time()
    frame = load_frame(run_dir / "logs")
    n_eval_by_task = {task: sum(1 for e in data.eval if e.task == task) for task in data.tasks}
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "experiment": cfg.experiment,
        "run": run_dir.name,
        "models": {m.alias: m.model for m in models},
        "model_notes": {
            alias: ", ".join(x for x in [
                "passage in context" if m.context else "no context",
                f"fine-tuned ({cfg.finetune.method}) on the teacher's answers" if m.student and cfg.finetune.method != "none" else "",
            ] if x)
            for alias, m in cfg.models.items()
        },
        **analyse(frame),
        "data": {
            "n_train": len(data.train),
            "n_train_rows": gen.n_rows,
            "n_train_gold": gen.n_gold,
            "n_eval": len(data.eval),
            "n_eval_by_task": n_eval_by_task,
            **data_summary(data, leak, cfg.data),
            "filters": gen.filters,
            **({"synthesis": {**synth.stats, "kept": len({q.id for q in synth.questions} & {t.id for t in data.train})}} if synth else {}),
        },
        "finetune": ft.metrics,
        "stage_seconds": {},
        "stage_calls": stage_calls,
        "model_calls": calls,
        "paths": {"logs": str(run_dir / "logs"), "student": ft.model_path, "data": str(run_dir / "data")},
        "environment": {"python": platform.python_version(), "cache_keys": {"data": data.key, "generate": gen.key, "finetune": ft.key}},
        "config": redact(asdict(cfg)),
    }
    seconds["report"] = time.time() - t
    summary["stage_seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    order = model_order(list(cfg.models))
    write_json(run_dir / "summary.json", summary)
    write_text(run_dir / "report.md", render_markdown(summary, order))
    write_text(run_dir / "report.html", render_html(summary, order))
    return summary
