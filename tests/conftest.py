"""Shared test setup, and the expensive runs the suite builds once per session.

The suite runs on two pytest-xdist workers (`make test`: `-n 2 --dist loadfile`, the Makefile's
XDIST). What that needs from a test module:

- Each worker gets one torch/OpenMP thread (below), inherited by every `harness` subprocess: two
  workers of two threads each would oversubscribe CI's 2 cores.
- A test module runs whole on one worker, in file order (`--dist loadfile`), so a module-scoped
  fixture is built once, as without xdist; the two workers take modules as they come free. (Not
  `--dist loadgroup`: with pytest 9.2 and pytest-xdist 3.8 its `xdist_group` marks group nothing --
  xdist tags the group onto `item._nodeid`, which pytest 9 no longer reads -- so the tests of one
  module fixture would be spread over both workers and the fixture built twice.)
- The shared runs (session fixtures, built on first use by whichever worker asks first, behind a
  file lock and a done-marker, so two workers never both build one; read-only for their tests --
  a test that changes a run copies it first):
    tiny_run     `harness run experiment=tiny cache=false`: the real embedded model, generate,
                 fine-tune, evaluate, report. -> SharedRun(dir=the run dir, stdout, stderr, args)
    tiny_grid    tiny_run's command plus a second student (`student_b`), in its own results dir,
                 re-using tiny_run's cache entries. -> SharedRun(dir=its run dir, ...)
    tiny_sweep   `harness run -m experiment=tiny finetune.max_steps=1,3`, Hydra's basic launcher.
                 -> SharedRun(dir=the multirun dir, ...)
  and, per worker (a server process cannot outlive the worker that started it):
    llama_upstream  the embedded GGUF behind a real llama.cpp server on 127.0.0.1 (`harness.models.
                 llama_server`, served as `smollm2`): an Endpoint with base_url and api_key.
- `HARNESS_CACHE` is one location for the whole session (a clean clone: .cache/harness in the
  checkout), so the embedded model is converted once per run of the suite, whichever test needs
  it first (the cache's own lock makes concurrent users wait for the one conversion).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))

# Tests are offline by construction: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HARNESS_CACHE", str(REPO / ".cache" / "harness"))
# the per-user cache (converted embedded model, embeddings; harness.cache.user_cache_dir) goes to the
# suite's cache, never to the real ~/.cache: the embedded model is converted once for the whole suite,
# and runs with a fresh HARNESS_CACHE of their own still find it there
os.environ.setdefault("HARNESS_MODEL_CACHE", os.environ["HARNESS_CACHE"])
# The suite's expected figures (losses, tolerances, trained students) were set in fp32: finetune.precision
# auto would take bf16 on a CPU that computes it natively (harness.models.cpu_bf16), so which CPU CI
# draws would decide them. Pinned to fp32 here; test_scale tests the measured choice itself.
os.environ.setdefault("HARNESS_CPU_BF16", "0")

# Under xdist every worker (and the `harness` subprocesses it starts, which inherit this) uses one
# thread for torch, OpenMP and BLAS: N workers on N cores. Set before anything imports torch (this
# file is imported first); a value the caller set is kept.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# The longest modules first (seconds on one of 2 xdist workers, `.ci/run` on a clean clone,
# 2026-12-03): with `--no-loadscope-reorder` (the Makefile's XDIST) `--dist loadfile` hands modules out
# in collection order; xdist's default order (most tests first) left test_resume, 2 tests and 2 minutes,
# alone at the end while the other worker had nothing left (3.7 min of one idle worker of 25).
# Longest first, the short ones fill the gaps. Within a module the order is its own (a stable sort).
LONGEST_FIRST = ["test_launchers", "test_objectives", "test_openai", "test_regress", "test_regress_sequential",
                 "test_hardening", "test_install", "test_judge", "test_foreign", "test_e2e", "test_sweep", "test_faults",
                 "test_resume", "test_cli", "test_warm", "test_scale", "test_mc_models"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).stem, len(rank)))


@pytest.fixture
def harness_bin() -> str:
    return HARNESS


# --------------------------------------------------------------------------- shared runs


@dataclass(frozen=True)
class SharedRun:
    dir: Path
    stdout: str
    stderr: str
    args: list[str]  # the `harness run` arguments (after `run`), results_dir included


def _shared_root(tmp_path_factory) -> Path:
    """A directory every xdist worker of this session sees (each worker's basetemp is a child of it)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-runs"
    root.mkdir(exist_ok=True)
    return root


def build_once(tmp_path_factory, name: str, build) -> dict:
    """`build(dir) -> dict` once per session: the first worker to ask builds it in `dir`; the others
    wait on the lock, then read what it returned. A failed build fails every test that needs it, with
    the same message, and is not tried again."""
    root = _shared_root(tmp_path_factory)
    d, done, failed = root / name, root / f"{name}.done.json", root / f"{name}.failed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():
            pytest.fail(f"shared run {name!r} failed earlier in this session:\n{failed.read_text()}", pytrace=False)
        if not done.exists():
            shutil.rmtree(d, ignore_errors=True)  # the debris of a worker that died building it
            d.mkdir()
            try:
                out = build(d)
            except BaseException as e:
                failed.write_text(f"{type(e).__name__}: {e}"[-6000:])
                raise
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(out))
            tmp.replace(done)
        return json.loads(done.read_text())


