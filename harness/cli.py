"""The `harness` console script. Only this module knows Hydra.

    harness run [--no-cache] [hydra overrides]
                                       compose conf/ + an experiment, run the pipeline (--no-cache = cache=false)
    harness report DIR [DIR ...] [--out D]
                                       rebuild a finished run's summary.json / report.md / report.html
                                       from its logs; several runs or a sweep dir: one combined report
    harness regress --baseline RUN_DIR[:alias] --candidate RUN_DIR[:alias] [--margin M] [--alpha A] [--strict]
                                       gate a candidate against the current model from finished runs
                                       (exit 0 pass, 3 regression, 4 inconclusive; see docs/regress.md)
    harness cache ls [overrides]       the stage cache: stage, key, size, last use, which run used it
    harness cache prune [--older-than DAYS] [--stage S] [--all] [--dry-run] [overrides]
                                       delete cache entries (never one a running job holds locked)

Exit codes: 0 success (or gate passed), 2 usage or input error (one line on stderr, no traceback),
1 internal error, 3 regression, 4 inconclusive (a run with regress.enabled, or `harness regress`).
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

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="harness"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def register() -> None:
    """Register the schema and the resolvers Hydra needs. Idempotent."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from .config import NOT_RESULT_KEYS, HarnessConfig, run_name

    ConfigStore.instance().store(name="harness_schema", node=HarnessConfig)
    if not OmegaConf.has_resolver("run_name"):
        # `results/<experiment>/<run>`: the run name is the override list (deterministic, so the
        # same command lands in the same dir and can resume); "default" when nothing is overridden.
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("not_result_keys"):
        OmegaConf.register_new_resolver("not_result_keys", lambda: list(NOT_RESULT_KEYS))


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
    from omegaconf import OmegaConf

    from .config import to_dataclass
    from .errors import HarnessError

    def one_line(e: Exception) -> str:
        msg = " ".join(str(e).split()).split(" Config search path")[0].split(" See https://hydra.cc")[0]
        if isinstance(e, HydraException) and e.__cause__ is not None:
            msg += ": " + " ".join(str(e.__cause__).split("\n")[0].split())
        return msg

    try:
        # every value of every swept key is composed and validated, so a sweep never dies half-way
        for k, overrides_k in enumerate(_sweep_variants([o for o in overrides if not o.startswith("-")])):
            plain = OmegaConf.to_container(compose(overrides_k), resolve=False)
            plain.pop("hydra", None)
            c = to_dataclass(OmegaConf.create(plain))
            if k == 0:
                _offline_if_local(c)  # before anything imports huggingface_hub
            from .preflight import check_writable, validate

            validate(c)
            check_writable(Path(c.results_dir))
            check_writable(Path(c.cache_dir), "cache_dir")
    except (HydraException, OmegaConfBaseException, HarnessError) as e:
        fail(one_line(e))


def _sweep_variants(overrides: list[str]) -> list[list[str]]:
    """Override lists to check before a (multi)run: the first value of every swept key, then each
    further value of each swept key in turn (linear in the number of values, not the product).
    Sweeps Hydra cannot expand without a config loader (glob) are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from .errors import HarnessError

    parser = OverridesParser.create()
    base: list[str] = []
    alternatives: list[tuple[int, list[str]]] = []
    for line in overrides:
        try:
            o = parser.parse_override(line)
        except HydraException as e:
            raise HarnessError(f"override '{line}' is malformed ({' '.join(str(e).split())[:160]}); "
                               "write key=value, or key=v1,v2 to sweep") from None
        if not o.is_sweep_override():
            base.append(o.input_line)
            continue
        try:
            values = list(o.sweep_string_iterator())
        except HydraException:
            continue
        key = o.get_key_element()
        base.append(f"{key}={values[0]}")
        alternatives.append((len(base) - 1, [f"{key}={v}" for v in values[1:]]))
    out = [base]
    for i, alts in alternatives:
        out += [base[:i] + [a] + base[i + 1:] for a in alts]
    return out


def _offline_if_local(cfg) -> None:
    """Local `hf/` models are loaded from `model_path`; without this, transformers still asks the
    Hub for an adapter config under the model's name and retries for a minute when offline. Must
    run before huggingface_hub is imported (it reads the variable once)."""
    if all(m.args.get("model_path") for m in cfg.models.values() if m.model.startswith("hf/")):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _hydra_run(argv: list[str]) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from .config import to_dataclass
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
        if summary.get("regress"):  # the gate's verdict is the exit code (0 pass, 3 regression, 4 inconclusive)
            raise SystemExit(summary["regress"]["exit_code"])

    sys.argv = ["harness run", *argv]
    _main()


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency; keeps `harness --help` importable anyway
    Callback = object  # type: ignore[assignment,misc]


class SweepReport(Callback):  # type: ignore[misc,valid-type]
    """Hydra callback (conf/config.yaml: hydra.callbacks): after a multirun, write one report over
    every job of the sweep, as `harness report <sweep dir>` would."""

    def on_multirun_end(self, config, **kwargs) -> None:  # noqa: ANN001
        from .errors import HarnessError
        from .report import report

        try:
            print(f"[sweep report] {report([Path(config.hydra.sweep.dir)])}", flush=True)
        except HarnessError as e:  # the jobs' own reports are written; say why this one is not
            print(f"harness: warning: no sweep report: {e}", file=sys.stderr)


def _cache(args: list[str]) -> None:
    from . import _cache_cmd
    from .errors import HarnessError

    sub, rest = (args[0], args[1:]) if args else ("", [])
    try:
        if sub == "ls":
            print(_cache_cmd.table(_cache_dir(rest)))
        elif sub == "prune":
            opts, rest = _cache_cmd.parse_prune(rest)
            print(_cache_cmd.run_prune(_cache_dir(rest), opts))
        else:
            fail(_cache_cmd.USAGE)
    except HarnessError as e:
        fail(str(e))


def _cache_dir(overrides: list[str]) -> Path:
    """The cache dir `harness run` would use with these overrides (cache_dir=, $HARNESS_CACHE, default)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return Path(str(compose(overrides).cache_dir))
    except (HydraException, OmegaConfBaseException) as e:
        fail(" ".join(str(e).split())[:300])


