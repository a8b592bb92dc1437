"""The statistics of the regression gate: is a candidate model non-inferior to the current one?

One cell (task x grader) is decided on the paired per-item difference d = candidate - current, each
side already averaged over epochs by the caller (so repeated samples of one item are never counted
as independent items). Two one-sided tests at level alpha, each the exact dual of one bound of the
interval it reports:

- non-inferiority, H0: d <= -margin; rejected  <=>  lower > -margin  => "pass";
- regression,      H0: d >= -margin (strict: d >= 0); rejected <=> upper < -margin (strict: < 0)
  => "regression" (unadjusted: the caller applies Holm across cells);
- otherwise "inconclusive", with the items that would decide it (`required_n`) and the smallest
  distance from the margin detectable now (`mde`).

Which interval:
- 0/1 scores: a score interval for a difference of paired proportions (`_score_side`): the union of
  Tango's (1998) interval and Laud's (2017) skewness-corrected version of it (SCAS), inverted one
  side at a time. It stays honest at n = 40 (exact size <= 0.053 at every margin and discordance
  tried; `_score_side` names the one corner where it reaches 0.065) and, unlike the Wald interval,
  does not collapse to zero width when no pair is discordant (a model against itself on n items has
  bounds of about +-z^2/(n+z^2), 6.3 pp at n = 40). statsmodels and scipy have no paired score
  interval (only McNemar's test and intervals for independent proportions), so it is written here
  from the formulas and checked against the R packages `contingencytables` (Tango) and `ratesci`
  (SCAS) in the tests.
- per-item means that are not 0/1 (epochs > 1, judge scales rescaled to [0, 1]): Student's t on the
  per-item differences, together with Hall's (1992) skewness-corrected t (`_hall_side`; the union
  of the two intervals). The mean of a few epochs is far less discrete than a 0/1 score, so a t
  interval is the natural choice, but at n = 40 the differences are skewed when the candidate is
  worse and the plain t's false-pass rate is ~0.058; Hall's fixes that but is itself liberal at no
  difference (0.063); the union is within alpha in both (numbers in `_hall_side`). If every
  difference is the same (t would give a zero-width interval) the score interval on the fractional
  discordant sums is used.
- clusters (items sharing a source): the cluster-robust t (`clustered_mean`, CR1, G - 1 df), but
  never narrower than the independent-items interval above: items from one source are positively
  correlated in practice, which widens the true interval, while CR1 with few clusters is itself
  noisy (and of zero width when no cluster disagrees). The union of the two intervals is the test
  that rejects only when both reject (p = the larger p), so it keeps the level of either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Optional, Sequence

import numpy as np

from ._paired import _is_clustered, _pairs, clustered_mean

_EPS = 1e-12  # keeps the score statistic off the boundary d = +-1, where its variance is 0


@dataclass(frozen=True)
class CellGate:
    verdict: str  # "pass" | "regression" | "inconclusive" (regression unadjusted: the caller applies Holm)
    n: int  # items compared (pairs with both sides scored)
    n_dropped: int  # pairs dropped because either side was NaN
    n_clusters: Optional[int]  # when the cluster-robust interval was used
    diff: float  # mean paired difference candidate - current
    lower: float  # lower bound of the one-sided (1 - alpha) interval of diff
    upper: float  # upper bound of the one-sided (1 - alpha) interval of diff
    p_noninferior: float  # p of H0: diff <= -margin (small -> pass)
    p_regression: float  # p of H0: diff >= -margin (strict: >= 0) (small -> regression)
    method: str
    n10: Optional[int]  # 0/1 scores: candidate right and current wrong
    n01: Optional[int]  # 0/1 scores: candidate wrong and current right
    required_n: Optional[int]  # items that would decide the cell at 80 % power; None if diff == -margin
    mde: float  # smallest |diff + margin| detectable with 80 % power at this n


# ---------------------------------------------------------------------------------------------
# Tango's score statistic (vectorised: b, c, n, d0 broadcast)


def _tango_q(b: Any, c: Any, n: Any, d0: Any) -> Any:
    """Constrained ML estimate of P(candidate wrong, current right) under H0: d = d0 (Tango 1998,
    eq. 5): the positive root of 2n q^2 + B q + C = 0. Works on counts (n = items) or on cell
    probabilities (n = 1), which the sample-size formula uses."""
    a = 2.0 * n
    bb = -b - c + (2.0 * n - b + c) * d0
    cc = -c * d0 * (1.0 - d0)
    disc = np.maximum(bb * bb - 4.0 * a * cc, 0.0)
    return (np.sqrt(disc) - bb) / (2.0 * a)


def _tango_z(b: Any, c: Any, n: Any, d0: Any, skew: bool = False) -> Any:
    """Score statistic for H0: d = d0, with b = n10, c = n01; decreasing in d0 where it matters.

    skew=False: Tango's (1998) statistic; Z(0) is McNemar's asymptotic (b - c) / sqrt(b + c).
    skew=True: Laud's skewness-corrected version (SCAS; Laud 2017, Pharm Stat 16:334, as in R
    ratesci::pairbinci): the variance gets the N/(N-1) bias factor and the statistic solves the
    Cornish-Fisher equation  Z_tango = z + gamma/6 (z^2 - 1),  gamma the skewness of the score
    under H0 (third central moment of one pair's difference at the constrained cell estimates)."""
    b, c, n, d0 = (np.asarray(v, dtype=float) for v in (b, c, n, d0))
    q21 = _tango_q(b, c, n, d0)
    v_item = np.maximum(2.0 * q21 + d0 * (1.0 - d0), 0.0)
    lam = np.where(n > 1, n / np.maximum(n - 1, 1), 1.0) if skew else 1.0
    var = n * v_item * lam
    num = b - c - n * d0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / np.sqrt(var)
        # 0/0 (no discordant pair and d0 = 0): no evidence either way
        z = np.where(var > 0, z, np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)))
        if not skew:
            return z
        q12 = q21 + d0
        mu3 = q12 * (1 - d0) ** 3 + q21 * (-1 - d0) ** 3 + (1 - q12 - q21) * (-d0) ** 3
        g6 = np.where((v_item > 1e-12) & (np.abs(mu3) > 1e-10), mu3 / (6 * (lam * v_item) ** 1.5 * np.sqrt(n)), 0.0)
        # the root of g6 z^2 + z - (Z + g6) = 0 nearest Z, in the form without cancellation; no real
        # root (the expansion breaks down): the parabola's vertex, as ratesci does
        disc = 1 + 4 * g6 * (z + g6)
        root = np.where(disc > 0, 2 * (z + g6) / (1 + np.sqrt(np.maximum(disc, 0.0))), -1 / (2 * g6))
        return np.where((g6 == 0) | ~np.isfinite(z), z, root)


