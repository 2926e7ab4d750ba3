#!/usr/bin/env bash
# The long fuzz runs (docs/fuzzing.md): every cargo-fuzz target in testdata/fuzz, one at a
# time, for RUNS executions each (default 10,000,000), then a table of target /
# executions / wall time / exec/s / coverage / corpus / crashes. CI does not run this: it
# runs the same harness bodies over the seeds (`cargo test --lib fuzz`).
#
#   testdata/fuzz/run.sh                      # every target, 10M runs each
#   testdata/fuzz/run.sh 100000 normalise     # one target, 100k runs
#   SANITIZER=address testdata/fuzz/run.sh    # with AddressSanitizer (slower)
#   MAX_TIME=600 testdata/fuzz/run.sh         # stop each target after 600 s (partial runs)
#
# Installs cargo-fuzz (and a nightly toolchain) if missing. Everything runs under
# `nice -n 19`, single process. Grown corpora go to testdata/fuzz/work/<target>/ (seeds in
# testdata/fuzz/corpus/<target>/ are read, never written), crashes to
# testdata/fuzz/artifacts/<target>/, logs to testdata/fuzz/runs/<date>/; all gitignored.
# Exit status 1 when any target left a crash, timeout or out-of-memory artifact.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${1:-10000000}
shift || true
all_targets=(csv_ledger csv_vrs_ledger_export csv_vrs_persons csv_registry normalise manifest pipeline config)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
sanitizer=${SANITIZER:-none}
timeout_s=${TIMEOUT:-10}
rss_mb=${RSS_LIMIT_MB:-2048}
max_time=${MAX_TIME:-0}
# One rayon worker: a fuzz input is one small chunk, and waking a pool per input cost ~20 %
# of the executions (docs/fuzzing.md). Override with RAYON_NUM_THREADS=N.
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}

command -v rustup >/dev/null && { rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal; }
cargo fuzz --version >/dev/null 2>&1 || nice -n 19 cargo install cargo-fuzz --locked

fuzz=(nice -n 19 cargo +nightly fuzz)
opts=(--fuzz-dir testdata/fuzz --sanitizer "$sanitizer" -O -a --codegen-units 16)
"${fuzz[@]}" build "${opts[@]}"

# Longest input per target: a CSV needs room for the wide VRS header (57 columns).
max_len() {
  case $1 in
    csv_*|pipeline|config) echo 16384 ;;
    manifest) echo 8192 ;;
    *) echo 512 ;;
  esac
}

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)-$$
logs=testdata/fuzz/runs/$stamp
mkdir -p "$logs"
table="$logs/results.md"
{
  echo "| target | executions | wall time | exec/s | cov | ft | corpus | crashes |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} >"$table"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "testdata/fuzz/work/$t" "testdata/fuzz/artifacts/$t"
  start=$(date +%s)
  set +e
  "${fuzz[@]}" run "${opts[@]}" "$t" "testdata/fuzz/work/$t" "testdata/fuzz/corpus/$t" -- \
    -runs="$runs" -max_total_time="$max_time" -max_len="$(max_len "$t")" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
    -print_final_stats=1 -artifact_prefix="testdata/fuzz/artifacts/$t/" \
    >"$logs/$t.log" 2>&1
  status=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  crashes=$(find "testdata/fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then failed=1; fi
  printf '| %s | %s | %dm%02ds | %s | %s | %s | %s | %s |\n' \
    "$t" "${execs:-?}" $((secs / 60)) $((secs % 60)) "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes" >>"$table"
  echo "$t: ${execs:-?} executions in ${secs}s, exit $status, $crashes artifacts" >&2
done
echo
echo "runs: $runs; max time: ${max_time}s (0: none); sanitizer: $sanitizer; toolchain: $(rustc +nightly --version); logs: $logs"
cat "$table"
exit "$failed"
