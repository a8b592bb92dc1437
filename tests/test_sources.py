"""More result formats through the one reader (harness.sources, issue 30): Every Eval Ever (read and
written by `harness export`), HELM run dirs, lighteval details parquet, promptfoo JSON v3 and
lm-eval 0.5 `--repeats`; and the refusal of two sources that asked their items differently.

What is real and what is written here from a documented schema:
- Every Eval Ever: the schema files and a reference conversion are the project's own
  (tests/data/eee/README.md); what `harness export` writes is validated against those schemas with
  jsonschema. The EEE package itself needs Python >= 3.12 (this project runs on 3.11), so its
  converter cannot run here.
- HELM: a real `helm-run` output dir (tests/data/helm/README.md). The candidate is that dir with the
  scores of four instances flipped (HELM's install is heavy and needs its model downloads).
- lm-eval: a real 0.4 `--log_samples` output (tests/data/lm_eval/README.md). 0.5's `--repeats` is not
  released to PyPI: its records get `scores_per_repeat` as lm-eval 0.5 writes it
  (lm_eval/evaluator.py `_build_logged_samples`: `{metric: [one score per repeat]}`).
- lighteval and promptfoo: fixtures written from their documented schemas (lighteval's
  `DetailsLogger.Detail` saved by `EvaluationTracker.save` as details_<task>_<time>.parquet, and the
  newer doc / model_response / metric layout; promptfoo's `OutputFile` with an `EvaluateSummaryV3`,
  src/types/index.ts). lighteval pins its own torch/transformers stack and promptfoo needs node
  packages with native builds, neither installable offline here.

Every gated pair's d is checked against the mean difference computed from the files by a helper of a
few lines here (plain json / pyarrow), not by harness.sources.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
EEE_DEMO = DATA / "eee" / "f3a1c0de-4b2e-4c1a-9f6d-1b7e5a2c8d40.json"
HELM = DATA / "helm" / "mmlu-subject=philosophy,method=multiple_choice_joint,model=openai_gpt2"
LM = DATA / "lm_eval"
LM_SAMPLES = "samples_math_perturbed_full_2026-01-21T03-44-18.458309.jsonl"
LM_RESULTS = "results_2026-01-21T03-44-18.458309.json"


def validators():
    import jsonschema

    schema = {n: json.loads((DATA / "eee" / f"{n}.schema.json").read_text()) for n in ("eval", "instance_level_eval")}
    return jsonschema.Draft7Validator(schema["eval"]), jsonschema.Draft7Validator(schema["instance_level_eval"])


def schema_errors(out: Path) -> list[str]:
    """Every schema violation of the EEE files under `out` (aggregates and instance records)."""
    agg, inst = validators()
    errors = []
    for f in out.rglob("*.json"):
        if f.name.endswith(".schema.json"):
            continue
        errors += [f"{f.name}: {e.message}" for e in agg.iter_errors(json.loads(f.read_text()))]
    for f in out.rglob("*.jsonl"):
        for k, line in enumerate(f.read_text().splitlines(), 1):
            errors += [f"{f.name}:{k}: {e.message}" for e in inst.iter_errors(json.loads(line))]
    return errors


def gate_of(baseline: Path, candidate: Path, **settings) -> dict:
    from harness.config import RegressConfig
    from harness.regress import gate, parse_ref

    return gate(parse_ref(str(baseline), "current", "--baseline"), parse_ref(str(candidate), "candidate", "--candidate"),
                RegressConfig(enabled=True, **settings))


def refusal(baseline: Path, candidate: Path, **settings) -> str:
    from harness.errors import HarnessError

    with pytest.raises(HarnessError) as e:
        gate_of(baseline, candidate, **settings)
    assert "\n" not in str(e.value)
    return str(e.value)


def cells(doc: dict) -> dict:
    return {(c["task"], c["grader"]): c for c in doc["cells"]}


def mean_diff(base: dict, cand: dict) -> float:
    """The independent d: mean over the shared items of candidate minus baseline (item -> score)."""
    return sum(cand[k] - base[k] for k in base) / len(base)


# -- Every Eval Ever -----------------------------------------------------------------------------


def test_eee_reference_conversion_is_read_from_its_aggregate_its_samples_or_its_dir(tmp_path):
    """The project's own reference files (valid against its schema): one row, its metric the grader,
    its gold the target, the terminal attribution the extracted answer; the same from each entry point."""
    from harness.runs import open_source

    assert schema_errors(DATA / "eee") == []
    d = tmp_path / "eee"
    d.mkdir()
    for f in DATA.joinpath("eee").glob("f3a1c0de-*"):
        shutil.copy(f, d)
    frames = [open_source(p) for p in (EEE_DEMO, EEE_DEMO.with_name(EEE_DEMO.stem + "_samples.jsonl"), d)]
    assert {s.kind for s in frames} == {"eee"}
    rows = frames[0].frame.to_dict("records")
    assert [(r["alias"], r["task"], r["grader"], r["id"], r["epoch"], r["value"], r["target"], r["answer"], r["extracted"])
            for r in rows] == [("demo-org/demo-model", "demo-source.demo_bench", "accuracy", "demo_0001", 1, 1.0, "4",
                                "The answer is 4.", "4")]
    for s in frames[1:]:
        assert s.frame.to_dict("records") == rows


def _eee_pair(tmp_path: Path, ids_a: list[str], ids_b: list[str], scores_a: list[float], scores_b: list[float]) -> tuple[Path, Path]:
    """Two instance-level files of the same five samples (the reference record as template)."""
    template = json.loads(EEE_DEMO.with_name(EEE_DEMO.stem + "_samples.jsonl").read_text().splitlines()[0])
    out = []
    for name, ids, scores in (("a", ids_a, scores_a), ("b", ids_b, scores_b)):
        f = tmp_path / f"{name}_samples.jsonl"
        recs = []
        for k, (sid, score) in enumerate(zip(ids, scores)):
            question, gold = f"What is {k} + {k}?", str(2 * k)
            recs.append({**template, "model_id": f"org/model-{name}", "sample_id": sid,
                         "sample_hash": hashlib.sha256((question + gold).encode()).hexdigest(),
                         "input": {"raw": question, "reference": [gold]},
                         "evaluation": {"score": score, "is_correct": score == 1.0}})
        f.write_text("".join(json.dumps(r) + "\n" for r in recs))
        out.append(f)
    return out[0], out[1]


def test_eee_items_pair_by_sample_id_and_fall_back_to_sample_hash(tmp_path):
    """Ids that name one sample each pair the files; where a converter left the id empty (or gave one
    id to several samples), the sample_hash is the item. The same id with another hash is another item."""
    a_scores, b_scores = [1.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0]
    ids = [f"s{k}" for k in range(5)]
    (tmp_path / "ids").mkdir()
    a, b = _eee_pair(tmp_path / "ids", ids, ids, a_scores, b_scores)
    (c,) = cells(gate_of(a, b)).values()
    assert c["n"] == 5 and math.isclose(c["diff"], mean_diff(dict(enumerate(a_scores)), dict(enumerate(b_scores))), abs_tol=1e-6)

    (tmp_path / "hash").mkdir()
    a, b = _eee_pair(tmp_path / "hash", [""] * 5, ["0"] * 5, a_scores, b_scores)  # no id / one id for all: hashes
    (c,) = cells(gate_of(a, b)).values()
    from harness.runs import open_source

    assert c["n"] == 5 and set(open_source(a).frame["id"]) == {json.loads(x)["sample_hash"] for x in a.read_text().splitlines()}
    assert math.isclose(c["diff"], mean_diff(dict(enumerate(a_scores)), dict(enumerate(b_scores))), abs_tol=1e-6)

    (tmp_path / "moved").mkdir()
    a, b = _eee_pair(tmp_path / "moved", ids, ids[1:] + ids[:1], a_scores, b_scores)  # the ids name other samples in b
    assert "evaluation items differ" in refusal(a, b)


# -- lm-eval 0.5 repeats -------------------------------------------------------------------------


def _lm_copy(dst: Path, edit=None, results_edit=None) -> Path:
    """The real lm-eval output copied to dst/<model>/, its records passed through `edit(rec)`."""
    model = dst / "model"
    model.mkdir(parents=True)
    recs = [json.loads(line) for line in (LM / LM_SAMPLES).read_text().splitlines()]
    for r in recs:
        if edit:
            edit(r)
    (model / LM_SAMPLES).write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = json.loads((LM / LM_RESULTS).read_text())
    if results_edit:
        results_edit(res)
    (model / LM_RESULTS).write_text(json.dumps(res))
    return dst


def _repeats(pattern: list[list[float]]):
    def edit(rec: dict) -> None:
        scores = pattern[int(rec["doc_id"]) % len(pattern)]
        rec["scores_per_repeat"] = {"exact_match": scores}
        rec["exact_match"] = sum(scores) / len(scores)  # lm-eval 0.5 logs the reduced score beside the repeats
    return edit


def test_lm_eval_05_repeats_are_epochs(tmp_path):
    base = _lm_copy(tmp_path / "base", _repeats([[1, 0, 0], [0, 0, 0], [1, 1, 1]]))
    cand = _lm_copy(tmp_path / "cand", _repeats([[1, 1, 0], [0, 1, 0], [0, 1, 1], [1, 1, 1]]))

    def per_doc(d: Path) -> dict[str, float]:  # independent: the mean of each document's repeats
        (f,) = d.rglob("samples_*.jsonl")
        recs = map(json.loads, f.read_text().splitlines())
        return {str(r["doc_id"]): sum(r["scores_per_repeat"]["exact_match"]) / 3 for r in recs}

    c = cells(gate_of(base, cand))[("math_perturbed_full", "exact_match")]
    assert (c["n"], c["epochs"]) == (10, 3)
    assert math.isclose(c["diff"], mean_diff(per_doc(base), per_doc(cand)), abs_tol=1e-6) and c["diff"] > 0


# -- refusals: another task version, prompt or target ----------------------------------------------


def test_sources_that_asked_their_items_differently_are_refused_in_one_line(tmp_path, harness_bin):
    base = _lm_copy(tmp_path / "base")

    def prompt(rec):
        if str(rec["doc_id"]) == "3":
            rec["prompt_hash"] = "0" * 64

    def target(rec):
        if str(rec["doc_id"]) == "5":
            rec["target_hash"] = "1" * 64

    msg = refusal(base, _lm_copy(tmp_path / "prompt", prompt), allow_subset=True)  # never compared, not even a subset
    assert "on 1 of the 10 shared items of task 'math_perturbed_full' the model was shown another prompt" in msg and "'3'" in msg
    assert "has another target" in refusal(base, _lm_copy(tmp_path / "target", target))
    version = _lm_copy(tmp_path / "version", results_edit=lambda r: r["versions"].update(math_perturbed_full=2.0))
    assert "task 'math_perturbed_full' is version 2.0, but 1.0" in refusal(base, version)
    # through the CLI: exit 2, one line naming the candidate, nothing written
    out = tmp_path / "out"
    r = subprocess.run([harness_bin, "regress", "--baseline", str(base), "--candidate", str(tmp_path / "prompt"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "was shown another prompt" in r.stderr, r.stderr
    assert str(tmp_path / "prompt") in r.stderr and not out.exists()
    # an EEE file whose formatted input (what the model saw) differs on an item
    d = tmp_path / "eee"
    d.mkdir()
    samples = EEE_DEMO.with_name(EEE_DEMO.stem + "_samples.jsonl")
    rec = json.loads(samples.read_text())
    rec["input"]["formatted"] = "Question: What is 2 + 2?\nAnswer:"
    (d / samples.name).write_text(json.dumps(rec) + "\n")
    assert "was shown another prompt" in refusal(samples, d / samples.name)


# -- HELM ------------------------------------------------------------------------------------------


def _flip_helm(dst: Path, flip: set[str]) -> Path:
    """The real HELM run dir with the scores of `flip` instances turned (1 -> 0, 0 -> 1)."""
    shutil.copytree(HELM, dst)
    stats = json.loads((dst / "per_instance_stats.json").read_text())
    for entry in stats:
        if entry["instance_id"] in flip:
            for s in entry["stats"]:
                if "exact_match" in s["name"]["name"]:
                    s["mean"] = s["sum"] = s["min"] = s["max"] = 1.0 - s["mean"]
    (dst / "per_instance_stats.json").write_text(json.dumps(stats))
    return dst


def _helm_scores(d: Path, metric: str) -> dict[str, float]:
    """Independent: instance -> the metric's mean, from per_instance_stats.json."""
    out = {}
    for entry in json.loads((d / "per_instance_stats.json").read_text()):
        for s in entry["stats"]:
            if s["name"]["name"] == metric and not s["name"].get("perturbation"):
                out[entry["instance_id"]] = s["mean"]
    return out


