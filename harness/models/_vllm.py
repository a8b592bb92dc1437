"""Local weights served by vLLM through inspect's `vllm/` provider (which starts `vllm serve` itself).

A `vllm/<name>` model entry with `args.model_path` (a local checkpoint, `embedded:<name>` included) is
served from that path: inspect's model string becomes `vllm/<path>`. A student (`student: true`) is
served, after its fine-tune, either as the base plus its LoRA adapter (`args.student_weights:
adapter`, the default for LoRA: `vllm serve <base> --enable-lora --lora-modules <adapter>`) or as the
merged checkpoint (`merged`: `vllm serve <finetune entry>/model`). With the adapter, the baseline on
the same base and the student share ONE server (inspect keys its servers by base model): the
server flags that make the adapter available are given to every `vllm/` model on that base, so
whichever model is evaluated first starts the server with them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..errors import HarnessError

WEIGHTS = ("adapter", "merged")
_OWN = ("model_path", "student_weights")  # harness keys: never passed to `vllm serve` as flags


def is_vllm(model: str) -> bool:
    return model.startswith("vllm/")


def check_vllm(alias: str, m: ModelConfig, method: str | None) -> None:
    """Up front, one line: a `vllm/` model that the harness would have to serve needs the vllm package
    (and a GPU: docs/scale.md); `student_weights` is adapter|merged, adapter needs a LoRA fine-tune."""
    if not is_vllm(m.model):
        return
    weights = m.args.get("student_weights")
    if weights is not None and weights not in WEIGHTS:
        raise HarnessError(f"models.{alias}.args.student_weights: '{weights}' is not one of {', '.join(WEIGHTS)}")
    if weights == "adapter" and method not in (None, "lora"):
        raise HarnessError(f"models.{alias}.args.student_weights=adapter serves the LoRA adapter, but the fine-tune is "
                           f"finetune.method={method}; use student_weights=merged")
    if m.student and m.args.get("base_url"):
        raise HarnessError(f"models.{alias}: a vllm/ student is served by the harness from its fine-tuned weights; "
                           "drop args.base_url (the server of an existing base_url does not have them)")
    if "base_url" not in m.args and "port" not in m.args and importlib.util.find_spec("vllm") is None:
        raise HarnessError(f"models.{alias}.model={m.model}: vLLM serves it, and the vllm package is not installed; "
                           "pip install vllm (on a GPU machine: docs/scale.md), or evaluate it on hf/")


def vllm_student(args: dict[str, Any], merged_dir: str, method: str) -> tuple[str, dict[str, Any]]:
    """The inspect model string and args of a fine-tuned `vllm/` student (its base in args.model_path)."""
    weights = args.get("student_weights") or ("adapter" if method == "lora" else "merged")
    rest = {k: v for k, v in args.items() if k not in _OWN}
    if weights == "merged":
        return f"vllm/{merged_dir}", rest
    adapter = Path(merged_dir).parent / "adapter"
    rank = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["r"]
    # the adapter is loaded at server start, under the name inspect asks for (its path), so no
    # runtime adapter loading (VLLM_ALLOW_RUNTIME_LORA_UPDATING) is needed
    # vLLM accepts only these ranks as --max-lora-rank: the smallest that holds the adapter's
    allowed = (8, 16, 32, 64, 128, 256, 320, 512)
    lora = {"enable_lora": True, "max_lora_rank": next((a for a in allowed if a >= int(rank)), int(rank)),
            "lora_modules": f"{adapter}={adapter}"}
    return f"vllm/{args['model_path']}:{adapter}", {**rest, **lora}


def vllm_served(models: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """(model, args) of every evaluated model -> what inspect gets: `vllm/` + model_path is served from
    the path; models on the base of an adapter student get its server flags (see the module doc)."""
    out = []
    for model, args in models:
        if is_vllm(model) and isinstance(args.get("model_path"), str) and "base_url" not in args:
            model = f"vllm/{args['model_path']}"
        out.append((model, {k: v for k, v in args.items() if k not in _OWN} if is_vllm(model) else args))
    shared: dict[str, dict[str, Any]] = {}
    for model, args in out:
        if is_vllm(model) and ":" in model and args.get("enable_lora"):
            # one adapter student per base (the first): inspect passes one value per server flag, so
            # more students on one base use student_weights=merged (check_vllm_students refuses it up front)
            shared.setdefault(model.split(":", 1)[0], {k: args[k] for k in ("enable_lora", "max_lora_rank", "lora_modules")})
    return [(model, {**args, **shared[model.split(":", 1)[0]]}) if is_vllm(model) and model.split(":", 1)[0] in shared
            else (model, args) for model, args in out]


def check_vllm_students(students: dict[str, tuple[ModelConfig, str]]) -> None:
    """At most one adapter-served vllm/ student per base model (alias -> (entry, fine-tune method))."""
    seen: dict[str, str] = {}
    for alias, (m, method) in students.items():
        if not is_vllm(m.model) or (m.args.get("student_weights") or ("adapter" if method == "lora" else "merged")) != "adapter":
            continue
        base = str(m.args.get("model_path") or m.model)
        if base in seen:
            raise HarnessError(f"models.{alias}: a second adapter-served vllm/ student on the base of models.{seen[base]}; "
                               f"one vLLM server serves one adapter here: set models.{alias}.args.student_weights=merged")
        seen[base] = alias
