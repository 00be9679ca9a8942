#!/usr/bin/env bash
# The real lory_train under mpirun, end to end (ctest: lory_train_mpi):
#   1. 2 ranks train the fixture data; SIGUSR1 to mpirun (forwarded to every
#      rank) makes both checkpoint the same step and exit 128 + 10;
#   2. 1 rank resumes that checkpoint (written as 2 model shards + index)
#      and finishes the schedule; 4 ranks resume a copy of it too;
#   3. lory_eval reads the 2-rank checkpoint directory like any model.
#
#   tests/mpi/lory_train_mpi_test.sh BIN_DIR SOURCE_DIR WORK_DIR [MPIEXEC]
set -euo pipefail
bin=$1 src=$2 work=$3 mpirun=${4:-mpirun}
rm -rf "$work"
mkdir -p "$work"
fail() { echo "lory_train_mpi_test: $*" >&2; exit 1; }

# Data: the fixture corpus, tokenized and packed into instances of 64 + 1 tokens.
source "$src/tests/tiny_run.sh"
tiny_data "$bin" "$src" "$work"

tiny_model_toml "$work" >"$work/tiny.toml"
cat >>"$work/tiny.toml" <<TOML
[schedule]
steps = 400
warmup = 0.01
dense_warmup = 0.01
[train]
global_batch_tokens = 256
micro_batch = 1
threads = 1
[log]
every = 1
peak_tflops = 1.0
TOML

# 1. Two ranks, stopped by SIGUSR1 to the launcher once a few steps are done.
"$mpirun" -np 2 "$bin/lory_train" --config "$work/tiny.toml" --checkpoint.dir="$work/run" >"$work/np2.log" 2>&1 &
job=$!
for _ in $(seq 1 300); do
  grep -q '^step  *5/' "$work/np2.log" 2>/dev/null && break
  sleep 0.1
done
kill -USR1 "$job"
code=0
wait "$job" || code=$?
cat "$work/np2.log"
[ "$code" -eq 138 ] || fail "2 ranks after SIGUSR1: exit $code, expected 138 (128 + SIGUSR1)"
grep -q 'stopped after step' "$work/np2.log" || fail "no 'stopped after step' line"
ckpt=$(ls -d "$work"/run/checkpoints/step-* | tail -1)
[ -f "$ckpt/model.safetensors.index.json" ] || fail "$ckpt has no model.safetensors.index.json"
[ "$(ls "$ckpt"/model-*-of-00002.safetensors | wc -l)" -ge 1 ] || fail "$ckpt has no model shards"
grep -q '"world": 2' "$ckpt/trainer_state.json" || fail "trainer_state.json does not say 2 ranks"
stopped=$(basename "$ckpt")

# 2. Resume on 1 rank (plain, no mpirun) and on 4 ranks, 20 more steps each.
cp -r "$work/run" "$work/run4"
"$bin/lory_train" --config "$work/tiny.toml" --checkpoint.dir="$work/run" --resume --schedule.steps=400 \
  --stop-after=$((10#${stopped#step-} + 20)) >"$work/np1.log" 2>&1 || { cat "$work/np1.log"; fail "1-rank resume failed"; }
grep -q "resharded for 1" "$work/np1.log" || { cat "$work/np1.log"; fail "the 1-rank resume did not reshard"; }
"$mpirun" -np 4 "$bin/lory_train" --config "$work/tiny.toml" --checkpoint.dir="$work/run4" --resume \
  --stop-after=$((10#${stopped#step-} + 20)) >"$work/np4.log" 2>&1 || { cat "$work/np4.log"; fail "4-rank resume failed"; }
grep -q "resharded for 4" "$work/np4.log" || { cat "$work/np4.log"; fail "the 4-rank resume did not reshard"; }
# The same data and the same sums up to rounding: the same losses to 3 decimals.
last1=$(grep -o 'loss [0-9.]*' "$work/np1.log" | tail -1)
last4=$(grep -o 'loss [0-9.]*' "$work/np4.log" | tail -1)
[ "${last1:0:10}" = "${last4:0:10}" ] || fail "1 and 4 ranks after resuming: $last1 vs $last4"

# 3. A tool reads the sharded checkpoint directory.
"$bin/lory_eval" --ckpt "$ckpt" --data "$(ls "$work"/valid-*.bin | paste -sd,)" --seq-len 64 \
  --tokens-per-domain 512 >"$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "lory_eval could not read $ckpt"; }
echo "lory_train_mpi_test: ok (stopped at $stopped; resumed on 1 and 4 ranks: $last1, $last4)"
