"""Stage 4, evaluate: inspect tasks, graders and the eval_set driver."""

from ..text import EXTRACT_MODES, MATCH_MODES, Verdict, extract, match, normalise
from ._judge import Judge, judged, open_judge
from ._logs import claim
from ._pairwise import run_pairwise
from ._scorers import check_grader
from ._stage import TASKS, EvalModel, EvaluateOutput, check_tasks, register_model_info, run_evaluate, task_names
from ._task import is_inspect_task, item_messages, shown

__all__ = ["EXTRACT_MODES", "MATCH_MODES", "TASKS", "EvalModel", "EvaluateOutput", "Judge", "Verdict", "check_grader", "check_tasks", "claim",
           "extract", "is_inspect_task", "item_messages", "judged", "match", "normalise", "open_judge", "register_model_info", "run_evaluate",
           "run_pairwise", "shown", "task_names"]
