"""Scores as every later stage reads them, from whatever wrote them: the one reader of inspect logs
(a harness run's, or any `inspect eval`'s), lm-evaluation-harness `--log_samples` output (0.4, and 0.5's
`--repeats` as epochs), Every Eval Ever files (_eee), HELM run dirs, lighteval details parquet and
promptfoo JSON v3 (_others).

A ground floor (imports nothing of the harness but errors): `harness.runs.load_frame` builds a run's
frame with `log_rows`, and `read_foreign` turns a log file, a log dir or another tool's output into
the same tidy frame (one row per model x task x grader x item x epoch, `COLUMNS`), so the report, the
comparisons and the gate read a foreign evaluation exactly as they read a harness run.

Every score inspect writes becomes a grader column, with inspect's own `value_to_float` semantics:
CORRECT/INCORRECT/PARTIAL/NOANSWER ("C"/"I"/"P"/"N") -> 1/0/0.5/0, booleans -> 1/0, numbers as they
are, "yes"/"true" and "no"/"false", numeric strings; a dict-valued score is one grader per key
(`<scorer>.<key>`). What inspect would turn into 0 with a warning (a list, an unknown string) is NaN
here: unscorable, so the pair is dropped and counted rather than scored as wrong.

What each tool records about how an item was asked (a task version, a hash of the prompt the model
saw, a hash of the target) is kept in `Foreign.fingerprints`; `check_alike` refuses two sources that
differ in any of them (they measured different things, so a gate would measure the difference).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import HarnessError
from ._eee import eee_files, write_eee
from ._jsonl import jsonl_records

__all__ = ["COLUMNS", "ITEM_COLUMNS", "Foreign", "check_alike", "eee_files", "kind_of", "log_items", "log_rows", "read_foreign",
           "read_inspect", "read_lm_eval", "score_values", "to_float", "write_eee"]

COLUMNS = ["alias", "model", "task", "grader", "id", "epoch", "value", "group", "answer", "extracted", "target", "cluster", "judge"]
ITEM_COLUMNS = ["task", "id", "question", "answer"]

_LETTERS = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def to_float(value: Any) -> float:
    """inspect's value_to_float (inspect_ai.scorer.value_to_float, default sentinels), but NaN where
    inspect warns and returns 0 (a list, a dict, an unknown string, None)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value in _LETTERS:
            return _LETTERS[value]
        low = value.lower()
        if low in _WORDS:
            return _WORDS[low]
        if _NUMBER.match(value):
            return float(value)
    return math.nan


def score_values(name: str, value: Any) -> list[tuple[str, float]]:
    """(grader, value) for one inspect score: a dict-valued score is one grader per key."""
    if isinstance(value, dict):
        return [(f"{name}.{k}", to_float(v)) for k, v in value.items()]
    return [(name, to_float(value))]


def _text(content: Any) -> str:
    """A sample's input (a string or chat messages) as one string: what identifies the item."""
    if isinstance(content, str):
        return content
    return "\n".join(f"{getattr(m, 'role', '')}: {getattr(m, 'text', '')}" for m in content or [])


def log_rows(log: Any, alias: str | None = None) -> list[tuple]:
    """The frame rows (COLUMNS) of one finished inspect EvalLog. `alias`: the log's own metadata
    alias (a harness run's), else the model."""
    alias = alias or (log.eval.metadata or {}).get("alias") or log.eval.model
    model, task = log.eval.model, log.eval.task
    rows = []
    for s in log.samples or []:
        sm = s.metadata or {}
        group, cluster, sid, target = sm.get("group", ""), str(sm.get("cluster") or s.id), str(s.id), str(s.target)
        completion = s.output.completion if s.output else ""
        for scorer, sc in (s.scores or {}).items():
            meta = sc.metadata or {}
            # judge graders: "<judge model> vs <reference grader>", "" for match graders
            judge = f"{meta['judge']} vs {meta.get('reference', 'exact')}" if meta.get("judge") else ""
            raw = meta.get("raw", completion)
            for grader, value in score_values(scorer, sc.value):
                rows.append((alias, model, task, grader, sid, s.epoch, value, group, raw, sc.answer or "", target, cluster, judge))
    return rows


