"""Resume after `kill -9`, at every stage, with the real CLI, the real embedded model and real inspect logs.

One run is killed three times -- while the teacher answers, while the student trains, and half-way
through the evaluation -- and the same command is started again each time. The fourth start must
finish the run with no sample lost, none duplicated, sending only the requests that are missing; its
scores must equal those of an uninterrupted run of the same command (run beside it, in its own cache).

Batch size 1 for generation and evaluation: requests then finish one by one (so a kill lands between
them), and greedy outputs do not depend on which prompts share a padded batch, so the interrupted
and the uninterrupted run must agree exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = ["experiment=tiny", "generate.batch_size=1", "eval.batch_size=1", "eval.limit=4"]
RUN_NAME = "eval.batch_size=1,eval.limit=4,generate.batch_size=1"  # the run dir Hydra names after the overrides
ALIASES = ("teacher", "student", "baseline")  # in the order they are evaluated
N_EVAL = 7  # eval items per model: 4 heldout (eval.limit) + 3 control


def _env(root: Path) -> dict[str, str]:
    """A fresh cache whose `models` dir links the converted embedded model (as bench/warm_rerun.py)."""
    cache = root / "cache"
    cache.mkdir(parents=True)
    models = Path(os.environ["HARNESS_CACHE"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    (cache / "models").symlink_to(models.resolve(), target_is_directory=True)
    return {**os.environ, "HARNESS_CACHE": str(cache), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


class Job:
    """`harness run` started as a user would, in its own session so that kill -9 takes all of it."""

    def __init__(self, env: dict[str, str], results: Path) -> None:
        self.p = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *OVERRIDES, f"results_dir={results}"],
                                  env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.p.stdout), daemon=True)
        self.reader.start()

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def kill_when(self, ready, what: str, timeout: float = 900) -> str:
        deadline = time.time() + timeout
        while not ready():
            assert self.p.poll() is None, f"finished before it could be killed {what}:\n{self.out[-3000:]}"
            assert time.time() < deadline, f"never got to {what}:\n{self.out[-3000:]}"
            time.sleep(0.2)
        os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait()
        self.reader.join(10)
        assert self.p.returncode == -signal.SIGKILL
        return self.out

    def finish(self, timeout: float = 900) -> str:
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            raise
        self.reader.join(10)
        assert self.p.returncode == 0, self.out[-4000:]
        return self.out


def _summaries(log_dir: Path, live: bool = False) -> dict[str, list]:
    """log file -> its sample summaries. `live`: the run is still writing these logs, so a log may be
    replaced or removed between listing and reading (inspect writes them by temp file + rename, and
    eval_set removes a killed run's partial log: FileNotFoundError) or read mid-rewrite (a torn zip:
    inspect's reader raises ValueError, "EOCD not found" / a CRC mismatch); it counts as no samples yet.
    Otherwise any unreadable log fails the test."""
    from inspect_ai.log import list_eval_logs, read_eval_log_sample_summaries

    out = {}
    for info in list_eval_logs(str(log_dir)) if log_dir.exists() else []:
        try:
            out[info.name] = list(read_eval_log_sample_summaries(info))
        except (FileNotFoundError, ValueError):
            if not live:
                raise
            out[info.name] = []
    return out


def _completed(log_dir: Path, live: bool = False) -> int:
    return sum(1 for samples in _summaries(log_dir, live).values() for s in samples if s.completed)


@pytest.mark.slow
def test_kill_9_at_every_stage_then_the_same_command_finishes(tmp_path):
    ref_results, results = tmp_path / "ref" / "results", tmp_path / "killed" / "results"
    reference = Job(_env(tmp_path / "ref"), ref_results)  # uninterrupted, beside the killed one
    env = _env(tmp_path / "killed")
    cache = Path(env["HARNESS_CACHE"])
    run_dir = results / "tiny" / RUN_NAME

    # 1. kill -9 while the teacher answers (3 of its 8 answers are in the journal)
    journal = lambda: next(iter((cache / "generate").glob("*/answers.partial.jsonl")), None)  # noqa: E731
    Job(env, results).kill_when(lambda: journal() is not None and journal().read_text().count("\n") >= 3, "during generate")
    kept = journal().read_text().count("\n")
    assert 3 <= kept < 8
    with open(journal(), "a") as f:  # what a kill in the middle of a write leaves: a torn last line
        f.write('{"id": "archipelago.tr')

    # 2. the same command: only the missing answers are asked for; kill -9 while the student trains
    training = lambda: any((cache / "finetune").glob(".*.tmp-*"))  # noqa: E731  (atomic_dir's build dir)
    out = Job(env, results).kill_when(training, "during finetune")
    assert f"[generate] resuming: {kept} of 8 answers kept" in out, out[-3000:]
    assert f"[generate] 8 teacher answers, {8 - kept} requests sent" in out, out[-3000:]
    assert f"[generate] answers {kept + 1}/8 (" in out and "[generate] answers 8/8 (" in out  # plain progress lines
    (entry,) = [p for p in (cache / "generate").iterdir() if p.is_dir()]
    assert not (entry / "answers.partial.jsonl").exists()  # folded into the finished entry
    prov = [json.loads(x) for x in (entry / "provenance.jsonl").read_text().splitlines()]
    assert len(prov) == len({p["id"] for p in prov}) == 8  # none lost, none twice
    assert len((entry / "usage.jsonl").read_text().splitlines()) == 8  # one usage record per answer
    assert training()  # the killed build's temp dir is left behind (and its lock file)

    # 3. the same command: trains again (the killed build's debris neither blocks nor stays);
    #    kill -9 once the baseline's evaluation log holds a few finished samples
    out = Job(env, results).kill_when(lambda: _completed(run_dir / "logs" / "baseline", live=True) >= 2, "during evaluate")
    assert "[generate] 8 rows" in out and "(cached)" in out.split("[generate] 8 rows")[1].splitlines()[0]
    assert "[finetune] step 3/3 (" in out and " loss " in out and " tok/s " in out  # plain progress lines (no TTY)
    assert "[finetune] student: lora: " in out and not training()
    done_at_kill = {a: _completed(run_dir / "logs" / a) for a in ALIASES}
    assert done_at_kill["teacher"] == done_at_kill["student"] == N_EVAL, done_at_kill
    assert 2 <= done_at_kill["baseline"] < N_EVAL, done_at_kill
    assert not (run_dir / "summary.json").exists()

    # 4. the same command finishes the run
    t_resume = datetime.now().astimezone()
    out = Job(env, results).finish()
    assert "[evaluate] teacher: finished logs" in out and "[evaluate] student: finished logs" in out
    s = json.loads((run_dir / "summary.json").read_text())
    from inspect_ai.log import read_eval_log

    sent = {}
    for alias in ALIASES:
        logs = _summaries(run_dir / "logs" / alias)
        # one finished log per task: the killed run's partial log does not linger beside it
        headers = [read_eval_log(name, header_only=True) for name in logs]
        assert sorted(h.eval.task for h in headers) == ["control", "heldout"], (alias, list(logs))
        assert all(h.status == "success" for h in headers)
        samples = sorted((h.eval.task, str(x.id), x.epoch) for h, name in zip(headers, logs) for x in logs[name])
        assert len(samples) == len(set(samples)) == N_EVAL, alias  # every (task, sample, epoch) exactly once
        assert {t for t, _, _ in samples} == {"heldout", "control"}
        # requests the last run sent: the samples that started after it did
        sent[alias] = sum(1 for name in logs for x in logs[name] if datetime.fromisoformat(x.started_at) >= t_resume)
    assert sent == s["model_calls"], (sent, s["model_calls"])
    assert sent["teacher"] == sent["student"] == 0
    # the samples the killed run had finished (and written) are re-used, not asked again
    assert 0 < sent["baseline"] <= N_EVAL - done_at_kill["baseline"]
    assert s["stage_calls"]["generate"] == 0

    # the same results as the uninterrupted run
    reference.finish()
    ref_dir = ref_results / "tiny" / RUN_NAME
    ref = json.loads((ref_dir / "summary.json").read_text())
    assert ref["model_calls"] == {"teacher": 8 + N_EVAL, "student": N_EVAL, "baseline": N_EVAL}
    assert s["scores"] == ref["scores"]
    assert (run_dir / "data" / "train.jsonl").read_text() == (ref_dir / "data" / "train.jsonl").read_text()
    assert s["usage"]["teacher"]["calls"] == ref["usage"]["teacher"]["calls"]


def test_a_journal_of_every_answer_finishes_generation_without_the_model(tmp_path):
    """The fold-in of a journal, alone: a kill after the last answer arrived (torn line included)
    leaves nothing to ask. The teacher is never loaded (its model path does not even exist)."""
    from harness.config import GenerateConfig, ModelConfig
    from harness.data import TrainQuestion
    from harness.generate import GenerateInput, generate_key, run_generate

    qs = [TrainQuestion(f"q{i}", f"What is thing {i}?", f"Thing {i} is red.", "red", "g") for i in range(3)]
    teacher = ModelConfig(model="hf/none", args={"model_path": str(tmp_path / "absent")}, context=True)
    cfg = GenerateConfig(prompt="{passage}\n\nQuestion: {question}")
    key = generate_key(teacher, cfg, "{question}", "sys", "data-key")
    entry = tmp_path / "cache" / "generate" / key
    entry.mkdir(parents=True)
    usage = {"input_tokens": 10, "output_tokens": 3, "latency_s": 0.5}
    rows = [{"id": q.id, "answer": f"It is red ({q.id}).", "usage": usage} for q in reversed(qs)]  # arrival order
    (entry / "answers.partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"id": "q')
    out = run_generate(GenerateInput(qs, teacher, teacher.args, cfg, "{question}", "sys", "data-key", tmp_path / "cache", tmp_path / "run"))
    assert out.calls == 0 and out.n_rows == 3 and out.n_gold == 3
    train = [json.loads(x) for x in out.train_file.read_text().splitlines()]
    assert [t["messages"][-1]["content"] for t in train] == [f"It is red ({q.id})." for q in qs]  # question order
    assert [json.loads(x) for x in (tmp_path / "run" / "usage.jsonl").read_text().splitlines()] == [usage] * 3
    assert not (entry / "answers.partial.jsonl").exists()
    # a kill after the entry was written but before its journal was removed: the leftover goes
    (entry / "answers.partial.jsonl").write_text(json.dumps(rows[0]) + "\n")
    os.utime(entry / "answers.partial.jsonl", (0, 0))
    assert run_generate(GenerateInput(qs, teacher, teacher.args, cfg, "{question}", "sys", "data-key", tmp_path / "cache",
                                      tmp_path / "run")).calls == 0
    assert not (entry / "answers.partial.jsonl").exists()
