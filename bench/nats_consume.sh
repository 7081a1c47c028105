#!/usr/bin/env bash
# Batches through NATS JetStream into skymeter servers (`skymeter server --consume`) against
# the same batches POSTed to one server's /api/v1/ingest, release builds, one run after the
# other: 2,000 series × 500 points (+ a 10,080-point series), gzip batches of 10,000 points.
#
# Reports points/s from the first batch sent to the last one stored: HTTP ingest (4
# clients); NATS with one consuming server; NATS with two servers sharing the durable
# consumer. NATS is a nats-server -js of the script's own (Debian nats-server), on a free
# port, its store in bench/out.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/nats
rm -rf "$OUT" && mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$NATS_SERVER" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null; NATS_SERVER=/usr/sbin/nats-server; }
# No cloud collectors: the server path does not use them, and their SDKs are most of a
# release build.
cargo build --release --locked -q --no-default-features -p skymeter -p skymeter-loadgen
BIN="$CARGO_TARGET_DIR/release/skymeter"
LOAD="$CARGO_TARGET_DIR/release/skymeter-loadgen"
SIZE=(--series 2000 --points 500 --batch 10000)
END=$(date -u +%s); END=$((END - END % 60))
wait_http() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
server() { # name port [flags…]: a server on a fresh data dir
  local name=$1 port=$2; shift 2
  "$BIN" server --listen "127.0.0.1:$port" --data-dir "$OUT/$name" --no-auth "$@" > "$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/health"
}
stop_all() { kill "${PIDS[@]}" 2>/dev/null || true; wait "${PIDS[@]}" 2>/dev/null || true; PIDS=(); }

echo "== HTTP ingest, one server"
server http 18180
"$LOAD" ingest --target skymeter --url http://127.0.0.1:18180 --end "$END" "${SIZE[@]}" | tee "$OUT/http.json"
stop_all

for n in 1 2; do
  echo "== NATS, $n consuming server(s)"
  "$NATS_SERVER" -a 127.0.0.1 -p 14222 -js -sd "$OUT/js-$n" > "$OUT/nats-$n.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.1; done
  for i in $(seq "$n"); do
    server "nats$n-$i" $((18180 + i)) --consume nats://127.0.0.1:14222
  done
  "$LOAD" ingest --target skymeter --url unused --nats nats://127.0.0.1:14222 --end "$END" "${SIZE[@]}" | tee "$OUT/nats-$n.json"
  stop_all
done
