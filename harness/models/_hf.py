"""Local `hf/` models whose batches fire when full, not on a timer.

inspect's `hf/` provider (0.3.28x) puts every request on one queue; one background thread takes
requests off it and generates them as a batch once `max_connections` requests are queued, or once
none has arrived for 2 s, and each waiting request looks for its answer once a second. With the
demo's 60 items at batch 32 (40 held-out + 20 control; eval_set runs both tasks at once) that is
batches of 32 and 28: the second waits out the 2 s timer, and every answer up to a second of
polling, with both cores idle (bench/eval_overhead.py measured 1.27 x a plain `generate` loop).

inspect has no knob for either wait, so three small changes, all keeping inspect's own tokenising,
`generate` call and decoding (`_generate_batch`) and its queue, hence the same batches
and the same greedy answers:

- the batch size of each request is known in advance: the harness knows how many samples its tasks
  send, `eval.batch_size` at a time (`batch_plan`). `BatchedHF` hands each request the size of the
  batch it will be part of (32, 32, ..., then the remainder), so inspect's queue fires the moment
  that batch is complete. A plan that turns out wrong (a resumed task that
  sends fewer samples, a retry) only falls back on inspect's 2 s timer: never a hang.
- the wait for an answer is the future itself (`asyncio.wrap_future`), not a 1 s poll: inspect's
  module-level `batched_generate` is replaced by one that differs only there (also serving the
  `hf/` judge, whose answers do not change either). Left alone if inspect's internals differ from
  what this was written against.
- on the CPU two batches generate at once, each on its own thread with half of torch's threads
  (`cpu_workers`: a small model's decoding does not keep two cores busy with one batch); a plan of one
  batch (a judge's look) is split in two (`spread`). Each batch is still inspect's `_generate_batch`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from typing import Any

from ._device import WORKERS_ENV, env_override

_PATCH = threading.Lock()


def batch_plan(sizes: list[int], batch_size: int, max_tasks: int = 10) -> list[int]:
    """The batches inspect forms for tasks of `sizes` samples with `batch_size` concurrent requests:
    eval_set runs up to `max_tasks` tasks at once (its default: 10), so their samples share the
    model's `batch_size` connections: full batches, then the remainder. More tasks than that: no
    plan (inspect's own batching)."""
    if len(sizes) > max_tasks:
        return []
    full, rest = divmod(sum(sizes), batch_size)
    return [batch_size] * full + ([rest] if rest else [])


class Plan:
    """Hands each request, in arrival order, the size of the batch it belongs to; past the end,
    None (the provider's default: inspect's full-or-timer batching)."""

    def __init__(self, sizes: list[int]) -> None:
        self._left = deque(sizes)
        self._taken = 0
        self._lock = threading.Lock()

    def next(self) -> int | None:
        with self._lock:
            if not self._left:
                return None
            size = self._left[0]
            self._taken += 1
            if self._taken == size:
                self._left.popleft()
                self._taken = 0
            return size


def _patched(hf: Any) -> bool:
    """Replace inspect's polling `batched_generate` with one that awaits the future (once)."""
    needed = ("batched_generate", "batch_queue", "process_batches", "_QueueItem", "_batch_key", "GenerateOutput",
              "_drain_batches", "_generate_batch")
    if not all(hasattr(hf, n) for n in needed):
        return False
    with _PATCH:
        if getattr(hf.batched_generate, "_harness", False):
            return True

        async def batched_generate(input: Any) -> Any:
            import asyncio
            from concurrent.futures import Future

            try:
                asyncio.get_running_loop()
            except RuntimeError:  # not asyncio (inspect can run on trio): inspect's own polling
                return await original(input)
            if hf.batch_thread is None:
                workers, threads = cpu_workers()  # read here: a fresh thread does not see set_num_threads
                hf.batch_thread = threading.Thread(target=_consume, args=(hf, workers, threads), daemon=True)
                hf.batch_thread.start()
            future: Future[Any] = Future()
            hf.batch_queue.put(hf._QueueItem(input=input, future=future, key=hf._batch_key(input)))
            return await asyncio.wrap_future(future)

        original = hf.batched_generate
        batched_generate._harness = True  # type: ignore[attr-defined]
        batched_generate._original = original  # type: ignore[attr-defined]  (bench/eval_overhead.py: the old path)
        hf.batched_generate = batched_generate
    return True


_TOKENIZER = threading.Lock()


def cpu_workers() -> tuple[int, int]:
    """(batches generated at once, torch threads each) for local `hf/` models on the CPU.

    Why not one batch on every thread: a small model's decoding steps are too small for torch's
    intra-op threads. Measured on 2 cores, SmolLM2-135M, a batch of 32 x 40 new tokens: 10.7 s on 2
    threads, 12.9 s on 1; two batches at once on 1 thread each, in two threads of one process: 13.3 s
    for both (6.7 s a batch, 1.4x the throughput of one batch on both threads). Follows torch's thread
    count, so a process limited to 1 thread (OMP_NUM_THREADS=1, one pytest-xdist worker per core)
    generates one batch at a time, as before. $HARNESS_HF_WORKERS sets the number of batches."""
    import torch

    threads = torch.get_num_threads()
    workers = env_override(WORKERS_ENV) or (2 if threads >= 2 else 1)
    return workers, max(1, threads // workers)


def _locked(fn: Any) -> Any:
    """A tokenizer call under one lock: a fast tokenizer's padding settings are state that two batches
    tokenised at the same moment would both change ("Already borrowed")."""
    def call(*args: Any, **kwargs: Any) -> Any:
        with _TOKENIZER:
            return fn(*args, **kwargs)
    return call


def _consume(hf: Any, workers: int, threads: int) -> None:
    """inspect's `process_batches` (drain the queue into batches, generate each), with CPU batches
    handed to `workers` threads of `threads` torch threads each, so the next batch generates while
    one is still running; a GPU batch is generated here, one at a time, as inspect does. The
    generation threads are daemons, like inspect's own: an interrupted run does not wait for them."""
    import dataclasses
    import queue

    if workers <= 1:
        return hf.process_batches()

    def generate(batch: list[Any]) -> None:
        try:
            first = batch[0]
            input = dataclasses.replace(first.input, tokenizer=_locked(first.input.tokenizer), decoder=_locked(first.input.decoder))
            hf._generate_batch([dataclasses.replace(first, input=input), *batch[1:]])  # sets every future, errors included
        except BaseException as e:  # never leave a request waiting on a batch that failed here
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(e)

    def work(jobs: queue.SimpleQueue[list[Any]]) -> None:
        import torch

        torch.set_num_threads(threads)  # per thread: the other threads keep theirs
        while True:
            generate(jobs.get())

    jobs: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
    for k in range(workers):
        threading.Thread(target=work, args=(jobs,), name=f"harness-hf-{k}", daemon=True).start()
    while True:
        for batch in hf._drain_batches(hf.batch_queue, timeout=2):
            # $HARNESS_HF_WORKERS=1 set later in the process (bench/eval_overhead.py's inspect arm) is
            # obeyed from the next batch on: the thread starts once per process
            # (read as text, never refused here: check_device refused a bad value before any stage, and
            # an error in this thread would leave every request waiting)
            if str(batch[0].input.device).startswith("cpu") and os.environ.get(WORKERS_ENV, "").strip() != "1":
                jobs.put(batch)
            else:
                hf._generate_batch(batch)


def spread(plan: list[int], workers: int) -> list[int]:
    """A plan of fewer batches than workers, split into `workers` near-equal batches (a judge's look
    of 30 requests: 15 + 15, both generating at once); any other plan as it is."""
    total = sum(plan)
    if workers <= 1 or len(plan) >= workers or total < 2:
        return plan
    n = min(workers, total)
    return [total // n + (1 if k < total % n else 0) for k in range(n)]


class Batched:
    """Marks a provider that batches by plan."""


@functools.cache
def _batched_class(base: type) -> type:
    class BatchedHF(base, Batched):  # type: ignore[misc,valid-type]
        """inspect's provider; each request carries the size of its batch as its max_connections
        (what inspect's queue fires on)."""

        _plan: Plan

        async def generate(self, input: Any, tools: Any, tool_choice: Any, config: Any) -> Any:
            size = self._plan.next()
            if size is not None:
                config = config.model_copy(update={"max_connections": size})
            return await super().generate(input, tools, tool_choice, config)

    return BatchedHF


def batched_hf(model: Any, plan: list[int]) -> Any:
    """Make the inspect `hf/` Model `model` (from get_model: inspect loads it, names and logs it)
    batch by `plan` (batch_plan) and await its answers; returns it. Any other model is returned as is."""
    from inspect_ai.model._providers import hf

    if not isinstance(model.api, hf.HuggingFaceAPI) or not _patched(hf):
        return model
    # the subclass is swapped in on the loaded instance: inspect built it (registry name `hf`, the
    # weights, tokenizer and settings); only `generate` is added
    if not isinstance(model.api, Batched):  # get_model memoises: the same model may come back
        model.api.__class__ = _batched_class(type(model.api))
    if plan and str(getattr(model.api, "device", "cpu")).startswith("cpu"):
        workers = cpu_workers()[0]
        plan = spread(plan, workers)
        if workers > 1:  # inspect holds a connection per request: room for `workers` batches in flight
            room = min(sum(plan), workers * max(plan))
            if (model.config.max_connections or 0) < room:
                model.config = model.config.model_copy(update={"max_connections": room})
    model.api._plan = Plan(plan)
    return model
