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

from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
from inspect_ai.solver import TaskState

from ..config import GraderConfig
from ..errors import HarnessError

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
        raise HarnessError(f"graders.{name}.rubric: a judge needs a rubric template (see harness/conf/grader/judge.yaml)")
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

    check_rubric(name, cfg)
    assert cfg.judge is not None

    def build() -> Scorer:
        async def score(state: TaskState, target: Target) -> Score:
            judge = get_model(role=ROLE, required=True)
            answer = state.output.completion
            prompt = cfg.rubric.format(question=str(state.metadata.get("question", "")), answer=answer,
                                       target=" / ".join(target))  # type: ignore[union-attr]
            out = await judge.generate(prompt, config=GenerateConfig(max_tokens=cfg.max_tokens, temperature=0.0))
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
    return scorer(metrics=[mean()], name=name)(build)()
