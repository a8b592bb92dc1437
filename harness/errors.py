"""User-facing errors and secret redaction (a ground floor: imports nothing of the harness).

The CLI prints a HarnessError as one line and exits 2, without a traceback."""

from __future__ import annotations

from typing import Any


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


_SECRET_WORDS = ("key", "token", "secret", "password")


def redact(obj: Any) -> Any:
    """Drop the values of secret-looking keys (api_key, token, ...) before anything is written."""
    if isinstance(obj, dict):
        return {k: "<redacted>" if any(w in str(k).lower() for w in _SECRET_WORDS) else redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj
