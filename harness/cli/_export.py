"""`harness export RUN_DIR[:alias] [--out DIR] [--against BASELINE[:alias]]`: write a finished run (or
any source the gate reads) as Every Eval Ever files (EEE schema 0.3.0, docs/sources.md): per model,
an aggregate `<uuid>.json` and its per-sample `<uuid>_samples.jsonl`, in EEE's datastore layout
(`data/<run>/<developer>/<model>/`; the uuid is derived from the run and the alias).

With --against, the run's model (alias default: candidate) is gated against BASELINE (alias default:
current) exactly as `harness regress` would, and both models are written with the verdict in the
schema's extension fields (`additional_details` / `details`, string values only): the evaluation's
verdict and exit code in source_metadata.additional_details, each cell's d, bounds, n and verdict in
its result's score_details.details. Exit 0 once written (the gate's exit code is in the files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._args import ArgParser

USAGE = "harness export RUN_DIR[:alias]|LOG [--out DIR] [--against BASELINE_RUN[:alias]|LOG]"


def parser() -> ArgParser:
    from ..config import RegressConfig

    ap = ArgParser(prog="harness export", usage=USAGE, description=__doc__, command="export")
    ap.add_argument("run", metavar="RUN_DIR[:alias]|LOG")
    ap.add_argument("--out", type=Path, metavar="DIR", help="where the files go (default: RUN_DIR/eee for a run dir, ./eee for a log)")
    ap.add_argument("--against", metavar="BASELINE[:alias]", help="gate the run's model against this baseline and write both")
    ap.add_argument("--margin", type=float, default=RegressConfig.margin, help="the gate's margin (with --against)")
    return ap


def command(argv: list[str]) -> None:
    from ..config import RegressConfig
    from ..regress import parse_ref

    a = parser().parse_args(argv)
    d = RegressConfig()
    ref = parse_ref(a.run, d.candidate, "RUN_DIR")
    if a.against:
        written = export_pair(parse_ref(a.against, d.baseline, "--against"), ref, a.out, RegressConfig(enabled=True, margin=a.margin))
    else:
        written = export(ref.dir, ref.alias if ref.explicit else None, a.out)
    for f in written:
        print(f"[export] {f}")


def _out_dir(src_dir: Path, out: Path | None) -> Path:
    from ..runs import is_run_dir

    d = out or (src_dir / "eee" if is_run_dir(src_dir) else Path.cwd() / "eee")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _library() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from . import version as harness_version

    lib = {"version": harness_version()}
    try:
        lib["inspect_ai"] = version("inspect_ai")
    except PackageNotFoundError:
        pass
    return lib


def _items(src: Any) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(task, id) -> (question, choices): a run's data/eval.jsonl, a foreign source's items."""
    f = src.path / "data" / "eval.jsonl"
    if not src.foreign and f.is_file():
        from ..cache import read_jsonl

        return {(r["task"], str(r["id"])): (str(r.get("question", "")), [str(c) for c in r.get("choices") or []]) for r in read_jsonl(f)}
    if src.items is None:
        return {}
    return {(t, str(i)): (str(q), []) for t, i, q in src.items[["task", "id", "question"]].itertuples(index=False)}


def _write_model(src: Any, alias: str, out: Path, extra: dict | None = None, about: dict[str, str] | None = None) -> list[Path]:
    from ..report import score_table
    from ..sources import eee_files, write_eee

    frame = src.frame[src.frame["alias"] == alias]
    model = str((src.summary.get("models") or {}).get(alias) or alias)
    scores = {(r["task"], r["grader"]): r for r in score_table(frame)}
    name = src.path.resolve().name
    aggregate, records = eee_files(name, alias, model, frame, _items(src), scores, _library(), extra,
                                   {"harness_source": str(src.path), "harness_source_kind": src.kind, **(about or {})})
    return write_eee(out, aggregate, records)


def export(path: Path, alias: str | None, out: Path | None) -> list[Path]:
    """Every model of the source (or the one alias) as EEE files."""
    from ..errors import HarnessError
    from ..runs import open_source

    src = open_source(path)
    aliases = sorted(set(src.frame["alias"]))
    if alias is not None:
        if alias not in aliases:
            raise HarnessError(f"{path}: no model '{alias}' in it; its models: {', '.join(aliases) or 'none'}")
        aliases = [alias]
    if not aliases:
        raise HarnessError(f"{path}: no per-item scores to export (no finished evaluation in it)")
    d = _out_dir(path, out)
    return [f for a in aliases for f in _write_model(src, a, d)]


def export_pair(baseline: Any, candidate: Any, out: Path | None, settings: Any) -> list[Path]:
    """Gate candidate against baseline and write both models, the verdict in the extension fields."""
    from dataclasses import replace

    from ..regress import gate
    from ..runs import open_source

    result = gate(baseline, candidate, replace(settings, baseline=baseline.alias, candidate=candidate.alias))
    base_alias, cand_alias = result["baseline"]["alias"], result["candidate"]["alias"]
    about = {"harness_gate_verdict": str(result["verdict"]), "harness_gate_exit_code": str(result["exit_code"]),
             "harness_gate_baseline": f"{baseline.dir}:{base_alias}", "harness_gate_candidate": f"{candidate.dir}:{cand_alias}",
             "harness_gate_margin": str(result["settings"]["margin"]), "harness_gate_correction": str(result["correction"]),
             "harness_gate_headline": str(result.get("headline", ""))}
    extra = {(c["task"], c["grader"]): {f"harness_gate_{k}": json.dumps(c.get(k)) if not isinstance(c.get(k), str) else c[k]
                                        for k in ("verdict", "diff", "lower", "upper", "n", "method", "gated", "skipped")
                                        if k in c}
             for c in result["cells"]}
    d = _out_dir(candidate.dir, out)
    written = []
    for ref, alias, role in ((baseline, base_alias, "baseline"), (candidate, cand_alias, "candidate")):
        written += _write_model(open_source(ref.dir), alias, d, extra, {**about, "harness_gate_role": role})
    return written
