"""`harness regress --baseline RUN_DIR[:alias] --candidate RUN_DIR[:alias] ...`: gate a candidate model
against the current one from finished runs (never calls a model); exit 0 pass, 3 regression,
4 inconclusive (docs/regress.md). On GitHub Actions it also writes the step summary and outputs;
`--comment FILE` writes a pull-request comment (docs/ci.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import ArgParser

REGRESS_HELP = """Gate a candidate model against the current one, from finished run dirs (never calls a model).

RUN_DIR[:alias] names a model inside a finished `harness run` (default aliases: current / candidate).
Either side may instead be an evaluation run elsewhere: an inspect log (.eval/.json) or log dir
written by `inspect eval`, or an lm-evaluation-harness --output_path (or samples_*.jsonl) written
with --log_samples; a log of several models takes LOG:<model>. No config is needed.
Writes regress.json, regress.md and a section in the candidate run's report.html (or --out DIR;
for a foreign candidate the default is the current directory).
With $GITHUB_STEP_SUMMARY / $GITHUB_OUTPUT set (GitHub Actions) it appends a step summary and the
outputs verdict, exit_code, worst_cell, worst_bound, worst_bound_side, headline.

exit codes: 0 pass (non-inferior within the margin on every gated cell), 3 regression,
            4 inconclusive (0 with --inconclusive=pass), 2 bad input, 1 internal error"""


def parser() -> ArgParser:
    """The command's flags (tests check action.yml and docs against it)."""
    from ..config import RegressConfig

    d = RegressConfig()
    ap = ArgParser(prog="harness regress", description=REGRESS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                   command="regress")
    ap.add_argument("--baseline", required=True, metavar="RUN_DIR[:alias]|LOG", help=f"the current model (alias default: {d.baseline})")
    ap.add_argument("--candidate", required=True, metavar="RUN_DIR[:alias]|LOG",
                    help=f"the model that would replace it (alias default: {d.candidate})")
    ap.add_argument("--margin", type=float, default=d.margin,
                    help=f"largest acceptable drop, 0-1 (default {d.margin} = {100 * d.margin:g} pp)")
    ap.add_argument("--alpha", type=float, default=d.alpha, help=f"one-sided error rate (default {d.alpha})")
    ap.add_argument("--strict", action="store_true", help="any significant drop is a regression, not only one beyond the margin")
    ap.add_argument("--inconclusive", choices=["fail", "pass"], default=d.inconclusive, help="exit 4 (fail, default) or 0 (pass)")
    ap.add_argument("--tasks", nargs="+", default=[], help="gated tasks (default: all)")
    ap.add_argument("--graders", nargs="+", default=[],
                    help="gated graders (default: all; a judge only where it passed its validation)")
    ap.add_argument("--allow-subset", action="store_true", help="runs on different items: compare the items both share")
    ap.add_argument("--out", type=Path, help="where regress.json / regress.md go (default: the candidate's run dir; the current dir for a log)")
    ap.add_argument("--comment", type=Path, metavar="FILE",
                    help="also write a short pull-request comment (markdown: verdict, deciding cells, where the report is)")
    seq = ap.add_argument_group("sequential gate over logs still being written (docs/regress.md)")
    seq.add_argument("--sequential", action="store_true",
                     help="anytime-valid gate over inspect logs still being written: the in-run gate's seeded batches, "
                          "read as far as both logs hold them; re-run as samples arrive")
    seq.add_argument("--batch", type=int, default=d.batch, help=f"items per look (default {d.batch})")
    seq.add_argument("--max-items", type=int, default=d.max_items,
                     help=f"the most items the gate will read, fixed in advance (default {d.max_items})")
    seq.add_argument("--seed", type=int, default=d.seed, help=f"the seed of the items' order (default {d.seed}, as regress.seed)")
    return ap


def command(argv: list[str]) -> None:
    from ..config import RegressConfig
    from ..regress import gate, parse_ref, write_gate, write_github

    d = RegressConfig()
    a = parser().parse_args(argv)
    base = parse_ref(a.baseline, d.baseline, "--baseline")
    cand = parse_ref(a.candidate, d.candidate, "--candidate")
    s = RegressConfig(enabled=True, baseline=base.alias, candidate=cand.alias, margin=a.margin, alpha=a.alpha,
                      strict=a.strict, inconclusive=a.inconclusive, tasks=a.tasks, graders=a.graders,
                      allow_subset=a.allow_subset, sequential=a.sequential, batch=a.batch, max_items=a.max_items,
                      seed=a.seed)
    result = gate(base, cand, s)
    from ..runs import is_run_dir

    # a log's dir is the user's (or inspect's): nothing is written beside a foreign log unless asked
    out = a.out or (cand.dir if is_run_dir(cand.dir) else Path.cwd())
    print(write_gate(result, out))
    print(f"[regress] {out / 'regress.md'}")
    if a.comment:
        from ..cache import write_text
        from ..regress import pr_comment

        write_text(a.comment, pr_comment(result, out / "regress.md"))
        print(f"[regress] {a.comment} (pull-request comment)")
    for f in write_github(result, out / "regress.md"):
        print(f"[regress] {f} (GitHub Actions)")
    raise SystemExit(result["exit_code"])
