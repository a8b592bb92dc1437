"""The pipeline, read top to bottom: data -> generate -> finetune -> evaluate -> report.

`run()` takes plain dataclasses (no Hydra) and a run dir, so it is as easy to call from a test or a
notebook as from the CLI. Each stage has a typed output; expensive stages are cached by content
hash in `cache_dir` and referenced from the run dir. An experiment without students (only models
to evaluate: an upgrade check, a model comparison) skips generate and finetune.
"""

from __future__ import annotations

import contextlib
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .cache import record_use, user_cache_dir, write_json
from .config import FinetuneConfig, HarnessConfig, grader_fingerprint, model_identity, student_aliases, student_finetune
from .data import DataOutput, build, check_answers, data_summary, run_data
from .errors import HarnessError, redact
from .evaluate import EvalModel, EvaluateOutput, item_messages, judged, open_judge, run_evaluate, run_pairwise
from .finetune import LOCAL, FinetuneOutput, Teacher, run_finetune
from .generate import GenerateInput, run_generate, run_paraphrases, run_questions, teacher_prompt
from .guards import run_lock
from .models import Endpoints, api_model_name, eval_device_args, is_vllm, remote_connect, resolve_args, vllm_served, vllm_student
from .preflight import check_judges, check_writable, notes, validate, with_choice_grader
from .regress import RunRef, gate, sequential_plan, sequential_status, write_gate
from .report import build_summary
from .runs import load_frame


def openai_errors() -> tuple[type[BaseException], ...]:
    """The `openai` client's request errors (imported lazily: local runs never load it)."""
    import openai

    return (openai.APIError,)


@dataclass
class Run:
    """One run in progress: its config, where it writes, and what it has measured so far."""

    cfg: HarnessConfig
    dir: Path
    cache_dir: Path
    resolved: dict[str, dict[str, Any]]  # alias -> inspect model_args with model paths resolved
    endpoints: Endpoints
    judge: Any
    judge_notes: list[str]
    data_notes: list[str]
    students: dict[str, FinetuneConfig]  # alias -> its fine-tune settings, resolved once
    seconds: dict[str, float] = field(default_factory=dict)
    stage_calls: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.time()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.time() - t


def run(cfg: HarnessConfig, run_dir: Path) -> dict[str, Any]:
    # multiple choice scored as multiple choice (eval.auto_choice): the grader joins the config, so
    # summary.json, the fingerprints and the gate see it like any configured one
    cfg, added = with_choice_grader(cfg)
    validate(cfg)
    cache_dir = Path(cfg.cache_dir)
    check_writable(run_dir)
    check_writable(cache_dir, "cache_dir")
    check_writable(user_cache_dir(), "HARNESS_MODEL_CACHE")  # the per-user cache (converted models, embeddings)
    with run_lock(run_dir):  # one run per run dir at a time: a second one refuses in one line
        return _run(cfg, run_dir, cache_dir, added)


def _run(cfg: HarnessConfig, run_dir: Path, cache_dir: Path, added: str | None = None) -> dict[str, Any]:
    # resolve model paths first: a missing model file fails before any stage runs
    # the embedded model's conversion is the same for every project: the per-user cache, not cache_dir
    # (local hf/ models run on finetune.device: an explicit one is passed to inspect as args.device)
    resolved = {alias: eval_device_args(m.model, resolve_args(alias, m.args, user_cache_dir()), cfg.finetune.device)
                for alias, m in cfg.models.items()}
    judge_cfg = next((g.judge for g in cfg.graders.values() if g.kind in ("judge", "pairwise") and g.judge), None)
    # a judge's endpoint fields (base_url, api_key_env) work as for any model; `serve` is refused in validate
    judge_args = {**resolve_args("judge", judge_cfg.args, user_cache_dir()), **remote_connect(judge_cfg)} if judge_cfg else None
    judge_notes = check_judges(cfg)
    for note in judge_notes:
        print(f"[judge] warning: {note}", flush=True)
    data_notes = notes(cfg, added)  # said before any stage: unused fields, golds a grader cannot tell apart
    for note in data_notes:
        print(f"[data] note: {note}", flush=True)
    judge = open_judge(cfg.graders, judge_args, cfg.eval, pending=not judged(run_dir, cfg))  # finished: opened lazily
    # OpenAI-compatible endpoints: llama.cpp servers (started when a model asks for one, stopped at
    # the end, logs in servers/), then one cheap request per model, so a wrong URL, a dead server,
    # a bad key or an unknown model fails now in one line rather than as failed samples later
    with Endpoints(cfg.models, run_dir / "servers") as endpoints:
        for alias in cfg.models:
            endpoints.preflight(alias)
        r = Run(cfg, run_dir, cache_dir, resolved, endpoints, judge, judge_notes, data_notes,
                {a: student_finetune(cfg, a) for a in student_aliases(cfg)}, calls={a: 0 for a in cfg.models})
        return _stages(r)


