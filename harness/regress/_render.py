"""The gate's result for people: the verdict sentence, regress.md, the report.html section and the
short table `harness regress` prints. Model output (answers in the flip list) is escaped."""

from __future__ import annotations

import re
from typing import Any

from ..errors import redact_text

NOTE = ("Per gated cell (task × grader): the paired per-item difference d = candidate − current (epochs averaged "
        "within each item first; items sharing a cluster kept together), with a one-sided (1 − α) bound from {method}. "
        "pass: the lower bound is above −margin (non-inferior). regression: the upper bound is below {limit} "
        "(Holm-adjusted over the gated cells). inconclusive: neither — this is not evidence of no difference; "
        "`required n` is the number of items that would decide the cell at the observed difference and discordance "
        "(80 % power), MDE the smallest distance from the margin detectable now. The overall verdict passes only if "
        "every gated cell passes (intersection–union test). The flip list explains a verdict; it never decides it.")


ZWSP = "&#8203;"
# what GitHub would turn live even with every markdown character escaped: URL schemes and www. hosts
# (autolinks), @-mentions and #-references
_LIVE = re.compile(r"(?i)\b(https?|ftp|javascript|data|vbscript|file|mailto)(:)|\b(www)(\.)|([@#])")


def _defuse(m: re.Match) -> str:
    if m.group(5):
        return m.group(5) + ZWSP
    return (m.group(1) or m.group(3)) + ZWSP + (m.group(2) or m.group(4))


def untrusted(text: Any, width: int = 90) -> str:
    """Model output or user data for a page GitHub renders (regress.md, the step summary, a PR
    comment): one line, secrets redacted (harness.errors.redact_text, as for logs and error messages),
    HTML-escaped, markdown specials backslashed (harness.report.md_escape), and what GitHub would
    still make live -- autolinked URLs, @-mentions, #-references -- broken by a zero-width-space
    entity, as Renovate's `sanitizeMarkdown` does; it renders as nothing, so the text reads the same.
    Not for use inside a code span (a renderer would show the escapes)."""
    from ..report import md_escape

    t = md_escape(redact_text(str(text)), width)  # HTML-escaped, markdown specials backslashed, truncated
    return _LIVE.sub(_defuse, t)  # one pass: the entities it inserts are not themselves rewritten


def _pp(x: float | None, sign: bool = True) -> str:
    return "—" if x is None else (f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}")


def headline(g: dict[str, Any]) -> str:
    """The verdict in one or two sentences, from the same numbers as the tables."""
    return _headline(g) + (" Sequential gate: " + _sequential_note(g["sequential"]) if g.get("sequential") else "")


def _sequential_note(q: dict[str, Any]) -> str:
    why = {"decided": "decided", "max_items": "undecided at max_items", "all items": "undecided with every item used",
           "run ended": "undecided where the run stopped"}[q["stopped"]]
    share = f"{100 * q['items_used'] / q['items_max']:.0f} %" if q["items_max"] else "—"
    return (f"stopped after {q['items_used']} of at most {q['items_max']} items ({share}, {why}; "
            f"{q['items_saved']} not evaluated).")


