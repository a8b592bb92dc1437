"""`harness run [--no-cache] [Hydra flags] [overrides]`: compose the config, check it, run the pipeline.

Hydra owns this command's argv: every flag of a Hydra app works as Hydra documents it (`--cfg
job|hydra|all`, `--resolve`, `--package`, `--info`, `--help`, `-m`, `-cd/--config-dir`, `-cn`,
`--shell-completion`). Before a run or multirun starts, every override (and each value of a sweep) is
composed and validated once, so bad input fails with one line before any job or stage starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..cache import user_cache_dir
from ..errors import HarnessError
from ._config import CONF_DIR, compose, experiment_dirs, experiments, register, use_config_dir
from ._errors import Escaped, fail, state
from ._quiet import summary_line, to_run_log


def _preflight():  # -> (validate, check_writable)
    """The pre-flight checks of the pipeline, imported in this one place (they move to their own module)."""
    from ..preflight import check_writable, validate, with_choice_grader

    # validated as the pipeline runs it: with the choice grader eval.auto_choice adds
    return (lambda c: validate(with_choice_grader(c)[0])), check_writable


def _pipeline_run():  # -> pipeline.run
    from ..pipeline import run

    return run


# Hydra's flags that take a value (and --info, whose value is optional)
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                "--experimental-rerun"}
_INFO = ({"--info", "-i"}, {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})


def _flags_first(argv: list[str]) -> list[str]:
    """The argv with Hydra's flags (and their values) first, the overrides after them: Hydra 1.3's
    parser drops overrides that follow a flag (`experiment=tiny --cfg job cache=false` is an error there)."""
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _VALUE_FLAGS:
            flags += argv[i:i + 2]
            i += 1
        elif a in _INFO[0]:
            flags.append(a)
            if i + 1 < len(argv) and argv[i + 1] in _INFO[1]:
                flags.append(argv[i + 1])
                i += 1
        elif a.startswith("-"):
            flags.append(a)
        else:
            overrides.append(a)
        i += 1
    return flags + overrides


def _hydra_args(argv: list[str]):  # -> argparse.Namespace
    """Hydra's own parse of the argv (the same parser @hydra.main uses): flags apart from overrides."""
    from hydra._internal.utils import get_args_parser

    args, unknown = get_args_parser().parse_known_args(argv)
    args.overrides = list(args.overrides) + unknown
    return args


def _check_serve_extra(cfg) -> None:
    """A model the harness serves itself (`serve:`) needs llama-cpp-python: say which extra, up front."""
    served = [a for a, m in cfg.models.items() if getattr(m, "serve", None)]
    if not served:
        return
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise HarnessError(f"models.{served[0]}.serve: serving a model needs llama-cpp-python; install the extra: "
                           "pip install 'harness[server]'")


def _check_experiments(overrides: list[str]) -> None:
    """`experiment` is an optional group: Hydra silently composes the defaults for a name it cannot
    find, so a typo would run (or show) the wrong experiment. Checked for every mode, --cfg included."""
    for o in overrides:
        if o.startswith("experiment="):
            for name in o.split("=", 1)[1].split(","):
                if name not in experiments():
                    dirs = experiment_dirs()
                    where = " or ".join(map(str, dirs)) + ("" if len(dirs) > 1 else "; add your own with --config-dir DIR")
                    fail(f"unknown experiment '{name}'; available: {', '.join(experiments())} (files in {where})")


def _precheck(overrides: list[str], config_name: str = "config", multirun: bool = False) -> None:
    """Compose once up front so that bad overrides fail with one line before any job starts."""
    from omegaconf import OmegaConf

    from ..config import to_dataclass

    _check_experiments(overrides)
    validate, check_writable = _preflight()
    # every value of every swept key is composed and validated, so a sweep never dies half-way
    for k, overrides_k in enumerate(_sweep_variants([o for o in overrides if not o.startswith("-")])):
        composed = compose(overrides_k, config_name)
        plain = OmegaConf.to_container(composed, resolve=False)
        plain.pop("hydra", None)
        c = to_dataclass(OmegaConf.create(plain))
        if k == 0:
            _offline_if_local(c)  # before anything imports huggingface_hub
        _check_serve_extra(c)
        validate(c)
        check_writable(Path(c.results_dir))
        check_writable(Path(c.cache_dir), "cache_dir")
        check_writable(user_cache_dir(), "HARNESS_MODEL_CACHE")
        if not multirun:  # before Hydra writes its .hydra/ files and cli.log into a dir another run is using
            _check_run_dir_free(composed)


