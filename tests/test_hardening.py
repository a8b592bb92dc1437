"""Bad input never escapes, never runs late: names that become paths, where results and the cache
may live, oversized inputs, model files that are not models, two runs of one run dir, and a fuzz of
the CLI. Every case drives the real CLI in a subprocess and checks the invariant: exit 2 (or 1),
exactly one `harness: ` line on stderr, no traceback, nothing written outside the results dir."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "harness"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("HARNESS_CONFIG_DIR", "HARNESS_DEBUG")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    # both caches in tmp_path/cache: a run here builds its embedded model entry there (the tests of that entry)
    e.update(PYTHONPATH=str(REPO), HARNESS_CACHE=str(tmp_path / "cache"), HARNESS_MODEL_CACHE=str(tmp_path / "cache"),
             TMPDIR=str(tmp_path / "tmp"), HF_HUB_OFFLINE="1", **extra)
    return e


def cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """`harness <args>` run from an empty working dir inside tmp_path, its cache in tmp_path/cache."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=env_for(tmp_path, **extra), cwd=cwd, timeout=1500)


def one_line(p: subprocess.CompletedProcess, codes: tuple[int, ...] = (2,)) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode in codes, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("harness: "), p.stderr[-3000:]
    assert "Traceback" not in p.stderr + p.stdout
    return lines[0]


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def written(before: set[Path], root: Path) -> set[Path]:
    """What appeared under `root` (the working dir, the cache, the tmp dir and the empty dirs the
    helpers make do not count)."""
    return {p for p in files(root) - before if p.name not in ("cwd", "tmp")}


@pytest.fixture
def conf(tmp_path):
    """A user config dir: experiments that put bad names where paths are made."""
    d = tmp_path / "conf" / "experiment"
    d.mkdir(parents=True)
    overlays = {
        "up": 'experiment: "../escape"',
        "hidden": 'experiment: ".hidden"',
        "bell": 'experiment: "a\\ab"',
        "alias": 'experiment: alias\nmodels:\n  "../x":\n    model: hf/x',
        "grader": 'experiment: grader\ngraders:\n  "a/b":\n    kind: match',
        "dots": 'experiment: dots\ngraders:\n  "..":\n    kind: match',
        # names over the length limit (harness.guards.MAX_NAME_BYTES = 100, README.md): bytes, not characters
        "long": f'experiment: "{"x" * 101}"',
        "wide": f'experiment: wide\nmodels:\n  "{"é" * 51}":\n    model: hf/x',
    }
    for name, body in overlays.items():
        (d / f"{name}.yaml").write_text(f"# @package _global_\ndefaults:\n  - tiny\n{body}\n")
    return tmp_path / "conf"


# --- names that become paths ----------------------------------------------------------------------

@pytest.mark.parametrize("experiment, key, why", [
    ("up", "experiment", "path separator"), ("hidden", "experiment", "starts with a dot"),
    ("bell", "experiment", "control character U+0007"), ("alias", "models: alias", "path separator"),
    ("grader", "graders: name", "path separator"), ("dots", "graders: name", "starts with a dot"),
    ("long", "experiment", "is longer than 100 bytes"), ("wide", "models: alias", "is longer than 100 bytes")])
def test_a_name_that_would_become_a_bad_path_is_refused_before_anything_is_written(tmp_path, conf, experiment, key, why):
    before = files(tmp_path)
    p = cli(tmp_path, "run", "--config-dir", str(conf), f"experiment={experiment}", f"results_dir={tmp_path / 'results'}")
    line = one_line(p)
    assert line.startswith(f"harness: error: {key}") and why in line, line
    assert written(before, tmp_path) == set()  # no run dir, nothing outside results_dir (tmp_path/escape ...)


def test_names_are_limited_to_100_bytes_of_utf8_not_characters():
    from harness.errors import HarnessError
    from harness.guards import MAX_NAME_BYTES, check_name, name_problem

    assert MAX_NAME_BYTES == 100  # the figure README.md and docs/run-dir.md state
    assert name_problem("x" * 100) is None and name_problem("é" * 50) is None  # 100 bytes: the limit itself is allowed
    assert name_problem("x" * 101) == name_problem("é" * 51) == "is longer than 100 bytes"  # 51 characters, 102 bytes
    with pytest.raises(HarnessError, match=r"^models: alias \"x{56}\.\.\. is longer than 100 bytes; it becomes a directory name"):
        check_name("models", "x" * 101, "alias")  # shown cut short, not the whole long name


