#!/usr/bin/env bash
# perf-table.sh — the engine against PyTorch eager, same model, same training
# step, same machine, same run: one markdown table.
#
# Runs build/bin/lory_bench_train (tools/lory_bench_train.cpp) and
# tools/bench/pytorch_baseline.py with the same options, one after the other,
# then prints for dense, Lory 8E T=64, 8E T=256 and 32E T=256 (the rows of
# issue 16's goals): each engine's tokens/s, engine/PyTorch, and each one's
# Lory/dense ratio, in f32 (both) and bf16 (the engine; PyTorch's bf16 on a
# CPU is autocast, another recipe, so it is left out of the table). Both
# programs use OMP_NUM_THREADS threads (default: every core). Their JSON and
# logs land in OUT (default runs/bench).
#
#   bash tools/bench/perf-table.sh                       # the issue's shape (4 x 256, f 688, vocab 8000, 4 x 512 tokens)
#   bash tools/bench/perf-table.sh --preset main-job     # any option goes to both programs
#   bash tools/bench/perf-table.sh --quick               # a smoke run of the whole script
#   OMP_NUM_THREADS=2 OUT=/tmp/bench bash tools/bench/perf-table.sh
#
# The PyTorch baseline needs torch (1.13 or newer). On Debian 12:
#   apt-get install python3-torch        # torch 1.13 for /usr/bin/python3
# or in a virtual environment:
#   python3 -m venv .venv && .venv/bin/pip install torch && PYTHON=.venv/bin/python3 bash tools/bench/perf-table.sh
# Without it the table is printed with the engine's columns only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bin=${LORY_BIN:-build/bin}
out=${OUT:-runs/bench}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
rows=8x64,8x256,32x256
for arg in "$@"; do
  case $arg in
    -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    --lory* | --experts* | --segment* | --dtype* | --json*)
      echo "perf-table: $arg is set by the script (rows $rows, f32 and bf16, JSON in \$OUT)" >&2; exit 2 ;;
  esac
done
[[ -x $bin/lory_bench_train ]] || { echo "perf-table: $bin/lory_bench_train is not built (run: make build)" >&2; exit 1; }
mkdir -p "$out"

# A python3 with torch: $PYTHON, else python3, else Debian's /usr/bin/python3.
torch_py=
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import torch' >/dev/null 2>&1; then
    torch_py=$candidate
    break
  fi
done
json_py=${torch_py:-python3}  # the table itself needs only the standard library

# Other work on the machine slows either program: the load averages around
# the run are printed under the table.
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
echo "== engine: $bin/lory_bench_train ($OMP_NUM_THREADS threads)"
"$bin/lory_bench_train" --lory "$rows" --dtype f32,bf16 --json "$out/engine.json" "$@" | tee "$out/engine.log"
rm -f "$out/pytorch.json"
if [[ -n $torch_py ]]; then
  echo
  echo "== PyTorch: $torch_py tools/bench/pytorch_baseline.py ($OMP_NUM_THREADS threads)"
  PYTHONDONTWRITEBYTECODE=1 "$torch_py" tools/bench/pytorch_baseline.py --lory "$rows" --dtype f32 \
    --json "$out/pytorch.json" "$@" | tee "$out/pytorch.log"
else
  echo
  echo "== PyTorch: skipped: no python3 with torch (apt-get install python3-torch, or PYTHON=a venv's python3)"
fi

echo
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
"$json_py" - "$out/engine.json" "$out/pytorch.json" "$load_before" "$load_after" <<'EOF' | tee "$out/table.md"
import json, os, sys

engine = json.load(open(sys.argv[1]))
torch = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None

def rows_of(report):
    return {(r["model"], r["dtype"]): r for r in report["rows"]} if report else {}

e_rows, t_rows = rows_of(engine), rows_of(torch)
s = engine["shape"]
print(f"{s['layers']} layers, d {s['hidden']}, f {s['ffn']}, {s['heads']} heads, vocab {s['vocab']}, "
      f"{s['batch']} x {s['seq']} tokens x {s['accumulation']} micro-batches a step; {engine['device']}, "
      f"{engine['threads']} threads; tokens/s = best of {engine['timing']['rounds']} rounds of "
      f"{engine['timing']['steps_per_round']} steps after {engine['timing']['warmup_steps']} warm-up steps")
print()
print("| model | dtype | engine tokens/s | PyTorch tokens/s | engine/PyTorch | Lory/dense engine | Lory/dense PyTorch | goal |")
print("|---|---|---|---|---|---|---|---|")
fmt = lambda x, f: "-" if x is None else format(x, f)
for dtype in ("f32", "bf16"):
    for model in ("dense", "lory E=8 T=64", "lory E=8 T=256", "lory E=32 T=256"):
        e, t = e_rows.get((model, dtype)), t_rows.get((model, dtype))
        if e is None:
            continue
        ratio = e["tokens_per_s"] / t["tokens_per_s"] if t else None
        goal = ""
        if e["goal"] is not None:
            goal = f">= {e['goal']:.2f}: engine {'ok' if e['goal_met'] else 'BELOW'}"
            if t:
                goal += f", PyTorch {'ok' if t['goal_met'] else 'BELOW'}"
        print(f"| {model} | {dtype} | {e['tokens_per_s']:.0f} | {fmt(t and t['tokens_per_s'], '.0f')} | "
              f"{fmt(ratio, '.2f')} | {e['lory_dense_ratio']:.2f} | {fmt(t and t['lory_dense_ratio'], '.2f')} | {goal} |")
print()
refs = ", ".join(f"{r['dtype']} {1e3 * r['gemm_tflops']:.0f} GFLOP/s" for r in engine["references"])
line = f"reference GEMMs (1024^3, same run): engine {refs}"
if torch:
    refs = ", ".join(f"{r['dtype']} {1e3 * r['gemm_tflops']:.0f} GFLOP/s" for r in torch["references"])
    line += f"; PyTorch {torch['torch_version']}: {refs}"
else:
    line += "; PyTorch: not run (no torch)"
print(line)
print(f"load average (1, 5, 15 min) before the run: {sys.argv[3]}, after: {sys.argv[4]}; cores: {os.cpu_count()}")
shares = [(name, r["cpu_share"]) for name, report in (("engine", engine), ("PyTorch", torch)) if report
          for r in report["rows"] if r.get("cpu_share") is not None]
line = "CPU share of the counted rounds (CPU time / (wall x threads)): " + ", ".join(
    f"{name} {100 * min(s for n, s in shares if n == name):.0f}% at the lowest" for name in ("engine", "PyTorch")
    if any(n == name for n, _ in shares))
if any(s < 0.9 for _, s in shares):
    line += "; UNDER 90%: other work on the machine slowed some rows, measure again on a quiet machine"
print(line)
EOF
