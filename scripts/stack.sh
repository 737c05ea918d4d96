#!/usr/bin/env bash
# Local development and test stack for EventOps: PostgreSQL 15, Redis and a one-node Apache Kafka
# 4.1.1 (KRaft, broker and controller in one process). Everything listens on 127.0.0.1 only and
# keeps its state under $EVENTOPS_STACK_DIR (default <repo>/.stack); the machine's own
# PostgreSQL and Redis services are never touched.
#
#   scripts/stack.sh up              start what is not running; wait until all of it answers
#   scripts/stack.sh down [--purge]  stop everything; --purge also deletes data and logs
#   scripts/stack.sh env             export lines for the stack: eval "$(scripts/stack.sh env)"
#   scripts/stack.sh status          one line per service; exit 0 only when all of them answer
#   scripts/stack.sh psql [ARGS...]  psql to the stack database, ARGS passed on
#
# Ports: EVENTOPS_STACK_PG_PORT (55432), EVENTOPS_STACK_REDIS_PORT (56379),
# EVENTOPS_STACK_KAFKA_PORT (59092), EVENTOPS_STACK_KAFKA_CONTROLLER_PORT (59093).
# Partitions of eventops.events: EVENTOPS_STACK_EVENTS_PARTITIONS (6, used when it is created).
# Start timeouts in seconds: EVENTOPS_STACK_{PG,REDIS,KAFKA}_TIMEOUT (60, 15, 90).
# `up` records the ports it used in <stack>/ports, so later commands find a stack started with
# other ports without the variables being set again.
# Packages: scripts/deps.sh. Kafka jars come from Maven Central (scripts/kafka/pom.xml).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
# Canonical (symlinks resolved): process working directories are compared against it.
STACK_DIR=$(realpath -m -- "${EVENTOPS_STACK_DIR:-$ROOT/.stack}")

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/log/postgres.log
REDIS_DIR=$STACK_DIR/redis
REDIS_PIDFILE=$REDIS_DIR/redis.pid
REDIS_LOG=$REDIS_DIR/redis.log
KAFKA_DIR=$STACK_DIR/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_STAMP=$KAFKA_DIR/libs.stamp
KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_LOGS=$KAFKA_DIR/logs
KAFKA_POM=$ROOT/scripts/kafka/pom.xml
KAFKA_LOG4J=$ROOT/scripts/kafka/log4j2.properties

EVENTS_TOPIC=eventops.events
DLQ_TOPIC=eventops.events.dlq
# The analytics role's topics (EVENTOPS_ANALYTICS_*_TOPIC defaults): summaries; window results,
# late events and the compacted state changelog with the events topic's partition count.
SUMMARIES_TOPIC=eventops.summaries
WINDOWS_TOPIC=eventops.analytics.windows
LATE_TOPIC=eventops.analytics.late
CHANGELOG_TOPIC=eventops.analytics.changelog
EVENTS_PARTITIONS=${EVENTOPS_STACK_EVENTS_PARTITIONS:-6}

# Seconds to wait for each service to answer (a slow CI machine may want more).
PG_TIMEOUT=${EVENTOPS_STACK_PG_TIMEOUT:-60}
REDIS_TIMEOUT=${EVENTOPS_STACK_REDIS_TIMEOUT:-15}
KAFKA_TIMEOUT=${EVENTOPS_STACK_KAFKA_TIMEOUT:-90}
# The broker's JVM options (memory and garbage collector), split on spaces.
read -r -a KAFKA_JVM <<<"${EVENTOPS_STACK_KAFKA_JVM_OPTS:--Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20}"
KAFKA_STOP_TIMEOUT=30

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Prints the last lines of each existing log file given, to stderr.
log_tail() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        printf -- '---- last lines of %s ----\n' "$f" >&2
        tail -n 25 -- "$f" >&2
    done
}

