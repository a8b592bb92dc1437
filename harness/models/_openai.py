"""Hosted and OpenAI-compatible models: keys, endpoints, served GGUFs, one-line errors.

A model whose inspect string starts with `openai/` (OpenAI itself) or `openai-api/<service>/`
(any OpenAI-compatible server: vLLM, Ollama, llama.cpp, ...) is reached over HTTP:

- the key comes from the environment variable `api_key_env` names (default `OPENAI_API_KEY`,
  resp. `<SERVICE>_API_KEY`, inspect's convention); config never holds a key, and no message,
  log or report ever shows one;
- `base_url` (default `$OPENAI_BASE_URL` / `$<SERVICE>_BASE_URL`, else api.openai.com);
- `serve: embedded:<name> | path.gguf` makes the harness start a llama.cpp server for the run.

Requests carry a timeout and a bounded retry policy; both clients used here retry with exponential
backoff and honour `Retry-After` (inspect's for evaluation, the `openai` client's for teacher
generation and fine-tuning).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, Callable

from ..config import ModelConfig, model_identity
from ..errors import HarnessError

PROVIDERS = ("openai/", "openai-api/")
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def is_openai(model: str) -> bool:
    """Does this inspect model string go to an OpenAI(-compatible) HTTP endpoint?"""
    return model.startswith(PROVIDERS)


def api_model_name(model: str) -> str:
    """The name sent to the server: `openai/gpt-4o` -> `gpt-4o`, `openai-api/vllm/org/m` -> `org/m`."""
    if model.startswith("openai/"):
        return model.removeprefix("openai/")
    return model.removeprefix("openai-api/").split("/", 1)[-1]


def _service(model: str) -> str:
    return model.removeprefix("openai-api/").split("/", 1)[0].upper().replace("-", "_")


def key_env(m: ModelConfig) -> str | None:
    """Name of the environment variable that holds this model's key (None: no key needed)."""
    if not is_openai(m.model) or m.serve:
        return None
    if m.api_key_env:
        return m.api_key_env
    return "OPENAI_API_KEY" if m.model.startswith("openai/") else f"{_service(m.model)}_API_KEY"


def base_url(m: ModelConfig) -> str | None:
    """The configured endpoint, else the provider's environment variable (None: the default)."""
    if m.base_url:
        return m.base_url
    var = "OPENAI_BASE_URL" if m.model.startswith("openai/") else f"{_service(m.model)}_BASE_URL"
    return os.environ.get(var) or None


def identity(m: ModelConfig) -> dict[str, Any]:
    """What determines a model's outputs, for cache keys: its config and, for a remote endpoint, the
    URL it resolves to (the same name on another server is another model). A served GGUF is
    identified by its file (`serve`), not by its per-run port."""
    d = model_identity(m)
    if is_openai(m.model) and not m.serve:
        d["endpoint"] = base_url(m) or OPENAI_DEFAULT_URL
    return d


def check_endpoint(alias: str, m: ModelConfig) -> None:
    """Config-level checks, before any work: key variable set, URL known, served model sane.
    `alias` is a model alias, or a dotted config key for models elsewhere (a judge)."""
    key = alias if "." in alias else f"models.{alias}"
    if not is_openai(m.model):
        if m.serve or m.base_url or m.api_key_env:
            raise HarnessError(f"{key}: serve/base_url/api_key_env need an OpenAI-compatible model string "
                               f"('openai/<name>' or 'openai-api/<service>/<name>'), not '{m.model}'")
        return
    if m.model.startswith("openai-api/") and m.model.count("/") < 2:
        raise HarnessError(f"{key}.model: '{m.model}' needs a service and a name: 'openai-api/<service>/<name>'")
    if m.serve:
        if not m.serve.startswith("embedded:") and not Path(m.serve).is_file():
            raise HarnessError(f"{key}.serve: no such GGUF file: {m.serve}")
        return
    var = key_env(m)
    assert var is not None
    if not os.environ.get(var):
        raise HarnessError(f"{key}: environment variable {var} is not set; export it with your API key "
                           f"(keys are read from the environment only; {key}.api_key_env names another variable)")
    if m.model.startswith("openai-api/") and not base_url(m):
        raise HarnessError(f"{key}.base_url: not set; give the server's URL (e.g. http://127.0.0.1:8000/v1) "
                           f"or export {_service(m.model)}_BASE_URL")


