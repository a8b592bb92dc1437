import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))

# Tests are offline by construction: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HARNESS_CACHE", str(REPO / ".cache" / "harness"))


@pytest.fixture
def harness_bin() -> str:
    return HARNESS
