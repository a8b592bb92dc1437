"""How long the pre-flight takes to refuse bad input, against the CLI's own start-up.

The speed targets that used to sit inside tests/test_hardening.py as upper time bounds (which flake
on a busy machine) live here: a 10 MB question in a data file (refused on data.max_chars, the file
read once) and a model_path whose weights file is truncated (refused from config.json and the
safetensors header, no weights loaded) must cost about what a `harness run` that does nothing costs.

Baseline, measured in the same run: `harness run --cfg job experiment=tiny` (start-up, imports,
Hydra composition). Each arm alternates with the baseline, best of `--reps` (default 3), fresh dirs.

Run: .venv/bin/python bench/preflight.py [--reps 3]
Prints each arm's best wall time. Last line: one JSON object with `ratio` = the slower refusal /
the baseline. Target: at most 5 (a refusal is a start-up plus the checks, not a stage; the old test
bounds, 120 s and 60 s, were about 15-35 x the baseline). Measured at load 9 on 2 cores, one rep:
baseline 3.5 s, 10 MB question 10.4 s, truncated weights 8.3 s: ratio 2.98.
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


def cli(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HARNESS_CACHE": str(cwd / "cache")}
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)
    return time.perf_counter() - t, p


def arms(root: Path) -> dict[str, tuple[list[str], int]]:
    """name -> (harness arguments, the exit code it must give)."""
    train, ev = root / "train.jsonl", root / "eval.jsonl"
    train.write_text(json.dumps({"question": "What is the capital of France?"}) + "\n")
    ev.write_text(json.dumps({"question": "What is 2+2?", "answer": "4"}) + "\n" + json.dumps({"question": "x" * 10_000_000, "answer": "y"}) + "\n")
    model = root / "truncated"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    (model / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 100)
    results = f"results_dir={root / 'results'}"
    return {
        "baseline: run --cfg job": (["run", "--cfg", "job", "experiment=tiny", results], 0),
        "10 MB question": (["run", "experiment=tiny", "data=jsonl", f"data.train_path={train}", f"data.eval_path={ev}", results], 2),
        "truncated weights": (["run", "experiment=tiny", f"models.baseline.args.model_path={model}", results], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cases = arms(root)
        best = {name: float("inf") for name in cases}
        for _ in range(a.reps):
            for name, (args, code) in cases.items():  # alternating: a load change hits every arm alike
                wall, p = cli(*args, cwd=root)
                if p.returncode != code:
                    sys.exit(f"{name}: exit {p.returncode}, expected {code}: {p.stderr.strip()[-2000:]}")
                best[name] = min(best[name], wall)
    base = best.pop("baseline: run --cfg job")
    print(f"baseline (run --cfg job): {base:.1f} s")
    for name, wall in best.items():
        print(f"{name}: refused in {wall:.1f} s ({wall / base:.2f} x the baseline)")
    print(json.dumps({"bench": "preflight", "baseline_s": round(base, 2), **{k: round(v, 2) for k, v in best.items()},
                      "ratio": round(max(best.values()) / base, 3), "load": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
