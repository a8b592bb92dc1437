"""The sequential gate over one run: evaluate in seeded random batches, stop once the verdict is known.

`plan` fixes the order once (seeded, whole clusters) and stores it in the run dir; the pipeline
evaluates batch after batch (`logs/batch-NNN/<alias>/`) and asks `status` after each whether to go
on. `scan` re-reads the finished batches in that order and finds the same stop again, so the gate
(`gate()`, also `harness regress` over a sequential run) and a resumed run recompute everything from
the logs: nothing but the order is stored, and a kill -9 loses at most the batch in flight.

The statistics are harness.stats.sequential_gate (an anytime-valid betting confidence sequence per
cell): a verdict read whenever the data decide keeps its error rate at alpha. Per cell the unit is an
item with its epochs averaged, or a cluster's mean of paired item differences; NaN (unscorable on
either side) counts as evaluated and is not used. Overall, as in the fixed gate: regression when
Holm over the gated cells' anytime-valid regression p-values (at the common stop) is <= alpha; pass
when every gated cell passes (intersection-union); otherwise go on, or inconclusive at the last batch.
The run stops as soon as the overall verdict is decided, which may be before every cell has stopped
(one regressing cell decides a regression) -- anytime p-values are valid at any stopping time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cache import write_json
from ..config import RegressConfig
from ..errors import HarnessError
from ..stats import adjust, confidence_sequence, sequential_gate

ORDER_FILE = Path("sequential") / "order.json"
Key = tuple[str, str]  # (task, id)


def check_sequential(s: RegressConfig, where: str = "regress") -> None:
    if not isinstance(s.batch, int) or s.batch < 1:
        raise HarnessError(f"{where}.batch must be a whole number of items >= 1, got {s.batch!r}")
    if not isinstance(s.max_items, int) or s.max_items < 1:
        raise HarnessError(f"{where}.max_items must be a whole number of items >= 1, got {s.max_items!r}")
    if not isinstance(s.seed, int):
        raise HarnessError(f"{where}.seed must be an integer, got {s.seed!r}")


def plan(items: Sequence[tuple[str, str, str]], s: RegressConfig, run_dir: Path | None = None) -> list[list[Key]]:
    """(task, id, cluster) of every evaluation item -> the batches, in the order they are evaluated.

    Units (an item, or every item of one cluster within a task) are shuffled with `s.seed`, then
    packed into batches of at least `s.batch` items, whole units only, up to `s.max_items` items
    (always at least one unit). The order is written to `run_dir`/sequential/order.json."""
    units: dict[Key, list[Key]] = {}
    for task, id_, cluster in items:
        units.setdefault((task, str(cluster or id_)), []).append((task, str(id_)))
    keys = sorted(units)
    order = [keys[i] for i in np.random.default_rng(s.seed).permutation(len(keys))]
    batches: list[list[Key]] = []
    cur: list[Key] = []
    total = 0
    for k in order:
        its = sorted(units[k])
        if total and total + len(its) > s.max_items:
            break
        cur += its
        total += len(its)
        if len(cur) >= s.batch:
            batches.append(cur)
            cur = []
    if cur:
        batches.append(cur)
    if run_dir is not None:
        write_json(run_dir / ORDER_FILE, {"seed": s.seed, "batch": s.batch, "max_items": s.max_items, "n_items": len(items),
                                          "n_units": len(keys), "batches": [[list(k) for k in b] for b in batches]})
    return batches


def read_plan(run_dir: Path) -> dict[str, Any] | None:
    f = run_dir / ORDER_FILE
    if not f.is_file():
        return None
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
        doc["batches"] = [[(str(t), str(i)) for t, i in b] for b in doc["batches"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise HarnessError(f"{f}: not a sequential order file ({type(e).__name__}); delete it and re-run the same "
                           "`harness run` command (finished batches are kept)") from None
    return doc


@dataclass
class Status:
    """The gate after `done` batches: `verdict` None = evaluate the next batch."""

    done: int
    n_batches: int
    verdict: str | None
    cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (task, grader) -> sequential_gate + extras
    items_used: int = 0
    items_max: int = 0

    @property
    def stopped(self) -> bool:
        return self.verdict is not None

    def line(self) -> str:
        cells = "; ".join(f"{t} · {g}: [{100 * c['lower']:+.1f}, {100 * c['upper']:+.1f}] pp"
                          + ("" if c["gated"] else " (not gated)") for (t, g), c in self.cells.items())
        state = self.verdict.upper() if self.verdict else "undecided, next batch"
        return f"batch {self.done}/{self.n_batches}, {self.items_used} of at most {self.items_max} items: {cells} -> {state}"


def _item_means(frame: pd.DataFrame, alias: str) -> pd.Series:
    """(task, grader, id) -> the item's score averaged over its epochs (NaN: unscorable)."""
    f = frame[frame["alias"] == alias]
    return f.groupby(["task", "grader", "id"], sort=False)["value"].mean()


