"""Calibration of harness.stats.paired_binary by simulation: type-I error and CI coverage.

Null: two models with the same accuracy on n paired items (correlated answers, as real models are);
the exact McNemar test should reject at most ~alpha of the time (it is conservative by design).
Coverage: with a true difference, the 95 % CI should contain it ~95 % of the time.

Run: .venv/bin/python bench/stats_calibration.py [--draws 2000] [--n 200]
Last line: one JSON object; `ratio` = observed type-I error / nominal alpha.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.stats import paired_binary  # noqa: E402


def draw(rng: np.random.Generator, n: int, p_a: float, p_b: float, rho: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Correlated 0/1 pairs: with prob rho both copy one shared coin (at p_b), else independent."""
    shared = rng.random(n) < rho
    u = rng.random(n)
    a = np.where(shared, u < p_b, rng.random(n) < p_a).astype(float)
    b = np.where(shared, u < p_b, rng.random(n) < p_b).astype(float)
    # shift a's accuracy to p_a on the shared items too, so E[a] = p_a exactly
    if p_a != p_b:
        flip = shared & (a == 0) & (rng.random(n) < (p_a - p_b) / (1 - p_b))
        a[flip] = 1.0
    return a, b


def draw_clustered(rng: np.random.Generator, n_clusters: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Null with clustered items (paraphrases of one fact): within a cluster both models tend to be
    right or wrong together per model, so item-level tests that assume independence over-reject."""
    k = np.repeat(np.arange(n_clusters), size)
    pa, pb = rng.beta(1, 1, n_clusters)[k], rng.beta(1, 1, n_clusters)[k]  # per-cluster, per-model skill
    return (rng.random(k.size) < pa).astype(float), (rng.random(k.size) < pb).astype(float), k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    alpha = 0.05
    t0 = time.time()
    rejections = sum(paired_binary(*draw(rng, args.n, 0.6, 0.6)).p_value < alpha for _ in range(args.draws))
    type1 = rejections / args.draws
    covered = 0
    for _ in range(args.draws):
        a, b = draw(rng, args.n, 0.7, 0.6)
        r = paired_binary(a, b)
        covered += r.ci_low <= 0.1 <= r.ci_high
    coverage = covered / args.draws
    # clustered null: 50 facts x 4 paraphrases; naive (McNemar) vs cluster-robust
    naive = robust = 0
    for _ in range(args.draws):
        a, b, k = draw_clustered(rng, 50, 4)
        naive += paired_binary(a, b).p_value < alpha
        robust += paired_binary(a, b, clusters=k).p_value < alpha
    print(f"clustered null (50 clusters x 4 items): type-I error naive McNemar {naive / args.draws:.4f}, "
          f"cluster-robust {robust / args.draws:.4f}")
    print(f"type-I error at alpha={alpha}: {type1:.4f} over {args.draws} null comparisons (n={args.n})")
    print(f"95% CI coverage of a true +10 pp difference: {coverage:.4f} over {args.draws} draws")
    print(json.dumps({"type1_error": type1, "alpha": alpha, "coverage": coverage, "nominal_coverage": 0.95,
                      "clustered_type1_naive": naive / args.draws, "clustered_type1_robust": robust / args.draws,
                      "draws": args.draws, "n": args.n, "seconds": round(time.time() - t0, 1),
                      "ratio": round(type1 / alpha, 3)}))


if __name__ == "__main__":
    main()
