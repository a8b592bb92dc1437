"""What the harness's evaluation costs over generating the same answers directly.

Two comparisons, each on the demo's evaluation items (`experiment=demo`: 40 held-out + 20 control
questions, its system prompt, eval.max_tokens = 40, eval.batch_size = 32, greedy):

- server: the embedded GGUF behind one real llama.cpp server on 127.0.0.1 (harness.models.llama_server,
  the code `serve:` model entries use). Harness arm = `harness.evaluate.run_evaluate` -- the evaluate
  stage `harness run` calls -- with a model entry `openai-api/llamacpp/smollm2` pointing at the server
  (inspect's eval_set, its openai-api provider, max_connections = eval.batch_size, the exact and
  contains graders, logs written). Plain arm = the `openai` client in a thread pool of eval.batch_size
  workers, the same messages, max_tokens and temperature 0. Goal: ratio <= 1.10.
- hf: the embedded SmolLM2 in-process (model/smollm2: inspect's `hf/` provider on the converted fp32
  checkpoint). Harness arm = run_evaluate as above with that model entry (its batches fire when
  complete: harness.models.batched_hf). Plain arm = transformers `model.generate` (greedy,
  max_new_tokens = eval.max_tokens) over the same chat-templated prompts in batches of
  eval.batch_size, left-padded with eos, as inspect's provider tokenises them. A third arm,
  `inspect`, is the harness arm with inspect's own batching (what the evaluate stage did before
  batched_hf: a partial batch waits inspect's 2 s timer, answers are polled once a second); its
  ratio is `hf_inspect_ratio`, and `hf_same_as_inspect` the share of answers identical to the
  harness arm's. The batches each arm generated are printed (size, seconds), and the seconds of
  each run spent outside them (`hf_<arm>_outside_batches_s`: loading, eval_set, logs, and any wait
  for a batch to fire; less sensitive to load than the ratios). All arms load the model
  inside the clock (inspect's model memo is cleared between repeats). Goal: ratio <= 1.10.
  On the CPU the harness generates two batches at once (harness.models._hf.cpu_workers), which the
  plain one-batch-at-a-time loop does not: a fourth arm, `parallel`, is the plain loop with the same
  two batches at once; `hf_parallel_ratio` = harness / it is the harness's overhead alone, and
  `hf_ratio` what a user gains over the loop they would write. `ratio` is the worst of the three.

The arms alternate (harness, plain, harness, plain, ... `--repeats` times each) so load from other
jobs on a shared machine falls on both; ratio = best harness seconds / best plain seconds. Output
tokens are counted the same way for every arm: the answer text re-tokenised with the model's
tokenizer. `identical` = the share of items whose answer text is the same in both arms (greedy: it
should be near 1; the llama.cpp server and transformers give different text from each other, so
each comparison is within one backend).

The judge graders are left out of the timed arms (a plain loop has no judge); `--judge` adds one
more harness run of the hf comparison with the demo's LLM judge grader, reported as `hf_judge_s`.

CPU seconds per arm (this process, plus the llama.cpp server's for the server comparison) are reported
too (`*_cpu_s`, `*_cpu_ratio`); on a shared machine they move less than wall time, though torch's two
OpenMP threads spin when one of them is descheduled, so heavy load inflates CPU time as well.

Where the hf arm's extra seconds went (measured): inspect's hf provider generates a batch once
eval.batch_size requests are queued or none arrived for 2 s, and each waiting sample polls its
result once a second, so every partial batch (here the second, 28 items) cost ~3 s; eval_set's
setup and log writing the rest. Fixed: the batch sizes are planned (harness/models/_hf.py), and
inspect's per-call model info lookup no longer loads an `hf/` model a second time on the event loop
(harness.evaluate.register_model_info).

Run: .venv/bin/python bench/eval_overhead.py [--only server|hf] [--repeats 2] [--limit N] [--judge]
(~6 min on 2 idle cores). Last line: one JSON object: `ratio` (the worst of the ratios),
`server_ratio`, `hf_ratio`, `hf_parallel_ratio`, `hf_inspect_ratio`, per-arm seconds of every repeat, output tok/s, answers per arm, the share
identical, and loadavg_1m at start and end.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harness.cli import compose  # noqa: E402
from harness.config import HarnessConfig, to_dataclass  # noqa: E402
from harness.data import EvalItem, build  # noqa: E402
from harness.evaluate import EvalModel, run_evaluate  # noqa: E402
from harness.models import embedded_gguf, llama_server, resolve_args  # noqa: E402
from harness.prompts import chat, render  # noqa: E402

SERVED = "smollm2"  # the name the llama.cpp server serves the GGUF under


def config(overrides: list[str]) -> HarnessConfig:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(compose(overrides), resolve=False)
    plain.pop("hydra", None)
    return to_dataclass(OmegaConf.create(plain))


def messages(cfg: HarnessConfig, it: EvalItem) -> list[dict[str, str]]:
    return chat(cfg.eval.system, render(cfg.eval.prompt, it.question))


def read_answers(logs: list[str]) -> dict[str, str]:
    """task/id -> answer text, from the harness's inspect logs."""
    from inspect_ai.log import read_eval_log

    out = {}
    for path in logs:
        log = read_eval_log(path)
        for s in log.samples or []:
            out[f"{log.eval.task}/{s.id}"] = s.output.completion.strip()
    return out


