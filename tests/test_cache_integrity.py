"""A cache entry is never trusted blindly, and the cache's writes are whole or absent.

- A truncated safetensors / JSONL file in a cache entry is detected on read, said in one line, and
  the entry is built again (here: the generate stage's entry, built by a real HTTP teacher, the
  OpenAI stand-in on 127.0.0.1).
- Under a small file-size limit (`ulimit -f`, in a subprocess), write_text/write_json and
  atomic_dir fail with one clear error: earlier entries intact, no temp or half-written file left.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cache import problem, trusted, user_cache_dir
from tests.openai_standin import StandIn
from tests.test_openai import KEY

REPO = Path(__file__).resolve().parents[1]


def safetensors_file(path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.arange(4096, dtype=torch.float32), "b": torch.zeros(16)}, str(path))
    return path


def test_problem_names_truncated_safetensors_jsonl_json(tmp_path, capsys):
    entry = tmp_path / "finetune" / "abc"
    entry.mkdir(parents=True)
    st = safetensors_file(entry / "adapter_model.safetensors")
    (entry / "metrics.json").write_text('{"loss": 1.0}\n')
    (entry / "rows.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    assert problem(entry) is None
    data = st.read_bytes()
    st.write_bytes(data[:-100])
    assert problem(entry) == (f"abc/adapter_model.safetensors: {len(data) - 100} bytes, but its header describes "
                              f"{len(data)} (truncated?)")
    st.write_bytes(data[:5])
    assert "shorter than a safetensors header" in problem(entry)
    st.write_bytes(data)
    (entry / "rows.jsonl").write_text('{"a": 1}\n{"a": ')
    assert problem(entry) == "abc/rows.jsonl: its last line is cut off (no newline at the end)"
    (entry / "rows.jsonl").write_text('{"a": 1}\n{"a": \n')
    assert problem(entry) == "abc/rows.jsonl: line 2 is not valid JSON"
    (entry / "rows.jsonl").write_bytes(b'{"a": "\xff"}\n')
    assert "rows.jsonl: unreadable (UnicodeDecodeError" in problem(entry)
    (entry / "rows.jsonl").write_text('{"a": 1}\n')
    (entry / "metrics.json").write_text('{"loss": ')
    assert "metrics.json: unreadable (JSONDecodeError" in problem(entry)
    # trusted(): said in one line, the entry removed (so it is built again), never used
    assert not trusted(entry, "finetune")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"[cache] finetune: corrupt entry {entry} (abc/metrics.json: unreadable")
    assert not entry.exists() and not list(entry.parent.iterdir())


def test_npy_truncated(tmp_path):
    import numpy as np

    np.save(tmp_path / "vectors.npy", np.ones((50, 8), dtype=np.float32))
    assert problem(tmp_path / "vectors.npy") is None
    data = (tmp_path / "vectors.npy").read_bytes()
    (tmp_path / "vectors.npy").write_bytes(data[:-4])
    assert problem(tmp_path / "vectors.npy").startswith("vectors.npy: unreadable (ValueError")


def test_corrupt_generate_entry_is_rebuilt(tmp_path, monkeypatch, capsys):
    """The generate stage's cached answers, truncated on disk: the next run says so in one line,
    asks the teacher again and writes a whole entry."""
    from harness.config import GenerateConfig, ModelConfig
    from harness.data import TrainQuestion
    from harness.generate import GenerateInput, run_generate
    from harness.models import Endpoints

    questions = [TrainQuestion(f"q{i}", f"What is the capital of island {i}?", f"Island {i}'s capital is Town{i}.",
                               f"Town{i}", "g") for i in range(6)]
    standin = StandIn(api_key=KEY)
    with standin.serve() as url:
        monkeypatch.setenv("STANDIN_KEY", KEY)
        teacher = ModelConfig(model="openai/gpt-4o-mini-2024-07-18", base_url=url, api_key_env="STANDIN_KEY")
        cfg = GenerateConfig(prompt="{passage}\n{question}", max_tokens=8, batch_size=2)

        def run(out: str):
            with Endpoints({"teacher": teacher}, tmp_path / "servers") as ep:
                return run_generate(GenerateInput(questions, teacher, {}, cfg, "{question}", None, "data-key", tmp_path / "cache",
                                                  tmp_path / out, endpoints=ep))

        def chats() -> int:
            return sum(r["path"] == "/v1/chat/completions" for r in standin.requests)

        first = run("a")
        assert first.calls == 6 and chats() == 6
        entry = tmp_path / "cache" / "generate" / first.key
        assert run("b").calls == 0 and chats() == 6  # a sound entry is used
        capsys.readouterr()
        train = entry / "train.jsonl"
        whole = train.read_bytes()
        n = 12
        for cut, why in ((whole.index(b"\n") + 5, "train.jsonl: "), (whole.index(b"\n") + 1, "train.jsonl: ")):
            train.write_bytes(whole[:cut])  # mid-line, then at a line boundary (valid JSONL, fewer rows)
            again = run("c")
            out = [x for x in capsys.readouterr().out.splitlines() if "[cache]" in x]
            assert len(out) == 1 and f"[cache] generate: corrupt entry {entry}" in out[0] and why in out[0], out
            assert again.calls == 6 and chats() == n  # built again, not trusted
            assert train.read_bytes() == whole and (tmp_path / "c" / "train.jsonl").read_bytes() == whole
            assert again.key == first.key and problem(entry) is None
            n += 6


LIMITED = r"""
import os, resource, sys
from pathlib import Path
from harness.cache import atomic_dir, write_json, write_text
from harness.errors import HarnessError
root = Path(sys.argv[1])
write_json(root / "cache" / "early.json", {"ok": True})        # fits
write_text(root / "out" / "report.md", "first version\n")      # fits
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))  # ulimit -f 64 (KiB)
errors = []
try:
    write_text(root / "out" / "report.md", "x" * (256 * 1024))  # does not fit: the old file must stay
