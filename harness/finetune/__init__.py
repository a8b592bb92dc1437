"""Stage 3, finetune: teacher answers -> student weights (cached by content hash)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..cache import atomic_dir, digest, file_digest, locked, write_json
from ..config import FinetuneConfig, ModelConfig, result_fields
from ..errors import HarnessError

VERSION = 1
METHODS = ("lora", "full", "none")


@dataclass(frozen=True)
class FinetuneOutput:
    model_path: str  # a transformers checkpoint dir; later stages reference the student by this path
    key: str
    metrics: dict[str, Any]
    cached: bool


def run_finetune(
    base: ModelConfig, base_path: str, train_file: Path, cfg: FinetuneConfig, cache_dir: Path, out_dir: Path, use_cache: bool = True
) -> FinetuneOutput:
    if cfg.method not in METHODS:
        raise HarnessError(f"finetune.method: unknown method '{cfg.method}'; available: {', '.join(METHODS)}")
    if cfg.method == "none":
        out = FinetuneOutput(base_path, "none", {"method": "none"}, True)
    else:
        key = digest({"v": VERSION, "base": result_fields(base), "cfg": asdict(cfg), "train": file_digest(train_file)})
        entry = cache_dir / "finetune" / key
        cached = True
        with locked(entry):
            if not (use_cache and (entry / "metrics.json").exists()):
                from ._local import train_local

                cached = False
                with atomic_dir(entry) as tmp:
                    metrics = train_local(base_path, train_file, cfg, tmp / "model")
                    write_json(tmp / "metrics.json", metrics)
        metrics = json.loads((entry / "metrics.json").read_text())
        out = FinetuneOutput(str(entry / "model"), key, metrics, cached)
    write_json(out_dir / "student.json", asdict(out))
    return out
