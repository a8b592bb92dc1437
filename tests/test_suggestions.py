"""Every override and command that a pre-flight note or a data error prints works as printed (issue 29).

They are collected from the string literals of the modules that print them (the pre-flight, the data
stage, the config guards), so a new message with a suggestion fails here until it is listed below.
Each override is composed with real Hydra, on the packaged experiments. An override that adds or
removes a config-group entry (`+grader@graders.choice=choice`) is valid or not depending on the
config it is printed for, so it is composed in that config -- the one that makes the message appear
-- and must make the message go away. A printed command runs through the real CLI."""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.cli import compose
from harness.config import to_dataclass
from harness.errors import HarnessError
from harness.preflight import notes, validate, with_choice_grader

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "harness" / "preflight.py", REPO / "harness" / "guards.py", REPO / "harness" / "models" / "_embedded.py",
           *sorted((REPO / "harness" / "data").glob("*.py"))]
MC = REPO / "tests" / "data" / "mc_letters.jsonl"
MATH = REPO / "harness" / "examples" / "math.jsonl"

_ROOT = r"(?:models|data|eval|graders|generate|finetune|report|regress|experiment|results_dir|cache_dir|cache|(?:model|grader|role)@[\w.{}]+)"
_VALUE = r"(?:<[^>]*>|[^\s,;)'\"`<])+"
OVERRIDE = re.compile(rf"(?<![\w.@/-])([+~]?{_ROOT}(?:\.(?:[\w{{}}]+|<\w+>))*={_VALUE})")
COMMAND = re.compile(r"`(harness [a-z][^`]*)`")


def _messages(path: Path) -> list[str]:
    """The string literals of a module (an f-string with `{}` for each placeholder), docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(n, clean=False)}
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in n.values))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs and id(n) not in inner:
            out.append(n.value)
    return out


def printed(pattern: re.Pattern) -> set[str]:
    return {m.rstrip(".:") for f in SOURCES for s in _messages(f) for m in pattern.findall(s)}


# printed -> as a user types it (a placeholder filled in); composed on experiment=demo
PLAIN = {
    "data.max_chars={}": "data.max_chars=5000",
    "data.columns.question=<column>": "data.columns.question=prompt",
    "data.columns.<field>=<name>": "data.columns.group=topic",
    "data.embedding_model=null": "data.embedding_model=null",
    "data.leak_threshold={}": "data.leak_threshold=0.2",
    "data.allow_leak=true": "data.allow_leak=true",
    "data={}": "data=jsonl",
    "data.train_path=<file>": f"data.train_path={MC}",
    "data.eval_path=<file>": f"data.eval_path={MC}",
    "generate.questions.replace=true": "generate.questions.replace=true",
    "experiment=upgrade": "experiment=upgrade",
    "eval.auto_choice=false": "eval.auto_choice=false",
    "eval.limit={}": "eval.limit=10",
    "finetune=openai": "finetune=openai",
    "finetune=none": "finetune=none",
    "finetune=lora": "finetune=lora",
    "finetune=full": "finetune=full",
    "finetune.objective=sft": "finetune.objective=sft",
    "model@models.{}=gpt-4o-mini": "model@models.student=gpt-4o-mini",
    "regress.enabled=true": "regress.enabled=true",
    "regress.sequential=true": "regress.sequential=true",
    "regress.sequential=false": "regress.sequential=false",
    "results_dir=<a dir of your own>": "results_dir=my_results",
    "results_dir=results": "results_dir=results",
    "results_dir=<another dir>": "results_dir=other_results",
    "cache_dir=<a dir of your own>": "cache_dir=my_cache",
    "cache_dir=<a dir apart from the results>": "cache_dir=my_cache",
    "cache_dir=<a dir outside them>": "cache_dir=my_cache",
}
# a user's experiments (harness run --config-dir DIR): what makes `models` or `graders` empty is an
# experiment that sets the packaged entries to null (the command line cannot set a group to null)
USER_EXPERIMENTS = {
    "no_models.yaml": """# @package _global_
