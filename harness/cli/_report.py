"""`harness report RUN_DIR [RUN_DIR ...] [--out DIR]`: rebuild a finished run's summary.json /
report.md / report.html from its logs; several runs or a sweep dir: one combined report. Inspect logs
(a .eval/.json file or a log dir) and lm-eval --log_samples outputs: one report comparing every model
they hold (written to --out, by default the current directory)."""

from __future__ import annotations

from pathlib import Path

from ._args import ArgParser

USAGE = "harness report RUN_DIR|LOG [RUN_DIR|LOG ...] [--out DIR]"


def parser() -> ArgParser:
    p = ArgParser(prog="harness report", usage=USAGE, description=__doc__, command="report")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR|LOG")
    p.add_argument("--out", type=Path, metavar="DIR", help="where to write the reports (default: the run dir)")
    return p


def command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    from ..report import report

    written = report(args.runs, args.out)
    _keep_gate(written.parent, args.runs)
    print(f"[report] {written}")


def _keep_gate(out: Path, runs: list[Path]) -> None:
    """A rebuilt run report keeps its regression gate's section (regress.json is the gate's record;
    the report package renders runs and knows nothing of gates)."""
    import json

    from ..regress import write_gate

    for src in (out, *runs):
        f = src / "regress.json"
        if f.is_file() and (out / "summary.json").is_file():
            write_gate(json.loads(f.read_text(encoding="utf-8")), out)
            return
