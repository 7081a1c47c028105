#!/usr/bin/env bash
# CPU time and peak memory of skymeter's host collection against prometheus-node-exporter
# and collectd, side by side in one run, all at a 10 s interval (issue 2's benchmark).
#
#   bench/host_footprint.sh            # 10 minutes
#   BENCH_SECONDS=60 bench/host_footprint.sh
#
# - skymeter: release build, `run` with the host collector every 10 s, writing JSON lines.
# - node_exporter: its default collectors, scraped every 10 s with curl (a Prometheus
#   server would do the same); the scraper's own CPU is not counted.
# - collectd: cpu, memory, swap, df, disk, interface, load, processes every 10 s, writing CSV.
# CPU = utime + stime from /proc/PID/stat at the end; peak RSS = VmHWM from /proc/PID/status.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${BENCH_SECONDS:-600}"
OUT="bench/out/host_footprint"
rm -rf "$OUT" && mkdir -p "$OUT"

if [ ! -x /usr/bin/prometheus-node-exporter ] || ! command -v collectd >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter collectd-core >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
cargo build --release --locked -q -p skymeter
BIN="$CARGO_TARGET_DIR/release/skymeter"

cat > "$OUT/skymeter.toml" <<TOML
[agent]
id = "bench"
data_dir = "$OUT/data"

[[task]]
name = "host"
schedule = { every = "10s" }
collect = [{ plugin = "host" }]
publish = [{ plugin = "file", path = "$OUT/skymeter.jsonl" }]
TOML

cat > "$OUT/collectd.conf" <<CONF
Interval 10
BaseDir "$OUT/collectd"
PIDFile "$OUT/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin swap
LoadPlugin df
LoadPlugin disk
LoadPlugin interface
LoadPlugin load
LoadPlugin processes
LoadPlugin csv
<Plugin csv>
  DataDir "$OUT/collectd-csv"
</Plugin>
CONF

"$BIN" run -c "$OUT/skymeter.toml" > /dev/null 2> "$OUT/skymeter.log" &
SKY=$!
/usr/bin/prometheus-node-exporter --web.listen-address=127.0.0.1:19100 > "$OUT/node_exporter.log" 2>&1 &
NODE=$!
collectd -f -C "$OUT/collectd.conf" > "$OUT/collectd.log" 2>&1 &
COLLECTD=$!
trap 'kill $SKY $NODE $COLLECTD $SCRAPER 2>/dev/null || true' EXIT
( while true; do curl -s -o /dev/null http://127.0.0.1:19100/metrics; sleep 10; done ) &
SCRAPER=$!

echo "running all three for ${SECONDS_TO_RUN}s..."
sleep "$SECONDS_TO_RUN"

TICKS=$(getconf CLK_TCK)
measure() { # name pid
  local cpu rss
  cpu=$(awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$2/stat")
  rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$2/status")
  local per_min
  per_min=$(awk -v c="$cpu" -v s="$SECONDS_TO_RUN" 'BEGIN { printf "%.4f", c / (s / 60) }')
  echo "| $1 | $cpu | $per_min | $rss |"
}
{
  echo "Host collection footprint, ${SECONDS_TO_RUN}s at a 10 s interval, $(date -u +%F), $(nproc) cores"
  echo
  echo "| collector | CPU s total | CPU s per minute | peak RSS MB |"
  echo "|---|---|---|---|"
  measure "skymeter $("$BIN" --version | cut -d' ' -f2) (host → file)" $SKY
  measure "prometheus-node-exporter $(/usr/bin/prometheus-node-exporter --version 2>&1 | head -1 | awk '{print $3}') (scraped every 10 s)" $NODE
  measure "collectd $(collectd -h | awk '/collectd [0-9]/ {print $2; exit}') (→ csv)" $COLLECTD
  echo
  echo "skymeter wrote $(wc -l < "$OUT/skymeter.jsonl") records in $(grep -c 'run finished' "$OUT/skymeter.log" || true) runs"
} | tee "$OUT/result.md"
