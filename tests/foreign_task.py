"""An inspect task the harness never built: its own dataset, solver and scorers (a correct/incorrect
one, a custom numeric one, a dict-valued one). tests/test_foreign.py runs it with a plain
`inspect eval` and through `eval.tasks`, then gates the logs."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, includes, mean, scorer
from inspect_ai.solver import TaskState, generate, system_message

ITEMS = [
    ("capital-fr", "What is the capital of France? Answer in one word.", "Paris"),
    ("capital-it", "What is the capital of Italy? Answer in one word.", "Rome"),
    ("capital-de", "What is the capital of Germany? Answer in one word.", "Berlin"),
    ("capital-jp", "What is the capital of Japan? Answer in one word.", "Tokyo"),
    ("color-sky", "What color is a clear sky at noon? Answer in one word.", "blue"),
    ("color-grass", "What color is grass? Answer in one word.", "green"),
    ("math-2", "What is 2 + 2? Answer with a number.", "4"),
    ("math-3", "What is 3 + 5? Answer with a number.", "8"),
]


@scorer(metrics=[mean()])
def overlap():
    """Numeric: the share of the target's characters found in the answer, in order (0..1)."""

    async def score(state: TaskState, target: Target) -> Score:
        answer, gold = state.output.completion.lower(), target.text.lower()
        k = 0
        for ch in answer:
            if k < len(gold) and ch == gold[k]:
                k += 1
        return Score(value=k / len(gold), answer=state.output.completion)

    return score


@scorer(metrics={"starts": [mean()], "short": [mean()]})
def shape():
    """Dict-valued: one grader per key (a C/I letter and a boolean)."""

    async def score(state: TaskState, target: Target) -> Score:
        text = state.output.completion.strip()
        return Score(value={"starts": CORRECT if text.lower().startswith(target.text.lower()) else INCORRECT,
                            "short": len(text.split()) <= 3})

    return score


@task
def capitals(system: str = "You answer briefly."):
    return Task(
        dataset=[Sample(id=i, input=q, target=a) for i, q, a in ITEMS],
        solver=[system_message(system), generate()],
        scorer=[includes(), overlap(), shape()],
    )


@task
def colours():
    """Another task (a log of it is not a log of `capitals`)."""
    return Task(dataset=[Sample(id=i, input=q, target=a) for i, q, a in ITEMS if i.startswith("color")],
                solver=generate(), scorer=includes())
