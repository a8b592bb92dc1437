"""Multiple choice, golds that must never be normalised away, the final-answer grader, and the
grader checks after scoring -- on recorded answers (no model; the real model is in test_mc_models.py)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.config import ColumnsConfig, EvalConfig, GraderConfig, ReportConfig, grader_fingerprint
from harness.data import EvalItem
from harness.data._byo import load_rows
from harness.evaluate import match, shown
from harness.report import analyse, choice_contrasts, degenerate_cells
from harness.report._graders import intermediate_credit
from harness.text import LETTERS, final_answer, read_choice

DATA = Path(__file__).parent / "data"
LETTER_FILE = DATA / "mc_letters.jsonl"


def _items():
    rows = load_rows(str(LETTER_FILE), "jsonl", ColumnsConfig(), "data.eval_path", answers_required=True)
    return [EvalItem(r.id, "heldout", r.question, r.answer, "", r.group, choices=r.choices) for r in rows]


def test_the_letter_file_has_golds_on_every_letter_and_a_choice_that_is_the_word_a():
    items = _items()
    assert sorted({it.answer for it in items}) == ["A", "B", "C", "D"]
    assert any("a" in it.choices for it in items)
    # answers given as index / text in the packaged example resolve to letters
    ex = load_rows(str(Path(__file__).parents[1] / "harness" / "examples" / "mc.jsonl"), "jsonl", ColumnsConfig(), "k", True)
    assert [r.answer for r in ex] == ["A", "B", "C", "D", "B"]  # "A", 1, "Mercury", "D", "a" (the word)


@pytest.mark.parametrize("grader", ["exact", "contains", "choice"])
def test_every_letter_is_scorable_and_always_a_scores_the_share_of_a_golds(grader):
    """The bug of issue 21: the normaliser dropped "a" as an article, so gold "A" became empty and
    exact/contains scored exactly the A-gold items (or none of them)."""
    items = _items()

    def grade(answer, it):
        if grader == "choice":
            s = shown(it, EvalConfig.choices_prompt, None)
            pick, _ = read_choice(answer, s.choices)
            return pick is not None and LETTERS[pick] == s.target
        return match(answer, [it.answer], grader, "auto" if grader == "exact" else "whole", it.question).correct

    # a model that answers each item's gold letter: every letter is scorable, by every grader
    assert all(grade(it.answer, it) for it in items)
    assert all(grade(f"The answer is {it.answer}.", it) for it in items)
    # a model that always answers "A": exactly the share of A golds, no more, no less
    share = sum(it.answer == "A" for it in items) / len(items)
    for reply in ("A", "A.", "(A)"):
        assert sum(grade(reply, it) for it in items) / len(items) == share == 0.25, reply


def test_choice_reader_reads_picks_robustly():
    ch = ["Paris", "a", "London", "dark red"]
    cases = {"C": 2, "(C)": 2, "C.": 2, "C) London": 2, "The answer is C": 2, "ANSWER: C": 2, "answer: c)": 2,
             "The correct answer is (B).": 1, "London": 2, "It is London.": 2, "a": 1, "dark red": 3, "**D**": 3,
             "I think B is right": 1, "Let me see: A is wrong... ANSWER: D": 3}
    for reply, want in cases.items():
        assert read_choice(reply, ch)[0] == want, reply
    # articles and pronouns are words, not picks; two choices named is no pick; letters outside the choices neither
    for reply in ("A bird flies", "The answer is a bird", "Paris or London", "E", "I do not know"):
        assert read_choice(reply, ch)[0] is None, reply


def test_shuffled_choices_move_the_gold_letter_with_them_and_are_seeded_per_item():
    items = _items()
    plain = [shown(it, EvalConfig.choices_prompt, None) for it in items]
    a = [shown(it, EvalConfig.choices_prompt, 1) for it in items]
    b = [shown(it, EvalConfig.choices_prompt, 1) for it in reversed(items)][::-1]
    assert [s.order for s in a] == [s.order for s in b]  # per item id, not per position in the file
    assert any(s.order != list(range(4)) for s in a) and all(s.order == list(range(4)) for s in plain)
    for it, s in zip(items, a):
        assert s.choices[LETTERS.index(s.target)] == it.choices[LETTERS.index(it.answer)]  # the gold's text is where the letter says
        assert f"{s.target}) {it.choices[LETTERS.index(it.answer)]}" in s.question
    assert [s.target for s in a] != [it.answer for it in items]  # the golds moved


def test_gold_that_is_an_article_is_compared_as_written():
    assert match("a", ["a"], "exact", "whole").correct
    assert match("The answer is A.", ["A"], "exact", "auto").correct
    assert not match("The answer is B.", ["A"], "exact", "auto").correct
    assert not match("", ["A"], "contains", "whole").correct
    assert match("The Nile", ["Nile"], "exact", "whole").correct  # other golds still drop articles


MATH = [  # (question, gold, a worked answer that names the gold as an intermediate number, its final number)
    ("Tom has 3 boxes with 4 apples in each. He eats 2. How many are left?", "10",
     "3 boxes of 4 apples is 12 apples. He eats 2, so 12 - 2 = 10... wait, he eats 2 more later: 10 - 2 = 8. The answer is 8.", "8"),
    ("A shirt costs $12 and a hat $8. What do 3 shirts and 1 hat cost?", "44",
     "3 shirts cost 3 * 12 = 36. Adding the hat: 36 + 8 = 44.\n#### 44", "44"),
    ("A train goes 60 km/h for 2.5 hours. How far does it go?", "150",
     "In 1 hour it goes 60 km, in 2 hours 120 km, and the last half hour 30 km: \\boxed{150}", "150"),
    ("What is 5 minus 12?", "-7", "5 - 12 = -7, so the answer is -7.", "-7"),
    ("A box holds 150 pens; 6 boxes hold how many?", "900", "Each box holds 150 pens, so 6 boxes hold 150 * 6 = 600 pens.", "600"),
]


def test_final_answer_grader_is_right_where_contains_credits_an_intermediate_number():
    final = GraderConfig(mode="exact", extract="final_answer")
    disagree = 0
    for q, gold, answer, last in MATH:
        assert final_answer(answer) == last
        f = match(answer, [gold], final.mode, final.extract, q).correct
        c = match(answer, [gold], "contains", "whole", q).correct
        assert f == (last == gold)  # the final-answer grader is right
        disagree += f != c
    assert disagree == 1  # item 1: "10" is an intermediate number; contains credits it
    assert not match("-5", ["5"], "exact", "final_answer").correct  # the sign counts
    assert match("so about 3.14", ["3.1416"], "exact", "final_answer", tolerance=0.01).correct
    assert not match("so about 3.14", ["3.1416"], "exact", "final_answer").correct
    assert match("#### 1,000", ["1000"], "exact", "final_answer").correct


def _frame(rows):
    cols = ["alias", "model", "task", "grader", "id", "epoch", "value", "group", "answer", "extracted", "target", "cluster", "judge"]
    return pd.DataFrame([{**dict(zip(cols, [None] * len(cols))), "model": "m", "task": "heldout", "epoch": 1, "group": "g",
                          "judge": "", **r, "cluster": r["id"]} for r in rows], columns=cols)


def _recorded():
    """Two models' varied replies to the letter file, graded by a broken letter grader (right iff the
    gold is "A": the normalised-away article) and by the choice grader."""
    items = _items()
    replies = {"current": ["B", "The answer is C.", "A) x", "D.", "(B)", "C", "A", "B) y", "D", "C.", "A", "B"],
               "candidate": ["C", "A", "B", "D) z", "C", "A.", "B", "C", "D", "A", "B", "C"]}
    rows = []
    for alias, rs in replies.items():
        for it, r in zip(items, rs):
            pick, _ = read_choice(r, list(it.choices))
            rows.append(dict(alias=alias, id=it.id, grader="broken", value=float(it.answer == "A"), answer=r, extracted=r, target=it.answer))
            rows.append(dict(alias=alias, id=it.id, grader="choice", value=float(pick is not None and LETTERS[pick] == it.answer),
                             answer=r, extracted=LETTERS[pick] if pick is not None else "", target=it.answer))
            # always "A": a position-biased model, graded right by the choice grader
            rows.append(dict(alias=alias + "_a", id=it.id, grader="always", value=float(it.answer == "A"), answer="A) " + it.choices[0],
                             extracted="A", target=it.answer))
    return _frame(rows)


def test_a_grader_fixed_by_the_gold_is_flagged_and_left_out_of_the_family():
    frame = _recorded()
    flagged = degenerate_cells(frame, {"choice": "choice", "always": "choice"})
    assert [(c["task"], c["grader"]) for c in flagged] == [("heldout", "broken")]
    assert flagged[0]["right_labels"] == ["A"] and flagged[0]["wrong_labels"] == ["B", "C", "D"]
    s = analyse(frame, ReportConfig(), students=[], aliases=["current", "candidate"],
                graders={"broken": {"kind": "match"}, "choice": {"kind": "choice"}, "always": {"kind": "choice"}})
    comps = [c for c in s["comparisons"] if c["a"] == "candidate" and c["b"] == "current"]
    broken = next(c for c in comps if c["grader"] == "broken")
    assert broken["excluded"].startswith("grader degenerate") and broken["p_adjusted"] is None and not broken["significant"]
    tested = [c for c in comps if "excluded" not in c]
    assert len(tested) == len(comps) - 1 and all(c["correction"] == f"holm over {len(tested)} comparisons" for c in tested)
    bias = [c for c in s["grader_checks"] if c["check"] == "position bias"]
    assert {c["model"] for c in bias} == {"current_a", "candidate_a"} and all(c["letter"] == "A" for c in bias)
    # kept in with report.include_unreliable
    s = analyse(frame, ReportConfig(include_unreliable=True), students=[], aliases=["current", "candidate"], graders={})
    assert not any("excluded" in c for c in s["comparisons"])


def test_contains_crediting_intermediate_numbers_is_counted():
    rows = [dict(alias="m", id=f"m{k}", grader="contains", value=float(match(a, [g], "contains", "whole").correct), answer=a,
                 extracted=a, target=g) for k, (_, g, a, _) in enumerate(MATH)]
    out = intermediate_credit(_frame(rows), {"contains": {"kind": "match", "mode": "contains", "extract": "whole"}})
    assert len(out) == 1 and out[0]["by_model"] == {"m": 1} and out[0]["ids"] == ["m0"]


def test_new_grader_definitions_are_fingerprinted_and_old_ones_keep_theirs():
    ev = {"system": "s", "temperature": 0.0}
    old = {"kind": "match", "mode": "exact", "extract": "auto", "regex": None, "judge": None, "rubric": None, "scale": "binary",
           "max_tokens": 16, "allow_self_judge": False, "reference": "exact", "calibration": None, "pairs": []}
    from dataclasses import asdict

    assert grader_fingerprint(asdict(GraderConfig()), ev) == grader_fingerprint(old, ev)  # a stored run still gates
    fps = {grader_fingerprint(asdict(g), ev) for g in (GraderConfig(), GraderConfig(kind="choice"), GraderConfig(extract="final_answer"),
                                                        GraderConfig(extract="final_answer", tolerance=0.01))}
    assert len(fps) == 4


def test_eval_file_round_trips_choices(tmp_path):
    from dataclasses import asdict

    from harness.data._stage import load_eval

    items = _items()
    f = tmp_path / "eval.jsonl"
    f.write_text("\n".join(json.dumps(asdict(it)) for it in items))
    assert load_eval(f) == items


def test_contains_credit_for_a_reply_that_lists_the_choices_decides_nothing():
    """Issue 29: `contains` credits a reply that merely lists "A) ... B) ..." whatever the gold. On a task
    a choice grader scores, every other grader is a contrast: shown, out of the tested family (and of
    the gate: harness.regress reads the same checks); a foreign log's `choice` scorer counts as one."""
    items = _items()
    rows = []
    for it in items:
        wrong = next(x for x in LETTERS[:4] if x != it.answer)
        listing = " ".join(f"{LETTERS[k]}) {c}" for k, c in enumerate(it.choices))
        for alias, reply in (("current", wrong), ("candidate", listing)):
            pick, _ = read_choice(reply, list(it.choices))
            for grader, mode in (("exact", "exact"), ("contains", "contains")):
                v = match(reply, [it.answer], mode, "auto" if mode == "exact" else "whole", it.question)
                rows.append(dict(alias=alias, id=it.id, grader=grader, value=float(v.correct), answer=reply, extracted=v.extracted,
                                 target=it.answer))
            rows.append(dict(alias=alias, id=it.id, grader="choice", value=float(pick is not None and LETTERS[pick] == it.answer),
                             answer=reply, extracted=LETTERS[pick] if pick is not None else "", target=it.answer))
    frame = _frame(rows)
    contains = frame[frame.grader == "contains"].groupby("alias")["value"].mean()
    assert contains["candidate"] == 1.0 and contains["current"] == 0.0  # the listing "wins" every item under contains
    graders = {"exact": {"kind": "match", "mode": "exact"}, "contains": {"kind": "match", "mode": "contains"}, "choice": {"kind": "choice"}}
    s = analyse(frame, ReportConfig(), students=[], aliases=["current", "candidate"], graders=graders)
    comps = {c["grader"]: c for c in s["comparisons"] if c["task"] == "heldout"}
    for g in ("exact", "contains"):
        assert comps[g]["excluded"] == "contrast: multiple-choice task, scored by choice" and comps[g]["p_adjusted"] is None
        assert not comps[g]["significant"]
    assert "excluded" not in comps["choice"] and comps["choice"]["correction"] == "holm over 1 comparisons"
    contrasts = [c for c in s["grader_checks"] if c["check"] == "multiple-choice contrast"]
    assert {(c["grader"], c["reader"], c["excluded"]) for c in contrasts} == {("exact", "choice", True), ("contains", "choice", True)}
    # kept in on request, where `contains` would call the listing a significant gain
    kept = analyse(frame, ReportConfig(include_unreliable=True), students=[], aliases=["current", "candidate"], graders=graders)
    assert next(c for c in kept["comparisons"] if c["grader"] == "contains")["significant"]
    # the same rule without a config: a foreign inspect log's `choice` scorer (inspect_ai.scorer.choice)
    assert [(c["task"], c["grader"]) for c in choice_contrasts(frame)] == [("heldout", "contains"), ("heldout", "exact")]
    # a foreign log's `choice` is checked on its picks, as a configured choice grader is: a model that
    # always picks "A" (raw replies that differ) is position bias, not a degenerate grader
    always = _recorded()
    always = always[always.grader == "always"].assign(grader="choice")
    assert degenerate_cells(always, {}) == [] and len(degenerate_cells(always, {"choice": "match"})) == 1
    # a task no choice grader scores has no contrasts
    assert choice_contrasts(frame[frame.grader != "choice"], {"exact": "match", "contains": "match"}) == []


