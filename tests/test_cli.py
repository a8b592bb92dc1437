"""The `harness` CLI as a user meets it, through real processes: one line per failure with the right
exit code, Hydra's own flags, a user config dir searched before the packaged defaults, `experiments`,
`--version`, shell completion and `harness init`."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGED = REPO / "conf"  # the config groups; the experiments are REPO / "experiments"


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("HARNESS_CONFIG_DIR", "HARNESS_DEBUG")}
    e.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=e, cwd=cwd or REPO, timeout=1500)


def one_line(p: subprocess.CompletedProcess, code: int, prefix: str, after_progress: bool = False) -> str:
    """The error invariant: the exit code, exactly one line on stderr, that line's prefix, no traceback.
    `after_progress`: the run got going before it failed, so stage progress (e.g. the embedded model's
    first conversion on a cold cache) may precede the error, which is then the last and only `harness:` line."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    if after_progress:
        assert [x for x in lines if x.startswith("harness:")] == lines[-1:], p.stderr[-3000:]
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith(prefix), p.stderr[-3000:]
    assert "Traceback" not in p.stderr + p.stdout
    return lines[0]


@pytest.fixture
def user_conf(tmp_path):
    """A user's project as `harness init` lays it out: its config dir `conf/` with a model entry shadowing
    the packaged `smollm2`, and its own experiment in the sibling `experiments/`."""
    d = tmp_path / "conf"
    (d / "model").mkdir(parents=True)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "mine.yaml").write_text(
        "# @package _global_\n# My experiment: the tiny run with my model prices\ndefaults:\n  - tiny\n\nexperiment: mine\n")
    packaged = (PACKAGED / "model" / "smollm2.yaml").read_text()
    (d / "model" / "smollm2.yaml").write_text(packaged + "price_in: 1.5\nprice_out: 2.5\n")
    return d


# --- the one error path ---------------------------------------------------------------------------

def test_malformed_experiment_yaml_is_file_line_exit_2_before_anything_runs(tmp_path, user_conf):
    (tmp_path / "experiments" / "broken.yaml").write_text("# @package _global_\n# broken\ndata:\n  n_islands: [1, 2\n")
    results = tmp_path / "results"
    for extra in ([f"results_dir={results}"], ["--cfg", "job"]):
        p = cli("run", "--config-dir", str(user_conf), "experiment=broken", *extra)
        line = one_line(p, 2, "harness: error: ")
        assert f"{tmp_path / 'experiments' / 'broken.yaml'}:5: YAML syntax error" in line and "line 4" in line
    assert not results.exists()  # no stage ran, no run dir


@pytest.mark.slow
def test_internal_error_is_one_line_exit_1_with_the_traceback_in_the_run_dirs_cli_log(tmp_path):
    # the run dir holds a file where the data stage makes its directory: nothing the code expects
    run_dir = tmp_path / "tiny" / "default"
    run_dir.mkdir(parents=True)
    (run_dir / "data").write_text("not a directory")
    p = cli("run", "experiment=tiny", f"results_dir={tmp_path}")
    line = one_line(p, 1, "harness: internal error: FileExistsError: ", after_progress=True)
    assert line.endswith(f"(full traceback in {run_dir / 'cli.log'})")
    log = (run_dir / "cli.log").read_text()
    assert "Traceback (most recent call last)" in log and "FileExistsError" in log


@pytest.mark.slow
def test_internal_error_before_the_run_dir_is_known_logs_to_a_named_temp_file(tmp_path):
    # Hydra's job logging cannot open <run dir>/cli.log (a directory stands there): it fails before the
    # task starts, so the traceback goes to a temp file that the line names
    (tmp_path / "tiny" / "default" / "cli.log").mkdir(parents=True)
    p = cli("run", "experiment=tiny", f"results_dir={tmp_path}", TMPDIR=str(tmp_path))
    line = one_line(p, 1, "harness: internal error: ValueError: ")
    log = Path(re.search(r"full traceback in (\S+)\)$", line).group(1))
    assert log.parent == tmp_path and log.name.startswith("harness-internal-error-")
    assert "Traceback (most recent call last)" in log.read_text()
    # HARNESS_DEBUG=1: the traceback on stderr too, the one line still last
    p = cli("run", "experiment=tiny", f"results_dir={tmp_path}", TMPDIR=str(tmp_path), HARNESS_DEBUG="1")
    assert p.returncode == 1 and "Traceback (most recent call last)" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("harness: internal error: ValueError: ")


