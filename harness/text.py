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

EXTRACT_MODES = ("whole", "first_line", "first_sentence", "answer_pattern", "regex", "first_number", "last_number", "strip_echo", "auto",
                 "final_answer")
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


def normalise(text: str, keep: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Normalised tokens: NFKC, case-folded, numbers canonical, punctuation and articles dropped
    (except the articles in `keep`: a gold that *is* an article, such as the choice letter "A")."""
    s = unicodedata.normalize("NFKC", text).casefold()
    toks = (_canon_number(t) if t[0].isdigit() else t for t in _TOKEN_RE.findall(s))
    return [t for t in toks if t not in _ARTICLES or t in keep]


def kept_articles(golds: list[str]) -> frozenset[str]:
    """The articles a gold consists of when it would normalise to nothing ("A", "an", "The"): those
    are compared as written on both sides, so no gold is ever normalised away."""
    return frozenset(t for g in golds if not normalise(g) for t in normalise(g, _ARTICLES))


def first_sentence(text: str) -> str:
    text = text.strip()
    m = _SENT_END.search(text)
    return text[: m.start()] if m else text


def extract(answer: str, mode: str, question: str = "", regex: str | None = None, gold: str = "",
            keep: frozenset[str] = frozenset()) -> str:
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
        return ((m.group(1) or "") if m and m.groups() else m.group(0) if m else "").strip()
    if mode == "last_number":
        nums = _NUM_RE.findall(answer)
        return nums[-1] if nums else ""
    if mode == "first_number":
        nums = _NUM_RE.findall(answer)
        return nums[0] if nums else ""
    if mode == "final_answer":
        return final_answer(answer)
    if mode == "strip_echo":
        # the first clause of the first sentence that says anything beyond the question's words
        echo = (set(normalise(question)) | _FILLER) - keep
        for clause in _CLAUSE.split(first_sentence(answer)):
            rest = [t for t in normalise(clause, keep) if t not in echo]
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


def match(answer: str, golds: list[str], mode: str, extract_mode: str, question: str = "", regex: str | None = None,
          tolerance: float = 0.0, rel_tolerance: float = 0.0) -> Verdict:
    """Grade one answer against one or more accepted gold answers (aliases).

    A gold that normalises to nothing (an article: the choice letter "A") keeps its own words on
    both sides instead of being compared as empty. With `extract_mode` final_answer, or a
    tolerance, a span and a gold that are both numbers are compared as numbers (sign included):
    |answer - gold| <= max(tolerance, rel_tolerance * |gold|)."""
    if mode not in MATCH_MODES:
        raise ValueError(f"unknown match mode '{mode}'; available: {', '.join(MATCH_MODES)}")
    keep = kept_articles(golds)
    span = extract(answer, extract_mode, question, regex, golds[0] if golds else "", keep)
    got = normalise(span, keep)
    best = normalise(golds[0], keep) if golds else []
    numeric = extract_mode == "final_answer" or tolerance > 0 or rel_tolerance > 0
    value = as_number(span) if numeric else None
    for gold in golds:
        want = normalise(gold, keep)
        target = as_number(gold) if value is not None else None
        if target is not None:
            ok = abs(value - target) <= max(tolerance, rel_tolerance * abs(target))  # type: ignore[operator]
        else:
            ok = got == want if mode == "exact" else _contains(got, want)
        if ok:
            return Verdict(True, span, " ".join(got), " ".join(want))
    return Verdict(False, span, " ".join(got), " ".join(best))


# a number as a final answer may carry a sign, a currency sign, thousands commas and a unit-less %
_SIGNED = r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?"
_SIGNED_RE = re.compile(rf"(?<![\w.])({_SIGNED})(?![\w])")
_HASHES = re.compile(r"####\s*([^\n]+)")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_NUM = re.compile(rf"answer\s*(?:is|:|=)?\s*[:=]?\s*\**\s*({_SIGNED})", re.IGNORECASE)


def as_number(text: str) -> float | None:
    """`text` as one number ("-1,000.5", "$12", "50%", "12."), or None if it is not exactly one."""
    t = unicodedata.normalize("NFKC", text).strip().rstrip(".").strip()
    if not re.fullmatch(_SIGNED, t):
        return None
    return float(t.replace("$", "").replace(",", "").rstrip("%"))


def final_answer(text: str) -> str:
    """The final answer of a worked solution: the last `#### n` (GSM8K), else the last `\\boxed{n}`,
    else the last "the answer is n" / "Answer: n", else the last number ("" if there is none).
    Intermediate numbers of the reasoning are never the answer."""
    for rx in (_HASHES, _BOXED):
        found = rx.findall(text)
        if found:
            inner = found[-1].strip()
            nums = _SIGNED_RE.findall(inner)
            return nums[-1] if nums else inner
    found = _ANSWER_NUM.findall(text)
    if found:
        return found[-1]
    nums = _SIGNED_RE.findall(text)
    return nums[-1] if nums else ""


# --- multiple choice -------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# "ANSWER: C", "The answer is (C)", "answer: c)", "The correct option is C", "best choice: **C**"
_PICK_STATED = re.compile(
    r"(?:\banswer\b|\b(?:correct|right|best)\s+(?:option|choice|letter)\b)\s*(?:is\s*)?(?:option\s+|choice\s+|letter\s+)?"
    r"[:=\-]?\s*\**\s*[\(\[]?([A-Za-z])[\)\]]?\**(?![A-Za-z0-9])(\s+[a-z]+)?", re.IGNORECASE)
# the reply opens with the letter: "C", "(C)", "C.", "C) Paris", "C: Paris" (not "A bird", not "I think")
_PICK_LEADING = re.compile(r"^\s*(?:\**\s*)(?:[\(\[]([A-Za-z])[\)\]]|([A-Z])(?:\**)(?:[\).:](?=\s|$)|\s*$))")
# "(C)" anywhere
_PICK_PAREN = re.compile(r"(?<![A-Za-z0-9])\(([A-Z])\)")
# a lone capital letter anywhere ("I think B is right"); group 2: a lowercase word follows (then
# "A" and "I" are words)
_PICK_BARE = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])(\s+[a-z])?")


def read_choice(answer: str, choices: list[str]) -> tuple[int | None, str]:
    """The choice a reply picks, as an index into `choices` (in the order shown), and the rule that
    read it; (None, "none") when it picks none or several.

    Rules, first that applies: a stated answer ("ANSWER: C", "The answer is (C)", "the correct
    option is C": the last one when several differ, as a chain of thought ends on its answer); a
    reply that opens with the letter ("C", "(C)", "C.", "C) ..."); a reply that is one choice's
    text; a reply that names exactly one choice's text; one "(C)" in it; one lone capital letter in it. A letter is read only if
    it is one of the shown letters; an uppercase "A" or "I" opening a sentence ("A bird ...") is a
    word, not a pick, and a stated lowercase letter followed by a word ("the answer is a bird") too.
    """
    k = len(choices)
    allowed = LETTERS[:k]
    text = unicodedata.normalize("NFKC", answer)
    stated = []
    for m in _PICK_STATED.finditer(text):
        letter, word_after = m.group(1), m.group(2)
        if letter.islower() and word_after:  # "the answer is a bird"
            continue
        if letter.upper() in allowed:
            stated.append(LETTERS.index(letter.upper()))
    if stated:
        return stated[-1], "stated"
    m = _PICK_LEADING.match(text)
    if m:
        letter = (m.group(1) or m.group(2)).upper()
        if letter in allowed:
            return LETTERS.index(letter), "leading letter"
    reply = normalise(first_sentence(text.strip().splitlines()[0] if text.strip() else ""), _ARTICLES)
    whole = [i for i, c in enumerate(choices) if reply and normalise(c, _ARTICLES) == reply]
    if len(whole) == 1:
        return whole[0], "choice text"
    said = normalise(text, _ARTICLES)
    named = [i for i, c in enumerate(choices) if normalise(c) and _contains(said, normalise(c, _ARTICLES))]
    # a choice named only as part of a longer named choice ("red" inside "dark red") is not named
    named = [i for i in named if not any(j != i and _contains(normalise(choices[j], _ARTICLES), normalise(choices[i], _ARTICLES))
                                         and normalise(choices[j], _ARTICLES) != normalise(choices[i], _ARTICLES) for j in named)]
    if len(named) == 1:
        return named[0], "names choice"
    parens = {LETTERS.index(x) for x in _PICK_PAREN.findall(text) if x in allowed}
    if len(parens) == 1:
        return parens.pop(), "(letter)"
    bare = {LETTERS.index(m.group(1)) for m in _PICK_BARE.finditer(text) if m.group(1) in allowed
            and not (m.group(1) in "AI" and m.group(2))}
    if len(bare) == 1:
        return bare.pop(), "letter"
    return None, "none"
