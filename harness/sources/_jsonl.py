"""One reader for the JSON-lines files other tools write (lm-eval samples, Every Eval Ever
instances): a file that cannot be read, a line that is not JSON, or a record of the wrong shape is
one line naming the file and line, and what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import HarnessError


def jsonl_records(f: Path, unreadable: str, truncated: str, valid: Callable[[Any], bool],
                  not_a_record: str) -> Iterable[tuple[int, dict[str, Any]]]:
    """(line number, record) of `f`, blank lines skipped. `unreadable` / `truncated`: what to do when the file
    cannot be read / a line is not JSON; `valid(rec)` false raises `f:line: not_a_record`."""
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"{f}: cannot be read ({type(e).__name__}); {unreadable}") from None
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise HarnessError(f"{f}:{k}: not valid JSON ({e.msg}); the file is truncated or edited — {truncated}") from None
        if not valid(rec):
            raise HarnessError(f"{f}:{k}: {not_a_record}")
        yield k, rec