def test_helm_run_dirs_are_gated_per_instance(tmp_path):
    from harness.runs import open_source

    ids = sorted(_helm_scores(HELM, "exact_match"))
    cand = _flip_helm(tmp_path / "cand", set(ids[:4]))
    src = open_source(HELM)
    assert src.kind == "helm" and src.summary["models"] == {"openai/gpt2": "openai/gpt2"}
    assert set(src.frame["task"]) == {"mmlu:subject=philosophy,method=multiple_choice_joint"}  # no model in the task
    graders = set(src.frame["grader"])
    assert {"exact_match", "quasi_exact_match"} <= graders and not graders & {"num_prompt_tokens", "inference_runtime", "logprob"}
    doc = gate_of(HELM, cand)
    for grader in ("exact_match", "quasi_exact_match"):
        c = cells(doc)[("mmlu:subject=philosophy,method=multiple_choice_joint", grader)]
        assert c["n"] == len(ids) == 10
        assert math.isclose(c["diff"], mean_diff(_helm_scores(HELM, grader), _helm_scores(cand, grader)), abs_tol=1e-6)
    assert cells(doc)[("mmlu:subject=philosophy,method=multiple_choice_joint", "exact_match")]["diff"] != 0


# -- lighteval ---------------------------------------------------------------------------------------

