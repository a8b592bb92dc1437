"""User-facing errors: the CLI prints them as one line and exits 2, without a traceback."""


class HarnessError(Exception):
    """Bad input or configuration. The message names the file/key and what to do."""


def redact_text(text: str) -> str:
    """Remove secrets from text that may reach a log, report or error message: the values of
    environment variables whose names look secret (*KEY*, *TOKEN*, *SECRET*, *PASSWORD*), and
    bearer tokens / sk- style keys."""
    import os
    import re

    for name, value in os.environ.items():
        if value and len(value) >= 6 and any(w in name.upper() for w in ("KEY", "TOKEN", "SECRET", "PASSWORD")):
            text = text.replace(value, "<redacted>")
    text = re.sub(r"(?i)(bearer\s+)[^\s'\"]+", r"\1<redacted>", text)
    return re.sub(r"\bsk-[A-Za-z0-9_\-]{8,}", "sk-<redacted>", text)
