#!/usr/bin/env bash
# End-to-end benchmark: vaxarc migrate against plain conversions over the same CSV bytes,
# side by side in one run. Not a test: numbers go to docs/performance.md by hand.
#
#   benches/e2e.sh [PEOPLE ...]        default: 250000 (≈1M dose rows)
#
# For each size: generate synthetic sources, then time and measure peak RSS of
#   - vaxarc migrate (ingest, normalise, reconcile, encrypt, manifest)
#   - python-polars: scan_csv(...).sink_parquet(zstd) for every source file (UTF-8 copies)
#   - DuckDB: COPY (SELECT * FROM read_csv(...)) TO parquet (zstd), same UTF-8 copies
#   - cat and b3sum over the same bytes (the machine's floor)
# and prints one Markdown table row per size for docs/performance.md.
# Each size's data (sources, UTF-8 copies, outputs; ~4.7 GB at 5M rows) is deleted after it
# is measured; KEEP=1 keeps it (and the work folder, BENCH_DIR or a fresh /tmp folder).
# RUNS=N runs the three conversions N rounds in turn and reports each one's median time and
# largest peak RSS (this shared machine's runs differ by 10-20 %; default 1).
# SAME_WORK=1 also runs, each round, two hand-written scripts doing roughly vaxarc's work
# (decode, normalise, link, merge, keyed hashes, partitions, age) on the original sources —
# benches/same_work.py (polars) and benches/same_work_duckdb.py (DuckDB) — and prints a
# second table (needs pyrage, numpy and pyarrow; installed if missing). The polars one holds
# everything in memory (about 3.3 GB per million rows): where that exceeds the machine's
# available memory it is not run, and the table says so; a peer that fails is reported as
# failed, not fatal.
# Needs: a release build, python3 with polars, duckdb and pyrage (installed with pip if missing),
# b3sum (cargo install b3sum, done here if missing), GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(250000)
command -v /usr/bin/time >/dev/null || { echo "install GNU time: apt-get install time" >&2; exit 2; }
python3 -c 'import polars' 2>/dev/null || python3 -m pip install -q polars
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install -q duckdb
# same_work.py (its encoding choice makes the UTF-8 copies) imports pyrage.
python3 -c 'import pyrage' 2>/dev/null || python3 -m pip install -q pyrage
export PYTHONDONTWRITEBYTECODE=1
command -v b3sum >/dev/null || cargo install --quiet b3sum || true
if [ "${SAME_WORK:-0}" = 1 ]; then
  for m in numpy pyarrow; do python3 -c "import $m" 2>/dev/null || python3 -m pip install -q $m; done
fi
cargo build --release --quiet
bin=target/release/vaxarc
work=${BENCH_DIR:-$(mktemp -d /tmp/vaxarc-bench.XXXXXX)}
echo "work folder: $work"

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>&1 || { echo "$label failed" >&2; return 1; }
  local out; out=$(tail -1 "$work/time")
  local secs=${out% *} kb=${out#* }
  printf '%-28s %9.2f s %9.0f MiB\n' "$label" "$secs" "$((kb / 1024))"
  echo "$secs" > "$work/last-secs"
  echo "$((kb / 1024))" > "$work/last-mib"
}
table=()
same=()

