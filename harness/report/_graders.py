"""Checks of the graders themselves, after scoring, and the multiple-choice view of a run.

- **degenerate**: a task x grader cell whose verdicts are fixed by the gold alone -- on every item of
  a gold label the same verdict, for every model, while the answers within a label differ, so the
  grader did not read them (the "A" that a normaliser dropped as an article: right on every A item,
  wrong on every other). Such a cell is left out of the comparisons family and the gate, like an
  unreliable judge. A model that gives the same answer to every item (always "A") produces the same
  verdict pattern with a working grader; its answers do not differ within a label, so it is not
  flagged, and the position-bias check says what it did instead.
- **intermediate numbers**: a `contains` grader on numeric golds credits an answer that names the
  gold anywhere; counted per model where the final answer (harness.text.final_answer) is another
  number.
- **position bias**: a choice grader's picks per letter, per model, when one letter takes most picks.
- **multiple-choice contrast**: on a task that a choice grader scores (a multiple-choice task), every
  other grader compares the reply with the gold letter as written (`contains` credits a reply that
  merely lists "A) ... B) ..."); shown as a contrast, left out of the comparisons family and the gate.
  Decided per task: the evaluate stage runs a choice grader on tasks whose items all have choices.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..text import as_number, final_answer

# a label needs this many items on average before "the gold fixes the verdict" means anything (with
# one item per label every verdict pattern is trivially fixed by the gold)
MIN_ITEMS_PER_LABEL = 3
MIN_ITEMS = 8
BIAS_SHARE = 0.9


def _reading(v: Any) -> str:
    return " ".join(str(v).casefold().split())


def degenerate_cells(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Cells (task, grader) whose 0/1 verdicts are a function of the gold label alone (see module doc).
    Judge graders are checked against their reference instead (report._judge) and skipped here.

    What "the answers differ within a label" compares: a choice grader's picks (its reader is
    tested on its own; a model that always picks "A" is a model fault, reported as position bias);
    any other grader's raw answers -- its extraction is what is in question (a regex that always
    finds the same letter, a normaliser that drops the gold), so its own reading cannot vouch for it."""
    kinds = kinds or {}
    out: list[dict[str, Any]] = []
    if frame.empty:
        return out
    f = frame[(frame["judge"] == "") & frame["value"].isin([0.0, 1.0])]
    for (task, grader), g in f.groupby(["task", "grader"], sort=True):
        labels = g["target"].astype(str).str.strip()
        n_items = g["id"].nunique()
        n_labels = labels.nunique()
        if n_items < MIN_ITEMS or n_labels < 2 or n_items < MIN_ITEMS_PER_LABEL * n_labels:
            continue
        verdicts = g.groupby(labels)["value"].agg(["min", "max", "mean", "size"])
        if (verdicts["min"] != verdicts["max"]).any() or verdicts["mean"].nunique() < 2:
            continue  # the verdict varies within a label, or is the same everywhere
        column = "extracted" if reads_choices(str(grader), kinds) else "answer"
        readings = g.groupby(labels)[column].agg(lambda s: s.map(_reading).nunique())
        if (readings <= 1).all():
            continue  # every label's answers read alike: the answers explain the verdicts
        right = [str(k) for k, v in verdicts["mean"].items() if v == 1.0]
        wrong = [str(k) for k, v in verdicts["mean"].items() if v == 0.0]
        out.append({"task": str(task), "grader": str(grader), "check": "degenerate", "excluded": True, "n": int(n_items),
                    "models": sorted(g["alias"].astype(str).unique()), "right_labels": right, "wrong_labels": wrong,
                    "message": (f"verdicts fixed by the gold alone: right on every item whose gold is {_list(right)}, wrong on "
                                f"every item whose gold is {_list(wrong)}, for every model ({g['alias'].nunique()}), whatever the "
                                "answer said -- this grader does not read these answers; left out of the comparisons and the gate")})
    return out


