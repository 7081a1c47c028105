#!/usr/bin/env bash
# Issue 6's query benchmark: skymeter's Prometheus-compatible API, Prometheus 2.42 and
# VictoriaMetrics 1.79 (Debian packages `prometheus`, `victoria-metrics`) on the same data,
# in one run on 127.0.0.1: 10,000 series × 1,000 points at 60 s (8 regions, 2-decimal
# random walks; bench/loadgen), labels as skymeter names them
# (cpu_utilization_percent{provider, account, region, resource_id, stat}).
#
# Loading: skymeter through POST /api/v1/ingest (then a restart, which seals and compacts),
# Prometheus with `promtool tsdb create-blocks-from openmetrics`, VictoriaMetrics through
# its /api/v1/import. Measuring: one server at a time (the others stopped), WARMUP requests
# then RUNS timed requests (sequential, one client, no auth on any), p50 and p90 per query:
#   1. query_range avg by (region) (cpu_utilization_percent), 16 h at 5 m step
#   2. query_range max_over_time(cpu_utilization_percent{resource_id="i-0000002a"}[1h]),
#      the whole data range at 60 s step
#   3. query topk(10, avg_over_time(cpu_utilization_percent[1h])) at the last sample
#   4. /api/v1/series?match[]={region="eu-west-1"} over the data range
# Also the first request of each query after the server started (cold caches). Each
# answer's shape (series, points, sum of values) is printed per server, to show that all
# three answered the same question. Results: bench/out/promql/result.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/promql
rm -rf "$OUT" && mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-5}"
SERIES=10000
POINTS=1000
STEP=60
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need prometheus prometheus
need promtool prometheus
need victoria-metrics victoria-metrics
cargo build --release --locked -q -p skymeter --no-default-features -p skymeter-loadgen
BIN="$CARGO_TARGET_DIR/release/skymeter"
LOAD="$CARGO_TARGET_DIR/release/skymeter-loadgen"

