"""Stage 1, data: the domain document, training questions and evaluation items."""

from ._stage import DataOutput, EvalItem, TrainQuestion, build, check_answers, data_notes, data_summary, multiple_choice, run_data

__all__ = ["DataOutput", "EvalItem", "TrainQuestion", "build", "check_answers", "data_notes", "data_summary", "multiple_choice", "run_data"]
