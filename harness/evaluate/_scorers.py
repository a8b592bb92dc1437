"""inspect scorers built from `conf/grader/` entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import GraderConfig
from ..errors import HarnessError
from ..text import EXTRACT_MODES, LETTERS, MATCH_MODES, match, read_choice

# inspect_ai is imported where a scorer is built, not here: the pre-flight imports this package, and
# a bad-input error should not wait ~1.5 s for inspect to load
if TYPE_CHECKING:
    from inspect_ai.scorer import Scorer

KINDS = ("match", "choice", "judge", "pairwise")


def check_grader(name: str, cfg: GraderConfig) -> None:
    """Fail before any sample is graded, naming the key."""
    if cfg.kind not in KINDS:
        raise HarnessError(f"graders.{name}.kind: unknown grader kind '{cfg.kind}'; available: {', '.join(KINDS)}")
    if cfg.kind == "judge":
        from ._judge import check_rubric

        return check_rubric(name, cfg)
    if cfg.kind == "pairwise":
        from ._pairwise import check_pairwise

        return check_pairwise(name, cfg)
    if cfg.kind == "choice":
        return None
    for key in ("tolerance", "rel_tolerance"):
        if getattr(cfg, key) < 0:
            raise HarnessError(f"graders.{name}.{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.mode not in MATCH_MODES:
        raise HarnessError(f"graders.{name}.mode: unknown mode '{cfg.mode}'; available: {', '.join(MATCH_MODES)}")
    if cfg.extract not in EXTRACT_MODES:
        raise HarnessError(
            f"graders.{name}.extract: unknown extraction mode '{cfg.extract}'; available: {', '.join(EXTRACT_MODES)}"
        )
    if cfg.extract == "regex" and not cfg.regex:
        raise HarnessError(f"graders.{name}.regex: extraction mode 'regex' needs a regex")


def build_scorer(name: str, cfg: GraderConfig) -> Scorer:
    """The in-eval scorer of a match or choice grader (a judge grades after the evaluation:
    _judge.run_judge, checked on a sample first)."""
    if cfg.kind == "choice":
        return choice_scorer(name)
    return match_scorer(name, cfg)


def choice_scorer(name: str) -> Scorer:
    """A multiple-choice grader: reads the reply's pick with harness.text.read_choice and compares
    it with the gold's letter as shown.

    inspect's own pair (the multiple_choice() solver, the choice() scorer) is not used: its parse
    reads only "ANSWER: X" lines, so a small model's "C) Paris" or "The answer is C" would score
    wrong; the solver writes its own prompt, which the student's training prompt and the
    pre-flight's token count would not see; and with shuffled choices it overwrites the model's
    reply in the log with "ANSWER: X". The items still carry inspect's Sample.choices, rendered as
    its template renders them ("A) text")."""
    from inspect_ai.scorer import Score, Scorer, Target, accuracy, scorer, stderr
    from inspect_ai.solver import TaskState

    def build():
        async def score(state: TaskState, target: Target) -> Score:
            answer = state.output.completion
            choices = [c.value for c in state.choices]
            pick, rule = read_choice(answer, choices)
            letter = LETTERS[pick] if pick is not None else ""
            order = list(state.metadata.get("choices_order") or range(len(choices)))
            return Score(
                value=1.0 if letter and letter == target.text.strip() else 0.0,
                answer=letter,
                explanation=f"choice: read {letter or 'no pick'} ({rule}) vs gold {target.text}",
                metadata={"raw": answer, "extracted": letter, "rule": rule, "gold": target.text,
                          "pick_in_file": LETTERS[order[pick]] if pick is not None else "", "k": len(choices)},
            )

        return score

    build.__name__ = name
    build.__annotations__ = {"return": Scorer}
    return scorer(metrics=[accuracy(), stderr()], name=name)(build)()


def match_scorer(name: str, cfg: GraderConfig) -> Scorer:
    """A scorer registered under the grader's own name, so `exact` and `contains` never mix.

    Each score records the raw answer, the extracted span, both normalised forms and the verdict.
    """
    from inspect_ai.scorer import Score, Scorer, Target, accuracy, scorer, stderr
    from inspect_ai.solver import TaskState

    check_grader(name, cfg)

    def build():  # its return annotation is set below
        async def score(state: TaskState, target: Target) -> Score:
            answer = state.output.completion
            question = str(state.metadata.get("question", ""))
            v = match(answer, list(target), cfg.mode, cfg.extract, question, cfg.regex, cfg.tolerance, cfg.rel_tolerance)
            return Score(
                value=1.0 if v.correct else 0.0,
                answer=v.extracted,
                explanation=f"{cfg.mode}: '{v.answer_norm}' vs gold '{v.gold_norm}'",
                metadata={
                    "raw": answer,
                    "extracted": v.extracted,
                    "answer_norm": v.answer_norm,
                    "gold_norm": v.gold_norm,
                    "mode": cfg.mode,
                    "extract": cfg.extract,
                },
            )

        return score

    build.__name__ = name
    # inspect's registry reads this (eval_str) to re-create the scorer: a class, not a string
    build.__annotations__ = {"return": Scorer}
    return scorer(metrics=[accuracy(), stderr()], name=name)(build)()
