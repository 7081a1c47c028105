#!/usr/bin/env bash
# Issue 16's scale-out benchmark: server ingest in scale-out mode (`--metadata` on the
# machine's PostgreSQL, `--tsdb` on a VictoriaMetrics of its own) against the embedded
# mode, same data, same load, one after the other (release builds).
#
# Two loads, so that per-point and per-batch costs can be told apart (docs/scaling.md):
#   big:   2,000 series x 500 points, 10,000 points per batch (100 batches)
#   small: 20,000 series x 5 points, 100 points per batch (1,000 batches of about one agent's
#          run each, as agents send them)
# Reports points/s, batches/s and CPU microseconds per point and per batch: of the
# skymeter server, and in scale-out mode of PostgreSQL (every postgres process) and
# VictoriaMetrics too (/proc/<pid>/stat, utime + stime).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out/scaleout
rm -rf "$OUT" && mkdir -p "$OUT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
command -v victoria-metrics >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null; }
# BENCH_CARGO_FLAGS: e.g. `--no-default-features` (no cloud SDKs: a faster build, same server).
cargo build --release --locked -q ${BENCH_CARGO_FLAGS:-} -p skymeter -p skymeter-loadgen
BIN="$CARGO_TARGET_DIR/release/skymeter"
LOAD="$CARGO_TARGET_DIR/release/skymeter-loadgen"
TICK=$(getconf CLK_TCK)
DB="skymeter_bench_$$"
wait_http() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
# CPU seconds (utime + stime) of the given pids, children included.
cpu() { local t=0; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat"))); done; awk -v t="$t" -v k="$TICK" 'BEGIN{printf "%.3f", t/k}'; }
pg_pids() { pgrep -d' ' -x postgres || pgrep -d' ' postgres || true; }

VM=""; SKY=""
cleanup() { kill $VM $SKY 2>/dev/null || true; psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# run MODE LOAD: starts the server, sends the load, prints one JSON line of figures.
run() {
  local mode=$1 load=$2 args=()
  case $load in
    big) args=(--series 2000 --points 500 --batch 10000 --long-points 0) ;;
    small) args=(--series 20000 --points 5 --batch 100 --long-points 0) ;;
  esac
  local data="$OUT/$mode-$load"
  if [ "$mode" = scaleout ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null
    victoria-metrics -storageDataPath="$data/vm" -httpListenAddr=127.0.0.1:18428 -retentionPeriod=100y -search.latencyOffset=0s > "$data-vm.log" 2>&1 &
    VM=$!
    wait_http http://127.0.0.1:18428/health
    "$BIN" server --listen 127.0.0.1:18080 --data-dir "$data/sky" --no-auth \
      --metadata "postgres://postgres@127.0.0.1:5432/$DB" \
      --tsdb "remote-write=http://127.0.0.1:18428/api/v1/write,query=http://127.0.0.1:18428" > "$data-sky.log" 2>&1 &
  else
    "$BIN" server --listen 127.0.0.1:18080 --data-dir "$data/sky" --no-auth > "$data-sky.log" 2>&1 &
  fi
  SKY=$!
  wait_http http://127.0.0.1:18080/health
  local s0 p0 v0 s1 p1 v1
  s0=$(cpu $SKY); p0=$(cpu $(pg_pids)); v0=$( [ -n "$VM" ] && cpu $VM || echo 0)
  "$LOAD" ingest --target skymeter --url http://127.0.0.1:18080 "${args[@]}" > "$OUT/$mode-$load.json"
  if [ "$mode" = scaleout ]; then
    # Until VictoriaMetrics has every sample: the remote-write queue delivers after the
    # batches are acknowledged.
    local want got
    want=$(sed -n 's/.*"points":\([0-9]*\).*/\1/p' "$OUT/$mode-$load.json")
    for _ in $(seq 600); do
      # VictoriaMetrics writes large counts as `1e+06`: parsed as a number.
      got=$(curl -sf 'http://127.0.0.1:18428/api/v1/query?query=sum(count_over_time(cpu_utilization_percent%5B3650d%5D))' |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' || echo 0)
      [ "${got:-0}" -ge "$want" ] && break
      sleep 1
    done
    echo "VictoriaMetrics holds ${got:-0} of $want points" >&2
  fi
  s1=$(cpu $SKY); p1=$(cpu $(pg_pids)); v1=$( [ -n "$VM" ] && cpu $VM || echo 0)
  kill -TERM $SKY; wait $SKY 2>/dev/null || true; SKY=""
  if [ -n "$VM" ]; then kill $VM; wait $VM 2>/dev/null || true; VM=""; fi
  awk -v f="$(cat "$OUT/$mode-$load.json")" -v s="$(awk -v a="$s0" -v b="$s1" 'BEGIN{print b-a}')" \
      -v p="$(awk -v a="$p0" -v b="$p1" 'BEGIN{print b-a}')" -v v="$(awk -v a="$v0" -v b="$v1" 'BEGIN{print b-a}')" \
      -v mode="$mode" -v kind="$load" 'BEGIN{printf "{\"mode\":\"%s\",\"load\":\"%s\",\"server_cpu_s\":%.3f,\"postgres_cpu_s\":%.3f,\"vm_cpu_s\":%.3f,\"loadgen\":%s}\n", mode, kind, s, (mode=="scaleout"?p:0), v, f}'
}

for load in big small; do
  for mode in embedded scaleout; do
    run "$mode" "$load" | tee -a "$OUT/results.jsonl"
  done
done

python3 - "$OUT/results.jsonl" <<'EOF' | tee "$OUT/result.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| load | mode | points/s | batches/s | server µs/point | server µs/batch | PostgreSQL µs/batch | VictoriaMetrics µs/point |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    g = r["loadgen"]
    pts, reqs = g["points"], g["requests"]
    print(f"| {r['load']} | {r['mode']} | {g['points_per_s']:,.0f} | {reqs / g['seconds']:,.0f} | "
          f"{r['server_cpu_s'] * 1e6 / pts:.2f} | {r['server_cpu_s'] * 1e6 / reqs:,.0f} | "
          f"{r['postgres_cpu_s'] * 1e6 / reqs:,.0f} | {r['vm_cpu_s'] * 1e6 / pts:.2f} |")
EOF
