"""Usage accounting: percentiles, cost from the model config's prices, the report table."""

import json

import pytest

from harness.usage import calls_from_jsonl
from harness.report._usage import prices_from_config, run_usage, summarise, usage_markdown


def test_summarise_counts_tokens_latency_and_cost():
    calls = {"teacher": [(100, 10, 1.0), (200, 20, 2.0), (300, 30, 3.0), (400, 40, 10.0)], "idle": []}
    u = summarise(calls, {"teacher": (2.5, 10.0)})  # USD per 1M tokens in / out
    assert set(u) == {"teacher"}  # an alias with no calls has no row
    t = u["teacher"]
    assert (t["calls"], t["input_tokens"], t["output_tokens"]) == (4, 1000, 100)
    assert t["cost_usd"] == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)
    assert t["latency_p50_s"] == 2.5 and t["latency_p95_s"] == pytest.approx(8.95)  # numpy linear percentiles


def test_prices_come_from_model_and_judge_configs():
    cfg = {"models": {"teacher": {"price_in": 3, "price_out": 15}, "student": {}},
           "graders": {"exact": {"judge": None}, "j": {"judge": {"price_in": 1, "price_out": 2}}}}
    assert prices_from_config(cfg) == {"teacher": (3.0, 15.0), "student": (0.0, 0.0), "judge": (1.0, 2.0)}


def test_run_usage_reads_generate_records_and_renders(tmp_path):
    rows = [{"input_tokens": 50, "output_tokens": 5, "latency_s": 0.5}] * 3
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "usage.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert calls_from_jsonl(tmp_path / "data" / "usage.jsonl") == [(50, 5, 0.5)] * 3
    s = run_usage(tmp_path, {"models": {"teacher": {"price_in": 1e6, "price_out": 0}}})  # no logs: generate only
    assert s["usage"]["teacher"]["calls"] == 3 and s["usage"]["teacher"]["cost_usd"] == 150.0
    assert s["usage_by_stage"] == {"generate": s["usage"]}
    md = "\n".join(usage_markdown(s))
    assert "## Usage" in md and "| generate | teacher | 3 | 150 | 15 | 0.50 | 0.50 | 150.0000 |" in md
    assert usage_markdown({}) == []
