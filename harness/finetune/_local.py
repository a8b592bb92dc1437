"""Local fine-tuning with TRL's SFTTrainer + peft: LoRA (merged afterwards) or full.

The training file is the OpenAI chat JSONL written by `generate`; each row becomes a
prompt/completion pair so the loss covers only the teacher's answer (TRL's completion-only loss),
rendered with the model's own chat template -- the same template inspect applies at evaluation.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from ..config import FinetuneConfig


def _rows(train_file: Path) -> list[dict[str, Any]]:
    out = []
    with open(train_file, encoding="utf-8") as f:
        for line in f:
            msgs = json.loads(line)["messages"]
            out.append({"prompt": msgs[:-1], "completion": msgs[-1:]})
    return out


def train_local(base_path: str, train_file: Path, cfg: FinetuneConfig, out_dir: Path) -> dict[str, Any]:
    """Train on `train_file`, write a merged transformers checkpoint to `out_dir`, return metrics."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    rows = _rows(train_file)
    data = Dataset.from_list(rows)

    peft_config = None
    if cfg.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )

    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    args = SFTConfig(
        output_dir=str(out_dir.parent / "_trainer"),
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        lr_scheduler_type="linear",
        warmup_steps=max(0, round(cfg.warmup_ratio * steps_per_epoch * cfg.epochs)),
        bf16=cfg.bf16,  # on CPU: bf16 autocast, fp32 master weights
        use_cpu=True,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=max(1, steps_per_epoch),
        save_strategy="no",
        report_to=[],
        max_length=512,
        dataloader_num_workers=0,
        disable_tqdm=not os.isatty(2),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft_config)
    t0 = time.time()
    result = trainer.train()
    seconds = time.time() - t0
    model = trainer.model
    if cfg.method == "lora":
        model = model.merge_and_unload()
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    n_tokens = sum(
        len(tok(tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False)).input_ids) for r in rows
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "method": cfg.method,
        "examples": len(rows),
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_seconds": round(seconds, 1),
        "train_loss": round(float(result.training_loss), 4),
        "loss_curve": [round(x, 4) for x in losses],
        "tokens_per_second": round(n_tokens * (trainer.state.epoch or 0) / seconds, 1) if seconds else None,
    }
