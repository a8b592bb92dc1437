"""Hydra plugins of `harness`: where its configs and experiments are found.

The harness's layout is two sibling folders: `conf/` (the config groups: model/, grader/, data/ ...,
Hydra's primary config dir) and `experiments/` (the `# @package _global_` overlays, Hydra's group
`experiment`). In a source checkout they are the top-level folders; in the wheel they are package
data, `harness/conf/` and `harness/experiments/`. A user's project has the same two folders (`harness
init` writes them): its config dir ($HARNESS_CONFIG_DIR; `harness run --config-dir DIR` sets it) and
that dir's sibling `experiments/`.

- `HarnessExperiments`, a ConfigSource for `harness-experiments://DIR`: DIR's files are the options of
  the group `experiment` (DIR/demo.yaml is `experiment=demo`), and it holds nothing else. Hydra maps a
  group to a folder of the same name under a search-path root, so a folder named `experiments/` needs
  this mount.
- `HarnessUserConfigDir`, a SearchPathPlugin: the search path becomes user conf, user experiments,
  packaged conf (Hydra's `main`), packaged experiments. The user's entries come BEFORE the packaged ones,
  so they add options and shadow packaged ones of the same name (Hydra's own `--config-dir` and
  `hydra.searchpath` add a dir AFTER the primary one, where packaged entries would win, hence this
  plugin). A user dir's `experiment/` group folder (the layout before `experiments/`) still works: it is
  an ordinary group of a search-path root.

It acts only on the harness's own search path (a `main` entry that is the harness's conf dir), so other
Hydra apps in the same environment are unaffected. Nothing of `harness` is imported here (Hydra imports
every plugin of the environment at start-up, for every app): the package is located with find_spec.
"""

from __future__ import annotations

import importlib.util
import os
from typing import List, Optional

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

PROVIDER = "harness-user"
EXPERIMENTS_PROVIDER = "harness-experiments"
USER_EXPERIMENTS_PROVIDER = "harness-user-experiments"
SCHEME = "harness-experiments"
GROUP = "experiment"
ENV = "HARNESS_CONFIG_DIR"


def experiments_dir(conf_dir: str) -> str:
    """The experiments folder that goes with a config dir: its sibling `experiments/` (the rule for the
    source checkout, the wheel and a user's project alike)."""
    return os.path.join(os.path.dirname(os.path.abspath(conf_dir.rstrip("/"))), "experiments")


def _harness_conf_dirs() -> set[str]:
    """Where the harness's own conf dir can be: inside the package (wheel) or beside it (checkout)."""
    spec = importlib.util.find_spec("harness")
    if spec is None or not spec.submodule_search_locations:
        return set()
    out = set()
    for pkg in spec.submodule_search_locations:
        pkg = os.path.realpath(pkg)
        out |= {os.path.join(pkg, "conf"), os.path.join(os.path.dirname(pkg), "conf")}
    return out


class HarnessExperiments(ConfigSource):
    """`harness-experiments://DIR`: DIR's yaml files (and sub-folders) are the group `experiment`."""

    def __init__(self, provider: str, path: str) -> None:
        if "://" not in path:
            path = f"{self.scheme()}://{path}"
        super().__init__(provider=provider, path=path)

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _real(self, config_path: str) -> Optional[str]:
        """The file or folder of `config_path` (a path in Hydra's tree), None when it is not in the group."""
        p = config_path.strip("/")
        if p == GROUP:
            return self.path
        if p.startswith(GROUP + "/"):
            return os.path.join(self.path, p[len(GROUP) + 1:])
        return None

    def available(self) -> bool:
        return os.path.isdir(self.path)

    def is_group(self, config_path: str) -> bool:
        if config_path.strip("/") == "":
            return self.available()  # the root: it holds one group
        real = self._real(config_path)
        return real is not None and os.path.isdir(real)

    def is_config(self, config_path: str) -> bool:
        real = self._real(self._normalize_file_name(config_path))
        return real is not None and os.path.isfile(real)

    def load_config(self, config_path: str) -> ConfigResult:
        real = self._real(self._normalize_file_name(config_path))
        if real is None or not os.path.isfile(real):
            raise ConfigLoadError(f"Config not found : {config_path} (in {self.path})")
        with open(real, encoding="utf-8") as f:
            header = ConfigSource._get_header_dict(f.read(512))
            f.seek(0)
            cfg = OmegaConf.load(f)
        return ConfigResult(config=cfg, path=self.full_path(), provider=self.provider, header=header)

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        if config_path.strip("/") == "":
            return [GROUP] if self.available() and results_filter in (None, ObjectType.GROUP) else []
        real = self._real(config_path)
        if real is None or not os.path.isdir(real):
            return []
        files: List[str] = []
        for name in os.listdir(real):
            self._list_add_result(files=files, file_path=f"{config_path.rstrip('/')}/{name}", file_name=name,
                                  results_filter=results_filter)
        return sorted(set(files))


class HarnessUserConfigDir(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        main = [e for e in search_path.get_path() if e.provider == "main"]
        if not main or not main[0].path or "://" in main[0].path.replace("file://", "", 1):
            return  # not a folder (pkg://, structured://): not the harness's
        conf = os.path.realpath(main[0].path.replace("file://", "", 1))
        if conf not in _harness_conf_dirs():
            return
        if any(e.provider == EXPERIMENTS_PROVIDER for e in search_path.get_path()):
            return  # already done (Hydra may call the plugin more than once per process)
        search_path.append(provider=EXPERIMENTS_PROVIDER, path=f"{SCHEME}://{experiments_dir(conf)}",
                           anchor=SearchPathQuery(provider="main"))
        user = os.environ.get(ENV)
        if not user or not os.path.isdir(user):
            return  # `harness` itself reports a missing dir in one line
        user = os.path.abspath(user)
        search_path.prepend(provider=PROVIDER, path=f"file://{user}", anchor=SearchPathQuery(provider="main"))
        if os.path.isdir(experiments_dir(user)):
            search_path.prepend(provider=USER_EXPERIMENTS_PROVIDER, path=f"{SCHEME}://{experiments_dir(user)}",
                                anchor=SearchPathQuery(provider="main"))