def _stages(r: Run) -> dict[str, Any]:
    """One call per stage; each returns its typed output (None where an experiment skips it)."""
    synth = _questions(r)
    para = _paraphrases(r, synth)  # more wordings of the training questions, these included
    data = _data(r, synth, para)
    gen = _generate(r, data)
    leak = check_answers(data, r.cfg.data, gen.train_file, gen.provenance_file) if gen else data.leak  # before any fine-tune
    fts, evaluated_as = _finetune(r, gen, data)
    frame = _evaluate(r, data, evaluated_as)
    with r.stage("report"):
        facts = _facts(r, data, leak, synth, para, gen, fts, evaluated_as)
        _record_use(r, gen, fts)
    facts["stage_seconds"] = {k: round(v, 2) for k, v in r.seconds.items()}
    summary = build_summary(r.dir, facts, frame)
    if r.cfg.regress.enabled:
        summary = _regress(r, summary)
    return summary


def _regress(r: Run, summary: dict[str, Any]) -> dict[str, Any]:
    """The regression gate over this run's two models, read back from the finished run dir exactly
    as `harness regress RUN:current RUN:candidate` would; its verdict joins summary.json."""
    s = r.cfg.regress
    result = gate(RunRef(r.dir, s.baseline), RunRef(r.dir, s.candidate), s)
    summary["regress"] = {"verdict": result["verdict"], "exit_code": result["exit_code"], "headline": result["headline"],
                          "file": "regress.json"}
    write_json(r.dir / "summary.json", summary)
    print(write_gate(result, r.dir), flush=True)
    print(f"[regress] {r.dir / 'regress.md'}", flush=True)
    return summary


def _questions(r: Run) -> Any:
    """Question synthesis (optional): the teacher writes (more) training questions first."""
    if not r.cfg.generate.questions.enabled or not r.students:  # synthesised questions are training questions
        return None
    with r.stage("questions"):
        source_train, _, document, _ = build(r.cfg.data)
        synth = run_questions(source_train, document, r.cfg.models["teacher"], r.resolved["teacher"], r.cfg.generate,
                              r.cache_dir, r.dir / "data", r.cfg.cache)
    r.stage_calls["questions"] = r.calls["teacher"] = synth.calls
    print(f"[questions] {synth.stats['accepted']} of {synth.stats['prompts']} synthesised questions accepted"
          f"{' (cached)' if not synth.calls else ''}", flush=True)
    return synth


def _paraphrases(r: Run, synth: Any) -> Any:
    """Question augmentation (optional): the teacher writes generate.paraphrases more wordings of
    each training question the data stage will keep (synthesised ones included)."""
    if r.cfg.generate.paraphrases <= 0 or not r.students:
        return None
    with r.stage("paraphrases"):
        train = build(r.cfg.data, synth.questions if synth else None, r.cfg.generate.questions.replace)[0]
        para = run_paraphrases(train, r.cfg.models["teacher"], r.resolved["teacher"], r.cfg.generate, r.cache_dir,
                               r.dir / "data", r.cfg.cache)
    r.stage_calls["paraphrases"] = para.calls
    r.calls["teacher"] += para.calls
    print(f"[paraphrases] {para.stats['accepted']} of {para.stats['prompts']} paraphrases accepted"
          f"{' (cached)' if not para.calls else ''}", flush=True)
    return para


def _data(r: Run, synth: Any, para: Any = None) -> DataOutput:
    with r.stage("data"):
        # question embeddings depend on the texts and the embedding model only: the per-user cache
        data = run_data(r.cfg.data, r.dir / "data", synth.questions if synth else None, r.cfg.generate.questions.replace,
                        user_cache_dir(), r.cfg.cache, training=bool(r.students), augment=para.questions if para else None)
    print(f"[data] {len(data.train)} training questions ({len(data.removed)} duplicates removed), {len(data.eval)} evaluation items, "
          f"{data.leak.rate:.1%} of them match a training question -> {data.dir}", flush=True)
    return data


