"""report.md: the run report as markdown (model output escaped, see _fmt.md)."""

from __future__ import annotations

from typing import Any

from ..stats import mde, required_n
from ._analysis import ALPHA
from ._datacard import data_markdown, leak_warning
from ._fmt import md, pct
from ._graders import category_blocks, checks_markdown
from ._judge import KAPPA_MIN, gate_text, unreliable_sentence
from ._noise import noise_markdown
from ._usage import usage_markdown


def power_sentence(scores: list[dict[str, Any]], alpha: float = ALPHA) -> str:
    """The power section: the MDE at the held-out task's n, and the n needed for 10 / 5 pp."""
    n = next((r["n"] for r in scores if r["task"] == "heldout"), None)
    if not n:
        return ""
    return (f"With n = {n} held-out items the minimum detectable difference between two models at 80 % power "
            f"(α = {alpha}, two-sided, conservative per-item SD 0.5) is {100 * mde(n, alpha=alpha):.0f} pp; "
            f"detecting 10 pp would need {required_n(0.10, alpha=alpha)} items, 5 pp {required_n(0.05, alpha=alpha)}.")


COMPARISON_NOTE = ("Same items, aligned by sample id; n pairs = items both models answered (a missing or unscorable "
                   "answer drops its pair, and the count is shown). One interval method per kind of score, the same as "
                   "the regression gate's and the sweep report's (docs/statistics.md): 0/1 scores: a score interval for "
                   "paired proportions (Tango ∪ SCAS); per-item means (epochs, judge scales): paired t ∪ Hall's "
                   "skewness-corrected t; where several items share a source (cluster): the cluster-robust t, never "
                   "narrower. None collapses to a point when no item differs. p is the two-sided test of no difference "
                   "dual to the interval. A difference is called better/worse only when its adjusted p < α; otherwise "
                   "the outcome says what the interval leaves open against the margin: equivalent (inside ±margin), "
                   "non-inferior (no drop beyond the margin), not ruled out (a drop beyond the margin is still possible: "
                   "required n = items that would decide it at 80 % power), too few items. MDE = minimum detectable "
                   "difference at 80 % power (conservative per-item SD 0.5).")


def family_note(comps: list[dict[str, Any]]) -> str:
    """The correction's description, from the first tested comparison (excluded ones are not in the family)."""
    return next((c["correction"] for c in comps if not c.get("excluded")), "none (no comparison tested)")


def comparison_lines(comps: list[dict[str, Any]], alpha: float) -> list[str]:
    """The paired-comparisons section of report.md (a run's and a sweep's)."""
    if not comps:
        return []
    lines = ["", "## Paired comparisons", "",
             f"{COMPARISON_NOTE} Correction: {family_note(comps)}; α = {alpha}; CIs are {100 * (1 - alpha):.0f} %.", "",
             "| task | grader | a − b | n pairs | diff (pp) [CI] | interval / test | p | p adj. | outcome |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        v = f"**{verdict(c)}**" if c["significant"] else verdict(c)
        dropped = f" ({c['n_dropped']} dropped)" if c.get("n_dropped") else ""
        p_adj = "—" if c["p_adjusted"] is None else f"{c['p_adjusted']:.2g}"
        lines.append(f"| {c['task']} | {c['grader']} | {md(c['a'], 300)} − {md(c['b'], 300)} | {c['n_pairs']}{dropped} | "
                     f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] | {c['test']} | "
                     f"{c['p_value']:.2g} | {p_adj} | {v} |")
    return lines


def verdict(c: dict[str, Any]) -> str:
    """The outcome of one compared cell in words (harness.stats.outcome; docs/statistics.md)."""
    if c.get("excluded"):
        return f"not tested: {c['excluded']}"
    o = c.get("outcome")
    m = f"{100 * c.get('margin', 0.05):g} pp"
    if c["significant"] or o in ("better", "worse"):
        return f"{c['a']} {'better' if c['diff'] > 0 else 'worse'}"
    if o == "equivalent":
        return f"equivalent within ±{m}"
    if o == "non-inferior":
        return f"non-inferior (no drop beyond {m})"
    if o == "not ruled out":
        need = f"; ≈ {c['required_n']} items would decide" if c.get("required_n") else ""
        return f"not ruled out: a drop beyond {m}{need}"
    if o == "too few items":
        return "too few items to say"
    return f"no significant difference (MDE {100 * c['mde']:.0f} pp)"


