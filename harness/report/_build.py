"""One summary assembly for a finished run: `harness run` (at the end of the pipeline) and
`harness report` (rebuilding from the logs alone) both call `build_summary`.

The run supplies its *facts* (what only it knows: models, data, fine-tunes, timings, calls, paths,
the config); everything derived from the inspect logs (scores, comparisons, judge checks, usage) is
computed here, then summary.json, report.md and report.html are written (each to a temp file, then
renamed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..cache import write_json, write_text
from ..config import RegressConfig, ReportConfig
from ..runs import load_frame, run_students
from ._analysis import SCHEMA_VERSION, analyse, model_order
from ._html import render_html
from ._judge import calibration_table, pairwise_table, read_gates
from ._markdown import render_markdown
from ._usage import run_usage

# summary.json's key order (docs/summary.md): a rebuilt summary reads like the run's own
ORDER = ("schema_version", "experiment", "run", "models", "students", "model_notes", "alpha", "scores", "comparisons",
         "gap_closed", "categories", "flips", "judge_agreement", "noise",
         "grader_checks", "judge_notes", "grader_fingerprints", "pairwise", "judge_calibration", "judge_gate", "data",
         "finetune", "finetunes", "stage_seconds", "stage_calls", "usage", "usage_by_stage", "model_calls", "paths",
         "environment", "config", "regress")


def report_config(config: dict[str, Any]) -> ReportConfig:
    """The run's own report settings (alpha, correction, extra pairs), so a rebuild matches the run."""
    rc = (config or {}).get("report") or {}
    return ReportConfig(**{k: v for k, v in rc.items() if k in ReportConfig.__dataclass_fields__})


def experiment_margin(config: dict[str, Any]) -> float:
    """The experiment's margin (regress.margin, the gate's): each comparison's outcome is read against it."""
    return float(((config or {}).get("regress") or {}).get("margin", RegressConfig.margin))


def build_summary(run_dir: Path | None, facts: dict[str, Any], frame: pd.DataFrame | None = None,
                  out: Path | None = None) -> dict[str, Any]:
    """summary.json = the run's facts + what the logs under `run_dir` say; writes summary.json,
    report.md and report.html into `out` (default: the run dir). `frame`: the logs' frame, when
    the caller has read it already. `run_dir` None: foreign evaluations (inspect logs, lm-eval
    samples; `frame` given), with no run dir to read pairwise verdicts or usage from."""
    config = facts.get("config") or {}
    students = run_students(facts)
    frame = load_frame(run_dir / "logs") if frame is None and run_dir is not None else frame
    graders = config.get("graders") or {}
    derived = {
        "schema_version": SCHEMA_VERSION,
        **analyse(frame, report_config(config), students, list(facts.get("models") or {}), graders, experiment_margin(config)),
        "pairwise": pairwise_table(run_dir / "judge") if run_dir is not None else [],
        "judge_gate": read_gates(run_dir / "judge") if run_dir is not None else [],
        "judge_calibration": calibration_table(frame, {n: g["calibration"] for n, g in graders.items() if g.get("calibration")}),
        **(run_usage(run_dir, config) if run_dir is not None else {"usage": {}, "usage_by_stage": {}}),
    }
    merged = {**facts, **derived}
    summary = {k: merged[k] for k in ORDER if k in merged} | {k: v for k, v in merged.items() if k not in ORDER}
    out = out or run_dir
    assert out is not None
    order = model_order(list(summary["models"]), students)
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", render_markdown(summary, order))
    write_text(out / "report.html", render_html(summary, order))
    return summary
