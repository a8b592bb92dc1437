"""Local fine-tuning: LoRA (peft, merged afterwards) or full, with a plain PyTorch loop.

Why not TRL's SFTTrainer: measured here on 2 CPU cores it took 10.7 s per batch-8 step where this
loop takes 6.5 s for the same model, data and loss (its extra per-step work -- entropy and token
accuracy over the 49k vocabulary, Trainer bookkeeping -- is not free on a CPU). The loop is short:

- each row of the OpenAI chat JSONL is rendered with the model's own chat template -- the template
  inspect applies at evaluation -- and the loss covers only the final assistant turn;
- the LM head is applied only at the positions that carry a label, which skips most of the
  (vocabulary-sized) output projection;
- batches are shuffled by a seeded generator, padded to the longest row, AdamW + linear warmup/decay.

Devices and processes (docs/scale.md): one process runs plain PyTorch on `finetune.device` (the CPU
path is the loop it always was); under a launcher (`finetune.processes` > 1, _dist.py) the same loop
runs under accelerate (DDP; FSDP or DeepSpeed from an accelerate config). Every process builds the
same seeded sequence of global batches (batch_size x grad_accumulation rows) and trains its share of
each; the loss is summed per token and divided by the global batch's labelled-token count, so any
split -- over micro-batches or over processes -- gives the gradient of the whole batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from .._progress import Progress
from ..config import FinetuneConfig


def load_rows(train_file: Path) -> list[list[dict[str, str]]]:
    with open(train_file, encoding="utf-8") as f:
        return [json.loads(line)["messages"] for line in f if line.strip()]


def encode(tok: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are -100 except on the last assistant turn (incl. its end token)."""
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(messages, tokenize=False)
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    ids = tok(full, add_special_tokens=False).input_ids
    if ids[: len(p_ids)] != p_ids:  # a template that re-renders the prompt differently
        raise ValueError("chat template does not render the prompt as a prefix of the full conversation")
    # drop what the template appends after the end-of-turn token (a newline), it is not the answer
    end = len(ids)
    eos = tok.convert_tokens_to_ids(tok.eos_token) if tok.eos_token else None
    if eos is not None and eos in ids[len(p_ids):]:
        end = len(p_ids) + ids[len(p_ids):].index(eos) + 1
    ids = ids[:end]
    return ids, [-100] * len(p_ids) + ids[len(p_ids):]


# ---- the per-batch loss: ONE place (objectives plug in here) -------------------------------------
def labelled_logits(body: Any, head: Any, ids: Any, att: Any, lab: Any) -> tuple[Any, Any]:
    """(logits, targets) at the batch's labelled positions, in order: the LM head is applied only
    where a label is (the one forward pass that both the SFT loss and kd's divergence read)."""
    hidden = body(input_ids=ids, attention_mask=att).last_hidden_state
    # next-token prediction: position t predicts label t+1; project only labelled positions
    target = lab[:, 1:]
    keep = target != -100
    return head(hidden[:, :-1][keep]).float(), target[keep]


def batch_loss(body: Any, head: Any, ids: Any, att: Any, lab: Any) -> Any:
    """Sum over the batch's labelled tokens of the next-token cross-entropy (a sum, not a mean: the
    caller divides by the GLOBAL batch's token count, which keeps micro-batches and processes exact)."""
    import torch

    logits, target = labelled_logits(body, head, ids, att, lab)
    return torch.nn.functional.cross_entropy(logits, target, reduction="sum")
# ---------------------------------------------------------------------------------------------------


def _trainable(model: Any, method: str) -> Any:
    """The module the engine prepares (DDP/FSDP wrap it): forward(ids, att, lab) -> batch_loss, or,
    once train_local sets `.objective` (kd / on_policy), forward(ids, att, lab, step, rows) -> the
    objective's loss. A module of its own because a DDP-wrapped model only reduces gradients of calls
    through its forward: the objective's student pass (and its teacher pass and sampling, no-grad)
    must run inside it, not beside it."""
    import torch

    class LabelledLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = model
            # FSDP's transformer auto-wrap policy reads the block classes from here
            self._no_split_modules = getattr(model, "_no_split_modules", None)
            self.objective: Any = None  # a plain attribute, not a submodule: no parameters of its own

        def forward(self, ids: Any, att: Any, lab: Any, step: int = 0, rows: Any = None) -> Any:
            if self.objective is not None:  # kd / on_policy: the mean over its tokens (the caller makes it a sum)
                return self.objective.loss(step, rows, ids, att, lab)
            inner = self.lm.get_base_model() if method == "lora" else self.lm
            return batch_loss(inner.model, inner.lm_head, ids, att, lab)

    return LabelledLM()


