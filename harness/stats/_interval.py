"""One paired interval per kind of score, for every file that prints one, and the outcome of a cell.

The report (report.md / report.html / summary.json), the sweep report and the regression gate all
answer "how much better is a than b on these items?", so they use one method per kind of score:
the gate's (`gate_cell`, see `_gate`'s docstring for why each):

- 0/1 scores: the score interval for a difference of paired proportions (Tango ∪ SCAS);
- other per-item means (epochs > 1, judge scales in [0, 1]): paired t ∪ Hall's skewness-corrected
  t; when every per-item difference is the same, the score interval on the fractional sums;
- items sharing a cluster: the cluster-robust t, never narrower than the above.

None of them collapses to a point when n > 0 (a model against itself on 20 items: ±16.1 pp at 95 %).
A two-sided (1 - alpha) interval is the pair of the gate's one-sided (1 - alpha/2) bounds, so the
report's 95 % interval is exactly the gate's bounds at `regress.alpha=0.025`. The p-value is the
two-sided test of d = 0 that is dual to the same interval (p < alpha <=> the interval excludes 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ._gate import gate_cell

# the outcomes of a compared cell (docs/statistics.md); the gate's own verdicts are pass /
# regression / inconclusive, and map onto these: pass = "non-inferior" (or "equivalent", "better"),
# regression = "worse" by more than the margin, inconclusive = "not ruled out" / "too few items"
OUTCOMES = ("better", "worse", "equivalent", "non-inferior", "not ruled out", "too few items")


@dataclass(frozen=True)
class PairedInterval:
    diff: float  # mean(a) - mean(b) over the pairs
    ci_low: float  # two-sided (1 - alpha) interval
    ci_high: float
    p_value: float  # two-sided, H0: d = 0, dual to the interval
    method: str  # the interval's name, printed next to it
    n: int
    n_dropped: int
    discordance: float  # mean |d| (0/1 scores: the share of discordant pairs)
    required_n: Optional[int]  # items that would decide the cell against the margin at 80 % power
    mde: float  # smallest distance from -margin detectable now (inf: none at this n)


def _unit(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Scores outside [0, 1] (a foreign log's raw metric) mapped into it by one affine map, so the
    gate's intervals apply; t and Hall's t are equivariant under it. Returns (a, b, scale)."""
    v = np.concatenate([a, b])
    v = v[~np.isnan(v)]
    if v.size == 0 or (v.min() >= 0 and v.max() <= 1):
        return a, b, 1.0
    lo, span = float(v.min()), float(v.max() - v.min()) or 1.0
    return (a - lo) / span, (b - lo) / span, span


def paired_interval(a: Sequence[float], b: Sequence[float], alpha: float = 0.05, margin: float = 0.05,
                    clusters: Optional[Sequence[Any]] = None) -> PairedInterval:
    """The two-sided (1 - alpha) interval of mean(a - b) over pairs aligned by item (NaN pairs
    dropped and counted), its dual two-sided p of d = 0, and the items that would decide the cell
    against `margin` (the gate's `required_n`, at the same one-sided alpha/2 as the bounds)."""
    x, y, scale = _unit(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    at_margin = gate_cell(x, y, min(margin / scale, 0.999), alpha / 2, clusters=clusters)
    at_zero = gate_cell(x, y, 0.0, alpha / 2, strict=True, clusters=clusters)
    p = min(1.0, 2 * min(at_zero.p_noninferior, at_zero.p_regression)) if at_zero.n else 1.0
    diff = 0.0 if math.isnan(at_zero.diff) else at_zero.diff
    return PairedInterval(diff * scale, at_zero.lower * scale, at_zero.upper * scale, p, at_zero.method, at_zero.n,
                          at_zero.n_dropped, float(np.abs(x - y)[~np.isnan(x - y)].mean()) if at_zero.n else 0.0,
                          at_margin.required_n, at_margin.mde * scale)


def outcome(diff: float, ci_low: float, ci_high: float, significant: bool, margin: float, n: int, mde: float) -> str:
    """One of OUTCOMES for a compared cell a - b (a the candidate), in this order of precedence:

    - too few items: no pair, or no result at this n could show a within the margin (mde = inf);
    - better / worse: the (corrected) test of d = 0 is significant;
    - equivalent: the whole interval lies within +-margin;
    - non-inferior: the lower bound is above -margin (the gate's "pass"), a gain not shown;
    - not ruled out: the interval includes a drop larger than the margin, unproven either way.
    """
    if n == 0 or math.isinf(mde):
        return "too few items"
    if significant:
        return "better" if diff > 0 else "worse"
    if ci_low > -margin and ci_high < margin:
        return "equivalent"
    if ci_low > -margin:
        return "non-inferior"
    return "not ruled out"


def gate_outcome(verdict: str, lower: float, upper: float, margin: float, n: int, mde: float) -> str:
    """The same vocabulary for a cell of the regression gate, read from its own decision and its
    one-sided (1 - alpha) bounds: regression -> worse; pass -> better (lower bound above 0),
    equivalent (upper bound below +margin too) or non-inferior; inconclusive -> too few items (no
    result at this n could decide) or not ruled out. A cell that is not gated is read the same way
    from its bounds (pass/regression as the gate would have decided it, unadjusted)."""
    if verdict == "regression":
        return "worse"
    if verdict == "pass" or (verdict == "not gated" and lower > -margin):
        return "better" if lower > 0 else "equivalent" if upper < margin else "non-inferior"
    if verdict == "not gated" and upper < -margin:
        return "worse"
    return "too few items" if n == 0 or math.isinf(mde) else "not ruled out"
