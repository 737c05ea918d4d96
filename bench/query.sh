#!/usr/bin/env bash
# bench/query.sh: the query role's benchmark, against the data set of bench/query_load.sh.
#
#   bench/query.sh path/to/eventops     (stack env exported: eval "$(scripts/stack.sh env)")
#
# Needs the database BENCH_Q_DB (eo_qbench) fully loaded by bench/query_load.sh (it refuses
# otherwise); it adds only an OAuth client (revoked at the end) and, with the cache on, Redis
# entries under the benchmark tenant's keys (deleted at the end). Every request is made as
# qbench-big (85% of the events; the 30-day window below holds >= 10M of them).
# Roles started here, on free loopback ports: auth (to mint one events:read token) and query
# (EVENTOPS_QUERY_THREADS as set, default 4; statement timeout raised to 10 min so that slow
# answers are timed rather than cut at 30 s).
#
# (1) Count and trend under concurrent load: wrk (-t 2) rotating over a list of URLs, at
#     BENCH_Q_CONCURRENCY connections (list, default "1 8"), BENCH_Q_DURATION seconds (15) each:
#       uncached  EVENTOPS_QUERY_CACHE=off; BENCH_Q_URLS (4000) distinct random requests per
#                 endpoint: a random range (1 minute to 100 days, anywhere in the data), edges
#                 whole days/hours/minutes or arbitrary microseconds (those read events for the
#                 sub-minute slices), one of the 20 types or all, and for trends an interval
#                 (minute/hour/day/week/month, at most 1500 buckets) and a zone (UTC, Berlin,
#                 New York, Kolkata, Lord Howe). So PostgreSQL keeps no answer, only its pages:
#                 rollups are small enough (~2 GB) to live in memory, as on a real server.
#       cached    cache on (Redis of EVENTOPS_REDIS_URL); 50 closed ranges per endpoint, each
#                 requested once before the clock starts, so the run is all hits (counted).
#     wrk is closed-loop: the latency is per request at that concurrency (queueing included).
# (2) Unique users, breakdown, funnel and retention over the last 30 days of the data (and, for
#     comparison, a breakdown of an untracked path, types and three raw-event pages), cache
#     off, sequential, BENCH_Q_RUNS (5) each:
#       cold  before each run the operating system's cache of the database's files is dropped
#             (posix_fadvise DONTNEED on base/<db oid>/*: this database only; PostgreSQL's own
#             shared_buffers cannot be emptied without a restart, and may still hold up to
#             shared_buffers of it);
#       warm  the same request again, data cached.
#     Median and max of the wall time seen by the client (curl). A query whose first run takes
#     over BENCH_Q_SLOW_S (10) seconds gets 3 runs of each kind (time budget).
# (3) EXPLAIN (ANALYZE, BUFFERS) of the exact statements of (2), taken by auto_explain in a
#     second query role (EXPLAIN output sent to it as NOTICEs, which libpq writes to its
#     stderr); the plans go to $BENCH_Q_PLANS (default /tmp/qbench-plans.txt), a one-line
#     summary of each (top node, time, buffers hit/read, temp) is printed.
# Summary table on stderr, one JSON line on stdout. Settings: BENCH_Q_DB, BENCH_Q_CONCURRENCY,
# BENCH_Q_DURATION, BENCH_Q_URLS, BENCH_Q_RUNS, BENCH_Q_SKIP (comma list of heavy query names to
# skip), BENCH_Q_PLANS, BENCH_Q_PHASES (load,heavy,explain: which of (1), (2), (3) to run).
set -euo pipefail
export LC_ALL=C

