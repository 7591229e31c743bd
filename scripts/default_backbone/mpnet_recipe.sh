#!/usr/bin/env bash
# The all-mpnet-base-v2 candidate's whole recipe, from a clean checkout to a measured
# candidate (R in docs/default_backbone.md: top layer + head, offset term), one step after
# the other. Every step is skipped when its output exists and the caching steps resume from
# their last whole file, so an interrupted run continues where it stopped: run it again.
#
#   scripts/default_backbone/mpnet_recipe.sh [SEEDS] [OFFSET_WEIGHT] [WORDS] [MLM_WEIGHT]
#
# SEEDS (default 0) seeds the top layer's training: one seed, or several joined by commas
# (0,1,2,3), each trained and measured in turn, then their uniform weight average (a soup)
# written to VARIANTS/soup-w<MLM>[-w<WORDS>][-off<W>]-s<SEEDS>/model-2 and measured (-off<W>
# only when OFFSET_WEIGHT is not 5; SEEDS without commas when each is one digit, else joined
# by -): AE is `0,1,2,3 5 20000 0.5`, soup-w05-w20k-s0123. OFFSET_WEIGHT (default 5)
# weighs the offset term; WORDS (default 5000) is the top layer's candidate words, the most
# frequent single-token words of the distillation texts (20000: all of them, V and X). Other
# than 5000, a second run folder holds them (the same texts; the teacher's text embeddings
# linked from the first) and the head K still trains on the first. Each seed's candidate lands in
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
seeds=${1:-0}
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
[[ $seeds =~ ^(0|[1-9][0-9]*)(,(0|[1-9][0-9]*))*$ ]] || {
  echo "SEEDS must be a whole number or several joined by commas (0,1,2,3), not '$seeds'" >&2
  exit 2
}
IFS=, read -r -a seed_list <<<"$seeds"
[ "$(printf '%s\n' "${seed_list[@]}" | sort -u | wc -l)" = "${#seed_list[@]}" ] || {
  echo "SEEDS names a seed twice ('$seeds'): each run counts once in a soup" >&2
  exit 2
}
[[ $offset =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "OFFSET_WEIGHT must be a number, not '$offset'" >&2; exit 2; }
[[ $words =~ ^[1-9][0-9]*$ ]] || { echo "WORDS must be a whole number, not '$words'" >&2; exit 2; }
[[ $mlm =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "MLM_WEIGHT must be a number, not '$mlm'" >&2; exit 2; }
name=top-K-w${mlm//./}-t12288-off$offset
soup=soup-w${mlm//./}
top_run=$run  # the prepared run the top layer trains and is measured on
if [ "$words" != 5000 ]; then
  tag=$words
  [ $((words % 1000)) = 0 ] && tag=$((words / 1000))k
  top_run=${run}_w$tag
  name=$name-w$tag
  soup=$soup-w$tag
fi
[ "$offset" = 5 ] || soup=$soup-off$offset
if [[ $seeds =~ ^[0-9](,[0-9])*$ ]]; then
  soup=$soup-s${seeds//,/}  # 0,1,2,3: s0123
else
  soup=$soup-s${seeds//,/-}  # 1,12: s1-12
fi
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
say "7/8 the top layer and the head: seeds $seeds, offset weight $offset, $words words, MLM $mlm"
if [ "$top_run" != "$run" ]; then
  # the same texts (prepare's seed), so the teacher's embeddings of them are the same files
  link_first "$run/bundle-src/text-emb-mpnet" "$top_run/bundle-src/text-emb-mpnet"
  # the first run's candidate words are a prefix of these: their fills are reused
  "$py" $here/distill_cloze.py --corpus "$cache/mlm_corpus" --run "$top_run" prepare \
    --teacher mpnet --words "$words" --fills-from "$run"
fi
members=()
for seed in "${seed_list[@]}"; do
  variant=$name
  [ "$seed" = 0 ] || variant=$name-s$seed
  members+=("$variants/$variant/model-2")
  say "seed $seed: $variants/$variant"
  [ -d "$variants/$variant/model-2" ] || "$py" $here/mpnet_top.py --run "$top_run" \
    --out "$out" --texts 12288 --init "$head/model-16" --models "$variants/$variant" \
    --epochs 2 train --weight-mlm "$mlm" --weight-offset "$offset" --seed "$seed" \
    --screen-every 1
  say "8/8 the gates, seed $seed"
  [ -f "$variants/$variant/evaluation-2.json" ] || "${top_head[@]}" --texts 12288 \
    --models "$variants/$variant" --epochs 2 evaluate --fast
done
if [ "${#seed_list[@]}" -gt 1 ]; then
  say "the soup of seeds $seeds and its gates"
  [ -d "$variants/$soup/model-2" ] || "$py" $here/mpnet_top.py --models "$variants/$soup" \
    --epochs 2 soup "${members[@]}"
  [ -f "$variants/$soup/evaluation-2.json" ] || "${top_head[@]}" --texts 12288 \
    --models "$variants/$soup" --epochs 2 evaluate --fast
  say "done: $variants/$soup"
else
  say "done: ${members[0]%/model-2}"
fi
