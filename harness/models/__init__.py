"""Model resolution: config entries -> inspect model strings and args; local servers; endpoints."""

from ._context import context_window, prompt_tokens, tokenizer
from ._device import check_device, eval_device_args, resolve_device, resolve_precision
from ._embedded import EMBEDDED, embedded_gguf, embedded_path
from ._hf import batch_plan, batched_hf
from ._openai import Endpoints, api_model_name, chat_many, check_endpoint, identity, is_openai, key_env, remote_connect
from ._resolve import check_sampling, greedy, resolve_args, temperature_for
from ._server import Endpoint, llama_server
from ._vllm import check_vllm, check_vllm_students, is_vllm, vllm_served, vllm_student

__all__ = [
    "EMBEDDED", "Endpoint", "Endpoints", "api_model_name", "chat_many", "check_endpoint", "check_sampling", "context_window", "embedded_gguf",
    "embedded_path", "greedy", "identity", "is_openai", "key_env", "llama_server", "prompt_tokens", "remote_connect", "resolve_args",
    "temperature_for", "tokenizer",
    # local hf/ batching (harness.evaluate)
    "batch_plan", "batched_hf",
    # devices and vLLM serving (finetune.device/precision; vllm/ students)
    "check_device", "check_vllm", "check_vllm_students", "eval_device_args", "is_vllm", "resolve_device", "resolve_precision",
    "vllm_served", "vllm_student",
]
