"""A run's terminal output is the harness's: its stage lines (`[data] ...`, `[finetune] ...`) and
inspect's own evaluation display. What the libraries underneath say goes to the run's `cli.log`
(Hydra's job log, kept in the run dir), never to the terminal and never nowhere:

- Hydra's job logging (conf/hydra/job_logging/harness.yaml) has one handler, the file: anything logged
  to the root logger lands in cli.log, nothing on the console.
- Python warnings (a library's FutureWarning, DeprecationWarning ...) are logged (`captureWarnings`),
  as logger `py.warnings`.
- Libraries that log on their own behalf are pointed at cli.log directly and stop propagating: inspect
  adds its display handler to the root logger while it evaluates, and would print their warnings.
  transformers also installs its own stderr handler when it is imported; that handler is removed as
  soon as transformers is imported (an import hook: importing transformers up front would cost seconds
  on runs that never load it, such as a warm re-run).
- Progress bars of the Hugging Face libraries ("Loading weights", "Writing model shards") are off: the
  harness prints its own progress. HF_HUB_DISABLE_PROGRESS_BARS=0 (Hugging Face's own switch) keeps them.

At the end of a run, one harness line says how many library warnings cli.log holds.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import redact_text

# libraries of the harness's stack that log on their own behalf (their top-level logger names);
# anything else that logs reaches the root logger, whose only handler is cli.log too
LIBRARIES = ("py.warnings", "transformers", "peft", "accelerate", "torch", "huggingface_hub", "datasets", "tokenizers",
             "sentence_transformers", "gguf", "llama_cpp", "trl", "safetensors", "filelock", "fsspec", "urllib3", "httpx",
             "httpcore", "openai", "matplotlib", "PIL", "numexpr", "joblib", "submitit", "ray")


class _Redact(logging.Filter):
    """cli.log is kept with the run: no secret reaches it, whoever logged the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(record.getMessage()), None
        return True


class _RunLog(logging.Handler):
    """The libraries' handler: forwards to the current job's cli.log handler (a multirun's jobs in one
    process each get their own from Hydra) and counts what it forwards, per library."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.target: logging.Handler | None = None
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.seen[record.name if record.name == "py.warnings" else record.name.split(".")[0]] += 1
        if self.target is not None:
            self.target.handle(record)


_HANDLER = _RunLog()


def bars_off() -> bool:
    """Progress bars of the Hugging Face libraries off, unless HF_HUB_DISABLE_PROGRESS_BARS=0 asks for them."""
    return os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "1").strip().lower() not in ("0", "false", "no", "off")


def _quiet_transformers() -> None:
    """transformers' own stderr handler off, its records to cli.log, its progress bars off."""
    from transformers.utils import logging as tlog

    if bars_off():
        tlog.disable_progress_bar()
    lib = logging.getLogger("transformers")
    for h in list(lib.handlers):
        if h is not _HANDLER:
            lib.removeHandler(h)
    if _HANDLER not in lib.handlers:
        lib.addHandler(_HANDLER)
    lib.propagate = False


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `then()` right after the module `name` is first imported, by whoever imports it."""

    def __init__(self, name: str, then: Any) -> None:
        self.name, self.then, self.done = name, then, False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name or self.done:
            return None
        # once; and the lookup below must not come back here (the finder stays in sys.meta_path, inert:
        # removing it here would shift the list the import system is iterating over)
        self.done = True
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module, then = spec.loader.exec_module, self.then

        def run(module: Any) -> None:
            exec_module(module)
            then()

        spec.loader.exec_module = run  # type: ignore[method-assign]
        return spec


def to_run_log() -> "_RunLog | None":
    """Route what the libraries say to this job's cli.log; None when Hydra's job logging is not the
    harness's (a user's own hydra/job_logging=...: theirs is left as it is)."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return None
    log = files[0]
    if not any(isinstance(f, _Redact) for f in log.filters):
        log.addFilter(_Redact())
    _HANDLER.target, _HANDLER.seen = log, Counter()
    # the Hugging Face switch, read when huggingface_hub (and transformers) load; =0 keeps the bars
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if bars_off() and "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    logging.captureWarnings(True)
    for name in LIBRARIES:
        lg = logging.getLogger(name)
        if _HANDLER not in lg.handlers:
            lg.addHandler(_HANDLER)
        lg.propagate = False
    if "transformers" in sys.modules:
        _quiet_transformers()
    elif not any(isinstance(f, _AfterImport) and not f.done for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("transformers", _quiet_transformers))
    return _HANDLER


def summary_line(handler: "_RunLog | None", log: Path) -> str | None:
    """`[log] 2 library warnings (transformers 1, py.warnings 1) in <run dir>/cli.log`, or None."""
    if handler is None or not handler.seen:
        return None
    n = sum(handler.seen.values())
    which = ", ".join(f"{k} {v}" for k, v in handler.seen.most_common())
    return f"[log] {n} library warning{'s' if n != 1 else ''} ({which}) in {log}"
