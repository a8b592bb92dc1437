"""The LLM judge: verdict parsing, rubric checks, self-judge refusal, agreement statistics."""

import numpy as np
import pytest

from harness.config import GraderConfig, ModelConfig
from harness.errors import HarnessError
from harness.evaluate._judge import check_rubric, parse_verdict
from harness.report._judge import agreement


@pytest.mark.parametrize("text, scale, expect", [
    ("yes", "binary", 1.0),
    ("Yes.", "binary", 1.0),
    ("No, the capital is Pelmor.", "binary", 0.0),
    ("CORRECT", "binary", 1.0),
    ("INCORRECT", "binary", 0.0),
    ("The answer is not correct.", "binary", 0.0),
    ("The candidate is right", "binary", 1.0),
    ("wrong", "binary", 0.0),
    ("I know the answer", "binary", None),  # "no" inside "know" is not a verdict
    ("CORRECT or INCORRECT", "binary", None),  # an echo of the instructions, not a verdict
    ("", "binary", None),
    ("Norway", "binary", None),
    ("4", "1-5", 0.75),
    ("Score: 5/5", "1-5", 1.0),
    ("I would rate it 1.", "1-5", 0.0),
    ("2.5", "1-5", None),  # not a whole digit of the scale
    ("10", "1-5", None),
    ("three", "1-5", None),
])
def test_parse_verdict(text, scale, expect):
    assert parse_verdict(text, scale) == expect


def _judge(rubric, scale="binary"):
    return GraderConfig(kind="judge", rubric=rubric, scale=scale, judge=ModelConfig(model="hf/x"))


@pytest.mark.parametrize("rubric, scale, expect", [
    ("Q {question} A {answer}", "binary", "missing placeholder(s) {target}"),
    ("Q {question} ref {target}", "1-5", "missing placeholder(s) {answer}"),
    ("{answer} {target} {gold}", "binary", "unknown placeholder(s) ['gold']"),
    ("{answer} {target", "binary", "not a valid template"),
    ("{answer} {target}", "0-10", "unknown scale"),
    ("", "binary", "needs a rubric"),
])
def test_bad_rubric_names_the_key(rubric, scale, expect):
    with pytest.raises(HarnessError, match="graders.j.") as e:
        check_rubric("j", _judge(rubric, scale))
    assert expect in str(e.value)


def test_good_rubric_passes():
    check_rubric("j", _judge("{question} {answer} {target}"))
    check_rubric("j", _judge("{answer}", "1-5"))


@pytest.mark.parametrize("table", [(30, 5, 8, 17), (10, 10, 10, 10), (40, 0, 0, 20), (3, 12, 20, 5)])
def test_kappa_and_mcnemar_match_hand_formulas(table):
    from scipy import stats

    a, b, c, d = table  # judge-correct & ref-correct, judge-correct & ref-wrong, judge-wrong & ref-correct, both wrong
    judge = np.array([1] * (a + b) + [0] * (c + d), float)
    ref = np.array([1] * a + [0] * b + [1] * c + [0] * d, float)
    r = agreement(judge, ref)
    n = a + b + c + d
    po = (a + d) / n
    pe = ((a + b) * (a + c) + (c + d) * (b + d)) / n ** 2
    assert r["confusion"] == [[a, b], [c, d]] and r["n"] == n
    assert r["agreement"] == pytest.approx(po, abs=1e-6)
    assert r["kappa"] == pytest.approx((po - pe) / (1 - pe), abs=1e-6)
    assert r["mcnemar_p"] == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0, abs=1e-12)
    assert r["unreliable"] == (r["kappa"] < 0.6)


def test_parse_failures_are_counted_not_dropped_silently():
    judge = np.array([1, 0, np.nan, np.nan, 1], float)
    ref = np.array([1, 0, 1, 0, 0], float)
    r = agreement(judge, ref)
    assert r["n"] == 3 and r["parse_failures"] == 2 and r["parse_failure_rate"] == 0.4


def test_chance_judge_is_flagged():
    rng = np.random.default_rng(0)
    r = agreement((rng.random(400) < 0.5).astype(float), (rng.random(400) < 0.5).astype(float))
    assert abs(r["kappa"]) < 0.2 and r["unreliable"]


# --- the real judge, served by a real llama.cpp server on 127.0.0.1 -------------------------------

