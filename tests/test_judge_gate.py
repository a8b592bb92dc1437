"""Judge calibration before paying (issue 31): the stopping rule's statistics against statsmodels,
the stratified sample, and the staged judge through the real evaluate stage and inspect.

The staged tests need a judge that agrees with the reference and one that answers at random. No
real model can be relied on to be either, so they are scripted inspect model providers (a fake for
what cannot exist offline): `scripted/answers` answers item i right unless i % 3 == 0 (i % 2 == 0
with model arg `skill: low`), `scripted/judge` says yes iff the candidate answer equals the reference
(`mode: perfect`) or by a hash of the prompt (`mode: random`). Everything else is the harness's own
code: run_evaluate, the eval_set batches, inspect's re-scoring into the models' logs, load_frame.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings

import numpy as np
import pytest

from harness.config import CalibrateConfig, EvalConfig, GraderConfig, ModelConfig
from harness.stats import kappa_ci, kappa_look, rate_ci, rate_look


@pytest.mark.parametrize("table", [(30, 5, 8, 17), (10, 2, 3, 15), (3, 12, 20, 5), (40, 1, 2, 7)])
def test_kappa_ci_is_statsmodels_wald_interval(table):
    from scipy import stats
    from statsmodels.stats.inter_rater import cohens_kappa

    t = np.array(table, float).reshape(2, 2)
    res = cohens_kappa(t)
    k, lo, hi = kappa_ci(t, 0.05)
    assert k == pytest.approx(res.kappa)
    # statsmodels' own interval (alpha 0.05) is kappa -+ z * std_kappa
    assert (lo, hi) == pytest.approx((max(-1, res.kappa_low), min(1, res.kappa_upp)))
    z = stats.norm.ppf(1 - 0.01 / 2)
    assert kappa_ci(t, 0.01)[1] == pytest.approx(max(-1, res.kappa - z * res.std_kappa))
    # by hand: kappa = (po - pe) / (1 - pe)
    n = t.sum()
    po, pe = (t[0, 0] + t[1, 1]) / n, (t[0].sum() * t[:, 0].sum() + t[1].sum() * t[:, 1].sum()) / n**2
    assert k == pytest.approx((po - pe) / (1 - pe))


def test_a_constant_judge_gets_an_interval_not_certainty():
    """A judge that says yes to everything: κ = 0, statsmodels' SE is NaN; the interval uses the
    table + 0.5 (so it is not [0, 0]) and still lies below 0.6 on 30 items."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k, lo, hi = kappa_ci([[10, 20], [0, 0]], 0.05 / 4)
    assert k == 0 and lo < 0 < hi < 0.6
    assert kappa_ci([[0, 0], [0, 0]], 0.05) == (None, -1.0, 1.0)
    assert kappa_ci([[5, 0], [0, 0]], 0.05) == (None, -1.0, 1.0)  # both raters constant: nothing measured


def test_rate_ci_is_clopper_pearson_and_looks_use_one_sided_alpha_over_looks():
    from statsmodels.stats.proportion import proportion_confint

    r, lo, hi = rate_ci(3, 10, 0.05)
    assert (lo, hi) == pytest.approx(proportion_confint(3, 10, alpha=0.05, method="beta"))
    lk = rate_look(0, 10, 0.7, 0.05, 4)  # the demo's pairwise judge: 0 of 10 position-consistent
    assert lk.decision == "unreliable" and lk.high == pytest.approx(proportion_confint(0, 10, alpha=0.025, method="beta")[1])
    assert rate_look(10, 10, 0.7, 0.05, 4).decision == "undecided"  # 10 of 10 cannot show >= 0.7 at 98.75 % one-sided
    assert rate_look(60, 60, 0.7, 0.05, 4).decision == "reliable"
    j, ref = np.array([1, 0] * 20, float), np.array([1, 0] * 20, float)
    assert kappa_look(j, ref, 0.6, 0.05, 4).decision == "reliable"
    j[0] = np.nan  # an unparsed verdict is left out, as in the report's agreement
    assert kappa_look(j, ref, 0.6, 0.05, 4).n == 39


