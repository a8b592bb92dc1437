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
from ..runs import find_runs, load_frame, load_runs, read_summary
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
