"""Stage 2, generate: the teacher answers the training questions (`_answers`), and may first write
more of them (`_questions`); `_teacher` is how either asks it (in-process or over HTTP)."""

from ._answers import (
    FILTERS,
    GenerateInput,
    GenerateOutput,
    agreement,
    check_generate,
    failed_filter,
    filter_counts,
    generate_key,
    run_generate,
    teacher_prompt,
)
from ._questions import SynthOutput, parse_question, question_sources, run_questions

__all__ = ["FILTERS", "GenerateInput", "GenerateOutput", "SynthOutput", "agreement", "check_generate", "failed_filter",
           "filter_counts", "generate_key", "parse_question", "question_sources", "run_generate", "run_questions",
           "teacher_prompt"]
