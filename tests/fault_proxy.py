"""A fault-injecting HTTP proxy on 127.0.0.1, in front of an OpenAI-compatible server (the llama.cpp
server the tests start), for tests and `bench/faults.py`.

A configurable share of the requests to the faulted paths (default: chat completions) gets one of:

    429   Too Many Requests with `Retry-After: <retry_after>` (an OpenAI-style error body)
    500   Internal Server Error
    503   Service Unavailable
    drop  the connection is closed after the request is read, with no response
    stall no response for `stall_seconds` (set it past the client's timeout), then closed; when the
          client gives up first, its request's `gave_up` says after how many seconds

The rest are forwarded unchanged (the Authorization header included) and the answer is passed back.
Which request gets which fault is drawn from a seeded generator. `down = True` (or `down_after=N`
answers) makes every faulted request a 503 (a server that stays down) until it is set back. Every
request is logged in `requests` (path, fault or upstream status, start and end time, the client's
retry count), so a test can count faults, retries and answers, and measure the gap a Retry-After
produced.

    with FaultProxy(upstream_base_url, share=0.2) as proxy:
        proxy.base_url  # "http://127.0.0.1:<port>/v1"
"""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("429", "500", "503", "drop", "stall")


class FaultProxy:
    def __init__(self, upstream: str, share: float = 0.2, faults: tuple[str, ...] = FAULTS, seed: int = 0,
                 retry_after: float = 1.0, stall_seconds: float = 10.0, paths: tuple[str, ...] = ("/chat/completions",),
                 schedule: list[str | None] | None = None, down_after: int | None = None):
        """`upstream`: base URL ("http://127.0.0.1:P/v1"). `schedule`: the fault (or None) for the
        1st, 2nd, ... faulted-path request, before the random draws take over (a test's exact plan).
        `down_after`: after this many faulted-path requests were let through, the server goes down."""
        unknown = set(faults) - set(FAULTS)
        if unknown or not 0 <= share <= 1:
            raise ValueError(f"faults must be among {FAULTS} and 0 <= share <= 1, got {faults}, {share}")
        u = urlsplit(upstream)
        self.up_host, self.up_port, self.up_prefix = u.hostname or "127.0.0.1", u.port or 80, u.path.rstrip("/")
        self.share, self.faults, self.retry_after, self.stall = share, faults, retry_after, stall_seconds
        self.paths, self.schedule = paths, list(schedule or [])
        self.rng = random.Random(seed)
        self.down = False
        self.down_after = down_after
        self._passed = 0
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ what to do with a request
    def _decide(self, path: str) -> str | None:
        if not any(path.endswith(p) for p in self.paths):
            return None
        with self.lock:
            if self.down_after is not None and self._passed >= self.down_after:
                self.down = True
            if self.down:
                return "down"
            if self.schedule:
                fault = self.schedule.pop(0)
            else:
                fault = self.rng.choice(self.faults) if self.rng.random() < self.share else None
            self._passed += fault is None
            return fault

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.up_prefix}"

    def injected(self) -> dict[str, int]:
        """fault kind -> how many were injected."""
        with self.lock:
            out: dict[str, int] = {}
            for r in self.requests:
                if r["fault"]:
                    out[r["fault"]] = out.get(r["fault"], 0) + 1
            return out

    def answered(self) -> int:
        """Requests to the faulted paths that got the upstream's 200."""
        with self.lock:
            return sum(1 for r in self.requests if not r["fault"] and r["status"] == 200
                       and any(r["path"].endswith(p) for p in self.paths))

    # ------------------------------------------------------------------ server
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet: the requests list is the log
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                body = json.dumps({"error": {"message": message, "type": "server_error", "param": None,
                                             "code": "rate_limit_exceeded" if status == 429 else None}}).encode()
                self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

            def _handle(self) -> None:
                t0 = time.time()
                body = self._body()
                fault = proxy._decide(self.path)
                row = {"method": self.command, "path": self.path, "fault": fault, "status": None, "start": t0,
                       "retry": int(self.headers.get("x-stainless-retry-count") or 0)}
                try:
                    if fault == "429":
                        ra = proxy.retry_after
                        self._error(429, f"Rate limit reached. Please try again in {ra:g}s.",
                                    {"Retry-After": f"{ra:g}"})  # the standard header only (RFC 9110)
                    elif fault in ("500", "503", "down"):
                        self._error(503 if fault != "500" else 500, "injected fault: the server is unavailable")
                    elif fault == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    elif fault == "stall":
                        row["gave_up"] = self._stall(t0)
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                    else:
                        row["status"] = self._forward(body)
                except OSError:  # the client gave up (a timeout) while we stalled or answered
                    pass
                row["end"] = time.time()
                with proxy.lock:
                    proxy.requests.append(row)

            def _stall(self, t0: float) -> float | None:
                """Answer nothing for `stall_seconds`; return when the client gave up (closed the
                connection: its timeout), in seconds after the request came, or None if it waited."""
                while not proxy._stop.wait(0.05) and time.time() - t0 < proxy.stall:
                    if select.select([self.connection], [], [], 0)[0]:
                        try:
                            if not self.connection.recv(1, socket.MSG_PEEK):
                                return round(time.time() - t0, 2)
                        except OSError:
                            return round(time.time() - t0, 2)
                return None

            def _forward(self, body: bytes) -> int:
                conn = http.client.HTTPConnection(proxy.up_host, proxy.up_port, timeout=600)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    keep = {k: v for k, v in r.getheaders()
                            if k.lower() not in ("content-length", "connection", "transfer-encoding", "keep-alive")}
                    self._send(r.status, data, keep)
                    return r.status
                finally:
                    conn.close()

            do_GET = do_POST = do_DELETE = _handle

        return Handler

    def __enter__(self) -> FaultProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # stalled handlers return at once
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
