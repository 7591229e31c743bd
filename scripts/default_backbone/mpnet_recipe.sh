#!/usr/bin/env bash
# The all-mpnet-base-v2 candidate's whole recipe, from a clean checkout to a measured
# candidate (R in docs/default_backbone.md: top layer + head, offset term), one step after
# the other. Every step is skipped when its output exists and the caching steps resume from
# their last whole file, so an interrupted run continues where it stopped: run it again.
#
#   scripts/default_backbone/mpnet_recipe.sh [SEED] [OFFSET_WEIGHT] [WORDS] [MLM_WEIGHT]
#
# SEED (default 0) seeds the top layer's training; OFFSET_WEIGHT (default 5) weighs the
# offset term; WORDS (default 5000) is the top layer's candidate words, the most frequent
# single-token words of the distillation texts (20000: all of them, V and X). Other than
# 5000, a second run folder holds them (the same texts; the teacher's text embeddings
# linked from the first) and the head K still trains on the first. The candidate lands in
# VARIANTS/top-K-w<MLM>-t12288-off<W>[-w<WORDS>][-s<SEED>]/model-2 with its evaluation beside
# it (VARIANTS: ~/.cache/pet_kit/mpnet_head/variants; 20000 words are written -w20k).
# MLM_WEIGHT (default 0.3) weighs the top layer's MLM loss; the folder names it without its
# point (0.5: top-K-w05-..., Y and Z).
# Measured on a fresh 2-core box (minutes): corpus 10, prepare 12, encode 7, cache 60,
# cache-eval 5, head K 12, top layer 16, evaluate 1 -- two hours; 7 GB under
# ~/.cache/pet_kit. The corpus comes from the Debian packages of the day, so a rebuild
# after their point releases is a replicate of earlier runs, not a copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
seed=${1:-0}
offset=${2:-5}
words=${3:-5000}
mlm=${4:-0.3}
py=${PYTHON:-.venv/bin/python}
here=scripts/default_backbone
cache=$HOME/.cache/pet_kit  # the scripts' default folders
run=$cache/cloze_distill_run
out=$cache/mpnet_head
variants=$out/variants
head=$variants/mlm24k-e16-b1024-w03
[[ $seed =~ ^[0-9]+$ ]] || { echo "SEED must be a whole number, not '$seed'" >&2; exit 2; }
[[ $offset =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "OFFSET_WEIGHT must be a number, not '$offset'" >&2; exit 2; }
[[ $words =~ ^[1-9][0-9]*$ ]] || { echo "WORDS must be a whole number, not '$words'" >&2; exit 2; }
[[ $mlm =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "MLM_WEIGHT must be a number, not '$mlm'" >&2; exit 2; }
name=top-K-w${mlm//./}-t12288-off$offset
top_run=$run  # the prepared run the top layer trains and is measured on
if [ "$words" != 5000 ]; then
  tag=$words
  [ $((words % 1000)) = 0 ] && tag=$((words / 1000))k
  top_run=${run}_w$tag
  name=$name-w$tag
fi
[ "$seed" = 0 ] || name=$name-s$seed
say() { echo "[mpnet_recipe $(date +%H:%M:%S)] $*"; }
# link_first SRC DST [N]: hard-link SRC's first N files (all by default) into DST, each one
# skipped when present, so a run killed while linking completes the links when run again
link_first() {
  mkdir -p "$2"
  for f in $(ls "$1" | head -n "${3:-999999999}"); do
    [ -e "$2/$f" ] || ln "$1/$f" "$2/$f"
  done
}
mpnet_head=("$py" $here/mpnet_head.py --run "$run" --out "$out")
top_head=("$py" $here/mpnet_head.py --run "$top_run" --out "$out")  # measured on its own run

say "1/8 corpus"
[ -f "$cache/mlm_corpus/manifest.json" ] || "$py" $here/build_corpus.py
say "2/8 texts, candidates and the teacher's fills"
"$py" $here/distill_cloze.py --corpus "$cache/mlm_corpus" --run "$run" prepare --teacher mpnet
say "3/8 the teacher's embeddings of 12,288 distillation texts"
"$py" $here/distill_bundle.py --run "$run" encode --texts 12288
say "4/8 encoder states: every pair (with the top layer's inputs), then MLM windows"
# the first 24,000 windows train the head (K) only; the next 24,000 also carry the top
# layer's inputs, so the top layer trains on windows the head never saw
"${mpnet_head[@]}" --texts 12288 --mlm-windows 0 cache --top
"${mpnet_head[@]}" --texts 12288 --mlm-windows 24000 cache
"${mpnet_head[@]}" --texts 12288 --mlm-windows 48000 cache --top
# the head trains on the first 6,144 texts: a prefix of the same pairs, so the same files
# (2 pairs a text, mpnet_head.CHUNK = 64 pairs a file)
link_first "$out/states-12288" "$out/states-6144" $((6144 * 2 / 64))
say "5/8 the frozen encoder's states at every evaluation input"
[ -f "$out/eval-top.pt" ] || "${mpnet_head[@]}" cache-eval --top
say "6/8 the head (K)"
[ -d "$head/model-16" ] || "${mpnet_head[@]}" --texts 6144 --mlm-windows 24000 \
  --models "$head" --epochs 16 train --mlm-batch 1024 --weight-mlm 0.3
[ -f "$head/evaluation-16.json" ] || "${mpnet_head[@]}" --texts 6144 --models "$head" \
  --epochs 16 evaluate --fast
say "7/8 the top layer and the head, seed $seed, offset weight $offset, $words words, MLM $mlm"
if [ "$top_run" != "$run" ]; then
  # the same texts (prepare's seed), so the teacher's embeddings of them are the same files
  link_first "$run/bundle-src/text-emb-mpnet" "$top_run/bundle-src/text-emb-mpnet"
  # the first run's candidate words are a prefix of these: their fills are reused
  "$py" $here/distill_cloze.py --corpus "$cache/mlm_corpus" --run "$top_run" prepare \
    --teacher mpnet --words "$words" --fills-from "$run"
fi
[ -d "$variants/$name/model-2" ] || "$py" $here/mpnet_top.py --run "$top_run" --out "$out" \
  --texts 12288 --init "$head/model-16" --models "$variants/$name" --epochs 2 \
  train --weight-mlm "$mlm" --weight-offset "$offset" --seed "$seed" --screen-every 1
say "8/8 the gates"
[ -f "$variants/$name/evaluation-2.json" ] || "${top_head[@]}" --texts 12288 \
  --models "$variants/$name" --epochs 2 evaluate --fast
say "done: $variants/$name"
