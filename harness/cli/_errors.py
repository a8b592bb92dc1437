"""The one error path of the CLI: every failure reaches the user as one line on stderr.

    harness: error: <what and where, what to do>                          exit 2  (bad input)
    harness: internal error: <Type>: <msg> (full traceback in <log>)      exit 1  (a bug, or the machine)

Commands raise `HarnessError` for bad input and let everything else propagate; `guarded` (the CLI
edge, around every command) turns the exception into that line. The traceback goes to
`<run dir>/cli.log` when a run dir is known (the file Hydra's job logging writes), else to a temp file
`harness-internal-error-<time>-<pid>.log`; `HARNESS_DEBUG=1` prints it on stderr as well.
Hydra's own error reporting (which prints a traceback of its own) is switched off with
HYDRA_FULL_ERROR=1, so Hydra's exceptions reach this edge too.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, NoReturn

from ..errors import HarnessError, redact_text

# set by the `run` task function as soon as Hydra has made the run dir: where cli.log goes
state: dict[str, Path | None] = {"run_dir": None}


class Escaped(BaseException):
    """Carries a job's exception past Hydra's job runner, which catches `Exception` and writes a line of
    its own ("Error executing job with overrides ...") before re-raising; the edge unwraps it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def fail(msg: str) -> NoReturn:
    """Bad input: raise the error the edge prints as one line, exit 2."""
    raise HarnessError(msg)


def _one_line(text: str, limit: int = 600) -> str:
    line = " ".join(redact_text(str(text)).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return out


def _yaml_error(e: BaseException) -> str | None:
    """`file:line: problem` for a YAML syntax error anywhere in the exception chain."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml comes with omegaconf
        return None
    for x in _chain(e):
        if isinstance(x, yaml.MarkedYAMLError):
            mark = x.problem_mark or x.context_mark
            where = f"{mark.name}:{mark.line + 1}" if mark is not None else "<yaml>"
            what = " ".join(str(p) for p in (x.context, x.problem) if p)
            if x.context_mark is not None and mark is not None and x.context_mark.line != mark.line:
                what += f" (the construct starts on line {x.context_mark.line + 1})"
            return f"{where}: YAML syntax error: {what}; fix the file"
        if isinstance(x, yaml.YAMLError):
            return f"YAML error: {_one_line(x)}"
    return None


def _config_error(e: BaseException) -> str | None:
    """A Hydra/OmegaConf composition or override error: the message without Hydra's search-path dump."""
    try:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(e, (HydraException, OmegaConfBaseException)):
        return None
    msg = " ".join(str(e).split()).split(" Config search path")[0].split(" See https://hydra.cc")[0]
    if isinstance(e, HydraException) and e.__cause__ is not None:
        msg += ": " + " ".join(str(e.__cause__).split("\n")[0].split())
    return msg


def classify(e: BaseException) -> tuple[int, str]:
    """(exit code, message) for an exception that reached the edge."""
    yaml_msg = _yaml_error(e)
    if yaml_msg:
        return 2, yaml_msg
    if isinstance(e, HarnessError) or isinstance(e.__cause__, HarnessError):
        return 2, str(e if isinstance(e, HarnessError) else e.__cause__)
    cfg_msg = _config_error(e)
    if cfg_msg:
        return 2, cfg_msg
    return 1, ""


def _log_path() -> Path:
    run_dir = state.get("run_dir")
    if run_dir is not None and Path(run_dir).is_dir():
        return Path(run_dir) / "cli.log"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir()) / f"harness-internal-error-{stamp}-{os.getpid()}.log"


def _write_log(e: BaseException) -> Path | None:
    text = redact_text("".join(traceback.format_exception(type(e), e, e.__traceback__)))
    for path in (_log_path(), Path(tempfile.gettempdir()) / f"harness-internal-error-{os.getpid()}.log"):
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} harness {' '.join(sys.argv[1:])}\n{text}\n")
            return path
        except OSError:
            continue
    return None


def report(e: BaseException) -> int:
    """Print the one line for `e` and return the exit code."""
    code, msg = classify(e)
    if os.environ.get("HARNESS_DEBUG") == "1":
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    if code == 2:
        print(f"harness: error: {_one_line(msg, 2000)}", file=sys.stderr, flush=True)
        return 2
    log = _write_log(e)
    where = f"full traceback in {log}" if log else "no log could be written; HARNESS_DEBUG=1 prints the traceback"
    print(f"harness: internal error: {type(e).__name__}: {_one_line(e)} ({where})", file=sys.stderr, flush=True)
    return 1


def guarded(fn: Callable[[], object]) -> NoReturn:
    """Run a command; exit 0, or print the one line and exit 2 / 1 (130 on Ctrl-C)."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own traceback
    try:
        fn()
    except SystemExit as e:  # argparse, --help, Hydra's own exits: their code, their (short) message
        raise SystemExit(e.code) from None
    except Escaped as e:
        raise SystemExit(report(e.error)) from None
    except BrokenPipeError:  # `harness ... | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except BaseException as e:  # noqa: BLE001 - the edge: everything ends as one line
        raise SystemExit(report(e)) from None
    raise SystemExit(0)
