"""The same sweep under Hydra's launcher plugins: joblib (parallel on this machine) and submitit_local
(the Slurm launcher's local mode). Real jobs, the real embedded model; the sweep report is written
by the Hydra callback in the launching process once both jobs are done."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# each job is its own process: one thread each keeps 2 parallel jobs on 2 cores
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def harness_run(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], capture_output=True, text=True,
                          env=ENV, cwd=REPO, timeout=timeout)


def test_precheck_accepts_launcher_group_and_refuses_unknown_one(tmp_path):
    # a launcher that is not installed / does not exist: one line, exit 2, no job started
    p = harness_run("-m", "experiment=tiny", "finetune.max_steps=1,2", "hydra/launcher=nope", f"results_dir={tmp_path}")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "hydra/launcher" in p.stderr
    assert not (tmp_path / "tiny").exists()
    # the real launchers compose (the group override passes the precheck)
    from harness.cli import _precheck

    for launcher in ("joblib", "submitit_local"):
        _precheck(["experiment=tiny", f"hydra/launcher={launcher}", f"results_dir={tmp_path}"])


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=1"],
], ids=["joblib", "submitit_local"])
def test_sweep_runs_unchanged_under_launcher(launcher, tmp_path):
    p = harness_run("-m", "experiment=tiny", "finetune.max_steps=1,2", f"results_dir={tmp_path}", *launcher)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep = tmp_path / "tiny" / "multirun"
    for job in ("finetune.max_steps=1", "finetune.max_steps=2"):
        s = json.loads((sweep / job / "summary.json").read_text())
        assert s["finetune"]["steps"] == int(job[-1]) and s["scores"]
    assert (sweep / "report.md").is_file() and (sweep / "report.html").is_file()
    assert len(json.loads((sweep / "sweep.json").read_text())["runs"]) == 2