(($# == 1)) && [[ -x $1 ]] || {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}
bin=$(realpath -- "$1")
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
DB=${BENCH_Q_DB:-eo_qbench}
CONCS=${BENCH_Q_CONCURRENCY:-1 8}
DUR=${BENCH_Q_DURATION:-15}
NURLS=${BENCH_Q_URLS:-4000}
RUNS=${BENCH_Q_RUNS:-5}
SLOW_S=${BENCH_Q_SLOW_S:-10}
SKIP=${BENCH_Q_SKIP:-}
PLANS=${BENCH_Q_PLANS:-/tmp/qbench-plans.txt}
PHASES=${BENCH_Q_PHASES:-load,heavy,explain}
: "${EVENTOPS_PG_DSN:?not set: eval \"\$(scripts/stack.sh env)\"}"
REDIS_URL=${EVENTOPS_REDIS_URL:-redis://127.0.0.1:56379}
command -v wrk >/dev/null || { echo "bench-query: wrk not found (apt-get install wrk)" >&2; exit 2; }

say() { printf 'bench-query: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

admin_dsn=$EVENTOPS_PG_DSN
if [[ $admin_dsn =~ (^|[[:space:]])dbname= ]]; then
    dsn=$(sed -E "s/(^|[[:space:]])dbname=[^[:space:]]*/\1dbname=$DB/" <<<"$admin_dsn")
else
    dsn="$admin_dsn dbname=$DB"
fi
PSQL=/usr/lib/postgresql/15/bin/psql
[[ -x $PSQL ]] || PSQL=$(command -v psql) || die "psql not found"
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" "$@" </dev/null; }

finished=$(q -c "SELECT finished_at IS NOT NULL FROM qbench.meta" 2>/dev/null) || finished=''
[[ $finished == t ]] || die "$DB is not fully loaded: run bench/query_load.sh $1 first"
read -r end_us n_events < <(q -F ' ' -c "SELECT end_us, events FROM qbench.meta")
tenant_id=$(q -c "SELECT tenant_id FROM tenants WHERE name = 'qbench-big'")

work=$(mktemp -d "${TMPDIR:-/tmp}/eo-bench-query.XXXXXX")
pids=()
client_id=''
cleanup() {
    local rc=$? p
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [[ -n $client_id ]] && EVENTOPS_PG_DSN=$dsn "$bin" admin revoke-client "$client_id" >/dev/null 2>&1
    redis_del
    if ((rc != 0)); then
        for p in "$work"/*.log; do
            [[ -s $p ]] && { printf -- '---- last lines of %s ----\n' "$p" >&2; tail -n 8 "$p" >&2; }
        done
    fi
    rm -rf -- "$work"
}
redis_del() {
    command -v redis-cli >/dev/null || return 0
    redis-cli -u "$REDIS_URL" --scan --pattern "eo:q:{$tenant_id}:*" 2>/dev/null |
        xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # port pid
    local i
    for ((i = 0; i < 200; i++)); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
        kill -0 "$2" 2>/dev/null || die "a role exited during start"
        sleep 0.1
    done
    die "role on :$1 not ready after 20 s"
}

# ---------------------------------------------------------------------------------------------
# Token: a signing key of our own, a client with events:read and a limit far above the load.

export EVENTOPS_AUTH_KEY_DIR=$work/keys EVENTOPS_REDIS_URL=$REDIS_URL
mkdir -p "$EVENTOPS_AUTH_KEY_DIR"
"$bin" admin create-signing-key --dir "$EVENTOPS_AUTH_KEY_DIR" --json >/dev/null
client=$(EVENTOPS_PG_DSN=$dsn "$bin" admin create-client --tenant qbench-big --scopes events:read \
    --name bench-query --rate 1000000 --burst 1000000 --json)
client_id=$(sed -n 's/.*"clientId":"\([^"]*\)".*/\1/p' <<<"$client")
secret=$(sed -n 's/.*"clientSecret":"\([^"]*\)".*/\1/p' <<<"$client")
auth_port=$(free_port)
EVENTOPS_PG_DSN=$dsn EVENTOPS_AUTH_PORT=$auth_port EVENTOPS_AUTH_TOKEN_TTL_S=14400 \
    "$bin" auth 2>"$work/auth.log" &
pids+=($!)
wait_ready "$auth_port" "${pids[-1]}"
token=$(curl -s -u "$client_id:$secret" -d grant_type=client_credentials \
    "http://127.0.0.1:$auth_port/oauth/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[[ -n $token ]] || die "no token from the auth role"
kill "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
unset 'pids[-1]'

# Starts a query role with the extra settings "$@"; sets qport and qpid.
start_query() {
    local name=$1
    shift
    qport=$(free_port)
    env EVENTOPS_PG_DSN="$dsn" EVENTOPS_QUERY_PORT="$qport" EVENTOPS_QUERY_TIMEOUT_MS=600000 "$@" \
        "$bin" query 2>"$work/$name.log" >/dev/null &
    qpid=$!
    pids+=("$qpid")
    wait_ready "$qport" "$qpid"
}
stop_query() {
    kill "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
    local p keep=()
    for p in "${pids[@]}"; do [[ $p == "$qpid" ]] || keep+=("$p"); done
    pids=("${keep[@]}")
}

# ---------------------------------------------------------------------------------------------
# URL lists

# The heavy window: the last 30 days of the data, whole minutes.
to_us=$((end_us / 60000000 * 60000000))
from_us=$((to_us - 30 * 86400000000))
iso() { date -u -d "@$(($1 / 1000000))" +%Y-%m-%dT%H:%M:%SZ; }
FROM=$(iso "$from_us")
TO=$(iso "$to_us")
win_events=$(q -c "SELECT sum(count) FROM rollups WHERE tenant_id = '$tenant_id'
    AND granularity = 'minute' AND event_type = '' AND bucket_start >= '$FROM'
    AND bucket_start < '$TO'")

python3 - "$work" "$end_us" "$n_events" "$NURLS" <<'PY'
import random, sys
from datetime import datetime, timedelta, timezone
work, end_us, nurls = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
US, MIN, HOUR, DAY = 10**6, 60 * 10**6, 3600 * 10**6, 86400 * 10**6
start_us = end_us - 120 * DAY
types = ["page_viewed", "screen_viewed", "app_opened", "product_viewed", "search_performed",
         "button_clicked", "product_added", "cart_viewed", "checkout_started",
         "payment_info_entered", "order_completed", "signed_in", "signed_up",
         "subscription_started", "video_played", "notification_clicked", "share_clicked",
         "review_submitted", "coupon_applied", "error_shown"]
zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
unit_us = {"minute": MIN, "hour": HOUR, "day": DAY, "week": 7 * DAY, "month": 30 * DAY}
rnd = random.Random(7)

def fmt(us):
    d = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)
    s = d.strftime("%Y-%m-%dT%H:%M:%S")
    return s + ("." + "%06d" % (us % US) if us % US else "") + "Z"

def rng_range(max_len):
    length = int(min(max_len, 100 * DAY) ** rnd.random())  # log-uniform, 1 us .. max
    length = max(length, MIN)
    lo = start_us + rnd.randrange(max(1, 120 * DAY - length))
    hi = lo + length
    a = rnd.random()
    g = DAY if a < 0.3 else HOUR if a < 0.55 else MIN if a < 0.8 else 1
    if g > 1:
        lo, hi = lo // g * g, -(-hi // g) * g
    if hi > end_us - 2 * HOUR:  # closed ranges only
        hi = (end_us - 2 * HOUR) // MIN * MIN
        lo = min(lo, hi - MIN)
    return lo, hi

def etype():
    return "" if rnd.random() < 0.3 else "eventType=%s&" % rnd.choice(types)

def count_url(lo, hi):
    return "/events/count?%sfrom=%s&to=%s" % (etype(), fmt(lo), fmt(hi))

def trend_url():
    unit = rnd.choice(["minute", "hour", "hour", "day", "day", "day", "week", "month"])
    lo, hi = rng_range(min(100 * DAY, 1500 * unit_us[unit]))
    return "/events/trend?%sinterval=%s&tz=%s&from=%s&to=%s" % (
        etype(), unit, rnd.choice(zones), fmt(lo), fmt(hi))

with open(work + "/count.urls", "w") as f:
    for _ in range(nurls):
        f.write(count_url(*rng_range(100 * DAY)) + "\n")
with open(work + "/trend.urls", "w") as f:
    for _ in range(nurls):
        f.write(trend_url() + "\n")
with open(work + "/count.cached.urls", "w") as f:
    for _ in range(50):
        f.write(count_url(*rng_range(100 * DAY)) + "\n")
with open(work + "/trend.cached.urls", "w") as f:
    for _ in range(50):
        f.write(trend_url() + "\n")
PY

cat >"$work/rotate.lua" <<'LUA'
-- Rotates over the URLs of $QB_URLS (one path per line), each thread from its own offset;
-- counts X-Cache answers and non-200 statuses; done() prints one JSON line.
local threads = {}
local urls = {}
for line in io.lines(os.getenv("QB_URLS")) do urls[#urls + 1] = line end
local auth = "Bearer " .. os.getenv("QB_TOKEN")
local n = 0
function setup(thread)
    n = n + 1
    thread:set("tid", n)
    table.insert(threads, thread)
end
function init(args)
    i = (tid - 1) * 7919 % #urls
    hit, miss, bypass, bad = 0, 0, 0, 0
end
function request()
    i = i % #urls + 1
    return wrk.format("GET", urls[i], { ["Authorization"] = auth })
end
function response(status, headers, body)
    if status ~= 200 then bad = bad + 1 end
    local x = headers["X-Cache"] or headers["x-cache"]
    if x == "hit" then hit = hit + 1 elseif x == "miss" then miss = miss + 1
    elseif x == "bypass" then bypass = bypass + 1 end
end
function done(summary, latency, requests)
    local h, m, b, e = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        h = h + t:get("hit"); m = m + t:get("miss"); b = b + t:get("bypass"); e = e + t:get("bad")
    end
    local s = summary.duration / 1e6
    io.write(string.format('{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
        '"p99_ms":%.3f,"max_ms":%.3f,"non200":%d,"socket_errors":%d,"hit":%d,"miss":%d,"bypass":%d}\n',
        summary.requests, s, summary.requests / s, latency:percentile(50) / 1000,
        latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000, e,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        h, m, b))
end
LUA

jnum() { sed -nE "s/.*\"$2\":(-?[0-9.eE+]+).*/\1/p" "$1"; }

# wrk NAME URLFILE CONCURRENCY: one run; its JSON goes to $work/NAME.json.
run_wrk() {
    local name=$1 urls=$2 c=$3 t=2
    ((c < t)) && t=$c
    QB_URLS=$urls QB_TOKEN=$token wrk -t "$t" -c "$c" -d "${DUR}s" --timeout 30s \
        -s "$work/rotate.lua" "http://127.0.0.1:$qport" >"$work/$name.out" 2>&1 ||
        die "wrk failed: $(tail -n 3 "$work/$name.out")"
    grep '^{"requests"' "$work/$name.out" >"$work/$name.json" || die "no wrk summary: $(cat "$work/$name.out")"
    [[ $(jnum "$work/$name.json" non200) == 0 ]] ||
        say "note: $name: $(jnum "$work/$name.json" non200) non-200 answers"
    say "$name: $(cat "$work/$name.json")"
}

# Checks that every URL of a list answers 200 once (and fills the cache when it is on).
prime() {
    local f=$1 url code bad=0
    while read -r url; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
            "http://127.0.0.1:$qport$url")
        [[ $code == 200 ]] || { bad=$((bad + 1)); ((bad > 3)) || say "note: $code for $url"; }
    done <"$f"
    ((bad == 0)) || die "$bad requests of $f did not answer 200"
}

machine_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A res=() nruns=()

# ---------------------------------------------------------------------------------------------
# (1) count and trend

has_phase() { [[ ,$PHASES, == *,$1,* ]]; }
if has_phase load; then
start_query query-nocache EVENTOPS_QUERY_CACHE=off
say "query role (cache off) on :$qport; $NURLS URLs per endpoint; warming up"
head -n 200 "$work/count.urls" >"$work/count.check"
head -n 200 "$work/trend.urls" >"$work/trend.check"
prime "$work/count.check"
prime "$work/trend.check"
for c in $CONCS; do
    run_wrk "count-uncached-c$c" "$work/count.urls" "$c"
    run_wrk "trend-uncached-c$c" "$work/trend.urls" "$c"
done
stop_query

redis_del
start_query query-cache EVENTOPS_QUERY_CACHE=on
say "query role (cache on) on :$qport; filling the cache"
prime "$work/count.cached.urls"
prime "$work/trend.cached.urls"
for c in $CONCS; do
    run_wrk "count-cached-c$c" "$work/count.cached.urls" "$c"
    run_wrk "trend-cached-c$c" "$work/trend.cached.urls" "$c"
done
stop_query
fi

# ---------------------------------------------------------------------------------------------
# (2) heavy endpoints, sequential

W="from=$FROM&to=$TO"
heavy_names=(uu-all uu-type-day uu-all-day-berlin breakdown-plan breakdown-city
    breakdown-untracked funnel retention retention-week types raw raw-none raw-user)
declare -A heavy=(
    [uu-all]="/events/unique-users?$W"
    [uu-type-day]="/events/unique-users?eventType=page_viewed&interval=day&$W"
    [uu-all-day-berlin]="/events/unique-users?interval=day&tz=Europe/Berlin&$W"
    [breakdown-plan]="/events/breakdown?property=plan&$W"
    [breakdown-city]="/events/breakdown?eventType=page_viewed&property=address.city&$W"
    [funnel]="/events/funnel?steps=product_viewed,product_added,checkout_started,order_completed&within=1d&$W"
    [retention]="/events/retention?startEvent=signed_up&returnEvent=page_viewed&period=day&periods=7&$W"
    [retention-week]="/events/retention?startEvent=page_viewed&returnEvent=page_viewed&period=week&periods=4&tz=America/New_York&$W"
    [types]="/events/types"
    [breakdown-untracked]="/events/breakdown?eventType=product_viewed&property=price&$W"
    [raw]="/events?eventType=order_completed&limit=100&$W"
    [raw-none]="/events?eventType=no_such_type&limit=100&$W"
    [raw-user]="/events?userId=user-0000042&limit=100&$W"
)
datadir=$(q -c "SHOW data_directory")
dboid=$(q -c "SELECT oid FROM pg_database WHERE datname = current_database()")
drop_os_cache() {
    python3 - "$datadir/base/$dboid" <<'PY'
import os, sys
d = sys.argv[1]
for name in os.listdir(d):
    try:
        fd = os.open(os.path.join(d, name), os.O_RDONLY)
    except OSError:
        continue
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
PY
}
timed() { # url -> seconds on stdout; dies on non-200
    local out code rc=0
    out=$(curl -sS -o "$work/body.json" -w '%{http_code} %{time_total}' --max-time 900 \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$qport$1" 2>"$work/curl.err") || rc=$?
    ((rc == 0)) || die "curl exit $rc for $1: $(cat "$work/curl.err")"
    code=${out%% *}
    [[ $code == 200 ]] || die "$code for $1: $(head -c 300 "$work/body.json")"
    printf '%s\n' "${out#* }"
}
stats() { sort -g | awk '{a[NR]=$1} END {printf "%.3f %.3f\n", a[int((NR+1)/2)], a[NR]}'; }

if has_phase heavy; then
start_query query-heavy EVENTOPS_QUERY_CACHE=off
say "heavy endpoints over $FROM .. $TO ($win_events events of qbench-big), $RUNS cold + $RUNS warm runs each"
for name in "${heavy_names[@]}"; do
    [[ ,$SKIP, == *,$name,* ]] && { say "$name: skipped"; continue; }
    : >"$work/$name.cold"
    : >"$work/$name.warm"
    runs=$RUNS
    for ((r = 0; r < runs; r++)); do
        drop_os_cache
        timed "${heavy[$name]}" >>"$work/$name.cold"
        if ((r == 0 && runs > 3)) && awk -v t="$(cat "$work/$name.cold")" -v s="$SLOW_S" 'BEGIN { exit !(t > s) }'; then
            runs=3
            say "$name: first run over ${SLOW_S}s: 3 runs of each kind"
        fi
    done
    cp "$work/body.json" "$work/$name.body.json"
    for ((r = 0; r < runs; r++)); do timed "${heavy[$name]}" >>"$work/$name.warm"; done
    nruns[$name]=$runs
    read -r cmed cmax < <(stats <"$work/$name.cold")
    read -r wmed wmax < <(stats <"$work/$name.warm")
    res[$name]="$cmed $cmax $wmed $wmax"
    say "$name: cold $(tr '\n' ' ' <"$work/$name.cold")s; warm $(tr '\n' ' ' <"$work/$name.warm")s; answer sha256 $(sha256sum <"$work/$name.body.json" | head -c 16) $(head -c 160 "$work/$name.body.json")"
done
stop_query
fi

# ---------------------------------------------------------------------------------------------
# (3) plans of the heavy statements

plan_summary=''
if has_phase explain; then
    ae="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=5"
    ae+=" -c auto_explain.log_analyze=on -c auto_explain.log_buffers=on"
    ae+=" -c auto_explain.log_timing=on -c auto_explain.log_level=notice"
    : >"$PLANS"
    start_query query-explain EVENTOPS_QUERY_CACHE=off EVENTOPS_QUERY_THREADS=1 \
        EVENTOPS_PG_DSN="$dsn options='$ae'"
    for name in "${heavy_names[@]}"; do
        [[ ,$SKIP, == *,$name,* ]] && continue
        mark=$(wc -l <"$work/query-explain.log")
        timed "${heavy[$name]}" >/dev/null
        sleep 0.2
        { printf '===== %s: GET %s\n' "$name" "${heavy[$name]}"
          tail -n +"$((mark + 1))" "$work/query-explain.log" | grep -v '^{"ts"' || true; } >>"$PLANS"
        # The longest statement's plan: its first plan line, execution time, buffers and temp.
        line=$(tail -n +"$((mark + 1))" "$work/query-explain.log" | awk '
            /duration: [0-9.]+ ms/ { match($0, /duration: [0-9.]+/); d = substr($0, RSTART + 10, RLENGTH - 10) + 0
                cur = d; top = ""; bufs = ""; tmp = ""; next }
            cur && top == "" && /->|[A-Za-z]+.*cost=|\(actual/ { t = $0; sub(/^[ \t]*(->)?[ \t]*/, "", t); sub(/ *\(cost.*/, "", t); top = t }
            cur && bufs == "" && /Buffers:/ { b = $0; sub(/^.*Buffers: /, "", b); bufs = b }
            cur && /temp read|temp written/ && tmp == "" { tm = $0; sub(/^.*Buffers: /, "", tm); tmp = tm }
            cur && d >= best { best = d; out = sprintf("%.0f ms, top node %s; %s", d, top, bufs) }
            END { print (out == "" ? "every statement under 5 ms" : out) }')
        plan_summary+="  $name: $line"$'\n'
    done
    stop_query
    say "plans written to $PLANS"
fi

# ---------------------------------------------------------------------------------------------
# Report

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && commit+=-dirty
cpu=$(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
pgset=$(q -F ' ' -c "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
    WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size', 'random_page_cost', 'jit',
    'max_parallel_workers_per_gather')")
dbsize=$(q -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
threads=${EVENTOPS_QUERY_THREADS:-4}
{
    echo
    echo "EventOps query benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
    echo "machine: $(nproc) cores ($cpu), $mem_gib GiB RAM; load average before: $machine_before"
    echo "PostgreSQL $(q -c 'SHOW server_version' | cut -d' ' -f1): $pgset"
    echo "data: $DB ($dbsize), $n_events events over 120 days; qbench-big: $win_events events in $FROM .. $TO"
    echo "query role: $threads threads; wrk -t 2, $DUR s per run, closed loop"
    echo
    has_phase load && printf '%-26s %6s %10s %9s %9s %9s %9s  %s\n' run conns requests req/s 'p50 ms' 'p99 ms' 'max ms' 'cache hit/miss/bypass'
    for c in $CONCS; do
        has_phase load || break
        for n in count-uncached trend-uncached count-cached trend-cached; do
            f=$work/$n-c$c.json
            printf '%-26s %6s %10s %9s %9s %9s %9s  %s/%s/%s\n' "$n" "$c" "$(jnum "$f" requests)" \
                "$(jnum "$f" rps)" "$(jnum "$f" p50_ms)" "$(jnum "$f" p99_ms)" "$(jnum "$f" max_ms)" \
                "$(jnum "$f" hit)" "$(jnum "$f" miss)" "$(jnum "$f" bypass)"
        done
    done
    echo
    printf '%-18s %12s %12s %12s %12s %5s   (seconds, cache off)\n' query 'cold median' 'cold max' 'warm median' 'warm max' runs
    for name in "${heavy_names[@]}"; do
        [[ -n ${res[$name]:-} ]] || continue
        read -r a b c d <<<"${res[$name]}"
        printf '%-18s %12s %12s %12s %12s %5s\n' "$name" "$a" "$b" "$c" "$d" "${nruns[$name]}"
    done
    [[ -n $plan_summary ]] && printf '\nslowest statement of each (EXPLAIN ANALYZE via auto_explain; full plans in %s):\n%s' "$PLANS" "$plan_summary"
    echo "targets: count/trend p99 <= 10 ms uncached, <= 1 ms cached; heavy queries <= 1 s"
} >&2

{
    printf '{"bench":"eventops-query","date":"%s","commit":"%s","cores":%s,"events":%s,"window_events":%s,' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$(nproc)" "$n_events" "$win_events"
    printf '"query_threads":%s,"duration_s":%s,"runs":%s,"load":{' "$threads" "$DUR" "$RUNS"
    sep=''
    for c in $CONCS; do
        has_phase load || break
        for n in count-uncached trend-uncached count-cached trend-cached; do
            printf '%s"%s-c%s":%s' "$sep" "$n" "$c" "$(cat "$work/$n-c$c.json")"
            sep=,
        done
    done
    printf '},"heavy_s":{'
    sep=''
    for name in "${heavy_names[@]}"; do
        [[ -n ${res[$name]:-} ]] || continue
        read -r a b c d <<<"${res[$name]}"
        printf '%s"%s":{"cold_median":%s,"cold_max":%s,"warm_median":%s,"warm_max":%s,"runs":%s}' "$sep" "$name" "$a" "$b" "$c" "$d" "${nruns[$name]}"
        sep=,
    done
    printf '}}\n'
}
