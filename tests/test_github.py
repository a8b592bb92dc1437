"""The gate on GitHub (issue 30): the step summary and outputs `harness regress` writes when
$GITHUB_STEP_SUMMARY / $GITHUB_OUTPUT are set, the pull-request comment (`--comment`), the
composite action (action.yml) and `harness init`'s workflow that uses it.

The logs are real inspect logs (tests/canned_logs.py: `inspect_ai.eval` with canned answers, scored
by inspect's `match()`); the CLI is the real `harness` of this checkout."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.canned_logs import FAKE_KEY, HOSTILE
from tests.conftest import HARNESS

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**env, **extra}


def harness(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([HARNESS, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=_env(**env))


@pytest.fixture
def logs(canned_logs):
    """current: right on all 40 items; bad: wrong on 24 of them (the first 8 with hostile answers);
    same: the current's answers again (tests/canned_logs.py)."""
    return canned_logs


def _outputs(text: str) -> dict[str, str]:
    """Parse a $GITHUB_OUTPUT file as the runner does: name=value lines and name<<DELIM blocks."""
    out, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            for x in lines:
                if x == delim:
                    break
                body.append(x)
            out[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            out[name] = value
    return out


def _render(md: str):
    """Markdown as GitHub shows it (CommonMark + tables + autolinked URLs, raw HTML passed through,
    every link target allowed so a link the escaping missed shows up as one)."""
    from markdown_it import MarkdownIt

    mdit = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "linkify"])
    mdit.validateLink = lambda url: True
    tokens = mdit.parse(md)
    inline = [c for t in tokens for c in (t.children or [])]
    return mdit.render(md), tokens, inline


def _inert(md: str) -> None:
    html, tokens, inline = _render(md)
    assert not [t for t in tokens if t.type == "html_block"] and not [c for c in inline if c.type == "html_inline"], md
    links = [c.attrs.get("href") for c in inline if c.type == "link_open"]
    assert all(str(h).startswith("https://github.example/") for h in links), links  # only the harness's own link
    assert not [c for c in inline if c.type == "image"], md
    assert "<img" not in html and "<script" not in html and "javascript:" not in html.replace("javascript\u200b:", "")
    assert not re.search(r"@team|#12\b", html)  # no mention, no issue reference: "@\u200bteam", "#\u200b12"
    assert FAKE_KEY not in md and FAKE_KEY[:12] not in md


def _gate(baseline: Path, candidate: Path, **settings) -> dict:
    """The gate in-process (the CLI's own path is proven by the action's step below)."""
    from harness.config import RegressConfig
    from harness.regress import gate, parse_ref

    return gate(parse_ref(str(baseline), "current", "--baseline"), parse_ref(str(candidate), "candidate", "--candidate"),
                RegressConfig(enabled=True, **settings))


def test_pass_and_inconclusive_outputs(logs, tmp_path):
    from harness.regress import write_github

    output, summary = tmp_path / "output.txt", tmp_path / "summary.md"
    env = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
    g = _gate(logs["current"], logs["same"], margin=0.2)
    assert write_github(g, None, env) == [summary, output]
    out = _outputs(output.read_text())
    assert (out["verdict"], out["exit_code"], out["worst_bound_side"]) == ("pass", "0", "lower")
    assert float(out["worst_bound"]) == pytest.approx(g["cells"][0]["lower"], abs=1e-6) and -0.2 < g["cells"][0]["lower"] < 0
    assert "Regression gate: PASS (exit 0)" in summary.read_text()
    # 40 identical answers cannot show "within 2 pp": inconclusive, exit 0 only when asked; appended, not replaced
    write_github(_gate(logs["current"], logs["same"], margin=0.02, inconclusive="pass"), None, env)
    lines = output.read_text().splitlines()
    assert lines.count("verdict=pass") == 1 and lines.count("verdict=inconclusive") == 1 and lines[-1].startswith("ghadelimiter_")
    assert "≈" in summary.read_text() and "items would decide" in summary.read_text()  # how many items would decide it
    assert write_github(g, None, {}) == []  # not on GitHub Actions: nothing written


def test_untrusted_text_is_inert_and_keyless():
    from harness.regress import untrusted

    for text in HOSTILE.values():
        _inert(f"| a | {untrusted(text)} |\n|---|---|\n| x | {untrusted(text)} |\n\n{untrusted(text)}\n")
    assert untrusted("@team") == "@&#8203;team" and "http&#8203;:" in untrusted("http://x")
    # what the reader sees is the text (zero-width spaces aside)
    html, _, _ = _render(untrusted("**a** b_c [d](e)"))
    assert re.sub(r"<[^>]+>", "", html).strip() == "**a** b_c [d](e)"


def _action() -> dict:
    return yaml.safe_load((REPO / "action.yml").read_text())


