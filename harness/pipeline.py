"""The pipeline, read top to bottom: data -> generate -> finetune -> evaluate -> report.

`run()` takes plain dataclasses (no Hydra) and a run dir, so it is as easy to call from a test or a
notebook as from the CLI. Each stage has a typed output; expensive stages are cached by content
hash in `cache_dir` and referenced from the run dir.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .cache import record_use, write_json, write_text
from .config import FinetuneConfig, HarnessConfig, ModelConfig, student_finetune
from .data import build, check_answers, data_summary, run_data
from .errors import HarnessError
from .evaluate import EvalModel, judged, open_judge, run_evaluate
from .evaluate._pairwise import run_pairwise
from .evaluate._scorers import check_grader
from .finetune import LOCAL, METHODS, FinetuneOutput, run_finetune
from .generate import check_generate, run_generate, run_questions
from .models import Endpoints, api_model_name, check_endpoint, is_openai, resolve_args
from .models._openai import remote_connect
from .report._judge import calibration_table, pairwise_table, read_labels
from .report._usage import run_usage
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
    students = student_aliases(cfg)
    if not students:
        raise HarnessError("no model has student: true; mark the model(s) to fine-tune, e.g. models.student.student=true")
    for alias in ("teacher", "baseline"):
        if alias in students:
            raise HarnessError(f"models.{alias}.student: the {alias} is a reference model and cannot be fine-tuned; "
                               "add a student under another alias")
    for alias, m in cfg.models.items():
        if m.finetune and not m.student:
            raise HarnessError(f"models.{alias}.finetune: only a student (student: true) is fine-tuned")
    for alias in students:
        _check_student(alias, cfg.models[alias], student_finetune(cfg, alias))
    for alias, m in cfg.models.items():
        path = m.args.get("model_path")
        if isinstance(path, str) and not path.startswith("embedded:") and not Path(path).exists():
            raise HarnessError(f"models.{alias}.args.model_path: no such file or directory: {path}")
    if not cfg.graders:
        raise HarnessError("graders is empty: add at least one, e.g. grader@graders.exact=exact")
    for name, g in cfg.graders.items():
        check_grader(name, g)
    check_judges(cfg)
    for k, pair in enumerate(cfg.report.pairs):
        if len(pair) != 2 or any(a not in cfg.models for a in pair):
            raise HarnessError(f"report.pairs[{k}]: {pair} must be two model aliases out of {', '.join(cfg.models)}")
    if cfg.report.correction not in ("holm", "bh"):
        raise HarnessError(f"report.correction: unknown correction '{cfg.report.correction}'; available: holm, bh")
    if not 0 < cfg.report.alpha < 1:
        raise HarnessError(f"report.alpha must be between 0 and 1, got {cfg.report.alpha}")
    for alias, m in cfg.models.items():
        if not m.model or "/" not in m.model:
            raise HarnessError(f"models.{alias}.model: '{m.model}' is not an inspect model string like 'hf/<name>' or 'openai/gpt-4o'")
        check_endpoint(alias, m)  # keys come from the environment: a missing one fails here, before any work
    for name, g in cfg.graders.items():
        if g.judge is not None:
            if g.judge.serve:
                raise HarnessError(f"graders.{name}.judge.serve: a judge cannot be served by the harness yet; start the "
                                   "server yourself and use conf/model/llama_cpp_server.yaml (args.base_url)")
            check_endpoint(f"graders.{name}.judge", g.judge)
    build(cfg.data)  # bad data files fail here, before a run dir exists
    check_generate(cfg.generate)


def student_aliases(cfg: HarnessConfig) -> list[str]:
    """The models `finetune` trains, in config order."""
    return [a for a, m in cfg.models.items() if m.student]


def _check_student(alias: str, student: ModelConfig, ft: FinetuneConfig) -> None:
    where = f"models.{alias}.finetune.method" if "method" in student.finetune else "finetune.method"
    if ft.method not in METHODS:
        raise HarnessError(f"{where}: unknown method '{ft.method}'; available: {', '.join(METHODS)}")
    if ft.method == "openai" and not is_openai(student.model):
        raise HarnessError(f"finetune=openai fine-tunes a hosted model: models.{alias}.model must be 'openai/<name>' "
                           f"(e.g. model@models.{alias}=gpt-4o-mini), not '{student.model}'")
    if ft.method in LOCAL and is_openai(student.model):
        raise HarnessError(f"{where}={ft.method} trains local weights, but models.{alias} is hosted "
                           f"('{student.model}'); use finetune=openai or finetune=none")
    if ft.method == "openai":
        from .finetune._openai import n_epochs

        n_epochs(ft)


def openai_errors() -> tuple[type[BaseException], ...]:
    """The `openai` client's request errors (imported lazily: local runs never load it)."""
    import openai

    return (openai.APIError,)


