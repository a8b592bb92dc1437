"""The inspect tasks: the harness's own (one sample per evaluation item, prompt rendered per model),
and any other inspect task an eval.tasks entry names (a task file or a registry name), which brings
its own dataset, solver and scorers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..data import EvalItem
from ..errors import HarnessError
from ..prompts import LETTERS, chat, choices_question, render, shown_order, to_inspect

if TYPE_CHECKING:  # inspect_ai is imported when a task is built (see _scorers)
    from inspect_ai import Task
    from inspect_ai.scorer import Scorer


@dataclass(frozen=True)
class Shown:
    """What a model is shown of one item: the question text (with the lettered choices of a
    multiple-choice item, in the order shown), the choices in that order, and the gold as shown
    (a multiple-choice gold is the letter of its choice where it is shown)."""

    question: str
    choices: list[str]
    target: str
    order: list[int]


def shown(it: EvalItem, choices_prompt: str, shuffle: int | None) -> Shown:
    if not it.choices:
        return Shown(it.question, [], it.answer, [])
    order = shown_order(it.id, len(it.choices), shuffle)
    choices = [it.choices[j] for j in order]
    return Shown(choices_question(choices_prompt, it.question, choices), choices,
                 LETTERS[order.index(LETTERS.index(it.answer))], order)


def item_messages(it: EvalItem, prompt: str, context_prompt: str | None, system: str | None, choices_prompt: str,
                  shuffle: int | None) -> list[dict[str, str]]:
    """The conversation a model sees for one item (the pre-flight counts its tokens)."""
    q = shown(it, choices_prompt, shuffle).question
    return chat(system, render(context_prompt, q, it.passage) if context_prompt and it.passage else render(prompt, q))


def qa_task(name: str, items: list[EvalItem], prompt: str, context_prompt: str | None, scorers: list[Scorer],
            system: str | None = None, choices_prompt: str = "{question}\n\n{choices}", shuffle: int | None = None) -> Task:
    """`context_prompt` set = the model sees the item's passage (the in-context teacher).

    Control items have no passage; a context model gets the plain prompt for them. A
    multiple-choice item carries its choices as shown (inspect's Sample.choices, so `inspect view`
    lists them) and the shown order; its target is the gold's letter as shown."""
    from inspect_ai import Task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.solver import generate

    samples = []
    for it in items:
        s = shown(it, choices_prompt, shuffle)
        meta = {"question": it.question, "group": it.group, "cluster": it.cluster or it.id}
        if it.choices:
            meta.update(choices_order=s.order, gold_in_file=it.answer)
        samples.append(Sample(id=it.id, input=to_inspect(item_messages(it, prompt, context_prompt, system, choices_prompt, shuffle)),
                              target=s.target, choices=s.choices or None, metadata=meta))
    return Task(name=name, dataset=MemoryDataset(samples, name=name), solver=generate(), scorer=scorers)


# -- inspect tasks the harness did not build: `path/to/file.py@task` or a registry name ------------


def is_inspect_task(spec: str) -> bool:
    """An eval.tasks entry naming an inspect task (`file.py@task`, `file.py`, `package/task`), not
    one of the harness's own item sets."""
    return "@" in spec or "/" in spec or spec.endswith(".py")


def _split(spec: str) -> tuple[Path | None, str | None]:
    """(task file, task name) of a file spec; (None, None) for a registry name."""
    path, _, name = spec.partition("@") if "@" in spec else (spec, "", "")
    if "@" in spec or path.endswith(".py"):
        return Path(path).expanduser(), name or None
    return None, None


def _file_tasks(path: Path) -> list[str]:
    """The names of a file's @task functions, read from its syntax tree (as inspect's own
    `list_tasks` does: nothing is imported or run before the pre-flight is over)."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except SyntaxError as e:
        raise HarnessError(f"{path}:{e.lineno}: the task file does not parse ({e.msg}); fix it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"{path}: the task file cannot be read ({type(e).__name__})") from None
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for d in node.decorator_list:
            fn = d.func if isinstance(d, ast.Call) else d
            if (isinstance(fn, ast.Name) and fn.id == "task") or (isinstance(fn, ast.Attribute) and fn.attr == "task"):
                name = node.name
                if isinstance(d, ast.Call):  # @task(name="...") registers another name
                    name = next((k.value.value for k in d.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)), name)
                names.append(str(name))
    return names


def check_inspect_task(spec: str, where: str = "eval.tasks") -> str:
    """Refuse, in one line, an entry that names no task: a missing file, no such @task in it, a
    registry package that is not installed. Returns the name inspect logs the task under."""
    import importlib.util

    path, name = _split(spec)
    if path is None:
        package = spec.split("/", 1)[0]
        if importlib.util.find_spec(package.replace("-", "_")) is None:
            raise HarnessError(f"{where}: '{spec}': the package '{package}' that would provide this inspect task is not installed "
                               f"(pip install {package.replace('_', '-')}), and it is not a task file (path/to/file.py@task)")
        return spec
    if not path.is_file():
        raise HarnessError(f"{where}: '{spec}': no such task file {path}; name an inspect task as path/to/file.py@task "
                           "(relative to the working directory) or a registry name such as inspect_evals/<task>")
    tasks = _file_tasks(path)
    if name is None:
        if len(tasks) != 1:
            raise HarnessError(f"{where}: '{spec}': {path} defines {len(tasks)} @task functions ({', '.join(tasks) or 'none'}); "
                               "name one as file.py@task")
        return tasks[0]
    if name not in tasks:
        raise HarnessError(f"{where}: '{spec}': {path} has no @task named '{name}' (its tasks: {', '.join(tasks) or 'none'})")
    return name


def inspect_task_spec(spec: str) -> tuple[str, str]:
    """(what eval_set is given, a digest of the task's definition): a file spec with its path made
    absolute (the run may start elsewhere) and the file's hash, so editing the task supersedes its logs;
    a registry name with its package's version."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    path, name = _split(spec)
    if path is None:
        package = spec.split("/", 1)[0]
        try:
            return spec, f"{package}=={version(package)}"
        except PackageNotFoundError:
            return spec, package
    task = name or check_inspect_task(spec)
    return f"{path.resolve()}@{task}", hashlib.sha256(path.read_bytes()).hexdigest()
