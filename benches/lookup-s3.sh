#!/usr/bin/env bash
# Lookup benchmark on object storage (not a test): single and batch lookups against an
# archive in a local S3 server (moto, threaded) that answers every request DELAY_MS late,
# so that request latency — as on a cloud object store — not the page cache is what a read
# waits on.
#   benches/lookup-s3.sh [PEOPLE] [DELAY_MS] [BATCH]   (default 20000 people, 10 ms, 200)
#   COMPARE=/path/to/other/vaxarc benches/lookup-s3.sh …   also time another build, alternating
# Single lookups are timed with the custodian identity, and again with the vault identity
# as role vault_officer with --show-vault (the vault files of the person's bucket are read too).
# The delay applies only to the timed lookups (the migration before them runs without it).
# Prints a Markdown table for docs/performance.md (## Lookup).
set -euo pipefail
cd "$(dirname "$0")/.."
PEOPLE=${1:-20000}
DELAY=${2:-10}
BATCH=${3:-200}
DIR=$(mktemp -d /tmp/vaxarc-bench-s3.XXXXXX)
cargo build --release --quiet
BIN="$DIR/vaxarc"
cp "${CARGO_TARGET_DIR:-target}/release/vaxarc" "$BIN"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$PORT" "$DELAY" "$DIR/delay" 2>/dev/null <<'PY' &
import os, sys, time
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
delay, flag = float(sys.argv[2]) / 1000, sys.argv[3]
def late(environ, start_response):
    if os.path.exists(flag):
        time.sleep(delay)
    return app(environ, start_response)
run_simple("127.0.0.1", int(sys.argv[1]), late, threaded=True)
PY
MOTO=$!
cleanup() {
  kill "$MOTO" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_REGION=ap-northeast-1 AWS_METADATA_ENDPOINT=http://127.0.0.1:9
unset AWS_PROFILE
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))" 2>/dev/null && break; sleep 0.1; done
python3 -c "
import boto3
boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', region_name='ap-northeast-1').create_bucket(
    Bucket='bench', CreateBucketConfiguration={'LocationConstraint': 'ap-northeast-1'})"
"$BIN" -q testdata --out "$DIR/in" --people "$PEOPLE" --seed 5 >/dev/null
K="$DIR/in/keys"
mkdir -p "$K"
"$BIN" -q keygen --output "$K/custodian-1.key" --signing-key "$K/signing.key" >/dev/null 2>&1
"$BIN" -q keygen --output "$K/custodian-2.key" >/dev/null 2>&1
"$BIN" -q keygen --output "$K/vault.key" >/dev/null 2>&1
"$BIN" -q migrate --pipeline "$DIR/in/pipeline.toml" --archive s3://bench/archive --json > "$DIR/migrate.json"
touch "$DIR/delay"
python3 - "$DIR" "$DELAY" "$BATCH" "$BIN" ${COMPARE:-} <<'PY'
import csv, json, random, statistics, subprocess, sys, time
d, delay, batch_n, bins = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
m = json.load(open(f"{d}/migrate.json"))
people = [r for r in csv.DictReader(open(f"{d}/in/truth/persons.csv")) if r["in_registry"] == "true"]
rng = random.Random(11)
singles = [p["atena_number"] for p in rng.sample(people, 5)]
with open(f"{d}/batch.txt", "w") as f:
    for p in rng.sample(people, batch_n):
        f.write(f"atena={p['atena_number']}\n")
def timed(b, extra):
    cmd = [b, "-q", "lookup", "--archive", "s3://bench/archive", "--identity", f"{d}/in/keys/custodian-1.key",
           "--operator", "bench", "--purpose", "bench", "--format", "json"] + extra
    s = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - s
res = {b: {"single": [], "vault": [], "batch": []} for b in bins}
vault = ["--identity", f"{d}/in/keys/vault.key", "--role", "vault_officer", "--show-vault"]
for a in singles:
    for b in bins:
        res[b]["single"].append(timed(b, ["--atena", a]))
        res[b]["vault"].append(timed(b, ["--atena", a] + vault))
for _ in range(3):
    for b in bins:
        res[b]["batch"].append(timed(b, ["--batch", f"{d}/batch.txt"]))
print(f"| build | records | latency per request | one lookup (median of 5) | with the vault identity (median of 5) | batch of {batch_n} (median of 3) | batch lookups/s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for i, b in enumerate(bins):
    s, v, t = (statistics.median(res[b][k]) for k in ("single", "vault", "batch"))
    label = "this build" if i == 0 else b
    print(f"| {label} | {m['records']} | {delay} ms | {s*1000:.0f} ms | {v*1000:.0f} ms | {t:.2f} s | {batch_n/t:.0f} |")
PY
