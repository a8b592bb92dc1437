"""How many tokens a model can read, and how many a prompt takes -- without loading weights.

The pre-flight uses these to refuse an input longer than a model's context window before any
stage runs: otherwise transformers truncates or fails deep inside a batch, and a llama.cpp server
answers 400 for every sample, after the fine-tune has already been paid for.

The window comes from what the harness itself knows: a checkpoint's `config.json`, the context the
harness gives the llama.cpp servers it starts, or the embedded model's own size. Hosted models
(`openai/...`, remote servers) are not checked: their limits are theirs, and the API refuses an
over-long prompt with a message the harness passes on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import ModelConfig
from ._embedded import converted_dir, embedded_gguf
from ._openai import is_openai
from ._server import SERVE_N_CTX

# the embedded models' context windows (their config.json's max_position_embeddings), known
# without converting the GGUF
EMBEDDED_N_CTX = {"smollm2-135m-instruct": 8192}
_WINDOW_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")


def context_window(m: ModelConfig) -> Optional[tuple[int, str]]:
    """(tokens, where that figure comes from), or None when the harness cannot know it."""
    if m.serve:
        return SERVE_N_CTX, "the llama.cpp server the harness starts (n_ctx)"
    if is_openai(m.model):
        return None
    path = m.args.get("model_path")
    if not isinstance(path, str):
        return None
    if path.startswith("embedded:"):
        n = EMBEDDED_N_CTX.get(path.removeprefix("embedded:"))
        return (n, f"{path}: max_position_embeddings") if n else None
    cfg_file = Path(path) / "config.json"
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not a checkpoint dir: guards.check_model_files says so
    for key in _WINDOW_KEYS:
        if isinstance(cfg.get(key), int) and cfg[key] > 0:
            return cfg[key], f"{cfg_file}: {key}"
    return None


def prompt_tokens(m: ModelConfig, cache_dir: str | os.PathLike[str]) -> Optional[Callable[[list[dict[str, str]]], int]]:
    """A function: chat messages -> the exact number of prompt tokens this model reads (its chat
    template included), or None if no tokenizer can be had offline. Loads the tokenizer only (for
    the embedded model: the converted checkpoint's, else the GGUF's own; nothing is converted)."""
    if m.serve and not m.serve.startswith("embedded:"):
        return _gguf_counter(Path(m.serve))
    tok = tokenizer(m.serve or m.args.get("model_path"), cache_dir)
    if tok is None:
        return None

    def count(messages: list[dict[str, str]]) -> int:
        if getattr(tok, "chat_template", None):  # as the model reads it: template text, then tokens
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return len(tok(text, add_special_tokens=False)["input_ids"])
        return len(tok("\n".join(x["content"] for x in messages))["input_ids"])

    return count


def tokenizer(source: Any, cache_dir: str | os.PathLike[str]) -> Any:
    """The transformers tokenizer of a model path (`embedded:<name>` or a checkpoint dir), loaded
    offline without weights, or None if there is none to be had."""
    if not isinstance(source, str):
        return None
    try:
        from transformers import AutoTokenizer

        if source.startswith("embedded:"):
            # the converted checkpoint's tokenizer if it is there (1 s); else the GGUF's own (10 s),
            # rather than converting the model for a check
            name = source.removeprefix("embedded:")
            conv = converted_dir(name, cache_dir)
            if (conv / "tokenizer_config.json").is_file():
                tok = AutoTokenizer.from_pretrained(conv, local_files_only=True)
            else:
                gguf = embedded_gguf(name)
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        return None
    return tok


def _gguf_counter(gguf: Path) -> Optional[Callable[[list[dict[str, str]]], int]]:
    """A GGUF's own vocabulary through llama.cpp (vocab only: no weights). The chat template's own
    tokens are not counted; a few dozen at most, inside the slack the caller leaves."""
    try:
        import llama_cpp

        llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    except (ImportError, OSError, ValueError):
        return None

    def count(messages: list[dict[str, Any]]) -> int:
        return sum(len(llm.tokenize(x["content"].encode("utf-8"), add_bos=False)) for x in messages) + 1

    return count


__all__ = ["EMBEDDED_N_CTX", "context_window", "prompt_tokens", "tokenizer"]
