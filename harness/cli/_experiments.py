"""`harness experiments [--config-dir DIR]`: the experiments available (packaged and the user's), each
with the one-line description from its overlay's first comment line."""

from __future__ import annotations

from ._args import ArgParser
from ._config import EXPERIMENTS_DIR, describe_experiments, use_config_dir


def parser() -> ArgParser:
    p = ArgParser(prog="harness experiments", usage="harness experiments [--config-dir DIR] [--paths]",
                  description=__doc__, command="experiments")
    p.add_argument("--config-dir", "-cd", metavar="DIR", help="a user config dir (default: $HARNESS_CONFIG_DIR)")
    p.add_argument("--paths", action="store_true", help="also print each overlay's file")
    return p


def command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    use_config_dir(args.config_dir)
    rows = describe_experiments()
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, text, path in rows:
        origin = "" if path.is_relative_to(EXPERIMENTS_DIR) else "  (yours)"
        line = f"{name.ljust(width)}  {text}{origin}"
        print(f"{line}\n{' ' * width}  {path}" if args.paths else line)
    print("\nrun one: harness run experiment=NAME [overrides]   (harness run --help lists every config group)")