def _units(batches: Sequence[Sequence[Key]], clusters: dict[Key, str], base: pd.Series, cand: pd.Series, task: str,
           grader: str) -> list[np.ndarray]:
    """Per batch, this cell's paired unit differences candidate - current, in the stored order: an
    item's, or the mean of a cluster's item differences (`plan` keeps a cluster in one batch)."""
    out = []
    for b in batches:
        groups: dict[str, list[float]] = {}
        for t, i in b:
            if t != task:
                continue
            diffs = groups.setdefault(clusters.get((t, i), i), [])
            x, y = base.get((t, grader, i), math.nan), cand.get((t, grader, i), math.nan)
            if not (math.isnan(x) or math.isnan(y)):
                diffs.append(y - x)
        out.append(np.array([float(np.mean(v)) if v else math.nan for v in groups.values()]))
    return out


def _present(batches: Sequence[Sequence[Key]], frame: pd.DataFrame, aliases: tuple[str, str]) -> int:
    """How many leading batches both models have answered (any score of any of the batch's items)."""
    have = [set(zip(frame.loc[frame["alias"] == a, "task"], frame.loc[frame["alias"] == a, "id"])) for a in aliases]
    n = 0
    for b in batches:
        if not all(any(k in h for k in b) for h in have):
            break
        n += 1
    return n


def status(frame: pd.DataFrame, batches: Sequence[Sequence[Key]], s: RegressConfig, done: int,
           gated: Callable[[str, str], bool] | None = None, bounds: bool = True, path: bool = False) -> Status:
    """The gate after the first `done` batches (`frame`: their scores, both models). `bounds`: each
    cell's bounds after all `done` batches (else at its own stop); `path`: also after every batch."""
    if gated is None:
        def gated(task: str, grader: str) -> bool:
            return (not s.tasks or task in s.tasks) and (not s.graders or grader in s.graders)
    f = frame.drop_duplicates(["task", "id"])
    clusters = {(t, str(i)): str(c) for t, i, c in f[["task", "id", "cluster"]].itertuples(index=False)}
    base, cand = _item_means(frame, s.baseline), _item_means(frame, s.candidate)
    sizes = np.cumsum([len(b) for b in batches])
    both = {(t, g) for t, g, _ in base.index} & {(t, g) for t, g, _ in cand.index}
    cells_idx = sorted(both, key=lambda k: (k[0] != "heldout", k))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for task, grader in cells_idx:
        d_batches = _units(batches, clusters, base, cand, task, grader)
        units_max = int(sum(b.size for b in d_batches))
        seen = d_batches[:done]
        r = sequential_gate(seen, s.margin, s.alpha, s.strict, max_items=units_max)
        d = np.concatenate(seen) if seen else np.zeros(0)
        r.update(gated=gated(task, grader), units_max=units_max)
        if bounds and d.size:  # the bounds now, past this cell's own stop (sequential_gate's end there)
            lower, upper = confidence_sequence(d, s.alpha, aim=(-s.margin, 0.0 if s.strict else -s.margin), warmup=r["warmup"])
            r.update(lower=float(lower[-1]), upper=float(upper[-1]))
        if path and d.size:
            ends = np.cumsum([b.size for b in seen])  # the bounds after every batch, to the common stop (past this cell's own)
            r["path"] = [{"items": int(sizes[i]), "units": int(e), "lower": round(float(lower[e - 1]), 6) if e else -1.0,
                          "upper": round(float(upper[e - 1]), 6) if e else 1.0} for i, e in enumerate(ends)]
        else:
            r.pop("path", None)
        cells[(task, grader)] = r
    verdict = _decide(cells, s, done, len(batches))
    return Status(done, len(batches), verdict, cells, int(sizes[done - 1]) if done else 0, int(sizes[-1]) if len(sizes) else 0)


