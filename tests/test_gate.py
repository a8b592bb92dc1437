"""harness.stats.gate_cell: the regression gate's per-cell statistics (no model; fast).

Reference numbers, from the R packages' own tests and documentation:
- `contingencytables` (Fagerland, Lydersen & Laake; tests/testthat/test-ch8.R), Cavo et al. (2012)
  paired table [[59, 6], [16, 80]]: Tango asymptotic score CI -0.0621 (95 % CI -0.1240 to -0.0054);
  McNemar asymptotic test P = 0.033006, Z = -2.132.
- `ratesci` (Laud; README, pairbinci), Bentur et al. (2009) table c(1, 1, 7, 12), default SCAS
  (skewness-corrected, N-1 bias factor): 95 % CI -0.5281 to -0.0184; score at 0 -2.070197, one-sided
  p 0.01921697.
"""

import math

import numpy as np
import pytest
from scipy import stats as st

from harness.stats import gate_cell, gate_mde, gate_required_n, gate_table
from harness.stats._gate import _tango_bound, _tango_z

Z975 = st.norm.ppf(0.975)


def _pairs(n11, n10, n01, n00):
    """candidate, current for a paired 2x2 table (n10: candidate right, current wrong)."""
    cand = [1] * n11 + [1] * n10 + [0] * n01 + [0] * n00
    cur = [1] * n11 + [0] * n10 + [1] * n01 + [0] * n00
    return np.array(cand, float), np.array(cur, float)


def test_tango_interval_matches_contingencytables_reference():
    assert _tango_bound(6, 16, 161, Z975, "lower") == pytest.approx(-0.1240, abs=5e-5)
    assert _tango_bound(6, 16, 161, Z975, "upper") == pytest.approx(-0.0054, abs=5e-5)
    assert float(_tango_z(6, 16, 161, 0.0)) == pytest.approx(-2.132, abs=5e-4)  # McNemar's Z
    assert 2 * st.norm.cdf(float(_tango_z(6, 16, 161, 0.0))) == pytest.approx(0.033006, abs=1e-6)


def test_skewness_corrected_interval_matches_ratesci_reference():
    assert _tango_bound(1, 7, 21, Z975, "lower", skew=True) == pytest.approx(-0.5281, abs=5e-5)
    assert _tango_bound(1, 7, 21, Z975, "upper", skew=True) == pytest.approx(-0.0184, abs=5e-5)
    assert float(_tango_z(1, 7, 21, 0.0, skew=True)) == pytest.approx(-2.070197, abs=1e-6)
    assert st.norm.cdf(float(_tango_z(1, 7, 21, 0.0, skew=True))) == pytest.approx(0.01921697, abs=1e-8)


def test_gate_interval_is_the_union_of_both_score_intervals():
    cand, cur = _pairs(59, 6, 16, 80)
    g = gate_cell(cand, cur, margin=0.05, alpha=0.025, strict=True)  # one-sided 97.5 % bounds = two-sided 95 %
    assert g.diff == pytest.approx(-10 / 161, abs=1e-12) and (g.n10, g.n01, g.n) == (6, 16, 161)
    assert g.lower == pytest.approx(min(_tango_bound(6, 16, 161, Z975, "lower", s) for s in (False, True)), abs=1e-9)
    assert g.upper == pytest.approx(max(_tango_bound(6, 16, 161, Z975, "upper", s) for s in (False, True)), abs=1e-9)
    assert g.lower <= -0.1240 + 5e-5 and g.upper >= -0.0054 - 5e-5
    # strict: H0 d >= 0, the larger of the two one-sided McNemar-type p-values (the N-1 factor's)
    assert g.p_regression == pytest.approx(st.norm.cdf(-2.132 * math.sqrt(160 / 161)), abs=2e-4)
    assert g.method.startswith("score interval")


@pytest.mark.parametrize("n", [20, 40, 200])
def test_exact_size_of_both_one_sided_tests_is_at_most_alpha(n):
    """Exact error rates by enumerating every 2x2 table, at the boundary of each null hypothesis, over
    margins and discordance rates psi: false pass (true d = -margin) and false regression (true d =
    -margin; strict: 0). Asymptotic tests can only be close to alpha: <= 0.055 (0.053 seen) once
    about 15 discordant pairs are expected; below that, with nearly all disagreements one way,
    the regression claim at exactly the margin reaches 0.065 (Tango's alone: 0.073 at n = 40)."""
    from scipy.special import gammaln

    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    ok = b + c <= n
    b, c = b[ok], c[ok]
    zc = st.norm.ppf(0.95)
    for margin in (0.02, 0.05, 0.10):
        z_ni = np.minimum(_tango_z(b, c, n, -margin), _tango_z(b, c, n, -margin, skew=True))
        z_reg = np.maximum(_tango_z(b, c, n, -margin), _tango_z(b, c, n, -margin, skew=True))
        z_strict = np.maximum(_tango_z(b, c, n, 0.0), _tango_z(b, c, n, 0.0, skew=True))
        for psi in np.arange(margin + 0.02, 0.6, 0.02):
            for delta, reject in ((-margin, z_ni > zc), (-margin, z_reg < -zc), (0.0, z_strict < -zc)):
                p10, p01 = (psi + delta) / 2, (psi - delta) / 2
                logp = (gammaln(n + 1) - gammaln(b + 1) - gammaln(c + 1) - gammaln(n - b - c + 1)
                        + b * np.log(p10) + c * np.log(p01) + (n - b - c) * np.log1p(-psi))
                size = float(np.exp(logp)[reject].sum())
                assert size <= (0.055 if n * psi >= 15 else 0.066), (n, margin, psi, delta, size)


