"""The gate in a team's own pytest suite (harness.testing, issue 30): `assert_non_inferior` fails a
test on a regression, passes a non-inferior candidate, and reports an inconclusive gate as its own
outcome (an `Inconclusive` failure, or xfail / skip when asked), never as a pass.

The logs are real inspect logs (tests/canned_logs.py); the suites are run by a real inner pytest
session (pytester), with the plugin loaded as the entry point would load it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _not_on_github(monkeypatch):
    """This suite itself may run on GitHub Actions: its gates must not write to the real step summary."""
    for var in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def logs(canned_logs):
    """current: right on all 40 items; worse: wrong on 24 of them; same: the current's answers again;
    current6 / slip6: 6 items, 2 of them wrong (too few to tell) (tests/canned_logs.py)."""
    return {**canned_logs, "worse": canned_logs["bad"]}


def test_regression_fails_non_inferior_passes_inconclusive_is_distinct(logs, tmp_path, monkeypatch):
    from harness.testing import GateFailure, Inconclusive, Regression, assert_non_inferior

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))  # on GitHub Actions: the same step summary

    with pytest.raises(Regression) as e:
        assert_non_inferior(logs["current"], logs["worse"], margin=0.05)
    regression = e.value
    assert isinstance(e.value, AssertionError) and e.value.result["verdict"] == "regression"
    msg = str(e.value)
    assert msg.startswith("harness regression gate: REGRESSION") and e.value.result["headline"] in msg
    assert "quiz" in msg and "match" in msg and "-60.0" in msg  # the cell's table row: d = 16/40 - 40/40
    g = assert_non_inferior(logs["current"], logs["same"], margin=0.2, out=tmp_path / "gate")
    assert g["verdict"] == "pass" and g["exit_code"] == 0 and (tmp_path / "gate" / "regress.md").is_file()
    with pytest.raises(Inconclusive) as e:
        assert_non_inferior(logs["current6"], logs["slip6"], margin=0.05)
    assert not isinstance(e.value, Regression) and isinstance(e.value, GateFailure)
    assert "INCONCLUSIVE" in str(e.value) and "required n" in str(e.value)
    summary = (tmp_path / "summary.md").read_text()
    assert [x for x in ("REGRESSION (exit 3)", "PASS (exit 0)", "INCONCLUSIVE (exit 4)") if x in summary] == [
        "REGRESSION (exit 3)", "PASS (exit 0)", "INCONCLUSIVE (exit 4)"]
    # the same verdict and numbers as the CLI's gate on the same logs
    from harness.config import RegressConfig
    from harness.regress import gate, parse_ref

    cli = gate(parse_ref(str(logs["current"]), "current", "b"), parse_ref(str(logs["worse"]), "candidate", "c"), RegressConfig(enabled=True))
    assert cli["cells"] == regression.result["cells"]


def test_bad_input_and_policy_are_one_line_errors(logs, tmp_path):
    from harness.errors import HarnessError
    from harness.testing import assert_non_inferior

    with pytest.raises(HarnessError, match="never a pass"):
        assert_non_inferior(logs["current"], logs["same"], inconclusive="pass")
    with pytest.raises(HarnessError, match="no such run dir or log"):
        assert_non_inferior(tmp_path / "missing.eval", logs["same"])
    with pytest.raises(HarnessError, match="evaluation items differ"):
        assert_non_inferior(logs["current"], logs["slip6"])


SUITE = """
from harness.testing import assert_non_inferior

def test_regressed():
    assert_non_inferior({current!r}, {worse!r})

def test_same(harness_gate):
    harness_gate({current!r}, {same!r}, margin=0.2)

def test_undecided():
    assert_non_inferior({current6!r}, {slip6!r})

def test_undecided_xfail():
    assert_non_inferior({current6!r}, {slip6!r}, inconclusive="xfail")

def test_undecided_skip(harness_gate):
    harness_gate({current6!r}, {slip6!r}, inconclusive="skip")
"""


def test_an_inner_suite_sees_each_outcome(logs, pytester):
    pytester.makepyfile(test_models=SUITE.format(**{k: str(v) for k, v in logs.items()}))
    # the plugin as its entry point loads it (`-p no:harness`: the installed entry point, if any, not twice)
    r = pytester.runpytest_inprocess("-p", "no:harness", "-p", "harness.testing", "-p", "no:cacheprovider", "-rA")
    r.assert_outcomes(passed=1, failed=2, xfailed=1, skipped=1)
    out = r.stdout.str()
    assert "Regression: harness regression gate: REGRESSION" in out and "Inconclusive: harness regression gate: INCONCLUSIVE" in out
    assert "PASSED test_models.py::test_same" in out
