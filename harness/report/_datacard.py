"""The data card and the leak warning, for report.md and report.html.

Everything here reads `summary["data"]` only (see docs/summary.md), so `harness report` rebuilds it
without the data files. Question texts are user data: escaped like model output.
"""

from __future__ import annotations

from typing import Any

from ._fmt import md


def _leak_line(d: dict[str, Any]) -> str:
    leak = d.get("leak") or {}
    checks = leak.get("checks") or {}
    by = ", ".join(f"{c} {v['n']}" for c, v in checks.items())
    return f"{d.get('leak_overlap_rate', 0.0):.1%} of evaluation items match a training item" + (f" ({by})" if by else "")


def _filters_line(filters: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in filters.items())


def _synth_line(x: dict[str, Any]) -> str:
    return (f"{x['accepted']} of {x['prompts']} teacher replies were questions, {x['kept']} kept after dedup "
            f"({x.get('mentions_topic', 0):.0%} name their topic; provenance in `data/questions_provenance.jsonl`)")


def _para_line(x: dict[str, Any]) -> str:
    why = ", ".join(f"{k} {v}" for k, v in (x.get("rejected") or {}).items() if v)
    return (f"{x['accepted']} of {x['prompts']} teacher replies were new wordings{f' (not: {why})' if why else ''}, "
            f"{x.get('leaked', 0)} dropped as matching an evaluation question, {x.get('kept', 0)} kept after dedup "
            "(provenance in `data/paraphrases_provenance.jsonl`)")


def _rows_lines(rows: dict[str, Any]) -> list[str]:
    """The training rows' part of the data card (summary data.card.rows)."""
    per = rows.get("rows_per_fact") or {}
    gold = rows.get("gold_named")
    lines = [f"Training rows: {rows['n_rows']} over {rows['n_facts']} facts, rows per fact "
             f"{per.get('mean', 0):.2f} (min {per.get('min', 0)}, max {per.get('max', 0)}); answers naming the gold: "
             + (f"{gold:.1%} of the {rows['n_with_gold']} rows with one" if gold is not None else "n/a (no gold)"), "",
             "| training rows | distinct-1 | distinct-2 |", "|---|---|---|"]
    lines += [f"| {name} | {v['distinct_1']:.3f} | {v['distinct_2']:.3f} |" for name, v in (rows.get("distinct") or {}).items()]
    return lines


def leak_warning(summary: dict[str, Any]) -> str:
    """A non-empty sentence when the run went on despite a leak (data.allow_leak=true)."""
    d = summary.get("data") or {}
    if not d.get("leak_overlap_rate") or not (d.get("leak") or {}).get("allowed"):
        return ""
    return (f"Leak: {_leak_line(d)}, above data.leak_threshold, and the run went on because data.allow_leak=true. "
            "Held-out scores may overstate what the student generalises; see the closest pairs under Data.")


def _groups(card: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[int]]]]:
    sets = list(card.get("groups") or {})
    names = sorted({g for counts in card["groups"].values() for g in counts}) if sets else []
    return sets, [(g, [card["groups"][s].get(g, 0) for s in sets]) for g in names]


