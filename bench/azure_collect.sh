#!/usr/bin/env bash
# End-to-end cost of `skymeter collect azure` on a large subscription: VMS virtual machines
# in one region (default 5,000) against bench/azure_standin, the tests' stand-in of the
# Azure APIs as a process (Entra token over TLS, ARM lists paged 1,000 a page, getBatch,
# Cost Management), release builds of both.
#
#   bench/azure_collect.sh                       # 5,000 VMs, latency 0 and 100 ms
#   VMS=200 LATENCIES="0" REPEAT=1 bench/azure_collect.sh
#
# Each timed run: a fresh stand-in (`--latency-ms L` added to every answer), then
# `skymeter collect azure --format json --period 300s` into /dev/null under
# `/usr/bin/time -v` (wall time, peak RSS). Checks, from the stand-in's `/_stats`:
# getBatch calls = ceil(VMS / 50), each with at most 50 ids; VM list pages = ceil(VMS /
# 1000), twice (model, statusOnly); vmSizes once; requests in flight ≤ max_concurrency + the ARM lists'.
set -euo pipefail
cd "$(dirname "$0")/.."

VMS="${VMS:-5000}"
LATENCIES="${LATENCIES:-0 100}"
CONCURRENCY="${CONCURRENCY:-8}"
REPEAT="${REPEAT:-3}"
TARGET_WALL_S=10
TARGET_RSS_MB=100
OUT="bench/out/azure_collect"
rm -rf "$OUT" && mkdir -p "$OUT"

if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
# The binary as users get it (default features); SKYMETER_FEATURES=azure builds only the
# azure collector (the AWS SDK takes long to build in release). The binaries are copied at
# once, as other builds may share the target directory.
BUILD_FLAGS=()
if [ -n "${SKYMETER_FEATURES:-}" ]; then BUILD_FLAGS=(--no-default-features --features "$SKYMETER_FEATURES"); fi
cargo build --release --locked -q -p skymeter "${BUILD_FLAGS[@]}"
cp "$CARGO_TARGET_DIR/release/skymeter" "$OUT/skymeter"
cargo build --release --locked -q -p skymeter-azure-standin
cp "$CARGO_TARGET_DIR/release/skymeter-azure-standin" "$OUT/skymeter-azure-standin"
SKYMETER="$OUT/skymeter"
STANDIN="$OUT/skymeter-azure-standin"

WANT_BATCH=$(((VMS + 49) / 50))
WANT_PAGES=$(((VMS + 999) / 1000))
export AZURE_TENANT_ID=72f988bf-86f1-41af-91ab-2d7cd011db47
export AZURE_CLIENT_ID=0c9a1b2e-3f4d-4a5b-8c6d-7e8f9a0b1c2d
export AZURE_CLIENT_SECRET=s3cr3t-v4lue-never-printed
unset AZURE_FEDERATED_TOKEN_FILE AZURE_AUTHORITY_HOST SKYMETER_LOG
SUB=8f1c2d3e-4a5b-4c6d-9e7f-0a1b2c3d4e5f

STANDIN_PID=""
stop_standin() {
  if [ -n "$STANDIN_PID" ]; then
    kill -INT "$STANDIN_PID" 2>/dev/null || true
    wait "$STANDIN_PID" 2>/dev/null || true
    STANDIN_PID=""
  fi
}
trap stop_standin EXIT

# start_standin LATENCY_MS NAME: a fresh stand-in; sets ARM LOGIN METRICS CA.
start_standin() {
  "$STANDIN" --vms "$VMS" --latency-ms "$1" > "$OUT/$2.standin.out" 2> "$OUT/$2.standin.err" &
  STANDIN_PID=$!
  for _ in $(seq 100); do
    if grep -q '^ready' "$OUT/$2.standin.out" 2>/dev/null; then
      ARM=$(sed -n 's/^arm //p' "$OUT/$2.standin.out")
      LOGIN=$(sed -n 's/^login //p' "$OUT/$2.standin.out")
      METRICS=$(sed -n 's/^metrics //p' "$OUT/$2.standin.out")
      CA=$(sed -n 's/^ca //p' "$OUT/$2.standin.out")
      return 0
    fi
    sleep 0.05
  done
  echo "the stand-in did not start; see $OUT/$2.standin.err" >&2
  exit 1
}

