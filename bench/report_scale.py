"""Stats + report at scale: synthetic tidy rows (models x tasks x items), timed end to end.

Builds the frame `load_frame` would produce (10 models x 10 tasks x 10k items = 1M rows by
default), then times `analyse` (scores, comparisons, gap closed, categories, flips, judge checks:
what every run's summary does, epochs averaged per item once) + report.md + report.html, and
measures peak memory. Baseline: a plain pandas groupby-mean over the
same rows, timed in the same run.

Run: .venv/bin/python bench/report_scale.py [--rows 1000000]
Last line: one JSON object with seconds, peak_mb and ratio (= seconds / baseline seconds).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.report import analyse, render_html, render_markdown  # noqa: E402


def frame(rows: int, models: int = 10, tasks: int = 10) -> pd.DataFrame:
    items = rows // (models * tasks)
    rng = np.random.default_rng(0)
    aliases = ["teacher", "baseline", "student"] + [f"m{k}" for k in range(models - 3)]
    skill = np.linspace(0.3, 0.9, models)
    m = np.repeat(np.arange(models), tasks * items)
    t = np.tile(np.repeat(np.arange(tasks), items), models)
    i = np.tile(np.arange(items), models * tasks)
    value = (rng.random(m.size) < skill[m]).astype(float)
    return pd.DataFrame({
        "alias": pd.Categorical.from_codes(m, aliases), "model": pd.Categorical.from_codes(m, aliases),
        "task": pd.Categorical.from_codes(t, [f"task{k}" for k in range(tasks)]), "grader": "exact",
        "id": pd.Categorical.from_codes(i, [f"q{k}" for k in range(items)]), "epoch": 1, "value": value,
        "group": pd.Categorical.from_codes(i % 5, [f"g{k}" for k in range(5)]), "answer": "", "extracted": "", "target": "",
        "cluster": pd.Categorical.from_codes(i, [f"q{k}" for k in range(items)]), "judge": "",
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    f = frame(args.rows)
    for col in ("alias", "task", "id", "group", "cluster"):
        f[col] = f[col].astype(str)  # what load_frame produces: plain strings
    # imports are a fixed cost per process, not a cost per row: load them before either clock starts
    import matplotlib.pyplot  # noqa: F401
    import scipy.stats  # noqa: F401
    import seaborn  # noqa: F401
    import statsmodels.api  # noqa: F401

    t0 = time.time()
    base = f.groupby(["task", "alias", "grader"])["value"].mean()
    baseline_s = time.time() - t0
    assert base.size == 100

    t0 = time.time()
    summary = {"experiment": "bench", "run": "scale", "models": {a: a for a in f["alias"].unique()}, "model_notes": {},
               **analyse(f), "data": None,
               "stage_seconds": {}, "stage_calls": {}, "paths": {"logs": "-", "student": "-"}, "finetune": {}}
    order = list(summary["models"])
    md = render_markdown({**summary, "data": {"n_train": 0, "n_eval": 0, "n_eval_by_task": {}, "leak_overlap_rate": 0}}, order)
    html = render_html(summary, order)
    seconds = time.time() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(f):,} rows: stats + report {seconds:.2f} s (pandas groupby-mean {baseline_s:.3f} s), "
          f"peak RSS {peak_mb:.0f} MB; {len(summary['comparisons'])} comparisons, report.md {len(md):,} B, report.html {len(html):,} B")
    print(json.dumps({"rows": len(f), "seconds": round(seconds, 3), "baseline_seconds": round(baseline_s, 4),
                      "peak_mb": round(peak_mb, 1), "ratio": round(seconds / baseline_s, 1)}))


if __name__ == "__main__":
    main()
