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
