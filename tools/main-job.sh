#!/usr/bin/env bash
# The README's main job: the Lory recipe end to end on CPU, from Debian
# packages to a per-domain perplexity table, dense vs Lory.
#
#   bash tools/main-job.sh             # about 20 minutes on 2 cores
#   bash tools/main-job.sh --seeds 3   # more training seeds per model (about 9 minutes each)
#   bash tools/main-job.sh --quick     # a 2-minute smoke run of every step (CI runs it)
#
#   1. installs what the build needs (tools/install-deps.sh) and builds (make)
#   2. data (tools/prepare-data.sh): a corpus of eight domains from Debian
#      packages, a SentencePiece tokenizer, token shards, similarity-batched
#      training instances (paper §3.2)
#   3. trains a dense model (configs/cpu-dense.toml) and a Lory model with 8
#      experts per FFN (configs/cpu-lory-8e.toml: dense warm-up, then
#      upcycling) on the same instances, once per seed (2 by default; the
#      seed sets the initialisation and the order of the instances)
#   4. evaluates both per domain on held-out documents and prints the table:
#      perplexities (mean over seeds, +- their spread) and Lory's gain with a
#      95% interval (paired bootstrap over document blocks and seeds)
#   5. draws the figures with matplotlib (tools/lory_plot.py): the loss curves
#      with Lory minus dense per seed, the per-domain perplexities, the Lory
#      model's routing heatmap (paper Fig. 6) and its routers during training
# Everything lands in runs/main (runs/main-quick); a finished step is not
# redone when the job runs again, and an interrupted training run resumes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=full
seeds=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) mode=quick ;;
    --seeds)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "main-job: --seeds needs a positive number, got '${2:-}'" >&2; exit 2; }
      seeds=$2; shift ;;
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "main-job: unknown argument '$1' (use --quick, --seeds N, or nothing)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $mode == quick ]]; then
  data=data/quick out=runs/main-quick mb=0.3 vocab=1000 seq=128
  # A tiny model and a few dozen steps: every step of the job, not a result.
  overrides=(--model.hidden_size=64 --model.intermediate_size=192 --model.max_position_embeddings=128
             --schedule.tokens=61440 --train.global_batch_tokens=2048 --eval.tokens_per_domain=8192
             --checkpoint.every=0 --log.every=5)
  lory_overrides=(--model.segment_length=32)
else
  data=data/main out=runs/main mb=3 vocab=4096 seq=256
  overrides=()
  lory_overrides=()
fi
bin=build/bin
step() { printf '\n==== %s\n' "$*"; }
start=$SECONDS

step "dependencies and build"
bash tools/install-deps.sh
make build
# The figures need a python3 with matplotlib; found now, not after the training.
python=
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import matplotlib' >/dev/null 2>&1; then
    python=$candidate
    break
  fi
done
if [[ -z $python ]]; then
  echo "main-job: no python3 with matplotlib for the figures: run 'apt-get install python3-matplotlib' (or 'bash tools/install-deps.sh')" >&2
  exit 1
fi

step "data: $data ($mb MB per domain, vocab $vocab, sequences of $seq tokens)"
bash tools/prepare-data.sh "$data" "$mb" "$vocab" "$seq"

train() {
  local name=$1 config=$2
  shift 2
  local dir=$out/$name
  step "train $name ($config)"
  if [[ -f $dir/eval.json ]]; then
    echo "already trained: $dir/eval.json exists (delete $dir to train again)"
    return
  fi
  local resume=()
  compgen -G "$dir/checkpoints/step-*" >/dev/null && resume=(--resume)
  "$bin/lory_train" --config "$config" --data.train="$data/instances/train-similarity.bin" \
    --data.valid="$data/shards/valid-*.bin" --checkpoint.dir="$dir" "${overrides[@]}" "$@" "${resume[@]}"
}
# Seed by seed, dense then Lory, so that an interrupted job has whole pairs.
for seed in $(seq 1 "$seeds"); do
  train "dense-seed$seed" configs/cpu-dense.toml --train.seed="$seed"
  train "lory-8e-seed$seed" configs/cpu-lory-8e.toml --train.seed="$seed" "${lory_overrides[@]}"
done

step "held-out perplexity per domain: dense vs Lory (same active parameters, same tokens), $seeds seed(s) each"
# Run r of each model has seed r (lory_eval pairs them); only this job's seeds.
evals() { local files=(); for seed in $(seq 1 "$seeds"); do files+=("$out/$1-seed$seed/eval.json"); done; (IFS=+; echo "${files[*]}"); }
"$bin/lory_eval" --compare "dense=$(evals dense),lory-8e=$(evals lory-8e)" | tee "$out/table.txt"

step "figures ($python tools/lory_plot.py)"
runs=() lory_runs=()
for seed in $(seq 1 "$seeds"); do
  runs+=("$out/dense-seed$seed/metrics.jsonl=dense seed $seed" "$out/lory-8e-seed$seed/metrics.jsonl=lory-8e seed $seed")
  lory_runs+=("$out/lory-8e-seed$seed/metrics.jsonl=lory-8e seed $seed")
done
plot() { "$python" tools/lory_plot.py "$@"; }
plot loss --runs "$(IFS=,; echo "${runs[*]}")" --smooth 5 --diff \
  --title "Training loss: dense vs Lory-8E (same tokens)" --out "$out/loss.png"
plot perplexity --compare "dense=$(evals dense),lory-8e=$(evals lory-8e)" \
  --title "Held-out perplexity per domain: dense vs Lory-8E" --out "$out/perplexity.png"
plot routing --eval "$out/lory-8e-seed1/eval.json" \
  --title "Lory-8E (seed 1): mean routing weight per domain (held-out data)" --out "$out/routing.png"
plot router --runs "$(IFS=,; echo "${lory_runs[*]}")" --smooth 5 \
  --title "Lory-8E: the routers during training" --out "$out/router.png"

step "done in $((SECONDS - start)) s: $out/table.txt; figures: $out/{loss,perplexity,routing,router}.png"
