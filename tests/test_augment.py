"""More, and more diverse, training rows per fact: N sampled teacher answers per question
(generate.samples_per_question), K teacher-written wordings per question (generate.paraphrases),
and the data card's figures over the training rows."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import DataConfig, GenerateConfig, ModelConfig
from harness.data import TrainQuestion
from harness.errors import HarnessError
from harness.generate import check_generate, generate_key

from .test_cli import cli, one_line

TEACHER = ModelConfig("hf/smollm2-135m-instruct", {"model_path": "embedded:smollm2-135m-instruct", "do_sample": False, "device": "cpu"},
                      context=True)
SYSTEM = "Answer the question in one sentence."


@pytest.mark.parametrize("bad, key", [
    ({"samples_per_question": 0}, "generate.samples_per_question"),
    ({"samples_per_question": 3, "sample_temperature": 0.0}, "generate.sample_temperature"),
    ({"paraphrases": -1}, "generate.paraphrases"),
    ({"paraphrases": 2, "paraphrase_temperature": 0.0}, "generate.paraphrase_temperature"),
    ({"paraphrase_prompt": "Reword: {question} ({island})"}, "generate.paraphrase_prompt: unknown placeholder 'island'"),
])
def test_bad_settings(bad, key):
    with pytest.raises(HarnessError, match=key):
        check_generate(GenerateConfig(**bad))


@pytest.mark.parametrize("override, key", [("generate.samples_per_question=0", "generate.samples_per_question"),
                                           ("generate.paraphrase_prompt='{island}?'", "generate.paraphrase_prompt")])
def test_cli_refuses_before_any_stage(tmp_path, override, key):
    p = cli("run", "experiment=tiny", override, f"results_dir={tmp_path}", f"cache_dir={tmp_path / 'cache'}")
    assert key in one_line(p, 2, "harness:")
    assert not (tmp_path / "cache").exists()


def test_cache_key_changes_with_n_only():
    g = GenerateConfig(prompt="{passage}\n\nQuestion: {question}")
    key = generate_key(TEACHER, g, "{question}", SYSTEM, "d0")
    assert key == "0ff1cde711d27bcd"  # the key main computed before these options existed: cached entries stay valid
    assert generate_key(TEACHER, replace(g, samples_per_question=3), "{question}", SYSTEM, "d0") != key
    # paraphrase settings reach the answers' key only through the questions (data_key), not directly
    assert generate_key(TEACHER, replace(g, paraphrases=2, paraphrase_temperature=0.5), "{question}", SYSTEM, "d0") == key


@pytest.mark.parametrize("reply, status", [
    ("What year was Lorn first settled by fishing families?", "ok"),
    ('Sure! "When did people first settle on Lorn?" is another way.', "ok"),
    ("Can you provide the answer to the first question?", "off topic"),  # written by the 135M teacher: drops the island
    ("In what year was LORN first settled?", "duplicate"),
    ("Lorn was settled in 1620.", "no question"),
])
def test_paraphrase_status(reply, status):
    from harness.generate._paraphrase import _status

    src = "In what year was Lorn first settled?"
    assert _status(reply, src, {"in what year was lorn first settled"})[1] == status


def test_paraphrase_key_changes_with_k_and_prompt():
    from harness.data import build
    from harness.generate._paraphrase import paraphrase_key

    train = build(DataConfig(n_islands=1, train_per_fact=1, n_control=0, embedding_model=None))[0]
    g = GenerateConfig(paraphrases=2)
    key = paraphrase_key(train, TEACHER, g)
    assert paraphrase_key(train, TEACHER, replace(g, paraphrases=3)) != key
    assert paraphrase_key(train, TEACHER, replace(g, paraphrase_prompt=g.paraphrase_prompt + " ")) != key
    assert paraphrase_key(train[:3], TEACHER, g) != key
    assert paraphrase_key(train, TEACHER, replace(g, samples_per_question=4)) == key  # the answers' settings do not count


def test_rows_card_on_a_constructed_set():
    from harness.data._card import rows_card

    train = [TrainQuestion("a", "What is the capital of Lorn?", "P1", "Vell", "capital"),
             TrainQuestion("a~p1", "Which town is the capital of Lorn?", "P1", "Vell", "capital"),
             TrainQuestion("b", "When was Lorn settled?", "P2", "1620", "settled"),
             TrainQuestion("c", "How high is Mount Ash?", "P3", "", "peak")]  # no gold: left out of the gold share
    rows = [("a", "The capital is Vell."), ("a", "It is Vell."), ("a~p1", "Lorn has no capital."), ("b", "In 1620."),
            ("c", "Very high.")]
    card = rows_card(train, rows)
    assert card["n_rows"] == 5 and card["n_facts"] == 3
    assert card["rows_per_fact"] == {"mean": round(5 / 3, 4), "min": 1, "max": 3}
    assert card["gold_named"] == 0.75 and card["n_with_gold"] == 4  # 3 of the 4 rows with a gold name it
    # distinct-1 over the answers: 14 words (the graders' normaliser drops "the"), 11 distinct ("capital", "is", "vell" repeat)
    assert card["distinct"]["answers"]["distinct_1"] == round(11 / 14, 4)
    # the questions of the rows: "what is the capital of lorn" twice
    assert card["distinct"]["questions"]["distinct_2"] < 1.0
    # summary.json's schema, and the report's data card
    import jsonschema

    from harness.report._datacard import data_markdown

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "summary.schema.json").read_text())
    jsonschema.validate(card, schema["properties"]["data"]["properties"]["card"]["properties"]["rows"])
    md = "\n".join(data_markdown({"data": {"card": {"groups": {"train": {"capital": 2}}, "distinct": {}, "rows": card}}}))
    assert "Training rows: 5 over 3 facts, rows per fact 1.67 (min 1, max 3); answers naming the gold: 75.0% of the 4" in md
    assert "| answers | 0.786 |" in md
    lost = rows_card(train + [TrainQuestion("d", "Who founded Lorn?", "P4", "Ada", "founder")], rows)
    assert lost["rows_per_fact"]["min"] == 0  # a fact whose every row was filtered out counts


def test_paraphrase_matching_an_eval_question_is_dropped(tmp_path):
    from harness.data import build, run_data

    dc = DataConfig(n_islands=1, train_per_fact=1, n_control=0, embedding_model=None)
    train, evals, _, _ = build(dc)
    src = train[0]
    same_fact = next(e for e in evals if e.passage == src.passage)
    aug = [TrainQuestion(f"{src.id}~p1", same_fact.question, src.passage, src.answer, src.group),  # = an eval wording
           TrainQuestion(f"{src.id}~p2", src.question.upper(), src.passage, src.answer, src.group),  # = its source
           TrainQuestion(f"{src.id}~p3", "Which harbour town serves as the seat of government there?", src.passage,
                         src.answer, src.group)]
    data = run_data(dc, tmp_path / "data", augment=aug)  # not stopped by the leak check: the leaking wording is dropped
    ids = [t.id for t in data.train]
    assert f"{src.id}~p1" not in ids and f"{src.id}~p2" not in ids and f"{src.id}~p3" in ids
    assert [d["id"] for d in data.leaked] == [f"{src.id}~p1"] and "exact" in data.leaked[0]["checks"]
    assert any(d.removed == f"{src.id}~p2" for d in data.removed)
    assert data.leak.rate == 0.0
    kept = next(t for t in data.train if t.id == f"{src.id}~p3")
    assert (kept.passage, kept.answer, kept.group) == (src.passage, src.answer, src.group)
    assert [json.loads(x)["id"] for x in (tmp_path / "data" / "paraphrases_leaked.jsonl").read_text().splitlines()] == [f"{src.id}~p1"]


def _teacher_args():
    from harness.cache import user_cache_dir
    from harness.models import resolve_args

    return resolve_args("teacher", TEACHER.args, user_cache_dir())  # the suite's converted model


@pytest.mark.slow
def test_real_teacher_samples_n_answers_per_question(tmp_path):
    """2 questions x 3 sampled answers from the embedded teacher: 6 answers, exact repeats dropped."""
    from harness.data import run_data
    from harness.generate import GenerateInput, run_generate

    data = run_data(DataConfig(n_islands=1, train_per_fact=1, n_control=0, embedding_model=None), tmp_path / "data")
    train = data.train[:2]
    cfg = GenerateConfig(prompt="{passage}\n\nQuestion: {question}", max_tokens=12, samples_per_question=3, sample_temperature=1.0)
    inp = GenerateInput(train, TEACHER, _teacher_args(), cfg, "{question}", SYSTEM, data.key, tmp_path / "cache", tmp_path / "run")
    out = run_generate(inp)
    assert out.calls == 6 and set(out.filters) == {"dedup"}
    rows = [json.loads(x) for x in out.train_file.read_text().splitlines()]
    prov = [json.loads(x) for x in out.provenance_file.read_text().splitlines()]
    dropped = [json.loads(x) for x in (tmp_path / "run" / "filtered.jsonl").read_text().splitlines()]
    assert len(rows) == len(prov) == out.n_rows == 6 - out.filters["dedup"] and len(dropped) == out.filters["dedup"]
    by_id = {q.id: q for q in train}
    seen = set()
    for r, p in zip(rows, prov):  # aligned row for row: the kd objective rebuilds each row's prompt from its provenance
        assert r["messages"][-2]["content"] == by_id[p["id"]].question and p["sampling"]["temperature"] == 1.0
        assert (p["id"], r["messages"][-1]["content"]) not in seen  # no answer repeated for one question
        seen.add((p["id"], r["messages"][-1]["content"]))
    assert sorted((p["id"], p["sample"]) for p in prov + dropped) == sorted((q.id, k) for q in train for k in range(3))
    assert len({a for _, a in seen}) > 2  # really sampled: more distinct answers than questions
    assert run_generate(replace(inp, out_dir=tmp_path / "again")).calls == 0  # cached


@pytest.mark.slow
def test_real_teacher_writes_paraphrases(tmp_path):
    """2 wordings of each of 2 demo questions from the embedded teacher, with the default prompt."""
    from harness.data import build
    from harness.generate import run_paraphrases

    train = build(DataConfig(n_islands=1, train_per_fact=1, n_control=0, embedding_model=None))[0][1:3]
    g = GenerateConfig(paraphrases=2, paraphrase_max_tokens=24)
    out = run_paraphrases(train, TEACHER, _teacher_args(), g, tmp_path / "cache", tmp_path / "run")
    assert out.calls == 4 and out.stats["prompts"] == 4
    assert out.stats["accepted"] + sum(out.stats["rejected"].values()) == 4
    assert out.stats["accepted"] >= 1  # measured: 4 of 8 new wordings over 4 questions (the rest repeat the source)
    by_id = {q.id: q for q in train}
    for q in out.questions:
        src = by_id[q.id.rsplit("~p", 1)[0]]
        assert q.id[-3:] in ("~p1", "~p2") and q.question.endswith("?") and q.question.lower() != src.question.lower()
        assert (q.passage, q.answer, q.group) == (src.passage, src.answer, src.group)
    rows = [json.loads(x) for x in (tmp_path / "run" / "paraphrases_provenance.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all({"source", "reply", "status", "prompt_sha256"} <= set(r) for r in rows)
    again = run_paraphrases(train, TEACHER, _teacher_args(), g, tmp_path / "cache", tmp_path / "run2")
    assert again.calls == 0 and again.questions == out.questions and again.key == out.key
