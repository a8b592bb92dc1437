"""Hydra search-path plugin of `harness`: a user's config dir ($HARNESS_CONFIG_DIR; `harness run
--config-dir DIR` sets it) is searched BEFORE the packaged defaults, so its experiment/, model/,
grader/ ... files add options and shadow packaged ones of the same name.

Hydra's own `--config-dir` and `hydra.searchpath` add a dir AFTER the primary one (packaged entries
would win), hence this plugin. It acts only on the harness's own search path (a `main` entry that is
the packaged `harness/conf`), so other Hydra apps in the same environment are unaffected.
"""

from __future__ import annotations

import os

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "harness-user"


class HarnessUserConfigDir(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        user = os.environ.get("HARNESS_CONFIG_DIR")
        if not user or not os.path.isdir(user):
            return  # `harness` itself reports a missing dir in one line
        main = [e for e in search_path.get_path() if e.provider == "main"]
        if not main or not main[0].path.rstrip("/").endswith(os.path.join("harness", "conf")):
            return
        if any(e.provider == PROVIDER for e in search_path.get_path()):
            return
        search_path.prepend(provider=PROVIDER, path=f"file://{os.path.abspath(user)}", anchor=SearchPathQuery(provider="main"))
