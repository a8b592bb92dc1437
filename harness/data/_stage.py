from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..cache import digest, read_jsonl, write_json, write_jsonl, write_text
from ..config import DataConfig
from ..errors import HarnessError
from . import _archipelago
from ._byo import FORMATS, load_rows, unused_fields
from ._card import data_card, rows_card
from ._control import CONTROL
from ._embed import model_dir
from ._leak import LeakResult, check_leak, enforce, leaking
from ._overlap import Duplicate, near_duplicates

VERSION = 1


@dataclass(frozen=True)
class TrainQuestion:
    id: str
    question: str
    passage: str  # what retrieval gives the teacher (by fact id for generated domains)
    answer: str  # gold, kept for filtering and reporting; never shown to the student
    group: str


@dataclass(frozen=True)
class EvalItem:
    id: str
    task: str  # "heldout" | "control"
    question: str
    answer: str
    passage: str  # "" for control items
    group: str  # category, for per-category breakdowns
    # items that share a source (paraphrases of one fact) share a cluster: paired tests then use
    # cluster-robust standard errors. "" = the item is its own cluster.
    cluster: str = ""
    # a multiple-choice item's choices in file order; `answer` is then the gold's letter (A = first)
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataOutput:
    dir: Path
    train: list[TrainQuestion]
    eval: list[EvalItem]
    key: str
    removed: list[Duplicate] = field(default_factory=list)  # duplicate training questions dropped
    leak: Optional[LeakResult] = None  # the question-level leak check (re-run with answers later)
    card: dict[str, Any] = field(default_factory=dict)
    vectors: Any = None  # (train, eval) question embeddings, when data.embedding_model is set
    # hash of the training questions only: what the teacher's answers depend on, so changing the
    # evaluation set (e.g. data.n_control) re-uses the cached teacher answers and student
    train_key: str = ""
    # machine-written wordings (generate.paraphrases) dropped because one alone matched an
    # evaluation item: {id, question, checks}, also in paraphrases_leaked.jsonl
    leaked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.eval})


SOURCES = ("archipelago", *FORMATS)


def _build(cfg: DataConfig, training: bool = True) -> tuple[list[TrainQuestion], list[EvalItem], str]:
    """(training questions, held-out evaluation items, domain document) from the configured source.
    `training=False` (an evaluation-only experiment): no training file is needed."""
    if cfg.name == "archipelago":
        try:
            facts = _archipelago.generate_facts(cfg.seed, cfg.n_islands)
            train_q, eval_q = _archipelago.questions(facts, cfg.train_per_fact, cfg.templates)
        except ValueError as e:
            raise HarnessError(str(e)) from None
        passages = {f.id: f.passage for f in facts}
        train = [TrainQuestion(q.id, q.text, passages[q.fact_id], q.answer, q.group) for q in train_q]
        evals = [EvalItem(q.id, "heldout", q.text, q.answer, passages[q.fact_id], q.group, q.fact_id) for q in eval_q]
        return train, evals, _archipelago.document(facts)
    if cfg.name not in FORMATS:
        raise HarnessError(f"data.name: unknown dataset '{cfg.name}'; available: {', '.join(SOURCES)}")
    for key in ("train_path", "eval_path") if training else ("eval_path",):
        if not getattr(cfg, key):
            raise HarnessError(f"data.{key} is not set; data={cfg.name} reads your questions from files "
                               f"(data.train_path=<file> data.eval_path=<file>; an evaluation-only experiment needs eval_path only)")
    train = []
    if cfg.train_path:  # an evaluation-only experiment reads it only to check it (and never trains on it)
        rows = load_rows(cfg.train_path, cfg.name, cfg.columns, "data.train_path", answers_required=False,
                         max_chars=cfg.max_chars)
        train = [TrainQuestion(r.id, r.question, r.passage, r.answer, r.group) for r in rows]
    rows = load_rows(cfg.eval_path, cfg.name, cfg.columns, "data.eval_path", answers_required=True, max_chars=cfg.max_chars)
    evals = [EvalItem(r.id, "heldout", r.question, r.answer, r.passage, r.group, choices=r.choices) for r in rows]
    doc = ""
    if cfg.document:
        try:
            doc = Path(cfg.document).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise HarnessError(f"data.document: cannot read {cfg.document} ({e.__class__.__name__}); point it at a UTF-8 text file") from None
    return train, evals, doc


def _check_knobs(cfg: DataConfig) -> None:
    for key in ("dedup_minhash", "leak_threshold", "leak_ngram_overlap", "leak_minhash", "leak_embedding"):
        v = getattr(cfg, key)
        if v is not None and not 0 <= v <= 1:
            raise HarnessError(f"data.{key} must be between 0 and 1, got {v}")
    if cfg.max_chars is not None and cfg.max_chars < 1:
        raise HarnessError(f"data.max_chars must be >= 1 character (or null for no limit), got {cfg.max_chars}")
    if cfg.leak_ngram < 1:
        raise HarnessError(f"data.leak_ngram must be >= 1 word, got {cfg.leak_ngram}")
    if cfg.embedding_model:
        model_dir(cfg.embedding_model)  # installed? (cheap: no model is loaded)