def _check_run_dir_free(composed) -> None:
    """A second `harness run` of a run dir in use refuses here, before Hydra touches the dir (the
    pipeline's run lock refuses too, for every other caller)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ..guards import check_run_dir_free

    try:
        HydraConfig.instance().set_config(composed)
        run_dir = OmegaConf.select(composed, "hydra.run.dir")
    except (HydraException, OmegaConfBaseException, ValueError):  # left to Hydra, which reports it
        return
    if run_dir:
        check_run_dir_free(Path(str(run_dir)))


def _sweep_variants(overrides: list[str]) -> list[list[str]]:
    """Override lists to check before a (multi)run: the first value of every swept key, then each
    further value of each swept key in turn (linear in the number of values, not the product).
    Sweeps Hydra cannot expand without a config loader (glob) are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

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


def _headline(summary: dict) -> str:
    # the held-out task, or else the first task evaluated (an inspect task of eval.tasks)
    task = "heldout" if any(r["task"] == "heldout" for r in summary["scores"]) else next((r["task"] for r in summary["scores"]), None)
    rows = [r for r in summary["scores"] if r["task"] == task]
    parts = [f"{r['model']} {r['grader']} {100 * r['accuracy']:.0f}%" for r in rows]
    return f"[summary] {task}: " + ", ".join(parts) if parts else "[summary] no scores"


def _hydra_run(argv: list[str]) -> None:
    """Hand the argv to Hydra's own entry point (@hydra.main), with the packaged conf as primary dir."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from ..config import to_dataclass

    register()

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def _main(dcfg: DictConfig) -> None:
        register()  # launcher jobs in other processes need the resolvers too
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        state["run_dir"] = run_dir
        libraries = to_run_log()  # what the libraries say goes to cli.log, not the terminal (_quiet.py)
        try:
            summary = _pipeline_run()(to_dataclass(dcfg), run_dir)
        except Exception as e:  # to the CLI edge as it is (see Escaped)
            raise Escaped(e) from None
        print(f"[report] {run_dir / 'report.md'}", flush=True)
        print(_headline(summary), flush=True)
        line = summary_line(libraries, run_dir / "cli.log")
        if line:
            print(line, flush=True)
        if summary.get("regress"):  # the gate's verdict is the exit code (0 pass, 3 regression, 4 inconclusive)
            raise SystemExit(summary["regress"]["exit_code"])

    sys.argv = ["harness", *argv]  # Hydra's shell-completion script registers basename(argv[0])
    _main()


def _without_config_dir(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--config-dir", "-cd"):
            skip = True
        elif not a.startswith(("--config-dir=", "-cd=")):
            out.append(a)
    return out


def command(argv: list[str]) -> None:
    argv = _flags_first(["cache=false" if a == "--no-cache" else a for a in argv])
    args = _hydra_args(argv)
    # the user config dir: --config-dir, else $HARNESS_CONFIG_DIR. It goes to the environment, where the
    # search-path plugin (hydra_plugins/harness_searchpath) puts it before the packaged conf, and where
    # `${conf_path:}` and launcher jobs find it; not to Hydra's own --config-dir, which would search it last.
    use_config_dir(args.config_dir)
    argv = _without_config_dir(argv)
    if args.shell_completion and "COMP_LINE" in os.environ:
        # the shell's line is `harness run <overrides>`; Hydra's completion expects `<app> <overrides>`
        import re

        os.environ["COMP_LINE"] = re.sub(r"^(\s*\S+)\s+run(\s|$)", r"\1\2", os.environ["COMP_LINE"], count=1)
    if args.resolve and not (args.cfg or args.help):
        fail("--resolve goes with --cfg job|hydra|all (or --help): it resolves the printed config")
    modes = [f for f, on in (("--run", args.run), ("--multirun", args.multirun), ("--cfg", args.cfg),
                             ("--info", args.info), ("--shell-completion", args.shell_completion)) if on]
    if len(modes) > 1:
        fail(f"{' and '.join(modes)} cannot be combined: pick one of --run, --multirun, --cfg, --info, --shell-completion")
    running = not (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion)
    if running:
        _precheck(args.overrides, args.config_name or "config", bool(args.multirun))
    else:
        _check_experiments(args.overrides)
    _hydra_run(argv)
