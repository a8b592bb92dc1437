"""Every Eval Ever (EEE, github.com/evaleval/every_eval_ever, schema 0.3.0): read its files into the
tidy frame, and write a run as its files.

An EEE evaluation is an aggregate JSON (`eval.schema.json`: the model, one `evaluation_results` entry
per metric) and, for per-item results, an instance-level JSONL beside it (`instance_level_eval.schema.
json`: one record per sample, linked to the aggregate by `evaluation_id` and to one of its results by
`evaluation_result_id`). The gate pairs items, so only the JSONL is scored; the aggregate names the
model and the metric each record belongs to.

An item is its `sample_id`, or its `sample_hash` (EEE's hash of input + reference, the schema's way to
recognise a sample whose id is not stable) where the id is missing or names two different samples in
one file. The `sample_hash` is also the item's identity that two files must share (a run's id with
another input or reference is another item). Repeated records of one sample (inspect's epochs in
`metadata.epoch`, or repeats without one) are epochs.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from ..errors import HarnessError
from ._jsonl import jsonl_records

SCHEMA_VERSION = "0.3.0"
UNSCORABLE = "unscorable"  # the `error` a written record carries for a NaN score (the schema wants a number)
_PEEK = 16384


def is_aggregate(path: Path) -> bool:
    """An EEE aggregate JSON: a .json whose head names EEE's required top-level keys."""
    head = _head(path)
    return '"schema_version"' in head and ('"evaluation_results"' in head or '"eval_library"' in head or '"model_info"' in head)


def is_instances(path: Path) -> bool:
    """An EEE instance-level JSONL: its first record has schema_version, evaluation_id and sample_id."""
    first = _head(path).split("\n", 1)[0]
    return '"sample_id"' in first and '"evaluation_id"' in first and '"schema_version"' in first


