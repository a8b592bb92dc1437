"""Gate and compare evaluations run elsewhere (issue 22): logs written by a plain `inspect eval` of a
task the harness never built, lm-evaluation-harness `--log_samples` output, and the same inspect task
named in `eval.tasks`.

Everything gated here was written by the real tools: `inspect eval` of the embedded model
(tests/foreign_task.py: a correct/incorrect scorer, a custom numeric one, a dict-valued one),
`lm_eval --model hf` on a local JSON task, and
a real `harness run`. The expensive ones are built once per module and read by several tests.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.foreign_task import ITEMS

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HARNESS, INSPECT, LM_EVAL = str(BIN / "harness"), str(BIN / "inspect"), str(BIN / "lm_eval")
TASK = "tests/foreign_task.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _embedded() -> str:
    from harness.models import embedded_path

    return str(embedded_path("smollm2-135m-instruct", os.environ["HARNESS_CACHE"]))


def cli(*args: str, cwd: Path | str = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV)


def inspect_eval(log_dir: Path, *args: str) -> None:
    """A plain `inspect eval`: no harness involved."""
    subprocess.run([INSPECT, "eval", *args, "--log-dir", str(log_dir), "--display", "none", "--log-level", "warning"],
                   check=True, cwd=REPO, env=ENV, timeout=900, capture_output=True)


def one_log(d: Path, task: str = "capitals") -> Path:
    (f,) = sorted(d.glob(f"*_{task}_*.eval"))
    return f


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with one `harness: error:` line (no traceback) that says `words`."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def cells(doc: dict) -> dict:
    return {(c["task"], c["grader"]): c for c in doc["cells"]}


HF = ["--model", "hf/local", "-M", "do_sample=false", "-M", "device=cpu", "--max-tokens", "8"]


@pytest.fixture(scope="module")
def plain(module_tmp):
    """Two plain `inspect eval` runs: the embedded model on `capitals` and on another task, `colours`
    (`a`, two logs), and the same model without its chat template on `capitals` (`b`, a broken candidate)."""
    root = module_tmp("plain")
    model = ["-M", f"model_path={_embedded()}"]
    inspect_eval(root / "a", f"{TASK}@capitals", f"{TASK}@colours", *HF, *model)
    inspect_eval(root / "b", f"{TASK}@capitals", *HF, *model, "-M", "use_chat_template=false")
    return root


UPGRADE = ["experiment=upgrade", f"eval.tasks=[{TASK}@capitals]", "eval.max_tokens=8", "+models.candidate.args.use_chat_template=false",
           "regress.tasks=[]"]


@pytest.fixture(scope="module")
def harness_run(module_tmp):
    """The same task named in eval.tasks of a real `harness run` (current = the embedded model,
    candidate = it without its chat template): the run evaluates it through its eval_set and gates."""
    res = module_tmp("res")
    r = cli("run", *UPGRADE, f"results_dir={res}", timeout=1200)
    assert r.returncode == 3, r.stdout[-3000:] + r.stderr[-3000:]  # the gate's verdict: a regression
    (run,) = [p.parent for p in (res / "upgrade").glob("*/summary.json")]
    return run, res


@pytest.mark.slow
def test_gate_on_plain_inspect_logs_equals_the_gate_on_the_harness_run(plain, harness_run, tmp_path):
    """The same answers, once from two plain `inspect eval` logs and once from the harness run that
    evaluated the task itself: the same verdict, d, bounds and n in every cell (one per score
    inspect wrote: C/I, numeric, and each key of the dict-valued score)."""
    from harness.runs import load_frame, open_source

    run, _ = harness_run
    a, b = open_source(one_log(plain / "a")).frame, open_source(plain / "b").frame
    ran = load_frame(run / "logs")
    for alias, f in (("current", a), ("candidate", b)):  # the precondition: the same answers were scored
        mine = ran[ran.alias == alias].set_index(["grader", "id"])["answer"].sort_index()
        assert mine.equals(f.set_index(["grader", "id"])["answer"].sort_index()), alias

    r = cli("regress", "--baseline", str(one_log(plain / "a")), "--candidate", str(plain / "b"), cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    foreign = json.loads((tmp_path / "regress.json").read_text())  # default out: the current dir, not the log dir
    assert not list((plain / "b").glob("regress*"))
    own = json.loads((run / "regress.json").read_text())
    assert set(cells(foreign)) == set(cells(own)) == {("capitals", g) for g in ("includes", "overlap", "shape.starts", "shape.short")}
    for key, c in cells(own).items():
        f = cells(foreign)[key]
        for k in ("verdict", "diff", "lower", "upper", "n", "method", "p_regression_adjusted"):
            assert f[k] == c[k], (key, k, f[k], c[k])
    # and a stored harness run against a plain log (across kinds: an item is its task, id and target)
    from harness.config import RegressConfig
    from harness.regress import RunRef, gate, parse_ref

    mixed = gate(RunRef(run, "current"), parse_ref(str(plain / "b"), "candidate", "--candidate"), RegressConfig(enabled=True))
    for key, c in cells(own).items():
        assert all(cells(mixed)[key][k] == c[k] for k in ("verdict", "diff", "lower", "upper", "n")), key
    assert foreign["verdict"] == own["verdict"] == mixed["verdict"] == "regression"
    assert cells(own)[("capitals", "includes")]["diff"] < -0.5  # a real difference, not 0 = 0
    assert foreign["candidate"]["source"] == "inspect" and own["candidate"]["source"] == "run"


@pytest.mark.slow
def test_scores_become_graders_with_inspects_value_to_float(plain):
    """Every score of the log is a grader: includes' C/I as 1/0, the numeric scorer as is, the
    dict-valued one as one grader per key (its C/I letter and its boolean)."""
    from inspect_ai.log import read_eval_log
    from inspect_ai.scorer import value_to_float

    from harness.runs import open_source

    src = open_source(one_log(plain / "a"))
    log = read_eval_log(str(one_log(plain / "a")))
    to_float = value_to_float()
    f = src.frame.set_index(["grader", "id"])["value"]
    for s in log.samples:
        assert f[("includes", s.id)] == to_float(s.scores["includes"].value)
        assert f[("overlap", s.id)] == s.scores["overlap"].value
        for k, v in s.scores["shape"].value.items():
            assert f[(f"shape.{k}", s.id)] == to_float(v)
    assert src.summary["models"] == {"hf/local": "hf/local"} and len(src.items) == len(ITEMS)


@pytest.mark.slow
def test_report_over_two_inspect_logs(plain, tmp_path):
    """`harness report` on two logs: one report, both models (same model name, told apart by the log),
    every pair compared; written to the current directory."""
    a = one_log(plain / "a")
    r = cli("report", str(a), str(plain / "b"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(s["models"]) == sorted([f"hf/local[{a.name}]", "hf/local[b]"])
    comps = {(c["task"], c["grader"]) for c in s["comparisons"]}
    assert ("capitals", "includes") in comps and ("capitals", "shape.short") in comps
    assert "hf/local[b]" in (tmp_path / "report.md").read_text() and (tmp_path / "report.html").is_file()


def _gate_error(baseline: Path, candidate: Path, **settings) -> str:
    """The one line `harness regress` would print (in-process: the CLI's own path is proven once per
    kind of input below)."""
    from harness.config import RegressConfig
    from harness.errors import HarnessError
    from harness.regress import gate, parse_ref

    with pytest.raises(HarnessError) as e:
        gate(parse_ref(str(baseline), "current", "--baseline"), parse_ref(str(candidate), "candidate", "--candidate"),
             RegressConfig(enabled=True, **settings))
    return str(e.value)


@pytest.mark.slow
def test_bad_inspect_logs_are_one_line_and_write_nothing(plain, tmp_path):
    from inspect_ai.log import read_eval_log, write_eval_log

    from harness.config import RegressConfig
    from harness.regress import gate, parse_ref

    a = one_log(plain / "a")
    out = tmp_path / "out"
    # truncated .eval (a kill mid-write, a partial copy): through the CLI, one line, exit 2, nothing written
    cut = tmp_path / "cut.eval"
    cut.write_bytes(a.read_bytes()[: a.stat().st_size // 2])
    refused(cli("regress", "--baseline", str(a), "--candidate", str(cut), "--out", str(out)), str(cut), "not a readable inspect log")
    assert not out.exists()
    # a log of another task
    msg = _gate_error(a, one_log(plain / "a", "colours"))
    assert "task 'colours'" in msg and "'capitals'" in msg
    # a log without per-sample scores (what --no-log-samples writes: the header; rewritten by inspect itself)
    header = tmp_path / "header.eval"
    write_eval_log(read_eval_log(str(a), header_only=True), str(header))
    msg = _gate_error(a, header)
    assert str(header) in msg and "no per-sample scores" in msg
    # different item sets (6 of the 8 samples, rewritten by inspect): refused, or the shared ones with --allow-subset
    log = read_eval_log(str(a))
    log.samples = log.samples[:6]
    six = tmp_path / "six.eval"
    write_eval_log(log, str(six))
    msg = _gate_error(a, six)
    assert str(six) in msg and "evaluation items differ" in msg and "--allow-subset" in msg
    # a path that is no log at all
    assert "pyproject.toml" in _gate_error(a, REPO / "pyproject.toml")
    doc = gate(parse_ref(str(a), "current", "--baseline"), parse_ref(str(six), "candidate", "--candidate"),
               RegressConfig(enabled=True, allow_subset=True))
    assert doc["items"]["n_compared"] == 6 and doc["items"]["dropped"] == {"baseline": 2, "candidate": 0}


@pytest.mark.slow
def test_inspect_task_in_eval_tasks_resumes_and_reports(harness_run):
    """The harness run of the inspect task: its scorers are the report's graders, and the same command
    again resumes from the finished logs: no model call, the same gate."""
    run, res = harness_run
    s = json.loads((run / "summary.json").read_text())
    assert {(x["task"], x["grader"]) for x in s["scores"]} >= {("capitals", "includes"), ("capitals", "shape.short")}
    before = (run / "regress.json").read_text()
    r = cli("run", *UPGRADE, f"results_dir={res}")
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    again = json.loads((run / "summary.json").read_text())
    assert set(again["model_calls"].values()) == {0}, again["model_calls"]
    assert cells(json.loads((run / "regress.json").read_text())) == cells(json.loads(before))


# -- lm-evaluation-harness ---------------------------------------------------------------------


LM_TASK = """task: capitals_lm
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n", "."]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
"""


@pytest.fixture(scope="module")
def lm_outputs(module_tmp):
    """Three real `lm_eval --log_samples` runs of a local JSON task on the embedded checkpoint: with its
    chat template (`base`), the same prompts sampled hot (`samp`: other answers, the gated candidate),
    and without the chat template (`cand`: other prompts, which the gate refuses to compare)."""
    root = module_tmp("lm")
    (root / "data.jsonl").write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in ITEMS))
    (root / "tasks").mkdir()
    (root / "tasks" / "capitals_lm.yaml").write_text(LM_TASK.format(data=root / "data.jsonl"))
    for name, extra in (("base", ["--apply_chat_template"]), ("cand", []),
                        ("samp", ["--apply_chat_template", "--gen_kwargs", "do_sample=True,temperature=2.0"])):
        subprocess.run([LM_EVAL, "--model", "hf", "--model_args", f"pretrained={_embedded()}", "--device", "cpu", "--batch_size", "8",
                        "--tasks", "capitals_lm", "--include_path", str(root / "tasks"), "--log_samples", "--output_path",
                        str(root / name), *extra], check=True, cwd=root, env=ENV, timeout=900, capture_output=True)
    return root


def _samples(out: Path) -> dict[str, float]:
    (f,) = out.rglob("samples_capitals_lm_*.jsonl")
    return {str(r["doc_id"]): r["exact_match"] for r in map(json.loads, f.read_text().splitlines())}


@pytest.mark.slow
def test_gate_and_report_over_lm_eval_outputs(lm_outputs, tmp_path):
    """Items pair by doc_id; d is the mean per-doc difference of lm-eval's own exact_match."""
    r = cli("regress", "--baseline", str(lm_outputs / "base"), "--candidate", str(lm_outputs / "samp"), cwd=tmp_path)
    doc = json.loads((tmp_path / "regress.json").read_text())
    assert r.returncode == doc["exit_code"] and r.returncode in (0, 3, 4), r.stderr
    (c,) = doc["cells"]
    base, cand = _samples(lm_outputs / "base"), _samples(lm_outputs / "samp")
    assert (c["task"], c["grader"], c["n"]) == ("capitals_lm", "exact_match", len(ITEMS))
    assert math.isclose(c["diff"], sum(cand[k] - base[k] for k in base) / len(base), abs_tol=1e-6)
    assert doc["baseline"]["source"] == "lm-eval" and doc["baseline"]["model"].endswith(Path(_embedded()).name)
    r = cli("report", str(lm_outputs / "base"), str(lm_outputs / "cand"), "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert len(s["models"]) == 2 and {x["grader"] for x in s["scores"]} == {"exact_match"}


@pytest.mark.slow
def test_bad_lm_eval_outputs_are_one_line_and_write_nothing(lm_outputs, tmp_path):
    base, out = lm_outputs / "base", tmp_path / "out"
    # an output dir written without --log_samples: its results file, no samples (through the CLI)
    bare = tmp_path / "bare"
    shutil.copytree(lm_outputs / "cand", bare)
    for f in bare.rglob("samples_*.jsonl"):
        f.unlink()
    refused(cli("regress", "--baseline", str(base), "--candidate", str(bare), "--out", str(out)), str(bare), "--log_samples")
    assert not out.exists()
    # a truncated samples file
    cut = tmp_path / "cut"
    shutil.copytree(lm_outputs / "cand", cut)
    (f,) = cut.rglob("samples_*.jsonl")
    f.write_text(f.read_text()[:-40])
    msg = _gate_error(base, cut)
    assert f"{f}:{len(ITEMS)}" in msg and "not valid JSON" in msg
    # the same documents shown without the chat template: lm-eval's own prompt_hash differs, never compared
    msg = _gate_error(base, lm_outputs / "cand", allow_subset=True)
    assert str(lm_outputs / "cand") in msg and f"{len(ITEMS)} of the {len(ITEMS)} shared items" in msg and "another prompt" in msg
    # another item set: one document fewer
    less = tmp_path / "less"
    shutil.copytree(lm_outputs / "samp", less)
    (f,) = less.rglob("samples_*.jsonl")
    f.write_text("".join(f.read_text().splitlines(keepends=True)[1:]))
    assert "evaluation items differ" in _gate_error(base, less)


# -- quick: the reader's semantics and the pre-flight of eval.tasks -------------------------------


def test_score_values_follow_inspects_value_to_float():
    from inspect_ai.scorer import value_to_float

    from harness.sources import score_values, to_float

    inspect_float = value_to_float()
    for v in ("C", "I", "P", "N", True, False, 0, 1, 0.25, "yes", "No", "TRUE", "false", "0.75", "3", -2.5):
        assert to_float(v) == inspect_float(v), v
    for v in ("maybe", None, [1, 0], "C+"):  # inspect warns and says 0: here it is unscorable, not wrong
        assert math.isnan(to_float(v)), v
    assert score_values("shape", {"starts": "C", "short": False}) == [("shape.starts", 1.0), ("shape.short", 0.0)]


def test_eval_tasks_names_any_inspect_task_and_refuses_what_is_not_one(tmp_path, monkeypatch):
    from harness.config import EvalConfig
    from harness.errors import HarnessError
    from harness.evaluate import check_tasks, task_names

    monkeypatch.chdir(REPO)
    assert task_names(EvalConfig(tasks=["heldout", f"{TASK}@capitals"])) == {"heldout": "heldout", f"{TASK}@capitals": "capitals"}
    (tmp_path / "one.py").write_text("from inspect_ai import task\n\n@task(name='renamed')\ndef mine():\n    ...\n")
    assert task_names(EvalConfig(tasks=[str(tmp_path / "one.py")])) == {str(tmp_path / "one.py"): "renamed"}
    (tmp_path / "bad.py").write_text("def broken(:\n")
    for tasks, words in (
        ([f"{TASK}@nope"], ["has no @task named 'nope'", "capitals, colours"]),
        (["tests/missing.py@capitals"], ["no such task file"]),
        ([TASK], ["defines 2 @task functions", "file.py@task"]),
        (["no_such_package_xyz/task"], ["'no_such_package_xyz'", "not installed"]),
        ([str(tmp_path / "bad.py") + "@broken"], ["bad.py:1", "does not parse"]),
        (["heldout", "heldout"], ["list each task once"]),
        (["typo"], ["unknown task", "path/to/file.py@task"]),
    ):
        with pytest.raises(HarnessError) as e:
            check_tasks(EvalConfig(tasks=tasks))
        for w in words:
            assert w in str(e.value), (tasks, str(e.value))


def test_regress_refuses_a_path_that_holds_no_evaluation(tmp_path):
    from harness.errors import HarnessError
    from harness.regress import parse_ref
    from harness.runs import open_source

    with pytest.raises(HarnessError, match="no such run dir or log"):
        parse_ref(str(tmp_path / "missing.eval"), "current", "--baseline")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HarnessError, match="no inspect log .* and no lm-eval output"):
        open_source(tmp_path)
    ref = parse_ref(f"{tmp_path}:hf/local", "current", "--baseline")
    assert (ref.dir, ref.alias, ref.explicit) == (tmp_path, "hf/local", True)


def test_run_with_a_missing_inspect_task_is_refused_before_anything_runs(tmp_path):
    r = cli("run", "experiment=upgrade", "eval.tasks=[evals/missing.py@mine]", "regress.tasks=[]", f"results_dir={tmp_path / 'res'}")
    refused(r, "eval.tasks", "evals/missing.py@mine", "no such task file")
    assert not (tmp_path / "res").exists()
