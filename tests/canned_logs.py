"""Small real inspect logs, cheap enough for quick tests: `inspect_ai.eval` of a task whose solver
answers each item with a given text (no model is called: the answers are what a model would have
said, chosen by the test), scored by inspect's own `match()`, written by inspect itself. Everything
that reads them (harness.sources, the gate) sees an ordinary finished inspect log."""

from __future__ import annotations

from pathlib import Path

TARGETS = [str(i) for i in range(40)]


def write_log(log_dir: Path, answers: list[str], targets: list[str] | None = None, task: str = "quiz") -> Path:
    """One finished .eval log in `log_dir` of `task`: item q<i> with target targets[i], answered answers[i]."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import match
    from inspect_ai.solver import solver

    targets = targets or TARGETS[: len(answers)]

    @solver
    def canned():
        async def solve(state, generate):
            state.output = ModelOutput.from_content("mockllm/model", state.metadata["say"])
            return state

        return solve

    dataset = [Sample(id=f"q{i:03d}", input=f"What is {t} + 0?", target=t, metadata={"say": a})
               for i, (t, a) in enumerate(zip(targets, answers))]
    (log,) = inspect_eval(Task(dataset=dataset, solver=canned(), scorer=match(), name=task), model="mockllm/model",
                          log_dir=str(log_dir), display="none", log_level="warning")
    assert log.status == "success", log.status
    return Path(log.location)


def answers(wrong: set[int] | range = frozenset(), n: int = 40, say: dict[int, str] | None = None) -> list[str]:
    """Right on every item but those in `wrong` (answered `say[i]`, or "wrong")."""
    say = say or {}
    return [say.get(i, "wrong") if i in wrong else TARGETS[i] for i in range(n)]
