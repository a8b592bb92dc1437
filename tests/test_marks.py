"""The quick suite stays quick: every heavy test carries the `slow` marker.

`make test-quick` (`pytest -m "not slow"`) is the suite for iteration, a few minutes on 2 cores;
`make test` and CI run everything. pyproject.toml's marker states the rule: a test is slow if it runs
the real embedded model, starts a llama.cpp server, runs a real `harness run` (a Hydra multirun, a
launcher), builds or installs a wheel, or takes more than ~10 s. The first four show in the source,
so they are checked there (ast; no test module is imported, so this takes well under a second): a
test without the marker must not do one of them, itself, through a helper of its module, or through
a fixture at any depth. Time is not checked here (timed tests flake on a shared machine): that part
of the rule is the reviewer's, from `pytest -m "not slow" --durations=15`.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent

KINDS = {
    "model": "runs the real embedded model in-process (model_path='embedded:...')",
    "server": "starts a llama.cpp server",
    "run": "runs a real `harness run` (a fixture's, or one checked to finish: exit 0, or a gate's 3/4)",
    "wheel": "builds or installs a wheel with pip",
}
# `harness run` flags that compose and print, and run nothing
NO_WORK = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc", "--resolve")
# the exit codes of a run that did its work: 0, or a gate's verdict (README: exit codes)
FINISHED = {0, 3, 4}


def _words(nodes: list[ast.expr]) -> list[str]:
    """The string constants among a command line's parts (a call's arguments, a list's elements)."""
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _is_run(words: list[str]) -> bool:
    """A `harness run` command line that does work (not `--cfg job`, `--help`, ...)."""
    return "run" in words and not any(w == f or w.startswith(f + "=") for w in words for f in NO_WORK)


def _body(fn: ast.FunctionDef | ast.AsyncFunctionDef):
    """Every node of the function's body (not its decorators: a parametrize list is data)."""
    for stmt in fn.body:
        yield from ast.walk(stmt)


def _slow_mark(node: ast.expr) -> bool:
    return "mark.slow" in ast.unparse(node)


def _fixture(fn) -> dict | None:
    """{'autouse': bool} when `fn` is a pytest fixture, else None."""
    for d in fn.decorator_list:
        call = d if isinstance(d, ast.Call) else None
        target = call.func if call else d
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            keywords = call.keywords if call else []
            autouse = any(k.arg == "autouse" and isinstance(k.value, ast.Constant) and k.value.value for k in keywords)
            return {"autouse": autouse}
    return None


def _params(fn) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    for d in fn.decorator_list:  # @pytest.mark.usefixtures("x", ...)
        if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.usefixtures"):
            names += _words(d.args)
    return names


def _all_cases_slow(fn) -> bool:
    """A parametrized test whose every case is pytest.param(..., marks=...slow...)."""
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.parametrize") and len(d.args) >= 2:
            cases = d.args[1]
            if isinstance(cases, (ast.List, ast.Tuple)) and cases.elts:
                return all(isinstance(c, ast.Call) and ast.unparse(c.func).endswith("param")
                           and any(k.arg == "marks" and _slow_mark(k.value) for k in c.keywords) for c in cases.elts)
    return False


@dataclass
class Module:
    path: str
    functions: dict[str, ast.FunctionDef]  # module-level functions: tests, fixtures, helpers
    classes: dict[str, list[ast.FunctionDef]]  # module-level helper classes' methods (a Job that runs `harness run`)
    fixtures: dict[str, ast.FunctionDef]
    autouse: list[str]
    slow: bool  # pytestmark = pytest.mark.slow (or a list holding it)


