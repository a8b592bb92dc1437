"""The embedded model's one-time conversion (GGUF -> fp32 transformers checkpoint), two ways.

Every new machine (and `harness cache prune --stage models`) pays it once, inside the first run. Two
arms, alternating, each converting into a fresh temp dir in this process (imports paid before):
- now: harness.models._embedded.convert as the harness runs it (the GGUF parsed once, gguf-py's
  tensor name map built once: _gguf_read_once);
- transformers: the same calls without that (read_once=False): transformers parses the file three
  times and builds the name map once per submodule.
Both write the same bytes (checked here, and in tests/test_cache_integrity.py).

Run: .venv/bin/python bench/convert.py [--repeats 2]
Last line: one JSON object: `ratio` = best now / best transformers (lower is better), loadavg_1m at
start and end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    import torch  # noqa: F401  (imports outside the timings)
    import transformers  # noqa: F401

    from harness.models._embedded import convert, embedded_gguf

    gguf = embedded_gguf("smollm2-135m-instruct")
    best: dict[str, float] = {"now": float("inf"), "transformers": float("inf")}
    digests: dict[str, set[str]] = {"now": set(), "transformers": set()}
    for _ in range(args.repeats):
        for arm in best:
            with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(io.StringIO()):
                t = time.perf_counter()
                convert(gguf, Path(d), read_once=arm == "now")
                best[arm] = min(best[arm], time.perf_counter() - t)
                digests[arm].add(hashlib.sha256((Path(d) / "model.safetensors").read_bytes()).hexdigest())
            print(f"{arm}: {best[arm]:.2f} s (best so far)", flush=True)
    same = len(digests["now"] | digests["transformers"]) == 1
    print(json.dumps({"ratio": round(best["now"] / best["transformers"], 3), "now_s": round(best["now"], 2),
                      "transformers_s": round(best["transformers"], 2), "same_weights": same, "repeats": args.repeats,
                      "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]}))


if __name__ == "__main__":
    main()