def _generate(r: Run, data: DataOutput) -> Any:
    """The teacher answers the training questions: the student's training file."""
    if not r.students:
        print("[generate] skipped: no model is a student (an evaluation-only experiment)", flush=True)
        return None
    cfg = r.cfg
    with r.stage("generate"):
        gen = run_generate(GenerateInput(
            data.train, cfg.models["teacher"], r.resolved["teacher"], cfg.generate, student_prompt=cfg.eval.prompt,
            system=cfg.eval.system, data_key=data.train_key, cache_dir=r.cache_dir, out_dir=r.dir / "data", use_cache=cfg.cache,
            endpoints=r.endpoints, metadata={"experiment": cfg.experiment, "run": r.dir.name},
            max_retries=cfg.eval.max_retries, timeout=cfg.eval.timeout))
    r.stage_calls["generate"] = gen.calls
    r.calls["teacher"] += gen.calls
    removed = f", filters removed {', '.join(f'{k} {v}' for k, v in gen.filters.items())}" if gen.filters else ""
    print(f"[generate] {gen.n_rows} rows ({gen.n_gold} contain the gold{removed}){' (cached)' if not gen.calls else ''}", flush=True)
    if gen.n_rows == 0:
        raise HarnessError(f"generate: no training rows left (removed by the answer filters: {gen.filters}); relax them")
    return gen


def _finetune(r: Run, gen: Any, data: DataOutput) -> tuple[dict[str, FinetuneOutput], dict[str, str]]:
    """Every student on the same training file. Returns the outputs and, per student, the inspect
    model string it is evaluated as."""
    if not r.students:
        print("[finetune] skipped: no model is a student", flush=True)
        return {}, {}
    fts: dict[str, FinetuneOutput] = {}
    evaluated_as: dict[str, str] = {}
    with r.stage("finetune"):
        for alias in r.students:
            fts[alias], evaluated_as[alias] = _finetune_student(r, alias, gen.train_file, _distil_teacher(r, alias, data, gen),
                                                                _drift_prompts(r.cfg, data))
    return fts, evaluated_as


def _drift_prompts(cfg: HarnessConfig, data: DataOutput) -> list[list[dict[str, str]]]:
    """What a student is shown for the held-out items (the control items when there are none): the
    fine-tune reports its KL to the base on its answers to the first of them (finetune/_drift.py).
    Evaluation items, never trained on; the figure is a measurement and tunes nothing."""
    e = cfg.eval
    items = [it for it in data.eval if it.task == "heldout"] or list(data.eval)
    return [item_messages(it, e.prompt, None, e.system, e.choices_prompt, e.shuffle_choices) for it in items]


def _evaluate(r: Run, data: DataOutput, evaluated_as: dict[str, str]) -> Any:
    """Every model on every task, then pairwise judging; returns the scores as a frame."""
    cfg = r.cfg
    with r.stage("evaluate"):
        # vllm/ models with local weights are served from them (harness.models._vllm)
        served = vllm_served([(evaluated_as.get(alias, m.model), r.resolved[alias]) for alias, m in cfg.models.items()])
        models = [EvalModel(alias, model, args, m.context, r.endpoints.connect(alias))
                  for (alias, m), (model, args) in zip(cfg.models.items(), served)]
        ev = _evaluate_sequential(r, models, data) if cfg.regress.enabled and cfg.regress.sequential else \
            run_evaluate(models, data.eval, cfg.eval, cfg.graders, r.dir / "logs", r.judge)
        # judge requests count with the stage's calls (pairwise ones below); what each judge's check
        # made and saved is in summary.json's judge_gate
        r.stage_calls["evaluate"] = sum(ev.calls.values()) + sum(g["calls_made"] for g in ev.gates.values())
        questions = {(e.task, e.id): e.question for e in data.eval}
        # read once: pairwise judging writes to judge/, never to logs/, so this is also the summary's frame
        frame = load_frame(r.dir / "logs")
        for name, g in cfg.graders.items():
            if g.kind == "pairwise":
                n = run_pairwise(name, g, r.judge, frame, questions, cfg.eval, r.dir / "judge" / name)
                r.stage_calls["evaluate"] += n
                print(f"[evaluate] pairwise judge '{name}': {n} verdicts requested", flush=True)
    for alias, n in ev.calls.items():
        r.calls[alias] += n
    return frame


