#!/usr/bin/env bash
# End-to-end cost of `skymeter collect aws` on a large account: 10,000 EC2 instances × M
# CloudWatch metrics × 2 stats against bench/aws_standin, a local stand-in that answers
# EC2 and CloudWatch GetMetricData in the real wire shapes (release builds of both).
#
#   bench/aws_collect.sh                                   # 10,000 instances, latency 0 and 100 ms
#   INSTANCES=2000 LATENCIES="0" REPEAT=1 bench/aws_collect.sh
#   # the issue's 12 metrics, once the collector has the `ec2_metrics` and `services` keys:
#   EC2_METRICS="CPUUtilization NetworkIn NetworkOut NetworkPacketsIn NetworkPacketsOut DiskReadOps \
#     DiskWriteOps DiskReadBytes DiskWriteBytes EBSReadOps EBSWriteOps EBSReadBytes" SERVICES=ec2 \
#     bench/aws_collect.sh
#
# Each timed run: a fresh stand-in (`--latency-ms L` added to every call, as AWS's answer
# time), then `skymeter collect aws --format json --period 300s` into /dev/null under
# `/usr/bin/time -v` (wall time, peak RSS, CPU). Checks, from the stand-in's `/_stats`:
# GetMetricData calls = ceil(instances × metrics × stats / 500), DescribeInstances pages =
# ceil(instances / 1000), no error answers, calls in flight ≤ max_concurrency. One extra
# untimed run writes the records to a file: points = instances × metrics × stats × 1 period,
# and a few values are compared with the stand-in's `/_value`.
#
# Metrics: with EC2_METRICS empty the collector asks for its whole EC2 catalog (13 metrics
# today); with EC2_METRICS set (CloudWatch names, space-separated) it is passed as
# `--set ec2_metrics=[...]`, and SERVICES (e.g. "ec2") as `--set services=[...]`.
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES="${INSTANCES:-10000}"
LATENCIES="${LATENCIES:-0 100}"
CONCURRENCY="${CONCURRENCY:-8}"
REPEAT="${REPEAT:-3}"
# The collector's EC2 catalog, what it asks for when EC2_METRICS is empty.
CATALOG_METRICS=13
EC2_METRICS="${EC2_METRICS:-}"
SERVICES="${SERVICES:-}"
STATS_LIST="${STATS_LIST:-avg max}"
TARGET_WALL_S=10
TARGET_RSS_MB=100
OUT="bench/out/aws_collect"
rm -rf "$OUT" && mkdir -p "$OUT"

if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
cargo build --release --locked -q -p skymeter -p skymeter-aws-standin
SKYMETER="$CARGO_TARGET_DIR/release/skymeter"
STANDIN="$CARGO_TARGET_DIR/release/skymeter-aws-standin"

# TOML arrays for --set, and the counts the checks expect.
toml_list() { local out="" x; for x in "$@"; do out="$out${out:+, }\"$x\""; done; echo "[$out]"; }
# shellcheck disable=SC2086
STATS_TOML=$(toml_list $STATS_LIST)
N_STATS=$(wc -w <<< "$STATS_LIST")
EXTRA_SETS=()
if [ -n "$EC2_METRICS" ]; then
  # shellcheck disable=SC2086
  EXTRA_SETS+=(--set "ec2_metrics=$(toml_list $EC2_METRICS)")
  N_METRICS=$(wc -w <<< "$EC2_METRICS")
else
  N_METRICS=$CATALOG_METRICS
fi
if [ -n "$SERVICES" ]; then
  # shellcheck disable=SC2086
  EXTRA_SETS+=(--set "services=$(toml_list $SERVICES)")
fi
QUERIES=$((INSTANCES * N_METRICS * N_STATS))
WANT_GMD=$(((QUERIES + 499) / 500))
WANT_PAGES=$(((INSTANCES + 999) / 1000))

export AWS_ACCESS_KEY_ID=AKIASKYMETERBENCH000 AWS_SECRET_ACCESS_KEY=bench-secret-not-real
# The region and no IMDS: the SDK's default chain would otherwise probe 169.254.169.254.
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN

STANDIN_PID=""
stop_standin() {
  if [ -n "$STANDIN_PID" ]; then
    kill -INT "$STANDIN_PID" 2>/dev/null || true
    wait "$STANDIN_PID" 2>/dev/null || true
    STANDIN_PID=""
  fi
}
trap stop_standin EXIT

# start_standin LATENCY_MS NAME: starts a fresh stand-in, sets URL.
start_standin() {
  "$STANDIN" --listen 127.0.0.1:0 --instances "$INSTANCES" --latency-ms "$1" --region us-east-1 \
    > "$OUT/$2.standin.out" 2> "$OUT/$2.standin.err" &
  STANDIN_PID=$!
  URL=""
  for _ in $(seq 100); do
    URL=$(sed -n 's/^listening on //p' "$OUT/$2.standin.out" 2>/dev/null || true)
    [ -n "$URL" ] && return 0
    sleep 0.05
  done
  echo "the stand-in did not start; see $OUT/$2.standin.err" >&2
  exit 1
}

# collect OUTPUT_FILE NAME: one timed `skymeter collect aws`.
collect() {
  /usr/bin/time -v -o "$OUT/$2.time" \
    "$SKYMETER" collect aws --format json --period 300s --timeout 600s \
    --set "endpoint_url=$URL" --set 'regions=["us-east-1"]' --set delay=0s \
    --set "max_concurrency=$CONCURRENCY" --set "stats=$STATS_TOML" "${EXTRA_SETS[@]}" \
    > "$1" 2> "$OUT/$2.stderr" || {
      echo "skymeter collect failed (status $?); see $OUT/$2.stderr" >&2
      cat "$OUT/$2.stderr" >&2
      exit 1
    }
  curl -sf "$URL/_stats" > "$OUT/$2.stats.json"
}

FAILED=0
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "  ok   $1 = $2"; else echo "  FAIL $1 = $2, want $3"; FAILED=1; fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# The checks every run gets from the stand-in's counters.
check_stats() {
  local s="$OUT/$1.stats.json"
  check "GetMetricData calls" "$(json "$s" "d['calls'].get('cloudwatch:GetMetricData', 0)")" "$WANT_GMD"
  check "queries asked" "$(json "$s" "d['metric_data_queries']")" "$QUERIES"
  check "DescribeInstances pages" "$(json "$s" "d['calls'].get('ec2:DescribeInstances', 0)")" "$WANT_PAGES"
  check "error answers" "$(json "$s" "sum(d['error_answers'].values())")" "0"
  check "calls in flight <= $CONCURRENCY" "$(json "$s" "d['max_in_flight'] <= $CONCURRENCY")" "True"
}

echo "== $INSTANCES instances × $N_METRICS metrics × $N_STATS stats = $QUERIES queries," \
  "want $WANT_GMD GetMetricData calls, max_concurrency $CONCURRENCY"
echo "   extra config: ${EXTRA_SETS[*]:-none, the whole EC2 catalog of the collector}"

