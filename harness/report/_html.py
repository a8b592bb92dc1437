"""report.html: one self-contained file (plots embedded as data: URIs, no scripts, no network).

Rendered with jinja2 and autoescape on: model output is untrusted text.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from ._summary import ALPHA, power_sentence, score_rows

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{{ s.experiment }} — {{ s.run }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}.sig{font-weight:bold}
.note{color:#555;font-size:.9em}img{max-width:100%}
</style></head><body>
<h1>{{ s.experiment }} — run <code>{{ s.run }}</code></h1>
{{ leak_warning }}
<h2>Models</h2>
<table id="models"><tr><th>alias</th><th>model</th><th>notes</th></tr>
{% for a in order %}<tr><td>{{ a }}</td><td><code>{{ s.models[a] }}</code></td><td>{{ s.model_notes.get(a, "") }}</td></tr>{% endfor %}
</table>
{{ data_section }}
<h2>Scores</h2>
<p class="note">Accuracy % with 95 % Wilson intervals; n = items per cell.</p>
<table id="scores"><tr><th>task</th><th>grader</th><th>n</th>{% for a in order %}<th>{{ a }}</th>{% endfor %}</tr>
{% for t, g, n, cells in score_rows %}<tr><td>{{ t }}</td><td>{{ g }}</td><td class="num">{{ n }}</td>
{% for c in cells %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
<img id="plot-scores" alt="accuracy per model with 95% CI" src="{{ plot_scores }}">
{% if s.comparisons %}
<h2>Paired comparisons</h2>
<p class="note">Same items aligned by sample id. Test: {{ s.comparisons[0].test }}; CI: paired t interval of per-item
differences; correction: {{ s.comparisons[0].correction }}; α = {{ alpha }}. Better/worse only when the adjusted p &lt; α.</p>
<table id="comparisons"><tr><th>task</th><th>grader</th><th>a − b</th><th>n pairs</th><th>diff pp [95 % CI]</th><th>p</th><th>p adj.</th><th>verdict</th></tr>
{% for c in s.comparisons %}<tr><td>{{ c.task }}</td><td>{{ c.grader }}</td><td>{{ c.a }} − {{ c.b }}</td>
<td class="num">{{ c.n_pairs }}{% if c.n_dropped %} ({{ c.n_dropped }} dropped){% endif %}</td>
<td class="num">{{ "%+.1f"|format(100*c.diff) }} [{{ "%+.1f"|format(100*c.ci_low) }}, {{ "%+.1f"|format(100*c.ci_high) }}]</td>
<td class="num">{{ "%.2g"|format(c.p_value) }}</td><td class="num">{{ "%.2g"|format(c.p_adjusted) }}</td>
<td{% if c.significant %} class="sig"{% endif %}>{% if c.significant %}{{ c.a }} {{ "better" if c.diff > 0 else "worse" }}{% else %}no significant difference (MDE {{ "%.0f"|format(100*c.mde) }} pp){% endif %}</td></tr>{% endfor %}
</table>
<img id="plot-forest" alt="forest plot of paired differences" src="{{ plot_forest }}">
{% endif %}
{% if s.gap_closed %}
<h2>Gap closed</h2>
<table id="gap"><tr><th>task</th><th>grader</th><th>(student − baseline) / (teacher − baseline) [95 % CI]</th></tr>
{% for g in s.gap_closed %}<tr><td>{{ g.task }}</td><td>{{ g.grader }}</td><td class="num">{% if g.value is none %}— (teacher not above baseline){% else %}{{ "%.1f"|format(100*g.value) }} %{% if g.ci_low is not none %} [{{ "%.1f"|format(100*g.ci_low) }}, {{ "%.1f"|format(100*g.ci_high) }}]{% endif %}{% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% if power %}<h2>Power</h2><p>{{ power }}</p>{% endif %}
{% if s.flips %}
<h2>Items that flipped</h2>
<table id="flips"><tr><th>task</th><th>grader</th><th>a vs b</th><th>direction</th><th>item</th><th>gold</th><th>a's answer</th><th>b's answer</th></tr>
{% for f in s.flips %}<tr><td>{{ f.task }}</td><td>{{ f.grader }}</td><td>{{ f.a }} vs {{ f.b }}</td><td>{{ f.direction }}</td>
<td>{{ f.id }}</td><td>{{ f.target }}</td><td>{{ f.answer_a }}</td><td>{{ f.answer_b }}</td></tr>{% endfor %}
</table>
{% endif %}
<h2>Stage timings</h2>
<table id="timings"><tr><th>stage</th><th>seconds</th><th>model calls</th></tr>
{% for st, sec in s.stage_seconds.items() %}<tr><td>{{ st }}</td><td class="num">{{ "%.1f"|format(sec) }}</td><td class="num">{{ s.stage_calls.get(st, 0) }}</td></tr>{% endfor %}
</table>
<p class="note">Logs: <code>{{ s.paths.logs }}</code> (open with <code>inspect view</code>).</p>
</body></html>
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plot_scores(scores: list[dict[str, Any]], order: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    keys = sorted({(r["task"], r["grader"]) for r in scores}, key=lambda k: (k[0] != "heldout", k))
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 3.2), sharey=True, squeeze=False)
    palette = sns.color_palette("colorblind", len(order))
    for ax, (t, g) in zip(axes[0], keys):
        rows = {r["model"]: r for r in scores if (r["task"], r["grader"]) == (t, g)}
        xs = [a for a in order if a in rows]
        acc = [100 * rows[a]["accuracy"] for a in xs]
        err = [[100 * (rows[a]["accuracy"] - rows[a]["ci_low"]) for a in xs], [100 * (rows[a]["ci_high"] - rows[a]["accuracy"]) for a in xs]]
        ax.bar(xs, acc, color=palette[: len(xs)], yerr=err, capsize=4)
        ax.set_title(f"{t} · {g}", fontsize=10)
        ax.set_ylim(0, 100)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0][0].set_ylabel("accuracy % (95 % CI)")
    return _png(fig)


def _plot_forest(comps: list[dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    rows = sorted(comps, key=lambda c: (c["task"] != "heldout", c["task"], c["grader"]))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1))
    for i, c in enumerate(rows):
        color = "#0072B2" if c["significant"] else "#999999"
        ax.errorbar(100 * c["diff"], i, xerr=[[100 * (c["diff"] - c["ci_low"])], [100 * (c["ci_high"] - c["diff"])]],
                    fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{c['task']} · {c['grader']} · {c['a']} − {c['b']}" for c in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("paired difference, pp (95 % CI; blue = significant after Holm)")
    return _png(fig)


def render_html(summary: dict[str, Any], order: list[str]) -> str:
    from jinja2 import Environment

    from ._datacard import data_html

    power = power_sentence(summary["scores"])
    env = Environment(autoescape=True)
    leak_warning, data_section = data_html(summary)
    return env.from_string(_TEMPLATE).render(
        leak_warning=leak_warning, data_section=data_section,
        s=summary, order=order, score_rows=score_rows(summary["scores"], order), alpha=ALPHA, power=power,
        plot_scores=_plot_scores(summary["scores"], order) if summary["scores"] else "",
        plot_forest=_plot_forest(summary["comparisons"]) if summary.get("comparisons") else "",
    )
