"""Text overlap between questions: exact, word n-gram containment, MinHash and embedding similarity.

Two uses share these measures:
- **dedup**: near-duplicate training questions are removed (exact, then MinHash via datasketch's LSH
  index, so it scales to large sets without comparing every pair);
- **leak check**: every evaluation question is compared with every training question (and, after
  the teacher has answered, with the answers too) before anything is fine-tuned.

Texts are compared after the graders' normalisation (NFKC, case, punctuation, articles, number
formats), so "What is X?" and "what is x" are the same question.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

NUM_PERM = 256
SHINGLE = 3  # character shingles: questions are short; 3 measured best at telling a typo (>= 0.9) from
# the same template about another entity (<= 0.88, see docs/data.md)
MIN_NGRAM_WORDS = 4  # shorter items are left to the exact check ("why?" is in every corpus)


def normalise(text: str) -> list[str]:
    """The graders' normalised tokens (imported late: harness.evaluate imports harness.data)."""
    from ..text import normalise as tokens

    return tokens(text)


def norm(text: str) -> str:
    return " ".join(normalise(text))


def signatures(texts: list[str]) -> list[Any]:
    """MinHash signatures over character 3-gram shingles of the normalised text (seeded: stable)."""
    from datasketch import LeanMinHash, MinHash

    sets = []
    for t in texts:
        s = norm(t)
        sets.append([s[i:i + SHINGLE].encode() for i in range(max(1, len(s) - SHINGLE + 1))])
    return [LeanMinHash(m) for m in MinHash.bulk(sets, num_perm=NUM_PERM, seed=1)]


def _hashvalues(sigs: list[Any]) -> np.ndarray:
    return np.stack([s.hashvalues for s in sigs]) if sigs else np.zeros((0, NUM_PERM), dtype=np.uint64)


def minhash_matrix(a: list[Any], b: list[Any]) -> np.ndarray:
    """Estimated Jaccard similarity of every a x b pair (the share of equal signature slots, which
    is what `MinHash.jaccard` computes), vectorised in chunks of ~20 M slot comparisons (~20 MB)."""
    ha, hb = _hashvalues(a), _hashvalues(b)
    chunk = max(1, 20_000_000 // max(1, len(hb) * NUM_PERM))
    out = np.zeros((len(ha), len(hb)), dtype=np.float32)
    for i in range(0, len(ha), chunk):
        out[i:i + chunk] = (ha[i:i + chunk, None, :] == hb[None, :, :]).mean(-1)
    return out


@dataclass(frozen=True)
class Duplicate:
    kept: str  # id of the training question that stays
    removed: str
    kept_question: str
    removed_question: str
    kind: str  # exact | minhash
    similarity: float


@functools.lru_cache(maxsize=8)
def _lsh_params(threshold: float) -> tuple[int, int]:
    """datasketch's optimal (bands, rows) for `threshold`: it integrates numerically for every new
    index (~0.1 s), and a run builds the data three times (two up-front checks, then the stage)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    return lsh.b, lsh.r


def near_duplicates(ids: list[str], texts: list[str], threshold: Optional[float]) -> list[Duplicate]:
    """Training questions to drop: exact (normalised) repeats, then MinHash near-duplicates at
    `threshold` (None: exact only). The first occurrence in file order is kept."""
    # a run builds its data three times (two up-front checks, then the stage) on the same questions
    return list(_near_duplicates(tuple(ids), tuple(texts), threshold))


@functools.lru_cache(maxsize=4)
def _near_duplicates(ids: tuple[str, ...], texts: tuple[str, ...], threshold: Optional[float]) -> tuple[Duplicate, ...]:
    from datasketch import MinHashLSH

    out: list[Duplicate] = []
    first: dict[str, int] = {}
    unique: list[int] = []
    for k, t in enumerate(texts):
        n = norm(t)
        if n in first:
            j = first[n]
            out.append(Duplicate(ids[j], ids[k], texts[j], t, "exact", 1.0))
        else:
            first[n] = k
            unique.append(k)
    if threshold is None:
        return tuple(out)
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, params=_lsh_params(threshold))
    kept: dict[int, Any] = {}
    for k, sig in zip(unique, signatures([texts[k] for k in unique])):
        # LSH gives candidates; their estimated similarity decides (LSH alone has false positives)
        best, j = max(((sig.jaccard(kept[c]), c) for c in lsh.query(sig)), default=(0.0, -1))
        if best >= threshold:
            out.append(Duplicate(ids[j], ids[k], texts[j], texts[k], "minhash", round(float(best), 4)))
        else:
            lsh.insert(k, sig)
            kept[k] = sig
    return tuple(out)
