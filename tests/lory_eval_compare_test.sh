#!/usr/bin/env bash
# The ctest `lory_eval_compare`: `lory_eval --compare A=..,B=.. --out FILE`
# writes the printed table's numbers unrounded (the experiment runner reads
# them): on two synthetic eval JSONs whose per-block losses are known, every
# perplexity is exp(total nll / total tokens), the gain is 1 - ppl_b / ppl_a,
# its interval holds it, a model whose every block is better is significant,
# a model against itself is not, and the table prints the JSON's numbers.
# Exits 77 (ctest: skipped) without python3.
#
#   bash tests/lory_eval_compare_test.sh BIN OUTDIR
set -euo pipefail
bin=$1 out=$2
command -v python3 >/dev/null 2>&1 || { echo "skipped: no python3"; exit 77; }
rm -rf "$out" && mkdir -p "$out"

# Two models on two domains of 12 blocks of 100 tokens; b's loss is a's less
# 0.05 nats on every block, plus a little noise so the bootstrap has spread.
python3 - "$out" <<'PY'
import json, math, random, sys
out = sys.argv[1]
rng = random.Random(7)
for name, shift in (("a", 0.0), ("b", -0.05)):
    doc = {"routing": "causal_segment", "domains": {}}
    total_nll = total_tokens = 0
    for d, base in (("web", 4.0), ("books", 4.5)):
        r = random.Random(hash(d) & 0xffff)
        nll = [100 * (base + r.uniform(-0.3, 0.3) + shift + (rng.uniform(-0.01, 0.01) if shift else 0)) for _ in range(12)]
        tokens = [100] * 12
        loss = sum(nll) / sum(tokens)
        doc["domains"][d] = {"loss": loss, "ppl": math.exp(loss), "tokens": sum(tokens),
                             "block_nll": nll, "block_tokens": tokens}
        total_nll += sum(nll); total_tokens += sum(tokens)
    doc["loss"] = total_nll / total_tokens
    doc["ppl"] = math.exp(doc["loss"])
    doc["tokens"] = total_tokens
    json.dump(doc, open(f"{out}/{name}.json", "w"))
PY

"$bin/lory_eval" --compare "a=$out/a.json,b=$out/b.json,self=$out/a.json" --out "$out/cmp.json" | tee "$out/table.txt"
python3 - "$out" <<'PY'
import json, math, sys
out = sys.argv[1]
c = json.load(open(f"{out}/cmp.json"))
a, b = (json.load(open(f"{out}/{n}.json")) for n in "ab")
def fail(msg):
    sys.exit("FAIL: " + msg)
if c["reference"] != "a" or [m["label"] for m in c["models"]] != ["a", "b", "self"]:
    fail(f"models {c['models']}")
if set(c["domains"]) != {"web", "books", "all"}:
    fail(f"domains {list(c['domains'])}")
table = open(f"{out}/table.txt").read()
for d, row in c["domains"].items():
    pa = a["ppl"] if d == "all" else a["domains"][d]["ppl"]
    pb = b["ppl"] if d == "all" else b["domains"][d]["ppl"]
    if abs(row["ppl"][0] - pa) > 1e-9 * pa or abs(row["ppl"][1] - pb) > 1e-9 * pb or abs(row["ppl"][2] - pa) > 1e-9 * pa:
        fail(f"{d}: perplexities {row['ppl']}, expected {pa}, {pb}, {pa}")
    if row["sd"] != [None, None, None]:
        fail(f"{d}: one run per model has no spread, got {row['sd']}")
    g, s = row["gains"]
    if g["model"] != "b" or abs(g["gain"] - (1 - pb / pa)) > 1e-9:
        fail(f"{d}: gain {g['gain']}, expected {1 - pb / pa}")
    if not (g["lo"] <= g["gain"] <= g["hi"]) or not g["significant"] or g["lo"] <= 0:
        fail(f"{d}: b is better on every block: {g}")
    if s["gain"] != 0 or s["significant"]:
        fail(f"{d}: a model against itself: {s}")
    printed = f"{100 * g['gain']:+6.1f}% [{100 * g['lo']:+.1f}, {100 * g['hi']:+.1f}] *"
    if printed not in table:
        fail(f"{d}: the table does not print '{printed}'")
print("ok: lory_eval --compare --out")
PY