def test_no_discordant_pairs_is_not_a_zero_width_interval():
    """A model against itself: Tango's bounds are +-z^2/(n+z^2) (6.3 pp at n = 40), not 0."""
    z2 = st.norm.ppf(0.95) ** 2
    for n in (5, 40, 60):
        assert _tango_bound(0, 0, n, math.sqrt(z2), "lower") == pytest.approx(-z2 / (n + z2), abs=1e-9)
        cand, cur = _pairs(n // 2, 0, 0, n - n // 2)
        g = gate_cell(cand, cur, margin=0.10)
        assert g.lower <= -z2 / (n + z2) + 1e-9 and g.upper >= 0.01
        assert (g.n10, g.n01, g.diff) == (0, 0, 0.0)


def test_identical_models_pass_at_10pp_but_not_2pp_with_60_items():
    cand, cur = _pairs(40, 0, 0, 20)
    wide, tight = gate_cell(cand, cur, margin=0.10), gate_cell(cand, cur, margin=0.02)
    assert wide.verdict == "pass" and wide.p_noninferior < 0.05
    assert tight.verdict == "inconclusive" and tight.p_noninferior > 0.05 and tight.p_regression > 0.05
    # never "no difference": it says what would decide it
    assert tight.required_n is not None and tight.required_n > 60 and tight.mde > 0.02


def test_clear_drop_is_a_regression():
    cand, cur = _pairs(20, 1, 14, 5)  # 40 items, candidate loses 13 net: -32.5 pp
    g = gate_cell(cand, cur, margin=0.05)
    assert g.verdict == "regression" and g.upper < -0.05 and g.p_regression < 0.05


def test_strict_flags_a_small_significant_drop_that_is_within_the_margin():
    cand, cur = _pairs(300, 0, 20, 80)  # 400 items, -5 pp, very precise
    loose, strict = gate_cell(cand, cur, margin=0.10), gate_cell(cand, cur, margin=0.10, strict=True)
    assert loose.verdict == "pass" and loose.lower > -0.10
    assert strict.verdict == "regression" and strict.upper < 0 and strict.p_regression < 0.05
    assert loose.p_noninferior == strict.p_noninferior  # strict only moves the regression bound


def _check_duality(g, margin, alpha, strict):
    bound = 0.0 if strict else -margin
    if abs(g.lower + margin) > 1e-7:
        assert (g.p_noninferior < alpha) == (g.lower > -margin), g
    if abs(g.upper - bound) > 1e-7:
        assert (g.p_regression < alpha) == (g.upper < bound), g
    assert g.lower <= g.diff <= g.upper


@pytest.mark.parametrize("kind", ["binary", "epochs", "clusters_binary", "clusters_epochs"])
def test_p_values_are_dual_to_the_bounds(kind):
    rng = np.random.default_rng(7)
    for _ in range(60):
        n = int(rng.choice([1, 3, 5, 12, 40, 200]))
        p = rng.uniform(0.2, 0.9, n)
        e = 1 if kind.endswith("binary") or kind == "binary" else 3
        cur = rng.binomial(e, p) / e
        cand = rng.binomial(e, np.clip(p + rng.normal(-0.05, 0.2, n), 0, 1)) / e
        clusters = np.repeat(np.arange(n), 4)[:n] if kind.startswith("clusters") else None
        margin, alpha = float(rng.choice([0.0, 0.02, 0.05, 0.1])), float(rng.choice([0.01, 0.05, 0.1, 0.3, 0.45]))
        strict = bool(rng.random() < 0.3)
        g = gate_cell(cand, cur, margin, alpha, strict, clusters)
        _check_duality(g, margin, alpha, strict)
        assert g.verdict == ("regression" if g.p_regression < alpha else "pass" if g.p_noninferior < alpha else "inconclusive")


def test_extreme_table_where_the_corrected_score_is_not_zero_at_the_estimate():
    # 1 discordant pair in 40 at alpha 0.45: the SCAS crossing lies beyond the estimate (was a crash)
    g = gate_cell(*_pairs(20, 0, 1, 19), margin=0.02, alpha=0.45)
    _check_duality(g, 0.02, 0.45, False)


def test_score_statistics_are_decreasing_so_the_bounds_are_intervals():
    grid = np.linspace(-0.999, 0.999, 2001)
    for b, c, n in [(0, 0, 40), (6, 16, 161), (12, 0, 40), (0, 40, 40), (3, 2, 5), (40, 0, 40), (1, 7, 21), (0, 3, 40)]:
        assert np.all(np.diff(_tango_z(b, c, n, grid)) <= 1e-12), (b, c, n)
        # the skewness-corrected one too, wherever it could meet a critical value (|z| >= 1)
        z = _tango_z(b, c, n, grid, skew=True)
        big = (np.abs(z[:-1]) >= 1) & (np.abs(z[1:]) >= 1)
        assert np.all(np.diff(z)[big] <= 1e-9), (b, c, n)


def test_nan_pairs_are_dropped_and_counted():
    cand = [1, 1, np.nan, 0, 1, np.nan]
    cur = [0, np.nan, 1, 0, 1, np.nan]
    g = gate_cell(cand, cur, margin=0.1)
    assert (g.n, g.n_dropped, g.n10, g.n01) == (3, 3, 1, 0)
    empty = gate_cell([np.nan], [1.0], margin=0.1)
    assert (empty.verdict, empty.n, empty.n_dropped, empty.required_n) == ("inconclusive", 0, 1, None)


def test_epoch_means_use_a_paired_t_on_items():
    cur = np.full(40, 0.5)
    cand = cur + np.array([-1 / 2, -1 / 6, 0, 0, 1 / 6, 1 / 2] * 6 + [-1 / 6, 1 / 6, 0, 0])  # symmetric: skewness 0
    d = cand - cur
    assert abs(st.skew(d)) < 1e-12
    g = gate_cell(cand, cur, margin=0.05)
    assert g.method.startswith("paired t on per-item means") and g.n10 is None
    # no skewness: exactly scipy's one-sample t test and interval
    t = st.ttest_1samp(d, -0.05, alternative="greater")
    assert g.p_noninferior == pytest.approx(t.pvalue, rel=1e-9)
    assert g.lower == pytest.approx(t.confidence_interval(0.95).low, rel=1e-9)
    # per-item means that are all 0/1 (e.g. three identical epochs): the binary score interval applies
    b = gate_cell(np.round(cand + 0.01), np.round(cur + 0.01), margin=0.05)
    assert b.method.startswith("score interval") and b.n10 is not None


def test_skewed_epoch_means_widen_the_long_tail_side():
    """A candidate that loses a few items by whole epochs: left-skewed differences. The plain t
    lower bound is too optimistic there; the gate's (the union with Hall's corrected t) is lower."""
    d = np.array([0.0] * 34 + [1 / 3] * 2 + [-1 / 3, -2 / 3, -1.0, -1.0])
    cur = np.where(d > 0, 0.0, 1.0)
    cand = cur + d
    g = gate_cell(cand, cur, margin=0.10)
    plain = st.ttest_1samp(d, 0).confidence_interval(0.90)
    assert g.lower < plain.low - 0.005 and g.upper == pytest.approx(plain.high, abs=1e-12)
    # near-degenerate: one item in 40 differs by 1/3; plain t would claim d > -2.2 pp
    d1 = np.array([0.0] * 39 + [-1 / 3])
    g1 = gate_cell(np.full(40, 2 / 3) + d1, np.full(40, 2 / 3), margin=0.05)
    assert st.ttest_1samp(d1, 0).confidence_interval(0.90).low > -0.025 and g1.lower < -0.05 and g1.verdict == "inconclusive"


def test_equal_fractional_scores_do_not_give_a_zero_width_interval():
    x = np.full(40, 2 / 3)
    g = gate_cell(x, x, margin=0.10)
    assert g.lower < -0.01 and g.upper > 0.01 and "fractional" in g.method


def test_clusters_widen_the_interval_and_singletons_change_nothing():
    rng = np.random.default_rng(11)
    k = np.repeat(np.arange(10), 4)  # 10 sources x 4 paraphrases; the candidate fails whole sources
    effect = rng.choice([-1.0, 0.0, 0.0, 1.0], 10)[k]
    cur = (rng.random(40) < 0.6).astype(float)
    cand = np.where(effect < 0, 0.0, np.where(effect > 0, 1.0, cur))
    plain, robust = gate_cell(cand, cur, 0.05), gate_cell(cand, cur, 0.05, clusters=k)
    assert robust.n_clusters == 10 and "cluster-robust" in robust.method
    # whole sources move together: the cluster-robust interval is wider, and so is the plan
    assert robust.lower < plain.lower - 0.02 and robust.upper > plain.upper + 0.02
    assert robust.p_noninferior >= plain.p_noninferior and robust.p_regression >= plain.p_regression
    # treated as 40 independent items the drop looks significant; as 10 sources it does not
    strict_plain, strict_robust = gate_cell(cand, cur, 0.05, strict=True), gate_cell(cand, cur, 0.05, strict=True, clusters=k)
    assert strict_plain.verdict == "regression" and strict_robust.verdict == "inconclusive"
    assert robust.required_n > plain.required_n and robust.mde > plain.mde
    single = gate_cell(cand, cur, 0.05, clusters=np.arange(40))
    assert single == plain


def test_required_n_has_the_promised_power_exactly():
    """Exact power of the gate's score test at the planned n, by enumerating every 2x2 table."""
    from scipy.special import gammaln

    for diff, psi, margin in [(0.0, 0.10, 0.05), (0.0, 0.20, 0.10), (0.02, 0.15, 0.05)]:
        n = gate_required_n(diff, psi, margin)
        p10, p01 = (psi + diff) / 2, (psi - diff) / 2
        b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        ok = b + c <= n
        b, c = b[ok], c[ok]
        logp = (gammaln(n + 1) - gammaln(b + 1) - gammaln(c + 1) - gammaln(n - b - c + 1)
                + b * np.log(p10) + c * np.log(p01) + (n - b - c) * np.log1p(-psi))
        z = np.minimum(_tango_z(b, c, n, -margin), _tango_z(b, c, n, -margin, skew=True))  # the gate's test
        power = float(np.exp(logp)[z > st.norm.ppf(0.95)].sum())
        assert 0.77 <= power <= 0.85, (diff, psi, margin, n, power)


def test_required_n_and_mde_agree_with_the_zero_discordance_closed_form():
    # no discordance: pass iff n > z^2 (1 - m) / m; the planner gives the same boundary
    z2 = st.norm.ppf(0.95) ** 2
    n_star = gate_required_n(0.0, 0.0, 0.10)
    assert n_star == math.ceil(z2 * 0.9 / 0.1)
    assert gate_cell(*_pairs(n_star, 0, 0, 0), margin=0.10).verdict == "pass"
    assert gate_cell(*_pairs(n_star - 1, 0, 0, 0), margin=0.10).verdict == "inconclusive"
    # mde at n is the distance the planner needs n for
    for n, psi in [(40, 0.1), (200, 0.2)]:
        d = gate_mde(n, psi, 0.05)
        assert gate_required_n(-0.05 + d, psi, 0.05) == pytest.approx(n, abs=1)
    assert gate_required_n(-0.05, 0.1, 0.05) is None  # exactly at the margin: no n decides
    assert gate_required_n(-0.05, 0.1, 0.05, strict=True) is not None


def test_gate_table_is_monotone():
    rows = gate_table()
    assert len(rows) == 9
    by = {(r["margin"], r["discordance"]): r["required_n"] for r in rows}
    assert by[(0.02, 0.2)] > by[(0.05, 0.2)] > by[(0.10, 0.2)]
    assert by[(0.05, 0.05)] < by[(0.05, 0.10)] < by[(0.05, 0.20)]


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="margin"):
        gate_cell([1], [1], margin=1.0)
    with pytest.raises(ValueError, match="alpha"):
        gate_cell([1], [1], margin=0.1, alpha=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gate_cell([3.0], [1.0], margin=0.1)
    with pytest.raises(ValueError, match="same length"):
        gate_cell([1, 0], [1], margin=0.1)


@pytest.mark.parametrize("doc", ["docs/regress.md", "docs/ci.md"])
def test_the_required_n_table_in_the_docs_is_what_the_code_computes(doc):
    """The docs' "Choosing margin and n" table, cell by cell, against harness.stats.gate_table()."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    head = re.search(r"^\| margin \| discordance (\d+) % \| (\d+) % \| (\d+) % \|$", text, re.M)
    assert head, f"{doc}: no required-n table"
    discordances = [int(x) / 100 for x in head.groups()]
    rows = re.findall(r"^\| (\d+) pp \| (\d+) \| (\d+) \| (\d+) \|$", text[head.end():], re.M)
    documented = {(int(m) / 100, p): int(n) for m, *ns in rows for p, n in zip(discordances, ns)}
    computed = {(r["margin"], r["discordance"]): r["required_n"] for r in gate_table(margins=sorted({k[0] for k in documented}),
                                                                                     discordances=discordances)}
    assert len(documented) == 9 and documented == computed
