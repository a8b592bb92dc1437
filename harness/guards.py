"""Guards on where a run writes and what it reads, checked before any stage runs.

- Names that become paths (the experiment, model aliases, grader names) are single, plain path
  components, so nothing a config says can write outside `results_dir` (the run name is made safe
  where it is built: `harness.config.run_name`). Sample ids never become file names.
- `results_dir` is not inside the harness package or the cache (a `cache prune` or a reinstall
  would delete results), and the cache is not inside the dirs the runs of this experiment live in.
- A `model_path` that is not a model (a text file, a dir without a readable `config.json`, a
  truncated weights file) fails here, read from the config and the weights' headers only.
- One `harness run` per run dir at a time (`run_lock`): a second one refuses in one line.

`harness.preflight.validate` calls `check_config`; `harness.pipeline.run` holds `run_lock`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterator

from .errors import HarnessError

LOCK_FILE = ".harness.lock"
MAX_NAME_BYTES = 100  # file names are limited to 255 bytes; a name is one part of a longer one


def name_problem(value: Any) -> str | None:
    """Why `value` cannot be used as a single path component, or None."""
    v = str(value)
    bad = next((c for c in v if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")), None)
    if bad is not None:
        return f"contains the control character U+{ord(bad):04X}"
    if not v.strip():
        return "is empty"
    if "/" in v or "\\" in v:
        return "contains a path separator"
    if v.startswith("."):
        return "starts with a dot ('.', '..' and hidden names are refused)"
    if len(v.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def check_name(key: str, value: Any, what: str = "") -> None:
    """One line naming `key` if `value` cannot be a directory name (`what`: e.g. "alias")."""
    why = name_problem(value)
    if why:
        shown = json.dumps(str(value), ensure_ascii=True)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise HarnessError(f"{key}: {what + ' ' if what else ''}{shown} {why}; it becomes a directory name under "
                           "results_dir: use letters, digits, '_', '-' and '.' (not first)")


def check_config(cfg: Any) -> None:
    """Every guard of this module that reads only the config (a HarnessConfig)."""
    check_name("experiment", cfg.experiment)
    for alias in cfg.models:
        check_name("models", alias, "alias")
    for name in cfg.graders:
        check_name("graders", name, "name")
    check_places(Path(cfg.results_dir), Path(cfg.cache_dir), str(cfg.experiment))
    for alias, m in cfg.models.items():
        check_model(f"models.{alias}", m)
    for name, g in cfg.graders.items():
        if g.judge is not None:
            check_model(f"graders.{name}.judge", g.judge)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def package_dir() -> Path:
    """The installed (or source) `harness` package."""
    return Path(__file__).resolve().parent


def check_places(results_dir: Path, cache_dir: Path, experiment: str) -> None:
    """results_dir not inside the package or the cache; the cache not inside the package or this
    experiment's run dirs (results_dir/<experiment>) and not results_dir itself."""
    results, cache, pkg = results_dir.resolve(), cache_dir.resolve(), package_dir()
    if _inside(results, pkg):
        raise HarnessError(f"results_dir: {results_dir} is inside the harness package ({pkg}); a reinstall would delete "
                           "the results: pass results_dir=<a dir of your own>, e.g. results_dir=results")
    if _inside(cache, pkg):
        raise HarnessError(f"cache_dir: {cache_dir} is inside the harness package ({pkg}); pass cache_dir=<a dir of your "
                           "own> (or set HARNESS_CACHE)")
    if cache == results:
        raise HarnessError(f"cache_dir: {cache_dir} is also results_dir; pass cache_dir=<a dir apart from the results>")
    if _inside(results, cache):
        raise HarnessError(f"results_dir: {results_dir} is inside cache_dir {cache_dir}; `harness cache prune` would "
                           "delete results: pass results_dir and cache_dir that are apart")
    if _inside(cache, results / experiment):
        raise HarnessError(f"cache_dir: {cache_dir} is inside this experiment's run dirs "
                           f"({results_dir / experiment}); pass cache_dir=<a dir outside them>")


