#!/usr/bin/env bash
# Regenerates crates/cli/agent.order: the functions a running host agent executes, which the
# link places together so that the agent's code fills few pages (crates/cli/build.rs).
# Run it after changes to the agent's path (startup, the runner, the host collector, the
# file and server publishers), then rebuild and re-run bench/host_footprint.sh.
#
#   bench/agent_order.sh          # needs valgrind (Debian package)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
cargo build --release --locked -q -p skymeter
BIN="$CARGO_TARGET_DIR/release/skymeter"
OUT="bench/out/agent_order"
rm -rf "$OUT" && mkdir -p "$OUT"
cat > "$OUT/agent.toml" <<TOML
[agent]
id = "order"
data_dir = "$OUT/data"

[[task]]
name = "host"
schedule = { every = "10s" }
collect = [{ plugin = "host" }]
publish = [{ plugin = "file", path = "$OUT/out.jsonl" }]
TOML
# One run to the end (--once), and the long-running agent through a few runs and a SIGTERM.
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$OUT/once.cg" \
  "$BIN" run -c "$OUT/agent.toml" --once > /dev/null 2> "$OUT/once.log"
timeout -s TERM 35 valgrind --tool=callgrind --demangle=no --callgrind-out-file="$OUT/agent.cg" \
  "$BIN" run -c "$OUT/agent.toml" > /dev/null 2> "$OUT/agent.log" || true
# Every function named in either profile, first seen first; callgrind's pseudo-entries
# ("(below main)", bare addresses) and names with spaces are not symbols.
python3 - "$OUT/once.cg" "$OUT/agent.cg" > crates/cli/agent.order <<'PY'
import re, sys
seen = {}
for path in sys.argv[1:]:
    names = {}
    for line in open(path):
        m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.strip())
        if not m:
            continue
        i, n = m.groups()
        if n:
            names[i] = n
        n = names.get(i)
        if n and " " not in n and not n.startswith(("0x", "(")):
            seen.setdefault(n, None)
print("\n".join(seen))
PY
echo "crates/cli/agent.order: $(wc -l < crates/cli/agent.order) functions"
