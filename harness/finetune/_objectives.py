"""Distillation objectives of the local fine-tune: `sft`, `kd`, `on_policy` (finetune.objective).

- `sft`: cross-entropy on the teacher's answers (the loop's original loss, unchanged).
- `kd`: (1 - kd.weight) * SFT + kd.weight * D(teacher, student) at every answer position, D the
  generalised Jensen-Shannon divergence of TRL's GKD (`beta` 0 = forward KL, 1 = reverse KL). The
  teacher reads *its own* prompt -- for the demo's in-context teacher, the passage and the question,
  exactly as the generate stage rendered it -- followed by the same answer tokens, so its
  distribution at each answer token is aligned with the student's, whose prompt has no passage.
  Teacher log-probs are computed once (top-k per position plus one "rest of the vocabulary"
  bucket, so k = vocabulary size is the exact KL) and cached by content hash under `teacher/`.
- `on_policy`: the student samples answers to the training questions (its own prompt) during
  training, the teacher scores every sampled token (full vocabulary), the loss is the per-token
  divergence at `on_policy.beta` (1 = reverse KL: GKD's on-policy case). `on_policy.sft_fraction`
  of the steps are SFT first (`sft -> on_policy` in one fine-tune). Sampled answers change every
  step, so nothing of it can be cached.

The in-context teacher is the student's own base weights: with LoRA its logits come from the peft
model with the adapter disabled (`disable_adapter()`), no second copy in memory; a full fine-tune
(or a different local teacher with the same tokenizer) loads the teacher's weights once, frozen.

Why not TRL's GKDTrainer / DistillationTrainer: both feed the teacher the student's own input ids,
so a teacher that sees a passage the student does not (context distillation, the demo) does not fit
them, and the Trainer's per-step overhead measured 1.6x the plain loop on this machine's 2 cores
(harness/finetune/_local.py). The divergence follows TRL's `generalized_jsd_loss` (same `beta`
convention and mixture weights; no T^2 factor), reduced over a top-k support.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ._local import labelled_logits  # the SFT loss's own forward pass (stdlib-only at import; _local imports this module lazily)

OBJECTIVES = ("sft", "kd", "on_policy")
VERSION = 1  # of the teacher-logit cache entries


@dataclass(frozen=True)
class Teacher:
    """The local teacher of a kd / on_policy fine-tune."""

    identity: dict[str, Any]  # what about the teacher model determines its outputs (cache keys)
    model_path: str  # its resolved local checkpoint
    # per training row, in the training file's order: the messages the teacher answered (its
    # system + user turns; for a context teacher, with the passage)
    prompts: list[list[dict[str, str]]] = field(default_factory=list)
    cache_dir: Path | None = None  # where its cached log-probs go (None: not cached)


def key_part(cfg: Any, teacher: Teacher | None) -> dict[str, Any]:
    """What the objective adds to the fine-tune's cache key: nothing for sft (so entries cached
    before objectives existed stay valid), else the objective, its own settings and the teacher
    (model and every prompt it reads)."""
    from dataclasses import asdict

    from ..cache import digest

    if cfg.objective == "sft":
        return {}
    own = asdict(cfg.kd) if cfg.objective == "kd" else asdict(cfg.on_policy)
    return {"objective": cfg.objective, "objective_cfg": own,
            "teacher": teacher.identity if teacher else None, "teacher_prompts": digest(teacher.prompts) if teacher else None}


def divergence(s_logp: Any, t_logp: Any, beta: float) -> Any:
    """Per-position generalised JSD between two log-distributions over the same support (last dim),
    TRL's convention: beta 0 = KL(teacher || student), 1 = KL(student || teacher)."""
    import torch

    if beta == 0:
        return (t_logp.exp() * (t_logp - s_logp)).sum(-1)
    if beta == 1:
        return (s_logp.exp() * (s_logp - t_logp)).sum(-1)
    b = torch.tensor(beta, dtype=s_logp.dtype, device=s_logp.device)
    m = torch.logsumexp(torch.stack([s_logp + torch.log1p(-b), t_logp + torch.log(b)]), dim=0)
    return beta * (t_logp.exp() * (t_logp - m)).sum(-1) + (1 - beta) * (s_logp.exp() * (s_logp - m)).sum(-1)


