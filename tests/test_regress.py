"""The regression gate end to end, on the real embedded model: evaluation-only runs, `harness run
experiment=upgrade` gating itself, and `harness regress` over stored runs (exit codes, regress.json
against its schema, bad input)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import HARNESS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _harness(*args, cwd=REPO, timeout=1500):
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _schema_ok(path: Path) -> dict:
    import jsonschema

    doc = json.loads(path.read_text())
    jsonschema.validate(doc, json.loads((REPO / "docs" / "regress.schema.json").read_text()))
    # experiment=upgrade gates regress.tasks=[heldout] on both match graders: two cells, so the checks
    # over `cells` below (all(...), loops) always have something to check
    assert sorted((c["task"], c["grader"]) for c in doc["cells"]) == [("heldout", "contains"), ("heldout", "exact")], doc["cells"]
    return doc


@pytest.fixture(scope="module")
def three_models(module_tmp):
    """One evaluation-only run of three aliases on the 40 held-out items of 10 islands:
    `current` = the model with the passage in context, `same` = exactly that again, `candidate` =
    the same weights without the passage (clearly degraded). Its own gate: current vs candidate."""
    results = module_tmp("results")
    p = _harness("run", "experiment=upgrade", f"results_dir={results}", "data.n_islands=10", "data.n_control=0",
                 "eval.tasks=[heldout]", "eval.max_tokens=32", "models.current.context=true",
                 "+model@models.same=smollm2", "models.same.context=true")
    return results / "upgrade", p


def test_evaluation_only_run_skips_generate_and_finetune_and_gates(three_models):
    exp_dir, p = three_models
    assert p.returncode == 3, p.stdout[-3000:] + p.stderr[-3000:]  # the degraded candidate is a regression
    assert "[generate] skipped" in p.stdout and "[finetune] skipped" in p.stdout
    run_dir = next(d for d in exp_dir.iterdir() if (d / "summary.json").is_file())
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["students"] == [] and s["finetunes"] == {} and set(s["models"]) == {"current", "candidate", "same"}
    assert not (run_dir / "data" / "train.jsonl").exists() and not (run_dir / "student").exists()
    assert s["data"]["n_train"] == 0 and s["data"]["n_eval"] == 40
    # every pair of aliases is compared (an evaluation-only run has no teacher/student pairs)
    assert {(c["a"], c["b"]) for c in s["comparisons"]} == {("candidate", "current"), ("same", "current"), ("same", "candidate")}
    assert s["regress"]["verdict"] == "regression" and s["regress"]["exit_code"] == 3
    g = _schema_ok(run_dir / "regress.json")
    cell = next(c for c in g["cells"] if c["grader"] == "contains")
    assert cell["verdict"] == "regression" and cell["upper"] < -0.05 and cell["p_regression_adjusted"] < 0.05
    assert cell["outcome"] == "worse"  # the outcome vocabulary every report shares (docs/statistics.md)
    assert cell["n"] == 40 and cell["n10"] is not None
    assert g["flips"] and g["flips"][0]["direction"] == "right→wrong"
    assert "REGRESSION" in g["headline"] and "Regression gate" in (run_dir / "report.html").read_text()
    assert "## Verdict" in (run_dir / "report.md").read_text()


def test_a_model_against_itself_passes(three_models):
    exp_dir, _ = three_models
    run_dir = next(d for d in exp_dir.iterdir() if (d / "summary.json").is_file())
    out = run_dir.parent / "self-check"
    p = _harness("regress", "--baseline", f"{run_dir}:current", "--candidate", f"{run_dir}:same", "--margin", "0.1",
                 "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    g = _schema_ok(out / "regress.json")
    assert g["verdict"] == "pass" and g["exit_code"] == 0
    for c in g["cells"]:
        assert c["diff"] == 0 and c["n10"] == c["n01"] == 0 and -0.1 < c["lower"] < 0  # not a zero-width interval
    assert "PASS" in p.stdout
    # the same two models at a 2 pp margin: 40 items cannot show it -> inconclusive, exit 4, with an n that would
    p = _harness("regress", "--baseline", f"{run_dir}:current", "--candidate", f"{run_dir}:same", "--margin", "0.02",
                 "--out", str(out))
    assert p.returncode == 4, p.stdout + p.stderr
    g = _schema_ok(out / "regress.json")
    assert g["verdict"] == "inconclusive" and all(c["required_n"] > 40 for c in g["cells"])
    assert "Not evidence of no difference" in g["headline"]
    p = _harness("regress", "--baseline", f"{run_dir}:current", "--candidate", f"{run_dir}:same", "--margin", "0.02",
                 "--inconclusive", "pass", "--out", str(out))
    assert p.returncode == 0 and json.loads((out / "regress.json").read_text())["verdict"] == "inconclusive"


@pytest.fixture(scope="module")
def five_items(module_tmp):
    """Bring-your-own evaluation items (JSONL, no training file) in an evaluation-only experiment."""
    d = module_tmp("byo")
    rows = [{"id": f"q{k}", "question": q, "answer": a} for k, (q, a) in enumerate(
        [("What is the capital of France?", "Paris"), ("How many legs does a spider have?", "8"),
         ("What colour is the sky on a clear day?", "blue"), ("What is 2 + 3?", "5"), ("Who wrote Hamlet?", "Shakespeare")])]
    (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = d / "results"
    p = _harness("run", "experiment=upgrade", "data=jsonl", f"data.eval_path={d / 'eval.jsonl'}", "data.n_control=0",
                 "eval.tasks=[heldout]", "eval.max_tokens=24", "regress.enabled=false", f"results_dir={results}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return next(x for x in (results / "upgrade").iterdir() if (x / "summary.json").is_file())


def test_five_items_are_inconclusive_and_say_how_many_would_decide(five_items):
    p = _harness("regress", "--baseline", f"{five_items}:current", "--candidate", f"{five_items}:candidate")
    assert p.returncode == 4, p.stdout + p.stderr
    g = _schema_ok(five_items / "regress.json")
    assert g["verdict"] == "inconclusive" and g["items"]["n_compared"] == 5
    assert all(c["verdict"] == "inconclusive" and c["required_n"] > 5 for c in g["cells"])
    assert "required n" in p.stdout


def test_runs_on_different_items_are_refused_unless_allow_subset(five_items, three_models):
    exp_dir, _ = three_models
    run_dir = next(d for d in exp_dir.iterdir() if (d / "summary.json").is_file())
    before = set(five_items.iterdir())
    p = _harness("regress", "--baseline", f"{run_dir}:current", "--candidate", f"{five_items}:candidate")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert "evaluation items differ" in p.stderr and "--allow-subset" in p.stderr
    assert set(five_items.iterdir()) == before  # nothing written
    p = _harness("regress", "--baseline", f"{run_dir}:current", "--candidate", f"{five_items}:candidate", "--allow-subset")
    assert p.returncode == 2 and "share no evaluation item" in p.stderr  # disjoint item sets: nothing to compare


@pytest.mark.parametrize("change, culprit", [
    ("prompt", "eval.prompt differs between"), ("system", "eval.system differs between"),
    ("grader", "graders.contains differs between")])
def test_runs_whose_prompts_or_grader_definitions_differ_are_refused(five_items, tmp_path, change, culprit):
    """docs/regress.md: the gate compares runs evaluated alike. A run whose models saw another prompt,
    or whose scores came from another definition of a grader, is refused in one line (exit 2) naming
    both runs, and nothing is written. The other run: five_items' run dir as a run with that change
    would have recorded it in its summary.json (config, and the grader fingerprint it records)."""
    from harness.config import grader_fingerprint

    other = tmp_path / "other"
    shutil.copytree(five_items, other)
    s = json.loads((other / "summary.json").read_text())
    cfg = s["config"]
    if change == "grader":
        assert cfg["graders"]["contains"]["extract"] != "first_line"
        cfg["graders"]["contains"]["extract"] = "first_line"
    else:
        cfg["eval"][change] = "Reply in French. " + str(cfg["eval"][change])
    s["grader_fingerprints"] = {n: grader_fingerprint(g, cfg["eval"]) for n, g in cfg["graders"].items()}
    (other / "summary.json").write_text(json.dumps(s))
    before = {d: sorted(x.name for x in d.iterdir()) for d in (five_items, other)}
    p = _harness("regress", "--baseline", f"{five_items}:current", "--candidate", f"{other}:candidate", "--out", str(tmp_path / "out"))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: ") and culprit in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert str(five_items) in lines[0] and str(other) in lines[0]
    assert {d: sorted(x.name for x in d.iterdir()) for d in (five_items, other)} == before and not (tmp_path / "out").exists()
    # unchanged, the copy gates (the refusal was the change, not the copy)
    shutil.copy(five_items / "summary.json", other / "summary.json")
    p = _harness("regress", "--baseline", f"{five_items}:current", "--candidate", f"{other}:candidate", "--out", str(tmp_path / "out"))
    assert p.returncode == 4, p.stdout + p.stderr


@pytest.mark.parametrize("args, culprit", [
    (["--baseline", "/nonexistent/run", "--candidate", "/nonexistent/run2"], "/nonexistent/run"),
    (["--baseline", "{run}:nosuch", "--candidate", "{run}:candidate"], "nosuch"),
    (["--baseline", "{run}:current", "--candidate", "{run}:candidate", "--margin", "1.5"], "margin"),
    (["--baseline", "{run}:current", "--candidate", "{run}:candidate", "--alpha", "0"], "alpha"),
    (["--baseline", "{run}:current", "--candidate", "{run}:current"], "same model"),
    (["--baseline", "{unfinished}:current", "--candidate", "{run}:candidate"], "summary.json"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(five_items, tmp_path, args, culprit):
    (tmp_path / "unfinished" / ".hydra").mkdir(parents=True)
    args = [a.format(run=five_items, unfinished=tmp_path / "unfinished") for a in args]
    before = sorted(p.name for p in five_items.iterdir())
    p = _harness("regress", *args)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error:") and culprit in lines[0], p.stderr
    assert sorted(x.name for x in five_items.iterdir()) == before


def test_report_rebuild_keeps_the_gate_section(three_models):
    exp_dir, _ = three_models
    run_dir = next(d for d in exp_dir.iterdir() if (d / "summary.json").is_file() and (d / "regress.json").is_file())
    before = json.loads((run_dir / "regress.json").read_text())
    p = _harness("report", str(run_dir))
    assert p.returncode == 0, p.stdout + p.stderr
    html = (run_dir / "report.html").read_text()
    assert 'id="regress"' in html and "REGRESSION" in html and 'id="verdict"' in html
    assert json.loads((run_dir / "regress.json").read_text()) == before
