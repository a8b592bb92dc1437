"""Bad multiple-choice input through the real CLI: one line naming file:line, exit 2, nothing written
(before any stage). And what the pre-flight says without refusing: unused fields, numeric golds
under `contains`, one-letter golds without choices."""

import json
from pathlib import Path

import pytest

from harness.config import ColumnsConfig, DataConfig, GraderConfig, HarnessConfig, ModelConfig
from harness.preflight import notes, validate
from tests.test_hardening import cli, files, one_line, written

GOOD = {"question": "Which planet is closest to the Sun?", "choices": ["Venus", "Earth", "Mercury", "Mars"], "answer": "C"}
BAD = [
    ({"choices": ["Mercury"]}, "has 1 choice; a multiple-choice item needs at least 2"),
    ({"answer": "E"}, "'answer' is the letter E, but the item has 4 choices (A-D)"),
    ({"answer": 4}, "'answer' is index 4, out of range for 4 choices (0-3)"),
    ({"choices": ["Venus", "Mercury", "mercury ", "Mars"]}, "choices B and C are the same"),
]
# the same checks without a subprocess each (the CLI path is the one above)
MORE = [
    ({"answer": "Pluto"}, "is not a letter A-D, an index 0-3 or the text of one of the choices"),
    ({"choices": "Venus, Mercury"}, "must be a list of choices"),
    ({"choices": ["B", "A", "C"], "answer": "A"}, "is both the letter/index of choice A and the text of choice B"),
    ({"choices": ["Venus", ""]}, "choice B of 'choices' must be non-empty text"),
]


@pytest.mark.parametrize("change,message", BAD, ids=["one-choice", "letter-outside", "index-out-of-range", "duplicate"])
def test_bad_multiple_choice_item_is_one_line_exit_2_nothing_written(tmp_path, change, message):
    f = tmp_path / "mc.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, **change}) + "\n")
    before = files(tmp_path)
    line = one_line(cli(tmp_path, "run", "experiment=mc", f"data.eval_path={f}", f"results_dir={tmp_path / 'r'}"))
    assert f"{f}:2: " in line and message in line, line
    assert not written(before, tmp_path)


@pytest.mark.parametrize("change,message", MORE, ids=["unknown-text", "not-a-list", "letter-and-text", "empty-choice"])
def test_more_bad_items_name_file_and_line(tmp_path, change, message):
    from harness.data._byo import load_rows
    from harness.errors import HarnessError

    f = tmp_path / "mc.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, **change}) + "\n")
    with pytest.raises(HarnessError) as e:
        load_rows(str(f), "jsonl", ColumnsConfig(), "data.eval_path", True)
    assert str(e.value).startswith(f"{f}:2: ") and message in str(e.value), str(e.value)


def test_csv_choices_are_columns_a_b_c(tmp_path):
    from harness.data._byo import load_rows
    from harness.errors import HarnessError

    f = tmp_path / "mc.csv"
    f.write_text("question,A,B,C,answer,notes\nWhich planet is closest to the Sun?,Venus,Mercury,Mars,B,x\nAnd the largest?,Jupiter,Mars,,0,y\n")
    rows = load_rows(str(f), "csv", ColumnsConfig(), "data.eval_path", True)
    assert [(r.choices, r.answer) for r in rows] == [(("Venus", "Mercury", "Mars"), "B"), (("Jupiter", "Mars"), "A")]
    from harness.data._byo import unused_fields

    assert unused_fields(str(f), "csv", ColumnsConfig(), True) == ["notes"]
    f.write_text("question,A,B,C,answer\nWhich planet is closest to the Sun?,Venus,Mercury,Mars,B\nAnd the largest?,Jupiter,,,A\n")
    with pytest.raises(HarnessError, match=rf"^{f}:3: columns A, B, \.\.\. has 1 choice"):
        load_rows(str(f), "csv", ColumnsConfig(), "data.eval_path", True)


def _cfg(tmp_path: Path, rows: list[dict], graders: dict[str, GraderConfig]) -> HarnessConfig:
    f = tmp_path / "eval.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = ModelConfig(model="hf/x", args={})
    return HarnessConfig(models={"current": m, "candidate": m}, graders=graders,
                         data=DataConfig(name="jsonl", eval_path=str(f), n_control=0, embedding_model=None))


def test_preflight_says_unused_fields_numeric_golds_under_contains_and_letter_golds(tmp_path):
    rows = [{"question": f"What is {k} plus {k}?", "answer": 2 * k, "explanation": "adding", "source": "gsm"} for k in range(4)]
    cfg = _cfg(tmp_path, rows, {"contains": GraderConfig(mode="contains", extract="whole")})
    cfg.eval.tasks = ["heldout"]
    validate(cfg)
    said = notes(cfg)
    assert any("data.eval_path" in n and "'explanation', 'source'" in n and "not used" in n for n in said), said
    assert any("graders.contains" in n and "4 of 4 golds of heldout are numbers" in n and "final_answer" in n for n in said), said
    letters = [{"question": f"Q{k}? A) x B) y", "answer": "AB"[k % 2]} for k in range(4)]
    cfg = _cfg(tmp_path, letters, {"exact": GraderConfig()})
    cfg.eval.tasks = ["heldout"]
    assert any("golds are one letter" in n and "choices" in n for n in notes(cfg))


def test_gold_with_nothing_to_match_is_refused_naming_the_item(tmp_path):
    cfg = _cfg(tmp_path, [{"id": "ok", "question": "Q?", "answer": "A"}, {"id": "dash", "question": "Q2?", "answer": "—"}],
               {"exact": GraderConfig()})
    cfg.eval.tasks = ["heldout"]
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match=r"item 'dash': the answer '—' has no letter or digit"):
        validate(cfg)
    # a choice grader on open questions is refused too
    cfg = _cfg(tmp_path, [{"question": "Q?", "answer": "yes"}], {"choice": GraderConfig(kind="choice")})
    cfg.eval.tasks = ["heldout"]
    with pytest.raises(HarnessError, match="no evaluated item has choices"):
        validate(cfg)
