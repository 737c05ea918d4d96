#!/usr/bin/env bash
# bench/query_load.sh: bulk-loads the query benchmark's data set into its own database.
#
#   bench/query_load.sh path/to/eventops     (stack env exported: eval "$(scripts/stack.sh env)")
#
# Database BENCH_Q_DB (eo_qbench) on the server of EVENTOPS_PG_DSN: created when missing and
# migrated with `eventops migrate`; kept afterwards (the load is expensive; bench/query.sh reads
# it). Data: BENCH_Q_EVENTS events (50,000,000) over BENCH_Q_DAYS days (120) ending at the
# first run's start, from bench/qgen.c (its header describes the model): 5 tenants (qbench-big
# holds 85%), 20 event types with skewed frequencies, ~1M userIds plus anonymous-only visitors,
# properties with `plan` and `address.city`. The same rows the processor would write: events in
# daily partitions made by eventops_ensure_partition, event_ids, and rollups (minute, quarter, hour, day; per type and all types)
# counted from the loaded rows.
#
# Method, one UTC day per transaction (bench/query_load.sql): the day's partition is detached
# and stripped of its indexes, filled with COPY FREEZE from qgen, its indexes rebuilt (sorted
# builds), attached again, and the day's rollups and event_ids inserted. event_ids' primary key
# is dropped during the load and built once at the end (sorted; it also proves the messageIds
# unique). Then VACUUM ANALYZE of event_ids, rollups and events (parent statistics included),
# and the user sets of every day computed from the loaded rows (`eventops admin
# backfill --all`, ADR-22), and their timelines (ADR-23).
# Resumable: the plan (event count, window end, seed) is stored in qbench.meta at the first
# run; a later run loads only the days not yet loaded, and does nothing when all are. A
# database holding a different plan is refused (BENCH_Q_EVENTS or BENCH_Q_DAYS changed: use
# another BENCH_Q_DB).
#
# Manners on a shared machine: qgen and psql run under nice, and the PostgreSQL backend doing
# the load is reniced (BENCH_Q_NICE, 10) and put in the idle-ish I/O class; no parallel index
# build workers. Progress goes to stderr; the last line gives the load time and rate.
# Other settings: BENCH_Q_SEED (1), CC (cc).
set -euo pipefail
export LC_ALL=C

