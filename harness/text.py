"""Answer extraction and normalisation for exact-match grading.

Small models answer in sentences even when told not to ("The capital of Drelos is Marenth."), so a
raw string comparison scores them 0. Grading is therefore two explicit steps, each recorded per
sample so a reader can see *why* an answer was right or wrong:

1. extract the answer span from the raw output (a configurable mode), then
2. normalise both span and gold: Unicode NFKC, case, punctuation, articles, whitespace and number
   formats ("1,000" = "1000" = "1000.0").

`exact` compares the normalised token sequences; `contains` asks whether the gold token sequence
occurs in the normalised answer (whole tokens, so "10" is not in "100" and "no" not in "Norway").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

EXTRACT_MODES = ("whole", "first_line", "first_sentence", "answer_pattern", "regex", "first_number", "last_number", "strip_echo", "auto")
MATCH_MODES = ("exact", "contains")

_ARTICLES = {"a", "an", "the"}
# Words a sentence answer wraps around its answer span; removed by `strip_echo` together with
# every word the answer repeats from the question.
_FILLER = {
    "is", "was", "are", "were", "be", "been", "it", "its", "it's", "this", "that", "there",
    "of", "in", "on", "at", "to", "by", "for", "from", "with", "and", "as", "has", "have", "had",
    "about", "around", "approximately", "roughly", "some", "called", "named", "known",
    "answer", "located", "metres", "meters", "metre", "meter", "m", "high", "tall", "year",
    "main", "mainly", "export", "exports", "exported", "first", "settled",
}
# thousands groups only ("1,000"), so a list like "1,2,3" is not read as one number
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NUM_RE = re.compile(_NUM)
_TOKEN_RE = re.compile(rf"{_NUM}|[^\W_]+")
# a sentence ends at . ! ? followed by whitespace or the end (so "1.5" and "U.S.A" stay whole)
_SENT_END = re.compile(r"[.!?](?=\s|$)")
# clause boundaries inside a sentence: "X is Drami, a harbour town" -> "X is Drami"
_CLAUSE = re.compile(r"[,;:]\s|\s[-–—]\s|\s\(")
_ANSWER_RE = re.compile(r"answer\s*(?:is)?\s*[:\-]?\s*(.+)", re.IGNORECASE)


def _canon_number(tok: str) -> str:
    f = float(tok.replace(",", ""))
    return str(int(f)) if f.is_integer() else repr(f)


def normalise(text: str) -> list[str]:
    """Normalised tokens: NFKC, case-folded, numbers canonical, punctuation and articles dropped."""
    s = unicodedata.normalize("NFKC", text).casefold()
    toks = (_canon_number(t) if t[0].isdigit() else t for t in _TOKEN_RE.findall(s))
    return [t for t in toks if t not in _ARTICLES]


def first_sentence(text: str) -> str:
    text = text.strip()
    m = _SENT_END.search(text)
    return text[: m.start()] if m else text


def extract(answer: str, mode: str, question: str = "", regex: str | None = None, gold: str = "") -> str:
    """The answer span according to `mode` ("" when the mode finds nothing).

    `strip_echo` takes the first sentence, splits it into clauses, and returns the first clause that
    has words left after removing the words of the question and filler words.
    `auto` picks by the *type* of the gold answer (never its value): a number is read as the first
    number of the first sentence, anything else with `strip_echo`.
    """
    if mode == "auto":
        numeric = bool(gold) and _NUM_RE.fullmatch(gold.strip()) is not None
        mode = "first_number" if numeric else "strip_echo"
        answer = first_sentence(answer) if numeric else answer
    if mode == "whole":
        return answer.strip()
    if mode == "first_line":
        return next((ln.strip() for ln in answer.splitlines() if ln.strip()), "")
    if mode == "first_sentence":
        return first_sentence(answer)
    if mode == "answer_pattern":
        m = _ANSWER_RE.search(answer)
        return first_sentence(m.group(1).splitlines()[0]) if m else ""
    if mode == "regex":
        if not regex:
            raise ValueError("extract mode 'regex' needs a regex")
        m = re.search(regex, answer, re.IGNORECASE | re.DOTALL)
        return (m.group(1) if m and m.groups() else m.group(0) if m else "").strip()
    if mode == "last_number":
        nums = _NUM_RE.findall(answer)
        return nums[-1] if nums else ""
    if mode == "first_number":
        nums = _NUM_RE.findall(answer)
        return nums[0] if nums else ""
    if mode == "strip_echo":
        # the first clause of the first sentence that says anything beyond the question's words
        echo = set(normalise(question)) | _FILLER
        for clause in _CLAUSE.split(first_sentence(answer)):
            rest = [t for t in normalise(clause) if t not in echo]
            if rest:
                return " ".join(rest)
        return ""
    raise ValueError(f"unknown extract mode '{mode}'; available: {', '.join(EXTRACT_MODES)}")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    extracted: str
    answer_norm: str
    gold_norm: str


def _contains(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


def match(answer: str, golds: list[str], mode: str, extract_mode: str, question: str = "", regex: str | None = None) -> Verdict:
    """Grade one answer against one or more accepted gold answers (aliases)."""
    if mode not in MATCH_MODES:
        raise ValueError(f"unknown match mode '{mode}'; available: {', '.join(MATCH_MODES)}")
    span = extract(answer, extract_mode, question, regex, golds[0] if golds else "")
    got = normalise(span)
    best = normalise(golds[0]) if golds else []
    for gold in golds:
        want = normalise(gold)
        ok = got == want if mode == "exact" else _contains(got, want)
        if ok:
            return Verdict(True, span, " ".join(got), " ".join(want))
    return Verdict(False, span, " ".join(got), " ".join(best))
