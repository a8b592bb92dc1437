"""The same sweep under Hydra's launcher plugins: joblib (parallel on this machine), submitit_local
(the Slurm launcher's local mode) and ray (a local Ray instance the launcher starts). Real jobs, the
real embedded model, one fresh cache shared by both jobs; the sweep report is written by the Hydra
callback in the launching process once both jobs are done."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# each job is its own process: one thread each keeps 2 parallel jobs on 2 cores
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def harness_run(*args: str, timeout: int = 1800, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = ENV if cache is None else {**ENV, "HARNESS_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def fresh_cache(tmp_path: Path) -> Path:
    """An empty cache but for the converted embedded model (linked from the usual cache: the
    conversion is not what these tests are about)."""
    models = Path(os.environ.get("HARNESS_CACHE", REPO / ".cache" / "harness")) / "models"
    cache = tmp_path / "cache"
    cache.mkdir()
    if models.is_dir():
        (cache / "models").symlink_to(models.resolve(), target_is_directory=True)
    return cache


def test_precheck_accepts_launcher_group_and_refuses_unknown_one(tmp_path):
    # a launcher that is not installed / does not exist: one line, exit 2, no job started
    p = harness_run("-m", "experiment=tiny", "finetune.max_steps=1,2", "hydra/launcher=nope", f"results_dir={tmp_path}")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "hydra/launcher" in p.stderr
    assert not (tmp_path / "tiny").exists()
    # the real launchers compose (the group override passes the precheck)
    from harness.cli import _precheck

    for launcher in ("joblib", "submitit_local", "ray"):
        _precheck(["experiment=tiny", f"hydra/launcher={launcher}", f"results_dir={tmp_path}"])


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=1"],
    # a local Ray instance, started by the launcher for this sweep (2 CPUs, one per job)
    ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
     "+hydra.launcher.ray.remote.num_cpus=1"],
], ids=["joblib", "submitit_local", "ray"])
def test_sweep_runs_unchanged_under_launcher(launcher, tmp_path):
    cache = fresh_cache(tmp_path)
    p = harness_run("-m", "experiment=tiny", "finetune.max_steps=1,2", f"results_dir={tmp_path}", *launcher, cache=cache)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep = tmp_path / "tiny" / "multirun"
    sent_by_teacher_in_generate = 0
    for job in ("finetune.max_steps=1", "finetune.max_steps=2"):
        s = json.loads((sweep / job / "summary.json").read_text())
        assert s["finetune"]["steps"] == int(job[-1]) and s["scores"]
        sent_by_teacher_in_generate += s["stage_calls"]["generate"]
        # usage: both jobs account for the teacher's answers (built once, recorded with the cache entry)
        assert s["usage_by_stage"]["generate"]["teacher"]["calls"] == s["data"]["n_train"]
        u = s["usage"]["teacher"]
        assert u["calls"] > s["data"]["n_train"] and u["input_tokens"] > 0 and u["output_tokens"] > 0 and u["cost_usd"] == 0
        assert 0 < u["latency_p50_s"] <= u["latency_p95_s"]
        assert set(s["usage_by_stage"]["evaluate"]) == {"teacher", "baseline", "student"}
    # the jobs share one fresh cache: the teacher's answers were generated once, not once per job
    assert sent_by_teacher_in_generate == s["data"]["n_train"]
    assert "## Usage" in (sweep / job / "report.md").read_text() and 'id="usage"' in (sweep / job / "report.html").read_text()
    # `harness report` rebuilds the same usage from the run dir alone (logs + data/usage.jsonl)
    out = tmp_path / "rebuilt"
    r = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(sweep / job), "--out", str(out)],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    rebuilt = json.loads((out / "summary.json").read_text())
    assert rebuilt["usage"] == s["usage"] and rebuilt["usage_by_stage"] == s["usage_by_stage"]
    assert (sweep / "report.md").is_file() and (sweep / "report.html").is_file()
    assert len(json.loads((sweep / "sweep.json").read_text())["runs"]) == 2