class _Plain:
    """One process, plain PyTorch on one device: what differs from a launched run (see _Accelerate)."""

    world, rank, is_main, kind = 1, 0, True, "none"

    def __init__(self, device: str, precision: str) -> None:
        import torch

        self.device = torch.device("cuda:0" if device == "cuda" else device)
        self.precision = precision
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device == "cuda" else None

    def prepare(self, model: Any, opt: Any) -> tuple[Any, Any]:
        return model, opt

    def prepare_optimizer(self, opt: Any) -> Any:  # a later optimizer (on_policy's, after SFT)
        return opt

    def autocast(self) -> Any:
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def no_sync(self, model: Any) -> Any:
        return contextlib.nullcontext()

    def unwrap(self, model: Any) -> Any:
        return model

    def backward(self, loss: Any) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, model: Any, params: list[Any], opt: Any) -> float:
        import torch

        if self.scaler:
            self.scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        if self.scaler:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        return float(norm)

    def total(self, x: float) -> float:
        return x

    def gather(self, obj: Any) -> list[Any]:
        return [obj]

    def final(self, model: Any, build: Any) -> Any:
        return model.lm

    def close(self) -> None:
        pass


class _Accelerate(_Plain):
    """A process of a launched run: accelerate places it (gloo on CPU, NCCL on GPUs), wraps the model
    (DDP, or FSDP/DeepSpeed from the accelerate config) and does the mixed precision."""

    def __init__(self, device: str, precision: str) -> None:
        from accelerate import Accelerator

        self.acc = Accelerator(cpu=device == "cpu", mixed_precision="no" if precision == "fp32" else precision)
        self.device, self.precision = self.acc.device, precision
        self.world, self.rank, self.is_main = self.acc.num_processes, self.acc.process_index, self.acc.is_main_process
        self.kind = str(self.acc.distributed_type).rsplit(".", 1)[-1].lower()

    def prepare(self, model: Any, opt: Any) -> tuple[Any, Any]:
        return self.acc.prepare(model, opt)

    def prepare_optimizer(self, opt: Any) -> Any:
        return self.acc.prepare_optimizer(opt)

    def autocast(self) -> Any:
        return contextlib.nullcontext()  # prepare() wrapped the model's forward in autocast

    def no_sync(self, model: Any) -> Any:
        return self.acc.no_sync(model)

    def unwrap(self, model: Any) -> Any:
        return self.acc.unwrap_model(model)

    def backward(self, loss: Any) -> None:
        self.acc.backward(loss)

    def step(self, model: Any, params: list[Any], opt: Any) -> float:
        norm = self.acc.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(norm) if norm is not None else float("nan")

    def total(self, x: float) -> float:
        import torch

        return float(self.acc.reduce(torch.tensor(x, device=self.device), "sum"))

    def gather(self, obj: Any) -> list[Any]:
        from accelerate.utils import gather_object

        return gather_object([obj])

    def final(self, model: Any, build: Any) -> Any:
        """The trained model in one piece on the main process (None on the others). FSDP/DeepSpeed
        shard it: its full state dict is gathered (every process takes part) into a fresh copy."""
        if self.kind in ("fsdp", "deepspeed"):
            state = self.acc.get_state_dict(model)
            if not self.is_main:
                return None
            fresh = build()
            fresh.load_state_dict({k.removeprefix("lm."): v for k, v in state.items()})
            return fresh
        return self.acc.unwrap_model(model).lm if self.is_main else None

    def close(self) -> None:
        self.acc.wait_for_everyone()
        self.acc.end_training()


def _optimizer(params: list[Any], lr: float, steps: int, warmup_ratio: float) -> tuple[Any, Any]:
    """AdamW and its schedule (linear warmup over warmup_ratio of `steps`, then linear decay to 0 at
    the last step), stepped once per optimizer step -- on the plain optimizer: accelerate's scheduler
    wrapper would step it once per process."""
    import torch

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = round(warmup_ratio * steps)
    return opt, torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))