def drops(comps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells whose interval includes a drop larger than the margin: undecided ones (not ruled out)
    and significant drops (worse): forgetting first (a task other than the held-out one, a
    candidate that is not the teacher), then by the size of the drop."""
    cells = [c for c in comps if not c.get("excluded") and (c.get("outcome") == "not ruled out" or (
        c.get("outcome") == "worse" and c["ci_low"] < -c.get("margin", 0.05)))]
    return sorted(cells, key=lambda c: (c["task"] == "heldout", c["a"].split("[")[0] == "teacher", c["diff"]))


def not_ruled_out(comps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The undecided cells among `drops`."""
    return [c for c in drops(comps) if c["outcome"] == "not ruled out"]


def drop_line(c: dict[str, Any]) -> str:
    """A verdict line for one of `drops`."""
    if c["outcome"] == "worse":
        return (f"Worse: {c['a']} − {c['b']} on {c['task']} ({c['grader']}): {100 * c['diff']:+.1f} pp "
                f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] ({c['test']}, n = {c['n_pairs']}), "
                f"p adj. = {c['p_adjusted']:.2g} ({c['correction']}).")
    return not_ruled_out_line(c)


def not_ruled_out_line(c: dict[str, Any]) -> str:
    need = (f"about {c['required_n']} items would decide it" if c.get("required_n")
            else "no number of items decides it at this difference")
    return (f"Not ruled out: {c['a']} − {c['b']} on {c['task']} ({c['grader']}): {100 * c['diff']:+.1f} pp "
            f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] ({c['test']}, n = {c['n_pairs']}) includes a drop "
            f"of more than the {100 * c.get('margin', 0.05):g} pp margin; {need}.")


def score_rows(scores: list[dict[str, Any]], order: list[str]) -> list[tuple[str, str, int, list[str]]]:
    """(task, grader, n, one "acc [lo, hi]" cell per model) rows, held-out task first."""
    cell = {(r["task"], r["grader"], r["model"]): r for r in scores}
    rows = []
    for t, g in sorted({(r["task"], r["grader"]) for r in scores}, key=lambda k: (k[0] != "heldout", k)):
        cells = [cell.get((t, g, a)) for a in order]
        n = next((c["n"] for c in cells if c), 0)
        rows.append((t, g, n, [f"{pct(c['accuracy'])} [{pct(c['ci_low'])}, {pct(c['ci_high'])}]"
                               + (f" ({c['n_unscored']} unscored)" if c.get("n_unscored") else "") if c else "—" for c in cells]))
    return rows


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
        lines += ["| task | judge | reference | n | confusion [[jc∧rc, jc∧rw], [jw∧rc, jw∧rw]] | agreement | κ | McNemar p | "
                  "parse failures | verdict |",
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
            # the path as escaped text, not in a code span: inside one a renderer would show md()'s backslashes
            lines.append(f"| {r['judge']} | {md(r['file'], 60)} | {r['labels']} | {r['n']} | {r['confusion']} | "
                         f"{100 * r['agreement']:.1f} % | {k} | {v} |")
    return lines


GATE_NOTE = ("Each judge first graded a seeded calibration sample (stratified by model × reference verdict; a pairwise "
             "judge: by pair × task), then further batches while undecided; after each look its agreement (κ against the "
             "reference; position consistency for a pairwise judge) got one-sided bounds at 1 − alpha/looks each (Bonferroni "
             "over the looks), and a judge whose upper bound fell below the threshold was stopped (docs/judge.md).")


def gate_markdown(s: dict[str, Any]) -> list[str]:
    gates = s.get("judge_gate") or []
    if not gates:
        return []
    lines = ["", "## Judge calibration", "", GATE_NOTE, ""]
    return lines + [f"- {'⚠ **' + md(gate_text(g), 10**4) + '**' if g['decision'] == 'stopped' else md(gate_text(g), 10**4)}"
                    for g in gates]


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


def verdict_lines(s: dict[str, Any]) -> list[str]:
    """The few sentences a reader needs first: what beat what, by how much, how sure, what it cost.
    Generated from the same numbers as the tables below them."""
    out: list[str] = []
    if (s.get("regress") or {}).get("headline"):
        out.append(f"Gate: {s['regress']['headline']}")
    comps = [c for c in s.get("comparisons") or [] if "excluded" not in c]
    first_task = next((c["task"] for c in comps), None)
    for g in s.get("gap_closed") or []:
        if g["task"] == first_task and g["value"] is not None and g["grader"] == _main_grader(comps, first_task):
            ci = f" [95 % CI {pct(g['ci_low'])}, {pct(g['ci_high'])}]" if g["ci_low"] is not None else ""
            out.append(f"{g.get('student', 'student')} closes {pct(g['value'])} %{ci} of the teacher–baseline gap on "
                       f"{g['task']} ({g['grader']}, n = {g['n']} items).")
    sig = [c for c in comps if c["significant"] and c["task"] == first_task]
    for c in sorted(sig, key=lambda c: c["p_adjusted"])[:3]:
        out.append(f"{c['a']} − {c['b']} on {c['task']} ({c['grader']}): {100 * c['diff']:+.1f} pp "
                   f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}], {c['test']}, n = {c['n_pairs']}, "
                   f"p adj. = {c['p_adjusted']:.2g} ({c['correction']}).")
    if comps and not any(c["significant"] for c in comps):
        n = min(c["n_pairs"] for c in comps)
        out.append(f"No pair of models differs significantly ({comps[0]['correction']}, α = {s.get('alpha', ALPHA)}); "
                   f"with n = {n} items only differences of about {100 * max(c['mde'] for c in comps):.0f} pp or more "
                   "would have been detected.")
    quoted = sorted(sig, key=lambda c: c["p_adjusted"])[:3]
    out += [drop_line(c) for c in drops(comps) if not any(c is q for q in quoted)]
    excluded = sorted({(c["task"], c["grader"], c["excluded"]) for c in s.get("comparisons") or [] if "excluded" in c})
    if excluded:
        out.append("Left out of the tested family: " + ", ".join(f"{t} · {g} ({why.split(' (')[0]})" for t, g, why in excluded) + ".")
    usage = s.get("usage") or {}
    if usage:
        cost = sum(u.get("cost_usd", 0.0) for u in usage.values())
        calls = sum(u.get("calls", 0) for u in usage.values())
        wall = sum((s.get("stage_seconds") or {}).values())
        out.append(f"Cost: {calls} model calls, ${cost:.4f}" + (f", {wall:.0f} s of stage time." if wall else "."))
    return out


