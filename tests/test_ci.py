""".ci/run fails when fewer tests ran than its floor, or when a test skipped that is not on its
allow-list, although `make test` itself maps "no tests collected" to success.

The real script and Makefile run in a copy of the project whose tests/ holds a few small tests
(the .venv is this one, linked, and older than the copied Makefile/pyproject so `make` does not
reinstall; Chromium, which the script installs with apt-get when missing, is a stand-in on PATH).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]

PASS = "def test_one():\n    assert 1 + 1 == 2\n\n\ndef test_two():\n    assert 'a' in 'abc'\n"
SKIP = "import pytest\n\n\ndef test_maybe():\n    pytest.importorskip('no_such_module_here')\n"


def project(tmp: Path, tests: dict[str, str], allowed: list[str] | None = None) -> Path:
    root = tmp / "proj"
    (root / ".ci").mkdir(parents=True)
    script = (REPO / ".ci" / "run").read_text()
    if allowed:
        script = script.replace("ALLOWED_SKIPS=(\n", "ALLOWED_SKIPS=(\n" + "".join(f"  {a}  # why: a test\n" for a in allowed))
    (root / ".ci" / "run").write_text(script)
    (root / ".ci" / "run").chmod(0o755)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
        os.utime(root / name, (1_000_000_000, 1_000_000_000))  # older than .venv/.installed: no reinstall
    (root / ".venv").symlink_to(VENV, target_is_directory=True)
    (root / "tests").mkdir()
    for name, text in tests.items():
        (root / "tests" / name).write_text(text)
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "chromium").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "chromium").chmod(0o755)
    return root


# `make test` runs pytest on two xdist workers (the Makefile's XDIST), as CI does; the tests whose point is
# .ci/run's reading of the JUnit report (counts, skips) keep that, the others run the few toy tests in one
# process (XDIST=): two worker start-ups per `make test` for two toy tests cost more than the tests
ONE_PROCESS = {"XDIST": ""}


def ci(root: Path, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PATH": f"{root.parent / 'bin'}:{os.environ['PATH']}", **env}
    e.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([str(root / ".ci" / "run")], capture_output=True, text=True, env=e, timeout=900)


@pytest.fixture(autouse=True)
def _installed():
    if not (VENV / ".installed").exists():
        pytest.fail(f"{VENV}/.installed missing: this test runs `make test` against an installed .venv")


def test_enough_tests_and_no_skips_pass(tmp_path):
    p = ci(project(tmp_path, {"test_a.py": PASS}), MIN_TESTS="2")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "ci: 2 tests ran, 0 skipped (0 allowed); floor 2" in p.stdout and "ci: passed in" in p.stdout


def test_fewer_tests_than_the_floor_fail(tmp_path):
    p = ci(project(tmp_path, {"test_a.py": PASS}), MIN_TESTS="3", **ONE_PROCESS)
    assert p.returncode != 0 and "ci: passed" not in p.stdout
    assert "only 2 tests ran, fewer than the floor of 3" in p.stderr


def test_zero_tests_fail_although_make_test_passes(tmp_path):
    root = project(tmp_path, {"test_a.py": PASS})
    (root / "tests" / "test_a.py").unlink()
    assert subprocess.run(["make", "test"], cwd=root, capture_output=True).returncode == 0  # exit 5 mapped to success
    p = ci(root, MIN_TESTS="1")
    assert p.returncode != 0 and "only 0 tests ran" in p.stderr


def test_a_skip_fails_unless_allowed(tmp_path):
    p = ci(project(tmp_path / "a", {"test_a.py": PASS, "test_s.py": SKIP}), MIN_TESTS="2")
    assert p.returncode != 0 and "ci: passed" not in p.stdout
    assert re.search(r"not on ALLOWED_SKIPS in \.ci/run:\n  tests/test_s\.py::test_maybe", p.stderr), p.stderr
    p = ci(project(tmp_path / "b", {"test_a.py": PASS, "test_s.py": SKIP}, allowed=["tests/test_s.py::test_maybe"]),
           MIN_TESTS="2")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "ci: 2 tests ran, 1 skipped (1 allowed); floor 2" in p.stdout


def test_a_failing_test_fails(tmp_path):
    p = ci(project(tmp_path, {"test_a.py": PASS + "\n\ndef test_bad():\n    assert 1 == 2\n"}), MIN_TESTS="1", **ONE_PROCESS)
    assert p.returncode != 0 and "ci: passed" not in p.stdout


SLOW = "import pytest\n\n\n@pytest.mark.slow\ndef test_heavy():\n    assert 2 * 3 == 6\n"


def test_ci_runs_the_slow_tests_that_make_test_quick_leaves_out(tmp_path):
    root = project(tmp_path, {"test_a.py": PASS, "test_h.py": SLOW})
    # CI: everything, the slow test too (three ran, against a floor of three)
    p = ci(root, MIN_TESTS="3", **ONE_PROCESS)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "ci: 3 tests ran, 0 skipped (0 allowed); floor 3" in p.stdout
    # pytest -v names it (one process: "<id> PASSED"; under xdist, `make test`'s default: "[gw0] [ 33%] PASSED <id>")
    assert re.search(r"test_h\.py::test_heavy PASSED|PASSED \S*test_h\.py::test_heavy", p.stdout), p.stdout[-2000:]
    # the quick suite: the same tests but the slow one, with the pyproject.toml that declares the marker
    env = {**{k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}, **ONE_PROCESS}
    q = subprocess.run(["make", "test-quick", "PYTEST_ARGS=-v -p no:cacheprovider"], cwd=root, capture_output=True, text=True,
                       env=env, timeout=900)
    assert q.returncode == 0, q.stdout[-2000:] + q.stderr[-2000:]
    # one process says "2 passed, 1 deselected"; under xdist the workers deselect, and the header counts what is left
    selected = "2 passed, 1 deselected" in q.stdout or ("2 workers [2 items]" in q.stdout and " 2 passed in " in q.stdout)
    assert selected and "test_heavy" not in q.stdout, q.stdout[-2000:]
