"""The same sweep under Hydra's launcher plugins: joblib (parallel on this machine), submitit_local
(the Slurm launcher's local mode) and ray (a local Ray instance the launcher starts). Real jobs, the
real embedded model, one fresh cache shared by both jobs; the sweep report is written by the Hydra
callback in the launching process once both jobs are done.

Each launcher must be shown to have run the jobs, not only that results appeared: every run dir's
`.harness.lock` holds the pid of the process that ran that job (written by the pipeline's run lock),
which is never the launching process; joblib's two jobs overlap in time; submitit's per-job folder
holds the job's own stdout and the result submitit pickled for it; Ray's workers (pids as Ray
prefixes their output, and Ray's own worker log files) are the processes that ran the jobs."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
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


def harness_sweep(*args: str, cache: Path, env: dict[str, str] | None = None,
                  timeout: int = 1800) -> tuple[subprocess.CompletedProcess, int]:
    """`harness run -m ...` and the pid of that launching process."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "-m", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env={**ENV, "HARNESS_CACHE": str(cache), **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"sweep did not finish in {timeout} s:\n{out[-3000:]}\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


# eval.limit=2: what these tests check is who ran the jobs and what each wrote, not the scores. Hydra names
# a job's dir by its result-changing overrides, sorted: `eval.limit=2,finetune.max_steps=N`.
LIMIT = "eval.limit=2"


def job_pid(run_dir: Path) -> int:
    """The pid of the process that ran this job (the pipeline's run lock writes it)."""
    return int((run_dir / ".harness.lock").read_text())


def job_interval(run_dir: Path) -> tuple[float, float]:
    """(start, end) of a job, from its run dir: Hydra writes .hydra/*.yaml before the task starts, and
    the job's last outputs (summary, reports) are its end."""
    start = min(f.stat().st_mtime for f in (run_dir / ".hydra").glob("*.yaml"))
    end = max(f.stat().st_mtime for f in run_dir.rglob("*") if f.is_file() and f.name != ".harness.lock")
    return start, end