def _tango_bound(b: float, c: float, n: int, zc: float, side: str, skew: bool = False) -> float:
    """The score-interval bound: lower solves Z(d) = zc, upper solves Z(d) = -zc (Z decreases in d),
    searched over all of (-1, 1): the skewness-corrected Z is not 0 at the estimate, so in extreme
    tables its crossing can lie on the far side of it. The edge -1 / +1 when Z never gets there."""
    from scipy.optimize import brentq

    target = zc if side == "lower" else -zc
    f = lambda d: float(_tango_z(b, c, n, d, skew)) - target  # noqa: E731
    lo_end, hi_end = -1.0 + _EPS, 1.0 - _EPS
    f_lo, f_hi = f(lo_end), f(hi_end)
    if f_lo <= 0:
        return -1.0
    if f_hi >= 0:
        return 1.0
    return float(brentq(f, lo_end, hi_end, xtol=1e-12, rtol=1e-12))


# ---------------------------------------------------------------------------------------------
# Planning: required n and the minimum detectable effect


_N01 = NormalDist()  # the stdlib's normal quantile (Wichura AS241): ~100x faster than scipy.stats.norm per scalar


def _z(p: float) -> float:
    return _N01.inv_cdf(p)


def _score_n_raw(diff: float, discordance: float, bound: float, alpha: float, power: float) -> float:
    """Continuous sample size of the one-sided Tango score test of H0 on the far side of `bound`
    when the truth is `diff` (Nam 1997, Biometrics 53:1422; Liu, Hsueh, Hsieh & Chen 2002, Stat Med 21:231):

        n = ( z_{1-alpha} * w0 + z_{power} * w1 )^2 / (diff - bound)^2

    w1^2 = psi - diff^2 is the per-item variance of d at the truth (psi = P(pair discordant));
    w0^2 = 2 q~ + bound (1 - bound) is the variance the score statistic assumes under H0, with q~
    the constrained estimate of P(candidate wrong, current right) evaluated at the true cell
    probabilities. psi is raised to |diff| if needed (a difference needs at least that many
    discordant pairs)."""
    psi = min(1.0, max(discordance, abs(diff)))
    p10, p01 = (psi + diff) / 2.0, (psi - diff) / 2.0
    w0 = math.sqrt(max(float(2.0 * _tango_q(p10, p01, 1.0, bound) + bound * (1.0 - bound)), 0.0))
    w1 = math.sqrt(max(psi - diff * diff, 0.0))
    return ((_z(1 - alpha) * w0 + _z(power) * w1) / (diff - bound)) ** 2