@pytest.mark.parametrize("args, words", [
    (["nope"], "unknown command 'nope'"),
    (["run", "experiment=nope"], "unknown experiment 'nope'"),
    (["run", "experiment=nope", "--cfg", "job"], "unknown experiment 'nope'"),  # Hydra would show the defaults
    (["run", "--resolve", "experiment=tiny"], "--resolve goes with --cfg"),
    (["run", "-m", "--cfg", "job", "experiment=tiny"], "--multirun and --cfg cannot be combined"),
    (["run", "--cfg", "job", "no_such_key=1"], "no_such_key"),
    (["run", "--config-dir", "/nonexistent/conf", "experiment=tiny"], "/nonexistent/conf"),
    (["report"], "the following arguments are required: RUN_DIR"),
    (["report", "/nonexistent/run"], "/nonexistent/run"),
    (["cache", "prune", "--older-than", "soon"], "not a number"),
    (["cache", "ls", "--bogus"], "unknown option '--bogus'"),
    (["experiments", "--config-dir", "/nonexistent/conf"], "is not a directory"),
])
def test_bad_input_is_one_line_exit_2(args, words):
    assert words in one_line(cli(*args), 2, "harness: error: ")


# --- Hydra's own flags ----------------------------------------------------------------------------

def test_cfg_job_hydra_all_resolve_and_package():
    p = cli("run", "--cfg", "job", "experiment=demo")  # was: "override 'job' is malformed"
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "experiment: demo" in lines and not any(x.startswith("hydra:") for x in lines)
    assert "cache_dir: ${oc.env:HARNESS_CACHE,.cache/harness}" in lines  # unresolved
    p = cli("run", "--cfg", "job", "--resolve", "experiment=demo", HARNESS_CACHE="/tmp/resolved-cache")
    assert p.returncode == 0 and "cache_dir: /tmp/resolved-cache" in p.stdout.splitlines(), p.stderr
    p = cli("run", "--cfg", "hydra", "experiment=demo")
    assert p.returncode == 0 and p.stdout.startswith("hydra:") and "experiment: demo" not in p.stdout.splitlines()
    assert "_target_: harness.cli.SweepReport" in p.stdout
    p = cli("run", "--cfg=all", "experiment=demo")
    assert p.returncode == 0 and "hydra:" in p.stdout.splitlines() and "experiment: demo" in p.stdout.splitlines()
    p = cli("run", "--cfg", "job", "--package", "finetune", "experiment=demo", "finetune.lr=0.01")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("# @package finetune\n") and "lr: 0.01" in p.stdout and "models:" not in p.stdout


def test_help_lists_config_groups_and_options():
    p = cli("run", "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("harness run: compose the config groups")
    groups = dict(re.findall(r"^(\w+): (.+)$", p.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0], re.M))
    assert {"demo", "tiny", "openai_distill"} <= set(groups["experiment"].split(", "))
    assert {"smollm2", "gpt-4o", "smollm2_server"} <= set(groups["model"].split(", "))
    assert {"lora", "full", "none", "openai", "pd"} == set(groups["finetune"].split(", "))
    assert "-cd/--config-dir DIR" in p.stdout


def test_info_searchpath_puts_the_user_dir_before_the_packaged_defaults(user_conf):
    p = cli("run", "--info", "searchpath", "--config-dir", str(user_conf))
    assert p.returncode == 0, p.stderr
    rows = [r for r in p.stdout.splitlines() if r.startswith("| ") and "Provider" not in r]
    paths = [r.split("|")[2].strip() for r in rows]
    # user conf, user experiments, packaged conf (the top-level conf/ of this checkout), packaged experiments
    order = [f"file://{user_conf}", f"harness-experiments://{user_conf.parent / 'experiments'}",
             f"file://{PACKAGED}", f"harness-experiments://{REPO / 'experiments'}"]
    assert [x for x in paths if x in order] == order, paths


