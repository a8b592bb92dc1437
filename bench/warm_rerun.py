"""Cold vs warm run of `harness run experiment=tiny`: a warm re-run re-uses every stage.

Cold = a fresh results dir and a fresh cache dir (in a temp dir), so data, generate, fine-tune and
evaluate all run. One thing is NOT cold: the embedded model's one-time GGUF -> transformers
conversion (~70 s, not a pipeline stage) -- `<cache>/models` is a symlink to an existing converted
copy (`$HARNESS_CACHE/models`, default .cache/harness/models; converted first if missing), so the
figures compare stage work, not model conversion. Warm = the same command again.

Run: .venv/bin/python bench/warm_rerun.py [overrides ...]
Last line: one JSON object with cold_s, warm_s, ratio (= warm_s / cold_s) and warm_model_calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    overrides = sys.argv[1:] or ["experiment=tiny"]
    models = Path(os.environ.get("HARNESS_CACHE", REPO / ".cache" / "harness")) / "models"
    with tempfile.TemporaryDirectory(prefix="warm-rerun-") as tmp:
        cache, results = Path(tmp) / "cache", Path(tmp) / "results"
        cache.mkdir()
        models.mkdir(parents=True, exist_ok=True)
        (cache / "models").symlink_to(models.resolve(), target_is_directory=True)
        env = {**os.environ, "HARNESS_CACHE": str(cache), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "harness.cli", "run", *overrides, f"results_dir={results}"]

        def timed() -> float:
            t = time.perf_counter()
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
            return time.perf_counter() - t

        cold = timed()
        warm = timed()
        (summary,) = results.glob("*/*/summary.json")
        s = json.loads(summary.read_text())
        print(f"cold {cold:.1f} s, warm {warm:.1f} s; warm stage seconds {s['stage_seconds']}", file=sys.stderr)
        print(json.dumps({"cold_s": round(cold, 2), "warm_s": round(warm, 2), "ratio": round(warm / cold, 4),
                          "warm_model_calls": sum(s["model_calls"].values()), "warm_stage_seconds": s["stage_seconds"],
                          "usage": s.get("usage"), "run_dir": str(summary.parent)}))


if __name__ == "__main__":
    main()
