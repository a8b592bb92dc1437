"""Local `hf/` evaluation batches by plan, not on inspect's timer (harness.models._hf): the batches
are the ones inspect forms on its own, fired the moment they are complete, so the greedy answers are
the same. What it saves is measured in bench/eval_overhead.py (never here: timed tests flake)."""

from __future__ import annotations

import os

import pytest

from harness.config import EvalConfig, GraderConfig
from harness.data import EvalItem
from harness.models import batch_plan
from harness.models._hf import Plan


def test_the_plan_is_full_batches_then_the_remainder_over_tasks_run_together():
    # the demo: 40 held-out + 20 control, both tasks at once (eval_set's max_tasks), 32 connections
    assert batch_plan([40, 20], 32) == [32, 28]
    assert batch_plan([64], 32) == [32, 32]
    assert batch_plan([5], 32) == [5]
    assert batch_plan([], 32) == []
    assert batch_plan([1] * 11, 32) == []  # more tasks than eval_set runs at once: inspect's own batching


def test_each_request_gets_the_size_of_its_batch_then_none():
    plan = Plan([3, 2])
    assert [plan.next() for _ in range(6)] == [3, 3, 3, 2, 2, None]


ITEMS = [EvalItem(f"h{i}", "heldout", q, a, "", "g") for i, (q, a) in enumerate(
    [("What is the capital of France?", "Paris"), ("What colour is the sky on a clear day?", "blue"),
     ("How many legs does a spider have?", "eight")])]
ITEMS += [EvalItem("c0", "control", "What is frozen water called?", "ice", "", "g")]


def _answers(tmp_path, name: str) -> tuple[dict[str, str], list[int]]:
    """The evaluate stage on ITEMS with the real embedded model: answers by task/id, and the sizes of
    the batches inspect's hf thread generated (a spy that calls the real function)."""
    from inspect_ai.log import read_eval_log
    from inspect_ai.model._providers import hf

    from harness.evaluate import EvalModel, run_evaluate
    from harness.models import embedded_path

    sizes: list[int] = []
    real = hf._generate_batch

    def spy(batch: list) -> None:
        sizes.append(len(batch))
        real(batch)

    hf._generate_batch = spy
    try:
        cfg = EvalConfig(max_tokens=6, batch_size=3)
        model = EvalModel("m", "hf/smollm2-135m-instruct", {
            "model_path": str(embedded_path("smollm2-135m-instruct", os.environ["HARNESS_CACHE"])), "do_sample": False, "device": "cpu"})
        out = run_evaluate([model], ITEMS, cfg, {"exact": GraderConfig()}, tmp_path / name)
    finally:
        hf._generate_batch = real
    answers = {}
    for path in out.logs["m"]:
        log = read_eval_log(path)
        answers |= {f"{log.eval.task}/{s.id}": s.output.completion for s in log.samples or []}
    return answers, sizes


def _unplanned(model, plan):
    """In place of harness.models.batched_hf: no plan (a model an earlier test batched by plan, and
    get_model memoised, gets an empty one: inspect's own batching)."""
    if hasattr(model.api, "_plan"):
        model.api._plan = Plan([])
    return model


@pytest.mark.slow
def test_batched_by_plan_gives_the_same_answers_as_inspects_own_batching(tmp_path, monkeypatch):
    from inspect_ai.model._providers import hf

    import harness.models

    # inspect's own path first (its polling batched_generate, no plan), then the harness's; both on
    # the one model inspect loads (get_model memoises it): the model is loaded once
    with monkeypatch.context() as m:
        m.setattr(hf, "batched_generate", getattr(hf.batched_generate, "_original", hf.batched_generate))
        m.setattr(harness.models, "batched_hf", _unplanned)
        old, old_sizes = _answers(tmp_path, "inspect")
    new, new_sizes = _answers(tmp_path, "plan")
    assert len(new) == len(ITEMS) and all(a.strip() for a in new.values())
    assert new == old  # greedy, the same batches: the same text
    # 4 samples (two tasks at once), 3 connections: batches of 3 and 1 either way; the plan fires
    # the last one at once, inspect's own batching after its 2 s timer
    assert sorted(new_sizes) == sorted(old_sizes) == [1, 3]


# -- start-up: what every run paid more than once (bench/startup.py measures it) -------------------


def test_the_conversion_check_is_remembered_only_while_the_files_stay_as_they_were(tmp_path):
    from harness.models._embedded import _SOUND, _sound

    entry = tmp_path / "ckpt"
    entry.mkdir()
    (entry / "config.json").write_text('{"model_type": "llama"}')
    assert _sound(entry) and entry in _SOUND  # checked, sound, remembered
    (entry / "config.json").write_text('{"model_type": "llama"')  # cut short: another size, another mtime
    assert not _sound(entry)  # checked again, not taken from the memo
    (entry / "config.json").write_text('{"model_type": "llama"}')
    assert _sound(entry)
    (entry / "tokenizer.json").write_text("{not json")  # a file added
    assert not _sound(entry)


