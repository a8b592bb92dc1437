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
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..cache import digest, locked, read_jsonl, trusted, write_jsonl, write_manifest
from ..config import GenerateConfig, ModelConfig
from ..data import TrainQuestion
from ..errors import HarnessError
from ..prompts import chat, render
from ..text import extract, match
from ._teacher import _answer_all, _answer_http, _answer_local

VERSION = 1


@dataclass(frozen=True)
class GenerateOutput:
    train_file: Path  # OpenAI chat fine-tuning JSONL
    provenance_file: Path
    n_rows: int
    n_gold: int  # rows whose answer contains the gold (known for generated domains)
    key: str
    calls: int  # model calls sent in this run (0 when cached)
    filters: dict[str, int] = field(default_factory=dict)  # enabled answer filter -> rows it removed


def teacher_prompt(q: TrainQuestion, teacher: ModelConfig, cfg: GenerateConfig, student_prompt: str,
                   system: str | None) -> list[dict[str, str]]:
    """The messages the teacher answers training question `q` with: a context teacher gets the
    passage (generate.prompt), any other the student's prompt. The kd / on_policy objectives score
    the answers under these same messages."""
    return chat(system, render(cfg.prompt, q.question, q.passage) if teacher.context and q.passage else render(student_prompt, q.question))


def generate_key(teacher: ModelConfig, cfg: GenerateConfig, student_prompt: str, system: str | None, data_key: str) -> str:
    from ..models import identity

    # question synthesis has its own stage and key: its settings do not invalidate cached answers
    answer_cfg = {k: v for k, v in asdict(cfg).items() if k != "questions"}
    return digest({"v": VERSION, "teacher": identity(teacher), "cfg": answer_cfg, "student_prompt": student_prompt,
                   "system": system, "data": data_key})


ENTRY_FILES = ["train.jsonl", "provenance.jsonl", "filtered.jsonl", "usage.jsonl"]

FILTERS = ("filter_wrong", "length", "refusal", "consistency", "judge")


def check_generate(cfg: GenerateConfig) -> None:
    """The answer filters' settings, checked before any work starts."""
    if cfg.min_words < 0 or cfg.max_words < 0 or (cfg.max_words and cfg.max_words < cfg.min_words):
        raise HarnessError(f"generate.min_words/max_words: need 0 <= min_words <= max_words (0 = off), got {cfg.min_words}/{cfg.max_words}")
    if not 1 <= cfg.min_agree <= cfg.samples:
        raise HarnessError(f"generate.min_agree must be between 1 and generate.samples={cfg.samples}, got {cfg.min_agree}")
    if cfg.samples > 1 and cfg.sample_temperature <= 0:
        raise HarnessError("generate.sample_temperature must be > 0 when generate.samples > 1 (greedy draws always agree)")
    try:
        cfg.judge_prompt.format(passage="", question="", answer="")
    except (KeyError, IndexError, ValueError) as e:
        raise HarnessError(f"generate.judge_prompt: unknown placeholder {e}; use {{passage}} {{question}} {{answer}}") from None
    q = cfg.questions
    if q.enabled:
        if not q.types or not q.difficulties or q.per_cell < 1:
            raise HarnessError("generate.questions: types and difficulties must be non-empty and per_cell >= 1")
        try:
            q.prompt.format(passage="", topic="", type="", difficulty="", examples="")
        except (KeyError, IndexError, ValueError) as e:
            raise HarnessError(f"generate.questions.prompt: unknown placeholder {e}; use {{passage}} {{topic}} {{type}} "
                               "{difficulty} {examples}") from None
    for k, pattern in enumerate(cfg.refusal_patterns):
        try:
            re.compile(pattern)
        except re.error as e:
            raise HarnessError(f"generate.refusal_patterns[{k}]: not a regular expression ({e}): {pattern}") from None


