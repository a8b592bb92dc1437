"""One report over several finished runs: a Hydra multirun sweep dir, or run dirs named on the
command line. Nothing is re-run; everything comes from each run's inspect logs.

Runs are only comparable on the same evaluation items, so that is checked first. A model that gave
the same scores in every run (the teacher and the baseline of a sweep over fine-tune settings) is
shown once; anything else is labelled per setting, e.g. `student[finetune.lr=1e-3]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ReportConfig
from ..errors import HarnessError
from ._frame import load_frame
from ._html import COMPARISONS_HTML
from ._summary import COMPARISON_NOTE, SCHEMA_VERSION, _pct, comparison_lines, comparison_table, gap_table, score_table, verdict

# override keys that do not change results (kept in step with hydra.job.config.override_dirname)
NOT_SETTINGS = {"experiment", "cache", "results_dir", "cache_dir"}


@dataclass(frozen=True)
class Run:
    dir: Path
    setting: str  # readable and unique: the run dir's name (Hydra's override_dirname)
    summary: dict[str, Any]
    overrides: dict[str, str]


def read_summary(run_dir: Path) -> dict[str, Any]:
    f = run_dir / "summary.json"
    if not f.is_file():
        raise HarnessError(f"{run_dir}: no summary.json, not a finished run dir; run `harness run` first")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise HarnessError(f"{f}: not valid JSON ({e.msg} at line {e.lineno}); re-run the experiment to rewrite it") from None


def find_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run dirs under `paths`: each path is a run dir (has summary.json or
    .hydra/) or a dir of run dirs, e.g. a sweep dir (searched two levels deep)."""
    finished: list[Path] = []
    unfinished: list[Path] = []
    for p in paths:
        if not p.is_dir():
            raise HarnessError(f"{p}: no such directory; pass a run dir or a sweep dir (results/<experiment>/...)")
        candidates = [p] if (p / "summary.json").exists() or (p / ".hydra").is_dir() else \
            sorted({c.parent for pat in ("*/.hydra", "*/*/.hydra", "*/summary.json", "*/*/summary.json") for c in p.glob(pat)})
        for c in candidates:
            (finished if (c / "summary.json").is_file() else unfinished).append(c)
    if not finished:
        where = ", ".join(map(str, paths))
        raise HarnessError(f"{where}: no finished run here (no summary.json in it or the dirs below it); "
                           "run `harness run` (or finish the sweep) first")
    return finished, unfinished


def _overrides(run_dir: Path) -> dict[str, str]:
    f = run_dir / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return {}
    import yaml

    out = {}
    for o in yaml.safe_load(f.read_text()) or []:
        k, _, v = str(o).lstrip("+~").partition("=")
        if k not in NOT_SETTINGS and not k.startswith("hydra"):
            out[k] = v
    return out


def load_runs(dirs: list[Path]) -> list[Run]:
    runs = [Run(d, d.name, read_summary(d), _overrides(d)) for d in dirs]
    names = [r.setting for r in runs]
    if len(set(names)) < len(names):  # e.g. results/a/default and results/b/default
        runs = [Run(r.dir, f"{r.dir.parent.name}/{r.dir.name}", r.summary, r.overrides) for r in runs]
    return runs


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
    first = runs[0]
    ref = set(frames[first.setting][["task", "id", "target"]].itertuples(index=False, name=None))
    for r in runs[1:]:
        items = set(frames[r.setting][["task", "id", "target"]].itertuples(index=False, name=None))
        if items != ref:
            n = len(items ^ ref)
            raise HarnessError(f"{r.dir / 'data' / 'eval.jsonl'}: evaluation items differ from {first.dir / 'data' / 'eval.jsonl'} "
                               f"({n} items in only one of them); only runs evaluated on the same items can be compared — "
                               "report them separately")

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


def run_students(r: Run) -> list[str]:
    """The run's student aliases (summaries from before model grids had one, `student`)."""
    return r.summary.get("students") or ["student"]


def sweep_pairs(runs: list[Run], labels: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """Per setting: each student - baseline and teacher - each student; then every pair of
    students across settings (and within a setting, for a model grid)."""
    pairs: list[tuple[str, str]] = []

    def add(a: str | None, b: str | None) -> None:
        if a and b and a != b and (a, b) not in pairs:
            pairs.append((a, b))

    for r in runs:
        lab = labels[r.setting]
        for st in run_students(r):
            add(lab.get(st), lab.get("baseline"))
            add(lab.get("teacher"), lab.get(st))
    for r in runs:
        add(labels[r.setting].get("teacher"), labels[r.setting].get("baseline"))
    students = [labels[r.setting][st] for r in runs for st in run_students(r) if st in labels[r.setting]]
    for i, a in enumerate(students):
        for b in students[i + 1:]:
            add(a, b)
    return pairs


def analyse_sweep(runs: list[Run], rc: ReportConfig = ReportConfig()) -> dict[str, Any]:
    frame, models, labels = combine(runs)
    swept = sorted({k for r in runs for k in r.overrides if len({r2.overrides.get(k) for r2 in runs}) > 1})
    triples: list[tuple[str, str, str]] = []  # (teacher, baseline, student) labels; a shared student once
    for r in runs:
        lab = labels[r.setting]
        for st in run_students(r):
            t = (lab.get("teacher"), lab.get("baseline"), lab.get(st))
            if None not in t and t not in triples:
                triples.append(t)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "sweep",
        "experiment": ", ".join(sorted({r.summary.get("experiment", "?") for r in runs})),
        "alpha": rc.alpha,
        "runs": [{"setting": r.setting, "dir": str(r.dir), "overrides": r.overrides, "labels": labels[r.setting],
                  "students": run_students(r)} for r in runs],
        "swept": swept,
        "models": models,
        "scores": score_table(frame),
        "comparisons": comparison_table(frame, sweep_pairs(runs, labels), rc.alpha, rc.correction),
        "gap_closed": gap_table(frame, rc.alpha, triples),
        "usage": sweep_usage(runs),
    }


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
        rows.append((label, [f"{_pct(c['accuracy'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}] (n {c['n']})" if c else "—" for c in cs]))
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