for people in "${sizes[@]}"; do
  d="$work/p$people"
  rm -rf "$d" && mkdir -p "$d"
  echo "== $people people =="
  measure "generate" "$bin" testdata --out "$d/input" --people "$people" --quiet
  for k in custodian-1 custodian-2 vault; do
    extra=(); [ $k = custodian-1 ] && extra=(--signing-key "$d/input/keys/signing.key")
    "$bin" keygen --output "$d/input/keys/$k.key" "${extra[@]}" >/dev/null 2>&1
  done
  rows=$(python3 - "$d/input/truth/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(sum(f.get("rows", 0) for f in s.get("files", [])))
PY
)
  bytes=$(du -cb "$d"/input/sources/*/*.csv | tail -1 | cut -f1)
  echo "source rows: $rows   source bytes: $bytes"
  # UTF-8 copies for polars (its CSV reader does not decode CP932).
  mkdir -p "$d/utf8"
  for f in "$d"/input/sources/*/*.csv; do
    b=$(basename "$f"); python3 - "$f" "$d/utf8/$b" <<'PY'
import sys
sys.path.insert(0, "benches")
from same_work import encoding  # UTF-8 or CP932, by fewer replacement characters
raw = open(sys.argv[1], "rb").read()
if raw.startswith(b"\xef\xbb\xbf"): raw = raw[3:]
text = raw.decode(encoding(raw), errors="replace")
open(sys.argv[2], "w", encoding="utf-8", newline="").write(text)
PY
  done
  measure "cat (floor)" sh -c "cat $d/input/sources/*/*.csv > /dev/null"
  csecs=$(cat "$work/last-secs")
  bsecs=n/a
  if command -v b3sum >/dev/null; then
    measure "b3sum (floor)" sh -c "b3sum $d/input/sources/*/*.csv"
    bsecs=$(cat "$work/last-secs")
  fi
  # (Not named polars.py: Python would import the script itself for `import polars`.)
  cat > "$work/conv_polars.py" <<'PY'
import sys, os, glob, polars as pl
os.makedirs(sys.argv[2], exist_ok=True)
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    out = os.path.join(sys.argv[2], os.path.basename(f) + ".parquet")
    pl.scan_csv(f, infer_schema=False, truncate_ragged_lines=True).sink_parquet(out, compression="zstd")
PY
  cat > "$work/conv_duckdb.py" <<'PY'
import sys, os, glob, duckdb
os.makedirs(sys.argv[2], exist_ok=True)
con = duckdb.connect()
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    out = os.path.join(sys.argv[2], os.path.basename(f) + ".parquet")
    # The synthetic exports are dirty on purpose (ragged rows, quoted line breaks, mojibake):
    # DuckDB's sniffer gives up on them, null_padding with quoted newlines needs its serial
    # reader, and lines it cannot parse are skipped (ignore_errors) — it does less than vaxarc.
    con.execute(f"COPY (SELECT * FROM read_csv('{f}', delim=',', quote='\"', escape='\"', "
                f"header=true, all_varchar=true, null_padding=true, parallel=false, "
                f"ignore_errors=true)) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
PY
  # RUNS rounds, the three tools in turn each round (the machine's noise reaches all three
  # alike); the table takes each tool's median time and its largest peak.
  vs=(); vm=(); ps=(); pm=(); ds=(); dm=(); ss=(); sm=(); ks=(); km=()
  # The same-work script holds everything in memory (≈ 3.3 GB per million source rows at 1M
  # and 5M): where that exceeds what the machine has free it is not started (the kernel would
  # kill it, or something else, after minutes of swapping).
  same_work=${SAME_WORK:-0}
  if [ "$same_work" = 1 ]; then
    need=$((rows * 3300 / 1048576))
    avail=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
    if [ "$need" -gt "$avail" ]; then
      echo "polars, same work: not run (needs ≈ $need MiB, $avail MiB available)"
      same_work=skipped
    fi
  fi
  for round in $(seq "${RUNS:-1}"); do
    [ "${RUNS:-1}" = 1 ] || echo "-- round $round"
    rm -rf "$d/archive" "$d/polars" "$d/duckdb"
    measure "vaxarc migrate" "$bin" migrate --pipeline "$d/input/pipeline.toml" --archive "$d/archive" --quiet
    vs+=("$(cat "$work/last-secs")"); vm+=("$(cat "$work/last-mib")")
    measure "polars scan_csv→parquet" python3 "$work/conv_polars.py" "$d/utf8" "$d/polars"
    ps+=("$(cat "$work/last-secs")"); pm+=("$(cat "$work/last-mib")")
    measure "duckdb COPY→parquet" python3 "$work/conv_duckdb.py" "$d/utf8" "$d/duckdb"
    ds+=("$(cat "$work/last-secs")"); dm+=("$(cat "$work/last-mib")")
    if [ "$same_work" = 1 ]; then
      rm -rf "$d/same"
      if measure "polars, same work" python3 benches/same_work.py "$d/input/sources" "$d/same"; then
        ss+=("$(cat "$work/last-secs")"); sm+=("$(cat "$work/last-mib")")
      fi
    fi
    if [ "${SAME_WORK:-0}" = 1 ]; then
      rm -rf "$d/same-duckdb"
      if measure "duckdb, same work" python3 benches/same_work_duckdb.py "$d/input/sources" "$d/same-duckdb"; then
        ks+=("$(cat "$work/last-secs")"); km+=("$(cat "$work/last-mib")")
      fi
      rm -rf "$d/same" "$d/same-duckdb"
    fi
  done
  median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; if (NR%2==0) m=(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
  largest() { printf '%s\n' "$@" | sort -g | tail -1; }
  vsecs=$(median "${vs[@]}"); vmib=$(largest "${vm[@]}")
  psecs=$(median "${ps[@]}"); pmib=$(largest "${pm[@]}")
  dsecs=$(median "${ds[@]}"); dmib=$(largest "${dm[@]}")
  ratio=$(python3 -c "print(f'{float($vsecs)/max(float($psecs),1e-9):.2f}')")
  echo "vaxarc/polars time ratio: $ratio"
  # One peer's cells: median time, largest peak, vaxarc's time over it.
  peer_cells() { # label, then times... -- peaks...
    local label=$1; shift
    local secs=() mibs=() seen=0
    for x in "$@"; do
      if [ "$x" = -- ]; then seen=1; elif [ $seen = 0 ]; then secs+=("$x"); else mibs+=("$x"); fi
    done
    if [ ${#secs[@]} = 0 ]; then echo "failed | — | —"; return; fi
    local t; t=$(median "${secs[@]}")
    local r; r=$(python3 -c "print(f'{float($vsecs)/max(float($t),1e-9):.2f}')")
    echo "vaxarc/($label, same work) time ratio: $r" >&2
    echo "$t s | $(largest "${mibs[@]}") MiB | $r"
  }
  if [ "${SAME_WORK:-0}" = 1 ]; then
    if [ "$same_work" = skipped ]; then
      pcells="not run: needs ≈ $need MiB | — | —"
    else
      pcells=$(peer_cells polars "${ss[@]}" -- "${sm[@]}")
    fi
    kcells=$(peer_cells duckdb "${ks[@]}" -- "${km[@]}")
    same+=("| $people | $rows | $vsecs s | $vmib MiB | $pcells | $kcells |")
  fi
  table+=("| $people | $rows | $bytes | $vsecs s | $vmib MiB | $psecs s | $pmib MiB | $dsecs s | $dmib MiB | $ratio | $csecs s | $bsecs s |")
  # Sources, UTF-8 copies and three outputs: ~4.7 GB at 5M rows. Kept only with KEEP=1.
  [ "${KEEP:-0}" = 1 ] || rm -rf "$d"
done
[ "${KEEP:-0}" = 1 ] || [ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
echo
echo "| people | source rows | bytes | vaxarc migrate | peak RSS | polars | peak RSS | DuckDB | peak RSS | vaxarc/polars | cat | b3sum |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${table[@]}"
if [ ${#same[@]} -gt 0 ]; then
  echo
  echo "| people | source rows | vaxarc migrate | peak RSS | polars, same work | peak RSS | vaxarc/polars same work | DuckDB, same work | peak RSS | vaxarc/DuckDB same work |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${same[@]}"
fi
