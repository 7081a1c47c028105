#!/usr/bin/env bash
# Soak: a release `skymeter server` with tokens, 20 agents (`skymeter run`, one task every
# second through the `server` publisher and its durable buffer), the server SIGKILLed and
# restarted every 2 minutes, schemathesis hammering the API beside them. At the end:
#
#   - points produced (the agents' own record: each task also publishes every batch to a
#     `file` publisher) == points stored (read back through the Prometheus API), per series
#     and timestamp, with 0 duplicates and 0 missing;
#   - p99 ingest latency, from the server's `skymeter_ingest_duration_seconds` histogram
#     (scraped just before each kill and at the end, buckets summed over the lifetimes);
#   - the server's RSS just after the first start and at the end.
#
# Usage: bench/soak.sh                 (10 minutes; figures go to stdout and $SOAK_DIR)
#   SOAK_SECONDS=120        run time (default 600)
#   SOAK_AGENTS=20          agents
#   SOAK_KILL_EVERY=120     seconds between SIGKILLs of the server (0: never)
#   SOAK_POINTS_PER_RUN=5   points each agent's command prints per run (5 series per agent)
#   SOAK_SCHEMATHESIS=0     run without schemathesis (default: with it when installed)
#   SOAK_CARGO_ARGS="--no-default-features"  extra `cargo build --release` arguments
#   SOAK_BIN=path           use this skymeter binary instead of building one
#   SOAK_DIR=path           keep everything here (default: a new /tmp/skymeter-soak.*)
#
# Everything listens on 127.0.0.1. Exit status 0 only when produced == stored, no duplicate,
# no batch rejected or left undelivered, and the server came back after every kill.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SOAK_SECONDS:-600}"
agents="${SOAK_AGENTS:-20}"
kill_every="${SOAK_KILL_EVERY:-120}"
per_run="${SOAK_POINTS_PER_RUN:-5}"
cache="${SKYMETER_CACHE:-$HOME/.cache/skymeter}"
schemathesis="${SKYMETER_SCHEMATHESIS:-$cache/venv/bin/schemathesis}"
case "${SOAK_SCHEMATHESIS:-1}" in 0 | false | no) schemathesis="" ;; esac
if [ -n "$schemathesis" ] && [ ! -x "$schemathesis" ]; then
  echo "soak: schemathesis not found at $schemathesis (scripts/test installs it); running without it" >&2
  schemathesis=""
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is needed" >&2; exit 1; }
done

# --- the binary (release) ---
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
if [ -n "${SOAK_BIN:-}" ]; then
  bin="$SOAK_BIN"
else
  # shellcheck disable=SC2086
  cargo build --release --locked -q -p skymeter ${SOAK_CARGO_ARGS:-}
  bin="$CARGO_TARGET_DIR/release/skymeter"
fi
[ -x "$bin" ] || { echo "soak: no binary at $bin" >&2; exit 1; }

work="${SOAK_DIR:-$(mktemp -d /tmp/skymeter-soak.XXXXXX)}"
mkdir -p "$work"
echo "soak: $agents agents × $per_run points/s for ${seconds}s, server SIGKILLed every ${kill_every}s, schemathesis $([ -n "$schemathesis" ] && echo on || echo off); files in $work"

