"""HELM run dirs, lighteval details parquet and promptfoo JSON v3, into the tidy frame.

- HELM (crfm-helm `helm-run`): a run dir `benchmark_output/runs/<suite>/<run name>/` with
  `per_instance_stats.json` (one entry per instance x train trial: its stats) and `scenario_state.json`
  (the adapter spec and, per request, the instance, the prompt sent and the completion). Every stat
  that is a score is a grader (resource counts such as num_prompt_tokens or inference_runtime are
  not); perturbed variants (robustness runs) are left out. Train trials (other few-shot draws) are
  epochs. The task is the run name without its `model=` argument.
- lighteval: `details/<model>/<time>/details_<task>_<time>.parquet`, one row per sample: the older
  layout (`example`, `full_prompt`, `predictions`, `gold`, `metrics`) and the newer one (`doc`,
  `model_response`, `metric`). Each metric is a grader; an item is the doc's id, else its query.
- promptfoo: `promptfoo eval -o out.json` (an OutputFile whose `results` is an EvaluateSummaryV3:
  `"version": 3`, `results[]`). A prompt (its label) is a task, a provider a model, a test (its
  index) an item; graders: `pass` (1/0), `score`, and each named score. Repeats are epochs.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ._eee import sha256

# -- HELM ----------------------------------------------------------------------------------------

_NOT_SCORES = re.compile(r"^(num_|finish_reason_|inference_|training_|batch_size|logprob|max_prob|prompt_truncated|"
                         r"max_num_|predicted_index)")


def helm_dirs(path: Path) -> list[Path]:
    if path.is_file():
        return [path.parent]
    return sorted(p.parent for p in path.rglob("per_instance_stats.json"))


def _helm_task(run_dir: Path) -> str:
    name = run_dir.name
    spec = run_dir / "run_spec.json"
    if spec.is_file():
        name = str(_json(spec).get("name") or name)
    head, _, args = name.partition(":")
    kept = [a for a in args.split(",") if a and not a.startswith("model=")] if args else []
    if not args and "model=" in head:
        head = re.sub(r"[-,]?model=[^,]*", "", head)
    return head + (":" + ",".join(kept) if kept else "")


def _json(f: Path) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HarnessError(f"{f}: not readable JSON ({type(e).__name__}); the file is truncated — run the tool again") from None


def read_helm(path: Path, out: Any) -> None:
    dirs = helm_dirs(path)
    if not dirs:
        raise HarnessError(f"{path}: no HELM run dir in it (a dir with per_instance_stats.json and scenario_state.json)")
    for d in dirs:
        state_f = d / "scenario_state.json"
        if not state_f.is_file():
            raise HarnessError(f"{d}: per_instance_stats.json without scenario_state.json; copy the whole HELM run dir")
        state, stats = _json(state_f), _json(d / "per_instance_stats.json")
        spec = state.get("adapter_spec") or {}
        model = str(spec.get("model") or spec.get("model_deployment") or d.name)
        task = _helm_task(d)
        requests: dict[tuple[str, int], dict[str, Any]] = {}
        for rs in state.get("request_states") or []:
            inst = rs.get("instance") or {}
            requests.setdefault((str(inst.get("id")), int(rs.get("train_trial_index") or 0)), rs)
        n_before = len(out.rows)
        prompts = out.fingerprints.setdefault("prompt", {}).setdefault(task, {})
        for entry in stats:
            if entry.get("perturbation"):
                continue
            iid, trial = str(entry.get("instance_id")), int(entry.get("train_trial_index") or 0)
            rs = requests.get((iid, trial)) or {}
            inst = rs.get("instance") or {}
            refs = [r.get("output", {}).get("text", "") for r in inst.get("references") or [] if "correct" in (r.get("tags") or [])]
            target = refs[0] if len(refs) == 1 else str(refs)
            comps = (rs.get("result") or {}).get("completions") or []
            answer = str(comps[0].get("text", "")) if comps else ""
            extracted = str((rs.get("output_mapping") or {}).get(answer.strip(), answer))
            for s in entry.get("stats") or []:
                name = s.get("name") or {}
                if name.get("perturbation") or _NOT_SCORES.match(str(name.get("name", ""))) or s.get("count", 1) == 0:
                    continue
                out.rows.append((model, model, task, str(name["name"]), iid, trial + 1, float(s.get("mean", math.nan)), "",
                                 answer, extracted, target, iid, ""))
            question = str((inst.get("input") or {}).get("text", ""))
            out.items.append((task, iid, sha256(question), target))
            if trial == 0 and (rs.get("request") or {}).get("prompt") is not None:
                prompts[iid] = sha256(str(rs["request"]["prompt"]))
        if len(out.rows) == n_before:
            raise HarnessError(f"{d / 'per_instance_stats.json'}: no per-instance score in it")
        out.models[model] = model
        out.files += [str(d / "per_instance_stats.json"), str(state_f)]
    out.items = list(dict.fromkeys(out.items))


# -- lighteval -----------------------------------------------------------------------------------

_DETAILS = re.compile(r"^details_(.+)_(\d{4}-\d{2}-\d{2}T[0-9.\-:]+)\.parquet$")


def read_lighteval(path: Path, out: Any) -> None:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # not a dependency of the harness (lighteval and datasets bring it)
        raise HarnessError(f"{path}: reading lighteval's parquet details needs pyarrow; `pip install pyarrow`") from None

    files = [path] if path.is_file() else sorted(path.rglob("details_*.parquet"))
    if not files:
        raise HarnessError(f"{path}: no lighteval details (details_*.parquet) in it; run lighteval with --save-details")
    for f in files:
        m = _DETAILS.match(f.name)
        task = m.group(1) if m else f.stem.removeprefix("details_")
        model = f.parent.parent.name if m else f.parent.name
        try:
            rows = pq.read_table(f).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow's errors are many; the file is named, one line
            raise HarnessError(f"{f}: not a readable parquet file ({type(e).__name__}); run lighteval again") from None
        prompts = out.fingerprints.setdefault("prompt", {}).setdefault(task, {})
        seen: dict[str, int] = defaultdict(int)
        n_before = len(out.rows)
        for k, r in enumerate(rows):
            doc = r.get("doc") if isinstance(r.get("doc"), dict) else {}
            query = str(doc.get("query") or r.get("example") or "")
            iid = str(doc["id"]) if doc.get("id") not in (None, "") else sha256(query)[:16]
            seen[iid] += 1
            metrics = r.get("metric") if isinstance(r.get("metric"), dict) else r.get("metrics")
            if isinstance(metrics, str):  # lighteval casts nested values to str when a column will not type
                try:
                    metrics = json.loads(metrics.replace("'", '"'))
                except json.JSONDecodeError:
                    metrics = None
            if not isinstance(metrics, dict):
                raise HarnessError(f"{f}: row {k} has no per-sample metrics (a `metric` or `metrics` column)")
            gold = doc.get("choices", [None])[doc["gold_index"]] if isinstance(doc.get("gold_index"), int) and doc.get("choices") \
                else r.get("gold")
            target = gold[0] if isinstance(gold, list) and len(gold) == 1 else str(gold if gold is not None else "")
            resp = r.get("model_response") if isinstance(r.get("model_response"), dict) else {}
            preds = resp.get("text") or r.get("predictions") or []
            answer = str(preds[0]) if isinstance(preds, list) and preds else str(preds or "")
            for name, v in metrics.items():
                value = float(v) if isinstance(v, (int, float)) else math.nan  # booleans are 1/0
                out.rows.append((model, model, task, str(name), iid, seen[iid], value, "", answer, answer, str(target), iid, ""))
            out.items.append((task, iid, sha256(query), str(target)))
            full = r.get("full_prompt") or doc.get("full_prompt")
            if full and seen[iid] == 1:
                prompts[iid] = sha256(str(full))
        if len(out.rows) == n_before:
            raise HarnessError(f"{f}: no rows in it")
        out.models[model] = model
        out.files.append(str(f))
    out.items = list(dict.fromkeys(out.items))


# -- promptfoo -----------------------------------------------------------------------------------


def is_promptfoo(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192).decode("utf-8", "replace")
    except OSError:
        return False
    return '"evalId"' in head  # promptfoo's OutputFile starts with it (inspect's logs say "eval_id")


def read_promptfoo(path: Path, out: Any) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.json") if is_promptfoo(p))
    if not files:
        raise HarnessError(f"{path}: no promptfoo output (`promptfoo eval -o out.json`) in it")
    for f in files:
        doc = _json(f)
        summary = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(summary, dict) or summary.get("version") != 3 or not isinstance(summary.get("results"), list):
            version = summary.get("version") if isinstance(summary, dict) else None
            raise HarnessError(f"{f}: not a promptfoo v3 output (results.version is {version!r}, 3 expected); write it with "
                               "a current promptfoo: `promptfoo eval -o out.json`")
        epochs: dict[tuple, int] = defaultdict(int)
        for k, r in enumerate(summary["results"]):
            provider = r.get("provider") or {}
            model = str(provider.get("label") or provider.get("id") or "")
            prompt = r.get("prompt") or {}
            task = str(prompt.get("label") or r.get("promptId") or f"prompt{r.get('promptIdx', 0)}")
            test = r.get("testCase") or {}
            iid = str(r.get("testIdx", k))
            epochs[(model, task, iid)] += 1
            vars_ = r.get("vars") or test.get("vars") or {}
            asserts = [a.get("value") for a in test.get("assert") or [] if isinstance(a, dict) and "value" in a]
            target = str(asserts[0]) if len(asserts) == 1 else json.dumps(asserts, sort_keys=True, default=str)
            output = (r.get("response") or {}).get("output")
            answer = output if isinstance(output, str) else json.dumps(output, default=str)
            values = {"pass": 1.0 if r.get("success") else 0.0}
            if isinstance(r.get("score"), (int, float)):
                values["score"] = float(r["score"])
            for name, v in (r.get("namedScores") or {}).items():
                values[str(name)] = float(v) if isinstance(v, (int, float)) else math.nan
            if r.get("error") and not r.get("gradingResult"):  # the provider failed: no answer was graded
                values = dict.fromkeys(values, math.nan)
            for grader, v in values.items():
                out.rows.append((model, model, task, grader, iid, epochs[(model, task, iid)], v, "", answer, answer, target, iid, ""))
            out.items.append((task, iid, json.dumps(vars_, sort_keys=True, default=str), target))
            if prompt.get("raw") is not None:
                out.fingerprints.setdefault("prompt", {}).setdefault(task, {})[iid] = sha256(str(prompt["raw"]))
            out.models[model] = model
        out.files.append(str(f))
    out.items = list(dict.fromkeys(out.items))
