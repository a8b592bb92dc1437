"""Paired comparisons of two models on the same items.

Both models answered the same questions, so the right unit is the per-item difference: it removes
item difficulty from the noise (Miller 2024, "Adding error bars to evals"). Library routines do the
arithmetic: scipy's exact binomial test (McNemar on the discordant pairs), scipy's paired t
interval, scipy's paired bootstrap, statsmodels' multiple-comparison adjustments.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class PairedResult:
    diff: float  # mean(a) - mean(b)
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n: int  # pairs used
    n_dropped: int  # pairs dropped because either side was missing/unscorable
    mean_a: float
    mean_b: float


def _pairs(a: Sequence[float], b: Sequence[float], clusters: Optional[Sequence[Any]] = None
           ) -> tuple[np.ndarray, np.ndarray, int, Optional[np.ndarray]]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have the same length, got {x.size} and {y.size}")
    ok = ~(np.isnan(x) | np.isnan(y))  # dropped pairwise, and counted
    c = None
    if clusters is not None:
        c = np.asarray(clusters, dtype=object)
        if c.shape != x.shape:
            raise ValueError(f"clusters must label every pair, got {c.size} labels for {x.size} pairs")
        c = c[ok]
    return x[ok], y[ok], int((~ok).sum()), c


def _is_clustered(c: Optional[np.ndarray]) -> bool:
    """Cluster-robust inference only when it changes something: at least two clusters and at least
    one cluster holding more than one item (all-singleton clusters = independent items)."""
    if c is None or c.size == 0:
        return False
    _, counts = np.unique(c.astype(str), return_counts=True)
    return counts.size >= 2 and counts.max() > 1


def clustered_mean(d: Sequence[float], clusters: Sequence[Any], alpha: float = 0.05) -> tuple[float, float, float, int]:
    """Mean of per-item differences with a cluster-robust (CR1) standard error: items that share a
    source (paraphrases of one fact, questions on one passage) are not independent, and treating
    them as such makes intervals too narrow (Miller 2024, section 2.2). statsmodels' OLS on a
    constant with cov_type="cluster" does the arithmetic; t with G - 1 degrees of freedom.

    Returns (ci_low, ci_high, p_value, n_clusters)."""
    import statsmodels.api as sm

    d = np.asarray(d, dtype=float)
    _, codes = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    g = int(codes.max()) + 1
    if np.all(d == d[0]):
        m = float(d[0])
        return m, m, 1.0 if m == 0 else 0.0, g
    fit = sm.OLS(d, np.ones((d.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
    lo, hi = fit.conf_int(alpha)[0]
    return float(lo), float(hi), float(fit.pvalues[0]), g


def _diff_ci(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """CI of the mean paired difference (t interval; the CLT interval Miller recommends)."""
    n = d.size
    if n < 2 or np.all(d == d[0]):
        m = float(d.mean()) if n else 0.0
        return (m, m)
    from scipy import stats

    lo, hi = stats.t.interval(1 - alpha, n - 1, loc=d.mean(), scale=stats.sem(d))
    return (float(lo), float(hi))


def paired_binary(a: Sequence[float], b: Sequence[float], alpha: float = 0.05, midp: bool = False,
                  clusters: Optional[Sequence[Any]] = None) -> PairedResult:
    """0/1 scores of two models on the same items: exact McNemar test and a paired t CI.

    With `clusters` (one label per item) that group several items, McNemar's independence
    assumption fails; the test becomes a paired t test with cluster-robust SE (CI from the same)."""
    from scipy import stats

    x, y, dropped, c = _pairs(a, b, clusters)
    if not np.isin(x, (0.0, 1.0)).all() or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("paired_binary needs 0/1 scores; use paired_continuous")
    n10 = int(((x == 1) & (y == 0)).sum())  # a right, b wrong
    n01 = int(((x == 0) & (y == 1)).sum())
    m = n10 + n01
    if m == 0:
        p = 1.0
    else:
        p = float(stats.binomtest(n10, m, 0.5).pvalue)
        if midp:  # mid-p: subtract half the probability of the observed table (two-sided)
            p = min(1.0, 2 * (stats.binom.cdf(min(n10, n01), m, 0.5) - 0.5 * stats.binom.pmf(n10, m, 0.5)))
    test = "McNemar exact mid-p" if midp else "McNemar exact"
    if _is_clustered(c):
        lo, hi, p, g = clustered_mean(x - y, c, alpha)
        test = f"paired t, cluster-robust SE ({g} clusters)"
    else:
        lo, hi = _diff_ci(x - y, alpha)
    # a difference of two proportions lies in [-1, 1]; the t interval can overshoot at small n
    lo, hi = max(lo, -1.0), min(hi, 1.0)
    return PairedResult(float((x - y).mean()) if x.size else 0.0, lo, hi, p, test, int(x.size), dropped,
                        float(x.mean()) if x.size else 0.0, float(y.mean()) if y.size else 0.0)


def paired_continuous(a: Sequence[float], b: Sequence[float], alpha: float = 0.05,
                      n_resamples: int = 9999, seed: int = 0, clusters: Optional[Sequence[Any]] = None) -> PairedResult:
    """Numeric scores (judge scales): paired bootstrap CI, sign-flip permutation p-value.
    With `clusters` grouping several items: paired t with cluster-robust SE instead."""
    from scipy import stats

    x, y, dropped, c = _pairs(a, b, clusters)
    d = x - y
    if _is_clustered(c):
        lo, hi, p, g = clustered_mean(d, c, alpha)
        return PairedResult(float(d.mean()), lo, hi, p, f"paired t, cluster-robust SE ({g} clusters)", int(d.size),
                            dropped, float(x.mean()), float(y.mean()))
    if d.size < 2 or np.all(d == d[0]):
        lo = hi = float(d.mean()) if d.size else 0.0
        p = 1.0 if not d.size or d[0] == 0 else float(stats.binomtest(int((d > 0).sum()), d.size, 0.5).pvalue)
    else:
        rng = np.random.default_rng(seed)
        ci = stats.bootstrap((d,), np.mean, confidence_level=1 - alpha, n_resamples=n_resamples,
                             method="BCa", random_state=rng).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
        p = float(stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                         random_state=np.random.default_rng(seed)).pvalue)
    return PairedResult(float(d.mean()) if d.size else 0.0, lo, hi, p, "sign-flip permutation", int(d.size), dropped,
                        float(x.mean()) if x.size else 0.0, float(y.mean()) if y.size else 0.0)


def adjust(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Multiple-comparison adjustment: "holm" (family-wise) or "bh" (false discovery rate)."""
    from statsmodels.stats.multitest import multipletests

    names = {"holm": "holm", "bh": "fdr_bh"}
    if method not in names:
        raise ValueError(f"unknown correction '{method}'; available: holm, bh")
    if len(p_values) == 0:
        return []
    return [float(p) for p in multipletests(list(p_values), method=names[method])[1]]


