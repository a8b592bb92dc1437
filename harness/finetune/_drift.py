"""How far a trained student is from its base: "back to the base" measured, not inferred.

Two numbers, on every local fine-tune (run_finetune, after training, from the written checkpoint --
so a 1-process, a launched and a cached-then-reported run measure the same thing):

- `weight_delta_norm`: the Frobenius norm of (student - base) over every weight matrix, as one
  vector. For LoRA it is the norm of the merged update, B A alpha / r summed into W, over all
  layers: 0 for an adapter that learnt nothing or went back to zero.
- `kl_to_base`: per token, KL(student || base) on the student's own greedy answers to prompts held
  out from training (the pipeline passes the evaluation questions' student prompts): 0 when the
  student answers exactly as the base would. Kept cheap: at most DRIFT_PROMPTS prompts, DRIFT_TOKENS
  new tokens each, in one batch: one generate call of at most 40 steps, and it stops when every
  answer has ended.

Neither changes what is trained, so neither is in the fine-tune's cache key; the prompts' digest is
recorded beside the figure.
"""

from __future__ import annotations

from typing import Any

DRIFT_PROMPTS = 40
DRIFT_TOKENS = 40


def weight_delta_norm(student: Any, base: Any) -> float:
    """||W_student - W_base||_F over all parameters (tied weights counted once)."""
    import torch

    ref = dict(base.named_parameters())
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for name, p in student.named_parameters():
            total += (p.double() - ref[name].double()).pow(2).sum()
    return float(total.sqrt())


def kl_to_base(student: Any, base: Any, tok: Any, prompts: list[list[dict[str, str]]], batch_size: int = DRIFT_PROMPTS) -> dict[str, Any]:
    """Per-token KL(student || base) on the student's greedy answers (<= DRIFT_TOKENS) to `prompts`."""
    import torch

    from ..cache import digest
    from ._objectives import _answer_logits, divergence, generate_answers

    prompts = prompts[:DRIFT_PROMPTS]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    total, n = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(prompts), batch_size):
            ids = [tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
                   for m in prompts[b: b + batch_size]]
            # the student's logits come with its greedy answers (generate computed them): one forward
            # pass over the answers fewer, the base's (about a quarter of the drift's seconds)
            own: list[Any] = []
            answers = generate_answers(student, ids, pad, tok.eos_token_id, DRIFT_TOKENS, None, logits=own)
            s = torch.log_softmax(torch.cat(own), -1)
            r = torch.log_softmax(_answer_logits(base.model, base.lm_head, ids, answers, pad), -1)
            total += float(divergence(s, r, 1.0).sum())
            n += len(s)
    return {"per_token": round(total / max(1, n), 5), "prompts": len(prompts), "tokens": n, "max_new_tokens": DRIFT_TOKENS,
            "prompts_digest": digest(prompts)[:16]}


def drift(base_path: str, student_path: str, prompts: list[list[dict[str, str]]] | None) -> dict[str, Any]:
    """The fine-tune metrics' drift figures for the checkpoint at `student_path` (None prompts: the
    weight norm only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).eval()
    student = AutoModelForCausalLM.from_pretrained(student_path, dtype=torch.float32).eval()
    out: dict[str, Any] = {"weight_delta_norm": round(weight_delta_norm(student, base), 5)}
    if prompts:
        out["kl_to_base"] = kl_to_base(student, base, AutoTokenizer.from_pretrained(student_path), prompts)
    return out
