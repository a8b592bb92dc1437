from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ..cache import digest, read_jsonl, write_jsonl, write_text
from ..config import DataConfig
from ..errors import HarnessError
from . import _archipelago
from ._byo import FORMATS, load_rows
from ._control import CONTROL

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
    group: str


@dataclass(frozen=True)
class DataOutput:
    dir: Path
    train: list[TrainQuestion]
    eval: list[EvalItem]
    key: str

    @property
    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.eval})


SOURCES = ("archipelago", *FORMATS)


def _build(cfg: DataConfig) -> tuple[list[TrainQuestion], list[EvalItem], str]:
    """(training questions, held-out evaluation items, domain document) from the configured source."""
    if cfg.name == "archipelago":
        try:
            facts = _archipelago.generate_facts(cfg.seed, cfg.n_islands)
            train_q, eval_q = _archipelago.questions(facts, cfg.train_per_fact)
        except ValueError as e:
            raise HarnessError(str(e)) from None
        passages = {f.id: f.passage for f in facts}
        train = [TrainQuestion(q.id, q.text, passages[q.fact_id], q.answer, q.group) for q in train_q]
        evals = [EvalItem(q.id, "heldout", q.text, q.answer, passages[q.fact_id], q.group) for q in eval_q]
        return train, evals, _archipelago.document(facts)
    if cfg.name not in FORMATS:
        raise HarnessError(f"data.name: unknown dataset '{cfg.name}'; available: {', '.join(SOURCES)}")
    for key in ("train_path", "eval_path"):
        if not getattr(cfg, key):
            raise HarnessError(f"data.{key} is not set; data={cfg.name} reads your questions from files "
                               f"(data.train_path=<file> data.eval_path=<file>)")
    rows = load_rows(cfg.train_path, cfg.name, cfg.columns, "data.train_path", answers_required=False)
    train = [TrainQuestion(r.id, r.question, r.passage, r.answer, r.group) for r in rows]
    rows = load_rows(cfg.eval_path, cfg.name, cfg.columns, "data.eval_path", answers_required=True)
    evals = [EvalItem(r.id, "heldout", r.question, r.answer, r.passage, r.group) for r in rows]
    doc = ""
    if cfg.document:
        try:
            doc = Path(cfg.document).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise HarnessError(f"data.document: cannot read {cfg.document} ({e.__class__.__name__}); point it at a UTF-8 text file") from None
    return train, evals, doc


def build(cfg: DataConfig) -> tuple[list[TrainQuestion], list[EvalItem], str]:
    """Everything `run_data` writes, computed and validated without writing (`validate` calls it
    so that bad data fails before a run dir exists)."""
    train, evals, doc = _build(cfg)
    if cfg.n_train is not None:
        if cfg.n_train < 1:
            raise HarnessError(f"data.n_train must be >= 1 (or null for all), got {cfg.n_train}")
        # a seeded random subset (kept in file order), so a smaller n_train still covers the domain
        keep = set(random.Random(cfg.seed).sample(range(len(train)), min(cfg.n_train, len(train))))
        train = [t for k, t in enumerate(train) if k in keep]
    if not 0 <= cfg.n_control <= len(CONTROL):
        raise HarnessError(f"data.n_control must be between 0 and {len(CONTROL)}, got {cfg.n_control}")
    evals += [
        EvalItem(f"control.{k}", "control", q, a, "", "control")
        for k, (q, a) in enumerate(CONTROL[: cfg.n_control])
    ]
    check_heldout(train, evals)
    return train, evals, doc


def run_data(cfg: DataConfig, out_dir: Path) -> DataOutput:
    """Build the data and write domain.md, questions.jsonl and eval.jsonl into `out_dir`."""
    train, evals, doc = build(cfg)
    write_text(out_dir / "domain.md", doc)
    write_jsonl(out_dir / "questions.jsonl", [asdict(t) for t in train])
    write_jsonl(out_dir / "eval.jsonl", [asdict(e) for e in evals])
    key = digest({"v": VERSION, "train": [asdict(t) for t in train], "eval": [asdict(e) for e in evals]})
    return DataOutput(out_dir, train, evals, key)


def check_heldout(train: list[TrainQuestion], evals: list[EvalItem]) -> None:
    """Held out by construction -- and checked: no evaluation question text is a training question."""
    seen = {t.question.strip().lower() for t in train}
    leaked = [e.id for e in evals if e.question.strip().lower() in seen]
    if leaked:
        raise HarnessError(f"evaluation questions also appear in training: {', '.join(leaked[:5])}")


def load_eval(path: Path) -> list[EvalItem]:
    return [EvalItem(**r) for r in read_jsonl(path)]