def topk_support(logp: Any, idx: Any) -> Any:
    """Log-probs on the support {top-k tokens, rest}: gathered at `idx` (n, k), plus the log of the
    remaining mass (logsumexp of the other tokens, exact and stable: no 1 - sum)."""
    import torch

    rest = torch.logsumexp(logp.scatter(-1, idx, float("-inf")), dim=-1, keepdim=True)
    # k = the whole vocabulary leaves no rest: -inf there would make 0 * (-inf - -inf) = nan
    return torch.cat([logp.gather(-1, idx), rest.clamp(min=-1e4)], dim=-1)


def _pad(seqs: list[list[int]], value: int) -> Any:
    import torch

    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs])


def _answer_logits(body: Any, head: Any, prompts: list[list[int]], answers: list[list[int]], pad: int) -> Any:
    """Logits at every answer position (the positions that predict answer tokens), rows in order,
    flattened: shape (sum of answer lengths, vocab)."""
    import torch

    dev = _device(head)  # the model's device (a GPU under finetune.device=cuda)
    seqs = [p + a for p, a in zip(prompts, answers)]
    ids = _pad(seqs, pad).to(dev)
    att = _pad([[1] * len(s) for s in seqs], 0).to(dev)
    lab = _pad([[-100] * len(p) + a for p, a in zip(prompts, answers)], -100).to(dev)
    hidden = body(input_ids=ids, attention_mask=att).last_hidden_state
    keep = lab[:, 1:] != -100
    # .float(): under bf16/fp16 autocast the log-softmax and the divergence still run in fp32
    return head(hidden[:, :-1][keep]).float() if keep.any() else torch.zeros(0, head.out_features, device=dev)


def _device(module: Any) -> Any:
    return next(module.parameters()).device


