"""The tiny experiment through a fault-injecting proxy vs the same run without faults.

Every model (teacher, baseline, student; finetune=none) is the embedded GGUF behind one real
llama.cpp server on 127.0.0.1, reached through tests/fault_proxy.py: first with no faults (the
baseline, measured in the same invocation), then with a share of the chat requests (default 20 %)
answered 429 + Retry-After, 500, 503, dropped, or stalled past eval.timeout (each kind at least
once: tests/test_faults.py's EVERY_KIND schedule comes first). Both runs use fresh results and cache
dirs.

Run: .venv/bin/python bench/faults.py [--share 0.2] [--seed 1] [--retry-after 1] [--stall 12]
Prints the faults injected (by kind), the retries the harness counted (summary.json `usage`) and the
failed attempts the proxy saw, each run's wall time, and whether the results were identical (scores,
training file, and per model and stage the calls and tokens). Last line: one JSON object with
`ratio` = faulty wall time / clean wall time (the extra time the faults cost; about 1.0 would mean
free, which retries with backoff cannot be).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.models import embedded_gguf, llama_server  # noqa: E402
from tests.fault_proxy import FaultProxy  # noqa: E402
from tests.test_faults import EVERY_KIND, served_args  # noqa: E402


def run(proxy_url: str, out: Path, key: str) -> tuple[float, Path]:
    env = {**os.environ, "FAULTS_API_KEY": key, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "harness.cli", "run", *served_args(proxy_url, out)], capture_output=True,
                       text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"harness run failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    (run_dir,) = (out / "results" / "tiny").iterdir()
    return wall, run_dir


def accounting(s: dict) -> dict:
    return {f"{stage}/{alias}": (u["calls"], u["input_tokens"], u["output_tokens"])
            for stage, per in s["usage_by_stage"].items() for alias, u in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--stall", type=float, default=12.0, help="seconds a stalled request hangs (eval.timeout is 8)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="faults-") as tmp:
        tmp_path = Path(tmp)
        with llama_server(embedded_gguf("smollm2-135m-instruct"), tmp_path / "llama.log", model="smollm2") as up:
            with FaultProxy(up.base_url, share=0.0) as proxy:
                clean_s, clean = run(proxy.base_url, tmp_path / "clean", up.api_key)
            print(f"clean:  {clean_s:.1f} s", flush=True)
            with FaultProxy(up.base_url, share=a.share, seed=a.seed, retry_after=a.retry_after, stall_seconds=a.stall,
                            schedule=EVERY_KIND if a.share else None) as proxy:
                faulty_s, faulty = run(proxy.base_url, tmp_path / "faulty", up.api_key)
                injected = proxy.injected()
        sc, sf = (json.loads((d / "summary.json").read_text()) for d in (clean, faulty))
        retries = sum(u.get("retries", 0) for u in sf["usage"].values())
        same = {
            "scores": sc["scores"] == sf["scores"],
            "train_file": (clean / "data" / "train.jsonl").read_bytes() == (faulty / "data" / "train.jsonl").read_bytes(),
            "calls_and_tokens": accounting(sc) == accounting(sf),
        }
    print(f"faulty: {faulty_s:.1f} s at {a.share:.0%} faults")
    print(f"faults injected: {sum(injected.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(injected.items()))})")
    print(f"retries counted by the harness (summary.json usage): {retries}")
    print(f"identical: {same}")
    print(json.dumps({"share": a.share, "faults_injected": sum(injected.values()), "faults_by_kind": injected,
                      "retries": retries, "clean_s": round(clean_s, 1), "faulty_s": round(faulty_s, 1),
                      "ratio": round(faulty_s / clean_s, 3), "identical": all(same.values()), **same}))


if __name__ == "__main__":
    main()
