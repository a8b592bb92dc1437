"""`harness report DIR [DIR ...]`: rebuild reports from finished runs' logs alone (no model is called).

One run dir: its summary.json, report.md and report.html are rewritten (or written to --out).
Several run dirs, or a sweep dir holding several runs: one combined report (see _sweep.py) in
--out, by default the sweep dir itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..cache import write_json, write_text
from ..errors import HarnessError
from ..runs import find_runs, is_run_dir, load_frame, load_runs, open_source, read_summary, same_items
from ..sources import kind_of
from ._build import build_summary, report_config
from ._sweep import analyse_sweep, render_sweep_html, render_sweep_markdown


def rebuild(run_dir: Path, out: Path | None = None) -> Path:
    summary = read_summary(run_dir)
    frame = load_frame(run_dir / "logs")
    if frame.empty:
        raise HarnessError(f"{run_dir / 'logs'}: no finished inspect logs; re-run the experiment to finish it")
    build_summary(run_dir, summary, frame, out)
    return (out or run_dir) / "report.md"


def report(paths: list[Path], out: Path | None = None) -> Path:
    if any(_foreign(p) for p in paths):
        return report_sources(paths, out)
    finished, unfinished = find_runs(paths)
    for d in unfinished:
        print(f"[report] skipping {d}: not finished (no summary.json)", file=sys.stderr)
    if len(finished) == 1:
        return rebuild(finished[0], out)
    if out is None:
        if len(paths) != 1:
            raise HarnessError("several run dirs: pass --out DIR for the combined report")
        out = paths[0]
    runs = load_runs(finished)
    s = analyse_sweep(runs, report_config(runs[0].summary.get("config") or {}))
    write_json(out / "sweep.json", s)
    write_text(out / "report.md", render_sweep_markdown(s))
    write_text(out / "report.html", render_sweep_html(s))
    return out / "report.md"


def _foreign(p: Path) -> bool:
    """A foreign evaluation (an inspect log or log dir, an lm-eval output), or a file that is not
    one (open_source names it); not a run dir, a dir of run dirs (a sweep) or a dir holding nothing
    (find_runs names those)."""
    if is_run_dir(p) or (p.is_dir() and any(next(p.glob(pat), None) is not None
                                             for pat in ("*/.hydra", "*/*/.hydra", "*/summary.json", "*/*/summary.json"))):
        return False
    return p.is_file() or kind_of(p) is not None


def report_sources(paths: list[Path], out: Path | None = None) -> Path:
    """One report over foreign evaluations (and run dirs): inspect logs or log dirs, lm-eval outputs.
    Every model of every source is one column; all are evaluated on the same items (or it fails in one
    line naming the two sources); the comparisons are every pair of models, as in an evaluation-only
    run. Written to `out`, by default the current directory (never beside a foreign log: that dir is
    the user's, or inspect's log dir)."""
    import pandas as pd

    sources = [open_source(p) for p in paths]
    frames = [s.frame for s in sources]
    empty = [s.path for s, f in zip(sources, frames) if f.empty]
    if empty:
        raise HarnessError(f"{empty[0]}: no finished inspect logs; finish that evaluation first")
    seen: dict[str, int] = {}
    for f in frames:
        for a in f["alias"].unique():
            seen[a] = seen.get(a, 0) + 1
    labelled, models, notes = [], {}, {}
    for src, f in zip(sources, frames):
        f = f.copy()
        # the same model in two sources (an old and a new log of `hf/local`): told apart by the source's name
        f["alias"] = [a if seen[a] == 1 else f"{a}[{src.path.name}]" for a in f["alias"]]
        for label, model in f.drop_duplicates("alias")[["alias", "model"]].itertuples(index=False):
            models[label], notes[label] = model, f"{src.kind}: {src.path}"
        labelled.append(f)
    by_source = {str(s.path): f for s, f in zip(sources, labelled)}
    same_items(by_source, {str(s.path): s.path for s in sources})
    frame = pd.concat(labelled, ignore_index=True)
    items = frame.drop_duplicates(["task", "id"])
    by_task = {str(t): int(n) for t, n in items["task"].value_counts().sort_index().items()}
    facts = {
        "experiment": "logs", "run": ", ".join(str(p) for p in paths), "models": models, "students": [], "model_notes": notes,
        "judge_notes": [],
        "data": {"n_train": 0, "n_eval": len(items), "n_eval_by_task": by_task},
        "finetune": None, "finetunes": {}, "stage_seconds": {}, "stage_calls": {}, "model_calls": {},
        "paths": {"logs": " ".join(str(p) for p in paths), "student": None, "data": None, "students": {}},
        "sources": [{"path": str(s.path), "kind": s.kind, "files": (s.summary.get("source") or {}).get("files", [])} for s in sources],
        "config": {},
    }
    out = out or Path.cwd()
    build_summary(None, facts, frame, out)
    return out / "report.md"
