"""The usage journal: one record per model call (tokens in and out, latency), written where a
stage calls a model outside inspect's logs (the teacher's answers: `data/usage.jsonl`) and read back
by the report. A ground floor, so that generate writes and report reads the same format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# one model call: input tokens, output tokens, latency in seconds
Call = tuple[int, int, float]


def call_record(output: Any) -> dict[str, Any]:
    """An inspect ModelOutput -> the record kept per call."""
    u = output.usage
    return {"input_tokens": int(u.input_tokens) if u else 0, "output_tokens": int(u.output_tokens) if u else 0,
            "latency_s": round(float(output.time or 0.0), 4)}


def calls_from_jsonl(path: Path) -> list[Call]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["input_tokens"], r["output_tokens"], r["latency_s"]) for r in rows]