def harness_run(args: list[str], timeout: float = 1500, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`harness run <args>` as a user types it, from the checkout."""
    return subprocess.run([HARNESS, "run", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def linked_cache(root: Path) -> Path:
    """An empty cache but for the converted embedded model, linked from the session's cache (the
    conversion is not what a test with its own cache is about)."""
    models = Path(os.environ["HARNESS_CACHE"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "models").exists():
        (cache / "models").symlink_to(models.resolve(), target_is_directory=True)
    return cache


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """mktemp for a module's fixtures: `module_tmp("name")` -> a new dir, deleted when the module ends
    with no test failed in it (kept for reading otherwise). The retention policy (pyproject.toml) deletes
    a passed test's tmp_path at once, but tmp_path_factory's dirs only when the session ends, and the
    module fixtures' hold venvs, trained students and GGUF files (7.5 GB at once in a CI run)."""
    made: list[Path] = []
    failed = request.session.testsfailed

    def mktemp(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp  # torn down after the fixtures that asked for it: their servers have stopped by then
    if request.session.testsfailed == failed:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


def _finished(p: subprocess.CompletedProcess, what: str) -> None:
    assert p.returncode == 0, f"{what}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> SharedRun:
    def build(d: Path) -> dict:
        args = ["experiment=tiny", f"results_dir={d / 'results'}", "cache=false"]
        p = harness_run(args)
        _finished(p, "harness run experiment=tiny")
        # cache/results_dir do not change results, so not the run dir's name
        return {"dir": str(d / "results" / "tiny" / "default"), "stdout": p.stdout, "stderr": p.stderr, "args": args}

    out = build_once(tmp_path_factory, "tiny_run", build)
    return SharedRun(Path(out["dir"]), out["stdout"], out["stderr"], out["args"])


# a model grid: a second student with its own fine-tune settings
GRID = ["+model@models.student_b=smollm2", "models.student_b.student=true", "+models.student_b.finetune.max_steps=1",
        "+models.student_b.finetune.lora.r=4"]


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory, tiny_run) -> SharedRun:
    """tiny_run plus a second student, from the same teacher answers (the cache tiny_run wrote), in a
    results dir of its own (tiny_run's stays as it was)."""
    def build(d: Path) -> dict:
        results = d / "results"
        args = [a for a in tiny_run.args if not a.startswith(("results_dir=", "cache="))] + [f"results_dir={results}", *GRID]
        p = harness_run(args)
        _finished(p, "the model grid")
        grid = [x for x in (results / "tiny").iterdir() if "student_b" in x.name]
        assert len(grid) == 1, grid
        return {"dir": str(grid[0]), "stdout": p.stdout, "stderr": p.stderr, "args": args}

    out = build_once(tmp_path_factory, "tiny_grid", build)
    return SharedRun(Path(out["dir"]), out["stdout"], out["stderr"], out["args"])


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> SharedRun:
    """A real Hydra multirun over a fine-tune setting (basic launcher: the jobs one after the other in
    one process); the sweep report is written at its end."""
    def build(d: Path) -> dict:
        args = ["-m", "experiment=tiny", "finetune.max_steps=1,3", f"results_dir={d / 'results'}"]
        p = harness_run(args)
        _finished(p, "harness run -m experiment=tiny finetune.max_steps=1,3")
        return {"dir": str(d / "results" / "tiny" / "multirun"), "stdout": p.stdout, "stderr": p.stderr, "args": args}

    out = build_once(tmp_path_factory, "tiny_sweep", build)
    return SharedRun(Path(out["dir"]), out["stdout"], out["stderr"], out["args"])


@pytest.fixture(scope="session")
def canned_logs(tmp_path_factory) -> dict[str, Path]:
    """Small real inspect logs with chosen answers, for the quick gate tests (tests/canned_logs.py
    `build`: current, bad, same, current6, slip6, v1..v4); seconds, no model."""
    from tests.canned_logs import build

    return {k: Path(v) for k, v in build_once(tmp_path_factory, "canned_logs", build).items()}


@pytest.fixture(scope="session")
def llama_upstream(tmp_path_factory):
    """The embedded GGUF behind a real llama.cpp server on 127.0.0.1, one per worker, for the tests
    that talk to a server the harness did not start (fault proxy, OpenAI stand-in)."""
    from harness.models import embedded_gguf, llama_server

    log = tmp_path_factory.mktemp("upstream") / "llama.log"
    with llama_server(embedded_gguf("smollm2-135m-instruct"), log, model="smollm2") as ep:
        yield ep


