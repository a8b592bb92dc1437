from __future__ import annotations


def proportion_ci(k: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (statsmodels' implementation)."""
    if n == 0:
        return (0.0, 1.0)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return (max(0.0, float(lo)), min(1.0, float(hi)))
