"""Statistics for model comparisons: intervals, paired tests, corrections, power, gap closed, the regression gate."""

from ._ci import proportion_ci
from ._gate import CellGate, gate_cell, gate_mde, gate_required_n, gate_table
from ._interval import OUTCOMES, PairedInterval, gate_outcome, outcome, paired_interval
from ._judge_gate import Look, kappa_ci, kappa_look, rate_ci, rate_look
from ._paired import GapClosed, PairedResult, adjust, clustered_mean, gap_closed, mde, paired_binary, paired_continuous, required_n
from ._sequential import SequentialState, confidence_sequence, sequential_gate, sequential_verdicts
from ._winner import WinnerTest, winner_test

__all__ = ["OUTCOMES", "CellGate", "GapClosed", "Look", "PairedInterval", "PairedResult", "SequentialState", "WinnerTest", "adjust",
           "clustered_mean", "confidence_sequence", "gap_closed", "gate_cell", "gate_mde", "gate_outcome", "gate_required_n", "gate_table",
           "kappa_ci", "kappa_look", "mde", "outcome", "paired_binary", "paired_continuous", "paired_interval", "proportion_ci", "rate_ci",
           "rate_look", "required_n", "sequential_gate", "sequential_verdicts", "winner_test"]
