"""The data card: what the training and evaluation questions look like, in numbers and a picture.

- counts per task and per group (topic / relation / question type);
- distinct-n: unique word n-grams / all word n-grams over a question set (1.0 = no phrase ever
  repeats; templated questions score low);
- embedding dispersion: mean cosine distance between pairs of questions (0 = all the same meaning);
- a 2-D map: the first two principal components of the question embeddings, train and evaluation
  questions together, so gaps in coverage (evaluation points far from any training point) show.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Optional

import numpy as np

from ._overlap import normalise

MAX_POINTS = 1500  # per set on the map; larger sets are subsampled (seeded) to keep summary.json small


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(w[i:i + n]) for w in map(normalise, texts) for i in range(len(w) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def dispersion(v: np.ndarray) -> Optional[float]:
    """Mean pairwise cosine distance of unit vectors: 1 - mean off-diagonal dot product."""
    n = len(v)
    if n < 2:
        return None
    s = v.sum(0)
    mean_cos = (float(s @ s) - n) / (n * (n - 1))  # sum of all dot products minus the diagonal
    return round(1.0 - mean_cos, 4)


def _map(vectors: np.ndarray, labels: list[str], seed: int) -> dict[str, list[list[float]]]:
    centred = vectors - vectors.mean(0)
    # PCA by SVD; the sign of each component is fixed so the picture does not flip between runs
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2] * np.sign(vt[:2].sum(1, keepdims=True) + 1e-12)
    xy = centred @ comps.T
    out: dict[str, list[list[float]]] = {}
    for label in dict.fromkeys(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        if len(idx) > MAX_POINTS:
            idx = sorted(random.Random(seed).sample(idx, MAX_POINTS))
        out[label] = [[round(float(xy[i, 0]), 3), round(float(xy[i, 1]), 3)] for i in idx]
    return out


def data_card(train: list[Any], evals: list[Any], vectors: Optional[tuple[np.ndarray, np.ndarray]],
              model: Optional[str], seed: int = 0) -> dict[str, Any]:
    tq = [t.question for t in train]
    tasks = sorted({e.task for e in evals}, key=lambda t: (t != "heldout", t))
    card: dict[str, Any] = {
        "groups": {"train": dict(sorted(Counter(t.group for t in train).items())),
                   **{task: dict(sorted(Counter(e.group for e in evals if e.task == task).items())) for task in tasks}},
        "distinct": {name: {"distinct_1": distinct_n(q, 1), "distinct_2": distinct_n(q, 2)}
                     for name, q in [("train", tq), *((task, [e.question for e in evals if e.task == task]) for task in tasks)]},
        "embedding_model": model,
        "dispersion": None,
        "map": None,
    }
    if vectors is not None and len(vectors[0]) + len(vectors[1]) >= 3:
        tv, ev = vectors
        card["dispersion"] = {"train": dispersion(tv),
                              **{task: dispersion(ev[[i for i, e in enumerate(evals) if e.task == task]]) for task in tasks}}
        labels = ["train"] * len(tv) + [e.task for e in evals]
        card["map"] = {"method": "PCA of sentence embeddings", "points": _map(np.concatenate([tv, ev]), labels, seed)}
    return card


def fact_of(q: Any) -> str:
    """The fact a training question asks about: its passage (a generated domain has one per fact;
    synthesised questions and paraphrases keep their source's), else the question itself."""
    return q.passage or q.id


def rows_card(train: list[Any], rows: list[tuple[str, str]]) -> dict[str, Any]:
    """The training rows, `(question id, answer)` each, over the training questions `train`: rows
    per fact (a fact whose every row was filtered out counts 0), distinct-n over the rows' answers
    and questions, and the share of rows whose answer names the gold (among rows that have one)."""
    from ..text import match

    by_id = {t.id: t for t in train}
    per_fact = Counter({fact_of(t): 0 for t in train})
    per_fact.update(fact_of(by_id[i]) for i, _ in rows)
    counts = list(per_fact.values())
    golds = [match(a, [by_id[i].answer], "contains", "whole").correct for i, a in rows if by_id[i].answer]
    answers, questions = [a for _, a in rows], [by_id[i].question for i, _ in rows]
    return {
        "n_rows": len(rows), "n_facts": len(counts),
        "rows_per_fact": {"mean": round(sum(counts) / len(counts), 4), "min": min(counts), "max": max(counts)} if counts else None,
        "distinct": {name: {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2)}
                     for name, texts in (("answers", answers), ("questions", questions))},
        # None: no row has a gold (bring-your-own questions without answers)
        "gold_named": round(sum(golds) / len(golds), 4) if golds else None, "n_with_gold": len(golds),
    }
