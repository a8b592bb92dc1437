"""Question synthesis: planned grid, parsing, provenance; one real run with the embedded teacher."""

import json

import pytest

from harness.config import DataConfig, GenerateConfig, ModelConfig, QuestionsConfig
from harness.errors import HarnessError
from harness.generate import check_generate, parse_question, question_sources


@pytest.mark.parametrize("reply, expect", [
    ("What is the capital of Lorn?", "What is the capital of Lorn?"),
    ("What a delightful topic! I'd be happy to help. What is the capital of Lorn? The answer is Vell.", "What is the capital of Lorn?"),
    ("Question: 1. Who founded Lorn?\nAnswer: Ada", "Who founded Lorn?"),
    ('"When was Lorn first settled?"', "When was Lorn first settled?"),
])
def test_parse_question(reply, expect):
    assert parse_question(reply) == (expect, "ok")


def test_parse_question_rejects():
    assert parse_question("Lorn is a town.") == (None, "no question")
    assert parse_question("Why?") == (None, "too short")


def test_sources_are_document_paragraphs_then_topics_then_passages():
    from harness.data import build
    from harness.data._stage import TrainQuestion

    train, _, doc, _ = build(DataConfig(n_islands=2, train_per_fact=1, embedding_model=None))
    src = question_sources(train, doc, QuestionsConfig())
    assert len(src) == 8 and src[0][0] == train[0].id.split(".")[0] and src[0][1] == train[0].passage  # topic = island heading
    assert question_sources(train, "", QuestionsConfig(topics=["tides", "ferries"])) == [("tides", ""), ("ferries", "")]
    t = [TrainQuestion("a", "q?", "P1", "", "g1"), TrainQuestion("b", "q2?", "P1", "", "g1"), TrainQuestion("c", "q3?", "P2", "", "g2")]
    assert question_sources(t, "", QuestionsConfig()) == [("g1", "P1"), ("g2", "P2")]


def test_bad_synthesis_settings():
    with pytest.raises(HarnessError, match="generate.questions.prompt: unknown placeholder 'island'"):
        check_generate(GenerateConfig(questions=QuestionsConfig(enabled=True, prompt="About {island}?")))
    with pytest.raises(HarnessError, match="generate.questions: types"):
        check_generate(GenerateConfig(questions=QuestionsConfig(enabled=True, types=[])))


@pytest.mark.slow
def test_real_teacher_writes_questions_with_provenance(tmp_path):
    from harness.data import build, run_data
    from harness.generate import run_questions
    from harness.models import resolve_args

    dc = DataConfig(n_islands=1, train_per_fact=1, n_control=0, embedding_model=None)
    train, _, doc, _ = build(dc)
    teacher = ModelConfig("hf/smollm2-135m-instruct", {"model_path": "embedded:smollm2-135m-instruct", "do_sample": False, "device": "cpu"},
                          context=True)
    g = GenerateConfig(questions=QuestionsConfig(enabled=True, types=["factual"], difficulties=["easy", "hard"]))
    from harness.cache import user_cache_dir

    args = resolve_args("teacher", teacher.args, user_cache_dir())  # the suite's converted model
    out = run_questions(train, doc, teacher, args, g, tmp_path / "cache", tmp_path / "run")
    assert out.calls == 4 * 2 and out.stats["prompts"] == 8 and out.stats["sources"] == 4
    assert out.stats["accepted"] + sum(out.stats["rejected"].values()) == 8
    assert out.stats["accepted"] >= 6  # measured: 8 of 8 with the default prompt
    rows = [json.loads(x) for x in (tmp_path / "run" / "questions_provenance.jsonl").read_text().splitlines()]
    for r in rows:
        assert {"topic", "passage", "type", "difficulty", "prompt_sha256", "teacher_model", "reply", "status"} <= set(r)
        assert r["passage"] in doc and r["topic"] == train[0].id.split(".")[0]
    assert len({r["prompt_sha256"] for r in rows}) == 8  # every cell of the grid is its own prompt
    for q in out.questions:
        assert q.question.endswith("?") and q.group in {"factual/easy", "factual/hard"} and q.passage
    # cached: the same grid is not asked again
    again = run_questions(train, doc, teacher, args, g, tmp_path / "cache", tmp_path / "run2")
    assert again.calls == 0 and again.questions == out.questions
    # into the data stage: added to the source's questions, deduplicated and leak-checked with them
    data = run_data(dc, tmp_path / "data", out.questions)
    assert len(data.train) + len(data.removed) == 4 + len(out.questions)
    assert data.leak.rate == 0.0
    only = run_data(dc, tmp_path / "data2", out.questions, replace=True)
    assert {t.id for t in only.train} <= {q.id for q in out.questions}
