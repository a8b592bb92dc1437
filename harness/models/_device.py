"""Where local models run: `finetune.device` and `finetune.precision` resolved once, the same way for
the fine-tune and for the evaluation of local (`hf/`) models, and a device that is asked for but
absent refused before any stage."""

from __future__ import annotations

import os
from typing import Any

from ..errors import HarnessError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _torch_version_text() -> str | None:
    """torch/version.py as text (its version and the CUDA / ROCm it was built for), read without
    importing torch (1-2 s): a warm re-run, which never trains, must not pay for the import. None:
    no torch, or no such file."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("torch")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        version = Path(loc) / "version.py"
        if version.is_file():
            return version.read_text(encoding="utf-8")
    return None


def _gpu_build() -> bool:
    """Could this torch build drive a CUDA (or ROCm) GPU? Read from torch/version.py's text."""
    import re

    text = _torch_version_text()
    if text is None:
        return True  # unreadable: ask torch itself
    return not (re.search(r"^cuda\b.*=\s*None\s*$", text, re.M) and re.search(r"^hip\b.*=\s*None\s*$", text, re.M))


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
    """auto -> bf16 on a GPU that computes in it natively, and on a CPU measured to (cpu_bf16: AVX512-BF16
    or AMX; on AVX2-only CPUs bf16 autocast measured >10x slower than fp32 here), fp32 elsewhere. The
    older `finetune.bf16: true` means precision bf16 when precision is auto (so configs written before
    `precision` keep their meaning)."""
    if precision != "auto":
        return precision
    if bf16:
        return "bf16"
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device == "cpu":
        return "bf16" if cpu_bf16() else "fp32"
    return "fp32"


# bf16 autocast on a CPU pays for itself when a training-shaped matmul runs at least this much faster
# in bf16 (casts included) than in fp32. Measured here: 2.07x on an AVX512-BF16 EPYC, where the demo's
# LoRA step went from 2.24 s to 1.41 s; about 0.1x on AVX2-only CPUs. Between the two nothing is seen.
CPU_BF16_MIN = 1.3
CPU_BF16_ENV = "HARNESS_CPU_BF16"  # "1" / "0": skip the measurement, use bf16 / fp32 on the CPU
WORKERS_ENV = "HARNESS_HF_WORKERS"  # hf/ batches generated at once on the CPU (harness.models._hf.cpu_workers)


def env_override(name: str) -> int | None:
    """The value of one of the two environment overrides above, None when unset. A value that is not a
    whole number (or for HARNESS_CPU_BF16 not 0/1) is refused in one line: check_device reads both
    before any stage, so a typo is not quietly taken for the default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    ok = raw in ("0", "1") if name == CPU_BF16_ENV else raw.isdigit() and int(raw) >= 1
    if not ok:
        what = ("1 (train in bf16 on the CPU) or 0 (fp32)" if name == CPU_BF16_ENV
                else "a whole number >= 1 (batches generated at once; 1 = one at a time)")
        raise HarnessError(f"${name}={raw!r}: use {what}, or unset it for the default")
    return int(raw)


def _cpu_id() -> str:
    """What the measurement depends on: the CPU (its model name and feature flags) and the torch build."""
    import platform
    from pathlib import Path

    cpu = platform.processor()
    try:  # Linux: the first processor's model name and flags
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        cpu = "\n".join(dict.fromkeys(line for line in text.splitlines() if line.startswith(("model name", "flags"))))
    except OSError:
        pass
    return f"{platform.machine()}\n{cpu}\n{_torch_version_text() or ''}"


def measure_cpu_bf16() -> dict[str, float]:
    """fp32 and bf16 seconds of the same matmuls (a LoRA step's [tokens x 576] @ [576 x 1536], five at a
    time, best of three rounds, the two kinds interleaved so a busy machine slows both alike)."""
    import time

    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 576, generator=gen), torch.randn(576, 1536, generator=gen)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(3):
        for kind in best:
            t = time.perf_counter()
            for _ in range(5):
                _ = a @ b if kind == "fp32" else a.bfloat16() @ b.bfloat16()
            best[kind] = min(best[kind], time.perf_counter() - t)
    return {"fp32_s": round(best["fp32"], 6), "bf16_s": round(best["bf16"], 6), "speedup": round(best["fp32"] / best["bf16"], 3)}


def cpu_bf16() -> bool:
    """Does this CPU compute bf16 natively -- measured, not read off its flags: the speed-up of
    measure_cpu_bf16 >= CPU_BF16_MIN. Measured once per CPU and torch build (0.1-2 s) and kept in the
    per-user cache (`cpu/`), so a warm re-run does not import torch for it; $HARNESS_CPU_BF16=1/0
    decides without measuring."""
    import json

    forced = env_override(CPU_BF16_ENV)
    if forced is not None:
        return forced == 1
    from ..cache import memo_text, user_cache_dir

    key = {"what": "cpu bf16 matmul speed-up", "version": 1, "machine": _cpu_id()}
    try:
        return float(json.loads(memo_text(user_cache_dir(), "cpu", key, lambda: json.dumps(measure_cpu_bf16())))["speedup"]) >= CPU_BF16_MIN
    except (ValueError, KeyError, TypeError):  # an unreadable cached value: measure again, keep nothing
        return measure_cpu_bf16()["speedup"] >= CPU_BF16_MIN


def check_device(device: str, precision: str, where: str = "finetune") -> None:
    """One line, before any stage: an unknown value, or a device this machine does not have."""
    if device not in DEVICES:
        raise HarnessError(f"{where}.device: unknown device '{device}'; available: {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise HarnessError(f"{where}.precision: unknown precision '{precision}'; available: {', '.join(PRECISIONS)}")
    for name in (CPU_BF16_ENV, WORKERS_ENV):
        env_override(name)
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
