"""`harness cache ls | prune`: see and clear the caches (the logic is in harness.cache).

    harness cache ls [overrides]
    harness cache prune [--older-than DAYS] [--stage STAGE] [--all] [--dry-run] [overrides]

Two caches: the per-user one (converted embedded models, sentence embeddings: the same for every
project; $HARNESS_MODEL_CACHE, else $XDG_CACHE_HOME/harness, else ~/.cache/harness) and the stage
cache of run-specific stages (generate, finetune, questions, ...), the one `harness run` would use
with the same overrides: `cache_dir=...`, else $HARNESS_CACHE, else .cache/harness. Both are listed
and pruned (`--stage models` clears converted models: the next run converts again, ~10 s).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..cache import Entry, entries, is_locked, prune, user_cache_dir
from ..errors import HarnessError
from ._args import ArgParser, docs_link

USAGE = ("usage: harness cache ls [cache_dir=DIR] | "
         "harness cache prune [--older-than DAYS] [--stage STAGE] [--all] [--dry-run] [cache_dir=DIR]")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _origin(e: Entry) -> str:
    if e.partial:
        return "(build in progress, or left by a killed run)"
    m = e.meta
    if not m:
        return ""
    return " ".join(x for x in [m.get("experiment", ""), m.get("run", ""), m.get("what", "")] if x)


def table(cache_dir: Path) -> str:
    rows = entries(cache_dir)
    if not rows:
        return f"{cache_dir}: empty"
    now = time.time()
    lines = [("stage", "key", "size", "last used", "lock", "from (experiment, run, what)")]
    for e in rows:
        lines.append((e.stage, e.key, _human(e.size), _age(now - e.last_used) + " ago",
                      "held" if is_locked(e) else "-", _origin(e)))
    widths = [max(len(r[i]) for r in lines) for i in range(5)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in lines]
    total = sum(e.size for e in rows)
    out.append(f"{len(rows)} entries, {_human(total)} in {cache_dir}")
    return "\n".join(x.rstrip() for x in out)


def _days(v: str) -> float:
    import argparse

    try:
        days = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{v}' is not a number of days") from None
    if days < 0:
        raise argparse.ArgumentTypeError(f"'{v}' must be >= 0 days")
    return days


def prune_parser() -> ArgParser:
    p = ArgParser(prog="harness cache prune", usage=USAGE, command="cache")
    p.add_argument("--older-than", dest="older_than_days", type=_days, metavar="DAYS", help="entries not used for DAYS days")
    p.add_argument("--stage", help="one stage's entries (generate, finetune, models, ...)")
    p.add_argument("--all", action="store_true", help="every entry")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    return p


def parse_prune(args: list[str]) -> tuple[dict, list[str]]:
    """--older-than/--stage/--all/--dry-run out of `args`; the rest are config overrides."""
    ns, rest = prune_parser().parse_known_args(args)
    for a in rest:
        if a.startswith("-"):
            raise HarnessError(f"unknown option '{a}'; {USAGE}")
    opts = vars(ns)
    if not (opts["all"] or opts["older_than_days"] is not None or opts["stage"]):
        raise HarnessError("cache prune: say what to remove: --older-than DAYS, --stage STAGE, or --all")
    return opts, rest


def run_prune(cache_dirs: list[Path], opts: dict) -> str:
    stages = sorted({e.stage for d in cache_dirs for e in entries(d)})
    if opts["stage"] and opts["stage"] not in stages:
        where = " or ".join(map(str, cache_dirs))
        raise HarnessError(f"--stage: no stage '{opts['stage']}' in {where}; stages there: {', '.join(stages) or 'none'}")
    removed, busy = [], []
    for d in cache_dirs:
        r, b = prune(d, opts["older_than_days"], opts["stage"], opts["dry_run"])
        removed += r
        busy += b
    verb = "would remove" if opts["dry_run"] else "removed"
    lines = [f"{verb} {e.stage}/{e.key} ({_human(e.size)})" for e in removed]
    lines += [f"kept {e.stage}/{e.key}: a job holds its lock" for e in busy]
    lines.append(f"{verb} {len(removed)} entries, {_human(sum(e.size for e in removed))}; {len(busy)} in use kept")
    return "\n".join(lines)


def _cache_dir(overrides: list[str]) -> Path:
    """The cache dir `harness run` would use with these overrides (cache_dir=, $HARNESS_CACHE, default)."""
    from ._config import compose

    for a in overrides:
        if a.startswith("-"):
            raise HarnessError(f"unknown option '{a}'; {USAGE}")
    return Path(str(compose(overrides).cache_dir))


def _caches(overrides: list[str]) -> list[tuple[str, Path]]:
    """(what, dir): the per-user cache, then the stage cache (once, when they are the same dir)."""
    stage, user = _cache_dir(overrides), user_cache_dir()
    if stage.resolve() == user.resolve():
        return [("per-user and stage cache (one dir: $HARNESS_MODEL_CACHE = cache_dir)", user)]
    return [("per-user cache (converted models, embeddings; $HARNESS_MODEL_CACHE)", user),
            ("stage cache (run-specific stages; cache_dir)", stage)]


def command(argv: list[str]) -> None:
    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "ls":
        print("\n\n".join(f"{what}:\n{table(d)}" for what, d in _caches(rest)))
    elif sub == "prune":
        opts, rest = parse_prune(rest)
        print(run_prune([d for _, d in _caches(rest)], opts))
    elif sub in ("-h", "--help"):
        print(__doc__.split("\n\n")[1] + "\n\n" + docs_link("cache"))
    else:
        raise HarnessError(USAGE)