def _headline(g: dict[str, Any]) -> str:
    s, b, c = g["settings"], g["baseline"], g["candidate"]
    gated = [r for r in g["cells"] if r["gated"]]
    who = f"candidate `{c['alias']}` ({c['model']}) vs current `{b['alias']}` ({b['model']})"
    margin = f"{100 * s['margin']:g} pp"
    if g["verdict"] == "pass":
        worst = min(gated, key=lambda r: r["lower"])
        return (f"PASS — {who}: not worse by more than {margin} on all {len(gated)} gated cells "
                f"(n = {g['items']['n_compared']} items; tightest: {worst['task']} · {worst['grader']}, "
                f"d = {_pp(worst['diff'])} pp, one-sided {100 * (1 - s['alpha']):g} % lower bound {_pp(worst['lower'])} pp).")
    if g["verdict"] == "regression":
        bad = [r for r in gated if r["verdict"] == "regression"]
        parts = [f"{r['task']} · {r['grader']}: d = {_pp(r['diff'])} pp, upper bound {_pp(r['upper'])} pp, "
                 f"Holm p = {r['p_regression_adjusted']:.2g}" for r in bad]
        return f"REGRESSION — {who}: " + "; ".join(parts) + "."
    undecided = [r for r in gated if r["verdict"] == "inconclusive"]
    parts = []
    for r in undecided:
        need = f"about {r['required_n']} items would decide it" if r.get("required_n") else "no n decides it at the observed difference"
        parts.append(f"{r['task']} · {r['grader']}: d = {_pp(r['diff'])} pp, bounds [{_pp(r['lower'])}, {_pp(r['upper'])}] pp "
                     f"with n = {r['n']}; {need}")
    return (f"INCONCLUSIVE — {who}: cannot tell whether the candidate is within {margin}; " + "; ".join(parts)
            + ". Not evidence of no difference.")


def _cell_cells(r: dict[str, Any]) -> list[str]:
    disc = f"{r['n10']}/{r['n01']}" if r.get("n10") is not None else "—"
    p_adj = "—" if r.get("p_regression_adjusted") is None else f"{r['p_regression_adjusted']:.2g}"
    need = "—" if r["verdict"] != "inconclusive" else (str(r["required_n"]) if r.get("required_n") else "∞")
    return [r["task"], r["grader"], str(r["n"]) + (f" ({r['n_dropped']} dropped)" if r.get("n_dropped") else ""),
            _pp(r["baseline_accuracy"], False), _pp(r["candidate_accuracy"], False), _pp(r["diff"]),
            f"[{_pp(r['lower'])}, {_pp(r['upper'])}]", disc, f"{r['p_noninferior']:.2g}", p_adj, need,
            _pp(r["mde"], False), r["verdict"] + (f" ({r['skipped']})" if r.get("skipped") else "")]


HEADER = ["task", "grader", "n", "current %", "candidate %", "d (pp)", "one-sided bounds (pp)", "cand+/cur+ discordant",
          "p non-inf.", "p regr. (Holm)", "required n", "MDE (pp)", "verdict"]


