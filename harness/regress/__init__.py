"""Stage 6, regress: gate a candidate model against the current one from finished runs (docs/regress.md)."""

from ._gate import EXIT, INCONCLUSIVE_POLICIES, SCHEMA_VERSION, RunRef, check_settings, gate, parse_ref
from ._write import write_gate

__all__ = ["EXIT", "INCONCLUSIVE_POLICIES", "SCHEMA_VERSION", "RunRef", "check_settings", "gate", "parse_ref", "write_gate"]
