"""Statistics for model comparisons: intervals, paired tests, corrections, power, gap closed, the regression gate."""

from ._ci import proportion_ci
from ._gate import CellGate, gate_cell, gate_mde, gate_required_n, gate_table
from ._paired import GapClosed, PairedResult, adjust, clustered_mean, gap_closed, mde, paired_binary, paired_continuous, required_n

__all__ = ["CellGate", "GapClosed", "PairedResult", "adjust", "clustered_mean", "gap_closed", "gate_cell", "gate_mde",
           "gate_required_n", "gate_table", "mde", "paired_binary", "paired_continuous", "proportion_ci", "required_n"]