def data_markdown(summary: dict[str, Any]) -> list[str]:
    """Lines for the Data section of report.md (after the counts the section opens with)."""
    d = summary.get("data") or {}
    lines = []
    if "n_removed_duplicates" in d:
        lines.append(f"- duplicate training questions removed: {d['n_removed_duplicates']} (pairs: `data/duplicates.jsonl`)")
    if d.get("synthesis"):
        lines.append(f"- synthesised questions: {_synth_line(d['synthesis'])}")
    if d.get("paraphrases"):
        lines.append(f"- paraphrased questions: {_para_line(d['paraphrases'])}")
    if d.get("filters"):
        lines.append(f"- teacher answers removed by filters: {_filters_line(d['filters'])} (rows in `data/filtered.jsonl`)")
    lines.append(f"- leak check (train questions + teacher answers vs evaluation questions): {_leak_line(d)}")
    leak = d.get("leak") or {}
    if leak.get("closest"):
        th = leak.get("thresholds") or {}
        lines += ["", f"Closest evaluation/training pairs (flag at: word {th.get('ngram')}-gram overlap ≥ {th.get('ngram_overlap')}, "
                      f"MinHash ≥ {th.get('minhash')}, embedding cosine ≥ {th.get('embedding')}; the 10 closest in `data/leak.json`):", "",
                  "| evaluation question | closest training question | flagged by | ngram | minhash | embedding |", "|---|---|---|---|---|---|"]
        for c in leak["closest"][:5]:
            emb = f"{c['embedding']:.2f}" if "embedding" in c else "—"
            lines.append(f"| {md(c['eval_question'], 60)} | {md(c['train_question'], 60)} | {', '.join(c['flagged_by']) or '—'} | "
                         f"{c.get('ngram', 0):.2f} | {c.get('minhash', 0):.2f} | {emb} |")
    card = d.get("card") or {}
    if card.get("groups"):
        sets, rows = _groups(card)
        lines += ["", "### Data card", "", "Questions per group:", "", "| group | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        lines += [f"| {md(g, 40)} | " + " | ".join(str(n) for n in ns) + " |" for g, ns in rows]
        disp = card.get("dispersion") or {}
        lines += ["", "| set | distinct-1 | distinct-2 | embedding dispersion |", "|---|---|---|---|"]
        for name, v in (card.get("distinct") or {}).items():
            spread = f"{disp[name]:.3f}" if disp.get(name) is not None else "—"
            lines.append(f"| {name} | {v['distinct_1']:.3f} | {v['distinct_2']:.3f} | {spread} |")
        lines += ["", "distinct-n = unique word n-grams / all word n-grams; dispersion = mean pairwise cosine distance of "
                      f"the question embeddings ({card.get('embedding_model') or 'embeddings off'}). "
                      + ("The 2-D map of the questions is in report.html." if card.get("map") else "")]
        if card.get("rows"):
            lines += ["", *_rows_lines(card["rows"])]
    return lines


def _plot_map(points: dict[str, list[list[float]]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ._plots import png

    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    palette = dict(zip(points, sns.color_palette("colorblind", len(points))))
    for name, xy in points.items():
        if xy:
            xs, ys = zip(*xy)
            ax.scatter(xs, ys, s=14 if name == "train" else 26, alpha=0.5 if name == "train" else 0.9,
                       marker="o" if name == "train" else "X", color=palette[name], label=f"{name} ({len(xy)})")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("questions, PCA of sentence embeddings", fontsize=10)
    return png(fig)


def _cached_map(summary: dict[str, Any], points: dict[str, list[list[float]]]) -> str:
    from ._plots import cached_plot

    return cached_plot(summary, _plot_map, points)


_HTML = """
{% if warning %}<p id="leak-warning" style="border:2px solid #c00;background:#fee;padding:.6em;font-weight:bold">⚠ {{ warning|prose }}</p>{% endif %}
"""

_CARD = """<h2>Data</h2>
<ul id="data">
<li>training questions: {{ d.n_train }}{% if d.n_removed_duplicates is defined %} ({{ d.n_removed_duplicates }} duplicates removed, pairs in <code>data/duplicates.jsonl</code>){% endif %}; rows in the training file: {{ d.get("n_train_rows", "n/a") }} (teacher answers containing the gold: {{ d.get("n_train_gold", "n/a") }})</li>
<li>evaluation items: {{ d.n_eval }}{% if d.n_eval_by_task %} ({% for t, n in d.n_eval_by_task.items() %}{{ t }}: {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}){% endif %}</li>
{% if d.synthesis %}<li>synthesised questions: {{ synth_line|prose }}</li>{% endif %}
{% if d.paraphrases %}<li>paraphrased questions: {{ para_line|prose }}</li>{% endif %}
{% if d.filters %}<li>teacher answers removed by filters: {{ filters_line }} (rows in <code>data/filtered.jsonl</code>)</li>{% endif %}
<li>leak check: {{ leak_line }}</li>
</ul>
{% if closest %}
<table id="leak-pairs"><tr><th>evaluation question</th><th>closest training question</th><th>flagged by</th><th>ngram</th><th>minhash</th><th>embedding</th></tr>
{% for c in closest %}<tr><td>{{ c.eval_question }}</td><td>{{ c.train_question }}</td><td>{{ c.flagged_by|join(", ") or "—" }}</td>
<td class="num">{{ "%.2f"|format(c.ngram) }}</td><td class="num">{{ "%.2f"|format(c.minhash) }}</td><td class="num">{% if c.embedding is defined %}{{ "%.2f"|format(c.embedding) }}{% else %}—{% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% if sets %}
<h3>Data card</h3>
<table id="data-groups"><tr><th>group</th>{% for s in sets %}<th>{{ s }}</th>{% endfor %}</tr>
{% for g, ns in rows %}<tr><td>{{ g }}</td>{% for n in ns %}<td class="num">{{ n }}</td>{% endfor %}</tr>{% endfor %}
</table>
<table id="data-diversity"><tr><th>set</th><th>distinct-1</th><th>distinct-2</th><th>embedding dispersion</th></tr>
{% for s, v in card.distinct.items() %}<tr><td>{{ s }}</td><td class="num">{{ "%.3f"|format(v.distinct_1) }}</td><td class="num">{{ "%.3f"|format(v.distinct_2) }}</td>
<td class="num">{% if disp.get(s) is not none %}{{ "%.3f"|format(disp[s]) }}{% else %}—{% endif %}</td></tr>{% endfor %}
</table>
{% if card.rows %}<p id="data-rows">Training rows: {{ card.rows.n_rows }} over {{ card.rows.n_facts }} facts, rows per fact {{ "%.2f"|format(card.rows.rows_per_fact.mean) }} (min {{ card.rows.rows_per_fact.min }}, max {{ card.rows.rows_per_fact.max }}); answers naming the gold: {% if card.rows.gold_named is not none %}{{ "%.1f"|format(100 * card.rows.gold_named) }}% of the {{ card.rows.n_with_gold }} rows with one{% else %}n/a (no gold){% endif %}</p>
<table id="data-rows-diversity"><tr><th>training rows</th><th>distinct-1</th><th>distinct-2</th></tr>
{% for s, v in card.rows.distinct.items() %}<tr><td>{{ s }}</td><td class="num">{{ "%.3f"|format(v.distinct_1) }}</td><td class="num">{{ "%.3f"|format(v.distinct_2) }}</td></tr>{% endfor %}
</table>{% endif %}
{% if plot_map %}<img id="plot-data-map" alt="2-D map of training and evaluation questions" src="{{ plot_map }}">{% endif %}
{% endif %}
"""


def data_html(summary: dict[str, Any]) -> tuple[Any, Any]:
    """(leak warning, Data section) as safe HTML for report.html (rendered here with autoescape on)."""
    from jinja2 import Environment
    from markupsafe import Markup

    from ._fmt import prose_html

    env = Environment(autoescape=True)
    env.filters["prose"] = prose_html  # the harness's sentences: markdown's `code` as HTML
    d = summary.get("data") or {}
    warning = Markup(env.from_string(_HTML).render(warning=leak_warning(summary)))
    if not d:
        return warning, Markup("")
    card = d.get("card") or {"distinct": {}}
    sets, rows = _groups(card) if card.get("groups") else ([], [])
    points = (card.get("map") or {}).get("points")
    section = env.from_string(_CARD).render(
        d=d, leak_line=_leak_line(d), synth_line=_synth_line(d["synthesis"]) if d.get("synthesis") else "",
        para_line=_para_line(d["paraphrases"]) if d.get("paraphrases") else "", filters_line=_filters_line(d.get("filters") or {}), closest=((d.get("leak") or {}).get("closest") or [])[:5], card=card, sets=sets, rows=rows,
        disp=card.get("dispersion") or {}, plot_map=_cached_map(summary, points) if points else "")
    return warning, Markup(section)
