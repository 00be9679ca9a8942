#!/usr/bin/env bash
# SIGKILL at random moments, and right after resumes (ctest: lory_train_kill_resume).
#
# A run is killed with SIGKILL again and again (a few steps after it
# started, at a random moment within a step or a checkpoint write) and
# resumed each time with --resume until it finishes. What it leaves must equal an uninterrupted
# run's: the final weights byte for byte (resume is exact), and metrics.jsonl
# one "train" record per step, each step once, with the same loss (a kill
# loses at most the records after the last checkpoint, and those steps are
# run again). Every other kill lands just after the resumed run prints
# "resumed from": the moment metrics.jsonl has just been rewritten, which an
# in-place rewrite through a stdio buffer did not survive.
#
#   tests/kill_resume_test.sh BIN_DIR SOURCE_DIR WORK_DIR [KILLS]
set -euo pipefail
bin=$1 src=$2 work=$3 kills=${4:-12}
rm -rf "$work"
mkdir -p "$work"
fail() { echo "kill_resume_test: $*" >&2; exit 1; }

source "$src/tests/tiny_run.sh"
tiny_data "$bin" "$src" "$work"
steps=60
tiny_model_toml "$work" >"$work/tiny.toml"
cat >>"$work/tiny.toml" <<TOML
[schedule]
steps = $steps
warmup = 0.05
dense_warmup = 0.2
[train]
global_batch_tokens = 1024
micro_batch = 2
threads = 1
[eval]
tokens_per_domain = 128
[checkpoint]
every = 4
keep_last = 2
[log]
every = 1
peak_tflops = 1.0
TOML

# The uninterrupted run.
"$bin/lory_train" --config "$work/tiny.toml" --checkpoint.dir="$work/straight" >"$work/straight.log" 2>&1 ||
  { cat "$work/straight.log"; fail "the uninterrupted run failed"; }

# The killed run. RANDOM is seeded: the same kill times on every run of the test.
RANDOM=17
resume=""
# The step of the newest checkpoint of the killed run (0: none yet).
newest_checkpoint() {
  local d
  d=$(ls -d "$work"/killed/checkpoints/step-* 2>/dev/null | tail -1)
  [ -n "$d" ] && echo $((10#${d##*step-})) || echo 0
}
done_=0
for i in $(seq 1 "$kills"); do
  log="$work/killed-$i.log"
  "$bin/lory_train" --config "$work/tiny.toml" --checkpoint.dir="$work/killed" $resume >"$log" 2>&1 &
  job=$!
  if [ -n "$resume" ] && [ $((i % 2)) -eq 0 ]; then
    # Just after the resume rewrote metrics.jsonl.
    for _ in $(seq 1 2000); do
      grep -q '^resumed from' "$log" 2>/dev/null && break
      kill -0 "$job" 2>/dev/null || break
      sleep 0.005
    done
  else
    # A few steps past the checkpoint it resumes from, at a random moment
    # within a step or a checkpoint write.
    target=$(($(newest_checkpoint) + 1 + RANDOM % 6))
    for _ in $(seq 1 4000); do
      now=$(grep -o '^step  *[0-9]*' "$log" 2>/dev/null | tail -1 | grep -o '[0-9]*$' || true)
      [ "${now:-0}" -ge "$target" ] && break
      kill -0 "$job" 2>/dev/null || break
      sleep 0.005
    done
    sleep "0.0$((RANDOM % 10))"
  fi
  resume="--resume"
  if kill -KILL "$job" 2>/dev/null; then
    wait "$job" 2>/dev/null || true
  else
    wait "$job" && { done_=1; break; }  # it finished before the kill
  fi
  # A kill before the first checkpoint leaves nothing to resume: start again.
  ls -d "$work"/killed/checkpoints/step-* >/dev/null 2>&1 || resume=""
done
if [ "$done_" -eq 0 ]; then
  "$bin/lory_train" --config "$work/tiny.toml" --checkpoint.dir="$work/killed" $resume >"$work/final.log" 2>&1 ||
    { cat "$work/final.log"; fail "the last resume failed"; }
fi

# The same weights, byte for byte.
a=$(ls -d "$work"/straight/checkpoints/step-* | tail -1)
b=$(ls -d "$work"/killed/checkpoints/step-* | tail -1)
[ "$(basename "$a")" = "$(basename "$b")" ] || fail "last checkpoints differ: $a vs $b"
for f in "$a"/model*.safetensors; do
  cmp -s "$f" "$b/$(basename "$f")" || fail "$(basename "$f") differs between the straight and the killed run"
done

# The same history: one train record per step, each with the straight run's loss.
records() { grep '"type":"train"' "$1" | grep -o '"step":[0-9]*,"tokens":[0-9]*,"loss":[-0-9.e+]*'; }
records "$work/straight/metrics.jsonl" >"$work/straight.records"
records "$work/killed/metrics.jsonl" >"$work/killed.records"
[ "$(wc -l <"$work/straight.records")" -eq "$steps" ] || fail "the straight run has $(wc -l <"$work/straight.records") step records, not $steps"
diff "$work/straight.records" "$work/killed.records" >"$work/records.diff" ||
  { head -20 "$work/records.diff"; fail "metrics.jsonl of the killed run differs from the straight run's (above)"; }
resumes=$(cat "$work"/killed-*.log | grep -c '^resumed from' || true)
echo "kill_resume_test: ok ($i kills, $resumes resumes; weights and $steps step records identical)"
