#!/usr/bin/env bash
# Issue 12's memory benchmark: memory per active series of skymeter's embedded store,
# VictoriaMetrics 1.79 and Prometheus 2.42 (Debian packages) on the same data, one system
# at a time, then skymeter under churn. Loopback only.
#
# Data: SERIES (default 1,000,000) series × POINTS (10) points at 60 s ending now, 2-decimal
# values, labels {__name__, provider, account, region, resource_id, stat} (what skymeter's
# Prometheus view gives a point without a resource record).
#
# - skymeter: `crates/store/examples/series_memory.rs load` ingests through the store API
#   in-process (see its doc comment for why not HTTP); RSS after open, after the load
#   (points in the head) and after the flush (points sealed into blocks).
# - VictoriaMetrics: the same samples as Prometheus text on `/api/v1/import/prometheus`
#   (streamed), then force_flush; RSS once the series count is reached and settled.
# - Prometheus: started with the remote-write receiver; vmagent (from the victoria-metrics
#   package) takes the same text on its import endpoint and remote-writes it (one queue, so
#   each series' samples arrive in order); RSS once every sample is appended to the head.
#   promtool's create-blocks-from would write blocks, not active (head) series.
# - Churn: GENERATIONS (10) × CHURN_SERIES (100,000) new series of POINTS points; after each
#   generation a flush and a retention that keeps only that generation; RSS after each.
#
# Bytes per series = (RSS after − RSS of the idle process) / SERIES.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/series_memory
rm -rf "$OUT" && mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
SERIES="${SERIES:-1000000}"
POINTS="${POINTS:-10}"
GENERATIONS="${GENERATIONS:-10}"
CHURN_SERIES="${CHURN_SERIES:-100000}"
VM_PORT=18428; PROM_PORT=19090; VMAGENT_PORT=18429
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }; }
need victoria-metrics victoria-metrics
need vmagent victoria-metrics
need prometheus prometheus
cargo build --release --locked -q -p skymeter-store --example series_memory
EX="$CARGO_TARGET_DIR/release/examples/series_memory"

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_http() { for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Waits (at most $3 s) until the Prometheus-format metric $2 at URL $1 reaches $4.
wait_metric() {
  local url=$1 name=$2 limit=$3 want=$4 v=0
  for _ in $(seq "$limit"); do
    # Summed over label variants (Prometheus 2.42 splits samples by {type=...}).
    v=$(curl -sf "$url" | awk -v n="$name" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%d", s}')
    [ "${v:-0}" -ge "$want" ] && { echo "$v"; return 0; }
    sleep 1
  done
  echo "timed out waiting for $name >= $want (last $v)" >&2
  echo "${v:-0}"
}
per_series() { awk -v a="$1" -v b="$2" -v n="$SERIES" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }'; }
END_S=$(( $(date -u +%s) / 60 * 60 ))
echo "== $SERIES series x $POINTS points, last point $(date -u -d @$END_S +%FT%TZ)"

echo "== skymeter (store API)"
"$EX" load "$OUT/sky" "$SERIES" "$POINTS" "$END_S" | tee "$OUT/sky.json"

echo "== VictoriaMetrics $(dpkg-query -W -f='${Version}' victoria-metrics)"
victoria-metrics -storageDataPath="$OUT/vm" -httpListenAddr=127.0.0.1:$VM_PORT -retentionPeriod=100y > "$OUT/vm.log" 2>&1 &
VM=$!; PIDS+=("$VM")
wait_http http://127.0.0.1:$VM_PORT/health
sleep 2
VM_IDLE=$(rss_kb "$VM")
T=$SECONDS
"$EX" text "$SERIES" "$POINTS" "$END_S" |
  curl -sf -X POST -T - -H 'Content-Type: text/plain' "http://127.0.0.1:$VM_PORT/api/v1/import/prometheus"
curl -sf "http://127.0.0.1:$VM_PORT/internal/force_flush"
VM_ROWS=$(wait_metric "http://127.0.0.1:$VM_PORT/metrics" vm_rows_added_to_storage_total 600 $((SERIES * POINTS)))
VM_LOAD_S=$((SECONDS - T))
sleep 10
VM_SERIES=$(curl -sf "http://127.0.0.1:$VM_PORT/api/v1/series/count" | sed -n 's/.*"data":\[\([0-9]*\)\].*/\1/p')
VM_RSS=$(rss_kb "$VM")
echo "{\"rss_idle_kb\":$VM_IDLE,\"rss_loaded_kb\":$VM_RSS,\"series\":${VM_SERIES:-0},\"rows\":$VM_ROWS,\"load_s\":$VM_LOAD_S}" | tee "$OUT/vm.json"
stop "$VM"

echo "== Prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3) via vmagent remote-write"
printf 'global:\n  scrape_interval: 1m\n' > "$OUT/prometheus.yml"
prometheus --config.file="$OUT/prometheus.yml" --storage.tsdb.path="$OUT/prom" --storage.tsdb.retention.time=100y \
  --web.enable-remote-write-receiver --web.listen-address=127.0.0.1:$PROM_PORT > "$OUT/prom.log" 2>&1 &
PROM=$!; PIDS+=("$PROM")
wait_http http://127.0.0.1:$PROM_PORT/-/ready
sleep 2
PROM_IDLE=$(rss_kb "$PROM")
vmagent -httpListenAddr=127.0.0.1:$VMAGENT_PORT -remoteWrite.url=http://127.0.0.1:$PROM_PORT/api/v1/write \
  -remoteWrite.queues=1 -remoteWrite.tmpDataPath="$OUT/vmagent" > "$OUT/vmagent.log" 2>&1 &
AGENT=$!; PIDS+=("$AGENT")
wait_http http://127.0.0.1:$VMAGENT_PORT/health
T=$SECONDS
"$EX" text "$SERIES" "$POINTS" "$END_S" |
  curl -sf -X POST -T - -H 'Content-Type: text/plain' "http://127.0.0.1:$VMAGENT_PORT/api/v1/import/prometheus"
PROM_SAMPLES=$(wait_metric "http://127.0.0.1:$PROM_PORT/metrics" prometheus_tsdb_head_samples_appended_total 900 $((SERIES * POINTS)))
PROM_LOAD_S=$((SECONDS - T))
stop "$AGENT"
sleep 10
PROM_SERIES=$(curl -sf "http://127.0.0.1:$PROM_PORT/metrics" | awk '$1 == "prometheus_tsdb_head_series" {printf "%d", $2}')
PROM_RSS=$(rss_kb "$PROM")
echo "{\"rss_idle_kb\":$PROM_IDLE,\"rss_loaded_kb\":$PROM_RSS,\"series\":${PROM_SERIES:-0},\"samples\":$PROM_SAMPLES,\"load_s\":$PROM_LOAD_S}" | tee "$OUT/prom.json"
stop "$PROM"

echo "== skymeter churn: $GENERATIONS generations of $CHURN_SERIES series"
"$EX" churn "$OUT/churn" "$GENERATIONS" "$CHURN_SERIES" "$POINTS" | tee "$OUT/churn.json"

field() { sed -n "s/.*\"$2\":\\([0-9.]*\\).*/\\1/p" "$OUT/$1" | head -1; }
SKY_OPEN=$(field sky.json rss_open_kb)
CHURN_FIRST=$(grep -o '"rss_kb":[0-9]*' "$OUT/churn.json" | head -1 | cut -d: -f2)
CHURN_LAST=$(grep -o '"rss_kb":[0-9]*' "$OUT/churn.json" | tail -1 | cut -d: -f2)
{
  echo "Memory per active series, $(date -u +%F), $(nproc) cores, $SERIES series x $POINTS points"
  echo
  echo "| | series held | idle RSS MB | RSS after load MB | bytes per series |"
  echo "|---|---|---|---|---|"
  echo "| skymeter (points in the head) | $SERIES | $((SKY_OPEN / 1024)) | $(( $(field sky.json rss_loaded_kb) / 1024 )) | $(field sky.json bytes_per_series_loaded) |"
  echo "| skymeter (after flush: points in blocks) | $SERIES | $((SKY_OPEN / 1024)) | $(( $(field sky.json rss_sealed_kb) / 1024 )) | $(field sky.json bytes_per_series_sealed) |"
  echo "| VictoriaMetrics | ${VM_SERIES:-?} | $((VM_IDLE / 1024)) | $((VM_RSS / 1024)) | $(per_series "$VM_RSS" "$VM_IDLE") |"
  echo "| Prometheus (head) | ${PROM_SERIES:-?} | $((PROM_IDLE / 1024)) | $((PROM_RSS / 1024)) | $(per_series "$PROM_RSS" "$PROM_IDLE") |"
  echo
  echo "Churn: RSS after generation 1's retention $((CHURN_FIRST / 1024)) MB, after generation $GENERATIONS's $((CHURN_LAST / 1024)) MB ($(awk -v a="$CHURN_LAST" -v b="$CHURN_FIRST" 'BEGIN { printf "%+.1f", (a - b) * 100 / b }') %)"
} | tee "$OUT/result.md"
