"""Bring-your-own data: real JSONL/CSV files, validated row by row, errors as `file:line: what`."""

import json
import subprocess

import pytest

from harness.config import ColumnsConfig, DataConfig
from harness.data import run_data
from harness.errors import HarnessError


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


TRAIN = [
    {"id": "a", "question": "Who founded Lorn?", "answer": "Ada", "group": "people", "passage": "Ada founded Lorn in 1702."},
    {"question": "When was Lorn founded?", "answer": 1702},
    "",
    {"id": "c", "question": "What river runs through Lorn?", "group": "places"},
]
EVAL = [{"id": "e1", "question": "Which person founded the town of Lorn?", "answer": "Ada", "group": "people"}]


def test_jsonl_rows_become_training_questions_and_eval_items(tmp_path):
    cfg = DataConfig(name="jsonl", train_path=_jsonl(tmp_path / "t.jsonl", TRAIN), eval_path=_jsonl(tmp_path / "e.jsonl", EVAL), n_control=2)
    out = run_data(cfg, tmp_path / "run")
    assert [t.id for t in out.train] == ["a", "L2", "c"]  # the line number when there is no id
    assert out.train[1].answer == "1702" and out.train[2].answer == ""  # numbers as text; answer optional
    assert out.train[0].passage.startswith("Ada") and out.train[1].group == "all"
    assert [(e.task, e.id) for e in out.eval] == [("heldout", "e1"), ("control", "control.0"), ("control", "control.1")]
    assert (tmp_path / "run" / "questions.jsonl").is_file()


def test_csv_with_renamed_columns(tmp_path):
    (tmp_path / "t.csv").write_text('prompt,gold,topic\n"What river runs through Lorn, exactly?",Vell,places\nWho founded Lorn?,Ada,people\n')
    (tmp_path / "e.csv").write_text("prompt,gold\nWhich river flows through Lorn?,Vell\n")
    cols = ColumnsConfig(question="prompt", answer="gold", group="topic")
    out = run_data(DataConfig(name="csv", train_path=str(tmp_path / "t.csv"), eval_path=str(tmp_path / "e.csv"), columns=cols,
                              n_control=0), tmp_path / "r")
    assert [(t.id, t.question, t.answer, t.group) for t in out.train] == [
        ("L2", "What river runs through Lorn, exactly?", "Vell", "places"), ("L3", "Who founded Lorn?", "Ada", "people")]
    assert out.eval[0].answer == "Vell" and out.eval[0].group == "all"


GOOD_EVAL = {"question": "Which person founded Lorn?", "answer": "Ada"}


@pytest.mark.parametrize("which, lines, expect", [
    ("train", [{"question": "ok?"}, '{"question": "broken"'], r"t\.jsonl:2: not valid JSON"),
    ("train", [{"question": "ok?"}, '["a list"]'], r"t\.jsonl:2: expected a JSON object per line, got list"),
    ("train", [{"question": "ok?"}, "", {"text": "no question"}], r"t\.jsonl:3: 'question' is missing \(data.columns.question\)"),
    ("train", [{"question": "  "}], r"t\.jsonl:1: 'question' is empty"),
    ("train", [{"question": {"nested": 1}}], r"t\.jsonl:1: 'question' must be a string .*got dict"),
    ("train", [{"question": "q1", "id": 1}, {"question": "q2", "id": 1}], r"t\.jsonl:2: duplicate id '1' \(first on line 1\)"),
    ("eval", [GOOD_EVAL, {"question": "no answer?"}], r"e\.jsonl:2: 'answer' is missing \(data.columns.answer\)"),
    ("train", [], r"t\.jsonl: no rows; data.train_path"),
])
def test_bad_jsonl_row_is_file_line_what(tmp_path, which, lines, expect):
    t = _jsonl(tmp_path / "t.jsonl", lines if which == "train" else [{"question": "fine?"}])
    e = _jsonl(tmp_path / "e.jsonl", lines if which == "eval" else [GOOD_EVAL])
    with pytest.raises(HarnessError, match=expect):
        run_data(DataConfig(name="jsonl", train_path=t, eval_path=e), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("text, expect", [
    ("text,answer\nq?,a\n", r"t\.csv:1: no 'question' column \(columns: text, answer\); name it with data.columns.question"),
    ("question,answer\nq?,a\nq2?,a,extra\n", r"t\.csv:3: 3 cells but the header has 2"),
    ("question,answer,group\nq?,a,g\nq2?,a\n", r"t\.csv:3: 2 cells but the header has 3"),
    ('question,answer\nq?,a\n"multi\nline",\n,b\n', r"t\.csv:5: 'question' is empty"),
])
def test_bad_csv_row_is_file_line_what(tmp_path, text, expect):
    (tmp_path / "t.csv").write_text(text)
    (tmp_path / "e.csv").write_text("question,answer\nWhich?,x\n")
    with pytest.raises(HarnessError, match=expect):
        run_data(DataConfig(name="csv", train_path=str(tmp_path / "t.csv"), eval_path=str(tmp_path / "e.csv")), tmp_path / "run")


def test_missing_file_unset_path_and_non_utf8(tmp_path):
    e = _jsonl(tmp_path / "e.jsonl", [GOOD_EVAL])
    with pytest.raises(HarnessError, match=r"data.train_path: no such file: .*nope.jsonl"):
        run_data(DataConfig(name="jsonl", train_path=str(tmp_path / "nope.jsonl"), eval_path=e), tmp_path / "r")
    with pytest.raises(HarnessError, match=r"data.train_path is not set"):
        run_data(DataConfig(name="jsonl", eval_path=e), tmp_path / "r")
    (tmp_path / "latin1.jsonl").write_bytes('{"question": "caf\xe9?"}\n'.encode("latin-1"))
    with pytest.raises(HarnessError, match=r"latin1.jsonl: not UTF-8 text"):
        run_data(DataConfig(name="jsonl", train_path=str(tmp_path / "latin1.jsonl"), eval_path=e), tmp_path / "r")


def test_cli_reports_bad_row_in_one_line_exit_2(harness_bin, tmp_path):
    t = _jsonl(tmp_path / "t.jsonl", [{"question": "ok?"}, {"question": 3.5, "answer": "x"}, {"answer": "no question"}])
    e = _jsonl(tmp_path / "e.jsonl", [GOOD_EVAL])
    p = subprocess.run([harness_bin, "run", "data=jsonl", f"data.train_path={t}", f"data.eval_path={e}", f"results_dir={tmp_path}/r"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"harness: error: {tmp_path}/t.jsonl:3: 'question' is missing (data.columns.question); every row needs one"]
    assert not (tmp_path / "r").exists()
