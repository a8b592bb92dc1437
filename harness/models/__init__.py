"""Model resolution: config entries -> inspect model strings and args."""

from ._embedded import EMBEDDED, embedded_gguf, embedded_path
from ._resolve import resolve_args

__all__ = ["EMBEDDED", "embedded_gguf", "embedded_path", "resolve_args"]
