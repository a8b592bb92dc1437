"""Write the gate's result: regress.json (docs/regress.md, docs/regress.schema.json), regress.md,
and its section in the run's report.html. Each file is written to a temp file, then renamed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cache import write_json, write_text
from ..runs import read_summary
from ._render import html_section, markdown, table


def write_gate(result: dict[str, Any], out: Path) -> str:
    """Write regress.json and regress.md into `out`; when `out` is a finished run dir, its
    report.html gets the gate's section at the top. Returns the table to print."""
    from ..report import model_order, render_html
    from ..runs import run_students

    write_json(out / "regress.json", result)
    write_text(out / "regress.md", markdown(result))
    if (out / "summary.json").is_file():
        summary = read_summary(out)
        order = model_order(list(summary.get("models") or {}), run_students(summary))
        write_text(out / "report.html", render_html(summary, order, sections=[html_section(result)]))
    return table(result)
