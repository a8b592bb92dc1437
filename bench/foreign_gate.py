"""The gate over two foreign inspect logs of 10,000 samples each, against reading them.

Two logs in inspect's own format, written with inspect's own API: a real `inspect eval` of
tests/foreign_task.py@capitals (the embedded model, 8 items) is the template; its samples are
replicated to --samples items with their events, messages and scores (`includes`: C/I, `overlap`:
numeric, `shape`: a dict of a C/I letter and a boolean), the candidate's answers flipping on a seeded
5 % of the items, and written with `write_eval_log`. Then, alternating, best of --reps:

- gate: what `harness regress --baseline a.eval --candidate b.eval` does in-process (read both logs
  through harness.sources into the tidy frame, pair, gate every cell, write regress.json / regress.md);
- baseline: inspect's own `read_eval_log` of the same two logs (what any reader of them pays);
- eee: the same gate over the two logs written as Every Eval Ever files (`harness export`: an
  aggregate JSON and a per-sample JSONL each; written once, before the clocks), read through
  harness.sources' EEE reader.

Imports are loaded before either clock. Run: .venv/bin/python bench/foreign_gate.py [--samples 10000]
Last line: one JSON object, ratio = gate seconds / read_eval_log seconds and eee_ratio = EEE gate
seconds / read_eval_log seconds (goal <= 1.5 for both).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def template(tmp: Path):
    from inspect_ai.log import read_eval_log

    from harness.models import embedded_path

    model = embedded_path("smollm2-135m-instruct", os.environ.get("HARNESS_CACHE", REPO / ".cache" / "harness"))
    subprocess.run([str(Path(sys.executable).with_name("inspect")), "eval", "tests/foreign_task.py@capitals", "--model", "hf/local",
                    "-M", f"model_path={model}", "-M", "do_sample=false", "-M", "device=cpu", "--max-tokens", "8",
                    "--log-dir", str(tmp / "template"), "--display", "none"], check=True, cwd=REPO, capture_output=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    (f,) = (tmp / "template").glob("*.eval")
    return read_eval_log(str(f))


def write(log, n: int, path: Path, flip: set[int]) -> None:
    """`log` with n samples: copies of its samples under new ids, scores drawn per item."""
    from inspect_ai.log import write_eval_log
    from inspect_ai.scorer import Score

    rng = random.Random(0)  # the same "truth" for both logs; the candidate differs on `flip`
    tmpl = log.samples
    samples = []
    for k in range(n):
        s = tmpl[k % len(tmpl)]
        right = rng.random() < 0.7
        if k in flip:
            right = not right
        overlap = round(rng.random(), 3) if not right else 1.0
        samples.append(s.model_copy(update={
            "id": f"item-{k:05d}",
            "scores": {"includes": Score(value="C" if right else "I", answer=s.output.completion),
                       "overlap": Score(value=overlap),
                       "shape": Score(value={"starts": "C" if right else "I", "short": bool(k % 3)})},
        }))
    out = log.model_copy(update={"samples": samples})
    out.eval.dataset.samples = n
    write_eval_log(out, str(path))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()

    from inspect_ai.log import read_eval_log

    from harness.config import RegressConfig
    from harness.regress import gate, parse_ref, write_gate

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log = template(tmp)
        flip = set(random.Random(1).sample(range(a.samples), a.samples // 20))
        base, cand = tmp / "base.eval", tmp / "cand.eval"
        write(log, a.samples, base, set())
        write(log, a.samples, cand, flip)
        mb = (base.stat().st_size + cand.stat().st_size) / 2**20
        settings = RegressConfig(enabled=True, margin=0.05)
        from harness.cli._export import export

        eee = [next(f for f in export(log_file, None, tmp / f"eee_{log_file.stem}") if f.suffix == ".json") for log_file in (base, cand)]
        eee_mb = sum(f.stat().st_size + f.with_name(f.stem + "_samples.jsonl").stat().st_size for f in eee) / 2 / 2**20

        def run_gate() -> dict:
            result = gate(parse_ref(str(base), "current", "--baseline"), parse_ref(str(cand), "candidate", "--candidate"), settings)
            write_gate(result, tmp / "out")
            return result

        def run_eee_gate() -> dict:
            result = gate(parse_ref(str(eee[0]), "current", "--baseline"), parse_ref(str(eee[1]), "candidate", "--candidate"), settings)
            write_gate(result, tmp / "out_eee")
            return result

        def read_both() -> None:
            for f in (base, cand):
                assert len(read_eval_log(str(f)).samples) == a.samples

        gate_s, read_s, eee_s, result, eee_result = [], [], [], None, None
        for _ in range(a.reps):  # alternating arms: a busy machine's load falls on all three
            t0 = time.perf_counter()
            read_both()
            read_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = run_gate()
            gate_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            eee_result = run_eee_gate()
            eee_s.append(time.perf_counter() - t0)
        assert result is not None and eee_result is not None
        same = [(c["n"], c["diff"], c["lower"], c["upper"]) for c in result["cells"]] == \
            [(c["n"], c["diff"], c["lower"], c["upper"]) for c in eee_result["cells"]]
        g, r, e = min(gate_s), min(read_s), min(eee_s)
        cells = {f"{c['task']} · {c['grader']}": (c["verdict"], c["n"], c["diff"]) for c in result["cells"]}

        def all_(xs: list[float]) -> str:
            return ", ".join(f"{x:.2f}" for x in xs)

        print(f"2 logs x {a.samples} samples ({mb:.1f} MB; as EEE {eee_mb:.1f} MB): gate {g:.2f} s (all: {all_(gate_s)}), "
              f"EEE gate {e:.2f} s (all: {all_(eee_s)}), read_eval_log {r:.2f} s (all: {all_(read_s)}); verdict {result['verdict']}, "
              f"cells {cells}; EEE cells identical: {same}")
        print(json.dumps({"samples": a.samples, "log_mb": round(mb, 1), "eee_mb": round(eee_mb, 1), "gate_seconds": round(g, 3),
                          "eee_gate_seconds": round(e, 3), "read_eval_log_seconds": round(r, 3), "verdict": result["verdict"],
                          "eee_same_cells": same, "ratio": round(g / r, 3), "eee_ratio": round(e / r, 3)}))


if __name__ == "__main__":
    main()
