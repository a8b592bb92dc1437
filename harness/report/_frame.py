"""inspect logs -> one tidy frame: a row per model alias x task x grader x item x epoch.

This is the only place that reads scores out of inspect logs; stats and reports work on the frame.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["alias", "model", "task", "grader", "id", "epoch", "value", "group", "answer", "extracted", "target", "cluster", "judge"]


def load_frame(log_dir: Path) -> pd.DataFrame:
    """Read every finished log under `log_dir` (recursively). The alias comes from the log's own
    metadata, so the frame can be rebuilt from the logs alone."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    from ..errors import HarnessError

    rows = []
    for info in list_eval_logs(str(log_dir), recursive=True):
        if "/.superseded/" in info.name:  # logs of an earlier, different evaluation (see evaluate._claim)
            continue
        try:
            log = read_eval_log(info)
        except Exception as e:  # a truncated or foreign file: name it, say what to do
            path = info.name.removeprefix("file://")
            raise HarnessError(f"{path}: not a readable inspect log ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                               "delete it and re-run the same `harness run` command to evaluate it again") from None
        if log.status != "success":
            continue
        alias = (log.eval.metadata or {}).get("alias", log.eval.model)
        for s in log.samples or []:
            for grader, sc in (s.scores or {}).items():
                meta = sc.metadata or {}
                rows.append((
                    alias, log.eval.model, log.eval.task, grader, str(s.id), s.epoch,
                    float(sc.value) if isinstance(sc.value, (int, float)) else float("nan"),
                    (s.metadata or {}).get("group", ""), meta.get("raw", s.output.completion if s.output else ""),
                    sc.answer or "", str(s.target), str((s.metadata or {}).get("cluster") or s.id),
                    # judge graders: "<judge model> vs <reference grader>", "" for match graders
                    f"{meta['judge']} vs {meta.get('reference', 'exact')}" if meta.get("judge") else "",
                ))
    return pd.DataFrame(rows, columns=COLUMNS)
