"""Asking the teacher: batched in-process generation through inspect (journaled, so a killed run
resumes), or concurrent requests to an OpenAI-compatible endpoint with per-call usage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

from .._progress import Progress
from ..config import GenerateConfig, ModelConfig
from ..data import TrainQuestion
from ..errors import HarnessError
from ..prompts import to_inspect
from ..usage import call_record


async def _answer_all(model_str: str, args: dict[str, Any], prompts: list[list[dict[str, str]]], cfg: GenerateConfig,
                      max_retries: int = 3, timeout: int = 600, temperature: float | None = None,
                      on_done: Callable[[int, str, dict[str, Any]], None] | None = None,
                      ) -> tuple[list[str], list[dict[str, Any]]]:
    """Answers and usage records, in prompt order; `on_done(i, answer, usage)` as each one arrives."""
    from inspect_ai.model import GenerateConfig as InspectGenerateConfig
    from inspect_ai.model import get_model

    from ..models import batch_plan, batched_hf, temperature_for

    model = get_model(
        model_str,
        config=InspectGenerateConfig(
            max_tokens=cfg.max_tokens,
            temperature=temperature_for(model_str, args, cfg.temperature if temperature is None else temperature),
            seed=0 if temperature else None,  # reproducible sampled draws where the provider supports a seed
            max_connections=cfg.batch_size,  # for the hf provider this is the batch size
            max_retries=max_retries,
            # per attempt, as eval.timeout is documented: inspect's `timeout` bounds all attempts
            # together, so one stalled request would use up every retry
            attempt_timeout=timeout,
        ),
        **args,
    )
    # a local hf/ model: every prompt is sent at once, so each batch fires when full, the last one
    # when its remainder is in (not on inspect's 2 s timer); harness.models._hf
    model = batched_hf(model, batch_plan([len(prompts)], cfg.batch_size))

    async def one(i: int, prompt: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
        o = await model.generate(to_inspect(prompt))
        answer, usage = o.completion.strip(), call_record(o)
        if on_done is not None:
            on_done(i, answer, usage)
        return answer, usage

    done = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    return [a for a, _ in done], [u for _, u in done]


def _read_journal(partial: Path) -> dict[str, dict[str, Any]]:
    """Answers kept by an interrupted run: question id -> row. A line cut off by a kill (or Ctrl-C)
    is skipped, so that one answer is asked again."""
    done: dict[str, dict[str, Any]] = {}
    if partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done[r["id"]] = r
            except (ValueError, KeyError, TypeError):
                pass
    return done


def _answer_local(model_str: str, args: dict[str, Any], questions: list[TrainQuestion], prompts: list[list[dict[str, str]]],
                  cfg: GenerateConfig, max_retries: int, timeout: int, partial: Path, temperature: float | None = None,
                  ) -> tuple[list[str], list[dict[str, Any]], int]:
    """Teacher answers from an in-process model (inspect's `hf/` provider), journaled like the
    HTTP path: each answer and its usage record are appended to `partial` the moment they arrive,
    so a re-run after a kill sends only the missing prompts. Returns (answers, usage, requests sent),
    answers and usage in question order (as an uninterrupted run gives them)."""
    done = _read_journal(partial)
    todo = [(q, p) for q, p in zip(questions, prompts) if q.id not in done]
    kept = len(questions) - len(todo)
    if kept:
        print(f"[generate] resuming: {kept} of {len(questions)} answers kept from an interrupted run", flush=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "a", encoding="utf-8") as out, Progress("generate", len(questions), "answers", kept) as bar:

        def keep(i: int, answer: str, usage: dict[str, Any]) -> None:
            done[todo[i][0].id] = row = {"id": todo[i][0].id, "answer": answer, "usage": usage}
            # one write per line, then flush: a kill leaves whole lines plus at most one torn last line
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(1)

        if todo:
            asyncio.run(_answer_all(model_str, args, [p for _, p in todo], cfg, max_retries, timeout, temperature, on_done=keep))
    return [done[q.id]["answer"] for q in questions], [done[q.id]["usage"] for q in questions], len(todo)


# what a finished generate entry holds (usage.jsonl: entries cached before usage was recorded lack it)

def _answer_http(endpoints: Any, teacher: ModelConfig, questions: list[TrainQuestion], prompts: list[list[dict[str, str]]],
                 cfg: GenerateConfig, metadata: dict[str, str], max_retries: int, timeout: int,
                 partial: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Teacher answers from an OpenAI-compatible endpoint, through the `openai` client (inspect's
    provider drops `metadata`, which stored completions need). With OpenAI itself (`openai/...`)
    every request is a stored completion tagged with experiment, run and question id, so the
    answers can be found and re-used in the dashboard. Answers are appended to `partial` as they
    arrive: a re-run after failures (or a crash, or Ctrl-C) asks only for the missing ones.

    Returns ({question id: answer + provenance}, requests sent)."""
    from ..models import api_model_name, chat_many

    done = _read_journal(partial)
    todo = [(q, p) for q, p in zip(questions, prompts) if q.id not in done]
    store = teacher.model.startswith("openai/")
    # at most 16 pairs, keys <= 64 and values <= 512 characters (OpenAI's limits)
    tags = [{**{k: str(v)[:512] for k, v in metadata.items()}, "question_id": q.id[:512]} for q, _ in todo]
    partial.parent.mkdir(parents=True, exist_ok=True)
    failed: list[BaseException] = []
    with open(partial, "a", encoding="utf-8") as out, Progress("generate", len(questions), "answers", len(done)) as bar:

        def keep(i: int, r: Any, usage: dict[str, Any]) -> None:
            """Append each answer, with its usage (tokens, latency, retries before it), the moment it
            arrives: a crash or Ctrl-C loses none that was paid for, nor its bill."""
            if isinstance(r, BaseException):
                failed.append(r)
                return
            q = todo[i][0]
            done[q.id] = {"id": q.id, "answer": (r.choices[0].message.content or "").strip(), "response_id": r.id,
                          "served_model": r.model, "stored_completion": store, **({"metadata": tags[i]} if store else {}),
                          "usage": usage}
            out.write(json.dumps(done[q.id], ensure_ascii=False) + "\n")
            out.flush()
            bar.update(1)

        client = endpoints.client("teacher", teacher, max_retries=max_retries, timeout=timeout, asynchronous=True)
        asyncio.run(chat_many(client, api_model_name(teacher.model), [p for _, p in todo], max_tokens=cfg.max_tokens,
                              temperature=cfg.temperature, concurrency=cfg.batch_size, store=store, metadata=tags,
                              on_done=keep))
    if failed:
        first = endpoints.error(failed[0], "teacher", teacher)
        raise HarnessError(f"generate: {len(failed)} of {len(todo)} teacher requests failed after {max_retries} retries "
                           f"(first: {first}); {len(done)} answers are kept, re-run to send only the rest")
    return done, len(todo)


# ---- question synthesis -------------------------------------------------------------------------
