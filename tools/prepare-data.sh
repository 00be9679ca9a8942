#!/usr/bin/env bash
# The whole data path of the recipe, from Debian packages to training instances:
#
#   bash tools/prepare-data.sh [DATA_DIR] [MB_PER_DOMAIN] [VOCAB_SIZE] [SEQ_LEN]
#   bash tools/prepare-data.sh data 25 32000 4096      # the defaults
#
#   1. corpus       DATA_DIR/corpus/{train,valid,test}.jsonl    (tools/build-corpus.sh)
#   2. tokenizer    DATA_DIR/tokenizer.model                    (lory_tokenize train)
#   3. shards       DATA_DIR/shards/{train,valid,test}-*.bin    (lory_tokenize encode)
#   4. instances    DATA_DIR/instances/train-{similarity,random}.bin and report.json
#                   (lory_batch: the paper's similarity order and the random baseline)
# Every step is skipped when its output exists (delete it to redo the step).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-data}
mb=${2:-25}
vocab=${3:-32000}
seq=${4:-4096}
bin=${LORY_BIN:-build/bin}
for tool in lory_corpus lory_tokenize lory_batch; do
  [[ -x $bin/$tool ]] || { echo "prepare-data: $bin/$tool not found; build first: make" >&2; exit 1; }
done
step() { printf '\n== %s\n' "$*"; }

if [[ ! -f $data/corpus/train.jsonl ]]; then
  step "corpus ($mb MB per domain)"
  bash tools/build-corpus.sh "$data/corpus" --mb-per-domain "$mb"
fi
if [[ ! -f $data/tokenizer.model ]]; then
  step "tokenizer (BPE, vocab $vocab)"
  "$bin/lory_tokenize" train --corpus "$data/corpus/train.jsonl" --vocab-size "$vocab" --out "$data/tokenizer"
fi
for split in train valid test; do
  if ! compgen -G "$data/shards/$split-*.bin" >/dev/null; then
    step "shards: $split"
    "$bin/lory_tokenize" encode --model "$data/tokenizer.model" --input "$data/corpus/$split.jsonl" \
      --out "$data/shards/$split"
  fi
done
mkdir -p "$data/instances"
shards=$(ls "$data"/shards/train-*.bin | paste -sd, -)
for mode in similarity random; do
  if [[ ! -f $data/instances/train-$mode.bin ]]; then
    step "instances: $mode order, sequences of $seq tokens"
    "$bin/lory_batch" --shards "$shards" --mode "$mode" --seq-len "$seq" \
      --out "$data/instances/train-$mode.bin" --report "$data/instances/report-$mode.json"
  fi
done
step "done: $data/instances/train-similarity.bin (report: $data/instances/report-similarity.json)"