def test_layout_is_top_level_conf_and_experiments():
    # the design card's layout: the config groups in conf/, the experiment overlays in experiments/
    # (nothing left under the package in the source tree); the CLI reads them from there
    from harness.cli import CONF_DIR, EXPERIMENTS_DIR, experiments

    assert (CONF_DIR, EXPERIMENTS_DIR) == (REPO / "conf", REPO / "experiments")
    assert not (REPO / "harness" / "conf").exists() and not (REPO / "conf" / "experiment").exists()
    assert {"demo", "tiny", "upgrade"} <= set(experiments()) == {p.stem for p in EXPERIMENTS_DIR.glob("*.yaml")}
    assert {"model", "grader", "data", "finetune"} <= {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def test_user_experiment_group_folder_inside_the_config_dir_still_works(tmp_path):
    # the layout before experiments/: conf/experiment/NAME.yaml, an ordinary Hydra group of the user dir;
    # it shadows a packaged experiment of the same name, next to the user's own experiments/ folder
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "old.yaml").write_text("# @package _global_\n# Old style\nexperiment: old\n")
    (tmp_path / "conf" / "experiment" / "tiny.yaml").write_text(
        "# @package _global_\n# My tiny\nexperiment: tiny\nfinetune:\n  max_steps: 7\n")
    p = cli("run", "--config-dir", str(tmp_path / "conf"), "--cfg", "job", "-p", "finetune", "experiment=tiny")
    assert p.returncode == 0 and "max_steps: 7" in p.stdout.splitlines(), p.stderr
    assert "experiment: old" in cli("run", "--config-dir", str(tmp_path / "conf"), "--cfg", "job", "experiment=old").stdout
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "new.yaml").write_text("# @package _global_\n# New style\nexperiment: new\nfinetune:\n  max_steps: 9\n")
    p = cli("run", "--config-dir", str(tmp_path / "conf"), "--cfg", "job", "-p", "finetune", "experiment=new")
    assert p.returncode == 0 and "max_steps: 9" in p.stdout.splitlines(), p.stderr
    rows = dict(re.findall(r"^(\w+)\s{2,}(.+)$", cli("experiments", "--config-dir", str(tmp_path / "conf")).stdout, re.M))
    assert rows["old"] == "Old style  (yours)" and rows["new"] == "New style  (yours)" and rows["tiny"] == "My tiny  (yours)"
    assert rows["demo"].startswith("Context distillation")


def test_user_config_dir_adds_experiments_and_shadows_packaged_entries(user_conf, tmp_path):
    for how in (["--config-dir", str(user_conf)], ["-cd", str(user_conf)]):
        p = cli("run", *how, "--cfg", "job", "--package", "models.baseline", "experiment=mine")
        assert p.returncode == 0, p.stderr
        assert "price_in: 1.5" in p.stdout.splitlines()  # the user's model/smollm2.yaml, not the packaged one
    # the same through the environment, from another working directory; the packaged tiny underneath
    p = cli("run", "--cfg", "job", "experiment=mine", cwd=tmp_path, HARNESS_CONFIG_DIR=str(user_conf))
    assert p.returncode == 0, p.stderr
    assert "experiment: mine" in p.stdout.splitlines() and "  max_steps: 3" in p.stdout.splitlines()
    # without the user dir, the packaged entry
    p = cli("run", "--cfg", "job", "--package", "models.baseline", "experiment=tiny")
    assert p.returncode == 0 and "price_in: 0.0" in p.stdout.splitlines()


def test_config_name_selects_another_primary_config(user_conf):
    (user_conf / "team.yaml").write_text("defaults:\n  - config\n  - _self_\n\nresults_dir: team_results\n")
    p = cli("run", "-cd", str(user_conf), "-cn", "team", "--cfg", "job", "experiment=tiny")
    assert p.returncode == 0, p.stderr
    assert "results_dir: team_results" in p.stdout.splitlines() and "experiment: tiny" in p.stdout.splitlines()


def test_no_cache_and_flags_in_any_order_pass_the_precheck(tmp_path):
    # the precheck skips flags and their values (`--cfg job`, `-p finetune`) instead of reading them as overrides
    p = cli("run", "experiment=tiny", "--cfg", "job", "--no-cache", "-p", "finetune")
    assert p.returncode == 0, p.stderr
    from harness.cli import _sweep_variants

    assert _sweep_variants(["experiment=tiny", "finetune.lr=1,2"]) == [
        ["experiment=tiny", "finetune.lr=1"], ["experiment=tiny", "finetune.lr=2"]]


def test_shell_completion():
    p = cli("run", "--shell-completion", "install=bash")
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip().endswith("-F hydra_bash_completion harness")
    # what the installed script asks: `harness -sc query=bash` with the shell's line in COMP_LINE
    p = cli("-sc", "query=bash", COMP_LINE="harness run experiment=ti", COMP_POINT="25")
    assert p.returncode == 0 and p.stdout.split() == ["experiment=tiny"], p.stderr
    p = cli("-sc", "query=bash", COMP_LINE="harness run finetune=l", COMP_POINT="23")
    assert p.returncode == 0 and p.stdout.split() == ["finetune=lora"], p.stderr


