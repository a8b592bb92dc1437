"""Screenshot a page (a run's report.html, or a page of the built site) with headless Chromium.

    python docs/scripts/screenshot.py results/demo/default/report.html docs/assets/demo-report.png
    python docs/scripts/screenshot.py site/index.html /tmp/site-index.png --width 1280 --height 900

The README's picture (docs/assets/demo-report.png) is made this way from a real `harness run
experiment=demo` run dir, not drawn by hand. Chromium is Debian's `chromium` (CI installs it for the
report-rendering test, tests/test_e2e.py); the flags are the same as there: no network, no profile.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 1400) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("screenshot: chromium not found (apt-get install chromium)")
    if not page.is_file():
        sys.exit(f"screenshot: {page}: no such file")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                            f"--screenshot={out.resolve()}", page.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not out.is_file():
        sys.exit(f"screenshot: chromium failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path, help="an HTML file: a run's report.html or a page of the built site")
    ap.add_argument("out", type=Path, help="the PNG to write")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1400)
    a = ap.parse_args()
    print(screenshot(a.page, a.out, a.width, a.height))


if __name__ == "__main__":
    main()
