"""`harness cache ls | prune` on a real cache dir, with a lock held by another real process."""

import os
import subprocess
import sys
import time
from pathlib import Path

from harness.cache import atomic_dir, entries, locked, record_use, write_json

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env_cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if env_cache is not None:
        # the per-user cache beside it, never the suite's shared one (prune --all clears both)
        env["HARNESS_CACHE"], env["HARNESS_MODEL_CACHE"] = str(env_cache), str(env_cache.parent / "user-cache")
    return subprocess.run([sys.executable, "-m", "harness.cli", "cache", *args], capture_output=True, text=True, env=env, timeout=600)


def make_entry(cache: Path, stage: str, key: str, days_old: float = 0.0, used_by: str | None = None) -> Path:
    final = cache / stage / key
    with locked(final):
        with atomic_dir(final) as tmp:
            (tmp / "payload.bin").write_bytes(b"x" * 2048)
    if used_by:
        record_use(cache, stage, key, {"experiment": "tiny", "run": used_by, "what": "teacher answers"})
    t = time.time() - days_old * 86400
    for p in [final, final.with_name(key + ".meta.json")]:
        if p.exists():
            os.utime(p, (t, t))
    return final


def test_ls_lists_entries_with_size_age_and_origin(tmp_path):
    cache = tmp_path / "cache"
    make_entry(cache, "generate", "aaaa", used_by="default")
    make_entry(cache, "finetune", "bbbb", days_old=3)
    (cache / "finetune" / ".cccc.tmp-99999").mkdir()  # debris of a killed build
    p = cli("ls", env_cache=cache)  # $HARNESS_CACHE is honoured
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    gen = next(x for x in lines if x.startswith("generate"))
    assert "aaaa" in gen and "2.0 KB" in gen and "tiny default teacher answers" in gen
    assert "3.0 d ago" in next(x for x in lines if "bbbb" in x)
    assert "killed run" in next(x for x in lines if "cccc" in x)
    assert lines[-1].startswith("3 entries")
    # cache_dir= wins over $HARNESS_CACHE, as in `harness run`
    p = cli("ls", f"cache_dir={tmp_path / 'other'}", env_cache=cache)
    assert p.returncode == 0 and "empty" in p.stdout


def test_prune_filters_by_age_and_stage_and_keeps_locked_entries(tmp_path):
    cache = tmp_path / "cache"
    make_entry(cache, "generate", "old", days_old=10)
    make_entry(cache, "generate", "new")
    make_entry(cache, "finetune", "oldbusy", days_old=10)
    make_entry(cache, "finetune", "old2", days_old=10, used_by="r")
    # another process holds finetune/oldbusy's lock (a job building or checking it right now)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys,time; from pathlib import Path; from harness.cache import locked\n"
                               f"with locked(Path({str(cache / 'finetune' / 'oldbusy')!r})):\n print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        p = cli("prune", "--older-than", "7", "--dry-run", env_cache=cache)
        assert p.returncode == 0, p.stderr
        assert "would remove 2 entries" in p.stdout and len(entries(cache)) == 4
        p = cli("prune", "--older-than", "7", "--stage", "finetune", env_cache=cache)
        assert p.returncode == 0, p.stderr
        assert "kept finetune/oldbusy: a job holds its lock" in p.stdout
        left = {(e.stage, e.key) for e in entries(cache)}
        assert left == {("generate", "old"), ("generate", "new"), ("finetune", "oldbusy")}
        assert not (cache / "finetune" / "old2.meta.json").exists()
    finally:
        holder.kill()
        holder.wait()
    p = cli("prune", "--all", env_cache=cache)
    assert p.returncode == 0 and "removed 3 entries" in p.stdout
    assert entries(cache) == []


def test_ls_and_prune_cover_the_per_user_cache_too(tmp_path):
    """Converted models and embeddings live in the per-user cache, run-specific stages in cache_dir:
    `cache ls` lists both (under their names), `cache prune` clears entries of either."""
    cache, user = tmp_path / "cache", tmp_path / "user-cache"
    make_entry(cache, "generate", "gen1", used_by="default")
    make_entry(user, "models", "smollm2-135m-instruct-1", days_old=40)
    make_entry(user, "embed", "emb1")
    p = cli("ls", env_cache=cache)
    assert p.returncode == 0, p.stderr
    user_part, stage_part = p.stdout.split("\n\n")
    assert user_part.startswith("per-user cache (converted models, embeddings; $HARNESS_MODEL_CACHE):")
    assert "smollm2-135m-instruct-1" in user_part and "emb1" in user_part and user_part.rstrip().endswith(f"2 entries, 4.0 KB in {user}")
    assert stage_part.startswith("stage cache (run-specific stages; cache_dir):") and "gen1" in stage_part and "models" not in stage_part
    p = cli("prune", "--older-than", "30", env_cache=cache)
    assert p.returncode == 0 and "removed models/smollm2-135m-instruct-1" in p.stdout, p.stdout + p.stderr
    assert {(e.stage, e.key) for e in entries(user)} == {("embed", "emb1")} and len(entries(cache)) == 1
    p = cli("prune", "--stage", "embed", env_cache=cache)
    assert p.returncode == 0 and entries(user) == [] and len(entries(cache)) == 1
    # one dir for both (HARNESS_MODEL_CACHE = cache_dir): listed once
    p = cli("ls", f"cache_dir={user}", env_cache=cache)
    assert p.stdout.splitlines() == ["per-user and stage cache (one dir: $HARNESS_MODEL_CACHE = cache_dir):", f"{user}: empty"]


def test_user_cache_follows_xdg_and_the_override():
    code = "from harness.cache import user_cache_dir; print(user_cache_dir())"
    base = {k: v for k, v in os.environ.items() if k not in ("HARNESS_MODEL_CACHE", "XDG_CACHE_HOME")}
    for extra, want in [({"HOME": "/home/u"}, "/home/u/.cache/harness"),
                        ({"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"}, "/xdg/harness"),
                        ({"HOME": "/home/u", "XDG_CACHE_HOME": "relative"}, "/home/u/.cache/harness"),  # the spec: ignored
                        ({"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "HARNESS_MODEL_CACHE": "/models"}, "/models")]:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={**base, "PYTHONPATH": str(REPO), **extra})
        assert p.stdout.strip() == want, (extra, p.stdout, p.stderr)


def test_prune_bad_input_is_one_line_exit_2(tmp_path):
    cache = tmp_path / "cache"
    make_entry(cache, "generate", "k")
    for args, words in [((), "say what to remove"), (("--older-than", "soon"), "not a number"),
                        (("--stage", "nope"), "no stage 'nope'"), (("--bogus",), "unknown option"),
                        (("--all", "no_such_key=1"), "no_such_key")]:
        p = cli("prune", *args, env_cache=cache)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr and "Traceback" not in p.stderr
    assert len(entries(cache)) == 1


def test_record_use_only_for_existing_entries(tmp_path):
    record_use(tmp_path, "generate", "missing", {"run": "x"})
    assert not (tmp_path / "generate").exists()
    write_json(tmp_path / "generate" / "k" / "a.json", {})
    record_use(tmp_path, "generate", "k", {"run": "x"})
    assert entries(tmp_path)[0].meta["run"] == "x"


def test_no_cache_flag_is_cache_false():
    """`--no-cache` reaches Hydra as `cache=false` (Hydra's --cfg=job prints the composed job config)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--no-cache", "experiment=tiny", "--cfg=job"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "cache: false" in lines and "experiment: tiny" in lines
