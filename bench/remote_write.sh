#!/usr/bin/env bash
# Issue 16's remote-write shipping benchmark: skymeter's `remote_write` publisher against
# vmagent (Debian package victoria-metrics), shipping the same samples to a VictoriaMetrics
# single node (the same binary and flags, a fresh data directory for each shipper), one
# after the other in the same run, release builds.
#
# Data: SERIES series × POINTS points at 60 s (cpu.utilization of aws instances, 2-decimal
# values), cut into batches of BATCH points, as agents' collections arrive.
# - skymeter: `skymeter-loadgen remote-write --shipper skymeter` builds the publisher
#   through the plugin registry and publishes every batch (encode, write to the on-disk
#   buffer with fsync, send) then flushes; it reports the wall time and its own CPU time
#   (user + system) of that phase; flush returns once VictoriaMetrics acknowledged every
#   request. The batches are built before the clock starts.
# - vmagent: fed the very requests the publisher would send (its own encoder: same series,
#   same labels), 4 concurrent clients, at its /api/v1/write; it decodes, queues,
#   re-encodes and ships them. CPU = vmagent's user + system time (/proc/<pid>/stat) from
#   before the feed until VictoriaMetrics has every row; the wall time is the same span.
# Both: samples/s = samples / wall time; CPU µs per sample = CPU time / samples. Every run
# checks that VictoriaMetrics counted every row (vm_rows_inserted_total).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/remote_write
rm -rf "$OUT" && mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
SERIES="${SERIES:-10000}"
POINTS="${POINTS:-100}"
BATCH="${BATCH:-10000}"
RUNS="${RUNS:-3}"
command -v vmagent >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null; }
cargo build --release --locked -q -p skymeter-loadgen
LOAD="$CARGO_TARGET_DIR/release/skymeter-loadgen"
TOTAL=$((SERIES * POINTS))
END=$(date -u +%s); END=$((END - END % 60))
VM_PORT=18428
AGENT_PORT=18429
wait_http() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
rows() { curl -sf "http://127.0.0.1:$VM_PORT/metrics" | awk '/^vm_rows_inserted_total\{type="promremotewrite"\}/ {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

start_vm() {
  victoria-metrics -storageDataPath="$1" -httpListenAddr=127.0.0.1:$VM_PORT -retentionPeriod=100y \
    -search.latencyOffset=0s > "$1.log" 2>&1 &
  VM=$!; PIDS+=("$VM")
  wait_http "http://127.0.0.1:$VM_PORT/health"
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
wait_rows() {
  local want=$1
  for _ in $(seq 6000); do
    [ "$(rows)" = "$want" ] && return 0
    sleep 0.02
  done
  echo "VictoriaMetrics has $(rows) rows, not $want" >&2; return 1
}

echo "victoria-metrics and vmagent $(dpkg-query -W -f '${Version}' victoria-metrics 2>/dev/null || echo "(version unknown)")"
echo "$TOTAL samples: $SERIES series x $POINTS points, batches of $BATCH"
: > "$OUT/runs.txt"
for run in $(seq "$RUNS"); do
  # vmagent
  start_vm "$OUT/vm-agent-$run"
  vmagent -remoteWrite.url="http://127.0.0.1:$VM_PORT/api/v1/write" -httpListenAddr=127.0.0.1:$AGENT_PORT \
    -remoteWrite.tmpDataPath="$OUT/vmagent-queue-$run" > "$OUT/vmagent-$run.log" 2>&1 &
  AGENT=$!; PIDS+=("$AGENT")
  wait_http "http://127.0.0.1:$AGENT_PORT/health"
  sleep 1
  c0=$(cpu_ticks "$AGENT"); t0=$(now)
  "$LOAD" remote-write --shipper vmagent --url "http://127.0.0.1:$AGENT_PORT/api/v1/write" \
    --series "$SERIES" --points "$POINTS" --batch "$BATCH" --end "$END" > "$OUT/vmagent-feed-$run.json"
  wait_rows "$TOTAL"
  t1=$(now); c1=$(cpu_ticks "$AGENT")
  awk -v n="$TOTAL" -v s="$(echo "$t1 - $t0" | bc)" -v c="$((c1 - c0))" -v r="$run" \
    'BEGIN{printf "vmagent %d %.0f %.3f %.2f\n", r, n/s, (c/100)*1e6/n, s}' | tee -a "$OUT/runs.txt"
  stop "$AGENT"; stop "$VM"

  # skymeter
  start_vm "$OUT/vm-sky-$run"
  "$LOAD" remote-write --shipper skymeter --url "http://127.0.0.1:$VM_PORT/api/v1/write" \
    --buffer "$OUT/sky-$run" --series "$SERIES" --points "$POINTS" --batch "$BATCH" --end "$END" \
    > "$OUT/skymeter-$run.json"
  wait_rows "$TOTAL"
  sed -n 's/.*"samples_per_s":\([0-9.]*\).*"cpu_us_per_sample":\([0-9.]*\).*/\1 \2/p' "$OUT/skymeter-$run.json" |
    awk -v r="$run" -v s="$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$OUT/skymeter-$run.json")" \
      '{printf "skymeter %d %.0f %.3f %.2f\n", r, $1, $2, s}' | tee -a "$OUT/runs.txt"
  stop "$VM"
done

median() { awk -v who="$1" -v col="$2" '$1 == who {print $col}' "$OUT/runs.txt" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
{
  echo "Remote-write shipping, $(date -u +%F), $(nproc) cores, $TOTAL samples ($SERIES series x $POINTS points, batches of $BATCH), median of $RUNS runs"
  echo
  echo "| shipper | samples/s | CPU µs per sample | seconds |"
  echo "|---|---|---|---|"
  echo "| skymeter remote_write | $(median skymeter 3) | $(median skymeter 4) | $(median skymeter 5) |"
  echo "| vmagent | $(median vmagent 3) | $(median vmagent 4) | $(median vmagent 5) |"
} | tee "$OUT/result.md"
