"""What a model is shown: prompt templates rendered into OpenAI-style chat messages.

A ground floor: the teacher's answers (generate) and the evaluation (evaluate) render prompts the
same way, so the student is trained on exactly the prompt format it is evaluated with.
"""

from __future__ import annotations

from typing import Any


def render(prompt: str, question: str, passage: str = "") -> str:
    return prompt.format(question=question, passage=passage)


def chat(system: str | None, user: str) -> list[dict[str, str]]:
    """The conversation a model sees, as OpenAI-style messages (also the training-file format)."""
    return ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": user}]


def to_inspect(messages: list[dict[str, str]]) -> list[Any]:
    """OpenAI-style messages -> inspect ChatMessages."""
    from inspect_ai.model import ChatMessageSystem, ChatMessageUser

    kinds = {"system": ChatMessageSystem, "user": ChatMessageUser}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def shown_order(item_id: str, k: int, seed: int | None) -> list[int]:
    """The order a multiple-choice item's k choices are shown in: file order (seed None), or a
    permutation seeded by (seed, item id), so it is the same in every run and for every model and
    does not depend on the other items."""
    import random

    order = list(range(k))
    if seed is not None:
        random.Random(f"{seed}:{item_id}").shuffle(order)
    return order


def choices_question(template: str, question: str, choices: list[str]) -> str:
    """A multiple-choice question as the model reads it: `template` with {question}, {choices}
    (lines "A) text", the format of inspect's multiple_choice template) and {letters}."""
    lines = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return template.format(question=question, choices=lines, letters=", ".join(LETTERS[: len(choices)]))
