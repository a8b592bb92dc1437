"""Leak check: does any evaluation item match a training item?

Run twice before fine-tuning: on the questions as soon as the data is built (fails before the
teacher spends a call), and again once the teacher has answered (an answer that quotes an evaluation
question is a leak too). An evaluation item counts as leaked if *any* check flags it:

- exact     its normalised question is a training question;
- ngram     at least `leak_ngram_overlap` of its word `leak_ngram`-grams occur in the training
            questions or answers (the classic contamination check; items under 4 words are left to
            `exact`, an item shorter than n words must occur whole);
- minhash   estimated Jaccard similarity of character 3-gram shingles with a training question
            >= `leak_minhash` (typos, punctuation, a word changed);
- embedding cosine similarity of sentence embeddings with a training question >= `leak_embedding`
            (paraphrases; off with `data.embedding_model=null`).

Above `data.leak_threshold` (share of evaluation items) the run stops with one line unless
`data.allow_leak=true`; then the report carries a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..config import DataConfig
from ..errors import HarnessError
from ._overlap import MIN_NGRAM_WORDS, minhash_matrix, norm, normalise, signatures

CHECKS = ("exact", "ngram", "minhash", "embedding")
N_CLOSEST = 10


@dataclass
class LeakResult:
    n_eval: int
    flagged: dict[str, list[str]]  # check -> ids of the evaluation items it flags
    closest: list[dict[str, Any]]  # the most similar evaluation/training pairs, most similar first
    thresholds: dict[str, Any]
    checks: list[str] = field(default_factory=list)  # the checks that ran

    @property
    def leaked(self) -> set[str]:
        return set().union(*self.flagged.values()) if self.flagged else set()

    @property
    def rate(self) -> float:
        return len(self.leaked) / self.n_eval if self.n_eval else 0.0

    def summary(self, allowed: bool) -> dict[str, Any]:
        return {
            "checks": {c: {"n": len(self.flagged.get(c, [])), "rate": round(len(self.flagged.get(c, [])) / max(1, self.n_eval), 6)}
                       for c in self.checks},
            "n_leaked": len(self.leaked),
            "thresholds": self.thresholds,
            "allowed": allowed,
            "closest": self.closest,
        }


def _ngram_containment(evals: list[str], corpus: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluation text: the share of its word n-grams found in `corpus`, and the corpus index
    that holds most of them (-1 when none)."""
    toks = [normalise(e) for e in evals]
    sizes = {min(n, len(t)) for t in toks if len(t) >= MIN_NGRAM_WORDS}
    index: dict[tuple[str, ...], int] = {}
    for j, text in enumerate(corpus):
        w = normalise(text)
        for k in sizes:
            for i in range(len(w) - k + 1):
                index.setdefault(tuple(w[i:i + k]), j)
    share, where = np.zeros(len(evals)), np.full(len(evals), -1)
    for e, t in enumerate(toks):
        if len(t) < MIN_NGRAM_WORDS:
            continue
        k = min(n, len(t))
        hits = [index.get(tuple(t[i:i + k])) for i in range(len(t) - k + 1)]
        found = [h for h in hits if h is not None]
        if found:
            share[e] = len(found) / len(hits)
            where[e] = max(set(found), key=found.count)
    return share, where