def describe(e: BaseException, alias: str, model: str, url: str, key_var: str | None) -> str:
    """One line for a failed request, naming the problem; never the key."""
    import openai

    name = api_model_name(model)
    if isinstance(e, openai.APITimeoutError):
        return f"models.{alias}: {url} did not answer in time (timed out after retries); is the server overloaded?"
    if isinstance(e, openai.APIConnectionError):
        return (f"models.{alias}: cannot reach {url} (server down or wrong URL); start the server or fix "
                f"models.{alias}.base_url")
    if isinstance(e, openai.AuthenticationError):
        where = f"the key in ${key_var}" if key_var else "the API key"
        return f"models.{alias}: {url} rejected {where} (401); check that variable"
    if isinstance(e, openai.PermissionDeniedError):
        return f"models.{alias}: {url} refused access to '{name}' for this key (403)"
    if isinstance(e, openai.NotFoundError):
        return f"models.{alias}: {url} does not serve model '{name}' (404); fix models.{alias}.model"
    if isinstance(e, openai.RateLimitError):
        return f"models.{alias}: {url} kept rate-limiting after all retries (429); lower the batch size or retry later"
    if isinstance(e, openai.APIStatusError):
        return f"models.{alias}: {url} answered {e.status_code} for '{name}': {_server_message(e)}"
    return f"models.{alias}: request to {url} failed: {type(e).__name__}"


def _server_message(e: Any) -> str:
    body = getattr(e, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(msg or e.message).split())[:300]


def scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
    return text


def remote_connect(m: ModelConfig) -> dict[str, Any]:
    """get_model's base_url/api_key for a (not served) OpenAI-compatible model; {} for others."""
    if not is_openai(m.model) or m.serve:
        return {}
    url = base_url(m)  # None: the client's default (api.openai.com)
    return {"api_key": os.environ.get(key_env(m) or "", ""), **({"base_url": url} if url else {})}


class Endpoints:
    """Connection details per model alias; starts (and at close, stops) llama.cpp servers.

    `connect(alias)` -> `{"base_url", "api_key"}` for inspect's get_model (empty for local models).
    These are kept out of everything that is hashed or written: a served model gets a new port and
    key every run, and keys must never reach a file.
    """

    def __init__(self, models: dict[str, ModelConfig], servers_dir: Path):
        self.models, self.servers_dir = models, servers_dir
        self._stack = contextlib.ExitStack()
        self._served: dict[tuple[str, str], Any] = {}  # (gguf, name) -> llama_server Endpoint

    def __enter__(self) -> Endpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._served.clear()

    def _serve(self, m: ModelConfig) -> Any:
        from ._embedded import embedded_gguf
        from ._server import llama_server

        assert m.serve
        gguf = embedded_gguf(m.serve.removeprefix("embedded:")) if m.serve.startswith("embedded:") else Path(m.serve)
        name = api_model_name(m.model)
        if (str(gguf), name) not in self._served:
            log = self.servers_dir / f"{name.replace('/', '_')}.log"
            print(f"[serve] starting llama.cpp server for {gguf.name} as '{name}' (log: {log})", flush=True)
            ep = self._stack.enter_context(llama_server(gguf, log, model=name))
            print(f"[serve] {name} ready at {ep.base_url}", flush=True)
            self._served[(str(gguf), name)] = ep
        return self._served[(str(gguf), name)]

    def connect(self, alias: str, m: ModelConfig | None = None) -> dict[str, Any]:
        m = m or self.models[alias]
        if not is_openai(m.model):
            return {}
        if m.serve:
            ep = self._serve(m)
            return {"base_url": ep.base_url, "api_key": ep.api_key}
        return remote_connect(m)

    def url(self, alias: str, m: ModelConfig | None = None) -> str:
        m = m or self.models[alias]
        return self.connect(alias, m).get("base_url") or OPENAI_DEFAULT_URL

    def secrets(self) -> list[str]:
        """Every key in play (to scrub from messages; servers may echo what they were sent)."""
        env = [os.environ.get(key_env(m) or "", "") for m in self.models.values() if is_openai(m.model)]
        return [k for k in env + [ep.api_key for ep in self._served.values()] if k]

    def client(self, alias: str, m: ModelConfig | None = None, *, max_retries: int = 3, timeout: float = 600,
               asynchronous: bool = False) -> Any:
        """An `openai` client for this model (retries with exponential backoff, honours Retry-After)."""
        import openai

        c = self.connect(alias, m)
        cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        return cls(base_url=c.get("base_url"), api_key=c["api_key"], max_retries=max_retries, timeout=timeout)

    def error(self, e: BaseException, alias: str, m: ModelConfig | None = None) -> HarnessError:
        m = m or self.models[alias]
        return HarnessError(scrub(describe(e, alias, m.model, self.url(alias, m), key_env(m)), self.secrets()))

    def preflight(self, alias: str, m: ModelConfig | None = None, fix: str | None = None) -> None:
        """One cheap request (the model list) so a wrong URL, a dead server, a bad key or a model
        the server does not serve fails now, in one line, instead of as N failed samples later."""
        m = m or self.models[alias]
        if not is_openai(m.model):
            return
        import openai  # here, not above: a local-only run never imports it (~1 s)

        name = api_model_name(m.model)
        try:
            served = [x.id for x in self.client(alias, m, max_retries=2, timeout=30).models.list()]
        except openai.NotFoundError:
            # every OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LM Studio) lists its
            # models: a 404 here means the URL is not such an endpoint
            raise HarnessError(f"models.{alias}: {self.url(alias, m)}/models does not exist (404): models.{alias}.base_url "
                               "is not an OpenAI-compatible endpoint (they usually end in /v1)") from None
        except openai.APIError as e:
            raise self.error(e, alias, m) from None
        if name not in served:
            shown = ", ".join(sorted(served)[:8]) + (", ..." if len(served) > 8 else "")
            raise HarnessError(f"models.{alias}: {self.url(alias, m)} does not serve model '{name}' (it serves: "
                               f"{shown or 'nothing'}); {fix or f'fix models.{alias}.model'}")


