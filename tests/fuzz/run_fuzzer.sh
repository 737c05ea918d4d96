#!/usr/bin/env bash
# Fuzzes FUZZER for SECONDS, starting from CORPUS, writing new inputs to WORK (not to the repo).
set -euo pipefail
fuzzer=$1 corpus=$2 work=$3 seconds=$4
mkdir -p "$work"
cp -n "$corpus"/* "$work"/ 2>/dev/null || true
cd "$work"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work"
