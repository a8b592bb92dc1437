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
from ._paraphrase import check_paraphrases
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

    # question synthesis and paraphrasing have their own stages and keys: their settings do not
    # invalidate cached answers (new questions reach this key through data_key). samples_per_question
    # counts only when set, so entries cached before it existed keep their keys
    answer_cfg = {k: v for k, v in asdict(cfg).items()
                  if k != "questions" and not k.startswith("paraphrase") and not (k == "samples_per_question" and v == 1)}
    return digest({"v": VERSION, "teacher": identity(teacher), "cfg": answer_cfg, "student_prompt": student_prompt,
                   "system": system, "data": data_key})


ENTRY_FILES = ["train.jsonl", "provenance.jsonl", "filtered.jsonl", "usage.jsonl"]

# dedup (samples_per_question > 1): an answer repeating an earlier sample's for the same question
FILTERS = ("filter_wrong", "length", "refusal", "consistency", "judge", "dedup")


def check_generate(cfg: GenerateConfig) -> None:
    """The answer filters' settings, checked before any work starts."""
    if cfg.min_words < 0 or cfg.max_words < 0 or (cfg.max_words and cfg.max_words < cfg.min_words):
        raise HarnessError(f"generate.min_words/max_words: need 0 <= min_words <= max_words (0 = off), got {cfg.min_words}/{cfg.max_words}")
    if not 1 <= cfg.min_agree <= cfg.samples:
        raise HarnessError(f"generate.min_agree must be between 1 and generate.samples={cfg.samples}, got {cfg.min_agree}")
    if cfg.samples > 1 and cfg.sample_temperature <= 0:
        raise HarnessError("generate.sample_temperature must be > 0 when generate.samples > 1 (greedy draws always agree)")
    if cfg.samples_per_question < 1:
        raise HarnessError(f"generate.samples_per_question must be >= 1, got {cfg.samples_per_question}")
    if cfg.samples_per_question > 1 and cfg.sample_temperature <= 0:
        raise HarnessError("generate.sample_temperature must be > 0 when generate.samples_per_question > 1 "
                           "(greedy samples are all the same answer)")
    check_paraphrases(cfg)
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
          "refusal": cfg.drop_refusals, "consistency": cfg.samples > 1, "judge": cfg.judge, "dedup": cfg.samples_per_question > 1}
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


def _slots(questions: list[TrainQuestion], cfg: GenerateConfig) -> list[tuple[TrainQuestion, int]]:
    """(question, sample index) per teacher answer asked for: one per question, or
    samples_per_question of them, a question's samples next to each other (so are its rows)."""
    return [(q, k) for q in questions for k in range(cfg.samples_per_question)]


def _slot_id(q: TrainQuestion, k: int, cfg: GenerateConfig) -> str:
    """The journal's key of one answer: the question id (as before samples existed, so an
    interrupted run's journal still resumes), `<id>#<k>` for a question's k-th sample."""
    return f"{q.id}#{k}" if cfg.samples_per_question > 1 else q.id


def _answers(inp: GenerateInput, slots: list[tuple[TrainQuestion, int]], prompts: list[list[dict[str, str]]],
             journal: Path) -> tuple[list[str], list[dict[str, Any]], dict[str, dict[str, Any]], int]:
    """The teacher's answer per slot: (answers, usage, HTTP provenance by slot id, requests sent)."""
    from ..models import is_openai

    cfg, teacher, args = inp.cfg, inp.teacher, inp.teacher_args
    asked = [replace(q, id=_slot_id(q, k, cfg)) for q, k in slots]
    if cfg.samples_per_question > 1:
        # N sampled answers: the hf provider samples only with do_sample on
        cfg = replace(cfg, temperature=cfg.sample_temperature)
        args = {**args, "do_sample": True} if "do_sample" in args else args
    if is_openai(teacher.model):
        served, calls = _answer_http(inp.endpoints, teacher, asked, prompts, cfg, inp.metadata or {}, inp.max_retries,
                                     inp.timeout, journal)
        # journals written before HTTP usage was recorded have none for their answers
        return ([served[q.id]["answer"] for q in asked], [served[q.id]["usage"] for q in asked if "usage" in served[q.id]],
                served, calls)
    answers, usage, calls = _answer_local(teacher.model, args, asked, prompts, cfg, inp.max_retries, inp.timeout, journal,
                                          cfg.temperature if cfg.samples_per_question > 1 else None)
    return answers, usage, {}, calls


def _draws(inp: GenerateInput, prompts: list[list[dict[str, str]]]) -> tuple[list[list[str]], int]:
    """Self-consistency: samples-1 draws per *question* at sample_temperature. With
    samples_per_question > 1 each of a question's sampled rows is compared with the same draws, so
    `agree` keeps its meaning (how many of `samples` answers give this row's span) and min_agree
    its range; the N rows are not compared with each other (that would make N a second `samples`)."""
    cfg = inp.cfg
    if cfg.samples <= 1:
        return [[] for _ in prompts], 0
    # the hf provider samples only with do_sample on; the greedy answer stays the one trained on
    sargs = {**inp.teacher_args, "do_sample": True} if "do_sample" in inp.teacher_args else inp.teacher_args
    flat, _ = asyncio.run(_answer_all(inp.teacher.model, sargs, prompts * (cfg.samples - 1), cfg, inp.max_retries, inp.timeout,
                                      cfg.sample_temperature))
    return [flat[i::len(prompts)] for i in range(len(prompts))], len(flat)


