"""report.html: one self-contained file (plots embedded as data: URIs, no scripts, no network).

Rendered with jinja2 and autoescape on: model output is untrusted text.
"""

from __future__ import annotations

from typing import Any

from ._analysis import ALPHA
from ._datacard import data_html
from ._fmt import prose_html
from ._graders import checks_html
from ._judge import gate_text, unreliable_sentence
from ._markdown import COMPARISON_NOTE, GATE_NOTE, JUDGE_NOTE, PAIRWISE_NOTE, family_note, power_sentence, score_rows, verdict, verdict_lines
from ._noise import NOISE_NOTE, noise_sentences
from ._plots import cached_plot, plot_forest, plot_scores
from ._usage import USAGE_NOTE, usage_rows

# the paired-comparisons section, shared by the run report and the sweep report (_sweep.py)
COMPARISONS_HTML = """{% if s.comparisons %}
<h2>Paired comparisons</h2>
<p class="note">{{ note|prose }} Correction: {{ family }}; α = {{ alpha }}.</p>
<table id="comparisons"><tr><th>task</th><th>grader</th><th>a − b</th><th>n pairs</th><th>diff pp [{{ "%.0f"|format(100*(1-alpha)) }} % CI]</th><th>interval / test</th><th>p</th><th>p adj.</th><th>outcome</th></tr>
{% for c in s.comparisons %}<tr{% if c.excluded %} class="muted"{% endif %}><td>{{ c.task }}</td><td>{{ c.grader }}</td><td>{{ c.a }} − {{ c.b }}</td>
<td class="num">{{ c.n_pairs }}{% if c.n_dropped %} ({{ c.n_dropped }} dropped){% endif %}</td>
<td class="num">{{ "%+.1f"|format(100*c.diff) }} [{{ "%+.1f"|format(100*c.ci_low) }}, {{ "%+.1f"|format(100*c.ci_high) }}]</td>
<td>{{ c.test }}</td><td class="num">{{ "%.2g"|format(c.p_value) }}</td><td class="num">{{ "—" if c.p_adjusted is none else "%.2g"|format(c.p_adjusted) }}</td>
<td{% if c.significant %} class="sig"{% endif %}>{{ verdict(c) }}</td></tr>{% endfor %}
</table>
<img id="plot-forest" alt="forest plot of paired differences" src="{{ plot_forest }}">
{% endif %}
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{{ s.experiment }} — {{ s.run }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}.sig{font-weight:bold}
.note{color:#555;font-size:.9em}img{max-width:100%}.warn{color:#a00;font-weight:bold}
.muted td{color:#999}#verdict{background:#f6f8fa;border-left:4px solid #0072B2;padding:.3em 1em;margin:1em 0}
</style></head><body>
<h1>{{ s.experiment }} — run <code>{{ s.run }}</code></h1>
{% if verdicts %}<div id="verdict"><h2>Verdict</h2>{% for v in verdicts %}<p>{{ v|prose }}</p>{% endfor %}</div>{% endif %}
{% for sec in sections %}{{ sec }}{% endfor %}
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
{{ checks_section }}
""" + COMPARISONS_HTML + """{% if noise %}
<h2>Noise diagnostics</h2>
<p class="note">{{ noise_note }}</p>
<ul id="noise">{% for line in noise %}<li>{{ line }}</li>{% endfor %}</ul>
{% endif %}
{% if s.judge_agreement or s.judge_notes or s.judge_calibration %}
<h2>Judge agreement</h2>
<p class="note">{{ judge_note|prose }}</p>
{% for n in s.judge_notes %}<p class="warn">⚠ {{ n|prose }}</p>{% endfor %}
{% if s.judge_agreement %}
<table id="judge"><tr><th>task</th><th>judge</th><th>reference</th><th>n</th><th>confusion [[jc∧rc, jc∧rw], [jw∧rc, jw∧rw]]</th><th>agreement</th><th>κ</th><th>McNemar p</th><th>parse failures</th><th>verdict</th></tr>
{% for r in s.judge_agreement %}<tr><td>{{ r.task }}</td><td>{{ r.judge }} (<code>{{ r.judge_model }}</code>)</td><td>{{ r.reference }}</td><td class="num">{{ r.n }}</td>
<td>{{ r.confusion }}</td><td class="num">{% if not r.n %}—{% else %}{{ "%.1f"|format(100*r.agreement) }} %{% endif %}</td>
<td class="num">{% if r.kappa is none %}—{% else %}{{ "%.2f"|format(r.kappa) }}{% endif %}</td><td class="num">{{ "%.2g"|format(r.mcnemar_p) }}</td>
<td class="num">{{ r.parse_failures }} ({{ "%.0f"|format(100*r.parse_failure_rate) }} %)</td>
<td{% if r.unreliable %} class="warn"{% endif %}>{% if r.unreliable %}{{ unreliable(r) }}{% else %}agrees (κ ≥ 0.6){% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% if s.judge_calibration %}
<p>Against human labels (calibration set):</p>
<table id="judge-calibration"><tr><th>judge</th><th>labels file</th><th>labels</th><th>n compared</th><th>confusion</th><th>agreement</th><th>κ</th><th>verdict</th></tr>
{% for r in s.judge_calibration %}<tr><td>{{ r.judge }}</td><td><code>{{ r.file }}</code></td><td class="num">{{ r.labels }}</td><td class="num">{{ r.n }}</td><td>{{ r.confusion }}</td>
<td class="num">{{ "%.1f"|format(100*r.agreement) }} %</td><td class="num">{% if r.kappa is none %}—{% else %}{{ "%.2f"|format(r.kappa) }}{% endif %}</td>
<td{% if r.unreliable %} class="warn"{% endif %}>{% if r.unreliable %}unreliable (κ &lt; 0.6){% else %}agrees (κ ≥ 0.6){% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% endif %}
{% if s.judge_gate %}
<h2>Judge calibration</h2>
<p class="note">{{ gate_note|prose }}</p>
{% for g in s.judge_gate %}<p{% if g.decision == "stopped" %} class="warn"{% endif %}>{{ gate_text(g) }}</p>{% endfor %}
{% endif %}
{% if s.pairwise %}
<h2>Pairwise judge</h2>
<p class="note">{{ pairwise_note|prose }}</p>
<table id="pairwise"><tr><th>task</th><th>judge</th><th>a vs b</th><th>items</th><th>parsed both orders</th><th>position-consistent</th><th>a wins</th><th>b wins</th><th>ties</th><th>sign test p</th></tr>
{% for r in s.pairwise %}<tr><td>{{ r.task }}</td><td>{{ r.judge }} (<code>{{ r.judge_model }}</code>)</td><td>{{ r.a }} vs {{ r.b }}</td><td class="num">{{ r.n_items }}</td><td class="num">{{ r.n_parsed }}</td>
<td class="num">{{ r.consistent }}{% if r.consistency_rate is not none %} ({{ "%.0f"|format(100*r.consistency_rate) }} %){% endif %}</td><td class="num">{{ r.a_wins }}</td><td class="num">{{ r.b_wins }}</td><td class="num">{{ r.ties }}</td><td class="num">{{ "%.2g"|format(r.p_value) }}</td></tr>{% endfor %}
</table>
{% endif %}
{% if s.gap_closed %}
<h2>Gap closed</h2>
{% set named = s.gap_closed|selectattr("student", "defined")|list %}
<table id="gap"><tr><th>task</th><th>grader</th>{% if named %}<th>student</th>{% endif %}<th>(student − baseline) / (teacher − baseline) [95 % CI]</th></tr>
{% for g in s.gap_closed %}<tr><td>{{ g.task }}</td><td>{{ g.grader }}</td>{% if named %}<td>{{ g.student or "student" }}</td>{% endif %}<td class="num">{% if g.value is none %}— (teacher not above baseline){% else %}{{ "%.1f"|format(100*g.value) }} %{% if g.ci_low is not none %} [{{ "%.1f"|format(100*g.ci_low) }}, {{ "%.1f"|format(100*g.ci_high) }}]{% endif %}{% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% if power %}<h2>Power</h2><p>{{ power|prose }}</p>{% endif %}
{% if s.flips %}
<h2>Items that flipped</h2>
<table id="flips"><tr><th>task</th><th>grader</th><th>a vs b</th><th>direction</th><th>item</th><th>gold</th><th>a's answer</th><th>b's answer</th></tr>
{% for f in s.flips %}<tr><td>{{ f.task }}</td><td>{{ f.grader }}</td><td>{{ f.a }} vs {{ f.b }}</td><td>{{ f.direction }}</td>
<td>{{ f.id }}</td><td>{{ f.target }}</td><td>{{ f.answer_a }}</td><td>{{ f.answer_b }}</td></tr>{% endfor %}
</table>
{% endif %}
{% if usage_rows %}
<h2>Usage</h2>
<p class="note">{{ usage_note|prose }}</p>
<table id="usage"><tr><th>stage</th><th>model</th><th>calls</th><th>retries</th><th>input tokens</th><th>output tokens</th><th>latency p50 (s)</th><th>latency p95 (s)</th><th>cost (USD)</th></tr>
{% for r in usage_rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td>{% for c in r[2:] %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}
<h2>Stage timings</h2>
<table id="timings"><tr><th>stage</th><th>seconds</th><th>model calls</th></tr>
{% for st, sec in s.stage_seconds.items() %}<tr><td>{{ st }}</td><td class="num">{{ "%.1f"|format(sec) }}</td><td class="num">{{ s.stage_calls.get(st, 0) }}</td></tr>{% endfor %}
</table>
<p class="note">Logs: <code>{{ s.paths.logs }}</code> (open with <code>inspect view</code>).</p>
</body></html>
"""


