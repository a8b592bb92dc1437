"""Content-hash keys, file locks and atomic writes.

Every stage output is keyed by a hash of exactly what affects it (its own config, the hashes of its
inputs, the stage's code version) and is written to a temp path, then renamed into place, so a
killed run never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import HarnessError


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
    """Write to a temp file, flush it to disk, then rename it into place: readers see the old file or
    the whole new one. A write that fails (a full disk, a file-size limit) removes its temp file and
    says which file it was, in one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the data (a crash: an empty file)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            raise no_room(path, e) from None
        raise


# a full disk, a quota, a file-size limit (`ulimit -f`): the environment, said as such
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def no_room(path: Path, e: OSError) -> HarnessError:
    return HarnessError(f"cannot write {path}: {e.strerror}; free space (or raise the limit) there and re-run "
                        "the same command: finished stages are kept")


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
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            raise no_room(final, e) from None
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


# --- corrupt entries: a cache is only as good as its worst file ------------------------------------
# Entries are written whole (temp, then rename), but a cache outlives the runs that wrote it: a copy
# cut short (rsync, a full disk on another machine), a bad sector, an edit by hand. So an entry is
# checked when it is read; a bad one is said in one line, set aside and built again, never used.


def _check_jsonl(path: Path) -> str | None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        return "its last line is cut off (no newline at the end)"
    for i, line in enumerate(data.decode("utf-8", errors="strict").splitlines(), 1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError:
                return f"line {i} is not valid JSON"
    return None


def _check_safetensors(path: Path) -> str | None:
    """The header is read, not the tensors: its length prefix, its JSON, and that the file is
    exactly as long as the header says (a truncated file is shorter)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"header length {n} exceeds the file ({size} bytes)"
        try:
            header = json.loads(f.read(n))
        except ValueError:
            return "its header is not valid JSON"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    want = 8 + n + max(ends, default=0)
    return None if want == size else f"{size} bytes, but its header describes {want} (truncated?)"


def _check_npy(path: Path) -> str | None:
    import numpy as np

    # memory-mapping checks the header against the file's length without reading the data
    np.load(path, mmap_mode="r", allow_pickle=False)
    return None


_CHECKS: dict[str, Callable[[Path], str | None]] = {
    ".jsonl": _check_jsonl, ".json": lambda p: (json.loads(p.read_text(encoding="utf-8")), None)[1],
    ".safetensors": _check_safetensors, ".npy": _check_npy,
}


MANIFEST = "manifest.json"


def write_manifest(entry: Path, names: list[str]) -> None:
    """Record the sizes of an entry's files (written last): a file cut at a line boundary is still
    valid JSONL, but not its recorded size."""
    write_json(entry / MANIFEST, {n: (entry / n).stat().st_size for n in names if (entry / n).is_file()})


def problem(entry: Path, names: list[str] | None = None) -> str | None:
    """What is wrong with a cache entry (a dir or one file), or None: a file whose size differs from
    the entry's manifest (when it has one), else the first file whose format check fails (JSONL,
    JSON, safetensors, npy; other files are not checked), named. `names`: check only these files of
    the entry (those present)."""
    if entry.is_dir() and (entry / MANIFEST).is_file():
        try:
            sizes = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
            for n, size in sizes.items():
                have = (entry / n).stat().st_size if (entry / n).is_file() else None
                if have != size:
                    return f"{entry.name}/{n}: {'missing' if have is None else f'{have} bytes'}, {size} when written"
        except (OSError, ValueError, AttributeError) as e:
            return f"{entry.name}/{MANIFEST}: unreadable ({type(e).__name__})"
    if names is not None:
        files = [entry / n for n in names if (entry / n).is_file()]
    else:
        files = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
    for f in files:
        check = _CHECKS.get(f.suffix)
        if check is None:
            continue
        try:
            why = check(f)
        except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError) as e:
            why = f"unreadable ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
        if why:
            return f"{f.relative_to(entry.parent)}: {why}"
    return None


def trusted(entry: Path, what: str, names: list[str] | None = None) -> bool:
    """Is `entry` there and sound (`names`: judged by these files)? A corrupt one is said in one
    line and removed (so the caller builds it again, under the lock it holds), never used."""
    if not entry.exists():
        return False
    why = problem(entry, names)
    if why is None:
        return True
    print(f"[cache] {what}: corrupt entry {entry} ({why}); not used, building it again", flush=True)
    aside = entry.with_name(f".{entry.name}.corrupt-{os.getpid()}")
    os.replace(entry, aside)
    if aside.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)
    return False


USER_CACHE_ENV = "HARNESS_MODEL_CACHE"


def user_cache_dir() -> Path:
    """The per-user cache, for what is the same for every project and run: the embedded model's
    converted checkpoint (`models/`) and sentence embeddings (`embed/`, keyed by the texts). Run-specific
    stages (generate, finetune, questions, judge ...) stay in `cache_dir`. $HARNESS_MODEL_CACHE, else
    $XDG_CACHE_HOME/harness, else ~/.cache/harness (the XDG convention; a relative XDG_CACHE_HOME is
    ignored, as the spec says)."""
    value = os.environ.get(USER_CACHE_ENV)
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "harness"


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
