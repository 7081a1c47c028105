#!/usr/bin/env bash
# FOCUS export (issue 14): GET /api/v1/costs/export of N stored cost lines to CSV and to
# Parquet, rows per second and the server process's peak RSS. The store is seeded by one
# process, and each export runs the real server in a fresh one (so its peak RSS is the
# export's). Figures go to docs/benchmarks.md, "FOCUS export (issue 14)".
#
#   bench/focus_export.sh                 # 10,000,000 lines
#   bench/focus_export.sh 1000000 3000000 # several sizes: RSS should not grow with them
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skymeter/target}"
cargo build --release --locked -q -p skymeter-server --example focus_export_bench
BIN="$CARGO_TARGET_DIR/release/examples/focus_export_bench"
OUT="bench/out/focus_export"
mkdir -p "$OUT"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000000)
echo "$(nproc) cores, $(uname -r), $(date -u +%F)"
for n in "${sizes[@]}"; do
  dir="$OUT/store-$n"
  if [ ! -f "$dir/.seeded" ]; then
    rm -rf "$dir"
    "$BIN" seed "$dir" "$n"
    touch "$dir/.seeded"
  fi
  for format in csv parquet; do
    "$BIN" export "$dir" "$format"
  done
done
