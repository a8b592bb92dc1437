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
from typing import Any, Callable

from ._progress import Progress
from .cache import digest, locked, read_jsonl, write_jsonl
from .config import GenerateConfig, ModelConfig, QuestionsConfig
from .data import TrainQuestion
from .errors import HarnessError
from .text import extract, match
from .prompts import chat, render, to_inspect
from .usage import call_record

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


def generate_key(teacher: ModelConfig, cfg: GenerateConfig, student_prompt: str, system: str | None, data_key: str) -> str:
    from .models import identity

    # question synthesis has its own stage and key: its settings do not invalidate cached answers
    answer_cfg = {k: v for k, v in asdict(cfg).items() if k != "questions"}
    return digest({"v": VERSION, "teacher": identity(teacher), "cfg": answer_cfg, "student_prompt": student_prompt,
                   "system": system, "data": data_key})


async def _answer_all(model_str: str, args: dict[str, Any], prompts: list[list[dict[str, str]]], cfg: GenerateConfig,
                      max_retries: int = 3, timeout: int = 600, temperature: float | None = None,
                      on_done: Callable[[int, str, dict[str, Any]], None] | None = None,
                      ) -> tuple[list[str], list[dict[str, Any]]]:
    """Answers and usage records, in prompt order; `on_done(i, answer, usage)` as each one arrives."""
    from inspect_ai.model import GenerateConfig as InspectGenerateConfig
    from inspect_ai.model import get_model

    model = get_model(
        model_str,
        config=InspectGenerateConfig(
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature if temperature is None else temperature,
            seed=0 if temperature else None,  # reproducible sampled draws where the provider supports a seed
            max_connections=cfg.batch_size,  # for the hf provider this is the batch size
            max_retries=max_retries,
            timeout=timeout,
        ),
        **args,
    )

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
                  cfg: GenerateConfig, max_retries: int, timeout: int, partial: Path
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
            asyncio.run(_answer_all(model_str, args, [p for _, p in todo], cfg, max_retries, timeout, on_done=keep))
    return [done[q.id]["answer"] for q in questions], [done[q.id]["usage"] for q in questions], len(todo)


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
        journal, finished = entry / "answers.partial.jsonl", entry / "train.jsonl"
        if journal.exists() and finished.exists() and journal.stat().st_mtime <= finished.stat().st_mtime:
            journal.unlink()  # a kill after the entry was written, before its journal was removed
        if not (use_cache and finished.exists()):
            prompts = [
                chat(system, render(cfg.prompt, q.question, q.passage) if teacher.context and q.passage else render(student_prompt, q.question))
                for q in questions
            ]
            t0 = time.time()
            from .models import is_openai

            usage: list[dict[str, Any]] = []  # tokens and latency per call (the HTTP path records none yet)
            if is_openai(teacher.model):
                served, calls = _answer_http(endpoints, teacher, questions, prompts, cfg, metadata or {}, max_retries,
                                             timeout, journal)
                answers = [served[q.id]["answer"] for q in questions]
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
                    **{k: v for k, v in served.get(q.id, {}).items() if k != "answer"},
                })
            entry.mkdir(parents=True, exist_ok=True)
            # provenance first: train.jsonl is the completion marker
            write_jsonl(entry / "usage.jsonl", usage)  # tokens and latency per teacher call
            write_jsonl(entry / "provenance.jsonl", prov)
            write_jsonl(entry / "filtered.jsonl", dropped)
            write_jsonl(entry / "train.jsonl", rows)
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
    from .models import chat_many

    done = _read_journal(partial)
    todo = [(q, p) for q, p in zip(questions, prompts) if q.id not in done]
    store = teacher.model.startswith("openai/")
    # at most 16 pairs, keys <= 64 and values <= 512 characters (OpenAI's limits)
    tags = [{**{k: str(v)[:512] for k, v in metadata.items()}, "question_id": q.id[:512]} for q, _ in todo]
    partial.parent.mkdir(parents=True, exist_ok=True)
    failed: list[BaseException] = []
    with open(partial, "a", encoding="utf-8") as out, Progress("generate", len(questions), "answers", len(done)) as bar:

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
    from .models import identity

    key = digest({"v": VERSION, "teacher": identity(teacher), "cfg": asdict(cfg), "cells": cells, "examples": examples,
                  "batch": gen.batch_size})
    entry = cache_dir / "questions" / key
    calls = 0
    with locked(entry):
        if not (use_cache and (entry / "questions_provenance.jsonl").exists()):
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
