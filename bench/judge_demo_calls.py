"""The demo's judge calls with the calibration before paying (issue 31): <= 20 % of the 300 it sent unchecked.

experiment=demo judges every model's answers (3 models x 60 items = 180 verdicts) and the pairwise
teacher-vs-student comparison (60 items x 2 orders = 120 verdicts) with the embedded SmolLM2-135M,
which is unusable as a judge (κ = 0 against exact match). This script takes a finished demo-size run
(its models' logs: answers graded by exact and contains; e.g. one of results/bench_distil_objectives/)
and runs the harness's own judging on a copy of them, exactly as the evaluate stage does with the
demo's graders (the judge grader's calibration, then the pairwise judge's), with the real embedded
judge. It prints each judge's decision and the calls it made, against the calls an unchecked judge
makes on the same logs (every sample; every item twice).

Run: nice -n 10 .venv/bin/python bench/judge_demo_calls.py RUN_DIR [graders.judge.calibrate.enabled=false ...]
Last line: one JSON object; `ratio` = judge calls made / judge calls unchecked (goal <= 0.20).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from omegaconf import OmegaConf

    from harness.cache import user_cache_dir
    from harness.cli import compose
    from harness.config import to_dataclass
    from harness.evaluate import open_judge, run_pairwise
    from harness.evaluate._judge import run_judge
    from harness.models import resolve_args
    from harness.runs import load_frame

    src = Path(sys.argv[1])
    dc = compose(["experiment=demo", *sys.argv[2:]])
    plain = OmegaConf.to_container(dc, resolve=False)
    plain.pop("hydra", None)
    cfg = to_dataclass(OmegaConf.create(plain))
    work = Path(tempfile.mkdtemp(prefix="judge-demo-"))
    shutil.copytree(src / "logs", work / "logs", ignore=shutil.ignore_patterns(".superseded"))
    logs = {d.name: sorted(str(p) for p in d.glob("*.eval")) for d in (work / "logs").iterdir() if d.is_dir()}
    questions = {(e["task"], e["id"]): e["question"] for e in map(json.loads, (src / "data" / "eval.jsonl").read_text().splitlines())}
    g_judge = next(g for g in cfg.graders.values() if g.kind == "judge")
    judge = open_judge(cfg.graders, resolve_args("judge", g_judge.judge.args, user_cache_dir()), cfg.eval)
    t0 = time.time()
    out, made, unchecked = {}, 0, 0
    for name, g in cfg.graders.items():
        if g.kind == "judge":
            rec = run_judge(name, g, judge, logs, ["heldout", "control"], cfg.eval, work / "judge" / name)
            made += rec["calls_made"]
            unchecked += rec["units"]
            out[name] = rec
    frame = load_frame(work / "logs")
    for name, g in cfg.graders.items():
        if g.kind == "pairwise":
            made += run_pairwise(name, g, judge, frame, questions, cfg.eval, work / "judge" / name)
            rec = json.loads((work / "judge" / name / "gate.json").read_text())
            unchecked += 2 * rec["units"]
            out[name] = rec
    for name, rec in out.items():
        last = rec["looks"][-1] if rec["looks"] else {}
        print(f"{name}: {rec['decision']} after {rec['judged']} of {rec['units']} units; {rec['statistic']} "
              f"{last.get('estimate')} [{last.get('low')}, {last.get('high')}]; calls {rec['calls']}, saved {rec['calls_saved']}", flush=True)
    print(json.dumps({"metric": "demo judge calls made / unchecked (embedded judge)", "ratio": round(made / unchecked, 4),
                      "calls_made": made, "calls_unchecked": unchecked, "source": str(src), "judge_seconds": round(time.time() - t0, 1),
                      "decisions": {n: r["decision"] for n, r in out.items()}, "work_dir": str(work)}))


if __name__ == "__main__":
    main()