def log_items(log: Any) -> list[tuple[str, str, str, str]]:
    """(task, id, question, answer) of a log's samples: the item's input and target, so two logs
    pair only where the same id names the same item."""
    seen: dict[str, tuple[str, str, str, str]] = {}
    for s in log.samples or []:
        sid = str(s.id)
        if sid not in seen:
            seen[sid] = (log.eval.task, sid, _text(s.input), str(s.target))
    return list(seen.values())


@dataclass
class Foreign:
    """What a log file, a log dir or an lm-eval output holds."""

    kind: str  # "inspect" | "lm-eval" | "eee" | "helm" | "lighteval" | "promptfoo"
    rows: list[tuple] = field(default_factory=list)
    items: list[tuple[str, str, str, str]] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # alias -> model
    files: list[str] = field(default_factory=list)
    task_args: dict[str, Any] = field(default_factory=dict)  # task -> its arguments (inspect) / config (lm-eval)
    # "version": task -> its version; "prompt" / "target": task -> item id -> hash (what the tool recorded)
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)


def kind_of(path: Path) -> str | None:
    """"inspect" (a .eval/.json log, or a dir holding some), "lm-eval" (a samples_*.jsonl, or a dir
    holding some), "eee", "helm", "lighteval", "promptfoo" (see their readers), or None."""
    from ._eee import is_aggregate, is_instances
    from ._others import is_promptfoo

    if path.is_file():
        if path.suffix == ".eval":
            return "inspect"
        if path.suffix == ".parquet":
            return "lighteval"
        if path.suffix == ".jsonl":
            return "lm-eval" if path.name.startswith("samples_") else "eee" if is_instances(path) else None
        if path.suffix == ".json" and not path.name.startswith("results_"):
            if path.name in ("per_instance_stats.json", "scenario_state.json"):
                return "helm"
            return "eee" if is_aggregate(path) else "promptfoo" if is_promptfoo(path) else "inspect"
        return None
    if not path.is_dir():
        return None
    if next(path.rglob("samples_*.jsonl"), None) is not None or next(path.rglob("results_*.json"), None) is not None:
        return "lm-eval"
    if next(path.rglob("per_instance_stats.json"), None) is not None:
        return "helm"
    if next(path.rglob("details_*.parquet"), None) is not None:
        return "lighteval"
    if next(path.rglob("*.eval"), None) is not None or any(_is_log_json(p) for p in path.rglob("*.json")):
        return "inspect"
    if any(is_aggregate(p) for p in path.rglob("*.json")) or any(is_instances(p) for p in path.rglob("*.jsonl")):
        return "eee"
    if any(is_promptfoo(p) for p in path.rglob("*.json")):
        return "promptfoo"
    return None


def _is_log_json(p: Path) -> bool:
    """A .json inspect log (not summary.json, regress.json, ...): inspect names them <time>_<task>_<id>.json."""
    return bool(re.match(r"^\d{4}-\d{2}-\d{2}T", p.name)) and "/.superseded/" not in p.as_posix()


def read_foreign(path: Path) -> Foreign:
    kind = kind_of(path)
    if kind == "inspect":
        return read_inspect(path)
    if kind == "lm-eval":
        return read_lm_eval(path)
    if kind is not None:
        from . import _eee, _others

        out = Foreign(kind)
        {"eee": _eee.read_eee, "helm": _others.read_helm, "lighteval": _others.read_lighteval,
         "promptfoo": _others.read_promptfoo}[kind](path, out)
        return out
    if path.is_dir():
        raise HarnessError(f"{path}: no inspect log (.eval/.json) and no lm-eval output (samples_*.jsonl) in it, nor Every Eval "
                           "Ever, HELM, lighteval or promptfoo results; pass an inspect log or log dir, an lm-eval --output_path "
                           "written with --log_samples, one of those tools' outputs, or a `harness run` dir")
    if not path.exists():
        raise HarnessError(f"{path}: no such file or directory")
    raise HarnessError(f"{path}: not an inspect log (.eval/.json), an lm-eval samples_*.jsonl file, an Every Eval Ever "
                       ".json/.jsonl, a HELM per_instance_stats.json, a lighteval details .parquet or a promptfoo .json")