import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(module_tmp):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is a dev dependency")
    from harness.models import embedded_gguf

    port = _free_port()
    log = module_tmp("server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf("smollm2-135m-instruct")),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(base + "/models", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.5)
        else:
            pytest.fail("llama.cpp server did not come up: " + log.read_text()[-2000:])
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_judge_over_a_real_openai_compatible_server(harness_bin, llama_server, tmp_path):
    """A tiny run graded by a judge on the llama.cpp server: verdicts in the logs, the agreement
    block in summary.json, and the 135M judge honestly flagged as unreliable."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    labels = tmp_path / "labels.csv"  # a human-labelled calibration set (control items are deterministic)
    labels.write_text("task,id,model,label\ncontrol,control.0,baseline,1\ncontrol,control.1,baseline,0\ncontrol,control.2,baseline,1\n")
    p = subprocess.run([harness_bin, "run", "experiment=tiny", "+grader@graders.judge=judge", f"graders.judge.calibration={labels}",
                        "model@graders.judge.judge=llama_cpp_server", f"graders.judge.judge.args.base_url={llama_server}",
                        "+grader@graders.pair=pairwise", "model@graders.pair.judge=llama_cpp_server",
                        f"graders.pair.judge.args.base_url={llama_server}", f"results_dir={tmp_path}",
                        # 4 of the 8 held-out items (and the 3 control ones): every judged cell, at half the verdicts
                        "eval.limit=4"],
                       capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = tmp_path / "tiny" / next(d.name for d in (tmp_path / "tiny").iterdir())
    s = json.loads((run_dir / "summary.json").read_text())
    rows = {r["task"]: r for r in s["judge_agreement"]}
    assert set(rows) == {"heldout", "control"}
    for r in rows.values():
        assert r["judge"] == "judge" and r["judge_model"] == "llama-cpp-python/smollm2" and r["reference"] == "exact"
        assert r["n"] + r["parse_failures"] == 3 * (4 if r["task"] == "heldout" else 3)  # every sample accounted for
        assert sum(map(sum, r["confusion"])) == r["n"]
    assert any(r["unreliable"] for r in rows.values())
    assert "judge unreliable for this task — do not use its verdicts" in (run_dir / "report.md").read_text()
    # the verdicts were graded by the server, recorded with the judge's own words
    log = read_eval_log(list_eval_logs(str(run_dir / "logs" / "student"))[0])
    sc = log.samples[0].scores["judge"]
    assert sc.metadata["judge"] == "llama-cpp-python/smollm2" and "verdict_text" in sc.metadata
    assert {"judge", "exact", "contains"} == set(log.samples[0].scores)
    # pairwise: teacher vs student on every item, both orders, only consistent verdicts counted
    pw = {r["task"]: r for r in s["pairwise"]}
    assert set(pw) == {"heldout", "control"} and pw["heldout"]["n_items"] == 4
    for r in pw.values():
        assert (r["a"], r["b"]) == ("teacher", "student") and r["judge"] == "pair"
        assert r["consistent"] <= r["n_parsed"] <= r["n_items"]
        assert r["a_wins"] + r["b_wins"] + r["ties"] == r["consistent"]
    assert "## Pairwise judge" in (run_dir / "report.md").read_text()
    cal = s["judge_calibration"][0]
    assert cal["judge"] == "judge" and cal["labels"] == 3 and cal["n"] + cal["parse_failures"] == 3
    # 7 items of a pair, below the calibration sample: one batch, every item judged (docs/judge.md)
    assert len(list((run_dir / "judge" / "pair" / "look-000").glob("*.eval"))) == 1
    gates = {g["grader"]: g for g in s["judge_gate"]}
    assert gates["judge"]["judged"] == gates["judge"]["units"] == 21 and gates["pair"]["judged"] == 7


@pytest.mark.parametrize("overrides, expect", [
    # slow: the client's retries against the dead port take ~10 s more than the other cases
    pytest.param(["model@graders.judge.judge=llama_cpp_server", "graders.judge.judge.args.base_url=http://127.0.0.1:9/v1"],
                 "graders.judge.judge: cannot use judge model 'llama-cpp-python/smollm2' at http://127.0.0.1:9/v1 (APIConnectionError",
                 marks=pytest.mark.slow),
    (["graders.judge.allow_self_judge=false"], "graders.judge.judge: the judge 'hf/smollm2-135m-instruct' is the graded model"),
    (["graders.judge.rubric='Is {answer} right?'"], "graders.judge.rubric: missing placeholder(s) {target}"),
    (["graders.judge.reference=contains_typo"], "graders.judge.reference"),
])
def test_bad_judge_is_one_line_before_any_grading(harness_bin, tmp_path, overrides, expect):
    p = subprocess.run([harness_bin, "run", "experiment=tiny", "+grader@graders.judge=judge", *overrides,
                        f"results_dir={tmp_path}"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr and expect in lines[0], p.stderr
    assert not list(tmp_path.rglob("*.eval"))  # nothing graded


@pytest.mark.parametrize("text, expect", [
    ("A", "A"), ("B.", "B"), ("Answer B is better", "B"), ("a", None), ("It's a tie", "tie"),
    ("Both are equally good", "tie"), ("", None), ("I think A, not B", "A"), ("ABBA", None),
])
def test_parse_choice(text, expect):
    from harness.evaluate._pairwise import parse_choice

    assert parse_choice(text) == expect


def test_calibration_labels_bad_rows_name_file_and_line(tmp_path):
    from harness.report._judge import read_labels

    f = tmp_path / "labels.csv"
    f.write_text("task,id,label\n")
    with pytest.raises(HarnessError, match=r"labels.csv:1: missing column\(s\) model"):
        read_labels(f)
    f.write_text("task,id,model,label\nheldout,a,student,1\nheldout,b,student,maybe\n")
    with pytest.raises(HarnessError, match=r"labels.csv:3: label must be 0 or 1, got 'maybe'"):
        read_labels(f)
    with pytest.raises(HarnessError, match="calibration file not found"):
        read_labels(tmp_path / "none.csv")


def test_position_consistency_counts_only_order_consistent_verdicts():
    from harness.report._judge import position_consistency

    v = {
        "q1": {"ab": "A", "ba": "B"},  # teacher both ways: consistent, teacher wins
        "q2": {"ab": "A", "ba": "A"},  # always the first answer: position bias, not counted
        "q3": {"ab": "B", "ba": "A"},  # student both ways
        "q4": {"ab": "tie", "ba": "tie"},
        "q5": {"ab": None, "ba": "A"},  # one order unreadable: not parsed
        "q6": {"ab": "A", "ba": "B"},
    }
    r = position_consistency(v, "teacher", "student")
    assert (r["n_items"], r["n_parsed"], r["consistent"]) == (6, 5, 4)
    assert (r["a_wins"], r["b_wins"], r["ties"]) == (2, 1, 1) and r["consistency_rate"] == 0.8
    assert r["p_value"] == 1.0