def test_the_run_name_is_one_plain_path_component(tmp_path):
    # a newline in an override's value, a '/' in another: the run dir stays one level under the experiment
    p = cli(tmp_path, "run", "--cfg", "all", "--resolve", "experiment=tiny", f"results_dir={tmp_path / 'r'}",
            'eval.system="a\nb/../c"')
    assert p.returncode == 0, p.stderr
    run_dir = next(line.split("dir: ", 1)[1] for line in p.stdout.splitlines() if line.startswith("    dir: "))
    assert Path(run_dir).parent == tmp_path / "r" / "tiny", run_dir
    assert "\n" not in run_dir and "/../" not in run_dir


def _byo(tmp_path: Path, eval_rows: list[str]) -> list[str]:
    train, ev = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text(json.dumps({"question": "What is the capital of France?"}) + "\n")
    ev.write_text("".join(r + "\n" for r in eval_rows))
    return ["experiment=tiny", "data=jsonl", f"data.train_path={train}", f"data.eval_path={ev}", f"results_dir={tmp_path / 'results'}"]


def test_a_sample_id_with_a_control_character_is_refused_naming_file_and_line(tmp_path):
    rows = [json.dumps({"id": "a", "question": "q1?", "answer": "x"}), json.dumps({"id": "b\u0000c", "question": "q2?", "answer": "y"})]
    args = _byo(tmp_path, rows)
    before = files(tmp_path)
    line = one_line(cli(tmp_path, "run", *args))
    assert f"{tmp_path / 'eval.jsonl'}:2: id " in line and "control character" in line
    assert written(before, tmp_path) == set()


# --- where results and the cache may live ---------------------------------------------------------

@pytest.mark.parametrize("where, key, words", [
    ("package", "results_dir", "inside the harness package"),
    ("in_cache", "results_dir", "is inside cache_dir"),
    ("same", "cache_dir", "is also results_dir"),
    ("in_runs", "cache_dir", "is inside this experiment's run dirs"),
    ("cache_in_package", "cache_dir", "inside the harness package")])
def test_results_and_cache_dirs_that_overlap_or_sit_in_the_package_are_refused(tmp_path, where, key, words):
    results, cache = {
        "package": (PACKAGE / "results-here", tmp_path / "cache"),
        "in_cache": (tmp_path / "cache" / "results", tmp_path / "cache"),
        "same": (tmp_path / "both", tmp_path / "both"),
        "in_runs": (tmp_path / "results", tmp_path / "results" / "tiny" / "cache"),
        "cache_in_package": (tmp_path / "results", PACKAGE / "cache-here"),
    }[where]
    before, pkg_before = files(tmp_path), files(PACKAGE)
    line = one_line(cli(tmp_path, "run", "experiment=tiny", f"results_dir={results}", f"cache_dir={cache}"))
    assert line.startswith(f"harness: error: {key}: ") and words in line, line
    assert written(before, tmp_path) == set() and files(PACKAGE) == pkg_before


# --- inputs longer than data.max_chars ------------------------------------------------------------

@pytest.mark.slow
def test_a_10mb_question_fails_before_any_stage_naming_file_line_and_limit(tmp_path):
    rows = [json.dumps({"question": "What is 2+2?", "answer": "4"}), json.dumps({"question": "x" * 10_000_000, "answer": "y"})]
    args = _byo(tmp_path, rows)
    assert (tmp_path / "eval.jsonl").stat().st_size > 10_000_000
    before = files(tmp_path)
    line = one_line(cli(tmp_path, "run", *args))
    assert f"{tmp_path / 'eval.jsonl'}:2: 'question' is 10000000 characters, longer than data.max_chars=20000" in line
    assert written(before, tmp_path) == set()
    # the limit is a setting: a lower one catches a shorter passage in the training file too
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": "q?", "passage": "p" * 600}) + "\n")
    line = one_line(cli(tmp_path, "run", *args[:-1], "data.max_chars=500", args[-1]))
    assert f"{tmp_path / 'train.jsonl'}:1: 'passage' is 600 characters, longer than data.max_chars=500" in line
    line = one_line(cli(tmp_path, "run", *args, "data.max_chars=0"))
    assert "data.max_chars must be >= 1" in line


