"""Formatting shared by the markdown, HTML and data-card renderers."""

from __future__ import annotations


def md(text: str, width: int = 90) -> str:
    """Model output is untrusted: one line, table- and HTML-safe, truncated."""
    t = " ".join(str(text).split())
    t = t[:width] + ("…" if len(t) > width else "")
    return (t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace("|", "\\|").replace("`", "\\`").replace("*", "\\*").replace("_", "\\_"))


def pct(x: float) -> str:
    return f"{100 * x:.1f}"
