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