def harness_arm(model: EvalModel, items: list[EvalItem], cfg: HarnessConfig, graders: dict, judge: Any = None) -> tuple[float, dict[str, str]]:
    import inspect_ai.model._model as memo

    memo._models.clear()  # every repeat loads its model, as a `harness run` does once per model
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="eval-overhead-") as tmp:
        t = time.perf_counter()
        out = run_evaluate([model], items, cfg.eval, graders, Path(tmp) / "logs", judge)
        wall = time.perf_counter() - t
        return wall, read_answers(out.logs[model.alias])


@contextlib.contextmanager
def inspect_batching() -> Iterator[None]:
    """The evaluate stage as it was before harness.models.batched_hf: inspect's own hf/ batching (a
    partial batch waits the 2 s timer, answers polled once a second)."""
    from inspect_ai.model._providers import hf

    import harness.models

    saved = hf.batched_generate, harness.models.batched_hf, os.environ.get("HARNESS_HF_WORKERS")
    hf.batched_generate = getattr(saved[0], "_original", saved[0])
    harness.models.batched_hf = lambda model, plan: model  # type: ignore[assignment]
    os.environ["HARNESS_HF_WORKERS"] = "1"  # one batch at a time, as inspect's own thread
    try:
        yield
    finally:
        hf.batched_generate, harness.models.batched_hf = saved[:2]
        if saved[2] is None:
            os.environ.pop("HARNESS_HF_WORKERS", None)
        else:
            os.environ["HARNESS_HF_WORKERS"] = saved[2]


BATCHES: list[tuple[int, float, float]] = []  # (size, start, end) of each batch inspect's hf provider generated, in order
OUTSIDE: dict[str, list[float]] = {}  # arm -> seconds of each run not spent generating a batch


def record_batches() -> None:
    from inspect_ai.model._providers import hf

    generate_batch = hf._generate_batch

    def recorded(batch: list) -> None:
        t = time.perf_counter()
        generate_batch(batch)
        BATCHES.append((len(batch), t, time.perf_counter()))

    hf._generate_batch = recorded


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one batch was generating (two batches at once count once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def with_batches(name: str, arm: Callable[[], tuple[float, dict[str, str]]]) -> Callable[[], tuple[float, dict[str, str]]]:
    """The arm, printing its batches, and keeping the seconds it spent outside them (model loading,
    eval_set, logs, and any wait for a batch to fire)."""
    def run() -> tuple[float, dict[str, str]]:
        BATCHES.clear()
        wall, answers = arm()
        OUTSIDE.setdefault(name, []).append(round(wall - covered([(a, b) for _, a, b in BATCHES]), 2))
        print(f"  batches (size, s): {[(n, round(b - a, 1)) for n, a, b in BATCHES]}; outside them {OUTSIDE[name][-1]:.1f} s", flush=True)
        return wall, answers
    return run


def inspect_arm(model: EvalModel, items: list[EvalItem], cfg: HarnessConfig, graders: dict) -> tuple[float, dict[str, str]]:
    with inspect_batching():
        return harness_arm(model, items, cfg, graders)


def plain_server_arm(base_url: str, api_key: str, items: list[EvalItem], cfg: HarnessConfig) -> tuple[float, dict[str, str]]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=cfg.eval.max_retries, timeout=cfg.eval.timeout)

    def ask(it: EvalItem) -> str:
        r = client.chat.completions.create(model=SERVED, messages=messages(cfg, it), max_tokens=cfg.eval.max_tokens,  # type: ignore[arg-type]
                                           temperature=cfg.eval.temperature)
        return (r.choices[0].message.content or "").strip()

    t = time.perf_counter()
    with ThreadPoolExecutor(cfg.eval.batch_size) as pool:
        texts = list(pool.map(ask, items))
    wall = time.perf_counter() - t
    return wall, {f"{it.task}/{it.id}": a for it, a in zip(items, texts)}


