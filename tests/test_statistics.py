"""One statistical answer everywhere (issue 29): the report's, the sweep report's and the gate's
intervals are the same numbers; outcomes say what is not ruled out; a sweep's winner is tested as
a winner; noise diagnostics. Pure-python on built frames: no model runs here."""

import math

import numpy as np
import pandas as pd
import pytest

from harness.config import ReportConfig
from harness.report import analyse
from harness.report._markdown import verdict_lines
from harness.report._noise import noise_table, pass_at_k, pass_hat_k
from harness.report._sweep import sweep_tables, sweep_verdict
from harness.stats import OUTCOMES, gate_cell, gate_outcome, gate_required_n, outcome, paired_interval, winner_test

COLUMNS = ["alias", "model", "task", "grader", "id", "epoch", "value", "group", "answer", "extracted", "target", "cluster", "judge"]


def _pairs01(n: int, n10: int, n01: int, both: int) -> tuple[list[float], list[float]]:
    """(a, b) 0/1 scores on n items: n10 a right b wrong, n01 the reverse, `both` right on both."""
    a = [1.0] * n10 + [0.0] * n01 + [1.0] * both
    b = [0.0] * n10 + [1.0] * n01 + [1.0] * both
    rest = n - len(a)
    return a + [0.0] * rest, b + [0.0] * rest


# the demo's three cases: student - baseline on heldout (+60 pp of 40), on control (-30 pp of 20:
# 2 vs 8 discordant, 85 % -> 55 %), teacher - baseline on control (no item differs)
HELD_S, HELD_B = _pairs01(40, 26, 2, 6)
CTRL_S, CTRL_B = _pairs01(20, 2, 8, 9)
CTRL_T = list(CTRL_B)
HELD_T = [1.0] * 36 + [0.0] * 4


def _demo_frame() -> pd.DataFrame:
    rows = []
    for task, scores in (("heldout", {"teacher": HELD_T, "baseline": HELD_B, "student": HELD_S}),
                         ("control", {"teacher": CTRL_T, "baseline": CTRL_B, "student": CTRL_S})):
        for alias, vals in scores.items():
            for i, v in enumerate(vals):
                rows.append((alias, f"hf/{alias}", task, "contains", f"{task}{i}", 1, v, "", f"{alias} says {i}", "", "gold", "", ""))
    return pd.DataFrame(rows, columns=COLUMNS)


CASES = [("heldout", "student", HELD_S, HELD_B), ("control", "student", CTRL_S, CTRL_B), ("control", "teacher", CTRL_T, CTRL_B)]


def test_report_sweep_and_gate_print_the_same_interval_and_none_is_a_point():
    """The three files' numbers come from: analyse (summary.json, report.md, report.html), sweep_tables
    (sweep.json, the sweep's report.md/html) and gate_cell (regress.json: its one-sided (1 - α) bounds;
    at α/2 they are the two-sided (1 - α) interval the reports print)."""
    frame = _demo_frame()
    alpha = 0.05
    report = {(c["task"], c["a"], c["b"]): c for c in analyse(frame, ReportConfig(alpha=alpha))["comparisons"]}
    sweep = {(c["task"], c["a"], c["b"]): c for c in sweep_tables(
        frame, [("student", "baseline"), ("teacher", "baseline")], [], [], ReportConfig(alpha=alpha))["comparisons"]}
    for task, a, xs, ys in CASES:
        r, s = report[(task, a, "baseline")], sweep[(task, a, "baseline")]
        g = gate_cell(xs, ys, margin=0.05, alpha=alpha / 2)
        assert (r["ci_low"], r["ci_high"]) == (s["ci_low"], s["ci_high"]) == (round(g.lower, 6), round(g.upper, 6))
        assert r["test"] == s["test"] == g.method  # the method named next to the interval is the gate's
        assert r["ci_high"] - r["ci_low"] > 0.1 and r["ci_low"] < r["diff"] <= r["ci_high"] or r["diff"] == 0
        assert r["ci_high"] - r["ci_low"] > 0.1
    # the figures: -30 pp [-57.2, +2.0]; identical: +-16.1 (the old paired t printed [+0.0, +0.0])
    ctrl, same = report[("control", "student", "baseline")], report[("control", "teacher", "baseline")]
    assert (round(100 * ctrl["ci_low"], 1), round(100 * ctrl["ci_high"], 1)) == (-57.2, 2.0)
    assert (round(100 * same["ci_low"], 1), round(100 * same["ci_high"], 1)) == (-16.1, 16.1) and same["p_value"] == 1.0
    held = report[("heldout", "student", "baseline")]
    assert held["diff"] == pytest.approx(0.6) and held["outcome"] == "better"


