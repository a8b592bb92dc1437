"""Model resolution: config entries -> inspect model strings and args; local servers; endpoints."""

from ._context import context_window, prompt_tokens, tokenizer
from ._embedded import EMBEDDED, embedded_gguf, embedded_path
from ._openai import Endpoints, api_model_name, chat_many, check_endpoint, identity, is_openai, key_env, remote_connect
from ._resolve import check_sampling, greedy, resolve_args, temperature_for
from ._server import Endpoint, llama_server

__all__ = [
    "EMBEDDED", "Endpoint", "Endpoints", "api_model_name", "chat_many", "check_endpoint", "check_sampling", "context_window", "embedded_gguf",
    "embedded_path", "greedy", "identity", "is_openai", "key_env", "llama_server", "prompt_tokens", "remote_connect", "resolve_args",
    "temperature_for", "tokenizer",
]
