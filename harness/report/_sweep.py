"""One report over several finished runs: a Hydra multirun sweep dir, or run dirs named on the
command line. Nothing is re-run; everything comes from each run's inspect logs.

Runs are only comparable on the same evaluation items, so that is checked first. A model that gave
the same scores in every run (the teacher and the baseline of a sweep over fine-tune settings) is
shown once; anything else is labelled per setting, e.g. `student[finetune.lr=1e-3]`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..config import ReportConfig
from ..errors import HarnessError
from ..runs import Run, load_frame, run_students, same_items
from ..stats import paired_interval, winner_test
from ._analysis import MARGIN, SCHEMA_VERSION, comparison_table, excluded_cells, gap_table, item_means, score_table
from ._build import experiment_margin
from ._fmt import md, pct, prose_html
from ._html import COMPARISONS_HTML
from ._markdown import COMPARISON_NOTE, comparison_lines, family_note, verdict, verdict_lines
from ._noise import NOISE_NOTE, noise_markdown, noise_sentences, noise_table


def combine(runs: list[Run]) -> tuple[pd.DataFrame, dict[str, str], dict[str, dict[str, str]]]:
    """One frame with per-setting model labels. Returns (frame, {label: model string},
    {setting: {alias: label}})."""
    frames: dict[str, pd.DataFrame] = {}
    for r in runs:
        f = load_frame(r.dir / "logs")
        if f.empty:
            raise HarnessError(f"{r.dir / 'logs'}: no finished inspect logs; re-run that experiment to finish it")
        frames[r.setting] = f
    # the same evaluation items in every run, or the comparison is meaningless
    same_items(frames, {r.setting: r.dir for r in runs})

    def scores(f: pd.DataFrame, alias: str) -> pd.Series:
        s = f[f.alias == alias].set_index(["task", "grader", "id", "epoch"])["value"]
        return s.sort_index()

    labels: dict[str, dict[str, str]] = {r.setting: {} for r in runs}
    models: dict[str, str] = {}
    out = []
    aliases = sorted({a for f in frames.values() for a in f.alias.unique()},
                     key=lambda a: (["teacher", "baseline", "student"] + [a]).index(a))
    for alias in aliases:
        present = [r for r in runs if alias in set(frames[r.setting].alias)]
        ref_s = scores(frames[present[0].setting], alias)
        # the same model string (a student's names its fine-tune key) and the same per-item scores
        same = all(
            scores(frames[r.setting], alias).equals(ref_s)
            and r.summary["models"].get(alias) == present[0].summary["models"].get(alias) for r in present[1:])
        for k, r in enumerate(present):
            label = alias if same else f"{alias}[{r.setting}]"
            labels[r.setting][alias] = label
            models[label] = r.summary["models"].get(alias, "")
            if same and k > 0:
                continue  # identical scores: shown once
            f = frames[r.setting]
            out.append(f[f.alias == alias].assign(alias=label))
    return pd.concat(out, ignore_index=True), models, labels


def sweep_pairs(runs: list[Run], labels: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """Per setting: each student - baseline and teacher - each student; then every pair of
    students across settings (and within a setting, for a model grid)."""
    pairs: list[tuple[str, str]] = []

    def add(a: str | None, b: str | None) -> None:
        if a and b and a != b and (a, b) not in pairs:
            pairs.append((a, b))

    for r in runs:
        lab = labels[r.setting]
        for st in run_students(r.summary):
            add(lab.get(st), lab.get("baseline"))
            add(lab.get("teacher"), lab.get(st))
    for r in runs:
        add(labels[r.setting].get("teacher"), labels[r.setting].get("baseline"))
    students = [labels[r.setting][st] for r in runs for st in run_students(r.summary) if st in labels[r.setting]]
    for i, a in enumerate(students):
        for b in students[i + 1:]:
            add(a, b)
    return pairs


def analyse_sweep(runs: list[Run], rc: ReportConfig | None = None) -> dict[str, Any]:
    rc = rc or ReportConfig()
    frame, models, labels = combine(runs)
    swept = sorted({k for r in runs for k in r.overrides if len({r2.overrides.get(k) for r2 in runs}) > 1})
    triples: list[tuple[str, str, str]] = []  # (teacher, baseline, student) labels; a shared student once
    for r in runs:
        lab = labels[r.setting]
        for st in run_students(r.summary):
            t = (lab.get("teacher"), lab.get("baseline"), lab.get(st))
            if None not in t and t not in triples:
                triples.append(t)
    students = [labels[r.setting][st] for r in runs for st in run_students(r.summary) if st in labels[r.setting]]
    margin = experiment_margin(runs[0].summary.get("config") or {}) if runs else MARGIN
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "sweep",
        "experiment": ", ".join(sorted({r.summary.get("experiment", "?") for r in runs})),
        "alpha": rc.alpha,
        "runs": [{"setting": r.setting, "dir": str(r.dir), "overrides": r.overrides, "labels": labels[r.setting],
                  "students": run_students(r.summary)} for r in runs],
        "swept": swept,
        "models": models,
        **sweep_tables(frame, sweep_pairs(runs, labels), triples, list(dict.fromkeys(students)), rc, margin,
                       sweep_excluded(runs, rc)),
        "usage": sweep_usage(runs),
        "finetunes": sweep_finetunes(runs, labels),
    }


def sweep_excluded(runs: list[Run], rc: ReportConfig) -> dict[tuple[str, str], str]:
    """(task, grader) -> why: the cells any run's own report left out of its tested family (a judge that
    failed its validation, or that its calibration stopped; a degenerate grader), read from the runs'
    summaries. Left out of the sweep's family too: a sweep must not call a difference significant on a
    cell its runs' reports would not test, nor let such cells enlarge the correction of the others."""
    out: dict[tuple[str, str], str] = {}
    for r in runs:
        for cell, why in excluded_cells(r.summary.get("judge_agreement") or [], r.summary.get("grader_checks") or [], rc).items():
            out.setdefault(cell, f"{why}; in setting {r.setting}")
    return out