def _z(alpha: float, power: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def mde(n: int, sd_diff: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable difference of means with n paired items, given the SD of the per-item
    differences (for 0/1 scores sd_diff^2 = p_discordant - diff^2; 0.5 is a conservative default)."""
    return _z(alpha, power) * sd_diff / math.sqrt(n) if n > 0 else float("inf")


def required_n(delta: float, sd_diff: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> int:
    """Paired items needed to detect a true difference `delta` (two-sided)."""
    if delta == 0:
        raise ValueError("delta must be non-zero")
    return math.ceil((_z(alpha, power) * sd_diff / abs(delta)) ** 2)


@dataclass(frozen=True)
class GapClosed:
    value: Optional[float]
    ci_low: Optional[float]
    ci_high: Optional[float]
    n: int


def gap_closed(teacher: Sequence[float], baseline: Sequence[float], student: Sequence[float],
               alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0) -> GapClosed:
    """(student - baseline) / (teacher - baseline), with a paired (item) bootstrap percentile CI.
    None when the teacher is not better than the baseline (there is no gap to close)."""
    from scipy import stats

    t, b, s = (np.asarray(v, dtype=float) for v in (teacher, baseline, student))
    ok = ~(np.isnan(t) | np.isnan(b) | np.isnan(s))
    t, b, s = t[ok], b[ok], s[ok]

    def ratio(tt: np.ndarray, bb: np.ndarray, ss: np.ndarray, axis: int = -1) -> np.ndarray:
        gap = tt.mean(axis=axis) - bb.mean(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, (ss.mean(axis=axis) - bb.mean(axis=axis)) / gap, np.nan)

    value = float(ratio(t, b, s))
    if not np.isfinite(value):
        return GapClosed(None, None, None, int(t.size))
    with warnings.catch_warnings():  # degenerate resamples (tiny n) give a NaN bound -> None, said in the report
        warnings.simplefilter("ignore")
        res = stats.bootstrap((t, b, s), ratio, paired=True, vectorized=True, n_resamples=n_resamples,
                              confidence_level=1 - alpha, method="percentile", random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return GapClosed(value, None if math.isnan(lo) else lo, None if math.isnan(hi) else hi, int(t.size))
