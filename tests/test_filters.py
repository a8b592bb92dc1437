"""Teacher answer filters: each removes what it says and is counted; one real run with the embedded teacher."""

import json

import pytest

from harness.config import DataConfig, GenerateConfig, ModelConfig
from harness.errors import HarnessError
from harness.generate import agreement, check_generate, failed_filter, filter_counts


def test_each_filter_removes_its_rows():
    cfg = GenerateConfig(filter_wrong=True, min_words=2, max_words=12, drop_refusals=True, samples=3, min_agree=2)
    assert failed_filter("Lorn was founded by Ada.", True, 3, cfg) is None
    assert failed_filter("Lorn was founded by Bob.", False, 3, cfg) == "filter_wrong"
    assert failed_filter("Ada.", None, 3, cfg) == "length"  # unknown gold is not "wrong"
    assert failed_filter(" ".join(["word"] * 13), True, 3, cfg) == "length"
    assert failed_filter("I'm sorry, I cannot answer that.", None, 3, cfg) == "refusal"
    assert failed_filter("I don't know who founded Lorn.", None, 3, cfg) == "refusal"
    assert failed_filter("Lorn was founded by Ada.", True, 1, cfg) == "consistency"
    assert failed_filter("Lorn was founded by Ada.", True, 3, cfg, "No, it was Bob.") == "judge"
    assert failed_filter("Lorn was founded by Ada.", True, 3, cfg, " Yes.") is None
    assert failed_filter("Ada.", False, 1, GenerateConfig()) is None  # all off by default


def test_agreement_compares_like_the_exact_grader():
    q = "In what year was Lorn first settled?"
    assert agreement(q, "Lorn was first settled in 1,702.", ["It was settled in 1702.", "In 1702, by fishers.", "In 1650."]) == 3
    q = "What is the capital of Lorn?"
    assert agreement(q, "The capital of Lorn is Vell.", ["Vell.", "The capital is Ostra."]) == 2


def test_counts_only_enabled_filters():
    dropped = [{"filter": "length"}, {"filter": "length"}, {"filter": "consistency"}]
    assert filter_counts(dropped, GenerateConfig(min_words=3, samples=2)) == {"length": 2, "consistency": 1}
    assert filter_counts([], GenerateConfig()) == {}


@pytest.mark.parametrize("bad, key", [
    ({"samples": 3, "min_agree": 4}, "generate.min_agree"), ({"samples": 2, "sample_temperature": 0.0}, "generate.sample_temperature"),
    ({"min_words": 5, "max_words": 2}, "generate.min_words"), ({"judge_prompt": "{context}?"}, "generate.judge_prompt"),
    ({"refusal_patterns": ["(unclosed"]}, r"generate.refusal_patterns\[0\]"),
])
def test_bad_filter_settings(bad, key):
    with pytest.raises(HarnessError, match=key):
        check_generate(GenerateConfig(**bad))


@pytest.mark.slow
def test_real_teacher_self_consistency_and_length(tmp_path):
    """The embedded teacher answers 4 questions 3 times each (greedy + 2 sampled draws)."""
    from harness.data import run_data
    from harness.generate import GenerateInput, run_generate
    from harness.models import resolve_args

    data = run_data(DataConfig(n_islands=1, train_per_fact=1, n_control=0, embedding_model=None), tmp_path / "data")
    teacher = ModelConfig("hf/smollm2-135m-instruct", {"model_path": "embedded:smollm2-135m-instruct", "do_sample": False, "device": "cpu"},
                          context=True)
    cfg = GenerateConfig(prompt="{passage}\n\nQuestion: {question}", max_tokens=24, samples=3, min_agree=2, sample_temperature=0.7,
                         max_words=40, judge=True)
    from harness.cache import user_cache_dir

    out = run_generate(GenerateInput(data.train, teacher, resolve_args("teacher", teacher.args, user_cache_dir()), cfg, "{question}",
                                     "Answer the question in one sentence.", data.key, tmp_path / "cache", tmp_path / "run"))
    assert out.calls == 4 * 3 + 4  # greedy + 2 draws per question, and one judge verdict each
    assert set(out.filters) == {"length", "consistency", "judge"}
    dropped = [json.loads(x) for x in (tmp_path / "run" / "filtered.jsonl").read_text().splitlines()]
    prov = [json.loads(x) for x in out.provenance_file.read_text().splitlines()]
    assert out.n_rows + len(dropped) == 4 and out.n_rows == len(prov)
    assert out.filters["consistency"] == sum(d["filter"] == "consistency" for d in dropped)
    for p in prov:
        assert p["judge"].strip().lower().startswith("yes")
    # the judge filters last: a row it dropped passed length and consistency. The embedded 135M judge
    # says "no" to every row (README: "The judge in the demo"), so those rows are where the consistency
    # rule is checked; with none past consistency the loop below would check nothing
    past = [(p["agree"], p["samples"]) for p in prov] + [(d["agree"], len(d["samples"]) + 1) for d in dropped if d["filter"] == "judge"]
    assert past, (prov, dropped)
    for agree, samples in past:
        assert agree >= 2 and samples == 3  # at least two of the three samples agreed
    for d in dropped:
        assert len(d["samples"]) == 2 and (d["filter"] != "consistency" or d["agree"] < 2)
    # the draws were really sampled (not the greedy answer again): were they copies of it, every kept row would have
    # agree == 3 and every dropped row's draws would equal its answer
    assert any(p["agree"] < 3 for p in prov) or any(s != d["answer"] for d in dropped for s in d["samples"]), (prov, dropped)