def build(cfg: DataConfig, extra: Optional[list[TrainQuestion]] = None, replace: bool = False, training: bool = True,
          augment: Optional[list[TrainQuestion]] = None) -> tuple[list[TrainQuestion], list[EvalItem], str, list[Duplicate]]:
    """Everything `run_data` writes, computed and validated without writing or loading a model
    (`validate` calls it so that bad data fails before a run dir exists). `extra`: synthesised
    training questions, added to the source's (or replacing them), deduplicated with them.
    `augment`: more wordings of the training questions (generate.paraphrases), added after the
    n_train cap (they multiply the chosen questions, they do not compete with them) and
    deduplicated against them and each other. `training=False`: an evaluation-only experiment."""
    _check_knobs(cfg)
    train, evals, doc = _build(cfg, training)
    if not training:
        train = []
    if extra is not None:
        train = list(extra) if replace else train + list(extra)
    removed = near_duplicates([t.id for t in train], [t.question for t in train], cfg.dedup_minhash) if cfg.dedup else []
    gone = {d.removed for d in removed}
    train = [t for t in train if t.id not in gone]
    if cfg.n_train is not None:
        if cfg.n_train < 1:
            raise HarnessError(f"data.n_train must be >= 1 (or null for all), got {cfg.n_train}")
        # a seeded random subset (kept in file order), so a smaller n_train still covers the domain
        keep = set(random.Random(cfg.seed).sample(range(len(train)), min(cfg.n_train, len(train))))
        train = [t for k, t in enumerate(train) if k in keep]
    if augment:
        train, removed = _augment(cfg, train, augment, removed)
    if not 0 <= cfg.n_control <= len(CONTROL):
        raise HarnessError(f"data.n_control must be between 0 and {len(CONTROL)}, got {cfg.n_control}")
    evals += [
        EvalItem(f"control.{k}", "control", q, a, "", "control")
        for k, (q, a) in enumerate(CONTROL[: cfg.n_control])
    ]
    return train, evals, doc, removed


def _augment(cfg: DataConfig, train: list[TrainQuestion], augment: list[TrainQuestion], removed: list[Duplicate],
             ) -> tuple[list[TrainQuestion], list[Duplicate]]:
    """`train` + the wordings in `augment`, less those repeating a question (first occurrence kept:
    the training questions come first, so only wordings are ever removed)."""
    every = train + list(augment)
    more = near_duplicates([t.id for t in every], [t.question for t in every], cfg.dedup_minhash) if cfg.dedup else []
    gone = {d.removed for d in more}
    return [t for t in every if t.id not in gone], removed + more


def _drop_leaking(cfg: DataConfig, train: list[TrainQuestion], evals: list[EvalItem], augment: list[TrainQuestion],
                  vectors: Any) -> tuple[list[TrainQuestion], Any, list[dict[str, Any]]]:
    """Machine-written wordings that alone match an evaluation item are dropped (with the leak
    check's own tests and thresholds), not fatal: a paraphrase of a training question may well
    *be* an evaluation wording of the same fact. The whole set is then checked as always."""
    ids = {a.id for a in augment}
    idx = [k for k, t in enumerate(train) if t.id in ids]
    sub = (vectors[0][idx], vectors[1]) if vectors is not None else None
    hits = leaking([train[k] for k in idx], evals, cfg, sub)
    keep = [k for k, t in enumerate(train) if t.id not in hits]
    dropped = [{"id": t.id, "question": t.question, "checks": hits[t.id]} for t in train if t.id in hits]
    return [train[k] for k in keep], ((vectors[0][keep], vectors[1]) if vectors is not None else None), dropped


def run_data(cfg: DataConfig, out_dir: Path, extra: Optional[list[TrainQuestion]] = None, replace: bool = False,
             cache_dir: Optional[Path] = None, use_cache: bool = True, training: bool = True,
             augment: Optional[list[TrainQuestion]] = None) -> DataOutput:
    """Build the data, write domain.md, questions.jsonl, eval.jsonl, duplicates.jsonl and leak.json
    into `out_dir`, and stop (after writing them) if the questions already leak. `cache_dir`: where
    the question embeddings are cached (by content hash; None = always computed). `augment`: see
    `build`; those matching an evaluation item are dropped first (paraphrases_leaked.jsonl)."""
    train, evals, doc, removed = build(cfg, extra, replace, training, augment)
    if not train and training:
        raise HarnessError("data: no training questions (generate.questions.replace=true and none was synthesised)")
    vectors = None
    if cfg.embedding_model:
        from ._embed import embed

        v = embed([t.question for t in train] + [e.question for e in evals], cfg.embedding_model,
                  cache_dir=cache_dir, use_cache=use_cache)
        vectors = (v[: len(train)], v[len(train):])
    leaked: list[dict[str, Any]] = []
    if augment:
        train, vectors, leaked = _drop_leaking(cfg, train, evals, augment, vectors)
        write_jsonl(out_dir / "paraphrases_leaked.jsonl", leaked)
    leak = check_leak(train, evals, cfg, vectors=vectors)
    write_text(out_dir / "domain.md", doc)
    write_jsonl(out_dir / "questions.jsonl", [asdict(t) for t in train])
    write_jsonl(out_dir / "eval.jsonl", [asdict(e) for e in evals])
    write_jsonl(out_dir / "duplicates.jsonl", [asdict(d) for d in removed])
    write_json(out_dir / "leak.json", leak.summary(cfg.allow_leak))
    enforce(leak, cfg, "data", str(out_dir / "leak.json"))
    train_key = digest({"v": VERSION, "train": [asdict(t) for t in train]})
    key = digest({"train": train_key, "eval": [asdict(e) for e in evals]})
    card = data_card(train, evals, vectors, cfg.embedding_model, cfg.seed)
    return DataOutput(out_dir, train, evals, key, removed, leak, card, vectors, train_key, leaked)


