"""Content-hash keys, file locks and atomic writes.

Every stage output is keyed by a hash of exactly what affects it (its own config, the hashes of its
inputs, the stage's code version) and is written to a temp path, then renamed into place, so a
killed run never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able object (dataclasses should be passed through asdict)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent jobs sharing a cache build an entry once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dead_here(tmp: Path) -> bool:
    """True if temp dir `.<name>.tmp-<host>-<pid>` was made by a process of this host that has
    exited. Temp dirs of other hosts (a cache on shared storage) are never judged from here."""
    host, _, pid = tmp.name.rsplit(".tmp-", 1)[-1].rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp dir; on success it is renamed to `final` (replacing nothing half-done).

    The temp dir of a build that was killed (kill -9, OOM) on this host is removed here, so it does
    not pile up on every retry; call it holding `locked(final)`. Only dead processes' dirs go: where
    locks do not work (some shared file systems, docs/scale.md) another job may be building the same
    entry right now. (The lock itself cannot go stale: the kernel releases a dead holder's flock.)"""
    tmp = final.with_name(f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}")
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        if stale != tmp and _dead_here(stale):
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def touch(entry: Path) -> None:
    """Mark a cache entry as just used (its mtime is its last use for `harness cache ls` / prune)."""
    try:
        os.utime(entry)
    except OSError:  # a read-only cache: the entry still serves
        pass


def memo_text(cache_dir: Path | None, stage: str, key: Any, compute: Callable[[], str], use_cache: bool = True) -> str:
    """`compute()`, kept as text in `<cache_dir>/<stage>/<digest(key)>/value.txt` and read back next
    time (for derived artefacts such as report plots; None = not cached). `use_cache=False`
    recomputes and rewrites. A cache that cannot be written only costs the recomputation."""
    if cache_dir is None:
        return compute()
    entry = cache_dir / stage / digest(key)
    if use_cache and (entry / "value.txt").is_file():
        try:
            value = (entry / "value.txt").read_text(encoding="utf-8")
            touch(entry)
            return value
        except OSError:
            pass
    value = compute()
    try:
        with atomic_dir(entry) as tmp:
            (tmp / "value.txt").write_text(value, encoding="utf-8")
    except OSError:
        pass
    return value


# --- `harness cache ls | prune`: what is in the cache, and clearing it safely ----------------------
# Layout: <cache_dir>/<stage>/<key>/ (a finished entry), <key>.lock (its flock), <key>.meta.json
# (which run last used it, written by the pipeline) and .<key>.tmp-<host>-<pid>/ (a build in progress, or
# the debris of a killed one).

META_SUFFIX = ".meta.json"


@dataclass(frozen=True)
class Entry:
    stage: str
    key: str
    path: Path
    size: int  # bytes
    last_used: float  # epoch seconds: the newest of the entry's mtime and its last recorded use
    meta: dict[str, Any]
    partial: bool  # a .tmp-<host>-<pid> build dir, not a finished entry


def record_use(cache_dir: Path, stage: str, key: str, info: dict[str, Any]) -> None:
    """Note which run used a cache entry (shown by `harness cache ls`, its time drives --older-than)."""
    if (cache_dir / stage / key).exists():
        write_json(cache_dir / stage / f"{key}{META_SUFFIX}", {"stage": stage, "key": key, **info})


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def entries(cache_dir: Path) -> list[Entry]:
    """Every entry under `cache_dir`, by stage then key (a missing cache dir is an empty cache)."""
    out: list[Entry] = []
    if not cache_dir.is_dir():
        return out
    for stage_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for p in sorted(stage_dir.iterdir()):
            if not p.is_dir():
                continue
            partial = p.name.startswith(".") and ".tmp-" in p.name
            if p.name.startswith(".") and not partial:  # e.g. an entry being pruned right now
                continue
            key = p.name[1:].rsplit(".tmp-", 1)[0] if partial else p.name
            meta_file = stage_dir / f"{key}{META_SUFFIX}"
            try:
                meta = json.loads(meta_file.read_text()) if meta_file.is_file() and not partial else {}
            except (OSError, ValueError):
                meta = {}
            used = max([p.stat().st_mtime] + ([meta_file.stat().st_mtime] if meta else []))
            out.append(Entry(stage_dir.name, key, p, _size(p), used, meta, partial))
    return out


def is_locked(entry: Entry) -> bool:
    """True while a job holds the entry's lock (it is building or checking the entry right now)."""
    lock = entry.path.parent / f"{entry.key}.lock"
    if not lock.exists():
        return False
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def prune(cache_dir: Path, older_than_days: float | None = None, stage: str | None = None,
          dry_run: bool = False) -> tuple[list[Entry], list[Entry]]:
    """Delete the entries matching every given filter (no filter: all). Returns (removed, skipped
    because a job holds their lock). The lock is held while an entry is deleted, so a job that
    wants it waits and then rebuilds it instead of reading a half-deleted dir. Lock files stay:
    removing one under a waiting job would let a second builder in."""
    import time

    removed: list[Entry] = []
    busy: list[Entry] = []
    now = time.time()
    for e in entries(cache_dir):
        if stage is not None and e.stage != stage:
            continue
        if older_than_days is not None and now - e.last_used < older_than_days * 86400:
            continue
        lock = e.path.parent / f"{e.key}.lock"
        with open(lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.append(e)
                continue
            try:
                if not dry_run:
                    # rename first: the entry disappears at once, the (slow) delete happens off to the side
                    trash = e.path.with_name(f".{e.key}.pruned-{os.getpid()}")
                    os.replace(e.path, trash)
                    if trash.is_symlink():  # e.g. a models dir linked from another cache: drop the link only
                        trash.unlink()
                    shutil.rmtree(trash, ignore_errors=True)
                    if not e.partial:
                        (e.path.parent / f"{e.key}{META_SUFFIX}").unlink(missing_ok=True)
                removed.append(e)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    return removed, busy
