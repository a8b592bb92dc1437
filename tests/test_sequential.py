"""The anytime-valid sequential gate (harness.stats sequential_*): reference numbers, coverage, decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import confidence_sequence, sequential_gate, sequential_verdicts


def _reference_streams() -> tuple[np.ndarray, np.ndarray]:
    """Deterministic streams (Weyl sequences, no RNG whose stream could change between NumPy versions)."""
    i = np.arange(1, 401)
    u, v = (i * 0.6180339887498949) % 1, (i * 0.41421356237309515) % 1
    d_binary = (u < 0.75).astype(float) - (v < 0.6).astype(float)  # paired 0/1 scores
    d_epochs = (np.floor(u[:300] * 4) - np.floor(v[:300] * 4)) / 3  # means of 3 epochs
    return d_binary, d_epochs


# Produced by confseq 0.0.11 (the paper's authors' package; its pure-Python betting module, run with
# matplotlib/multiprocess stubbed and np.float_ = np.float64) on the streams above, x = (d + 1) / 2:
#   l = betting_lower_cs(x, alpha=0.05, breaks=4000, running_intersection=True)
#   u = 1 - betting_lower_cs(1 - x, alpha=0.05, breaks=4000, running_intersection=True)
# as (stream, t, 2 l[t-1] - 1, 2 u[t-1] - 1). Default bets (PrPl), truncation 1/2.
CONFSEQ = [
    ("binary", 10, -0.430000, 0.725000), ("binary", 50, -0.083000, 0.409000), ("binary", 100, -0.017500, 0.333000),
    ("binary", 200, 0.021500, 0.290000), ("binary", 400, 0.055500, 0.258500),
    ("epochs", 10, -0.470500, 0.513000), ("epochs", 50, -0.193500, 0.191000), ("epochs", 100, -0.143500, 0.135000),
    ("epochs", 200, -0.101500, 0.104000), ("epochs", 300, -0.087000, 0.087500),
]


def test_matches_confseq_reference_numbers():
    streams = dict(zip(("binary", "epochs"), _reference_streams()))
    for name, t, lo, hi in CONFSEQ:
        lower, upper = confidence_sequence(streams[name], alpha=0.05)
        assert lower[t - 1] == pytest.approx(lo, abs=1e-9), (name, t)
        assert upper[t - 1] == pytest.approx(hi, abs=1e-9), (name, t)


def test_bounds_are_running_and_contain_the_mean_path():
    d, _ = _reference_streams()
    lower, upper = confidence_sequence(d, alpha=0.05, aim=(-0.05, -0.05))
    assert np.all(np.diff(lower) >= 0) and np.all(np.diff(upper) <= 0)  # intersected over time
    assert np.all(lower <= upper)
    assert upper[-1] - lower[-1] < 0.25 and upper[0] - lower[0] > 1  # shrinks from nearly [-1, 1]


def _stream(rng: np.random.Generator, shape: tuple[int, int], mean: float, spread: float = 0.25) -> np.ndarray:
    """d in {-1, 0, 1} with P(+1) - P(-1) = mean and P(+1) + P(-1) = spread (the discordance)."""
    p_up, p_down = (spread + mean) / 2, (spread - mean) / 2
    u = rng.random(shape)
    return np.where(u < p_up, 1.0, np.where(u < p_up + p_down, -1.0, 0.0))


def test_time_uniform_error_rates_by_simulation():
    """Stopping at the first unit where either claim is made (batch 1, the worst peeking): each claim
    is false with probability <= alpha over the whole stream. A true mean exactly at -margin makes
    both claims false; naive peeking at a fixed-n interval after every unit would exceed alpha."""
    rng, alpha, margin = np.random.default_rng(3), 0.05, 0.05
    d = _stream(rng, (2000, 600), -margin)
    verdict, _, p_pass, _ = sequential_verdicts(d, margin, alpha, batch=1)
    assert np.mean(verdict == 1) <= alpha and np.mean(verdict == -1) <= alpha
    assert np.all((verdict == 1) == (p_pass <= alpha))  # the anytime p-values say the same
    # the same streams, read by peeking at a one-sided z interval after every unit: far above alpha
    t = np.arange(1, d.shape[1] + 1)
    z = (np.cumsum(d, axis=1) / t + margin) / (np.sqrt(0.25 / t))
    assert np.mean((z[:, 9:] > 1.645).any(axis=1)) > 3 * alpha


def test_confidence_sequence_covers_the_mean_uniformly():
    rng = np.random.default_rng(5)
    misses = 0
    for _ in range(60):
        d = _stream(rng, (1, 250), 0.1, 0.4)[0]
        lower, upper = confidence_sequence(d, alpha=0.1)
        misses += bool(np.any(lower >= 0.1) or np.any(upper <= 0.1))
    assert misses / 60 <= 0.2  # two one-sided sequences at 0.1 each (binomial slack at 60 draws)


def test_decisions_on_constructed_streams():
    rng = np.random.default_rng(7)
    same = np.zeros(2000)  # a model against itself, deterministic: every difference is 0
    r = sequential_gate(np.split(same, 40), margin=0.05)
    assert r["verdict"] == "pass" and r["lower"] >= -0.05 and r["items_used"] < 500 and r["items_saved"] > 1500
    broken = _stream(rng, (1, 2000), -0.3, 0.4)[0]
    r = sequential_gate(np.split(broken, 40), margin=0.05)
    assert r["verdict"] == "regression" and r["upper"] <= -0.05 and r["items_used"] <= 200
    assert r["p_regression"] <= 0.05 < r["p_pass"]
    r = sequential_gate(np.split(same, 40), margin=0.05, max_items=20)  # too few items to know
    assert r["verdict"] == "inconclusive" and r["items_used"] == 20 and r["items_saved"] == 0
    assert r["lower"] < -0.05 < r["upper"]


def test_strict_calls_a_small_significant_drop_a_regression():
    d = _stream(np.random.default_rng(11), (1, 4000), -0.1, 0.12)[0]  # a small, steady drop
    assert sequential_gate(np.split(d, 80), margin=0.3)["verdict"] == "pass"  # within a wide margin
    r = sequential_gate(np.split(d, 80), margin=0.3, strict=True)
    assert r["verdict"] == "regression" and r["upper"] <= 0 and r["items_used"] < 1000
    same = np.zeros(2000)  # no drop at all: strict mode passes, but only once all items are in
    r = sequential_gate(np.split(same, 40), margin=0.05, strict=True)
    assert r["verdict"] == "pass" and r["items_used"] == 2000
    r = sequential_gate(np.split(same, 40)[:5], margin=0.05, strict=True, max_items=2000)  # mid-run
    assert r["verdict"] is None and not r["stopped"] and r["items_used"] == 250


def test_verdict_reads_the_path_the_report_shows():
    """pass iff lower >= -margin, regression iff upper <= -margin, at every batch of many streams."""
    rng = np.random.default_rng(13)
    for mean in (-0.15, -0.05, -0.02, 0.0, 0.05):
        for strict in (False, True):
            d = _stream(rng, (1, 600), mean, 0.3)[0]
            r = sequential_gate(np.split(d, 12), margin=0.05, strict=strict)
            for s in r["path"]:
                passes = s["lower"] >= -0.05 and (not strict or s["items"] == 600)
                want = "regression" if s["upper"] <= (0 if strict else -0.05) else "pass" if passes else None
                assert s["decided"] == want, (mean, strict, s)
            assert r["p_regression_now"] <= r["p_regression"] and r["p_pass_now"] <= r["p_pass"]


def test_batchwise_equals_itemwise_at_batch_boundaries():
    d = _stream(np.random.default_rng(17), (1, 1000), -0.02, 0.3)[0]
    by_batch = sequential_gate(np.split(d, 20), margin=0.05, max_items=1000)
    lower, upper = confidence_sequence(d, alpha=0.05, aim=(-0.05, -0.05), warmup=by_batch["warmup"])
    by_item = sequential_gate([d[i:i + 1] for i in range(d.size)], margin=0.05, max_items=1000)
    for s in by_batch["path"]:
        assert (s["lower"], s["upper"]) == (lower[s["items"] - 1], upper[s["items"] - 1])
        assert by_item["path"][s["items"] - 1]["lower"] == s["lower"]
    assert by_item["items_used"] <= by_batch["items_used"]  # item-wise can only stop earlier
    verdict, used, _, _ = sequential_verdicts(d[None, :], 0.05, batch=50)  # the vectorised reader agrees
    assert {1: "pass", -1: "regression", 0: "inconclusive"}[int(verdict[0])] == by_batch["verdict"]
    assert used[0] == by_batch["items_used"]


def test_unscorable_units_cost_items_but_not_statistics():
    d = _stream(np.random.default_rng(19), (1, 600), 0.05, 0.3)[0]
    holes = d.copy()
    holes[::10] = np.nan  # every tenth item unscorable
    r = sequential_gate(np.split(holes, 10), margin=0.05)
    clean_lower, _ = confidence_sequence(d[~np.isnan(holes)], 0.05, aim=(-0.05, -0.05), warmup=r["warmup"])
    assert r["path"][0]["items"] == 60 and r["path"][0]["n"] == 54
    assert r["path"][0]["lower"] == clean_lower[53]  # the same 54 scored units give the same bound
    lower, upper = confidence_sequence(holes, 0.05)
    assert lower[10] == lower[9] and upper[10] == upper[9]  # a NaN repeats the previous bounds
    assert math.isnan(sequential_gate([[np.nan] * 5], margin=0.05)["mean"])


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        confidence_sequence([0.5, 1.5])
    with pytest.raises(ValueError, match="batch 1"):
        sequential_gate([[0.0], [2.0]], margin=0.05)
    with pytest.raises(ValueError, match="margin"):
        sequential_gate([[0.0]], margin=1.0)
    with pytest.raises(ValueError, match="alpha"):
        confidence_sequence([0.0], alpha=0.0)
