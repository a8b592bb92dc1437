"""Hydra callbacks named in conf/config.yaml (`hydra.callbacks`)."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency; keeps `harness --help` importable anyway
    Callback = object  # type: ignore[assignment,misc]


class SweepReport(Callback):  # type: ignore[misc,valid-type]
    """After a multirun, write one report over every job of the sweep, as `harness report <sweep dir>` would."""

    def on_multirun_end(self, config, **kwargs) -> None:  # noqa: ANN001
        from ..errors import HarnessError
        from ..report import report

        try:
            print(f"[sweep report] {report([Path(config.hydra.sweep.dir)])}", flush=True)
        except HarnessError as e:  # the jobs' own reports are written; say why this one is not
            print(f"harness: warning: no sweep report: {e}", file=sys.stderr)
