"""One small real end-to-end run: the real embedded model, real fine-tune steps, real inspect logs.

The session's shared runs (tests/conftest.py: tiny_run, tiny_grid) run `harness run
experiment=tiny` as a user would; the tests here check the run dir, the logs and summary.json against
the documented schema. A second invocation of the same command must land in the same run dir and
resume from the finished logs without sending a single evaluation request (on a copy: the shared run
stays as built, for the other tests that read it).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# every test here reads a real run of the embedded model (tiny_run, tiny_grid; the sweep's tests: test_sweep.py)
pytestmark = pytest.mark.slow


# the harness's own stage lines: `[stage] ...` (print(f"[...] ...") in harness/)
HARNESS_LINE = re.compile(r"^\[(data|generate|questions|finetune|evaluate|judge|model|serve|cache|report|summary|regress|sequential"
                          r"|sweep report|log)\] ")


def test_terminal_is_the_harness_and_inspect(tiny_run):
    """The terminal of a run shows the harness's stage lines and inspect's display, nothing of the
    libraries underneath (transformers' progress bars, Python warnings, transformers' own log lines):
    those are in the run's cli.log, and a `[log]` line says so."""
    run_dir, stdout, stderr = tiny_run.dir, tiny_run.stdout, tiny_run.stderr
    assert stderr == "", stderr[-3000:]
    # inspect's display: from its "Running N tasks..." to its "Completed all tasks in '<log dir>' successfully"
    # (which it wraps at 80 columns off a terminal), per model
    outside, inside, closing, blocks = [], False, False, 0
    for line in stdout.splitlines():
        if re.fullmatch(r"Running \d+ tasks?\.\.\.", line.strip()):
            inside, blocks = True, blocks + 1
        elif inside:
            closing = closing or line.startswith("Completed all tasks in ")
            inside = not (closing and line.rstrip().endswith("' successfully"))
            closing = closing and inside
        elif line.strip():
            outside.append(line)
    assert blocks == 3 and not inside  # teacher, student, baseline
    assert [x for x in outside if not HARNESS_LINE.match(x)] == [] and len(outside) > 10
    log = (run_dir / "cli.log").read_text()
    # during the fine-tune peft reads a transformers property deprecated in v5: a FutureWarning, kept in cli.log
    assert "[py.warnings][WARNING]" in log and "FutureWarning: `is_gradient_checkpointing` is deprecated" in log
    assert re.fullmatch(rf"\[log\] \d+ library warnings? \(.*py\.warnings \d+.*\) in {re.escape(str(run_dir / 'cli.log'))}",
                        stdout.strip().splitlines()[-1]), stdout[-500:]
    # the warning that meant a wrong setting is gone at its source: a greedy hf/ model is handed no temperature
    assert "generation flags are not valid" not in log + stdout


def test_run_dir_layout(tiny_run):
    run_dir, stdout = tiny_run.dir, tiny_run.stdout
    assert f"[report] {run_dir / 'report.md'}" in stdout
    for f in ["summary.json", "report.md", "report.html", ".hydra/config.yaml", "data/domain.md", "data/train.jsonl",
              "data/provenance.jsonl", "data/eval.jsonl", "student/student.json"]:
        assert (run_dir / f).is_file(), f
    assert not list(run_dir.rglob(".*.tmp*"))  # no half-written files left behind


def test_training_file_is_openai_chat_format_with_provenance(tiny_run):
    run_dir = tiny_run.dir
    rows = [json.loads(x) for x in (run_dir / "data/train.jsonl").read_text().splitlines()]
    prov = [json.loads(x) for x in (run_dir / "data/provenance.jsonl").read_text().splitlines()]
    assert len(rows) == len(prov) == 8
    for r, p in zip(rows, prov):
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert r["messages"][1]["content"].strip()
        assert "Veshari" not in r["messages"][1]["content"]  # the student never sees the passage
        assert {"teacher_model", "teacher_prompt_sha256", "sampling", "timestamp"} <= set(p)
    evals = [json.loads(x)["question"] for x in (run_dir / "data/eval.jsonl").read_text().splitlines()]
    blob = (run_dir / "data/train.jsonl").read_text()
    assert not any(q in blob for q in evals)


def test_logs_are_real_inspect_logs(tiny_run):
    from inspect_ai.log import list_eval_logs, read_eval_log

    run_dir = tiny_run.dir
    for alias in ("teacher", "baseline", "student"):
        logs = [read_eval_log(i) for i in list_eval_logs(str(run_dir / "logs" / alias))]
        assert {log.eval.task for log in logs} == {"heldout", "control"}
        for log in logs:
            assert log.status == "success"
            assert log.eval.metadata["alias"] == alias
            for s in log.samples:
                assert set(s.scores) == {"exact", "contains"}
                assert "raw" in s.scores["exact"].metadata  # the grade says why
    teacher = [read_eval_log(i) for i in list_eval_logs(str(run_dir / "logs" / "teacher"))]
    heldout = next(log for log in teacher if log.eval.task == "heldout")
    assert "Veshari Archipelago" in heldout.samples[0].input[-1].text  # the teacher is given the passage


