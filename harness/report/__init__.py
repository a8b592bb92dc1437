"""Stage 5, report: logs -> tidy frame -> summary.json + report.md."""

from ._frame import load_frame
from ._html import render_html
from ._summary import SCHEMA_VERSION, analyse, category_table, model_order, comparison_table, flip_table, gap_table, render_markdown, score_table

__all__ = ["SCHEMA_VERSION", "analyse", "category_table", "comparison_table", "flip_table", "gap_table", "load_frame", "model_order", "render_html", "render_markdown", "score_table"]
