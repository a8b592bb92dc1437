"""Usage accounting: calls, tokens, latency p50/p95 and cost per model alias and stage.

Usage is what the run's results cost to produce, read back from what the run keeps: the teacher's
calls from `data/usage.jsonl` (recorded when the answers were generated, kept with the cached
answers), the evaluation's from the inspect logs (every model call is a ModelEvent with its usage
and time). So a warm re-run and `harness report` show the same usage as the cold run, while
`model_calls` counts what was actually sent in this run (0 when everything was cached).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..usage import Call, calls_from_jsonl


def calls_from_logs(log_dir: Path, alias: str | None = None) -> dict[str, list[Call]]:
    """alias -> calls, from every finished inspect log under `log_dir`. Calls made in the `grader`
    role (an LLM judge) count for the alias "judge"; `alias` overrides the log's own alias."""
    from inspect_ai.event import ModelEvent
    from inspect_ai.log import list_eval_logs, read_eval_log

    out: dict[str, list[Call]] = {}
    if not log_dir.exists():
        return out
    for info in list_eval_logs(str(log_dir), recursive=True):
        if "/.superseded/" in info.name:
            continue
        try:
            log = read_eval_log(info)
        except Exception:  # load_frame names unreadable logs; usage just skips them
            continue
        if log.status != "success":
            continue
        own = alias or (log.eval.metadata or {}).get("alias", log.eval.model)
        for s in log.samples or []:
            for e in s.events:
                if isinstance(e, ModelEvent) and e.output is not None:
                    u = e.output.usage
                    who = "judge" if e.role == "grader" else own
                    out.setdefault(who, []).append((int(u.input_tokens) if u else 0, int(u.output_tokens) if u else 0,
                                                    float(e.output.time if e.output.time is not None else e.working_time or 0.0)))
    return out


def summarise(calls: dict[str, list[Call]], prices: dict[str, tuple[float, float]]) -> dict[str, dict[str, Any]]:
    """alias -> {calls, input_tokens, output_tokens, cost_usd, latency_p50_s, latency_p95_s}."""
    import numpy as np

    out = {}
    for alias, cs in sorted(calls.items()):
        if not cs:
            continue
        tin, tout = sum(c[0] for c in cs), sum(c[1] for c in cs)
        p_in, p_out = prices.get(alias, (0.0, 0.0))
        lat = np.array([c[2] for c in cs], dtype=float)
        out[alias] = {"calls": len(cs), "input_tokens": tin, "output_tokens": tout,
                      "cost_usd": round((tin * p_in + tout * p_out) / 1e6, 6),
                      "latency_p50_s": round(float(np.percentile(lat, 50)), 3),
                      "latency_p95_s": round(float(np.percentile(lat, 95)), 3)}
    return out


def prices_from_config(config: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """alias -> (USD per 1M input tokens, per 1M output tokens) from a run's (asdict'ed) config;
    the judge's from the first judge grader's model config."""
    out = {a: (float(m.get("price_in", 0.0)), float(m.get("price_out", 0.0))) for a, m in (config.get("models") or {}).items()}
    for g in (config.get("graders") or {}).values():
        j = g.get("judge") if isinstance(g, dict) else None
        if j:
            out.setdefault("judge", (float(j.get("price_in", 0.0)), float(j.get("price_out", 0.0))))
    return out


def run_usage(run_dir: Path, config: dict[str, Any], teacher: str = "teacher") -> dict[str, Any]:
    """summary.json's `usage` (per alias, all stages) and `usage_by_stage` (stage -> alias -> ...)."""
    prices = prices_from_config(config)
    stages: dict[str, dict[str, list[Call]]] = {"generate": {}, "evaluate": {}}
    gen = calls_from_jsonl(run_dir / "data" / "usage.jsonl")
    if gen:
        stages["generate"][teacher] = gen
    stages["evaluate"] = calls_from_logs(run_dir / "logs")
    for alias, cs in calls_from_logs(run_dir / "judge", alias="judge").items():  # pairwise judging
        stages["evaluate"].setdefault(alias, []).extend(cs)
    total: dict[str, list[Call]] = {}
    for per_alias in stages.values():
        for alias, cs in per_alias.items():
            total.setdefault(alias, []).extend(cs)
    return {"usage": summarise(total, prices),
            "usage_by_stage": {st: summarise(c, prices) for st, c in stages.items() if c}}


USAGE_NOTE = ("What producing these results cost: every teacher call of the generate stage (recorded with its "
              "answers, so cached answers keep their usage) and every model call in the inspect logs (a judge's as "
              "`judge`). Latency is per call as the caller saw it (a batched local backend reports the batch's time). "
              "Cost = tokens × the model config's price_in / price_out (USD per 1M tokens; 0 for local models). "
              "Model calls actually sent in this run are in the stage timings.")


def usage_rows(s: dict[str, Any]) -> list[tuple[str, str, int, int, int, str, str, str]]:
    """(stage, alias, calls, input tokens, output tokens, p50, p95, cost) rows: per stage, then totals."""
    rows = []
    sections = list((s.get("usage_by_stage") or {}).items()) + [("all", s.get("usage") or {})]
    for stage, per in sections:
        for alias, u in per.items():
            rows.append((stage, alias, u["calls"], u["input_tokens"], u["output_tokens"],
                         f"{u['latency_p50_s']:.2f}", f"{u['latency_p95_s']:.2f}", f"{u['cost_usd']:.4f}"))
    return rows


def usage_markdown(s: dict[str, Any]) -> list[str]:
    rows = usage_rows(s)
    if not rows:
        return []
    lines = ["", "## Usage", "", USAGE_NOTE, "",
             "| stage | model | calls | input tokens | output tokens | latency p50 (s) | latency p95 (s) | cost (USD) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines
