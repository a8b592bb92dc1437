"""The generated domain: deterministic, held out by construction, sized as configured."""

import hashlib

import pytest

from harness.config import DataConfig
from harness.data import run_data
from harness.data._archipelago import TEMPLATES, document, generate_facts
from harness.data._leak import check_leak, enforce
from harness.data._stage import EvalItem, TrainQuestion
from harness.errors import HarnessError


def _bytes(d):
    return b"".join((d / f).read_bytes() for f in ("domain.md", "questions.jsonl", "eval.jsonl"))


def test_same_seed_same_bytes(tmp_path):
    a = run_data(DataConfig(seed=7), tmp_path / "a")
    b = run_data(DataConfig(seed=7), tmp_path / "b")
    c = run_data(DataConfig(seed=8), tmp_path / "c")
    assert _bytes(a.dir) == _bytes(b.dir) and a.key == b.key
    assert _bytes(a.dir) != _bytes(c.dir) and a.key != c.key
    # pinned: a change to the generator must be deliberate (it changes every cached result)
    assert hashlib.sha256(document(generate_facts(0, 3)).encode()).hexdigest()[:12] == PINNED


PINNED = "3c4442e5edf2"


def test_sizes_and_disjoint_wordings(tmp_path):
    out = run_data(DataConfig(n_islands=20, train_per_fact=2, n_control=20), tmp_path)
    heldout = [e for e in out.eval if e.task == "heldout"]
    assert len(out.train) == 160 and len(heldout) == 80
    assert len([e for e in out.eval if e.task == "control"]) == 20
    train_texts = {t.question for t in out.train}
    assert not train_texts & {e.question for e in out.eval}
    # every held-out fact was trained on, with a different wording
    assert {e.id.rsplit(".", 1)[0] for e in heldout} == {t.id.rsplit(".", 1)[0] for t in out.train}
    # and the training file never contains an evaluation question text
    blob = (tmp_path / "questions.jsonl").read_text()
    assert not any(e.question in blob for e in out.eval)


def test_templates_are_disjoint():
    for rel, (train_t, eval_t) in TEMPLATES.items():
        assert not set(train_t) & set(eval_t), rel


def test_facts_are_unique_and_answerable_from_their_passage():
    facts = generate_facts(3, 20)
    assert len({f.island for f in facts}) == 20
    assert len({f.answer for f in facts if f.relation == "capital"}) == 20
    for f in facts:
        assert f.answer in f.passage and f.island in f.passage


def test_n_train_is_a_seeded_subset(tmp_path):
    full = run_data(DataConfig(n_islands=5), tmp_path / "a").train
    sub = run_data(DataConfig(n_islands=5, n_train=10), tmp_path / "b").train
    again = run_data(DataConfig(n_islands=5, n_train=10), tmp_path / "c").train
    assert len(sub) == 10 and sub == again and set(sub) <= set(full)
    assert len({t.id.split(".")[0] for t in sub}) > 2  # spread over the domain, not the first islands


def test_leak_is_refused():
    t = [TrainQuestion("t", "What is X?", "", "a", "g")]
    e = [EvalItem("e", "heldout", "what is x? ", "a", "", "g")]
    result = check_leak(t, e, DataConfig())
    assert result.flagged["exact"] == ["e"] and result.rate == 1.0
    with pytest.raises(HarnessError, match=r"1 of 1 evaluation items \(100.0%\) match a training item \(exact 1"):
        enforce(result, DataConfig(), "data", "leak.json")
    enforce(result, DataConfig(allow_leak=True), "data", "leak.json")  # allowed: no error


# each bad setting has its own error, naming the key and the value: a bare HarnessError would pass on any of them
@pytest.mark.parametrize("bad, expect", [
    ({"n_islands": 0}, r"^data.n_islands must be between 1 and 30, got 0$"),
    ({"n_islands": 99}, r"^data.n_islands must be between 1 and 30, got 99$"),
    ({"train_per_fact": 9}, r"^data.train_per_fact must be between 1 and 3, got 9$"),
    ({"n_control": 999}, r"^data.n_control must be between 0 and 24, got 999$"),
    ({"n_train": 0}, r"^data.n_train must be >= 1 \(or null for all\), got 0$"),
    ({"name": "atlantis"}, r"^data.name: unknown dataset 'atlantis'; available: archipelago, jsonl, csv$")])
def test_bad_data_config(tmp_path, bad, expect):
    with pytest.raises(HarnessError, match=expect):
        run_data(DataConfig(**bad), tmp_path)
    assert not (tmp_path / "eval.jsonl").exists()


def test_secrets_are_redacted_from_written_config():
    from harness.errors import redact

    cfg = {"models": {"t": {"args": {"api_key": "sk-123", "base_url": "http://x", "nested": [{"auth_token": "t"}]}}}}
    out = redact(cfg)
    assert "sk-123" not in str(out) and "'t'" not in str(out["models"]["t"]["args"]["nested"])
    assert out["models"]["t"]["args"]["base_url"] == "http://x"
