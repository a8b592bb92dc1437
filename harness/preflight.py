"""Every check that can run before any stage does, in one place.

`harness run` calls `validate` for every value of a sweep before the first job starts (and the
pipeline calls it again, for callers that skip the CLI), so a typo in a key, a bad data file, an
unknown task, a missing model file, a judge that cannot be used or an endpoint without its key
fails in one line, before anything is written or a minute of compute is spent.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .cache import user_cache_dir
from .config import FinetuneConfig, GraderConfig, HarnessConfig, ModelConfig, student_aliases, student_finetune
from .data import EvalItem, build, data_notes
from .errors import HarnessError
from .evaluate import check_grader, check_tasks, is_inspect_task, item_messages, task_names
from .finetune import IF_BASE_PREFERRED, LOCAL, METHODS, OBJECTIVES, RETIRED_SFT_FRACTION, check_scale, n_epochs, sharding
from .generate import check_generate
from .guards import check_config
from .models import (
    check_device,
    check_endpoint,
    check_sampling,
    check_vllm,
    check_vllm_students,
    context_window,
    is_openai,
    prompt_tokens,
    tokenizer,
)
from .prompts import chat, render
from .report import read_labels
from .text import as_number, kept_articles, normalise


def validate(cfg: HarnessConfig) -> None:
    """Everything that can be checked before any work starts (and before anything is written)."""
    if not cfg.models:
        raise HarnessError("models is empty: add the models to evaluate, e.g. +model@models.current=smollm2")
    students = student_aliases(cfg)
    # no student = an evaluation-only experiment (generate and finetune are skipped); with students,
    # the teacher writes their training answers
    if "teacher" in cfg.models and not students:
        raise HarnessError("no model has student: true; mark the model(s) to fine-tune, e.g. models.student.student=true "
                           "(a teacher only writes training answers; an evaluation-only experiment names its models "
                           "otherwise, e.g. experiment=upgrade)")
    if students and "teacher" not in cfg.models:
        raise HarnessError(f"models.teacher is missing: the teacher writes the training answers of the student(s) "
                           f"{', '.join(students)}; add one (model@models.teacher=smollm2) or drop student: true")
    for alias in ("teacher", "baseline"):
        if alias in students:
            raise HarnessError(f"models.{alias}.student: the {alias} is a reference model and cannot be fine-tuned; "
                               "add a student under another alias")
    for alias, m in cfg.models.items():
        if m.finetune and not m.student:
            raise HarnessError(f"models.{alias}.finetune: only a student (student: true) is fine-tuned")
    for alias in students:
        _check_student(alias, cfg.models[alias], student_finetune(cfg, alias))
        _check_objective(cfg, alias, student_finetune(cfg, alias))
    # devices, processes, vLLM serving (docs/scale.md): a GPU asked for but absent fails here (local
    # hf/ models are evaluated on finetune.device too, so also in a run without a student)
    check_device(cfg.finetune.device, cfg.finetune.precision)
    for alias, m in cfg.models.items():
        check_vllm(alias, m, student_finetune(cfg, alias).method if alias in students else None)
    check_vllm_students({a: (cfg.models[a], student_finetune(cfg, a).method) for a in students})
    for alias, m in cfg.models.items():
        path = m.args.get("model_path")
        if isinstance(path, str) and not path.startswith("embedded:") and not Path(path).exists():
            raise HarnessError(f"models.{alias}.args.model_path: no such file or directory: {path}")
    check_config(cfg)  # names that become paths, results/cache dir placement, model files (harness/guards.py)
    check_tasks(cfg.eval)  # before any stage: a typo here would otherwise cost a whole fine-tune
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
    # a temperature > 0 on a model that decodes greedily would be ignored without a word
    check_sampling("eval.temperature", cfg.eval.temperature, cfg.models)
    if students:
        check_sampling("generate.temperature", cfg.generate.temperature, {"teacher": cfg.models["teacher"]})
    if cfg.regress.enabled or cfg.regress.sequential:
        _check_gate(cfg)
    train, evals, _, _ = build(cfg.data, training=bool(students))  # bad data files fail here, before a run dir exists
    if students:
        check_generate(cfg.generate)
    check_golds(cfg, evals)
    check_context(cfg, train, evals)


def _where(cfg: HarnessConfig, it: EvalItem) -> str:
    return f"{cfg.data.eval_path}: item '{it.id}'" if cfg.data.eval_path and it.task == "heldout" else f"data: {it.task} item '{it.id}'"


def _mc_tasks(cfg: HarnessConfig, evals: list[EvalItem]) -> dict[str, tuple[list[EvalItem], list[EvalItem]]]:
    """task -> (multiple-choice items, open items), for the evaluated tasks."""
    out: dict[str, tuple[list[EvalItem], list[EvalItem]]] = {}
    for t in cfg.eval.tasks:
        its = [e for e in evals if e.task == t]
        out[t] = ([e for e in its if e.choices], [e for e in its if not e.choices])
    return out


AUTO_CHOICE = "choice"  # the name of the grader eval.auto_choice adds


def with_choice_grader(cfg: HarnessConfig) -> tuple[HarnessConfig, str | None]:
    """Multiple choice scored as multiple choice by default (eval.auto_choice): when a task's items
    all carry choices and no grader reads choices, the config with a `choice` grader added, and its
    name (None: nothing added). Decided per task, not per item: a task that mixes items with and
    without choices gets nothing (the pre-flight note says why). The graders already configured stay,
    as contrasts on that task (harness.report.choice_contrasts). Call before `validate`, which then
    checks the completed config (a `regress.graders: [choice]` included)."""
    if (not cfg.eval.auto_choice or cfg.data.name not in ("jsonl", "csv") or not cfg.data.eval_path
            or any(g.kind == "choice" for g in cfg.graders.values())):
        return cfg, None
    try:
        _, evals, _, _ = build(cfg.data, training=bool(student_aliases(cfg)))
    except HarnessError:
        return cfg, None  # validate says what is wrong with the data, in its own order
    split = _mc_tasks(cfg, evals).values()
    if not any(mc and not open_ for mc, open_ in split) or any(mc and open_ for mc, open_ in split):
        return cfg, None
    name = AUTO_CHOICE if AUTO_CHOICE not in cfg.graders else f"{AUTO_CHOICE}_auto"
    return replace(cfg, graders={**cfg.graders, name: GraderConfig(kind="choice")}), name


def check_golds(cfg: HarnessConfig, evals: list[EvalItem]) -> None:
    """A gold a match grader can never match is refused, naming the item: one with no letter or
    digit left after normalisation ("?", "—"), articles kept (harness.text.kept_articles). A choice
    grader needs a task whose items all have choices."""
    matchers = [n for n, g in cfg.graders.items() if g.kind == "match"]
    choosers = [n for n, g in cfg.graders.items() if g.kind == "choice"]
    for it in evals:
        if matchers and it.task in cfg.eval.tasks and not normalise(it.answer, kept_articles([it.answer])):
            raise HarnessError(f"{_where(cfg, it)}: the answer {it.answer!r} has no letter or digit, so "
                               f"{', '.join(matchers)} could never match it; give the item a gold answer in words or numbers")
    for task, (mc, open_) in _mc_tasks(cfg, evals).items():
        if choosers and mc and open_:
            raise HarnessError(f"{_where(cfg, open_[0])}: has no choices, but other items of task {task} do; the choice grader "
                               f"({choosers[0]}) reads letters: give every item of the file choices, or none")
    if choosers and not any(mc for mc, _ in _mc_tasks(cfg, evals).values()):
        raise HarnessError(f"graders.{choosers[0]}: a choice grader, but no evaluated item has choices; give the items of "
                           f"data.eval_path a '{cfg.data.columns.choices}' list (CSV: columns A, B, ...), or drop the grader")


def notes(cfg: HarnessConfig, added: str | None = None) -> list[str]:
    """What the pre-flight says before any stage without refusing: fields of the data files the
    harness does not read, golds that all normalise to one value, one-letter golds without
    choices, multiple-choice tasks (the choice grader, `added` by eval.auto_choice or not, and the
    contrasts beside it), and numeric golds graded by a `contains` grader (it credits an
    intermediate number of a worked answer). Call after `validate`. Every override a note suggests
    composes as printed (tests/test_suggestions.py runs them)."""
    students = student_aliases(cfg)
    _, evals, _, _ = build(cfg.data, training=bool(students))
    out = list(data_notes(cfg.data, training=bool(students)))
    matchers = {n: g for n, g in cfg.graders.items() if g.kind == "match"}
    choosers = [n for n, g in cfg.graders.items() if g.kind == "choice"]
    finals = [n for n, g in matchers.items() if g.extract == "final_answer"]
    for task, (mc, open_) in _mc_tasks(cfg, evals).items():
        out += _mc_notes(task, mc, open_, cfg, choosers, added)
        if matchers and len(open_) >= 2:
            golds = {" ".join(normalise(e.answer, kept_articles([e.answer]))) for e in open_}
            if len(golds) == 1:
                out.append(f"{task}: all {len(open_)} golds normalise to one value ({golds.pop()!r}); a match grader then measures "
                           "only how often a model says it -- check the data")
            letters = [e for e in open_ if len(e.answer.strip()) == 1 and e.answer.strip().isalpha()]
            if letters and len(letters) >= len(open_) / 2:
                out.append(f"{task}: {len(letters)} of {len(open_)} golds are one letter ({_where(cfg, letters[0])}: {letters[0].answer!r}) "
                           "and the items have no choices; exact/contains compare the letter as written, but a reply's letter is "
                           f"read reliably only from choices: give the items a '{cfg.data.columns.choices}' list (the choice "
                           "grader is then added by itself)")
        numeric = [e for e in open_ if as_number(e.answer) is not None]
        for name, g in matchers.items():
            if g.mode == "contains" and g.extract != "final_answer" and numeric and len(numeric) >= len(open_) / 2:
                fix = (f"graders.{finals[0]} reads the final answer" if finals else
                       "for answers after reasoning add +grader@graders.final=final_answer")
                out.append(f"graders.{name}: {len(numeric)} of {len(open_)} golds of {task} are numbers, and `contains` credits any "
                           f"number of the answer that equals the gold, intermediate steps of a worked answer too; {fix} "
                           "(the report counts the items it credits so)")
    return out


def _mc_notes(task: str, mc: list[EvalItem], open_: list[EvalItem], cfg: HarnessConfig, choosers: list[str],
              added: str | None) -> list[str]:
    """What a multiple-choice task is scored with, in one line (nothing for a task without choices)."""
    if not mc:
        return []
    others = [n for n, g in cfg.graders.items() if g.kind in ("match", "judge")]
    if open_:
        return [f"{task}: {len(mc)} of {len(mc) + len(open_)} items have choices, the others not ({_where(cfg, open_[0])}); "
                "the choice grader scores a task whose items all have choices, so none reads these letters: give every item "
                f"of the task a '{cfg.data.columns.choices}' list, or none"]
    if not choosers:
        off = " (eval.auto_choice=false)" if not cfg.eval.auto_choice else ""
        return [f"{task}: {len(mc)} multiple-choice items and no choice grader{off}; "
                f"{', '.join(others) or 'the graders'} compare the letter as written -- add +grader@graders.choice=choice"]
    how = ", added because the items carry choices (eval.auto_choice=false turns this off)" if added else ""
    contrast = (f"; {', '.join(others)} stay as contrasts: shown, left out of the comparisons and the gate" if others else "")
    return [f"{task}: {len(mc)} multiple-choice items, scored by the choice grader `{choosers[0]}`{how}{contrast}"]


# tokens a chat template adds around the messages (role markers, a default system prompt): the
# cheap bound below must stay an upper bound
_TEMPLATE_SLACK = 128


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def check_context(cfg: HarnessConfig, train: list, evals: list) -> None:
    """Every prompt a model will read, plus the tokens it may write, fits its context window.

    A prompt's token count is at most its UTF-8 byte count (every token covers at least a byte) plus
    the template's own tokens, so most prompts pass on that bound without a tokenizer; only a prompt
    near the limit is tokenized, with the model's own tokenizer and chat template."""
    e, g = cfg.eval, cfg.generate
    where = (lambda it: f"{cfg.data.eval_path}: item '{it.id}'") if cfg.data.eval_path else (lambda it: f"data: item '{it.id}'")
    twhere = (lambda t: f"{cfg.data.train_path}: row '{t.id}'") if cfg.data.train_path else (lambda t: f"data: training row '{t.id}'")
    # (model entry, what it is called, [(where, messages)], the tokens it may add, the key that sets them)
    checks: list[tuple[ModelConfig, str, list[tuple[str, list[dict[str, str]]]], int, str]] = []
    for alias, m in cfg.models.items():
        ctx = e.context_prompt if m.context else None
        checks.append((m, f"models.{alias}", [(where(it), item_messages(it, e.prompt, ctx, e.system, e.choices_prompt, e.shuffle_choices))
                                              for it in evals],
                       e.max_tokens, "eval.max_tokens"))
    if train and "teacher" in cfg.models:
        t = cfg.models["teacher"]
        checks.append((t, "models.teacher", [(twhere(q), chat(e.system, render(g.prompt, q.question, q.passage) if t.context and q.passage
                                                             else render(e.prompt, q.question))) for q in train],
                       g.max_tokens, "generate.max_tokens"))
        for alias in student_aliases(cfg):  # the training rows: the student's prompt and the teacher's answer
            checks.append((cfg.models[alias], f"models.{alias}", [(twhere(q), chat(e.system, render(e.prompt, q.question))) for q in train],
                           g.max_tokens, "generate.max_tokens"))
    for name, gr in cfg.graders.items():
        if gr.judge is not None and gr.rubric:
            answers = 2 if gr.kind == "pairwise" else 1  # the judged answers are at most eval.max_tokens each
            checks.append((gr.judge, f"graders.{name}.judge",
                           [(where(it), chat(None, gr.rubric.format_map(_Blank(question=it.question, target=it.answer)))) for it in evals],
                           gr.max_tokens + answers * e.max_tokens, f"graders.{name}.max_tokens + eval.max_tokens"))
    for m, name, prompts, budget, key in checks:
        window = context_window(m)
        if window is None:
            continue
        limit, source = window
        near = [(w, msgs) for w, msgs in prompts
                if sum(len(x["content"].encode("utf-8")) for x in msgs) + _TEMPLATE_SLACK + budget > limit]
        if not near:
            continue
        count = prompt_tokens(m, user_cache_dir())  # the converted embedded model's tokenizer, if there
        if count is None:  # no tokenizer to be had offline: the bound alone would refuse prompts that fit
            continue
        for w, msgs in near:
            n = count(msgs)
            if n + budget > limit:
                raise HarnessError(f"{w}: the prompt for {name} is {n} tokens; with {key} = {budget} it does not "
                                   f"fit the model's context window of {limit} tokens ({source}); shorten it, or set data.max_chars "
                                   "to refuse such rows")


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
        n_epochs(ft)
    if ft.method in LOCAL:
        check_scale(ft, f"models.{alias}.finetune" if any(k in student.finetune for k in ("device", "precision", "processes")) else "finetune")


