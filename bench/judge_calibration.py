"""The judge's calibration rule (issue 31) by simulation: how often it stops a judge that is good enough
(false stops, goal <= alpha = 5 %), how often and how early it stops a useless one.

A population like the demo's: 3 models x `--items` items, the reference grader (exact match) right
on each model's items with probability 0.2, 0.35 and 0.5. A judge agrees with the reference with
sensitivity = specificity = a; `a` is solved so the judge's expected Cohen's κ against the reference
is a given value: exactly the threshold (the hardest reliable judge: any stop is a false stop), 0.8
(a good judge), 0 (a judge at random: a = 0.5) -- and a judge that says "yes" to everything (the
embedded 135M judge's behaviour on the demo). The rule is the harness's own code: the stratified plan
(harness.evaluate._calibrate.plan), the looks (run_looks) and the κ bounds (harness.stats.kappa_look)
with the default graders.<judge>.calibrate settings. For comparison, the naive rule that reads a
one-sided bound at alpha at every look (no correction for looking several times).

Run: nice -n 10 .venv/bin/python bench/judge_calibration.py [--reps 2000] [--items 60]
Last line: one JSON object; `ratio` = the false-stop rate of a judge exactly at the threshold / alpha
(<= 1: the rule keeps its promise).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.config import CalibrateConfig  # noqa: E402
from harness.evaluate._calibrate import Gate, plan, run_looks  # noqa: E402
from harness.stats import kappa_look  # noqa: E402

RIGHT = (0.2, 0.35, 0.5)  # the reference's accuracy on each model's items
SCRATCH = Path(tempfile.mkdtemp(prefix="judge-calibration-"))  # run_looks' grader dir (no batch is written)


def accuracy_for(kappa: float, prevalence: float) -> float:
    """Sensitivity = specificity a giving expected κ = `kappa` at this prevalence of 'right'."""
    from scipy.optimize import brentq

    def k(a: float) -> float:
        q = prevalence * a + (1 - prevalence) * (1 - a)  # P(judge says right)
        pe = prevalence * q + (1 - prevalence) * (1 - q)
        return (a - pe) / (1 - pe) - kappa

    return float(brentq(k, 0.5, 1.0)) if kappa > 0 else 0.5


def one_run(rng: np.random.Generator, items: int, judge: str, kappa: float, c: CalibrateConfig, naive: bool) -> tuple[bool, int]:
    """(stopped, samples judged) for one population and one judge."""
    ref = np.concatenate([rng.random(items) < p for p in RIGHT]).astype(float)
    models = np.repeat(np.arange(len(RIGHT)), items)
    if judge == "yes":
        verdict = np.ones_like(ref)
    else:
        a = accuracy_for(kappa, float(np.mean(RIGHT)))
        verdict = np.where(rng.random(ref.size) < a, ref, 1 - ref)
    strata = [(int(m), bool(r)) for m, r in zip(models, ref)]
    looks = 1 if naive else c.looks  # the naive rule: each look at the unadjusted level

    def look(done: list[int]):  # noqa: ANN202
        return kappa_look(verdict[done], ref[done], c.threshold, c.alpha, looks)

    gate = Gate("j", "judge", "kappa", "exact", True, c.threshold, c.alpha, c.looks, ref.size, 1)
    run_looks(gate, plan(strata, c), c, lambda where, batch: len(batch), look, SCRATCH)
    return gate.decision == "stopped", gate.judged


def simulate(reps: int, items: int, judge: str, kappa: float, c: CalibrateConfig, naive: bool = False) -> dict:
    rng = np.random.default_rng(hash((judge, kappa, naive)) % 2**32)
    runs = [one_run(rng, items, judge, kappa, CalibrateConfig(**{**c.__dict__, "seed": int(rng.integers(2**31))}), naive)
            for _ in range(reps)]
    stopped = np.array([s for s, _ in runs])
    judged = np.array([j for _, j in runs])
    n = items * len(RIGHT)
    return {"stop_rate": round(float(stopped.mean()), 4),
            "stop_rate_se": round(float(np.sqrt(stopped.mean() * (1 - stopped.mean()) / reps)), 4),
            "share_judged": round(float(judged.mean() / n), 4),
            "stopped_at_calibration": round(float(np.mean(judged[stopped] == c.sample)) if stopped.any() else 0.0, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--items", type=int, default=60, help="items per model (3 models)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    c = CalibrateConfig()
    t0 = time.time()
    out = {
        "reliable_at_threshold": simulate(args.reps, args.items, "kappa", c.threshold, c),
        "reliable_0.8": simulate(args.reps, args.items, "kappa", 0.8, c),
        "random": simulate(args.reps, args.items, "kappa", 0.0, c),
        "always_yes": simulate(max(200, args.reps // 10), args.items, "yes", 0.0, c),
        "naive_at_threshold": simulate(args.reps, args.items, "kappa", c.threshold, c, naive=True),
    }
    for name, r in out.items():
        print(f"{name:>22}: stop rate {r['stop_rate']:.3f} (se {r['stop_rate_se']:.3f}), judged {r['share_judged']:.1%} "
              f"of the samples; stopped at the calibration sample: {r['stopped_at_calibration']:.1%}", flush=True)
    false_stop = out["reliable_at_threshold"]["stop_rate"]
    print(json.dumps({"metric": "judge calibration false-stop rate at kappa = threshold / alpha", "ratio": round(false_stop / c.alpha, 3),
                      "false_stop_rate": false_stop, "alpha": c.alpha, "threshold": c.threshold, "sample": c.sample,
                      "batch": c.batch, "looks": c.looks, "reps": args.reps, "items": 3 * args.items,
                      "random_stop_rate": out["random"]["stop_rate"], "random_share_judged": out["random"]["share_judged"],
                      "always_yes_stop_rate": out["always_yes"]["stop_rate"],
                      "naive_false_stop_rate": out["naive_at_threshold"]["stop_rate"],
                      "good_judge_stop_rate": out["reliable_0.8"]["stop_rate"], "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
