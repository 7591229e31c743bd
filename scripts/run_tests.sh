#!/usr/bin/env bash
# README command 2: set up (idempotent) and run the whole test suite (unit + integration).
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PET_KIT_VENV:-.venv}/bin/python" -m pytest "$@"
