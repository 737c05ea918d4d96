#!/usr/bin/env bash
# bench/auth.sh: what authentication and rate limiting cost the collector, and how fast the
# token endpoint answers.
#
#   bench/auth.sh path/to/eventops      (stack env exported: eval "$(scripts/stack.sh env)")
#
# Collector alone (events wait in Kafka, nothing is stored), loadgen sending BENCH_EVENTS events
# in batches of BENCH_BATCH over BENCH_CONNECTIONS connections, BENCH_RUNS runs per setting,
# median reported. Settings, in turn:
#   wk-local   write key, rate limiter without Redis (EVENTOPS_REDIS_URL empty: local table)
#   wk-redis   write key, limits shared through Redis (one script call per request)
#   jwt-redis  EdDSA access token (signature, claims, client check), Redis limits
# Limits are set far above the load so that every request is admitted and the limiter is still
# consulted. Then the token endpoint: BENCH_TOKENS sequential client-credentials requests
# (argon2id verification each), tokens/s and latency percentiles.
# Work (database eo_bench_auth_<id>, topics eo-bench-auth-<id>.*, key folder) is removed at the
# end. The summary goes to stderr, one JSON line to stdout.
set -euo pipefail
export LC_ALL=C
(($# == 1)) && [[ -x $1 ]] || {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}
bin=$(realpath -- "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_EVENTS:-200000} BATCH=${BENCH_BATCH:-100} CONNS=${BENCH_CONNECTIONS:-16}
RUNS=${BENCH_RUNS:-3} TOKENS=${BENCH_TOKENS:-100}
: "${EVENTOPS_PG_DSN:?not set: eval \"\$(scripts/stack.sh env)\"}"
id=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d /tmp/eo-bench-auth.XXXXXX)
db=eo_bench_auth_$id
admin_dsn=$EVENTOPS_PG_DSN
pids=()
say() { printf 'bench-auth: %s\n' "$*" >&2; }
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$admin_dsn" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql "$admin_dsn" -qc "CREATE DATABASE $db" >/dev/null
export EVENTOPS_PG_DSN="$admin_dsn dbname=$db"
export EVENTOPS_KAFKA_EVENTS_TOPIC=eo-bench-auth-$id.events
export EVENTOPS_KAFKA_DLQ_TOPIC=eo-bench-auth-$id.dlq
for t in SUMMARIES WINDOWS LATE CHANGELOG; do
    export "EVENTOPS_ANALYTICS_${t}_TOPIC=eo-bench-auth-$id.${t,,}"
done
export EVENTOPS_AUTH_KEY_DIR=$work/keys EVENTOPS_LOG_LEVEL=warn
export EVENTOPS_RATE_LIMIT_RATE=10000000 EVENTOPS_RATE_LIMIT_BURST=10000000
export EVENTOPS_AUTH_CLIENT_RATE=100000 EVENTOPS_AUTH_CLIENT_BURST=100000
export EVENTOPS_AUTH_IP_RATE=100000 EVENTOPS_AUTH_IP_BURST=100000
"$bin" migrate >/dev/null 2>&1
"$bin" admin create-topics --json >/dev/null
"$bin" admin create-signing-key --json >/dev/null
wk=$("$bin" admin create-tenant bench --json | sed -n 's/.*"writeKey":"\([^"]*\)".*/\1/p')
client=$("$bin" admin create-client --tenant bench --scopes events:write --json)
cid=$(sed -n 's/.*"clientId":"\([^"]*\)".*/\1/p' <<<"$client")
csecret=$(sed -n 's/.*"clientSecret":"\([^"]*\)".*/\1/p' <<<"$client")
cc=${CC:-cc}
"$cc" -O2 -std=c17 -o "$work/loadgen" "$root/bench/loadgen.c"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done
    say "role on :$1 not ready"; exit 1
}

auth_port=$(free_port)
EVENTOPS_AUTH_PORT=$auth_port "$bin" auth 2>"$work/auth.log" &
pids+=($!)
wait_ready "$auth_port"
token() {
    curl -s -u "$cid:$csecret" -d grant_type=client_credentials \
        "http://127.0.0.1:$auth_port/oauth/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

# Runs loadgen against a fresh collector started with the extra environment "$@"; prints the
# accepted events/s, latency p50 and p99 (ms), and the collector's CPU time per request (µs:
# user + system, from /proc, so that a noisy machine's steal time does not count).
run_collector() {
    local key=$1 port pid out
    shift
    port=$(free_port)
    env EVENTOPS_COLLECTOR_PORT="$port" "$@" "$bin" collector 2>>"$work/collector.log" &
    pid=$!
    wait_ready "$port"
    out=$(LOADGEN_WRITE_KEY=$key "$work/loadgen" --port "$port" --events "$N" --batch "$BATCH" \
        --connections "$CONNS" --quiet) || { say "loadgen failed: $out"; exit 1; }
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c 'import json,os,sys; d=json.loads(sys.argv[1]); print(d["accepted_events_per_s"], d["latency_p50_ms"], d["latency_p99_ms"], round(int(sys.argv[2]) / os.sysconf("SC_CLK_TCK") * 1e6 / (d["events_accepted"] / int(sys.argv[3])), 1))' "$out" "$ticks" "$BATCH"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A rate p50 p99 cpu
for setting in wk-local wk-redis jwt-redis; do
    : >"$work/$setting"
    for _ in $(seq "$RUNS"); do
        case $setting in
        wk-local) run_collector "$wk" EVENTOPS_REDIS_URL= ;;
        wk-redis) run_collector "$wk" ;;
        jwt-redis) run_collector "$(token)" ;;
        esac >>"$work/$setting"
    done
    rate[$setting]=$(cut -d' ' -f1 "$work/$setting" | median)
    p50[$setting]=$(cut -d' ' -f2 "$work/$setting" | median)
    p99[$setting]=$(cut -d' ' -f3 "$work/$setting" | median)
    cpu[$setting]=$(cut -d' ' -f4 "$work/$setting" | median)
    say "$setting: $(tr '\n' ';' <"$work/$setting") median ${rate[$setting]} events/s"