def agreement(question: str, answer: str, draws: list[str]) -> int:
    """How many of the k samples (the answer itself + the draws) give the answer's extracted span,
    compared as the `exact` grader compares an answer with a gold."""
    target = extract(answer, "auto", question)
    return 1 + sum(match(d, [target], "exact", "auto", question).correct for d in draws) if target else 0


def failed_filter(answer: str, gold_ok: bool | None, agree: int | None, cfg: GenerateConfig, verdict: str | None = None) -> str | None:
    """The first enabled filter that removes this answer (None: kept). Order = FILTERS."""
    if cfg.filter_wrong and gold_ok is False:
        return "filter_wrong"
    words = len(answer.split())
    if (cfg.min_words and words < cfg.min_words) or (cfg.max_words and words > cfg.max_words):
        return "length"
    if cfg.drop_refusals and any(re.search(p, answer, re.IGNORECASE) for p in cfg.refusal_patterns):
        return "refusal"
    if agree is not None and agree < cfg.min_agree:
        return "consistency"
    if verdict is not None and not verdict.strip().lower().startswith("yes"):
        return "judge"
    return None


def filter_counts(dropped: list[dict[str, Any]], cfg: GenerateConfig) -> dict[str, int]:
    on = {"filter_wrong": cfg.filter_wrong, "length": bool(cfg.min_words or cfg.max_words),
          "refusal": cfg.drop_refusals, "consistency": cfg.samples > 1, "judge": cfg.judge}
    return {f: sum(1 for d in dropped if d["filter"] == f) for f in FILTERS if on[f]}


@dataclass(frozen=True)
class GenerateInput:
    """What the teacher's answers depend on and where they go."""

    questions: list[TrainQuestion]
    teacher: ModelConfig
    teacher_args: dict[str, Any]  # inspect model_args, model paths resolved
    cfg: GenerateConfig
    student_prompt: str  # the user turn of every training row: the student's prompt, without the passage
    system: str | None
    data_key: str  # hash of the training questions
    cache_dir: Path
    out_dir: Path  # the run's data/ dir
    use_cache: bool = True
    endpoints: Any = None  # harness.models.Endpoints: connects an OpenAI-compatible teacher
    metadata: dict[str, str] | None = None  # experiment, run: tags its stored completions
    max_retries: int = 3
    timeout: int = 600  # per attempt


