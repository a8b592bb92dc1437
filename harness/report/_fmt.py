"""Formatting shared by the markdown, HTML and data-card renderers."""

from __future__ import annotations

import re
from typing import Any

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


_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")


def prose_html(text: str) -> Any:
    """The harness's own sentences (verdicts, the gate's headline, notes, warnings) for report.html:
    written once in markdown's inline syntax for report.md and regress.md, so here `x` becomes
    <code>x</code> and **x** <strong>x</strong>. The text is HTML-escaped first (it quotes aliases,
    labels and paths), so nothing in it can become a tag, an attribute or a link; markdown links are
    never written by the harness and stay text."""
    from markupsafe import Markup, escape

    t = str(escape(text))
    t = _CODE.sub(r"<code>\1</code>", t)
    return Markup(_STRONG.sub(r"<strong>\1</strong>", t))
