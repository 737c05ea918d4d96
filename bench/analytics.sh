#!/usr/bin/env bash
# bench/analytics.sh: the analytics engine's benchmark (issue 12), one run.
#
#   bench/analytics.sh path/to/eventops
#                    (make bench-analytics: the optimised build, the stack's env exported)
#
# Runs bench/analytics.py against the optimised binary: (E) the engine's microbenchmark
# (build/bench_engine beside the binary, bench/engine.c: decode, engine and tick cost per event,
# no Kafka), then, in an e2e sandbox of its own (database, topics, groups, ports; removed
# afterwards), the real `eventops analytics` role: (1) events/s and events per CPU-second with
# transactions on over BENCH_A_KEYS (100k) keys of a hopping 5m/1m count rule, against a bare
# read_committed consumer of the same records in the same run; (2) p50/p95/p99/max from the
# 202 of a threshold-crossing batch to its summary on the topic under a background load;
# (3) RSS per 100k keys, and RSS sampled over a soak (BENCH_A_SOAK_S, 120; the acceptance's
# 30 minutes is BENCH_A_SOAK_S=1800). Settings: see `bench/analytics.py --help` (BENCH_A_*).
# Needs: the stack (EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS), kcat, psql, Debian's
# python3-confluent-kafka (scripts/deps.sh), perf only with BENCH_A_PERF=1. The summary table
# goes to stderr, one JSON line to stdout; nothing is appended anywhere (docs/benchmarks.md
# holds results pasted by hand). Numbers are only as quiet as the machine.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
(($# == 1)) || usage
[[ $1 == -h || $1 == --help ]] && usage
[[ -x $1 ]] || { echo "bench: $1 is not an executable (run make build)" >&2; exit 2; }
bin=$(realpath -- "$1")
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

hint='not set: run through make bench-analytics, or eval "$(scripts/stack.sh env)"'
: "${EVENTOPS_PG_DSN:?$hint}"
: "${EVENTOPS_KAFKA_BROKERS:?$hint}"
for tool in kcat psql; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh)"
done
[[ ${BENCH_A_PERF:-0} == 1 ]] && { command -v perf >/dev/null || die "BENCH_A_PERF=1 needs perf"; }
[[ -x $(dirname -- "$bin")/bench_engine ]] ||
    say "note: $(dirname -- "$bin")/bench_engine not found: no engine microbenchmark"
# Debian's python3 has python3-confluent-kafka; another python3 first on PATH (pyenv) gets
# Debian's dist-packages appended by tests/e2e/kafkatest.py.
python=python3
if ! python3 -c 'import confluent_kafka' 2>/dev/null && [[ -x /usr/bin/python3 ]]; then
    python=/usr/bin/python3
fi

EVENTOPS_BIN=$bin exec "$python" "$root/bench/analytics.py"
