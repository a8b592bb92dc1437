"""Hosted and OpenAI-compatible models, over real HTTP on 127.0.0.1.

- the llama.cpp server lifecycle (`harness.models.llama_server`) with the embedded GGUF;
- `experiment=openai_distill` end to end against the OpenAI stand-in (tests/openai_standin.py),
  whose base models are answered by a real llama.cpp server: the real `openai` client and inspect's
  `openai/` provider make every request; the fine-tune job goes through files, jobs, events;
- the fine-tune backend's file validation, cost gate, re-attach after a crash, failed jobs;
- bad input: missing key, server down, 401, unknown model, a too-small training file.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.config import FinetuneConfig, OpenAIFinetuneConfig
from harness.errors import HarnessError
from harness.finetune._openai import train_openai, validate_training_file
from harness.models import embedded_gguf, llama_server
from harness.models._server import free_port
from tests.openai_standin import StandIn
from tests.secret_scan import Scan, scan

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-k3y-never-printed-0123456789"
SMALL = ["data.n_islands=3", "data.train_per_fact=1", "data.n_control=3", "eval.max_tokens=24", "generate.max_tokens=24"]


@pytest.fixture
def upstream(llama_upstream):
    """The embedded GGUF behind the worker's real llama.cpp server (tests/conftest.py): the stand-in's
    base models."""
    return llama_upstream


@pytest.fixture(scope="module")
def standin(llama_upstream):
    s = StandIn(api_key=KEY, upstream=llama_upstream, step_seconds=0.3)
    with s.serve() as url:
        s.url = url
        yield s


def harness(args, env=None, timeout=900, home: Path | None = None):
    """`harness run <args>`. `home`: where the run's temp files (TMPDIR) and inspect's own data dir
    (XDG_DATA_HOME: its trace logs and sample buffer) go, so that a secret scan can read them."""
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = str(REPO)
    if home is not None:
        for var, sub in (("TMPDIR", "tmp"), ("XDG_DATA_HOME", "data")):
            (home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(home / sub)
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def one_line_error(p):
    lines = p.stderr.strip().splitlines()
    # the README's promise for bad input: exit 2 and exactly one line
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("harness: error:"), (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr
    return lines[0]


def assert_no_key_on_disk(p, *roots: Path, key: str = KEY) -> Scan:
    """The key is in no file the run wrote (contents, names, .eval members and gzipped traces opened), nor on
    its stdout/stderr. The roots: the results dir, the cache dir, the run's temp and inspect data dirs."""
    assert key not in p.stdout + p.stderr
    found = scan(key, *roots)
    assert found.clean, (found.hits, found.unreadable)
    return found


# ------------------------------------------------------------------------------------------ server


