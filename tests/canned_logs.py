"""Small real inspect logs, cheap enough for quick tests: `inspect_ai.eval` of a task whose solver
answers each item with a given text (no model is called: the answers are what a model would have
said, chosen by the test), scored by inspect's own `match()`, written by inspect itself. Everything
that reads them (harness.sources, the gate) sees an ordinary finished inspect log."""

from __future__ import annotations

from pathlib import Path

TARGETS = [str(i) for i in range(40)]


def write_log(log_dir: Path, answers: list[str], targets: list[str] | None = None, task: str = "quiz", epochs: int = 1) -> Path:
    """One finished .eval log in `log_dir` of `task`: item q<i> with target targets[i], answered answers[i]."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import match
    from inspect_ai.solver import solver

    targets = targets or [str(i) for i in range(len(answers))]

    @solver
    def canned():
        async def solve(state, generate):
            state.output = ModelOutput.from_content("mockllm/model", state.metadata["say"])
            return state

        return solve

    dataset = [Sample(id=f"q{i:03d}", input=f"What is {t} + 0?", target=t, metadata={"say": a})
               for i, (t, a) in enumerate(zip(targets, answers))]
    (log,) = inspect_eval(Task(dataset=dataset, solver=canned(), scorer=match(), name=task), model="mockllm/model",
                          log_dir=str(log_dir), display="none", log_level="warning", epochs=epochs)
    assert log.status == "success", log.status
    return Path(log.location)


def answers(wrong: set[int] | range = frozenset(), n: int = 40, say: dict[int, str] | None = None) -> list[str]:
    """Right on every item but those in `wrong` (answered `say[i]`, or "wrong")."""
    say = say or {}
    return [say.get(i, "wrong") if i in wrong else str(i) for i in range(n)]


FAKE_KEY = "sk-live-Zq81xVt0pLmN4rTy"  # made up, shaped like an OpenAI key: must never reach a report or GitHub
HOSTILE = {0: "![x](http://evil.example/p.png)", 1: '<img src=x onerror="alert(document.domain)">', 2: "@team please merge",
           3: "[link](javascript:alert(document.cookie))", 4: f"the key is {FAKE_KEY}", 5: "see #12 and www.evil.example/x",
           6: "<script>alert(document.cookie)</script>", 7: "**bold** `code` | cell |"}


def subset(log_path: Path, out: Path, keep: int | None = None, swap: dict[str, Path] | None = None,
           status: str | None = None, ids: set[str] | None = None, drop: set[tuple[str, int]] | None = None) -> Path:
    """A copy of a log rewritten by inspect itself: its first `keep` samples (or those of `ids`), with
    the samples of ids in `swap` taken from another log (same item, another answer), and another
    `status` ("started": a log still being written, its header listing every item it will hold)."""
    from inspect_ai.log import read_eval_log, write_eval_log

    log = read_eval_log(str(log_path))
    samples = log.samples[:keep] if keep is not None else log.samples
    if ids is not None:
        samples = [x for x in samples if str(x.id) in ids]
    if drop:  # (id, epoch) pairs not written yet
        samples = [x for x in samples if (str(x.id), x.epoch) not in drop]
    others = {i: {s.id: s for s in read_eval_log(str(p)).samples}[i] for i, p in (swap or {}).items()}
    log.samples = [others.get(s.id, s) for s in samples]
    if status:
        log.status = status
    out.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(out))
    return out


# a slow drift: each version wrong on 3 more of the 40 items than the one before
DRIFT = {"v1": set(), "v2": {3, 17, 25}, "v3": {3, 17, 25, 31, 1, 5}, "v4": {3, 17, 25, 31, 1, 5, 8, 11, 20}}


def build(d: Path) -> dict[str, str]:
    """The logs the quick gate tests share (tests/conftest.py `canned_logs`):
    current: right on all 40 items; bad: wrong on the first 24 (the first 8 with HOSTILE answers);
    same: a copy of current (another file, the same answers); current6 / slip6: the first 6 items of
    current, and of current with q000 and q001 from bad (2 of 6 wrong: too few items to tell);
    v1..v4: the same 40 items, a model drifting down over four versions (DRIFT: 0, 3, 6, 9 wrong)."""
    import shutil

    cur = write_log(d / "current", answers())
    bad = write_log(d / "bad", answers(wrong=range(24), say=HOSTILE))
    (d / "same").mkdir()
    same = Path(shutil.copy(cur, d / "same" / cur.name))
    six = subset(cur, d / "current6" / "six.eval", keep=6)
    slip = subset(cur, d / "slip6" / "slip.eval", keep=6, swap={"q000": bad, "q001": bad})
    out = {"current": cur, "bad": bad, "same": same, "current6": six, "slip6": slip}
    for v, wrong in DRIFT.items():
        out[v] = write_log(d / v, answers(wrong=wrong), task="quiz")
    return {k: str(v) for k, v in out.items()}
