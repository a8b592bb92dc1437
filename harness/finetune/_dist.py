"""`finetune.processes` > 1: the harness launches the training processes itself and waits for them.

The launcher is an existing one: `torch.distributed.run` (torchrun: gloo) for CPU processes, and
`accelerate launch` for GPUs (DDP), or for any run given `finetune.accelerate_config` (FSDP,
DeepSpeed, ... as that file says). Each process runs `python -m harness.finetune._worker <spec>`,
which is train_local() under accelerate; the main process (rank 0) writes the checkpoint, adapter,
step log and metrics into the cache entry's temp dir, which the calling stage renames into place
once every process has exited cleanly -- one entry, written once, whoever ran it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..config import FinetuneConfig, finetune_to_json
from ..errors import HarnessError
from ._objectives import Teacher


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(cfg: FinetuneConfig, device: str, spec: Path) -> list[str]:
    """The launcher command line for `cfg.processes` processes of this module."""
    worker = ["-m", "harness.finetune._worker", str(spec)]
    if device == "cpu" and not cfg.accelerate_config:
        # accelerate's own multi-CPU launch goes through MPI; torchrun starts plain processes (gloo)
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(cfg.processes), *worker]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(cfg.processes),
           "--main_process_port", str(_free_port())]
    if cfg.accelerate_config:
        cmd += ["--config_file", str(Path(cfg.accelerate_config).resolve())]
    elif device == "cpu":
        cmd += ["--cpu"]
    else:
        cmd += ["--multi_gpu"]
    return [*cmd, *worker]


def teacher_to_json(teacher: Teacher | None) -> dict[str, Any] | None:
    """The kd / on_policy teacher as plain JSON, for the spec: every process reads its prompts."""
    if teacher is None:
        return None
    return {"identity": teacher.identity, "model_path": teacher.model_path, "prompts": teacher.prompts,
            "cache_dir": str(teacher.cache_dir) if teacher.cache_dir else None}


def teacher_from_json(d: dict[str, Any] | None) -> Teacher | None:
    if d is None:
        return None
    return Teacher(d["identity"], d["model_path"], d["prompts"], Path(d["cache_dir"]) if d["cache_dir"] else None)


def launch(base_path: str, train_file: Path, cfg: FinetuneConfig, out_dir: Path, log: Path,
           teacher: Teacher | None = None) -> dict[str, Any]:
    """Run train_local in `cfg.processes` processes; returns the main process's metrics. The
    launcher's and the processes' stderr go to `log` (the run dir's student/launch.log); the main
    process's progress lines reach stdout as in a 1-process run. `teacher` (kd / on_policy) goes
    into the spec with the config: its prompts, weights and cache dir reach every process."""
    from ..models import resolve_device

    device = resolve_device(cfg.device)
    work = out_dir.parent
    spec, metrics = work / "launch.json", work / ".metrics.json"
    spec.write_text(json.dumps({"base_path": base_path, "train_file": str(Path(train_file).resolve()), "cfg": finetune_to_json(cfg),
                                "teacher": teacher_to_json(teacher), "out_dir": str(out_dir), "metrics": str(metrics)}),
                    encoding="utf-8")
    env = dict(os.environ)
    # the processes import this very harness (a source checkout too), whatever the working directory
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    if device == "cpu" and "OMP_NUM_THREADS" not in env:
        # each process its share of the cores, or their thread pools fight over them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cfg.processes))
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"[finetune] launching {cfg.processes} training processes on {device} (log: {log})", flush=True)
    with open(log, "w", encoding="utf-8") as err:
        rc = subprocess.run(command(cfg, device, spec), env=env, stdout=None, stderr=err, stdin=subprocess.DEVNULL).returncode
    spec.unlink(missing_ok=True)
    if rc != 0 or not metrics.is_file():
        lines = [x.strip() for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
        last = next((x for x in reversed(lines) if "Error" in x or "error:" in x), lines[-1] if lines else "no output")
        raise HarnessError(f"finetune.processes={cfg.processes}: the training processes failed (exit {rc}): {last[:300]}; "
                           f"the whole log: {log}")
    out = json.loads(metrics.read_text(encoding="utf-8"))
    metrics.unlink()
    return out


def sharding(accelerate_config: str | None) -> str | None:
    """The sharding an accelerate config file asks for (`FSDP`, `DEEPSPEED`, `MEGATRON_LM`), None for
    none (DDP, or no file). An unreadable file is check_scale's to report, not this."""
    import yaml  # accelerate's config files are YAML (or JSON, which YAML reads too)

    if not accelerate_config or not Path(accelerate_config).is_file():
        return None
    try:
        kind = str((yaml.safe_load(Path(accelerate_config).read_text(encoding="utf-8")) or {}).get("distributed_type", ""))
    except (yaml.YAMLError, AttributeError, OSError):
        return None
    return kind if kind.upper() in ("FSDP", "DEEPSPEED", "MEGATRON_LM") else None


def check_scale(ft: FinetuneConfig, where: str = "finetune") -> None:
    """Up front, one line each: device/precision (a device asked for but absent), the step's shape,
    the number of processes and the accelerate config file."""
    from ..models import check_device, resolve_device

    check_device(ft.device, ft.precision, where)
    if ft.grad_accumulation < 1:
        raise HarnessError(f"{where}.grad_accumulation must be >= 1, got {ft.grad_accumulation}")
    if ft.batch_size < 1:
        raise HarnessError(f"{where}.batch_size must be >= 1, got {ft.batch_size}")
    if ft.processes < 1:
        raise HarnessError(f"{where}.processes must be >= 1, got {ft.processes}")
    if ft.accelerate_config and not Path(ft.accelerate_config).is_file():
        raise HarnessError(f"{where}.accelerate_config: no such file: {ft.accelerate_config} (write one with `accelerate config`)")
    if ft.processes > 1 and resolve_device(ft.device) == "cuda" and not ft.accelerate_config:
        import torch

        if torch.cuda.device_count() < ft.processes:
            raise HarnessError(f"{where}.processes={ft.processes}: this machine has {torch.cuda.device_count()} GPU(s); one "
                               f"process per GPU (or an accelerate config with several machines: {where}.accelerate_config)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HarnessError("harness run is itself started by a distributed launcher (WORLD_SIZE is set): run it as one "
                           f"process and set {where}.processes=N; the harness launches the fine-tune's processes itself")
