"""The real embedded model on a multiple-choice file, on transformers (`hf/`, in-process) and served
by llama.cpp (`smollm2_server`), in one `harness run experiment=mc` (12 items, golds on every
letter, a choice that is the word "a"); then the same items with shuffled choices, and the gate of
the model against itself shuffled. Every test reads those two runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runs import load_frame

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LETTER_FILE = REPO / "tests" / "data" / "mc_letters.jsonl"


def _harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=1500)


@pytest.fixture(scope="module")
def runs(module_tmp):
    out = module_tmp("mc")
    # `first_letter` reads the reply's first letter: a grader that cannot tell these answers apart
    # (the embedded model opens every reply with "A)"), so its verdicts are fixed by the gold
    p = _harness("run", "experiment=mc", f"data.eval_path={LETTER_FILE}", "model@models.candidate=smollm2_server",
                 "+grader@graders.first_letter=exact", "graders.first_letter.extract=regex", 'graders.first_letter.regex="^\\W*(\\w)"',
                 f"results_dir={out / 'plain'}")
    assert p.returncode in (0, 3, 4), p.stderr[-3000:]
    shuffled = _harness("run", "experiment=mc", f"data.eval_path={LETTER_FILE}", "eval.shuffle_choices=1", "regress.enabled=false",
                        "~model@models.candidate", f"results_dir={out / 'shuffled'}")
    assert shuffled.returncode == 0, shuffled.stderr[-3000:]
    [plain_dir] = [d for d in (out / "plain" / "mc").iterdir() if (d / "summary.json").is_file()]
    [shuffled_dir] = [d for d in (out / "shuffled" / "mc").iterdir() if (d / "summary.json").is_file()]
    return plain_dir, shuffled_dir, out


def independent_pick(reply: str, k: int) -> str:
    """The letter a reply picks, parsed apart from harness.text.read_choice: a stated "answer ... X"
    wins, else the letter the reply opens with, else "" (this model's replies need no more)."""
    letters = "ABCDEFGH"[:k]
    stated = re.findall(rf"answer\W+(?:is\W+)?([{letters}])\b", reply, flags=re.IGNORECASE)
    if stated:
        return stated[-1].upper()
    opening = re.match(rf"\s*\(?([{letters}])[).:\s]", reply + " ")
    return opening.group(1) if opening else ""


@pytest.mark.parametrize("alias,backend", [("current", "hf/"), ("candidate", "openai-api/llamacpp/")])
def test_choice_grader_agrees_with_an_independent_parse(runs, alias, backend):
    plain, _, _ = runs
    summary = json.loads((plain / "summary.json").read_text())
    assert summary["models"][alias].startswith(backend)
    frame = load_frame(plain / "logs")
    f = frame[(frame["grader"] == "choice") & (frame["alias"] == alias)]
    assert len(f) == 12
    agree = sum(independent_pick(r.answer, 4) == r.extracted for r in f.itertuples())
    assert agree / len(f) >= 0.95, [(r.answer, r.extracted) for r in f.itertuples()]
    # the score is what those picks give against the golds
    assert f["value"].sum() == sum(r.extracted == r.target for r in f.itertuples())


def test_degenerate_grader_is_flagged_and_left_out_of_the_family_and_the_gate(runs):
    plain, _, out = runs
    summary = json.loads((plain / "summary.json").read_text())
    flagged = [c for c in summary["grader_checks"] if c["check"] == "degenerate"]
    assert [(c["task"], c["grader"]) for c in flagged] == [("heldout", "first_letter")] and flagged[0]["excluded"]
    comp = [c for c in summary["comparisons"] if c["grader"] == "first_letter"]
    assert comp and all(c["excluded"].startswith("grader degenerate") and c["p_adjusted"] is None for c in comp)
    assert all(str(len([c for c in summary["comparisons"] if "excluded" not in c])) in c["correction"]
               for c in summary["comparisons"] if "excluded" not in c)
    # `harness regress` gates every grader unless told otherwise, and still leaves this one out (and
    # the contrasts of a multiple-choice task: test_the_default_graders_...)
    p = _harness("regress", "--baseline", f"{plain}:current", "--candidate", f"{plain}:candidate", "--out", str(out / "all"))
    assert p.returncode in (0, 3, 4), p.stderr[-2000:]
    gate = json.loads((out / "all" / "regress.json").read_text())
    cell = next(c for c in gate["cells"] if c["grader"] == "first_letter")
    assert not cell["gated"] and cell["skipped"].startswith("grader degenerate") and cell["verdict"] == "not gated"
    assert any("first_letter: shown, not gated: grader degenerate" in w for w in gate["warnings"])
    assert {c["grader"] for c in gate["cells"] if c["gated"]} == {"choice"}
    md, html = (plain / "report.md").read_text(), (plain / "report.html").read_text()
    assert "first\\_letter (degenerate)" in md and "first_letter (degenerate)" in html
    # the choice grader is not flagged: the model picked "A" every time (reported as position bias)
    assert not any(c["grader"] == "choice" for c in flagged)


def test_report_gives_the_chance_level(runs):
    plain, _, _ = runs
    summary = json.loads((plain / "summary.json").read_text())
    mc = summary["data"]["multiple_choice"]["heldout"]
    assert mc["chance"] == 0.25 and mc["gold_letters"] == {"A": 3, "B": 3, "C": 3, "D": 3}
    assert "chance level 25.0 %" in (plain / "report.md").read_text()
    assert "chance level 25.0 %" in (plain / "report.html").read_text()


def test_a_model_against_itself_with_shuffled_choices_is_a_gate(runs):
    plain, shuffled, out = runs
    items = [json.loads(x) for x in (plain / "data" / "eval.jsonl").read_text().splitlines()]
    assert items == [json.loads(x) for x in (shuffled / "data" / "eval.jsonl").read_text().splitlines()]  # same items, same golds
    frame = load_frame(shuffled / "logs")
    targets = dict(zip(frame[frame.grader == "choice"]["id"], frame[frame.grader == "choice"]["target"]))
    assert any(targets[it["id"]] != it["answer"] for it in items)  # the golds moved with the choices
    p = _harness("regress", "--baseline", f"{plain}:current", "--candidate", f"{shuffled}:current", "--out", str(out / "gate"))
    assert p.returncode in (0, 3, 4), p.stderr[-2000:]
    gate = json.loads((out / "gate" / "regress.json").read_text())
    assert any("eval.shuffle_choices = None in the baseline's run, 1 in the candidate's" in w for w in gate["warnings"])
    choice = next(c for c in gate["cells"] if c["grader"] == "choice")
    assert choice["gated"] and choice["verdict"] in ("pass", "regression", "inconclusive") and gate["items"]["n_compared"] == 12


def test_the_default_graders_on_a_multiple_choice_file_gate_the_choice_grader(runs):
    """Issue 29: experiment=mc names no grader (the defaults: exact, contains); the items carry choices,
    so the run adds `choice`, compares and gates it, and keeps exact/contains as contrasts that decide
    nothing -- in summary.json, in the run's gate, and in `harness regress` over the bare inspect logs."""
    plain, _, out = runs
    summary = json.loads((plain / "summary.json").read_text())
    assert summary["config"]["graders"]["choice"]["kind"] == "choice" and {"exact", "contains"} <= set(summary["config"]["graders"])
    assert any("scored by the choice grader `choice`, added because the items carry choices" in n for n in summary["data"]["notes"])
    comps = [c for c in summary["comparisons"] if c["a"] == "candidate" and c["b"] == "current"]
    assert {c["grader"] for c in comps if "excluded" not in c} == {"choice"}
    for g in ("exact", "contains"):
        c = next(c for c in comps if c["grader"] == g)
        assert c["excluded"] == "contrast: multiple-choice task, scored by choice" and c["p_adjusted"] is None
    assert {c["grader"] for c in summary["grader_checks"] if c["check"] == "multiple-choice contrast"} == {"exact", "contains", "first_letter"}
    assert "multiple-choice contrast" in (plain / "report.md").read_text()
    run_gate = json.loads((plain / "regress.json").read_text())
    assert [(c["task"], c["grader"]) for c in run_gate["cells"] if c["gated"]] == [("heldout", "choice")]
    assert all(c["skipped"].startswith("contrast: multiple-choice task") for c in run_gate["cells"] if c["grader"] in ("exact", "contains"))
    # the same rule on the inspect logs alone (no summary.json, no config: inspect's `choice` scorer name)
    p = _harness("regress", "--baseline", str(plain / "logs" / "current"), "--candidate", str(plain / "logs" / "candidate"),
                 "--out", str(out / "logs_gate"))
    assert p.returncode in (0, 3, 4), p.stderr[-2000:]
    gate = json.loads((out / "logs_gate" / "regress.json").read_text())
    assert gate["baseline"]["source"] == "inspect"
    assert [(c["task"], c["grader"]) for c in gate["cells"] if c["gated"]] == [("heldout", "choice")]
    assert next(c for c in gate["cells"] if c["grader"] == "contains")["skipped"] == "contrast: multiple-choice task, scored by choice"
    # named on purpose, a contrast is gated: the user asked for it
    p = _harness("regress", "--baseline", f"{plain}:current", "--candidate", f"{plain}:candidate", "--graders", "choice", "contains",
                 "--out", str(out / "named"))
    assert p.returncode in (0, 3, 4), p.stderr[-2000:]
    named = json.loads((out / "named" / "regress.json").read_text())
    assert {c["grader"] for c in named["cells"] if c["gated"]} == {"choice", "contains"}
