"""harness.stats against scipy/statsmodels references on fixed tables."""

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from harness.stats import adjust, gap_closed, mde, paired_binary, paired_continuous, proportion_ci, required_n


def _pairs(n11, n10, n01, n00):
    a = [1] * n11 + [1] * n10 + [0] * n01 + [0] * n00
    b = [1] * n11 + [0] * n10 + [1] * n01 + [0] * n00
    return a, b


@pytest.mark.parametrize("table", [(30, 12, 3, 35), (5, 8, 2, 5), (0, 24, 0, 16), (10, 0, 0, 10), (40, 7, 9, 44)])
def test_mcnemar_exact_matches_statsmodels(table):
    n11, n10, n01, n00 = table
    a, b = _pairs(*table)
    r = paired_binary(a, b)
    ref = mcnemar([[n11, n10], [n01, n00]], exact=True).pvalue if n10 + n01 else 1.0
    assert r.p_value == pytest.approx(ref, abs=1e-9)
    assert r.n == sum(table) and r.diff == pytest.approx((n10 - n01) / sum(table), abs=1e-12)
    d = np.array(a, float) - np.array(b, float)
    if d.std() > 0:
        ci = st.ttest_rel(a, b).confidence_interval()
        assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert r.ci_low <= r.diff <= r.ci_high


def test_mid_p_by_hand():
    a, b = _pairs(0, 8, 2, 0)
    assert paired_binary(a, b).p_value == pytest.approx(2 * 56 / 1024, abs=1e-12)
    assert paired_binary(a, b, midp=True).p_value == pytest.approx(2 * (56 - 0.5 * 45) / 1024, abs=1e-12)


def test_missing_pairs_are_dropped_pairwise_and_counted():
    r = paired_binary([1, 1, np.nan, 0], [0, np.nan, 1, 0])
    assert (r.n, r.n_dropped) == (2, 2)


def test_paired_continuous_is_seeded_and_sane():
    rng = np.random.default_rng(1)
    a = rng.normal(3.5, 1, 60)
    b = a - 0.8 + rng.normal(0, 0.5, 60)
    r1, r2 = paired_continuous(a, b), paired_continuous(a, b)
    assert r1 == r2 and r1.p_value < 0.001 and r1.ci_low < 0.8 < r1.ci_high
    null = paired_continuous(a, a + rng.normal(0, 0.5, 60))
    assert null.p_value > 0.01


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03], [0.2, 0.001, 0.049, 0.5, 0.0125], [0.9], [0.03, 0.03, 0.5, 1.0]])
def test_adjust_matches_statsmodels_and_by_hand(p):
    from statsmodels.stats.multitest import multipletests

    for ours, theirs in (("holm", "holm"), ("bh", "fdr_bh")):
        assert adjust(p, ours) == pytest.approx(list(multipletests(p, method=theirs)[1]), abs=1e-12), ours
    # by hand, for the first family: Holm multiplies the k-th smallest by (m - k + 1), running max
    assert adjust([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06], abs=1e-12)
    assert adjust([0.01, 0.04, 0.03], "bh") == pytest.approx([0.03, 0.04, 0.04], abs=1e-12)


def test_adjust_rejects_unknown_methods():
    with pytest.raises(ValueError, match="bonferroni-ish"):
        adjust([0.1], "bonferroni-ish")


def test_power_formulas():
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert mde(100) == pytest.approx(z * 0.5 / 10, abs=1e-12)
    assert required_n(mde(100)) == 100  # the two are inverse


def test_wilson_matches_statsmodels():
    assert proportion_ci(7, 40) == pytest.approx(proportion_confint(7, 40, method="wilson"), abs=1e-12)
    assert proportion_ci(0, 0) == (0.0, 1.0)


def test_gap_closed():
    t, b, s = [1] * 80 + [0] * 20, [0] * 100, [1] * 40 + [0] * 60
    g = gap_closed(t, b, s)
    assert g.value == pytest.approx(0.5) and g.ci_low < 0.5 < g.ci_high and g.n == 100
    assert gap_closed([0, 1], [1, 0], [1, 1]).value is None  # no gap to close


def test_clustered_se_matches_cr1_by_hand():
    """Paraphrases of one fact share a cluster: the SE is the CR1 sandwich, t with G - 1 df."""
    from harness.stats import clustered_mean

    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(12), 3)
    d = (rng.random(36) < 0.4).astype(float) - (rng.random(36) < 0.2).astype(float)
    lo, hi, p, g = clustered_mean(d, clusters)
    e = d - d.mean()
    s = np.array([e[clusters == k].sum() for k in range(12)])
    se = np.sqrt(12 / 11 * (s ** 2).sum()) / d.size
    t = st.t.ppf(0.975, 11)
    assert g == 12
    assert (lo, hi) == pytest.approx((d.mean() - t * se, d.mean() + t * se), abs=1e-9)
    assert p == pytest.approx(2 * st.t.sf(abs(d.mean() / se), 11), abs=1e-9)


def test_clusters_switch_the_test_only_when_items_share_a_cluster():
    a, b = _pairs(20, 10, 3, 7)
    assert paired_binary(a, b, clusters=list(range(40))).test == "McNemar exact"  # all singletons: independent
    r = paired_binary(a, b, clusters=[k // 4 for k in range(40)])
    assert r.test == "paired t, cluster-robust SE (10 clusters)" and r.ci_low <= r.diff <= r.ci_high
    rc = paired_continuous(np.array(a) * 3.0, np.array(b) * 2.0, clusters=[k // 4 for k in range(40)])
    assert rc.test.startswith("paired t, cluster-robust")
