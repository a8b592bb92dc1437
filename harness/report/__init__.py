"""Stage 5, report: a finished run's logs -> summary.json, report.md, report.html; several runs -> a sweep report."""

from ._analysis import (
    SCHEMA_VERSION,
    analyse,
    category_table,
    comparison_table,
    flip_table,
    gap_table,
    model_order,
    score_table,
)
from ._build import build_summary, report_config
from ._fmt import md as md_escape
from ._fmt import prose_html
from ._graders import choice_contrasts, degenerate_cells, excluded_reason
from ._html import render_html
from ._judge import read_labels
from ._markdown import render_markdown
from ._rebuild import rebuild, report

__all__ = ["SCHEMA_VERSION", "analyse", "build_summary", "category_table", "choice_contrasts", "comparison_table", "degenerate_cells",
           "excluded_reason", "flip_table", "gap_table",
           "md_escape", "model_order", "prose_html", "read_labels", "rebuild", "render_html", "render_markdown", "report", "report_config",
           "score_table"]