def markdown(g: dict[str, Any]) -> str:
    from ..report import md_escape

    s = g["settings"]
    limit = "0 (strict)" if s["strict"] else "−margin"
    method = ", ".join(sorted({r["method"] for r in g["cells"]}))
    lines = [f"# Regression gate: {g['verdict'].upper()}", "", f"> **{md_escape(g['headline'], 2000)}**", "",
             f"- current: `{g['baseline']['run_dir']}` alias `{g['baseline']['alias']}` (`{g['baseline']['model']}`)",
             f"- candidate: `{g['candidate']['run_dir']}` alias `{g['candidate']['alias']}` (`{g['candidate']['model']}`)",
             f"- margin {100 * s['margin']:g} pp, α = {s['alpha']} (one-sided), strict = {str(s['strict']).lower()}, "
             f"inconclusive → {s['inconclusive']}; {g['correction']}; exit code {g['exit_code']}",
             f"- items compared: {g['items']['n_compared']}" + (
                 f" (dropped: {g['items']['dropped']['baseline']} baseline, {g['items']['dropped']['candidate']} candidate)"
                 if any(g["items"]["dropped"].values()) else ""), ""]
    if g.get("sequential"):
        q = g["sequential"]
        lines.insert(-1, f"- sequential: batches of {q['batch']} items in a seeded order (seed {q['seed']}), "
                     f"{q['batches_used']} of {q['batches_planned']} batches evaluated; {_sequential_note(q)} "
                     f"Bounds and p-values are anytime-valid: {q['method']}.")
    lines += [f"- ⚠ {md_escape(w, 400)}" for w in g["warnings"]] + ([""] if g["warnings"] else [])
    lines += [NOTE.format(method=method, limit=limit), "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cell_cells(r)) + " |" for r in g["cells"]]
    if g["flips"]:
        lines += ["", "## Items that changed", "",
                  "Right→wrong first; per-item correct epochs (current → candidate). Answers escaped and truncated.", "",
                  "| task | grader | direction | item | current | candidate | gold | current's answer | candidate's answer |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for f in g["flips"]:
            lines.append(f"| {f['task']} | {f['grader']} | {f['direction']} ({f['n_direction']} items) | {untrusted(f['id'], 40)} | "
                         f"{f['baseline']} | {f['candidate']} | {untrusted(f['target'], 30)} | "
                         f"{untrusted(f['answer_baseline'])} | {untrusted(f['answer_candidate'])} |")
    return "\n".join(lines) + "\n"


HTML = """<section id="regress">
<h2>Regression gate: <span class="{{ 'sig' if g.verdict != 'inconclusive' else '' }}">{{ g.verdict|upper }}</span></h2>
<p class="verdict">{{ g.headline|prose }}</p>
<p class="note">{{ note|prose }}</p>
{% for w in g.warnings %}<p class="warn">⚠ {{ w|prose }}</p>{% endfor %}
{% if plot %}<figure id="regress-sequential">
<img src="{{ plot }}" alt="confidence sequence of each cell against the items evaluated">
<figcaption>Sequential gate: the anytime-valid bounds of candidate − current after each batch of {{ g.sequential.batch }} items
(shaded), against −margin (red). pass once the lower bound is above it, regression once the upper bound is below it.
{{ g.sequential.items_used }} of at most {{ g.sequential.items_max }} items evaluated.</figcaption></figure>{% endif %}
<table id="regress-cells"><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in rows %}<tr{% if not r[1] %} class="muted"{% endif %}>{% for c in r[0] %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if g.flips %}<h3>Items that changed</h3>
<table id="regress-flips"><tr><th>task</th><th>grader</th><th>direction</th><th>item</th><th>current</th><th>candidate</th><th>gold</th><th>current's answer</th><th>candidate's answer</th></tr>
{% for f in g.flips %}<tr><td>{{ f.task }}</td><td>{{ f.grader }}</td><td>{{ f.direction }}</td><td>{{ f.id }}</td><td>{{ f.baseline }}</td><td>{{ f.candidate }}</td><td>{{ f.target|redact }}</td><td>{{ f.answer_baseline|redact|truncate(200) }}</td><td>{{ f.answer_candidate|redact|truncate(200) }}</td></tr>{% endfor %}
</table>{% endif %}
</section>
"""


def html_section(g: dict[str, Any]) -> Any:
    """The report.html section (autoescaped: answers are model output)."""
    from jinja2 import Environment
    from markupsafe import Markup

    s = g["settings"]
    method = ", ".join(sorted({r["method"] for r in g["cells"]}))
    note = NOTE.format(method=method, limit="0 (strict)" if s["strict"] else "−margin")
    rows = [(_cell_cells(r), r["gated"]) for r in g["cells"]]
    plot = None
    if g.get("sequential"):
        from ._sequential import plot_path

        plot = plot_path(g["sequential"], s["margin"], s["strict"])
    from ..report import prose_html

    env = Environment(autoescape=True)
    env.filters["redact"] = redact_text  # model output: no key reaches the report (then autoescaped)
    env.filters["prose"] = prose_html  # the headline, note and warnings are written in markdown's inline syntax
    return Markup(env.from_string(HTML).render(g=g, note=note, header=HEADER, rows=rows, plot=plot))


def table(g: dict[str, Any]) -> str:
    """The few lines `harness regress` prints."""
    cols = ["task", "grader", "n", "d (pp)", "bounds (pp)", "verdict"]
    rows = [[r["task"], r["grader"], str(r["n"]), _pp(r["diff"]), f"[{_pp(r['lower'])}, {_pp(r['upper'])}]",
             r["verdict"] + (f" (required n {r['required_n']})" if r["verdict"] == "inconclusive" and r.get("required_n") else "")]
            for r in g["cells"]]
    widths = [max(len(x) for x in col) for col in zip(cols, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*cols), *(fmt.format(*r) for r in rows), "", g["headline"]])
