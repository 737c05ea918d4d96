#!/usr/bin/env bash
# bench/run.sh: the EventOps ingest benchmark, one run, fresh database and topics.
#
#   bench/run.sh path/to/eventops        (make bench: optimised build, stack env exported)
#
# Phases, all against a new database eo_bench_<id> and new topics eo-bench-<id>.{events,dlq}:
#   (a)  collector only: loadgen sends N events as fast as it can; accepted events/s and
#        per-request latency. Nothing is stored yet; the events wait in Kafka.
#   (a2) processor started: time to drain (a)'s backlog into PostgreSQL (storage rate alone).
#   (b)  tables emptied, both roles running and idle: loadgen sends N events; the clock runs
#        from the first request sent to the moment all accepted events are stored
#        (end to end = accepted / that time).
#   (c)  the rows stored in (b), exported and loaded with a bare COPY FROM STDIN into a plain,
#        unindexed, unpartitioned, logged table: the storage ceiling. Reports b/c.
#   (d)  both roles running, loadgen paced at half of (a)'s accepted rate: accept latency.
# Stored progress is read from the rollups table (sum of the day buckets: written in the same
# transaction as the events, so exact), polled every 50 ms over one psql connection; each
# phase is checked afterwards with count(*) on events. Each phase also reports the CPU used
# (machine, collector, processors, this database's PostgreSQL backends, Kafka, loadgen), and
# for (a), (a2) and (b) that CPU in microseconds per event per role; (c) the CPU of the COPY's
# own backend per row (read by the backend itself from /proc/self/stat: needs a superuser or
# pg_read_server_files), and the ratio of our backends' CPU per row to it (issue 13).
# BENCH_PERF=1 also profiles: `perf record -g -e cpu-clock` of the whole machine during (a) and
# (a2), then per role (collector in (a); processors and this database's backends in (a2)) the
# top symbols by self time (perf report --no-children --sort dso,sym) and the share of each
# library, written to perf-*.txt in the work directory (kept) and summarised on stderr. perf's
# sampling costs CPU: read rates and CPU figures from a run without it.
#
# Settings (environment): BENCH_EVENTS (200000 per phase), BENCH_BATCH (100 events per
# request), BENCH_CONNECTIONS (16), BENCH_PARTITIONS (6, events topic), BENCH_PROCESSORS (1:
# processor instances in one consumer group), BENCH_HALF_EVENTS (events sent in (d); default
# BENCH_EVENTS), BENCH_HALF_RATE (events/s in (d); default half of (a)), BENCH_STALL_S (60:
# give up when storage makes no progress that long), BENCH_KEEP=1 (keep the database, topics
# and work directory), BENCH_PERF=1 (profile, see above; needs perf: Debian's linux-perf, and
# root or kernel.perf_event_paranoid <= 0), BENCH_RT_PRIORITY (1: in (d) the request path, that
# is a collector restarted with EVENTOPS_COLLECTOR_RT_PRIORITY, loadgen and the stack's broker
# (its threads, given back their policy after (d)), runs under SCHED_RR at this priority while
# storage keeps the normal scheduler, as docs/operations.md recommends for a machine shared with
# storage (ADR-26); the flat-out phases stay under the normal scheduler, where real-time senders
# would starve the storage and this script's clock; 0: (d) too; without the privilege it falls
# back to 0 with a note), CC (compiler for loadgen; cc).
# Needs: the stack (EVENTOPS_PG_DSN, EVENTOPS_KAFKA_BROKERS), cc, psql, curl; java and the
# stack's Kafka jars to delete the topics afterwards. The summary table goes to stderr, one JSON
# line to stdout; nothing is appended anywhere. Numbers are only as quiet as the machine.
set -euo pipefail
export LC_ALL=C # '.' as the decimal point in EPOCHREALTIME, awk and printf

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
(($# == 1)) || usage
[[ $1 == -h || $1 == --help ]] && usage
[[ -x $1 ]] || { echo "bench: $1 is not an executable (run make build)" >&2; exit 2; }
bin=$(realpath -- "$1")
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

N=${BENCH_EVENTS:-200000}
BATCH=${BENCH_BATCH:-100}
CONNS=${BENCH_CONNECTIONS:-16}
PARTITIONS=${BENCH_PARTITIONS:-6}
HALF_N=${BENCH_HALF_EVENTS:-$N}
PROCS=${BENCH_PROCESSORS:-1}
STALL_S=${BENCH_STALL_S:-60}
KEEP=${BENCH_KEEP:-0}
PERF=${BENCH_PERF:-0}
RT=${BENCH_RT_PRIORITY:-1}

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for v in N:BENCH_EVENTS BATCH:BENCH_BATCH CONNS:BENCH_CONNECTIONS PARTITIONS:BENCH_PARTITIONS \
    HALF_N:BENCH_HALF_EVENTS STALL_S:BENCH_STALL_S PROCS:BENCH_PROCESSORS; do
    value=${v%%:*}
    [[ ${!value} =~ ^[1-9][0-9]*$ ]] || die "${v#*:} must be a positive integer, got '${!value}'"
done
[[ $KEEP == [01] ]] || die "BENCH_KEEP must be 0 or 1, got '$KEEP'"
[[ $PERF == [01] ]] || die "BENCH_PERF must be 0 or 1, got '$PERF'"
[[ $RT =~ ^[0-9]+$ ]] && ((RT <= 99)) || die "BENCH_RT_PRIORITY must be 0 to 99, got '$RT'"
[[ -z ${BENCH_HALF_RATE:-} || $BENCH_HALF_RATE =~ ^[1-9][0-9]*$ ]] ||
    die "BENCH_HALF_RATE must be a positive integer, got '$BENCH_HALF_RATE'"
((BATCH <= 1000)) || die "BENCH_BATCH over the collector's default EVENTOPS_MAX_BATCH_EVENTS (1000)"
: "${EVENTOPS_PG_DSN:?not set: run through make bench, or eval \"\$(scripts/stack.sh env)\"}"
: "${EVENTOPS_KAFKA_BROKERS:?not set: run through make bench, or eval \"\$(scripts/stack.sh env)\"}"
PSQL_BIN=/usr/lib/postgresql/15/bin/psql
[[ -x $PSQL_BIN ]] || PSQL_BIN=$(command -v psql) || die "psql not found (scripts/deps.sh)"
command -v curl >/dev/null || die "curl not found (scripts/deps.sh)"
if ((PERF)); then
    if ! command -v perf >/dev/null; then
        ((EUID == 0)) && command -v apt-get >/dev/null ||
            die "BENCH_PERF=1 needs perf: install Debian's linux-perf (apt-get install linux-perf)"
        say "installing perf (Debian package linux-perf)"
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q linux-perf \
            </dev/null >/dev/null || die "apt-get install linux-perf failed"
    fi
    if ((EUID != 0)) && (($(cat /proc/sys/kernel/perf_event_paranoid) > -1)); then
        die "BENCH_PERF=1 samples every process (perf record -a): run as root, or set" \
            "kernel.perf_event_paranoid to -1"
    fi
    # cpu-clock: a software event, there even where the VM has no hardware counters
    timeout 30 perf record -q -e cpu-clock -o /dev/null true >/dev/null 2>&1 ||
        die "perf record -e cpu-clock does not work here: $(perf record -e cpu-clock -o /dev/null true 2>&1 | tail -n 2)"
fi

# ---------------------------------------------------------------------------------------------
# Names, connection strings, work directory

id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
db=eo_bench_$id
events_topic=eo-bench-$id.events
dlq_topic=eo-bench-$id.dlq
admin_dsn=$EVENTOPS_PG_DSN
if [[ $admin_dsn =~ (^|[[:space:]])dbname= ]]; then
    bench_dsn=$(sed -E "s/(^|[[:space:]])dbname=[^[:space:]]*/\1dbname=$db/" <<<"$admin_dsn")
else
    bench_dsn="$admin_dsn dbname=$db"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/eo-bench.XXXXXX")
psql_admin() { "$PSQL_BIN" -X -q -At -v ON_ERROR_STOP=1 -d "$admin_dsn" "$@" </dev/null; }
psql_bench() { "$PSQL_BIN" -X -q -At -v ON_ERROR_STOP=1 -d "$bench_dsn" "$@"; }

main_pid=$BASHPID
declare -A pids=()
db_created=0
topics_created=0
poll_open=0
perf_pid=''
rt_broker=0      # the broker's threads are under SCHED_RR now (given back by rt_broker_off)
rt_broker_used=0 # they were during (d)
loadgen_rt=0

# Stops one role: SIGTERM, then SIGKILL after 15 s. Only our own child pids.
stop_role() {
    local name=$1 pid=${pids[$1]:-} i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        read -rt 0.1 -u "$never" || true
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) still running after 15 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "pids[$name]"
}

# Deletes the run's topics and consumer group with Kafka's own tools (the stack's jars);
# best effort.
delete_topics() {
    local stack_dir=${EVENTOPS_STACK_DIR:-$root/.stack} libs
    libs=$stack_dir/kafka/libs
    if [[ ! -d $libs ]] || ! command -v java >/dev/null; then
        say "note: topics $events_topic, $dlq_topic left in Kafka (no Kafka tools found)"
        return 0
    fi
    kafka_tool() {
        java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
            -Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.properties" \
            -Dkafka.logs.dir="$work" -Deventops.kafka.log.name=tools -cp "$libs/*" "$@" \
            --bootstrap-server "$EVENTOPS_KAFKA_BROKERS" </dev/null >>"$work/kafka-tools.out" 2>&1
    }
    kafka_tool org.apache.kafka.tools.TopicCommand --delete --topic "eo-bench-$id\\..*" ||
        say "note: deleting topics eo-bench-$id.* failed (see $work/kafka-tools.out)"
    kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --delete \
        --group "eo-bench-$id" || true
}

cleanup() {
    local rc=$?
    ((BASHPID == main_pid)) || exit "$rc" # never from a subshell
    set +e
    trap - EXIT INT TERM
    local name
    perf_stop
    for name in "${!pids[@]}"; do [[ $name == collector ]] || stop_role "$name"; done
    stop_role collector
    ((rt_broker == 0)) || rt_broker_off
    if ((poll_open)); then
        eval "exec ${POLL[1]}>&-" 2>/dev/null
        wait "$POLL_PID" 2>/dev/null
    fi
    if ((rc != 0)); then
        local f
        for f in "$work"/*.log "$work"/*.err; do
            [[ -s $f ]] || continue
            printf -- '---- last lines of %s ----\n' "$f" >&2
            tail -n 15 -- "$f" >&2
        done
    fi
    if ((KEEP)); then
        say "kept: database $db, topics eo-bench-$id.*, work directory $work"
    else
        ((db_created)) && psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
        ((topics_created)) && delete_topics
        if ((rc == 0 && !PERF)); then
            rm -rf -- "$work"
        elif ((rc == 0)); then
            say "profiles kept in $work (perf-*.txt, perf-*.data)"
        else
            say "logs kept in $work"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A FIFO nobody writes: `read -t` on it sleeps without starting a process.
mkfifo "$work/never"
exec {never}<>"$work/never"
nap() { read -rt "$1" -u "$never" || true; }

# ---------------------------------------------------------------------------------------------
# Helpers

# Prints numeric field $2 of the one-line JSON in file $1.
jnum() { sed -nE "s/.*\"$2\":(-?[0-9.eE+]+|true|false).*/\1/p" "$1"; }
# Float arithmetic: calc 'expression' (awk syntax, variables passed as -v).
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
# True when the awk condition holds: fcmp '1.5 > 1'.
fcmp() { awk "BEGIN { exit !($1) }"; }
# Rounds and groups thousands: 12345.6 -> 12,346.
fmt_int() { printf '%.0f' "$1" | sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta'; }
now() { printf '%s' "$EPOCHREALTIME"; }

# Starts `eventops ROLE` as NAME with extra VAR=value settings; its stderr (JSON log lines)
# goes to NAME.log.
start_role() {
    local name=$1 role=$2
    shift 2
    : >"$work/$name.log"
    env "$@" "$bin" "$role" >/dev/null 2>>"$work/$name.log" &
    pids[$name]=$!
}

role_alive() { [[ -n ${pids[$1]:-} ]] && kill -0 "${pids[$1]}" 2>/dev/null; }

# Starts the processors: one consumer group, each its own instance and transactional id.
start_processors() {
    local i
    for ((i = 1; i <= PROCS; i++)); do
        start_role "processor$i" processor "EVENTOPS_PROCESSOR_ID=eo-bench-$id-$i"
    done
}

processors_alive() {
    local i
    for ((i = 1; i <= PROCS; i++)); do role_alive "processor$i" || return 1; done
}

# Waits for the collector's "listening" line, then for /readyz; sets collector_port.
wait_collector() {
    local i port=''
    for ((i = 0; i < 300; i++)); do
        role_alive collector || die "the collector exited during start"
        port=$(sed -nE 's/.*"msg":"collector listening".*"port":"([0-9]+)".*/\1/p' \
            "$work/collector.log" | head -n 1) || true
        [[ -n $port ]] && break
        nap 0.1
    done
    [[ -n $port ]] || die "the collector did not report its port within 30 s"
    for ((i = 0; i < 300; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz") == 200 ]] &&
            break
        role_alive collector || die "the collector exited during start"
        nap 0.1
    done
    ((i < 300)) || die "the collector was not ready within 30 s"
    collector_port=$port
}

# Sets stored_n to the events stored so far (sum of the day rollups), over the long-lived psql
# connection. No fork: it runs every 50 ms.
stored() {
    printf '%s\n' "SELECT coalesce(sum(count), 0) FROM rollups WHERE granularity = 'day' AND event_type = '';" \
        >&"${POLL[1]}"
    read -r -t 30 -u "${POLL[0]}" stored_n || die "the stored-count query did not answer"
    [[ $stored_n =~ ^[0-9]+$ ]] || die "unexpected stored-count answer: $stored_n"
}

# Waits until at least $1 events are stored. Sets t_first (first time the count went above $2,
# the count before), n_first (the count then) and t_done. Dies when storage stalls.
wait_stored() {
    local target=$1 base=$2 n last=-1 t_last_change=${EPOCHREALTIME%.*}
    t_first='' n_first=0
    while :; do
        stored
        n=$stored_n
        if ((n > base)) && [[ -z $t_first ]]; then
            t_first=$EPOCHREALTIME
            n_first=$n
        fi
        if ((n >= target)); then
            t_done=$EPOCHREALTIME
            return 0
        fi
        if ((n != last)); then
            last=$n
            t_last_change=${EPOCHREALTIME%.*}
        elif ((${EPOCHREALTIME%.*} - t_last_change > STALL_S)); then
            die "storage stalled at $n of $target events for ${STALL_S}s"
        fi
        processors_alive || die "a processor exited ($n of $target events stored)"
        nap 0.05
    done
}

# Runs loadgen; its JSON summary goes to file $1, the remaining arguments to loadgen. Its clock
# starts at a set time after its pre-generation (lead_s, measured at setup), and the phase's
# CPU accounting starts at that same moment (cpu_begin).
loadgen() {
    local out=$1 start_at lg rc=0 wait_s
    shift
    start_at=$(calc "$(now) + $lead_s")
    local rt=()
    ((loadgen_rt == 0)) || rt=(chrt -r "$RT")
    LOADGEN_WRITE_KEY=$write_key "${rt[@]}" "$work/loadgen" --host 127.0.0.1 --port "$collector_port" \
        --batch "$BATCH" --connections "$CONNS" --quiet --start-at "$start_at" "$@" \
        >"$out" 2>"$out.err" &
    lg=$!
    wait_s=$(calc "$start_at - $(now)")
    ! fcmp "$wait_s > 0" || nap "$wait_s"
    cpu_begin
    wait "$lg" || rc=$?
    if ((rc != 0)); then
        [[ -s $out ]] || die "loadgen failed (exit $rc): $(tail -n 3 "$out.err")"
        say "note: loadgen exit $rc (some requests not accepted): $(tr -d '\n' <"$out.err" |
            head -c 300)"
    fi
    [[ $(jnum "$out" events_accepted) -gt 0 ]] || die "no event accepted: $(cat "$out")"
    fcmp "$(jnum "$out" start_late_s) < 0.05" ||
        say "note: loadgen started $(jnum "$out" start_late_s)s late (CPU window a bit wide)"
}

# CPU accounting per phase, in % of one core: the machine (all of it, other users included),
# our two roles, the PostgreSQL backends serving this database, the Kafka broker (shared with
# whoever else uses the stack).
clk_tck=$(getconf CLK_TCK)
# Sets ticks to the CPU ticks (user + system) of process $1, 0 when it is gone. No fork: the
# snapshots must be quick.
proc_ticks() {
    local stat
    ticks=0
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    # shellcheck disable=SC2086 # split the fields
    set -- $stat
    ticks=$((${12} + ${13}))
}
# Sets ticks to the busy CPU ticks of the whole machine.
machine_ticks() {
    local user nice system irq softirq steal
    read -r _ user nice system _ _ irq softirq steal _ </proc/stat
    ticks=$((user + nice + system + irq + softirq + steal))
}
kafka_pid=$(cat "${EVENTOPS_STACK_DIR:-$root/.stack}/kafka/kafka.pid" 2>/dev/null || echo 0)

# BENCH_RT_PRIORITY (phase (d)): the broker's threads under SCHED_RR (the threads they start
# inherit it), unless something else already changed its policy; rt_broker_off gives them
# SCHED_OTHER back.
sched_note='normal scheduler for every process (BENCH_RT_PRIORITY=0)'
if ((RT > 0)) && { ! command -v chrt >/dev/null || ! chrt -r "$RT" true 2>/dev/null; }; then
    say "note: SCHED_RR not permitted here (needs root or CAP_SYS_NICE): BENCH_RT_PRIORITY=0"
    RT=0
    sched_note='normal scheduler for every process (SCHED_RR not permitted)'
fi
rt_broker_on() {
    sched_note="(d) with the collector and loadgen under SCHED_RR priority $RT"
    if ((kafka_pid > 0)) && [[ $(chrt -p "$kafka_pid" 2>/dev/null) == *SCHED_OTHER* ]] &&
        chrt -a -r -p "$RT" "$kafka_pid" >/dev/null 2>&1; then
        rt_broker=1
        rt_broker_used=1
        sched_note+=", the broker too"
    elif ((kafka_pid > 0)); then
        sched_note+=", the broker as it was ($(chrt -p "$kafka_pid" 2>/dev/null |
            sed -nE 's/.*policy: //p' | head -n 1))"
    else
        sched_note+=", the broker as it was (its pid unknown)"
    fi
    sched_note+="; storage and (a)-(c) under the normal scheduler (BENCH_RT_PRIORITY)"
}
rt_broker_off() {
    ((rt_broker)) || return 0
    chrt -a -o -p 0 "$kafka_pid" >/dev/null || say "note: the broker's policy was not given back"
    rt_broker=0
}
# Sets cpu_set to kind:pid entries: our roles, this database's backends, the broker.
cpu_pids() {
    local pg p name
    printf '%s\n' "SELECT coalesce(string_agg(pid::text, ' '), '') FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid();" >&"${POLL[1]}"
    read -r -t 30 -u "${POLL[0]}" pg || pg=''
    cpu_set=("collector:${pids[collector]:-0}" "kafka:$kafka_pid")
    for name in "${!pids[@]}"; do
        [[ $name == processor* ]] && cpu_set+=("processor:${pids[$name]}")
    done
    for p in $pg; do cpu_set+=("pg:$p"); done
}
cpu_begin() {
    local e ticks
    cpu_pids
    declare -gA cpu0=()
    machine_ticks
    cpu0[machine]=$ticks
    cpu_t0=$EPOCHREALTIME
    for e in "${cpu_set[@]}"; do
        proc_ticks "${e#*:}"
        cpu0[$e]=$ticks
    done
}
# Appends "phase: machine N%, collector N%, ..." to cpu_report. $2: loadgen's JSON (its CPU),
# or ''. $3: the events of the phase: then also the CPU in us per event of each role, appended
# to cpu_us_report and kept in cpu_us[phase:role] (phase without its parentheses).
cpu_end() {
    local name=$1 e el k line machine ticks t1=$EPOCHREALTIME ph
    declare -A sum=([collector]=0 [processor]=0 [pg]=0 [kafka]=0)
    machine_ticks
    machine=$((ticks - cpu0[machine]))
    el=$(calc "$t1 - $cpu_t0")
    cpu_pids # backends that appeared during the phase count from zero
    for e in "${cpu_set[@]}"; do
        k=${e%%:*}
        proc_ticks "${e#*:}"
        sum[$k]=$((sum[$k] + ticks - ${cpu0[$e]:-0}))
    done
    pct() { calc "100 * $1 / $clk_tck / $el" | cut -d. -f1; }
    line="$name ($(printf '%.1f' "$el")s): machine $(pct "$machine")%"
    line+=" of $(($(nproc) * 100))%, collector $(pct "${sum[collector]}")%"
    line+=", processor $(pct "${sum[processor]}")%, pg backends $(pct "${sum[pg]}")%"
    line+=", kafka $(pct "${sum[kafka]}")%"
    [[ -n ${2:-} ]] && line+=", loadgen $(calc "100 * $(jnum "$2" cpu_s) / $el" | cut -d. -f1)%"
    cpu_report+="  $line"$'\n'
    [[ -n ${3:-} ]] || return 0
    ph=${name//[()]/}
    line="$name $3 events:"
    for k in collector processor pg kafka; do
        cpu_us[$ph:$k]=$(calc "1000000 * ${sum[$k]} / $clk_tck / $3")
        line+=" $k $(printf '%.2f' "${cpu_us[$ph:$k]}")"
    done
    cpu_us_report+="  $line"$'\n'
}
declare -A cpu_us=()
cpu_us_report=''
cpu_report=''

# BENCH_PERF=1: samples the whole machine (-a: threads a role starts later are caught too; the
# report picks the role's pids) into perf-$1.data until perf_stop. No-op without BENCH_PERF.
perf_start() {
    ((PERF)) || return 0
    perf record -a -g -e cpu-clock -F 999 -o "$work/perf-$1.data" >/dev/null \
        2>"$work/perf-$1.err" &
    perf_pid=$!
    nap 0.5 # perf attaches to every CPU
}
perf_stop() {
    [[ -n $perf_pid ]] || return 0
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=''
}
# Writes perf-$1-$2.txt: the top 25 symbols (self time, --sort dso,sym) and the share of each
# library (the sum of its symbols: perf's own --sort dso drops libraries when filtered by pid)
# of the processes $3 (comma-separated pids) in perf-$1.data, in % of their samples; appends
# the top 10 symbols and top 6 libraries to perf_summary. $4: the role's name.
perf_role() {
    local data=$work/perf-$1.data out=$work/perf-$1-$2.txt all syms dsos n
    ((PERF)) || return 0
    all=$(timeout 300 perf report -i "$data" --pid "$3" --no-children -g none --stdio \
        --percentage relative --sort dso,sym 2>/dev/null | awk '!/^#/ && NF')
    syms=$(awk 'NR <= 25' <<<"$all")
    dsos=$(awk '{ sub(/%/, "", $1); s[$2] += $1 } END { for (d in s) printf "%7.2f%%  %s\n", s[d], d }' \
        <<<"$all" | sort -rn | awk 'NR <= 12')
    n=$(timeout 300 perf script -i "$data" --pid "$3" -F pid 2>/dev/null | wc -l)
    {
        printf '%s, phase (%s), pids %s: %s samples (cpu-clock, 999 Hz: about %s ms of CPU)\n' \
            "$4" "$1" "$3" "$n" "$n"
        printf '\ntop symbols, self time (perf report --no-children --sort dso,sym):\n%s\n' "$syms"
        printf '\nby library (sum of its symbols):\n%s\n' "$dsos"
    } >"$out"
    perf_summary+="  $4 in ($1), $n samples; top symbols (self):"$'\n'
    perf_summary+=$(awk 'NR <= 10' <<<"$syms" | sed 's/^ */    /')$'\n'
    perf_summary+="    by library: $(awk 'NR <= 6 { printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }' <<<"$dsos")"$'\n'
}
perf_summary=''

dead_letters() {
    cat "$work"/processor*.log | grep -c '"msg":"records sent to the dead-letter topic"' || true
}

# ---------------------------------------------------------------------------------------------
# Setup

say "building loadgen"
${CC:-cc} -std=c17 -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$work/loadgen" \
    "$root/bench/loadgen.c"

export EVENTOPS_PG_DSN=$bench_dsn
export EVENTOPS_KAFKA_EVENTS_TOPIC=$events_topic
export EVENTOPS_KAFKA_DLQ_TOPIC=$dlq_topic
# create-topics makes the analytics role's topics too: the run's own (deleted with the others)
for t in SUMMARIES WINDOWS LATE CHANGELOG; do
    export "EVENTOPS_ANALYTICS_${t}_TOPIC=eo-bench-$id.${t,,}"
done
export EVENTOPS_COLLECTOR_PORT=0 EVENTOPS_PROCESSOR_PORT=0
# Own group and transactional id: never fences or joins a processor someone else runs.
export EVENTOPS_PROCESSOR_GROUP=eo-bench-$id EVENTOPS_PROCESSOR_ID=eo-bench-$id
export EVENTOPS_LOG_LEVEL=${EVENTOPS_LOG_LEVEL:-info}
# The benchmark's one write key must not be throttled (the limiter is still consulted on every
# request, so its cost is in the figures).
export EVENTOPS_RATE_LIMIT_RATE=${EVENTOPS_RATE_LIMIT_RATE:-10000000}
export EVENTOPS_RATE_LIMIT_BURST=${EVENTOPS_RATE_LIMIT_BURST:-10000000}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "database $db, topics eo-bench-$id.{events,dlq} ($PARTITIONS partitions)"
psql_admin -c "CREATE DATABASE $db" >/dev/null
db_created=1
"$bin" migrate >"$work/migrate.txt" 2>&1 || die "migrate failed: $(tail -n 3 "$work/migrate.txt")"
topics_created=1
"$bin" admin create-topics --partitions "$PARTITIONS" >"$work/topics.out" 2>&1 ||
    die "create-topics failed: $(cat "$work/topics.out")"
tenant_json=$("$bin" admin create-tenant "bench-$id" --json)
write_key=$(sed -nE 's/.*"writeKey":"([^"]+)".*/\1/p' <<<"$tenant_json")
tenant_id=$(sed -nE 's/.*"tenantId":"([^"]+)".*/\1/p' <<<"$tenant_json")
[[ -n $write_key && -n $tenant_id ]] || die "create-tenant gave no write key"
pg_version=$(psql_bench -c 'SHOW server_version')

# How long loadgen needs to pre-generate its requests: its clock starts that long (x1.5, plus
# 0.3 s) after launch.
t0=$(now)
"$work/loadgen" --key unused --batch "$BATCH" --events $((N > HALF_N ? N : HALF_N)) \
    --print-sample >/dev/null 2>&1
lead_s=$(calc "($(now) - $t0) * 1.5 + 0.3")

coproc POLL { exec "$PSQL_BIN" -X -q -At -v ON_ERROR_STOP=1 -d "$bench_dsn" 2>>"$work/poll.err"; }
poll_open=1

# ---------------------------------------------------------------------------------------------
# (a) collector only

start_role collector collector
wait_collector
say "(a) collector only: $N events, batch $BATCH, $CONNS connections (port $collector_port)"
perf_start a
loadgen "$work/a.json" --events "$N" --seed 1
cpu_end '(a)' "$work/a.json" "$(jnum "$work/a.json" events_accepted)"
perf_stop
acc_a=$(jnum "$work/a.json" events_accepted)
rate_a=$(jnum "$work/a.json" accepted_events_per_s)
say "(a) $(fmt_int "$rate_a") events/s accepted, p99 $(jnum "$work/a.json" latency_p99_ms) ms"

# (a2) processor drains the backlog
say "(a2) $PROCS processor(s) draining $acc_a events"
perf_start a2
t_proc=$(now)
start_processors
cpu_begin
wait_stored "$acc_a" 0
cpu_end '(a2)' '' "$acc_a"
perf_stop
a2_pg_pids=$(printf '%s\n' "${cpu_set[@]}" | sed -n 's/^pg://p' | paste -sd, -)
a2_proc_pids=$(printf '%s\n' "${cpu_set[@]}" | sed -n 's/^processor://p' | paste -sd, -)
drain_s=$(calc "$t_done - $t_first")
drain_rate_cold=$(calc "$acc_a / ($t_done - $t_proc)")
if ((acc_a > n_first)); then
    drain_rate=$(calc "($acc_a - $n_first) / $drain_s")
else # all of it came in the first batch seen: no rate between two observations
    drain_rate=$drain_rate_cold
fi
n_first_a2=$n_first
stored_a=$(psql_bench -c 'SELECT count(*) FROM events' </dev/null)
((stored_a == acc_a)) || die "(a2) events holds $stored_a rows, $acc_a were accepted"
say "(a2) drained at $(fmt_int "$drain_rate") events/s ($(fmt_int "$drain_rate_cold") with start-up)"

# (b) end to end, from empty tables, both roles warm and idle
psql_bench -c 'SET lock_timeout = 10000; TRUNCATE events, event_ids, rollups; CHECKPOINT' \
    </dev/null >/dev/null
say "(b) end to end: $N events"
loadgen "$work/b.json" --events "$N" --seed 2
acc_b=$(jnum "$work/b.json" events_accepted)
b_start=$(jnum "$work/b.json" start_unix)
b_end=$(jnum "$work/b.json" end_unix)
wait_stored "$acc_b" 0
cpu_end '(b)' "$work/b.json" "$acc_b"
e2e_s=$(calc "$t_done - $b_start")
e2e_rate=$(calc "$acc_b / $e2e_s")
b_accept_rate=$(jnum "$work/b.json" accepted_events_per_s)
b_lag=$(calc "$t_done - $b_end")
stored_b=$(psql_bench -c 'SELECT count(*) FROM events' </dev/null)
((stored_b == acc_b)) || die "(b) events holds $stored_b rows, $acc_b were accepted"
say "(b) $(fmt_int "$e2e_rate") events/s end to end (last stored ${b_lag}s after last accept)"

# (c) bare COPY of the same rows into a plain table
cols='tenant_id, message_id, event_type, user_id, anonymous_id, occurred_at, received_at, sent_at, properties, context'
psql_bench -c "\\copy (SELECT $cols FROM events) TO '$work/rows.copy'" </dev/null
copy_bytes=$(stat -c %s "$work/rows.copy")
psql_bench </dev/null -c "CREATE TABLE bench_copy (tenant_id uuid, message_id text,
    event_type text, user_id text, anonymous_id text, occurred_at timestamptz,
    received_at timestamptz, sent_at timestamptz, properties jsonb, context jsonb)" \
    -c 'CHECKPOINT' >/dev/null
say "(c) bare COPY of $stored_b rows ($((copy_bytes / 1048576)) MiB) into an unindexed table"
# The COPY's backend reads its own /proc/self/stat before and after (server on this machine;
# needs a superuser or pg_read_server_files: otherwise no CPU figure for (c)).
stat_sql="SELECT 'eo-stat ' || pg_read_file('/proc/self/stat');"
psql_bench -c "$stat_sql" </dev/null >/dev/null 2>&1 || stat_sql=''
copy_out=$(printf '%s\n' "$stat_sql" '\timing on' "\\copy bench_copy FROM '$work/rows.copy'" \
    '\timing off' "$stat_sql" | psql_bench)
copy_ms=$(sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' <<<"$copy_out" | tail -n 1)
[[ -n $copy_ms ]] || die "(c) no timing from psql: $copy_out"
# CPU ticks (utime + stime) in a /proc/PID/stat line.
stat_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' <<<"$1"; }
copy_pg_us=''
if [[ -n $stat_sql ]]; then
    copy_ticks=$(($(stat_ticks "$(grep '^eo-stat ' <<<"$copy_out" | tail -n 1)") -
        $(stat_ticks "$(grep '^eo-stat ' <<<"$copy_out" | head -n 1)")))
else
    say "note: (c) cannot read the COPY backend's /proc/self/stat (not a superuser): no CPU per row"
fi
copied=$(psql_bench -c 'SELECT count(*) FROM bench_copy' </dev/null)
((copied == stored_b)) || die "(c) bench_copy holds $copied rows, expected $stored_b"
copy_rate=$(calc "$copied / ($copy_ms / 1000)")
[[ -z $stat_sql ]] || copy_pg_us=$(calc "1000000 * $copy_ticks / $clk_tck / $copied")
ratio=$(calc "$e2e_rate / $copy_rate")
say "(c) $(fmt_int "$copy_rate") rows/s; b/c = $(printf '%.2f' "$ratio")"

# (d) accept latency at half load, both roles running
half_rate=$(printf '%.0f' "${BENCH_HALF_RATE:-$(calc "$rate_a / 2")}")
stored
base_d=$stored_n
a_collector_pid=${pids[collector]}
if ((RT > 0)); then # (d) with the request path under SCHED_RR: a collector started so
    stop_role collector
    start_role collector collector "EVENTOPS_COLLECTOR_RT_PRIORITY=$RT"
    wait_collector
    rt_broker_on
    loadgen_rt=1
fi
say "(d) half load: $HALF_N events at $(fmt_int "$half_rate") events/s"
loadgen "$work/d.json" --events "$HALF_N" --rate "$half_rate" --seed 3
cpu_end '(d) sending' "$work/d.json"
loadgen_rt=0
rt_broker_off
acc_d=$(jnum "$work/d.json" events_accepted)
d_end=$(jnum "$work/d.json" end_unix)
wait_stored $((base_d + acc_d)) "$base_d"
d_lag=$(calc "$t_done - $d_end")
dead=$(dead_letters)

if ((PERF)); then
    say "perf reports (each takes a while)"
    perf_role a collector "$a_collector_pid" collector
    perf_role a2 processor "$a2_proc_pids" processor
    [[ -z $a2_pg_pids ]] || perf_role a2 pg "$a2_pg_pids" 'PostgreSQL backends'
fi

# ---------------------------------------------------------------------------------------------
# Report

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && commit+=-dirty
cpu=$(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
cores=$(nproc)
bpe=$(jnum "$work/a.json" bytes_per_event)
floor=FAIL
fcmp "$e2e_rate >= 20000" && floor=PASS
lat() { printf '%s/%s/%s/%s' "$(jnum "$1" latency_p50_ms)" "$(jnum "$1" latency_p90_ms)" \
    "$(jnum "$1" latency_p99_ms)" "$(jnum "$1" latency_max_ms)"; }
# PASS when $1 <= $2.
target() { if fcmp "$1 <= $2"; then echo PASS; else echo FAIL; fi; }
row() { printf '%-44s %10s %9s %11s  %s\n' "$@"; }

{
    echo
    echo "EventOps ingest benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
    echo "machine: $cores cores ($cpu), $mem_gib GiB RAM, $(uname -sr); load average before: $load_before"
    echo "stack: PostgreSQL $pg_version (fsync on, synchronous_commit on), Kafka on the same machine"
    echo "scheduling: $sched_note"
    echo "load: $N events per phase, batch $BATCH, $CONNS connections, ~$bpe bytes/event JSON," \
        "$PARTITIONS partitions, $PROCS processor(s); everything on this one machine"
    echo
    row phase events seconds events/s 'latency ms p50/p90/p99/max'
    row '(a)  accepted, collector only' "$acc_a" "$(jnum "$work/a.json" elapsed_s | cut -c1-6)" \
        "$(fmt_int "$rate_a")" "$(lat "$work/a.json")"
    row '(a2) processor drain of (a) backlog' "$((acc_a - n_first_a2))" "${drain_s:0:6}" \
        "$(fmt_int "$drain_rate")" "(incl. start-up: $(fmt_int "$drain_rate_cold")/s)"
    row '(b)  end to end: accepted and stored' "$acc_b" "$(printf '%.3f' "$e2e_s")" \
        "$(fmt_int "$e2e_rate")" "accept rate $(fmt_int "$b_accept_rate")/s; stored ${b_lag:0:5}s after last 202"
    row '(c)  bare COPY, unindexed table' "$copied" "$(calc "$copy_ms / 1000" | cut -c1-6)" \
        "$(fmt_int "$copy_rate")" "$((copy_bytes / 1048576)) MiB of COPY text"
    row "(d)  accept at half load ($(fmt_int "$half_rate")/s)" "$acc_d" \
        "$(jnum "$work/d.json" elapsed_s | cut -c1-6)" \
        "$(fmt_int "$(jnum "$work/d.json" accepted_events_per_s)")" "$(lat "$work/d.json")"
    echo
    printf 'b/c (end to end / bare COPY) = %.2f\n' "$ratio"
    printf 'floor >= 20,000 events/s end to end: %s\n' "$floor"
    printf '(d) p99 accept latency: %s ms from send, %s ms from schedule (target < 5 ms);' \
        "$(jnum "$work/d.json" latency_p99_ms)" "$(jnum "$work/d.json" sched_latency_p99_ms)"
    printf ' all stored %.2fs after the last 202\n' "$d_lag"
    printf 'CPU, %% of one core (machine: every process, other users too; kafka: shared broker):\n%s' \
        "$cpu_report"
    printf 'CPU, us per event (user + system from /proc; pg: this database'"'"'s backends only, not the\n'
    printf 'WAL writer or checkpointer; kafka: the shared broker):\n%s' "$cpu_us_report"
    if [[ -n $copy_pg_us ]]; then
        printf '  (c) bare COPY backend: %.2f us/row; pg per row / bare COPY per row: (a2) %.2f, (b) %.2f\n' \
            "$copy_pg_us" "$(calc "${cpu_us[a2:pg]} / $copy_pg_us")" \
            "$(calc "${cpu_us[b:pg]} / $copy_pg_us")"
    fi
    printf 'issue 13 targets: collector (a) <= 5 us/event: %s; processor (a2) <= 6 us/event: %s;' \
        "$(target "${cpu_us[a:collector]}" 5)" "$(target "${cpu_us[a2:processor]}" 6)"
    printf ' pg (a2) <= 2x bare COPY: %s\n' \
        "$([[ -n $copy_pg_us ]] && target "${cpu_us[a2:pg]}" "$(calc "2 * $copy_pg_us")" || echo n/a)"
    if ((PERF)); then
        printf 'perf (BENCH_PERF=1: rates and CPU above include the sampling; files in %s):\n%s' \
            "$work" "$perf_summary"
    fi
    printf 'not accepted (non-202 requests a/b/d): %s/%s/%s; dead-letter batches: %s\n' \
        "$(jnum "$work/a.json" requests_non202)" "$(jnum "$work/b.json" requests_non202)" \
        "$(jnum "$work/d.json" requests_non202)" "$dead"
} >&2
printf '{"bench":"eventops-ingest","date":"%s","commit":"%s","cores":%s,"events":%s,"batch":%s,' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$cores" "$N" "$BATCH"
printf '"connections":%s,"processors":'"$PROCS"',"accepted_events_per_s":%.0f,"drain_events_per_s":%.0f,' \
    "$CONNS" "$rate_a" "$drain_rate"
printf '"e2e_events_per_s":%.0f,"copy_rows_per_s":%.0f,"e2e_over_copy":%.3f,' \
    "$e2e_rate" "$copy_rate" "$ratio"
printf '"accept_p99_ms":%s,"half_load_rate":%s,"half_load_p50_ms":%s,"half_load_p99_ms":%s,' \
    "$(jnum "$work/a.json" latency_p99_ms)" "$half_rate" "$(jnum "$work/d.json" latency_p50_ms)" \
    "$(jnum "$work/d.json" latency_p99_ms)"
printf '"half_load_sched_p99_ms":%s,"floor_20k":"%s","rt_priority":%s,"rt_broker":%s,' \
    "$(jnum "$work/d.json" sched_latency_p99_ms)" "$floor" "$RT" "$rt_broker_used"
printf '"cpu_us_per_event":{'
sep=''
for ph in a a2 b; do
    printf '%s"%s":{"collector":%.2f,"processor":%.2f,"pg":%.2f,"kafka":%.2f}' "$sep" "$ph" \
        "${cpu_us[$ph:collector]}" "${cpu_us[$ph:processor]}" "${cpu_us[$ph:pg]}" \
        "${cpu_us[$ph:kafka]}"
    sep=,
done
if [[ -n $copy_pg_us ]]; then
    printf '},"copy_pg_us_per_row":%.2f,"pg_over_copy_a2":%.3f,"pg_over_copy_b":%.3f}\n' \
        "$copy_pg_us" "$(calc "${cpu_us[a2:pg]} / $copy_pg_us")" \
        "$(calc "${cpu_us[b:pg]} / $copy_pg_us")"
else
    printf '},"copy_pg_us_per_row":null,"pg_over_copy_a2":null,"pg_over_copy_b":null}\n'
fi
