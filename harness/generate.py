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
from .evaluate._match import match
from .evaluate._task import chat, render, to_inspect

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
    return digest({"v": VERSION, "teacher": asdict(teacher), "cfg": asdict(cfg), "student_prompt": student_prompt,
                   "system": system, "data": data_key})


async def _answer_all(model_str: str, args: dict[str, Any], prompts: list[list[dict[str, str]]], cfg: GenerateConfig) -> list[str]:
    from inspect_ai.model import GenerateConfig as InspectGenerateConfig
    from inspect_ai.model import get_model

    model = get_model(
        model_str,
        config=InspectGenerateConfig(
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            max_connections=cfg.batch_size,  # for the hf provider this is the batch size
            max_retries=3,
            timeout=600,
        ),
        **args,
    )
    outputs = await asyncio.gather(*(model.generate(to_inspect(p)) for p in prompts))
    return [o.completion.strip() for o in outputs]


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
) -> GenerateOutput:
    key = generate_key(teacher, cfg, student_prompt, system, data_key)
    entry = cache_dir / "generate" / key
    calls = 0
    with locked(entry):
        if not (use_cache and (entry / "train.jsonl").exists()):
            prompts = [
                chat(system, render(cfg.prompt, q.question, q.passage) if teacher.context and q.passage else render(student_prompt, q.question))
                for q in questions
            ]
            t0 = time.time()
            answers = asyncio.run(_answer_all(teacher.model, teacher_args, prompts, cfg))
            calls = len(prompts)
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            rows, prov = [], []
            for q, p, a in zip(questions, prompts, answers):
                # None: no reference answer (bring-your-own questions may have none), so unknown
                ok = match(a, [q.answer], "contains", "whole").correct if q.answer else None
                if cfg.filter_wrong and ok is False:
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
                })
            entry.mkdir(parents=True, exist_ok=True)
            # provenance first: train.jsonl is the completion marker
            write_jsonl(entry / "provenance.jsonl", prov)
            write_jsonl(entry / "train.jsonl", rows)
            print(f"[generate] {len(prompts)} teacher answers in {time.time() - t0:.0f}s", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "provenance.jsonl"):
        shutil.copyfile(entry / name, out_dir / f".{name}.tmp")
        (out_dir / f".{name}.tmp").replace(out_dir / name)
    prov = read_jsonl(out_dir / "provenance.jsonl")
    return GenerateOutput(
        out_dir / "train.jsonl", out_dir / "provenance.jsonl", len(prov),
        sum(1 for p in prov if p["gold_contained"]), key, calls,
    )