def check_answers(data: DataOutput, cfg: DataConfig, train_file: Path, provenance_file: Path) -> LeakResult:
    """The leak check again, now with the teacher's answers (run before fine-tuning): rewrites
    leak.json and stops the run if the answers leak evaluation questions."""
    rows, prov = read_jsonl(train_file), read_jsonl(provenance_file)
    answers = [(p["id"], r["messages"][-1]["content"]) for r, p in zip(rows, prov)]
    kept = {i for i, _ in answers}
    leak = check_leak([t for t in data.train if t.id in kept], data.eval, cfg, answers, _kept_vectors(data, kept))
    write_json(data.dir / "leak.json", leak.summary(cfg.allow_leak))
    enforce(leak, cfg, "leak check before fine-tuning", str(data.dir / "leak.json"))
    return leak


def _kept_vectors(data: DataOutput, kept: set[str]) -> Any:
    if data.vectors is None:
        return None
    return data.vectors[0][[k for k, t in enumerate(data.train) if t.id in kept]], data.vectors[1]


def data_summary(data: DataOutput, leak: LeakResult, cfg: DataConfig, train_file: Optional[Path] = None,
                 provenance_file: Optional[Path] = None) -> dict[str, Any]:
    """The data stage's part of summary.json["data"] (documented in docs/summary.md); with the
    generate stage's files, the data card describes the training rows too (`card.rows`)."""
    card = data.card
    if train_file is not None and provenance_file is not None:
        rows = [(p["id"], r["messages"][-1]["content"]) for r, p in zip(read_jsonl(train_file), read_jsonl(provenance_file))]
        card = {**card, "rows": rows_card(data.train, rows)}
    return {
        "n_removed_duplicates": len(data.removed),
        "removed_duplicates": [asdict(d) for d in data.removed[:20]],
        "leak_overlap_rate": round(leak.rate, 6),
        "leak": leak.summary(cfg.allow_leak),
        "card": card,
        "multiple_choice": multiple_choice(data.eval),
    }


def load_eval(path: Path) -> list[EvalItem]:
    return [EvalItem(**{**r, "choices": tuple(r.get("choices") or ())}) for r in read_jsonl(path)]


def data_notes(cfg: DataConfig, training: bool = True) -> list[str]:
    """One line per bring-your-own file with fields the harness does not read (said before any
    stage, never dropped in silence). Call after `build` accepted the files."""
    if cfg.name not in FORMATS:
        return []
    out = []
    for key, path, evaluation in (("data.train_path", cfg.train_path, False), ("data.eval_path", cfg.eval_path, True)):
        if not path or (key == "data.train_path" and not training and not cfg.train_path):
            continue
        extra = unused_fields(path, cfg.name, cfg.columns, evaluation)
        if extra:
            why = " (training rows are open questions; multiple choice is read from the evaluation file)" \
                if not evaluation and cfg.columns.choices in extra else ""
            out.append(f"{key}: {path}: field{'s' if len(extra) > 1 else ''} {', '.join(repr(x) for x in extra)} "
                       f"not used by the harness{why}; to use one, name it with data.columns.<field>=<name> "
                       "(question, answer, id, group, passage, choices)")
    return out


def multiple_choice(evals: list[EvalItem]) -> dict[str, dict[str, Any]]:
    """Per task with multiple-choice items: how many, their numbers of choices, the chance level
    (the mean of 1/k: what answering at random scores) and the share of golds per letter."""
    out: dict[str, dict[str, Any]] = {}
    for task in sorted({e.task for e in evals if e.choices}):
        mc = [e for e in evals if e.task == task and e.choices]
        golds: dict[str, int] = {}
        for e in mc:
            golds[e.answer] = golds.get(e.answer, 0) + 1
        out[task] = {"n": len(mc), "n_items": sum(1 for e in evals if e.task == task),
                     "k": sorted({len(e.choices) for e in mc}), "chance": round(sum(1 / len(e.choices) for e in mc) / len(mc), 6),
                     "gold_letters": dict(sorted(golds.items()))}
    return out
