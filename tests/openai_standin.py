"""A local stand-in for the parts of the OpenAI API the harness uses, for offline tests.

OpenAI's hosted fine-tuning cannot run here, so this is a real HTTP server on 127.0.0.1 (FastAPI +
uvicorn) that the real `openai` client and inspect's `openai/` provider talk to, implementing:

    GET  /v1/models, /v1/models/{id}
    POST /v1/files (multipart, purpose=fine-tune)         GET /v1/files/{id}
    POST /v1/fine_tuning/jobs   GET /v1/fine_tuning/jobs[/{id}[/events]]   POST .../{id}/cancel
    POST /v1/chat/completions (store + metadata)          GET /v1/chat/completions (stored ones)

faithfully where the harness depends on it: bearer-key auth (401 `invalid_api_key`, echoing a
masked key like OpenAI does), request validation (400 with `param`/`code`, unknown arguments
rejected, metadata <= 16 pairs and only with store=true), 404 `model_not_found`, 429
`rate_limit_exceeded` with `Retry-After` (`rate_limit=N` answers the next N chat requests so),
and jobs that move validating_files -> queued -> running -> succeeded over time (`step_seconds`
per phase), validate the training file while `validating_files` (a bad file or < 10 examples
fails the job with `invalid_training_file`), write events as they go, and can be cancelled.

How it answers chat completions:
- base models (gpt-4o..., gpt-4o-mini...): proxied to `upstream` (a llama.cpp server of the
  embedded GGUF, so the answers are a real model's), else "I do not know.";
- a fine-tuned model (`ft:<base>:standin:<suffix>:<id>`, once its job succeeded): the assistant
  message of the training example whose user message shares the most words with the request --
  a stand-in for a model that learned its training file, deterministic and instant.

    with StandIn(api_key="sk-test").serve() as base_url: ...
    python -m tests.openai_standin --port 8000 --api-key sk-test [--serve-embedded]
"""

# no `from __future__ import annotations`: FastAPI resolves the handlers' annotations at runtime

import contextlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

FINE_TUNABLE = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14")
BASE_MODELS = FINE_TUNABLE + ("gpt-4o", "gpt-4o-mini")
CHAT_ARGS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "seed",
             "store", "metadata", "stream", "stream_options", "frequency_penalty", "presence_penalty", "logit_bias",
             "logprobs", "top_logprobs", "user", "response_format", "tools", "tool_choice", "parallel_tool_calls",
             "service_tier", "reasoning_effort", "modalities", "prompt_cache_key", "safety_identifier"}
JOB_ARGS = {"model", "training_file", "validation_file", "suffix", "seed", "method", "hyperparameters", "integrations",
            "metadata"}
PHASES = ("validating_files", "queued", "running", "succeeded")
_WORD = re.compile(r"[a-z0-9]+")


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.param, self.code, self.type, self.headers = status, param, code, type, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


def _id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


@dataclass
class Job:
    obj: dict[str, Any]
    rows: list[Any]  # the training file's parsed lines (validated while validating_files)
    started: float
    phase: int = -1  # index into PHASES already applied
    events: list[dict[str, Any]] = field(default_factory=list)


