"""`harness run experiment=upgrade regress.sequential=true`: batches in a seeded order, an anytime-valid
stop, resume after kill -9 (the real embedded model, small: 10 islands' held-out items, batches of 10)."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.config import RegressConfig
from harness.regress import sequential_plan
from tests.conftest import HARNESS

REPO = Path(__file__).resolve().parents[1]
SMALL = ["experiment=upgrade", "regress.sequential=true", "regress.batch=10", "data.n_islands=10", "data.n_control=0",
         "eval.tasks=[heldout]", "eval.max_tokens=24"]


def _env() -> dict[str, str]:
    # this checkout's package, whichever checkout the venv's console script was installed from
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _harness(*args, timeout=1500):
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_env())


def _run_dir(results: Path) -> Path:
    return next(d for d in (results / "upgrade").iterdir() if d.is_dir() and (d / ".hydra").is_dir())


def _schema_ok(path: Path) -> dict:
    import jsonschema

    doc = json.loads(path.read_text())
    jsonschema.validate(doc, json.loads((REPO / "docs" / "regress.schema.json").read_text()))
    # SMALL gates the held-out task on both match graders: two cells, so the loops over `cells` check something
    assert sorted((c["task"], c["grader"]) for c in doc["cells"]) == [("heldout", "contains"), ("heldout", "exact")], doc["cells"]
    return doc


def _finished_logs(d: Path) -> dict[str, float]:
    return {str(p.relative_to(d)): p.stat().st_mtime for p in d.rglob("*.eval")} if d.is_dir() else {}


def test_plan_is_seeded_keeps_clusters_whole_and_stops_at_max_items():
    items = [("heldout", f"q{i}", f"c{i // 3}") for i in range(60)] + [("control", f"k{i}", "") for i in range(20)]
    s = RegressConfig(enabled=True, sequential=True, batch=10, max_items=50, seed=3)
    batches = sequential_plan(items, s)
    assert batches == sequential_plan(list(reversed(items)), s)  # the order depends on the seed, not the input order
    assert batches != sequential_plan(items, RegressConfig(enabled=True, sequential=True, batch=10, max_items=50, seed=4))
    flat = [k for b in batches for k in b]
    assert len(flat) == len(set(flat)) and 48 <= len(flat) <= 50  # whole units up to max_items
    assert all(len(b) >= 10 for b in batches[:-1]) and all(len(b) <= 12 for b in batches)  # >= batch items, whole clusters
    where = {k: n for n, b in enumerate(batches) for k in b}
    for c in range(20):  # a cluster is never split across batches, nor cut by max_items
        got = {where.get(("heldout", f"q{i}")) for i in range(3 * c, 3 * c + 3)}
        assert len(got) == 1
    assert {t for t, _ in flat} == {"heldout", "control"}  # the tasks are interleaved, not one after the other


@pytest.mark.parametrize("args, culprit", [
    (["regress.batch=0"], "regress.batch"),
    (["regress.max_items=0"], "regress.max_items"),
    (["regress.enabled=false"], "regress.enabled=true"),
    (["eval.limit=5"], "eval.limit"),
])
def test_bad_sequential_settings_are_one_line_exit_2(tmp_path, args, culprit):
    p = _harness("run", *SMALL, *args, f"results_dir={tmp_path}")
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "upgrade").exists()  # refused before any stage: no run dir, so no log either


@pytest.mark.slow
def test_degraded_candidate_stops_early_with_regression_and_a_rerun_sends_no_call(tmp_path):
    args = ["run", *SMALL, "models.current.context=true", f"results_dir={tmp_path}"]
    p = _harness(*args)
    assert p.returncode == 3, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = _run_dir(tmp_path)
    g = _schema_ok(run_dir / "regress.json")
    q = g["sequential"]
    assert g["verdict"] == "regression" and q["stopped"] == "decided"
    assert q["items_used"] < q["items_max"] == 40 and q["items_saved"] == 40 - q["items_used"]
    assert g["items"]["n_compared"] == q["items_used"]  # the verdict reads the batches up to the stop only
    batches = sorted(d.name for d in (run_dir / "logs").iterdir() if d.name.startswith("batch-"))
    assert len(batches) == q["batches_used"] < q["batches_planned"]  # no batch past the stop was evaluated
    order = json.loads((run_dir / "sequential" / "order.json").read_text())
    assert sum(len(b) for b in order["batches"]) == 40 and order["seed"] == 0
    contains = next(c for c in g["cells"] if c["grader"] == "contains")
    assert contains["verdict"] == "regression" and contains["upper"] < -0.05 and contains["p_regression_adjusted"] <= 0.05
    assert {c["grader"] for c in q["cells"]} == {"exact", "contains"}
    path = next(c for c in q["cells"] if c["grader"] == "contains")["path"]
    assert q["batches_used"] >= 2 and [x["items"] for x in path] == [10 * (i + 1) for i in range(q["batches_used"])]
    assert path[-1]["upper"] == contains["upper"]  # the plotted path ends at the verdict's bound
    assert all(a["upper"] >= b["upper"] for a, b in zip(path, path[1:]))  # a confidence sequence only narrows
    assert "Sequential gate: stopped after" in g["headline"]
    html = (run_dir / "report.html").read_text()
    assert re.search(r'<figure id="regress-sequential">\s*<img src="data:image/png;base64,', html)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["regress"]["exit_code"] == 3 and sum(s["model_calls"].values()) == 2 * q["items_used"]
    logs = _finished_logs(run_dir / "logs")
    # a finished run re-run: every batch replayed from its logs, nothing sent, the same verdict
    p = _harness(*args)
    assert p.returncode == 3, p.stdout[-3000:] + p.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["model_calls"] == {"current": 0, "candidate": 0} and s["stage_calls"]["evaluate"] == 0
    assert _finished_logs(run_dir / "logs") == logs
    g2 = json.loads((run_dir / "regress.json").read_text())
    assert (g2["verdict"], g2["sequential"]["items_used"], g2["cells"]) == (g["verdict"], q["items_used"], g["cells"])


@pytest.mark.slow
def test_model_against_itself_is_inconclusive_at_max_items_and_resumes_after_kill_9(tmp_path):
    """The same model twice cannot be shown within 5 pp on 30 items: inconclusive at max_items (exit 4).
    Killed with -9 once the first batch is finished, the same command resumes: the finished batch
    is not sent again, and the verdict is the same."""
    args = ["run", *SMALL, "regress.max_items=30", f"results_dir={tmp_path}"]
    proc = subprocess.Popen([HARNESS, *args], cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 1200
        # batch-001 is claimed only after both models finished batch-000
        while time.time() < deadline and proc.poll() is None:
            if any((tmp_path / "upgrade").glob("*/logs/batch-001")):
                break
            time.sleep(1)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run_dir = _run_dir(tmp_path)
    first = _finished_logs(run_dir / "logs" / "batch-000")
    assert len(first) == 2 and not (run_dir / "summary.json").exists()
    p = _harness(*args)
    assert p.returncode == 4, p.stdout[-3000:] + p.stderr[-3000:]
    assert _finished_logs(run_dir / "logs" / "batch-000") == first  # the finished batch was not re-sent
    s = json.loads((run_dir / "summary.json").read_text())
    assert 0 < s["model_calls"]["current"] <= 20 and 0 < s["model_calls"]["candidate"] <= 20
    g = _schema_ok(run_dir / "regress.json")
    q = g["sequential"]
    assert g["verdict"] == "inconclusive" and g["exit_code"] == 4 and q["stopped"] == "max_items"
    assert q["items_used"] == q["items_max"] == 30 and q["items_total"] == 40 and q["batches_used"] == 3
    for c in g["cells"]:
        assert c["diff"] == 0 and c["verdict"] == "inconclusive" and -0.5 < c["lower"] < -0.05 < 0 < c["upper"]
    assert "INCONCLUSIVE" in g["headline"] and "undecided at max_items" in g["headline"]
    # and once more: nothing to send
    p = _harness(*args)
    assert p.returncode == 4
    assert json.loads((run_dir / "summary.json").read_text())["model_calls"] == {"current": 0, "candidate": 0}
