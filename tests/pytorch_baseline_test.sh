#!/usr/bin/env bash
# The ctest `pytorch_baseline_py`: tools/bench/pytorch_baseline.py, the PyTorch
# side of tools/bench/perf-table.sh, keeps measuring the engine's model:
#   1. without torch it exits 77 with the install command, not a traceback
#   2. its model IS the engine's: on a Lory checkpoint (4 experts, T 4, a
#      last partial segment, weights large enough for routing to matter)
#      and on a dense one, its f64 logits and every parameter's gradient
#      match lory_forward's (--check-engine)
#   3. a --quick run writes rows as lory_bench_train does: positive tokens/s,
#      a first loss near ln(V) that goes down on the fixed batch, the goal
#      of the E=8 T=64 row
# Exits 77 (ctest: skipped) after step 1 when no python3 with torch is found
# (python3, then /usr/bin/python3, where Debian's python3-torch installs).
#
#   bash tests/pytorch_baseline_test.sh BIN_DIR [OUTDIR]
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:?usage: pytorch_baseline_test.sh BIN_DIR [OUTDIR]}
out=${2:-$(mktemp -d "${TMPDIR:-/tmp}/pytorch_baseline_test.XXXXXX")}
script=$src/tools/bench/pytorch_baseline.py
export PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out/no-torch"

echo "== 1. no torch: skipped with the install command"
echo 'raise ImportError("no torch in this test")' >"$out/no-torch/torch.py"
set +e
PYTHONPATH=$out/no-torch python3 "$script" --quick >"$out/no-torch.log" 2>&1
rc=$?
set -e
[[ $rc == 77 ]] || fail "without torch the exit code is $rc, not 77: $(cat "$out/no-torch.log")"
grep -q "apt-get install python3-torch" "$out/no-torch.log" || fail "no install command: $(cat "$out/no-torch.log")"

py=
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import torch, numpy' >/dev/null 2>&1; then
    py=$candidate
    break
  fi
done
if [[ -z $py ]]; then
  echo "skipped: no python3 with torch (apt-get install python3-torch)"
  exit 77
fi

echo "== 2. the same model as the engine's ($py)"
"$py" -c "import numpy; numpy.save('$out/ids.npy', numpy.random.RandomState(5).randint(0, 64, (2, 11)).astype(numpy.int64))"
common='"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "max_position_embeddings": 64, "initializer_range": 0.3'
echo "{$common, \"num_experts\": 4, \"segment_length\": 4, \"router_init_std\": 1.0}" >"$out/lory.json"
echo "{$common}" >"$out/dense.json"
for model in lory dense; do
  "$bin/lory_init" --config "$out/$model.json" --seed 3 --out "$out/$model" >/dev/null
  "$bin/lory_forward" --ckpt "$out/$model" --tokens "$out/ids.npy" --dtype f64 \
    --logits "$out/$model-logits.npy" --grads "$out/$model-grads.safetensors" >/dev/null
  "$py" "$script" --check-engine "$out/$model" "$out/ids.npy" "$out/$model-logits.npy" "$out/$model-grads.safetensors" \
    || fail "the $model model differs from the engine's"
done

echo "== 3. a --quick run"
"$py" "$script" --quick --json "$out/quick.json" >"$out/quick.log" || fail "--quick failed: $(cat "$out/quick.log")"
"$py" - "$out/quick.json" <<'EOF' || fail "the --quick JSON is wrong"
import json, math, sys
report = json.load(open(sys.argv[1]))
rows = report["rows"]
assert [r["model"] for r in rows] == ["dense", "lory E=4 T=32", "lory E=8 T=64"], [r["model"] for r in rows]
for r in rows:
    assert r["tokens_per_s"] > 0 and r["step_ms"] > 0, r
    assert abs(r["first_loss"] - math.log(report["shape"]["vocab"])) < 0.5, r
    assert r["loss"] < r["first_loss"], r
    assert r["lory_dense_ratio"] > 0 and r["peak_rss_bytes"] > 0 and r["cpu_share"] > 0, r
assert rows[0]["lory_dense_ratio"] == 1.0
assert rows[2]["goal"] == 0.9 and rows[2]["goal_met"] == (rows[2]["lory_dense_ratio"] >= 0.9), rows[2]
print(f"{len(rows)} rows checked")
EOF
echo "pytorch_baseline: all checks passed"
