"""The anytime-valid sequential gate against the fixed-n gate, by simulation (issue 17).

Many A/A and A/B pairs of models on paired items: each item has a difficulty p ~ Beta(1.4, 0.6)
(mean accuracy 0.7; the two models' answers on an item are correlated through it, as real models'
are), the candidate's accuracy on it is shifted so its mean is exactly 0.7 + delta. Scores are 0/1
(one epoch), the mean of 3 epochs per item, or the mean over a cluster of 4 items sharing one
difficulty (the unit the gate reads is the item or the cluster, never a sample). True differences: 0 (A/A),
-margin (the non-inferiority boundary: a pass there is a false pass), -3 x margin (a clear
regression) and +margin (a clear pass).

max_items is what a user would pick for the fixed-n gate: the n at which its one-sided t interval
has 90 % power to pass at delta = 0 (rounded up to a batch). The fixed-n gate reads all of them;
the sequential gate reads batches until its confidence sequence decides. The goal (issue 17): on a
clear regression and a clear pass, <= 40 % of the items on average, with error rates <= alpha.

Run: nice -n 10 .venv/bin/python bench/sequential.py [--reps 4000] [--margin 0.05] [--batch 50]
Last line: one JSON object; `ratio` = the sequential gate's false-regression rate under A/A / alpha.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.stats import sequential_verdicts  # noqa: E402

BASE = 0.7  # the current model's mean accuracy


def draw(rng: np.random.Generator, reps: int, n: int, delta: float, epochs: int, cluster: int = 1) -> np.ndarray:
    """(reps, n) per-unit paired differences candidate - current: an item's epoch mean, or the mean
    over a cluster of `cluster` items that share one difficulty (paraphrases of one fact)."""
    p = np.repeat(rng.beta(1.4, 0.6, (reps, n)), cluster, axis=1)  # mean 0.7; item spread correlates the pair
    # shift the candidate's per-item accuracy so that its mean is exactly BASE + delta, inside [0, 1]
    q = p * (1 + delta / BASE) if delta < 0 else 1 - (1 - p) * (1 - delta / (1 - BASE))
    d = (rng.binomial(epochs, q) - rng.binomial(epochs, p)) / epochs
    return d.reshape(reps, n, cluster).mean(axis=2)


def peeking(d: np.ndarray, margin: float, alpha: float, batch: int) -> np.ndarray:
    """The naive way issue 17 warns about: the fixed gate's one-sided t bounds after every batch,
    stop at the first verdict. 1 pass, -1 regression, 0 inconclusive."""
    from scipy import stats

    ends = np.arange(batch, d.shape[1] + 1, batch)
    s1, s2 = np.cumsum(d, axis=1)[:, ends - 1], np.cumsum(d * d, axis=1)[:, ends - 1]
    mean = s1 / ends
    sd = np.sqrt(np.maximum(s2 / ends - mean ** 2, 0) * ends / (ends - 1))
    h = stats.t.ppf(1 - alpha, ends - 1) * sd / np.sqrt(ends)
    code = np.where(mean + h < -margin, -1, np.where(mean - h > -margin, 1, 0))
    first = np.where((code != 0).any(axis=1), (code != 0).argmax(axis=1), ends.size - 1)
    return code[np.arange(d.shape[0]), first]


def fixed_gate(d: np.ndarray, margin: float, alpha: float) -> np.ndarray:
    """Stand-in for the fixed-n gate: one-sided (1 - alpha) paired t bounds at the full n.
    1 pass (lower > -margin), -1 regression (upper < -margin), 0 inconclusive."""
    from scipy import stats

    n = d.shape[1]
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / math.sqrt(n)
    h = stats.t.ppf(1 - alpha, n - 1) * se
    return np.where(mean - h > -margin, 1, np.where(mean + h < -margin, -1, 0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4000, help="simulated model pairs per cell")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    from scipy import stats

    m, alpha, rng, t0 = args.margin, args.alpha, np.random.default_rng(0), time.time()
    rows, out = [], {}
    kinds = (("0/1", 1, 1), ("3-epoch", 3, 1), ("clust4", 1, 4))  # clust4: the unit is a cluster of 4 items
    for kind, epochs, cluster in kinds:
        var = draw(rng, 1, 200_000, 0.0, epochs, cluster).var()
        z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(0.9)
        step = max(1, args.batch // cluster)
        n = int(math.ceil(var * z * z / m / m / step) * step)  # units
        for name, delta in (("A/A", 0.0), ("-margin", -m), ("-3 margin", -3 * m), ("+margin", m)):
            d = draw(rng, args.reps, n, delta, epochs, cluster)
            b = max(1, args.batch // cluster)  # a batch is `batch` items: whole clusters of them
            v, used, _, _ = sequential_verdicts(d, m, alpha, batch=b)
            f, peek = fixed_gate(d, m, alpha), peeking(d, m, alpha, b)
            r = {"kind": kind, "delta": delta, "n_max": n * cluster, "seq_pass": float(np.mean(v == 1)),
                 "seq_regression": float(np.mean(v == -1)), "seq_share": float(used.mean() / n),
                 "fixed_pass": float(np.mean(f == 1)), "fixed_regression": float(np.mean(f == -1)),
                 "peek_pass": float(np.mean(peek == 1)), "peek_regression": float(np.mean(peek == -1))}
            rows.append((name, r))
            out[(kind, name)] = r
    print(f"sequential (betting CS, batch {args.batch} items) vs fixed-n gate (one-sided t at n_max) vs naive peeking "
          f"(that t interval after every batch); margin {m}, alpha {alpha}, {args.reps} pairs per row; n_max in items")
    print(f"{'scores':>8} {'true d':>10} {'n_max':>6} | {'seq pass':>8} {'seq regr':>8} {'items used':>10} | "
          f"{'fix pass':>8} {'fix regr':>8} | {'peek pass':>9} {'peek regr':>9}")
    for name, r in rows:
        print(f"{r['kind']:>8} {name:>10} {r['n_max']:>6} | {r['seq_pass']:8.3f} {r['seq_regression']:8.3f} "
              f"{r['seq_share']:9.1%} | {r['fixed_pass']:8.3f} {r['fixed_regression']:8.3f} | "
              f"{r['peek_pass']:9.3f} {r['peek_regression']:9.3f}")
    ep = [k for k, _, _ in kinds]
    false_reg = max(out[(e, "A/A")]["seq_regression"] for e in ep)
    false_pass = max(out[(e, "-margin")]["seq_pass"] for e in ep)
    share_reg = max(out[(e, "-3 margin")]["seq_share"] for e in ep)
    share_pass = max(out[(e, "+margin")]["seq_share"] for e in ep)
    summary = {
        "false_regression_aa": false_reg, "false_pass_at_margin": false_pass, "alpha": alpha,
        "fixed_false_regression_aa": max(out[(e, "A/A")]["fixed_regression"] for e in ep),
        "fixed_false_pass_at_margin": max(out[(e, "-margin")]["fixed_pass"] for e in ep),
        "peeking_false_pass_at_margin": max(out[(e, "-margin")]["peek_pass"] for e in ep),
        "power_pass_aa": min(out[(e, "A/A")]["seq_pass"] for e in ep),
        "fixed_power_pass_aa": min(out[(e, "A/A")]["fixed_pass"] for e in ep),
        "power_regression_3m": min(out[(e, "-3 margin")]["seq_regression"] for e in ep),
        "power_pass_plus_m": min(out[(e, "+margin")]["seq_pass"] for e in ep),
        "share_items_clear_regression": round(share_reg, 3), "share_items_clear_pass": round(share_pass, 3),
        "share_goal": 0.4, "share_met": bool(max(share_reg, share_pass) <= 0.4),
        "share_items_aa": round(max(out[(e, "A/A")]["seq_share"] for e in ep), 3),
        "margin": m, "batch": args.batch, "reps": args.reps, "n_max_items": {e: out[(e, "A/A")]["n_max"] for e in ep},
        "seconds": round(time.time() - t0, 1),
        "false_pass_ratio": round(false_pass / alpha, 3), "ratio": round(false_reg / alpha, 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