def gate_required_n(diff: float, discordance: float, margin: float, alpha: float = 0.05, power: float = 0.8,
                    strict: bool = False) -> Optional[int]:
    """Paired 0/1 items needed for the gate to decide with probability `power` when the true
    difference is `diff` and a fraction `discordance` of the pairs disagree: the non-inferiority
    test (pass) when diff > -margin, the regression test when diff < -margin (strict: < 0); the
    smaller when both apply. None when diff == -margin (non-strict): no n decides that.

    Formula: `_score_n_raw` (Nam 1997 / Liu et al. 2002), a normal approximation to the power of
    the score test the gate runs; fine for planning (the tests check it against exact power)."""
    needs = []
    if diff > -margin:
        needs.append(_score_n_raw(diff, discordance, -margin, alpha, power))
    reg_bound = 0.0 if strict else -margin
    if diff < reg_bound:
        needs.append(_score_n_raw(diff, discordance, reg_bound, alpha, power))
    return max(1, math.ceil(min(needs) - 1e-9)) if needs else None


def gate_mde(n: int, discordance: float, margin: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest distance Delta = diff + margin > 0 that n paired 0/1 items detect (pass) with
    probability `power` at the given discordance: solves `_score_n_raw`(-margin + Delta) = n.
    inf when n items cannot do it even at the largest possible difference."""
    from scipy.optimize import brentq

    if n <= 0:
        return math.inf
    top = 1.0 - margin  # diff = 1 is the largest possible

    def g(delta: float) -> float:
        return _score_n_raw(-margin + delta, discordance, -margin, alpha, power) - n

    if g(top - 1e-9) > 0:
        return math.inf
    return float(brentq(g, 1e-9, top - 1e-9, xtol=1e-10))


def gate_table(margins: Sequence[float] = (0.02, 0.05, 0.10), discordances: Sequence[float] = (0.05, 0.10, 0.20),
               alpha: float = 0.05, power: float = 0.8, diff: float = 0.0) -> list[dict[str, float]]:
    """How to choose margin and n: paired 0/1 items needed to pass (power 80 %, one-sided alpha)
    when the true difference is `diff` (0: an equally good candidate), for each margin and
    discordance rate (the fraction of items on which the two models disagree). One row a pair."""
    return [{"margin": m, "discordance": p, "required_n": gate_required_n(diff, p, m, alpha, power)}
            for m in margins for p in discordances]


# ---------------------------------------------------------------------------------------------
# The gate


@dataclass(frozen=True)
class _Side:
    lower: float
    upper: float
    p_ni: float
    p_reg: float
    se: float  # standard error the test used (0 for the score test: planning uses its own formula)


def _score_side(b: float, c: float, n: int, margin: float, reg_bound: float, alpha: float) -> _Side:
    """The union of Tango's interval and its skewness-corrected (SCAS) version, i.e. the test that
    rejects only when both do (p = the larger). Why both: each is an asymptotic test and each errs
    on a different tail at small n. Exact enumeration (tests/test_gate.py) at n = 40: Tango's
    regression test (H0 d >= -margin) reaches a size of 0.073 at margin 0.05, the SCAS non-
    inferiority test 0.070 at margin 0.10; the union stays <= 0.053 on every margin and discordance
    tried at n = 20-400 once ~15 discordant pairs are expected. Below that, with nearly all
    disagreements one way, the regression claim at exactly the margin can reach 0.065 (e.g. n = 100,
    margin 0.05, 6 % discordant). The two rarely disagree, so the union costs little power."""
    zc = _z(1 - alpha)
    lower = min(_tango_bound(b, c, n, zc, "lower", False), _tango_bound(b, c, n, zc, "lower", True))
    upper = max(_tango_bound(b, c, n, zc, "upper", False), _tango_bound(b, c, n, zc, "upper", True))
    z_ni = min(float(_tango_z(b, c, n, -margin, False)), float(_tango_z(b, c, n, -margin, True)))
    z_reg = max(float(_tango_z(b, c, n, reg_bound, False)), float(_tango_z(b, c, n, reg_bound, True)))
    # upper tail as cdf(-z): no 1 - cdf cancellation for tiny p
    return _Side(lower, upper, _N01.cdf(-z_ni), _N01.cdf(z_reg), 0.0)


def _t_side(d: np.ndarray, margin: float, reg_bound: float, alpha: float) -> _Side:
    """Student's t on the per-item differences (scipy's one-sample t test and its interval)."""
    from scipy import stats

    ni = stats.ttest_1samp(d, -margin, alternative="greater")
    reg = stats.ttest_1samp(d, reg_bound, alternative="less")
    lower = float(ni.confidence_interval(1 - alpha).low)
    upper = float(reg.confidence_interval(1 - alpha).high)
    return _Side(max(lower, -1.0), min(upper, 1.0), float(ni.pvalue), float(reg.pvalue), float(stats.sem(d)))


def _hall_side(d: np.ndarray, margin: float, reg_bound: float, alpha: float) -> _Side:
    """Student's t with Hall's (1992) skewness correction, used together with the plain t.

    Hall (1992, JRSS-B 54:221) maps the studentised mean t through the monotone cubic
    g(t) = t + a t^2 + a^2 t^3 / 3 + b, a = gamma / (3 sqrt(n)), b = gamma / (6 sqrt(n)), gamma the
    sample skewness: its first two terms are the Edgeworth (Cornish-Fisher) correction of t and the
    cubic keeps g invertible, so each bound is the exact inversion of its p-value. With gamma = 0
    it is scipy's one-sample t test. Reference distribution: t with n - 1 df.

    Why together (the union, p = the larger) rather than either alone, from simulation at n = 40
    with 3 epochs (bench/regress_aa.py's model, 4000 draws, s.e. 0.0034): when the candidate is
    worse by the margin the differences are left-skewed and the plain t passes falsely 0.058 of the
    time (Hall 0.053); with no true difference the differences are symmetric but spiky, the noisy
    sample skewness moves with the mean, and Hall's strict regression test fires 0.063 (plain t
    0.051). The union: 0.052 and 0.051. A studentised bootstrap behaves like Hall here (0.063)."""
    from scipy import stats

    n = d.size
    m, sd, sd_ml = float(d.mean()), float(d.std(ddof=1)), float(d.std(ddof=0))
    se = sd / math.sqrt(n)
    gamma = float(np.mean((d - m) ** 3)) / sd_ml**3
    a, b = gamma / (3 * math.sqrt(n)), gamma / (6 * math.sqrt(n))

    def g(t: float) -> float:
        return t + a * t * t + a * a * t**3 / 3 + b

    def g_inv(v: float) -> float:  # g(t) = ((1 + a t)^3 - 1) / (3a) + b
        return v - b if abs(a) < 1e-12 else float((np.cbrt(1 + 3 * a * (v - b)) - 1) / a)

    q = float(stats.t.ppf(1 - alpha, n - 1))
    p_ni = float(stats.t.sf(g((m + margin) / se), n - 1))
    p_reg = float(stats.t.cdf(g((m - reg_bound) / se), n - 1))
    lower, upper = m - g_inv(q) * se, m - g_inv(-q) * se
    return _Side(max(lower, -1.0), min(upper, 1.0), p_ni, p_reg, se)


def _cluster_side(d: np.ndarray, c: np.ndarray, margin: float, reg_bound: float, alpha: float
                  ) -> tuple[Optional[_Side], int]:
    """clustered_mean's two-sided (1 - 2 alpha) interval gives the two one-sided (1 - alpha) bounds;
    its SE (half-width / t quantile) gives the p-values of the same t test, so the duality is exact.
    None when the cluster means do not vary (CR1 has nothing to say; the independent interval stands)."""
    from scipy import stats

    lo, hi, _, g = clustered_mean(d, c, 2 * alpha)
    q = float(stats.t.ppf(1 - alpha, g - 1))
    se = (hi - lo) / (2 * q)
    if not se > 1e-12:
        return None, g
    m = float(d.mean())
    p_ni = float(stats.t.sf((m + margin) / se, g - 1))
    p_reg = float(stats.t.cdf((m - reg_bound) / se, g - 1))
    # a difference lies in [-1, 1]; with margin < 1 clipping cannot flip a verdict (duality kept)
    return _Side(max(float(lo), -1.0), min(float(hi), 1.0), p_ni, p_reg, se), g


def _union(a: _Side, b: _Side) -> _Side:
    return _Side(min(a.lower, b.lower), max(a.upper, b.upper), max(a.p_ni, b.p_ni), max(a.p_reg, b.p_reg), max(a.se, b.se))


def gate_cell(candidate: Sequence[float], current: Sequence[float], margin: float, alpha: float = 0.05,
              strict: bool = False, clusters: Optional[Sequence[Any]] = None, power: float = 0.8) -> CellGate:
    """Gate one cell on per-item scores aligned by item (each the mean over that item's epochs, in
    [0, 1]; NaN = missing, the pair is dropped and counted). `clusters`: one label per item.
    See the module docstring for the tests and intervals."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    x, y, dropped, c = _pairs(candidate, current, clusters)
    if ((x < 0) | (x > 1) | (y < 0) | (y > 1)).any():
        raise ValueError("gate_cell needs per-item scores in [0, 1] (rescale judge scores first)")
    n = int(x.size)
    reg_bound = 0.0 if strict else -margin
    if n == 0:
        return CellGate("inconclusive", 0, dropped, None, math.nan, -1.0, 1.0, 1.0, 1.0, "no paired items",
                        None, None, None, math.inf)
    d = x - y
    diff = float(d.mean())
    binary = bool(np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all())
    n10 = n01 = None
    if binary:
        n10, n01 = int((d > 0).sum()), int((d < 0).sum())
        side = _score_side(n10, n01, n, margin, reg_bound, alpha)
        method = "score interval for paired proportions (Tango, with skewness-corrected SCAS)"
    elif n >= 2 and not np.all(d == d[0]):
        side = _union(_t_side(d, margin, reg_bound, alpha), _hall_side(d, margin, reg_bound, alpha))
        method = "paired t on per-item means (with Hall's skewness-corrected t)"
    else:  # no spread: t would give a zero-width interval; the score interval on fractional sums does not
        side = _score_side(float(d[d > 0].sum()), float(-d[d < 0].sum()), n, margin, reg_bound, alpha)
        method = "score interval on fractional discordant sums (per-item differences all equal)"
    discordance = float(np.abs(d).mean())  # 0/1: (n10 + n01) / n
    iid_se = float(d.std(ddof=1) / math.sqrt(n)) if n >= 2 else 0.0
    n_clusters = None
    if _is_clustered(c) and not np.all(d == d[0]):
        cl, g = _cluster_side(d, c, margin, reg_bound, alpha)
        if cl is not None:
            side, n_clusters = _union(side, cl), g
            method = f"cluster-robust t ({n_clusters} clusters), no narrower than the {method}"
    # planning: the score formula for 0/1 scores (times the design effect of clustering), the t/normal
    # one otherwise (n * (z_a + z_b)^2 se^2 / distance^2, which carries any clustering in se)
    zsum = _z(1 - alpha) + _z(power)
    if binary or side.se == 0:
        deff = max(1.0, (side.se / iid_se) ** 2) if n_clusters and iid_se > 0 else 1.0
        rn = gate_required_n(diff, discordance, margin, alpha, power, strict)
        required = None if rn is None else math.ceil(rn * deff)
        mde = gate_mde(n, discordance, margin, alpha, power) * math.sqrt(deff)
    else:
        dists = []
        if diff > -margin:
            dists.append(diff + margin)
        if diff < reg_bound:
            dists.append(reg_bound - diff)
        required = math.ceil(n * (zsum * side.se / max(dists)) ** 2) if dists else None
        mde = zsum * side.se
    if mde > 1 - margin:  # would need a difference above 1: nothing detectable at this n
        mde = math.inf
    # strict mode can prove both "within the margin" and "below 0": any significant drop wins there
    if side.p_reg < alpha:
        verdict = "regression"
    elif side.p_ni < alpha:
        verdict = "pass"
    else:
        verdict = "inconclusive"
    return CellGate(verdict, n, dropped, n_clusters, diff, side.lower, side.upper, side.p_ni, side.p_reg, method,
                    n10, n01, required, mde)
