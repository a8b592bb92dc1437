"""`harness history` (issue 30): four versions of a model on the same 40 items, oldest first, each
wrong on 3 more items than the one before (tests/canned_logs.py DRIFT; real inspect logs). Every
step is within what 40 items can tell apart from the margin; the first -> last gate is not."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.canned_logs import DRIFT


def test_history_table_plot_and_verdicts(canned_logs, tmp_path, capsys):
    from statsmodels.stats.proportion import proportion_confint

    from harness.cli._history import command

    paths = [str(canned_logs[v]) for v in DRIFT]
    command([*paths, "--out", str(tmp_path / "h")])
    out = capsys.readouterr().out
    assert "v1 -> v4 (first -> last): REGRESSION (n = 40)" in out
    t = pd.read_csv(tmp_path / "h" / "history.csv")
    assert list(t["version"]) == [1, 2, 3, 4] and set(t["task"]) == {"quiz"} and set(t["grader"]) == {"match"}
    for row, wrong in zip(t.itertuples(), DRIFT.values()):
        k = 40 - len(wrong)
        lo, hi = proportion_confint(k, 40, alpha=0.05, method="wilson")  # independently: statsmodels' Wilson
        assert row.accuracy == pytest.approx(k / 40) and row.n == 40
        assert (row.ci_low, row.ci_high) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
    # each step: d = the mean paired difference (3 more items wrong), not a regression on its own
    steps = t.iloc[1:]
    assert list(steps["diff"]) == [pytest.approx(-3 / 40)] * 3 and "regression" not in set(steps["vs_previous"])
    assert (steps["diff_upper"] > -0.05).all() and pd.isna(t.iloc[0]["diff"])
    import json

    doc = json.loads((tmp_path / "h" / "history.json").read_text())
    (drift,) = [g for g in doc["gates"] if g["kind"] == "drift"]
    (cell,) = drift["cells"]
    assert drift["verdict"] == "regression" and cell["diff"] == pytest.approx(-9 / 40) and cell["upper"] < -0.05
    png = (tmp_path / "h" / "history.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (tmp_path / "h" / "history.md").read_text()
    assert "| v4 · " in md and "first → last" in md and "![accuracy per version](history.png)" in md
    assert not list(tmp_path.glob("h/.*"))  # no temp file left


def test_history_bad_input_is_one_line(canned_logs, tmp_path):
    from harness.config import RegressConfig
    from harness.errors import HarnessError
    from harness.regress import history, parse_ref

    ref = parse_ref(str(canned_logs["v1"]), "candidate", "version 1")
    with pytest.raises(HarnessError, match="at least two"):
        history([ref], RegressConfig(enabled=True))
    with pytest.raises(HarnessError, match="evaluation items differ"):
        history([ref, parse_ref(str(canned_logs["current6"]), "candidate", "version 2")], RegressConfig(enabled=True))
    with pytest.raises(HarnessError, match="no such run dir or log"):
        parse_ref(str(tmp_path / "nope.eval"), "candidate", "version 2")
