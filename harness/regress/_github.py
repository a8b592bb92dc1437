"""The gate where a team reads it on GitHub: a step summary ($GITHUB_STEP_SUMMARY), step outputs
($GITHUB_OUTPUT) and a short pull-request comment (`harness regress --comment FILE`).

Everything here is markdown that GitHub renders in a page other people open, so whatever did not
come from the harness itself (model answers, golds, item ids, task and model names) goes through
`_render.untrusted` (no secret, no live markdown, HTML, image, link, autolink or mention).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

from ..errors import redact_text
from ._render import _pp, untrusted


def worst(result: dict[str, Any]) -> dict[str, Any] | None:
    """The gated cell that decides: for a regression the regressing cell with the lowest upper bound;
    otherwise the cell with the lowest lower bound (the closest to failing, or the one undecided)."""
    gated = [r for r in result["cells"] if r["gated"]]
    bad = [r for r in gated if r["verdict"] == "regression"]
    if bad:
        return min(bad, key=lambda r: r["upper"])
    return min(gated, key=lambda r: r["lower"]) if gated else None


def _bound(result: dict[str, Any], cell: dict[str, Any]) -> tuple[str, float]:
    return ("upper", cell["upper"]) if result["verdict"] == "regression" else ("lower", cell["lower"])


def outputs(result: dict[str, Any]) -> dict[str, str]:
    """The step outputs: verdict, exit_code, worst_cell ("task · grader"), worst_bound (a fraction:
    -0.031 = -3.1 pp; the upper bound for a regression, the lower one otherwise), worst_bound_side,
    headline."""
    cell = worst(result)
    side, bound = _bound(result, cell) if cell else ("", float("nan"))
    return {"verdict": result["verdict"], "exit_code": str(result["exit_code"]),
            "worst_cell": f"{cell['task']} · {cell['grader']}" if cell else "", "worst_bound": f"{bound:.6f}" if cell else "",
            "worst_bound_side": side, "headline": redact_text(result["headline"])}


def output_lines(values: dict[str, str]) -> str:
    """GitHub's file-command format: `name=value`, or `name<<DELIM ... DELIM` for a value that is not
    one plain line (the delimiter is random, as actions/toolkit's, so no value can end it early)."""
    lines = []
    for k, v in values.items():
        if "\n" in v or "\r" in v or k in ("worst_cell", "headline"):  # names and sentences: any text
            delim = f"ghadelimiter_{uuid.uuid4()}"
            lines += [f"{k}<<{delim}", v, delim]
        else:
            lines.append(f"{k}={v}")
    return "\n".join(lines) + "\n"


def _cells_table(result: dict[str, Any], only_deciding: bool) -> list[str]:
    s = result["settings"]
    rows = [r for r in result["cells"] if r["gated"]]
    if only_deciding:  # the cells that decide: every non-pass one, or (all pass) the tightest
        rows = [r for r in rows if r["verdict"] != "pass"] or [worst(result)]
    out = [f"| task · grader | n | current % | candidate % | d (pp) | one-sided {100 * (1 - s['alpha']):g} % bounds (pp) | verdict |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        need = f" (≈{r['required_n']} items would decide)" if r["verdict"] == "inconclusive" and r.get("required_n") else ""
        out.append(f"| {untrusted(r['task'], 40)} · {untrusted(r['grader'], 40)} | {r['n']} | {_pp(r['baseline_accuracy'], False)} | "
                   f"{_pp(r['candidate_accuracy'], False)} | {_pp(r['diff'])} | [{_pp(r['lower'])}, {_pp(r['upper'])}] | "
                   f"**{r['verdict']}**{need} |")
    return out


ICON = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}


def _head(result: dict[str, Any]) -> list[str]:
    s, b, c = result["settings"], result["baseline"], result["candidate"]
    # escaped text, not code spans: inside a code span a renderer would show the escapes
    who = (f"candidate **{untrusted(c['alias'], 60)}** ({untrusted(c['model'], 60)}) vs current **{untrusted(b['alias'], 60)}** "
           f"({untrusted(b['model'], 60)})")
    seq = ""
    if result.get("sequential"):
        q = result["sequential"]
        seq = f"; sequential: stopped after {q['items_used']} of at most {q['items_max']} items"
    return [f"## {ICON[result['verdict']]} Regression gate: {result['verdict'].upper()} (exit {result['exit_code']})", "",
            f"{who}: margin {100 * s['margin']:g} pp, α = {s['alpha']} one-sided, n = {result['items']['n_compared']} items{seq}."]


def _flip_lines(result: dict[str, Any], limit: int) -> list[str]:
    flips = [f for f in result["flips"] if f["direction"] == "right→wrong"][:limit]
    if not flips:
        return []
    out = ["", f"Items that went right → wrong (first {len(flips)}; answers escaped, truncated):", "",
           "| task · grader | item | gold | current's answer | candidate's answer |", "|---|---|---|---|---|"]
    out += [f"| {untrusted(f['task'], 30)} · {untrusted(f['grader'], 30)} | {untrusted(f['id'], 30)} | {untrusted(f['target'], 30)} | "
            f"{untrusted(f['answer_baseline'], 60)} | {untrusted(f['answer_candidate'], 60)} |" for f in flips]
    return out


def _links(report: Path | None) -> list[str]:
    """Where the full report is: its path (uploaded as an artifact, or in the run dir), and the
    workflow run's page when running on GitHub Actions."""
    out = []
    if report is not None:
        out.append(f"Full report: {untrusted(report, 300)} (regress.json beside it)")
    server, repo, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run and re.fullmatch(r"[\w.-]+/[\w.-]+", repo) and run.isdigit() and re.fullmatch(r"https://[\w.-]+", server):
        out.append(f"[workflow run and its artifacts]({server}/{repo}/actions/runs/{run})")
    return ["", " · ".join(out)] if out else []


def step_summary(result: dict[str, Any], report: Path | None = None) -> str:
    """The step summary: the verdict, every gated cell, the first flipped items, the warnings."""
    lines = _head(result) + [""] + _cells_table(result, only_deciding=False)
    lines += [f"- ⚠ {untrusted(w, 300)}" for w in result["warnings"][:5]]
    lines += _flip_lines(result, 10) + _links(report)
    return "\n".join(lines) + "\n\n"


def comment(result: dict[str, Any], report: Path | None = None) -> str:
    """The PR comment: the verdict first, the cells that decide it, where the full report is."""
    lines = _head(result) + ["", "Deciding cells:", ""] + _cells_table(result, only_deciding=True) + _links(report)
    return "\n".join(lines) + "\n"


def write_github(result: dict[str, Any], report: Path | None, env: dict[str, str] | None = None) -> list[Path]:
    """Append the step summary / outputs to the files GitHub Actions names (each in one write, so a
    failure leaves no half entry). Returns the files written; nothing when not on GitHub Actions."""
    env = os.environ if env is None else env
    written = []
    for var, text in (("GITHUB_STEP_SUMMARY", step_summary(result, report)), ("GITHUB_OUTPUT", output_lines(outputs(result)))):
        if env.get(var):
            f = Path(env[var])
            with open(f, "a", encoding="utf-8") as fh:
                fh.write(text)
            written.append(f)
    return written