def sweep_tables(frame: pd.DataFrame, pairs: list[tuple[str, str]], triples: list[tuple[str, str, str]], students: list[str],
                 rc: ReportConfig, margin: float = MARGIN, excluded: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """The sweep report's figures from the combined frame: scores, comparisons (the one paired
    interval per kind of score, as in a run's report and the gate; `excluded` cells shown, not tested),
    gap closed, and the winner."""
    means = item_means(frame) if not frame.empty else None
    return {"scores": score_table(frame, means),
            "comparisons": comparison_table(frame, pairs, rc.alpha, rc.correction, means, excluded, margin),
            "gap_closed": gap_table(frame, rc.alpha, triples, means),
            "winner": winner(means, students, rc.alpha), "noise": noise_table(frame, means)}


def _main_cell(means: pd.Series, students: list[str]) -> tuple[str, str] | None:
    """The (task, grader) a best student is named on: the held-out task, `contains` if graded."""
    mask = means.index.get_level_values("alias").isin(students)
    keys = means[mask].index.to_frame(index=False)[["task", "grader"]].astype(str).drop_duplicates()
    cells = sorted(zip(keys["task"], keys["grader"]))
    if not cells:
        return None
    tasks = [t for t, _ in cells]
    task = "heldout" if "heldout" in tasks else tasks[0]
    graders = [g for t, g in cells if t == task]
    return task, "contains" if "contains" in graders else graders[0]


def winner(means: pd.Series | None, students: list[str], alpha: float, baseline: str = "baseline") -> dict[str, Any] | None:
    """The best student (highest accuracy on the main cell) tested against the shared baseline two
    ways, side by side: naive (the paired interval and p as if it had been chosen in advance) and
    selection-adjusted (max-statistic permutation over all the students: harness.stats.winner_test).
    None without a shared baseline or with fewer than two students (nothing was selected)."""
    if means is None or len(students) < 2:
        return None
    cell = _main_cell(means, students)
    if cell is None:
        return None
    wide = means.xs(cell, level=["task", "grader"]).unstack("alias")
    arms = [s for s in students if s in wide.columns]
    if baseline not in wide.columns or len(arms) < 2:
        return None
    w = winner_test([wide[a].to_numpy(float) for a in arms], wide[baseline].to_numpy(float), alpha)
    best = arms[w.best]
    naive = paired_interval(wide[best].to_numpy(float), wide[baseline].to_numpy(float), alpha)
    return {"task": cell[0], "grader": cell[1], "model": best, "baseline": baseline, "n_arms": w.n_arms, "n": w.n,
            "diff": round(w.diff, 6), "naive_ci_low": round(naive.ci_low, 6), "naive_ci_high": round(naive.ci_high, 6),
            "naive_p": naive.p_value, "naive_test": naive.method, "adjusted_p": w.p_adjusted,
            "adjusted_lower": round(w.lower_adjusted, 6), "adjusted_test": w.method,
            "significant_adjusted": bool(w.p_adjusted < alpha)}


def winner_line(w: dict[str, Any] | None, alpha: float) -> str | None:
    """The winner's naive and selection-adjusted figures in one sentence."""
    if not w:
        return None
    return (f"Best of {w['n_arms']} students on {w['task']} ({w['grader']}): {w['model']}, {100 * w['diff']:+.1f} pp over "
            f"{w['baseline']} (n = {w['n']}). Naive, as if chosen in advance: [{100 * w['naive_ci_low']:+.1f}, "
            f"{100 * w['naive_ci_high']:+.1f}], p = {w['naive_p']:.2g} ({w['naive_test']}). Selection accounted for: "
            f"p = {w['adjusted_p']:.2g}, one-sided {100 * (1 - alpha):g} % lower bound {100 * w['adjusted_lower']:+.1f} pp "
            f"({w['adjusted_test']}): " + ("the winner's advantage holds." if w["significant_adjusted"] else
                                          "not shown once the selection is accounted for."))


def _label_order(s: dict[str, Any]) -> list[str]:
    fixed = [lab for r in s["runs"] for lab in r["labels"].values()]
    return list(dict.fromkeys(sorted(fixed, key=lambda a: ["teacher", "baseline", "student"].index(a.split("[")[0])
                                     if a.split("[")[0] in ("teacher", "baseline", "student") else 3)))


def _score_grid(s: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """Rows = model labels, columns = task x grader, cells "acc [lo, hi]"."""
    cols = sorted({(r["task"], r["grader"]) for r in s["scores"]}, key=lambda k: (k[0] != "heldout", k))
    cell = {(r["model"], r["task"], r["grader"]): r for r in s["scores"]}
    rows = []
    for label in _label_order(s):
        cs = [cell.get((label, t, g)) for t, g in cols]
        rows.append((label, [f"{pct(c['accuracy'])} [{pct(c['ci_low'])}, {pct(c['ci_high'])}] (n {c['n']})" if c else "—" for c in cs]))
    return cols, rows


SWEEP_USAGE_NOTE = ("Per setting, what producing its results cost (see a run's report for the per-stage split). "
                    "Settings share cached stages (the teacher's answers of a fine-tune sweep), and each setting "
                    "counts what it uses, so the sum over settings is an upper bound on what was spent; `sent` is "
                    "the model calls each job actually sent.")


def sweep_usage(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per setting x model: calls, tokens, cost (from each run's `usage`) and the calls its
    job actually sent (`model_calls`)."""
    out = []
    for r in runs:
        sent = r.summary.get("model_calls") or {}
        for alias, u in (r.summary.get("usage") or {}).items():
            out.append({"setting": r.setting, "model": alias, "calls": u["calls"], "sent": sent.get(alias),
                        "input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"], "cost_usd": u["cost_usd"]})
    return out


SWEEP_FINETUNE_NOTE = ("Per student: how it was fine-tuned and what that cost (from each run's fine-tune metrics; a "
                       "cached fine-tune shows the figures of the run that trained it). Train seconds are the training "
                       "loop; teacher seconds the teacher's forward passes (kd's cached top-k log-probs are computed "
                       "before the loop, once per content hash); tokens are the tokens the loop read, "
                       "sampled tokens those on_policy generated. How far each student moved from its base: weight "
                       "delta = the Frobenius norm of its weights minus the base's (LoRA: the merged update), KL to base = "
                       "KL(student || base) per token on its greedy answers to held-out prompts (docs/distillation.md).")


def sweep_finetunes(runs: list[Run], labels: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """One row per setting x student: method, objective, steps, train seconds, tokens, teacher cost."""
    out = []
    for r in runs:
        for alias, m in (r.summary.get("finetunes") or {}).items():
            if not m or m.get("method") in (None, "none"):
                continue
            tps, sec = m.get("tokens_per_second"), m.get("train_seconds")
            tokens = m.get("tokens", round(tps * sec) if tps and sec else None)
            out.append({"setting": r.setting, "student": labels[r.setting].get(alias, alias), "method": m.get("method"),
                        "objective": m.get("objective", "sft"), "steps": m.get("steps"), "train_seconds": sec, "tokens": tokens,
                        "tokens_per_second": tps, "teacher_seconds": m.get("teacher_seconds", 0.0),
                        "sampled_tokens": m.get("sampled_tokens"), "weight_delta_norm": m.get("weight_delta_norm"),
                        "kl_to_base": (m.get("kl_to_base") or {}).get("per_token")})
    return out


def _finetune_rows(s: dict[str, Any]) -> list[list[str]]:
    def num(v: Any) -> str:
        return "—" if v is None else str(v)

    return [[f["student"], f["method"], f["objective"], num(f["steps"]), num(f["train_seconds"]), num(f["tokens"]),
             num(f["tokens_per_second"]), num(f["teacher_seconds"]), num(f["sampled_tokens"]), num(f.get("weight_delta_norm")),
             num(f.get("kl_to_base"))] for f in s.get("finetunes") or []]


def _usage_rows(s: dict[str, Any]) -> list[list[str]]:
    rows = [[u["setting"], u["model"], str(u["calls"]), "—" if u["sent"] is None else str(u["sent"]), str(u["input_tokens"]),
             str(u["output_tokens"]), f"{u['cost_usd']:.4f}"] for u in s.get("usage") or []]
    if rows:
        total = sum(u["cost_usd"] for u in s["usage"])
        rows.append(["all settings", "sum (upper bound)", str(sum(u["calls"] for u in s["usage"])),
                     str(sum(u["sent"] or 0 for u in s["usage"])), str(sum(u["input_tokens"] for u in s["usage"])),
                     str(sum(u["output_tokens"] for u in s["usage"])), f"{total:.4f}"])
    return rows


def sweep_verdict(s: dict[str, Any]) -> list[str]:
    """The sweep report's opening sentences: the best setting, the significant differences, the cost."""
    out = []
    task = next((r["task"] for r in s["scores"] if r["task"] == "heldout"), s["scores"][0]["task"] if s["scores"] else None)
    students = {lab for r in s["runs"] for st in r.get("students") or [] for lab in [r["labels"].get(st)] if lab}
    cells = [r for r in s["scores"] if r["task"] == task and r["model"] in students]
    graders = sorted({r["grader"] for r in cells})
    grader = "contains" if "contains" in graders else (graders[0] if graders else None)
    best = max((r for r in cells if r["grader"] == grader), key=lambda r: r["accuracy"], default=None)
    if best:
        out.append(f"Best student on {task} ({grader}): {best['model']}, {pct(best['accuracy'])} % "
                   f"[{pct(best['ci_low'])}, {pct(best['ci_high'])}] (n = {best['n']}).")
    line = winner_line(s.get("winner"), s["alpha"])
    if line:
        out.append(line)
    out += verdict_lines({"comparisons": s["comparisons"], "alpha": s["alpha"], "gap_closed": []})
    if s.get("usage"):
        out.append(f"Cost over all settings (upper bound, shared cache counted per setting): "
                   f"${sum(u['cost_usd'] for u in s['usage']):.4f}, {sum(u['calls'] for u in s['usage'])} model calls.")
    return out


def render_sweep_markdown(s: dict[str, Any]) -> str:
    lines = [f"# {s['experiment']} — {len(s['runs'])} runs compared", ""]
    verdicts = sweep_verdict(s)
    if verdicts:
        # the labels carry swept values (the user's text): escaped, as in the tables
        lines += ["## Verdict", "", *[f"- {md(v, 2000)}" for v in verdicts], ""]
    lines += ["## Settings", "", "| setting | " + "".join(f"{md(k, 300)} | " for k in s["swept"]) + "run dir |",
              "|---|" + "---|" * (len(s["swept"]) + 1)]
    for r in s["runs"]:
        # override values are the user's text: escaped like every other cell
        lines.append(f"| {md(r['setting'], 300)} | " + "".join(f"{md(str(r['overrides'].get(k, '(default)')), 300)} | " for k in s["swept"])
                     + f"{md(str(r['dir']), 1000)} |")
    cols, rows = _score_grid(s)
    lines += ["", "## Scores", "", "Accuracy % with 95 % Wilson intervals (n = items). A model with identical scores in "
              "every run is shown once; otherwise its label names the setting.", "",
              "| model | " + " | ".join(f"{t} · {g}" for t, g in cols) + " |", "|---|" + "---|" * len(cols)]
    for label, cells in rows:
        lines.append(f"| {md(label, 300)} | " + " | ".join(cells) + " |")
    lines += comparison_lines(s["comparisons"], s["alpha"])
    lines += noise_markdown(s.get("noise"))
    if s["gap_closed"]:
        lines += ["", "## Gap closed", "", "(student − baseline) / (teacher − baseline), 95 % paired-bootstrap CI.", "",
                  "| task | grader | student | gap closed [95 % CI] |", "|---|---|---|---|"]
        for g in s["gap_closed"]:
            val = "—" if g["value"] is None else f"{pct(g['value'])} %" + (
                f" [{pct(g['ci_low'])}, {pct(g['ci_high'])}]" if g["ci_low"] is not None else "")
            lines.append(f"| {g['task']} | {g['grader']} | {g.get('student', 'student')} | {val} |")
    fts = _finetune_rows(s)
    if fts:
        lines += ["", "## Fine-tunes", "", SWEEP_FINETUNE_NOTE, "",
                  "| student | method | objective | steps | train seconds | tokens | tokens/s | teacher seconds | sampled tokens "
                  "| weight delta | KL to base |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join([md(r[0], 300), md(r[1], 100), md(r[2], 100), *r[3:]]) + " |" for r in fts]
    usage = _usage_rows(s)
    if usage:
        lines += ["", "## Usage", "", SWEEP_USAGE_NOTE, "",
                  "| setting | model | calls | sent | input tokens | output tokens | cost (USD) |", "|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join([md(r[0], 300), md(r[1], 300), *r[2:]]) + " |" for r in usage]
    return "\n".join(lines) + "\n"


def _plot_sweep(s: dict[str, Any]) -> str:
    """Held-out accuracy of each student against each swept parameter, with 95 % CI bands; the
    teacher and baseline as dashed reference lines when they are shared by every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ._plots import png

    sns.set_theme(style="whitegrid")
    task = "heldout" if any(r["task"] == "heldout" for r in s["scores"]) else s["scores"][0]["task"]
    graders = sorted({r["grader"] for r in s["scores"] if r["task"] == task})
    cell = {(r["model"], r["grader"]): r for r in s["scores"] if r["task"] == task}
    keys = s["swept"] or ["setting"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False, sharey=True)
    palette = sns.color_palette("colorblind", 8)
    for ax, key in zip(axes[0], keys):
        rows = []
        for r in s["runs"]:
            x = r["setting"] if key == "setting" else r["overrides"].get(key, "(default)")
            others = ", ".join(f"{k}={r['overrides'].get(k, '-')}" for k in s["swept"] if k != key)
            for st in r.get("students") or ["student"]:
                for g in graders:
                    c = cell.get((r["labels"].get(st), g))
                    if c:
                        rows.append((x, f"{st} · {g}" + (f" · {others}" if others else ""), c["accuracy"], c["ci_low"], c["ci_high"]))
        try:
            order = sorted({row[0] for row in rows}, key=float)
            numeric = True
        except ValueError:
            order, numeric = list(dict.fromkeys(row[0] for row in rows)), False
        pos = {v: (float(v) if numeric else k) for k, v in enumerate(order)} if numeric else {v: k for k, v in enumerate(order)}
        for k, line in enumerate(sorted({row[1] for row in rows})):
            pts = sorted((pos[row[0]], row[2], row[3], row[4]) for row in rows if row[1] == line)
            xs = [p[0] for p in pts]
            color = palette[k % len(palette)]
            ax.plot(xs, [100 * p[1] for p in pts], "o-", color=color, label=line)
            ax.fill_between(xs, [100 * p[2] for p in pts], [100 * p[3] for p in pts], color=color, alpha=0.2)
        for ref, style in (("teacher", "--"), ("baseline", ":")):
            for g in graders[:1]:
                c = cell.get((ref, g))
                if c:
                    ax.axhline(100 * c["accuracy"], color="gray", ls=style, lw=1, label=f"{ref} · {g}")
        if not numeric:
            ax.set_xticks(range(len(order)), order, rotation=30, fontsize=8)
        elif len(order) <= 8:
            ax.set_xticks([float(v) for v in order], order, fontsize=8)
        elif len(order) > 2 and float(order[-1]) / max(float(order[0]), 1e-12) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel(f"{task} accuracy % (95 % CI)")
    axes[0][-1].legend(fontsize=7, loc="best")
    return png(fig)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{{ s.experiment }} — {{ s.runs|length }} runs</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}.sig{font-weight:bold}
.note{color:#555;font-size:.9em}img{max-width:100%}
</style></head><body>
<h1>{{ s.experiment }} — {{ s.runs|length }} runs compared</h1>
{% if verdicts %}<div id="verdict"><h2>Verdict</h2>{% for v in verdicts %}<p>{{ v|prose }}</p>{% endfor %}</div>{% endif %}
<h2>Settings</h2>
<table id="settings"><tr><th>setting</th>{% for k in s.swept %}<th>{{ k }}</th>{% endfor %}<th>run dir</th></tr>
{% for r in s.runs %}<tr><td>{{ r.setting }}</td>{% for k in s.swept %}<td>{{ r.overrides.get(k, "(default)") }}</td>{% endfor %}<td><code>{{ r.dir }}</code></td></tr>{% endfor %}
</table>
<img id="plot-sweep" alt="accuracy against each swept parameter" src="{{ plot_sweep }}">
<h2>Scores</h2>
<p class="note">Accuracy % with 95 % Wilson intervals. A model with identical scores in every run is shown once.</p>
<table id="scores"><tr><th>model</th>{% for t, g in cols %}<th>{{ t }} · {{ g }}</th>{% endfor %}</tr>
{% for label, cells in rows %}<tr><td>{{ label }}</td>{% for c in cells %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
""" + COMPARISONS_HTML + """{% if noise %}
<h2>Noise diagnostics</h2>
<p class="note">{{ noise_note }}</p>
<ul id="noise">{% for line in noise %}<li>{{ line }}</li>{% endfor %}</ul>
{% endif %}
{% if s.gap_closed %}
<h2>Gap closed</h2>
<table id="gap"><tr><th>task</th><th>grader</th><th>student</th><th>gap closed [95 % CI]</th></tr>
{% for g in s.gap_closed %}<tr><td>{{ g.task }}</td><td>{{ g.grader }}</td><td>{{ g.student or "student" }}</td><td class="num">{% if g.value is none %}—{% else %}{{ "%.1f"|format(100*g.value) }} %{% if g.ci_low is not none %} [{{ "%.1f"|format(100*g.ci_low) }}, {{ "%.1f"|format(100*g.ci_high) }}]{% endif %}{% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% if finetune_rows %}
<h2>Fine-tunes</h2>
<p class="note">{{ finetune_note }}</p>
<table id="finetunes"><tr><th>student</th><th>method</th><th>objective</th><th>steps</th><th>train seconds</th><th>tokens</th><th>tokens/s</th><th>teacher seconds</th><th>sampled tokens</th><th>weight delta</th><th>KL to base</th></tr>
{% for r in finetune_rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td><td>{{ r[2] }}</td>{% for c in r[3:] %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}
{% if usage_rows %}
<h2>Usage</h2>
<p class="note">{{ usage_note|prose }}</p>
<table id="usage"><tr><th>setting</th><th>model</th><th>calls</th><th>sent</th><th>input tokens</th><th>output tokens</th><th>cost (USD)</th></tr>
{% for r in usage_rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td>{% for c in r[2:] %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}
</body></html>
"""


def render_sweep_html(s: dict[str, Any]) -> str:
    from jinja2 import Environment

    from ._plots import plot_forest

    cols, rows = _score_grid(s)
    env = Environment(autoescape=True)
    env.filters["prose"] = prose_html  # the harness's sentences: markdown's `code` and **bold** as HTML
    return env.from_string(_TEMPLATE).render(
        s=s, cols=cols, rows=rows, note=COMPARISON_NOTE, family=family_note(s["comparisons"]), verdicts=sweep_verdict(s), verdict=verdict, alpha=s["alpha"],
        noise_note=NOISE_NOTE, noise=[line[2:] for line in noise_sentences(s["noise"])] if s.get("noise") else [],
        usage_rows=_usage_rows(s), usage_note=SWEEP_USAGE_NOTE, finetune_rows=_finetune_rows(s), finetune_note=SWEEP_FINETUNE_NOTE,
        plot_sweep=_plot_sweep(s) if s["scores"] else "",
        plot_forest=plot_forest(s["comparisons"]) if s["comparisons"] else "")