# --- inputs longer than the model's context window -------------------------------------------------

def _embedded_window() -> int:
    """SmolLM2's context window as its checkpoint says: the converted model's config.json (the suite's
    shared cache converts it once), not the constant the pre-flight keeps to avoid converting."""
    from harness.models import embedded_path

    cfg = json.loads((Path(embedded_path("smollm2-135m-instruct", os.environ["HARNESS_CACHE"])) / "config.json").read_text())
    return cfg["max_position_embeddings"]


@pytest.mark.slow  # the GGUF's tokenizer (~10 s) in a CLI subprocess
def test_a_question_longer_than_the_context_window_fails_before_any_stage_naming_item_model_and_window(tmp_path):
    """Under data.max_chars (off here) but over SmolLM2's window: refused up front, in one line."""
    window = _embedded_window()
    rows = [json.dumps({"id": "ok", "question": "What is 2+2?", "answer": "4"}),
            json.dumps({"id": "long", "question": "word " * (window + 800), "answer": "y"})]
    args = _byo(tmp_path, rows)
    before = files(tmp_path)
    line = one_line(cli(tmp_path, "run", *args, "data.max_chars=null"))
    assert line.startswith(f"harness: error: {tmp_path / 'eval.jsonl'}: item 'long': the prompt for models.") and \
        f"does not fit the model's context window of {window} tokens" in line and "max_position_embeddings" in line, line
    assert "eval.max_tokens" in line
    assert written(before, tmp_path) == set()


def _ctx_cfg(tmp_path: Path, question: str, *overrides: str):
    from omegaconf import OmegaConf

    from harness.cli import compose
    from harness.config import to_dataclass

    ev = tmp_path / "eval.jsonl"
    ev.write_text(json.dumps({"id": "q", "question": question, "answer": "y"}) + "\n")
    d = OmegaConf.to_container(compose(["experiment=upgrade", "data=jsonl", f"data.eval_path={ev}", "data.max_chars=null",
                                        f"cache_dir={os.environ['HARNESS_CACHE']}", *overrides]), resolve=False)
    d.pop("hydra")
    return to_dataclass(OmegaConf.create(d))


def test_the_context_check_counts_real_tokens_near_the_limit_and_knows_the_served_window(tmp_path):
    from harness.data import build
    from harness.errors import HarnessError
    from harness.models import context_window, prompt_tokens
    from harness.preflight import check_context
    from harness.prompts import chat

    def check(cfg):
        train, evals, _, _ = build(cfg.data, training=False)
        check_context(cfg, train, evals)

    # Without a tokenizer the check lets a prompt near the limit pass (the byte bound alone would refuse
    # prompts that fit), so every "it fits" below would pass with none: first, that one counts here, for
    # the in-process model and for the served one, and counts far fewer tokens than bytes.
    big = _ctx_cfg(tmp_path, "the cat sat. " * 700, "model@models.candidate=smollm2_server")
    for alias in ("current", "candidate"):
        m = big.models[alias]
        count = prompt_tokens(m, big.cache_dir)
        assert count is not None, f"models.{alias}: no tokenizer to count with, so the checks below would prove nothing"
        n = count(chat(big.eval.system, "the cat sat. " * 700))
        assert 2000 < n < len(("the cat sat. " * 700).encode()) // 2, n
    assert context_window(big.models["candidate"])[0] == 2048  # the llama.cpp server's n_ctx, below the ~2,800 tokens
    # 9,100 bytes: over the byte bound of the 8192 window, so the real tokenizer counts it: ~2,800 tokens, it fits
    check(_ctx_cfg(tmp_path, "the cat sat. " * 700))
    # ~830 tokens (2,600 bytes) do not fit a llama.cpp server started with n_ctx 2048 once the answers may take 1300
    with pytest.raises(HarnessError, match=r"does not fit the model's context window of 2048 tokens \(the llama.cpp server"):
        check(_ctx_cfg(tmp_path, "the cat sat. " * 200, "model@models.candidate=smollm2_server", "eval.max_tokens=1300"))
    # ... and with an answer budget that does fit, it passes (counted, not guessed: the byte bound says 2,600)
    check(_ctx_cfg(tmp_path, "the cat sat. " * 200, "model@models.candidate=smollm2_server", "eval.max_tokens=40"))
    # a hosted model's window is its provider's business: not checked
    check(_ctx_cfg(tmp_path, "word " * 9000, "model@models.current=gpt-4o-mini", "model@models.candidate=gpt-4o"))


