"""Stage 2, generate: the teacher answers the training questions.

Output is an OpenAI chat fine-tuning file (`{"messages": [...]}` per line) plus a provenance sidecar
with one row per training row (teacher model, prompt hash, sampling parameters, timestamp), so the
same file can be uploaded to a hosted fine-tuning service. The training rows carry the *student's*
prompt (the question without the passage): that is what makes this context distillation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cache import digest, locked, read_jsonl, write_jsonl
from .config import GenerateConfig, ModelConfig
from .data import TrainQuestion
from .errors import HarnessError
from .evaluate._match import match
from .evaluate._task import chat, render, to_inspect
from .report._usage import call_record

VERSION = 1


@dataclass(frozen=True)
class GenerateOutput:
    train_file: Path  # OpenAI chat fine-tuning JSONL
    provenance_file: Path
    n_rows: int
    n_gold: int  # rows whose answer contains the gold (known for generated domains)
    key: str
    calls: int  # model calls sent in this run (0 when cached)


def generate_key(teacher: ModelConfig, cfg: GenerateConfig, student_prompt: str, system: str | None, data_key: str) -> str:
    from .models import identity

    return digest({"v": VERSION, "teacher": identity(teacher), "cfg": asdict(cfg), "student_prompt": student_prompt,
                   "system": system, "data": data_key})


async def _answer_all(model_str: str, args: dict[str, Any], prompts: list[list[dict[str, str]]], cfg: GenerateConfig,
                      max_retries: int = 3, timeout: int = 600) -> tuple[list[str], list[dict[str, Any]]]:
    from inspect_ai.model import GenerateConfig as InspectGenerateConfig
    from inspect_ai.model import get_model

    model = get_model(
        model_str,
        config=InspectGenerateConfig(
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            max_connections=cfg.batch_size,  # for the hf provider this is the batch size
            max_retries=max_retries,
            timeout=timeout,
        ),
        **args,
    )
    outputs = await asyncio.gather(*(model.generate(to_inspect(p)) for p in prompts))
    return [o.completion.strip() for o in outputs], [call_record(o) for o in outputs]


def run_generate(
    questions: list[TrainQuestion],
    teacher: ModelConfig,
    teacher_args: dict[str, Any],
    cfg: GenerateConfig,
    student_prompt: str,
    system: str | None,
    data_key: str,
    cache_dir: Path,
    out_dir: Path,
    use_cache: bool = True,
    endpoints: Any = None,
    metadata: dict[str, str] | None = None,
    max_retries: int = 3,
    timeout: int = 600,
) -> GenerateOutput:
    """`endpoints` (harness.models.Endpoints) connects an OpenAI-compatible teacher; `metadata`
    (experiment, run) tags its stored completions."""
    key = generate_key(teacher, cfg, student_prompt, system, data_key)
    entry = cache_dir / "generate" / key
    calls = 0
    with locked(entry):
        if not (use_cache and (entry / "train.jsonl").exists()):
            prompts = [
                chat(system, render(cfg.prompt, q.question, q.passage) if teacher.context else render(student_prompt, q.question))
                for q in questions
            ]
            t0 = time.time()
            from .models import is_openai

            usage: list[dict[str, Any]] = []  # tokens and latency per call (the HTTP path records none yet)
            if is_openai(teacher.model):
                served, calls = _answer_http(endpoints, teacher, questions, prompts, cfg, metadata or {}, max_retries,
                                             timeout, entry / "answers.partial.jsonl")
                answers = [served[q.id]["answer"] for q in questions]
            else:
                answers, usage = asyncio.run(_answer_all(teacher.model, teacher_args, prompts, cfg, max_retries, timeout))
                served, calls = {}, len(prompts)
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            rows, prov = [], []
            for q, p, a in zip(questions, prompts, answers):
                ok = match(a, [q.answer], "contains", "whole").correct
                if cfg.filter_wrong and not ok:
                    continue
                rows.append({"messages": chat(system, render(student_prompt, q.question)) + [{"role": "assistant", "content": a}]})
                prov.append({
                    "id": q.id,
                    "teacher_model": teacher.model,
                    "teacher_prompt_sha256": hashlib.sha256(json.dumps(p).encode()).hexdigest(),
                    "sampling": {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens},
                    "context": teacher.context,
                    "gold_contained": ok,
                    "timestamp": stamp,
                    **{k: v for k, v in served.get(q.id, {}).items() if k != "answer"},
                })
            entry.mkdir(parents=True, exist_ok=True)
            # provenance first: train.jsonl is the completion marker
            write_jsonl(entry / "usage.jsonl", usage)  # tokens and latency per teacher call
            write_jsonl(entry / "provenance.jsonl", prov)
            write_jsonl(entry / "train.jsonl", rows)
            (entry / "answers.partial.jsonl").unlink(missing_ok=True)
            print(f"[generate] {len(prompts)} teacher answers in {time.time() - t0:.0f}s", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "provenance.jsonl", "usage.jsonl")[: 3 if (entry / "usage.jsonl").exists() else 2]:
        shutil.copyfile(entry / name, out_dir / f".{name}.tmp")
        (out_dir / f".{name}.tmp").replace(out_dir / name)
    prov = read_jsonl(out_dir / "provenance.jsonl")
    return GenerateOutput(
        out_dir / "train.jsonl", out_dir / "provenance.jsonl", len(prov),
        sum(p["gold_contained"] for p in prov), key, calls,
    )


def _answer_http(endpoints: Any, teacher: ModelConfig, questions: list[TrainQuestion], prompts: list[list[dict[str, str]]],
                 cfg: GenerateConfig, metadata: dict[str, str], max_retries: int, timeout: int,
                 partial: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Teacher answers from an OpenAI-compatible endpoint, through the `openai` client (inspect's
    provider drops `metadata`, which stored completions need). With OpenAI itself (`openai/...`)
    every request is a stored completion tagged with experiment, run and question id, so the
    answers can be found and re-used in the dashboard. Answers are appended to `partial` as they
    arrive: a re-run after failures (or a crash, or Ctrl-C) asks only for the missing ones.

    Returns ({question id: answer + provenance}, requests sent)."""
    from .models import api_model_name
    from .models._openai import chat_many

    done: dict[str, dict[str, Any]] = {}
    if partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done[r["id"]] = r
            except (ValueError, KeyError):  # a line cut off by a crash: that answer is asked again
                pass
    todo = [(q, p) for q, p in zip(questions, prompts) if q.id not in done]
    store = teacher.model.startswith("openai/")
    # at most 16 pairs, keys <= 64 and values <= 512 characters (OpenAI's limits)
    tags = [{**{k: str(v)[:512] for k, v in metadata.items()}, "question_id": q.id[:512]} for q, _ in todo]
    partial.parent.mkdir(parents=True, exist_ok=True)
    failed: list[BaseException] = []
    with open(partial, "a", encoding="utf-8") as out:

        def keep(i: int, r: Any) -> None:
            """Append each answer the moment it arrives: a crash or Ctrl-C loses none that was paid for."""
            if isinstance(r, BaseException):
                failed.append(r)
                return
            q = todo[i][0]
            done[q.id] = {"id": q.id, "answer": (r.choices[0].message.content or "").strip(), "response_id": r.id,
                          "served_model": r.model, "stored_completion": store, **({"metadata": tags[i]} if store else {})}
            out.write(json.dumps(done[q.id], ensure_ascii=False) + "\n")
            out.flush()

        client = endpoints.client("teacher", teacher, max_retries=max_retries, timeout=timeout, asynchronous=True)
        asyncio.run(chat_many(client, api_model_name(teacher.model), [p for _, p in todo], max_tokens=cfg.max_tokens,
                              temperature=cfg.temperature, concurrency=cfg.batch_size, store=store, metadata=tags,
                              on_done=keep))
    if failed:
        first = endpoints.error(failed[0], "teacher", teacher)
        raise HarnessError(f"generate: {len(failed)} of {len(todo)} teacher requests failed after {max_retries} retries "
                           f"(first: {first}); {len(done)} answers are kept, re-run to send only the rest")
    return done, len(todo)