def test_p_value_is_dual_to_the_interval():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(8, 60))
        a, b = (rng.random(n) < rng.uniform(0.2, 0.9)).astype(float), (rng.random(n) < rng.uniform(0.2, 0.9)).astype(float)
        r = paired_interval(a, b)
        assert (r.p_value < 0.05) == (r.ci_low > 0 or r.ci_high < 0), (r, a.sum(), b.sum())


def test_continuous_interval_never_collapses_and_is_the_gates():
    d = np.full(10, 0.2)  # every per-item difference the same: t would give zero width
    r = paired_interval(0.5 + d, np.full(10, 0.5))
    assert r.ci_low < 0.2 < r.ci_high and "fractional" in r.method
    one = paired_interval([0.7], [0.4])
    assert one.n == 1 and one.ci_high - one.ci_low > 0.1
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 30) / 3, rng.integers(0, 4, 30) / 3  # means of 3 epochs
    r, g = paired_interval(a, b, 0.05), gate_cell(a, b, 0.05, 0.025)
    assert (r.ci_low, r.ci_high) == pytest.approx((g.lower, g.upper)) and r.method == g.method and "Hall" in r.method
    # a raw metric outside [0, 1] (a foreign log's) is mapped in and back: the same interval as on the unit scale
    raw = paired_interval(10 * a + 5, 10 * b + 5)
    assert (raw.ci_low, raw.ci_high) == pytest.approx((10 * r.ci_low, 10 * r.ci_high))


def test_demo_control_drop_is_in_the_verdict_block_with_its_interval_and_required_n():
    s = analyse(_demo_frame(), ReportConfig())
    lines = verdict_lines({**s, "gap_closed": []})
    drop = [v for v in lines if v.startswith("Not ruled out: student − baseline on control")]
    assert drop, lines
    c = next(c for c in s["comparisons"] if (c["task"], c["a"]) == ("control", "student"))
    assert c["outcome"] == "not ruled out" and c["required_n"] == gate_required_n(-0.3, 0.5, 0.05, alpha=0.025)
    assert "-30.0 pp [-57.2, +2.0]" in drop[0] and f"about {c['required_n']} items would decide it" in drop[0]
    # forgetting on the control task comes before any held-out cell
    firsts = [v for v in lines if v.startswith("Not ruled out")]
    assert firsts[0] == drop[0]



def test_a_significant_drop_off_the_held_out_task_is_in_the_verdict_block():
    """Forgetting that is significant (60 control items, 1 vs 20 discordant) is named too, not only
    the held-out task's top results."""
    s_, b_ = _pairs01(60, 1, 20, 30)
    extra = pd.DataFrame([(alias, "m", "control2", "contains", f"c{i}", 1, v, "", "x", "", "g", "", "")
                          for alias, vals in (("student", s_), ("baseline", b_), ("teacher", b_)) for i, v in enumerate(vals)],
                         columns=COLUMNS)
    s = analyse(pd.concat([_demo_frame(), extra], ignore_index=True), ReportConfig())
    lines = verdict_lines({**s, "gap_closed": []})
    worse = [v for v in lines if v.startswith("Worse: student − baseline on control2")]
    assert len(worse) == 1 and "p adj." in worse[0] and "[-44.8, -19.0]" in worse[0]


def test_required_n_agrees_with_statsmodels_power():
    """The gate's planning formula (Nam 1997's score-test sample size) against statsmodels' normal
    power for a one-sample test of the per-item differences (SD sqrt(psi - d^2)): the two differ
    only in the variance under H0, so they agree within ~25 % and converge as the variances meet."""
    from statsmodels.stats.power import NormalIndPower

    for diff, psi, margin in ((-0.30, 0.5, 0.05), (0.0, 0.2, 0.10), (0.05, 0.3, 0.05), (-0.2, 0.4, 0.0)):
        ours = gate_required_n(diff, psi, margin, alpha=0.025)
        sd = math.sqrt(psi - diff**2)
        theirs = NormalIndPower().solve_power(effect_size=abs(diff + margin) / sd, alpha=0.025, power=0.8, ratio=0,
                                              alternative="larger")
        assert ours == pytest.approx(theirs, rel=0.25), (diff, psi, margin, ours, theirs)


