#!/usr/bin/env bash
# Issue 3's server benchmark: skymeter's server and VictoriaMetrics (Debian package
# victoria-metrics) on the same data, one after the other on an otherwise idle machine:
# 10,000 series × 1,000 points at 60 s with 2-decimal values (+ one 7-day series of 10,080
# points for the query), gzip bodies of 10,000 points from 4 concurrent clients.
#
# Reports: ingest points/s; bytes on disk per point (whole data dir, after a flush); p50/p90
# of one series over 7 days at 60 s step (skymeter GET /api/v1/points, VictoriaMetrics
# GET /api/v1/query_range).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/ingest
rm -rf "$OUT" && mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
command -v victoria-metrics >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null; }
cargo build --release --locked -q -p skymeter -p skymeter-loadgen
BIN="$CARGO_TARGET_DIR/release/skymeter"
LOAD="$CARGO_TARGET_DIR/release/skymeter-loadgen"
POINTS=$((10000 * 1000 + 10080))
wait_http() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

echo "== VictoriaMetrics $(victoria-metrics --version 2>&1 | head -1)"
victoria-metrics -storageDataPath="$OUT/vm" -httpListenAddr=127.0.0.1:18428 -retentionPeriod=100y > "$OUT/vm.log" 2>&1 &
VM=$!
trap 'kill $VM $SKY 2>/dev/null || true' EXIT
SKY=""
wait_http http://127.0.0.1:18428/health
"$LOAD" ingest --target victoriametrics --url http://127.0.0.1:18428 | tee "$OUT/vm-ingest.json"
curl -sf http://127.0.0.1:18428/internal/force_flush
sleep 5
VM_BYTES=$(du -sb "$OUT/vm" | cut -f1)
END=$(date -u +%s); END=$((END - END % 60)); START=$((END - 7 * 86400))
"$LOAD" query --url "http://127.0.0.1:18428/api/v1/query_range?query=bench_long_percent&start=$START&end=$END&step=60" | tee "$OUT/vm-query.json"
kill $VM; wait $VM 2>/dev/null || true

echo "== skymeter $("$BIN" --version)"
"$BIN" server --listen 127.0.0.1:18080 --data-dir "$OUT/sky" --no-auth > "$OUT/sky.log" 2>&1 &
SKY=$!
wait_http http://127.0.0.1:18080/health
"$LOAD" ingest --target skymeter --url http://127.0.0.1:18080 | tee "$OUT/sky-ingest.json"
kill -TERM $SKY; wait $SKY 2>/dev/null || true   # shutdown flushes the head into compressed blocks
SKY_BYTES=$(du -sb "$OUT/sky" | cut -f1)
"$BIN" server --listen 127.0.0.1:18080 --data-dir "$OUT/sky" --no-auth >> "$OUT/sky.log" 2>&1 &
SKY=$!
wait_http http://127.0.0.1:18080/health
S=$(date -u -d @$START +%FT%TZ); E=$(date -u -d @$END +%FT%TZ)
"$LOAD" query --url "http://127.0.0.1:18080/api/v1/points?metric=bench.long&resource=aws%2F123456789012%2Fus-east-1%2Fi-long&start=$S&end=$E&step=60s" | tee "$OUT/sky-query.json"
kill -TERM $SKY; wait $SKY 2>/dev/null || true

field() { sed -n "s/.*\"$2\":\\([0-9.]*\\).*/\\1/p" "$OUT/$1"; }
{
  echo "Ingest and storage, $(date -u +%F), $(nproc) cores, $POINTS points"
  echo
  echo "| | ingest points/s | bytes on disk per point | points query p50 ms | p90 ms |"
  echo "|---|---|---|---|---|"
  echo "| skymeter | $(field sky-ingest.json points_per_s) | $(awk -v b="$SKY_BYTES" -v p="$POINTS" 'BEGIN{printf "%.2f", b/p}') | $(field sky-query.json p50_ms) | $(field sky-query.json p90_ms) |"
  echo "| VictoriaMetrics | $(field vm-ingest.json points_per_s) | $(awk -v b="$VM_BYTES" -v p="$POINTS" 'BEGIN{printf "%.2f", b/p}') | $(field vm-query.json p50_ms) | $(field vm-query.json p90_ms) |"
} | tee "$OUT/result.md"