def run_generate(inp: GenerateInput) -> GenerateOutput:
    """The teacher's answers to `inp.questions` as an OpenAI chat fine-tuning file + provenance,
    cached by content hash (a killed run resumes from the journal of answers so far)."""
    questions, teacher, teacher_args, cfg = inp.questions, inp.teacher, inp.teacher_args, inp.cfg
    student_prompt, system, data_key, cache_dir, out_dir = inp.student_prompt, inp.system, inp.data_key, inp.cache_dir, inp.out_dir
    use_cache, endpoints, metadata, max_retries, timeout = inp.use_cache, inp.endpoints, inp.metadata, inp.max_retries, inp.timeout
    key = generate_key(teacher, cfg, student_prompt, system, data_key)
    entry = cache_dir / "generate" / key
    calls = 0
    with locked(entry):
        journal, finished = entry / "answers.partial.jsonl", entry / "train.jsonl"
        if journal.exists() and finished.exists() and journal.stat().st_mtime <= finished.stat().st_mtime:
            journal.unlink()  # a kill after the entry was written, before its journal was removed
        if not (use_cache and finished.exists() and trusted(entry, "generate", ENTRY_FILES)):
            prompts = [teacher_prompt(q, teacher, cfg, student_prompt, system) for q in questions]
            t0 = time.time()
            from ..models import is_openai

            usage: list[dict[str, Any]]  # tokens, latency (and failed attempts before it) per teacher call
            if is_openai(teacher.model):
                served, calls = _answer_http(endpoints, teacher, questions, prompts, cfg, metadata or {}, max_retries,
                                             timeout, journal)
                answers = [served[q.id]["answer"] for q in questions]
                # journals written before HTTP usage was recorded have none for their answers
                usage = [served[q.id]["usage"] for q in questions if "usage" in served[q.id]]
            else:
                answers, usage, calls = _answer_local(teacher.model, teacher_args, questions, prompts, cfg, max_retries,
                                                      timeout, journal)
                served = {}
            draws: list[list[str]] = [[] for _ in prompts]
            if cfg.samples > 1:
                # the hf provider samples only with do_sample on; the greedy answer stays the one trained on
                sargs = {**teacher_args, "do_sample": True} if "do_sample" in teacher_args else teacher_args
                flat, _ = asyncio.run(_answer_all(teacher.model, sargs, prompts * (cfg.samples - 1), cfg, max_retries, timeout,
                                                  cfg.sample_temperature))
                calls += len(flat)
                draws = [flat[i::len(prompts)] for i in range(len(prompts))]
            verdicts: list[str | None] = [None] * len(prompts)
            if cfg.judge:
                asks = [chat(None, cfg.judge_prompt.format(passage=q.passage, question=q.question, answer=a))
                        for q, a in zip(questions, answers)]
                verdicts = list(asyncio.run(_answer_all(teacher.model, teacher_args, asks, replace(cfg, max_tokens=8),
                                                        max_retries, timeout))[0])
                calls += len(asks)
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            rows, prov, dropped = [], [], []
            for q, p, a, extra, verdict in zip(questions, prompts, answers, draws, verdicts):
                # None: no reference answer (bring-your-own questions may have none), so unknown
                ok = match(a, [q.answer], "contains", "whole").correct if q.answer else None
                agree = agreement(q.question, a, extra) if extra else None
                why = failed_filter(a, ok, agree, cfg, verdict)
                if why:
                    dropped.append({"id": q.id, "question": q.question, "answer": a, "filter": why, "agree": agree,
                                    "samples": extra, "judge": verdict})
                    continue
                rows.append({"messages": chat(system, render(student_prompt, q.question)) + [{"role": "assistant", "content": a}]})
                prov.append({
                    "id": q.id,
                    "teacher_model": teacher.model,
                    "teacher_prompt_sha256": hashlib.sha256(json.dumps(p).encode()).hexdigest(),
                    "sampling": {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens},
                    "context": teacher.context,
                    "gold_contained": ok,
                    **({"agree": agree, "samples": cfg.samples} if extra else {}),
                    **({"judge": verdict} if verdict is not None else {}),
                    "timestamp": stamp,
                    **{k: v for k, v in served.get(q.id, {}).items() if k not in ("answer", "usage")},
                })
            entry.mkdir(parents=True, exist_ok=True)
            # provenance first: train.jsonl is the completion marker
            write_jsonl(entry / "usage.jsonl", usage)  # tokens and latency per teacher call
            write_jsonl(entry / "provenance.jsonl", prov)
            write_jsonl(entry / "filtered.jsonl", dropped)
            write_jsonl(entry / "train.jsonl", rows)
            write_manifest(entry, ENTRY_FILES)
            journal.unlink(missing_ok=True)
            print(f"[generate] {len(prompts)} teacher answers, {calls} requests sent, in {time.time() - t0:.0f}s", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("filtered.jsonl", "train.jsonl", "provenance.jsonl", "usage.jsonl"):
        if name == "usage.jsonl" and not (entry / name).exists():  # entries cached before usage was recorded
            continue
        shutil.copyfile(entry / name, out_dir / f".{name}.tmp")
        (out_dir / f".{name}.tmp").replace(out_dir / name)
    prov = read_jsonl(out_dir / "provenance.jsonl")
    return GenerateOutput(
        out_dir / "train.jsonl", out_dir / "provenance.jsonl", len(prov),
        sum(1 for p in prov if p["gold_contained"]), key, calls, filter_counts(read_jsonl(out_dir / "filtered.jsonl"), cfg),
    )