def check_alike(a: dict[str, Any], b: dict[str, Any], where_a: Any, where_b: Any) -> None:
    """Refuse (one line) two sources that asked their items differently: another task version, or
    on a shared item another prompt hash or target hash (what the tools themselves recorded; `a`/`b`:
    Foreign.fingerprints). Compared where both sides recorded the same kind of fingerprint."""
    va, vb = a.get("version") or {}, b.get("version") or {}
    for task in sorted(set(va) & set(vb)):
        if str(va[task]) != str(vb[task]):
            raise HarnessError(f"{where_b}: task '{task}' is version {vb[task]!r}, but {va[task]!r} in {where_a}; two versions "
                               "of a task are different evaluations — gate runs of the same version")
    for kind, what in (("prompt", "the model was shown another prompt"), ("target", "the item has another target")):
        ha, hb = a.get(kind) or {}, b.get(kind) or {}
        for task in sorted(set(ha) & set(hb)):
            shared = sorted(set(ha[task]) & set(hb[task]))
            differ = [i for i in shared if ha[task][i] != hb[task][i]]
            if differ:
                raise HarnessError(f"{where_b}: on {len(differ)} of the {len(shared)} shared items of task '{task}' {what} than in "
                                   f"{where_a} ({kind}_hash of item {differ[0]!r} differs); the gate would measure the "
                                   f"{kind}, not the model — evaluate both with the same {kind}s")


def _unreadable(path: str, e: Exception) -> HarnessError:
    return HarnessError(f"{path}: not a readable inspect log ({type(e).__name__}: {' '.join(str(e).split())[:160]}); "
                        "truncated or not written by inspect — re-run the evaluation that wrote it")