def _family(model: str) -> str:
    """The provider family of an inspect model string: openai/gpt-4o -> openai,
    openai-api/<provider>/<model> -> <provider>, hf/<name> -> hf/<name> (same weights)."""
    parts = model.split("/")
    if parts[0] == "openai-api" and len(parts) > 2:
        return parts[1]
    return model if parts[0] == "hf" else parts[0]


def check_judges(cfg: HarnessConfig) -> list[str]:
    """Judge graders: refused when the judge is a graded model (unless allow_self_judge), one
    judge model per run (it is the `grader` role), a match grader to validate it against.
    Returns warnings for the report (self-judging allowed, same provider family as the teacher)."""
    judges = {n: g for n, g in cfg.graders.items() if g.kind in ("judge", "pairwise")}
    notes: list[str] = []
    if len({(g.judge.model, str(sorted(g.judge.args.items()))) for g in judges.values() if g.judge}) > 1:
        raise HarnessError(f"graders: judges {', '.join(judges)} use different judge models; one run binds one model to "
                           "the `grader` role -- use the same judge for all of them")
    for name, g in judges.items():
        assert g.judge is not None
        for k, pair in enumerate(g.pairs):
            if len(pair) != 2 or any(a not in cfg.models for a in pair):
                raise HarnessError(f"graders.{name}.pairs[{k}]: {pair} must be two model aliases out of {', '.join(cfg.models)}")
        ref = cfg.graders.get(g.reference)
        if g.calibration:
            labels = read_labels(g.calibration)
            bad = sorted(set(labels["alias"]) - set(cfg.models))
            if bad:
                raise HarnessError(f"{g.calibration}: model(s) {', '.join(bad)} are not aliases of this run ({', '.join(cfg.models)})")
        if g.kind == "judge" and (ref is None or ref.kind != "match"):
            raise HarnessError(f"graders.{name}.reference: '{g.reference}' is not a match grader of this run; the judge is "
                               f"validated against one (available: {', '.join(n for n, x in cfg.graders.items() if x.kind == 'match')})")
        # the student is graded after its fine-tune, so it is never the same model as a judge
        same = [a for a, m in cfg.models.items() if m.model == g.judge.model and m.args == g.judge.args
                and not (m.student and student_finetune(cfg, a).method != "none")]
        if same and not g.allow_self_judge:
            raise HarnessError(f"graders.{name}.judge: the judge '{g.judge.model}' is the graded model models.{same[0]}; "
                               f"use another judge or set graders.{name}.allow_self_judge=true (self-preference bias)")
        if same:
            notes.append(f"{name}: the judge is the same model as {', '.join(same)} (allow_self_judge) -- expect self-preference")
        elif _family(g.judge.model) == _family(cfg.models["teacher"].model):
            notes.append(f"{name}: the judge shares a provider family with the teacher ({_family(g.judge.model)}) -- "
                         "judges are known to prefer their own family's answers")
    return notes


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
    judge_cfg = next((g.judge for g in cfg.graders.values() if g.kind in ("judge", "pairwise") and g.judge), None)
    # a judge's endpoint fields (base_url, api_key_env) work as for any model; `serve` is refused in validate
    judge_args = {**resolve_args("judge", judge_cfg.args, cache_dir), **remote_connect(judge_cfg)} if judge_cfg else None
    judge_notes = check_judges(cfg)
    for note in judge_notes:
        print(f"[judge] warning: {note}", flush=True)
    judge = open_judge(cfg.graders, judge_args, cfg.eval, pending=not judged(run_dir, cfg))  # finished: opened lazily
    # OpenAI-compatible endpoints: llama.cpp servers (started when a model asks for one, stopped at
    # the end, logs in servers/), then one cheap request per model, so a wrong URL, a dead server,
    # a bad key or an unknown model fails now in one line rather than as failed samples later
    with Endpoints(cfg.models, run_dir / "servers") as endpoints:
        for alias in cfg.models:
            endpoints.preflight(alias)
        return _stages(cfg, run_dir, cache_dir, resolved, endpoints, judge, judge_notes)


