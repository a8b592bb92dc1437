"""Stage 3, finetune: teacher answers -> student weights (cached by content hash)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..cache import atomic_dir, digest, file_digest, locked, trusted, write_json
from ..config import FinetuneConfig, ModelConfig, model_identity
from ..errors import HarnessError
from ._dist import check_scale as check_scale  # re-exported: preflight checks devices and processes
from ._dist import sharding as sharding  # and which objectives an accelerate config allows
from ._drift import drift

# the objectives: names (preflight), the teacher handed to a kd / on_policy fine-tune (pipeline),
# the divergences (tests, bench/distil_objectives.py)
from ._objectives import IF_BASE_PREFERRED as IF_BASE_PREFERRED
from ._objectives import OBJECTIVES as OBJECTIVES
from ._objectives import RETIRED_SFT_FRACTION as RETIRED_SFT_FRACTION
from ._objectives import Teacher as Teacher
from ._objectives import answer_divergence as answer_divergence
from ._objectives import divergence as divergence
from ._objectives import key_part
from ._openai import n_epochs as n_epochs  # re-exported: preflight checks the hosted epochs

VERSION = 1
METHODS = ("lora", "full", "none", "openai")
LOCAL = ("lora", "full")  # methods that train a local checkpoint


# how a local fine-tune is run, not what it computes: out of the cache key, so a 2-process run, a
# 1-process run and a run with gradient checkpointing share one entry (confirm/openai: hosted only).
# device and precision count through what they resolve to (numerics_key).
RUN_ONLY = ("confirm", "openai", "device", "precision", "gradient_checkpointing", "processes", "accelerate_config")


def keyed_settings(cfg: FinetuneConfig) -> dict[str, Any]:
    """The fine-tune settings the cache key hashes. grad_accumulation counts only when it is not 1
    (it changes the global batch), so entries cached before it existed keep their keys."""
    return {k: v for k, v in asdict(cfg).items() if k not in RUN_ONLY and not (k == "grad_accumulation" and v == 1)}


def numerics_key(cfg: FinetuneConfig) -> dict[str, Any]:
    """The resolved device type and precision, when they are not the CPU fp32 of every earlier entry
    (a bf16 GPU student is not the fp32 CPU one; `auto` and the explicit name share a key)."""
    from ..models import resolve_device, resolve_precision

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, cfg.bf16)
    return {} if (device, precision) == ("cpu", "fp32") else {"numerics": [device, precision]}


@dataclass(frozen=True)
class FinetuneOutput:
    # a transformers checkpoint dir (local methods; later stages reference the student by this
    # path), or the hosted fine-tuned model's name (`openai`: ft:gpt-4o-mini-...:suffix:id)
    model_path: str
    key: str
    metrics: dict[str, Any]
    cached: bool


def finetune_key(base: ModelConfig, cfg: FinetuneConfig, train_file: Path, teacher: Teacher | None = None) -> str:
    """The cache key of a local fine-tune: what it computes, not how it is run (RUN_ONLY, numerics_key).
    The objective's block counts only when it is not sft (an sft entry is the same whatever kd.* says,
    and entries cached before objectives existed keep their keys), and then with its own settings and
    the teacher."""
    own = {k: v for k, v in keyed_settings(cfg).items() if k not in ("objective", "kd", "on_policy")}
    return digest({"v": VERSION, "base": model_identity(base), "cfg": own, "train": file_digest(train_file),
                   **numerics_key(cfg), **key_part(cfg, teacher)})


def run_finetune(
    base: ModelConfig, base_path: str | None, train_file: Path, cfg: FinetuneConfig, cache_dir: Path, out_dir: Path,
    use_cache: bool = True, client: Any = None, teacher: Teacher | None = None,
    drift_prompts: list[list[dict[str, str]]] | None = None,
) -> FinetuneOutput:
    """`client`: an `openai.OpenAI` client for the student's endpoint (`finetune=openai` only).
    `teacher`: the local teacher of finetune.objective kd / on_policy (its weights, its prompts).
    `drift_prompts`: student prompts held out from training (the evaluation questions'): a local
    fine-tune's metrics report the student's KL to the base on its answers to them (_drift.py)."""
    if cfg.method not in METHODS:
        raise HarnessError(f"finetune.method: unknown method '{cfg.method}'; available: {', '.join(METHODS)}")
    if cfg.method == "none":
        out = FinetuneOutput(base_path or base.model, "none", {"method": "none"}, True)
    elif cfg.method == "openai":
        from ..models import api_model_name, identity
        from ._openai import job_request, train_openai

        # what the job depends on: the endpoint and base model, the job request (hyper-parameters,
        # suffix, seed) and the file; not polling, not the go-ahead
        inputs = {"base": identity(base), "request": job_request(api_model_name(base.model), "<file>", cfg)}
        key = digest({"v": VERSION, **inputs, "train": file_digest(train_file)})
        entry = cache_dir / "finetune" / key
        cached = use_cache and (entry / "metrics.json").exists() and trusted(entry, "finetune")
        if not cached:
            metrics = train_openai(client, api_model_name(base.model), train_file, cfg, out_dir / "openai_job.json", inputs)
            write_json(entry / "metrics.json", metrics)
        metrics = json.loads((entry / "metrics.json").read_text())
        out = FinetuneOutput(metrics["fine_tuned_model"], key, metrics, cached)
    else:
        if not base_path:
            raise HarnessError(f"finetune.method={cfg.method} trains a local checkpoint: the student needs args.model_path "
                               "(for a hosted student use finetune=openai)")
        key = finetune_key(base, cfg, train_file, teacher)
        entry = cache_dir / "finetune" / key
        cached = True
        with locked(entry):
            # a truncated adapter/checkpoint is said and trained again, never loaded
            if not (use_cache and (entry / "metrics.json").exists() and trusted(entry, "finetune")):
                from ._local import train_local

                cached = False
                with atomic_dir(entry) as tmp:
                    if cfg.processes > 1:  # the harness launches the processes; rank 0 writes into tmp
                        from ._dist import launch

                        metrics = launch(base_path, train_file, cfg, tmp / "model", out_dir / "launch.log", teacher)
                    else:
                        metrics = train_local(base_path, train_file, cfg, tmp / "model", teacher=teacher)
                    metrics.update(drift(base_path, str(tmp / "model"), drift_prompts))  # "back to the base", measured
                    write_json(tmp / "metrics.json", metrics)
        metrics = json.loads((entry / "metrics.json").read_text())
        out = FinetuneOutput(str(entry / "model"), key, metrics, cached)
    write_json(out_dir / "student.json", asdict(out))
    return out