def test_summary_matches_schema_and_counts(tiny_run):
    import jsonschema

    run_dir = tiny_run.dir
    s = json.loads((run_dir / "summary.json").read_text())
    schema = json.loads((REPO / "docs" / "summary.schema.json").read_text())
    jsonschema.validate(s, schema)
    assert s["schema_version"] == 1 and s["experiment"] == "tiny"
    assert set(s["models"]) == {"teacher", "baseline", "student"}
    assert s["models"]["student"] != s["models"]["baseline"]
    cells = {(r["task"], r["model"], r["grader"]): r for r in s["scores"]}
    assert len(cells) == 2 * 3 * 2
    assert all(r["n"] == 8 for (t, _, _), r in cells.items() if t == "heldout")
    for r in s["scores"]:
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    # teacher: 8 answers to write + 11 evaluation items; the others only evaluate
    assert s["model_calls"] == {"teacher": 8 + 11, "baseline": 11, "student": 11}
    assert set(s["stage_seconds"]) == {"data", "generate", "finetune", "evaluate", "report"}
    assert s["finetune"]["steps"] == 3
    # paired comparisons: every pair on every task x grader, Holm-adjusted, aligned by sample id
    assert {(c["a"], c["b"]) for c in s["comparisons"]} == {("student", "baseline"), ("teacher", "student"), ("teacher", "baseline")}
    assert len(s["comparisons"]) == 2 * 2 * 3
    for c in s["comparisons"]:
        assert c["p_value"] <= c["p_adjusted"] <= 1 and c["significant"] == (c["p_adjusted"] < 0.05)
        assert c["n_pairs"] == (8 if c["task"] == "heldout" else 3)
    assert {(g["task"], g["grader"]) for g in s["gap_closed"]} == {(t, g) for t in ("heldout", "control") for g in ("exact", "contains")}
    # held out by construction, and checked: no leak by any check, nothing deduplicated
    assert s["data"]["leak_overlap_rate"] == 0 and s["data"]["n_removed_duplicates"] == 0
    assert set(s["data"]["leak"]["checks"]) == {"exact", "ngram", "minhash", "embedding"}
    assert s["data"]["card"]["map"]["points"].keys() == {"train", "heldout", "control"}
    # the in-context teacher beats the context-free baseline on the made-up domain
    assert cells[("heldout", "teacher", "contains")]["accuracy"] > cells[("heldout", "baseline", "contains")]["accuracy"]


