"""summary.json (the machine-readable contract, see docs/summary.md) and report.md."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..stats import adjust, gap_closed, mde, paired_binary, paired_continuous, proportion_ci, required_n

SCHEMA_VERSION = 1


def score_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy per task x model x grader with a 95 % Wilson interval.

    Repeated epochs are averaged per item first, so n is the number of distinct items; items whose
    score is missing (NaN) are not silently dropped from n -- they count as wrong.
    """
    out = []
    if frame.empty:
        return out
    per_item = frame.groupby(["task", "alias", "grader", "id"], sort=True)["value"].mean().fillna(0.0)
    for (task, alias, grader), s in per_item.groupby(level=[0, 1, 2], sort=True):
        n, k = int(s.size), float(s.sum())
        lo, hi = proportion_ci(k, n)
        out.append({"task": task, "model": alias, "grader": grader, "n": n,
                    "accuracy": round(k / n, 6), "ci_low": round(lo, 6), "ci_high": round(hi, 6)})
    return out


# (a, b) pairs compared in every run that has these aliases: a - b
PAIRS = [("student", "baseline"), ("teacher", "student"), ("teacher", "baseline")]
ALPHA = 0.05


def model_order(aliases: list[str]) -> list[str]:
    """Report column order: teacher, baseline, student first, then any other model as configured."""
    return sorted(aliases, key=lambda a: (["teacher", "baseline", "student"] + [a]).index(a))


def _per_item(frame: pd.DataFrame) -> pd.DataFrame:
    """Items x aliases per (task, grader); epochs averaged per item; NaN = missing/unscorable."""
    return frame.groupby(["task", "grader", "id", "alias"], sort=True)["value"].mean().unstack("alias")


