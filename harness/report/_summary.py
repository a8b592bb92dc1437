"""summary.json (the machine-readable contract, see docs/summary.md) and report.md."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..config import ReportConfig
from ._judge import KAPPA_MIN, judge_agreement, unreliable_sentence
from ._usage import usage_markdown
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
    per_item = frame.groupby(["task", "alias", "grader", "id"], sort=True)["value"].mean()
    for (task, alias, grader), s in per_item.groupby(level=[0, 1, 2], sort=True):
        unscored = int(s.isna().sum())
        n, k = int(s.size), float(s.fillna(0.0).sum())
        lo, hi = proportion_ci(k, n)
        out.append({"task": task, "model": alias, "grader": grader, "n": n,
                    "accuracy": round(k / n, 6), "ci_low": round(lo, 6), "ci_high": round(hi, 6), "n_unscored": unscored})
    return out


# (a, b) pairs compared in every run that has these aliases: a - b
PAIRS = [("student", "baseline"), ("teacher", "student"), ("teacher", "baseline")]
ALPHA = ReportConfig.alpha


def default_pairs(students: list[str]) -> list[tuple[str, str]]:
    """Each student against the baseline and the teacher, the teacher against the baseline, and
    every pair of students (a model grid). One student named `student`: PAIRS."""
    out = [p for s in students for p in ((s, "baseline"), ("teacher", s))] + [("teacher", "baseline")]
    return out + [(a, b) for i, a in enumerate(students) for b in students[i + 1:]]


def pairs_for(rc: ReportConfig, students: list[str] = ["student"]) -> list[tuple[str, str]]:
    """The default pairs plus the ones the experiment asks for (report.pairs), without repeats."""
    out = default_pairs(students)
    for a, b in (tuple(p) for p in rc.pairs):
        if (a, b) not in out:
            out.append((a, b))
    return out


def model_order(aliases: list[str], students: list[str] = []) -> list[str]:
    """Report column order: teacher, baseline, the students, then any other model as configured."""
    first = ["teacher", "baseline", "student", *students]
    return sorted(aliases, key=lambda a: first.index(a) if a in first else len(first))


def _per_item(frame: pd.DataFrame) -> pd.DataFrame:
    """Items x aliases per (task, grader); epochs averaged per item; NaN = missing/unscorable."""
    return frame.groupby(["task", "grader", "id", "alias"], sort=True)["value"].mean().unstack("alias")


def _clusters(frame: pd.DataFrame) -> pd.Series:
    """(task, id) -> cluster label (an item's own id when it shares no source with another item)."""
    if "cluster" not in frame.columns:
        return pd.Series(dtype=object)
    return frame.drop_duplicates(["task", "id"]).set_index(["task", "id"])["cluster"]


def comparison_table(frame: pd.DataFrame, pairs: list[tuple[str, str]] = PAIRS, alpha: float = ALPHA,
                     correction: str = "holm") -> list[dict[str, Any]]:
    """Paired comparisons aligned by sample id, adjusted over every comparison of the report.

    Items whose metadata puts several of them in one cluster get cluster-robust SEs (see
    harness.stats.paired_binary)."""
    rows: list[dict[str, Any]] = []
    if frame.empty:
        return rows
    clusters = _clusters(frame)
    for (task, grader), g in _per_item(frame).groupby(level=[0, 1], sort=True):
        c = clusters.reindex(pd.MultiIndex.from_arrays([g.index.get_level_values(0), g.index.get_level_values(2)])).to_numpy() \
            if not clusters.empty else None
        for a, b in pairs:
            if a not in g.columns or b not in g.columns:
                continue
            x, y = g[a].to_numpy(), g[b].to_numpy()
            binary = set(pd.unique(pd.Series(list(x) + list(y)).dropna())) <= {0.0, 1.0}
            r = paired_binary(x, y, alpha, clusters=c) if binary else paired_continuous(x, y, alpha, clusters=c)
            rows.append({"task": task, "grader": grader, "a": a, "b": b, "n_pairs": r.n, "n_dropped": r.n_dropped,
                         "diff": round(r.diff, 6), "ci_low": round(r.ci_low, 6), "ci_high": round(r.ci_high, 6),
                         "p_value": r.p_value, "test": r.test, "mde": round(mde(r.n, alpha=alpha), 6)})
    for row, p_adj in zip(rows, adjust([r["p_value"] for r in rows], correction)):
        row["p_adjusted"] = p_adj
        row["correction"] = f"{correction} over {len(rows)} comparisons"
        row["significant"] = bool(p_adj < alpha)
    return sorted(rows, key=lambda r: r["task"] != "heldout")  # stable: held-out task first


def gap_table(frame: pd.DataFrame, alpha: float = ALPHA,
              triples: list[tuple[str, str, str]] = [("teacher", "baseline", "student")]) -> list[dict[str, Any]]:
    """Gap closed per task x grader for each (teacher, baseline, student) alias triple."""
    out: list[dict[str, Any]] = []
    if frame.empty:
        return out
    for (task, grader), g in _per_item(frame).groupby(level=[0, 1], sort=True):
        for t, b, s in triples:
            if {t, b, s} <= set(g.columns):
                r = gap_closed(g[t], g[b], g[s], alpha)
                row = {"task": task, "grader": grader, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n}
                if s != "student" or len(triples) > 1:
                    row["student"] = s
                out.append(row)
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


def power_sentence(scores: list[dict[str, Any]], alpha: float = ALPHA) -> str:
    """The power section: the MDE at the held-out task's n, and the n needed for 10 / 5 pp."""
    n = next((r["n"] for r in scores if r["task"] == "heldout"), None)
    if not n:
        return ""
    return (f"With n = {n} held-out items the minimum detectable difference between two models at 80 % power "
            f"(α = {alpha}, two-sided, conservative per-item SD 0.5) is {100 * mde(n, alpha=alpha):.0f} pp; "
            f"detecting 10 pp would need {required_n(0.10, alpha=alpha)} items, 5 pp {required_n(0.05, alpha=alpha)}.")


COMPARISON_NOTE = ("Same items, aligned by sample id; n pairs = items both models answered (a missing or unscorable "
                   "answer drops its pair, and the count is shown). Tests: McNemar exact = exact binomial test on the "
                   "discordant pairs, with a paired t interval of the per-item differences; where several items share "
                   "a source (cluster), a paired t test with cluster-robust SE; sign-flip permutation with a BCa "
                   "bootstrap CI for non-binary scores. A difference is called better/worse only when its adjusted "
                   "p < α. MDE = minimum detectable difference at 80 % power (conservative per-item SD 0.5).")


def comparison_lines(comps: list[dict[str, Any]], alpha: float) -> list[str]:
    """The paired-comparisons section of report.md (a run's and a sweep's)."""
    if not comps:
        return []
    lines = ["", "## Paired comparisons", "",
             f"{COMPARISON_NOTE} Correction: {comps[0]['correction']}; α = {alpha}; CIs are {100 * (1 - alpha):.0f} %.", "",
             "| task | grader | a − b | n pairs | diff (pp) [CI] | test | p | p adj. | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        v = f"**{verdict(c)}**" if c["significant"] else verdict(c)
        dropped = f" ({c['n_dropped']} dropped)" if c.get("n_dropped") else ""
        lines.append(f"| {c['task']} | {c['grader']} | {c['a']} − {c['b']} | {c['n_pairs']}{dropped} | "
                     f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] | {c['test']} | "
                     f"{c['p_value']:.2g} | {c['p_adjusted']:.2g} | {v} |")
    return lines


def verdict(c: dict[str, Any]) -> str:
    if c["significant"]:
        return f"{c['a']} {'better' if c['diff'] > 0 else 'worse'}"
    return f"no significant difference (MDE {100 * c['mde']:.0f} pp)"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def score_rows(scores: list[dict[str, Any]], order: list[str]) -> list[tuple[str, str, int, list[str]]]:
    """(task, grader, n, one "acc [lo, hi]" cell per model) rows, held-out task first."""
    cell = {(r["task"], r["grader"], r["model"]): r for r in scores}
    rows = []
    for t, g in sorted({(r["task"], r["grader"]) for r in scores}, key=lambda k: (k[0] != "heldout", k)):
        cells = [cell.get((t, g, a)) for a in order]
        n = next((c["n"] for c in cells if c), 0)
        rows.append((t, g, n, [f"{_pct(c['accuracy'])} [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]"
                               + (f" ({c['n_unscored']} unscored)" if c.get("n_unscored") else "") if c else "—" for c in cells]))
    return rows


def analyse(frame: pd.DataFrame, rc: ReportConfig = ReportConfig(), students: list[str] = ["student"]) -> dict[str, Any]:
    """Every frame-derived section of summary.json (a run and `harness report` share this)."""
    pairs = pairs_for(rc, students)
    triples = [("teacher", "baseline", s) for s in students]
    return {"alpha": rc.alpha, "scores": score_table(frame), "comparisons": comparison_table(frame, pairs, rc.alpha, rc.correction),
            "gap_closed": gap_table(frame, rc.alpha, triples), "categories": category_table(frame),
            "flips": flip_table(frame, pairs, rc.flips), "judge_agreement": judge_agreement(frame)}


JUDGE_NOTE = ("Each judge grader is checked against its reference match grader on the same samples (every model, "
              "aligned by model × item × epoch): confusion matrix (rows judge, columns reference: correct / wrong), "
              "raw agreement, Cohen's κ (statsmodels), exact McNemar on the discordant cells (a lenient or harsh judge), "
              f"and the verdicts the judge's reply could not be parsed into (unscored, counted as wrong in the scores). "
              f"1–5 scales count ≥ 3 as correct here. κ < {KAPPA_MIN}: the judge is unreliable for that task.")


def judge_markdown(s: dict[str, Any]) -> list[str]:
    rows = s.get("judge_agreement") or []
    notes = s.get("judge_notes") or []
    cal = s.get("judge_calibration") or []
    if not rows and not notes and not cal:
        return []
    lines = ["", "## Judge agreement", "", JUDGE_NOTE, ""]
    lines += [f"- ⚠ {n}" for n in notes] + ([""] if notes else [])
    if rows:
        lines += ["| task | judge | reference | n | confusion [[jc∧rc, jc∧rw], [jw∧rc, jw∧rw]] | agreement | κ | McNemar p | parse failures | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            k = "—" if r["kappa"] is None else f"{r['kappa']:.2f}"
            agree = "—" if not r["n"] else f"{100 * r['agreement']:.1f} %"
            v = f"**{unreliable_sentence(r)}**" if r["unreliable"] else "agrees (κ ≥ 0.6)"
            lines.append(f"| {r['task']} | {r['judge']} (`{r['judge_model']}`) | {r['reference']} | {r['n']} | {r['confusion']} | "
                         f"{agree} | {k} | {r['mcnemar_p']:.2g} | {r['parse_failures']} ({100 * r['parse_failure_rate']:.0f} %) | {v} |")
    if cal:
        lines += ["", "Against human labels (calibration set):", "",
                  "| judge | labels file | labels | n compared | confusion | agreement | κ | verdict |", "|---|---|---|---|---|---|---|---|"]
        for r in cal:
            k = "—" if r["kappa"] is None else f"{r['kappa']:.2f}"
            v = "**unreliable (κ < 0.6)**" if r["unreliable"] else "agrees (κ ≥ 0.6)"
            lines.append(f"| {r['judge']} | `{_md(r['file'], 60)}` | {r['labels']} | {r['n']} | {r['confusion']} | "
                         f"{100 * r['agreement']:.1f} % | {k} | {v} |")
    return lines


PAIRWISE_NOTE = ("The judge saw each item's two answers in both orders; a verdict counts only when both orders agree "
                 "(position-consistent). Wins among consistent verdicts, exact sign test with ties excluded (not "
                 "corrected; a judge's preference is not a significance claim about the models).")


def pairwise_markdown(s: dict[str, Any]) -> list[str]:
    rows = s.get("pairwise") or []
    if not rows:
        return []
    lines = ["", "## Pairwise judge", "", PAIRWISE_NOTE, "",
             "| task | judge | a vs b | items | parsed both orders | position-consistent | a wins | b wins | ties | sign test p |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = "—" if r["consistency_rate"] is None else f"{r['consistent']} ({100 * r['consistency_rate']:.0f} %)"
        lines.append(f"| {r['task']} | {r['judge']} (`{r['judge_model']}`) | {r['a']} vs {r['b']} | {r['n_items']} | {r['n_parsed']} | "
                     f"{rate} | {r['a_wins']} | {r['b_wins']} | {r['ties']} | {r['p_value']:.2g} |")
    return lines


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
    lines += comparison_lines(s.get("comparisons") or [], s.get("alpha", ALPHA))
    lines += judge_markdown(s)
    lines += pairwise_markdown(s)
    gaps = s.get("gap_closed") or []
    if gaps:
        named = any("student" in g for g in gaps)  # several students: a column says whose gap
        lines += ["", "## Gap closed", "",
                  "(student − baseline) / (teacher − baseline), 95 % paired-bootstrap percentile CI over items.", "",
                  "| task | grader | " + ("student | " if named else "") + "gap closed [95 % CI] |", "|---|---|---|" + ("---|" if named else "")]
        for g in gaps:
            if g["value"] is None:
                val = "— (teacher not above baseline)"
            else:
                ci = f"[{_pct(g['ci_low'])}, {_pct(g['ci_high'])}]" if g["ci_low"] is not None else "[CI undefined]"
                val = f"{_pct(g['value'])} % {ci}"
            who = f"{g.get('student', 'student')} | " if named else ""
            lines.append(f"| {g['task']} | {g['grader']} | {who}{val} |")
    power = power_sentence(s["scores"], s.get("alpha", ALPHA))
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
    fts = s.get("finetunes") or ({"student": s["finetune"]} if s.get("finetune") else {})
    if fts:
        keys = list(dict.fromkeys(k for m in fts.values() for k in m if k != "loss_curve"))
        lines += ["", "## Fine-tune", "", "| student | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        lines += [f"| {alias} | " + " | ".join(str(m.get(k, "")) for k in keys) + " |" for alias, m in fts.items()]
    lines += usage_markdown(s)
    lines += ["", "## Stage timings", "", "| stage | seconds | model calls |", "|---|---|---|"]
    for stage, sec in s["stage_seconds"].items():
        lines.append(f"| {stage} | {sec:.1f} | {s['stage_calls'].get(stage, 0)} |")
    lines += ["", "## Where things are", "",
              "- inspect logs: `logs/<alias>/` — open with `inspect view --log-dir " + s["paths"]["logs"] + "`",
              "- training file (OpenAI chat fine-tuning JSONL): `data/train.jsonl`, provenance: `data/provenance.jsonl`",
              "- domain document: `data/domain.md`; evaluation items: `data/eval.jsonl`",
              *[f"- {alias} weights: `{path}`" for alias, path in (s["paths"].get("students") or {"student": s["paths"]["student"]}).items()],
              "- resolved config: `.hydra/config.yaml`; machine-readable results: `summary.json`", ""]
    return "\n".join(lines)