def test_every_outcome_is_reachable_and_documented():
    assert outcome(0.3, 0.1, 0.5, True, 0.05, 40, 0.2) == "better"
    assert outcome(-0.3, -0.5, -0.1, True, 0.05, 40, 0.2) == "worse"
    assert outcome(0.0, -0.03, 0.03, False, 0.05, 4000, 0.02) == "equivalent"
    assert outcome(0.05, -0.02, 0.2, False, 0.05, 400, 0.05) == "non-inferior"
    assert outcome(-0.3, -0.57, 0.02, False, 0.05, 20, 0.43) == "not ruled out"
    assert outcome(0.0, -0.6, 0.6, False, 0.05, 2, math.inf) == "too few items"
    assert outcome(0.0, 0, 0, False, 0.05, 0, 1.0) == "too few items"
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "statistics.md").read_text()
    assert all(f"**{o}**" in doc for o in OUTCOMES)


def test_gate_cells_speak_the_same_vocabulary():
    """A gated cell's outcome follows its verdict (pass / regression / inconclusive never contradicted)."""
    assert gate_outcome("regression", -0.4, -0.1, 0.05, 40, 0.2) == "worse"
    assert gate_outcome("pass", 0.02, 0.3, 0.05, 40, 0.2) == "better"
    assert gate_outcome("pass", -0.03, 0.04, 0.05, 400, 0.02) == "equivalent"
    assert gate_outcome("pass", -0.03, 0.2, 0.05, 400, 0.02) == "non-inferior"
    assert gate_outcome("inconclusive", -0.53, -0.04, 0.05, 20, 0.38) == "not ruled out"
    assert gate_outcome("inconclusive", -0.9, 0.9, 0.05, 2, math.inf) == "too few items"
    # the demo's control drop, as the gate decides it: inconclusive -> not ruled out, like the report
    g = gate_cell(CTRL_S, CTRL_B, 0.05, 0.05)
    assert g.verdict == "inconclusive" and gate_outcome(g.verdict, g.lower, g.upper, 0.05, g.n, g.mde) == "not ruled out"
    assert set(OUTCOMES) >= {gate_outcome(v, lo, hi, 0.05, 40, 0.2) for v in ("pass", "regression", "inconclusive", "not gated")
                             for lo, hi in ((-0.3, -0.1), (-0.02, 0.02), (0.01, 0.2), (-0.3, 0.3))}


def test_winner_test_single_arm_is_the_paired_permutation_test():
    """With one arm the max-statistic permutation is the paired sign-flip test: against scipy's exact one."""
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = (rng.random(12) < 0.7).astype(float), (rng.random(12) < 0.4).astype(float)
    w = winner_test([a], b, n_resamples=20000, seed=2)
    exact = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="samples",
                                   alternative="greater", n_resamples=10**6).pvalue
    assert w.p_adjusted == pytest.approx(exact, abs=0.01)


def test_winner_test_accounts_for_the_selection():
    rng = np.random.default_rng(4)
    n, arms = 40, 8
    skill = rng.uniform(0.2, 0.9, n)  # item difficulty shared by every model: no arm differs from the baseline
    base = (rng.random(n) < skill).astype(float)
    xs = [(rng.random(n) < skill).astype(float) for _ in range(arms)]
    w = winner_test(xs, base)
    naive = paired_interval(xs[w.best], base)
    assert w.diff == pytest.approx(max(x.mean() for x in xs) - base.mean())
    assert w.p_adjusted > naive.p_value / 2  # the one-sided naive p is the smaller: the selection costs
    strong = winner_test(xs + [np.ones(n)], base)
    assert strong.best == arms and strong.p_adjusted < 0.01 and strong.lower_adjusted > 0


def test_sweep_report_names_the_winner_naive_and_adjusted_side_by_side():
    frame = _demo_frame()
    frame = pd.concat([frame, frame[frame.alias == "student"].assign(alias="student[b]")], ignore_index=True)
    t = sweep_tables(frame, [("student", "baseline"), ("student[b]", "baseline")], [], ["student", "student[b]"], ReportConfig())
    w = t["winner"]
    assert w["task"] == "heldout" and w["n_arms"] == 2 and w["naive_p"] < 0.05 and w["adjusted_p"] < 0.05
    assert (w["naive_ci_low"], w["naive_ci_high"]) == next((c["ci_low"], c["ci_high"]) for c in t["comparisons"]
                                                             if (c["task"], c["a"]) == ("heldout", w["model"]))
    s = {**t, "runs": [{"students": ["student"], "labels": {"student": "student"}}], "alpha": 0.05, "usage": []}
    line = next(v for v in sweep_verdict(s) if v.startswith("Best of 2 students"))
    assert "Naive, as if chosen in advance" in line and "Selection accounted for" in line


