"""Cold vs warm run of `harness run experiment=demo` (or `experiment=tiny`): a warm re-run re-uses every stage.

Cold = a fresh results dir, a fresh stage cache and a fresh per-user cache (in a temp dir), so data
(embeddings included), generate, fine-tune and evaluate all run. One thing is NOT cold: the embedded
model's one-time GGUF -> transformers conversion (~70 s, not a pipeline stage) -- the fresh per-user
cache's `models` is a symlink to the existing converted copy (harness.cache.user_cache_dir()/models:
$HARNESS_MODEL_CACHE, else ~/.cache/harness; converted first if missing), so the figures compare stage
work, not model conversion. Warm = the same command again.

Run: .venv/bin/python bench/warm_rerun.py [overrides ...]      (default: experiment=demo, ~9 min cold on
                                                                2 cores; LLM + pairwise judge)
     .venv/bin/python bench/warm_rerun.py experiment=tiny      (1 min cold: a warm run's fixed ~6 s of
                                                                start-up is ~10 % of it)
Last line: one JSON object with cold_s, warm_s, ratio (= warm_s / cold_s), warm_model_calls, and the
same in CPU seconds of the harness processes (cold_cpu_s, warm_cpu_s, cpu_ratio): on a shared machine
the wall-clock figures depend on what else runs (loadavg_1m says how busy it was). Also:
same_results (the warm summary.json equals the cold one except the per-invocation stage_seconds,
model_calls and stage_calls), warm_weights_loaded (did the warm run load a graded model or the
judge -- transformers' "Loading weights" line, printed for each model inspect's hf provider loads) and
warm_judge_opened (the harness's own "[judge] <model>: loaded" or "...: checked, it answers" line).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    overrides = sys.argv[1:] or ["experiment=demo"]
    sys.path.insert(0, str(REPO))
    from harness.cache import user_cache_dir

    models = user_cache_dir() / "models"
    with tempfile.TemporaryDirectory(prefix="warm-rerun-") as tmp:
        cache, user, results = Path(tmp) / "cache", Path(tmp) / "user-cache", Path(tmp) / "results"
        cache.mkdir()
        user.mkdir()
        models.mkdir(parents=True, exist_ok=True)
        (user / "models").symlink_to(models.resolve(), target_is_directory=True)
        # HF_HUB_DISABLE_PROGRESS_BARS=0: the Hugging Face bars (off in a run by default) show each model load
        env = {**os.environ, "HARNESS_CACHE": str(cache), "HARNESS_MODEL_CACHE": str(user), "PYTHONPATH": str(REPO),
               "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "0"}
        cmd = [sys.executable, "-m", "harness.cli", "run", *overrides, f"results_dir={results}"]

        cold_summary: list[dict] = []

        def timed() -> tuple[float, float, subprocess.CompletedProcess]:
            """(wall seconds, CPU seconds of the child, the process): on a shared machine the CPU
            time is the figure that does not depend on what else is running."""
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
            if not cold_summary:
                cold_summary.extend(json.loads(f.read_text()) for f in results.glob("*/*/summary.json"))
            return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p

        (cold, cold_cpu, _), (warm, warm_cpu, p) = timed(), timed()
        (summary,) = results.glob("*/*/summary.json")
        s = json.loads(summary.read_text())
        per_run = ("stage_seconds", "model_calls", "stage_calls")
        same = {k: v for k, v in s.items() if k not in per_run} == {k: v for k, v in cold_summary[0].items() if k not in per_run}
        print(f"cold {cold:.1f} s ({cold_cpu:.1f} s CPU), warm {warm:.1f} s ({warm_cpu:.1f} s CPU); "
              f"warm stage seconds {s['stage_seconds']}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
        print(json.dumps({"cold_s": round(cold, 2), "warm_s": round(warm, 2), "ratio": round(warm / cold, 4),
                          "warm_model_calls": sum(s["model_calls"].values()),
                          "cold_cpu_s": round(cold_cpu, 2), "warm_cpu_s": round(warm_cpu, 2), "cpu_ratio": round(warm_cpu / cold_cpu, 4),
                          "warm_stage_seconds": s["stage_seconds"], "same_results": same,
                          "warm_weights_loaded": "Loading weights" in p.stderr,
                          "warm_judge_opened": bool(re.search(r"^\[judge\] \S+: (loaded|checked, it answers)$", p.stdout, re.M)),
                          "experiment": s["experiment"], "loadavg_1m": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