def _student_dir(run_dir: Path, alias: str) -> Path:
    """`student/` for the usual single student named `student`; `students/<alias>/` otherwise."""
    return run_dir / "student" if alias == "student" else run_dir / "students" / alias


def _finetune_student(cfg: HarnessConfig, alias: str, train_file: Path, cache_dir: Path, run_dir: Path,
                      resolved: dict[str, dict[str, Any]], endpoints: Endpoints) -> tuple[FinetuneOutput, str]:
    """Fine-tune one student; returns its output and the inspect model string it is evaluated as
    (`resolved[alias]` is pointed at the trained checkpoint)."""
    student, ftc = cfg.models[alias], student_finetune(cfg, alias)
    hosted = ftc.method == "openai"
    try:
        client = endpoints.client(alias, max_retries=cfg.eval.max_retries, timeout=cfg.eval.timeout) if hosted else None
        ft = run_finetune(student, resolved[alias].get("model_path"), train_file, ftc, cache_dir, _student_dir(run_dir, alias),
                          cfg.cache, client)
    except openai_errors() as e:
        raise endpoints.error(e, alias) from None
    print(f"[finetune] {alias}: {ftc.method}: {ft.model_path}{' (cached)' if ft.cached else ''}", flush=True)
    # the student is evaluated from the fine-tuned checkpoint, on the same backend as its base
    base_name = student.model.split("/", 1)[1]
    model = student.model if ftc.method == "none" else f"hf/{base_name}-{ftc.method}-{ft.key[:8]}"
    if hosted:  # the fine-tuned model, through the same endpoint as its base
        model = student.model.removesuffix(api_model_name(student.model)) + ft.model_path
        endpoints.preflight(alias, replace(student, model=model),
                            fix=f"the fine-tune cached in {cache_dir / 'finetune' / ft.key} is not on this endpoint; "
                                "re-run with cache=false" if ft.cached else None)
    if ftc.method in LOCAL:
        resolved[alias] = {**resolved[alias], "model_path": ft.model_path}
    return ft, model