def test_warm_rerun_lands_in_same_dir_and_calls_no_model(tiny_run, tmp_path):
    from tests.conftest import HARNESS

    # the finished run, copied: the same command with results_dir=<the copy> re-runs it there
    results = tmp_path / "results"
    run_dir = results / tiny_run.dir.relative_to(tiny_run.dir.parents[1])
    shutil.copytree(tiny_run.dir, run_dir, symlinks=True)
    cmd = [a if not a.startswith("results_dir=") else f"results_dir={results}" for a in tiny_run.args]
    assert cmd[-1] == "cache=false"
    before = json.loads((run_dir / "summary.json").read_text())
    # the cold run wrote the cache; the finished evaluation logs are re-used by eval_set. The Hugging Face
    # progress bars are asked for (off by default), so a model load would show below
    p = subprocess.run([HARNESS, "run", *cmd[:-1], "cache=true"], capture_output=True, text=True, timeout=1500, cwd=REPO,
                       env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "0"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"[report] {run_dir / 'report.md'}" in p.stdout  # the same run dir: named by the overrides, not by when
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["model_calls"] == {"teacher": 0, "baseline": 0, "student": 0}
    assert s["scores"] == before["scores"]
    assert s["usage"] == before["usage"] and s["usage"]["teacher"]["calls"] > 0  # what the results cost, not this run
    # the fine-tune was not run again: its line says it came from the cache (not a time bound: those flake)
    ft = [line for line in p.stdout.splitlines() if line.startswith("[finetune] student:")]
    assert len(ft) == 1 and ft[0].endswith("(cached)"), p.stdout[-3000:]
    # the same results, field for field, but for what this invocation did (config: cache=false -> true) and
    # where the run dir is (the copy: `paths` name it, which is also where the re-run landed)
    assert (s["paths"]["logs"], s["paths"]["data"]) == (str(run_dir / "logs"), str(run_dir / "data"))
    here = ("logs", "data")
    assert {k: v for k, v in s["paths"].items() if k not in here} == {k: v for k, v in before["paths"].items() if k not in here}  # the cache's
    per_run = ("stage_seconds", "model_calls", "stage_calls", "config", "paths")
    assert {k: v for k, v in s.items() if k not in per_run} == {k: v for k, v in before.items() if k not in per_run}
    # and no graded model was even loaded (transformers prints this line for each one inspect's hf
    # provider loads): finished logs need none (the embedding cache: tests/test_warm.py)
    assert "Loading weights" not in p.stderr


def test_report_rebuilds_from_logs(tiny_run, tmp_path):
    from tests.conftest import HARNESS

    run_dir = tiny_run.dir
    p = subprocess.run([HARNESS, "report", str(run_dir), "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["scores"] == json.loads((run_dir / "summary.json").read_text())["scores"]
    assert "| heldout | contains | 8 |" in (tmp_path / "report.md").read_text()
    bad = subprocess.run([HARNESS, "report", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=900)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("HARNESS_REQUIRE_CHROMIUM"), reason="chromium not installed (CI installs it)")
def test_report_html_renders_self_contained_in_chromium(tiny_run, tmp_path):
    """Render report.html in headless Chromium, as a reader would, and check the DOM."""
    import html.parser

    run_dir = tiny_run.dir
    assert CHROMIUM, "HARNESS_REQUIRE_CHROMIUM is set but chromium is missing"
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (run_dir / "report.html").as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]

    class DOM(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.imgs, self.refs, self.tags, self.text = set(), [], [], set(), []

        def handle_data(self, data):
            self.text.append(data)

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            a = dict(attrs)
            if tag == "table":
                self.tables.add(a.get("id"))
            if tag == "img":
                self.imgs.append(a.get("src", ""))
            for k in ("src", "href"):
                if a.get(k):
                    self.refs.append(a[k])

    dom = DOM()
    dom.feed(p.stdout)
    assert {"models", "scores", "comparisons", "gap", "timings"} <= dom.tables
    assert {"data-groups", "leak-pairs"} <= dom.tables  # the data card
    assert len(dom.imgs) == 3 and all(s.startswith("data:image/png;base64,") and len(s) > 1000 for s in dom.imgs)
    assert not [r for r in dom.refs if not r.startswith("data:")]  # nothing that could hit the network
    assert "script" not in dom.tags  # by design the page runs nothing (harness/report/_html.py)
    # the model's raw answers (the flips) are the page's text, not markup; markup in model output: test_report.py
    flips = json.loads((run_dir / "summary.json").read_text())["flips"]
    text = "".join(dom.text)
    assert flips and all(f["answer_a"].strip() in text and f["answer_b"].strip() in text for f in flips)


def test_model_grid_fine_tunes_and_compares_every_student(tiny_run, tiny_grid):
    grid_dir, stdout = tiny_grid.dir, tiny_grid.stdout
    s = json.loads((grid_dir / "summary.json").read_text())
    one = json.loads((tiny_run.dir / "summary.json").read_text())
    assert s["students"] == ["student", "student_b"]
    # the first student is the tiny run's (same settings: its fine-tune came from the cache); the
    # second has its own settings, so its own fine-tune and its own model string
    assert "[finetune] student: lora:" in stdout and "(cached)" in stdout.split("[finetune] student:")[1].splitlines()[0]
    assert s["models"]["student"] == one["models"]["student"] != s["models"]["student_b"]
    assert s["finetunes"]["student"]["steps"] == 3 and s["finetunes"]["student_b"]["steps"] == 1
    assert s["stage_calls"]["generate"] == 0 < s["model_calls"]["student_b"]  # teacher answers re-used
    assert (grid_dir / "students" / "student_b" / "student.json").is_file() and (grid_dir / "student" / "student.json").is_file()
    pairs = {(c["a"], c["b"]) for c in s["comparisons"]}
    assert {("student", "baseline"), ("student_b", "baseline"), ("teacher", "student_b"), ("student", "student_b")} <= pairs
    n = len(s["comparisons"])
    assert all(c["correction"] == f"holm over {n} comparisons" for c in s["comparisons"])
    assert {g["student"] for g in s["gap_closed"]} == {"student", "student_b"}
    assert "lora.r=4" in s["model_notes"]["student_b"]
    md = (grid_dir / "report.md").read_text()
    assert "| student_b | lora | 8 | 1 |" in md and "student − student\\_b" in md  # labels escaped like any cell


def test_sweep_report_over_runs_with_different_students(tiny_run, tiny_grid, tmp_path):
    """One run with one student and one with two: the shared models once, every student compared."""
    from tests.conftest import HARNESS

    p = subprocess.run([HARNESS, "report", str(tiny_run.dir), str(tiny_grid.dir), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "sweep.json").read_text())
    b = next(lab for r in s["runs"] for a, lab in r["labels"].items() if a == "student_b")
    # the student is the same fine-tune with the same answers in both runs: shown once
    assert {"teacher", "baseline", "student", b} == set(s["models"])
    pairs = {(c["a"], c["b"]) for c in s["comparisons"]}
    assert {(b, "baseline"), ("teacher", b), ("student", b)} <= pairs
    # usage per setting x model, and the calls each job sent
    rows = {(u["setting"], u["model"]): u for u in s["usage"]}
    grid = json.loads((tiny_grid.dir / "summary.json").read_text())
    assert rows[(tiny_grid.dir.name, "student_b")]["sent"] == grid["model_calls"]["student_b"] > 0
    # what the teacher's part cost is the same in both runs (the grid re-used the answers)
    assert rows[(tiny_run.dir.name, "teacher")]["calls"] == rows[(tiny_grid.dir.name, "teacher")]["calls"] > 0
    assert "## Usage" in (tmp_path / "report.md").read_text() and 'id="usage"' in (tmp_path / "report.html").read_text()