LIGHTEVAL_TASK = "custom|capitals|0"
QUESTIONS = [(f"Capital {k}?", f"City{k}") for k in range(12)]


def _lighteval(root: Path, model: str, right: set[int], newer: bool) -> Path:
    """details/<model>/<time>/details_<task>_<time>.parquet as lighteval writes it: the Detail
    fields (older releases) or doc / model_response / metric (newer ones)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamp = "2026-12-06T10-00-00.000000"
    d = root / "details" / model / stamp
    d.mkdir(parents=True)
    rows = []
    for k, (q, gold) in enumerate(QUESTIONS):
        pred = gold if k in right else "Nowhere"
        if newer:
            rows.append({"doc": {"id": str(k), "query": q, "choices": [gold], "gold_index": 0, "full_prompt": f"Q: {q}\nA:"},
                         "model_response": {"text": [pred]}, "metric": {"em": float(k in right)}})
        else:
            rows.append({"example": q, "full_prompt": f"Q: {q}\nA:", "predictions": [pred], "gold": [gold],
                         "metrics": {"em": float(k in right), "quasi_em": float(k in right or k % 5 == 0)}})
    pq.write_table(pa.Table.from_pylist(rows), d / f"details_{LIGHTEVAL_TASK}_{stamp}.parquet")
    return root


def _lighteval_scores(root: Path, metric: str) -> dict[str, float]:
    """Independent: the query -> the metric, with pyarrow."""
    import pyarrow.parquet as pq

    (f,) = root.rglob("*.parquet")
    rows = pq.read_table(f).to_pylist()
    return {(r.get("doc") or {}).get("query") or r["example"]: (r.get("metric") or r.get("metrics"))[metric] for r in rows}


@pytest.mark.parametrize("newer", [False, True], ids=["detail-fields", "doc-model_response-metric"])
def test_lighteval_details_parquet(tmp_path, newer):
    base = _lighteval(tmp_path / "base", "org__small", {0, 1, 2, 3, 4, 5, 6, 7}, newer)
    cand = _lighteval(tmp_path / "cand", "org__smaller", {0, 1, 2, 8}, newer)
    doc = gate_of(base, cand)
    for grader in ("em",) if newer else ("em", "quasi_em"):
        c = cells(doc)[(LIGHTEVAL_TASK, grader)]
        assert c["n"] == len(QUESTIONS)
        assert math.isclose(c["diff"], mean_diff(_lighteval_scores(base, grader), _lighteval_scores(cand, grader)), abs_tol=1e-6)
    assert doc["baseline"]["model"] == "org__small" and doc["candidate"]["source"] == "lighteval"


# -- promptfoo -------------------------------------------------------------------------------------


def _promptfoo(f: Path, provider: str, right: set[int], version: int = 3, prompt: str = "Answer: {{question}}") -> Path:
    """`promptfoo eval -o out.json`: an OutputFile whose results is an EvaluateSummaryV3."""
    results = []
    for k, (q, gold) in enumerate(QUESTIONS):
        ok = k in right
        results.append({"id": f"r{k}", "promptIdx": 0, "testIdx": k, "promptId": "p1",
                        "provider": {"id": provider, "label": provider},
                        "prompt": {"raw": prompt.replace("{{question}}", q), "label": "capitals"},
                        "vars": {"question": q}, "testCase": {"vars": {"question": q}, "assert": [{"type": "contains", "value": gold}]},
                        "response": {"output": gold if ok else "Nowhere"}, "success": ok, "score": 1.0 if ok else 0.0,
                        "namedScores": {"accuracy": 1.0 if ok else 0.0}, "latencyMs": 10,
                        "gradingResult": {"pass": ok, "score": 1.0 if ok else 0.0, "reason": ""}})
    f.write_text(json.dumps({"evalId": "eval-1", "results": {"version": version, "timestamp": "2026-12-06T10:00:00Z",
                                                               "results": results, "prompts": [], "stats": {}},
                             "config": {}, "shareableUrl": None}))
    return f


def test_promptfoo_v3_output(tmp_path):
    base = _promptfoo(tmp_path / "base.json", "openai:chat:base", set(range(10)))
    cand = _promptfoo(tmp_path / "cand.json", "openai:chat:cand", {0, 1, 2, 3, 11})

    def scores(f: Path) -> dict[int, float]:  # independent: testIdx -> success
        return {r["testIdx"]: float(r["success"]) for r in json.loads(f.read_text())["results"]["results"]}

    doc = gate_of(base, cand)
    assert set(cells(doc)) == {("capitals", g) for g in ("pass", "score", "accuracy")}
    c = cells(doc)[("capitals", "pass")]
    assert c["n"] == len(QUESTIONS) and math.isclose(c["diff"], mean_diff(scores(base), scores(cand)), abs_tol=1e-6)
    assert c["diff"] < -0.3 and doc["verdict"] in ("regression", "inconclusive")  # 12 items: not enough to rule it out
    msg = refusal(base, _promptfoo(tmp_path / "v2.json", "x", set(), version=2))
    assert "v2.json" in msg and "not a promptfoo v3 output" in msg
    other = _promptfoo(tmp_path / "other.json", "openai:chat:cand", set(range(10)), prompt="Reply: {{question}}")
    assert "was shown another prompt" in refusal(base, other)


# -- harness export ----------------------------------------------------------------------------------


def _by_alias(out: Path) -> dict[str, Path]:
    return {json.loads(f.read_text())["model_info"]["additional_details"]["harness_alias"]: f for f in out.rglob("*.json")}


def test_export_writes_files_the_eee_schema_accepts_and_reads_back_to_the_same_gate(tmp_path, harness_bin):
    """`harness export CAND --against BASE` of two HELM runs: valid EEE files holding both models and
    the verdict; the gate over the exported files equals the gate over the runs (and across kinds).
    A plain export (in-process: the CLI's path is the one above) writes every model of the source."""
    from harness.cli._export import export

    cand = _flip_helm(tmp_path / "cand", set(sorted(_helm_scores(HELM, "exact_match"))[:4]))
    r = subprocess.run([harness_bin, "export", str(cand), "--against", str(HELM), "--out", str(tmp_path / "pair")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.count("[export]") == 4, r.stdout + r.stderr
    assert schema_errors(tmp_path / "pair") == []
    docs = {json.loads(f.read_text())["source_metadata"]["additional_details"]["harness_gate_role"]: f
            for f in (tmp_path / "pair").rglob("*.json")}
    assert set(docs) == {"baseline", "candidate"}
    direct = gate_of(HELM, cand)
    exported, across = gate_of(docs["baseline"], docs["candidate"]), gate_of(HELM, docs["candidate"])
    assert cells(direct)
    for key, c in cells(direct).items():
        for other in (exported, across):
            assert all(cells(other)[key][k] == c[k] for k in ("n", "diff", "lower", "upper", "cell_verdict_unadjusted")), key
    assert exported["verdict"] == direct["verdict"] and exported["items"] == direct["items"]
    for f in docs.values():
        d = json.loads(f.read_text())
        assert d["source_metadata"]["additional_details"]["harness_gate_verdict"] == direct["verdict"]
        for res in d["evaluation_results"]:
            c = cells(direct)[(res["evaluation_name"], res["metric_config"]["metric_id"])]
            assert json.loads(res["score_details"]["details"]["harness_gate_diff"]) == c["diff"]
    written = export(HELM, None, tmp_path / "plain")
    assert len(written) == 2 and schema_errors(tmp_path / "plain") == []
    assert gate_of(written[0], docs["baseline"])["cells"][0]["diff"] == 0  # the same model, written twice


def test_bad_eee_files_are_one_line(tmp_path):
    from harness.errors import HarnessError
    from harness.runs import open_source

    samples = EEE_DEMO.with_name(EEE_DEMO.stem + "_samples.jsonl")
    cut = tmp_path / "cut_samples.jsonl"
    cut.write_text(samples.read_text() + samples.read_text()[:50])
    lonely = tmp_path / "lonely.json"
    lonely.write_text(EEE_DEMO.read_text())
    for path, words in ((cut, [f"{cut}:2", "not valid JSON"]), (lonely, [str(lonely), "without per-sample results"])):
        with pytest.raises(HarnessError) as e:
            open_source(path)
        assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.slow
def test_export_of_a_harness_run_round_trips(tiny_run, tmp_path, harness_bin):
    """A real `harness run` exported: every file valid against the EEE schema, and the exported models
    gated against each other (and against the run itself) give the run's own paired counts."""
    from harness.config import RegressConfig
    from harness.regress import RunRef, gate, parse_ref

    r = subprocess.run([harness_bin, "export", str(tiny_run.dir), "--out", str(tmp_path / "eee")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert schema_errors(tmp_path / "eee") == []
    files = _by_alias(tmp_path / "eee")
    assert set(files) == {"teacher", "student", "baseline"}
    s = RegressConfig(enabled=True)
    own = gate(RunRef(tiny_run.dir, "baseline"), RunRef(tiny_run.dir, "student"), s)
    exported = gate(parse_ref(str(files["baseline"]), "current", "--baseline"), parse_ref(str(files["student"]), "candidate", "--c"), s)
    mixed = gate(RunRef(tiny_run.dir, "baseline"), parse_ref(str(files["student"]), "candidate", "--c"), s)
    assert cells(own) and own["items"] == exported["items"] == mixed["items"]
    for key, c in cells(own).items():
        for other in (exported, mixed):
            assert all(cells(other)[key][k] == c[k] for k in ("n", "diff", "lower", "upper", "cell_verdict_unadjusted")), key
