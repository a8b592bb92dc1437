"""argparse for the commands Hydra does not own, with errors on the CLI's one error path, and the link
from every command's help to its page of the documentation site."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..errors import HarnessError

# The documentation site's address: mkdocs.yml's `site_url` (tests/test_docs.py checks they agree). A
# placeholder until the site is published (GitHub Pages of the repository); `make docs` serves it locally.
DOCS_URL = "https://harness-docs.github.io/harness/"

# command -> its page on the site (the CLI reference, generated from these parsers: docs/scripts/gen_reference.py)
PAGES = {
    "harness": "reference/cli/",
    "run": "reference/cli/#harness-run",
    "report": "reference/cli/#harness-report",
    "cache": "reference/cli/#harness-cache",
    "regress": "reference/cli/#harness-regress",
    "experiments": "reference/cli/#harness-experiments",
    "init": "reference/cli/#harness-init",
    "history": "reference/cli/#harness-history",
}


def docs_link(command: str) -> str:
    """The last line of a command's help: where its documentation is."""
    return f"docs: {DOCS_URL}{PAGES[command]}"


class ArgParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one `harness: error:` line (exit 2), not usage + message, and
    whose help ends with the command's documentation link (`command`: a key of PAGES)."""

    def __init__(self, *args, command: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.docs = docs_link(command) if command is not None else None

    def format_help(self) -> str:
        # the link is added here, not as an argparse epilog, which would wrap the URL at the terminal's width
        text = super().format_help()
        return f"{text.rstrip()}\n\n{self.docs}\n" if self.docs else text

    def error(self, message: str) -> NoReturn:
        usage = " ".join((self.usage or self.format_usage()).split())
        if not usage.startswith("usage:"):
            usage = "usage: " + usage
        raise HarnessError(f"{self.prog}: {message}; {usage}")