def _objective(cfg: FinetuneConfig, engine: _Plain, net: Any, base_path: str, model: Any, tok: Any,
               data: list[tuple[list[int], list[int]]], teacher: Any, total: int) -> Any:
    """The kd / on_policy objective of this process, hooked into the prepared module's forward."""
    import torch

    from ..errors import HarnessError
    from ._objectives import Objective

    if engine.kind in ("fsdp", "deepspeed"):  # the pre-flight refuses it too, from the accelerate config
        raise HarnessError(f"finetune.objective={cfg.objective} does not run sharded ({engine.kind}, finetune.accelerate_config): "
                           "its teacher passes and sampling call the model outside the sharded forward; use DDP (no config)")
    inner = model.get_base_model() if cfg.method == "lora" else model
    # kd's cached top-k: every process takes the entry's lock in turn -- the first computes and writes
    # it, the others wait on the lock (no collective: nothing can time out) and read it
    objective = Objective(cfg, base_path, model, tok, inner.model, inner.lm_head, data, teacher, total)
    if engine.world > 1 and cfg.objective == "on_policy":
        # each process its own sampling stream: with the one seed of build() every process would draw
        # the same random numbers for its different rows (samples correlated across processes)
        torch.manual_seed(cfg.seed * 100_003 + engine.rank)
    engine.unwrap(net).objective = objective
    return objective


def _objective_metrics(objective: Any, engine: _Plain) -> dict[str, Any]:
    """The objective's metrics, over every process: the sampled tokens of all, the seconds of the
    slowest (a wall-clock share: with kd's top-k computed by another process the main one's would be
    0), kd's cache hit only if no process computed the top-k."""
    out = objective.metrics()
    parts = engine.gather({"cached": objective.cached, "rows": objective.sampled_rows, "tokens": objective.sampled_tokens,
                           "seconds": objective.seconds})
    for name, key in (("teacher", "teacher_seconds"), ("sample", "sample_seconds")):
        if key in out:
            out[key] = round(max(p["seconds"][name] for p in parts), 1)
    if "teacher_logits_cached" in out:
        out["teacher_logits_cached"] = all(p["cached"] for p in parts)
    if "sampled_tokens" in out:
        out["sampled_tokens"] = sum(p["tokens"] for p in parts)
        out["sampled_rows_per_process"] = [p["rows"] for p in parts]  # each process samples its own share only
    return out


