"""Stage 1, data: the domain document, training questions and evaluation items."""

# norm: the normalisation dedup compares questions by (generate.paraphrases rejects repeats with it)
from ._overlap import norm
from ._stage import DataOutput, EvalItem, TrainQuestion, build, check_answers, data_notes, data_summary, multiple_choice, run_data

__all__ = ["DataOutput", "EvalItem", "TrainQuestion", "build", "check_answers", "data_notes", "data_summary", "multiple_choice", "norm", "run_data"]