def _evaluate_sequential(r: Run, models: list[EvalModel], data: DataOutput) -> EvaluateOutput:
    """regress.sequential: every model on seeded random batches of the items (order in
    sequential/order.json, logs in logs/batch-NNN/<alias>/), the gate read after each batch; stops once
    it is decided or at regress.max_items. A re-run replays the finished batches from their logs
    (no call) and goes on where it stopped."""
    import pandas as pd

    s = r.cfg.regress
    batches = sequential_plan([(e.task, e.id, e.cluster) for e in data.eval], s, r.dir)
    by_key = {(e.task, e.id): e for e in data.eval}
    out, frames = EvaluateOutput(r.dir / "logs"), []
    for i, keys in enumerate(batches):
        log_dir = r.dir / "logs" / f"batch-{i:03d}"
        ev = run_evaluate(models, [by_key[k] for k in keys], r.cfg.eval, r.cfg.graders, log_dir, r.judge,
                          judge_root=r.dir / "judge" / f"batch-{i:03d}")  # never under logs/: the frame reads all of it
        for alias, n in ev.calls.items():
            out.calls[alias] = out.calls.get(alias, 0) + n
        for name, g in ev.gates.items():
            out.gates[f"{name}/batch-{i:03d}"] = g
        frames.append(load_frame(log_dir))
        st = sequential_status(pd.concat(frames, ignore_index=True), batches, s, i + 1)
        print(f"[sequential] {st.line()}", flush=True)
        if st.stopped:
            break
    return out


def _student_dir(run_dir: Path, alias: str) -> Path:
    """`student/` for the usual single student named `student`; `students/<alias>/` otherwise."""
    return run_dir / "student" if alias == "student" else run_dir / "students" / alias


def _distil_teacher(r: Run, alias: str, data: DataOutput, gen: Any) -> Teacher | None:
    """finetune.objective kd / on_policy: the local teacher (preflight checked it is local and shares
    the student's tokenizer) and, per training row, the messages it answered -- rendered as the
    generate stage rendered them, and checked against each row's recorded prompt hash."""
    import hashlib
    import json

    from .cache import read_jsonl

    ftc = r.students[alias]
    if ftc.objective == "sft" or ftc.method not in LOCAL:
        return None
    cfg, teacher = r.cfg, r.cfg.models["teacher"]
    by_id = {q.id: q for q in data.train}
    prompts = []
    for p in read_jsonl(gen.provenance_file):
        msgs = teacher_prompt(by_id[p["id"]], teacher, cfg.generate, cfg.eval.prompt, cfg.eval.system)
        if hashlib.sha256(json.dumps(msgs).encode()).hexdigest() != p.get("teacher_prompt_sha256"):
            raise HarnessError(f"{gen.provenance_file}: row '{p['id']}' was answered from another prompt than this config renders; "
                               "re-run with cache=false to regenerate the teacher's answers")
        prompts.append(msgs)
    # cache=false: the teacher's log-probs are computed afresh (and not stored), like every stage
    return Teacher(model_identity(teacher), r.resolved["teacher"]["model_path"], prompts, r.cache_dir if cfg.cache else None)


def _finetune_student(r: Run, alias: str, train_file: Path, teacher: Teacher | None = None,
                      drift_prompts: list[list[dict[str, str]]] | None = None) -> tuple[FinetuneOutput, str]:
    """Fine-tune one student; returns its output and the inspect model string it is evaluated as
    (`r.resolved[alias]` is pointed at the trained checkpoint)."""
    student, ftc = r.cfg.models[alias], r.students[alias]
    hosted = ftc.method == "openai"
    try:
        client = r.endpoints.client(alias, max_retries=r.cfg.eval.max_retries, timeout=r.cfg.eval.timeout) if hosted else None
        ft = run_finetune(student, r.resolved[alias].get("model_path"), train_file, ftc, r.cache_dir, _student_dir(r.dir, alias),
                          r.cfg.cache, client, teacher, drift_prompts)
    except openai_errors() as e:
        raise r.endpoints.error(e, alias) from None
    print(f"[finetune] {alias}: {ftc.method}: {ft.model_path}{' (cached)' if ft.cached else ''}", flush=True)
    # the student is evaluated from the fine-tuned checkpoint, on the same backend as its base
    base_name = student.model.split("/", 1)[1]
    model = student.model if ftc.method == "none" else f"hf/{base_name}-{ftc.method}-{ft.key[:8]}"
    if hosted:  # the fine-tuned model, through the same endpoint as its base
        model = student.model.removesuffix(api_model_name(student.model)) + ft.model_path
        r.endpoints.preflight(alias, replace(student, model=model),
                              fix=f"the fine-tune cached in {r.cache_dir / 'finetune' / ft.key} is not on this endpoint; "
                                  "re-run with cache=false" if ft.cached else None)
    if ftc.method in LOCAL and is_vllm(student.model):  # served by vLLM: the base + its adapter, or the merged dir
        model, r.resolved[alias] = vllm_student(r.resolved[alias], ft.model_path, ftc.method)
    elif ftc.method in LOCAL:
        r.resolved[alias] = {**r.resolved[alias], "model_path": ft.model_path}
    return ft, model


