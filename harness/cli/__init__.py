"""The `harness` console script. Only this package knows Hydra.

One module per command, each with `command(argv)`: _run (Hydra owns its argv), _report, _cache,
_experiments, _init, _history (argparse via _args.ArgParser). _errors is the one error path every command shares
(`guarded`: one line on stderr, exit 2 for bad input, 1 for anything else); _config finds the packaged
conf and the user's config dir and composes configs; _callbacks holds the Hydra callbacks the config
names; _quiet sends what the libraries say during a run to its cli.log. A new command is a module
`_name.py` plus one line in COMMANDS.
"""

from __future__ import annotations

import importlib
import os
import sys

from ._args import docs_link
from ._callbacks import SweepReport
from ._config import CONF_DIR, EXPERIMENTS_DIR, compose, experiments
from ._errors import fail, guarded
from ._run import _precheck, _sweep_variants

__all__ = ["CONF_DIR", "EXPERIMENTS_DIR", "SweepReport", "compose", "experiments", "fail", "main", "version",
           "_precheck", "_sweep_variants"]

USAGE = """\
    harness run [--no-cache] [Hydra flags] [overrides]
                       compose the packaged configs (your --config-dir DIR / $HARNESS_CONFIG_DIR first)
                       with an experiment and run the pipeline; `harness run --help` lists the config
                       groups; Hydra's flags: --cfg job|hydra|all, --resolve, --package, --info, -m, -cd, -cn
    harness report DIR [DIR ...] [--out D]
                       rebuild a finished run's summary.json / report.md / report.html from its logs;
                       several runs or a sweep dir: one combined report
    harness cache ls [overrides]
                       the stage cache: stage, key, size, last use, which run used it
    harness cache prune [--older-than DAYS] [--stage S] [--all] [--dry-run] [overrides]
                       delete cache entries (never one a running job holds locked)
    harness regress --baseline RUN_DIR[:alias] --candidate RUN_DIR[:alias] [--margin M] [--alpha A] [--strict]
                       gate a candidate against the current model from finished runs
                       (exit 0 pass, 3 regression, 4 inconclusive; see docs/regress.md); --comment FILE,
                       --sequential over logs still being written; on GitHub Actions: step summary and outputs
    harness history PATH[:alias] PATH[:alias] ... [--out DIR]
                       accuracy per model version (oldest first) with each step's paired gate verdict
    harness experiments [--config-dir DIR]
                       the experiments available (packaged and yours), one line each
    harness init DIR   write a starter project: your experiments, data, a model entry, a CI workflow
    harness --version

Exit codes: 0 success (or gate passed), 2 usage or input error, 1 internal error, 3 regression,
4 inconclusive (a run with regress.enabled, or `harness regress`); errors are one line on stderr
(`harness: error: ...` / `harness: internal error: ... (full traceback in <file>)`); HARNESS_DEBUG=1
prints the traceback too.

""" + docs_link("harness")

# command -> module (each has `command(argv)`); a new command is one module and one line here
COMMANDS = {
    "run": "._run",
    "report": "._report",
    "cache": "._cache",
    "regress": "._regress",
    "experiments": "._experiments",
    "init": "._init",
    "history": "._history",
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("harness")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH, not installed
        return "0+source"


def _dispatch(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    if argv[0] in ("-V", "--version"):
        print(f"harness {version()}")
        return
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-sc", "--shell-completion") or cmd.startswith("--shell-completion="):
        cmd, rest = "run", argv  # Hydra's completion script calls `harness -sc query=bash`
    if cmd not in COMMANDS:
        fail(f"unknown command '{cmd}'; commands: {', '.join(COMMANDS)} (harness --help)")
    importlib.import_module(COMMANDS[cmd], __name__).command(rest)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    guarded(lambda: _dispatch(argv))