@pytest.mark.slow
def test_llama_server_starts_answers_and_stops(tmp_path):
    from openai import AuthenticationError, OpenAI

    log = tmp_path / "servers" / "smollm2.log"
    with llama_server(embedded_gguf("smollm2-135m-instruct"), log, model="smollm2", threads=1) as ep:
        assert ep.base_url.startswith("http://127.0.0.1:")
        client = OpenAI(base_url=ep.base_url, api_key=ep.api_key, max_retries=0)
        assert [m.id for m in client.models.list()] == ["smollm2"]
        r = client.chat.completions.create(model="smollm2", max_tokens=8, temperature=0,
                                           messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert r.choices[0].message.content
        with pytest.raises(AuthenticationError, match="401"):  # a random key guards it from other local users
            OpenAI(base_url=ep.base_url, api_key="wrong", max_retries=0).models.list()
        pid = ep.pid
    with pytest.raises(OSError):  # stopped: nothing listens any more
        urllib.request.urlopen(f"{ep.base_url}/models", timeout=2)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert "llama_cpp.server" in log.read_text() and ep.api_key not in log.read_text()


@pytest.mark.slow
def test_llama_server_bad_gguf_is_one_line(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(HarnessError, match="exited with code"):
        with llama_server(bad, tmp_path / "x.log", startup_timeout=60):
            pass
    with pytest.raises(HarnessError, match="no such GGUF"):
        with llama_server(tmp_path / "missing.gguf", tmp_path / "y.log"):
            pass


@pytest.mark.slow
def test_served_model_end_to_end(tmp_path):
    """All three models on the embedded GGUF behind a llama.cpp server the harness starts and stops."""
    served = ["model@models.teacher=smollm2_server", "model@models.baseline=smollm2_server",
              "model@models.student=smollm2_server", "finetune=none"]
    # eval.limit=4: 4 held-out + 3 control items per alias (what is checked is who served them)
    p = harness(["experiment=tiny", *served, "eval.limit=4", f"results_dir={tmp_path}", f"cache_dir={tmp_path / 'cache'}"])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = next(d for d in (tmp_path / "tiny").iterdir())
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["model_calls"] == {"teacher": 8 + 7, "baseline": 7, "student": 7}
    assert s["models"]["baseline"] == "openai-api/llamacpp/smollm2-135m-instruct"
    log = run_dir / "servers" / "smollm2-135m-instruct.log"
    assert "POST /v1/chat/completions" in log.read_text()
    assert p.stdout.count("[serve] starting") == 1  # one server shared by the three aliases
    url = next(x for x in p.stdout.splitlines() if "ready at" in x).split("ready at ")[1]
    with pytest.raises(OSError):  # stopped at the end of the run
        urllib.request.urlopen(f"{url}/models", timeout=2)


# ------------------------------------------------------------------------- OpenAI, end to end


@pytest.fixture(scope="module")
def distill_home(module_tmp) -> Path:
    """The distill run's temp and inspect data dirs (see `harness(home=)`)."""
    return module_tmp("home")


@pytest.fixture(scope="module")
def distill_run(standin, distill_home, module_tmp):
    results, home = module_tmp("results"), distill_home
    standin.rate_limit = 2  # the first two teacher requests get 429 + Retry-After: 1
    args = ["experiment=openai_distill", *SMALL, "finetune.confirm=true", "finetune.openai.poll_seconds=0.2",
            f"results_dir={results}", f"cache_dir={results / 'cache'}"]
    env = {"OPENAI_BASE_URL": standin.url, "OPENAI_API_KEY": KEY}
    n_before = len(standin.requests)
    p = harness(args, env, home=home)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = next((results / "openai_distill").iterdir())
    return run_dir, p, args, env, standin.requests[n_before:]


@pytest.mark.slow
def test_openai_distill_runs_against_the_standin(distill_run, standin):
    run_dir, p, _, _, requests = distill_run
    s = json.loads((run_dir / "summary.json").read_text())
    ft = s["finetune"]["fine_tuned_model"]
    assert ft.startswith("ft:gpt-4o-mini-2024-07-18:standin:veshari:")
    assert s["models"] == {"teacher": "openai/gpt-4o-2024-08-06", "baseline": "openai/gpt-4o-mini-2024-07-18",
                           "student": f"openai/{ft}"}
    assert s["model_calls"] == {"teacher": 12 + 15, "baseline": 15, "student": 15}
    import jsonschema

    jsonschema.validate(s, json.loads((REPO / "docs" / "summary.schema.json").read_text()))
    # the student answers from what it was trained on: it beats its untuned base on the held-out wordings
    acc = {(r["model"], r["grader"]): r["accuracy"] for r in s["scores"] if r["task"] == "heldout"}
    assert acc[("student", "contains")] > acc[("baseline", "contains")]
    # the job went through its states, and its events reached the progress display (a poll may miss
    # a short state, the events never do)
    for event in ("Validating training file", "moving job to queued state", "Fine-tuning job started", "Step 1/",
                  "The job has successfully completed"):
        assert event in p.stdout, event
    assert ": validating_files" in p.stdout and ": succeeded" in p.stdout and "[finetune] estimate:" in p.stdout
    record = json.loads((run_dir / "student" / "openai_job.json").read_text())
    assert record["status"] == "succeeded" and record["fine_tuned_model"] == ft
    job = standin.jobs[record["job_id"]].obj
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 3 and job["seed"] == 0
    # 429 + Retry-After: the client waited at least that long, then succeeded
    chat = [r for r in requests if r["path"] == "/v1/chat/completions"]
    limited = [r for r in chat if r["status"] == 429]
    retried = [r for r in chat if r["retry"] > 0]
    assert len(limited) == 2 and len(retried) == 2 and all(r["status"] == 200 for r in retried)
    assert min(r["time"] for r in retried) - max(r["time"] for r in limited) >= 0.9


@pytest.mark.slow
def test_openai_distill_costs_are_tokens_times_prices(distill_run, standin):
    """Every model's cost is its tokens x its config's prices (gpt-4o teaching, gpt-4o-mini as the
    baseline, the fine-tuned gpt-4o-mini at its own rate), the HTTP teacher's calls included, and the
    fine-tune's is the job's trained tokens x the training price."""
    run_dir, _, _, _, requests = distill_run
    s = json.loads((run_dir / "summary.json").read_text())
    prices = {"teacher": (2.50, 10.00), "baseline": (0.15, 0.60), "student": (0.30, 1.20)}  # USD per 1M tokens
    by_stage = s["usage_by_stage"]
    assert set(by_stage["generate"]) == {"teacher"} and set(by_stage["evaluate"]) == {"teacher", "baseline", "student"}
    for stage, per in by_stage.items():
        for alias, u in per.items():
            p_in, p_out = prices[alias]
            assert u["input_tokens"] > 0 and u["output_tokens"] > 0, (stage, alias)
            assert u["cost_usd"] == pytest.approx((u["input_tokens"] * p_in + u["output_tokens"] * p_out) / 1e6, abs=1e-6)
    for alias, u in s["usage"].items():  # totals: generate + evaluate
        assert u["cost_usd"] == pytest.approx(sum(per[alias]["cost_usd"] for per in by_stage.values() if alias in per), abs=2e-6)
    # the HTTP teacher's usage is the server's own count, one record per answer; the two 429s are retries, not calls
    gen = by_stage["generate"]["teacher"]
    stored = [c for c in standin.stored if c["metadata"].get("run") == run_dir.name]
    assert gen["calls"] == len(stored) == 12 and gen["retries"] == 2
    assert gen["input_tokens"] == sum(c["usage"]["prompt_tokens"] for c in stored)
    assert gen["output_tokens"] == sum(c["usage"]["completion_tokens"] for c in stored)
    assert all(r["retries"] in (0, 1) and r["latency_s"] > 0 for r in map(json.loads, (run_dir / "data" / "usage.jsonl").open()))
    assert {a: u["calls"] for a, u in by_stage["evaluate"].items()} == {"teacher": 15, "baseline": 15, "student": 15}
    # the fine-tune: billed tokens as the job reports them, at gpt-4o-mini's training price
    ft = s["finetune"]
    job = standin.jobs[ft["job_id"]].obj
    assert ft["trained_tokens"] == job["trained_tokens"] > 0 and ft["price_per_1m_tokens"] == 3.00
    assert ft["cost_usd"] == pytest.approx(job["trained_tokens"] * 3.00 / 1e6) and ft["cost_usd"] > 0
    report = (run_dir / "report.md").read_text()
    assert "| generate | teacher | 12 | 2 |" in report  # calls, then retries


@pytest.mark.slow
def test_teacher_answers_are_stored_completions_with_metadata(distill_run, standin):
    from openai import OpenAI

    run_dir, _, _, _, _ = distill_run
    prov = [json.loads(x) for x in (run_dir / "data" / "provenance.jsonl").read_text().splitlines()]
    rows = [json.loads(x) for x in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    assert len(prov) == len(rows) == 12
    client = OpenAI(base_url=standin.url, api_key=KEY)
    for p, r in zip(prov, rows):
        assert p["stored_completion"] and p["metadata"] == {"experiment": "openai_distill", "run": run_dir.name,
                                                           "question_id": p["id"]}
        # findable by metadata, as in the dashboard, and it is the answer we trained on
        found = list(client.chat.completions.list(metadata={"question_id": p["id"], "run": run_dir.name}))
        assert [c.id for c in found] == [p["response_id"]]
        assert found[0].choices[0].message.content.strip() == r["messages"][-1]["content"]
        assert len(found[0].metadata) <= 16


@pytest.mark.slow
def test_key_never_written_or_printed(distill_run, distill_home):
    """A whole run that used the key (preflight, 429 retries, generate, upload, fine-tune job, evaluation):
    not in the results dir (run dir, cli.log, .eval logs opened), the cache, temp files or inspect's
    traces, nor on the terminal."""
    run_dir, p, _, _, _ = distill_run
    results = run_dir.parents[1]
    found = assert_no_key_on_disk(p, results, distill_home)  # results holds the cache too (cache_dir=results/cache)
    # the scan read what matters: cli.log, the cache's entries, inspect's log members and its trace log
    assert str(run_dir / "cli.log") in found.scanned
    assert any(f.startswith(str(results / "cache" / "generate")) for f in found.scanned)
    assert any(".eval!samples/" in f for f in found.scanned) and any(".eval!header.json" in f for f in found.scanned)
    assert any("/inspect_ai/traces/trace-" in f for f in found.scanned), found.scanned


def test_the_secret_scan_finds_the_key_wherever_it_hides(tmp_path):
    """The scan the key tests rely on finds the key in a zstd or deflated zip member (inspect's .eval logs
    are zips of zstd members), in a gzipped trace, cut short, and in a file name; a torn archive is not
    passed as clean; clean text and OpenAI's masked echo of a key pass."""
    import gzip
    import zipfile

    import zstandard

    (tmp_path / "clean.txt").write_text(f"a masked key, as OpenAI echoes it: {KEY[:7]}...{KEY[-4:]}")
    assert scan(KEY, tmp_path).clean
    with zipfile.ZipFile(tmp_path / "log.eval", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("header.json", "{}")
        z.writestr("samples/1_epoch_1.json", json.dumps({"input": "x" * 500, "auth": KEY}))
    assert KEY.encode() not in (tmp_path / "log.eval").read_bytes()  # deflated: a plain byte search misses it
    # a zstd member as inspect writes it (method 93, which zipfile cannot write: stored, then the method
    # fields of the local header and the central directory entry set to 93)
    with zipfile.ZipFile(tmp_path / "zstd.eval", "w") as z:
        sample = {"input": "the quick brown fox jumps over the lazy dog " * 3, "auth": KEY}  # text enough for coded literals
        z.writestr("samples/2_epoch_1.json", zstandard.ZstdCompressor().compress(json.dumps(sample).encode()))
    blob = bytearray((tmp_path / "zstd.eval").read_bytes())
    blob[8:10] = blob[blob.index(b"PK\x01\x02") + 10:blob.index(b"PK\x01\x02") + 12] = (93).to_bytes(2, "little")
    (tmp_path / "zstd.eval").write_bytes(bytes(blob))
    assert KEY[:12].encode() not in blob  # compressed: a plain byte search misses it
    (tmp_path / "trace-1.log.gz").write_bytes(gzip.compress(f"Authorization: Bearer {KEY}".encode()))
    (tmp_path / "cut.txt").write_text(KEY[:16])
    (tmp_path / f"{KEY}.json").write_text("{}")
    found = scan(KEY, tmp_path)
    assert sorted(found.hits) == sorted([f"{tmp_path}/log.eval!samples/1_epoch_1.json", f"{tmp_path}/zstd.eval!samples/2_epoch_1.json",
                                         f"{tmp_path}/trace-1.log.gz!gunzip", f"{tmp_path}/cut.txt",
                                         f"{tmp_path}/{KEY}.json (file name)"]), found.hits
    assert f"{tmp_path}/log.eval!header.json" in found.scanned and not found.unreadable
    for f in ("log.eval", "zstd.eval", "trace-1.log.gz", "cut.txt", f"{KEY}.json"):
        (tmp_path / f).unlink()
    with zipfile.ZipFile(tmp_path / "whole.eval", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("samples/1_epoch_1.json", "x" * 5000)
    (tmp_path / "torn.eval").write_bytes((tmp_path / "whole.eval").read_bytes()[:60])
    found = scan(KEY, tmp_path)
    assert not found.hits and found.unreadable == [f"{tmp_path}/torn.eval"] and not found.clean


@pytest.mark.slow
def test_rerun_reuses_the_job_and_calls_nothing(distill_run, standin):
    run_dir, _, args, env, _ = distill_run
    before = len(standin.requests)
    p = harness(args, env)
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["model_calls"] == {"teacher": 0, "baseline": 0, "student": 0}
    paths = [r["path"] for r in standin.requests[before:]]
    assert set(paths) == {"/v1/models"}  # preflight only: no upload, no job, no generation


# ------------------------------------------------------------------------- fine-tune backend


def write_train(path: Path, n: int = 12, **override) -> Path:
    rows = [{"messages": [{"role": "system", "content": "Answer in one sentence."},
                          {"role": "user", "content": f"What is the capital of island {i}?"},
                          {"role": "assistant", "content": f"The capital of island {i} is Town{i}."}]} for i in range(n)]
    lines = [json.dumps(r) for r in rows]
    for i, line in override.items():
        lines[int(i.removeprefix("line"))] = line
    path.write_text("\n".join(lines) + "\n")
    return path


def ft_cfg(**kw) -> FinetuneConfig:
    return FinetuneConfig(method="openai", epochs=2, batch_size=4, confirm=kw.pop("confirm", True),
                          openai=OpenAIFinetuneConfig(suffix="t", poll_seconds=0.1, max_poll_seconds=0.2, **kw))


@pytest.mark.parametrize("line, expect", [
    ("{not json", ":2: not valid JSON"),
    (json.dumps({"prompt": "x", "completion": "y"}), ':2: no "messages" list'),
    (json.dumps({"messages": [{"role": "narrator", "content": "x"}]}), ":2: message 0 has role 'narrator'"),
    (json.dumps({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}),
     ":2: message 0 (user) has empty content"),
    (json.dumps({"messages": [{"role": "user", "content": "q"}]}), ":2: no assistant message"),
    (json.dumps({"messages": [{"role": "user", "content": "q", "mood": "x"}, {"role": "assistant", "content": "a"}]}),
     "unknown key(s) ['mood']"),
])
def test_training_file_validation_names_file_and_line(tmp_path, line, expect):
    f = write_train(tmp_path / "train.jsonl", line1=line)
    with pytest.raises(HarnessError) as e:
        validate_training_file(f)
    assert str(f) in str(e.value) and expect in str(e.value)


def test_training_file_needs_ten_examples_and_counts_tokens(tmp_path):
    with pytest.raises(HarnessError, match="9 training examples; OpenAI fine-tuning needs at least 10"):
        validate_training_file(write_train(tmp_path / "a.jsonl", 9))
    stats = validate_training_file(write_train(tmp_path / "b.jsonl", 10))
    assert stats.n_examples == 10 and all(20 < n < 60 for n in stats.tokens)


@pytest.mark.slow
def test_cost_gate_uploads_nothing_without_confirm(standin, tmp_path, capsys):
    client = __import__("openai").OpenAI(base_url=standin.url, api_key=KEY)
    before = len(standin.requests)
    with pytest.raises(HarnessError, match=r"finetune.confirm: .*~\$0\.00.*pass finetune.confirm=true"):
        train_openai(client, "gpt-4o-mini-2024-07-18", write_train(tmp_path / "t.jsonl"), ft_cfg(confirm=False),
                     tmp_path / "job.json", {})
    assert len(standin.requests) == before and not (tmp_path / "job.json").exists()
    assert "billed training tokens on gpt-4o-mini-2024-07-18: ~$" in capsys.readouterr().out


@pytest.mark.slow
def test_crash_after_job_creation_reattaches_instead_of_paying_twice(standin, tmp_path):
    client = __import__("openai").OpenAI(base_url=standin.url, api_key=KEY)
    train, record = write_train(tmp_path / "t.jsonl"), tmp_path / "student" / "openai_job.json"
    jobs_before = len(standin.jobs)

    def crash(msg):
        if "created job" in msg:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train_openai(client, "gpt-4o-mini-2024-07-18", train, ft_cfg(), record, {}, progress=crash)
    assert json.loads(record.read_text())["job_id"]
    out = []
    m = train_openai(client, "gpt-4o-mini-2024-07-18", train, ft_cfg(confirm=False), record, {}, progress=out.append)
    assert len(standin.jobs) == jobs_before + 1  # one job, one bill
    assert any("re-attaching" in x for x in out) and m["fine_tuned_model"].startswith("ft:gpt-4o-mini")
    # other inputs: the old record is kept aside, never re-used
    with pytest.raises(HarnessError, match="finetune.confirm"):
        train_openai(client, "gpt-4o-mini-2024-07-18", train, ft_cfg(confirm=False), record, {"other": 1}, progress=out.append)
    assert list(record.parent.glob("openai_job.superseded-*.json"))


def test_failed_and_cancelled_jobs_are_one_line(tmp_path):
    import openai

    failing = StandIn(api_key=KEY, step_seconds=0.1, fail_jobs="GPU node lost")
    with failing.serve() as url:
        client = openai.OpenAI(base_url=url, api_key=KEY)
        record = tmp_path / "job.json"
        with pytest.raises(HarnessError, match=r"job ftjob-\w+ failed: GPU node lost \[server_error\].*delete"):
            train_openai(client, "gpt-4o-mini-2024-07-18", write_train(tmp_path / "t.jsonl"), ft_cfg(), record, {},
                         progress=lambda s: None)
        assert json.loads(record.read_text())["status"] == "failed"
        # the server's own validation: a base model it cannot fine-tune is a 400 naming the model
        with pytest.raises(openai.BadRequestError, match="not available for fine-tuning"):
            train_openai(client, "gpt-4o", write_train(tmp_path / "u.jsonl"), ft_cfg(), tmp_path / "j2.json", {},
                         progress=lambda s: None)
    slow = StandIn(api_key=KEY, step_seconds=30)
    with slow.serve() as url:
        client = __import__("openai").OpenAI(base_url=url, api_key=KEY)
        job = None

        def cancel_when_created(msg):
            nonlocal job
            if "created job" in msg:
                job = msg.split("created job ")[1].split()[0]
                client.fine_tuning.jobs.cancel(job)

        with pytest.raises(HarnessError, match="was cancelled"):
            train_openai(client, "gpt-4o-mini-2024-07-18", write_train(tmp_path / "v.jsonl"), ft_cfg(),
                         tmp_path / "j3.json", {}, progress=cancel_when_created)


@pytest.mark.slow
def test_inspect_provider_retries_429_with_retry_after(standin):
    """Evaluation goes through inspect's openai provider: a 429 is retried, honouring Retry-After."""
    import asyncio

    from inspect_ai.model import GenerateConfig, get_model

    before = len(standin.requests)
    standin.rate_limit = 1
    model = get_model("openai/gpt-4o-mini-2024-07-18", base_url=standin.url, api_key=KEY, memoize=False,
                      config=GenerateConfig(max_tokens=8, temperature=0, max_retries=3, timeout=120))
    out = asyncio.run(model.generate("What is the capital of France?"))
    assert out.completion and not out.error
    chat = [r for r in standin.requests[before:] if r["path"] == "/v1/chat/completions"]
    assert [r["status"] for r in chat] == [429, 200] and chat[1]["time"] - chat[0]["time"] >= 1.0


# ------------------------------------------------------------------------------------ bad input


def test_missing_key_fails_before_any_work(tmp_path):
    p = harness(["experiment=openai_distill", f"results_dir={tmp_path}/r"], {"OPENAI_API_KEY": None})
    line = one_line_error(p)
    assert p.returncode == 2 and "OPENAI_API_KEY is not set" in line
    assert not (tmp_path / "r").exists()


def test_server_down_is_one_line(tmp_path):
    down = f"http://127.0.0.1:{free_port()}/v1"
    p = harness(["experiment=openai_distill", f"results_dir={tmp_path / 'r'}", f"cache_dir={tmp_path / 'c'}"],
                {"OPENAI_BASE_URL": down, "OPENAI_API_KEY": KEY}, home=tmp_path / "home")
    line = one_line_error(p)
    assert f"cannot reach {down}" in line and "models.teacher" in line
    assert_no_key_on_disk(p, tmp_path)


@pytest.mark.slow
def test_wrong_base_url_is_one_line(standin, tmp_path):
    wrong = standin.url.removesuffix("/v1")  # a live server, but not an OpenAI-compatible endpoint
    p = harness(["experiment=openai_distill", f"results_dir={tmp_path}"], {"OPENAI_BASE_URL": wrong, "OPENAI_API_KEY": KEY})
    line = one_line_error(p)
    assert f"{wrong}/models does not exist (404)" in line and "/v1" in line


@pytest.mark.slow
def test_wrong_key_is_401_without_the_key(standin, tmp_path):
    wrong = "sk-wrong-key-also-secret-987654321"
    p = harness(["experiment=openai_distill", f"results_dir={tmp_path / 'r'}", f"cache_dir={tmp_path / 'c'}"],
                {"OPENAI_BASE_URL": standin.url, "OPENAI_API_KEY": wrong}, home=tmp_path / "home")
    line = one_line_error(p)
    assert "rejected the key in $OPENAI_API_KEY (401)" in line
    assert wrong[-4:] not in line  # not even the server's masked echo
    assert_no_key_on_disk(p, tmp_path, key=wrong)


@pytest.mark.slow
def test_unknown_model_is_one_line(standin, tmp_path):
    p = harness(["experiment=openai_distill", "models.baseline.model=openai/gpt-4o-nano-typo", f"results_dir={tmp_path}"],
                {"OPENAI_BASE_URL": standin.url, "OPENAI_API_KEY": KEY})
    line = one_line_error(p)
    assert "does not serve model 'gpt-4o-nano-typo'" in line and "models.baseline.model" in line


@pytest.mark.slow  # ~25 s: a whole CLI start-up and preflight
def test_an_internal_error_after_the_key_was_used_leaves_no_key_anywhere(standin, tmp_path):
    """The exit-1 path with the key in use: preflight sends it to the server (GET /v1/models per model),
    then the data stage finds a file where its dir goes. The traceback goes to cli.log and, with
    HARNESS_DEBUG=1, to stderr as well: neither, nor any other file, holds the key. (The one-line form
    without HARNESS_DEBUG is test_cli's.)"""
    results = tmp_path / "r"
    run_dir = results / "openai_distill" / "default"
    run_dir.mkdir(parents=True)
    (run_dir / "data").write_text("not a directory")
    before = len(standin.requests)
    p = harness(["experiment=openai_distill", f"results_dir={results}", f"cache_dir={tmp_path / 'c'}"],
                {"OPENAI_BASE_URL": standin.url, "OPENAI_API_KEY": KEY, "HARNESS_DEBUG": "1"}, home=tmp_path / "home")
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 1 and last.startswith("harness: internal error: "), p.stderr[-3000:]
    assert last.endswith(f"(full traceback in {run_dir / 'cli.log'})") and "Traceback (most recent call last)" in p.stderr
    sent = [r["path"] for r in standin.requests[before:] if r["status"] == 200]  # accepted: the key was sent
    assert sent and all(x.startswith("/v1/models") for x in sent), sent
    assert "Traceback (most recent call last)" in (run_dir / "cli.log").read_text()
    found = assert_no_key_on_disk(p, tmp_path)
    assert str(run_dir / "cli.log") in found.scanned


@pytest.mark.slow
def test_too_small_training_file_keeps_finished_stages(standin, tmp_path):
    p = harness(["experiment=openai_distill", "data.n_islands=2", "data.train_per_fact=1", "data.n_control=3",
                 "generate.max_tokens=16", "finetune.confirm=true", f"results_dir={tmp_path}", f"cache_dir={tmp_path}/c"],
                {"OPENAI_BASE_URL": standin.url, "OPENAI_API_KEY": KEY}, home=tmp_path / "home")
    line = one_line_error(p)
    assert "train.jsonl: 8 training examples; OpenAI fine-tuning needs at least 10" in line
    assert_no_key_on_disk(p, tmp_path)
    run_dir = next((tmp_path / "openai_distill").iterdir())
    assert len((run_dir / "data" / "train.jsonl").read_text().splitlines()) == 8  # the paid-for answers are kept
    assert not (run_dir / "student" / "openai_job.json").exists()


@pytest.mark.slow
def test_interactive_yes_then_ctrl_c_offers_to_cancel(upstream, tmp_path):
    """In a terminal: no finetune.confirm, so the harness asks; Ctrl-C while the job runs offers to
    cancel it, and "y" cancels it on the server."""
    import pty
    import select
    import signal
    import time

    slow = StandIn(api_key=KEY, upstream=upstream, step_seconds=600)  # the job stays validating_files
    with slow.serve() as url:
        master, slave = pty.openpty()
        env = {**os.environ, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": KEY, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(REPO), "TERM": "dumb"}
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "experiment=openai_distill", *SMALL,
                                 f"results_dir={tmp_path}", f"cache_dir={tmp_path}/c"],
                                stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True,
                                # Ctrl-C as a terminal delivers it: a suite started in the background by a
                                # non-interactive shell ignores SIGINT, and a child would inherit that
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        os.close(slave)
        seen = ""

        def expect(text, timeout=120):
            nonlocal seen
            deadline = time.monotonic() + timeout
            while text not in seen:
                assert time.monotonic() < deadline and proc.poll() is None, seen[-2000:]
                if select.select([master], [], [], 1)[0]:
                    seen += os.read(master, 65536).decode(errors="replace")

        try:
            expect("Start the job?\r\n[y/N]")
            os.write(master, b"y\n")
            expect(": validating_files")
            proc.send_signal(signal.SIGINT)
            expect("billing otherwise)?\r\n[y/N]")
            os.write(master, b"y\n")
            expect("cancelled job")
            assert proc.wait(timeout=60) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
        (job,) = slow.jobs.values()
        assert job.obj["status"] == "cancelled"
        assert KEY not in seen


@pytest.mark.slow
def test_exhausted_retries_fail_visibly_and_keep_the_answers(standin, tmp_path):
    """A request that keeps failing (500 after every retry) fails the stage in one line; the other
    answers are kept, and the re-run sends only the missing request."""
    args = ["experiment=openai_distill", *SMALL, "eval.max_retries=1", f"results_dir={tmp_path}", f"cache_dir={tmp_path}/c"]
    env = {"OPENAI_BASE_URL": standin.url, "OPENAI_API_KEY": KEY}
    standin.fail_chat = "capital of Veidubrouth"
    try:
        before = len(standin.requests)
        p = harness(args, env, home=tmp_path / "home")
    finally:
        standin.fail_chat = None
    # a failed stage with the key in use: nothing it kept (run dir, cli.log, the journal in the cache) holds it
    assert_no_key_on_disk(p, tmp_path)
    line = one_line_error(p)
    assert "generate: 1 of 12 teacher requests failed after 1 retries" in line and "answered 500" in line
    assert "11 answers are kept" in line
    failed = [r for r in standin.requests[before:] if r["status"] == 500]
    assert [r["retry"] for r in failed] == [0, 1]  # bounded: the first try and one retry
    (partial,) = (tmp_path / "c" / "generate").glob("*/answers.partial.jsonl")
    assert len(partial.read_text().splitlines()) == 11
    before = len(standin.requests)
    p = harness(args, env, home=tmp_path / "home")  # no finetune.confirm: stops at the cost gate, after generate
    assert "finetune.confirm" in one_line_error(p)
    assert_no_key_on_disk(p, tmp_path)
    assert len([r for r in standin.requests[before:] if r["path"] == "/v1/chat/completions"]) == 1
    run_dir = next((tmp_path / "openai_distill").iterdir())
    assert len((run_dir / "data" / "train.jsonl").read_text().splitlines()) == 12
    assert not partial.exists()  # the entry is complete


@pytest.mark.slow
def test_report_rebuilds_from_an_openai_run(distill_run, tmp_path):
    run_dir = distill_run[0]
    p = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(run_dir), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr[-2000:]
    rebuilt = json.loads((tmp_path / "summary.json").read_text())
    assert rebuilt["scores"] == json.loads((run_dir / "summary.json").read_text())["scores"]
    assert "ft:gpt-4o-mini-2024-07-18:standin:veshari:" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("overrides, env, expect", [
    (["model@models.baseline=openai_compatible"], {}, "models.baseline: environment variable LOCAL_API_KEY is not set"),
    (["model@models.baseline=openai_compatible", "models.baseline.api_key_env=MY_KEY"], {"MY_KEY": None},
     "environment variable MY_KEY is not set"),
    (["model@models.baseline=openai_compatible", "models.baseline.base_url=null"], {"LOCAL_API_KEY": "x"},
     "models.baseline.base_url: not set"),
    (["models.baseline.serve=embedded:smollm2-135m-instruct"], {}, "serve/base_url/api_key_env need an OpenAI-compatible"),
    (["model@models.teacher=smollm2_server", "models.teacher.serve=/no/such.gguf"], {}, "models.teacher.serve: no such GGUF"),
    (["finetune=openai"], {}, "finetune=openai fine-tunes a hosted model"),
    (["model@models.student=gpt-4o-mini"], {"OPENAI_API_KEY": "x"}, "finetune.method=lora trains local weights"),
    (["experiment=openai_distill", "finetune.epochs=2.5"], {"OPENAI_API_KEY": "x"}, "finetune.epochs: 2.5"),
    (["+grader@graders.judge=judge", "model@graders.judge.judge=smollm2_server"], {}, "graders.judge.judge.serve"),
])
def test_endpoint_config_is_checked_before_any_work(monkeypatch, overrides, env, expect):
    from harness.cli import compose
    from harness.preflight import validate
    from tests.test_config import _plain

    monkeypatch.delenv("LOCAL_API_KEY", raising=False)
    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    cfg = _plain(compose(["experiment=tiny", *overrides] if not overrides[0].startswith("experiment=") else overrides))
    with pytest.raises(HarnessError) as e:
        validate(cfg)
    assert expect in str(e.value) and "\n" not in str(e.value)
