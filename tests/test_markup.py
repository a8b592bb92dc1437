"""Markup in a user's data, through the whole run: group labels, questions, ids and gold answers full
of HTML, markdown and table syntax go through the real CLI (an evaluation-only run on the embedded
model, the gate on) into report.html and report.md. What a reader sees there must be the text as
written, never live markup: no script, no event handler, no link or image from the data, no broken
table. The model's answers (untrusted output) are held to the same rule."""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

G1 = "<script>alert(1)</script>"
G2 = "<img src=x onerror=alert(1)> | pipes | **bold**"
G3 = "[link](javascript:alert(1)) `tick`\nnew \\| line"
# Gold answers whose markup normalises away ("**Marenth**" grades as "marenth"), so the model that sees
# the passage gets them right and the one without it does not: they reach the reports' flip lists.
ROWS = [
    {"id": "q1", "group": G1, "question": "<script>alert(1)</script> What is the capital of Drelos?",
     "passage": "The capital of Drelos is Marenth.", "answer": "**Marenth**"},
    {"id": "q2", "group": G1, "question": "<img src=x onerror=alert(1)>\nWhich river runs through Lorn?",
     "passage": "The river Vell runs through Lorn.", "answer": "`Vell`"},
    {"id": "q3", "group": G2, "question": "What does Tarn export? | pipes | **bold**",
     "passage": "Tarn exports <b>copper</b> | and | tin.", "answer": "Copper |"},
    {"id": "q4<img src=x onerror=alert(4)>", "group": G2, "question": "[link](javascript:alert(1)) Who founded Kell?",
     "passage": "Kell was founded by Ada.", "answer": "[Ada](<>)"},
    {"id": "q5", "group": G3, "question": "Which island is the highest? `rm -rf` \\| back\\slash",
     "passage": "The highest island is Orsk.", "answer": "Orsk<!---->"},
    {"id": "q6", "group": G3, "question": "What colour is the flag of Pell?",
     "passage": "The flag of Pell is <i>green</i>.", "answer": "<script>alert(6)</script>"},
]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def shown(text: str, width: int) -> str:
    """What report.md shows of a value: one line, cut at `width` characters."""
    t = one_line(text)
    return t[:width] + ("…" if len(t) > width else "")


@pytest.fixture(scope="module")
def markup_run(module_tmp):
    d = module_tmp("markup")
    (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    results = d / "results"
    # this checkout's harness (the venv's `harness` script may be another checkout's editable install)
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "experiment=upgrade", "data=jsonl", f"data.eval_path={d / 'eval.jsonl'}",
                        "data.n_control=0", "eval.tasks=[heldout]", "eval.max_tokens=24", "models.current.context=true",
                        f"results_dir={results}"], capture_output=True, text=True, timeout=1500, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    # the gate decides on 6 items: pass, regression or inconclusive are all fine here, a failure is not
    assert p.returncode in (0, 3, 4) and "Traceback" not in p.stderr, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = next(x for x in (results / "upgrade").iterdir() if (x / "summary.json").is_file())
    return run_dir, json.loads((run_dir / "summary.json").read_text())


# ------------------------------------------------------------------------------------------- HTML


