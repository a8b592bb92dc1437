"""Training tokens/s of the harness's LoRA fine-tune vs a plain transformers + peft loop.

Data: the demo's training file -- `experiment=demo`'s data stage (120 training questions) and its
generate stage (the in-context teacher's answers, the embedded SmolLM2), both run through the
harness's own functions and cached in the harness cache (`$HARNESS_CACHE`, default .cache/harness;
the first run generates for ~2 min, later runs reuse it); or any OpenAI chat JSONL with --train-file.

Harness arm: `harness.finetune.run_finetune` -- what `harness run` calls for a student -- with the
demo's resolved fine-tune settings (LoRA r 16, alpha 32, dropout 0, all-linear, lr 3e-3, batch 8,
warmup 5 %, fp32, seed 0) and max_steps = --steps, cache off, into a temp dir. Its tokens/s is
the figure it reports itself (non-padding tokens / seconds of its training loop).
Plain arm: the textbook loop on the same rows and settings: chat template, labels only on the
assistant turn, a seeded shuffling DataLoader padding each batch to its longest row (pad = eos),
`model(input_ids, attention_mask, labels).loss` (the full LM head), AdamW + linear warmup/decay,
grad-norm clip 1.0, the same --steps; timed the same way (non-padding tokens / loop seconds).
Both arms load the model, add LoRA, train, merge and save; `*_wall_s` is that whole call.
Same process, same torch threads; the arms alternate (harness, plain, harness, plain) and the best
of each counts: ratio = harness tok/s / plain tok/s (goal >= 0.9).

Padding: the share of padded positions in each batch (mean over the batches trained), for the
harness from its batching rebuilt here (its encode(), its seeded shuffle and pad-to-longest: the
rebuilt non-padding token count is checked against the count the harness reports), and for the
plain loop as it ran.

Run: .venv/bin/python bench/finetune_throughput.py [--steps 8] [--repeats 2] [--train-file F] [overrides]
(~5 min on 2 idle cores once the training file is cached). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.cli import compose  # noqa: E402
from harness.config import FinetuneConfig, HarnessConfig, student_finetune, to_dataclass  # noqa: E402
from harness.data import run_data  # noqa: E402
from harness.finetune import run_finetune  # noqa: E402
from harness.generate import GenerateInput, run_generate  # noqa: E402
from harness.models import resolve_args  # noqa: E402


def config(overrides: list[str]) -> HarnessConfig:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(compose(overrides), resolve=False)
    plain.pop("hydra", None)
    return to_dataclass(OmegaConf.create(plain))


def demo_train_file(cfg: HarnessConfig, out: Path) -> Path:
    """The demo's data stage and generate stage (cached by the harness like in `harness run`)."""
    cache_dir = Path(cfg.cache_dir)
    data = run_data(cfg.data, out / "data", cache_dir=cache_dir)
    teacher = cfg.models["teacher"]
    gen = run_generate(GenerateInput(data.train, teacher, resolve_args("teacher", teacher.args, cache_dir), cfg.generate,
                                     student_prompt=cfg.eval.prompt, system=cfg.eval.system, data_key=data.train_key,
                                     cache_dir=cache_dir, out_dir=out / "data"))
    return gen.train_file


def pad_share(widths_and_lengths: list[tuple[int, list[int]]]) -> tuple[float, int]:
    """(mean over batches of padded positions / positions, non-padding tokens)."""
    shares = [1 - sum(lens) / (w * len(lens)) for w, lens in widths_and_lengths]
    return sum(shares) / len(shares), sum(sum(lens) for _, lens in widths_and_lengths)


def harness_batches(base: str, train_file: Path, ftc: FinetuneConfig, steps: int) -> list[tuple[int, list[int]]]:
    """The harness loop's batches (width, row lengths), rebuilt: its encode(), random.Random(seed)
    shuffle per epoch, batches of batch_size in that order, padded to the longest."""
    from transformers import AutoTokenizer

    from harness.finetune._local import encode, load_rows  # the bench rebuilds the loop's batching; not an API

    tok = AutoTokenizer.from_pretrained(base)
    lens = [len(encode(tok, m)[0]) for m in load_rows(train_file)]
    rng, out = random.Random(ftc.seed), []
    while len(out) < steps:
        order = list(range(len(lens)))
        rng.shuffle(order)
        for b in range(0, len(order), ftc.batch_size):
            if len(out) >= steps:
                break
            batch = [lens[i] for i in order[b:b + ftc.batch_size]]
            out.append((max(batch), batch))
    return out


