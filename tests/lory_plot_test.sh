#!/usr/bin/env bash
# The ctest `lory_plot_py`: tools/lory_plot.py draws each of its figures from
# the small runs in tests/data/plot/ (a dense run and a Lory run with an
# upcycling event, a resumed stretch, a null loss and a null routing weight),
# the records are read as the trainer means them (a resume replaces the
# abandoned steps), every PNG is a valid PNG (signature, chunk CRCs, IHDR) of
# a sensible size, and bad input fails with exit 1 and a message naming the
# file, not a traceback. Exits 77 (ctest: skipped) when no python3 with matplotlib is
# found: the script tries `python3`, then /usr/bin/python3, as main-job.sh does.
#
#   bash tests/lory_plot_test.sh [OUTDIR]    # default: a fresh temporary folder
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/lory_plot_test.XXXXXX")}
data=$src/tests/data/plot

py=
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import matplotlib' >/dev/null 2>&1; then
    py=$candidate
    break
  fi
done
if [[ -z $py ]]; then
  echo "skipped: no python3 with matplotlib (apt-get install python3-matplotlib)"
  exit 77
fi
rm -rf "$out" && mkdir -p "$out"
export MPLCONFIGDIR=$out/mplconfig  # matplotlib's font cache; a read-only HOME must not matter
export PYTHONDONTWRITEBYTECODE=1    # no tools/__pycache__ in the source tree
plot() { "$py" "$src/tools/lory_plot.py" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

dense=$data/dense-seed1 lory=$data/lory-4e-seed1
echo "== figures ($py)"
plot --help >/dev/null
plot loss --runs "$dense/metrics.jsonl=dense seed 1,$lory/metrics.jsonl" --smooth 3 --diff --out "$out/loss.png"
plot loss --metrics "$lory/metrics.jsonl" --x tokens --log-y --width 900 --height 600 --out "$out/loss-tokens.png"
plot routing --eval "$lory/eval.json" --out "$out/routing.png"
plot routing --eval "$lory/eval.json" --layers 1 --title "layer 1" --out "$out/routing-layer1.png"
plot perplexity --compare "dense=$dense/eval.json,lory-4e=$data/lory-*/eval.json" --out "$out/perplexity.png"
plot perplexity --compare "dense=$dense/eval.json+$dense/eval.json,lory-4e=$lory/eval.json+$lory/eval.json" --log-y \
  --out "$out/perplexity-seeds.png"
plot router --runs "$lory/metrics.jsonl,$dense/metrics.jsonl" --smooth 2 --out "$out/router.png"

echo "== reading"
"$py" - "$src/tools" "$lory/metrics.jsonl" <<'EOF'
import math, sys
sys.path.insert(0, sys.argv[1])
import lory_plot
run = lory_plot.read_metrics(sys.argv[2], "lory-4e-seed1")
# Steps 19 and 20 were logged again after a resume: the abandoned eval at step 20 is gone.
assert [r["step"] for r in run.train] == list(range(1, 31)), [r["step"] for r in run.train]
assert [r["step"] for r in run.eval] == [15, 30], [r["step"] for r in run.eval]
assert math.isnan(run.train[12]["loss"]) and run.switch_x("step") == 10 and run.switch_x("tokens") == 20480
assert (run.model, run.seed) == ("lory-4e", 1) and lory_plot.split_label("dense seed 2") == ("dense", 2)
mean = lory_plot.moving_average([1, math.nan, 3, 5, 7], 3).tolist()
assert mean == [1, 2, 4, 5, 6], mean
print("ok: records, resume, labels, moving average")
EOF

echo "== PNGs"
"$py" - "$out"/*.png <<'EOF'
import struct, sys, zlib
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: no PNG signature"
    at, chunks = 8, []
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body), f"{path}: bad CRC in chunk {kind}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", f"{path}: chunks {[k for k, _ in chunks]}"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    pixels = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    assert 300 <= width <= 5000 and 200 <= height <= 4000, f"{path}: {width}x{height} pixels"
    assert len(pixels) > width * height, f"{path}: {len(pixels)} bytes of pixels for {width}x{height}"
    assert len(data) > 10000, f"{path}: only {len(data)} bytes: an empty figure?"
    print(f"ok {path}: {width}x{height}, {len(data)} bytes")
EOF
leftover=$(find "$out" -maxdepth 1 -name '.lory_plot.*')
[[ -z $leftover ]] || fail "temporary files left behind: $leftover"

echo "== errors"
# Each must exit 1 with a message (lory_plot: ...) that names what was wrong.
expect_error() {
  local want=$1 rc=0
  shift
  plot "$@" --out "$out/error.png" >"$out/error.txt" 2>&1 || rc=$?
  [[ $rc -eq 1 ]] || fail "lory_plot.py $* exited $rc, expected 1: $(cat "$out/error.txt")"
  grep -q Traceback "$out/error.txt" && fail "lory_plot.py $* crashed: $(cat "$out/error.txt")"
  grep -qF -- "$want" "$out/error.txt" || fail "lory_plot.py $*: expected '$want' in: $(cat "$out/error.txt")"
  [[ ! -e $out/error.png ]] || fail "lory_plot.py $* wrote a PNG"
  echo "ok: $(cat "$out/error.txt")"
}
printf '{"type":"train","step":1,"loss":5}\n{"type":"train","step":2,\n' >"$out/broken.jsonl"
printf '{"type":"train","step":1,"loss":"five"}\n' >"$out/string-loss.jsonl"
printf '{"type":"event","step":1}\n' >"$out/no-records.jsonl"
printf '{"routing_weights": {"books": [[0.5, 0.5]], "web": [[0.2, 0.3, 0.5]]}}\n' >"$out/ragged.json"
expect_error "$out/broken.jsonl:2: not valid JSON" loss --runs "$out/broken.jsonl"
expect_error "$out/string-loss.jsonl:1: \"loss\" must be a number" loss --runs "$out/string-loss.jsonl"
expect_error "$out/no-records.jsonl has no train or eval records" loss --runs "$out/no-records.jsonl"
expect_error "cannot open $out/missing.jsonl" loss --runs "$dense/metrics.jsonl,$out/missing.jsonl"
expect_error "$dense/eval.json is from a dense model" routing --eval "$dense/eval.json"
expect_error "routing_weights[\"web\"] is 1x3 (layers x experts)" routing --eval "$out/ragged.json"
expect_error "--layers: layer 2 is out of range: the model has 2 layers" routing --eval "$lory/eval.json" --layers 0,2
expect_error "'$out/nothing-*.json' matches no file" perplexity --compare "dense=$out/nothing-*.json"
expect_error "no run has routing statistics" router --runs "$dense/metrics.jsonl"
echo "lory_plot_test: all passed"
