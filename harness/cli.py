"""The `harness` console script. Only this module knows Hydra.

    harness run [hydra overrides]      compose conf/ + an experiment, run the pipeline
    harness report RUN_DIR [--out D]   rebuild summary.json / report.md from a finished run's logs

Exit codes: 0 success, 2 usage or input error (one line on stderr, no traceback), 1 anything else.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
EXPERIMENTS_DIR = REPO / "experiments"

USAGE = __doc__.split("\n\n")[1]


def fail(msg: str, code: int = 2) -> NoReturn:
    print(f"harness: error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def experiments() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def compose(overrides: list[str]):  # -> DictConfig
    """Compose the config exactly as `harness run` would (tests use this too)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from .config import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="harness"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def _precheck(overrides: list[str]) -> None:
    """Compose once up front so that bad overrides fail with one line before any job starts."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for o in overrides:
        if o.startswith("experiment="):
            names = o.split("=", 1)[1].split(",")
            for name in names:
                if name not in experiments():
                    fail(f"unknown experiment '{name}'; available: {', '.join(experiments())} (files in {EXPERIMENTS_DIR})")
    sweep = [o for o in overrides if not o.startswith("-") and "=" in o and "," in o.split("=", 1)[1]]
    try:
        # a multirun override list is checked with its first value of every swept key
        cfg = compose([o.split("=", 1)[0] + "=" + o.split("=", 1)[1].split(",")[0] if o in sweep else o
                       for o in overrides if not o.startswith("-")])
    except (HydraException, OmegaConfBaseException) as e:
        msg = " ".join(str(e).split()).split(" Config search path")[0]
        cause = e.__cause__
        if cause is not None:
            msg += ": " + " ".join(str(cause).split("\n")[0].split())
        fail(msg)
    from .config import to_dataclass
    from .errors import HarnessError
    from .pipeline import check_writable, validate

    try:
        from omegaconf import OmegaConf

        plain = OmegaConf.to_container(cfg, resolve=False)
        plain.pop("hydra", None)
        c = to_dataclass(OmegaConf.create(plain))
        validate(c)
        check_writable(Path(c.results_dir))
        check_writable(Path(c.cache_dir), "cache_dir")
    except (HarnessError, OmegaConfBaseException) as e:
        fail(" ".join(str(e).split()))


def _hydra_run(argv: list[str]) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from .config import register, to_dataclass
    from .errors import HarnessError
    from .pipeline import run

    register()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def _main(dcfg: DictConfig) -> None:
        cfg = to_dataclass(dcfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            summary = run(cfg, run_dir)
        except HarnessError as e:
            fail(str(e))
        print(f"[report] {run_dir / 'report.md'}", flush=True)
        print(_headline(summary), flush=True)

    sys.argv = ["harness run", *argv]
    _main()


def _headline(summary: dict) -> str:
    rows = [r for r in summary["scores"] if r["task"] == "heldout"]
    parts = [f"{r['model']} {r['grader']} {100 * r['accuracy']:.0f}%" for r in rows]
    return "[summary] heldout: " + ", ".join(parts) if parts else "[summary] no heldout scores"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        if any(a in ("-h", "--help") for a in rest):
            print(USAGE + "\nexperiments: " + ", ".join(experiments()))
            raise SystemExit(0)
        _precheck(rest)
        _hydra_run(rest)
    elif cmd == "report":
        from .errors import HarnessError
        from .report._rebuild import rebuild

        if not rest:
            fail("usage: harness report RUN_DIR [--out DIR]")
        out = None
        if "--out" in rest:
            i = rest.index("--out")
            if i + 1 >= len(rest):
                fail("--out needs a directory")
            out = Path(rest[i + 1])
            rest = rest[:i] + rest[i + 2:]
        try:
            for d in rest:
                path = rebuild(Path(d), out)
                print(f"[report] {path}")
        except HarnessError as e:
            fail(str(e))
    else:
        fail(f"unknown command '{cmd}'\n{USAGE}")


if __name__ == "__main__":
    main()
