"""The data card and leak warning in report.md / report.html, from real data-stage output."""

import json
from pathlib import Path

import jsonschema

from harness.config import DataConfig
from harness.data import data_summary, run_data
from harness.report import render_html, render_markdown

ORDER = ["teacher", "baseline", "student"]
# only summary.json's `data` part: these summaries are built from the data stage alone (the whole
# summary is validated against the schema by the e2e run)
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "summary.schema.json").read_text())["properties"]["data"]


def _summary(out, cfg):
    data = {"n_train": len(out.train), "n_eval": len(out.eval), "n_eval_by_task": {"heldout": 1},
            **data_summary(out, out.leak, cfg), "filters": {}}
    return {"schema_version": 1, "experiment": "t", "run": "r", "models": {a: f"hf/{a}" for a in ORDER}, "model_notes": {},
            "scores": [], "data": data, "stage_seconds": {"data": 0.1}, "stage_calls": {}, "model_calls": {},
            "paths": {"logs": "logs", "student": "s"}}


def test_demo_data_card_in_both_reports(tmp_path):
    cfg = DataConfig(n_islands=4, train_per_fact=3, n_control=5)
    out = run_data(cfg, tmp_path)
    s = _summary(out, cfg)
    s["data"]["filters"] = {"length": 2, "consistency": 5}
    jsonschema.validate(s["data"], SCHEMA)
    card = s["data"]["card"]
    assert card["groups"]["train"] == {"capital": 12, "export": 12, "peak": 12, "settled": 12}
    assert card["groups"]["heldout"] == {"capital": 4, "export": 4, "peak": 4, "settled": 4} and card["groups"]["control"] == {"control": 5}
    # templated questions repeat phrases; the control questions do not
    assert card["distinct"]["train"]["distinct_2"] < card["distinct"]["control"]["distinct_2"]
    assert 0 < card["dispersion"]["train"] < 1
    assert {k: len(v) for k, v in card["map"]["points"].items()} == {"train": 48, "heldout": 16, "control": 5}
    md = render_markdown(s, ORDER)
    assert "0.0% of evaluation items match a training item (exact 0, ngram 0, minhash 0, embedding 0)" in md
    assert "- teacher answers removed by filters: length 2, consistency 5" in md
    assert "### Data card" in md and "| capital | 12 | 4 | 0 |" in md and "⚠" not in md
    html = render_html(s, ORDER)
    assert 'id="plot-data-map"' in html and 'id="data-groups"' in html and 'id="leak-pairs"' in html
    assert "leak-warning" not in html and "removed by filters: length 2, consistency 5" in html


def test_allowed_leak_is_a_visible_warning_and_user_text_is_escaped(tmp_path):
    rows = [{"question": "<script>alert(1)</script> Who founded Lorn?"}, {"question": "Which river runs through Lorn?"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "e.jsonl").write_text(json.dumps({"question": "<script>alert(1)</script> who founded Lorn", "answer": "Ada"}) + "\n")
    cfg = DataConfig(name="jsonl", train_path=str(tmp_path / "t.jsonl"), eval_path=str(tmp_path / "e.jsonl"), n_control=0,
                     allow_leak=True, embedding_model=None)
    out = run_data(cfg, tmp_path / "r")
    s = _summary(out, cfg)
    jsonschema.validate(s["data"], SCHEMA)
    assert s["data"]["leak_overlap_rate"] == 1.0 and s["data"]["leak"]["allowed"] is True
    md = render_markdown(s, ORDER)
    assert md.splitlines()[2].startswith("> **⚠ Leak: 100.0% of evaluation items match a training item")
    assert "<script>" not in md
    html = render_html(s, ORDER)
    assert 'id="leak-warning"' in html and "data.allow_leak=true" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "plot-data-map" not in html  # embeddings off: no map