def test_plan_is_stratified_seeded_and_covers_every_unit_once():
    from harness.evaluate._calibrate import plan

    # 3 models x (right, wrong): the minority label of each model is in the sample
    strata = [(m, i % 10 == 0) for m in ("a", "b", "c") for i in range(60)]
    c = CalibrateConfig(sample=30, batch=20, looks=4, seed=1)
    batches = plan(strata, c)
    assert len(batches[0]) == 30 and [len(b) for b in batches[1:]] == [20, 20, 20, 180 - 90]
    assert sorted(i for b in batches for i in b) == list(range(180))
    first = [strata[i] for i in batches[0]]
    assert all((m, True) in first and (m, False) in first for m in "abc")
    assert sum(1 for m in "abc" for s in first if s == (m, True)) <= 6  # proportional, not equal, allocation
    assert plan(strata, c) == batches and plan(strata, CalibrateConfig(sample=30, seed=2)) != batches
    assert plan(strata, CalibrateConfig(enabled=False)) == [list(range(180))]
    assert plan(strata[:20], c) == [list(range(20))]  # a sample as large as everything: one batch


# -- the staged judge through run_evaluate ------------------------------------------------------------


def _register_scripted() -> None:
    from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, modelapi

    @modelapi(name="scripted")
    def scripted():  # noqa: ANN202
        class Scripted(ModelAPI):
            def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                         config: GenerateConfig = GenerateConfig(), **args) -> None:  # noqa: B008
                super().__init__(model_name, base_url, api_key, [], config)
                self.args = args

            async def generate(self, input: list[ChatMessage], tools, tool_choice, config) -> ModelOutput:  # noqa: ANN001
                text = input[-1].text
                if self.model_name == "answers":
                    m = re.search(r"question (\d+)", text)
                    if m is None:
                        return ModelOutput.from_content(self.model_name, "yes")
                    i = int(m.group(1))
                    wrong = i % 2 == 0 if self.args.get("skill") == "low" else i % 3 == 0
                    return ModelOutput.from_content(self.model_name, "nothing" if wrong else f"gold{i}")
                ref = re.search(r"Reference answer: (.*)\n", text)
                cand = re.search(r"Candidate answer: (.*)\n", text)
                if ref is None or cand is None:  # the check when the judge is opened
                    return ModelOutput.from_content(self.model_name, "yes")
                if self.args.get("mode") == "perfect":
                    yes = ref.group(1).strip() == cand.group(1).strip()
                else:
                    yes = hashlib.sha256(text.encode()).digest()[0] % 2 == 0
                return ModelOutput.from_content(self.model_name, "yes" if yes else "no")

        return Scripted


_register_scripted()
N = 60  # items per model; 2 models: 120 judged samples without the check


def _evaluate(tmp_path, mode: str, answered=None, **calibrate):
    """run_evaluate with the scripted models and judge; `answered`: a logs dir whose models' answers
    are copied first (finished logs: only the judge runs, as on a re-run with another judge)."""
    import shutil

    from harness.data import EvalItem
    from harness.evaluate import EvalModel, Judge, run_evaluate
    from harness.runs import load_frame

    if answered is not None:
        shutil.copytree(answered, tmp_path / "logs")
    items = [EvalItem(f"h{i}", "heldout", f"What is question {i}?", f"gold{i}", "", "g") for i in range(N)]
    models = [EvalModel("strong", "scripted/answers", {}), EvalModel("weak", "scripted/answers", {"skill": "low"})]
    cfg = EvalConfig(tasks=["heldout"], system=None, batch_size=32)
    rubric = ("Question: {question}\nReference answer: {target}\nCandidate answer: {answer}\n"
              "Same answer? Reply with one word: yes or no.")
    graders = {"exact": GraderConfig(kind="match", mode="exact", extract="whole"),
               "judge": GraderConfig(kind="judge", judge=ModelConfig(model="scripted/judge", args={"mode": mode}), rubric=rubric,
                                     max_tokens=4, reference="exact", calibrate=CalibrateConfig(**calibrate))}
    judge = Judge("judge", graders["judge"], {"mode": mode}, cfg)
    ev = run_evaluate(models, items, cfg, graders, tmp_path / "logs", judge)
    frame = load_frame(tmp_path / "logs")
    return ev.gates["judge"], frame[frame["grader"] == "judge"], frame[frame["grader"] == "exact"], ev


@pytest.fixture(scope="module")
def checked(module_tmp):
    """Two models answer 60 items each (the only time in this module), a perfect judge checks in."""
    d = module_tmp("checked")
    return d, _evaluate(d, "perfect", sample=30)


