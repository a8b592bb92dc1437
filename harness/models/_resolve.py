from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ._embedded import embedded_path


def resolve_args(alias: str, args: dict[str, Any], cache_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Resolve `model_path` (embedded:<name> or a local dir) and check it exists before any work."""
    out = dict(args)
    path = out.get("model_path")
    if isinstance(path, str) and path.startswith("embedded:"):
        out["model_path"] = str(embedded_path(path.removeprefix("embedded:"), cache_dir))
    elif isinstance(path, str) and not Path(path).exists():
        raise HarnessError(f"models.{alias}.args.model_path: no such file or directory: {path}")
    return out