def _decide(cells: dict[tuple[str, str], dict[str, Any]], s: RegressConfig, done: int, n_batches: int) -> str | None:
    gated = [c for c in cells.values() if c["gated"]]
    tol = s.alpha * (1 + 1e-9)  # p = exp(-log capital): "capital >= 1/alpha" without float noise
    for c, p in zip(gated, adjust([c["p_regression_now"] for c in gated], "holm")):
        c["p_regression_adjusted"] = p
    last = done >= n_batches
    for c in cells.values():
        c["pass_now"] = c["p_pass_now"] <= tol and (not s.strict or last)
        c["regression_now"] = c["p_regression_now"] <= tol
    if not gated:
        return "inconclusive" if last else None
    if any(c["p_regression_adjusted"] <= tol for c in gated):
        return "regression"
    if all(c["pass_now"] for c in gated):
        return "pass"
    return "inconclusive" if last else None


def scan(frame: pd.DataFrame, batches: Sequence[Sequence[Key]], s: RegressConfig,
         gated: Callable[[str, str], bool] | None = None) -> Status:
    """Replay the finished batches in order and stop where the run stopped (the first decided
    batch), or at the last batch both models have answered."""
    n = _present(batches, frame, (s.baseline, s.candidate))
    if n == 0:
        raise HarnessError("regress.sequential: no finished batch of both models in logs/batch-*; re-run the same "
                           "`harness run` command to evaluate them")
    keep_all = [set(b) for b in batches]
    for done in range(1, n + 1):
        keep = set().union(*keep_all[:done])
        sub = frame[[k in keep for k in zip(frame["task"], frame["id"])]]
        st = status(sub, batches, s, done, gated, bounds=False)
        if st.stopped or done == n:
            return status(sub, batches, s, done, gated, path=True)
    raise AssertionError("unreachable")


def batch_items(batches: Sequence[Sequence[Key]], done: int) -> set[Key]:
    return {k for b in batches[:done] for k in b}


METHOD = ("anytime-valid betting confidence sequence (Waudby-Smith & Ramdas 2023) per cell, read after every batch; "
          "regression: Holm over the cells' anytime-valid p-values at the stop")