defaults:
  - override /model@models.teacher: null
  - override /model@models.student: null
  - override /model@models.baseline: null
  - override /role@models.teacher: null
  - override /role@models.student: null
experiment: no_models
""",
    "no_graders.yaml": """# @package _global_
defaults:
  - override /grader@graders.exact: null
  - override /grader@graders.contains: null
experiment: no_graders
""",
}
# printed -> (the config it is printed for, as typed, what that config says that the override removes)
IN_CONTEXT = {
    "+model@models.current=smollm2": (["experiment=no_models"], "+model@models.current=smollm2", "models is empty"),
    "model@models.teacher=smollm2": (["experiment=upgrade", "models.current.student=true"], "model@models.teacher=smollm2",
                                     "models.teacher is missing"),
    "models.student.student=true": (["experiment=demo", "models.student.student=false"], "models.student.student=true",
                                    "no model has student: true"),
    "grader@graders.exact=exact": (["experiment=no_graders"], "grader@graders.exact=exact", "graders is empty"),
    "+grader@graders.choice=choice": (["experiment=upgrade", "data=jsonl", f"data.eval_path={MC}", "eval.auto_choice=false"],
                                      "+grader@graders.choice=choice", "no choice grader"),
    "+grader@graders.final=final_answer": (["experiment=upgrade", "data=jsonl", f"data.eval_path={MATH}"],
                                           "+grader@graders.final=final_answer", "add +grader@graders.final"),
    "graders.{}.allow_self_judge=true": (["experiment=upgrade", "+grader@graders.judge=judge", "graders.judge.allow_self_judge=false"],
                                         "graders.judge.allow_self_judge=true", "allow_self_judge=true (self-preference"),
}


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "experiments").mkdir()  # the config dir's sibling, as `harness init` lays it out
    for name, text in USER_EXPERIMENTS.items():
        (tmp_path / "experiments" / name).write_text(text)
    monkeypatch.setenv("HARNESS_CONFIG_DIR", str(tmp_path / "conf"))
    return tmp_path


def _config(overrides: list[str]):
    d = OmegaConf.to_container(compose(overrides), resolve=False)
    d.pop("hydra")
    return to_dataclass(OmegaConf.create(d))


def said(overrides: list[str]) -> str:
    """What the pre-flight says of a config as `harness run` checks it: its refusal, or its notes."""
    cfg, added = with_choice_grader(_config(overrides))
    try:
        validate(cfg)
    except HarnessError as e:
        return str(e)
    return "\n".join(notes(cfg, added))


def test_every_printed_override_is_listed_here():
    found = printed(OVERRIDE)
    assert found == set(PLAIN) | set(IN_CONTEXT), (f"new: {sorted(found - set(PLAIN) - set(IN_CONTEXT))}; "
                                                   f"no longer printed: {sorted((set(PLAIN) | set(IN_CONTEXT)) - found)}")


@pytest.mark.parametrize("printed_as", sorted(PLAIN))
def test_a_printed_override_composes(printed_as):
    assert isinstance(_config(["experiment=demo", PLAIN[printed_as]]).experiment, str)


@pytest.mark.parametrize("printed_as", sorted(IN_CONTEXT))
def test_a_printed_override_composes_where_it_is_printed_and_does_what_it_says(printed_as, user_dir):
    context, typed, message = IN_CONTEXT[printed_as]
    before = said(context)
    assert message in before and typed in before, before  # printed there, as listed here
    assert message not in said([*context, typed])


def test_every_printed_command_exists(harness_bin, tmp_path):
    """A command a message names (`harness cache prune` would delete ...) is one the CLI has."""
    commands = printed(COMMAND)
    assert commands == {"harness cache prune"}, commands
    env = {**os.environ, "HARNESS_CACHE": str(tmp_path / "cache"), "HARNESS_MODEL_CACHE": str(tmp_path / "models")}
    for c in sorted(commands):
        p = subprocess.run([harness_bin, *c.split()[1:], "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert p.returncode == 0, (c, p.stderr[-2000:])