# Sets PG_PORT, REDIS_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT: environment first, then the ports
# recorded by the last `up`, then the defaults.
load_ports() {
    local key value rec_pg='' rec_redis='' rec_kafka='' rec_ctl=''
    if [[ -f $STACK_DIR/ports ]]; then
        while IFS='=' read -r key value; do
            case $key in
                pg) rec_pg=$value ;;
                redis) rec_redis=$value ;;
                kafka) rec_kafka=$value ;;
                kafka_controller) rec_ctl=$value ;;
            esac
        done <"$STACK_DIR/ports"
    fi
    PG_PORT=${EVENTOPS_STACK_PG_PORT:-${rec_pg:-55432}}
    REDIS_PORT=${EVENTOPS_STACK_REDIS_PORT:-${rec_redis:-56379}}
    KAFKA_PORT=${EVENTOPS_STACK_KAFKA_PORT:-${rec_kafka:-59092}}
    KAFKA_CONTROLLER_PORT=${EVENTOPS_STACK_KAFKA_CONTROLLER_PORT:-${rec_ctl:-59093}}
    local p
    for p in "$PG_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        # shellcheck disable=SC2015 # die when either test fails
        [[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "bad port: '$p'"
    done
    [[ $EVENTS_PARTITIONS =~ ^[1-9][0-9]*$ ]] ||
        die "bad EVENTOPS_STACK_EVENTS_PARTITIONS: '$EVENTS_PARTITIONS'"
    [[ $PG_TIMEOUT$REDIS_TIMEOUT$KAFKA_TIMEOUT =~ ^[0-9]+$ ]] ||
        die "bad EVENTOPS_STACK_*_TIMEOUT: '$PG_TIMEOUT' '$REDIS_TIMEOUT' '$KAFKA_TIMEOUT'"
    KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
}

ports_record() {
    printf 'pg=%s\nredis=%s\nkafka=%s\nkafka_controller=%s\n' \
        "$PG_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
}

# True when something listens on port $1 (needs ss from iproute2). A process that was just
# killed may hold its listening socket for a moment, so a busy port is retried for 10 s.
port_busy() {
    command -v ss >/dev/null || return 1
    local start=$SECONDS
    while [[ -n $(ss -Hltn "( sport = :$1 )" 2>/dev/null) ]]; do
        ((SECONDS - start < 10)) || return 0
        sleep 0.2
    done
    return 1
}

# True when process $1 exists and is not a zombie (a killed daemon stays a zombie until its
# parent, often PID 1, reaps it).
pid_alive() {
    local stat
    [[ ${1:-} =~ ^[0-9]+$ ]] || return 1
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

read_pidfile() {
    local pid=''
    [[ -f $1 ]] && read -r pid <"$1" 2>/dev/null
    printf '%s' "${pid:-}"
}

# True when process $1 runs program $2 (its comm) with working directory $3. When the working
# directory cannot be read (a non-root user looking at a root-started stack), comm decides.
proc_is() {
    local pid=$1 comm=$2 dir=$3 actual cwd
    pid_alive "$pid" || return 1
    actual=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $actual == "$comm" ]] || return 1
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 0
    [[ $cwd == "$dir" ]]
}

# Sends SIGTERM to $1, waits up to $2 seconds, then SIGKILL. Returns once the process is gone.
stop_pid() {
    local pid=$1 timeout=$2 start=$SECONDS
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # a stopped process acts on SIGTERM only once resumed
    while pid_alive "$pid" && ((SECONDS - start < timeout)); do sleep 0.2; done
    if pid_alive "$pid"; then
        say "pid $pid still alive after ${timeout}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while pid_alive "$pid"; do sleep 0.1; done
    fi
}

need() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null || [[ -x $cmd ]] || die "$cmd not found: run scripts/deps.sh"
    done
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL: own cluster in pg/data, run as the postgres OS user when we are root.

if ((EUID == 0)); then
    RUNUSER=$(command -v runuser || echo /usr/sbin/runuser)
    as_pg() { (cd "$PG_DIR" && "$RUNUSER" -u postgres -- "$@"); }