def _split(ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    n = sum(1 for x in labels if x == -100)
    return ids[:n], ids[n:]


class Objective:
    """The loss of one batch, for the training loop (`train_local`), and what it measured."""

    def __init__(self, cfg: Any, base_path: str, model: Any, tok: Any, body: Any, head: Any,
                 data: list[tuple[list[int], list[int]]], teacher: Teacher | None, total_steps: int):
        self.cfg, self.base_path, self.model, self.tok, self.body, self.head, self.data = cfg, base_path, model, tok, body, head, data
        self.teacher, self.total = teacher, total_steps
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.seconds = {"teacher": 0.0, "sample": 0.0}
        self.sampled_tokens = 0
        self.sampled_rows = 0
        self.cached: bool | None = None
        self.sft_steps = total_steps
        self._own_teacher: Any = None
        self._started = False  # the first loss() call is the first training step
        if cfg.objective == "sft":
            return
        if teacher is None or len(teacher.prompts) != len(data):
            from ..errors import HarnessError

            raise HarnessError(f"finetune.objective={cfg.objective} needs the teacher's prompt for each of the {len(data)} "
                               "training rows (the pipeline passes them; a hand-made training file has none)")
        self.t_prompts = [self._prompt_ids(m) for m in teacher.prompts]
        if cfg.objective == "on_policy":
            self.sft_steps = round(cfg.on_policy.sft_fraction * total_steps)
        elif cfg.kd.top_k > 0:
            t = time.time()
            self.top = self._cached_topk()
            self.seconds["precompute"] = time.time() - t

    # ---------------------------------------------------------------- the teacher
    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False).input_ids

    @contextlib.contextmanager
    def _teacher(self) -> Iterator[tuple[Any, Any]]:
        """(body, head) of the teacher, for a no-grad forward pass."""
        import torch

        assert self.teacher is not None
        same = Path(self.teacher.model_path).resolve() == Path(self.base_path).resolve()
        with torch.no_grad():
            if same and self.cfg.method == "lora":
                with self.model.disable_adapter():  # the base weights, no second copy
                    yield self.body, self.head
                return
            if same and not self._started:  # a full fine-tune before its first step: still the base weights
                yield self.body, self.head
                return
            if self._own_teacher is None:  # a full fine-tune changes the base weights; another teacher is other weights
                from transformers import AutoModelForCausalLM

                m = AutoModelForCausalLM.from_pretrained(self.teacher.model_path, dtype=torch.float32).eval().to(_device(self.head))
                for p in m.parameters():
                    p.requires_grad_(False)
                self._own_teacher = m
            yield self._own_teacher.model, self._own_teacher.lm_head

    def _teacher_logits(self, rows: list[int], answers: list[list[int]]) -> Any:
        t = time.time()
        with self._teacher() as (body, head):
            out = _answer_logits(body, head, [self.t_prompts[i] for i in rows], answers, self.pad)
        self.seconds["teacher"] += time.time() - t
        return out

    def _cached_topk(self) -> list[tuple[Any, Any]]:
        """Per training row: (token ids (n, k), log-probs on {top-k, rest} (n, k + 1)) of the teacher at
        every answer position, from the cache or computed now (batched) and cached."""
        import numpy as np
        import torch

        from ..cache import atomic_dir, digest, locked, trusted, write_manifest

        assert self.teacher is not None
        kd = self.cfg.kd
        answers = [_split(ids, lab)[1] for ids, lab in self.data]
        key = digest({"v": VERSION, "teacher": self.teacher.identity, "prompts": self.t_prompts, "answers": answers,
                      "top_k": kd.top_k, "temperature": kd.temperature})
        names = ["index.npy", "logprob.npy", "lengths.npy"]
        entry = self.teacher.cache_dir / "teacher" / key if self.teacher.cache_dir else None

        def compute() -> tuple[Any, Any]:
            idx, lps = [], []
            for b in range(0, len(answers), self.cfg.batch_size):
                rows = list(range(b, min(b + self.cfg.batch_size, len(answers))))
                logp = torch.log_softmax(self._teacher_logits(rows, [answers[i] for i in rows]) / kd.temperature, dim=-1)
                k = min(kd.top_k, logp.shape[-1])
                top = logp.topk(k, dim=-1).indices
                idx.append(top.to(torch.int32))
                lps.append(topk_support(logp, top))
            return torch.cat(idx).cpu().numpy(), torch.cat(lps).cpu().numpy()

        lengths = np.array([len(a) for a in answers], dtype=np.int64)
        self.cached = False
        if entry is None:
            idx, lp = compute()
        else:
            with locked(entry):
                if (entry / "index.npy").exists() and trusted(entry, "teacher", names):
                    self.cached = True
                else:
                    with atomic_dir(entry) as tmp:
                        idx, lp = compute()
                        np.save(tmp / "index.npy", idx)
                        np.save(tmp / "logprob.npy", lp.astype(np.float32))
                        np.save(tmp / "lengths.npy", lengths)
                        write_manifest(tmp, names)
            idx, lp = np.load(entry / "index.npy"), np.load(entry / "logprob.npy")
        cut = np.concatenate([[0], np.cumsum(lengths)])
        return [(torch.from_numpy(idx[cut[i]:cut[i + 1]].astype(np.int64)), torch.from_numpy(lp[cut[i]:cut[i + 1]]))
                for i in range(len(answers))]

    # ---------------------------------------------------------------- the loss
    def loss(self, step: int, rows: list[int], ids: Any, att: Any, lab: Any) -> Any:
        """The loss of the batch of training rows `rows` (ids/att/lab: their padded tensors)."""
        import torch

        cfg = self.cfg
        self._started = True
        if cfg.objective == "on_policy" and step >= self.sft_steps:
            return self._on_policy(rows)
        logits, target = labelled_logits(self.body, self.head, ids, att, lab)
        sft = torch.nn.functional.cross_entropy(logits, target)
        if cfg.objective != "kd" or cfg.kd.weight == 0:
            return sft
        kd = cfg.kd
        s_logp = torch.log_softmax(logits / kd.temperature, dim=-1)
        if kd.top_k > 0:
            # cached on the CPU; the batch's slice moves to the model's device
            idx = torch.cat([self.top[i][0] for i in rows]).to(s_logp.device)
            t_sup = torch.cat([self.top[i][1] for i in rows]).to(s_logp.device)
            s_sup = topk_support(s_logp, idx)
        else:  # the whole vocabulary, from the teacher now
            answers = [_split(*self.data[i])[1] for i in rows]
            t_sup = torch.log_softmax(self._teacher_logits(rows, answers) / kd.temperature, dim=-1)
            s_sup = s_logp
        d = divergence(s_sup, t_sup, kd.beta).mean()
        return (1 - kd.weight) * sft + kd.weight * d

    def _on_policy(self, rows: list[int]) -> Any:
        """Sample an answer per row from the student, score it with the teacher, return the mean
        per-token divergence (reverse KL at beta 1) over the sampled tokens."""
        import torch

        op = self.cfg.on_policy
        prompts = [_split(*self.data[i])[0] for i in rows]
        t = time.time()
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts]).to(_device(self.head))  # left-padded for generation
        att = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts]).to(_device(self.head))
        eos = self.tok.eos_token_id
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():  # the samples are seeded: train_local seeds torch with finetune.seed

            out = self.model.generate(input_ids=ids, attention_mask=att, do_sample=True, temperature=op.temperature, top_k=0,
                                      top_p=1.0, max_new_tokens=op.max_new_tokens, pad_token_id=self.pad, eos_token_id=eos)
        if was_training:
            self.model.train()
        answers = []
        for row in out[:, width:].tolist():
            a = row[: row.index(eos) + 1] if eos in row else row  # through the end-of-turn token, as the SFT labels
            answers.append(a or [eos])
        self.sampled_tokens += sum(len(a) for a in answers)
        self.sampled_rows += len(rows)  # this process's share only (train_local gathers every process's)
        self.seconds["sample"] += time.time() - t
        t_logp = torch.log_softmax(self._teacher_logits(rows, answers) / op.temperature, dim=-1)
        s_logp = torch.log_softmax(_answer_logits(self.body, self.head, prompts, answers, self.pad) / op.temperature, dim=-1)
        return divergence(s_logp, t_logp, op.beta).mean()

    def metrics(self) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.objective == "sft":
            return {"objective": "sft"}
        # teacher_seconds: all the teacher's forward passes (kd's top-k log-probs: before the loop, 0 when
        # they came from the cache, and teacher_logits_seconds is that whole step; otherwise inside train_seconds)
        out: dict[str, Any] = {"objective": cfg.objective, "teacher_seconds": round(self.seconds["teacher"], 1)}
        if cfg.objective == "kd":
            out.update({"kd": {"weight": cfg.kd.weight, "beta": cfg.kd.beta, "temperature": cfg.kd.temperature, "top_k": cfg.kd.top_k}})
            if cfg.kd.top_k > 0:
                out.update({"teacher_logits_cached": self.cached, "teacher_logits_seconds": round(self.seconds.get("precompute", 0.0), 1)})
        else:
            out.update({"on_policy": {"sft_steps": self.sft_steps, "on_policy_steps": self.total - self.sft_steps,
                                      "beta": cfg.on_policy.beta, "temperature": cfg.on_policy.temperature},
                        "sampled_tokens": self.sampled_tokens, "sample_seconds": round(self.seconds["sample"], 1)})
        return out