# --- cleanup: only the processes started here, by pid ---
pids=()
server_pid=""
st_loop_pid=""
cleanup() {
  [ -n "$st_loop_pid" ] && kill "$st_loop_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
data="$work/server"

token() {
  "$bin" token create --data-dir "$data" --name "$1" "${@:2}" 2>>"$work/tokens.log" ||
    { echo "soak: token create failed:" >&2; cat "$work/tokens.log" >&2; exit 1; }
}
ingest_token=$(token soak-agents --scope ingest)
read_token=$(token soak-reader --scope read)
st_token=$(token soak-schemathesis --scope read --scope ingest)

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

starts=0
start_server() {
  SKYMETER_LOG=warn "$bin" server --listen "127.0.0.1:$port" --data-dir "$data" >>"$work/server.log" 2>&1 &
  server_pid=$!
  starts=$((starts + 1))
  local deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null "$url/health"; do
    if ! kill -0 "$server_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "soak: the server did not come up (start $starts); see $work/server.log" >&2
      tail -20 "$work/server.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

snapshots=0
scrape() {
  snapshots=$((snapshots + 1))
  curl -fsS -H "Authorization: Bearer $read_token" "$url/metrics" >"$work/metrics-$snapshots.txt" ||
    echo "soak: /metrics scrape $snapshots failed" >&2
}

start_server
sleep 2
rss_start=$(rss_kb "$server_pid")

# --- the agents ---
for a in $(seq -w 1 "$agents"); do
  dir="$work/agent$a"
  mkdir -p "$dir"
  # The command prints the same $per_run points every run: one series each per agent.
  for i in $(seq 1 "$per_run"); do
    echo "{\"metric\": \"soak.value\", \"value\": $i, \"labels\": {\"soak_agent\": \"$a\", \"soak_i\": \"$i\"}}"
  done >"$dir/points.jsonl"
  cat >"$dir/task.toml" <<EOF
[agent]
id = "soak-$a"
data_dir = "$dir/data"

[[task]]
name = "soak"
schedule = { every = "1s" }
collect = [{ plugin = "exec", command = ["cat", "$dir/points.jsonl"], format = "json_lines", resource = { provider = "custom", id = "soak-$a", kind = "host" } }]
publish = [
  { plugin = "server", url = "$url", token = "\${SOAK_TOKEN}" },
  { plugin = "file", path = "$dir/produced.jsonl" },
]
EOF
  SOAK_TOKEN="$ingest_token" "$bin" validate -c "$dir/task.toml" >"$dir/validate.log" 2>&1 || { echo "soak: agent $a's task file is invalid:" >&2; cat "$dir/validate.log" >&2; exit 1; }
  SOAK_TOKEN="$ingest_token" SKYMETER_LOG=warn "$bin" run -c "$dir/task.toml" >"$dir/agent.log" 2>&1 &
  pids+=($!)
done

# --- schemathesis beside it, run after run until the end ---
if [ -n "$schemathesis" ]; then
  (
    # schemathesis keeps a cache in its working directory: keep it out of the source tree.
    cd "$work"
    # A TERM stops the run under way too (its pid, not a name).
    child=""
    trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM
    n=0
    while :; do
      n=$((n + 1))
      "$schemathesis" run "$url/api/openapi.json" -H "Authorization: Bearer $st_token" \
        --checks all --max-examples 20 --request-timeout 10 --max-time 60 \
        >"$work/schemathesis-$n.log" 2>&1 &
      child=$!
      wait "$child" || true
      sleep 1
    done
  ) &
  st_loop_pid=$!
fi

# --- the soak: kill and restart the server on schedule ---
begin=$SECONDS
next_kill=$((begin + kill_every))
kills=0
while [ $((SECONDS - begin)) -lt "$seconds" ]; do
  sleep 1
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "soak: an agent (pid $p) died; see $work/agent*/agent.log" >&2; exit 1; }
  done
  if [ "$kill_every" -gt 0 ] && [ $SECONDS -ge $next_kill ] && [ $((SECONDS - begin)) -lt "$seconds" ]; then
    scrape
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    kills=$((kills + 1))
    echo "soak: $((SECONDS - begin))s: server SIGKILLed ($kills), restarting"
    start_server
    next_kill=$((SECONDS + kill_every))
  fi
done

# --- the end: stop schemathesis, stop the agents (they flush their buffers), read back ---
if [ -n "$st_loop_pid" ]; then
  kill "$st_loop_pid" 2>/dev/null || true
  wait "$st_loop_pid" 2>/dev/null || true
  st_loop_pid=""
fi
echo "soak: $((SECONDS - begin))s: stopping the agents (each flushes its buffer, up to 30 s)"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do
  for _ in $(seq 1 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && { echo "soak: agent pid $p did not stop in 60 s; killing it" >&2; kill -KILL "$p"; }
  wait "$p" 2>/dev/null || true
done
pids=()
rss_end=$(rss_kb "$server_pid")
scrape

range=$((SECONDS - begin + 120))
curl -fsS -G -H "Authorization: Bearer $read_token" "$url/api/v1/query" \
  --data-urlencode "query={__name__=~\"soak_value.*\"}[${range}s]" \
  --data-urlencode "time=$(date +%s)" >"$work/stored.json"

python3 - "$work" "$agents" "$kills" "$starts" "$rss_start" "$rss_end" "$seconds" "$per_run" <<'EOF'
import glob, json, os, re, sys
from datetime import datetime

work, agents, kills, starts, rss_start, rss_end, seconds, per_run = sys.argv[1:]
agents, kills, starts, seconds, per_run = map(int, (agents, kills, starts, seconds, per_run))
ok = True

def ms(ts):
    if isinstance(ts, (int, float)):
        return round(ts * 1000)
    return round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)

produced = {}
for path in glob.glob(os.path.join(work, "agent*", "produced.jsonl*")):
    for line in open(path):
        r = json.loads(line)
        if r.get("type") != "point" or r.get("metric") != "soak.value":
            continue
        key = (r["labels"]["soak_agent"], r["labels"]["soak_i"], ms(r["ts"]))
        produced[key] = produced.get(key, 0) + 1
produced_points = sum(produced.values())
produced_dups = sum(n - 1 for n in produced.values() if n > 1)

body = json.load(open(os.path.join(work, "stored.json")))
if body.get("status") != "success":
    print("soak: the read-back query failed:", json.dumps(body)[:500]); sys.exit(1)
stored = {}
series = 0
for s in body["data"]["result"]:
    series += 1
    m = s["metric"]
    for t, _ in s.get("values", []):
        key = (m.get("soak_agent"), m.get("soak_i"), ms(float(t)))
        stored[key] = stored.get(key, 0) + 1
stored_points = sum(stored.values())
duplicates = sum(n - 1 for n in stored.values() if n > 1)
missing = len(set(produced) - set(stored))
extra = len(set(stored) - set(produced))

undelivered = rejected = 0
for d in glob.glob(os.path.join(work, "agent*", "data", "buffer", "*")):
    undelivered += len(glob.glob(os.path.join(d, "*.json.gz")))
    rejected += len(glob.glob(os.path.join(d, "rejected", "*.json.gz")))

# Ingest latency: the server's histogram, summed over every lifetime of the server.
buckets = {}
for path in glob.glob(os.path.join(work, "metrics-*.txt")):
    for line in open(path):
        m = re.match(r'skymeter_ingest_duration_seconds_bucket\{.*le="([^"]+)"\} (\S+)', line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets[le] = buckets.get(le, 0) + float(m.group(2))
def quantile(q):
    """As PromQL's histogram_quantile: linear within the bucket the rank falls in."""
    total = buckets.get(float("inf"), 0)
    if not total:
        return None, None
    rank, prev_le, prev_cum = q * total, 0.0, 0.0
    for le in sorted(buckets):
        if buckets[le] >= rank:
            if le == float("inf"):
                return prev_le, (prev_le, le)
            return prev_le + (le - prev_le) * (rank - prev_cum) / max(buckets[le] - prev_cum, 1e-9), (prev_le, le)
        prev_le, prev_cum = le, buckets[le]
    return None, None
(p50, b50), (p99, b99) = quantile(0.5), quantile(0.99)

# Schemathesis beside it: cases generated and its findings, per check (its own summary).
st_logs = sorted(glob.glob(os.path.join(work, "schemathesis-*.log")))
st_cases, st_findings = 0, {}
for path in st_logs:
    text = open(path, errors="replace").read()
    st_cases += sum(int(n) for n in re.findall(r"(\d+) generated", text))
    for code, what, n in re.findall(r"❌ (ST\d+) ([^:\n]+): (\d+)", text):
        st_findings[f"{code} {what}"] = st_findings.get(f"{code} {what}", 0) + int(n)
server_errors = sum(n for k, n in st_findings.items() if "server error" in k.lower())

def fmt(v, bounds):
    if v is None:
        return "n/a"
    lo, hi = bounds
    return f"{v * 1000:.1f} ms (bucket {lo * 1000:g}–{hi * 1000:g} ms)"
print()
print(f"soak: {seconds} s, {agents} agents × {per_run} series at 1 s, server SIGKILLed {kills} times ({starts} starts)")
print(f"  points produced (agents' file publishers): {produced_points} ({len(produced)} distinct series × timestamp)")
print(f"  points stored (read back, {series} series):  {stored_points}")
print(f"  duplicates stored: {duplicates}; produced but missing: {missing}; stored but never produced: {extra}")
print(f"  batches left undelivered: {undelivered}; rejected by the server: {rejected}")
print(f"  ingest latency (server histogram, {int(buckets.get(float('inf'), 0))} batches): p50 {fmt(p50, b50)}, p99 {fmt(p99, b99)}")
print(f"  server RSS: {int(rss_start) / 1024:.1f} MiB after start, {int(rss_end) / 1024:.1f} MiB at the end")
if st_logs:
    found = ", ".join(f"{k}: {n}" for k, n in sorted(st_findings.items())) or "none"
    print(f"  schemathesis beside it: {len(st_logs)} runs, {st_cases} cases; server errors (5xx): {server_errors}; its findings: {found}")
if produced_points == 0 or produced_points != stored_points or duplicates or missing or extra or undelivered or rejected or produced_dups:
    ok = False
print("soak: PASS" if ok else "soak: FAIL")
sys.exit(0 if ok else 1)
EOF
