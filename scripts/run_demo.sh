#!/usr/bin/env bash
# README command 1: set up (idempotent) and run the few-shot demo (a new task from 8 examples
# per class) on the embedded default backbone. Extra arguments go to examples/quickstart.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PET_KIT_VENV:-.venv}/bin/python" examples/quickstart.py "$@"