def plain_hf_arm(ckpt: str, items: list[EvalItem], cfg: HarnessConfig, workers: int = 1) -> tuple[float, dict[str, str]]:
    """What inspect's hf provider does per batch, without inspect: chat template (generation prompt,
    as text), tokenise with left padding (pad = eos), generate greedily, decode the new tokens.
    `workers` > 1: that many batches at once, each in its own thread on torch's threads / workers
    (what the harness does on the CPU: harness.models._hf.cpu_workers), tokenising under one lock."""
    import threading

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(ckpt)
    tok.pad_token, tok.padding_side = tok.eos_token, "left"
    model = AutoModelForCausalLM.from_pretrained(ckpt, device_map="cpu")
    prompts = [tok.apply_chat_template(messages(cfg, it), add_generation_prompt=True, tokenize=False) for it in items]
    b = cfg.eval.batch_size
    lock = threading.Lock()

    def batch(i: int) -> list[str]:
        with lock:
            enc = tok(prompts[i:i + b], return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = model.generate(**enc, do_sample=False, max_new_tokens=cfg.eval.max_tokens, pad_token_id=tok.eos_token_id)
        with lock:
            return [x.strip() for x in tok.batch_decode(ids[:, enc.input_ids.shape[1]:], skip_special_tokens=True,
                                                        clean_up_tokenization_spaces=False)]

    threads = max(1, torch.get_num_threads() // workers)
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,)) if workers > 1 else contextlib.nullcontext() as pool:
        parts = list(pool.map(batch, range(0, len(prompts), b))) if pool else [batch(i) for i in range(0, len(prompts), b)]
    texts = [x for part in parts for x in part]
    wall = time.perf_counter() - t
    return wall, {f"{it.task}/{it.id}": a for it, a in zip(items, texts)}


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process, plus those of process `pid` (the llama.cpp server)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    other = 0.0
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        other = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return r.ru_utime + r.ru_stime + other