def _model_note(cfg: HarnessConfig, alias: str) -> str:
    m = cfg.models[alias]
    notes = ["passage in context" if m.context else "no context"]
    method = student_finetune(cfg, alias).method if m.student else "none"
    if method != "none":
        own = ", ".join(f"{k}={v}" for k, v in _flat(m.finetune).items() if k != "method")
        notes.append(f"fine-tuned ({method}{', ' + own if own else ''}) on the teacher's answers")
    return ", ".join(notes)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _stages(cfg: HarnessConfig, run_dir: Path, cache_dir: Path, resolved: dict[str, dict[str, Any]],
            endpoints: Endpoints, judge: Any, judge_notes: list[str]) -> dict[str, Any]:
    students = student_aliases(cfg)
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
    data = run_data(cfg.data, run_dir / "data", synth.questions if synth else None, cfg.generate.questions.replace,
                    cache_dir, cfg.cache)
    seconds["data"] = time.time() - t
    print(f"[data] {len(data.train)} training questions ({len(data.removed)} duplicates removed), {len(data.eval)} evaluation items, "
          f"{data.leak.rate:.1%} of them match a training question -> {data.dir}", flush=True)

    t = time.time()
    gen = run_generate(data.train, teacher, resolved["teacher"], cfg.generate, cfg.eval.prompt, cfg.eval.system,
                       data.train_key, cache_dir, run_dir / "data", cfg.cache, endpoints,
                       {"experiment": cfg.experiment, "run": run_dir.name}, cfg.eval.max_retries, cfg.eval.timeout)
    seconds["generate"] = time.time() - t
    stage_calls["generate"] = gen.calls
    calls["teacher"] += gen.calls
    removed = f", filters removed {', '.join(f'{k} {v}' for k, v in gen.filters.items())}" if gen.filters else ""
    print(f"[generate] {gen.n_rows} rows ({gen.n_gold} contain the gold{removed}){' (cached)' if not gen.calls else ''}", flush=True)
    if gen.n_rows == 0:
        raise HarnessError(f"generate: no training rows left (removed by the answer filters: {gen.filters}); relax them")
    leak = check_answers(data, cfg.data, gen.train_file, gen.provenance_file)  # before anything is fine-tuned

    t = time.time()
    fts: dict[str, FinetuneOutput] = {}
    eval_model: dict[str, str] = {}  # student alias -> the model string it is evaluated as
    for alias in students:
        fts[alias], eval_model[alias] = _finetune_student(cfg, alias, gen.train_file, cache_dir, run_dir, resolved, endpoints)
    seconds["finetune"] = time.time() - t

    t = time.time()
    models = [
        EvalModel(alias, eval_model.get(alias, m.model), resolved[alias], m.context,
                  endpoints.connect(alias))
        for alias, m in cfg.models.items()
    ]
    ev = run_evaluate(models, data.eval, cfg.eval, cfg.graders, run_dir / "logs", judge)
    stage_calls["evaluate"] = sum(ev.calls.values())
    questions = {(e.task, e.id): e.question for e in data.eval}
    # read once: pairwise judging writes to judge/, never to logs/, so this is also the summary's frame
    frame = load_frame(run_dir / "logs")
    for name, g in cfg.graders.items():
        if g.kind == "pairwise":
            n = run_pairwise(name, g, judge, frame, questions, cfg.eval, run_dir / "judge" / name)
            stage_calls["evaluate"] += n
            print(f"[evaluate] pairwise judge '{name}': {n} verdicts requested", flush=True)
    seconds["evaluate"] = time.time() - t
    for alias, n in ev.calls.items():
        calls[alias] += n

    t = time.time()
    n_eval_by_task = {task: sum(1 for e in data.eval if e.task == task) for task in data.tasks}
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "experiment": cfg.experiment,
        "run": run_dir.name,
        "models": {m.alias: m.model for m in models},
        "students": students,
        "model_notes": {alias: _model_note(cfg, alias) for alias in cfg.models},
        **analyse(frame, cfg.report, students),
        "judge_notes": judge_notes,
        "pairwise": pairwise_table(run_dir / "judge"),
        "judge_calibration": calibration_table(frame, {n: g.calibration for n, g in cfg.graders.items() if g.calibration}),
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
        "finetune": fts[students[0]].metrics,  # the first student's (one-student runs: the student's)
        "finetunes": {a: ft.metrics for a, ft in fts.items()},
        "stage_seconds": {},
        "stage_calls": stage_calls,
        **run_usage(run_dir, asdict(cfg)),
        "model_calls": calls,
        "paths": {"logs": str(run_dir / "logs"), "student": fts[students[0]].model_path, "data": str(run_dir / "data"),
                  "students": {a: ft.model_path for a, ft in fts.items()}},
        "environment": {"python": platform.python_version(),
                        "cache_keys": {"data": data.key, "generate": gen.key, "finetune": fts[students[0]].key,
                                       "finetunes": {a: ft.key for a, ft in fts.items()}}},
        "config": redact(asdict(cfg)),
    }
    used = {"experiment": cfg.experiment, "run": run_dir.name, "run_dir": str(run_dir.resolve()),
            "used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    record_use(cache_dir, "generate", gen.key, {**used, "what": f"teacher {teacher.model} answers"})
    for alias, ft in fts.items():
        method = student_finetune(cfg, alias).method
        if method != "none":
            record_use(cache_dir, "finetune", ft.key, {**used, "what": f"{method} of {cfg.models[alias].model} ({alias})"})
    seconds["report"] = time.time() - t
    summary["stage_seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    order = model_order(list(cfg.models), students)
    write_json(run_dir / "summary.json", summary)
    write_text(run_dir / "report.md", render_markdown(summary, order))
    write_text(run_dir / "report.html", render_html(summary, order))
    return summary