except HarnessError as e:
    errors.append(str(e))
try:
    with atomic_dir(root / "cache" / "stage" / "key") as tmp:
        (tmp / "small.json").write_text("{}")
        with open(tmp / "weights.bin", "wb") as f:
            f.write(b"\0" * (256 * 1024))
except HarnessError as e:
    errors.append(str(e))
print("\n".join(errors))
"""


def test_writes_under_a_file_size_limit_leave_no_partial_file(tmp_path):
    p = subprocess.run([sys.executable, "-c", LIMITED, str(tmp_path)], capture_output=True, text=True, timeout=120,
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    errors = p.stdout.strip().splitlines()
    assert errors == [
        f"cannot write {tmp_path / 'out' / 'report.md'}: File too large; free space (or raise the limit) there and re-run "
        "the same command: finished stages are kept",
        f"cannot write {tmp_path / 'cache' / 'stage' / 'key'}: File too large; free space (or raise the limit) there and "
        "re-run the same command: finished stages are kept",
    ]
    # earlier outputs intact; nothing half-written, no temp file or dir left behind
    assert json.loads((tmp_path / "cache" / "early.json").read_text()) == {"ok": True}
    assert (tmp_path / "out" / "report.md").read_text() == "first version\n"
    left = sorted(str(x.relative_to(tmp_path)) for x in tmp_path.rglob("*"))
    assert left == ["cache", "cache/early.json", "cache/stage", "out", "out/report.md"], left


@pytest.mark.slow
def test_truncated_embedded_model_is_rebuilt(tmp_path, capsys):
    """The embedded model's converted checkpoint (fp32 safetensors) cut short in the cache: the next
    use says so in one line and converts it again, identical to the original."""
    import hashlib

    from harness.models import embedded_path

    name = "smollm2-135m-instruct"
    shared = embedded_path(name, user_cache_dir())  # converted once for the whole suite
    entry = tmp_path / "models" / shared.name
    shutil.copytree(shared, entry)
    weights = entry / "model.safetensors"
    want = hashlib.sha256(weights.read_bytes()).hexdigest()
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)  # a copy cut short
    capsys.readouterr()
    assert embedded_path(name, tmp_path) == entry
    out = [x for x in capsys.readouterr().out.splitlines() if x.strip()]
    # one line says what was wrong, one that it is converted again
    assert len(out) == 2 and out[0].startswith(f"[cache] embedded model {name}: corrupt entry {entry} "
                                               f"({shared.name}/model.safetensors: ") and "(truncated?)" in out[0], out
    assert out[1].startswith("[model] converting the embedded SmolLM2-135M-Instruct.Q4_1.gguf") and str(entry) in out[1], out
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == want and problem(entry) is None
    assert embedded_path(name, tmp_path) == entry and capsys.readouterr().out == ""  # sound now: used as is


@pytest.mark.slow
def test_the_embedded_conversion_writes_what_transformers_own_path_writes(tmp_path):
    """harness.models convert() reads the GGUF once and builds gguf-py's name map once (_gguf_read_once:
    18 s -> 8 s here). The checkpoint must be the one transformers writes without that: every file
    byte for byte (weights, config, tokenizer)."""
    import hashlib

    from harness.models import embedded_path
    from harness.models._embedded import convert, embedded_gguf

    name = "smollm2-135m-instruct"
    fast = embedded_path(name, user_cache_dir())  # the suite's copy, converted read-once
    convert(embedded_gguf(name), tmp_path, read_once=False)

    def files(d: Path) -> dict[str, str]:
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
                if p.is_file() and not p.name.startswith(".")}

    mine, theirs = files(fast), files(tmp_path)
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(theirs)
    assert mine == theirs
    import gguf  # and the patch is gone after the conversion
    assert gguf.GGUFReader.__name__ == "GGUFReader" and not hasattr(gguf.get_tensor_name_map, "cache_info")


@pytest.mark.slow
def test_truncated_finetune_adapter_is_retrained(tmp_path, capsys):
    """A LoRA fine-tune's cached adapter (safetensors) cut short: the next run says so in one line
    and trains again (the same seed: the same adapter), instead of loading a broken checkpoint."""
    import hashlib

    from harness.config import FinetuneConfig, ModelConfig
    from harness.finetune import run_finetune
    from harness.models import embedded_path

    base = ModelConfig(model="hf/smollm2-135m-instruct", args={"model_path": "embedded:smollm2-135m-instruct"})
    base_path = str(embedded_path("smollm2-135m-instruct", user_cache_dir()))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Capital of island {i}?"},
                                                      {"role": "assistant", "content": f"Town{i}."}]}) + "\n"
                             for i in range(8)))
    cfg = FinetuneConfig(method="lora", max_steps=1, batch_size=4)

    def run():
        return run_finetune(base, base_path, train, cfg, tmp_path / "cache", tmp_path / "out")

    first = run()
    assert not first.cached
    (adapter,) = Path(first.model_path).rglob("*.safetensors")
    want = hashlib.sha256(adapter.read_bytes()).hexdigest()
    assert run().cached  # a sound entry is used
    with open(adapter, "r+b") as f:
        f.truncate(adapter.stat().st_size - 1000)
    capsys.readouterr()
    again = run()
    out = [x for x in capsys.readouterr().out.splitlines() if "[cache]" in x]
    assert len(out) == 1 and out[0].startswith("[cache] finetune: corrupt entry ") and ".safetensors: " in out[0], out
    assert not again.cached and again.key == first.key
    assert hashlib.sha256(adapter.read_bytes()).hexdigest() == want