RETRYABLE = (408, 409, 429)  # and every 5xx: the statuses the openai client retries


def attempts_failed(e: BaseException, max_retries: int) -> int:
    """Failed attempts behind a request that failed for good: the client retried the retryable
    ones `max_retries` times (a connection error, a timeout, 408/409/429/5xx), the others never."""
    import openai

    if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
        return max_retries + 1
    status = getattr(e, "status_code", None)
    if isinstance(status, int) and (status in RETRYABLE or status >= 500):
        return max_retries + 1
    return 1


def call_usage(r: Any, latency_s: float, retries: int) -> dict[str, Any]:
    """The usage record of one answered chat completion (the same keys as an in-process call's,
    harness.report's `call_record`, plus the failed attempts before it)."""
    u = getattr(r, "usage", None)
    return {"input_tokens": int(getattr(u, "prompt_tokens", 0) or 0),
            "output_tokens": int(getattr(u, "completion_tokens", 0) or 0), "latency_s": round(latency_s, 4), "retries": retries}


async def chat_many(client: Any, model: str, prompts: list[list[dict[str, str]]], *, max_tokens: int,
                    temperature: float, concurrency: int, store: bool = False,
                    metadata: list[dict[str, str]] | None = None,
                    on_done: Callable[[int, Any, dict[str, Any]], None] | None = None) -> list[Any]:
    """Chat completions for every prompt, `concurrency` at a time: a ChatCompletion or the
    exception that remained after the client's retries, per prompt (so one bad request fails
    its own row, visibly, not the batch). `on_done(i, result, usage)` is called as each one
    finishes; `usage` is `call_usage`'s record for an answer, `{"retries": failed attempts}` for
    an exception."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int) -> Any:
        extra: dict[str, Any] = {}
        if store:
            # stored completions: findable (and re-usable) in the OpenAI dashboard by metadata
            extra = {"store": True, "metadata": (metadata or [{}] * len(prompts))[i]}
        async with sem:
            try:
                # the raw response says how many retries the client took (failed attempts, not answers)
                # and how long the answering attempt took
                raw = await client.chat.completions.with_raw_response.create(
                    model=model, messages=prompts[i], max_tokens=max_tokens, temperature=temperature, **extra)
                r: Any = raw.parse()
                usage = call_usage(r, raw.elapsed.total_seconds(), int(getattr(raw, "retries_taken", 0) or 0))
            except Exception as e:  # noqa: BLE001  (returned, reported per row by the caller)
                r, usage = e, {"retries": attempts_failed(e, client.max_retries)}
        if on_done is not None:
            on_done(i, r, usage)
        return r

    try:
        return list(await asyncio.gather(*(one(i) for i in range(len(prompts)))))
    finally:
        await client.close()