def _head(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return f.read(_PEEK).decode("utf-8", "replace")
    except OSError:
        return ""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_eee(path: Path, out: Any) -> None:
    """Fill `out` (a harness.sources.Foreign) from an aggregate JSON, an instance JSONL, or a dir of them."""
    pairs = _pairs(path)
    if not pairs:
        raise HarnessError(f"{path}: no Every Eval Ever file in it (an aggregate .json with evaluation_results, or its "
                           "instance-level _samples.jsonl)")
    seen: dict[tuple, str] = {}
    for agg, samples in pairs:
        doc = _load_json(agg) if agg else {}
        if samples is None:
            raise HarnessError(f"{agg}: an Every Eval Ever aggregate without per-sample results (no detailed_evaluation_results "
                               "file found beside it); the gate pairs items — convert the evaluation with its instance-level data")
        n_before = len(out.rows)
        _read_instances(samples, doc, out)
        if len(out.rows) == n_before:
            raise HarnessError(f"{samples}: no per-sample records in it; the gate pairs items — convert the evaluation with its "
                               "instance-level data")
        for r in out.rows[n_before:]:
            key = (r[0], r[2], r[3], r[4], r[5])
            if key in seen and seen[key] != str(samples):
                raise HarnessError(f"{samples}: holds {r[0]}'s results of task '{r[2]}' again (also in {seen[key]}); "
                                   "pass one of the two files")
            seen.setdefault(key, str(samples))
        out.files += [str(p) for p in (agg, samples) if p]
    out.items = list(dict.fromkeys(out.items))


def _pairs(path: Path) -> list[tuple[Path | None, Path | None]]:
    """(aggregate, instances) file pairs: one for a file, every aggregate's for a dir (and instance
    files without an aggregate)."""
    if path.is_file():
        if path.suffix == ".jsonl":
            agg = _aggregate_of(path)
            return [(agg, path)]
        return [(path, _instances_of(path, _load_json(path)))]
    aggs = sorted(p for p in path.rglob("*.json") if is_aggregate(p))
    pairs = [(a, _instances_of(a, _load_json(a))) for a in aggs]
    claimed = {s.resolve() for _, s in pairs if s}
    pairs += [(None, p) for p in sorted(path.rglob("*.jsonl")) if p.resolve() not in claimed and is_instances(p)]
    return pairs


def _instances_of(agg: Path, doc: dict[str, Any]) -> Path | None:
    """The aggregate's instance file: detailed_evaluation_results.file_path (a datastore path: looked
    for beside the aggregate first), else `<name>_samples.jsonl` beside it."""
    fp = (doc.get("detailed_evaluation_results") or {}).get("file_path")
    cands = [agg.parent / Path(fp).name, agg.parent / fp, Path(fp)] if fp else []
    cands.append(agg.with_name(f"{agg.stem}_samples.jsonl"))
    return next((c for c in cands if c.is_file()), None)


def _aggregate_of(samples: Path) -> Path | None:
    stem = samples.stem.removesuffix("_samples")
    agg = samples.with_name(f"{stem}.json")
    return agg if agg.is_file() and is_aggregate(agg) else None


def _load_json(f: Path) -> dict[str, Any]:
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HarnessError(f"{f}: not a readable Every Eval Ever file ({type(e).__name__}); write it again") from None
    if not isinstance(doc, dict):
        raise HarnessError(f"{f}: not an Every Eval Ever aggregate (not a JSON object)")
    return doc


def _records(f: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    return jsonl_records(f, "write it again", "convert the evaluation again",
                         lambda rec: isinstance(rec, dict) and isinstance(rec.get("evaluation"), dict) and "score" in rec["evaluation"],
                         "not an Every Eval Ever instance record (no evaluation.score)")


def _target(reference: Any) -> str:
    """The item's gold as the frame holds it: the one reference, or the list as inspect's str(target)."""
    if isinstance(reference, list):
        return str(reference[0]) if len(reference) == 1 else str(reference)
    return str(reference if reference is not None else "")


def _answer(rec: dict[str, Any]) -> tuple[str, str]:
    """(raw answer, extracted answer): the output (or the last assistant message) and the terminal attribution."""
    out = rec.get("output") or {}
    raw = out.get("raw") or []
    answer = str(raw[0]) if raw else ""
    if not raw:
        said = [m.get("content") for m in rec.get("messages") or [] if m.get("role") == "assistant" and m.get("content")]
        answer = str(said[-1]) if said else ""
    terminal = [a for a in rec.get("answer_attribution") or [] if a.get("is_terminal")]
    return answer, str(terminal[-1].get("extracted_value", answer)) if terminal else answer


def _read_instances(f: Path, doc: dict[str, Any], out: Any) -> None:
    info = doc.get("model_info") or {}
    results = {r.get("evaluation_result_id"): r for r in doc.get("evaluation_results") or [] if r.get("evaluation_result_id")}
    recs = list(_records(f))
    ids = _ids(recs)
    epochs: dict[tuple, int] = defaultdict(int)
    prompts = out.fingerprints.setdefault("prompt", {})
    for (k, rec), sid in zip(recs, ids):
        model = str(info.get("id") or rec.get("model_id") or "")
        alias = str((info.get("additional_details") or {}).get("harness_alias") or model)
        task = str(rec.get("evaluation_name") or "")
        res = results.get(rec.get("evaluation_result_id")) or {}
        metric = res.get("metric_config") or {}
        grader = str(metric.get("metric_id") or metric.get("metric_name") or rec.get("evaluation_result_id") or "score")
        meta = {k2: str(v) for k2, v in (rec.get("metadata") or {}).items()}
        key = (alias, task, grader, sid)
        epochs[key] += 1
        epoch = int(meta["epoch"]) if str(meta.get("epoch", "")).isdigit() else epochs[key]
        try:
            value = float(rec["evaluation"]["score"])
        except (TypeError, ValueError):
            raise HarnessError(f"{f}:{k}: evaluation.score is not a number ({rec['evaluation']['score']!r})") from None
        if str(rec.get("error") or "").startswith(UNSCORABLE):
            value = math.nan
        inp = rec.get("input") or {}
        target = _target(inp.get("reference"))
        answer, extracted = _answer(rec)
        out.rows.append((alias, model, task, grader, sid, epoch, value, meta.get("group", ""), answer, extracted, target,
                         meta.get("cluster") or sid, meta.get("judge", "")))
        ident = rec.get("sample_hash") or sha256(str(inp.get("raw", "")) + "".join(map(str, inp.get("reference") or [])))
        out.items.append((task, sid, str(ident), target))
        if inp.get("formatted"):  # what the model saw: two files that showed it another prompt are not compared
            prompts.setdefault(task, {})[sid] = sha256(str(inp["formatted"]))
        out.models[alias] = model


def _ids(recs: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Each record's item id: its sample_id, or its sample_hash where the id is missing or names two
    different samples (another hash) of one task in this file."""
    hashes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, r in recs:
        hashes[(str(r.get("evaluation_name")), str(r.get("sample_id") or ""))].add(str(r.get("sample_hash") or ""))
    out = []
    for k, r in recs:
        sid, h = str(r.get("sample_id") or ""), str(r.get("sample_hash") or "")
        ambiguous = not sid or len(hashes[(str(r.get("evaluation_name")), sid)]) > 1
        if ambiguous and not h:
            raise HarnessError(f"record {k}: sample_id {sid!r} names several samples and there is no sample_hash to tell "
                               "them apart; give each sample its own sample_id")
        out.append(h if ambiguous else sid)
    return out


# -- writing -------------------------------------------------------------------------------------


def eee_files(name: str, alias: str, model: str, frame: Any, items: dict[tuple[str, str], tuple[str, list[str]]],
              scores: dict[tuple[str, str], dict[str, Any]], library: dict[str, str],
              extra: dict[tuple[str, str], dict[str, str]] | None = None,
              about: dict[str, str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(aggregate, instance records) of one model's rows of a frame (harness.sources.COLUMNS).

    `items`: (task, id) -> (question, choices); `scores`: (task, grader) -> the report's score row
    (accuracy, ci_low, ci_high, n) where there is one; `extra`: (task, grader) -> strings for that
    result's score_details.details (the gate's verdict); `about`: strings for source_metadata."""
    now = str(int(time.time()))
    evaluation_id = f"harness/{name}/{alias}"
    developer, _, short = model.rpartition("/")
    # EEE's datastore layout: data/<collection>/<developer>/<model>/<uuid4>_samples.jsonl; the uuid is
    # derived from the evaluation, so exporting the same run again replaces its files
    file_uuid = uuid.UUID(bytes=hashlib.sha256(evaluation_id.encode()).digest()[:16], version=4)
    samples_name = f"data/{_safe(name)}/{_safe(developer or 'unknown')}/{_safe(short)}/{file_uuid}_samples.jsonl"
    records, results = [], []
    for (task, grader), cell in frame.groupby(["task", "grader"], sort=True):
        rid = f"{task}/{grader}"
        per_item = cell.groupby("id")["value"].mean()
        binary = bool(cell["value"].dropna().isin([0.0, 1.0]).all())
        results.append(_result(rid, task, grader, per_item, binary, scores.get((task, grader)), (extra or {}).get((task, grader))))
        for r in cell.itertuples(index=False):
            question, choices = items.get((task, str(r.id)), ("", []))
            records.append(_record(evaluation_id, model, rid, r, question, choices, grader))
    aggregate = {
        "schema_version": SCHEMA_VERSION,
        "evaluation_id": evaluation_id,
        "retrieved_timestamp": now,
        "source_metadata": {"source_name": "harness", "source_type": "evaluation_run", "source_organization_name": "harness",
                            "evaluator_relationship": "other", "additional_details": dict(about or {})},
        "eval_library": {"name": "harness", "version": library.get("version", "unknown"),
                         "additional_details": {k: v for k, v in library.items() if k != "version"}},
        "model_info": {"name": model, "id": model, "developer": developer or "unknown", "additional_details": {"deployment_type": "unknown",
                                                                           "model_availability": "unknown", "harness_alias": alias}},
        "evaluation_results": results,
        "detailed_evaluation_results": {"format": "jsonl", "file_path": samples_name, "hash_algorithm": "sha256",
                                        "total_rows": len(records)},
    }
    return aggregate, records


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s) or "_"


def _result(rid: str, task: str, grader: str, per_item: Any, binary: bool, score: dict[str, Any] | None,
            extra: dict[str, str] | None) -> dict[str, Any]:
    metric: dict[str, Any] = {"metric_id": grader, "metric_name": grader, "lower_is_better": False}
    metric.update({"score_type": "binary"} if binary else {"score_type": "continuous", "min_score": None, "max_score": None})
    mean = float(per_item.mean()) if per_item.notna().any() else 0.0
    uncertainty: dict[str, Any] = {"num_samples": int(per_item.notna().sum())}
    if score and score.get("ci_low") is not None:  # the report's own interval: one method per kind of score
        mean = float(score.get("accuracy", mean))
        uncertainty["confidence_interval"] = {"lower": float(score["ci_low"]), "upper": float(score["ci_high"]),
                                              "confidence_level": 0.95,
                                              "method": "wilson (harness report)"}
    details = {"epochs_averaged_per_item": "true", **(extra or {})}
    return {"evaluation_result_id": rid, "evaluation_name": task,
            "source_data": {"dataset_name": task, "source_type": "other"},
            "metric_config": metric,
            "score_details": {"score": mean, "details": details, "uncertainty": uncertainty}}


def _record(evaluation_id: str, model: str, rid: str, r: Any, question: str, choices: list[str], grader: str) -> dict[str, Any]:
    value = float(r.value)
    unscorable = math.isnan(value)
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "evaluation_id": evaluation_id, "model_id": model, "evaluation_name": str(r.task),
        "evaluation_result_id": rid, "sample_id": str(r.id), "sample_hash": sha256(question + str(r.target)),
        "interaction_type": "single_turn",
        "input": {"raw": question, "reference": [str(r.target)], **({"choices": list(choices)} if choices else {})},
        "output": {"raw": [str(r.answer)]},
        "answer_attribution": [{"turn_idx": 0, "source": "output.raw", "extracted_value": str(r.extracted),
                                "extraction_method": grader, "is_terminal": True}],
        "evaluation": {"score": 0.0 if unscorable else value, "is_correct": (not unscorable) and value >= 1.0},
        "metadata": {"epoch": str(int(r.epoch)), "group": str(r.group or ""), "cluster": str(r.cluster or ""),
                     **({"judge": str(r.judge)} if r.judge else {})},
    }
    if unscorable:
        rec["error"] = f"{UNSCORABLE}: the grader gave no score (the harness leaves such an item out of its comparisons)"
    return rec


def write_json(path: Path, doc: Any) -> None:
    """Atomic: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    """Atomic; returns the file's sha256 (the aggregate's checksum)."""
    tmp = path.with_name(path.name + ".tmp")
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def write_eee(out: Path, aggregate: dict[str, Any], records: list[dict[str, Any]]) -> list[Path]:
    """Write one model's aggregate and samples under `out` in the datastore layout (the aggregate
    last, with the samples' checksum: an aggregate always has its samples file beside it)."""
    samples = out / aggregate["detailed_evaluation_results"]["file_path"]
    samples.parent.mkdir(parents=True, exist_ok=True)
    aggregate["detailed_evaluation_results"]["checksum"] = write_jsonl(samples, records)
    agg = samples.with_name(samples.name.removesuffix("_samples.jsonl") + ".json")
    write_json(agg, aggregate)
    return [agg, samples]