done

# Token endpoint: sequential requests, each a full argon2id verification.
tok_stats=$(python3 - "$auth_port" "$cid" "$csecret" "$TOKENS" <<'PY'
import base64, http.client, json, sys, time
port, cid, secret, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = "Basic " + base64.b64encode(("%s:%s" % (cid, secret)).encode()).decode()
conn = http.client.HTTPConnection("127.0.0.1", port)
lat = []
t0 = time.monotonic()
for _ in range(n):
    s = time.monotonic()
    conn.request("POST", "/oauth/token", "grant_type=client_credentials",
                 {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
    lat.append((time.monotonic() - s) * 1000)
el = time.monotonic() - t0
lat.sort()
print("%.1f %.1f %.1f" % (n / el, lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]))
PY
)
read -r tok_rate tok_p50 tok_p99 <<<"$tok_stats"

{
    printf '\n%-10s %14s %10s %10s %8s %16s %10s\n' setting "events/s" "p50 ms" "p99 ms" "ratio" \
        "CPU us/request" "CPU ratio"
    for s in wk-local wk-redis jwt-redis; do
        printf '%-10s %14s %10s %10s %8.3f %16s %10.3f\n' "$s" "${rate[$s]}" "${p50[$s]}" \
            "${p99[$s]}" "$(awk -v a="${rate[$s]}" -v b="${rate[wk-local]}" 'BEGIN {print a / b}')" \
            "${cpu[$s]}" "$(awk -v a="${cpu[$s]}" -v b="${cpu[wk-local]}" 'BEGIN {print a / b}')"
    done
    printf 'token endpoint: %s tokens/s sequential, p50 %s ms, p99 %s ms\n' "$tok_rate" "$tok_p50" \
        "$tok_p99"
} >&2
printf '{"events":%s,"batch":%s,"connections":%s,"runs":%s,"wk_local":%s,"wk_redis":%s,"jwt_redis":%s,"cpu_us_per_request":{"wk_local":%s,"wk_redis":%s,"jwt_redis":%s},"tokens_per_s":%s,"token_p50_ms":%s,"token_p99_ms":%s}\n' \
    "$N" "$BATCH" "$CONNS" "$RUNS" "${rate[wk-local]}" "${rate[wk-redis]}" "${rate[jwt-redis]}" \
    "${cpu[wk-local]}" "${cpu[wk-redis]}" "${cpu[jwt-redis]}" \
    "$tok_rate" "$tok_p50" "$tok_p99"
