"""Real Hydra composition of every experiment, and the CLI's one-line errors."""

import subprocess

import pytest

from harness.cli import compose, experiments
from harness.config import HarnessConfig, to_dataclass
from harness.preflight import validate


def _plain(cfg):
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=False)
    d.pop("hydra")
    return to_dataclass(OmegaConf.create(d))


@pytest.mark.parametrize("name", experiments())
def test_every_experiment_composes(name):
    cfg = compose([f"experiment={name}"])
    c = _plain(cfg)
    assert isinstance(c, HarnessConfig)
    assert c.experiment == name  # the overlay wins over the primary config
    if not any(m.student for m in c.models.values()):  # an evaluation-only experiment
        assert "teacher" not in c.models and len(c.models) >= 2
        validate(c)  # and it is valid as it stands
    else:
        assert {"teacher", "baseline", "student"} <= set(c.models)
        assert [a for a, m in c.models.items() if m.student][:1] == ["student"]
        assert c.models["teacher"].context and not c.models["baseline"].context
    for m in c.models.values():
        assert "/" in m.model  # an inspect model string
    assert c.graders and {g.mode for g in c.graders.values()} == {"exact", "contains"}


def test_upgrade_is_two_models_gated_on_heldout():
    c = _plain(compose(["experiment=upgrade"]))
    assert list(c.models) == ["current", "candidate"] and not any(m.student or m.context for m in c.models.values())
    assert c.regress.enabled and (c.regress.baseline, c.regress.candidate) == ("current", "candidate")
    assert c.regress.tasks == ["heldout"] and c.regress.margin == 0.05
    # the upgrade is one override of one alias
    c = _plain(compose(["experiment=upgrade", "model@models.candidate=gpt-4o-mini"]))
    assert c.models["candidate"].model.startswith("openai/gpt-4o-mini") and c.models["current"].model.startswith("hf/")


def test_demo_is_three_models_on_one_backend():
    c = _plain(compose(["experiment=demo"]))
    models = {m.model for m in c.models.values()}
    args = {str(sorted(m.args.items())) for m in c.models.values()}
    assert len(models) == 1 and len(args) == 1  # same backend, precision and weights before the fine-tune
    assert c.models["baseline"].args["do_sample"] is False


def test_run_dir_is_deterministic_from_overrides():
    from omegaconf import OmegaConf

    cfg = compose(["experiment=demo", "finetune.lr=0.001", "data.n_islands=5"])
    assert OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"] == (
        "${results_dir}/${experiment}/${run_name:${hydra:job.override_dirname}}"
    )
    # keys that cannot change results do not change the dir; everything else does
    assert set(cfg.hydra.job.config.override_dirname.exclude_keys) == {
        "experiment", "cache", "results_dir", "cache_dir",
        "finetune.confirm", "finetune.openai.poll_seconds", "finetune.openai.max_poll_seconds"}
    probe = OmegaConf.create({"a": "${run_name:''}", "b": "${run_name:'data.n_islands=5,finetune.lr=0.001'}"})
    assert probe.a == "default" and probe.b == "data.n_islands=5,finetune.lr=0.001"
    from harness.config import run_name

    long = ",".join(f"graders.judge.judge.args.k{i}=http://127.0.0.1:8000/v1" for i in range(8))
    # readable start + a hash of the whole, the same in every process (a fixed value, not one computed twice here)
    assert run_name(long) == long.replace("/", "_")[:150] + "…1f04e99fdd50" and len(run_name(long).encode()) <= 200
    assert run_name(long + "x") != run_name(long)


def test_a_model_grid_gives_each_student_its_own_finetune():
    from harness.config import student_finetune

    c = _plain(compose(["experiment=students"]))
    assert [a for a, m in c.models.items() if m.student] == ["student", "student_full"]
    full, lora = student_finetune(c, "student_full"), student_finetune(c, "student")
    assert (full.method, full.lr, full.epochs) == ("full", 1e-4, 4)
    assert lora == c.finetune and (lora.method, lora.lr) == ("lora", 3e-3)  # the experiment's `finetune` group
    assert full.batch_size == lora.batch_size  # unset keys come from the group
    # a student's own settings are not part of the model's identity (cached teacher answers, eval logs)
    from harness.config import model_identity

    assert "finetune" not in model_identity(c.models["student_full"])


def test_typed_values_are_checked_at_composition():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(["experiment=demo", "data.n_islands=many"])
    with pytest.raises(ConfigCompositionException):
        compose(["experiment=demo", "no_such_key=1"])


@pytest.mark.parametrize(
    "overrides, expect",
    [
        (["experiment=nope"], "unknown experiment 'nope'; available: "),
        (["experiment=demo", "model@models.teacher=nope"], "model/nope"),
        (["experiment=demo", "results_dir=/proc/harness-results"], "results_dir"),
        (["experiment=demo", "models.baseline.args.model_path=/no/such/model"], "models.baseline.args.model_path"),
        (["experiment=demo", "graders.exact.extract=telepathy"], "graders.exact.extract"),
        (["experiment=demo", "data.n_islands=many"], "data.n_islands"),
        (["experiment=demo", "finetune.method=magic"], "finetune.method"),
        (["experiment=demo", "report.pairs=[[student,oracle]]"], "report.pairs[0]"),
        (["experiment=demo", "report.correction=bonferonni"], "report.correction"),
        (["-m", "experiment=demo", "finetune.lr=1e-3,2e-3", "data.n_islands=5,x"], "data.n_islands"),
        (["-m", "experiment=demo", "finetune.lr=1e-3,,"], "finetune.lr"),
        (["-m", "experiment=demo", "no_such.key=1,2"], "no_such"),
        # model grids: a student's own fine-tune settings are checked like the group's
        (["experiment=students", "+models.student_full.finetune.lora.rank=8"], "models.student_full.finetune.lora.rank"),
        (["experiment=students", "models.student_full.finetune.lr=fast"], "models.student_full.finetune.lr"),
        (["experiment=students", "models.student_full.finetune.method=magic"], "models.student_full.finetune.method"),
        (["experiment=demo", "models.teacher.student=true"], "models.teacher.student"),
        (["experiment=demo", "+models.baseline.finetune.lr=1"], "models.baseline.finetune"),
        (["experiment=demo", "models.student.student=false"], "student: true"),
        # checked before any stage: a typo here used to cost a whole fine-tune first
        (["experiment=demo", "eval.tasks=[heldout,contrl]"], "eval.tasks"),
        (["experiment=upgrade", "regress.margin=1.5"], "regress.margin"),
        (["experiment=upgrade", "regress.candidate=nobody"], "regress.candidate"),
        (["experiment=upgrade", "regress.tasks=[control,nope]"], "regress.tasks"),
        (["experiment=upgrade", "regress.inconclusive=maybe"], "regress.inconclusive"),
        (["experiment=upgrade", "data=jsonl"], "data.eval_path"),
    ],
)
def test_bad_input_is_one_line_exit_2(harness_bin, tmp_path, overrides, expect):
    args = [harness_bin, "run", *overrides] + ([] if "results_dir" in overrides[-1] else [f"results_dir={tmp_path}/r"])
    p = subprocess.run(args,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert "[HYDRA] Launching" not in p.stdout  # rejected before any job starts
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert expect in lines[0]
    assert not (tmp_path / "r").exists()  # nothing written
