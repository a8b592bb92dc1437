"""Is the LLM judge worth paying for? Its agreement with a grader we trust, decided on a sample first.

The judge scores a calibration sample, then further batches while its agreement is undecided; after
each of at most `looks` looks the agreement (Cohen's κ against the reference grader; the
position-consistency rate for a pairwise judge) gets one-sided bounds at level 1 − alpha / looks each
(the two-sided interval at 1 − 2 alpha / looks). The judge is stopped when the upper bound is below
the threshold. By Bonferroni's inequality the chance that the upper bound falls below the true value
at *any* look is at most alpha, so a judge that does reach the threshold is stopped with probability
at most alpha however many looks are taken (the simplest valid group-sequential rule; conservative
next to alpha-spending boundaries: Jennison & Turnbull, *Group Sequential Methods*, 2000, §2.4;
Dmitrienko et al., *Multiple Testing Problems in Pharmaceutical Statistics*, 2010, ch. 6). A lower
bound at or above the threshold ends the looks (the judge is reliable: the rest is judged in one go),
with the same guarantee against a judge below it. bench/judge_calibration.py measures both.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

UNRELIABLE, RELIABLE, UNDECIDED = "unreliable", "reliable", "undecided"


@dataclass(frozen=True)
class Look:
    """One look at the judge: the estimate, its interval at the look's level, the decision."""

    n: int  # units compared (verdicts parsed, reference known)
    estimate: float | None
    low: float
    high: float
    decision: str  # unreliable | reliable | undecided


def kappa_ci(table: np.ndarray | list[list[float]], alpha: float) -> tuple[float | None, float, float]:
    """Cohen's κ of a 2x2 table and its two-sided 1 − alpha Wald interval, from statsmodels'
    `cohens_kappa` (κ and its asymptotic standard error). A table with an empty margin (one rater
    constant) has an undefined or zero standard error there; the interval then uses the standard
    error of the table with 0.5 added to each cell (the Haldane–Anscombe correction), so a judge
    that says "yes" to everything is not declared certain on a handful of items. No comparable
    sample: κ None and the interval [-1, 1]."""
    from scipy import stats
    from statsmodels.stats.inter_rater import cohens_kappa

    t = np.asarray(table, dtype=float)
    if t.sum() == 0:
        return None, -1.0, 1.0
    with warnings.catch_warnings():  # statsmodels warns (and returns NaN) on degenerate tables
        warnings.simplefilter("ignore")
        res = cohens_kappa(t)
        k, se = float(res.kappa), float(res.std_kappa)
        if math.isnan(k):  # both raters constant and equal: agreement is not measurable
            return None, -1.0, 1.0
        if (math.isnan(se) or se < 1e-6) and abs(k) < 1:
            se = float(cohens_kappa(t + 0.5).std_kappa)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return k, max(-1.0, k - z * se), min(1.0, k + z * se)


def rate_ci(k: int, n: int, alpha: float) -> tuple[float | None, float, float]:
    """A proportion and its exact (Clopper–Pearson, statsmodels) two-sided 1 − alpha interval."""
    if n == 0:
        return None, 0.0, 1.0
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=alpha, method="beta")
    return k / n, float(0.0 if math.isnan(lo) else lo), float(1.0 if math.isnan(hi) else hi)


def confusion(judge: np.ndarray, ref: np.ndarray) -> tuple[list[list[int]], int]:
    """The 2x2 table (rows judge correct / wrong, columns reference correct / wrong, as in the
    report's agreement block) of the samples with both verdicts (NaN = unparsed / unknown), and n."""
    ok = ~np.isnan(judge) & ~np.isnan(ref)
    j, r = judge[ok] >= 0.5, ref[ok] >= 0.5
    return [[int((j & r).sum()), int((j & ~r).sum())], [int((~j & r).sum()), int((~j & ~r).sum())]], int(ok.sum())


def decide(low: float, high: float, threshold: float) -> str:
    if high < threshold:
        return UNRELIABLE
    if low >= threshold:
        return RELIABLE
    return UNDECIDED


def kappa_look(judge: np.ndarray, ref: np.ndarray, threshold: float, alpha: float, looks: int) -> Look:
    """The look at a judge's verdicts so far (0/1 or [0, 1]; >= 0.5 counts as correct) against the
    reference's: one-sided bounds at 1 − alpha / looks each."""
    table, n = confusion(judge, ref)
    k, lo, hi = kappa_ci(table, 2 * alpha / looks)
    return Look(n, k, lo, hi, decide(lo, hi, threshold))


def rate_look(consistent: int, n: int, threshold: float, alpha: float, looks: int) -> Look:
    """The look at a pairwise judge: `consistent` of `n` items kept their verdict when A/B swapped."""
    r, lo, hi = rate_ci(consistent, n, 2 * alpha / looks)
    return Look(n, r, lo, hi, decide(lo, hi, threshold))
