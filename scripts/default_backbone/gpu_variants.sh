#!/usr/bin/env bash
# Train distillation variants side by side on one lent GPU, one process each, from a bundle
# (distill_bundle.py pack). The model is small: each process is bound by its own Python and
# kernel launches, so three share one GPU at little cost to each.
#
#   scripts/default_backbone/gpu_variants.sh BUNDLE OUT MINUTES
#
# Writes each variant's trained tensors and JSON to OUT and the processes' logs to
# OUT/log.txt; bring them home with `distill_bundle.py import --src OUT --name NAME`.
set -u
bundle=$1 out=$2 minutes=$3
py=${PYTHON:-python3}
script=scripts/default_backbone/distill_bundle.py
mkdir -p "$out"
common=(--bundle "$bundle" --fit-minutes "$minutes" --out "$out" --texts-per-step 32
        --multi-per-step 32 --mlm-per-step 32 --checkpoint-every 1000)
variant() {  # name, extra arguments...
  local name=$1; shift
  PYTHONUNBUFFERED=1 "$py" "$script" --run "/tmp/run-$name" --threads 4 train "${common[@]}" \
    --name "$name" "$@" >"/tmp/log-$name.txt" 2>&1
  echo "$name exited $?" >>"/tmp/log-$name.txt"
}
variant mpnet-l4 --teacher bundle &
variant minilm-l4 --teacher minilm-live &
variant mpnet-l6 --teacher bundle --train-layers 6 &
wait
for f in /tmp/log-*.txt; do echo "== $f"; grep -v "Loading weights" "$f"; done >"$out/log.txt"
tail -n 4 /tmp/log-*.txt
