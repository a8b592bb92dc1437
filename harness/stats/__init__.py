"""Statistics for model comparisons: intervals, paired tests, corrections, power, gap closed."""

from ._ci import proportion_ci
from ._paired import GapClosed, PairedResult, adjust, clustered_mean, gap_closed, mde, paired_binary, paired_continuous, required_n
from ._sequential import SequentialState, confidence_sequence, sequential_gate, sequential_verdicts

__all__ = ["GapClosed", "PairedResult", "adjust", "clustered_mean", "gap_closed", "mde", "paired_binary", "paired_continuous",
           "proportion_ci", "required_n",
           "SequentialState", "confidence_sequence", "sequential_gate", "sequential_verdicts"]
