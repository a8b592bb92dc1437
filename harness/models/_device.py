"""Where local models run: `finetune.device` and `finetune.precision` resolved once, the same way for
the fine-tune and for the evaluation of local (`hf/`) models, and a device that is asked for but
absent refused before any stage."""

from __future__ import annotations

from typing import Any

from ..errors import HarnessError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _gpu_build() -> bool:
    """Could this torch build drive a CUDA (or ROCm) GPU? Read from torch/version.py as text, without
    importing torch (1-2 s): a warm re-run, which never trains, must not pay for the import."""
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("torch")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        version = Path(loc) / "version.py"
        if version.is_file():
            text = version.read_text(encoding="utf-8")
            return not (re.search(r"^cuda\b.*=\s*None\s*$", text, re.M) and re.search(r"^hip\b.*=\s*None\s*$", text, re.M))
    return True  # unreadable: ask torch itself


def _has(device: str) -> bool:
    import sys

    if device == "cuda" and not _gpu_build():
        return False
    if device == "mps" and sys.platform != "darwin":
        return False
    import torch

    if device == "cuda":
        return torch.cuda.is_available()
    if device == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return device == "cpu"


def resolve_device(device: str) -> str:
    """auto -> cuda if there is one, else mps, else cpu; an explicit device is returned as is
    (check_device refuses an absent one up front)."""
    if device != "auto":
        return device
    return next((d for d in ("cuda", "mps") if _has(d)), "cpu")


def resolve_precision(precision: str, device: str, bf16: bool = False) -> str:
    """auto -> bf16 on a GPU that computes in it natively, fp32 elsewhere (on CPUs without AVX512-BF16
    or AMX bf16 autocast measured >10x slower than fp32 here). The older `finetune.bf16: true` means
    precision bf16 when precision is auto (so configs written before `precision` keep their meaning)."""
    if precision != "auto":
        return precision
    if bf16:
        return "bf16"
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def check_device(device: str, precision: str, where: str = "finetune") -> None:
    """One line, before any stage: an unknown value, or a device this machine does not have."""
    if device not in DEVICES:
        raise HarnessError(f"{where}.device: unknown device '{device}'; available: {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise HarnessError(f"{where}.precision: unknown precision '{precision}'; available: {', '.join(PRECISIONS)}")
    if device in ("auto", "cpu"):  # always there: no torch import for the common case
        return
    if not _has(device):
        import torch

        built = f"torch {torch.__version__}" + (", built without CUDA" if device == "cuda" and torch.version.cuda is None else "")
        raise HarnessError(f"{where}.device={device}: this machine has no {device.upper()} device ({built}); "
                           f"use {where}.device=auto (the best device present) or {where}.device=cpu")
    if precision == "bf16" and device == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise HarnessError(f"{where}.precision=bf16: this GPU ({torch.cuda.get_device_name()}) has no bf16; "
                               f"use {where}.precision=fp16 or fp32 (or auto)")


def eval_device_args(model: str, args: dict[str, Any], device: str) -> dict[str, Any]:
    """inspect's `hf/` provider takes a `device` model arg; local models follow `finetune.device`.

    On a GPU (finetune.device cuda/mps, or auto on a machine that has one) an hf/ model whose args say
    no device or `cpu` (the packaged smollm2 entry says cpu) runs on it; another explicit GPU
    (`cuda:1`) is kept. finetune.device=cpu puts every hf/ model on the CPU. `auto` on a CPU-only
    machine changes nothing: the args -- and with them every log's key -- stay what they were."""
    if not model.startswith("hf/"):
        return args
    d = resolve_device(device)
    if d == "cpu":
        return {**args, "device": "cpu"} if device == "cpu" else args
    if args.get("device") in (None, "cpu"):
        return {**args, "device": "cuda:0" if d == "cuda" else d}
    return args
