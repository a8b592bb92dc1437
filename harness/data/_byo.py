"""Bring-your-own data: questions (and evaluation items) from a JSONL or CSV file.

Every row is validated up front and the first bad one is reported as `file:line: what is wrong`,
so a typo in row 4,000 fails before the teacher answers row 1. Line numbers are the file's own
(1-based, the header is line 1 of a CSV; a quoted multi-line CSV cell reports the line it ends on).
"""

from __future__ import annotations

import csv
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config import ColumnsConfig
from ..errors import HarnessError

FORMATS = ("jsonl", "csv")


@dataclass(frozen=True)
class Row:
    id: str
    question: str
    answer: str  # "" when the file has no reference answer
    group: str
    passage: str
    line: int


def _records(path: Path, fmt: str, cols: ColumnsConfig) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw record) for every non-blank line / CSV row."""
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise HarnessError(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(rec, dict):
                    raise HarnessError(f"{path}:{n}: expected a JSON object per line, got {type(rec).__name__}")
                yield n, rec
        return
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if not header:
            return
        if cols.question not in header:
            raise HarnessError(f"{path}:1: no '{cols.question}' column (columns: {', '.join(header)}); "
                               f"name it with data.columns.question=<column>")
        for rec in reader:
            n = reader.line_num
            if None in rec:  # DictReader's bucket for cells beyond the header
                raise HarnessError(f"{path}:{n}: {len(header) + len(rec[None])} cells but the header has {len(header)}")
            if any(v is None for v in rec.values()):
                short = sum(v is not None for v in rec.values())
                raise HarnessError(f"{path}:{n}: {short} cells but the header has {len(header)}")
            if not any(v.strip() for v in rec.values()):
                continue
            yield n, rec


def _text(path: Path, n: int, rec: dict[str, Any], col: str, key: str, required: bool, max_chars: int | None = None) -> str:
    """A string cell; numbers are accepted (an answer of 1889 in JSON) and written as text.
    Longer than `max_chars` (data.max_chars): refused, before it reaches a model."""
    v = rec.get(col)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            what = "is missing" if col not in rec else "is empty"
            raise HarnessError(f"{path}:{n}: '{col}' {what} (data.columns.{key}); every row needs one")
        return ""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise HarnessError(f"{path}:{n}: '{col}' must be a string (data.columns.{key}), got {type(v).__name__} {json.dumps(v)[:40]}")
    text = str(v).strip()
    if max_chars is not None and len(text) > max_chars:
        raise HarnessError(f"{path}:{n}: '{col}' is {len(text)} characters, longer than data.max_chars={max_chars}; "
                           "shorten it, or raise data.max_chars (null: no limit)")
    return text


def load_rows(path_str: str, fmt: str, cols: ColumnsConfig, key: str, answers_required: bool,
              max_chars: int | None = None) -> list[Row]:
    """Validated rows of one file. `key` names the config key that points at it (for messages);
    `max_chars`: the longest question, answer or passage accepted (None: any)."""
    path = Path(path_str)
    if not path.is_file():
        raise HarnessError(f"{key}: no such file: {path_str}")
    rows: list[Row] = []
    first_line: dict[str, int] = {}
    try:
        for n, rec in _records(path, fmt, cols):
            q = _text(path, n, rec, cols.question, "question", True, max_chars)
            a = _text(path, n, rec, cols.answer, "answer", answers_required, max_chars)
            ident = _text(path, n, rec, cols.id, "id", False, max_chars) or f"L{n}"
            if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in ident):  # ids are shown in reports and logs
                raise HarnessError(f"{path}:{n}: id {json.dumps(ident)[:60]} contains a control character; ids are plain text")
            if ident in first_line:
                raise HarnessError(f"{path}:{n}: duplicate id '{ident}' (first on line {first_line[ident]}); ids must be unique")
            first_line[ident] = n
            rows.append(Row(ident, q, a, _text(path, n, rec, cols.group, "group", False) or "all",
                            _text(path, n, rec, cols.passage, "passage", False, max_chars), n))
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if not rows:
        raise HarnessError(f"{path}: no rows; {key} must point at a {fmt.upper()} file with at least one question")
    return rows
