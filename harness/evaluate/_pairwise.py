"""Pairwise judging: which of two models answered an item better?

Judges prefer whichever answer they read first (or second) more often than chance, so every item is
judged in both orders. A verdict counts only when the two orders agree (same winner, or a tie both
times); the report gives the position-consistency rate next to the wins, so a judge that mostly
follows position is visible as such. The judge is the model bound to the `grader` role; its
requests and verdicts are ordinary inspect logs under `<run>/judge/<grader>/`.
"""

from __future__ import annotations

import re
import string
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import EvalConfig, GraderConfig
from ..errors import HarnessError

if TYPE_CHECKING:  # pandas loads with the frame, not with the pre-flight
    import pandas as pd

PLACEHOLDERS = {"question", "target", "first", "second"}
REQUIRED = {"first", "second"}
_CHOICE = re.compile(r"\b(A|B)\b|\b(tie|equal|same|both)\b", re.IGNORECASE)


def check_pairwise(name: str, cfg: GraderConfig) -> None:
    if not cfg.rubric:
        raise HarnessError(f"graders.{name}.rubric: a pairwise judge needs a rubric template (see conf/grader/pairwise.yaml)")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(cfg.rubric) if f is not None}
    except ValueError as e:
        raise HarnessError(f"graders.{name}.rubric: not a valid template ({e})") from None
    if fields - PLACEHOLDERS:
        raise HarnessError(f"graders.{name}.rubric: unknown placeholder(s) {sorted(fields - PLACEHOLDERS)}; available: "
                           f"{', '.join(sorted(PLACEHOLDERS))}")
    if REQUIRED - fields:
        raise HarnessError(f"graders.{name}.rubric: missing placeholder(s) "
                           f"{', '.join('{' + m + '}' for m in sorted(REQUIRED - fields))}")
    if not cfg.pairs:
        raise HarnessError(f"graders.{name}.pairs: list the model pairs to judge, e.g. [[teacher, student]]")
    if cfg.judge is None or not cfg.judge.model:
        raise HarnessError(f"graders.{name}.judge: no judge model configured")


def parse_choice(text: str) -> str | None:
    """"A", "B" or "tie" from the judge's reply (the first one it names), None if it names none.
    A lone lower-case "a" is an article, not a verdict."""
    for m in _CHOICE.finditer(text):
        if m.group(1):
            if m.group(1) in ("A", "B"):
                return m.group(1)
            continue
        return "tie"
    return None


def run_pairwise(name: str, cfg: GraderConfig, judge: Any, frame: pd.DataFrame, questions: dict[tuple[str, str], str],
                 eval_cfg: EvalConfig, log_dir: Path) -> int:
    """Judge every pair of `cfg.pairs` on every item both answered, in both orders. Returns the
    number of judge requests sent (0 when the logs are complete: eval_set resumes)."""
    from inspect_ai import Task, eval_set
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.scorer import Score, Target, scorer
    from inspect_ai.solver import TaskState, generate

    from ..cache import digest
    from ..models import temperature_for
    from ._logs import claim, completed, drop_interrupted, finished

    @scorer(metrics=[])
    def choice():  # noqa: ANN202
        async def score(state: TaskState, target: Target) -> Score:
            c = parse_choice(state.output.completion)
            return Score(value=c or "unparsed", answer=state.output.completion,
                         metadata={**state.metadata, "parse_failed": c is None})
        return score

    first = frame[frame["epoch"] == frame["epoch"].min()]
    answers = first.drop_duplicates(["task", "id", "alias"]).set_index(["task", "id", "alias"])
    tasks = []
    for a, b in cfg.pairs:
        samples = []
        for task, item in sorted({(t, i) for t, i, _ in answers.index}):
            if (task, item, a) not in answers.index or (task, item, b) not in answers.index:
                continue
            ans = {a: str(answers.loc[(task, item, a), "answer"]), b: str(answers.loc[(task, item, b), "answer"])}
            question = questions.get((task, item), "")
            for order, (x, y) in (("ab", (a, b)), ("ba", (b, a))):
                prompt = cfg.rubric.format(question=question, target=answers.loc[(task, item, a), "target"],  # type: ignore[union-attr]
                                           first=ans[x], second=ans[y])
                samples.append(Sample(id=f"{task}:{item}:{order}", input=prompt,
                                      metadata={"task": task, "item": item, "order": order, "a": a, "b": b}))
        tasks.append(Task(name=f"{name}_{a}_vs_{b}", dataset=MemoryDataset(samples), solver=generate(), scorer=choice()))
    claim(log_dir, digest({"grader": cfg.rubric, "pairs": cfg.pairs, "judge": cfg.judge.model if cfg.judge else "",
                            "n": [len(t.dataset) for t in tasks], "answers": digest(answers["answer"].astype(str).tolist())}))
    drop_interrupted(log_dir)  # a kill after eval_set finished, before it tidied up
    if finished(log_dir, [t.name for t in tasks]) is not None:
        return 0  # every verdict is in the logs: no judge to open (an hf/ judge would load its weights)
    started = time.time()
    ok, _ = eval_set(tasks, log_dir=str(log_dir), model=judge.model, log_level="warning", retry_attempts=2,
                     fail_on_error=eval_cfg.fail_on_error, display=None if sys.stdout.isatty() else "plain",
                     max_tokens=cfg.max_tokens, temperature=temperature_for(judge.judge.model, judge.args, 0.0),
                     metadata={"alias": f"pairwise:{name}"})
    if not ok:
        raise RuntimeError(f"pairwise judging '{name}' did not complete; logs in {log_dir}, re-run to resume")
    drop_interrupted(log_dir)  # logs a killed run left `started`: eval_set copied their verdicts
    return completed(log_dir, since=started)  # verdicts requested by this run, not re-used ones
