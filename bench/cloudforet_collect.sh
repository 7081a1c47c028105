#!/usr/bin/env bash
# Cloudforet plugin collect (issue 15): a release `skymeter server` seeded with N AWS
# instances (ten metrics, avg and max, hourly for 24 h: 480 points each), a release
# `skymeter cloudforet-plugin` over it, and Cloudforet's own Python stubs (spaceone-api +
# grpcio, crates/cli/tests/cloudforet/client.py) calling `collect` for the default 24 hours.
# Prints the wall time, resources per second, and the plugin's and the server's CPU seconds
# and peak RSS (from /proc). Figures go to docs/benchmarks.md, "Cloudforet plugin collect".
#
#   bench/cloudforet_collect.sh            # 10,000 instances
#   bench/cloudforet_collect.sh 1000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
N="${1:-10000}"
PY="${SKYMETER_CLOUDFORET_PYTHON:-$HOME/.cache/skymeter/venv-cloudforet/bin/python}"
[ -x "$PY" ] || { echo "no $PY: run scripts/test once (it makes venv-cloudforet)" >&2; exit 1; }
cargo build --release --locked -q -p skymeter --no-default-features
BIN="$CARGO_TARGET_DIR/release/skymeter"
work="$(mktemp -d)"
server_pid=; plugin_pid=
trap 'kill $server_pid $plugin_pid 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sport=$(port); gport=$(port)
ingest=$("$BIN" token create --name seed --scope ingest --data-dir "$work/data" 2>/dev/null | tail -1)
read=$("$BIN" token create --name cloudforet --scope read --data-dir "$work/data" 2>/dev/null | tail -1)
"$BIN" server --listen "127.0.0.1:$sport" --data-dir "$work/data" --log-format json >"$work/server.log" 2>&1 &
server_pid=$!
until curl -fs "http://127.0.0.1:$sport/health" >/dev/null; do sleep 0.2; done
echo "$(nproc) cores, $(uname -r), $(date -u +%F); $N instances"
t0=$(date +%s.%N)
python3 bench/cloudforet_seed.py "http://127.0.0.1:$sport" "$ingest" "$N"
t1=$(date +%s.%N)
echo "seeded $((N * 480)) points in $(echo "$t1 - $t0" | bc) s"
"$BIN" cloudforet-plugin --listen "127.0.0.1:$gport" --server "http://127.0.0.1:$sport" --token "$read" \
  >"$work/plugin.log" 2>&1 &
plugin_pid=$!
sleep 1
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }   # utime + stime, at USER_HZ 100
hwm() { awk '/VmHWM/ {print $2 / 1024}' "/proc/$1/status"; }
s_cpu0=$(cpu $server_pid); p_cpu0=$(cpu $plugin_pid)
t0=$(date +%s.%N)
echo '[{"method": "collect", "options": {}, "secret_data": {}}]' |
  CLOUDFORET_COLLECT_TIMEOUT=3600 "$PY" crates/cli/tests/cloudforet/client.py "127.0.0.1:$gport" >"$work/collect.json"
t1=$(date +%s.%N)
s_cpu1=$(cpu $server_pid); p_cpu1=$(cpu $plugin_pid)
got=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(sum(1 for i in r["result"] if i.get("state","SUCCESS")=="SUCCESS") if r["ok"] else r)' "$work/collect.json")
wall=$(echo "$t1 - $t0" | bc)
echo "collect: $got resources in $wall s ($(echo "$got / $wall" | bc) resources/s)"
echo "plugin: CPU $(echo "$p_cpu1 - $p_cpu0" | bc) s, peak RSS $(hwm $plugin_pid) MiB"
echo "server: CPU $(echo "$s_cpu1 - $s_cpu0" | bc) s (answering the plugin's queries), peak RSS $(hwm $server_pid) MiB"
