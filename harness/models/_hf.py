"""Local `hf/` models whose batches fire when full, not on a timer.

inspect's `hf/` provider (0.3.28x) puts every request on one queue; one background thread takes
requests off it and generates them as a batch once `max_connections` requests are queued, or once
none has arrived for 2 s, and each waiting request looks for its answer once a second. With the
demo's 60 items at batch 32 (40 held-out + 20 control; eval_set runs both tasks at once) that is
batches of 32 and 28: the second waits out the 2 s timer, and every answer up to a second of
polling, with both cores idle (bench/eval_overhead.py measured 1.27 x a plain `generate` loop).

inspect has no knob for either wait, so two small changes, both keeping inspect's own tokenising,
`generate` call and decoding (`_generate_batch`), its queue and its thread, hence the same batches
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
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from typing import Any

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
    needed = ("batched_generate", "batch_queue", "process_batches", "_QueueItem", "_batch_key", "GenerateOutput")
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
                hf.batch_thread = threading.Thread(target=hf.process_batches, daemon=True)
                hf.batch_thread.start()
            future: Future[Any] = Future()
            hf.batch_queue.put(hf._QueueItem(input=input, future=future, key=hf._batch_key(input)))
            return await asyncio.wrap_future(future)

        original = hf.batched_generate
        batched_generate._harness = True  # type: ignore[attr-defined]
        batched_generate._original = original  # type: ignore[attr-defined]  (bench/eval_overhead.py: the old path)
        hf.batched_generate = batched_generate
    return True


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
    model.api._plan = Plan(plan)
    return model
