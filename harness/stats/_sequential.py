"""Anytime-valid sequential comparisons: stop evaluating once the gate's verdict is known.

Peeking at a fixed-n p-value after every batch and stopping when it is small inflates false alarms
far beyond alpha. A *confidence sequence* (CS) instead covers the mean at every time at once, so a
verdict read off it whenever the data say so keeps its error rate.

Method: the betting CS of Waudby-Smith & Ramdas (2023), "Estimating means of bounded random
variables by betting", JRSS-B 86(1) (arXiv:2010.09686). The paired per-unit differences d in [-1, 1]
are mapped to x = (d + 1) / 2 in [0, 1]. For a candidate mean m, the capital of a gambler who bets
that the mean is above m,

    K+_t(m) = prod_{i <= t} (1 + lambda_i(m) (x_i - m)),  lambda_i(m) = min(lambda_i, c / m),  c = 1/2,

is a nonnegative supermartingale when the true mean is <= m, for any bet lambda_i >= 0 chosen from
x_1..x_{i-1} only. Ville's inequality gives P(sup_t K+_t(m) >= 1/alpha) <= alpha, so the set of m
whose capital never reached 1/alpha is a one-sided (1 - alpha) lower CS, valid at all times (and at
any data-dependent stopping time) at once. The upper CS is the mirror process (bets on "below m").

Bets: the predictable plug-in (PrPl) of the paper's hedged CS, lambda_t = sqrt(2 log(1/alpha) /
(t log(1 + t) var_{t-1})), with its regularised running mean and variance (one fake observation at
mean 1/2, variance 1/4). With `aim`, the bet is the larger of that and the paper's approximate
growth-rate-optimal (aGRAPA) bet for the one mean the gate tests, (mean_{t-1} - aim) / (var_{t-1} +
(mean_{t-1} - aim)^2): near-optimal growth for the decision, while PrPl keeps the whole CS shrinking
for the plot; both are damped over the first tenth of the run (at most 100 units). Any predictable
lambda >= 0 is valid, so these are. The bets do not depend on m except through the truncation c/m,
so K+_t(m) decreases in m (each factor 1 - c + c x/m or 1 + lambda (x - m) does): the rejected means
form a half-line, the lower bound is its end, and "the lower bound is at or above -margin" is
exactly "the test of mean = -margin rejected".

`confseq` (the authors' package) was not used: version 0.0.11 ships only an sdist whose C++ part
needs Boost headers and pulls pytest/matplotlib/multiprocess at run time; `expectation` needs Python
>= 3.12. The numbers here are checked against confseq's own `betting_lower_cs` in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

_TRUNC = 0.5  # c: one unit can cost at most half the capital (the paper's and confseq's default)
_WARMUP = 100  # units over which the gate's bets ramp up (see _bets; any predictable bet is valid)
_GRID = 4000  # grid steps over the mean of x in [0, 1] for the CS path: 0.0005 in d


@dataclass(frozen=True)
class SequentialState:
    """The gate after one batch. `lower`/`upper`: every mean of d at or below `lower` (at or above
    `upper`) has been rejected so far; `decided`: "pass", "regression" or None (keep going)."""
    items: int  # items evaluated so far (including unscorable ones)
    n: int  # units in the statistics so far
    lower: float
    upper: float
    decided: str | None


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictable regularised mean and variance (from units before t), as confseq's
    `lambda_predmix_eb`: one fake unit at mean 1/2 and variance 1/4 keeps the first bets sane."""
    t = np.arange(1, x.shape[-1] + 1)
    mu = np.minimum((0.5 + np.cumsum(x, axis=-1)) / (t + 1), 1.0)
    var = (0.25 + np.cumsum((x - mu) ** 2, axis=-1)) / (t + 1)
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    mu_prev = np.pad(mu[..., :-1], pad, constant_values=0.5)
    var_prev = np.pad(var[..., :-1], pad, constant_values=0.25)
    return mu_prev, var_prev


