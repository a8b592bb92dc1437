"""Stage 6, regress: gate a candidate model against the current one from finished runs (docs/regress.md);
sequentially, batch by batch, with an anytime-valid stop (regress.sequential)."""

from ._gate import EXIT, INCONCLUSIVE_POLICIES, SCHEMA_VERSION, RunRef, check_settings, gate, parse_ref
from ._sequential import Status as SequentialStatus
from ._sequential import plan as sequential_plan
from ._sequential import status as sequential_status
from ._write import write_gate

__all__ = ["EXIT", "INCONCLUSIVE_POLICIES", "SCHEMA_VERSION", "RunRef", "SequentialStatus", "check_settings", "gate", "parse_ref",
           "sequential_plan", "sequential_status", "write_gate"]