def _usage_rows(s: dict[str, Any]) -> list[list[str]]:
    rows = [[u["setting"], u["model"], str(u["calls"]), "—" if u["sent"] is None else str(u["sent"]), str(u["input_tokens"]),
             str(u["output_tokens"]), f"{u['cost_usd']:.4f}"] for u in s.get("usage") or []]
    if rows:
        total = sum(u["cost_usd"] for u in s["usage"])
        rows.append(["all settings", "sum (upper bound)", str(sum(u["calls"] for u in s["usage"])),
                     str(sum(u["sent"] or 0 for u in s["usage"])), str(sum(u["input_tokens"] for u in s["usage"])),
                     str(sum(u["output_tokens"] for u in s["usage"])), f"{total:.4f}"])
    return rows


def render_sweep_markdown(s: dict[str, Any]) -> str:
    lines = [f"# {s['experiment']} — {len(s['runs'])} runs compared", ""]
    lines += ["## Settings", "", "| setting | " + "".join(f"{k} | " for k in s["swept"]) + "run dir |",
              "|---|" + "---|" * (len(s["swept"]) + 1)]
    for r in s["runs"]:
        lines.append(f"| {r['setting']} | " + "".join(f"{r['overrides'].get(k, '(default)')} | " for k in s["swept"]) + f"`{r['dir']}` |")
    cols, rows = _score_grid(s)
    lines += ["", "## Scores", "", "Accuracy % with 95 % Wilson intervals (n = items). A model with identical scores in "
              "every run is shown once; otherwise its label names the setting.", "",
              "| model | " + " | ".join(f"{t} · {g}" for t, g in cols) + " |", "|---|" + "---|" * len(cols)]
    for label, cells in rows:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += comparison_lines(s["comparisons"], s["alpha"])
    if s["gap_closed"]:
        lines += ["", "## Gap closed", "", "(student − baseline) / (teacher − baseline), 95 % paired-bootstrap CI.", "",
                  "| task | grader | student | gap closed [95 % CI] |", "|---|---|---|---|"]
        for g in s["gap_closed"]:
            val = "—" if g["value"] is None else f"{_pct(g['value'])} %" + (
                f" [{_pct(g['ci_low'])}, {_pct(g['ci_high'])}]" if g["ci_low"] is not None else "")
            lines.append(f"| {g['task']} | {g['grader']} | {g.get('student', 'student')} | {val} |")
    usage = _usage_rows(s)
    if usage:
        lines += ["", "## Usage", "", SWEEP_USAGE_NOTE, "",
                  "| setting | model | calls | sent | input tokens | output tokens | cost (USD) |", "|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in usage]
    return "\n".join(lines) + "\n"


def _plot_sweep(s: dict[str, Any]) -> str:
    """Held-out accuracy of each student against each swept parameter, with 95 % CI bands; the
    teacher and baseline as dashed reference lines when they are shared by every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ._html import _png

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
    return _png(fig)


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
""" + COMPARISONS_HTML + """{% if s.gap_closed %}
<h2>Gap closed</h2>
<table id="gap"><tr><th>task</th><th>grader</th><th>student</th><th>gap closed [95 % CI]</th></tr>
{% for g in s.gap_closed %}<tr><td>{{ g.task }}</td><td>{{ g.grader }}</td><td>{{ g.student or "student" }}</td><td class="num">{% if g.value is none %}—{% else %}{{ "%.1f"|format(100*g.value) }} %{% if g.ci_low is not none %} [{{ "%.1f"|format(100*g.ci_low) }}, {{ "%.1f"|format(100*g.ci_high) }}]{% endif %}{% endif %}</td></tr>{% endfor %}
</table>
{% endif %}
{% if usage_rows %}
<h2>Usage</h2>
<p class="note">{{ usage_note }}</p>
<table id="usage"><tr><th>setting</th><th>model</th><th>calls</th><th>sent</th><th>input tokens</th><th>output tokens</th><th>cost (USD)</th></tr>
{% for r in usage_rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td>{% for c in r[2:] %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}
</body></html>
"""


def render_sweep_html(s: dict[str, Any]) -> str:
    from jinja2 import Environment

    from ._html import _plot_forest

    cols, rows = _score_grid(s)
    return Environment(autoescape=True).from_string(_TEMPLATE).render(
        s=s, cols=cols, rows=rows, note=COMPARISON_NOTE, verdict=verdict, alpha=s["alpha"],
        usage_rows=_usage_rows(s), usage_note=SWEEP_USAGE_NOTE,
        plot_sweep=_plot_sweep(s) if s["scores"] else "",
        plot_forest=_plot_forest(s["comparisons"]) if s["comparisons"] else "")
