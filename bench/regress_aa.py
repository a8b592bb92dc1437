"""Calibration of the regression gate (harness.stats.gate_cell) by simulation.

Two models answer the same n items. Item i has an easiness theta_i (probit scale, wide spread so the
two models agree on most items, as real models do); the current model is right with probability
Phi(theta_i), the candidate with Phi(theta_i + s + v_cluster + w_i): better on some items, worse on
others, with a shift s set so the population mean difference is exactly the target. Epochs = 3 means
each model answers each item three times (per-item accuracy heterogeneity: the caller passes the
means). Clusters: 4 items per source share part of their easiness and part of the candidate's
change (a candidate that forgot a topic fails all its paraphrases).

For each setting (n = 40 and 200, epochs 1 and 3, with and without clusters):
- true difference 0:         pass / inconclusive / false-regression rates (the last must be <= alpha),
                              and the strict gate's false-regression rate (its H0 d >= 0 at the boundary);
- true drop = margin:         false-pass rate (the non-inferiority test's own error, <= alpha) and the
                              regression rate (the regression test's own error at its boundary, <= alpha);
- true drop = 2 x margin:     power (regression rate).
The margin is 10 pp at n = 40 and 5 pp at n = 200 (what those n can decide).

Run: nice -n 10 .venv/bin/python bench/regress_aa.py [--reps 1000] [--alpha 0.05] [--seed 2026]
Last line: one JSON object. `ratio` = the worse of the two error rates (false regression: at 0, at the
margin, strict at 0; false pass: at the margin), each pooled over the 8 settings (8 x reps draws, so
Monte-Carlo noise does not decide it), / alpha; goal <= 1. The worst single cell and the Monte-Carlo
standard errors are reported too: with 8 x 4 cells at alpha, the largest cell is ~2 s.e. above alpha
by chance alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.stats import gate_cell, gate_table  # noqa: E402

MU, SD_THETA, SD_CHANGE = 0.6, 2.0, 0.6  # accuracy ~0.6; models disagree on ~15 % of items at epochs = 1
CLUSTER = 4  # items per source
CLUSTER_SHARE = 0.5  # share of the easiness variance and of the candidate-change variance that is per source


def shift_for(target: float) -> float:
    """s such that E[Phi(theta + s + change)] - E[Phi(theta)] = target exactly (normal-probit identity)."""
    base = norm.cdf(MU / math.sqrt(1 + SD_THETA**2))
    return math.sqrt(1 + SD_THETA**2 + SD_CHANGE**2) * float(norm.ppf(base + target)) - MU


def draw(rng: np.random.Generator, reps: int, n: int, epochs: int, clustered: bool, target: float):
    """reps x n per-item mean scores (candidate, current) and the cluster labels (or None)."""
    if clustered:
        g = n // CLUSTER
        k = np.repeat(np.arange(g), CLUSTER)

        def part(sd: float) -> np.ndarray:
            return (rng.normal(0, sd * math.sqrt(CLUSTER_SHARE), (reps, g))[:, k]
                    + rng.normal(0, sd * math.sqrt(1 - CLUSTER_SHARE), (reps, n)))
    else:
        k = None

        def part(sd: float) -> np.ndarray:
            return rng.normal(0, sd, (reps, n))
    theta = MU + part(SD_THETA)
    p_cur = norm.cdf(theta)
    p_cand = norm.cdf(theta + shift_for(target) + part(SD_CHANGE))
    return rng.binomial(epochs, p_cand) / epochs, rng.binomial(epochs, p_cur) / epochs, k


def rates(cand: np.ndarray, cur: np.ndarray, k, margin: float, alpha: float, strict: bool = False) -> dict:
    verdicts = [gate_cell(cand[r], cur[r], margin, alpha, strict, k).verdict for r in range(cand.shape[0])]
    v = np.array(verdicts)
    return {x: float((v == x).mean()) for x in ("pass", "inconclusive", "regression")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    alpha, reps = args.alpha, args.reps
    t0 = time.time()
    rows = []
    for n in (40, 200):
        margin = 0.10 if n == 40 else 0.05
        for epochs in (1, 3):
            for clustered in (False, True):
                r0 = draw(rng, reps, n, epochs, clustered, 0.0)
                null = rates(*r0, margin, alpha)
                strict0 = rates(*r0, margin, alpha, strict=True)
                at_margin = rates(*draw(rng, reps, n, epochs, clustered, -margin), margin, alpha)
                drop2 = rates(*draw(rng, reps, n, epochs, clustered, -2 * margin), margin, alpha)
                disc = float(np.mean(r0[0] != r0[1]))
                rows.append({"n": n, "epochs": epochs, "clusters": CLUSTER if clustered else 1, "margin": margin,
                             "discordance": round(disc, 3),
                             "null_pass": null["pass"], "null_inconclusive": null["inconclusive"],
                             "false_regression": null["regression"], "strict_false_regression": strict0["regression"],
                             "false_pass": at_margin["pass"], "false_regression_at_margin": at_margin["regression"],
                             "power_2x_margin": drop2["regression"]})
    se = math.sqrt(alpha * (1 - alpha) / reps)
    hdr = (f"{'n':>4} {'ep':>2} {'cl':>2} {'margin':>6} {'discord':>7} | {'pass':>5} {'inconcl':>7} {'false-reg':>9}"
           f" {'strict':>6} | {'false-pass':>10} {'false-reg':>9} | {'power':>5}")
    print(f"regression gate calibration, alpha = {alpha}, {reps} replicates per cell (MC s.e. at alpha: {se:.4f})")
    print(f"{'':26}| {'true diff 0':^32} | {'true diff -margin':^20} | -2m")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['n']:>4} {r['epochs']:>2} {r['clusters']:>2} {r['margin']:>6.2f} {r['discordance']:>7.3f} |"
              f" {r['null_pass']:>5.3f} {r['null_inconclusive']:>7.3f} {r['false_regression']:>9.3f}"
              f" {r['strict_false_regression']:>6.3f} | {r['false_pass']:>10.3f} {r['false_regression_at_margin']:>9.3f} |"
              f" {r['power_2x_margin']:>5.3f}")
    fr_keys = ("false_regression", "false_regression_at_margin", "strict_false_regression")
    pooled_fr = max(float(np.mean([r[k] for r in rows])) for k in fr_keys)
    pooled_fp = float(np.mean([r["false_pass"] for r in rows]))
    worst_cell = max(max(r[k] for k in fr_keys + ("false_pass",)) for r in rows)
    se_pooled = math.sqrt(alpha * (1 - alpha) / (reps * len(rows)))
    print(f"pooled over settings: false regression {pooled_fr:.4f}, false pass {pooled_fp:.4f} (alpha {alpha}, "
          f"MC s.e. {se_pooled:.4f}); worst single cell {worst_cell:.4f} (MC s.e. {se:.4f}); {time.time() - t0:.1f} s")
    table = gate_table(alpha=alpha)
    margins = sorted({r["margin"] for r in table})
    discs = sorted({r["discordance"] for r in table})
    print(f"\nitems needed to pass with 80 % power when the true difference is 0 (0/1 scores, one-sided alpha {alpha}):")
    print("margin \\ models disagree on " + " ".join(f"{p:>6.0%}" for p in discs))
    for m in margins:
        print(f"{m:>6.0%}{'':21}" + " ".join(f"{r['required_n']:>6}" for r in table if r["margin"] == m))
    print(json.dumps({"alpha": alpha, "reps": reps, "seed": args.seed, "false_regression_pooled": round(pooled_fr, 4),
                      "false_pass_pooled": round(pooled_fp, 4), "mc_se_pooled": round(se_pooled, 4),
                      "worst_cell": worst_cell, "mc_se_cell": round(se, 4), "rows": rows,
                      "required_n_table": table, "seconds": round(time.time() - t0, 1),
                      "ratio": round(max(pooled_fr, pooled_fp) / alpha, 3)}))


if __name__ == "__main__":
    main()
