import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HARNESS = str(Path(sys.executable).with_name("harness"))

# Tests are offline by construction: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HARNESS_CACHE", str(REPO / ".cache" / "harness"))
# the per-user cache (converted embedded model, embeddings; harness.cache.user_cache_dir) goes to the
# suite's cache, never to the real ~/.cache: the embedded model is converted once for the whole suite,
# and runs with a fresh HARNESS_CACHE of their own still find it there
os.environ.setdefault("HARNESS_MODEL_CACHE", os.environ["HARNESS_CACHE"])


@pytest.fixture
def harness_bin() -> str:
    return HARNESS
