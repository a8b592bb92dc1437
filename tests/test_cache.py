"""Atomic writes, content keys, and the guard that keeps stale inspect logs out of a resumed run."""

import os

import pytest

from harness.cache import atomic_dir, digest, write_json
from harness.evaluate import claim as _claim


def test_digest_is_stable_and_order_free():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "entry"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.bin").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        write_json(tmp / "ok.json", {"a": 1})
    assert (final / "ok.json").is_file() and len(list(tmp_path.iterdir())) == 1


def test_logs_of_another_evaluation_are_moved_aside_not_reused(tmp_path):
    logs = tmp_path / "logs" / "student"
    _claim(logs, "key-a")
    (logs / "old.eval").write_text("x")
    _claim(logs, "key-a")  # same evaluation: resume in place
    assert (logs / "old.eval").exists()
    _claim(logs, "key-b")  # different evaluation under the same run name
    assert not (logs / "old.eval").exists()
    moved = list((tmp_path / "logs" / ".superseded").glob("student-*/old.eval"))
    assert len(moved) == 1


def test_atomic_dir_clears_the_debris_of_a_killed_build_only(tmp_path):
    import socket
    import subprocess

    final = tmp_path / "entry"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited: what kill -9 of another build leaves behind
    debris = tmp_path / f".entry.tmp-{socket.gethostname()}-{dead.pid}"
    (debris / "model").mkdir(parents=True)
    (debris / "model" / "half.bin").write_text("x")
    alive = tmp_path / f".entry.tmp-{socket.gethostname()}-{os.getppid()}"  # a live build (locks not working)
    remote = tmp_path / ".entry.tmp-another-node-1"  # a build on another host sharing the cache
    alive.mkdir()
    remote.mkdir()
    with atomic_dir(final) as tmp:
        assert not debris.exists() and alive.exists() and remote.exists()
        write_json(tmp / "ok.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["entry", alive.name, remote.name])
