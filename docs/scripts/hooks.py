"""mkdocs hooks (mkdocs.yml `hooks:`): the reference pages are generated from the code at every build
(docs/scripts/gen_reference.py), so `mkdocs build --strict` always shows the current keys and flags."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's harness, not another install

import gen_reference  # noqa: E402


def on_files(files, config):
    for uri, make in gen_reference.PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files
