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


def greedy(model: str, args: dict[str, Any]) -> bool:
    """Whether the model decodes greedily whatever the temperature: inspect's `hf/` provider with
    `do_sample: false` (conf/model/smollm2.yaml) never samples."""
    return model.startswith("hf/") and args.get("do_sample") is False


def temperature_for(model: str, args: dict[str, Any], temperature: float | None) -> float | None:
    """The temperature to hand inspect for this model: none for a greedy `hf/` model at temperature 0,
    where it means nothing (transformers would say "generation flags are not valid and may be ignored:
    ['temperature']" on every run). A temperature > 0 with a greedy model is refused up front
    (`check_sampling`), so nothing else is dropped here."""
    return None if greedy(model, args) and not temperature else temperature


def check_sampling(key: str, temperature: float | None, models: dict[str, Any]) -> None:
    """`key` (eval.temperature, generate.temperature) > 0 asks for sampling; a model that decodes
    greedily would ignore it silently. models: alias -> ModelConfig."""
    if not temperature:
        return
    for alias, m in models.items():
        if greedy(m.model, m.args):
            raise HarnessError(f"{key}={temperature}: models.{alias} decodes greedily (args.do_sample: false), so the "
                               f"temperature would be ignored; sample with models.{alias}.args.do_sample=true, or set {key}=0")
