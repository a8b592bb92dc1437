"""A real Hydra multirun of the tiny experiment (tests/conftest.py: tiny_sweep, Hydra's basic
launcher): the sweep report over its jobs, `harness report`'s refusals on its run dirs, and an
interrupted sweep finished by the same command. Its own module so that it runs on the other xdist
worker than test_e2e.py's runs (`--dist loadfile`)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# every test here reads a real Hydra multirun on the embedded model (tiny_sweep)
pytestmark = pytest.mark.slow


def test_sweep_report_compares_every_setting(tiny_sweep):
    sweep_dir, stdout = tiny_sweep.dir, tiny_sweep.stdout
    assert f"[sweep report] {sweep_dir / 'report.md'}" in stdout
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert jobs == ["finetune.max_steps=1", "finetune.max_steps=3"]  # readable, deterministic job dirs
    s = json.loads((sweep_dir / "sweep.json").read_text())
    assert s["kind"] == "sweep" and s["swept"] == ["finetune.max_steps"]
    assert [r["overrides"] for r in s["runs"]] == [{"finetune.max_steps": "1"}, {"finetune.max_steps": "3"}]
    # teacher and baseline answered identically in both jobs: shown once; the students per setting
    students = ["student[finetune.max_steps=1]", "student[finetune.max_steps=3]"]
    assert set(s["models"]) == {"teacher", "baseline", *students}
    pairs = {(c["a"], c["b"]) for c in s["comparisons"]}
    assert (students[0], students[1]) in pairs and (students[0], "baseline") in pairs and ("teacher", students[1]) in pairs
    n = len(s["comparisons"])
    assert all(c["correction"] == f"holm over {n} comparisons" and c["p_value"] <= c["p_adjusted"] for c in s["comparisons"])
    assert {g["student"] for g in s["gap_closed"]} == set(students)
    html = (sweep_dir / "report.html").read_text()
    assert 'id="plot-sweep"' in html and "student[finetune.max_steps=3]" in html
    # the jobs' own reports are there too
    assert all((sweep_dir / j / "report.html").is_file() for j in jobs)
    # one interval method everywhere (issue 29): a job's own student - baseline is the sweep's, same numbers and method
    own = json.loads((sweep_dir / jobs[1] / "summary.json").read_text())["comparisons"]
    mine = {(c["task"], c["grader"]): c for c in own if (c["a"], c["b"]) == ("student", "baseline")}
    theirs = [c for c in s["comparisons"] if (c["a"], c["b"]) == (students[1], "baseline")]
    assert theirs and all((c["ci_low"], c["ci_high"], c["test"]) == (mine[(c["task"], c["grader"])]["ci_low"],
                          mine[(c["task"], c["grader"])]["ci_high"], mine[(c["task"], c["grader"])]["test"]) for c in theirs)
    assert all(c["ci_high"] > c["ci_low"] and c["outcome"] for c in s["comparisons"])
    # the best of the two students, naive and with the selection accounted for, side by side
    w = s["winner"]
    assert w["model"] in students and w["n_arms"] == 2 and 0 < w["adjusted_p"] <= 1 and w["naive_test"].startswith("score interval")
    md = (sweep_dir / "report.md").read_text()
    assert "Best of 2 students" in md and "Selection accounted for" in md and "## Noise diagnostics" in md


def _one_line_error(args):
    from tests.conftest import HARNESS

    p = subprocess.run([HARNESS, "report", *map(str, args)], capture_output=True, text=True, timeout=900)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_report_refuses_bad_input_with_one_line(tiny_sweep, tmp_path):
    sweep_dir = tiny_sweep.dir
    job = sweep_dir / "finetune.max_steps=1"
    # nothing finished here
    (tmp_path / "empty").mkdir()
    assert "no finished run" in _one_line_error([tmp_path / "empty"])
    # a corrupt (truncated) inspect log: named, with what to do
    corrupt = tmp_path / "corrupt"
    shutil.copytree(job, corrupt)
    log = sorted((corrupt / "logs" / "student").glob("*.eval"))[0]
    log.write_bytes(log.read_bytes()[:500])
    msg = _one_line_error([corrupt])
    assert str(log) in msg and "re-run" in msg
    # two runs evaluated on different items cannot be compared
    fewer = tmp_path / "fewer"
    shutil.copytree(job, fewer)
    for f in (fewer / "logs").rglob("*_control_*.eval"):
        f.unlink()
    msg = _one_line_error([sweep_dir / "finetune.max_steps=3", fewer, "--out", tmp_path / "out"])
    assert "evaluation items differ" in msg and str(fewer) in msg
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_an_interrupted_sweep_finishes_with_the_same_command(tiny_sweep, tmp_path):
    """A sweep stopped in its second job, during the student's evaluation (that job's summary, reports
    and student logs not yet written, nor the sweep report): the same command, run again, finishes it.
    The finished job is replayed from its logs, no model called; the unfinished job sends only the
    student's requests (its teacher answers and fine-tune are in the cache, the other models' logs are
    finished); the sweep report covers both jobs. (The state a kill leaves inside one run: test_resume.py.)"""
    from tests.conftest import HARNESS

    results = tmp_path / "results"
    shutil.copytree(tiny_sweep.dir.parents[1], results, symlinks=True)  # <results_dir>/tiny/multirun
    sweep = results / "tiny" / "multirun"
    done, cut = sweep / "finetune.max_steps=1", sweep / "finetune.max_steps=3"
    before = json.loads((done / "summary.json").read_text())
    for f in ("summary.json", "report.md", "report.html"):
        (cut / f).unlink()
    shutil.rmtree(cut / "logs" / "student")
    for f in ("sweep.json", "report.md", "report.html"):
        (sweep / f).unlink()
    args = [a if not a.startswith("results_dir=") else f"results_dir={results}" for a in tiny_sweep.args]
    p = subprocess.run([HARNESS, "run", *args], capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"[sweep report] {sweep / 'report.md'}" in p.stdout
    s1, s3 = (json.loads((d / "summary.json").read_text()) for d in (done, cut))
    assert s1["model_calls"] == {"teacher": 0, "baseline": 0, "student": 0} and s1["scores"] == before["scores"]
    assert s3["model_calls"] == {"teacher": 0, "baseline": 0, "student": 11} and s3["stage_calls"]["generate"] == 0
    assert s3["finetune"]["steps"] == 3 and {r["model"] for r in s3["scores"]} == {"teacher", "baseline", "student"}
    s = json.loads((sweep / "sweep.json").read_text())
    assert [r["overrides"] for r in s["runs"]] == [{"finetune.max_steps": "1"}, {"finetune.max_steps": "3"}]
    assert (sweep / "report.html").is_file() and (cut / "report.html").is_file()
