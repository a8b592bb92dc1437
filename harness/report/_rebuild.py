"""`harness report DIR [DIR ...]`: rebuild reports from finished runs' logs alone (no model is called).

One run dir: its summary.json, report.md and report.html are rewritten (or written to --out).
Several run dirs, or a sweep dir holding several runs: one combined report (see _sweep.py) in
--out, by default the sweep dir itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..cache import write_json, write_text
from ..config import ReportConfig
from ..errors import HarnessError
from ._frame import load_frame
from ._html import render_html
from ._judge import calibration_table, pairwise_table
from ._summary import analyse, model_order, render_markdown
from ._usage import run_usage
from ._sweep import analyse_sweep, find_runs, load_runs, read_summary, render_sweep_html, render_sweep_markdown


def report_config(summary: dict) -> ReportConfig:
    """The run's own report settings (alpha, correction, extra pairs), so a rebuild matches the run."""
    rc = (summary.get("config") or {}).get("report") or {}
    return ReportConfig(**{k: v for k, v in rc.items() if k in ReportConfig.__dataclass_fields__})


def rebuild(run_dir: Path, out: Path | None = None) -> Path:
    summary = read_summary(run_dir)
    frame = load_frame(run_dir / "logs")
    if frame.empty:
        raise HarnessError(f"{run_dir / 'logs'}: no finished inspect logs; re-run the experiment to finish it")
    students = summary.get("students") or ["student"]  # summaries before model grids had one student
    summary.update(analyse(frame, report_config(summary), students))
    summary["pairwise"] = pairwise_table(run_dir / "judge")
    summary.update(run_usage(run_dir, summary.get("config") or {}))
    graders = (summary.get("config") or {}).get("graders") or {}
    summary["judge_calibration"] = calibration_table(frame, {n: g["calibration"] for n, g in graders.items() if g.get("calibration")})
    out = out or run_dir
    write_json(out / "summary.json", summary)
    order = model_order(list(summary["models"]), students)
    write_text(out / "report.md", render_markdown(summary, order))
    write_text(out / "report.html", render_html(summary, order))
    return out / "report.md"


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
    s = analyse_sweep(runs, report_config(runs[0].summary))
    write_json(out / "sweep.json", s)
    write_text(out / "report.md", render_sweep_markdown(s))
    write_text(out / "report.html", render_sweep_html(s))
    return out / "report.md"
