#!/usr/bin/env bash
# The hostile queries of issue 12 against a release `skymeter server` (no tokens, loopback):
# each request's status, `errorType` and wall time (curl's time_total), then `/health` and
# the server's VmRSS (from /proc/<pid>/status) after all of them.
#
#   bench/hostile_queries.sh                 # builds the release binary first
#   SKIP_BUILD=1 bench/hostile_queries.sh    # with target/release/skymeter as it is
#
# The server holds 200 series × 60 samples (ingested first) and runs with default limits.
# A figure here is one run on whatever machine runs it: see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-target}"
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p skymeter >&2
fi
BIN="$TARGET/release/skymeter"
OUT="bench/out/hostile_queries"
rm -rf "$OUT" && mkdir -p "$OUT"
PORT="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
BASE="http://127.0.0.1:$PORT"
cat > "$OUT/server.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
data_dir = "$OUT/data"
no_auth = true
EOF
"$BIN" server -c "$OUT/server.toml" >"$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$BASE/health" >/dev/null && break; sleep 0.1; done

# 200 hosts × 60 one-minute samples ending at 2026-11-22T10:00:00Z.
python3 - "$BASE" <<'EOF'
import json, sys, urllib.request, uuid, datetime
base = sys.argv[1]
end = 1795341600
pts = []
for r in range(200):
    for i in range(60):
        ts = datetime.datetime.fromtimestamp(end - 60 * (59 - i), datetime.timezone.utc).isoformat()
        pts.append({"metric": "cpu.utilization", "unit": "percent", "stat": "avg", "period_s": 60,
                    "ts": ts, "value": (r * i) % 100,
                    "resource": {"provider": "host", "account": "", "region": "", "id": f"h{r}"}})
batch = {"schema": 1, "batch_id": str(uuid.uuid4()), "agent_id": "a", "task": "t",
         "collected_at": "2026-11-22T10:30:00Z", "points": pts}
req = urllib.request.Request(base + "/api/v1/ingest", json.dumps(batch).encode(),
                             {"content-type": "application/json"})
urllib.request.urlopen(req).read()
EOF
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
echo "VmRSS after seeding: $(rss) KiB"

CPU=cpu_utilization_percent
# name | path | form body (urlencoded by python below) -- each as three lines in a file
python3 - "$OUT/requests.tsv" <<'EOF'
import sys, urllib.parse
cpu = "cpu_utilization_percent"
sum4000 = "+".join(["1"] * 4000)
nested = "abs(" * 2000 + "1" + ")" * 2000
reqs = [
    ("query_range, start/end ±9.1e15 s", "/api/v1/query_range", {"query": "1", "start": "-9100000000000000", "end": "9100000000000000", "step": "1"}),
    ("1+1+…+1, 4,000 terms", "/api/v1/query", {"query": sum4000}),
    ("abs( nested 2,000 deep", "/api/v1/query", {"query": nested}),
    ("count_over_time(m[30d:1ms])", "/api/v1/query", {"query": f"count_over_time({cpu}[30d:1ms])"}),
    ("format_query, 4,000 terms", "/api/v1/format_query", {"query": sum4000}),
    ("1.2 MB regex matcher", "/api/v1/query", {"query": cpu + '{resource_id=~"' + "h" * 1200000 + '"}'}),
    ("40 KB regex matcher", "/api/v1/query", {"query": cpu + '{resource_id=~"' + "h|" * 20000 + '"}'}),
    ("regex compiling past 1 MiB", "/api/v1/query", {"query": cpu + '{resource_id=~"(\\\\pL{100}){100}"}'}),
    ("heavy range query, timeout=1ms", "/api/v1/query_range", {"query": f"sum(count_over_time({cpu}[1h:1s]))", "start": str(1795341600 - 660000), "end": "1795341600", "step": "60", "timeout": "1ms"}),
    ("ordinary: count(cpu)", "/api/v1/query", {"query": f"count({cpu})", "time": "1795341600"}),
]
with open(sys.argv[1], "w") as f:
    for name, path, form in reqs:
        f.write(f"{name}\t{path}\t{urllib.parse.urlencode(form)}\n")
EOF

printf '%-34s %6s %-10s %10s\n' request status errorType seconds
while IFS=$'\t' read -r name path body; do
  printf '%s' "$body" > "$OUT/body"
  res=$(curl -s -o "$OUT/answer.json" -w '%{http_code} %{time_total}' \
    -H 'content-type: application/x-www-form-urlencoded' --data-binary @"$OUT/body" "$BASE$path")
  etype=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("errorType","-"))' "$OUT/answer.json" 2>/dev/null || echo '?')
  printf '%-34s %6s %-10s %10s\n' "$name" ${res%% *} "$etype" ${res##* }
done < "$OUT/requests.tsv"

echo "/health: $(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")"
echo "VmRSS after the hostile queries: $(rss) KiB"