def _model_note(r: Run, alias: str) -> str:
    m = r.cfg.models[alias]
    notes = ["passage in context" if m.context else "no context"]
    method = r.students[alias].method if alias in r.students else "none"
    if method != "none":
        own = ", ".join(f"{k}={v}" for k, v in _flat(m.finetune).items() if k != "method")
        notes.append(f"fine-tuned ({method}{', ' + own if own else ''}) on the teacher's answers")
    return ", ".join(notes)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _facts(r: Run, data: DataOutput, leak: Any, synth: Any, para: Any, gen: Any, fts: dict[str, FinetuneOutput],
           evaluated_as: dict[str, str]) -> dict[str, Any]:
    """What only the run itself knows (models, data, fine-tunes, timings, calls, paths); the
    report derives everything else from the logs (harness.report.build_summary)."""
    cfg, students = r.cfg, list(r.students)
    first = fts[students[0]] if students else None
    n_eval_by_task = {task: sum(1 for e in data.eval if e.task == task) for task in data.tasks}
    train = {"n_train": len(data.train), "n_train_rows": gen.n_rows if gen else 0, "n_train_gold": gen.n_gold if gen else 0} \
        if gen or students else {"n_train": 0}
    return {
        "experiment": cfg.experiment,
        "run": r.dir.name,
        "models": {alias: evaluated_as.get(alias, m.model) for alias, m in cfg.models.items()},
        "students": students,
        "model_notes": {alias: _model_note(r, alias) for alias in cfg.models},
        "judge_notes": r.judge_notes,
        "grader_fingerprints": {n: grader_fingerprint(asdict(g), asdict(cfg.eval)) for n, g in cfg.graders.items()},
        "data": {
            **train,
            "n_eval": len(data.eval),
            "n_eval_by_task": n_eval_by_task,
            **data_summary(data, leak, cfg.data, *((gen.train_file, gen.provenance_file) if gen else ())),
            "notes": r.data_notes,
            "filters": gen.filters if gen else {},
            **({"synthesis": {**synth.stats, "kept": len({q.id for q in synth.questions} & {t.id for t in data.train})}} if synth else {}),
            **({"paraphrases": {**para.stats, "leaked": len(data.leaked),
                                "kept": len({q.id for q in para.questions} & {t.id for t in data.train})}} if para else {}),
        },
        "finetune": first.metrics if first else None,  # the first student's (one-student runs: the student's)
        "finetunes": {a: ft.metrics for a, ft in fts.items()},
        "stage_seconds": {},
        "stage_calls": r.stage_calls,
        "model_calls": r.calls,
        "paths": {"logs": str(r.dir / "logs"), "student": first.model_path if first else None, "data": str(r.dir / "data"),
                  "students": {a: ft.model_path for a, ft in fts.items()}},
        "environment": {"python": platform.python_version(),
                        "cache_keys": {"data": data.key, "generate": gen.key if gen else None, "finetune": first.key if first else None,
                                       "finetunes": {a: ft.key for a, ft in fts.items()}}},
        "config": redact(asdict(cfg)),
    }


def _record_use(r: Run, gen: Any, fts: dict[str, FinetuneOutput]) -> None:
    """Tell the cache which run uses its entries (`harness cache ls`, `prune --older-than`)."""
    used = {"experiment": r.cfg.experiment, "run": r.dir.name, "run_dir": str(r.dir.resolve()),
            "used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if gen:
        record_use(r.cache_dir, "generate", gen.key, {**used, "what": f"teacher {r.cfg.models['teacher'].model} answers"})
    for alias, ft in fts.items():
        method = r.students[alias].method
        if method != "none":
            record_use(r.cache_dir, "finetune", ft.key, {**used, "what": f"{method} of {r.cfg.models[alias].model} ({alias})"})
