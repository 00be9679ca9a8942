# tiny_run.sh — sourced by the shell tests that run the real lory_train
# (tests/kill_resume_test.sh, tests/mpi/lory_train_mpi_test.sh): the fixture
# data and the tiny Lory model they train, in one place.

# tiny_data BIN SRC WORK: the fixture corpus tokenized with the fixture
# tokenizer (WORK/train-*.bin, WORK/valid-*.bin) and packed, in random order,
# into WORK/train-instances.bin of 64 + 1 tokens.
tiny_data() {
  local bin=$1 src=$2 work=$3 split
  for split in train valid; do
    "$bin/lory_tokenize" encode --model "$src/tests/data/tokenizer-2k.model" \
      --input "$src/tests/data/corpus/$split.jsonl.gz" --out "$work/$split" >/dev/null
  done
  "$bin/lory_batch" --shards "$(ls "$work"/train-*.bin | paste -sd,)" --mode random --seq-len 64 \
    --out "$work/train-instances.bin" >/dev/null
}

# tiny_model_toml WORK: the [model] and [data] sections of a run on tiny_data's
# instances (the tiny preset with 4 experts, segments of 16 tokens); the
# caller appends the sections its test needs.
tiny_model_toml() {
  cat <<TOML
[model]
preset = "tiny"
num_experts = 4
segment_length = 16
[data]
train = "$1/train-instances.bin"
valid = ""
TOML
}