def test_the_dedup_of_the_same_questions_is_computed_once_and_returns_a_fresh_list():
    from harness.data._overlap import _near_duplicates, near_duplicates

    qs = ["What is the capital of Zorbia?", "what is the capital of zorbia", "Who founded Zorbia in 1802?"]
    _near_duplicates.cache_clear()
    first = near_duplicates(["a", "b", "c"], qs, 0.9)
    first.append("changed by a caller")  # a caller's list is its own
    again = near_duplicates(["a", "b", "c"], qs, 0.9)
    assert [d.removed for d in again] == ["b"] and _near_duplicates.cache_info().hits == 1


# -- two batches at once on the CPU (harness.models._hf.cpu_workers) -------------------------------


def test_a_plan_of_fewer_batches_than_workers_is_split_evenly():
    from harness.models._hf import spread

    assert spread([30], 2) == [15, 15]  # a judge's look: both halves generate at once
    assert spread([5], 2) == [3, 2]
    assert spread([32, 28], 2) == [32, 28]  # enough batches already: inspect's own composition
    assert spread([30], 1) == [30] and spread([1], 2) == [1] and spread([], 2) == []


_WORKER_RUN = """
import json, os, sys, threading, time
from pathlib import Path
from inspect_ai.log import read_eval_log
from inspect_ai.model._providers import hf
from harness.config import EvalConfig, GraderConfig
from harness.evaluate import EvalModel, run_evaluate
from harness.models import embedded_path
sys.path.insert(0, sys.argv[2])
from test_hf_batching import ITEMS
busy, most, sizes, names = [0], [0], [], set()
lock, real = threading.Lock(), hf._generate_batch
def spy(batch):
    with lock:
        busy[0] += 1; most[0] = max(most[0], busy[0]); sizes.append(len(batch)); names.add(threading.current_thread().name)
    try:
        real(batch)
    finally:
        with lock:
            busy[0] -= 1
hf._generate_batch = spy
model = EvalModel("m", "hf/smollm2-135m-instruct", {
    "model_path": str(embedded_path("smollm2-135m-instruct", os.environ["HARNESS_CACHE"])), "do_sample": False, "device": "cpu"})
out = run_evaluate([model], ITEMS, EvalConfig(max_tokens=48, batch_size=3), {"exact": GraderConfig()}, Path(sys.argv[1]))
answers = {}
for path in out.logs["m"]:
    log = read_eval_log(path)
    answers |= {f"{log.eval.task}/{s.id}": s.output.completion for s in log.samples or []}
print(json.dumps({"answers": answers, "most": most[0], "sizes": sorted(sizes), "pool": any(n.startswith("harness-hf") for n in names)}))
"""


@pytest.mark.slow
def test_two_batches_generate_at_once_on_the_cpu_with_the_same_answers(tmp_path):
    """A fresh process each (inspect's batch thread starts once per process): one batch at a time vs
    two at once, on the real embedded model with 2 torch threads; the same batches, the same text."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    runs = {}
    for workers in ("1", "2"):
        env = {**os.environ, "HARNESS_HF_WORKERS": workers, "OMP_NUM_THREADS": "2"}
        out = subprocess.run([sys.executable, "-c", _WORKER_RUN, str(tmp_path / workers), str(Path(__file__).parent)],
                             capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[workers] = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = runs["1"], runs["2"]
    assert len(two["answers"]) == len(ITEMS) and all(a.strip() for a in two["answers"].values())
    assert two["answers"] == one["answers"]  # greedy, the same batches: the same text
    assert one["sizes"] == two["sizes"] == [1, 3]
    assert one["most"] == 1 and not one["pool"]  # inspect's own thread, one batch at a time
    assert two["pool"], two
    assert two["most"] == 2, two  # both batches were generating at the same moment


def test_a_batch_that_fails_outside_inspects_own_error_handling_fails_its_requests_not_hangs():
    """The generation threads set an exception on every request of a batch that failed before
    inspect's `_generate_batch` could (here: it raises at once); without that the requests would wait
    forever. inspect's queue is stood in for by a namespace: its failure cannot be produced for real."""
    import threading
    import time
    import types
    from concurrent.futures import Future
    from dataclasses import dataclass

    from harness.models._hf import _consume

    @dataclass
    class Input:
        tokenizer: object
        decoder: object
        device: str = "cpu"

    @dataclass
    class Item:
        input: Input
        future: Future

    items = [Item(Input(str, str), Future()) for _ in range(3)]
    sent = threading.Event()

    def drain(queue, timeout):
        if sent.is_set():
            time.sleep(timeout)
            return []
        sent.set()
        return [items]

    def broken(batch):
        raise RuntimeError("inspect internals changed")

    hf = types.SimpleNamespace(_drain_batches=drain, batch_queue=None, _generate_batch=broken, process_batches=None)
    threading.Thread(target=_consume, args=(hf, 2, 1), daemon=True).start()
    for item in items:
        with pytest.raises(RuntimeError, match="inspect internals changed"):
            item.future.result(timeout=30)
