"""Where configs come from: the packaged defaults, with a user's own config dir searched first.

The layout is two sibling folders: `conf/` (the config groups; Hydra's primary config dir) and
`experiments/` (the overlays, Hydra's group `experiment`). In a source checkout they are the top-level
folders of the repository; the wheel ships them as package data, `harness/conf/` and
`harness/experiments/` (pyproject.toml maps them there). A user's dir (`--config-dir DIR` / `-cd DIR`,
else `$HARNESS_CONFIG_DIR`) and its sibling `experiments/` are put in front of them on Hydra's search
path by the plugins in `hydra_plugins.harness_searchpath` (shipped with the package), so their
`model/`, `grader/` ... and experiment files shadow packaged ones of the same name and add new ones;
everything else stays available underneath. `--info searchpath` shows the order.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import HarnessError

_PACKAGE = Path(__file__).resolve().parents[1]
# the wheel holds the folders inside the package; a source checkout (editable install) beside it
_ROOT = _PACKAGE if (_PACKAGE / "conf" / "config.yaml").is_file() else _PACKAGE.parent
CONF_DIR = _ROOT / "conf"
EXPERIMENTS_DIR = _ROOT / "experiments"
ENV = "HARNESS_CONFIG_DIR"


def user_config_dir() -> Path | None:
    """The user's config dir ($HARNESS_CONFIG_DIR; `harness run --config-dir` sets it), checked."""
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise HarnessError(f"config dir {value} ({ENV} or --config-dir) is not a directory; "
                           "point it at a dir holding experiment/, model/ ... (harness init DIR writes one)")
    return path


def use_config_dir(value: str | None) -> None:
    """Make `value` (from --config-dir) the user config dir for this process and the jobs it starts."""
    if value:
        os.environ[ENV] = value
    user = user_config_dir()  # checks it
    if user is not None:  # absolute, for launcher jobs that may start elsewhere
        os.environ[ENV] = str(user)


def conf_path(relative: str) -> str:
    """`${conf_path:data/eval.jsonl}`: a path relative to the user config dir (else the packaged one),
    so an experiment's data files travel with its config dir whatever the working directory."""
    return str((user_config_dir() or CONF_DIR) / relative)


def example(name: str) -> str:
    """`${example:mc.jsonl}`: a data file shipped with the package (harness/examples/), so the
    packaged `mc` and `math` experiments run as they stand."""
    return str(_PACKAGE / "examples" / name)


def register() -> None:
    """The schema (Hydra's ConfigStore) and the resolvers the configs use. Idempotent."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from ..config import NOT_RESULT_KEYS, HarnessConfig, run_name

    ConfigStore.instance().store(name="harness_schema", node=HarnessConfig)
    # `results/<experiment>/<run>`: the run name is the override list (deterministic, so the same
    # command lands in the same dir and can resume); "default" when nothing is overridden
    for name, fn in (("run_name", run_name), ("conf_path", conf_path), ("not_result_keys", lambda: list(NOT_RESULT_KEYS)),
                     ("example", example)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def search_dirs() -> list[Path]:
    """Config dirs in search order: the user's (if any), then the packaged defaults."""
    user = user_config_dir()
    return [user, CONF_DIR] if user else [CONF_DIR]


def experiment_dirs() -> list[Path]:
    """Folders of experiment files in Hydra's search order: the user config dir's `experiment/` group
    (the layout before `experiments/`, still searched) and its sibling `experiments/`, then the
    packaged `experiments/` (the same order as the search-path plugin's)."""
    user = user_config_dir()
    return ([user / "experiment", user.parent / "experiments"] if user else []) + [EXPERIMENTS_DIR]


def experiments() -> list[str]:
    """Experiment names available (user and packaged)."""
    return sorted({p.stem for d in experiment_dirs() for p in d.glob("*.yaml") if p.is_file()})


def describe_experiments() -> list[tuple[str, str, Path]]:
    """(name, one-line description, file) for each experiment; the user's file wins over a packaged one
    of the same name, as in Hydra's search path. The description is the overlay's first comment line
    that is not a `# @package` directive."""
    found: dict[str, Path] = {}
    for d in reversed(experiment_dirs()):
        for p in d.glob("*.yaml"):
            if p.is_file():
                found[p.stem] = p
    out = []
    for name, path in sorted(found.items()):
        text = ""
        try:
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                s = line.strip()
                if s.startswith("#") and not s.lstrip("# ").startswith("@package"):
                    text = s.lstrip("# ").strip()
                    if text:
                        break
                elif s and not s.startswith("#"):
                    break
        except OSError:
            text = "(unreadable)"
        out.append((name, text, path))
    return out


@contextmanager
def initialized(job_name: str = "harness") -> Iterator[None]:
    """Hydra initialised with the search path `harness run` uses (the packaged conf as primary dir; the
    plugin puts the user dir first)."""
    from hydra import initialize_config_dir

    register()
    user_config_dir()  # a missing dir: one line, before Hydra
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=job_name):
        yield


def compose(overrides: list[str], config_name: str = "config"):  # -> DictConfig
    """Compose the config exactly as `harness run` would (tests use this too)."""
    from hydra import compose as hydra_compose

    with initialized():
        return hydra_compose(config_name, overrides=overrides, return_hydra_config=True)