# --- model files ---------------------------------------------------------------------------------

WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def model_dir_problem(path: Path) -> str | None:
    """Why `path` is not a transformers checkpoint dir, or None. Reads config.json and the
    safetensors headers, never the weights."""
    from .cache import problem

    if not path.is_dir():
        return "is a file, not a model directory (a transformers checkpoint dir with config.json)"
    cfg_file = path / "config.json"
    if not cfg_file.is_file() and (path / "adapter_config.json").is_file():
        cfg_file = path / "adapter_config.json"  # a PEFT adapter: transformers loads its base model first
        try:
            conf = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return f"adapter_config.json is not readable JSON ({type(e).__name__})"
        if not isinstance(conf, dict) or not conf.get("base_model_name_or_path"):
            return "adapter_config.json names no base_model_name_or_path: not a PEFT adapter"
    elif not cfg_file.is_file():
        return "has no config.json: not a transformers checkpoint dir"
    else:
        try:
            conf = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return f"config.json is not readable JSON ({type(e).__name__})"
        if not isinstance(conf, dict) or not isinstance(conf.get("model_type"), str):
            return "config.json has no model_type: not a transformers model config"
    weights = sorted({p.name for pat in WEIGHTS for p in path.glob(pat) if p.is_file()} |
                     {p.name for p in path.glob("adapter_model.*") if p.is_file()})
    if not weights:
        return "has no weights (*.safetensors or pytorch_model*.bin)"
    why = problem(path, [w for w in weights if w.endswith(".safetensors")])
    return f"{why}" if why else None


def gguf_problem(path: Path) -> str | None:
    if not path.is_file():
        return "is not a file (a GGUF model file)"
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        return f"is not readable ({type(e).__name__})"
    return None if magic == b"GGUF" else "is not a GGUF file (no GGUF header)"


def check_model(key: str, m: Any) -> None:
    """`<key>.args.model_path` of an `hf/` model is a checkpoint dir; `<key>.serve` a GGUF file
    (embedded: names are the harness's own; a missing path is refused elsewhere)."""
    path = m.args.get("model_path")
    if isinstance(path, str) and not path.startswith("embedded:") and str(m.model).startswith("hf/") and Path(path).exists():
        why = model_dir_problem(Path(path))
        if why:
            raise HarnessError(f"{key}.args.model_path: {path} {why}; point it at a model dir "
                               "(or model_path=embedded:smollm2-135m-instruct)")
    serve = getattr(m, "serve", None)
    if isinstance(serve, str) and not serve.startswith("embedded:") and Path(serve).exists():
        why = gguf_problem(Path(serve))
        if why:
            raise HarnessError(f"{key}.serve: {serve} {why}; point it at a .gguf model file")


# --- one run per run dir -------------------------------------------------------------------------

def _holder(lock: Path) -> str:
    try:
        pid = lock.read_text(encoding="utf-8").strip()
    except OSError:
        pid = ""
    return pid if pid.isdigit() else "unknown"


def _in_use(run_dir: Path) -> HarnessError:
    return HarnessError(f"run dir {run_dir} is in use by another harness run (pid {_holder(run_dir / LOCK_FILE)}); "
                        "wait for it to finish, or pass results_dir=<another dir>")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `<run dir>/.harness.lock` (flock) for a run: a second run of the same run dir refuses in
    one line instead of interleaving its logs and files. Released when the process exits, however."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for attempt in range(5):  # a `run_dir_free` probe holds it for an instant: try again briefly
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 4:
                    raise _in_use(run_dir) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def check_run_dir_free(run_dir: Path) -> None:
    """Refuse now if another run holds `run_dir` (the CLI's check before Hydra writes into it);
    creates nothing."""
    import fcntl

    lock = run_dir / LOCK_FILE
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:  # no lock file: never run, or not readable (the run's own checks say more)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(run_dir) from None
    finally:
        os.close(fd)
