"""The winner's curse of a sweep, by simulation: N arms with no true difference from the baseline.

Each simulated sweep: n items whose difficulty every model shares (answers correlated through the
item, as real models' are), a baseline and N arms that are all the same model in distribution. The
sweep report names the best arm; the naive figure tests it against the baseline as if it had been
chosen in advance (the report's paired score interval, two-sided p < alpha with a gain), the adjusted
one with the selection accounted for (harness.stats.winner_test: max-statistic permutation over the
arms, one-sided p < alpha). Under no difference a valid test claims a winner in <= alpha of sweeps.

Run: .venv/bin/python bench/winners_curse.py [--sweeps 1000] [--arms 8] [--n 40] [--resamples 500]
Last line: one JSON object; `ratio` = adjusted false-positive rate / alpha (<= 1: the adjustment holds).
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
from harness.stats import paired_interval, proportion_ci, winner_test  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweeps", type=int, default=1000)
    ap.add_argument("--arms", type=int, default=8)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--resamples", type=int, default=500)
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.time()
    naive = adjusted = 0
    for s in range(args.sweeps):
        skill = rng.beta(2, 2, args.n)  # per-item chance of a right answer, the same for every model
        base = (rng.random(args.n) < skill).astype(float)
        arms = [(rng.random(args.n) < skill).astype(float) for _ in range(args.arms)]
        w = winner_test(arms, base, args.alpha, n_resamples=args.resamples, seed=s)
        r = paired_interval(arms[w.best], base, args.alpha)
        naive += r.p_value < args.alpha and r.diff > 0
        adjusted += w.p_adjusted < args.alpha
    rn, ra = naive / args.sweeps, adjusted / args.sweeps
    ci = proportion_ci(adjusted, args.sweeps)
    print(f"{args.sweeps} sweeps of {args.arms} arms x {args.n} items, no true difference; alpha = {args.alpha}")
    print(f"naive winner 'beats the baseline': {100 * rn:.1f} % of sweeps (the paired score test as if chosen in advance)")
    print(f"selection-adjusted (max-statistic permutation, {args.resamples} shuffles): {100 * ra:.1f} % "
          f"[95 % Wilson {100 * ci[0]:.1f}, {100 * ci[1]:.1f}]")
    print(json.dumps({"naive_rate": rn, "adjusted_rate": ra, "adjusted_rate_ci": [round(ci[0], 4), round(ci[1], 4)],
                      "alpha": args.alpha, "sweeps": args.sweeps, "arms": args.arms, "n": args.n, "resamples": args.resamples,
                      "naive_over_alpha": round(rn / args.alpha, 3), "seconds": round(time.time() - t0, 1),
                      "ratio": round(ra / args.alpha, 3) if not math.isnan(ra) else None}))


if __name__ == "__main__":
    main()