def comparison_table(frame: pd.DataFrame, pairs: list[tuple[str, str]] = PAIRS, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Paired comparisons aligned by sample id, Holm-adjusted over every comparison of the run."""
    rows: list[dict[str, Any]] = []
    if frame.empty:
        return rows
    for (task, grader), g in _per_item(frame).groupby(level=[0, 1], sort=True):
        for a, b in pairs:
            if a not in g.columns or b not in g.columns:
                continue
            x, y = g[a].to_numpy(), g[b].to_numpy()
            binary = set(pd.unique(pd.Series(list(x) + list(y)).dropna())) <= {0.0, 1.0}
            r = paired_binary(x, y, alpha) if binary else paired_continuous(x, y, alpha)
            rows.append({"task": task, "grader": grader, "a": a, "b": b, "n_pairs": r.n, "n_dropped": r.n_dropped,
                         "diff": round(r.diff, 6), "ci_low": round(r.ci_low, 6), "ci_high": round(r.ci_high, 6),
                         "p_value": r.p_value, "test": r.test, "mde": round(mde(r.n), 6)})
    for row, p_adj in zip(rows, adjust([r["p_value"] for r in rows], "holm")):
        row["p_adjusted"] = p_adj
        row["correction"] = f"holm over {len(rows)} comparisons"
        row["significant"] = bool(p_adj < alpha)
    return sorted(rows, key=lambda r: r["task"] != "heldout")  # stable: held-out task first


def gap_table(frame: pd.DataFrame, alpha: float = ALPHA) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if frame.empty:
        return out
    for (task, grader), g in _per_item(frame).groupby(level=[0, 1], sort=True):
        if {"teacher", "baseline", "student"} <= set(g.columns):
            r = gap_closed(g["teacher"], g["baseline"], g["student"], alpha)
            out.append({"task": task, "grader": grader, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n})
    return out


def category_table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy per task x grader x group (the item's category metadata) x model."""
    if frame.empty:
        return []
    per_item = frame.groupby(["task", "grader", "group", "alias", "id"], sort=True)["value"].mean().fillna(0.0)
    agg = per_item.groupby(level=[0, 1, 2, 3], sort=True).agg(["size", "mean"])
    return [{"task": t, "grader": g, "group": grp, "model": a, "n": int(r["size"]), "accuracy": round(float(r["mean"]), 6)}
            for (t, g, grp, a), r in agg.iterrows()]


def flip_table(frame: pd.DataFrame, pairs: list[tuple[str, str]] = PAIRS, limit: int = 5) -> list[dict[str, Any]]:
    """Items that flipped between two models (b wrong -> a right, and a wrong where b was right)."""
    if frame.empty:
        return []
    first = frame[frame.epoch == frame.epoch.min()]
    val = _per_item(first)
    picked = []
    for a, b in pairs:
        if a not in val.columns or b not in val.columns:
            continue
        for direction, mask in (("wrong→right", (val[b] == 0) & (val[a] == 1)), ("right→wrong", (val[b] == 1) & (val[a] == 0))):
            picked += [(a, b, direction, key) for key in list(val.index[mask])[:limit]]
    # look the answers up only for the few picked items, not the whole frame
    sub = first[first["id"].isin({key[2] for *_, key in picked})]
    ans = sub.drop_duplicates(["task", "grader", "id", "alias"]).set_index(["task", "grader", "id", "alias"])
    out = [{"task": t, "grader": g, "a": a, "b": b, "id": item, "direction": direction,
            "target": ans.loc[(t, g, item, a), "target"],
            "answer_a": ans.loc[(t, g, item, a), "answer"], "answer_b": ans.loc[(t, g, item, b), "answer"]}
           for a, b, direction, (t, g, item) in picked]
    return sorted(out, key=lambda f: f["task"] != "heldout")  # stable: held-out items first


def _md(text: str, width: int = 90) -> str:
    """Model output is untrusted: one line, table- and HTML-safe, truncated."""
    t = " ".join(str(text).split())
    t = t[:width] + ("…" if len(t) > width else "")
    return (t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace("|", "\\|").replace("`", "\\`").replace("*", "\\*").replace("_", "\\_"))


def power_sentence(scores: list[dict[str, Any]]) -> str:
    """The power section: the MDE at the held-out task's n, and the n needed for 10 / 5 pp."""
    n = next((r["n"] for r in scores if r["task"] == "heldout"), None)
    if not n:
        return ""
    return (f"With n = {n} held-out items the minimum detectable difference between two models at 80 % power "
            f"(α = {ALPHA}, two-sided, conservative per-item SD 0.5) is {100 * mde(n):.0f} pp; "
            f"detecting 10 pp would need {required_n(0.10)} items, 5 pp {required_n(0.05)}.")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def score_rows(scores: list[dict[str, Any]], order: list[str]) -> list[tuple[str, str, int, list[str]]]:
    """(task, grader, n, one "acc [lo, hi]" cell per model) rows, held-out task first."""
    cell = {(r["task"], r["grader"], r["model"]): r for r in scores}
    rows = []
    for t, g in sorted({(r["task"], r["grader"]) for r in scores}, key=lambda k: (k[0] != "heldout", k)):
        cells = [cell.get((t, g, a)) for a in order]
        n = next((c["n"] for c in cells if c), 0)
        rows.append((t, g, n, [f"{_pct(c['accuracy'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]" if c else "—" for c in cells]))
    return rows


def analyse(frame: pd.DataFrame) -> dict[str, Any]:
    """Every frame-derived section of summary.json (a run and `harness report` share this)."""
    return {"scores": score_table(frame), "comparisons": comparison_table(frame), "gap_closed": gap_table(frame),
            "categories": category_table(frame), "flips": flip_table(frame)}


def render_markdown(summary: dict[str, Any], order: list[str]) -> str:
    from ._datacard import data_markdown, leak_warning  # late: it imports this module

    s = summary
    lines = [f"# {s['experiment']} — run `{s['run']}`", ""]
    if leak_warning(s):
        lines += [f"> **⚠ {leak_warning(s)}**", ""]
    lines += ["## Models", "", "| alias | model | notes |", "|---|---|---|"]
    for alias in order:
        lines.append(f"| {alias} | `{s['models'][alias]}` | {s['model_notes'].get(alias, '')} |")
    d = s["data"]
    lines += ["", "## Data", "",
              f"- training questions: {d['n_train']} (teacher answers containing the gold: {d.get('n_train_gold', 'n/a')})",
              f"- evaluation items: {d['n_eval']} ({', '.join(f'{t}: {n}' for t, n in d['n_eval_by_task'].items())})",
              *data_markdown(s), ""]
    lines += ["## Scores", "",
              "Accuracy in % with 95 % Wilson intervals; n = items per cell. "
              "`exact`: extracted answer equals the gold after normalisation; "
              "`contains`: the gold appears in the normalised answer as whole tokens.", ""]
    lines += ["| task | grader | n | " + " | ".join(order) + " |", "|---|---|---|" + "---|" * len(order)]
    for t, g, n, vals in score_rows(s["scores"], order):
        lines.append(f"| {t} | {g} | {n} | " + " | ".join(vals) + " |")
    comps = s.get("comparisons") or []
    if comps:
        lines += ["", "## Paired comparisons", "",
                  f"Same items, aligned by sample id. Test: {comps[0]['test']} on the discordant pairs; CI: paired t "
                  f"interval of the per-item differences; correction: {comps[0]['correction']}; α = {ALPHA}. "
                  "A difference is called better/worse only when its adjusted p < α. "
                  "MDE = minimum detectable difference at 80 % power (conservative per-item SD 0.5).", "",
                  "| task | grader | a − b | n pairs | diff (pp) [95 % CI] | p | p adj. | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in comps:
            if c["significant"]:
                verdict = f"**{c['a']} {'better' if c['diff'] > 0 else 'worse'}**"
            else:
                verdict = f"no significant difference (MDE {100 * c['mde']:.0f} pp)"
            dropped = f" ({c['n_dropped']} dropped)" if c["n_dropped"] else ""
            lines.append(f"| {c['task']} | {c['grader']} | {c['a']} − {c['b']} | {c['n_pairs']}{dropped} | "
                         f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] | "
                         f"{c['p_value']:.2g} | {c['p_adjusted']:.2g} | {verdict} |")
    gaps = s.get("gap_closed") or []
    if gaps:
        lines += ["", "## Gap closed", "",
                  "(student − baseline) / (teacher − baseline), 95 % paired-bootstrap percentile CI over items.", "",
                  "| task | grader | gap closed [95 % CI] |", "|---|---|---|"]
        for g in gaps:
            if g["value"] is None:
                val = "— (teacher not above baseline)"
            else:
                ci = f"[{_pct(g['ci_low'])}, {_pct(g['ci_high'])}]" if g["ci_low"] is not None else "[CI undefined]"
                val = f"{_pct(g['value'])} % {ci}"
            lines.append(f"| {g['task']} | {g['grader']} | {val} |")
    power = power_sentence(s["scores"])
    if power:
        lines += ["", "## Power", "", power]
    cats = s.get("categories") or []
    if cats:
        lines += ["", "## By category", "", "Accuracy % per item category (n per cell in brackets).", ""]
        cell = {(c["task"], c["grader"], c["group"], c["model"]): c for c in cats}
        keys = sorted({(c["task"], c["grader"], c["group"]) for c in cats}, key=lambda k: (k[0] != "heldout", k))
        lines += ["| task | grader | category | " + " | ".join(order) + " |", "|---|---|---|" + "---|" * len(order)]
        for t, g, grp in keys:
            vals = [f"{_pct(cell[(t, g, grp, a)]['accuracy'])} ({cell[(t, g, grp, a)]['n']})" if (t, g, grp, a) in cell else "—" for a in order]
            lines.append(f"| {t} | {g} | {grp} | " + " | ".join(vals) + " |")
    flips = s.get("flips") or []
    if flips:
        lines += ["", "## Items that flipped", "", "First items per pair and direction (answers escaped and truncated).", "",
                  "| task | grader | a vs b | direction | item | gold | a's answer | b's answer |", "|---|---|---|---|---|---|---|---|"]
        for f in flips:
            lines.append(f"| {f['task']} | {f['grader']} | {f['a']} vs {f['b']} | {f['direction']} | {_md(f['id'], 40)} | "
                         f"{_md(f['target'], 30)} | {_md(f['answer_a'])} | {_md(f['answer_b'])} |")
    ft = s.get("finetune") or {}
    if ft:
        lines += ["", "## Fine-tune", "", "| " + " | ".join(k for k in ft if k != "loss_curve") + " |",
                  "|" + "---|" * len([k for k in ft if k != "loss_curve"]),
                  "| " + " | ".join(str(v) for k, v in ft.items() if k != "loss_curve") + " |"]
    lines += ["", "## Stage timings", "", "| stage | seconds | model calls |", "|---|---|---|"]
    for stage, sec in s["stage_seconds"].items():
        lines.append(f"| {stage} | {sec:.1f} | {s['stage_calls'].get(stage, 0)} |")
    lines += ["", "## Where things are", "",
              "- inspect logs: `logs/<alias>/` — open with `inspect view --log-dir " + s["paths"]["logs"] + "`",
              "- training file (OpenAI chat fine-tuning JSONL): `data/train.jsonl`, provenance: `data/provenance.jsonl`",
              "- domain document: `data/domain.md`; evaluation items: `data/eval.jsonl`",
              f"- student weights: `{s['paths']['student']}`",
              "- resolved config: `.hydra/config.yaml`; machine-readable results: `summary.json`", ""]
    return "\n".join(lines)
