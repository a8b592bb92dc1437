"""The LLM judge: a grader that asks another model, checked rather than trusted.

The judge is inspect's *required* model role `grader`: if no judge is bound the scorer fails
instead of quietly letting the graded model grade itself (inspect's own model-graded scorers fall
back to the evaluated model). A verdict that cannot be parsed is recorded as unscored ("unparsed"),
kept in the logs with the judge's raw text, and counted in the report -- never silently dropped
from a denominator. Whether the judge can be believed is measured on every run against exact
match (see harness.report._judge).
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import EvalConfig, GraderConfig, result_config
from ..errors import HarnessError, redact, redact_text
from ._logs import finished

# inspect_ai is imported where a scorer is built, not here: the pre-flight imports this package, and
# a bad-input error should not wait ~1.5 s for inspect to load
if TYPE_CHECKING:
    from inspect_ai.scorer import Scorer

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


def judge_scorer(name: str, cfg: GraderConfig) -> Scorer:
    """A scorer registered under the grader's name that asks the `grader` role model."""
    from inspect_ai.model import GenerateConfig, get_model
    from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
    from inspect_ai.solver import TaskState

    from ..models import temperature_for

    check_rubric(name, cfg)
    assert cfg.judge is not None
    greedy_t = temperature_for(cfg.judge.model, cfg.judge.args, 0.0)  # the judge decodes greedily

    def build():  # its return annotation is set below
        async def score(state: TaskState, target: Target) -> Score:
            judge = get_model(role=ROLE, required=True)
            answer = state.output.completion
            prompt = cfg.rubric.format(question=str(state.metadata.get("question", "")), answer=answer,
                                       target=" / ".join(target))  # type: ignore[union-attr]
            out = await judge.generate(prompt, config=GenerateConfig(max_tokens=cfg.max_tokens, temperature=greedy_t))
            verdict = out.completion
            value = parse_verdict(verdict, cfg.scale)
            return Score(
                value=UNPARSED if value is None else value,
                answer=answer,
                explanation=verdict,
                metadata={"raw": answer, "judge": cfg.judge.model, "scale": cfg.scale,  # type: ignore[union-attr]
                          "reference": cfg.reference, "verdict_text": verdict, "parse_failed": value is None},
            )

        return score

    build.__name__ = name
    build.__annotations__ = {"return": Scorer}  # read by inspect's registry (see _scorers.match_scorer)
    return scorer(metrics=[mean()], name=name)(build)()


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
    for name, g in cfg.graders.items():
        if g.kind == "pairwise":
            log_dir = run_dir / "judge" / name
            if not log_dir.is_dir() or finished(log_dir, [f"{name}_{a}_vs_{b}" for a, b in g.pairs]) is None:
                return False
    return True
