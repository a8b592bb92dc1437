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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cache import digest
from ..config import EvalConfig, GraderConfig
from ..errors import HarnessError
from ._logs import finished

if TYPE_CHECKING:  # pandas loads with the frame, not with the pre-flight
    import pandas as pd

PLACEHOLDERS = {"question", "target", "first", "second"}
REQUIRED = {"first", "second"}
CONSISTENT = {("A", "B"), ("B", "A"), ("tie", "tie")}  # (order ab, order ba) verdicts naming one winner
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
    from ._calibrate import check_calibrate

    if (bad := check_calibrate(name, cfg.calibrate)) is not None:
        raise HarnessError(bad)


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
    """Judge every pair of `cfg.pairs` on every item both answered, in both orders -- a calibration
    sample of items first (stratified by pair x task), the rest only while the judge's position
    consistency is not clearly below graders.<name>.calibrate.threshold (_calibrate.py). Returns the
    number of judge requests sent (0 when the logs are complete)."""
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.log import read_eval_log
    from inspect_ai.scorer import Score, Target, scorer
    from inspect_ai.solver import TaskState, generate

    from ..stats import rate_look
    from ._calibrate import Gate, finish, plan, run_looks, send_batch

    @scorer(metrics=[])
    def choice():  # noqa: ANN202
        async def score(state: TaskState, target: Target) -> Score:
            c = parse_choice(state.output.completion)
            return Score(value=c or "unparsed", answer=state.output.completion,
                         metadata={**state.metadata, "parse_failed": c is None})
        return score

    first = frame[frame["epoch"] == frame["epoch"].min()]
    answers = first.drop_duplicates(["task", "id", "alias"]).set_index(["task", "id", "alias"])
    units: list[tuple[str, str, str, str]] = []  # (a, b, task, item): judged in both orders
    for a, b in cfg.pairs:
        for task, item in sorted({(t, i) for t, i, _ in answers.index}):
            if (task, item, a) in answers.index and (task, item, b) in answers.index:
                units.append((a, b, task, item))
    samples: list[list[Any]] = []
    for a, b, task, item in units:
        ans = {a: str(answers.loc[(task, item, a), "answer"]), b: str(answers.loc[(task, item, b), "answer"])}
        pair = []
        for order, (x, y) in (("ab", (a, b)), ("ba", (b, a))):
            prompt = cfg.rubric.format(question=questions.get((task, item), ""), target=answers.loc[(task, item, a), "target"],  # type: ignore[union-attr]
                                       first=ans[x], second=ans[y])
            pair.append(Sample(id=f"{task}:{item}:{order}", input=prompt,
                               metadata={"task": task, "item": item, "order": order, "a": a, "b": b}))
        samples.append(pair)
    verdicts: dict[tuple[str, str, str, str], dict[str, str | None]] = {}

    def send(where: str, batch: list[int]) -> int:
        by_pair: dict[tuple[str, str], list[Any]] = {}
        for i in batch:
            by_pair.setdefault(units[i][:2], []).extend(samples[i])
        tasks = [Task(name=f"{name}_{a}_vs_{b}", dataset=MemoryDataset(ss), solver=generate(), scorer=choice())
                 for (a, b), ss in sorted(by_pair.items())]
        if not tasks:
            return 0
        n = send_batch(tasks, log_dir / where, {"grader": cfg.rubric, "judge": cfg.judge.model if cfg.judge else "",
                                                 "max_tokens": cfg.max_tokens, "units": [units[i] for i in batch],
                                                 "answers": digest([str(s.input) for i in batch for s in samples[i]])},
                       judge, cfg, eval_cfg, f"pairwise:{name}")
        for f in finished(log_dir / where, [t.name for t in tasks]) or []:
            for s in read_eval_log(f).samples or []:
                m = s.metadata or {}
                verdicts.setdefault((m["a"], m["b"], m["task"], str(m["item"])), {})[m["order"]] = parse_choice(
                    s.output.completion if s.output else "")
        return n

    def look(done: list[int]) -> Any:
        both = [verdicts.get(units[i], {}) for i in done]
        parsed = [(d["ab"], d["ba"]) for d in both if d.get("ab") is not None and d.get("ba") is not None]
        # the same winner both ways: A then B (or B then A) names one model; a tie both times
        return rate_look(sum(v in CONSISTENT for v in parsed), len(parsed), cfg.calibrate.threshold,
                         cfg.calibrate.alpha, cfg.calibrate.looks)

    c = cfg.calibrate
    gate = Gate(name, "pairwise", "position consistency", None, c.enabled, c.threshold, c.alpha, c.looks, len(units), 2)
    run_looks(gate, plan([(a, b, task) for a, b, task, _ in units], c), c, send, look, log_dir)
    finish(gate, log_dir)
    return gate.calls_made
