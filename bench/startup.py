"""What every `harness run` pays before its first stage, phase by phase.

A fresh interpreter per repeat does what `harness run <overrides>` does before the data stage, in
order, timing each step: import harness.cli, Hydra compose (+ the typed config), import the pipeline
(inspect, transformers, torch, pandas ...), the pre-flight (`validate`: it builds the data to check
it), resolving each model (the embedded model's GGUF conversion check: the header of every file of
the converted checkpoint), the data notes (the data again), the judge's model path, and opening the
judge (an `hf/` judge: importing inspect's hf provider and loading the weights).

Two arms, alternating, each in a fresh process (`--repeats` each):
- now: the code as it is;
- naive: the same steps with this process's start-up memos emptied before every call (the
  conversion check of harness.models._embedded, the training-set dedup of harness.data._overlap):
  what every call paid before they existed.
ratio = best total now / best total naive (lower is better). The interpreter's own start
(`python -c pass`) is reported too. `--omp-passive` adds a third arm: the code as it is with
OMP_WAIT_POLICY=PASSIVE (`passive_s`; docs/performance.md: torch's threads on a busy machine).

Bytecode: the imports dominate, and they cost twice as much where nothing writes bytecode (an
environment with PYTHONDONTWRITEBYTECODE and a --no-compile install: every process compiles torch,
transformers and inspect again; the Makefile unexports it). The arms inherit this process's
environment; `bytecode` in the JSON says whether it was written.

Run: .venv/bin/python bench/startup.py [--repeats 3] [experiment=demo ...]
Last line: one JSON object: `ratio`, per-phase best seconds of each arm, loadavg_1m at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter(); T = {}
def mark(k):
    global t0
    t = time.perf_counter(); T[k] = round(t - t0, 3); t0 = t
naive = sys.argv[1] == "naive"
overrides = sys.argv[2:]
import harness.cli
mark("import harness.cli")
from omegaconf import OmegaConf
from harness.cli._config import compose
from harness.config import to_dataclass
plain = OmegaConf.to_container(compose(overrides), resolve=False); plain.pop("hydra", None)
cfg = to_dataclass(OmegaConf.create(plain))
mark("compose")
import harness.pipeline
mark("import pipeline")
import harness.data._overlap as overlap
import harness.models._embedded as embedded
if naive:  # every call pays, as before the memos
    def fresh(f, clear):
        def g(*a, **k):
            clear()
            return f(*a, **k)
        return g
    overlap._near_duplicates = fresh(overlap._near_duplicates, overlap._near_duplicates.cache_clear)
    embedded._sound = fresh(embedded._sound, embedded._SOUND.clear)
from harness.cache import user_cache_dir
from harness.evaluate import open_judge
from harness.models import eval_device_args, resolve_args
from harness.preflight import check_judges, notes, validate
validate(cfg)
mark("validate (pre-flight, data built)")
{a: eval_device_args(m.model, resolve_args(a, m.args, user_cache_dir()), cfg.finetune.device) for a, m in cfg.models.items()}
mark(f"resolve {len(cfg.models)} models (conversion check)")
check_judges(cfg); notes(cfg)
mark("judge checks, data notes (data built)")
jc = next((g.judge for g in cfg.graders.values() if g.kind in ("judge", "pairwise") and g.judge), None)
ja = resolve_args("judge", jc.args, user_cache_dir()) if jc else None
mark("resolve the judge (conversion check)")
open_judge(cfg.graders, ja, cfg.eval, pending=True)
mark("open the judge (hf provider, weights)")
print("PHASES " + json.dumps(T))
"""


def child(arm: str, overrides: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    if arm == "passive":  # the code as it is, torch's OpenMP threads sleeping when idle instead of spinning
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    code = "now" if arm == "passive" else arm
    p = subprocess.run([sys.executable, "-c", CHILD, code, *overrides], capture_output=True, text=True, cwd=REPO, env=env)
    line = next((x for x in p.stdout.splitlines() if x.startswith("PHASES ")), None)
    if p.returncode or line is None:
        sys.exit(f"the {arm} arm failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-800:]}")
    return json.loads(line.removeprefix("PHASES "))


def interpreter() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per arm, alternating (default 3)")
    ap.add_argument("--omp-passive", action="store_true",
                    help="a third arm: the code as it is with OMP_WAIT_POLICY=PASSIVE (see docs/performance.md)")
    ap.add_argument("overrides", nargs="*", default=["experiment=demo"], help="config overrides (default: experiment=demo)")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    bytecode = not (os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.dont_write_bytecode)
    print(f"{' '.join(a.overrides)}: {a.repeats} alternating repeats; load {load0:.1f} on {os.cpu_count()} CPUs; "
          f"bytecode written: {bytecode}", flush=True)
    child("now", a.overrides)  # warm-up, not counted: the page cache, and bytecode where it is written
    runs: dict[str, list[dict[str, float]]] = {"now": [], "naive": [], **({"passive": []} if a.omp_passive else {})}
    python = []
    for r in range(a.repeats):
        python.append(round(interpreter(), 3))
        for arm in runs:
            runs[arm].append(child(arm, a.overrides))
            print(f"repeat {r + 1}: {arm} {sum(runs[arm][-1].values()):.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    best = {arm: min(rs, key=lambda t: sum(t.values())) for arm, rs in runs.items()}
    total = {arm: round(sum(t.values()), 2) for arm, t in best.items()}
    print(f"{'phase':45s} " + " ".join(f"{arm:>8s}" for arm in runs))
    for k in best["now"]:
        print(f"{k:45s} " + " ".join(f"{best[arm][k]:8.2f}" for arm in runs))
    print(f"{'total before the first stage':45s} " + " ".join(f"{total[arm]:8.2f}" for arm in runs) +
          f"   (python -c pass: {min(python):.2f} s)")
    print(json.dumps({"ratio": round(total["now"] / total["naive"], 3), "now_s": total["now"], "naive_s": total["naive"],
                      "now": best["now"], "naive": best["naive"], "totals_now": [round(sum(t.values()), 2) for t in runs["now"]],
                      "totals_naive": [round(sum(t.values()), 2) for t in runs["naive"]], "python_s": min(python),
                      **({"passive_s": total["passive"], "passive": best["passive"]} if a.omp_passive else {}),
                      "bytecode": bytecode, "overrides": a.overrides,
                      "loadavg_1m": [round(load0, 1), round(os.getloadavg()[0], 1)], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