def _list(labels: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(x) for x in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def intermediate_credit(frame: pd.DataFrame, graders: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per contains grader and task with numeric golds: the items it credits although the answer's
    final number is another one (the gold appeared as an intermediate step)."""
    out: list[dict[str, Any]] = []
    names = [n for n, g in graders.items() if g.get("kind", "match") == "match" and g.get("mode") == "contains"
             and g.get("extract") != "final_answer"]
    if frame.empty or not names:
        return out
    for (task, grader), g in frame[frame["grader"].isin(names)].groupby(["task", "grader"], sort=True):
        gold = g["target"].map(lambda t: as_number(str(t)))
        numeric = gold.notna()
        if numeric.sum() < max(1, len(g) / 2):
            continue
        g, gold = g[numeric], gold[numeric]
        final = g["answer"].map(lambda a: as_number(final_answer(str(a))))
        credited = (g["value"] == 1.0) & ~((final - gold).abs() < 1e-9).fillna(False)
        if not credited.any():
            continue
        by_model = {str(a): int(v) for a, v in credited.groupby(g["alias"]).sum().items()}
        out.append({"task": str(task), "grader": str(grader), "check": "intermediate numbers", "excluded": False,
                    "n": int(g["id"].nunique()), "by_model": by_model,
                    "ids": sorted(g.loc[credited, "id"].astype(str).unique())[:10],
                    "message": (f"`contains` credited {sum(by_model.values())} answers whose final number is not the gold (it "
                                f"appears as an intermediate number): {', '.join(f'{a} {n}' for a, n in by_model.items())}; "
                                "for answers after reasoning use the final_answer grader")})
    return out


def position_bias(frame: pd.DataFrame, graders: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per choice grader, task and model: the share of its picks per letter, reported when one letter
    takes at least BIAS_SHARE of the items (a model that always answers "A" scores the share of A golds)."""
    out: list[dict[str, Any]] = []
    names = [n for n, g in graders.items() if g.get("kind") == "choice"]
    if frame.empty or not names:
        return out
    for (task, grader, alias), g in frame[frame["grader"].isin(names)].groupby(["task", "grader", "alias"], sort=True):
        picks = g["extracted"].astype(str).replace("", "none").value_counts(normalize=True)
        top, share = str(picks.index[0]), float(picks.iloc[0])
        if share >= BIAS_SHARE and len(g) >= MIN_ITEMS:
            gold_share = float((g["target"].astype(str).str.strip() == top).mean())
            out.append({"task": str(task), "grader": str(grader), "check": "position bias", "excluded": False, "model": str(alias),
                        "n": int(g["id"].nunique()), "letter": top, "share": round(share, 6), "gold_share": round(gold_share, 6),
                        "message": (f"{alias} picked {top} on {100 * share:.0f} % of the items; {100 * gold_share:.0f} % of the golds "
                                    f"are {top}, so its score is mostly the share of {top} golds (try eval.shuffle_choices)")})
    return out


# inspect's own multiple-choice scorer (inspect_ai.scorer.choice) logs its scores under this name: a
# foreign log's grader of that name reads choices like the harness's `kind: choice`
INSPECT_CHOICE = "choice"
CONTRAST = "multiple-choice contrast"


def reads_choices(grader: str, kinds: dict[str, str]) -> bool:
    """A grader that reads a multiple-choice item's pick: `kind: choice`, or (a foreign log, no kind
    known) inspect's choice() scorer."""
    return kinds.get(grader) == "choice" or (grader not in kinds and grader == INSPECT_CHOICE)


def choice_contrasts(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Cells (task, grader) of a multiple-choice task that its choice grader does not read: every other
    grader of a task a choice grader scores. `excluded`: shown as a contrast, not compared or gated."""
    kinds = kinds or {}
    out: list[dict[str, Any]] = []
    if frame.empty:
        return out
    for task, g in frame.groupby("task", sort=True):
        names = sorted(map(str, g["grader"].unique()))
        readers = [n for n in names if reads_choices(n, kinds)]
        if not readers:
            continue
        for name in (n for n in names if n not in readers):
            out.append({"task": str(task), "grader": name, "check": CONTRAST, "excluded": True, "reader": readers[0],
                        "n": int(g.loc[g["grader"] == name, "id"].nunique()),
                        "message": (f"a multiple-choice task, scored by {readers[0]}; {name} does not read the choices (it "
                                    "compares the reply with the gold letter as written: `contains` credits a reply that merely "
                                    "lists the lettered choices) -- shown as a contrast, left out of the comparisons and the gate")})
    return out


def grader_checks(frame: pd.DataFrame, graders: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Every check above, for summary.json `grader_checks` (degenerate cells and multiple-choice
    contrasts are `excluded`)."""
    graders = graders or {}
    kinds = {n: g.get("kind", "match") for n, g in graders.items()}
    return (degenerate_cells(frame, kinds) + choice_contrasts(frame, kinds) + intermediate_credit(frame, graders)
            + position_bias(frame, graders))


def excluded_reason(check: dict[str, Any]) -> str:
    """Why an `excluded` grader check leaves its cell out of the tested family and the gate."""
    if check.get("check") == CONTRAST:
        return f"contrast: multiple-choice task, scored by {check.get('reader', 'its choice grader')}"
    return "grader degenerate: verdicts fixed by the gold alone"


def degenerate_excluded(checks: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(task, grader) -> why its comparisons are left out of the tested family (a degenerate grader,
    a multiple-choice contrast; the first check of a cell names it)."""
    out: dict[tuple[str, str], str] = {}
    for c in checks:
        if c.get("excluded"):
            out.setdefault((c["task"], c["grader"]), excluded_reason(c))
    return out


def checks_markdown(s: dict[str, Any]) -> list[str]:
    """The report.md section: grader checks, chance levels of multiple-choice tasks."""
    from ._fmt import md

    checks = s.get("grader_checks") or []
    mc = (s.get("data") or {}).get("multiple_choice") or {}
    if not checks and not mc:
        return []
    lines = ["", "## Grader checks", ""]
    for task, m in mc.items():
        k = "/".join(str(x) for x in m["k"])
        golds = ", ".join(f"{letter} {n}" for letter, n in m["gold_letters"].items())
        lines.append(f"- {task}: {m['n']} multiple-choice items, {k} choices: **chance level {100 * m['chance']:.1f} %** "
                     f"(golds per letter: {md(golds, 400)})")
    for c in checks:
        mark = "**⚠ excluded**" if c.get("excluded") else "⚠"
        lines.append(f"- {mark} {c['task']} · {md(c['grader'], 80)} ({c['check']}): {md(c['message'], 1000)}")
    return lines


_HTML = """{% if checks or mc %}
<h2>Grader checks</h2>
<ul id="grader-checks">
{% for task, m in mc.items() %}<li>{{ task }}: {{ m.n }} multiple-choice items, {{ m.k|join("/") }} choices:
<b>chance level {{ "%.1f"|format(100*m.chance) }} %</b>
(golds per letter: {% for l, n in m.gold_letters.items() %}{{ l }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %})</li>{% endfor %}
{% for c in checks %}<li{% if c.excluded %} class="warn"{% endif %}>{% if c.excluded %}⚠ excluded: {% else %}⚠ {% endif %}
{{ c.task }} · {{ c.grader }} ({{ c.check }}): {{ c.message }}</li>{% endfor %}
</ul>
{% endif %}
{% if cats %}
<h2>By category</h2>
<p class="note">Accuracy % per item category; n = items in the category.</p>
{% for (t, g), rows in cats %}<details{% if rows|length <= 12 %} open{% endif %}><summary>{{ t }} · {{ g }} ({{ rows|length }} categories)</summary>
<table class="categories"><tr><th>category</th><th>n</th>{% for a in order %}<th>{{ a }}</th>{% endfor %}</tr>
{% for grp, n, vals in rows %}<tr><td>{{ grp }}</td><td class="num">{{ n }}</td>
{% for v in vals %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table></details>{% endfor %}
{% endif %}
"""


def category_blocks(cats: list[dict[str, Any]], order: list[str]) -> list[tuple[tuple[str, str], list[tuple[str, int, list[str]]]]]:
    """Per task x grader: (category, n, accuracy % per model) rows -- one table per cell, so 57
    subjects stay 57 rows of a table, not 57 x graders rows of one."""
    from ._fmt import pct

    cell = {(c["task"], c["grader"], c["group"], c["model"]): c for c in cats}
    out = []
    for t, g in sorted({(c["task"], c["grader"]) for c in cats}, key=lambda k: (k[0] != "heldout", k)):
        rows = []
        for grp in sorted({c["group"] for c in cats if c["task"] == t and c["grader"] == g}):
            n = next((cell[(t, g, grp, a)]["n"] for a in order if (t, g, grp, a) in cell), 0)
            rows.append((grp, n, [pct(cell[(t, g, grp, a)]["accuracy"]) if (t, g, grp, a) in cell else "—" for a in order]))
        out.append(((t, g), rows))
    return out


def checks_html(s: dict[str, Any], order: list[str]) -> Any:
    """The report.html block: grader checks, chance levels, per-category tables (escaped)."""
    from jinja2 import Environment
    from markupsafe import Markup

    cats = s.get("categories") or []
    return Markup(Environment(autoescape=True).from_string(_HTML).render(
        checks=s.get("grader_checks") or [], mc=(s.get("data") or {}).get("multiple_choice") or {},
        cats=category_blocks(cats, order) if cats else [], order=order))
