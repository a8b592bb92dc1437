"""The LLM judge: a grader that asks another model, checked rather than trusted.

The judge grades after the evaluation, never as the graded model: its requests are inspect evals of
their own, with the judge model (`<run>/judge/<grader>/`), sent a calibration sample first and the
rest only while its agreement with the reference grader is not clearly below the threshold
(_calibrate.py, docs/judge.md). Its verdicts are then added to the graded models' logs as the
grader's scores (inspect's re-scoring), so everything downstream reads them as before. A verdict
that cannot be parsed is recorded as unscored ("unparsed"), kept in the logs with the judge's raw
text, and counted in the report -- never silently dropped from a denominator. Whether the judge can
be believed is also measured on every run's judged samples against exact match (harness.report._judge).
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import EvalConfig, GraderConfig, result_config
from ..errors import HarnessError, redact, redact_text
from ._logs import finished

# inspect_ai is imported where the judge runs, not here: the pre-flight imports this package, and
# a bad-input error should not wait ~1.5 s for inspect to load
ROLE = "grader"
SCALES = ("binary", "1-5")
UNPARSED = "unparsed"  # the score value of a verdict that could not be read (NaN in the frame)

# placeholders a rubric may use, and those it must use per scale
PLACEHOLDERS = {"question", "answer", "target"}
REQUIRED = {"binary": {"answer", "target"}, "1-5": {"answer"}}

_BINARY = re.compile(r"\b(not\s+correct|not\s+right|incorrect|correct|wrong|right|yes|no)\b", re.IGNORECASE)
_SCALE = re.compile(r"(?<![\d.])([1-5])(?!\d|\.\d)")


def check_rubric(name: str, cfg: GraderConfig) -> None:
    """A rubric with a missing or unknown placeholder fails before any sample is graded."""
    if cfg.scale not in SCALES:
        raise HarnessError(f"graders.{name}.scale: unknown scale '{cfg.scale}'; available: {', '.join(SCALES)}")
    if not cfg.rubric:
        raise HarnessError(f"graders.{name}.rubric: a judge needs a rubric template (see conf/grader/judge.yaml)")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(cfg.rubric) if f is not None}
    except ValueError as e:
        raise HarnessError(f"graders.{name}.rubric: not a valid template ({e}); write placeholders as {{answer}}, "
                           "and literal braces as {{{{ }}}}") from None
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise HarnessError(f"graders.{name}.rubric: unknown placeholder(s) {sorted(unknown)}; available: "
                           f"{', '.join(sorted(PLACEHOLDERS))}")
    missing = REQUIRED[cfg.scale] - fields
    if missing:
        raise HarnessError(f"graders.{name}.rubric: missing placeholder(s) {', '.join('{' + m + '}' for m in sorted(missing))} "
                           f"(a {cfg.scale} rubric must show the judge those)")
    if cfg.judge is None or not cfg.judge.model:
        raise HarnessError(f"graders.{name}.judge: no judge model configured (e.g. graders.{name}.judge.model=openai/gpt-4o)")
    from ._calibrate import check_calibrate

    if (bad := check_calibrate(name, cfg.calibrate)) is not None:
        raise HarnessError(bad)


def parse_verdict(text: str, scale: str) -> float | None:
    """The judge's verdict as a score in [0, 1], or None when it cannot be read.

    binary: the verdict words (correct/incorrect, right/wrong, yes/no, "not correct") -> 1/0; a
    text with verdicts both ways (e.g. a judge echoing "CORRECT or INCORRECT") is unreadable.
    1-5: the first standalone digit 1..5 -> (k - 1) / 4, so all scores share the [0, 1] range.
    """
    if scale == "binary":
        found = {m.lower() in ("correct", "right", "yes") for m in _BINARY.findall(text)}
        return float(found.pop()) if len(found) == 1 else None
    m = _SCALE.search(text)
    return (int(m.group(1)) - 1) / 4 if m else None


def verdict_score(verdict: str, answer: str, cfg: GraderConfig) -> Any:
    """The judge's reply as the grader's inspect Score (as recorded in the graded model's log)."""
    from inspect_ai.scorer import Score

    value = parse_verdict(verdict, cfg.scale)
    return Score(
        value=UNPARSED if value is None else value,
        answer=answer,
        explanation=verdict,
        metadata={"raw": answer, "judge": cfg.judge.model, "scale": cfg.scale,  # type: ignore[union-attr]
                  "reference": cfg.reference, "verdict_text": verdict, "parse_failed": value is None},
    )


def judge_prompt(cfg: GraderConfig, question: str, answer: str, target: list[str]) -> str:
    return cfg.rubric.format(question=question, answer=answer, target=" / ".join(target))  # type: ignore[union-attr]


def run_judge(name: str, cfg: GraderConfig, judge: Judge, logs: dict[str, list[str]], tasks: list[str], eval_cfg: EvalConfig,
              grader_dir: Path) -> dict[str, Any]:
    """Judge every model's samples of `tasks` (the logs of `logs`: alias -> log files), checked on a
    calibration sample first (harness.evaluate._calibrate), and record the verdicts in those logs as
    the grader's scores (the unjudged samples of a stopped judge get none). Returns gate.json's record."""
    import numpy as np
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.scorer import Score, Target, scorer
    from inspect_ai.solver import TaskState, generate

    from ..cache import digest
    from ..stats import kappa_look
    from ._calibrate import Gate, finish, plan, run_looks, send_batch

    c = cfg.calibrate
    units: list[tuple[str, str, str, int]] = []  # (alias, task, sample id, epoch)
    prompts, answers, refs = [], [], []
    for alias, files in sorted(logs.items()):
        for f in files:
            log = read_eval_log(f)
            if log.eval.task not in tasks:
                continue
            for s in log.samples or []:
                answer = s.output.completion if s.output else ""
                target = s.target if isinstance(s.target, list) else [str(s.target)]
                ref = (s.scores or {}).get(cfg.reference)
                units.append((alias, log.eval.task, str(s.id), s.epoch))
                prompts.append(judge_prompt(cfg, str((s.metadata or {}).get("question", "")), answer, target))
                answers.append(answer)
                refs.append(np.nan if ref is None or not isinstance(ref.value, (int, float)) else float(ref.value))
    ref_arr = np.array(refs, dtype=float)
    strata = [(u[0], None if np.isnan(r) else r >= 0.5) for u, r in zip(units, ref_arr)]
    verdicts: dict[int, str] = {}

    @scorer(metrics=[])
    def verdict():  # noqa: ANN202
        async def score(state: TaskState, target: Target) -> Score:
            v = parse_verdict(state.output.completion, cfg.scale)
            return Score(value=UNPARSED if v is None else v, answer=state.output.completion)
        return score

    def send(where: str, batch: list[int]) -> int:
        if not batch:
            return 0
        samples = [Sample(id=":".join(map(str, units[i])), input=prompts[i], metadata={"unit": i}) for i in batch]
        task = Task(name=name, dataset=MemoryDataset(samples), solver=generate(), scorer=verdict())
        n = send_batch([task], grader_dir / where, {"judge": cfg.judge.model if cfg.judge else "", "rubric": cfg.rubric,
                                                     "max_tokens": cfg.max_tokens, "units": [units[i] for i in batch],
                                                     "prompts": digest([prompts[i] for i in batch])},
                       judge, cfg, eval_cfg, f"judge:{name}")
        for f in finished(grader_dir / where, [name]) or []:
            for s in read_eval_log(f).samples or []:
                verdicts[int((s.metadata or {})["unit"])] = s.output.completion if s.output else ""
        return n

    def look(done: list[int]) -> Any:
        j = np.array([np.nan if (v := parse_verdict(verdicts.get(i, ""), cfg.scale)) is None else v for i in done])
        return kappa_look(j, ref_arr[done], c.threshold, c.alpha, c.looks)

    gate = Gate(name, "judge", "kappa", cfg.reference, c.enabled, c.threshold, c.alpha, c.looks, len(units), 1)
    run_looks(gate, plan(strata, c), c, send, look, grader_dir)
    by_log: dict[tuple[str, str], dict[tuple[str, int], Any]] = {}
    for i, text in verdicts.items():
        alias, task, sid, epoch = units[i]
        by_log.setdefault((alias, task), {})[(sid, epoch)] = verdict_score(text, answers[i], cfg)
    for alias, files in logs.items():
        for f in files:
            record_scores(f, name, by_log, alias, grader_dir)
    return finish(gate, grader_dir)


def record_scores(path: str, name: str, by_log: dict[tuple[str, str], dict[tuple[str, int], Any]], alias: str,
                  tmp_dir: Path) -> None:
    """Add the judge's verdicts to a graded model's log as the scores of grader `name`, through
    inspect's own re-scoring (`inspect score`'s append), so the frame, the report and `inspect view`
    read them as any scorer's. A log that already holds exactly these verdicts is left as it is;
    one holding others (an earlier config's) has them replaced. Written to a temp file, then renamed."""
    import os

    from inspect_ai import score as inspect_score
    from inspect_ai.log import read_eval_log, write_eval_log
    from inspect_ai.model import get_model
    from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
    from inspect_ai.solver import TaskState

    log = read_eval_log(path)
    table = by_log.get((alias, log.eval.task), {})
    have = {(str(s.id), s.epoch): s.scores[name] for s in log.samples or [] if s.scores and name in s.scores}
    if {k: (v.value, v.explanation) for k, v in have.items()} == {k: (v.value, v.explanation) for k, v in table.items()}:
        return
    if have or any(sc.name == name for sc in log.eval.scorers or []):  # an earlier config's verdicts
        for s in log.samples or []:
            (s.scores or {}).pop(name, None)
        log.eval.scorers = [sc for sc in log.eval.scorers or [] if sc.name != name]
        if log.results is not None:
            log.results.scores = [sc for sc in log.results.scores if sc.name != name]
    if not table:
        return

    def build():  # its return annotation is set below
        async def score(state: TaskState, target: Target) -> Score | None:
            return table.get((str(state.sample_id), state.epoch))  # None: not judged (a stopped judge)
        return score

    build.__name__ = name
    build.__annotations__ = {"return": Scorer}  # read by inspect's registry (see _scorers.match_scorer)
    # the model is not called (the scorer looks verdicts up): a mock, so no hf/ model is loaded
    scored = inspect_score(log, scorer(metrics=[mean()], name=name)(build)(), action="append", display="none",
                           model=get_model("mockllm/model"), copy=False)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".scored-{os.getpid()}.eval"
    write_eval_log(scored, tmp)
    os.replace(tmp, path.removeprefix("file://"))


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

        from ._stage import register_model_info

        cfg = self.eval_cfg
        register_model_info(self.judge.model, self.args)
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

    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False

    now = json.loads(json.dumps(redact(asdict(cfg)), default=str))
    if not isinstance(summary.get("config"), dict) or result_config(summary["config"]) != result_config(now):
        return False
    by_task = (summary.get("data") or {}).get("n_eval_by_task") or {}
    tasks = [t for t in cfg.eval.tasks if by_task.get(t)]
    if any(g.kind == "judge" for g in cfg.graders.values()):
        for alias in summary.get("models") or {}:
            if not (run_dir / "logs" / alias).is_dir() or finished(run_dir / "logs" / alias, tasks) is None:
                return False
    # a judge's gate.json is written once its last batch is in and its verdicts are recorded
    for name, g in cfg.graders.items():
        if g.kind in ("judge", "pairwise") and not (run_dir / "judge" / name / "gate.json").is_file():
            return False
    return True