def _main_grader(comps: list[dict[str, Any]], task: str | None) -> str | None:
    """The grader whose result the verdict quotes: `contains` if present, else the first tested one."""
    graders = [c["grader"] for c in comps if c["task"] == task]
    return "contains" if "contains" in graders else (graders[0] if graders else None)


def render_markdown(summary: dict[str, Any], order: list[str]) -> str:
    s = summary
    lines = [f"# {s['experiment']} — run `{s['run']}`", ""]
    verdicts = verdict_lines(s)
    if verdicts:
        lines += ["## Verdict", "", *[f"- {md(v, 2000)}" for v in verdicts], ""]
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
    lines += checks_markdown(s)
    lines += comparison_lines(s.get("comparisons") or [], s.get("alpha", ALPHA))
    lines += noise_markdown(s.get("noise"))
    lines += judge_markdown(s)
    lines += gate_markdown(s)
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
                ci = f"[{pct(g['ci_low'])}, {pct(g['ci_high'])}]" if g["ci_low"] is not None else "[CI undefined]"
                val = f"{pct(g['value'])} % {ci}"
            who = f"{g.get('student', 'student')} | " if named else ""
            lines.append(f"| {g['task']} | {g['grader']} | {who}{val} |")
    power = power_sentence(s["scores"], s.get("alpha", ALPHA))
    if power:
        lines += ["", "## Power", "", power]
    cats = s.get("categories") or []
    if cats:
        # one table per task x grader: many categories (a 57-subject benchmark) stay one row each
        lines += ["", "## By category", "", "Accuracy % per item category; n = items in the category.", ""]
        for (t, g), rows in category_blocks(cats, order):
            lines += [f"### {t} · {g}", "", "| category | n | " + " | ".join(order) + " |", "|---|---|" + "---|" * len(order)]
            lines += [f"| {md(grp, 60)} | {n} | " + " | ".join(vals) + " |" for grp, n, vals in rows]
            lines.append("")
    flips = s.get("flips") or []
    if flips:
        lines += ["", "## Items that flipped", "", "First items per pair and direction (answers escaped and truncated).", "",
                  "| task | grader | a vs b | direction | item | gold | a's answer | b's answer |", "|---|---|---|---|---|---|---|---|"]
        for f in flips:
            lines.append(f"| {f['task']} | {f['grader']} | {f['a']} vs {f['b']} | {f['direction']} | {md(f['id'], 40)} | "
                         f"{md(f['target'], 30)} | {md(f['answer_a'])} | {md(f['answer_b'])} |")
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
