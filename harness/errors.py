"""User-facing errors: the CLI prints them as one line and exits 2, without a traceback."""


class HarnessError(Exception):
    """Bad input or configuration. The message names the file/key and what to do."""