def parse(path: str, source: str) -> Module:
    tree = ast.parse(source)
    functions, classes, fixtures, autouse, slow = {}, {}, {}, [], False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            slow = slow or _slow_mark(node.value)
        if isinstance(node, ast.ClassDef):
            classes[node.name] = [x for x in node.body if isinstance(x, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions[node.name] = node
            f = _fixture(node)
            if f is not None:
                fixtures[node.name] = node
                if f["autouse"]:
                    autouse.append(node.name)
    return Module(path, functions, classes, fixtures, autouse, slow)


def _own(fn, module: Module, seen: frozenset = frozenset()) -> tuple[set[str], bool, bool]:
    """(heavy kinds, does it start a `harness run`, does it check that a run finished) of `fn` itself
    and the module's helper functions and classes it calls."""
    kinds, runs, finished = set(), False, False
    for n in _body(fn):
        if isinstance(n, ast.Call):
            name = _name(n)
            if name == "llama_server":  # harness.models.llama_server: the context manager that starts one
                kinds.add("server")
            words = _words(n.args)
            helper = module.functions.get(name) if isinstance(n.func, ast.Name) else None
            if helper is not None and name not in module.fixtures and name not in seen:
                h_kinds, h_runs, _ = _own(helper, module, seen | {name})
                kinds |= h_kinds
                # a helper's arguments are a command line (cli("run", ...)), or the rest of one whose
                # `run` the helper holds (harness_run("-m", ...)): the caller's flags decide
                runs = runs or _is_run(words) or (h_runs and _is_run(["run", *words]))
            if isinstance(n.func, ast.Name) and name in module.classes and name not in seen:
                for method in module.classes[name]:  # a helper object: what its methods do, together
                    m_kinds, m_runs, m_finished = _own(method, module, seen | {name})
                    kinds, runs, finished = kinds | m_kinds, runs or m_runs, finished or m_finished
        if isinstance(n, (ast.Call, ast.List, ast.Tuple)):
            words = _words(n.args if isinstance(n, ast.Call) else n.elts)
            # a command line is a list ([HARNESS, "run", ...]); another call's "run" is not (d.get("run"))
            runs = runs or (not isinstance(n, ast.Call) and _is_run(words))
            if "llama_cpp.server" in words and not (isinstance(n, ast.Call) and _name(n) == "importorskip"):
                kinds.add("server")
            if "pip" in words and {"wheel", "install", "download"} & set(words) or ("-m" in words and "build" in words):
                kinds.add("wheel")
        if isinstance(n, ast.Dict):
            for k, v in zip(n.keys, n.values):
                if (isinstance(k, ast.Constant) and k.value == "model_path" and isinstance(v, ast.Constant)
                        and isinstance(v.value, str) and v.value.startswith("embedded:")):
                    kinds.add("model")
        if (isinstance(n, ast.Compare) and isinstance(n.left, ast.Attribute) and n.left.attr == "returncode"
                and isinstance(n.ops[0], ast.Eq) and isinstance(n.comparators[0], ast.Constant)
                and n.comparators[0].value in FINISHED):
            finished = True
    if runs and finished:
        kinds.add("run")
    return kinds, runs, finished


def heavy(fn, module: Module, conftest: Module | None, via: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """{kind: the fixture chain it comes through} for a test or fixture (an empty chain: the function itself)."""
    kinds, runs, _ = _own(fn, module)
    if runs and _fixture(fn) is not None:
        kinds.add("run")  # a fixture shares a run's results: the run is real (a refused one is a test's own)
    found = {k: via for k in kinds}
    requested = _params(fn) + (module.autouse if not via and _fixture(fn) is None else [])
    for name in requested:
        for m in (module, conftest):
            if m is not None and name in m.fixtures and name not in via and m.fixtures[name] is not fn:
                for k, chain in heavy(m.fixtures[name], m, conftest, via + (name,)).items():
                    found.setdefault(k, chain)
                break
    return found


def check(modules: dict[str, str], conftest: str = "") -> tuple[list[str], dict[str, set[str]]]:
    """(problems: quick tests that do heavy work, kinds found per slow test) over {path: source}."""
    conf = parse("conftest.py", conftest) if conftest else None
    problems, slow_heavy = [], {}
    for path, source in sorted(modules.items()):
        m = parse(path, source)
        for name, fn in m.functions.items():
            if not name.startswith("test") or name in m.fixtures:
                continue
            found = heavy(fn, m, conf)
            marked = any(_slow_mark(d) for d in fn.decorator_list if "parametrize" not in ast.unparse(d))
            slow = m.slow or marked or _all_cases_slow(fn)
            if slow:
                slow_heavy[f"{path}::{name}"] = set(found)
            for kind, chain in sorted(found.items()):
                if not slow:
                    how = f" (through fixture {' -> '.join(chain)})" if chain else ""
                    problems.append(f"{path}::{name} {KINDS[kind]}{how}: mark it @pytest.mark.slow")
    return problems, slow_heavy


def _suite() -> tuple[dict[str, str], str]:
    return ({f"tests/{p.name}": p.read_text() for p in sorted(TESTS.glob("test_*.py"))},
            (TESTS / "conftest.py").read_text())


def test_no_quick_test_runs_the_model_a_server_a_real_run_or_a_wheel_build():
    problems, slow_heavy = check(*_suite())
    assert not problems, "heavy tests without the slow marker (pyproject.toml: the rule):\n  " + "\n  ".join(problems)
    # not vacuous: the suite's heavy tests are seen, each kind at least once (a check that stopped
    # seeing them, e.g. after a helper was renamed, would pass everything)
    seen = set().union(*slow_heavy.values())
    missing = ", ".join(KINDS[k] for k in sorted(set(KINDS) - seen))
    assert not missing, f"no slow test found that {missing}: does the check still see them?"
    # 54 when this was written; the others are slow by time (> 10 s), which is not visible here
    assert sum(bool(k) for k in slow_heavy.values()) >= 40, sorted(slow_heavy)


CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def shared_server():
    from harness.models import embedded_gguf, llama_server
    with llama_server(embedded_gguf("smollm2-135m-instruct"), "x.log") as ep:
        yield ep

@pytest.fixture
def harness_bin():
    return "harness"
"""

CASES = '''
import subprocess, sys
import pytest

def harness_run(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], capture_output=True)

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    p = harness_run("experiment=tiny")
    assert p.returncode == 0
    return p

@pytest.fixture
def run_dir(finished_run):  # light itself, heavy through what it uses
    return finished_run

@pytest.fixture(scope="module")
def gated_run():  # a fixture's run is real, whatever the tests then check of it
    return harness_run("experiment=upgrade")

class Job:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "experiment=tiny"])

    def finish(self):
        self.p.wait()
        assert self.p.returncode == 0

def test_via_fixture_chain(run_dir):
    assert run_dir

@pytest.mark.slow
def test_via_fixture_chain_marked(run_dir):
    assert run_dir

def test_conftest_server(shared_server):
    assert shared_server

def test_direct_server(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", "m.gguf"])
    p.kill()

def test_in_process_model():
    from harness.config import ModelConfig
    return ModelConfig("hf/smollm2-135m-instruct", {"model_path": "embedded:smollm2-135m-instruct"})

def test_multirun_through_helper(tmp_path):
    p = harness_run("-m", "experiment=tiny", "finetune.max_steps=1,2", "hydra/launcher=joblib")
    assert p.returncode == 0

def test_gate_verdict(harness_bin):
    p = subprocess.run([harness_bin, "run", "experiment=upgrade", "regress.enabled=true"])
    assert p.returncode == 3

def test_gate_in_fixture(gated_run):
    assert gated_run.returncode == 3

def test_job_object():
    Job().finish()

def test_wheel(tmp_path):
    assert subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), "."]).returncode == 0

# quick: a precheck that refuses, a composition that runs nothing, a plain helper
def test_bad_input_is_quick(tmp_path):
    p = harness_run("experiment=tiny", "data.n_islands=many")
    assert p.returncode == 2

def test_cfg_job_is_quick():
    p = harness_run("--cfg", "job", "experiment=tiny")
    assert p.returncode == 0

def test_importorskip_alone_is_quick():
    pytest.importorskip("llama_cpp.server")

def test_a_run_key_in_a_dict_is_quick():
    steps = [{"run": "harness run experiment=tiny"}]
    assert [s.get("run") for s in steps][0].returncode == 0

@pytest.mark.parametrize("args", [
    pytest.param(["experiment=tiny"], marks=pytest.mark.slow),
    pytest.param(["experiment=demo"], marks=pytest.mark.slow),
])
def test_every_case_marked(args):
    assert harness_run(*args).returncode == 0

@pytest.mark.parametrize("args", [pytest.param(["experiment=tiny"], marks=pytest.mark.slow), ["experiment=demo"]])
def test_one_case_unmarked(args):
    assert harness_run(*args).returncode == 0
'''


def test_the_check_flags_each_kind_directly_through_helpers_and_fixture_chains():
    problems, slow_heavy = check({"tests/test_x.py": CASES}, CONFTEST)
    flagged = {p.split("::")[1].split(" ")[0]: p for p in problems}
    assert set(flagged) == {"test_via_fixture_chain", "test_conftest_server", "test_direct_server", "test_in_process_model",
                            "test_multirun_through_helper", "test_gate_verdict", "test_gate_in_fixture", "test_job_object",
                            "test_wheel", "test_one_case_unmarked"}
    chain = flagged["test_via_fixture_chain"]
    assert "(through fixture run_dir -> finished_run)" in chain and KINDS["run"] in chain
    server = flagged["test_conftest_server"]
    assert KINDS["server"] in server and "(through fixture shared_server)" in server
    assert KINDS["server"] in flagged["test_direct_server"] and KINDS["model"] in flagged["test_in_process_model"]
    assert KINDS["wheel"] in flagged["test_wheel"] and KINDS["run"] in flagged["test_gate_verdict"]
    # marked tests are not problems, and are still seen as heavy
    assert slow_heavy["tests/test_x.py::test_via_fixture_chain_marked"] == {"run"}
    assert slow_heavy["tests/test_x.py::test_every_case_marked"] == {"run"}
    # a module-level pytestmark marks every test in the module
    assert check({"tests/test_x.py": "import pytest\npytestmark = pytest.mark.slow\n" + CASES}, CONFTEST)[0] == []
    # an autouse fixture that is heavy makes every test of its module heavy
    autouse = textwrap.dedent('''
        import pytest

        @pytest.fixture(autouse=True)
        def _served():
            from harness.models import llama_server
            with llama_server("m.gguf", "x.log"):
                yield

        def test_anything():
            assert True
    ''')
    assert [p.split(" ")[0] for p in check({"tests/test_y.py": autouse})[0]] == ["tests/test_y.py::test_anything"]


def test_the_suites_shared_runs_in_conftest_count_as_heavy():
    """The session fixtures of tests/conftest.py (tiny_run, tiny_grid, tiny_sweep: real runs built once;
    llama_upstream: a server) make a test that reads them heavy, like a module's own fixture would: the
    check reads the real conftest, through the nested build function and its helpers."""
    quick = "".join(f"def test_{name}({name}):\n    assert {name}\n\n\n" for name in ("tiny_run", "tiny_grid", "tiny_sweep", "llama_upstream"))
    problems, _ = check({"tests/test_x.py": quick}, (TESTS / "conftest.py").read_text())
    flagged = {p.split("::")[1].split(" ")[0]: p for p in problems}
    assert set(flagged) == {"test_tiny_run", "test_tiny_grid", "test_tiny_sweep", "test_llama_upstream"}, problems
    assert all(KINDS["run"] in flagged[f"test_{n}"] for n in ("tiny_run", "tiny_grid", "tiny_sweep"))
    assert KINDS["server"] in flagged["test_llama_upstream"]