def _check_objective(cfg: HarnessConfig, alias: str, ft: FinetuneConfig) -> None:
    """finetune.objective kd / on_policy compare the teacher's and the student's next-token
    distributions token by token: the teacher must run here (its logits, not only its text) and
    read the student's tokens. Refused otherwise, before any stage, in one line."""
    key = f"models.{alias}.finetune.objective" if "objective" in cfg.models[alias].finetune else "finetune.objective"
    if ft.objective not in OBJECTIVES:
        raise HarnessError(f"{key}: unknown objective '{ft.objective}'; available: {', '.join(OBJECTIVES)}")
    kd, op = ft.kd, ft.on_policy
    for name, value, ok in (("kd.weight", kd.weight, 0 <= kd.weight <= 1), ("kd.beta", kd.beta, 0 <= kd.beta <= 1),
                            ("kd.temperature", kd.temperature, kd.temperature > 0), ("kd.top_k", kd.top_k, kd.top_k >= 0),
                            ("on_policy.steps", op.steps, op.steps >= 0), ("on_policy.lr", op.lr, op.lr > 0),
                            ("on_policy.beta", op.beta, 0 <= op.beta <= 1),
                            ("on_policy.temperature", op.temperature, op.temperature > 0),
                            ("on_policy.max_new_tokens", op.max_new_tokens, op.max_new_tokens > 0)):
        if not ok:
            raise HarnessError(f"finetune.{name}: {value} is out of range (weight, beta in [0, 1]; temperature, lr > 0; "
                               "top_k, steps >= 0; max_new_tokens > 0)")
    if op.if_base_preferred not in IF_BASE_PREFERRED:
        raise HarnessError(f"finetune.on_policy.if_base_preferred: unknown value '{op.if_base_preferred}'; "
                           f"available: {', '.join(IF_BASE_PREFERRED)}")
    if op.sft_fraction != 0:
        raise HarnessError(RETIRED_SFT_FRACTION.format(op.sft_fraction))
    if ft.objective == "sft":
        return
    why = f"{key}={ft.objective} trains on the teacher's token distributions"
    if ft.method not in LOCAL:
        raise HarnessError(f"{why}, which only a local fine-tune can (finetune.method is '{ft.method}'); "
                           "use finetune=lora or finetune=full, or finetune.objective=sft")
    # on any device and over DDP processes (each its share of the batch); not sharded: the teacher passes
    # and the sampling call the model's modules outside the sharded forward (docs/scale.md)
    shard = sharding(ft.accelerate_config)
    if shard:
        where = f"models.{alias}.finetune" if "accelerate_config" in cfg.models[alias].finetune else "finetune"
        raise HarnessError(f"{why}, and {where}.accelerate_config={ft.accelerate_config} shards the model (distributed_type "
                           f"{shard}): its teacher passes and sampling would run the sharded modules outside the training "
                           "forward; use DDP (no accelerate_config, or distributed_type: MULTI_GPU), or finetune.objective=sft")
    t = cfg.models["teacher"]
    path = t.args.get("model_path")
    if is_openai(t.model) or t.serve or not t.model.startswith("hf/") or not isinstance(path, str):
        where = "a hosted model" if is_openai(t.model) and not t.serve else "served over HTTP" if t.serve or is_openai(t.model) \
            else "not a local hf/ checkpoint"
        raise HarnessError(f"{why}, but models.teacher ('{t.model}') is {where}: its logits cannot be read; use a local "
                           "hf/ teacher with args.model_path that shares the student's tokenizer, or finetune.objective=sft")
    s_path = cfg.models[alias].args.get("model_path")
    if path == s_path:
        return
    t_tok, s_tok = tokenizer(path, user_cache_dir()), tokenizer(s_path, user_cache_dir())
    if t_tok is None or s_tok is None:
        raise HarnessError(f"{why}: the tokenizer of {'models.teacher' if t_tok is None else f'models.{alias}'} "
                           f"({path if t_tok is None else s_path}) cannot be loaded to check that teacher and student share it")
    if t_tok.get_vocab() != s_tok.get_vocab():
        raise HarnessError(f"{why}, but models.teacher's tokenizer ({path}, {len(t_tok)} tokens) is not models.{alias}'s "
                           f"({s_path}, {len(s_tok)} tokens); use a teacher with the student's tokenizer, or finetune.objective=sft")


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
        elif "teacher" in cfg.models and _family(g.judge.model) == _family(cfg.models["teacher"].model):
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