(($# == 1)) && [[ -x $1 ]] || {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
}
bin=$(realpath -- "$1")
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
N=${BENCH_Q_EVENTS:-50000000}
DAYS=${BENCH_Q_DAYS:-120}
SEED=${BENCH_Q_SEED:-1}
DB=${BENCH_Q_DB:-eo_qbench}
NICE=${BENCH_Q_NICE:-10}
[[ $N =~ ^[1-9][0-9]*$ && $DAYS =~ ^[1-9][0-9]*$ && $SEED =~ ^[0-9]+$ && $NICE =~ ^[0-9]+$ ]] ||
    { echo "query-load: BENCH_Q_EVENTS, BENCH_Q_DAYS, BENCH_Q_SEED, BENCH_Q_NICE: integers" >&2; exit 2; }
[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "query-load: bad BENCH_Q_DB '$DB'" >&2; exit 2; }
: "${EVENTOPS_PG_DSN:?not set: eval \"\$(scripts/stack.sh env)\"}"

say() { printf 'query-load: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
fmt_int() { printf '%.0f' "$1" | sed -E ':a;s/([0-9])([0-9]{3})($|,)/\1,\2\3/;ta'; }

admin_dsn=$EVENTOPS_PG_DSN
if [[ $admin_dsn =~ (^|[[:space:]])dbname= ]]; then
    dsn=$(sed -E "s/(^|[[:space:]])dbname=[^[:space:]]*/\1dbname=$DB/" <<<"$admin_dsn")
else
    dsn="$admin_dsn dbname=$DB"
fi
PSQL=/usr/lib/postgresql/15/bin/psql
[[ -x $PSQL ]] || PSQL=$(command -v psql) || die "psql not found"
q() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" "$@" </dev/null; }

work=$(mktemp -d "${TMPDIR:-/tmp}/eo-qload.XXXXXX")
renicer=''
cleanup() {
    [[ -n $renicer ]] && kill "$renicer" 2>/dev/null && wait "$renicer" 2>/dev/null
    rm -rf -- "$work"
}
trap cleanup EXIT

# The generator.
"${CC:-cc}" -std=c17 -O2 -Wall -Wextra -Werror -Wshadow -Wformat=2 -o "$work/qgen" \
    "$root/bench/qgen.c" -lm || die "cannot build bench/qgen.c"
qgen=$work/qgen

# Database, schema, helpers, tenants.
if [[ -z $("$PSQL" -X -At -d "$admin_dsn" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" </dev/null) ]]; then
    "$PSQL" -X -q -d "$admin_dsn" -c "CREATE DATABASE $DB" </dev/null
    say "created database $DB"
fi
EVENTOPS_PG_DSN=$dsn "$bin" migrate >/dev/null 2>"$work/migrate.log" ||
    die "eventops migrate failed: $(tail -n 3 "$work/migrate.log")"
q -c "SET client_min_messages = warning" -f "$root/bench/query_load.sql" >/dev/null
while IFS=$'\t' read -r tid tname _ _; do
    q -c "INSERT INTO tenants (tenant_id, name) VALUES ('$tid', '$tname') ON CONFLICT DO NOTHING"
done < <("$qgen" tenants)

# The plan: stored at the first run, checked afterwards.
meta=$(q -F ' ' -c "SELECT events, days, end_us, seed, finished_at IS NOT NULL FROM qbench.meta")
if [[ -z $meta ]]; then
    end_us=$(($(date +%s) * 1000000))
    q -c "INSERT INTO qbench.meta (events, days, end_us, seed) VALUES ($N, $DAYS, $end_us, $SEED)"
    "$qgen" plan --events "$N" --days "$DAYS" --end-us "$end_us" --seed "$SEED" |
        cut -f1,2,5 >"$work/plan.tsv"
    q -c "\\copy qbench.days (idx, day, planned) FROM '$work/plan.tsv'"
    finished=f
else
    read -r m_n m_days end_us m_seed finished <<<"$meta"
    [[ $m_n == "$N" && $m_days == "$DAYS" && $m_seed == "$SEED" ]] ||
        die "$DB holds another plan ($m_n events over $m_days days, seed $m_seed): set BENCH_Q_DB to another database"
fi
if [[ $finished == t ]]; then
    say "$DB already holds the $(fmt_int "$N") events (loaded $(q -c "SELECT finished_at FROM qbench.meta")" \
        "in $(q -c "SELECT round(load_seconds) FROM qbench.meta") s): nothing to do"
    exit 0
fi
say "plan: $(fmt_int "$N") events, $DAYS days ending $(date -u -d "@$((end_us / 1000000))" +%Y-%m-%dT%H:%M:%SZ), seed $SEED, database $DB"
first=$(q -c "SELECT min(day) FROM qbench.days")
last=$(q -c "SELECT max(day) FROM qbench.days")
q -c "SELECT eventops_ensure_partitions('$first', '$last')" >/dev/null
# event_ids gets its primary key back in one sorted build at the end.
q -c "SET client_min_messages = warning" -c "ALTER TABLE event_ids DROP CONSTRAINT IF EXISTS event_ids_pkey"

# Renices this load's backends (application_name qbench-load) as they appear.
(
    while :; do
        for pid in $(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'qbench-load'" 2>/dev/null); do
            renice -n "$NICE" -p "$pid" >/dev/null 2>&1 || true
            ionice -c 2 -n 7 -p "$pid" >/dev/null 2>&1 || true
        done
        sleep 2
    done
) &
renicer=$!

t0=$EPOCHREALTIME
done_before=$(q -c "SELECT coalesce(sum(loaded), 0) FROM qbench.days WHERE loaded IS NOT NULL")
loaded_now=0
total_days=$(q -c "SELECT count(*) FROM qbench.days")
while IFS='|' read -r idx day planned; do
    part=events_${day//-/}
    ts=$EPOCHREALTIME
    nice -n "$NICE" "$qgen" day --events "$N" --days "$DAYS" --end-us "$end_us" --seed "$SEED" \
        --day "$idx" |
        PGAPPNAME=qbench-load nice -n "$NICE" "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" \
            -c "SET maintenance_work_mem = '256MB'" \
            -c "SET max_parallel_maintenance_workers = 0" \
            -c "SET synchronous_commit = off" \
            -c "BEGIN" \
            -c "SELECT qbench.detach_day('$day')" \
            -c "\\copy $part FROM pstdin WITH (FREEZE)" \
            -c "SELECT qbench.attach_day($idx)" \
            -c "COMMIT" >"$work/day.out" || die "day $day (index $idx) failed: $(tail -n 3 "$work/day.out")"
    got=$(tail -n 1 "$work/day.out")
    [[ $got == "$planned" ]] || die "day $day: $got events stored, $planned planned"
    el=$(awk -v a="$ts" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    q -c "UPDATE qbench.days SET seconds = $el WHERE idx = $idx"
    loaded_now=$((loaded_now + got))
    all=$((done_before + loaded_now))
    rate=$(awk -v n="$loaded_now" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", n / (b - a) }')
    eta=$(awk -v n="$((N - all))" -v r="$rate" 'BEGIN { printf "%.0f", (r > 0 ? n / r / 60 : 0) }')
    say "day $((idx + 1))/$total_days $day: $(fmt_int "$got") events in ${el}s; $(fmt_int "$all") of $(fmt_int "$N") loaded, $(fmt_int "$rate")/s, ~${eta} min left"
done < <(q -F '|' -c "SELECT idx, day, planned FROM qbench.days WHERE loaded IS NULL ORDER BY idx")

t_rows=$EPOCHREALTIME
say "all days loaded; event_ids primary key; VACUUM ANALYZE event_ids, rollups, events"
PGAPPNAME=qbench-load nice -n "$NICE" "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$dsn" \
    -c "SET max_parallel_maintenance_workers = 0" -c "SET maintenance_work_mem = '1GB'" \
    -c "ALTER TABLE event_ids ADD CONSTRAINT event_ids_pkey PRIMARY KEY (tenant_id, message_id)" \
    -c "VACUUM (ANALYZE) event_ids" -c "VACUUM (ANALYZE) rollups" -c "VACUUM (ANALYZE) events" \
    -c "VACUUM (ANALYZE) tenants" </dev/null
# The user sets (ADR-22) of the loaded events: the rows went in behind the processor's back, so
# every day is recomputed from them (in this process, not by a processor).
t_sets=$EPOCHREALTIME
say "user sets and timelines: eventops admin backfill --all"
EVENTOPS_PG_DSN=$dsn nice -n "$NICE" "$bin" admin backfill --all >&2 ||
    die "backfill failed"
sets_s=$(awk -v a="$t_sets" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
say "user sets: ${sets_s}s; $(q -c "SELECT pg_size_pretty(pg_total_relation_size('user_sets') + pg_total_relation_size('user_ids'))") (user_sets + user_ids)"
t1=$EPOCHREALTIME

stored=$(q -c "SELECT sum(count) FROM rollups WHERE granularity = 'day' AND event_type = ''")
[[ $stored == "$N" ]] || die "rollups hold $stored events in day buckets, expected $N"
# Times over every run (a resumed load counts each day once, in the run that loaded it).
days_s=$(q -c "SELECT round(sum(seconds)::numeric, 1) FROM qbench.days")
vac_s=$(awk -v a="$t_rows" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
secs=$(awk -v a="$days_s" -v b="$vac_s" 'BEGIN { printf "%.1f", a + b }')
q -c "UPDATE qbench.meta SET finished_at = now(), load_seconds = $secs"
size=$(q -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
say "this run loaded $(fmt_int "$loaded_now") events"
say "done: $(fmt_int "$N") events in ${days_s}s of day loads ($(fmt_int "$(awk -v n="$N" -v s="$days_s" 'BEGIN { print n / s }')") events/s, indexes, rollups and event_ids included) + ${vac_s}s (event_ids key, vacuum, analyze) = ${secs}s ($(fmt_int "$(awk -v n="$N" -v s="$secs" 'BEGIN { print n / s }')") events/s overall); database $DB is $size"