def launched() -> bool:
    """Is this process one of several started by a launcher (torchrun / accelerate launch)?"""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def train_local(base_path: str, train_file: Path, cfg: FinetuneConfig, out_dir: Path, teacher: Any = None) -> dict[str, Any]:
    """Train on `train_file`, write a merged transformers checkpoint to `out_dir` (and, for LoRA, the
    adapter to `out_dir.parent / "adapter"`, a per-step log to `out_dir.parent / "train_log.jsonl"`),
    return metrics. Under a launcher every process calls this; only the main one writes.
    `teacher`: a `_objectives.Teacher`, for finetune.objective kd / on_policy (every process gets it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models import resolve_device, resolve_precision

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, cfg.bf16)
    engine = _Accelerate(device, precision) if launched() else _Plain(device, precision)
    tok = AutoTokenizer.from_pretrained(base_path)

    def build() -> Any:
        torch.manual_seed(cfg.seed)  # the same LoRA init in every process and every run
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        if cfg.method == "lora":
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(
                r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM",
            ))
        return model

    model = build()
    if cfg.gradient_checkpointing:
        inner = model.get_base_model() if cfg.method == "lora" else model  # type: ignore[operator]
        # non-reentrant: works with frozen inputs (LoRA) and under DDP
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    data = [encode(tok, m) for m in load_rows(train_file)]
    labelled = [sum(1 for t in y[1:] if t != -100) for _, y in data]  # tokens each row's loss covers
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    accum = max(1, cfg.grad_accumulation)
    rows_per_step = cfg.batch_size * accum  # the global batch, whatever the number of processes
    steps_per_epoch = math.ceil(len(data) / rows_per_step)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, round(steps_per_epoch * cfg.epochs))
    net = _trainable(model, cfg.method)
    if not launched():  # accelerate places the model itself
        net.to(engine.device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt, sched = _optimizer(params, cfg.lr, total, cfg.warmup_ratio)
    net, opt = engine.prepare(net, opt)
    rng = random.Random(cfg.seed)
    world, rank = engine.world, engine.rank
    split = accum * world  # pieces of a global batch: micro-batch m of process r is piece m * world + r
    # --- objective (sft | kd | on_policy): the batch loss, teacher log-probs (harness/finetune/_objectives.py).
    # Built after prepare(), so the teacher passes run on the device the model was placed on; each process
    # computes it on its own pieces of the global batch (the rows it is handed below), inside the wrapped
    # module's forward (the gradient reduction).
    objective = None
    if cfg.objective != "sft":
        objective = _objective(cfg, engine, net, base_path, model, tok, data, teacher, total)
        total = objective.total  # sft -> on_policy: the SFT budget (its schedule above) + the on-policy steps
    # --- end objective

    def tensors(batch: list[tuple[list[int], list[int]]]) -> tuple[Any, Any, Any]:
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
        att = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
        lab = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
        return ids.to(engine.device), att.to(engine.device), lab.to(engine.device)

    net.train()
    step, tokens, epoch_losses, log, t0 = 0, 0, [], [], time.time()
    # a bar with loss and tok/s on a terminal; plain `[finetune] step i/n ...` lines otherwise
    bar = Progress("finetune", total, "step") if engine.is_main else None
    stopped = False  # the on-policy probe ended the fine-tune after its SFT phase
    while step < total and not stopped:
        order = list(range(len(data)))
        rng.shuffle(order)
        losses = []
        for b in range(0, len(order), rows_per_step):
            if step >= total:
                break
            if objective is not None and objective.switches_at(step):  # on_policy begins: the probe first
                if not objective.start_on_policy():
                    stopped = True
                    break
                # its own lr and schedule over its own steps, and a fresh AdamW: SFT's moments would
                # push on along SFT's last direction (beta1 0.9: ~10 steps) and scale the first
                # on-policy steps by SFT's gradient sizes. (Every process probes the same rows with the
                # same seeds and weights, so all of them stop or go on together.)
                opt, sched = _optimizer(params, cfg.on_policy.lr, total - step, cfg.warmup_ratio)
                opt = engine.prepare_optimizer(opt)
            rows = order[b : b + rows_per_step]
            n_tok = sum(labelled[i] for i in rows)
            pieces = [rows[k * len(rows) // split : (k + 1) * len(rows) // split] for k in range(split)]
            local, mine_all = 0.0, []
            for m in range(accum):
                mine = pieces[m * world + rank]
                mine_all += mine
                # a process with no rows in this piece (a short last batch) still runs a forward and
                # backward (zero loss): every process must take part in each gradient reduction
                ids, att, lab = tensors([data[i] for i in (mine or rows[:1])])
                with engine.no_sync(net) if m < accum - 1 else contextlib.nullcontext():
                    with engine.autocast():
                        if objective is None:
                            summed = net(ids, att, lab)
                        else:  # the objective's mean over its tokens, made a sum like batch_loss's
                            summed = net(ids, att, lab, step, mine or rows[:1]) * sum(labelled[i] for i in mine)
                    # DDP averages gradients over processes: x world makes that the global sum
                    engine.backward(summed * (world / max(1, n_tok) if mine else 0.0))
                if mine:
                    local += float(summed.detach())
            grad_norm = engine.step(net, params, opt)
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += sum(len(data[i][0]) for i in rows)
            loss = engine.total(local) / max(1, n_tok)
            losses.append(loss)
            # which rows were trained, over all processes (the data-order check: equal to a 1-process run's)
            trained = sorted(i for part in engine.gather(mine_all) for i in part)
            log.append({"step": step, "loss": round(loss, 6), "grad_norm": round(grad_norm, 6), "rows": trained})
            if bar:
                bar.update(1, loss=f"{sum(losses) / len(losses):.3f}", **{"tok/s": f"{tokens / (time.time() - t0):.0f}"})
        if losses:  # (none in an epoch the probe stopped at its start)
            epoch_losses.append(sum(losses) / len(losses))
    seconds = time.time() - t0
    if bar:
        bar.close()
    # before final(): gathering is a collective, and every process is still here
    own = _objective_metrics(objective, engine) if objective is not None else {"objective": "sft"}

    final = engine.final(net, build)
    if engine.is_main:
        final.eval()
        if cfg.method == "lora":  # the adapter beside the merged checkpoint: vLLM serves it with --enable-lora
            final.save_pretrained(out_dir.parent / "adapter", safe_serialization=True)
            final = final.merge_and_unload()
        out_dir.mkdir(parents=True, exist_ok=True)
        final.save_pretrained(out_dir, safe_serialization=True)
        tok.save_pretrained(out_dir)
        with open(out_dir.parent / "train_log.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(x) + "\n" for x in log)
    engine.close()
    order_digest = hashlib.sha256(json.dumps([x["rows"] for x in log]).encode()).hexdigest()[:16]
    return {
        "method": cfg.method,
        "examples": len(data),
        "steps": step,
        "epochs": round(step / steps_per_epoch, 2),
        "train_seconds": round(seconds, 1),
        "train_loss": round(epoch_losses[-1], 4),
        "loss_curve": [round(x, 4) for x in epoch_losses],
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "threads": torch.get_num_threads(),
        "device": str(engine.device),
        "precision": precision,
        "world_size": world,
        "distributed": engine.kind,
        "global_batch": rows_per_step,
        "grad_accumulation": accum,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "data_order": order_digest,
        "tokens": tokens,  # the sweep report's tokens per objective
        **own,  # the objective's teacher/sampling seconds and tokens
    }