def test_a_cell_the_run_report_leaves_untested_stays_untested_in_the_sweep():
    """A judge that disagrees with its reference (kappa < 0.6) calls the student far better than the
    baseline on every held-out item. The run's report shows that cell but leaves it out of the tested
    family; the sweep report over that run did test it (and counted it in the correction of the rest)."""
    from pathlib import Path

    from harness.report._sweep import sweep_excluded
    from harness.runs import Run

    frame = _demo_frame()
    held = frame[(frame.task == "heldout") & (frame.grader == "contains")]
    judge = held.assign(grader="judge", judge="hf/judge vs contains", value=(held.alias == "student").astype(float))
    frame = pd.concat([frame, judge], ignore_index=True)
    rc = ReportConfig()
    report = analyse(frame, rc, aliases=["teacher", "baseline", "student"])
    (row,) = [r for r in report["judge_agreement"] if r["judge"] == "judge"]
    assert row["unreliable"] and row["kappa"] < 0.6
    run = Run(dir=Path("run"), setting="finetune.lr=1e-3", overrides={}, summary=report)
    pairs = [("student", "baseline"), ("teacher", "student"), ("teacher", "baseline")]
    sweep = sweep_tables(frame, pairs, [], ["student"], rc, excluded=sweep_excluded([run], rc))["comparisons"]
    by = {(c["task"], c["grader"], c["a"], c["b"]): c for c in sweep}
    cell = by[("heldout", "judge", "student", "baseline")]
    assert cell["diff"] == 1.0 and cell["p_value"] < 1e-6  # would be the sweep's strongest finding
    assert cell["p_adjusted"] is None and not cell["significant"]
    assert cell["correction"].startswith("not tested: judge unreliable for this task") and "finetune.lr=1e-3" in cell["correction"]
    # the family is the run report's: the same correction, the same adjusted p for every tested cell
    mine = {(c["task"], c["grader"], c["a"], c["b"]): c for c in report["comparisons"]}
    assert set(by) == set(mine)
    for key, c in by.items():
        if key in mine:
            assert (c["p_adjusted"], c["correction"].split(";")[0]) == (mine[key]["p_adjusted"], mine[key]["correction"])
    assert sweep_excluded([run], ReportConfig(include_unreliable=True)) == {}


def test_pass_at_k_matches_its_definition():
    from itertools import combinations

    for n, c, k in ((5, 2, 2), (4, 0, 3), (6, 6, 4), (5, 3, 5)):
        tries = [1] * c + [0] * (n - c)
        subsets = list(combinations(tries, k))
        assert pass_at_k(n, c, k) == pytest.approx(np.mean([max(s) for s in subsets]))
        assert pass_hat_k(n, c, k) == pytest.approx(np.mean([min(s) for s in subsets]))


def test_noise_diagnostics():
    frame = _demo_frame()
    # the teacher answers exactly as the baseline does (a true null), an oracle is at the ceiling
    frame.loc[frame.alias == "teacher", "answer"] = frame.loc[frame.alias == "baseline", "answer"].to_numpy()
    oracle = frame[(frame.alias == "baseline") & (frame.task == "heldout")].assign(alias="oracle", value=1.0, answer="gold")
    frame = pd.concat([frame, oracle], ignore_index=True)
    noise = analyse(frame, ReportConfig())["noise"]
    cells = {c["task"]: c for c in noise["cells"]}
    assert (cells["control"]["never_right"], cells["control"]["always_right"], cells["control"]["n_items"]) == (1, 9, 20)
    assert (cells["heldout"]["never_right"], cells["heldout"]["always_right"]) == (0, 6)  # the oracle is right on all 40
    assert cells["heldout"]["ceiling"] == ["oracle"] and cells["control"]["floor"] == []
    assert noise["identical_outputs"] == [{"a": "baseline", "b": "teacher", "n": 60}] and noise["epochs"] == []
    # two epochs: the student flips on every other item in the second
    two = pd.concat([frame.assign(epoch=1), frame.assign(epoch=2)], ignore_index=True)
    flip = (two.epoch == 2) & (two.alias == "student") & (two.task == "control") & (two.index % 2 == 0)
    two.loc[flip, "value"] = 1 - two.loc[flip, "value"]
    ep = {(e["task"], e["model"]): e for e in noise_table(two, _means(two))["epochs"]}
    st, bl = ep[("control", "student")], ep[("control", "baseline")]
    v = two[(two.task == "control") & (two.alias == "student")].pivot(index="id", columns="epoch", values="value")
    assert st["pass_at_k"] == pytest.approx(float((v.max(axis=1)).mean()))  # k = n: pass@k is "any epoch right"
    assert st["pass_hat_k"] == pytest.approx(float((v.min(axis=1)).mean()))
    assert bl["within_share"] == 0 and bl["se_left_with_infinite_epochs"] == 1  # identical epochs: more will not help
    assert 0 < st["within_share"] < 1


def _means(frame: pd.DataFrame) -> pd.Series:
    from harness.report._analysis import item_means

    return item_means(frame)
