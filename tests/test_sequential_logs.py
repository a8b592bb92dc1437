"""`harness regress --sequential` over inspect logs still being written (issue 30): the in-run gate's
plan and stopping rule (harness.regress sequential_plan / sequential_status, as `harness run
regress.sequential=true` uses them) applied to whatever the logs hold at each look.

The logs are real inspect logs (tests/canned_logs.py); the growing one is the finished candidate log
cut to its first items in the gate's order and rewritten by inspect with status "started", its
header still listing every item it will hold, as a log inspect is writing does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.canned_logs import answers, subset, write_log

REPO = Path(__file__).resolve().parents[1]
N, BATCH = 120, 20
# 30 of 120 answers wrong (seeded): the in-run gate calls the regression after 60 items, in the middle third
WRONG = set(np.random.default_rng(0).choice(N, size=30, replace=False).tolist())


def _settings(**kw):
    from harness.config import RegressConfig

    return RegressConfig(enabled=True, sequential=True, batch=BATCH, max_items=N, **kw)


@pytest.fixture(scope="module")
def grown(module_tmp):
    d = module_tmp("grow")
    base = write_log(d / "base", answers(n=N))
    cand = write_log(d / "cand", answers(wrong=WRONG, n=N))
    return d, base, cand


def _in_run_stop(base: Path, cand: Path) -> tuple[str, int]:
    """What `harness run regress.sequential=true` does on the same paired scores: plan, then after
    each batch ask sequential_status whether to go on (harness/pipeline.py `_evaluate_sequential`)."""
    from harness.regress import sequential_plan, sequential_status
    from harness.runs import open_source

    s = _settings(baseline="current", candidate="candidate")
    frame = pd.concat([open_source(base).frame.assign(alias="current"), open_source(cand).frame.assign(alias="candidate")])
    frame["cluster"] = frame["id"]  # the in-run gate's unit here: an item (no clusters)
    items = [(t, i, i) for t, i in frame.drop_duplicates(["task", "id"])[["task", "id"]].itertuples(index=False)]
    batches = sequential_plan(items, s)
    for k in range(len(batches)):
        keep = {x for b in batches[: k + 1] for x in b}
        st = sequential_status(frame[[x in keep for x in zip(frame["task"], frame["id"])]], batches, s, k + 1)
        if st.stopped:
            return st.verdict, st.items_used
    return "inconclusive", st.items_used


def _gate(base: Path, cand: Path) -> dict:
    from harness.regress import gate, parse_ref

    return gate(parse_ref(str(base), "current", "--baseline"), parse_ref(str(cand), "candidate", "--candidate"), _settings())


def _order() -> list[str]:
    """The item ids in the gate's seeded order (the order the in-run gate evaluates them)."""
    from harness.regress import sequential_plan

    return [i for b in sequential_plan([("quiz", f"q{i:03d}", f"q{i:03d}") for i in range(N)], _settings()) for _, i in b]


@pytest.mark.slow  # three looks at 120 items: ~25 s on a loaded 2-core machine
def test_a_log_grown_in_three_steps_stops_where_the_in_run_gate_stops(grown):
    d, base, cand = grown
    verdict, stop = _in_run_stop(base, cand)
    assert (verdict, stop) == ("regression", 60)  # the premise: a stop in the middle third
    order = _order()
    looks = []
    for k, part in ((1, N // 3), (2, 2 * N // 3)):  # the candidate's log as inspect is writing it
        grow = subset(cand, d / f"look{k}" / "cand.eval", ids=set(order[:part]), status="started")
        looks.append(_gate(base, grow))
    looks.append(_gate(base, cand))  # finished
    first, second, full = looks
    # a third in: two batches, undecided -> "keep going" (inconclusive for now, exit 4), said so
    assert first["verdict"] == "inconclusive" and first["sequential"]["items_used"] == 40
    assert first["sequential"]["stopped"] == "run ended" and any("as more samples arrive" in w for w in first["warnings"])
    # two thirds and the finished log: the same stop, the same verdict as inside `harness run`
    for g in (second, full):
        q = g["sequential"]
        assert (g["verdict"], q["items_used"], q["stopped"]) == ("regression", stop, "decided"), q
        assert g["items"]["n_compared"] == stop and q["items_max"] == N and g["exit_code"] == 3
    assert second["cells"] == full["cells"]  # what the gate read at the stop does not depend on the look
    # the verdict's d is the mean paired difference of the items up to the stop, from the logs themselves
    (cell,) = full["cells"]
    used = set(order[:stop])
    assert cell["diff"] == pytest.approx(-len({f"q{i:03d}" for i in WRONG} & used) / stop, abs=1e-6)


def test_bad_growing_input_is_one_line(grown, tmp_path):
    from harness.errors import HarnessError

    d, base, cand = grown
    few = subset(cand, tmp_path / "few.eval", keep=5, status="started")
    with pytest.raises(HarnessError, match="no complete batch yet"):
        _gate(base, few)
    other = write_log(tmp_path / "other", answers(n=30))  # another item set
    with pytest.raises(HarnessError, match="not among the baseline's"):
        _gate(other, cand)
    cancelled = subset(cand, tmp_path / "cancelled.eval", keep=50, status="cancelled")
    with pytest.raises(HarnessError, match="status 'cancelled'"):
        _gate(base, cancelled)


def test_cli_sequential_over_a_growing_log(grown, tmp_path, monkeypatch, capsys):
    """The command's flags reach the gate (in-process: `harness regress` is this function)."""
    from harness.cli._regress import command

    d, base, cand = grown
    grow = subset(cand, tmp_path / "cand.eval", ids=set(_order()[: N // 2]), status="started")
    monkeypatch.chdir(tmp_path)
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit) as e:
        command(["--baseline", str(base), "--candidate", str(grow), "--sequential", "--batch", str(BATCH), "--max-items", str(N)])
    doc = json.loads((tmp_path / "regress.json").read_text())
    assert e.value.code == doc["exit_code"] == 3 and doc["sequential"]["batch"] == BATCH and doc["sequential"]["items_max"] == N
    assert "Sequential gate: stopped after 60 of at most 120 items" in capsys.readouterr().out


def test_an_item_counts_once_all_its_epochs_are_in(tmp_path):
    """In a log still being written, an item with one of its two epochs is not yet in (its mean would
    change at the next look); in the finished log it is."""
    from harness.regress._growing import open_growing

    full = write_log(tmp_path / "two", answers(n=6), epochs=2)
    part = subset(full, tmp_path / "part.eval", status="started", drop={("q001", 2), ("q004", 2)})
    ids = set(open_growing(part).frame["id"])
    assert ids == {"q000", "q002", "q003", "q005"}
    assert set(open_growing(full).frame["id"]) == {f"q{i:03d}" for i in range(6)}
