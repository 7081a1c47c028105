#!/usr/bin/env bash
# Throughput of skymeter's Prometheus text parser on a ~10 MB node_exporter-like body, next
# to the crates.io parsers it was compared with and, when available, Prometheus' own
# `promtool check metrics` (which parses and lints the same body).
#
#   bench/prometheus_parse.sh            # 10 MB body, 10 rounds
#   PROM_BENCH_MB=50 bench/prometheus_parse.sh
#   NO_PROMTOOL=1 bench/prometheus_parse.sh   # skip promtool (and its install)
#
# promtool comes from Debian's `prometheus` package; when it is missing and we are root, the
# script installs it (apt-get update first).
set -euo pipefail
cd "$(dirname "$0")/.."

body="$(mktemp --suffix=.prom)"
trap 'rm -f "$body"' EXIT

echo "== cargo bench -p skymeter-plugins --bench prometheus_parse (release, with the crates.io parsers)"
PROM_BENCH_BODY="$body" cargo bench -p skymeter-plugins --features bench-compare --bench prometheus_parse

if [[ -n "${NO_PROMTOOL:-}" ]]; then
    exit 0
fi
if ! command -v promtool >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing promtool (Debian package prometheus)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    fi
fi
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not installed (apt-get install prometheus); skipping the comparison"
    exit 0
fi

size=$(stat -c %s "$body")
echo "== promtool check metrics < body ($(promtool --version 2>&1 | head -n1))"
# It lints too, and reports lint findings (exit 3 for "problems found"): time the parse, not
# the verdict.
runs=3
best=""
for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    promtool check metrics < "$body" > /dev/null 2>&1 || true
    end=$(date +%s%N)
    ns=$((end - start))
    if [[ -z "$best" ]] || (( ns < best )); then best=$ns; fi
done
awk -v size="$size" -v ns="$best" -v runs="$runs" 'BEGIN {
    printf "%-44s %8.1f MB/s  (best of %d runs, %.0f ms, %d bytes)\n",
        "promtool check metrics", size / 1e6 / (ns / 1e9), runs, ns / 1e6, size
}'
