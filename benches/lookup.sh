#!/usr/bin/env bash
# Lookup benchmark (not a test): one lookup as a whole process vs decrypting the whole
# archive (`vaxarc verify --identity` deep check), and batch lookups per second.
#   benches/lookup.sh [PEOPLE] [RUNS]      (default 20000 people, 15 runs)
# Writes its scratch folder under ${BENCH_DIR:-/tmp/vaxarc-bench-lookup}; prints a
# Markdown table to paste into docs/performance.md (## Lookup).
set -euo pipefail
cd "$(dirname "$0")/.."
PEOPLE=${1:-20000}
RUNS=${2:-15}
DIR=${BENCH_DIR:-/tmp/vaxarc-bench-lookup}
BIN="$DIR/vaxarc"
rm -rf "$DIR" && mkdir -p "$DIR"
# A private copy of the binary; when several worktrees share CARGO_TARGET_DIR another
# build can replace target/release/vaxarc, so check the copy has `lookup` and retry.
for attempt in 1 2 3; do
  touch src/lookup/mod.rs
  cargo build --release --quiet
  cp "${CARGO_TARGET_DIR:-target}/release/vaxarc" "$BIN"
  "$BIN" lookup --help >/dev/null 2>&1 && break
  [ "$attempt" = 3 ] && { echo "the release binary has no lookup command (shared target dir race?)" >&2; exit 2; }
done
"$BIN" -q testdata --out "$DIR/in" --people "$PEOPLE" --seed 5 >/dev/null
K="$DIR/in/keys"
"$BIN" -q keygen --output "$K/custodian-1.key" --signing-key "$K/signing.key" >/dev/null
"$BIN" -q keygen --output "$K/custodian-2.key" >/dev/null
"$BIN" -q keygen --output "$K/vault.key" >/dev/null
"$BIN" -q migrate --pipeline "$DIR/in/pipeline.toml" --archive "$DIR/archive" --json > "$DIR/migrate.json"
ROWS=$(python3 -c "import json; print(json.load(open('$DIR/migrate.json'))['records'])")
ATENA=$(python3 - "$DIR/in/truth/persons.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["in_registry"] == "true"]
print(rows[len(rows) // 2]["atena_number"])
PY
)
python3 - "$DIR/in/truth/persons.csv" "$DIR/batch.txt" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["in_registry"] == "true"]
with open(sys.argv[2], "w") as f:
    for r in rows[:2000]:
        f.write(f"atena={r['atena_number']}\n")
PY
LOOKUP=("$BIN" -q lookup --archive "$DIR/archive" --identity "$K/custodian-1.key" --operator bench --purpose bench --atena "$ATENA" --format json)
DEEP=("$BIN" -q verify --archive "$DIR/archive" --identity "$K/custodian-1.key" --json)
median() { # command… → median wall seconds over $RUNS runs
  python3 - "$RUNS" "$@" <<'PY'
import subprocess, sys, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]; t = []
for _ in range(runs):
    s = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); t.append(time.perf_counter() - s)
t.sort(); print(f"{t[len(t)//2]:.4f}")
PY
}
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 2 --runs "$RUNS" "${LOOKUP[*]}" "${DEEP[*]}" --export-json "$DIR/hyperfine.json" >/dev/null
  L=$(python3 -c "import json; r=json.load(open('$DIR/hyperfine.json'))['results']; print(f\"{r[0]['median']:.4f}\")")
  V=$(python3 -c "import json; r=json.load(open('$DIR/hyperfine.json'))['results']; print(f\"{r[1]['median']:.4f}\")")
else
  L=$(median "${LOOKUP[@]}")
  V=$(median "$DEEP"  "${DEEP[@]:1}")
fi
N=$(wc -l < "$DIR/batch.txt")
S=$(python3 - <<PY
import subprocess, time
s = time.perf_counter()
subprocess.run(["$BIN", "-q", "lookup", "--archive", "$DIR/archive", "--identity", "$K/custodian-1.key", "--operator", "bench", "--purpose", "bench", "--batch", "$DIR/batch.txt", "--format", "json"], stdout=subprocess.DEVNULL, check=True)
print(f"{time.perf_counter() - s:.3f}")
PY
)
python3 - "$PEOPLE" "$ROWS" "$L" "$V" "$N" "$S" "$RUNS" <<'PY'
import sys
people, rows, l, v, n, s, runs = sys.argv[1:]
l, v, n, s = float(l), float(v), int(n), float(s)
print(f"| people | records | one lookup (median of {runs}, whole process) | decrypt whole archive (verify --identity) | speed-up | batch of {n} | batch lookups/s |")
print("|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {people} | {rows} | {l*1000:.0f} ms | {v*1000:.0f} ms | {v/l:.1f}× | {s:.2f} s | {n/s:.0f} |")
PY