def _check_gate(cfg: HarnessConfig) -> None:
    """regress.*: the gate at the end of the run names two of this run's models, and tasks and
    graders it evaluates."""
    from .regress import check_settings

    s = cfg.regress
    if s.sequential and not s.enabled:
        raise HarnessError("regress.sequential=true gates while evaluating: it needs regress.enabled=true "
                           "(experiment=upgrade sets it)")
    if s.sequential and cfg.eval.limit is not None:
        raise HarnessError(f"eval.limit={cfg.eval.limit} would cut every batch of regress.sequential; "
                           "use regress.max_items instead")
    check_settings(s)
    for key in ("baseline", "candidate"):
        alias = getattr(s, key)
        if alias not in cfg.models:
            raise HarnessError(f"regress.{key}: '{alias}' is not a model of this experiment ({', '.join(cfg.models)})")
    if s.baseline == s.candidate:
        raise HarnessError(f"regress.baseline and regress.candidate are both '{s.baseline}'; name two models")
    names = task_names(cfg.eval)  # an inspect task is gated under the name its logs carry (file.py@capitals: capitals)
    for t in s.tasks:
        if t not in names and t not in names.values():
            raise HarnessError(f"regress.tasks: '{t}' is not evaluated (eval.tasks: {', '.join(cfg.eval.tasks)})")
    foreign = [t for t in cfg.eval.tasks if is_inspect_task(t)]
    if s.sequential and foreign:
        raise HarnessError(f"regress.sequential: eval.tasks '{foreign[0]}' is an inspect task with its own dataset, which the "
                           "sequential gate cannot split into batches; use the fixed gate (regress.sequential=false) for it")
    for g in s.graders:
        if g not in cfg.graders or cfg.graders[g].kind == "pairwise":
            raise HarnessError(f"regress.graders: '{g}' is not a per-item grader of this run "
                               f"({', '.join(n for n, x in cfg.graders.items() if x.kind != 'pairwise')})")