def test_a_reliable_judge_judges_every_item_with_the_verdicts_of_an_unchecked_run(checked, tmp_path):
    d, (gate, verdicts, exact, ev) = checked
    assert sum(ev.calls.values()) == 2 * N  # the models answered in this run
    assert gate["decision"] == "reliable" and gate["judged"] == gate["units"] == 2 * N and gate["calls_saved"] == 0
    assert gate["calls_made"] == 2 * N and gate["looks"][0]["judged"] == 30 and gate["looks"][0]["estimate"] == 1.0
    assert len(verdicts) == 2 * N
    # the same answers judged without the check: the same verdicts, and no model answered again
    _, plain, _, ev2 = _evaluate(tmp_path, "perfect", answered=d / "logs", enabled=False)
    assert sum(ev2.calls.values()) == 0
    key = ["alias", "id", "epoch"]
    both = verdicts[key + ["value", "answer"]].merge(plain[key + ["value", "answer"]], on=key, suffixes=("", "_plain"))
    assert len(both) == 2 * N and (both["value"] == both["value_plain"]).all() and (both["answer"] == both["answer_plain"]).all()
    # the judge agrees with the reference: its scores are exact match's
    assert (verdicts.set_index(key)["value"].sort_index() == exact.set_index(key)["value"].sort_index()).all()


def test_a_warm_rerun_reuses_the_calibration(checked):
    d, _ = checked
    again, v2, _, ev = _evaluate(d, "perfect", sample=30)
    assert again["calls_made"] == 0 and sum(ev.calls.values()) == 0
    assert again["decision"] == "reliable" and len(again["looks"]) == 1 and len(v2) == 2 * N


def test_a_random_judge_stops_after_the_calibration_sample(checked, tmp_path, capfd):
    # at random, kappa on 60 samples is about 0 +- 0.13: its bound is below 0.6 unless kappa-hat > 0.3
    # (p ~ 1 %; bench/judge_calibration.py has the rate); the scripted judge is deterministic
    d, _ = checked
    gate, verdicts, _, _ = _evaluate(tmp_path, "random", answered=d / "logs", sample=60)
    assert gate["decision"] == "stopped" and len(gate["looks"]) == 1
    assert gate["judged"] == gate["calls_made"] == 60 and gate["calls_saved"] == 2 * N - 60
    assert gate["looks"][0]["high"] < 0.6
    # only the calibration sample has the judge's scores (the perfect judge's verdicts are replaced)
    assert len(verdicts) == 60
    err = capfd.readouterr().err
    assert "[judge] judge 'judge': unreliable, stopped" in err and len([ln for ln in err.splitlines() if "[judge]" in ln]) == 1
    saved = json.loads((tmp_path / "judge" / "judge" / "gate.json").read_text())
    assert saved["decision"] == "stopped" and saved["calls_saved"] == 60


@pytest.mark.parametrize("key, value, expect", [
    ("sample", 0, "graders.j.calibrate: sample, batch and looks must be >= 1"),
    ("alpha", 1.5, "graders.j.calibrate.alpha must be in (0, 1)"),
    ("threshold", 2.0, "graders.j.calibrate.threshold must be in (-1, 1]"),
])
def test_bad_calibrate_keys_are_one_line_naming_the_key(key, value, expect):
    from harness.errors import HarnessError
    from harness.evaluate import check_grader

    for kind, rubric in (("judge", "{answer} vs {target}?"), ("pairwise", "{first} or {second}?")):
        g = GraderConfig(kind=kind, judge=ModelConfig(model="openai/x"), rubric=rubric, pairs=[["a", "b"]],
                         calibrate=CalibrateConfig(**{key: value}))
        with pytest.raises(HarnessError, match=re.escape(expect)):
            check_grader("j", g)


def test_the_report_says_a_stopped_judge_in_one_line(tmp_path):
    """gate.json -> summary.json's judge_gate -> the report's Judge calibration section."""
    from harness.evaluate._calibrate import Gate, finish
    from harness.report._judge import read_gates
    from harness.report._markdown import gate_markdown

    g = Gate("judge", "judge", "kappa", "exact", True, 0.6, 0.05, 4, 180, 1, decision="stopped", judged=30,
             looks=[{"look": 1, "judged": 30, "n": 30, "estimate": 0.0, "low": -0.3, "high": 0.3, "decision": "unreliable"}])
    finish(g, tmp_path / "judge" / "judge")
    (tmp_path / "judge" / ".superseded" / "judge").mkdir(parents=True)
    (tmp_path / "judge" / ".superseded" / "judge" / "gate.json").write_text("{}")  # an earlier config's: not read
    gates = read_gates(tmp_path / "judge")
    assert len(gates) == 1 and gates[0]["calls"] == 30 and gates[0]["calls_saved"] == 150 and "calls_made" not in gates[0]
    lines = gate_markdown({"judge_gate": gates})
    stopped = [ln for ln in lines if ln.startswith("- ⚠")]
    assert len(stopped) == 1 and "stopped after 30 of 180 samples" in stopped[0] and "150 judge calls saved" in stopped[0]
