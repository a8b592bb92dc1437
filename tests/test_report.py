"""Report tables from a tidy frame (the shape load_frame produces), no model needed."""

import pandas as pd
import pytest

from harness.report import category_table, comparison_table, flip_table, gap_table, score_table
from harness.report._fmt import md as _md


def _frame():
    rows = []
    for i in range(30):
        truth = {"teacher": 1.0 if i < 27 else 0.0, "baseline": 0.0 if i > 2 else 1.0, "student": 1.0 if i < 18 else 0.0}
        for alias, v in truth.items():
            rows.append((alias, f"hf/{alias}", "heldout", "contains", f"q{i}", 1, v, "capital" if i % 2 else "peak",
                         f"<b>answer {alias} {i}</b> | x", "", "gold"))
    # one unscorable student sample: dropped pairwise from comparisons, counted
    rows[-1] = rows[-1][:6] + (float("nan"),) + rows[-1][7:]
    return pd.DataFrame(rows, columns=["alias", "model", "task", "grader", "id", "epoch", "value", "group", "answer", "extracted", "target"])


def test_comparisons_align_by_id_and_count_dropped():
    comps = {(c["a"], c["b"]): c for c in comparison_table(_frame())}
    sb = comps[("student", "baseline")]
    assert sb["n_pairs"] == 29 and sb["n_dropped"] == 1 and sb["significant"]
    # the gate's interval for 0/1 scores (issue 29: one method everywhere; was McNemar exact + a paired t CI)
    assert sb["test"].startswith("score interval for paired proportions") and sb["correction"] == "holm over 3 comparisons"
    assert sb["outcome"] == "better" and sb["ci_low"] > 0
    assert sb["p_value"] <= sb["p_adjusted"]


def test_scores_categories_gap_and_flips():
    f = _frame()
    scores = {r["model"]: r for r in score_table(f)}
    assert scores["teacher"]["n"] == 30 and scores["teacher"]["accuracy"] == 0.9
    cats = category_table(f)
    assert {c["group"] for c in cats} == {"capital", "peak"} and sum(c["n"] for c in cats if c["model"] == "teacher") == 30
    gap = gap_table(f)[0]
    assert 0 < gap["value"] < 1 and gap["ci_low"] <= gap["value"] <= gap["ci_high"]
    flips = flip_table(f)
    assert any(x["direction"] == "wrong→right" and x["a"] == "student" for x in flips)


def test_model_output_is_escaped_in_markdown():
    out = _md("<script>alert(1)</script> | *bold* `code`\nnext line")
    assert "<" not in out and ">" not in out and "\n" not in out
    assert "\\|" in out and "\\*" in out and "\\`" in out


@pytest.mark.parametrize("text", [
    "[link](javascript:alert(1))", "![img](http://x/y.png)", "back\\*slash* **bold** _u_", "a \\| b | c",
    "<img src=x onerror=alert(1)> &amp; `tick`", "\\`code\\` and \\[not\\](a link)",
])
def test_escaped_text_renders_as_itself_in_a_table_cell(text):
    """What a markdown renderer (markdown-it: CommonMark + GFM tables, every link target allowed) shows
    of md(text) in a table cell is the text itself: no link, image, emphasis, code span or HTML, and the
    row keeps its cells (a backslash before a pipe must not un-escape it)."""
    from markdown_it import MarkdownIt

    mdit = MarkdownIt("commonmark").enable("table")
    mdit.validateLink = lambda url: True
    tokens = mdit.parse(f"| a | b | c |\n|---|---|---|\n| x | {_md(text)} | y |\n")
    inline = [t for t in tokens if t.type == "inline"]
    assert [t.content for t in inline][-3::2] == ["x", "y"]  # three cells: x, the text, y
    children = inline[-2].children
    assert [c.type for c in children] == ["text"] * len(children)  # no link, image, emphasis, code or html
    assert "".join(c.content for c in children) == text


def test_report_html_escapes_model_output_and_embeds_plots():
    from harness.report import render_html

    f = _frame()
    f.loc[0, "answer"] = "<script>alert('x')</script>"
    f.loc[f.alias == "baseline", "value"] = 0.0
    summary = {"experiment": "t", "run": "r", "models": {"teacher": "hf/t", "baseline": "hf/b", "student": "hf/s"},
               "model_notes": {}, "scores": score_table(f), "comparisons": comparison_table(f), "gap_closed": gap_table(f),
               "flips": [{"task": "heldout", "grader": "contains", "a": "teacher", "b": "baseline", "id": "q0",
                          "direction": "wrong→right", "target": "gold", "answer_a": f.loc[0, "answer"], "answer_b": "b"}],
               "stage_seconds": {"data": 0.1}, "stage_calls": {}, "paths": {"logs": "logs"}}
    html = render_html(summary, ["teacher", "baseline", "student"])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count('src="data:image/png;base64,') == 2 and "http://" not in html and "https://" not in html