REGRESS_HELP = """Gate a candidate model against the current one, from finished run dirs (never calls a model).

RUN_DIR[:alias] names a model inside a finished `harness run` (default aliases: current / candidate).
Writes regress.json, regress.md and a section in the candidate run's report.html (or --out DIR).

exit codes: 0 pass (non-inferior within the margin on every gated cell), 3 regression,
            4 inconclusive (0 with --inconclusive=pass), 2 bad input, 1 internal error"""


def _regress(args: list[str]) -> None:
    import argparse

    from .config import RegressConfig
    from .errors import HarnessError
    from .regress import gate, parse_ref, write_gate

    d = RegressConfig()
    ap = argparse.ArgumentParser(prog="harness regress", description=REGRESS_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, metavar="RUN_DIR[:alias]", help=f"the current model (alias default: {d.baseline})")
    ap.add_argument("--candidate", required=True, metavar="RUN_DIR[:alias]", help=f"the model that would replace it (alias default: {d.candidate})")
    ap.add_argument("--margin", type=float, default=d.margin, help=f"largest acceptable drop, 0-1 (default {d.margin} = {100 * d.margin:g} pp)")
    ap.add_argument("--alpha", type=float, default=d.alpha, help=f"one-sided error rate (default {d.alpha})")
    ap.add_argument("--strict", action="store_true", help="any significant drop is a regression, not only one beyond the margin")
    ap.add_argument("--inconclusive", choices=["fail", "pass"], default=d.inconclusive, help="exit 4 (fail, default) or 0 (pass)")
    ap.add_argument("--tasks", nargs="+", default=[], help="gated tasks (default: all)")
    ap.add_argument("--graders", nargs="+", default=[], help="gated graders (default: all; a judge only where it passed its validation)")
    ap.add_argument("--allow-subset", action="store_true", help="runs on different items: compare the items both share")
    ap.add_argument("--out", type=Path, help="where regress.json / regress.md go (default: the candidate's run dir)")
    try:
        a = ap.parse_args(args)
    except SystemExit as e:  # argparse printed its one-line usage error; bad input is exit 2
        raise SystemExit(0 if e.code == 0 else 2) from None
    try:
        base = parse_ref(a.baseline, d.baseline, "--baseline")
        cand = parse_ref(a.candidate, d.candidate, "--candidate")
        s = RegressConfig(enabled=True, baseline=base.alias, candidate=cand.alias, margin=a.margin, alpha=a.alpha,
                          strict=a.strict, inconclusive=a.inconclusive, tasks=a.tasks, graders=a.graders,
                          allow_subset=a.allow_subset)
        result = gate(base, cand, s)
        out = a.out or cand.dir
        print(write_gate(result, out))
        print(f"[regress] {out / 'regress.md'}")
    except HarnessError as e:
        fail(str(e))
    raise SystemExit(result["exit_code"])


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
        rest = ["cache=false" if a == "--no-cache" else a for a in rest]
        _precheck(rest)
        _hydra_run(rest)
    elif cmd == "report":
        from .errors import HarnessError
        from .report import report

        if not rest:
            fail("usage: harness report RUN_DIR [RUN_DIR ...] [--out DIR]")
        out = None
        if "--out" in rest:
            i = rest.index("--out")
            if i + 1 >= len(rest):
                fail("--out needs a directory")
            out = Path(rest[i + 1])
            rest = rest[:i] + rest[i + 2:]
        try:
            print(f"[report] {report([Path(d) for d in rest], out)}")
        except HarnessError as e:
            fail(str(e))
    elif cmd == "cache":
        _cache(rest)
    elif cmd == "regress":
        _regress(rest)
    else:
        fail(f"unknown command '{cmd}'\n{USAGE}")


if __name__ == "__main__":
    main()
