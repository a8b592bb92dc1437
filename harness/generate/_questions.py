"""Question synthesis: the teacher writes training questions over a designed grid of source x
question type x difficulty, each with its provenance."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..cache import digest, locked, read_jsonl, trusted, write_jsonl
from ..config import GenerateConfig, ModelConfig, QuestionsConfig
from ..data import TrainQuestion
from ..prompts import chat
from ._teacher import _answer_all

VERSION = 1


@dataclass(frozen=True)
class SynthOutput:
    questions: list[TrainQuestion]
    stats: dict[str, Any]  # what happened to the prompts (summary.json data.synthesis)
    key: str
    calls: int


def question_sources(train: list[TrainQuestion], document: str, cfg: QuestionsConfig) -> list[tuple[str, str]]:
    """(topic, passage) pairs to write questions from: the document's paragraphs (topic = the
    heading above), else the configured topics, else the distinct passages of the training rows."""
    out: list[tuple[str, str]] = []
    heading = "the text"
    for block in re.split(r"\n\s*\n", document):
        block = block.strip()
        if block.startswith("#"):
            heading = block.lstrip("#").strip().splitlines()[0]
        elif block:
            out.append((heading, block))
    if out:
        return out
    if cfg.topics:
        return [(t, "") for t in cfg.topics]
    return list(dict.fromkeys((t.group, t.passage) for t in train if t.passage))


_LEAD = re.compile(r"^\s*(?:[-*\d.)\s]+|(?:question|q)\s*[:.-]\s*)+", re.IGNORECASE)


_SENTENCE = re.compile(r"[^.!?\n]*\?")


def parse_question(text: str) -> tuple[str | None, str]:
    """The first sentence of the teacher's reply that is a question ("What a lovely topic! What is
    X?" -> "What is X?"), or (None, why not)."""
    for line in text.strip().splitlines():
        m = _SENTENCE.search(_LEAD.sub("", line))
        if m:
            q = m.group(0).strip().strip('"\'“”').strip()
            return (q, "ok") if len(q.split()) >= 3 else (None, "too short")
    return None, "no question"


def run_questions(
    train: list[TrainQuestion], document: str, teacher: ModelConfig, teacher_args: dict[str, Any], gen: GenerateConfig,
    cache_dir: Path, out_dir: Path, use_cache: bool = True,
) -> SynthOutput:
    """The teacher writes questions over sources x types x difficulties x per_cell; each keeps its
    provenance (source topic and passage, type, difficulty, prompt hash) in questions_provenance.jsonl."""
    cfg = gen.questions
    sources = question_sources(train, document, cfg)
    examples = "\n".join(t.question for t in train[:3])
    cells = [(topic, passage, ty, diff, k) for topic, passage in sources for ty in cfg.types for diff in cfg.difficulties
             for k in range(cfg.per_cell)]
    from ..models import identity

    key = digest({"v": VERSION, "teacher": identity(teacher), "cfg": asdict(cfg), "cells": cells, "examples": examples,
                  "batch": gen.batch_size})
    entry = cache_dir / "questions" / key
    calls = 0
    with locked(entry):
        if not (use_cache and (entry / "questions_provenance.jsonl").exists()
                and trusted(entry, "questions", ["questions_provenance.jsonl"])):
            prompts = [chat(None, cfg.prompt.format(passage=p, topic=t, type=ty, difficulty=d, examples=examples))
                       for t, p, ty, d, _ in cells]
            # per_cell > 1 needs temperature > 0 to differ; greedy repeats are removed by dedup later
            sub = replace(gen, max_tokens=cfg.max_tokens, temperature=cfg.temperature)
            sargs = {**teacher_args, "do_sample": True} if cfg.temperature > 0 and "do_sample" in teacher_args else teacher_args
            t0 = time.time()
            replies = asyncio.run(_answer_all(teacher.model, sargs, prompts, sub))[0] if prompts else []
            calls = len(prompts)
            rows = []
            for n, ((topic, passage, ty, diff, k), p, reply) in enumerate(zip(cells, prompts, replies)):
                q, why = parse_question(reply)
                rows.append({"id": f"synth.{n}", "question": q, "status": why, "topic": topic, "passage": passage, "type": ty,
                             "difficulty": diff, "sample": k, "reply": reply, "teacher_model": teacher.model,
                             "prompt_sha256": hashlib.sha256(json.dumps(p).encode()).hexdigest()})
            entry.mkdir(parents=True, exist_ok=True)
            write_jsonl(entry / "questions_provenance.jsonl", rows)
            print(f"[questions] {len(prompts)} synthesis prompts in {time.time() - t0:.0f}s", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry / "questions_provenance.jsonl", out_dir / ".questions_provenance.jsonl.tmp")
    (out_dir / ".questions_provenance.jsonl.tmp").replace(out_dir / "questions_provenance.jsonl")
    rows = read_jsonl(out_dir / "questions_provenance.jsonl")
    ok = [r for r in rows if r["status"] == "ok"]
    questions = [TrainQuestion(r["id"], r["question"], r["passage"], "", f"{r['type']}/{r['difficulty']}") for r in ok]
    stats = {
        "sources": len(sources), "prompts": len(rows), "accepted": len(ok),
        "rejected": {why: sum(r["status"] == why for r in rows) for why in ("no question", "too short")},
        # a cheap quality signal: does the question name its topic (for the demo: the island)?
        "mentions_topic": round(sum(r["topic"].lower() in r["question"].lower() for r in ok) / len(ok), 4) if ok else 0.0,
        "replace": cfg.replace,
    }
    return SynthOutput(questions, stats, key, calls)
