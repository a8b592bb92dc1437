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
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Row:
    id: str
    question: str
    answer: str  # "" when the file has no reference answer
    group: str
    passage: str
    line: int
    choices: tuple[str, ...] = ()  # a multiple-choice item's choices; its `answer` is then a letter (A = the first)


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


def _csv_choices(rec: dict[str, Any]) -> list[Any] | None:
    """A CSV row's choices: columns A, B, C, ... in order, up to the first missing or empty one."""
    if "A" not in rec:
        return None
    out = []
    for letter in LETTERS:
        v = rec.get(letter)
        if v is None or not str(v).strip():
            break
        out.append(v)
    return out


def _choices(path: Path, n: int, rec: dict[str, Any], fmt: str, cols: ColumnsConfig, max_chars: int | None) -> tuple[str, ...]:
    """The item's choices (() for an open question), validated: a list of 2..26 distinct texts."""
    raw = _csv_choices(rec) if fmt == "csv" else rec.get(cols.choices)
    where = "columns A, B, ..." if fmt == "csv" else f"'{cols.choices}'"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise HarnessError(f"{path}:{n}: {where} must be a list of choices, got {type(raw).__name__} {json.dumps(raw)[:40]}")
    if len(raw) < 2:
        raise HarnessError(f"{path}:{n}: {where} has {len(raw)} choice{'s' if len(raw) != 1 else ''}; a multiple-choice item "
                           "needs at least 2 (drop the field for an open question)")
    if len(raw) > len(LETTERS):
        raise HarnessError(f"{path}:{n}: {where} has {len(raw)} choices; at most {len(LETTERS)} (A-Z) can be lettered")
    out: list[str] = []
    seen: dict[str, int] = {}
    for k, c in enumerate(raw):
        if isinstance(c, bool) or not isinstance(c, (str, int, float)) or not str(c).strip():
            raise HarnessError(f"{path}:{n}: choice {LETTERS[k]} of {where} must be non-empty text, got {json.dumps(c)[:40]}")
        text = str(c).strip()
        if max_chars is not None and len(text) > max_chars:
            raise HarnessError(f"{path}:{n}: choice {LETTERS[k]} is {len(text)} characters, longer than data.max_chars={max_chars}")
        same = " ".join(text.casefold().split())
        if same in seen:
            raise HarnessError(f"{path}:{n}: choices {LETTERS[seen[same]]} and {LETTERS[k]} are the same ({json.dumps(text)[:40]}); "
                               "every choice must differ, or the item cannot be scored")
        seen[same] = k
        out.append(text)
    return tuple(out)


def gold_letter(path: Path, n: int, answer: Any, choices: tuple[str, ...], col: str) -> str:
    """A multiple-choice answer given as a letter, a 0-based index or a choice's text, as its letter.
    An answer that reads two ways (the letter "B" when a choice's text is "B") is refused."""
    k = len(choices)
    span = f"A-{LETTERS[k - 1]}"
    if isinstance(answer, int) and not isinstance(answer, bool):
        if not 0 <= answer < k:
            raise HarnessError(f"{path}:{n}: '{col}' is index {answer}, out of range for {k} choices (0-{k - 1})")
        return LETTERS[answer]
    text = str(answer).strip()
    by_text = [i for i, c in enumerate(choices) if c == text] or [i for i, c in enumerate(choices) if c.casefold() == text.casefold()]
    # a letter is a capital ("a" is text: a choice may be the word "a"); a digit string an index
    # unless it is a choice's text (CSV numbers are strings)
    as_letter = LETTERS.index(text) if len(text) == 1 and text in LETTERS else None
    as_index = int(text) if text.isdigit() else None
    reads = {i for i in (by_text[:1] + ([as_letter] if as_letter is not None and as_letter < k else [])
                         + ([as_index] if as_index is not None and as_index < k and not by_text else []))}
    if len(reads) > 1:
        raise HarnessError(f"{path}:{n}: '{col}' {json.dumps(text)[:40]} is both the letter/index of choice {LETTERS[min(reads)]} "
                           f"and the text of choice {LETTERS[by_text[0]]}; give the answer unambiguously (a 0-based index in JSON)")
    if reads:
        return LETTERS[reads.pop()]
    if as_letter is not None:
        raise HarnessError(f"{path}:{n}: '{col}' is the letter {text}, but the item has {k} choices ({span})")
    if as_index is not None:
        raise HarnessError(f"{path}:{n}: '{col}' is index {as_index}, out of range for {k} choices (0-{k - 1})")
    raise HarnessError(f"{path}:{n}: '{col}' {json.dumps(text)[:40]} is not a letter {span}, an index 0-{k - 1} or the text "
                       "of one of the choices")


def load_rows(path_str: str, fmt: str, cols: ColumnsConfig, key: str, answers_required: bool,
              max_chars: int | None = None) -> list[Row]:
    """Validated rows of one file. `key` names the config key that points at it (for messages);
    `max_chars`: the longest question, answer or passage accepted (None: any). Evaluation rows
    (`answers_required`) may be multiple choice; a training row's choices are not read (see
    `unused_fields`)."""
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
            choices = _choices(path, n, rec, fmt, cols, max_chars) if answers_required else ()
            if choices:
                a = gold_letter(path, n, rec.get(cols.answer), choices, cols.answer)
            rows.append(Row(ident, q, a, _text(path, n, rec, cols.group, "group", False) or "all",
                            _text(path, n, rec, cols.passage, "passage", False, max_chars), n, choices))
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if not rows:
        raise HarnessError(f"{path}: no rows; {key} must point at a {fmt.upper()} file with at least one question")
    return rows


def unused_fields(path_str: str, fmt: str, cols: ColumnsConfig, evaluation: bool) -> list[str]:
    """The fields (JSONL keys, CSV columns) of a file that the harness does not read, in first-seen
    order: said before any stage, never dropped in silence. A training file's choices are among
    them (training rows are open questions). Call after `load_rows` accepted the file."""
    used = {cols.question, cols.answer, cols.id, cols.group, cols.passage}
    if evaluation:
        used.add(cols.choices)
    seen: dict[str, None] = {}
    for _, rec in _records(Path(path_str), fmt, cols):
        for k in rec:
            if k is not None and k not in used:
                seen.setdefault(str(k), None)
    if fmt == "csv" and evaluation and "A" in seen:  # the choice columns
        for letter in LETTERS:
            if letter not in seen:
                break
            seen.pop(letter)
    return list(seen)
