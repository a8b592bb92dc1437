"""Distillation objectives of the local fine-tune: `sft`, `kd`, `on_policy` (finetune.objective).

- `sft`: cross-entropy on the teacher's answers (the loop's original loss, unchanged).
- `kd`: (1 - kd.weight) * SFT + kd.weight * D(teacher, student) at every answer position, D the
  generalised Jensen-Shannon divergence of TRL's GKD (`beta` 0 = forward KL, 1 = reverse KL). The
  teacher reads *its own* prompt -- for the demo's in-context teacher, the passage and the question,
  exactly as the generate stage rendered it -- followed by the same answer tokens, so its
  distribution at each answer token is aligned with the student's, whose prompt has no passage.
  Teacher log-probs are computed once (top-k per position plus one "rest of the vocabulary"
  bucket, so k = vocabulary size is the exact KL) and cached by content hash under `teacher/`
  (fp16 log-probs, int32 ids, per answer token). `kd.t_squared` multiplies the divergence by T^2.
- `on_policy`: the student samples answers to the training questions (its own prompt) during
  training, the teacher scores every sampled token (full vocabulary), the loss is the per-token
  divergence at `on_policy.beta` (1 = reverse KL: GKD's on-policy case). With `on_policy.steps` > 0
  the whole SFT budget runs first and the on-policy steps follow (`sft -> on_policy`); a probe runs
  before the first on-policy step (`start_on_policy`). Sampled answers change every step, so
  nothing of it can be cached.

The in-context teacher is the student's own base weights: with LoRA its logits come from the peft
model with the adapter disabled (`disable_adapter()`), no second copy in memory; a full fine-tune
(or a different local teacher with the same tokenizer) loads the teacher's weights once, frozen.

Why not TRL's GKDTrainer / DistillationTrainer: both feed the teacher the student's own input ids,
so a teacher that sees a passage the student does not (context distillation, the demo) does not fit
them, and the Trainer's per-step overhead measured 1.6x the plain loop on this machine's 2 cores
(harness/finetune/_local.py). The divergence follows TRL's `generalized_jsd_loss` (same `beta`
convention and mixture weights; no T^2 factor unless kd.t_squared), reduced over a top-k support.

Temperature and T^2, as the prompt-distillation paper's code does it (Kujanpaa et al. 2024,
github.com/ziqiwangsilvia/prompt-distillation @ 5f92836, training/loss.py `_flat_kl`): both the
teacher's and the student's logits are divided by T (train_temperature, default 2.0) before
log_softmax, F.kl_div(student, teacher) -- forward KL(teacher || student) -- is summed over the
whole vocabulary, averaged over each sample's answer tokens, then over the batch; the loss is NOT
multiplied by T^2 (Hinton et al.'s correction for the 1/T^2 shrinkage of soft-target gradients).
So `kd.t_squared: false` is the paper's loss; true is Hinton's.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ._local import labelled_logits  # the SFT loss's own forward pass (stdlib-only at import; _local imports this module lazily)

OBJECTIVES = ("sft", "kd", "on_policy")
VERSION = 2  # of the teacher-logit cache entries (2: fp16 log-probs; 1 stored float32)
IF_BASE_PREFERRED = ("stop", "continue")
PROBE_ROWS = 32  # training rows the on-policy probe samples (the issue measured 24: 0.273 vs 0.594)


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
    if cfg.objective == "kd" and not own["t_squared"]:  # a key added later: earlier kd entries keep their keys
        del own["t_squared"]
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


class _Gumbel:
    """A logits processor that makes greedy decoding an exact sample at `temperature`: argmax of
    logits / T + Gumbel noise is a draw from softmax(logits / T) (the Gumbel-max trick). The noise of
    each row comes from its own generator, seeded by the caller per row, so a row's sample does not
    depend on which other rows share its batch: 2 micro-batches of 4 sample what 1 batch of 8 does."""

    def __init__(self, seeds: list[int], temperature: float):
        import torch

        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.t = temperature

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        # drawn on the CPU (one generator per row, the same numbers on every device), then moved
        u = torch.stack([torch.rand(scores.shape[-1], generator=g) for g in self.gens]).clamp(1e-20, 1 - 1e-7)
        return scores.float() / self.t - torch.log(-torch.log(u)).to(scores.device)


def row_seed(*parts: Any) -> int:
    """A 63-bit seed from (finetune.seed, what, step, row): stable across runs and processes."""
    import hashlib

    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") >> 1


def generate_answers(model: Any, prompts: list[list[int]], pad: int, eos: int, max_new_tokens: int,
                     temperature: float | None, seeds: list[int] | None = None, logits: list[Any] | None = None) -> list[list[int]]:
    """Each prompt's answer from `model.generate` (left-padded batch), greedy (`temperature` None) or
    sampled at `temperature` with one seed per row (_Gumbel: top_k 0, top_p 1 -- the whole
    distribution), cut after the first end token -- through it, as the SFT labels end -- never empty.
    `logits`: a list that receives, per answer, the model's logits at its positions (what generating
    computed anyway: no second forward pass over the answers)."""
    import torch
    from transformers import LogitsProcessorList

    width = max(len(p) for p in prompts)
    dev = next(model.parameters()).device
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts]).to(dev)
    att = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts]).to(dev)
    how: dict[str, Any] = {"do_sample": False}
    if temperature:
        assert seeds is not None and len(seeds) == len(prompts)
        how["logits_processor"] = LogitsProcessorList([_Gumbel(seeds, temperature)])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        if logits is not None:
            how |= {"output_logits": True, "return_dict_in_generate": True}
        out = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new_tokens, pad_token_id=pad,
                             eos_token_id=eos, **how)
    if was_training:
        model.train()
    steps = torch.stack(out.logits, 1) if logits is not None else None  # (rows, new tokens, vocab)
    seqs = out.sequences if logits is not None else out
    answers = []
    for b, row in enumerate(seqs[:, width:].tolist()):
        a = row[: row.index(eos) + 1] if eos in row else row
        answers.append(a or [eos])
        if steps is not None:
            logits.append(steps[b, : len(answers[-1])].float())
    return answers


class Objective:
    """The loss of one batch, for the training loop (`train_local`), and what it measured."""

    def __init__(self, cfg: Any, base_path: str, model: Any, tok: Any, body: Any, head: Any,
                 data: list[tuple[list[int], list[int]]], teacher: Teacher | None, total_steps: int):
        self.cfg, self.base_path, self.model, self.tok, self.body, self.head, self.data = cfg, base_path, model, tok, body, head, data
        self.teacher = teacher
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.seconds = {"teacher": 0.0, "sample": 0.0}
        self.sampled_tokens = 0
        self.sampled_rows = 0
        self.cached: bool | None = None
        # the SFT budget (finetune.epochs / max_steps) and the on-policy steps after it: `total` in all
        self.sft_steps, self.on_policy_steps = total_steps, 0
        self.probe: dict[str, Any] | None = None
        self._own_teacher: Any = None
        self._own_base: Any = None
        self._started = False  # the first loss() call is the first training step
        self._switched = False  # the on-policy phase has begun
        if cfg.objective == "sft":
            return
        from ..errors import HarnessError

        if teacher is None or len(teacher.prompts) != len(data):
            raise HarnessError(f"finetune.objective={cfg.objective} needs the teacher's prompt for each of the {len(data)} "
                               "training rows (the pipeline passes them; a hand-made training file has none)")
        self.t_prompts = [self._prompt_ids(m) for m in teacher.prompts]
        if cfg.objective == "on_policy":
            op = cfg.on_policy
            if op.sft_fraction > 0:  # also said by the pre-flight; here for callers of train_local itself
                raise HarnessError(RETIRED_SFT_FRACTION.format(op.sft_fraction))
            # steps 0: the whole budget on-policy from the base; > 0: all of SFT, then the on-policy steps
            self.sft_steps, self.on_policy_steps = (total_steps, op.steps) if op.steps > 0 else (0, total_steps)
        elif cfg.kd.top_k > 0:
            t = time.time()
            self.top = self._cached_topk()
            self.seconds["precompute"] = time.time() - t

    @property
    def total(self) -> int:
        return self.sft_steps + self.on_policy_steps

    # ---------------------------------------------------------------- the teacher
    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False).input_ids

    def _load(self, path: str) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().to(_device(self.head))
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    @contextlib.contextmanager
    def _teacher(self) -> Iterator[tuple[Any, Any]]:
        """(body, head) of the teacher, for a no-grad forward pass."""
        import torch

        assert self.teacher is not None
        same = Path(self.teacher.model_path).resolve() == Path(self.base_path).resolve()
        with torch.no_grad():
            if same:
                with self._base() as (_, body, head):
                    yield body, head
                return
            if self._own_teacher is None:  # another teacher is other weights, loaded once
                self._own_teacher = self._load(self.teacher.model_path)
            yield self._own_teacher.model, self._own_teacher.lm_head

    @contextlib.contextmanager
    def _base(self) -> Iterator[tuple[Any, Any, Any]]:
        """(model to generate with, body, head) of the untuned base: with LoRA the peft model with its
        adapter disabled (no second copy in memory); a full fine-tune before its first step is still
        the base, after it a frozen copy loaded once."""
        if self.cfg.method == "lora":
            with self.model.disable_adapter():
                yield self.model, self.body, self.head
            return
        if not self._started:
            yield self.model, self.body, self.head
            return
        if self._own_base is None:
            self._own_base = self._load(self.base_path)
        yield self._own_base, self._own_base.model, self._own_base.lm_head

    def _teacher_logits(self, rows: list[int], answers: list[list[int]]) -> Any:
        t = time.time()
        with self._teacher() as (body, head):
            out = _answer_logits(body, head, [self.t_prompts[i] for i in rows], answers, self.pad)
        self.seconds["teacher"] += time.time() - t
        return out

    def _cached_topk(self) -> list[tuple[Any, Any]]:
        """Per training row: (token ids (n, k), log-probs on {top-k, rest} (n, k + 1)) of the teacher at
        every answer position, from the cache or computed now (batched) and cached: fp16 log-probs and
        int32 ids, 6 bytes per kept token (k = 1024: 6 KiB per answer token; the whole vocabulary in
        fp16 would be 96 KiB)."""
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
            return torch.cat(idx).cpu().numpy(), torch.cat(lps).cpu().numpy().astype(np.float16)

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
                        np.save(tmp / "logprob.npy", lp)
                        np.save(tmp / "lengths.npy", lengths)
                        write_manifest(tmp, names)
            idx, lp = np.load(entry / "index.npy"), np.load(entry / "logprob.npy")
        # fp16 rounding leaves the support's mass 1 +- ~1e-3: renormalised (in float32) to a distribution
        logp = torch.from_numpy(lp.astype(np.float32))
        logp = logp - torch.logsumexp(logp, dim=-1, keepdim=True)
        cut = np.concatenate([[0], np.cumsum(lengths)])
        return [(torch.from_numpy(idx[cut[i]:cut[i + 1]].astype(np.int64)), logp[cut[i]:cut[i + 1]]) for i in range(len(answers))]

    # ---------------------------------------------------------------- the loss
    def loss(self, step: int, rows: list[int], ids: Any, att: Any, lab: Any) -> Any:
        """The loss of the batch of training rows `rows` (ids/att/lab: their padded tensors)."""
        import torch

        cfg = self.cfg
        self._started = True
        if cfg.objective == "on_policy" and step >= self.sft_steps:
            return self._on_policy(step, rows)
        logits, target = labelled_logits(self.body, self.head, ids, att, lab)
        sft = torch.nn.functional.cross_entropy(logits, target)
        if cfg.objective != "kd" or cfg.kd.weight == 0:
            return sft
        return (1 - cfg.kd.weight) * sft + cfg.kd.weight * self.kd_divergence(rows, logits)

    def kd_divergence(self, rows: list[int], logits: Any) -> Any:
        """kd's divergence at the answer positions of `rows`, whose student logits are `logits` (as
        `labelled_logits` returns them): mean per token, x T^2 with kd.t_squared."""
        import torch

        kd = self.cfg.kd
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
        return d * kd.temperature ** 2 if kd.t_squared else d

    def _sample(self, prompts: list[list[int]], seeds: list[int], model: Any = None) -> list[list[int]]:
        op = self.cfg.on_policy
        t = time.time()
        answers = generate_answers(model if model is not None else self.model, prompts, self.pad, self.tok.eos_token_id,
                                   op.max_new_tokens, op.temperature, seeds)
        self.seconds["sample"] += time.time() - t
        return answers

    def _on_policy(self, step: int, rows: list[int]) -> Any:
        """Sample an answer per row from the student (seeded per finetune.seed, step and row), score it
        with the teacher; each row's mean per-token divergence (reverse KL at beta 1), averaged over
        the rows weighted by their teacher answer's token count. That weight is the one train_local
        gives the batch (the labelled tokens), so any split of a global batch -- micro-batches,
        processes -- gives the same gradient."""
        import torch

        op = self.cfg.on_policy
        prompts = [_split(*self.data[i])[0] for i in rows]
        answers = self._sample(prompts, [row_seed(self.cfg.seed, "on_policy", step, i) for i in rows])
        self.sampled_tokens += sum(len(a) for a in answers)
        self.sampled_rows += len(rows)  # this process's share only (train_local gathers every process's)
        t_logp = torch.log_softmax(self._teacher_logits(rows, answers) / op.temperature, dim=-1)
        s_logp = torch.log_softmax(_answer_logits(self.body, self.head, prompts, answers, self.pad) / op.temperature, dim=-1)
        per_token = divergence(s_logp, t_logp, op.beta)
        cut = [0]
        for a in answers:
            cut.append(cut[-1] + len(a))
        w = torch.tensor([float(sum(1 for x in self.data[i][1][1:] if x != -100)) for i in rows], device=per_token.device)
        means = torch.stack([per_token[cut[k]:cut[k + 1]].mean() for k in range(len(rows))])
        return (w * means).sum() / w.sum()

    # ---------------------------------------------------------------- the on-policy phase and its probe
    def switches_at(self, step: int) -> bool:
        """Does the on-policy phase begin at `step` (train_local: probe, then a fresh optimizer)?"""
        return self.cfg.objective == "on_policy" and not self._switched and step == self.sft_steps

    def start_on_policy(self) -> bool:
        """The probe, before any on-policy step. True: train on. False: the teacher prefers the base
        and if_base_preferred is `stop`, after an SFT phase: end the fine-tune as the SFT student.
        From the untuned base there is nothing to keep: refused (HarnessError, one line)."""
        from ..errors import HarnessError

        self._switched = True
        p = self.probe = self._probe()
        if p["verdict"] != "base_preferred":
            p["action"] = "trained"
            return True
        line = (f"the on-policy probe: the teacher prefers the untuned base (per-token divergence {p['base_samples']:.3f} on the "
                f"base's own samples, {p['student_samples']:.3f} on {p['student']}), so on-policy steps would move the student "
                "back towards the base")
        if self.cfg.on_policy.if_base_preferred == "continue":
            p["action"] = "continued"
            print(f"[finetune] warning: {line}; going on (finetune.on_policy.if_base_preferred=continue)", flush=True)
            return True
        if self.sft_steps == 0:
            raise HarnessError(f"finetune.objective=on_policy: {line}; nothing trained. Use finetune.on_policy.steps=N "
                               "(after SFT), or finetune.on_policy.if_base_preferred=continue to train anyway")
        p["action"] = "stopped"
        print(f"[finetune] {line}; stopped before any on-policy step: the student is the SFT student "
              f"({self.sft_steps} steps; finetune.on_policy.if_base_preferred=continue trains on)", flush=True)
        return False

    def _probe(self) -> dict[str, Any]:
        """The on-policy loss (the divergence at on_policy.beta and temperature; reverse KL at the
        default) per token, on the base's own samples with the base, and on the current student's own
        samples with the student -- or, when the student is still the base, on the teacher's training
        answers. Seeded per row, apart from the training's own samples."""
        import random

        t = time.time()
        rows = sorted(random.Random(self.cfg.seed).sample(range(len(self.data)), min(PROBE_ROWS, len(self.data))))
        prompts = [_split(*self.data[i])[0] for i in rows]
        seeds = [row_seed(self.cfg.seed, "probe", i) for i in rows]
        with self._base() as (lm, body, head):
            on_base = self._probe_score(rows, prompts, self._sample(prompts, seeds, lm), (body, head))
        if self.sft_steps == 0:
            student, answers = "the teacher's training answers", [_split(*self.data[i])[1] for i in rows]
        else:
            student, answers = "the SFT student's own samples", self._sample(prompts, seeds)
        on_student = self._probe_score(rows, prompts, answers, (self.body, self.head))
        return {"rows": len(rows), "divergence": "reverse_kl" if self.cfg.on_policy.beta == 1 else f"gjsd_beta_{self.cfg.on_policy.beta}",
                "base_samples": round(on_base, 4), "student_samples": round(on_student, 4), "student": student,
                "verdict": "base_preferred" if on_base < on_student else "student_preferred", "seconds": round(time.time() - t, 1)}

    def _probe_score(self, rows: list[int], prompts: list[list[int]], answers: list[list[int]], model: tuple[Any, Any]) -> float:
        import torch

        op = self.cfg.on_policy
        with torch.no_grad():
            t_logp = torch.log_softmax(self._teacher_logits(rows, answers) / op.temperature, dim=-1)
            s_logp = torch.log_softmax(_answer_logits(*model, prompts, answers, self.pad) / op.temperature, dim=-1)
            return float(divergence(s_logp, t_logp, op.beta).mean())

    def metrics(self) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.objective == "sft":
            return {"objective": "sft"}
        # teacher_seconds: all the teacher's forward passes (kd's top-k log-probs: before the loop, 0 when
        # they came from the cache, and teacher_logits_seconds is that whole step; otherwise inside train_seconds)
        out: dict[str, Any] = {"objective": cfg.objective, "teacher_seconds": round(self.seconds["teacher"], 1)}
        if cfg.objective == "kd":
            out.update({"kd": {"weight": cfg.kd.weight, "beta": cfg.kd.beta, "temperature": cfg.kd.temperature, "top_k": cfg.kd.top_k,
                               "t_squared": cfg.kd.t_squared}})
            if cfg.kd.top_k > 0:
                out.update({"teacher_logits_cached": self.cached, "teacher_logits_seconds": round(self.seconds.get("precompute", 0.0), 1)})
        else:
            done = self.on_policy_steps if self.probe is None or self.probe.get("action") != "stopped" else 0
            out.update({"on_policy": {"sft_steps": self.sft_steps, "on_policy_steps": done, "planned_on_policy_steps": self.on_policy_steps,
                                      "lr": cfg.on_policy.lr, "beta": cfg.on_policy.beta, "temperature": cfg.on_policy.temperature},
                        "probe": self.probe, "sampled_tokens": self.sampled_tokens, "sample_seconds": round(self.seconds["sample"], 1)})
        return out


RETIRED_SFT_FRACTION = ("finetune.on_policy.sft_fraction={} is retired: sft -> on_policy now keeps the whole SFT budget "
                        "(finetune.epochs / max_steps) and adds on-policy steps after it; use finetune.on_policy.steps=N "
                        "(and sft_fraction=0)")


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