class StandIn:
    def __init__(self, api_key: str = "sk-standin", upstream: Any = None, step_seconds: float = 0.5,
                 rate_limit: int = 0, fail_jobs: str | None = None, fail_chat: str | None = None):
        """`upstream`: an object with base_url, api_key, model (harness.models.Endpoint) that base
        models are proxied to. `fail_jobs`: a message every job fails with while running.
        `fail_chat`: chat requests whose messages contain this text get 500 (a broken backend)."""
        self.api_key, self.upstream, self.step = api_key, upstream, step_seconds
        self.rate_limit, self.fail_jobs, self.fail_chat = rate_limit, fail_jobs, fail_chat
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.stored: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # method, path, status, time: what the tests look at
        self.lock = threading.RLock()
        self.app = self._app()

    # ---------------------------------------------------------------- jobs
    def _event(self, job: Job, message: str, at: float, level: str = "info", type: str = "message",
               data: dict[str, Any] | None = None) -> None:
        job.events.append({"id": _id("ftevent"), "object": "fine_tuning.job.event", "created_at": int(at),
                           "level": level, "message": message, "data": data or {}, "type": type})

    def _validate_rows(self, rows: list[Any]) -> str | None:
        for i, r in enumerate(rows, 1):
            msgs = r.get("messages") if isinstance(r, dict) else None
            if not isinstance(msgs, list) or not msgs:
                return f"Invalid file format. Example {i} has no messages."
            for m in msgs:
                if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
                    return f"Invalid file format. Example {i} has a message with an invalid role."
                if m.get("role") != "assistant" and not (isinstance(m.get("content"), str) and m["content"].strip()):
                    return f"Invalid file format. Example {i} has a message with empty content."
            if not any(m.get("role") == "assistant" for m in msgs):
                return f"Invalid file format. Example {i} has no assistant message."
        if len(rows) < 10:
            return f"Training file has {len(rows)} example(s), but must have at least 10 examples"
        return None

    def _advance(self, job: Job) -> None:
        """Move the job along its phases as time passes, writing the events of each step."""
        o = job.obj
        if o["status"] in ("succeeded", "failed", "cancelled"):
            return
        target = min(len(PHASES) - 1, int((time.time() - job.started) / self.step))
        while job.phase < target and o["status"] not in ("failed", "cancelled"):
            job.phase += 1
            at = job.started + job.phase * self.step
            status = PHASES[job.phase]
            if status == "validating_files":
                self._event(job, f"Validating training file: {o['training_file']}", at)
            elif status == "queued":
                problem = self._validate_rows(job.rows)
                if problem:
                    o.update(status="failed", finished_at=int(at),
                             error={"code": "invalid_training_file", "message": problem, "param": "training_file"})
                    self._event(job, f"Training file validation failed: {problem}", at, level="error")
                    return
                self._event(job, "Files validated, moving job to queued state", at)
            elif status == "running":
                self._event(job, "Fine-tuning job started", at)
                hp = o["method"]["supervised"]["hyperparameters"]
                steps = max(1, len(job.rows) // hp["batch_size"]) * hp["n_epochs"]
                for s in (1, steps):
                    self._event(job, f"Step {s}/{steps}: training loss={2.0 / s:.2f}", at, type="metrics",
                                data={"step": s, "train_loss": 2.0 / s, "total_steps": steps})
            elif status == "succeeded":
                if self.fail_jobs:
                    o.update(status="failed", finished_at=int(at),
                             error={"code": "server_error", "message": self.fail_jobs, "param": None})
                    self._event(job, f"Fine-tuning job failed: {self.fail_jobs}", at, level="error")
                    return
                hp = o["method"]["supervised"]["hyperparameters"]
                suffix = o["user_provided_suffix"] or "ft"
                o.update(fine_tuned_model=f"ft:{o['model']}:standin:{suffix}:{o['id'][-8:]}", finished_at=int(at),
                         trained_tokens=hp["n_epochs"] * sum(_tokens(m.get("content") or "") + 3 for r in job.rows
                                                             for m in r["messages"]))
                self._event(job, f"New fine-tuned model created: {o['fine_tuned_model']}", at)
                self._event(job, "The job has successfully completed", at)
            o["status"] = status

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise APIError(404, f"No such fine-tuning job: {job_id}", "fine_tuning_job_id", "fine_tuning_job_not_found")
        self._advance(job)
        return job

    def _create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - JOB_ARGS
        if unknown:
            raise APIError(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        model = body.get("model")
        if model not in FINE_TUNABLE:
            raise APIError(400, f"Model {model} is not available for fine-tuning or does not exist.", "model",
                           "model_not_available")
        fid = body.get("training_file")
        f = self.files.get(fid) if isinstance(fid, str) else None
        if f is None or f["purpose"] != "fine-tune":
            raise APIError(400, f"invalid training_file: {fid}", "training_file", "invalid_training_file")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64 or not re.fullmatch(r"[A-Za-z0-9_-]*", suffix)):
            raise APIError(400, "suffix must be at most 64 characters of letters, digits, - and _", "suffix")
        seed = body.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise APIError(400, "seed must be an integer", "seed")
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": body.get("hyperparameters") or {}}}
        if method.get("type") != "supervised":
            raise APIError(400, f"the stand-in implements method type 'supervised' only, not {method.get('type')!r}", "method.type")
        hp = dict((method.get("supervised") or {}).get("hyperparameters") or {})
        for name, lo, hi in (("n_epochs", 1, 50), ("batch_size", 1, 256), ("learning_rate_multiplier", 0, 10)):
            v = hp.get(name, "auto")
            if v != "auto" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi
                                or (name != "learning_rate_multiplier" and not isinstance(v, int)) or v == 0):
                raise APIError(400, f"hyperparameters.{name} must be 'auto' or in [{lo}, {hi}], got {v!r}",
                               f"method.supervised.hyperparameters.{name}")
        rows = [json.loads(x) for x in self.contents[fid].decode().splitlines() if x.strip()]
        hp = {"n_epochs": 3 if hp.get("n_epochs", "auto") == "auto" else hp["n_epochs"],
              "batch_size": 1 if hp.get("batch_size", "auto") == "auto" else hp["batch_size"],
              "learning_rate_multiplier": 1.8 if hp.get("learning_rate_multiplier", "auto") == "auto" else hp["learning_rate_multiplier"]}
        now = time.time()
        jid = _id("ftjob")
        obj = {"id": jid, "object": "fine_tuning.job", "created_at": int(now), "error": None, "fine_tuned_model": None,
               "finished_at": None, "hyperparameters": hp, "model": model, "organization_id": "org-standin",
               "result_files": [], "seed": seed if seed is not None else 42, "status": "validating_files",
               "trained_tokens": None, "training_file": fid, "validation_file": None, "estimated_finish": None,
               "integrations": None, "metadata": body.get("metadata"), "user_provided_suffix": suffix,
               "method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}
        job = Job(obj, rows, now)
        self._event(job, f"Created fine-tuning job: {jid}", now)
        self.jobs[jid] = job
        self._advance(job)
        return obj

    # ---------------------------------------------------------------- chat
    def _served(self) -> dict[str, Any]:
        """model id -> the succeeded job serving it (None for base models)."""
        out: dict[str, Any] = {m: None for m in BASE_MODELS}
        for job in self.jobs.values():
            self._advance(job)
            if job.obj["status"] == "succeeded":
                out[job.obj["fine_tuned_model"]] = job
        return out

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:  # validation, the rate limit and the model lookup; the upstream call is not locked
            job = self._check_chat(body)
        msgs, model, meta = body["messages"], body["model"], body.get("metadata")
        if job is not None:
            text = self._recall(job, msgs)
        elif self.upstream is not None:
            text = self._proxy(body)
        else:
            text = "I do not know."
        prompt = " ".join(str(m.get("content") or "") for m in msgs)
        out = {"id": _id("chatcmpl"), "object": "chat.completion", "created": int(time.time()), "model": model,
               "system_fingerprint": "fp_standin", "service_tier": "default",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                                   "annotations": []}, "finish_reason": "stop", "logprobs": None}],
               "usage": {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(text),
                         "total_tokens": _tokens(prompt) + _tokens(text)}}
        if body.get("store"):
            with self.lock:
                self.stored.append({**out, "metadata": meta or {}, "request_messages": msgs})
        return out

    def _check_chat(self, body: dict[str, Any]) -> Job | None:
        unknown = set(body) - CHAT_ARGS
        if unknown:
            raise APIError(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        if self.rate_limit > 0:
            self.rate_limit -= 1
            raise APIError(429, "Rate limit reached for requests. Please try again in 1s.", None, "rate_limit_exceeded",
                           "requests", {"Retry-After": "1"})
        model = body.get("model")
        served = self._served()
        if model not in served:
            raise APIError(404, f"The model `{model}` does not exist or you do not have access to it.", None, "model_not_found")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and "role" in m for m in msgs):
            raise APIError(400, "'messages' must be a non-empty array of messages with a role", "messages")
        if body.get("stream"):
            raise APIError(400, "the stand-in does not stream", "stream")
        if self.fail_chat and self.fail_chat in json.dumps(msgs):
            raise APIError(500, "The server had an error while processing your request.", None, None, "server_error")
        meta = body.get("metadata")
        if meta is not None:
            if not body.get("store"):
                raise APIError(400, "metadata is only allowed when store is enabled", "metadata")
            if (not isinstance(meta, dict) or len(meta) > 16
                    or not all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in meta.items())):
                raise APIError(400, "metadata: at most 16 pairs of strings (keys <= 64, values <= 512 characters)", "metadata")
        return served[model]

    def _recall(self, job: Job, msgs: list[dict[str, Any]]) -> str:
        """The assistant answer of the training example closest to the request's last user turn."""
        ask = _words(next((str(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), ""))

        def score(row: list[dict[str, Any]]) -> float:
            user = _words(next((str(m.get("content")) for m in reversed(row) if m.get("role") == "user"), ""))
            return len(ask & user) / max(1, len(ask | user))

        best = max((r["messages"] for r in job.rows), key=score)
        return next(m["content"] for m in reversed(best) if m.get("role") == "assistant")

    def _proxy(self, body: dict[str, Any]) -> str:
        import httpx

        up = self.upstream
        req = {"model": up.model, "messages": body["messages"],
               "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or 64,
               "temperature": body.get("temperature", 1.0)}
        r = httpx.post(f"{up.base_url}/chat/completions", json=req, headers={"Authorization": f"Bearer {up.api_key}"},
                       timeout=600)
        if r.status_code != 200:
            raise APIError(500, f"upstream error {r.status_code}", None, "server_error", "server_error")
        return r.json()["choices"][0]["message"]["content"] or ""

    # ---------------------------------------------------------------- HTTP
    def _app(self) -> Any:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse

        app = FastAPI()

        @app.middleware("http")
        async def auth_and_log(request: Request, call_next):  # type: ignore[no-untyped-def]
            t = time.time()
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                sent = auth.removeprefix("Bearer ")
                masked = (sent[:3] + "*" * max(0, len(sent) - 7) + sent[-4:]) if len(sent) > 8 else "****"
                err = APIError(401, f"Incorrect API key provided: {masked}. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", None, "invalid_api_key")
                response = JSONResponse(err.body(), status_code=401)
            else:
                response = await call_next(request)
            with self.lock:
                # the openai client numbers its retries of one request in this header
                self.requests.append({"method": request.method, "path": request.url.path,
                                      "status": response.status_code, "time": t,
                                      "retry": int(request.headers.get("x-stainless-retry-count") or 0)})
            return response

        @app.exception_handler(APIError)
        async def api_error(request: Request, e: APIError):  # type: ignore[no-untyped-def]
            return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

        async def json_body(request: Request) -> dict[str, Any]:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise APIError(400, "We could not parse the JSON body of your request.") from None
            if not isinstance(body, dict):
                raise APIError(400, "The request body must be a JSON object.")
            return body

        def model_obj(mid: str) -> dict[str, Any]:
            return {"id": mid, "object": "model", "created": 1700000000,
                    "owned_by": "user-standin" if mid.startswith("ft:") else "system"}

        @app.get("/v1/models")
        def list_models() -> dict[str, Any]:
            with self.lock:
                return {"object": "list", "data": [model_obj(m) for m in self._served()]}

        @app.get("/v1/models/{model_id:path}")
        def get_model(model_id: str) -> dict[str, Any]:
            with self.lock:
                if model_id not in self._served():
                    raise APIError(404, f"The model '{model_id}' does not exist", "model", "model_not_found")
            return model_obj(model_id)

        @app.post("/v1/files")
        async def upload(request: Request) -> dict[str, Any]:
            form = await request.form()
            purpose, upload = form.get("purpose"), form.get("file")
            if purpose != "fine-tune":
                raise APIError(400, f"the stand-in accepts purpose 'fine-tune' only, not {purpose!r}", "purpose")
            if upload is None or isinstance(upload, str):
                raise APIError(400, "'file' is a required multipart field", "file")
            name, data = upload.filename or "upload", await upload.read()
            if not name.endswith(".jsonl"):
                raise APIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", "file")
            for i, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                try:
                    if line.strip():
                        json.loads(line)
                except ValueError:
                    raise APIError(400, f"Invalid file format for Fine-Tuning API. Line {i} is not valid JSON.", "file") from None
            f = {"id": _id("file"), "object": "file", "bytes": len(data), "created_at": int(time.time()),
                 "filename": name, "purpose": purpose, "status": "processed", "expires_at": None, "status_details": None}
            with self.lock:
                self.files[f["id"]], self.contents[f["id"]] = f, data
            return f

        @app.get("/v1/files/{file_id}")
        def get_file(file_id: str) -> dict[str, Any]:
            if file_id not in self.files:
                raise APIError(404, f"No such File object: {file_id}", "id")
            return self.files[file_id]

        @app.post("/v1/fine_tuning/jobs")
        async def create_job(request: Request) -> dict[str, Any]:
            body = await json_body(request)
            with self.lock:
                return self._create_job(body)

        @app.get("/v1/fine_tuning/jobs")
        def list_jobs(limit: int = 20) -> dict[str, Any]:
            with self.lock:
                jobs = sorted(self.jobs.values(), key=lambda j: -j.started)
                for j in jobs:
                    self._advance(j)
                return {"object": "list", "data": [j.obj for j in jobs[:limit]], "has_more": len(jobs) > limit}

        @app.get("/v1/fine_tuning/jobs/{job_id}")
        def get_job(job_id: str) -> dict[str, Any]:
            with self.lock:
                return self._job(job_id).obj

        @app.get("/v1/fine_tuning/jobs/{job_id}/events")
        def job_events(job_id: str, after: str | None = None, limit: int = 20) -> dict[str, Any]:
            with self.lock:
                events = list(reversed(self._job(job_id).events))  # newest first, as OpenAI lists them
            if after is not None:
                ids = [e["id"] for e in events]
                events = events[ids.index(after) + 1:] if after in ids else []
            return {"object": "list", "data": events[:limit], "has_more": len(events) > limit}

        @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
        def cancel_job(job_id: str) -> dict[str, Any]:
            with self.lock:
                job = self._job(job_id)
                if job.obj["status"] in ("succeeded", "failed", "cancelled"):
                    raise APIError(400, f"Job {job_id} has already {job.obj['status']}; it cannot be cancelled",
                                   None, "invalid_job_status")
                job.obj.update(status="cancelled", finished_at=int(time.time()))
                self._event(job, "Fine-tuning job cancelled", time.time())
                return job.obj

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict[str, Any]:
            import anyio

            body = await json_body(request)
            # in a worker thread: the upstream call blocks
            return await anyio.to_thread.run_sync(self._chat, body)

        @app.get("/v1/chat/completions")
        def stored(request: Request, model: str | None = None, limit: int = 100) -> dict[str, Any]:
            wanted = {k[len("metadata["):-1]: v for k, v in request.query_params.items()
                      if k.startswith("metadata[") and k.endswith("]")}
            with self.lock:
                rows = [s for s in self.stored if (model is None or s["model"] == model)
                        and all(s["metadata"].get(k) == v for k, v in wanted.items())]
            data = [{k: v for k, v in s.items() if k != "request_messages"} for s in rows]
            return {"object": "list", "data": data[:limit], "has_more": len(data) > limit,
                    "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data[:limit] else None}

        return app

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[str]:
        """Run on 127.0.0.1 in a background thread; yield the base URL ("http://127.0.0.1:P/v1")."""
        import uvicorn

        from harness.models._server import free_port

        port = port or free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI stand-in did not start")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default="sk-standin")
    p.add_argument("--step-seconds", type=float, default=2.0)
    p.add_argument("--serve-embedded", action="store_true", help="answer base models with the embedded GGUF (llama.cpp)")
    a = p.parse_args()
    with contextlib.ExitStack() as stack:
        upstream = None
        if a.serve_embedded:
            from harness.models import embedded_gguf, llama_server

            upstream = stack.enter_context(llama_server(embedded_gguf("smollm2-135m-instruct"), "standin-llama.log"))
        with StandIn(a.api_key, upstream, a.step_seconds).serve(a.port) as url:
            print(f"OpenAI stand-in at {url} (OPENAI_BASE_URL={url} OPENAI_API_KEY={a.api_key}); Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()


if __name__ == "__main__":
    main()
