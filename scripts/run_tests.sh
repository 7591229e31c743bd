#!/usr/bin/env bash
# README command 2: set up (idempotent) and run the whole test suite (unit + integration).
# Extra arguments go to pytest and win over the defaults below, e.g.
# `bash scripts/run_tests.sh -m "not integration"` or `bash scripts/run_tests.sh -n 0` (one
# process). By default the tests run in one worker process per CPU core (pytest-xdist).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PET_KIT_VENV:-.venv}/bin/python" -m pytest -n auto --dist worksteal "$@"