def check_leak(
    train: list[Any], evals: list[Any], cfg: DataConfig, answers: Optional[list[tuple[str, str]]] = None,
    vectors: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> LeakResult:
    """Compare evaluation items with training questions (+ the teacher's `(id, answer)` pairs).
    `vectors`: (train, eval) embeddings of the question texts, when an embedding model is set."""
    tq, eq = [t.question for t in train], [e.question for e in evals]
    flagged: dict[str, list[str]] = {c: [] for c in CHECKS}
    scores = {c: np.zeros(len(evals)) for c in CHECKS}
    best = {c: np.full(len(evals), -1) for c in CHECKS}

    seen = {norm(q): j for j, q in enumerate(tq)}
    for i, q in enumerate(eq):
        if norm(q) in seen:
            scores["exact"][i], best["exact"][i] = 1.0, seen[norm(q)]

    # n-gram containment in every training text: questions, then answers (mapped back to their question)
    answers = answers or []
    row_of = {t.id: j for j, t in enumerate(train)}
    corpus = tq + [a for _, a in answers]
    owner = list(range(len(tq))) + [row_of.get(i, -1) for i, _ in answers]
    share, where = _ngram_containment(eq, corpus, cfg.leak_ngram)
    scores["ngram"], best["ngram"] = share, np.array([owner[w] if w >= 0 else -1 for w in where])

    if tq and eq:
        sim = minhash_matrix(signatures(eq), signatures(tq))
        scores["minhash"], best["minhash"] = sim.max(1), sim.argmax(1)
    checks = ["exact", "ngram", "minhash"]
    if vectors is not None and tq and eq:
        cos = vectors[1] @ vectors[0].T
        scores["embedding"], best["embedding"] = cos.max(1), cos.argmax(1)
        checks.append("embedding")

    limits = {"exact": 1.0, "ngram": cfg.leak_ngram_overlap, "minhash": cfg.leak_minhash,
              "embedding": cfg.leak_embedding if cfg.leak_embedding is not None else np.inf}
    for c in checks:
        flagged[c] = [evals[i].id for i in np.flatnonzero(scores[c] >= limits[c] - 1e-9)]

    # closest pairs: flagged first, then by the strongest similarity any check measured
    def strength(i: int) -> tuple[int, float]:
        return (any(evals[i].id in flagged[c] for c in checks), max(float(scores[c][i]) for c in checks))

    closest = []
    for i in sorted(range(len(evals)), key=strength, reverse=True)[:N_CLOSEST]:
        by = [c for c in checks if evals[i].id in flagged[c]]
        # the training item of the check that flagged it, else of the most telling similarity
        pick = next((c for c in by), "embedding" if "embedding" in checks else "minhash")
        j = int(best[pick][i]) if best[pick][i] >= 0 else int(best["minhash"][i])
        if j < 0:
            continue
        closest.append({
            "eval_id": evals[i].id, "eval_question": evals[i].question, "train_id": train[j].id,
            "train_question": train[j].question, "flagged_by": by,
            **{c: round(float(scores[c][i]), 4) for c in checks},
        })
    thresholds = {"ngram": cfg.leak_ngram, "ngram_overlap": cfg.leak_ngram_overlap, "minhash": cfg.leak_minhash,
                  "embedding": cfg.leak_embedding if "embedding" in checks else None, "max_rate": cfg.leak_threshold}
    return LeakResult(len(evals), {c: flagged[c] for c in checks}, closest, thresholds, checks)


def enforce(result: LeakResult, cfg: DataConfig, where: str, detail: str) -> None:
    """Stop the run (one line) when the leak rate is above the threshold, unless allowed."""
    if result.rate <= cfg.leak_threshold + 1e-12 or cfg.allow_leak:
        return
    by = ", ".join(f"{c} {len(ids)}" for c, ids in result.flagged.items() if ids)
    raise HarnessError(
        f"{where}: {len(result.leaked)} of {result.n_eval} evaluation items ({result.rate:.1%}) match a training item "
        f"({by}), above data.leak_threshold={cfg.leak_threshold:g}; closest pairs in {detail}; "
        f"remove them from training or set data.allow_leak=true to run anyway")


def leaking(train: list[Any], evals: list[Any], cfg: DataConfig, vectors: Optional[tuple[np.ndarray, np.ndarray]] = None,
            ) -> dict[str, list[str]]:
    """Training question id -> the checks by which it *alone* matches an evaluation item, at the
    thresholds of `check_leak` (which judges the training set as a whole). Used to drop single
    machine-written wordings (generate.paraphrases) that land on an evaluation question."""
    if not train or not evals:
        return {}
    eq = [e.question for e in evals]
    hits: dict[str, list[str]] = {}
    exact = {norm(q) for q in eq}
    sim = minhash_matrix(signatures([t.question for t in train]), signatures(eq)).max(1)
    cos = (vectors[0] @ vectors[1].T).max(1) if vectors is not None and cfg.leak_embedding is not None else None
    for j, t in enumerate(train):
        share, _ = _ngram_containment(eq, [t.question], cfg.leak_ngram)
        by = [c for c, hit in (("exact", norm(t.question) in exact), ("ngram", share.max() >= cfg.leak_ngram_overlap - 1e-9),
                               ("minhash", sim[j] >= cfg.leak_minhash - 1e-9),
                               ("embedding", cos is not None and cos[j] >= cfg.leak_embedding - 1e-9)) if hit]
        if by:
            hits[t.id] = by
    return hits