else
    as_pg() { (cd "$PG_DIR" && "$@"); }
fi

# Prints the postmaster pid when postmaster.pid names a live postgres of this cluster.
pg_pid() {
    local pid
    pid=$(read_pidfile "$PG_DATA/postmaster.pid")
    proc_is "$pid" postgres "$PG_DATA" && printf '%s' "$pid"
}

# Runs SQL $2 in database $1; prints unaligned rows.
pg_sql() {
    PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
        -U eventops -d "$1" -c "$2" </dev/null
}

pg_answers() {
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U eventops -d eventops -t 2 &&
        [[ $(pg_sql eventops 'select 1' 2>/dev/null) == 1 ]]
}

# Ends processes left over from a killed postmaster (backends still in the data directory) and
# removes a postmaster.pid that names no live postmaster of ours.
pg_cleanup() {
    local pid d comm start=$SECONDS left
    while :; do
        left=()
        for d in /proc/[0-9]*; do
            comm=''
            { read -r comm <"$d/comm"; } 2>/dev/null || continue
            [[ $comm == postgres ]] || continue
            [[ $(readlink "$d/cwd" 2>/dev/null) == "$PG_DATA" ]] && left+=("${d#/proc/}")
        done
        ((${#left[@]} == 0)) && break
        if ((SECONDS - start >= 10)); then
            say "postgres: killing leftover processes ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.5
        else
            sleep 0.2
        fi
    done
    if [[ -f $PG_DATA/postmaster.pid ]]; then
        say "postgres: removing stale postmaster.pid"
        rm -f "$PG_DATA/postmaster.pid"
    fi
    # The socket's lock file names the old postmaster too; postgres refuses to start while that
    # pid exists, and a killed postmaster stays a zombie until it is reaped.
    rm -f "$PG_DIR/run"/.s.PGSQL.*
}

pg_write_conf() {
    local sockdir=$PG_DIR/run
    mkdir -p "$sockdir"
    ((EUID == 0)) && chown postgres: "$sockdir"
    # A Unix socket path is limited to 107 bytes; past that, TCP only.
    ((${#sockdir} + 18 > 107)) && sockdir=''
    cat >"$PG_DATA/eventops.conf" <<EOF
# Written by scripts/stack.sh on every start: edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '${sockdir//\'/\'\'}'
max_connections = 200
shared_buffers = 4GB
fsync = on
synchronous_commit = on
max_wal_size = 16GB
wal_compression = lz4
checkpoint_timeout = 15min
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    ((EUID == 0)) && chown postgres: "$PG_DATA/eventops.conf"
    return 0
}

pg_init() {
    say "postgres: initdb in $PG_DATA"
    rm -rf "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U eventops -A trust --no-locale -E UTF8 \
        >"$PG_DIR/log/initdb.log" 2>&1 || {
        log_tail "$PG_DIR/log/initdb.log"
        die "postgres: initdb failed"
    }
    cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# Written by scripts/stack.sh: trust, on 127.0.0.1 only (the server listens nowhere else).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
EOF
    printf "\ninclude 'eventops.conf'\n" >>"$PG_DATA/postgresql.conf"
    ((EUID == 0)) && chown postgres: "$PG_DATA/pg_hba.conf"
    return 0
}

pg_start() {
    [[ -f $PG_DATA/PG_VERSION ]] || pg_init
    pg_write_conf
    port_busy "$PG_PORT" && die "postgres: port $PG_PORT is taken by another program" \
        "(set EVENTOPS_STACK_PG_PORT)"
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_TIMEOUT" -s start \
        </dev/null >/dev/null 2>&1 9>&- || return 1
    local start=$SECONDS
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U eventops -d postgres -t 2; do
        ((SECONDS - start < PG_TIMEOUT)) || return 1
        sleep 0.2
    done
    if [[ -z $(pg_sql postgres "select 1 from pg_database where datname = 'eventops'") ]]; then
        say "postgres: creating database eventops"
        pg_sql postgres 'create database eventops' >/dev/null
    fi
    pg_answers
}

pg_up() {
    mkdir -p "$PG_DIR/log"
    if ((EUID == 0)); then
        chown postgres: "$PG_DIR" "$PG_DIR/log"
        # A clone under a private home (mode 700) hides the folder from the postgres user:
        # grant search permission only (o+x, no listing) on the parents that lack it.
        local d=$PG_DIR
        while [[ $d != / ]]; do
            d=$(dirname "$d")
            if ! "$RUNUSER" -u postgres -- test -x "$d" 2>/dev/null; then
                say "postgres: granting search permission (o+x) on $d"
                chmod o+x "$d"
            fi
        done
        as_pg test -w "$PG_DIR" 2>/dev/null || die "postgres: the postgres user cannot write" \
            "$PG_DIR (a parent directory not searchable?): set EVENTOPS_STACK_DIR elsewhere"
    fi
    local pid
    if pid=$(pg_pid); then
        if pg_answers; then
            say "postgres: already running (pid $pid, 127.0.0.1:$PG_PORT)"
            return 0
        fi
        say "postgres: pid $pid alive but not answering: waiting up to ${PG_TIMEOUT}s"
        local start=$SECONDS
        until pg_answers; do
            if ((SECONDS - start >= PG_TIMEOUT)) || ! pid_alive "$pid"; then
                say "postgres: not answering: restarting"
                as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 -s stop \
                    </dev/null >/dev/null 2>&1 || stop_pid "$pid" 10
                break
            fi
            sleep 0.5
        done
        pg_answers && { say "postgres: ready (pid $pid)"; return 0; }
    fi
    pg_cleanup
    if ! pg_start; then
        log_tail "$PG_LOG"
        die "postgres: did not start (log: $PG_LOG)"
    fi
    say "postgres: ready (pid $(pg_pid || echo '?'), 127.0.0.1:$PG_PORT)"
}

pg_down() {
    [[ -d $PG_DATA ]] || return 0
    local pid
    if pid=$(pg_pid); then
        say "postgres: stopping (pid $pid)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop \
            </dev/null >/dev/null 2>&1 || stop_pid "$pid" 10
    fi
    pg_cleanup
}

# ---------------------------------------------------------------------------------------------
# Redis: the OS package's redis-server with a config of our own in redis/.

redis_pid() {
    local pid
    pid=$(read_pidfile "$REDIS_PIDFILE")
    proc_is "$pid" redis-server "$REDIS_DIR/data" && printf '%s' "$pid"
}

redis_answers() {
    [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_up() {
    mkdir -p "$REDIS_DIR/data"
    local pid
    if pid=$(redis_pid); then
        if redis_answers; then
            say "redis: already running (pid $pid, 127.0.0.1:$REDIS_PORT)"
            return 0
        fi
        say "redis: pid $pid alive but not answering: restarting"
        stop_pid "$pid" 10
    fi
    if [[ -f $REDIS_PIDFILE ]]; then
        say "redis: removing stale pid file"
        rm -f "$REDIS_PIDFILE"
    fi
    port_busy "$REDIS_PORT" && die "redis: port $REDIS_PORT is taken by another program" \
        "(set EVENTOPS_STACK_REDIS_PORT)"
    cat >"$REDIS_DIR/redis.conf" <<EOF
# Written by scripts/stack.sh on every start: edit the script, not this file.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$REDIS_PIDFILE"
logfile "$REDIS_LOG"
dir "$REDIS_DIR/data"
appendonly no
save ""
EOF
    say "redis: starting on 127.0.0.1:$REDIS_PORT"
    redis-server "$REDIS_DIR/redis.conf" </dev/null >/dev/null 2>&1 9>&- || true
    local start=$SECONDS
    until redis_answers; do
        if ((SECONDS - start >= REDIS_TIMEOUT)); then
            log_tail "$REDIS_LOG"
            die "redis: not answering after ${REDIS_TIMEOUT}s (log: $REDIS_LOG)"
        fi
        sleep 0.1
    done
    start=$SECONDS
    until pid=$(redis_pid); do
        ((SECONDS - start < 5)) || die "redis: answers but wrote no pid file $REDIS_PIDFILE"
        sleep 0.1
    done
    say "redis: ready (pid $pid, 127.0.0.1:$REDIS_PORT)"
}

redis_down() {
    local pid
    if pid=$(redis_pid); then
        say "redis: stopping (pid $pid)"
        timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        local start=$SECONDS
        while pid_alive "$pid" && ((SECONDS - start < 10)); do sleep 0.1; done
        stop_pid "$pid" 5
    fi
    rm -f "$REDIS_PIDFILE"
}

# ---------------------------------------------------------------------------------------------
# Kafka: one JVM in KRaft combined mode, jars fetched by Maven into kafka/libs.

KAFKA_TOOL_JVM=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto)

kafka_pid() {
    local pid args
    pid=$(read_pidfile "$KAFKA_PIDFILE")
    pid_alive "$pid" || return 1
    args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $args == *" kafka.Kafka $KAFKA_PROPS"* ]] || return 1
    printf '%s' "$pid"
}

# Prints kcat's metadata listing (all topics) when the broker answers.
kafka_metadata() { timeout 10 kcat -b "$KAFKA_BROKERS" -L -m 2 2>/dev/null; }

# True when metadata output $1 shows topic $2 with at least one partition.
has_topic() { grep -Eq "^ +topic \"${2//./\\.}\" with [1-9][0-9]* partitions" <<<"$1"; }

# True when the broker answers, both topics exist and every partition has a leader.
kafka_answers() {
    local md
    md=$(kafka_metadata) || return 1
    has_topic "$md" "$EVENTS_TOPIC" && has_topic "$md" "$DLQ_TOPIC" &&
        ! grep -q 'leader -1' <<<"$md"
}

kafka_libs() {
    local want
    want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
    if [[ -d $KAFKA_LIBS && -f $KAFKA_STAMP && $(<"$KAFKA_STAMP") == "$want" ]]; then
        return 0
    fi
    need mvn
    say "kafka: fetching jars with Maven (scripts/kafka/pom.xml)"
    rm -rf "$KAFKA_LIBS" "$KAFKA_LIBS.tmp" "$KAFKA_STAMP"
    mkdir -p "$KAFKA_LOGS"
    if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" </dev/null \
        >"$KAFKA_LOGS/maven.log" 2>&1; then
        rm -rf "$KAFKA_LIBS.tmp"
        log_tail "$KAFKA_LOGS/maven.log"
        die "kafka: Maven could not fetch the jars"
    fi
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    printf '%s\n' "$want" >"$KAFKA_STAMP"
}

# Runs a Kafka tool class with the jars; its log goes to kafka/logs/tools.log.
kafka_tool() {
    java "${KAFKA_TOOL_JVM[@]}" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
        -Dkafka.logs.dir="$KAFKA_LOGS" -Deventops.kafka.log.name=tools \
        -cp "$KAFKA_LIBS/*" "$@" </dev/null
}

kafka_write_props() {
    cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/stack.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
}

# A cluster id as Kafka wants it: 16 random bytes, URL-safe base64 without padding.
kafka_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ $id == -* ]] || break
    done
    printf '%s' "$id"
}

kafka_format() {
    [[ -f $KAFKA_DIR/data/meta.properties ]] && return 0
    rm -rf "$KAFKA_DIR/data"
    local id
    id=$(kafka_cluster_id)
    say "kafka: formatting storage (cluster id $id)"
    kafka_tool kafka.tools.StorageTool format -t "$id" -c "$KAFKA_PROPS" \
        >"$KAFKA_LOGS/format.out" 2>&1 || {
        log_tail "$KAFKA_LOGS/format.out"
        die "kafka: storage format failed"
    }
}

kafka_launch() {
    port_busy "$KAFKA_PORT" && die "kafka: port $KAFKA_PORT is taken by another program" \
        "(set EVENTOPS_STACK_KAFKA_PORT)"
    port_busy "$KAFKA_CONTROLLER_PORT" && die "kafka: port $KAFKA_CONTROLLER_PORT is taken by" \
        "another program (set EVENTOPS_STACK_KAFKA_CONTROLLER_PORT)"
    say "kafka: starting on $KAFKA_BROKERS"
    rm -f "$KAFKA_PIDFILE"
    # setsid: the broker outlives this script and its terminal. The inner shell writes its own
    # pid, which exec hands to java.
    # shellcheck disable=SC2016 # expanded by the inner sh
    (cd "$KAFKA_DIR" && exec setsid sh -c 'echo $$ >"$0" && exec "$@"' "$KAFKA_PIDFILE" \
        java "${KAFKA_JVM[@]}" -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
        </dev/null >>"$KAFKA_LOGS/kafka.out" 2>&1 9>&-) &
    local start=$SECONDS
    until [[ -s $KAFKA_PIDFILE ]]; do
        ((SECONDS - start < 5)) || die "kafka: launcher wrote no pid file"
        sleep 0.05
    done
}

# Waits until the broker returns metadata; 0 when it does, 1 on timeout, 2 when it died.
kafka_wait() {
    local pid=$1 start=$SECONDS
    until kafka_metadata >/dev/null; do
        pid_alive "$pid" || return 2
        ((SECONDS - start < KAFKA_TIMEOUT)) || return 1
        sleep 0.5
    done
}

kafka_topics() {
    local md pids=() pid rc=0 n
    md=$(kafka_metadata) || return 1
    if ! has_topic "$md" "$EVENTS_TOPIC"; then
        say "kafka: creating topic $EVENTS_TOPIC ($EVENTS_PARTITIONS partitions)"
        kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
            --create --if-not-exists --topic "$EVENTS_TOPIC" --partitions "$EVENTS_PARTITIONS" \
            --replication-factor 1 --config retention.ms=604800000 \
            --config min.insync.replicas=1 --config compression.type=producer \
            >"$KAFKA_LOGS/topic-events.out" 2>&1 &
        pids+=($!)
    fi
    if ! has_topic "$md" "$DLQ_TOPIC"; then
        say "kafka: creating topic $DLQ_TOPIC (3 partitions)"
        kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
            --create --if-not-exists --topic "$DLQ_TOPIC" --partitions 3 \
            --replication-factor 1 --config retention.ms=2592000000 \
            >"$KAFKA_LOGS/topic-dlq.out" 2>&1 &
        pids+=($!)
    fi
    local name parts config
    while read -r name parts config; do
        has_topic "$md" "$name" && continue
        say "kafka: creating topic $name ($parts partitions)"
        # shellcheck disable=SC2086 # config is a list of --config options
        kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
            --create --if-not-exists --topic "$name" --partitions "$parts" \
            --replication-factor 1 $config >"$KAFKA_LOGS/topic-$name.out" 2>&1 &
        pids+=($!)
    done <<EOF
$SUMMARIES_TOPIC 3 --config retention.ms=2592000000
$WINDOWS_TOPIC $EVENTS_PARTITIONS --config retention.ms=604800000
$LATE_TOPIC $EVENTS_PARTITIONS --config retention.ms=2592000000
$CHANGELOG_TOPIC $EVENTS_PARTITIONS --config cleanup.policy=compact
EOF
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    if ((rc != 0)); then
        log_tail "$KAFKA_LOGS"/topic-*.out
        return 1
    fi
    # The topics must show up in metadata with their leaders (kcat is faster than the JVM).
    local start=$SECONDS
    until md=$(timeout 10 kcat -b "$KAFKA_BROKERS" -L -m 2 -t "$EVENTS_TOPIC" 2>/dev/null) &&
        has_topic "$md" "$EVENTS_TOPIC" && kafka_answers; do
        ((SECONDS - start < 30)) || return 1
        sleep 0.2
    done
    n=$(sed -nE "s/^ +topic \"${EVENTS_TOPIC//./\\.}\" with ([0-9]+) partitions.*/\1/p" <<<"$md")
    [[ $n == "$EVENTS_PARTITIONS" ]] ||
        say "kafka: note: $EVENTS_TOPIC has $n partitions, not $EVENTS_PARTITIONS (left as is)"
    return 0
}

kafka_up() {
    mkdir -p "$KAFKA_LOGS"
    local pid attempt rc
    if pid=$(kafka_pid); then
        if kafka_answers; then
            say "kafka: already running (pid $pid, $KAFKA_BROKERS)"
            return 0
        fi
    else
        if [[ -f $KAFKA_PIDFILE ]]; then
            say "kafka: removing stale pid file"
            rm -f "$KAFKA_PIDFILE"
        fi
        pid=''
    fi
    need java kcat
    for attempt in 1 2; do
        if [[ -z $pid ]]; then
            kafka_libs
            kafka_write_props
            kafka_format
            kafka_launch
            pid=$(read_pidfile "$KAFKA_PIDFILE")
        else
            say "kafka: pid $pid alive but not answering: waiting up to ${KAFKA_TIMEOUT}s"
        fi
        rc=0
        kafka_wait "$pid" || rc=$?
        if ((rc == 0)); then
            if kafka_topics; then
                say "kafka: ready (pid $pid, $KAFKA_BROKERS)"
                return 0
            fi
            say "kafka: topics not ready"
        elif ((rc == 2)); then
            say "kafka: process $pid exited"
            break
        else
            say "kafka: no answer after ${KAFKA_TIMEOUT}s"
        fi
        ((attempt == 1)) || break
        say "kafka: killing pid $pid and starting once more"
        stop_pid "$pid" 10
        rm -f "$KAFKA_PIDFILE"
        pid=''
    done
    log_tail "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/kafka.out"
    die "kafka: did not start (logs: $KAFKA_LOGS)"
}

kafka_down() {
    local pid
    if pid=$(kafka_pid); then
        say "kafka: stopping (pid $pid)"
        stop_pid "$pid" "$KAFKA_STOP_TIMEOUT"
    fi
    rm -f "$KAFKA_PIDFILE"
}

# ---------------------------------------------------------------------------------------------

# Serializes up and down: two at once would start or stop the same services. Every daemon is
# started with 9>&- so none of them holds the lock.
take_lock() {
    mkdir -p "$STACK_DIR"
    [[ -f $STACK_DIR/.gitignore ]] || printf '*\n' >"$STACK_DIR/.gitignore"
    exec 9>"$STACK_DIR/.lock"
    if ! flock -n 9; then
        say "waiting for another scripts/stack.sh up/down to finish"
        flock -w 600 9 || die "lock $STACK_DIR/.lock still held after 600s"
    fi
}

# Runs the functions given in parallel, each in a subshell; sets PARALLEL_FAILED to how many
# failed. Called as a plain command (not under if, ! or ||) so that set -e holds inside them.
run_parallel() {
    local fn pids=() pid
    PARALLEL_FAILED=0
    for fn in "$@"; do
        ("$fn") &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || PARALLEL_FAILED=$((PARALLEL_FAILED + 1))
    done
}

cmd_up() {
    local start=$SECONDS running=''
    load_ports
    need "$PG_BIN/postgres" redis-server redis-cli setsid flock
    take_lock
    if [[ -f $STACK_DIR/ports && $(<"$STACK_DIR/ports") != "$(ports_record)" ]]; then
        pg_pid >/dev/null && running+=' postgres'
        redis_pid >/dev/null && running+=' redis'
        kafka_pid >/dev/null && running+=' kafka'
        [[ -z $running ]] ||
            die "running on other ports ($(tr '\n' ' ' <"$STACK_DIR/ports")):$running;" \
                "run 'scripts/stack.sh down' first"
    fi
    ports_record >"$STACK_DIR/ports"
    run_parallel pg_up redis_up kafka_up
    ((PARALLEL_FAILED == 0)) ||
        die "up failed after $((SECONDS - start))s; 'scripts/stack.sh status' shows what runs"
    say "up ($((SECONDS - start))s): eval \"\$(scripts/stack.sh env)\" for the connection settings"
}

cmd_down() {
    local purge=0
    case ${1:-} in
        '') ;;
        --purge) purge=1 ;;
        *) die "usage: scripts/stack.sh down [--purge]" ;;
    esac
    if [[ ! -d $STACK_DIR ]]; then
        say "nothing to stop"
        return 0
    fi
    load_ports
    take_lock
    run_parallel pg_down redis_down kafka_down
    ((PARALLEL_FAILED == 0)) || die "down: a service did not stop cleanly"
    rm -f "$STACK_DIR/ports"
    if ((purge)); then
        say "purging data and logs in $STACK_DIR (Kafka jars kept)"
        rm -rf "$PG_DIR" "$REDIS_DIR" "$KAFKA_DIR/data" "$KAFKA_LOGS" "$KAFKA_PROPS"
    fi
    say "down"
}