def _composed(*overrides):
    from omegaconf import OmegaConf

    from harness.cli import compose
    from harness.config import to_dataclass

    d = OmegaConf.to_container(compose(["experiment=upgrade", "data=jsonl", *overrides]), resolve=False)
    d.pop("hydra")
    return to_dataclass(OmegaConf.create(d))


def test_a_multiple_choice_file_gets_the_choice_grader_by_default(tmp_path):
    """Real Hydra compose with the default graders (exact, contains): the pre-flight adds `choice` for a
    task whose items all carry choices, and the gate may name it; eval.auto_choice=false turns it off;
    a task that mixes items with and without choices gets none, and the note says why."""
    from harness.errors import HarnessError
    from harness.preflight import notes, validate, with_choice_grader

    cfg = _composed(f"data.eval_path={LETTER_FILE}", "regress.graders=[choice]")
    assert set(cfg.graders) == {"exact", "contains"}
    with pytest.raises(HarnessError, match="regress.graders: 'choice' is not a per-item grader"):
        validate(cfg)  # without the default, the gate could not name it
    full, added = with_choice_grader(cfg)
    assert added == "choice" and full.graders["choice"].kind == "choice" and set(full.graders) == {"exact", "contains", "choice"}
    validate(full)
    said = notes(full, added)
    assert any("12 multiple-choice items, scored by the choice grader `choice`, added because the items carry choices" in n
               and "exact, contains stay as contrasts" in n for n in said), said
    assert with_choice_grader(full) == (full, None)  # a choice grader configured: nothing added
    off, added = with_choice_grader(_composed(f"data.eval_path={LETTER_FILE}", "eval.auto_choice=false"))
    assert added is None and "choice" not in off.graders
    assert any("no choice grader (eval.auto_choice=false)" in n and "+grader@graders.choice=choice" in n for n in notes(off))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(LETTER_FILE.read_text() + json.dumps({"id": "open-1", "question": "What is 2 + 2?", "answer": "4"}) + "\n")
    cfg, added = with_choice_grader(_composed(f"data.eval_path={mixed}"))
    assert added is None and "choice" not in cfg.graders
    assert any("12 of 13 items have choices, the others not" in n and "item 'open-1'" in n for n in notes(cfg))
    # open questions only: nothing added
    assert with_choice_grader(_composed(f"data.eval_path={Path(__file__).parents[1] / 'harness' / 'examples' / 'math.jsonl'}"))[1] is None