# The records, once, untimed for the table: count and spot-check them.
start_standin 0 records
collect "$OUT/records.jsonl" records
stop_standin
echo "-- records run (output to a file)"
check_stats records
POINTS=$(grep '"type":"point"' "$OUT/records.jsonl" | grep -vc '"metric":"aws\.' || true)
check "points (instances × metrics × stats × 1 period)" "$POINTS" "$QUERIES"
check "resources" "$(grep -c '"type":"resource"' "$OUT/records.jsonl" || true)" "$INSTANCES"
check "error records" "$(grep -c '"type":"error"' "$OUT/records.jsonl" || true)" "0"
# Values: gauges as CloudWatch answers them, counters' avg as Sum / period and max as
# Maximum / sample interval (300 s), each read back from the stand-in's /_value.
start_standin 0 values
LAST_ID=$(printf 'i-%016x' "$INSTANCES")
SPOT=$(python3 - "$OUT/records.jsonl" "$URL" "$LAST_ID" <<'PY'
import json, sys, urllib.request
from datetime import datetime
path, url, last = sys.argv[1], sys.argv[2], sys.argv[3]
wanted = {  # normalized (metric, stat, labels' source) -> CloudWatch (metric, stat, divisor)
    ("cpu.utilization", "avg", None): ("CPUUtilization", "Average", 1),
    ("cpu.utilization", "max", None): ("CPUUtilization", "Maximum", 1),
    ("network.received_throughput", "avg", None): ("NetworkIn", "Sum", 300),
    ("network.sent_throughput", "max", None): ("NetworkOut", "Maximum", 300),
    ("disk.write_throughput", "avg", "ebs"): ("EBSWriteBytes", "Sum", 300),
}
checked = bad = 0
with open(path) as f:
    for line in f:
        if '"type":"point"' not in line or not ('"i-0000000000000001"' in line or f'"{last}"' in line):
            continue
        p = json.loads(line)
        key = (p["metric"], p["stat"], p.get("labels", {}).get("source"))
        if key not in wanted:
            continue
        cw_metric, cw_stat, div = wanted[key]
        start = int(datetime.fromisoformat(p["ts"].replace("Z", "+00:00")).timestamp()) - p["period_s"]
        q = f"{url}/_value?instance={p['resource']['id']}&metric={cw_metric}&stat={cw_stat}&ts={start}"
        want = float(urllib.request.urlopen(q).read()) / div
        checked += 1
        if abs(p["value"] - want) > 1e-9 * max(1.0, abs(want)):
            bad += 1
            print(f"mismatch: {key} {p['resource']['id']}: {p['value']} != {want}", file=sys.stderr)
print(checked, bad)
PY
)
stop_standin
read -r SPOT_CHECKED SPOT_BAD <<< "$SPOT"
check "spot-checked values wrong (of $SPOT_CHECKED)" "$SPOT_BAD" "0"

# A row per run: latency, run, wall s, peak RSS MB, user s, sys s, GMD calls, max in flight,
# stand-in CPU s.
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
    USER_S=$(awk -F': ' '/User time/ { print $2 }' "$T")
    SYS_S=$(awk -F': ' '/System time/ { print $2 }' "$T")
    S="$OUT/$NAME.stats.json"
    printf '%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n' "$LAT" "$RUN" "$WALL" "$(awk -v k="$RSS_KB" 'BEGIN { print k / 1024 }')" \
      "$USER_S" "$SYS_S" "$(json "$S" "d['calls'].get('cloudwatch:GetMetricData', 0)")" \
      "$(json "$S" "d['max_in_flight']")" "$(json "$S" "d['cpu_seconds']")" >> "$ROWS"
    echo "   wall ${WALL}s, peak RSS $((RSS_KB / 1024)) MB, user ${USER_S}s, sys ${SYS_S}s"
    # Phases as the stand-in saw them (first call to last answer of each API).
    json "$S" "'   phases (s after the stand-in started): ' + ', '.join('%s %.2f-%.2f s' % (a, v['first_call'], v['last_answer']) for a, v in d['spans_s'].items())"
  done
done

echo
echo "| latency per call | wall s (median of $REPEAT) | peak RSS MB (max) | collector CPU s (user+sys, median) | GetMetricData calls | max in flight | stand-in CPU s |"
echo "|---|---|---|---|---|---|---|"
for LAT in $LATENCIES; do
  awk -F'\t' -v lat="$LAT" '
    $1 == lat { n++; wall[n] = $3; cpu[n] = $5 + $6; if ($4 > rss) rss = $4; gmd = $7; if ($8 > fl) fl = $8; sc[n] = $9 }
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return a[int((n + 1) / 2)] }
    END { printf "| %s ms | %.2f | %.1f | %.2f | %s | %s | %.2f |\n", lat, median(wall, n), rss, median(cpu, n), gmd, fl, median(sc, n) }
  ' "$ROWS"
done
echo
awk -F'\t' -v w="$TARGET_WALL_S" -v r="$TARGET_RSS_MB" '
  { if ($3 > maxw) maxw = $3; if ($4 > maxr) maxr = $4 }
  END { printf "targets: wall <= %d s: %s (slowest run %.2f s); peak RSS <= %d MB: %s (%.1f MB)\n",
        w, (maxw <= w ? "met" : "NOT met"), maxw, r, (maxr <= r ? "met" : "NOT met"), maxr }
' "$ROWS"
[ "$FAILED" = 0 ] || { echo "some checks FAILED (see above)"; exit 1; }