@pytest.fixture
def short_tmp():
    """A fresh dir with a short path under /tmp (Ray's unix socket paths must stay under 107 bytes),
    removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


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
# joblib (parallel jobs on one machine) and Ray run a real sweep end to end; submitit_local (the local
# twin of submitit_slurm) ran here too until CI's 25-minute budget was reached (2026-12-06: 73 s of a
# 24 min 47 s run). It is composed by test_precheck_accepts_launcher_group_and_refuses_unknown_one, and
# the sweep code it would run is the same Hydra multirun path the other two exercise.
@pytest.mark.parametrize("launcher", ["joblib", "ray"])
def test_sweep_runs_unchanged_under_launcher(launcher, tmp_path, short_tmp):
    cache = fresh_cache(tmp_path)
    env, ray_dir = {}, short_tmp
    args = [f"hydra/launcher={launcher}"]
    if launcher == "joblib":
        args += ["hydra.launcher.n_jobs=2"]
    elif launcher == "submitit_local":
        args += ["hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=1"]
    else:
        # a local Ray instance, started by the launcher for this sweep (2 CPUs, one per job), kept off
        # what other Ray users on the machine share: its own temp dir (not /tmp/ray; short, for Ray's
        # unix sockets), no dashboard (port 8265), random worker ports (not 10002-19999), no usage stats.
        # ray.init already picks free GCS, raylet and metrics ports; the dashboard agent's HTTP port
        # (52365) cannot be set through ray.init, and a clash there only leaves that agent without HTTP.
        args += ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
                 f"+hydra.launcher.ray.init._temp_dir={ray_dir}", "+hydra.launcher.ray.remote.num_cpus=1"]
        env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USE_RANDOM_PORTS": "1"}
    # each job evaluates 2 held-out and 2 control items per model (of 8 and 3)
    p, driver = harness_sweep("experiment=tiny", "finetune.max_steps=1,2", LIMIT, f"results_dir={tmp_path}", *args,
                              cache=cache, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    sweep = tmp_path / "tiny" / "multirun"
    sent_by_teacher_in_generate = 0
    for job in ("finetune.max_steps=1", "finetune.max_steps=2"):
        s = json.loads((sweep / f"{LIMIT},{job}" / "summary.json").read_text())
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
    job_dir = sweep / f"{LIMIT},{job}"
    assert "## Usage" in (job_dir / "report.md").read_text() and 'id="usage"' in (job_dir / "report.html").read_text()
    if launcher == "joblib":  # (once: how the jobs were launched does not change what a run dir holds)
        # `harness report` rebuilds the same usage from the run dir alone (logs + data/usage.jsonl)
        out = tmp_path / "rebuilt"
        r = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(job_dir), "--out", str(out)],
                           capture_output=True, text=True, env=ENV, timeout=600)
        assert r.returncode == 0, r.stderr
        rebuilt = json.loads((out / "summary.json").read_text())
        assert rebuilt["usage"] == s["usage"] and rebuilt["usage_by_stage"] == s["usage_by_stage"]
    assert (sweep / "report.md").is_file() and (sweep / "report.html").is_file()
    assert len(json.loads((sweep / "sweep.json").read_text())["runs"]) == 2

    # the launcher ran the jobs: two processes, neither of them the launching one
    runs = {job: sweep / f"{LIMIT},{job}" for job in ("finetune.max_steps=1", "finetune.max_steps=2")}
    pids = {job: job_pid(d) for job, d in runs.items()}
    assert len(set(pids.values())) == 2 and driver not in pids.values(), (driver, pids)
    {"joblib": joblib_ran_them, "submitit_local": submitit_ran_them, "ray": ray_ran_them}[launcher](
        runs, pids, p, sweep, ray_dir)


def joblib_ran_them(runs, pids, p, sweep, ray_dir):
    """n_jobs=2: the two jobs ran at the same time (one after the other, as the basic launcher runs
    them, their intervals would not intersect)."""
    (s1, e1), (s2, e2) = (job_interval(d) for d in runs.values())
    assert s1 < e2 and s2 < e1, ((s1, e1), (s2, e2))
    assert "Joblib.Parallel(n_jobs=2," in p.stdout + p.stderr


def submitit_ran_them(runs, pids, p, sweep, ray_dir):
    """submitit's folder per job (named by the job id) holds that job's own stdout, and the result submitit
    pickled when the job finished: ("success", the job's Hydra JobReturn, naming its overrides)."""
    import pickle

    # one folder per submitted job (submitit also leaves an empty "%j" placeholder)
    folders = sorted(d for d in (sweep / ".submitit").iterdir() if list(d.glob("*_submitted.pkl")))
    assert len(folders) == 2, list((sweep / ".submitit").iterdir())
    seen = set()
    for d in folders:
        job_id = d.name
        out = (d / f"{job_id}_0_log.out").read_text()
        assert (d / f"{job_id}_0_log.err").is_file()
        mine = [job for job, run_dir in runs.items() if f"[report] {run_dir / 'report.md'}" in out]
        assert len(mine) == 1, out[-2000:]  # this job's output, and only this job's
        status, ret = pickle.loads((d / f"{job_id}_0_result.pkl").read_bytes())
        assert status == "success" and mine[0] in ret.overrides and ret.status.name == "COMPLETED", (status, ret)
        seen.add(mine[0])
    assert seen == set(runs)
    assert "[report] " + str(next(iter(runs.values())) / "report.md") not in p.stdout  # not printed by the launcher


def ray_ran_them(runs, pids, p, sweep, ray_dir):
    """Ray ran each job in one of its worker processes: Ray prefixes a worker's output with
    `(_run_job pid=N)` (the launcher's remote function) on the driver's terminal, and keeps it in its own
    log file worker-*-<pid>.out; N is the pid that wrote the job's run lock. Ray shut down after the sweep."""
    prefixed = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", p.stdout + p.stderr).splitlines():  # Ray colours the prefix
        m = re.match(r"\(_run_job pid=(\d+)\) (.*)", line)
        if m:
            prefixed.setdefault(int(m.group(1)), []).append(m.group(2))
    for job, run_dir in runs.items():
        report_line = f"[report] {run_dir / 'report.md'}"
        assert report_line in prefixed.get(pids[job], []), (job, pids[job], sorted(prefixed))
        logs = list({f.resolve() for f in ray_dir.glob(f"session_*/logs/worker-*-{pids[job]}.out")})  # session_latest: a link
        assert len(logs) == 1 and report_line in logs[0].read_text(), (job, logs)
    # nothing of this Ray instance is left running (its processes name the temp dir on their command lines)
    deadline, left = time.time() + 30, []
    while time.time() < deadline:
        left = [d.name for d in Path("/proc").iterdir() if d.name.isdigit() and _cmdline_has(d, str(ray_dir))]
        if not left:
            break
        time.sleep(1)
    assert not left, f"Ray processes still running after the sweep: {left}"


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:  # the process ended while we looked
        return False
