#!/usr/bin/env bash
# gpu-check.sh — everything a machine with an NVIDIA GPU should check, in one go:
#   1. a CUDA build (Release, sm_90 unless CMAKE_CUDA_ARCHITECTURES is set);
#   2. the CUDA test suite (every CUDA kernel against the CPU): make test-cuda;
#   3. the same suite under compute-sanitizer memcheck and racecheck (when the
#      toolkit has it), on the kernels that read and write memory the most;
#   4. lory_bench_kernels at the 0.3B model's shapes, as a table and JSON,
#      and lory_bench_train --preset paper-0.3b: whole training steps of the
#      0.3B dense and 8E models in bf16 (tokens/s, MFU, peak memory against
#      the plan, Lory/dense against issue 16's goal);
#   5. lory_train on the GPU: the 0.3B-8E config in bf16 for TRAIN_STEPS
#      steps (default 300) on the main job's data (made here with
#      tools/prepare-data.sh when data/main is missing): loss, tokens/s, MFU
#      and the peak memory per rank against the plan, in train.log;
#   6. with two or more GPUs, the data-parallel tests at one rank per GPU:
#      NCCL ranks on the GPUs against MPI ranks on the CPU (mpi-tests.log).
# Logs and results go to OUTDIR (default runs/gpu-check): tests.log,
# memcheck.log, racecheck.log, bench.txt, bench.json, bench-train.txt,
# bench-train.json. Exits non-zero when a
# step fails, after running the rest.
#
#   bash tools/gpu-check.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu-check}
mkdir -p "$out"
jobs=$(nproc 2>/dev/null || echo 4)
status=0
step() { echo; echo "== $*"; }

step "build (CUDA on)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLORY_CUDA=ON ${CMAKE_ARGS:-} >"$out/configure.log" 2>&1 \
  || { cat "$out/configure.log"; echo "gpu-check: configure failed (is nvcc on PATH?)"; exit 1; }
cmake --build build -j "$jobs" >"$out/build.log" 2>&1 || { tail -50 "$out/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"

step "CUDA tests (every kernel against the CPU)"
./build/bin/lory_cuda_tests 2>&1 | tee "$out/tests.log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { echo "gpu-check: CUDA tests failed (exit $rc)"; status=1; }

sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$sanitizer" ]; then
  # The kernels with hand-written indexing and shared memory, and the chunked
  # expert merge (workspace offsets, beta accumulation); the whole suite
  # under racecheck would take too long.
  cases='*index*,*cross_entropy*,*rms_norm*,*rope*,*segment*,*FlashAttention*,*general attention*,*AdamW*,*swiglu*,*merged_linear*'
  for tool in memcheck racecheck; do
    step "compute-sanitizer --tool $tool"
    "$sanitizer" --tool "$tool" --error-exitcode 9 ./build/bin/lory_cuda_tests --test-case="$cases" \
      >"$out/$tool.log" 2>&1
    rc=$?
    tail -5 "$out/$tool.log"
    [ "$rc" -eq 0 ] || { echo "gpu-check: $tool found problems (exit $rc), see $out/$tool.log"; status=1; }
  done
else
  echo "gpu-check: compute-sanitizer not found; skipped"
fi

step "lory_bench_kernels"
./build/bin/lory_bench_kernels --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu-check: benchmark failed"; status=1; }

step "lory_bench_train: 0.3B dense and 8E, bf16, whole training steps"
./build/bin/lory_bench_train --preset paper-0.3b --json "$out/bench-train.json" 2>&1 | tee "$out/bench-train.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu-check: training benchmark failed"; status=1; }

step "lory_train: 0.3B-8E, bf16, one GPU"
data=data/main
if [ ! -f "$data/instances/train-similarity.bin" ]; then
  bash tools/prepare-data.sh "$data" 24 4096 256 >"$out/prepare-data.log" 2>&1 \
    || { tail -20 "$out/prepare-data.log"; echo "gpu-check: no training data"; status=1; }
fi
if [ -f "$data/instances/train-similarity.bin" ]; then
  rm -rf "$out/train-run"
  # 32 sequences of 256 tokens a step; the measured GEMM is the MFU reference.
  ./build/bin/lory_train --config configs/paper-0.3b-8e.toml --data.train="$data/instances/train-similarity.bin" \
    --data.valid= --schedule.tokens=0 --schedule.steps="${TRAIN_STEPS:-300}" --train.global_batch_tokens=8192 \
    --train.micro_batch=32 --log.every=25 --log.peak_tflops=0 --eval.every=0 --checkpoint.every=0 \
    --checkpoint.dir="$out/train-run" 2>&1 | tee "$out/train.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu-check: training failed"; status=1; }
  python3 - "$out/train-run/metrics.jsonl" <<'PY' || { echo "gpu-check: the loss did not fall"; status=1; }
import json, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"type":"train"' in l]
first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
print(f"loss: first 10 steps {first:.3f}, last 10 {last:.3f}")
sys.exit(0 if last < first - 0.5 else 1)
PY
fi

gpus=$(nvidia-smi --list-gpus 2>/dev/null | wc -l)
if [ "$gpus" -ge 2 ] && [ -x build/bin/lory_mpi_tests ]; then
  step "data parallel: NCCL on $gpus GPUs against MPI on the CPU"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated \
    mpirun -np "$gpus" ./build/bin/lory_mpi_tests 2>&1 | tee "$out/mpi-tests.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu-check: data-parallel tests failed"; status=1; }
else
  echo "gpu-check: $gpus GPU(s): the NCCL check needs two; skipped"
fi

echo
echo "gpu-check: done, exit $status; results in $out"
exit $status
