"""Stage 4, evaluate: inspect tasks, graders and the eval_set driver."""

from ._match import EXTRACT_MODES, MATCH_MODES, Verdict, extract, match, normalise
from ._stage import EvalModel, EvaluateOutput, Judge, judged, open_judge, run_evaluate

__all__ = ["EXTRACT_MODES", "MATCH_MODES", "EvalModel", "EvaluateOutput", "Judge", "Verdict", "extract", "judged", "match", "normalise", "open_judge", "run_evaluate"]