def read_inspect(path: Path) -> Foreign:
    """An inspect log file, or a log dir: the newest finished log of each task x model in it (a log
    dir of plain `inspect eval` runs collects every run; pass a file to pick another)."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    out = Foreign("inspect")
    if path.is_file():
        chosen = [str(path)]
    else:
        newest: dict[tuple[str, str], tuple[float, str]] = {}
        unfinished: dict[tuple[str, str], tuple[str, str]] = {}
        for info in list_eval_logs(str(path), recursive=True):
            name = info.name.removeprefix("file://")
            if "/.superseded/" in name:  # a harness run's logs of an earlier, different evaluation
                continue
            try:
                head = read_eval_log(info, header_only=True)
            except Exception as e:  # noqa: BLE001 - a truncated or foreign file: named, one line
                raise _unreadable(name, e) from None
            key = (head.eval.task, head.eval.model)
            if head.status != "success":
                unfinished.setdefault(key, (name, head.status))
                continue
            if key not in newest or (info.mtime or 0) > newest[key][0]:
                newest[key] = (info.mtime or 0, name)
        for key, (name, status) in unfinished.items():
            if key not in newest:
                raise _status_error(name, status)
        chosen = [name for _, name in sorted(newest.values(), key=lambda x: x[1])]
        if not chosen:
            raise HarnessError(f"{path}: no inspect log in it")
    for name in chosen:
        try:
            log = read_eval_log(name)
        except Exception as e:  # noqa: BLE001
            raise _unreadable(name, e) from None
        if log.status != "success":
            raise _status_error(name, log.status)
        rows = log_rows(log)
        if not rows:
            raise HarnessError(f"{name}: no per-sample scores in this log (written with --no-log-samples, or without a "
                               "scorer?); the gate pairs items, so re-run `inspect eval` with samples logged and a scorer")
        out.rows += rows
        out.items += log_items(log)
        out.models[rows[0][0]] = log.eval.model
        out.files.append(name)
        out.task_args[log.eval.task] = dict(log.eval.task_args or {})
        out.fingerprints.setdefault("version", {})[log.eval.task] = log.eval.task_version
    return out


def _status_error(name: str, status: str) -> HarnessError:
    return HarnessError(f"{name}: the evaluation did not finish (status '{status}'); finish it first "
                        "(`inspect eval-retry` that log, or re-run it) — only finished logs are compared")


_SAMPLES = re.compile(r"^samples_(.+)_(\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")


def read_lm_eval(path: Path) -> Foreign:
    """lm-evaluation-harness `--log_samples` output: a samples_<task>_<time>.jsonl file, or an
    --output_path dir (the newest run in it: every task's samples of the latest timestamp, per
    model dir). Items pair by doc_id; each metric of a record is a grader (`<metric>,<filter>` when
    the task has filters other than `none`); corpus-level metrics (no per-item value) are left out."""
    out = Foreign("lm-eval")
    if path.is_file():
        files = [path]
    else:
        found = [(p, _SAMPLES.match(p.name)) for p in sorted(path.rglob("samples_*.jsonl"))]
        found = [(p, m) for p, m in found if m]
        if not found:
            raise HarnessError(f"{path}: an lm-eval output without per-sample results (no samples_*.jsonl); re-run "
                               "lm_eval with --log_samples, which the gate needs to pair items")
        by_dir: dict[Path, str] = {}
        for p, m in found:
            by_dir[p.parent] = max(by_dir.get(p.parent, ""), m.group(2))
        files = [p for p, m in found if m.group(2) == by_dir[p.parent]]
    for f in files:
        m = _SAMPLES.match(f.name)
        task = m.group(1) if m else f.stem.removeprefix("samples_")
        model = _lm_eval_model(f, m.group(2) if m else None)
        version = _lm_eval_version(f, m.group(2) if m else None, task)
        if version is not None:
            out.fingerprints.setdefault("version", {})[task] = version
        n_before = len(out.rows)
        for rec in _jsonl(f):
            doc_id = str(rec.get("doc_id"))
            filt = rec.get("filter", "none")
            resp = rec.get("filtered_resps")
            answer = resp[0] if isinstance(resp, list) and resp and isinstance(resp[0], str) else str(resp if resp is not None else "")
            target = str(rec.get("target", ""))
            repeats = rec.get("scores_per_repeat") or {}  # lm-eval 0.5 --repeats: {metric: [one score per repeat]}
            for metric in rec.get("metrics") or []:
                value = to_float(rec.get(metric))
                if math.isnan(value):  # a corpus metric's per-item part (bleu's (ref, pred)): no item score
                    continue
                grader = metric if filt in ("none", None) else f"{metric},{filt}"
                per_repeat = repeats.get(metric)
                values = [to_float(v) for v in per_repeat] if isinstance(per_repeat, list) and per_repeat else [value]
                for epoch, v in enumerate(values, 1):  # repeats are epochs: averaged within the item by the gate
                    out.rows.append((model, model, task, grader, doc_id, epoch, v, "", answer, answer, target, doc_id, ""))
            for kind in ("prompt", "target"):
                if rec.get(f"{kind}_hash"):
                    out.fingerprints.setdefault(kind, {}).setdefault(task, {})[doc_id] = str(rec[f"{kind}_hash"])
            out.items.append((task, doc_id, str(rec.get("doc_hash") or json.dumps(rec.get("doc"), sort_keys=True, default=str)), target))
        if len(out.rows) == n_before:
            raise HarnessError(f"{f}: no per-item metric values in it (only corpus-level metrics?); the gate needs a score per "
                               "document, e.g. exact_match or acc")
        out.models[model] = model
        out.files.append(str(f))
    out.items = list(dict.fromkeys(out.items))
    return out


def _jsonl(f: Path) -> Iterable[dict[str, Any]]:
    for _, rec in jsonl_records(f, "re-run lm_eval to write it again", "re-run lm_eval with --log_samples to write it again",
                                lambda rec: isinstance(rec, dict) and "doc_id" in rec, "not an lm-eval sample record (no doc_id)"):
        yield rec


def _lm_eval_model(samples: Path, stamp: str | None) -> str:
    """The model of an lm-eval output: its results_<time>.json beside the samples (model_name, or
    config.model + model_args), else the sanitised model dir lm-eval made."""
    cands = sorted(samples.parent.glob(f"results_{stamp}.json" if stamp else "results_*.json"))
    for r in cands[-1:]:
        try:
            doc = json.loads(r.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            break
        name = doc.get("model_name") or ""
        if not name:
            c = doc.get("config") or {}
            name = f"{c.get('model', '')}:{c.get('model_args', '')}".strip(":")
        if name:
            return str(name)
    return samples.parent.name


def _lm_eval_version(samples: Path, stamp: str | None, task: str) -> Any:
    """The task's version from the results_<time>.json beside the samples (`versions`), else None."""
    for r in sorted(samples.parent.glob(f"results_{stamp}.json" if stamp else "results_*.json"))[-1:]:
        try:
            doc = json.loads(r.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return (doc.get("versions") or {}).get(task)
    return None