def _repeats(slots: list[tuple[TrainQuestion, int]], answers: list[str]) -> list[bool]:
    """Per slot: does its answer repeat an earlier sample's answer to the same question (exactly)?"""
    seen: set[tuple[str, str]] = set()
    out = []
    for (q, _), a in zip(slots, answers):
        out.append((q.id, a) in seen)
        seen.add((q.id, a))
    return out


def run_generate(inp: GenerateInput) -> GenerateOutput:
    """The teacher's answers to `inp.questions` as an OpenAI chat fine-tuning file + provenance,
    cached by content hash (a killed run resumes from the journal of answers so far)."""
    questions, teacher, cfg = inp.questions, inp.teacher, inp.cfg
    student_prompt, system, cache_dir, out_dir = inp.student_prompt, inp.system, inp.cache_dir, inp.out_dir
    key = generate_key(teacher, cfg, student_prompt, system, inp.data_key)
    entry = cache_dir / "generate" / key
    calls = 0
    with locked(entry):
        journal, finished = entry / "answers.partial.jsonl", entry / "train.jsonl"
        if journal.exists() and finished.exists() and journal.stat().st_mtime <= finished.stat().st_mtime:
            journal.unlink()  # a kill after the entry was written, before its journal was removed
        if not (inp.use_cache and finished.exists() and trusted(entry, "generate", ENTRY_FILES)):
            prompts = [teacher_prompt(q, teacher, cfg, student_prompt, system) for q in questions]
            slots = _slots(questions, cfg)
            slot_prompts = [prompts[i // cfg.samples_per_question] for i in range(len(slots))]
            t0 = time.time()
            answers, usage, served, calls = _answers(inp, slots, slot_prompts, journal)
            draws, n = _draws(inp, prompts)
            calls += n
            repeats = _repeats(slots, answers)
            verdicts: list[str | None] = [None] * len(slots)
            if cfg.judge:
                # a repeated answer is dropped whatever its verdict: not asked
                todo = [i for i in range(len(slots)) if not repeats[i]]
                asks = [chat(None, cfg.judge_prompt.format(passage=slots[i][0].passage, question=slots[i][0].question,
                                                           answer=answers[i])) for i in todo]
                said = asyncio.run(_answer_all(teacher.model, inp.teacher_args, asks, replace(cfg, max_tokens=8),
                                               inp.max_retries, inp.timeout))[0] if asks else []
                for i, v in zip(todo, said):
                    verdicts[i] = v
                calls += len(asks)
            rows, prov, dropped = _rows(inp, slots, slot_prompts, answers, draws, repeats, verdicts, served)
            entry.mkdir(parents=True, exist_ok=True)
            # provenance first: train.jsonl is the completion marker
            write_jsonl(entry / "usage.jsonl", usage)  # tokens and latency per teacher call
            write_jsonl(entry / "provenance.jsonl", prov)
            write_jsonl(entry / "filtered.jsonl", dropped)
            write_jsonl(entry / "train.jsonl", rows)
            write_manifest(entry, ENTRY_FILES)
            journal.unlink(missing_ok=True)
            print(f"[generate] {len(slots)} teacher answers, {calls} requests sent, in {time.time() - t0:.0f}s", flush=True)
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


def _rows(inp: GenerateInput, slots: list[tuple[TrainQuestion, int]], prompts: list[list[dict[str, str]]], answers: list[str],
          draws: list[list[str]], repeats: list[bool], verdicts: list[str | None], served: dict[str, dict[str, Any]],
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, their provenance, dropped rows): train and provenance row for row, in slot
    order (the kd objective rebuilds each row's teacher prompt from its provenance row)."""
    cfg, teacher, n = inp.cfg, inp.teacher, inp.cfg.samples_per_question
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sampled = {"temperature": cfg.sample_temperature if n > 1 else cfg.temperature, "max_tokens": cfg.max_tokens}
    rows, prov, dropped = [], [], []
    for i, ((q, k), p, a, verdict) in enumerate(zip(slots, prompts, answers, verdicts)):
        extra = draws[i // n]
        # None: no reference answer (bring-your-own questions may have none), so unknown
        ok = match(a, [q.answer], "contains", "whole").correct if q.answer else None
        agree = agreement(q.question, a, extra) if extra else None
        why = "dedup" if repeats[i] else failed_filter(a, ok, agree, cfg, verdict)
        sample = {"sample": k} if n > 1 else {}  # absent with one answer per question: the files stay as they were
        if why:
            dropped.append({"id": q.id, **sample, "question": q.question, "answer": a, "filter": why, "agree": agree,
                            "samples": extra, "judge": verdict})
            continue
        rows.append({"messages": chat(inp.system, render(inp.student_prompt, q.question)) + [{"role": "assistant", "content": a}]})
        prov.append({
            "id": q.id,
            **sample,
            "teacher_model": teacher.model,
            "teacher_prompt_sha256": hashlib.sha256(json.dumps(p).encode()).hexdigest(),
            "sampling": sampled,
            "context": teacher.context,
            "gold_contained": ok,
            **({"agree": agree, "samples": cfg.samples} if extra else {}),
            **({"judge": verdict} if verdict is not None else {}),
            "timestamp": stamp,
            **{key: v for key, v in served.get(_slot_id(q, k, cfg), {}).items() if key not in ("answer", "usage")},
        })
    return rows, prov, dropped
