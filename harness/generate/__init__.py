"""Stage 2, generate: the teacher answers the training questions (`_answers`), and may first write
more of them (`_questions`) or more wordings of them
(`_paraphrase`); `_teacher` is how either asks it (in-process or over HTTP)."""

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
from ._paraphrase import ParaphraseOutput, check_paraphrases, run_paraphrases
from ._questions import SynthOutput, parse_question, question_sources, run_questions

__all__ = ["FILTERS", "GenerateInput", "GenerateOutput", "ParaphraseOutput", "SynthOutput", "agreement", "check_generate",
           "check_paraphrases", "failed_filter", "filter_counts", "generate_key", "parse_question", "question_sources",
           "run_generate", "run_paraphrases", "run_questions", "teacher_prompt"]