# collect OUTPUT_FILE NAME: one timed `skymeter collect azure`.
collect() {
  /usr/bin/time -v -o "$OUT/$2.time" \
    "$SKYMETER" collect azure --format json --period 300s --timeout 600s \
    --set "subscriptions=[\"$SUB\"]" --set "authority_host=$LOGIN" \
    --set "resource_manager_endpoint=$ARM" --set "metrics_endpoint=$METRICS" \
    --set "ca_file=$CA" --set delay=0s --set "max_concurrency=$CONCURRENCY" \
    > "$1" 2> "$OUT/$2.stderr" || {
      echo "skymeter collect failed (status $?); see $OUT/$2.stderr" >&2
      cat "$OUT/$2.stderr" >&2
      exit 1
    }
  curl -sf "$ARM/_stats" > "$OUT/$2.stats.json"
}

FAILED=0
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "  ok   $1 = $2"; else echo "  FAIL $1 = $2, want $3"; FAILED=1; fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

check_stats() {
  local s="$OUT/$1.stats.json"
  check "getBatch calls" "$(json "$s" "d['calls'].get('getBatch', 0)")" "$WANT_BATCH"
  check "largest getBatch (ids)" "$(json "$s" "max(d['batch_sizes'] or [0])")" "$((VMS < 50 ? VMS : 50))"
  check "VM list pages" "$(json "$s" "d['calls'].get('vms', 0)")" "$WANT_PAGES"
  check "VM status list pages" "$(json "$s" "d['calls'].get('vmStatus', 0)")" "$WANT_PAGES"
  check "vmSizes calls" "$(json "$s" "d['calls'].get('vmSizes', 0)")" "1"
  check "rejected or denied" "$(json "$s" "d['calls'].get('rejected', 0) + d['calls'].get('denied', 0)")" "0"
  check "in flight <= max_concurrency + 6 lists" "$(json "$s" "d['max_in_flight'] <= $CONCURRENCY + 6")" "True"
}

echo "== $VMS VMs × 8 metrics, want $WANT_BATCH getBatch calls, max_concurrency $CONCURRENCY"

start_standin 0 records
collect "$OUT/records.jsonl" records
stop_standin
echo "-- records run (output to a file)"
check_stats records
# 3 stats' worth per VM: 8 metrics × avg, max + memory.usage avg, max = 18 points.
POINTS=$(grep '"type":"point"' "$OUT/records.jsonl" | grep -vc '"metric":"azure\.' || true)
check "points (VMs × 18)" "$POINTS" "$((VMS * 18))"
check "resources" "$(grep -c '"type":"resource"' "$OUT/records.jsonl" || true)" "$VMS"
check "error records" "$(grep -c '"type":"error"' "$OUT/records.jsonl" || true)" "0"
# Estimated cost (on by default, the shipped table prices the stand-in's Standard_D2s_v3 in
# eastus): one line per running VM; every tenth VM is deallocated.
check "estimated cost lines" "$(grep -c '"x_source":"estimated"' "$OUT/records.jsonl" || true)" "$((VMS - VMS / 10))"

ROWS="$OUT/rows.tsv"
: > "$ROWS"
for LAT in $LATENCIES; do
  for RUN in $(seq "$REPEAT"); do
    NAME="lat${LAT}-run${RUN}"
    start_standin "$LAT" "$NAME"
    collect /dev/null "$NAME"
    stop_standin
    echo "-- latency ${LAT} ms, run $RUN"
    check_stats "$NAME"
    T="$OUT/$NAME.time"
    WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }' "$T")
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$T")
    CALLS=$(json "$OUT/$NAME.stats.json" "sum(v for k, v in d['calls'].items() if k not in ('token',))")
    printf '%s\t%s\t%s\t%s\t%s\n' "$LAT" "$RUN" "$WALL" "$((RSS_KB / 1024))" "$CALLS" >> "$ROWS"
  done
done

echo
echo "| latency | run | wall s | peak RSS MB | API calls (token aside) |"
echo "|---|---|---|---|---|"
while IFS=$'\t' read -r LAT RUN WALL RSS CALLS; do
  echo "| ${LAT} ms | $RUN | $WALL | $RSS | $CALLS |"
  awk -v w="$WALL" -v t="$TARGET_WALL_S" 'BEGIN { exit !(w <= t) }' || { echo "  FAIL wall $WALL s > $TARGET_WALL_S s"; FAILED=1; }
  [ "$RSS" -le "$TARGET_RSS_MB" ] || { echo "  FAIL peak RSS $RSS MB > $TARGET_RSS_MB MB"; FAILED=1; }
done < "$ROWS"
exit "$FAILED"