class Page(HTMLParser):
    """Every element, attribute and comment of a page, and the text of each table's cells by table id."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(one_line("".join(self._cell)))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_comment(self, data):
        self.comments.append(data)


def test_report_html_has_no_live_markup_from_the_data(markup_run):
    run_dir, s = markup_run
    page = Page((run_dir / "report.html").read_text())
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "iframe", "object", "embed", "b", "i"}, tags
    handlers = [(t, a) for t, attrs in page.tags for a in attrs if a.lower().startswith("on")]
    assert not handlers, handlers
    assert all(attrs.get("src", "").startswith("data:image/") for t, attrs in page.tags if t == "img")  # the embedded plots only
    assert not [attrs for t, attrs in page.tags if t == "a"]  # the data's [link](javascript:...) is no link
    assert not page.comments  # "Orsk<!---->" stays text
    # ... and the text is there, as written: the data card's groups, the flip list's ids, golds and answers
    groups = {row[0] for row in page.tables["data-groups"][1:]}
    assert groups == {one_line(g) for g in (G1, G2, G3)}, groups
    assert s["flips"], "no item flipped: the gold answers never reached the report"
    flips = page.tables["flips"][1:]
    expect = [[one_line(f[k]) for k in ("id", "target", "answer_a", "answer_b")] for f in s["flips"]]
    assert [row[4:8] for row in flips] == expect


# --------------------------------------------------------------------------------------- markdown


def cells(line: str) -> list[str]:
    """A GFM table row's cells as GitHub (cmark-gfm) and markdown-it split it: at every pipe not preceded by
    a backslash; the outer pipes open and close the row."""
    parts, cur, prev = [], "", ""
    for ch in line.strip():
        if ch == "|" and prev != "\\":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        prev = ch
    parts.append(cur)
    return [c.strip() for c in parts[1:-1]]


def tables(md: str) -> list[list[str]]:
    """The markdown tables of a document, each as its lines."""
    out, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


def render(md: str) -> tuple[Page, list]:
    """A markdown document as a reader sees it: rendered by markdown-it (CommonMark + GFM tables, raw HTML
    passed through as CommonMark does) with every link target allowed, so that a link the escaping
    missed shows up as one; and its token stream."""
    from markdown_it import MarkdownIt

    mdit = MarkdownIt("commonmark").enable("table")
    mdit.validateLink = lambda url: True
    return Page(mdit.render(md)), mdit.parse(md)


def table_with(page: Page, header_cell: str) -> list[list[str]]:
    (rows,) = [rows for rows in page.tables.values() if rows and header_cell in rows[0]]
    return rows


def test_report_md_tables_are_whole_and_the_data_is_text(markup_run):
    run_dir, s = markup_run
    for name in ("report.md", "regress.md"):
        md = (run_dir / name).read_text()
        for table in tables(md):
            header = cells(table[0])
            assert re.fullmatch(r"\|(-+\|)+", table[1]), table[1]
            for row in table[2:]:
                assert len(cells(row)) == len(header), (name, header, row)
        page, tokens = render(md)
        # no raw HTML reaches a markdown renderer, no link or image (the data's [link](javascript:...))
        html = [t.content for t in tokens if t.type == "html_block"]
        html += [c.content for t in tokens for c in (t.children or []) if c.type == "html_inline"]
        assert not html, html
        assert not [t for t in page.tags if t[0] in ("a", "img", "script")], page.tags
    # what the reader sees in a cell is the text as written (whitespace collapsed, cut at the column's
    # width): no emphasis, code span or lost backslash made of it
    page, _ = render((run_dir / "report.md").read_text())
    # one category table per task x grader (report._graders.category_blocks), each listing every group
    categories = [rows for rows in page.tables.values() if rows and "category" in rows[0]]
    assert categories
    for category in categories:
        col = category[0].index("category")
        assert {row[col] for row in category[1:]} == {shown(g, 60) for g in (G1, G2, G3)}
    card = table_with(page, "group")  # the data card's questions per group
    assert {row[0] for row in card[1:]} == {shown(g, 40) for g in (G1, G2, G3)}
    assert s["flips"], "no item flipped: the gold answers never reached the report"
    flips = table_with(page, "b's answer")
    expect = [[shown(f["id"], 40), shown(f["target"], 30), shown(f["answer_a"], 90), shown(f["answer_b"], 90)]
              for f in s["flips"]]
    assert [row[4:8] for row in flips[1:]] == expect


def test_the_data_reached_the_model_unchanged(markup_run):
    """The markup is escaped where it is shown, not stripped on the way in: the model was asked the
    question as written (markup, pipes and newline included)."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    run_dir, _ = markup_run
    (log,) = [read_eval_log(i) for i in list_eval_logs(str(run_dir / "logs" / "candidate"))]
    asked = [x.input if isinstance(x.input, str) else x.input[-1].text for x in log.samples]
    assert len(asked) == len(ROWS)
    for r in ROWS:
        assert any(r["question"] in a for a in asked), (r["question"], asked)
    assert {str(x.id) for x in log.samples} == {r["id"] for r in ROWS}  # the ids too, markup and all


class Prose(HTMLParser):
    """The harness's own sentences on a page: the verdict, the gate's headline, notes and warnings
    (each <p> inside #verdict, and every p.verdict / p.note / p.warn), each as its (in <code>?, text) runs."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[tuple[bool, str]]] = []
        self._in_verdict = self._in_code = False
        self._block: list[tuple[bool, str]] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and a.get("id") == "verdict":
            self._in_verdict = True
        elif tag == "p" and (self._in_verdict or set((a.get("class") or "").split()) & {"verdict", "note", "warn"}):
            self._block = []
            self.blocks.append(self._block)
        elif tag == "code":
            self._in_code = True

    def handle_endtag(self, tag):
        if tag == "p":
            self._block = None
        elif tag == "div":
            self._in_verdict = False
        elif tag == "code":
            self._in_code = False

    def handle_data(self, data):
        if self._block is not None:
            self._block.append((self._in_code, data))


def test_report_html_shows_the_harness_text_as_html(markup_run):
    """The gate's headline, the verdicts and the notes are written in markdown's inline syntax for
    report.md; report.html shows them as HTML (the aliases in <code>), no backtick or ** left over."""
    run_dir, s = markup_run
    page = Prose((run_dir / "report.html").read_text())
    texts = ["".join(d for _, d in b) for b in page.blocks]
    assert len(texts) >= 4, texts  # the verdict's sentences, the gate's headline, its note, the other notes
    for b, t in zip(page.blocks, texts):
        assert "`" not in "".join(d for code, d in b if not code) and "**" not in t, t
    # the headline, in the verdict and in the gate's section: the sentence of regress.json, its quoted aliases as code
    plain = s["regress"]["headline"].replace("`", "")
    quoted = [b for b, t in zip(page.blocks, texts) if t in (plain, "Gate: " + plain)]
    assert len(quoted) == 2, (plain, texts)
    for b in quoted:
        assert [d for code, d in b if code][:2] == ["candidate", "current"]
