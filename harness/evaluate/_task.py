"""The inspect task: one sample per evaluation item, prompt rendered per model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data import EvalItem
from ..prompts import LETTERS, chat, choices_question, render, shown_order, to_inspect

if TYPE_CHECKING:  # inspect_ai is imported when a task is built (see _scorers)
    from inspect_ai import Task
    from inspect_ai.scorer import Scorer


@dataclass(frozen=True)
class Shown:
    """What a model is shown of one item: the question text (with the lettered choices of a
    multiple-choice item, in the order shown), the choices in that order, and the gold as shown
    (a multiple-choice gold is the letter of its choice where it is shown)."""

    question: str
    choices: list[str]
    target: str
    order: list[int]


def shown(it: EvalItem, choices_prompt: str, shuffle: int | None) -> Shown:
    if not it.choices:
        return Shown(it.question, [], it.answer, [])
    order = shown_order(it.id, len(it.choices), shuffle)
    choices = [it.choices[j] for j in order]
    return Shown(choices_question(choices_prompt, it.question, choices), choices,
                 LETTERS[order.index(LETTERS.index(it.answer))], order)


def item_messages(it: EvalItem, prompt: str, context_prompt: str | None, system: str | None, choices_prompt: str,
                  shuffle: int | None) -> list[dict[str, str]]:
    """The conversation a model sees for one item (the pre-flight counts its tokens)."""
    q = shown(it, choices_prompt, shuffle).question
    return chat(system, render(context_prompt, q, it.passage) if context_prompt and it.passage else render(prompt, q))


def qa_task(name: str, items: list[EvalItem], prompt: str, context_prompt: str | None, scorers: list[Scorer],
            system: str | None = None, choices_prompt: str = "{question}\n\n{choices}", shuffle: int | None = None) -> Task:
    """`context_prompt` set = the model sees the item's passage (the in-context teacher).

    Control items have no passage; a context model gets the plain prompt for them. A
    multiple-choice item carries its choices as shown (inspect's Sample.choices, so `inspect view`
    lists them) and the shown order; its target is the gold's letter as shown."""
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.solver import generate

    samples = []
    for it in items:
        s = shown(it, choices_prompt, shuffle)
        meta = {"question": it.question, "group": it.group, "cluster": it.cluster or it.id}
        if it.choices:
            meta.update(choices_order=s.order, gold_in_file=it.answer)
        samples.append(Sample(id=it.id, input=to_inspect(item_messages(it, prompt, context_prompt, system, choices_prompt, shuffle)),
                              target=s.target, choices=s.choices or None, metadata=meta))
    return Task(name=name, dataset=MemoryDataset(samples, name=name), solver=generate(), scorer=scorers)
