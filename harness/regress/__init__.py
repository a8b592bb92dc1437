"""Stage 6, regress: gate a candidate model against the current one from finished runs (docs/regress.md);
sequentially, batch by batch, with an anytime-valid stop (regress.sequential), also over logs still being
written; on GitHub (step summary, outputs, PR comment); over many versions (`history`)."""

from ._gate import EXIT, INCONCLUSIVE_POLICIES, SCHEMA_VERSION, RunRef, check_settings, gate, parse_ref
from ._github import comment as pr_comment
from ._github import outputs as github_outputs
from ._github import write_github
from ._history import history, write_history
from ._render import table as render_table
from ._render import untrusted
from ._sequential import Status as SequentialStatus
from ._sequential import plan as sequential_plan
from ._sequential import status as sequential_status
from ._write import write_gate

__all__ = ["EXIT", "INCONCLUSIVE_POLICIES", "SCHEMA_VERSION", "RunRef", "SequentialStatus", "check_settings", "gate",
           "github_outputs", "history", "parse_ref", "pr_comment", "render_table", "sequential_plan", "sequential_status", "untrusted",
           "write_gate", "write_github", "write_history"]
