"""The regression gate inside a team's own test suite (docs/regress.md "In pytest").

    from harness.testing import assert_non_inferior

    def test_new_model_is_not_worse():
        assert_non_inferior("evals/prod.eval", "evals/candidate.eval", margin=0.05)

Same reader and gate as `harness regress` (run dirs `RUN_DIR[:alias]`, inspect logs or log dirs,
lm-eval outputs), same verdicts, same report:

- pass (non-inferior on every gated cell): returns the gate's result (regress.json's content);
- regression: raises `Regression`, an AssertionError whose message is the rendered verdict (the
  headline and the per-cell table `harness regress` prints), so the test fails;
- inconclusive (too few items to tell): never a silent pass. `inconclusive="fail"` (default) raises
  `Inconclusive`, another AssertionError, whose message says how many items would decide;
  "xfail" marks the test xfailed and "skip" skips it, each with the same message. Exit-code
  semantics as the CLI's: fail = exit 4, and there is no "pass" for an undecided gate here.

Bad input (a missing log, different items, different graders) raises harness.errors.HarnessError
with the CLI's one-line message. `out=DIR` also writes regress.json / regress.md there. On GitHub
Actions ($GITHUB_STEP_SUMMARY / $GITHUB_OUTPUT set) it appends the same step summary and outputs as
`harness regress` (`github=False`: not).

Registered as a pytest plugin (entry point `harness`): the fixture `harness_gate` is this function,
for suites that prefer fixtures. This module imports nothing heavy until a gate runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest

__all__ = ["GateFailure", "Inconclusive", "Regression", "assert_non_inferior", "harness_gate"]

INCONCLUSIVE = ("fail", "xfail", "skip")


class GateFailure(AssertionError):
    """The gate did not pass; `.result` is the gate's result (regress.json's content)."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


class Regression(GateFailure):
    """At least one gated cell is significantly worse than the margin allows (CLI exit 3)."""


class Inconclusive(GateFailure):
    """Too few items to tell whether the candidate is within the margin (CLI exit 4): not a pass."""


def assert_non_inferior(baseline: str | Path, candidate: str | Path, margin: float = 0.05, *, alpha: float = 0.05,
                        strict: bool = False, inconclusive: str = "fail", tasks: Sequence[str] = (),
                        graders: Sequence[str] = (), allow_subset: bool = False, out: str | Path | None = None,
                        github: bool = True) -> dict[str, Any]:
    """Gate `candidate` against `baseline` (each `PATH[:alias]`, as `harness regress --baseline/--candidate`).
    Returns the result on pass; raises Regression, or Inconclusive / xfail / skip per `inconclusive`."""
    from .config import RegressConfig
    from .errors import HarnessError
    from .regress import gate, parse_ref, render_table, write_gate, write_github

    if inconclusive not in INCONCLUSIVE:
        raise HarnessError(f"assert_non_inferior: inconclusive='{inconclusive}' is not one of {', '.join(INCONCLUSIVE)} "
                           "(an undecided gate is never a pass)")
    d = RegressConfig()
    base = parse_ref(str(baseline), d.baseline, "baseline")
    cand = parse_ref(str(candidate), d.candidate, "candidate")
    s = RegressConfig(enabled=True, baseline=base.alias, candidate=cand.alias, margin=margin, alpha=alpha, strict=strict,
                      tasks=list(tasks), graders=list(graders), allow_subset=allow_subset)
    result = gate(base, cand, s)
    if out is not None:
        write_gate(result, Path(out))
    if github:  # on GitHub Actions: the same step summary and outputs as `harness regress`
        write_github(result, Path(out) / "regress.md" if out is not None else None)
    message = f"harness regression gate: {result['verdict'].upper()}\n{render_table(result)}"
    if result["verdict"] == "regression":
        raise Regression(message, result)
    if result["verdict"] == "inconclusive":
        if inconclusive == "xfail":
            pytest.xfail(message)
        if inconclusive == "skip":
            pytest.skip(message)
        raise Inconclusive(message, result)
    return result


@pytest.fixture
def harness_gate():
    """`harness_gate(baseline, candidate, margin=0.05, ...)`: assert_non_inferior, as a fixture."""
    return assert_non_inferior
