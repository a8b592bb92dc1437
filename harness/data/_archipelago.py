"""A made-up archipelago: the demo's "obscure domain".

Everything is drawn from one `random.Random(seed)`, so the same seed gives byte-identical documents
and questions on every machine. Each island has four facts (capital, year settled, main export,
height of its highest peak); each fact has its own paragraph-sized passage so a teacher can be
given exactly the relevant passage (retrieval by fact id).

Held out by construction: every relation has a set of *training* wordings and a disjoint set of
*evaluation* wordings, so no evaluation question text can appear in the training file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "sh", "br", "tr", "kh", "dr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "sk", "nd"]

# Single-word exports (real words, assigned at random, so they cannot be guessed from the name).
_EXPORTS = [
    "saffron", "cobalt", "kelp", "marble", "indigo", "pearls", "salt", "cedar", "tin", "wool",
    "amber", "copper", "vanilla", "sponges", "basalt", "cinnamon", "flax", "jade", "honey", "sulphur",
    "walnuts", "coral", "slate", "figs", "tobacco", "opals", "tar", "hemp", "quartz", "dates",
]

# relation -> (train wordings, eval wordings). {i} = island name.
TEMPLATES: dict[str, tuple[list[str], list[str]]] = {
    "capital": (
        ["What is the capital of {i}?", "Which town is the capital of {i}?", "Name the capital of {i}."],
        ["In which town is the seat of government of {i}?"],
    ),
    "settled": (
        ["In what year was {i} first settled?", "When was {i} first settled?", "What year did settlers first arrive on {i}?"],
        ["Which year saw the first settlement of {i}?"],
    ),
    "export": (
        ["What is the main export of {i}?", "What does {i} mainly export?", "Name the chief export of {i}."],
        ["Which product is {i} best known for exporting?"],
    ),
    "peak": (
        ["How high is the highest peak on {i}, in metres?", "What is the height in metres of the tallest mountain on {i}?",
         "How many metres tall is the highest point of {i}?"],
        ["To how many metres does the summit of {i} rise?"],
    ),
}


@dataclass(frozen=True)
class Fact:
    id: str  # "<island>.<relation>", the retrieval key
    island: str
    relation: str
    answer: str
    passage: str


@dataclass(frozen=True)
class Question:
    id: str
    fact_id: str
    text: str
    answer: str
    group: str  # the relation: a category for per-category breakdowns


def _word(rng: random.Random, syllables: int) -> str:
    w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
    return w.capitalize()


def _names(rng: random.Random, n: int, syllables: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = _word(rng, syllables)
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def generate_facts(seed: int, n_islands: int) -> list[Fact]:
    if not 1 <= n_islands <= len(_EXPORTS):
        raise ValueError(f"data.n_islands must be between 1 and {len(_EXPORTS)}, got {n_islands}")
    rng = random.Random(seed)
    taken: set[str] = set()
    islands = _names(rng, n_islands, 3, taken)
    towns = _names(rng, n_islands, 2, taken)
    exports = rng.sample(_EXPORTS, n_islands)
    facts: list[Fact] = []
    for island, town, export in zip(islands, towns, exports):
        year = rng.randint(1520, 1890)
        peak = rng.randint(310, 2980)
        facts += [
            Fact(f"{island}.capital", island, "capital", town,
                 f"{island} is an island of the Veshari Archipelago. The capital of {island} is {town}, a harbour town on its eastern shore."),
            Fact(f"{island}.settled", island, "settled", str(year),
                 f"{island} is an island of the Veshari Archipelago. {island} was first settled in {year} by fishing families from the mainland."),
            Fact(f"{island}.export", island, "export", export,
                 f"{island} is an island of the Veshari Archipelago. The main export of {island} is {export}, "
                 "shipped from its capital every spring."),
            Fact(f"{island}.peak", island, "peak", str(peak),
                 f"{island} is an island of the Veshari Archipelago. The highest peak on {island} rises {peak} metres above the sea."),
        ]
    return facts


def document(facts: list[Fact]) -> str:
    """The reference document: one section per island, one paragraph per fact."""
    lines = ["# The Veshari Archipelago", ""]
    island = None
    for f in facts:
        if f.island != island:
            island = f.island
            lines += [f"## {island}", ""]
        lines += [f.passage, ""]
    return "\n".join(lines)


def questions(facts: list[Fact], train_per_fact: int, templates: str = "all") -> tuple[list[Question], list[Question]]:
    """(train, eval) questions. Train uses the first `train_per_fact` training wordings of each
    relation (templates="first": the first wording, `train_per_fact` times); eval uses the
    evaluation wordings, which no training question ever uses."""
    if templates not in ("all", "first"):
        raise ValueError(f"data.templates must be 'all' or 'first', got '{templates}'")
    train: list[Question] = []
    heldout: list[Question] = []
    for f in facts:
        train_t, eval_t = TEMPLATES[f.relation]
        if not 1 <= train_per_fact <= len(train_t):
            raise ValueError(f"data.train_per_fact must be between 1 and {len(train_t)}, got {train_per_fact}")
        wordings = train_t[:train_per_fact] if templates == "all" else train_t[:1] * train_per_fact
        for k, t in enumerate(wordings):
            train.append(Question(f"{f.id}.t{k}", f.id, t.format(i=f.island), f.answer, f.relation))
        for k, t in enumerate(eval_t):
            heldout.append(Question(f"{f.id}.e{k}", f.id, t.format(i=f.island), f.answer, f.relation))
    return train, heldout