def answer_divergence(student_path: str, teacher_path: str, rows: list[tuple[list[dict[str, str]], list[dict[str, str]], str]],
                      batch_size: int = 8) -> dict[str, float]:
    """How far a student is from the teacher on answers: per token, the student's cross-entropy on
    the answer, and the forward and reverse KL between the teacher's and the student's next-token
    distributions (whole vocabulary), averaged over all answer tokens. `rows`: (student messages,
    teacher messages, answer). For tests and bench/ (a held-out or validation loss), not the pipeline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(student_path)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    from ._local import encode

    s_model = AutoModelForCausalLM.from_pretrained(student_path, dtype=torch.float32).eval()
    t_model = AutoModelForCausalLM.from_pretrained(teacher_path, dtype=torch.float32).eval()
    sums = {"ce": 0.0, "forward_kl": 0.0, "reverse_kl": 0.0}
    n = 0
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            chunk = rows[b: b + batch_size]
            enc = [_split(*encode(tok, s + [{"role": "assistant", "content": a}])) for s, _, a in chunk]
            answers = [a for _, a in enc]
            t_prompts = [tok(tok.apply_chat_template(t, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
                         for _, t, _ in chunk]
            s = torch.log_softmax(_answer_logits(s_model.model, s_model.lm_head, [p for p, _ in enc], answers, pad), -1)
            t = torch.log_softmax(_answer_logits(t_model.model, t_model.lm_head, t_prompts, answers, pad), -1)
            target = torch.tensor([x for a in answers for x in a])
            sums["ce"] += float(-s.gather(-1, target[:, None]).sum())
            sums["forward_kl"] += float(divergence(s, t, 0.0).sum())
            sums["reverse_kl"] += float(divergence(s, t, 1.0).sum())
            n += len(target)
    return {k: v / max(1, n) for k, v in sums.items()}
