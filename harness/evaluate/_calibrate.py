"""A judge is checked on a sample before it is paid for the rest (docs/judge.md).

The units a judge would grade (a judge grader: every model's sample; a pairwise judge: every item
of a pair, in both orders) are put in a seeded order: first a calibration sample stratified by
model x reference label (pairwise: pair x task), then batches of the rest. Each look's batch is one
inspect eval_set in its own log dir (`<run>/judge/<grader>/look-NNN/`, the remainder in `rest/`),
so a warm re-run finds every batch finished and replays the decision without a call. After each
look the agreement so far is read (harness.stats: κ against the reference grader, or the share of
items whose verdict survives swapping A and B) on an interval at level 1 - alpha/looks: wholly below
the threshold stops the judge; wholly above sends the rest in one go; in between, the next batch
(after the last look, the rest). `gate.json` in the grader's dir records what was decided and what
it cost; the report reads it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cache import digest, write_json
from ..config import CalibrateConfig, EvalConfig, GraderConfig
from ..stats import Look
from ._logs import claim, completed, drop_interrupted, finished

LAYOUT = "judge batches v1"
GATE_FILE = "gate.json"  # read by harness.report._judge.read_gates


def check_calibrate(name: str, c: CalibrateConfig) -> str | None:
    """What is wrong with graders.<name>.calibrate, as one line (None: nothing)."""
    if c.sample < 1 or c.batch < 1 or c.looks < 1:
        return f"graders.{name}.calibrate: sample, batch and looks must be >= 1 (got {c.sample}, {c.batch}, {c.looks})"
    if not 0 < c.alpha < 1:
        return f"graders.{name}.calibrate.alpha must be in (0, 1), got {c.alpha}"
    if not -1 < c.threshold <= 1:
        return f"graders.{name}.calibrate.threshold must be in (-1, 1], got {c.threshold}"
    return None


def stratified(strata: list[Any], size: int, rng: np.random.Generator) -> list[int]:
    """`size` indices drawn without replacement, proportionally to each stratum's size (largest
    remainder) with at least one from every stratum when `size` allows: both the right and the
    wrong answers of every model are in the calibration sample."""
    groups: dict[str, list[int]] = {}
    for i in rng.permutation(len(strata)):
        groups.setdefault(repr(strata[i]), []).append(int(i))
    keys = sorted(groups)
    n = len(strata)
    if size >= n:
        return list(range(n))
    if size < len(keys):
        return sorted(groups[k][0] for k in (keys[i] for i in rng.permutation(len(keys))[:size]))
    quota = {k: 1 for k in keys}
    want = {k: size * len(groups[k]) / n for k in keys}
    for _ in range(size - len(keys)):  # one more each time where it is furthest below its share
        k = max((k for k in keys if quota[k] < len(groups[k])), key=lambda k: (want[k] - quota[k], -keys.index(k)))
        quota[k] += 1
    return sorted(i for k in keys for i in groups[k][: quota[k]])


def plan(strata: list[Any], c: CalibrateConfig) -> list[list[int]]:
    """The looks' batches of unit indices: the calibration sample, then up to looks - 1 batches of
    the rest in seeded random order, then the remainder. calibrate.enabled=false: one batch, all."""
    n = len(strata)
    if not c.enabled or c.sample >= n:
        return [list(range(n))] if n else []
    rng = np.random.default_rng(c.seed)
    first = stratified(strata, c.sample, rng)
    taken = set(first)
    rest = [int(i) for i in rng.permutation(n) if int(i) not in taken]
    batches = [first]
    while rest and len(batches) < c.looks:
        batches.append(sorted(rest[: c.batch]))
        rest = rest[c.batch:]
    if rest:
        batches.append(sorted(rest))
    return batches


@dataclass
class Gate:
    """What the check decided for one grader, and what it cost (gate.json; summary.json's
    `judge_gate`)."""

    grader: str
    kind: str  # judge | pairwise
    statistic: str  # "kappa" | "position consistency"
    reference: str | None
    enabled: bool
    threshold: float
    alpha: float
    max_looks: int
    units: int  # what a judge without the check would grade: samples (pairwise: items)
    calls_per_unit: int  # 1 (pairwise: 2, both orders)
    decision: str = "judged all"  # stopped | reliable | undecided | judged all (off, or a sample covering every unit)
    judged: int = 0  # units sent to the judge (this run or an earlier one of the same config)
    looks: list[dict[str, Any]] = field(default_factory=list)
    calls_made: int = 0  # judge requests sent by this invocation (0 on a warm re-run): not in gate.json

    @property
    def calls_saved(self) -> int:
        return (self.units - self.judged) * self.calls_per_unit

    def record(self) -> dict[str, Any]:
        """gate.json: the same on a warm re-run (what this invocation sent is in stage_calls)."""
        rec = {k: v for k, v in asdict(self).items() if k != "calls_made"}
        return {**rec, "calls": self.judged * self.calls_per_unit, "calls_saved": self.calls_saved}

    def line(self) -> str:
        calls = f"{self.judged * self.calls_per_unit} calls ({self.calls_made} sent now), {self.calls_saved} saved"
        if not self.looks:
            return f"judge '{self.grader}': judged all {self.units} without a look ({'off' if not self.enabled else 'one batch'}); {calls}"
        last = self.looks[-1]
        est = "undefined" if last["estimate"] is None else f"{last['estimate']:.2f}"
        what = {"stopped": "unreliable, stopped", "reliable": "reliable, judged all", "undecided": "undecided after every look, judged all",
                "judged all": "judged all"}[self.decision]
        return (f"judge '{self.grader}': {what}: {self.statistic} {est} [{last['low']:.2f}, {last['high']:.2f}] on {last['n']} "
                f"vs threshold {self.threshold} (one-sided bounds at 1-{self.alpha}/{self.max_looks}); {calls}")


def run_looks(gate: Gate, batches: list[list[int]], c: CalibrateConfig, send: Callable[[str, list[int]], int],
              look: Callable[[list[int]], Look], grader_dir: Path) -> Gate:
    """Send the batches in order, looking after each one before the last; `send(dir name, units)`
    returns the requests it sent, `look(units judged so far)` the interval and decision. Batch dirs
    of an earlier decision that this one does not use are moved aside (they would count as verdicts)."""
    # the grader's dir holds batch dirs (earlier versions: one eval_set's logs directly); a dir of the
    # earlier layout is moved aside whole, so its verdicts are never read twice
    claim(grader_dir, LAYOUT)
    used: list[str] = []

    def sent(where: str, batch: list[int]) -> int:
        used.append(where)
        return send(where, batch)

    _looks(gate, batches, c, sent, look)
    for d in sorted(grader_dir.iterdir()) if grader_dir.is_dir() else []:
        if d.is_dir() and (d.name.startswith("look-") or d.name == "rest") and d.name not in used:
            dest = grader_dir / ".superseded" / f"{d.name}-{time.strftime('%Y%m%dT%H%M%S')}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            d.rename(dest)
    return gate


def _looks(gate: Gate, batches: list[list[int]], c: CalibrateConfig, send: Callable[[str, list[int]], int],
           look: Callable[[list[int]], Look]) -> Gate:
    done: list[int] = []
    for k, batch in enumerate(batches):
        last = k == len(batches) - 1
        # reliable, or no look left: everything not yet judged goes in one batch
        gate.calls_made += send("rest" if last and k else f"look-{k:03d}", batch)
        done += batch
        if last or not c.enabled:
            break
        lk = look(done)
        gate.looks.append({"look": k + 1, "judged": len(done), **asdict(lk)})
        if lk.decision == "unreliable":
            gate.decision = "stopped"
            break
        if lk.decision == "reliable" or k + 1 == c.looks:
            gate.decision = "reliable" if lk.decision == "reliable" else "undecided"
            rest = [i for b in batches[k + 1:] for i in b]
            gate.calls_made += send("rest", rest)
            done += rest
            break
    gate.judged = len(done)
    if gate.decision == "judged all" and c.enabled and len(batches) > 1:
        gate.decision = "undecided"
    return gate


def send_batch(tasks: list[Any], log_dir: Path, key: dict[str, Any], judge: Any, g: GraderConfig, eval_cfg: EvalConfig,
               alias: str) -> int:
    """One batch of judge requests: an eval_set in its own claimed dir (resumes, and a finished dir
    costs no call). Returns the requests this invocation sent."""
    from inspect_ai import eval_set

    from ..models import batch_plan, batched_hf, temperature_for

    claim(log_dir, digest(key))
    drop_interrupted(log_dir)
    if finished(log_dir, [t.name for t in tasks]) is not None:
        return 0  # every verdict is in the logs: no judge to open (an hf/ judge would load its weights)
    # an hf/ judge batches by plan too: the look's requests are known (one per sample of each task)
    model = batched_hf(judge.model, batch_plan([len(t.dataset) for t in tasks], eval_cfg.batch_size))
    started = time.time()
    ok, _ = eval_set(tasks, log_dir=str(log_dir), model=model, log_level="warning", retry_attempts=2,
                     fail_on_error=eval_cfg.fail_on_error, display=None if sys.stdout.isatty() else "plain",
                     max_tokens=g.max_tokens, temperature=temperature_for(judge.judge.model, judge.args, 0.0),
                     metadata={"alias": alias})
    if not ok:
        raise RuntimeError(f"judging by '{alias}' did not complete; logs in {log_dir}, re-run to resume")
    drop_interrupted(log_dir)  # logs a killed run left `started`: eval_set copied their verdicts
    return completed(log_dir, since=started)


def finish(gate: Gate, grader_dir: Path) -> dict[str, Any]:
    """Write gate.json (atomically) and say the decision in one line (stderr when it stopped).
    Returns the record with `calls_made`, the requests this invocation sent."""
    rec = gate.record()
    write_json(grader_dir / GATE_FILE, rec)
    stream = sys.stderr if gate.decision == "stopped" else sys.stdout
    print(f"[judge] {gate.line()}", file=stream, flush=True)
    return {**rec, "calls_made": gate.calls_made}