def _warmup(max_units: int) -> int:
    """Units over which the gate's bets ramp up: a tenth of the run, at most _WARMUP."""
    return int(min(_WARMUP, max(1, max_units // 10)))


def _bets(x: np.ndarray, alpha: float, aim: float | None, side: int, warmup: int = 1) -> np.ndarray:
    """lambda_t >= 0 from units before t; side +1 bets on "mean above m", -1 on "below"."""
    mu, var = _moments(x)
    t = np.arange(1, x.shape[-1] + 1)
    if aim is None:  # the paper's PrPl bets, as in confseq
        return np.sqrt(2 * math.log(1 / alpha) / (t * np.log1p(t) * var))
    # The gate's bets. Plain PrPl and aGRAPA bet big on the first few units, so a lucky start spends
    # alpha on streaks that rarely mean anything; damping the first `warmup` units (PrPl as if t were
    # `warmup`, aGRAPA ramped in) moves that power to where decisions are made. In the bench (margin
    # 0.05 and 0.02, 100 units): power to pass at d = 0 about +0.1, early false verdicts a third.
    tt = np.maximum(t, warmup)
    gap = side * (mu - aim)
    grapa = np.minimum(1.0, t / warmup) * np.maximum(gap, 0.0) / (var + gap ** 2)
    return np.maximum(np.sqrt(2 * math.log(1 / alpha) / (tt * np.log1p(tt) * var)), grapa)


def _log_capital(x: np.ndarray, lam: np.ndarray, m: np.ndarray | float, side: int) -> np.ndarray:
    """log K_t(m) for every t (last axis); m broadcasts against x's leading axes."""
    m = np.asarray(m, dtype=float)[..., None]
    with np.errstate(divide="ignore"):  # m = 0 or 1: cap = inf, bet uncapped (the factor is still >= 1)
        cap = _TRUNC / m if side > 0 else _TRUNC / (1 - m)
        step = np.log1p(side * np.minimum(lam, cap) * (x - m))
    return np.cumsum(step, axis=-1)


def _check(d: Any, what: str = "d") -> np.ndarray:
    d = np.asarray(d, dtype=float)
    bad = ~np.isnan(d) & ((d < -1) | (d > 1))
    if bad.any():
        raise ValueError(f"{what}: paired differences must lie in [-1, 1] (scores in [0, 1]); "
                         f"got {d[bad].ravel()[0]!r}")
    return d


def _grid(aim: float | None, side: int) -> np.ndarray:
    """Candidate means of x, ordered from the far end inwards (rejected means form a prefix). The
    tested mean is on the grid, so "the bound is beyond aim" is exactly "aim rejected"."""
    grid = np.linspace(0.0, 1.0, _GRID + 1)
    if aim is not None:
        grid = np.union1d(grid, [aim])
    return grid if side > 0 else grid[::-1]


def _one_sided(x: np.ndarray, alpha: float, aim: float | None, side: int, warmup: int) -> np.ndarray:
    """Running lower (side +1) or upper (side -1) bound of the mean of x after each unit, in x-units:
    the last grid mean of the unbroken prefix whose capital ever reached 1/alpha."""
    lam, grid, thr = _bets(x, alpha, aim, side, warmup), _grid(aim, side), math.log(1 / alpha)
    rejected_len = np.zeros(x.size, dtype=int)
    still = np.ones(x.size, dtype=bool)  # the prefix of rejected grid points is unbroken so far
    for chunk in np.array_split(grid, max(1, grid.size // 256)):
        ever = np.maximum.accumulate(_log_capital(x, lam, chunk, side), axis=-1) >= thr
        run = np.logical_and.accumulate(ever, axis=0) & still
        rejected_len += run.sum(axis=0)
        still = run[-1]
        if not still.any():
            break
    edge = 0.0 if side > 0 else 1.0  # nothing rejected: the trivial bound
    return np.where(rejected_len > 0, grid[np.maximum(rejected_len - 1, 0)], edge)


def _one_sided_at(x: np.ndarray, alpha: float, aim: float | None, side: int, warmup: int, times: np.ndarray
                  ) -> np.ndarray:
    """The same bounds as `_one_sided`, only after units `times` (1-based counts), by bisection over
    the grid: "ever rejected by t" is monotone in m (each K_s(m) is), so the prefix has one end.
    Costs (log grid) x len(times) x n instead of grid x n: the gate needs only batch ends."""
    lam, grid, thr = _bets(x, alpha, aim, side, warmup), _grid(aim, side), math.log(1 / alpha)
    lo = np.zeros(times.size, dtype=int)  # grid[:lo] known rejected, grid[hi:] known not
    hi = np.full(times.size, grid.size)
    seen = np.arange(x.size)[None, :] < times[:, None]  # the units each time has seen
    while np.any(lo < hi):
        mid = np.minimum((lo + hi) // 2, grid.size - 1)
        cap = np.where(seen, _log_capital(x[None, :], lam[None, :], grid[mid], side), -np.inf)
        ever = cap.max(axis=1) >= thr
        active = lo < hi
        lo = np.where(active & ever, mid + 1, lo)
        hi = np.where(active & ~ever, mid, hi)
    edge = 0.0 if side > 0 else 1.0
    return np.where(lo > 0, grid[np.maximum(lo - 1, 0)], edge)


def confidence_sequence(d: Sequence[float], alpha: float = 0.05, aim: tuple[float | None, float | None] = (None, None),
                        warmup: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Anytime-valid running bounds for the mean of paired differences d in [-1, 1], in arrival order.

    Returns (lower, upper), one value after each unit: two one-sided CSs at `alpha` each (together a
    (1 - 2 alpha) two-sided CS), intersected over time. Every mean <= lower[t] (>= upper[t]) has been
    rejected by time t; with probability >= 1 - alpha the true mean is above lower[t] for all t at once.
    NaN units (unscorable) are skipped: their entries repeat the previous bounds.
    `aim` = (lower aim, upper aim), the means the gate tests: the bets then also aim at them (see the
    module docstring), damped over the first `warmup` units; (None, None) is the paper's plain
    one-sided PrPl betting CS. sequential_gate's path is this with its aims and its "warmup"."""
    d = _check(d)
    if d.ndim != 1:
        raise ValueError("confidence_sequence takes one stream of differences (1-D)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    ok = ~np.isnan(d)
    x = (d[ok] + 1) / 2
    lower = np.full(d.size, -1.0)
    upper = np.full(d.size, 1.0)
    if x.size:
        to_x = [None if a is None else (a + 1) / 2 for a in aim]
        lo = 2 * _one_sided(x, alpha, to_x[0], +1, warmup) - 1
        hi = 2 * _one_sided(x, alpha, to_x[1], -1, warmup) - 1
        # place the bounds at the positions of the scored units, carry them over the NaNs
        idx = np.maximum.accumulate(np.where(ok, np.cumsum(ok) - 1, -1))
        seen = idx >= 0
        lower[seen], upper[seen] = lo[idx[seen]], hi[idx[seen]]
    return lower, upper


def _aims(margin: float, strict: bool) -> tuple[float, float]:
    """The two tested means: pass claims mean > -margin; regression claims mean < -margin (strict: < 0)."""
    return -margin, (0.0 if strict else -margin)


def sequential_verdicts(d: np.ndarray, margin: float, alpha: float = 0.05, strict: bool = False,
                        batch: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sequential gate on many streams at once (simulation, planning): d is (streams, units),
    no NaN, read in batches of `batch` units up to the stream's length (= max units).

    Returns (verdict, units_used, p_pass, p_regression) per stream; verdict 1 pass, -1 regression,
    0 inconclusive. p_* are the anytime-valid p-values 1 / max capital at the stopping time."""
    d = _check(d)
    if d.ndim != 2 or np.isnan(d).any():
        raise ValueError("sequential_verdicts takes a (streams, units) array without NaN")
    x = (d + 1) / 2
    lo_aim, hi_aim = ((a + 1) / 2 for a in _aims(margin, strict))
    thr, n = math.log(1 / alpha), x.shape[-1]
    w = _warmup(n)
    cap_pass = np.maximum.accumulate(_log_capital(x, _bets(x, alpha, lo_aim, +1, w), lo_aim, +1), axis=-1)
    cap_reg = np.maximum.accumulate(_log_capital(x, _bets(x, alpha, hi_aim, -1, w), hi_aim, -1), axis=-1)
    ends = np.unique(np.minimum(np.arange(batch, n + batch, batch), n)) - 1  # last unit of each batch
    reg = cap_reg[:, ends] >= thr  # regression first: in strict mode both claims can hold at once
    ok = cap_pass[:, ends] >= thr
    if strict:  # strict: a pass only once every item is in (see sequential_gate)
        ok[:, :-1] = False
    decided = reg | ok
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), ends.size - 1)
    rows = np.arange(x.shape[0])
    verdict = np.where(reg[rows, first], -1, np.where(ok[rows, first], 1, 0))
    stop = ends[first]
    p_pass = np.minimum(1.0, np.exp(-cap_pass[rows, stop]))
    p_reg = np.minimum(1.0, np.exp(-cap_reg[rows, stop]))
    return verdict, stop + 1, p_pass, p_reg


def sequential_gate(d_batches: Sequence[Sequence[float]], margin: float, alpha: float = 0.05, strict: bool = False,
                    max_items: int | None = None) -> dict[str, Any]:
    """Read batches of per-unit paired differences (candidate - current, in [-1, 1]; the unit is an
    item with its epochs averaged, or a cluster's mean; NaN = unscorable, counted as evaluated but not
    used) in their seeded random order, and stop at the first batch where the anytime-valid CS
    decides the gate, as the fixed-n gate reads its interval:

    - pass: the lower bound is at or above -margin (every mean <= -margin rejected);
    - regression: the upper bound is at or below -margin (strict: at or below 0);
    - inconclusive: neither by `max_items` (or the end of the data).

    Counts ("items_used", `max_items`, the path's "items") are in units: with clusters, a unit is a
    whole cluster, and the caller converts to items (and batches whole clusters).
    `max_items` is the most items the run will evaluate (regress.max_items, or fewer if the eval has
    fewer); None means the batches given are all there will be. Until a verdict or `max_items`,
    "stopped" is False and "verdict" None: evaluate the next batch and call again with all batches.

    Strict mode exists to catch any significant drop, so it stops early only for a regression: an
    early pass (the mean is above -margin) would forfeit the chance to see a small drop below 0 that
    the fixed gate at `max_items` would call a regression. Its pass is read at `max_items`.

    Two one-sided CSs at alpha each, not a two-sided one at alpha/2: the verdicts are two different
    claims and each is wrong with probability <= alpha when its own null holds. If the true mean is
    >= -margin (strict: >= 0) only the regression claim can be false; if it is <= -margin only the
    pass claim can -- exactly as for the fixed gate's two one-sided (1 - alpha) bounds. In strict mode
    both can hold at once (the mean lies in (-margin, 0)): regression wins, as in the fixed gate.

    Returns a JSON-ready dict: verdict, stopped, items_used, items_max, items_saved, units_used, lower/upper
    at the stop, p_pass/p_regression (anytime-valid, 1 / max capital; valid at the stopping time, so
    they can go into Holm across cells) and p_*_now (after all batches given), the per-batch path
    (SequentialState as dicts, up to the stop) and the method."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    batches = [_check(b, f"batch {i}").ravel() for i, b in enumerate(d_batches)]
    d = np.concatenate(batches) if batches else np.zeros(0)
    ends = np.cumsum([b.size for b in batches]).astype(int)
    if max_items is not None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        d, ends = d[:max_items], np.unique(np.minimum(ends, max_items))
    ends = ends[ends > 0]
    lo_aim, hi_aim = _aims(margin, strict)
    x = (d[~np.isnan(d)] + 1) / 2
    thr = math.log(1 / alpha)
    total = max_items if max_items is not None else int(d.size)
    w = _warmup(total)
    # anytime p-values: the same capital processes at the tested means (consistent with the bounds,
    # which are read off the same bets on a grid that holds both tested means)
    if x.size:
        xl, xh = (lo_aim + 1) / 2, (hi_aim + 1) / 2
        cap_pass = np.maximum.accumulate(_log_capital(x, _bets(x, alpha, xl, +1, w), xl, +1))
        cap_reg = np.maximum.accumulate(_log_capital(x, _bets(x, alpha, xh, -1, w), xh, -1))
    n_scored = np.cumsum(~np.isnan(d))
    path: list[SequentialState] = []
    decided = None
    for e in ends:
        k = int(n_scored[e - 1])  # scored units so far
        reg = bool(k) and cap_reg[k - 1] >= thr
        ok = bool(k) and cap_pass[k - 1] >= thr and (not strict or e >= total)
        decided = "regression" if reg else "pass" if ok else None
        path.append(SequentialState(int(e), k, -1.0, 1.0, decided))
        if decided:
            break
    # the bounds at the batch ends read (the path the report plots): the same grid as
    # confidence_sequence, by bisection, so the cost does not grow with the grid
    got = [i for i, s in enumerate(path) if s.n]
    if got:
        times = np.array([path[i].n for i in got])
        xs = x[:times.max()]
        lo = 2 * _one_sided_at(xs, alpha, (lo_aim + 1) / 2, +1, w, times) - 1
        hi = 2 * _one_sided_at(xs, alpha, (hi_aim + 1) / 2, -1, w, times) - 1
        for i, low, high in zip(got, lo, hi):
            path[i] = replace(path[i], lower=float(low), upper=float(high))
    used = path[-1].items if path else 0
    k = path[-1].n if path else 0
    stopped = bool(decided) or used >= total
    return {
        "verdict": decided or ("inconclusive" if stopped else None), "stopped": stopped,
        "items_used": used, "items_max": total, "items_saved": max(0, total - used), "units_used": k,
        "lower": path[-1].lower if path else -1.0, "upper": path[-1].upper if path else 1.0,
        "mean": float(np.mean(x[:k])) * 2 - 1 if k else float("nan"),
        "p_pass": float(min(1.0, math.exp(-cap_pass[k - 1]))) if k else 1.0,
        "p_regression": float(min(1.0, math.exp(-cap_reg[k - 1]))) if k else 1.0,
        # the same after every batch given, even past this cell's own stop: with several gated cells
        # the run goes on until all are decided, and Holm over the cells' p_regression_now at that
        # common stopping time is valid (anytime p-values are valid at any stopping time)
        "p_pass_now": float(min(1.0, math.exp(-cap_pass[-1]))) if x.size else 1.0,
        "p_regression_now": float(min(1.0, math.exp(-cap_reg[-1]))) if x.size else 1.0,
        "margin": margin, "alpha": alpha, "strict": strict, "warmup": w,
        "path": [asdict(s) for s in path],
        "method": ("anytime-valid betting confidence sequence (Waudby-Smith & Ramdas 2023), two one-sided at alpha; "
                   "PrPl + aGRAPA bets aimed at the tested means"),
    }
