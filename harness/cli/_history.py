"""`harness history PATH[:alias] PATH[:alias] ... [--out DIR]`: many evaluations of the same task, one
per model version (oldest first), in one table and one plot, with each consecutive pair's paired
verdict and the first -> last one (harness.regress history; docs/regress.md "Run history")."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import ArgParser

HELP = """Accuracy per model version over time, and the regression gate between neighbours (never calls a model).

Each PATH is a finished `harness run` dir (RUN_DIR:alias picks the model), an inspect log or log dir,
or an lm-eval --output_path, all of the same task and items, oldest first. Writes history.md,
history.csv, history.png and history.json into --out (default: ./history). Exit 0 when written
(the verdicts are in the files), 2 on bad input."""


def parser() -> ArgParser:
    from ..config import RegressConfig

    d = RegressConfig()
    ap = ArgParser(prog="harness history", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                   command="history")
    ap.add_argument("paths", nargs="+", metavar="PATH[:alias]", help="one run dir or log per version, oldest first")
    ap.add_argument("--margin", type=float, default=d.margin, help=f"largest acceptable drop per step, 0-1 (default {d.margin})")
    ap.add_argument("--alpha", type=float, default=d.alpha, help=f"one-sided error rate (default {d.alpha})")
    ap.add_argument("--strict", action="store_true", help="any significant drop is a regression")
    ap.add_argument("--allow-subset", action="store_true", help="versions on different items: compare the items each pair shares")
    ap.add_argument("--out", type=Path, default=Path("history"), help="where the files go (default: ./history)")
    return ap


def command(argv: list[str]) -> None:
    from ..config import RegressConfig
    from ..regress import history, parse_ref, write_history

    a = parser().parse_args(argv)
    d = RegressConfig()
    refs = [parse_ref(p, d.candidate, f"version {i + 1}") for i, p in enumerate(a.paths)]
    doc = history(refs, RegressConfig(enabled=True, margin=a.margin, alpha=a.alpha, strict=a.strict, allow_subset=a.allow_subset))
    written = write_history(doc, a.out)
    for g in doc["gates"]:
        print(f"v{g['from']} -> v{g['to']}{' (first -> last)' if g['kind'] == 'drift' else ''}: {g['verdict'].upper()} (n = {g['n']})")
    print(f"[history] {written[0]} (and history.csv, history.png, history.json)")
