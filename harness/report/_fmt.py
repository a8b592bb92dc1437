"""Formatting shared by the markdown, HTML and data-card renderers."""

from __future__ import annotations

# markdown syntax a value could carry into report.md: emphasis, code spans, table cells, links and
# images ("[x](javascript:...)", "![x](...)"), and the backslash itself: unescaped, a "\\" in the text
# would pair with the backslash we put before "*" and leave the "*" live. (Not for use inside a code
# span, where a renderer shows these backslashes.)
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_|[]"})


def md(text: str, width: int = 90) -> str:
    """Model output and user data are untrusted: one line, table- and HTML-safe, no live markdown
    (emphasis, code, links), truncated. A renderer shows exactly the text (whitespace collapsed)."""
    t = " ".join(str(text).split())
    t = t[:width] + ("…" if len(t) > width else "")
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").translate(_MD_SPECIAL)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"