def apply(result: dict[str, Any], st: Status, s: RegressConfig, doc: dict[str, Any]) -> None:
    """Replace the fixed-n verdicts of `result` (gate()'s) with the sequential gate's: after optional
    stopping only the anytime-valid bounds and p-values hold. Descriptive numbers (accuracies, d,
    discordant counts, flips) stay; `required_n`/`mde` stay as the fixed-n planning figures."""
    for row in result["cells"]:
        c = st.cells.get((row["task"], row["grader"]))
        if c is None:
            continue
        row.update(lower=round(c["lower"], 6), upper=round(c["upper"], 6), p_noninferior=round(c["p_pass_now"], 6),
                   p_regression=round(c["p_regression_now"], 6), method="anytime-valid betting confidence sequence")
        row["cell_verdict_unadjusted"] = "regression" if c["regression_now"] else "pass" if c["pass_now"] else "inconclusive"
        if row["gated"]:
            row["p_regression_adjusted"] = round(c["p_regression_adjusted"], 6)
            tol = s.alpha * (1 + 1e-9)
            row["verdict"] = "regression" if c["p_regression_adjusted"] <= tol else "pass" if c["pass_now"] else "inconclusive"
        else:
            row.pop("p_regression_adjusted", None)
    verdict = st.verdict or "inconclusive"
    result["verdict"] = verdict
    result["exit_code"] = {"pass": 0, "regression": 3, "inconclusive": 4}[verdict]
    if verdict == "inconclusive" and s.inconclusive == "pass":
        result["exit_code"] = 0
    n_gated = sum(1 for r in result["cells"] if r["gated"])
    result["correction"] = (f"holm over {n_gated} anytime-valid regression p-values at the stop "
                            "(pass: intersection-union, no adjustment)")
    total = int(doc.get("n_items") or st.items_max)
    if st.verdict is None and doc.get("source") == "logs":  # --sequential over logs still being written
        reason = "run ended"
        result["warnings"].append(f"sequential: undecided after {st.done} of {st.n_batches} batches ({st.items_used} items in both "
                                  "logs so far); re-run `harness regress --sequential` as more samples arrive")
    elif st.verdict is None:  # gated with other settings than the run's own, or an unfinished run
        reason = "run ended"
        result["warnings"].append(f"sequential: undecided after the {st.done} of {st.n_batches} batches the run evaluated (it "
                                  "stopped there under its own gate settings, or was interrupted); `harness run` with these "
                                  "settings evaluates more")
    else:
        reason = "decided" if st.verdict != "inconclusive" else "max_items" if st.items_max < total else "all items"
    result["sequential"] = {
        "items_used": st.items_used, "items_max": st.items_max, "items_saved": max(0, st.items_max - st.items_used),
        "items_total": int(total), "batches_used": st.done, "batches_planned": st.n_batches,
        "batch": int(doc.get("batch", s.batch)), "max_items": int(doc.get("max_items", s.max_items)),
        "seed": int(doc.get("seed", s.seed)), "stopped": reason, "method": METHOD,
        "cells": [{"task": t, "grader": g, "gated": c["gated"], "units_used": int(c["path"][-1]["units"]) if c.get("path") else 0,
                   "units_max": c["units_max"], "own_verdict": c["verdict"], "own_stop_units": c["items_used"] if c["verdict"] else None,
                   "warmup": int(c["warmup"]), "path": c.get("path", [])}
                  for (t, g), c in st.cells.items()],
    }


def plot_path(seq: dict[str, Any], margin: float, strict: bool) -> str:
    """The confidence sequences of the cells against the items evaluated, with the -margin line
    (a PNG data: URI)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    cells = [c for c in seq["cells"] if c["path"]]
    fig, axes = plt.subplots(1, max(1, len(cells)), figsize=(4.2 * max(1, len(cells)), 3.2), sharey=True, squeeze=False)
    for ax, c in zip(axes[0], cells):
        xs = [0] + [p["items"] for p in c["path"]]  # before any item: the trivial bounds
        lo = [-100.0] + [100 * p["lower"] for p in c["path"]]
        hi = [100.0] + [100 * p["upper"] for p in c["path"]]
        ax.fill_between(xs, lo, hi, alpha=0.2, color="C0")
        ax.plot(xs, lo, color="C0", marker="o", markersize=3, label="lower bound")
        ax.plot(xs, hi, color="C0", marker="o", markersize=3, linestyle="--", label="upper bound")
        ax.axhline(-100 * margin, color="C3", linewidth=1.2, label="−margin")
        if strict:
            ax.axhline(0, color="C1", linewidth=1, linestyle=":", label="0 (strict)")
        ax.set_xlim(0, max(seq["items_max"], xs[-1]))
        ax.set_title(f"{c['task']} · {c['grader']}" + ("" if c["gated"] else " (not gated)"), fontsize=10)
        ax.set_xlabel("items evaluated")
    axes[0][0].set_ylabel("candidate − current (pp)")
    axes[0][0].set_ylim(-100, 100)
    axes[0][0].legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
