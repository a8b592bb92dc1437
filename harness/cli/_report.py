"""`harness report RUN_DIR [RUN_DIR ...] [--out DIR]`: rebuild a finished run's summary.json /
report.md / report.html from its logs; several runs or a sweep dir: one combined report."""

from __future__ import annotations

from pathlib import Path

from ._args import ArgParser

USAGE = "harness report RUN_DIR [RUN_DIR ...] [--out DIR]"


def command(argv: list[str]) -> None:
    parser = ArgParser(prog="harness report", usage=USAGE, description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where to write the reports (default: the run dir)")
    args = parser.parse_args(argv)
    from ..report import report

    print(f"[report] {report(args.runs, args.out)}")