def compare(name: str, arms: dict[str, Callable[[], tuple[float, dict[str, str]]]], repeats: int, count: Callable[[str], int],
            server_pid: int | None = None) -> dict[str, Any]:
    """Alternate the arms `repeats` times; best seconds per arm; answers from each arm's last run."""
    secs: dict[str, list[float]] = {a: [] for a in arms}
    cpus: dict[str, list[float]] = {a: [] for a in arms}
    answers: dict[str, dict[str, str]] = {}
    for r in range(repeats):
        for arm, fn in arms.items():
            c = cpu_seconds(server_pid)
            wall, answers[arm] = fn()
            cpus[arm].append(round(cpu_seconds(server_pid) - c, 2))
            secs[arm].append(round(wall, 2))
            print(f"[{name}] repeat {r + 1}: {arm} {wall:.1f} s ({cpus[arm][-1]:.1f} s CPU), {len(answers[arm])} answers "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    h, p = answers["harness"], answers["plain"]
    tokens = {arm: sum(count(t) for t in a.values()) for arm, a in answers.items()}
    best = {arm: min(s) for arm, s in secs.items()}
    shared = h.keys() & p.keys()
    res = {
        f"{name}_ratio": round(best["harness"] / best["plain"], 3),
        f"{name}_harness_s": secs["harness"], f"{name}_plain_s": secs["plain"],
        f"{name}_cpu_ratio": round(min(cpus["harness"]) / min(cpus["plain"]), 3),
        f"{name}_harness_cpu_s": cpus["harness"], f"{name}_plain_cpu_s": cpus["plain"],
        f"{name}_harness_tok_s": round(tokens["harness"] / best["harness"], 1),
        f"{name}_plain_tok_s": round(tokens["plain"] / best["plain"], 1),
        f"{name}_answers": [len(h), len(p)],
        f"{name}_identical": round(sum(h[k] == p[k] for k in shared) / max(1, len(shared)), 3),
    }
    print(f"[{name}] harness {best['harness']:.1f} s vs plain {best['plain']:.1f} s: ratio {res[f'{name}_ratio']}; "
          f"{res[f'{name}_harness_tok_s']} vs {res[f'{name}_plain_tok_s']} output tok/s; identical {res[f'{name}_identical']:.0%}", flush=True)
    if "inspect" in answers:  # the evaluate stage with inspect's own batching, as before harness.models.batched_hf
        old = answers["inspect"]
        res |= {f"{name}_inspect_ratio": round(best["inspect"] / best["plain"], 3), f"{name}_inspect_s": secs["inspect"],
                f"{name}_inspect_cpu_s": cpus["inspect"],
                f"{name}_same_as_inspect": round(sum(h[k] == old.get(k) for k in h) / max(1, len(h)), 3)}
        print(f"[{name}] with inspect's own batching {best['inspect']:.1f} s: ratio {res[f'{name}_inspect_ratio']}; "
              f"answers the same as the harness arm's: {res[f'{name}_same_as_inspect']:.0%}", flush=True)
    if "parallel" in answers:  # the plain loop with the harness's two batches at once: its overhead alone
        res |= {f"{name}_parallel_ratio": round(best["harness"] / best["parallel"], 3), f"{name}_parallel_s": secs["parallel"],
                f"{name}_parallel_identical": round(sum(h[k] == answers["parallel"].get(k) for k in h) / max(1, len(h)), 3)}
        print(f"[{name}] plain loop, batches two at once {best['parallel']:.1f} s: harness / it = {res[f'{name}_parallel_ratio']}; "
              f"identical {res[f'{name}_parallel_identical']:.0%}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["server", "hf"], help="run one comparison only")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each arm, alternating (default 2)")
    ap.add_argument("--limit", type=int, help="the first N evaluation items only (default: all 60)")
    ap.add_argument("--judge", action="store_true", help="also one harness hf run with the demo's LLM judge grader")
    ap.add_argument("overrides", nargs="*", default=["experiment=demo"], help="config overrides (default: experiment=demo)")
    a = ap.parse_args()
    cfg = config(a.overrides)
    cache_dir = Path(cfg.cache_dir)
    _, items, _, _ = build(cfg.data, training=False)
    items = [it for it in items if it.task in cfg.eval.tasks][: a.limit]
    graders = {n: g for n, g in cfg.graders.items() if g.kind not in ("judge", "pairwise")}
    smollm2 = cfg.models["baseline"]
    ckpt = resolve_args("baseline", smollm2.args, cache_dir)["model_path"]  # converted once, cached

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False).input_ids)

    load0 = os.getloadavg()[0]
    print(f"{len(items)} items, max_tokens {cfg.eval.max_tokens}, batch/concurrency {cfg.eval.batch_size}, greedy; "
          f"graders {sorted(graders)}; {a.repeats} alternating repeats; load {load0:.1f} on {os.cpu_count()} CPUs", flush=True)
    res: dict[str, Any] = {"n_items": len(items), "max_tokens": cfg.eval.max_tokens, "batch_size": cfg.eval.batch_size}
    if a.only in (None, "server"):
        # first: once torch computes in this process its thread pool competes with llama.cpp's for the cores
        with tempfile.TemporaryDirectory(prefix="eval-overhead-srv-") as tmp, \
                llama_server(embedded_gguf("smollm2-135m-instruct"), Path(tmp) / "llama.log", model=SERVED) as ep:
            served = EvalModel("served", f"openai-api/llamacpp/{SERVED}", {}, connect={"base_url": ep.base_url, "api_key": ep.api_key})
            res |= compare("server", {"harness": lambda: harness_arm(served, items, cfg, graders),
                                      "plain": lambda: plain_server_arm(ep.base_url, ep.api_key, items, cfg)}, a.repeats, count, ep.pid)
    if a.only in (None, "hf"):
        hf = EvalModel("hf", smollm2.model, resolve_args("baseline", smollm2.args, cache_dir))
        record_batches()
        from harness.models._hf import cpu_workers

        workers = cpu_workers()[0]
        res |= compare("hf", {"harness": with_batches("harness", lambda: harness_arm(hf, items, cfg, graders)),
                              "plain": lambda: plain_hf_arm(ckpt, items, cfg),
                              **({"parallel": lambda: plain_hf_arm(ckpt, items, cfg, workers)} if workers > 1 else {}),
                              "inspect": with_batches("inspect", lambda: inspect_arm(hf, items, cfg, graders))}, a.repeats, count)
        res |= {f"hf_{arm}_outside_batches_s": v for arm, v in OUTSIDE.items()}
        if a.judge:
            from harness.evaluate import open_judge

            judged = {n: g for n, g in cfg.graders.items() if g.kind == "judge"}
            if not judged:
                sys.exit("--judge: this config has no judge grader (experiment=demo has one)")
            (jg,) = judged.values()
            judge = open_judge(judged, resolve_args("judge", jg.judge.args, cache_dir), cfg.eval)
            wall, _ = harness_arm(hf, items, cfg, {**graders, **judged}, judge)
            res["hf_judge_s"] = round(wall, 2)
            print(f"[hf] harness with the LLM judge grader: {wall:.1f} s", flush=True)
    ratios = [v for k, v in res.items() if k in ("server_ratio", "hf_ratio", "hf_parallel_ratio")]
    res = {"ratio": max(ratios), **res, "loadavg_1m": [round(load0, 1), round(os.getloadavg()[0], 1)], "cpus": os.cpu_count()}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