# --- experiments, --version -----------------------------------------------------------------------

def test_experiments_lists_packaged_and_user_ones_with_descriptions(user_conf):
    p = cli("experiments")
    assert p.returncode == 0, p.stderr
    rows = dict(re.findall(r"^(\w+)\s{2,}(.+)$", p.stdout, re.M))
    assert rows["tiny"].startswith("A minutes-long smoke run of the whole pipeline")
    assert rows["demo"].startswith("Context distillation on a made-up archipelago")
    assert "mine" not in rows
    p = cli("experiments", "--config-dir", str(user_conf))
    rows = dict(re.findall(r"^(\w+)\s{2,}(.+)$", p.stdout, re.M))
    assert rows["mine"] == "My experiment: the tiny run with my model prices  (yours)" and "tiny" in rows


def test_version():
    from harness.cli import version

    p = cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"harness {version()}" and version()


# --- harness init -------------------------------------------------------------------------------------

def test_init_writes_a_starter_that_composes_and_never_overwrites(tmp_path):
    proj = tmp_path / "proj"
    p = cli("init", str(proj))
    assert p.returncode == 0, p.stderr
    for rel in ("experiments/distil_mine.yaml", "experiments/eval_mine.yaml", "conf/model/my_server.yaml",
                "data/train.jsonl", "data/eval.jsonl", ".github/workflows/harness.yml", "README.md"):
        assert (proj / rel).is_file(), rel
    import yaml

    steps = yaml.safe_load((proj / ".github" / "workflows" / "harness.yml").read_text())["jobs"]["eval"]["steps"]
    assert any("harness run experiment=distil_mine" in str(s.get("run")) for s in steps)
    # the starter's distil experiment composes, with its data paths resolved against its config dir
    # (whatever the working directory), and its server model entry is offered to every role
    p = cli("run", "--config-dir", str(proj / "conf"), "--cfg", "job", "--resolve", "-p", "data",
            "experiment=distil_mine", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"train_path: {proj / 'conf' / '..' / 'data' / 'train.jsonl'}" in p.stdout.splitlines()
    p = cli("run", "--config-dir", str(proj / "conf"), "--cfg", "job", "-p", "models.baseline",
            "experiment=distil_mine", "model@models.baseline=my_server")
    assert p.returncode == 0 and "base_url: http://127.0.0.1:8000/v1" in p.stdout, p.stderr
    assert "distil_mine" in cli("experiments", "--config-dir", str(proj / "conf")).stdout
    # a second init refuses to overwrite, in one line
    (proj / "data" / "eval.jsonl").write_text('{"question": "mine?", "answer": "yes"}\n')
    assert "already exist" in one_line(cli("init", str(proj)), 2, "harness: error: ")
    assert "mine?" in (proj / "data" / "eval.jsonl").read_text()


@pytest.mark.slow
def test_starter_distil_experiment_runs_offline_on_the_embedded_model(tmp_path):
    proj = tmp_path / "proj"
    assert cli("init", str(proj)).returncode == 0
    # eval.limit=2: the starter's whole pipeline from the source checkout, on 2 items per task (the full
    # starter run, from the installed wheel, is tests/test_install.py's)
    p = cli("run", "experiment=distil_mine", "eval.limit=2", cwd=proj, HARNESS_CONFIG_DIR="conf", HF_HUB_OFFLINE="1")
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = proj / "results" / "distil_mine" / "eval.limit=2"
    assert (run_dir / "report.md").is_file() and (run_dir / "summary.json").is_file()
    assert "[summary] heldout:" in p.stdout


@pytest.mark.slow
def test_starter_eval_experiment_runs_offline_on_the_embedded_model(tmp_path):
    proj = tmp_path / "proj"
    assert cli("init", str(proj)).returncode == 0
    p = cli("run", "experiment=eval_mine", "eval.limit=2", cwd=proj, HARNESS_CONFIG_DIR="conf", HF_HUB_OFFLINE="1")
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((proj / "results" / "eval_mine" / "eval.limit=2" / "summary.json").read_text())
    assert {"current", "mine"} <= set(summary["models"]) and "teacher" not in summary["models"]
    assert "[summary] heldout:" in p.stdout
