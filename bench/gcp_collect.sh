#!/usr/bin/env bash
# End-to-end cost of `skymeter collect gcp` on a large project: INSTANCES (default 5,000)
# Compute Engine instances × the 10 Compute Engine metric types of the catalog × 2 stats,
# against bench/gcp_standin (the collector's test stand-in of the Google APIs: the OAuth2
# JWT-bearer token endpoint, instances/machineTypes/disks aggregatedList, GKE, Cloud
# Functions, Cloud SQL, Storage and Cloud Monitoring timeSeries.list; release builds).
#
#   bench/gcp_collect.sh                    # 5,000 instances, 3 runs
#   INSTANCES=500 REPEAT=1 bench/gcp_collect.sh
#   SKYMETER_FEATURES=gcp bench/gcp_collect.sh   # binary without the AWS collector
#
# Each run: a fresh stand-in, then `skymeter collect gcp --format json --period 300s` into a
# file under `/usr/bin/time -v` (wall time, peak RSS, CPU). Checks: timeSeries.list first
# pages = 10 metric types × 2 stats = 20 whatever the number of instances (pages: the
# stand-in answers 1,000 series a page), aggregatedList pages = ceil(instances / 500), one
# token exchange, points = instances × 10 × 2, resources = instances, no error record.
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES="${INSTANCES:-5000}"
REPEAT="${REPEAT:-3}"
TARGET_WALL_S=10
TARGET_RSS_MB=100
OUT="bench/out/gcp_collect"
rm -rf "$OUT" && mkdir -p "$OUT"

if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
# SKYMETER_FEATURES=gcp builds the binary without the AWS SDK (a much shorter build).
BUILD_FLAGS=()
if [ -n "${SKYMETER_FEATURES:-}" ]; then BUILD_FLAGS=(--no-default-features --features "$SKYMETER_FEATURES"); fi
cargo build --release --locked -q -p skymeter "${BUILD_FLAGS[@]}"
cargo build --release --locked -q -p skymeter-gcp-standin
SKYMETER="$CARGO_TARGET_DIR/release/skymeter"
STANDIN="$CARGO_TARGET_DIR/release/skymeter-gcp-standin"

STANDIN_PID=""
stop_standin() {
  if [ -n "$STANDIN_PID" ]; then
    kill "$STANDIN_PID" 2>/dev/null || true
    wait "$STANDIN_PID" 2>/dev/null || true
    STANDIN_PID=""
  fi
}
trap stop_standin EXIT

start_standin() { # NAME
  "$STANDIN" "$PWD/$OUT/$1.key.json" "$INSTANCES" > "$OUT/$1.standin.out" 2> "$OUT/$1.standin.err" &
  STANDIN_PID=$!
  URL=""
  for _ in $(seq 600); do
    URL=$(head -n1 "$OUT/$1.standin.out" 2>/dev/null || true)
    [ -n "$URL" ] && return 0
    sleep 0.05
  done
  echo "the stand-in did not start; see $OUT/$1.standin.err" >&2
  exit 1
}

FAILED=0
check() { # WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "  ok   $1 = $2"; else echo "  FAIL $1 = $2, want $3"; FAILED=1; fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

WANT_POINTS=$((INSTANCES * 20))
WANT_LIST_PAGES=$(((INSTANCES + 499) / 500))
WANT_TS_CALLS=$((20 * ((INSTANCES + 999) / 1000)))
echo "== $INSTANCES instances × 10 metric types × 2 stats: want 20 timeSeries.list calls" \
  "($WANT_TS_CALLS with pages), $WANT_LIST_PAGES instances pages"
# Estimated cost is on (the default): a price table for the stand-in's four regions, with
# made-up prices (what is measured is the work, not the figures).
mkdir -p "$OUT/data/prices"
python3 - "$OUT/data/prices/gcp.json" <<'PY'
import json, sys
region = {f"gce/{f}/{w}": {"usd": u, "per": p} for f in ("e2", "n2")
          for w, u, p in (("vcpu", 0.03, "hour"), ("memory", 0.004, "GiB-hour"))}
json.dump({"date": "2026-12-03", "currency": "USD", "source": "benchmark",
           "regions": {r: region for r in ("us-central1", "europe-west1", "asia-east1")}},
          open(sys.argv[1], "w"))
PY
printf 'run\twall_s\tpeak_rss_mb\tuser_s\tsys_s\tapi_calls\n' > "$OUT/rows.tsv"
for RUN in $(seq "$REPEAT"); do
  NAME="run$RUN"
  start_standin "$NAME"
  GOOGLE_APPLICATION_CREDENTIALS="$PWD/$OUT/$NAME.key.json" /usr/bin/time -v -o "$OUT/$NAME.time" \
    "$SKYMETER" collect gcp --format json --period 300s --timeout 600s \
    --set "endpoint_url=$URL" --set 'projects=["bench-project"]' --set delay=0s \
    --data-dir "$OUT/data" \
    > "$OUT/$NAME.jsonl" 2> "$OUT/$NAME.stderr" || {
      echo "skymeter collect failed; see $OUT/$NAME.stderr" >&2; cat "$OUT/$NAME.stderr" >&2; exit 1; }
  curl -sf "$URL/_stats" > "$OUT/$NAME.stats.json"
  stop_standin
  echo "-- run $RUN"
  S="$OUT/$NAME.stats.json"
  check "token exchanges" "$(json "$S" "d.get('token', 0)")" "1"
  check "timeSeries.list calls (with pages)" "$(json "$S" "d.get('timeSeries', 0)")" "$WANT_TS_CALLS"
  check "instances aggregatedList pages" "$(json "$S" "d.get('aggregated/instances', 0)")" "$WANT_LIST_PAGES"
  check "machineTypes aggregatedList pages" "$(json "$S" "d.get('aggregated/machineTypes', 0)")" "1"
  check "points" "$(grep '"type":"point"' "$OUT/$NAME.jsonl" | grep -vc '"metric":"gcp\.' || true)" "$WANT_POINTS"
  check "resources" "$(grep -c '"type":"resource"' "$OUT/$NAME.jsonl" || true)" "$INSTANCES"
  check "error records" "$(grep -c '"type":"error"' "$OUT/$NAME.jsonl" || true)" "0"
  check "estimated cost lines (vCPU + memory)" "$(grep -c '"x_source":"estimated"' "$OUT/$NAME.jsonl" || true)" "$((INSTANCES * 2))"
  T="$OUT/$NAME.time"
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }' "$T")
  RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$T")
  USER_S=$(awk -F': ' '/User time/ { print $2 }' "$T")
  SYS_S=$(awk -F': ' '/System time/ { print $2 }' "$T")
  CALLS=$(json "$S" "d['total']")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$RUN" "$WALL" "$((RSS_KB / 1024))" "$USER_S" "$SYS_S" "$CALLS" >> "$OUT/rows.tsv"
  echo "  wall ${WALL}s, peak RSS $((RSS_KB / 1024)) MB, user ${USER_S}s, sys ${SYS_S}s, $CALLS requests"
  awk -v w="$WALL" -v t="$TARGET_WALL_S" 'BEGIN { exit !(w <= t) }' || { echo "  FAIL wall > ${TARGET_WALL_S}s"; FAILED=1; }
  [ $((RSS_KB / 1024)) -le "$TARGET_RSS_MB" ] || { echo "  FAIL peak RSS > ${TARGET_RSS_MB} MB"; FAILED=1; }
done
echo
column -t "$OUT/rows.tsv"
exit "$FAILED"