def harness_arm(cfg: HarnessConfig, base: str, train_file: Path, ftc: FinetuneConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        t = time.perf_counter()
        ft = run_finetune(cfg.models["student"], base, train_file, ftc, Path(tmp) / "cache", Path(tmp) / "student", use_cache=False)
        wall = time.perf_counter() - t
    m = ft.metrics
    return {"tok_s": m["tokens_per_second"], "loop_s": m["train_seconds"], "wall_s": wall, "steps": m["steps"],
            "tokens": round(m["tokens_per_second"] * m["train_seconds"]), "threads": m["threads"], "loss": m["train_loss"]}


def plain_arm(base: str, train_file: Path, ftc: FinetuneConfig) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    t = time.perf_counter()
    torch.manual_seed(ftc.seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=ftc.lora.r, lora_alpha=ftc.lora.alpha, lora_dropout=ftc.lora.dropout,
                                             target_modules=ftc.lora.target_modules, task_type="CAUSAL_LM"))
    rows = []
    with open(train_file, encoding="utf-8") as f:
        for line in f:
            msgs = json.loads(line)["messages"]
            prompt = tok(tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False), add_special_tokens=False).input_ids
            ids = tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False).input_ids
            rows.append((ids, [-100] * len(prompt) + ids[len(prompt):]))
    pad = tok.eos_token_id

    def collate(batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        w = max(len(x) for x, _ in batch)
        return {"input_ids": torch.tensor([x + [pad] * (w - len(x)) for x, _ in batch]),
                "attention_mask": torch.tensor([[1] * len(x) + [0] * (w - len(x)) for x, _ in batch]),
                "labels": torch.tensor([y + [-100] * (w - len(y)) for _, y in batch])}

    loader = DataLoader(rows, batch_size=ftc.batch_size, shuffle=True, collate_fn=collate,  # type: ignore[arg-type]
                        generator=torch.Generator().manual_seed(ftc.seed))
    steps = ftc.max_steps
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=ftc.lr, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, round(ftc.warmup_ratio * steps), steps)
    model.train()
    step, tokens, batches, t0 = 0, 0, [], time.perf_counter()
    while step < steps:
        for batch in loader:
            if step >= steps:
                break
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            lens = batch["attention_mask"].sum(1).tolist()
            tokens += sum(lens)
            batches.append((batch["input_ids"].shape[1], lens))
    loop = time.perf_counter() - t0
    model.eval()
    with tempfile.TemporaryDirectory(prefix="ft-bench-plain-") as tmp:
        model.merge_and_unload().save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    wall = time.perf_counter() - t
    share, _ = pad_share(batches)
    return {"tok_s": round(tokens / loop, 1), "loop_s": round(loop, 1), "wall_s": wall, "steps": step, "tokens": tokens,
            "threads": torch.get_num_threads(), "loss": round(float(loss.detach()), 4), "pad_share": share}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per arm (default 8, ~1 min)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each arm, alternating (default 2)")
    ap.add_argument("--train-file", type=Path, help="an OpenAI chat JSONL (default: the demo's, generated once and cached)")
    ap.add_argument("overrides", nargs="*", default=["experiment=demo"], help="config overrides (default: experiment=demo)")
    a = ap.parse_args()
    # the embedding model only feeds the leak check and data card, not the training rows
    cfg = config([*a.overrides, "data.embedding_model=null"])
    ftc = replace(student_finetune(cfg, "student"), max_steps=a.steps)
    if ftc.method != "lora":
        sys.exit(f"finetune.method is {ftc.method}; this benchmark compares LoRA fine-tunes")
    base = resolve_args("student", cfg.models["student"].args, Path(cfg.cache_dir))["model_path"]
    with tempfile.TemporaryDirectory(prefix="ft-bench-data-") as tmp:
        train_file = a.train_file or demo_train_file(cfg, Path(tmp))
        n_rows = sum(1 for line in open(train_file, encoding="utf-8") if line.strip())
        load0 = os.getloadavg()[0]
        print(f"{n_rows} training rows ({train_file.name}); LoRA r {ftc.lora.r} alpha {ftc.lora.alpha} {ftc.lora.target_modules}, "
              f"lr {ftc.lr}, batch {ftc.batch_size}, {a.steps} steps; {a.repeats} alternating repeats; load {load0:.1f} on "
              f"{os.cpu_count()} CPUs", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"harness": [], "plain": []}
        for r in range(a.repeats):
            for arm in runs:
                res = harness_arm(cfg, base, train_file, ftc) if arm == "harness" else plain_arm(base, train_file, ftc)
                runs[arm].append(res)
                print(f"[{arm}] repeat {r + 1}: {res['tok_s']:.1f} tok/s ({res['tokens']} tokens in {res['loop_s']:.1f} s of "
                      f"{res['steps']} steps; {res['wall_s']:.1f} s with load, merge, save; loss {res['loss']}; "
                      f"{res['threads']} threads; load {os.getloadavg()[0]:.1f})", flush=True)
        h_share, h_tokens = pad_share(harness_batches(base, train_file, ftc, a.steps))
    best = {arm: max(rs, key=lambda x: x["tok_s"]) for arm, rs in runs.items()}
    reported = runs["harness"][0]["tokens"]
    if abs(h_tokens - reported) > 0.01 * reported:  # the rebuilt batching is not the loop's: the padding figure would be wrong
        print(f"warning: rebuilt harness batches hold {h_tokens} tokens, the harness counted ~{reported}", file=sys.stderr)
    out = {
        "ratio": round(best["harness"]["tok_s"] / best["plain"]["tok_s"], 3),
        "harness_tok_s": [x["tok_s"] for x in runs["harness"]], "plain_tok_s": [x["tok_s"] for x in runs["plain"]],
        "harness_loop_s": [x["loop_s"] for x in runs["harness"]], "plain_loop_s": [x["loop_s"] for x in runs["plain"]],
        "harness_wall_s": [round(x["wall_s"], 1) for x in runs["harness"]], "plain_wall_s": [round(x["wall_s"], 1) for x in runs["plain"]],
        "wall_ratio": round(min(x["wall_s"] for x in runs["plain"]) / min(x["wall_s"] for x in runs["harness"]), 3),
        "harness_pad_share": round(h_share, 3), "plain_pad_share": round(runs["plain"][0]["pad_share"], 3),
        "harness_tokens": reported, "harness_tokens_rebuilt": h_tokens, "plain_tokens": runs["plain"][0]["tokens"],
        "steps": a.steps, "batch_size": ftc.batch_size, "rows": n_rows, "threads": runs["harness"][0]["threads"],
        "loadavg_1m": [round(load0, 1), round(os.getloadavg()[0], 1)], "cpus": os.cpu_count(),
    }
    print(f"harness {best['harness']['tok_s']} vs plain {best['plain']['tok_s']} tok/s: ratio {out['ratio']}; padding "
          f"{h_share:.1%} (harness) vs {out['plain_pad_share']:.1%} (plain)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
