"""The inspect task: one sample per evaluation item, prompt rendered per model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data import EvalItem
from ..prompts import chat, render, to_inspect

if TYPE_CHECKING:  # inspect_ai is imported when a task is built (see _scorers)
    from inspect_ai import Task
    from inspect_ai.scorer import Scorer


def qa_task(name: str, items: list[EvalItem], prompt: str, context_prompt: str | None, scorers: list[Scorer],
            system: str | None = None) -> Task:
    """`context_prompt` set = the model sees the item's passage (the in-context teacher).

    Control items have no passage; a context model gets the plain prompt for them.
    """
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.solver import generate

    samples = [
        Sample(
            id=it.id,
            input=to_inspect(chat(system, render(context_prompt, it.question, it.passage) if context_prompt and it.passage
                                  else render(prompt, it.question))),
            target=it.answer,
            metadata={"question": it.question, "group": it.group, "cluster": it.cluster or it.id},
        )
        for it in items
    ]
    return Task(name=name, dataset=MemoryDataset(samples, name=name), solver=generate(), scorer=scorers)
