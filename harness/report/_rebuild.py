"""`harness report RUN_DIR`: rebuild the scores and report of a finished run from its logs alone
(no model is called)."""

from __future__ import annotations

import json
from pathlib import Path

from ..cache import write_json, write_text
from ..errors import HarnessError
from ._frame import load_frame
from ._html import render_html
from ._summary import analyse, model_order, render_markdown


def rebuild(run_dir: Path, out: Path | None = None) -> Path:
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file() and any(run_dir.glob("*/summary.json")):  # a --multirun dir: compare its jobs
        from ._sweep import sweep_report

        return sweep_report(run_dir, out)
    if not summary_file.is_file():
        raise HarnessError(f"{run_dir}: no summary.json, not a finished run dir; run `harness run` first")
    try:
        summary = json.loads(summary_file.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{summary_file}: not valid JSON ({e.msg} at line {e.lineno}); re-run the experiment") from None
    frame = load_frame(run_dir / "logs")
    if frame.empty:
        raise HarnessError(f"{run_dir / 'logs'}: no finished inspect logs; re-run the experiment to finish it")
    summary.update(analyse(frame))
    out = out or run_dir
    write_json(out / "summary.json", summary)
    order = model_order(list(summary["models"]))
    write_text(out / "report.md", render_markdown(summary, order))
    write_text(out / "report.html", render_html(summary, order))
    return out / "report.md"