def render_html(summary: dict[str, Any], order: list[str], sections: list[Any] = ()) -> str:
    """`sections`: ready-made (escaped) HTML blocks shown after the verdict, e.g. the regression gate's."""
    from jinja2 import Environment

    alpha = summary.get("alpha", ALPHA)
    power = power_sentence(summary["scores"], alpha)
    env = Environment(autoescape=True)
    env.filters["prose"] = prose_html  # the harness's sentences: markdown's `code` and **bold** as HTML
    leak_warning, data_section = data_html(summary)
    return env.from_string(_TEMPLATE).render(
        leak_warning=leak_warning, data_section=data_section, checks_section=checks_html(summary, order),
        s=summary, order=order, verdicts=verdict_lines(summary), sections=list(sections), family=family_note(summary.get("comparisons") or []), score_rows=score_rows(summary["scores"], order), alpha=alpha, power=power,
        note=COMPARISON_NOTE, verdict=verdict, noise_note=NOISE_NOTE,
        noise=[line[2:] for line in noise_sentences(summary["noise"])] if summary.get("noise") else [], judge_note=JUDGE_NOTE, unreliable=unreliable_sentence,
        gate_note=GATE_NOTE, gate_text=gate_text,
        pairwise_note=PAIRWISE_NOTE, usage_rows=usage_rows(summary), usage_note=USAGE_NOTE,
        plot_scores=cached_plot(summary, plot_scores, summary["scores"], order) if summary["scores"] else "",
        plot_forest=cached_plot(summary, plot_forest, summary["comparisons"]) if summary.get("comparisons") else "",
    )
