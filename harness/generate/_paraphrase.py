"""Question augmentation: the teacher writes more wordings of every training question, so each
fact is seen in many phrasings (facts become extractable only with many paraphrases per fact:
Physics of LMs 3.1; Mecklenburg et al. 2024). Each kept wording is a training question with its
source's passage, gold and group; the data stage deduplicates and leak-checks it like any other."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..cache import digest, locked, read_jsonl, trusted, write_jsonl, write_manifest
from ..config import GenerateConfig, ModelConfig
from ..data import TrainQuestion, norm
from ..errors import HarnessError
from ..prompts import chat
from ._questions import parse_question
from ._teacher import _answer_all

VERSION = 1
FILE = "paraphrases_provenance.jsonl"


@dataclass(frozen=True)
class ParaphraseOutput:
    questions: list[TrainQuestion]  # the kept wordings, `<source id>~p<k>`
    stats: dict[str, Any]  # summary.json data.paraphrases (the pipeline adds what the data stage dropped)
    key: str
    calls: int


def check_paraphrases(cfg: GenerateConfig) -> None:
    if cfg.paraphrases < 0:
        raise HarnessError(f"generate.paraphrases must be >= 0 (0 = off), got {cfg.paraphrases}")
    if cfg.paraphrases > 1 and cfg.paraphrase_temperature <= 0:
        raise HarnessError("generate.paraphrase_temperature must be > 0 when generate.paraphrases > 1 "
                           "(greedy wordings of one question are all the same)")
    try:
        cfg.paraphrase_prompt.format(question="", passage="")
    except (KeyError, IndexError, ValueError) as e:
        raise HarnessError(f"generate.paraphrase_prompt: unknown placeholder {e}; use {{question}} {{passage}}") from None


def _names(question: str) -> set[str]:
    """The source's names: capitalised words after the first ("What is the capital of Lorn?" -> lorn)."""
    return {w.lower() for w in re.findall(r"\b[A-Z][\w'-]*", question)[1:]} if question[:1].isupper() else set()


def _status(reply: str, source: str, seen: set[str]) -> tuple[str | None, str]:
    """(the wording, "ok") or (None/the wording, why it is not kept): no question, too short, off
    topic (it drops a name of the source: the 135M teacher writes "Can you provide the answer to the
    first question?"), or a repeat of the source or of an earlier wording (normalised, as data.dedup)."""
    q, why = parse_question(reply)
    if q is None:
        return None, why
    if not _names(source) <= set(re.findall(r"[\w'-]+", q.lower())):
        return q, "off topic"
    if norm(q) in seen:
        return q, "duplicate"
    seen.add(norm(q))
    return q, "ok"


def paraphrase_key(train: list[TrainQuestion], teacher: ModelConfig, gen: GenerateConfig) -> str:
    """What the wordings depend on: the teacher, the paraphrase settings, the questions."""
    from ..models import identity

    return digest({"v": VERSION, "teacher": identity(teacher), "n": gen.paraphrases, "prompt": gen.paraphrase_prompt,
                   "temperature": gen.paraphrase_temperature, "max_tokens": gen.paraphrase_max_tokens, "batch": gen.batch_size,
                   "questions": [[q.id, q.question, q.passage] for q in train]})


def run_paraphrases(train: list[TrainQuestion], teacher: ModelConfig, teacher_args: dict[str, Any], gen: GenerateConfig,
                    cache_dir: Path, out_dir: Path, use_cache: bool = True) -> ParaphraseOutput:
    """`gen.paraphrases` wordings of every question in `train`, cached by content hash; every reply
    (kept or not, and why) in paraphrases_provenance.jsonl."""
    cells = [(q, k) for q in train for k in range(1, gen.paraphrases + 1)]
    key = paraphrase_key(train, teacher, gen)
    entry = cache_dir / "paraphrases" / key
    calls = 0
    with locked(entry):
        if not (use_cache and (entry / FILE).exists() and trusted(entry, "paraphrases", [FILE])):
            prompts = [chat(None, gen.paraphrase_prompt.format(question=q.question, passage=q.passage)) for q, _ in cells]
            sub = replace(gen, max_tokens=gen.paraphrase_max_tokens, temperature=gen.paraphrase_temperature)
            sample = gen.paraphrase_temperature > 0 and "do_sample" in teacher_args  # the hf provider samples only so
            t0 = time.time()
            replies = asyncio.run(_answer_all(teacher.model, {**teacher_args, "do_sample": True} if sample else teacher_args,
                                              prompts, sub, temperature=gen.paraphrase_temperature))[0] if prompts else []
            calls = len(prompts)
            rows: list[dict[str, Any]] = []
            seen: dict[str, set[str]] = {}  # per source: its wordings so far, normalised, the source's own first
            for (q, k), p, reply in zip(cells, prompts, replies):
                wording, why = _status(reply, q.question, seen.setdefault(q.id, {norm(q.question)}))
                rows.append({"id": f"{q.id}~p{k}", "source": q.id, "question": wording, "status": why, "reply": reply,
                             "teacher_model": teacher.model, "prompt_sha256": hashlib.sha256(json.dumps(p).encode()).hexdigest()})
            entry.mkdir(parents=True, exist_ok=True)
            write_jsonl(entry / FILE, rows)
            write_manifest(entry, [FILE])
            print(f"[paraphrases] {len(prompts)} paraphrase prompts in {time.time() - t0:.0f}s", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry / FILE, out_dir / f".{FILE}.tmp")
    (out_dir / f".{FILE}.tmp").replace(out_dir / FILE)
    rows = read_jsonl(out_dir / FILE)
    by_id = {q.id: q for q in train}
    questions = [replace(by_id[r["source"]], id=r["id"], question=r["question"]) for r in rows if r["status"] == "ok"]
    stats = {"prompts": len(rows), "accepted": len(questions),
             "rejected": {why: sum(r["status"] == why for r in rows) for why in ("no question", "too short", "off topic", "duplicate")}}
    return ParaphraseOutput(questions, stats, key, calls)