def test_action_parses_and_its_steps_name_real_commands_and_flags():
    from harness.cli._regress import parser

    a = _action()
    assert a["runs"]["using"] == "composite" and {"baseline", "candidate", "margin", "args", "python-version"} <= set(a["inputs"])
    assert a["inputs"]["baseline"]["required"] and a["inputs"]["candidate"]["required"]
    flags = {o for act in parser()._actions for o in act.option_strings}
    steps = a["runs"]["steps"]
    assert steps[0]["uses"].startswith("actions/setup-python@") and steps[0]["with"]["python-version"] == "${{ inputs.python-version }}"
    runs = [s for s in steps if "run" in s]
    assert all(s["shell"] == "bash" and "${{" not in s["run"] for s in runs)  # inputs only via env
    gate = next(s for s in runs if s.get("id") == "gate")
    words = shlex.split(gate["run"].splitlines()[-1])
    assert words[:2] == ["harness", "regress"]
    used = [w for w in words if w.startswith("--")]
    assert used and set(used) <= flags, set(used) - flags
    for name, o in a["outputs"].items():  # every output the gate step sets is one harness regress writes
        assert re.fullmatch(r"\$\{\{ (steps\.gate\.outputs|inputs)\.\w+ \}\}", o["value"]), (name, o)
    install = next(s for s in runs if "pip install" in s["run"])
    assert "python -m pip install" in install["run"] and install["env"]["ACTION_PATH"] == "${{ github.action_path }}"


@pytest.mark.slow  # a `harness regress` subprocess: ~20 s on a loaded 2-core machine
def test_the_actions_gate_step_writes_a_safe_summary_outputs_and_comment(logs, tmp_path):
    """The action's gate step, run by bash as the runner runs it (its env from the action's inputs,
    the runner's GITHUB_* variables set): the real `harness regress` on a regression whose flipped
    answers are hostile (tests/canned_logs.py HOSTILE, with a made-up key)."""
    import json

    a = _action()
    gate = next(s for s in a["runs"]["steps"] if s.get("id") == "gate")
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    summary.write_text("earlier step\n")  # appended to, never replaced
    env = {"BASELINE": str(logs["current"]), "CANDIDATE": str(logs["bad"]), "MARGIN": a["inputs"]["margin"]["default"],
           "EXTRA_ARGS": "--alpha 0.05 --inconclusive fail", "OUT": "regress", "COMMENT": a["inputs"]["comment"]["default"],
           "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output), "GITHUB_SERVER_URL": "https://github.example",
           "GITHUB_REPOSITORY": "team/models", "GITHUB_RUN_ID": "42", "PATH": str(Path(HARNESS).parent) + os.pathsep + os.environ["PATH"]}
    r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", gate["run"]], capture_output=True, text=True,
                       cwd=tmp_path, env=_env(**env), timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    out = _outputs(output.read_text())
    assert {k for k, v in a["outputs"].items() if "steps.gate" in v["value"]} <= set(out)  # every output the action exposes
    assert out["verdict"] == "regression" and out["exit_code"] == "3"
    assert out["worst_cell"] == "quiz · match" and out["worst_bound_side"] == "upper"
    doc = json.loads((tmp_path / "regress" / "regress.json").read_text())
    (cell,) = doc["cells"]
    assert float(out["worst_bound"]) == pytest.approx(cell["upper"], abs=1e-6) and cell["upper"] < -0.05
    assert out["headline"] == doc["headline"] and out["headline"].startswith("REGRESSION")
    s = summary.read_text()
    assert s.startswith("earlier step\n") and "Regression gate: REGRESSION (exit 3)" in s
    c = (tmp_path / "regress" / "comment.md").read_text()
    assert c.startswith("## ❌ Regression gate: REGRESSION") and "Deciding cells" in c
    html, _, _ = _render(c)
    assert "Full report: regress/regress.md" in html and "(https://github.example/team/models/actions/runs/42)" in c
    # the hostile answers reached the summary (the flip list) but nothing in them is live, and the key is gone
    assert "onerror" in s and "please merge" in s and "redacted" in s
    for md in (s, c, (tmp_path / "regress" / "regress.md").read_text()):
        _inert(md)


def test_init_workflow_gates_with_the_action(tmp_path):
    from harness._init_project import files
    from harness.cli._regress import parser

    f = files()
    # the same action: the package's copy (what an installed harness has) is the repository's action.yml
    assert (REPO / "harness" / "action.yml").read_text() == (REPO / "action.yml").read_text()
    assert f[".github/actions/harness-regress/action.yml"] == (REPO / "action.yml").read_text()
    wf = yaml.safe_load(f[".github/workflows/harness.yml"])
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    (use,) = [s for s in steps if s.get("uses") == "./.github/actions/harness-regress"]
    assert set(use["with"]) <= set(_action()["inputs"])
    assert set(w for w in shlex.split(use["with"].get("args", "")) if w.startswith("--")) <= {
        o for act in parser()._actions for o in act.option_strings}
    # the run it gates is the one the step before wrote
    (run,) = [s["run"] for s in steps if "experiment=eval_mine" in str(s.get("run"))]
    run_dir = re.search(r"hydra\.run\.dir=(\S+)", run).group(1)
    assert use["with"]["baseline"] == f"{run_dir}:current" and use["with"]["candidate"] == f"{run_dir}:mine"
    # and its overrides compose
    proj = tmp_path / "proj"
    assert harness("init", str(proj), cwd=tmp_path).returncode == 0
    words = shlex.split(run)
    assert " ".join(words[:2]) == "harness run"
    r = harness("run", *words[2:], "--cfg", "job", cwd=proj, HARNESS_CONFIG_DIR="conf")  # composed, nothing run
    assert r.returncode == 0 and "experiment: eval_mine" in r.stdout, r.stderr
