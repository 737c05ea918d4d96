#!/usr/bin/env bash
# Fuzzes FUZZER for SECONDS, starting from CORPUS (and the optional SEED_DIRS of other
# harnesses), writing new inputs to WORK (not to the repo).
#   run_fuzzer.sh FUZZER CORPUS WORK SECONDS [SEED_DIR...]
set -euo pipefail
fuzzer=$1 corpus=$2 work=$3 seconds=$4
shift 4
mkdir -p "$work"
for dir in "$corpus" "$@"; do
    cp -n "$dir"/* "$work"/ 2>/dev/null || true
done
cd "$work"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work"
