"""A run's terminal is the harness's: what the libraries say goes to the run's cli.log.

The routing is checked in a fresh process (it changes process-wide logging state) with the real job
logging config (conf/hydra/job_logging/harness.yaml), the real transformers logger and real Python
warnings; tests/test_e2e.py::test_terminal_is_the_harness_and_inspect checks a whole real run. And the
setting behind transformers' "generation flags are not valid: ['temperature']": a greedy hf/ model is
handed no temperature, and a temperature > 0 it would ignore is refused up front.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import logging.config, sys, warnings
from omegaconf import OmegaConf

cfg = OmegaConf.to_container(OmegaConf.load(sys.argv[2]), resolve=False)
cfg["handlers"]["file"]["filename"] = sys.argv[1]   # what Hydra resolves to <run dir>/cli.log
logging.config.dictConfig(cfg)

from harness.cli._quiet import summary_line, to_run_log

h = to_run_log()
import transformers  # imported after the routing, as in a run: its own stderr handler must not print
from transformers.utils import logging as tlog

tlog.get_logger("transformers.generation.utils").warning("a transformers warning")
warnings.warn("a library FutureWarning", FutureWarning)
logging.getLogger("peft.tuners.lora").warning("a peft warning")
logging.getLogger("somelib").warning("a library not on the list")
logging.getLogger("openai").warning("request with key %s", "sk-abcdefghijklmnop1234")
logging.getLogger("torch").info("below the level: not kept")
print(summary_line(h, sys.argv[1]))
print("bars", tlog.is_progress_bar_enabled())
"""


def _run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "cli.log"
    e = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    e.update(PYTHONPATH=str(REPO), **env)
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(log), str(REPO / "conf" / "hydra" / "job_logging" / "harness.yaml")],
                       capture_output=True, text=True, env=e, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p, log.read_text()


def test_library_warnings_go_to_cli_log_not_the_terminal(tmp_path):
    p, log = _run(tmp_path)
    assert p.stderr == ""  # transformers' handler, Python's showwarning: nothing on the terminal
    out = p.stdout.splitlines()
    assert out[0] == f"[log] 4 library warnings (transformers 1, py.warnings 1, peft 1, openai 1) in {tmp_path / 'cli.log'}"
    assert out[1] == "bars False"  # "Loading weights" and friends off
    for text in ("[transformers.generation.utils][WARNING] - a transformers warning", "FutureWarning: a library FutureWarning",
                 "[peft.tuners.lora][WARNING] - a peft warning", "[somelib][WARNING] - a library not on the list"):
        assert text in log, text
    # cli.log is kept with the run: a key in a library's message is redacted; below WARNING is not kept
    assert "sk-abcdefghijklmnop1234" not in log and "request with key sk-<redacted>" in log
    assert "below the level" not in log


def test_hugging_face_switch_brings_the_progress_bars_back(tmp_path):
    p, _ = _run(tmp_path, HF_HUB_DISABLE_PROGRESS_BARS="0")
    assert p.stdout.splitlines()[1] == "bars True" and p.stderr == ""


def test_greedy_hf_model_gets_no_temperature():
    from harness.models import temperature_for

    greedy = {"do_sample": False, "device": "cpu"}  # conf/model/smollm2.yaml's args
    assert temperature_for("hf/smollm2-135m-instruct", greedy, 0.0) is None
    assert temperature_for("hf/smollm2-135m-instruct", {**greedy, "do_sample": True}, 0.7) == 0.7
    assert temperature_for("openai/gpt-4o-mini", {}, 0.0) == 0.0  # a hosted model is told temperature 0


@pytest.mark.parametrize("override, words", [
    ("eval.temperature=0.7", "eval.temperature=0.7: models.teacher decodes greedily (args.do_sample: false)"),
    ("generate.temperature=0.5", "generate.temperature=0.5: models.teacher decodes greedily"),
])
def test_temperature_a_greedy_model_would_ignore_is_refused(override, words):
    from omegaconf import OmegaConf

    from harness.cli import compose
    from harness.config import to_dataclass
    from harness.preflight import validate

    d = OmegaConf.to_container(compose(["experiment=tiny", override]), resolve=False)
    d.pop("hydra")
    with pytest.raises(HarnessError, match=r"^" + words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        validate(to_dataclass(OmegaConf.create(d)))
    # sampling asked for on every model: valid
    sampled = [override] + [f"models.{a}.args.do_sample=true" for a in ("teacher", "student", "baseline")]
    d = OmegaConf.to_container(compose(["experiment=tiny", *sampled]), resolve=False)
    d.pop("hydra")
    validate(to_dataclass(OmegaConf.create(d)))
