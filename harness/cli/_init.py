"""`harness init DIR [--force]`: write a starter project (harness._init_project) and say what to run."""

from __future__ import annotations

from pathlib import Path

from ._args import ArgParser


def parser() -> ArgParser:
    p = ArgParser(prog="harness init", usage="harness init DIR [--force]", description=__doc__, command="init")
    p.add_argument("dir", type=Path, metavar="DIR", help="the project folder to write (created if missing)")
    p.add_argument("--force", action="store_true", help="overwrite the starter's files if they exist")
    return p


def command(argv: list[str]) -> None:
    from .._init_project import init_project

    args = parser().parse_args(argv)
    for path in init_project(args.dir, args.force):
        print(f"wrote {path}")
    print(f"\nnext: cd {args.dir} && harness run --config-dir conf experiment=distil_mine")
