"""One training process of a launched fine-tune: `python -m harness.finetune._worker <spec.json>`
(started by _dist.launch through torchrun / accelerate launch; never imported by the package, so
runpy runs it fresh)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..config import finetune_from_json
from ._dist import teacher_from_json
from ._local import train_local


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    metrics = train_local(spec["base_path"], Path(spec["train_file"]), finetune_from_json(spec["cfg"]), Path(spec["out_dir"]),
                          teacher=teacher_from_json(spec.get("teacher")))
    if int(os.environ.get("RANK", "0")) == 0:  # the main process's metrics; the caller renames the entry into place
        tmp = Path(spec["metrics"] + ".tmp")
        tmp.write_text(json.dumps(metrics), encoding="utf-8")
        os.replace(tmp, spec["metrics"])


if __name__ == "__main__":
    main()