@pytest.mark.slow  # converts the embedded model into an empty cache (~10 s)
def test_a_failure_after_the_embedded_models_first_conversion_is_still_one_line(tmp_path):
    """On a cold cache the run converts the embedded GGUF before the judge's endpoint is tried: the
    conversion is said on stdout in one line, its progress bars do not reach stderr."""
    p = cli(tmp_path, "run", "experiment=tiny", "+grader@graders.judge=judge", "model@graders.judge.judge=llama_cpp_server",
            "graders.judge.judge.args.base_url=http://127.0.0.1:9/v1", f"results_dir={tmp_path / 'results'}")
    line = one_line(p)
    assert "graders.judge.judge: cannot use judge model" in line and "127.0.0.1:9" in line, line
    assert p.stdout.count("[model] converting the embedded") == 1, p.stdout[-2000:]
    assert list((tmp_path / "cache" / "models").glob("smollm2-135m-instruct-*/config.json"))  # the conversion is kept


# --- model files that are not models --------------------------------------------------------------

def _not_models(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    d = tmp_path / "models"
    d.mkdir()
    (d / "notes.txt").write_text("not a model\n")
    (d / "empty").mkdir()
    (d / "badjson").mkdir()
    (d / "badjson" / "config.json").write_text("{ not json")
    (d / "notype").mkdir()
    (d / "notype" / "config.json").write_text('{"hidden_size": 8}')
    (d / "noweights").mkdir()
    (d / "noweights" / "config.json").write_text('{"model_type": "llama"}')
    (d / "adapter").mkdir()
    (d / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    (d / "truncated").mkdir()
    (d / "truncated" / "config.json").write_text('{"model_type": "llama"}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    (d / "truncated" / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 100)
    return {
        "text file": (d / "notes.txt", "is a file, not a model directory"),
        "empty dir": (d / "empty", "has no config.json"),
        "bad json": (d / "badjson", "config.json is not readable JSON"),
        "no model_type": (d / "notype", "config.json has no model_type"),
        "no weights": (d / "noweights", "has no weights"),
        "truncated weights": (d / "truncated", "model.safetensors"),
        "adapter without base": (d / "adapter", "names no base_model_name_or_path"),
    }


@pytest.mark.slow
def test_a_model_path_that_is_not_a_model_fails_in_one_line_before_any_stage(tmp_path):
    cases = _not_models(tmp_path)
    before = files(tmp_path)
    for what, (path, words) in cases.items():
        # read from the config and the weights' headers, no weights loaded (the truncated file's 4 MB are
        # not there to load); no time bound here: it would flake on a busy machine
        line = one_line(cli(tmp_path, "run", "experiment=tiny", f"models.baseline.args.model_path={path}",
                            f"results_dir={tmp_path / 'results'}"))
        assert line.startswith(f"harness: error: models.baseline.args.model_path: {path} ") and words in line, (what, line)
    assert written(before, tmp_path) == set()
    # the check accepts real checkpoints: the embedded model as the harness converts it (the suite's shared cache)
    from harness.cache import user_cache_dir
    from harness.guards import model_dir_problem
    from harness.models import embedded_path

    assert model_dir_problem(embedded_path("smollm2-135m-instruct", user_cache_dir())) is None


def test_a_served_model_that_is_not_a_gguf_fails_in_one_line(tmp_path):
    txt = tmp_path / "model.gguf"
    txt.write_text("not a gguf\n")
    before = files(tmp_path)
    line = one_line(cli(tmp_path, "run", "experiment=tiny", "model@models.baseline=smollm2_server", f"models.baseline.serve={txt}",
                        f"results_dir={tmp_path / 'results'}"))
    assert line.startswith(f"harness: error: models.baseline.serve: {txt} is not a GGUF file"), line
    assert written(before, tmp_path) == set()


# --- two runs of one run dir ----------------------------------------------------------------------

def _embedded_entry_lock(cache: Path) -> Path:
    """The lock file of the embedded model's cache entry (harness.models.embedded_path): the first
    thing a run on a fresh cache builds."""
    from harness.models import embedded_gguf

    return cache / "models" / f"smollm2-135m-instruct-{embedded_gguf('smollm2-135m-instruct').stat().st_size}.lock"


@pytest.mark.slow
def test_a_second_run_of_a_run_dir_in_use_refuses_in_one_line_and_touches_nothing(tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    run_dir = results / "tiny" / "default"
    lock = _embedded_entry_lock(cache)
    lock.parent.mkdir(parents=True)
    args = [sys.executable, "-m", "harness.cli", "run", "experiment=tiny", f"results_dir={results}"]
    (tmp_path / "cwd").mkdir()
    # the test holds the embedded model's cache lock: the first run takes its run lock, then waits on
    # the cache entry (a real run, doing nothing heavy) for as long as the test needs
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        first = subprocess.Popen(args, env=env_for(tmp_path), cwd=tmp_path / "cwd", stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.time() + 120
            while not ((run_dir / ".harness.lock").is_file() and (run_dir / ".harness.lock").read_text() == str(first.pid)):
                assert first.poll() is None and time.time() < deadline, first.communicate(timeout=10)
                time.sleep(0.2)
            hydra_files = {p: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
            cli_log = (run_dir / "cli.log").read_bytes() if (run_dir / "cli.log").exists() else b""
            before = files(tmp_path)
            second = cli(tmp_path, "run", "experiment=tiny", f"results_dir={results}", "cache=false")  # same run dir
            line = one_line(second)
            assert line == (f"harness: error: run dir {run_dir} is in use by another harness run (pid {first.pid}); "
                            "wait for it to finish, or pass results_dir=<another dir>")
            assert written(before, tmp_path) == set()
            assert {p: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == hydra_files
            assert ((run_dir / "cli.log").read_bytes() if (run_dir / "cli.log").exists() else b"") == cli_log
            # the pipeline's own lock refuses too (a caller without the CLI): the same line
            from harness.errors import HarnessError
            from harness.guards import run_lock

            with pytest.raises(HarnessError, match=f"in use by another harness run \\(pid {first.pid}\\)"):
                with run_lock(run_dir):
                    pass
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate(timeout=60)
    # a run that died (kill -9) holds nothing: the dir is free again
    from harness.guards import check_run_dir_free, run_lock

    check_run_dir_free(run_dir)
    with run_lock(run_dir):
        assert (run_dir / ".harness.lock").read_text() == str(os.getpid())


# --- fuzz: generated bad overrides and data files through the real CLI -----------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

WORD = st.from_regex(r"[a-z]{1,8}x", fullmatch=True)  # never a number, bool or null
ODD = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
HUGE = st.one_of(st.integers(10**9, 10**40), st.integers(-(10**40), -1))
BAD_NAME = st.builds(lambda bad, rest: bad + rest, st.sampled_from(["../", "..", ".", "a/b", "x\\n", "\x07", "\u202e", "\u2028", "a\tb"]),
                     ODD)


def _overrides(kind: str, draw_value) -> tuple[list[str], dict[str, str]]:
    """(overrides, user-conf experiment files) of one bad case; `draw_value` is the drawn payload."""
    if kind == "wrong_type":
        key, word = draw_value
        return [f"{key}={word}"], {}
    if kind == "unknown_key":
        section, word = draw_value
        return [f"{section}.{word}_zz=1" if section else f"+{word}_zz=1"], {}
    if kind == "huge":
        key, value = draw_value
        return [f"{key}={value}"], {}
    if kind == "empty":
        return [draw_value], {}
    where, name = draw_value
    body = {"experiment": f"experiment: {json.dumps(name)}",
            "alias": f"experiment: fz\nmodels:\n  {json.dumps(name)}:\n    model: hf/x",
            "grader": f"experiment: fz\ngraders:\n  {json.dumps(name)}:\n    kind: match"}[where]
    return ["--config-dir", "{conf}", "experiment=fz"], {"fz.yaml": f"# @package _global_\ndefaults:\n  - tiny\n{body}\n"}


OVERRIDES = st.one_of(
    st.tuples(st.just("wrong_type"), st.tuples(st.sampled_from(["finetune.lr", "eval.epochs", "data.n_islands", "report.alpha",
                                                                "eval.limit", "cache", "data.dedup", "regress.margin"]), WORD)),
    st.tuples(st.just("unknown_key"), st.tuples(st.sampled_from(["", "data", "eval", "finetune", "generate", "report", "regress"]), WORD)),
    st.tuples(st.just("huge"), st.tuples(st.sampled_from(["data.n_control", "data.n_islands", "data.train_per_fact"]), HUGE)),
    st.tuples(st.just("huge"), st.tuples(st.sampled_from(["report.alpha", "data.leak_threshold", "data.dedup_minhash"]),
                                         st.sampled_from(["1e308", "-1e308", "2.5", "-0.5"]))),
    st.tuples(st.just("empty"), st.sampled_from(["finetune.method=", "data.name=", "models.baseline.model=", "report.correction=",
                                                 "eval.tasks=[]", "data.templates="])),
    st.tuples(st.just("name"), st.tuples(st.sampled_from(["experiment", "alias", "grader"]), BAD_NAME)),
)
DATA_FILES = st.one_of(
    st.tuples(st.just("encoding"), st.binary(min_size=1, max_size=40).map(lambda b: b"\xff\xfe" + b)),
    st.tuples(st.just("truncated"), st.integers(1, 30)),
    st.tuples(st.just("huge_line"), st.integers(20_001, 300_000)),
    st.tuples(st.just("not_object"), st.sampled_from([b"[1, 2]\n", b"42\n", b"\"q\"\n", b"null\n"])),
    st.tuples(st.just("blank"), st.sampled_from([b"", b"\n\n  \n"])),
)


def _data_file(what: str, payload) -> bytes:
    row = json.dumps({"question": "What is the capital of France?", "answer": "Paris"})
    if what == "encoding":
        return row.encode() + b"\n" + payload + b"\n"
    if what == "truncated":
        return (row + "\n" + row[: max(1, len(row) - payload)] + "\n").encode()
    if what == "huge_line":
        return (row + "\n" + json.dumps({"question": "q" * payload, "answer": "a"}) + "\n").encode()
    return payload if what == "blank" else row.encode() + b"\n" + payload


def _invariant(root: Path, args: list[str], case) -> None:
    """Run `harness run <args>` against a results dir that can never be written (below a file): a
    generated case that happened to be valid stops at the writability check instead of running a
    model, and fails here. Asserts what the README promises for bad input: exit 2 and one `harness: error:`
    line (never exit 1, an internal error), nothing written, no temp file."""
    (root / "afile").write_text("")
    before = files(root)
    p = cli(root, "run", *args, f"results_dir={root / 'afile' / 'results'}")
    line = one_line(p)
    assert line.startswith("harness: error: "), (case, line)
    assert "is not writable" not in line, f"the generated case {case} was valid: {line}"
    new = written(before, root)
    assert new == set(), (case, line, new)
    assert not [f for f in root.rglob("*") if ".tmp" in f.name], case


@pytest.mark.slow
@settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=OVERRIDES)
def test_fuzz_bad_overrides_are_one_line_never_a_traceback_and_write_nothing(case):
    import tempfile

    kind, payload = case
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        args, experiments = _overrides(kind, payload)
        for name, text in experiments.items():
            (root / "conf" / "experiment").mkdir(parents=True, exist_ok=True)
            (root / "conf" / "experiment" / name).write_text(text, encoding="utf-8")
        args = [a.replace("{conf}", str(root / "conf")) for a in args]
        _invariant(root, args if "experiment=fz" in args else ["experiment=tiny", *args], case)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=DATA_FILES)
def test_fuzz_bad_data_files_are_one_line_never_a_traceback_and_write_nothing(case):
    import tempfile

    what, body = case
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "train.jsonl").write_text(json.dumps({"question": "q?"}) + "\n")
        (root / "eval.jsonl").write_bytes(_data_file(what, body))
        _invariant(root, ["experiment=tiny", "data=jsonl", f"data.train_path={root / 'train.jsonl'}",
                          f"data.eval_path={root / 'eval.jsonl'}"], case)
