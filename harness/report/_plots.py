"""The report's plots (matplotlib + seaborn, drawn off-screen and embedded as data: URIs)."""

from __future__ import annotations

import base64
import io
from typing import Any


def png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def cached_plot(summary: dict[str, Any], plot: Any, *args: Any) -> str:
    """`plot(*args)`, re-used from the run's cache dir when the same plot of the same numbers was
    drawn before by the same code (a warm re-run: matplotlib and seaborn alone take seconds)."""
    import importlib.metadata as md
    import sys
    from pathlib import Path

    from ..cache import file_digest, memo_text

    c = summary.get("config") or {}
    cache_dir = Path(c["cache_dir"]) if c.get("cache_dir") else None
    key = {"plot": plot.__qualname__, "code": file_digest(Path(sys.modules[plot.__module__].__file__ or "")),
           "versions": [md.version("matplotlib"), md.version("seaborn")], "args": args}
    return memo_text(cache_dir, "plots", key, lambda: plot(*args), use_cache=c.get("cache", True))


def plot_scores(scores: list[dict[str, Any]], order: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    keys = sorted({(r["task"], r["grader"]) for r in scores}, key=lambda k: (k[0] != "heldout", k))
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 3.2), sharey=True, squeeze=False)
    palette = sns.color_palette("colorblind", len(order))
    for ax, (t, g) in zip(axes[0], keys):
        rows = {r["model"]: r for r in scores if (r["task"], r["grader"]) == (t, g)}
        xs = [a for a in order if a in rows]
        acc = [100 * rows[a]["accuracy"] for a in xs]
        err = [[100 * (rows[a]["accuracy"] - rows[a]["ci_low"]) for a in xs], [100 * (rows[a]["ci_high"] - rows[a]["accuracy"]) for a in xs]]
        ax.bar(xs, acc, color=palette[: len(xs)], yerr=err, capsize=4)
        ax.set_title(f"{t} · {g}", fontsize=10)
        ax.set_ylim(0, 100)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0][0].set_ylabel("accuracy % (95 % CI)")
    return png(fig)


def plot_forest(comps: list[dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    rows = sorted(comps, key=lambda c: (c["task"] != "heldout", c["task"], c["grader"]))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1))
    for i, c in enumerate(rows):
        color = "#0072B2" if c["significant"] else "#999999"
        ax.errorbar(100 * c["diff"], i, xerr=[[100 * (c["diff"] - c["ci_low"])], [100 * (c["ci_high"] - c["diff"])]],
                    fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{c['task']} · {c['grader']} · {c['a']} − {c['b']}" for c in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"paired difference, pp (CI; blue = significant after {rows[0]['correction'].split()[0]})")
    return png(fig)
