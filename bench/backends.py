"""Greedy generation throughput of the embedded SmolLM2-135M-Instruct on the two local backends.

What: tokens/s of greedy decoding (max 48 new tokens, chat-templated short questions) with
  1. transformers in-process, fp32 on CPU, batch 1 (a few prompts) and batch 16 (left padding,
     pad=eos);
  2. llama.cpp (the Q4_1 GGUF) through `python -m llama_cpp.server` with the `openai` client,
     one stream and 4 concurrent requests, plus in-process `llama_cpp.Llama` one stream.
It also counts how many prompts give identical text on transformers and llama.cpp.
llama.cpp runs first, before torch is imported (two OpenMP pools on 2 cores slow each other down),
with --n_threads = cpu count (the server's default is 1 thread). llama_cpp.server handles one
request at a time, so "4 concurrent" measures queueing, not batching. On a shared 2-core machine
the figures are noisy; the JSON records the 1-min load average at start and end.

Why: to choose the local inference backend. Baseline and fine-tuned student must run on the same
backend and precision; the student is a transformers checkpoint and PyPI's `gguf` package has no
HF->GGUF converter, so llama.cpp is only worth it if it is much faster than batched transformers.

Run: `.venv/bin/python bench/backends.py [--n 32] [--threads 2]` from the repo root (~2.5 min on
2 idle cores). The last printed line is one JSON object with the figures.

Result on the idle 2-core dev box: transformers fp32 batch 16 ~50 tok/s, llama.cpp one stream
~53-65 tok/s (ratio ~1.1-1.3), and only 3/32 prompts give the same greedy text (prompt token ids
are identical; Q4_1 kernels vs dequantised fp32 weights diverge numerically).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.models import embedded_gguf, embedded_path  # noqa: E402

MODEL, MAX_NEW, THREADS = "smollm2-135m-instruct", 48, os.cpu_count() or 1
QUESTIONS = [
    "What is the capital of France?", "How many legs does a spider have?", "What is 12 times 7?",
    "Who wrote Romeo and Juliet?", "What is the boiling point of water in Celsius?",
    "Name a primary color.", "What planet is closest to the Sun?", "What gas do plants absorb?",
    "How many days are in a leap year?", "What is the largest ocean on Earth?",
    "What language is spoken in Brazil?", "What is the square root of 81?",
    "Who painted the Mona Lisa?", "What is the chemical symbol for gold?",
    "How many continents are there?", "What is the freezing point of water in Fahrenheit?",
    "What is the tallest mountain in the world?",
    "What animal is known as the king of the jungle?", "How many minutes are in an hour?",
    "What is the currency of Japan?", "What organ pumps blood through the body?",
    "What is the opposite of hot?", "Which is bigger, 0.5 or 0.25?", "What do bees make?",
    "What is H2O?", "How many sides does a hexagon have?", "What is the capital of Italy?",
    "Who was the first person to walk on the Moon?", "What color is the sky on a clear day?",
    "What is the main ingredient of guacamole?", "How many strings does a violin have?",
    "What is the longest river in Africa?",
]


def bench_hf(ckpt: Path, prompts: list[str], batch: int) -> tuple[float, list[str]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt, padding_side="left")
    tok.pad_token = tok.eos_token
    torch.set_num_threads(THREADS)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                     tokenize=False) for q in prompts]

    def run(chunk: list[str], max_new: int) -> list[list[int]]:
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=max_new,
                                 pad_token_id=tok.eos_token_id)
        return out[:, enc.input_ids.shape[1]:].tolist()

    run(texts[:batch], 4)  # warm-up, untimed
    outs, n_tok, t0 = [], 0, time.perf_counter()
    for i in range(0, len(texts), batch):
        for row in run(texts[i:i + batch], MAX_NEW):  # count up to and including the first EOS
            n = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
            n_tok += n
            outs.append(tok.decode(row[:n], skip_special_tokens=True).strip())
    elapsed = time.perf_counter() - t0
    return n_tok / elapsed, outs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_server(gguf: Path, prompts: list[str]) -> dict:
    from openai import OpenAI

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", str(THREADS),
           "--n_threads_batch", str(THREADS)]  # the server's default is a single thread
    log = tempfile.NamedTemporaryFile("w+", prefix="llama_server_", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy (exit {proc.poll()}); see {log.name}")
                time.sleep(0.5)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=120,
                        max_retries=0)  # fail fast rather than retry a dead server for 10 min

        def ask(q: str) -> tuple[int, str]:
            r = client.chat.completions.create(model=gguf.name, temperature=0, max_tokens=MAX_NEW,
                                               messages=[{"role": "user", "content": q}])
            return r.usage.completion_tokens, (r.choices[0].message.content or "").strip()

        ask(prompts[0])  # warm-up
        res = {}
        for label, workers in (("1stream", 1), ("4conc", 4)):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                done = list(pool.map(ask, prompts))
            res[label] = sum(n for n, _ in done) / (time.perf_counter() - t0)
            res[label + "_texts"] = [t for _, t in done]
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if proc.returncode not in (0, -15):  # -15: our SIGTERM
            print(f"llama_cpp.server exited with {proc.returncode}; log kept in {log.name}")
        else:
            os.unlink(log.name)


def bench_inproc(gguf: Path, prompts: list[str]) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=THREADS, n_threads_batch=THREADS,
                verbose=False)

    def ask(q: str) -> int:
        r = llm.create_chat_completion([{"role": "user", "content": q}], temperature=0,
                                       max_tokens=MAX_NEW)
        return r["usage"]["completion_tokens"]

    ask(prompts[0])  # warm-up
    t0 = time.perf_counter()
    n_tok = sum(ask(q) for q in prompts)
    return n_tok / (time.perf_counter() - t0)


def main() -> None:
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="number of prompts (default 32)")
    ap.add_argument("--n-batch1", type=int, default=4, help="prompts for the slow batch-1 run")
    ap.add_argument("--threads", type=int, default=THREADS, help="CPU threads for both backends")
    args = ap.parse_args()
    THREADS = args.threads
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.n)]
    ckpt = embedded_path(MODEL, os.environ.get("HARNESS_CACHE", ".cache/harness"))
    gguf = embedded_gguf(MODEL)
    print(f"{len(prompts)} prompts, max_new_tokens={MAX_NEW}, greedy, {THREADS} threads")

    load0 = os.getloadavg()[0]
    # llama.cpp first: once torch is imported its OpenMP pool competes with llama.cpp's for 2 cores.
    llama, srv = {}, None
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        print(f"llama_cpp not importable ({e}); skipping the llama.cpp part")
    else:
        srv = bench_server(gguf, prompts)
        print(f"llama.cpp server 1 stream  : {srv['1stream']:7.1f} tok/s", flush=True)
        print(f"llama.cpp server 4 conc.   : {srv['4conc']:7.1f} tok/s", flush=True)
        inproc = bench_inproc(gguf, prompts)
        print(f"llama.cpp in-process 1 str.: {inproc:7.1f} tok/s", flush=True)
        llama = {"llamacpp_server_1stream_tok_s": round(srv["1stream"], 1),
                 "llamacpp_server_4conc_tok_s": round(srv["4conc"], 1),
                 "llamacpp_inproc_1stream_tok_s": round(inproc, 1)}

    hf1, hf1_out = bench_hf(ckpt, prompts[:args.n_batch1], 1)
    print(f"transformers fp32 batch 1  : {hf1:7.1f} tok/s ({args.n_batch1} prompts)", flush=True)
    hf16, hf_out = bench_hf(ckpt, prompts, 16)
    print(f"transformers fp32 batch 16 : {hf16:7.1f} tok/s", flush=True)
    same_b1 = sum(a == b for a, b in zip(hf1_out, hf_out))
    print(f"  identical text, transformers batch 1 vs batch 16: {same_b1}/{len(hf1_out)}")

    result = {"hf_batch1_tok_s": round(hf1, 1), "hf_batch16_tok_s": round(hf16, 1), **llama}
    if srv is None:
        result.update(llama_cpp=None, ratio=None, identical_outputs=None)
    else:
        same = sum(a == b for a, b in zip(hf_out, srv["1stream_texts"]))
        same_conc = sum(a == b for a, b in zip(srv["1stream_texts"], srv["4conc_texts"]))
        for q, a, b in list(zip(prompts, hf_out, srv["1stream_texts"]))[:3]:
            print(f"  Q: {q}\n    hf  : {a[:90]!r}\n    gguf: {b[:90]!r}")
        print(f"  identical text, llama.cpp server 1 stream vs 4 conc.: {same_conc}/{len(prompts)}")
        print(f"identical text, transformers batch 16 vs llama.cpp server: {same}/{len(prompts)}")
        result.update(ratio=round(max(llama.values()) / hf16, 2), identical_outputs=same)
    result.update(baseline="transformers fp32 batch 16", n_prompts=len(prompts), threads=THREADS,
                  loadavg_1min_start_end=[round(load0, 2), round(os.getloadavg()[0], 2)])
    print(json.dumps(result))

if __name__ == "__main__":
    main()
