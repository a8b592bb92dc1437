"""report.html renders the harness's own sentences as HTML, never as leftover markdown.

The verdicts, the gate's headline, notes and warnings are written once in markdown's inline syntax
(for report.md and regress.md): in report.html a `code span` is a <code> element and **bold** a
<strong> one, and the text around them is escaped. A real run's report.html with the gate's section
is checked in tests/test_markup.py::test_report_html_shows_the_harness_text_as_html.
"""

from html.parser import HTMLParser

from harness.report import prose_html


class Text(HTMLParser):
    """A page as a reader sees it: the text of every element (with the elements it sits in), by id."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.runs: list[tuple[tuple[str, ...], str]] = []  # (enclosing tags, text)
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in ("img", "meta", "br"):
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if data.strip():
            self.runs.append((tuple(t for t, _ in self.stack), data))

    def text(self, outside: str = "code") -> str:
        """All text but that inside `outside` elements, and the page's CSS."""
        return " ".join(d for tags, d in self.runs if outside not in tags and "style" not in tags)

    def inside(self, tag: str) -> list[str]:
        return [d for tags, d in self.runs if tags and tags[-1] == tag]


def test_prose_html_escapes_then_renders_code_and_bold():
    h = str(prose_html("candidate `new<b>` vs **current & co** [l](javascript:alert(1)) <script>x</script>"))
    assert h == ("candidate <code>new&lt;b&gt;</code> vs <strong>current &amp; co</strong> [l](javascript:alert(1)) "
                 "&lt;script&gt;x&lt;/script&gt;")
    assert str(prose_html("no markup: 5 * 3 `unclosed")) == "no markup: 5 * 3 `unclosed"


def _gate(headline: str) -> dict:
    """A gate result as regress.json holds it, with no cells (the section's sentences are what is tested)."""
    return {"verdict": "regression", "headline": headline, "settings": {"margin": 0.05, "strict": False, "alpha": 0.05},
            "cells": [], "flips": [], "warnings": ["--allow-subset: compared on the `4` items both runs share"]}


def test_run_report_and_gate_section_have_no_markdown_left():
    from harness.regress._render import headline, html_section
    from harness.report import render_html

    g = _gate("")
    g["baseline"], g["candidate"] = {"alias": "current", "model": "hf/a"}, {"alias": "candidate", "model": "hf/b"}
    g["items"] = {"n_compared": 4}
    g["headline"] = headline(g)  # the real sentence: "REGRESSION — candidate `candidate` (hf/b) vs current `current` (hf/a): ."
    assert "`candidate`" in g["headline"] and "`current`" in g["headline"]
    summary = {"experiment": "t", "run": "r", "models": {"current": "hf/a", "candidate": "hf/b"}, "model_notes": {},
               "scores": [], "comparisons": [], "gap_closed": [], "flips": [], "regress": {"headline": g["headline"]},
               "usage": {"current": {"calls": 4, "cost_usd": 0.0, "input_tokens": 1, "output_tokens": 1, "latency_p50_s": 0.1,
                                   "latency_p95_s": 0.2}},
               "stage_seconds": {"data": 0.1}, "stage_calls": {}, "paths": {"logs": "logs"}}
    page = Text(render_html(summary, ["current", "candidate"], sections=[html_section(g)]))
    assert "`" not in page.text() and "**" not in page.text(), page.text()
    # the aliases the markdown quoted are code: in the verdict, in the gate's headline; the notes' terms too
    assert page.inside("code").count("candidate") == 2 and page.inside("code").count("current") == 2
    assert {"required n", "judge", "4"} <= set(page.inside("code"))  # the gate's note, the usage note, a warning


def test_sweep_report_has_no_markdown_left():
    from harness.report._sweep import render_sweep_html

    s = {"experiment": "demo", "swept": ["finetune.lr"], "alpha": 0.05, "gap_closed": [],
         "runs": [{"setting": "finetune.lr=0.001", "overrides": {"finetune.lr": "0.001"}, "dir": "/r/x", "labels": {"student": "student"},
                   "students": ["student"]}],
         "scores": [], "comparisons": [],
         "usage": [{"setting": "finetune.lr=0.001", "model": "student", "calls": 1, "sent": 1, "input_tokens": 2, "output_tokens": 3,
                    "cost_usd": 0.0}]}
    page = Text(render_sweep_html(s))
    assert "`" not in page.text() and "sent" in page.inside("code")
