"""argparse for the commands Hydra does not own, with errors on the CLI's one error path."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..errors import HarnessError


class ArgParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one `harness: error:` line (exit 2), not usage + message."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join((self.usage or self.format_usage()).split())
        if not usage.startswith("usage:"):
            usage = "usage: " + usage
        raise HarnessError(f"{self.prog}: {message}; {usage}")
