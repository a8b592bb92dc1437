"""`harness report MULTIRUN_DIR`: one table and one plot across the jobs of a sweep.

Each job of `harness run ... --multirun` is an ordinary run dir with its own summary.json; the
swept values are read back from the job's `.hydra/overrides.yaml`. The plot puts the swept numeric
setting on x, the student's accuracy (95 % Wilson CI, from summary.json) on y, one line per value
of the other settings, teacher and baseline as reference bands, one panel per task x grader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cache import write_text
from ..errors import HarnessError

_NOT_SWEPT = {"experiment", "results_dir", "cache", "cache_dir"}


def _params(job: Path) -> dict[str, str]:
    import yaml

    f = job / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(f.read_text()) if f.is_file() else []
    pairs = [str(o).split("=", 1) for o in items or [] if "=" in str(o)]
    return {k: v for k, v in pairs if k not in _NOT_SWEPT}


def sweep_rows(root: Path) -> list[dict[str, Any]]:
    import json

    rows = []
    for f in sorted(root.glob("*/summary.json")):
        s = json.loads(f.read_text())
        p = _params(f.parent)
        for r in s["scores"]:
            rows.append({**p, "job": f.parent.name, "n_train": s["data"]["n_train"], **r})
    return rows


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _plot(rows: list[dict[str, Any]], x: str, hue: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ._html import _png

    sns.set_theme(style="whitegrid")
    panels = sorted({(r["task"], r["grader"]) for r in rows}, key=lambda k: (k[0] != "heldout", k))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, (task, grader) in zip(axes[0], panels):
        cell = [r for r in rows if (r["task"], r["grader"]) == (task, grader)]
        for ref, colour in (("teacher", "#999999"), ("baseline", "#cccccc")):
            accs = [100 * r["accuracy"] for r in cell if r["model"] == ref]
            if accs:
                ax.axhspan(min(accs), max(accs) + 0.3, color=colour, alpha=0.5, label=f"{ref} (range)")
        groups = sorted({tuple(r[h] for h in hue) for r in cell})
        for g, colour in zip(groups, sns.color_palette("colorblind", len(groups))):
            pts = sorted((float(r[x]), r) for r in cell if r["model"] == "student" and tuple(r[h] for h in hue) == g)
            if not pts:
                continue
            xs = [p for p, _ in pts]
            acc = [100 * r["accuracy"] for _, r in pts]
            err = [[100 * (r["accuracy"] - r["ci_low"]) for _, r in pts], [100 * (r["ci_high"] - r["accuracy"]) for _, r in pts]]
            ax.errorbar(xs, acc, yerr=err, marker="o", capsize=3, color=colour, label="student " + ", ".join(g) if g else "student")
        ax.set_title(f"{task} · {grader}", fontsize=10)
        ax.set_xlabel(x)
        ax.set_ylim(-2, 102)
    axes[0][0].set_ylabel("accuracy % (95 % CI)")
    axes[0][-1].legend(fontsize=7, loc="best")
    return _png(fig)


_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>sweep — {{ name }}</title><style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}td.num{text-align:right}img{max-width:100%}</style>
</head><body><h1>sweep <code>{{ name }}</code></h1><p>{{ jobs }} jobs; swept: {{ swept|join(", ") }}.</p>
{% if plot %}<img id="plot-sweep" alt="accuracy against the swept settings" src="{{ plot }}">{% endif %}
<table id="sweep"><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in table %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table></body></html>
"""


def sweep_report(root: Path, out: Path | None = None) -> Path:
    rows = sweep_rows(root)
    if not rows:
        raise HarnessError(f"{root}: no finished jobs (no */summary.json); run the sweep first")
    swept = sorted({k for r in rows for k in _params(root / r["job"])})
    numeric = [k for k in swept if all(_num(r.get(k, "")) is not None for r in rows)]
    x = numeric[0] if numeric else "n_train"
    hue = [k for k in swept if k != x]
    header = [*swept, "task", "grader", "model", "n", "accuracy % [95 % CI]"]
    ordered = sorted(rows, key=lambda r: (r["task"] != "heldout", r["task"], r["grader"], r["model"],
                                          *[(_num(r.get(k, "")) or 0.0, r.get(k, "")) for k in swept]))
    table = [[*[r.get(k, "") for k in swept], r["task"], r["grader"], r["model"], r["n"],
              f"{100 * r['accuracy']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"] for r in ordered]
    md = [f"# sweep `{root.name}`", "", f"{len({r['job'] for r in rows})} jobs; swept: {', '.join(swept)}. "
          "Plot: `sweep.html`.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    out = out or root
    write_text(out / "sweep.md", "\n".join(md) + "\n")
    from jinja2 import Environment

    html = Environment(autoescape=True).from_string(_HTML).render(
        name=root.name, jobs=len({r["job"] for r in rows}), swept=swept, header=header, table=table,
        plot=_plot(rows, x, hue) if numeric else "")
    write_text(out / "sweep.html", html)
    return out / "sweep.md"