def test_sweep_markdown_keeps_its_tables_whole_with_markup_in_override_values():
    """A swept value is the user's text (e.g. a system prompt): it reaches the settings, scores,
    comparison and usage tables of the sweep report escaped, so every row keeps its cells and no
    link or HTML comes alive."""
    from markdown_it import MarkdownIt

    from harness.report._sweep import render_sweep_markdown

    val = "a | b <script>x</script> [l](javascript:alert(1))"
    lab = f"student[eval.system={val}]"
    s = {"experiment": "demo", "swept": ["eval.system"], "alpha": 0.05, "gap_closed": [],
         "runs": [{"setting": f"eval.system={val}", "overrides": {"eval.system": val}, "dir": "/r/x|y", "labels": {"student": lab},
                   "students": ["student"]}],
         "scores": [{"model": lab, "task": "heldout", "grader": "exact", "accuracy": 0.5, "ci_low": 0.2, "ci_high": 0.8, "n": 10}],
         "comparisons": [{"task": "heldout", "grader": "exact", "a": lab, "b": "baseline", "n_pairs": 10, "diff": 0.1, "ci_low": -0.1,
                          "ci_high": 0.3, "test": "exact McNemar", "p_value": 0.5, "p_adjusted": 0.5, "significant": False, "mde": 0.4,
                          "correction": "holm over 1 comparisons"}],
         "usage": [{"setting": f"eval.system={val}", "model": "student", "calls": 1, "sent": 1, "input_tokens": 2, "output_tokens": 3,
                    "cost_usd": 0.0}]}
    text = render_sweep_markdown(s)
    mdit = MarkdownIt("commonmark").enable("table")
    mdit.validateLink = lambda url: True
    tokens = mdit.parse(text)
    assert not [t for t in tokens if t.type == "html_block"]
    inline = [c for t in tokens if t.type == "inline" for c in t.children or []]
    assert not [c for c in inline if c.type in ("link_open", "html_inline", "image")], text
    # each table keeps as many cells per row as its header
    for table in text.split("\n\n"):
        rows = [r for r in table.splitlines() if r.startswith("|")]
        if rows:
            import re

            cells = [len(re.split(r"(?<!\\)\|", r)) for r in rows]
            assert len(set(cells)) == 1, table
    assert val not in text  # never raw


def _judged_frame():
    """_frame's items graded twice: by `contains`, and by a judge grader whose verdicts are coin flips
    (κ ≈ 0 against `exact`, the reference): the judge fails its validation on this task."""
    import numpy as np

    f = _frame().dropna(subset=["value"])
    rng = np.random.default_rng(0)
    exact = f.assign(grader="exact", judge="")
    judged = f.assign(grader="judge", judge="hf/judge vs exact", value=(rng.random(len(f)) < 0.5).astype(float))
    return pd.concat([f.assign(judge=""), exact, judged], ignore_index=True)


def test_an_unreliable_judge_is_left_out_of_the_holm_family_unless_included():
    """docs/summary.md: comparisons on a judge that failed its validation are shown, not tested, and do
    not enlarge the others' correction; report.include_unreliable=true keeps them in the family."""
    from harness.config import ReportConfig
    from harness.report import analyse

    frame = _judged_frame()
    out = analyse(frame, ReportConfig())
    (agree,) = out["judge_agreement"]
    assert agree["judge"] == "judge" and agree["unreliable"] and agree["kappa"] < 0.6
    judged = [c for c in out["comparisons"] if c["grader"] == "judge"]
    tested = [c for c in out["comparisons"] if c["grader"] != "judge"]
    assert len(judged) == 3 and len(tested) == 6  # 3 pairs x (judge | contains, exact)
    for c in judged:
        assert c["excluded"].startswith("judge unreliable for this task (κ = ") and c["p_adjusted"] is None
        assert c["significant"] is False and c["correction"].startswith("not tested: judge unreliable")
        assert c["p_value"] is not None  # shown, with its own (unadjusted) p
    assert {c["correction"] for c in tested} == {"holm over 6 comparisons"}  # the family: the 6 tested ones only
    # the same adjustment as Holm over those 6 p-values alone
    from harness.stats import adjust

    assert [c["p_adjusted"] for c in tested] == pytest.approx(adjust([c["p_value"] for c in tested], "holm"), abs=1e-12)

    kept = analyse(frame, ReportConfig(include_unreliable=True))
    assert not [c for c in kept["comparisons"] if "excluded" in c]
    assert {c["correction"] for c in kept["comparisons"]} == {"holm over 9 comparisons"}
    assert all(c["p_adjusted"] is not None for c in kept["comparisons"])
    # the bigger family costs the other comparisons power: none is adjusted less, the smallest p more (x9, not x6)
    before = {(c["a"], c["b"], c["grader"]): c["p_adjusted"] for c in tested}
    after = {(c["a"], c["b"], c["grader"]): c["p_adjusted"] for c in kept["comparisons"] if c["grader"] != "judge"}
    assert all(after[k] >= before[k] - 1e-12 for k in before) and any(after[k] > before[k] for k in before)
