"""Calibration by simulation: type-I error and CI coverage of harness.stats.paired_binary, and
held-out coverage of every interval the reports print (harness.stats.paired_interval, the one
method per kind of score shared by report.md/html, summary.json, the sweep report and the gate).

Null: two models with the same accuracy on n paired items (correlated answers, as real models are);
the exact McNemar test should reject at most ~alpha of the time (it is conservative by design).
Coverage: with a true difference, the 95 % CI should contain it ~95 % of the time.

Held-out coverage (issue 29): at n = 20, 40 and 200, for 0/1 scores and for means of 3 epochs, each
draw takes fresh parameters from a wide prior (accuracies 0.15-0.95, true differences up to
+-30 pp, correlation between the models through the item) and one data set from them; the share
of 95 % intervals that contain the true difference is the coverage averaged over that prior
(Newcombe 1998's criterion: a discrete interval's coverage oscillates from one parameter point to
the next, so a single point says little). None of these parameters was used to choose the method.
Target: within [0.935, 0.965].

Run: .venv/bin/python bench/stats_calibration.py [--draws 2000] [--n 200] [--coverage-draws 2000]
Last line: one JSON object; `ratio` = observed type-I error / nominal alpha; `coverage_by_n`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.stats import paired_binary, paired_interval  # noqa: E402


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


def draw_prior(rng: np.random.Generator, n: int, epochs: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One parameter set from the prior and one data set: per-item skill shared by both models (the
    correlation real models have), model a shifted by a true difference; `epochs` > 1 gives per-item
    means of that many samples. Returns (a, b, the true mean difference)."""
    pb = rng.uniform(0.15, 0.95)
    pa = float(np.clip(pb + rng.uniform(-0.3, 0.3), 0.05, 0.98))
    spread = rng.uniform(1, 8)  # Beta concentration: small = items very easy or very hard (strong correlation)
    sb = rng.beta(pb * spread, (1 - pb) * spread, n)
    sa = np.clip(sb + (pa - pb), 0, 1)  # the same items, a's chance shifted
    a = (rng.random((epochs, n)) < sa).mean(axis=0)
    b = (rng.random((epochs, n)) < sb).mean(axis=0)
    # the target is the population difference (over all items the prior could draw), not this sample's
    pop = rng.beta(pb * spread, (1 - pb) * spread, 20000)
    return a, b, float(np.mean(np.clip(pop + (pa - pb), 0, 1) - pop))


def held_out_coverage(rng: np.random.Generator, n: int, epochs: int, draws: int) -> float:
    hit = 0
    for _ in range(draws):
        a, b, truth = draw_prior(rng, n, epochs)
        r = paired_interval(a, b)
        hit += r.ci_low <= truth <= r.ci_high
    return hit / draws


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--coverage-draws", type=int, default=2000)
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
    cov: dict[str, dict[str, float]] = {}
    for kind, epochs in (("binary", 1), ("continuous", 3)):
        cov[kind] = {str(n): held_out_coverage(rng, n, epochs, args.coverage_draws) for n in (20, 40, 200)}
        print(f"held-out 95 % coverage, {kind} ({'0/1' if epochs == 1 else 'means of 3 epochs'}; "
              f"{paired_interval(*draw_prior(rng, 40, epochs)[:2]).method}): "
              + ", ".join(f"n = {n}: {c:.4f}" for n, c in cov[kind].items()) + f" over {args.coverage_draws} draws each")
    inside = all(0.935 <= c <= 0.965 for k in cov.values() for c in k.values())
    print(f"type-I error at alpha={alpha}: {type1:.4f} over {args.draws} null comparisons (n={args.n})")
    print(f"95% CI coverage of a true +10 pp difference: {coverage:.4f} over {args.draws} draws")
    print(json.dumps({"type1_error": type1, "alpha": alpha, "coverage": coverage, "nominal_coverage": 0.95,
                      "clustered_type1_naive": naive / args.draws, "clustered_type1_robust": robust / args.draws,
                      "coverage_by_n": cov, "coverage_target": [0.935, 0.965], "coverage_within_target": inside,
                      "draws": args.draws, "n": args.n, "seconds": round(time.time() - t0, 1),
                      "ratio": round(type1 / alpha, 3)}))


if __name__ == "__main__":
    main()