SKY_PORT=18080; PROM_PORT=19090; VM_PORT=18428
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_http() { for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The same data for all three: the last point at END.
END=$(( $(date -u +%s) / STEP * STEP - STEP ))
FIRST=$(( END - (POINTS - 1) * STEP ))

start_sky() { "$BIN" server --listen 127.0.0.1:$SKY_PORT --data-dir "$OUT/sky" --no-auth >> "$OUT/sky.log" 2>&1 & SKY=$!; PIDS+=("$SKY"); wait_http http://127.0.0.1:$SKY_PORT/health; }
start_prom() {
  printf 'global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n' > "$OUT/prometheus.yml"
  prometheus --config.file="$OUT/prometheus.yml" --storage.tsdb.path="$OUT/prom" --storage.tsdb.retention.time=100y \
    --web.listen-address=127.0.0.1:$PROM_PORT >> "$OUT/prom.log" 2>&1 & PROM=$!; PIDS+=("$PROM")
  wait_http http://127.0.0.1:$PROM_PORT/-/ready
}
start_vm() { victoria-metrics -storageDataPath="$OUT/vm" -httpListenAddr=127.0.0.1:$VM_PORT -retentionPeriod=100y >> "$OUT/vm.log" 2>&1 & VM=$!; PIDS+=("$VM"); wait_http http://127.0.0.1:$VM_PORT/health; }

echo "== loading $SERIES series x $POINTS points at ${STEP}s, last point $(date -u -d @$END +%FT%TZ)"
start_sky
"$LOAD" ingest --target skymeter --url http://127.0.0.1:$SKY_PORT --series $SERIES --points $POINTS --step-s $STEP --long-points 0 --end $END | tee "$OUT/sky-load.json"
stop "$SKY"   # shutdown seals the head into blocks and compacts

start_vm
"$LOAD" ingest --target victoriametrics --url http://127.0.0.1:$VM_PORT --series $SERIES --points $POINTS --step-s $STEP --long-points 0 --end $END | tee "$OUT/vm-load.json"
curl -sf http://127.0.0.1:$VM_PORT/internal/force_flush
sleep 5
stop "$VM"

"$LOAD" openmetrics --out "$OUT/data.om" --series $SERIES --points $POINTS --step-s $STEP --end $END
T=$SECONDS
promtool tsdb create-blocks-from openmetrics "$OUT/data.om" "$OUT/prom" > "$OUT/promtool.log" 2>&1
echo "promtool tsdb create-blocks-from openmetrics: $((SECONDS - T)) s"
rm -f "$OUT/data.om"

urlq() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
Q1="/api/v1/query_range?query=$(urlq 'avg by (region) (cpu_utilization_percent)')&start=$((END - 16 * 3600))&end=$END&step=300"
Q2="/api/v1/query_range?query=$(urlq 'max_over_time(cpu_utilization_percent{resource_id="i-0000002a"}[1h])')&start=$FIRST&end=$END&step=60"
Q3="/api/v1/query?query=$(urlq 'topk(10, avg_over_time(cpu_utilization_percent[1h]))')&time=$END"
Q4="/api/v1/series?match%5B%5D=$(urlq '{region="eu-west-1"}')&start=$FIRST&end=$END"
NAMES=("range avg by (region) 16h/5m" "range max_over_time one series [1h] full range/60s" "instant topk(10, avg_over_time [1h])" "series {region=\"eu-west-1\"}")
QS=("$Q1" "$Q2" "$Q3" "$Q4")

# The shape of an answer: series, points and the sum of values (rounded), or labels sets.
shape() {
  curl -sf "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
if isinstance(d, list):
    print(f"{len(d)} series")
else:
    r = d["result"]
    pts = [float(p[1]) for s in r for p in (s.get("values") or [s["value"]])]
    print(f"{len(r)} series, {len(pts)} points, sum {sum(pts):.6g}")'
}

measure() { # name base
  local name=$1 base=$2
  for i in 0 1 2 3; do
    # The first request after the server started: its caches are cold for this query
    # (earlier queries may have warmed what they share).
    "$LOAD" query --url "$base${QS[$i]}" --requests 1 > "$OUT/$name-first-q$i.json"
    echo "$name ${NAMES[$i]}: $(shape "$base${QS[$i]}")" | tee -a "$OUT/shapes.txt"
    "$LOAD" query --url "$base${QS[$i]}" --requests "$RUNS" --warmup "$WARMUP" > "$OUT/$name-q$i.json"
  done
}

echo "== measuring ($WARMUP warm-up + $RUNS timed requests per query, one server at a time)"
start_sky; measure skymeter http://127.0.0.1:$SKY_PORT; stop "$SKY"
start_prom; sleep 5; measure prometheus http://127.0.0.1:$PROM_PORT; stop "$PROM"
start_vm; measure victoriametrics http://127.0.0.1:$VM_PORT; stop "$VM"

field() { sed -n "s/.*\"$2\":\\([0-9.]*\\).*/\\1/p" "$OUT/$1"; }
{
  echo "PromQL API, $(date -u +%F), $(nproc) cores (load average $(cut -d' ' -f1-3 /proc/loadavg)), $SERIES series x $POINTS points at ${STEP}s;"
  echo "skymeter $("$BIN" --version | cut -d' ' -f2), Prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3), VictoriaMetrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '?'); p50 / p90 ms of $RUNS requests after $WARMUP"
  echo
  echo "| query | skymeter | Prometheus | VictoriaMetrics |"
  echo "|---|---|---|---|"
  for i in 0 1 2 3; do
    row="| ${NAMES[$i]} |"
    for t in skymeter prometheus victoriametrics; do
      row="$row $(field "$t-q$i.json" p50_ms) / $(field "$t-q$i.json" p90_ms) |"
    done
    echo "$row"
  done
  echo
  echo "First request after the server started (ms; queries run in this order, each may warm the next):"
  echo
  echo "| query | skymeter | Prometheus | VictoriaMetrics |"
  echo "|---|---|---|---|"
  for i in 0 1 2 3; do
    row="| ${NAMES[$i]} |"
    for t in skymeter prometheus victoriametrics; do
      row="$row $(field "$t-first-q$i.json" p50_ms) |"
    done
    echo "$row"
  done
  echo
  sed 's/^/    /' "$OUT/shapes.txt"
} | tee "$OUT/result.md"