# Single-quotes $1 for the shell.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

cmd_env() {
    load_ports
    printf 'export EVENTOPS_PG_DSN=%s\n' \
        "$(shq "host=127.0.0.1 port=$PG_PORT user=eventops dbname=eventops")"
    printf 'export EVENTOPS_KAFKA_BROKERS=%s\n' "$(shq "$KAFKA_BROKERS")"
    printf 'export EVENTOPS_REDIS_URL=%s\n' "$(shq "redis://127.0.0.1:$REDIS_PORT")"
    printf 'export EVENTOPS_KAFKA_EVENTS_TOPIC=%s\n' "$(shq "$EVENTS_TOPIC")"
    printf 'export EVENTOPS_KAFKA_DLQ_TOPIC=%s\n' "$(shq "$DLQ_TOPIC")"
}

cmd_status() {
    load_ports
    local pid bad=0
    status_line() { printf '%-9s %-8s %-12s %-16s %s\n' "$@"; }
    if pid=$(pg_pid 2>/dev/null); then
        if pg_answers; then status_line postgres running "pid $pid" "127.0.0.1:$PG_PORT" answers
        else status_line postgres running "pid $pid" "127.0.0.1:$PG_PORT" 'NOT answering'; bad=1; fi
    else status_line postgres stopped '' '' ''; bad=1; fi
    if pid=$(redis_pid); then
        if redis_answers; then status_line redis running "pid $pid" "127.0.0.1:$REDIS_PORT" answers
        else status_line redis running "pid $pid" "127.0.0.1:$REDIS_PORT" 'NOT answering'; bad=1; fi
    else status_line redis stopped '' '' ''; bad=1; fi
    if pid=$(kafka_pid); then
        if kafka_answers; then status_line kafka running "pid $pid" "$KAFKA_BROKERS" answers
        else status_line kafka running "pid $pid" "$KAFKA_BROKERS" 'NOT answering'; bad=1; fi
    else status_line kafka stopped '' '' ''; bad=1; fi
    return "$bad"
}

cmd_psql() {
    load_ports
    exec "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U eventops -d eventops "$@"
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

case ${1:-} in
    up) shift; (($# == 0)) || usage; cmd_up ;;
    down) shift; cmd_down "$@" ;;
    env) shift; (($# == 0)) || usage; cmd_env ;;
    status) shift; (($# == 0)) || usage; cmd_status ;;
    psql) shift; cmd_psql "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
esac
