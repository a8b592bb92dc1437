"""`harness report MULTIRUN_DIR`: the jobs of a sweep side by side, accuracy against the swept settings."""

import json
import subprocess

import yaml


def _job(root, n_train, templates, student_acc):
    job = root / f"data.n_train={n_train},data.templates={templates}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        [f"data.n_train={n_train}", f"data.templates={templates}", "experiment=data_ablation", "results_dir=/x"]))
    scores = [{"task": "heldout", "model": m, "grader": "contains", "n": 40, "accuracy": a, "ci_low": max(0, a - 0.15),
               "ci_high": min(1, a + 0.15)} for m, a in (("teacher", 0.85), ("baseline", 0.0), ("student", student_acc))]
    (job / "summary.json").write_text(json.dumps({"scores": scores, "data": {"n_train": n_train}}))


def test_sweep_report_tables_and_plots_every_job(harness_bin, tmp_path):
    root = tmp_path / "multirun"
    for n, t, acc in [(40, "all", 0.3), (120, "all", 0.6), (40, "first", 0.2), (120, "first", 0.4)]:
        _job(root, n, t, acc)
    p = subprocess.run([harness_bin, "report", str(root)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    md = (root / "sweep.md").read_text()
    assert "4 jobs; swept: data.n_train, data.templates" in md
    assert "| 40 | all | heldout | contains | student | 40 | 30.0 [15.0, 45.0] |" in md
    assert md.index("| 40 | all |") < md.index("| 120 | all |")  # numeric order, not text order
    html = (root / "sweep.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1 and "http://" not in html and "https://" not in html
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = subprocess.run([harness_bin, "report", str(empty)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
