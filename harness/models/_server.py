"""A local OpenAI-compatible server for a GGUF model: llama.cpp's `llama_cpp.server`.

    with llama_server(gguf_path, log_path) as endpoint:
        OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)...

The server listens on 127.0.0.1 on a free port, with a random API key (other users of the machine
can reach 127.0.0.1 too), is health-checked (`GET /v1/models`) before the block runs, and is
stopped when it ends, whatever happened. Its output goes to `log_path` and stays there.

llama.cpp's server answers one request at a time (a `Llama` object is not thread-safe); concurrent
clients queue, which is fine for the request volumes of an experiment.

The server runs in a scrubbed environment: `llama_cpp.server` reads every one of its settings
(`PORT`, `HOST`, `MODEL`, `API_KEY`, `N_CTX`, `CHAT_FORMAT`, ... case-insensitively, through
pydantic-settings) and `CONFIG_FILE` from the environment, and its `__main__` passes `$HOST` and
`$PORT` to uvicorn *over* `--host`/`--port`. Container platforms set `PORT`; with it inherited, the
server listened elsewhere and the harness waited two minutes for "server not ready". So every
variable named like one of its settings is dropped and the settings the harness needs are passed
as arguments; the rest take llama.cpp's defaults.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..errors import HarnessError

# the context window of every llama.cpp server the harness starts (the pre-flight checks prompts against it)
SERVE_N_CTX = 2048


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # "http://127.0.0.1:<port>/v1"
    api_key: str = field(repr=False)
    model: str  # the name the server serves the model under
    log: Path
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings_names() -> set[str]:
    """Lower-case names of every variable `llama_cpp.server` reads from the environment."""
    names = {"config_file", "host", "port"}  # read by its __main__ directly (os.environ / os.getenv)
    try:
        from llama_cpp.server import settings
        from pydantic_settings import BaseSettings
    except ImportError:
        return names
    for cls in vars(settings).values():
        if isinstance(cls, type) and issubclass(cls, BaseSettings):
            prefix = cls.model_config.get("env_prefix") or ""
            for name, f in cls.model_fields.items():
                names |= {f"{prefix}{n}".lower() for n in (name, f.alias) if n}
    return names


def server_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) without the variables llama.cpp's server would read as
    its settings; what it needs is passed explicitly."""
    environ = dict(os.environ if environ is None else environ)
    drop = _settings_names()
    return {k: v for k, v in environ.items() if k.lower() not in drop}


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


@contextlib.contextmanager
def llama_server(
    gguf: str | os.PathLike[str],
    log_path: str | os.PathLike[str],
    *,
    model: str | None = None,
    threads: int | None = None,
    n_ctx: int | None = None,
    startup_timeout: float = 120.0,
) -> Iterator[Endpoint]:
    """Start `python -m llama_cpp.server` for `gguf`, yield its Endpoint once healthy, stop it.

    `model` is the name it serves the model under (default: the file's stem).
    """
    gguf, log_path = Path(gguf), Path(log_path)
    if not gguf.is_file():
        raise HarnessError(f"llama.cpp server: no such GGUF file: {gguf}")
    try:
        import llama_cpp.server  # noqa: F401  (only to fail early, with a useful message)
    except ImportError:
        raise HarnessError("serving a GGUF model needs llama-cpp-python; install the extra: "
                           "pip install 'harness[server]'") from None
    name = model or gguf.stem
    n_ctx = n_ctx or SERVE_N_CTX
    threads = threads or os.cpu_count() or 1
    port, key = free_port(), secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", name,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
           # the server's default is one thread
           "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
    log.flush()
    # the key goes through the environment (the server's settings read API_KEY), not argv, which
    # any local user can read in /proc
    env = {**server_env(), "API_KEY": key}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        _wait_healthy(proc, base_url, key, name, log_path, startup_timeout)
        yield Endpoint(base_url, key, name, log_path, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(proc: subprocess.Popen, base_url: str, key: str, name: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    req = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {key}"})
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                served = [m["id"] for m in json.load(r).get("data", [])]
            if name not in served:
                raise HarnessError(f"llama.cpp server serves {served}, not '{name}'; see {log_path}")
            return
        except (OSError, ValueError) as e:
            if isinstance(e, urllib.error.HTTPError) and e.code == 401:
                raise HarnessError(f"llama.cpp server rejected its own API key; see {log_path}") from None
            if proc.poll() is not None:
                raise HarnessError(f"llama.cpp server exited with code {proc.returncode} before it was ready: "
                                   f"{_tail(log_path)} (log: {log_path})") from None
            if time.monotonic() > deadline:
                raise HarnessError(f"llama.cpp server not ready after {timeout:.0f}s; see {log_path}") from None
            time.sleep(0.5)
