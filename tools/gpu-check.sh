#!/usr/bin/env bash
# gpu-check.sh — everything a machine with an NVIDIA GPU should check, in one go:
#   1. a CUDA build (Release, sm_90 unless CMAKE_CUDA_ARCHITECTURES is set);
#   2. the CUDA test suite (every CUDA kernel against the CPU): make test-cuda;
#   3. the same suite under compute-sanitizer memcheck and racecheck (when the
#      toolkit has it), on the kernels that read and write memory the most;
#   4. lory_bench_kernels at the 0.3B model's shapes, as a table and JSON.
# Logs and results go to OUTDIR (default runs/gpu-check): tests.log,
# memcheck.log, racecheck.log, bench.txt, bench.json. Exits non-zero when a
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
  # The kernels with hand-written indexing and shared memory; the whole suite
  # under racecheck would take too long.
  cases='*index*,*cross_entropy*,*rms_norm*,*rope*,*segment*,*FlashAttention*,*general attention*,*AdamW*,*swiglu*'
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

echo
echo "gpu-check: done, exit $status; results in $out"
exit $status
