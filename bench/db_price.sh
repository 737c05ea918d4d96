#!/usr/bin/env bash
# bench/db_price.sh: the PostgreSQL price per row of each index, constraint and step of the
# processor's database path (issue 13, step 4), all in one run, in its own scratch database.
#
#   bench/db_price.sh path/to/eventops      (stack env exported: eval "$(scripts/stack.sh env)")
#
# A database eo_price_<id> is created and migrated (`eventops migrate`); DB_PRICE_ROWS rows are
# generated once with SQL (6 tenants; batches of DB_PRICE_BATCH rows whose events happened
# within the 2 minutes before their arrival, the arrivals spread evenly over 30 days, so the
# rows fill 30 daily partitions in time order; 10 event types, skewed; 100k users, skewed, 10 %
# anonymous; messageIds random UUIDs; properties and context jsonb of about 400 bytes together)
# and exported as COPY text. Then each variant below loads exactly those rows, from empty tables
# (TRUNCATE, CHECKPOINT before every repetition), DB_PRICE_REPS times:
#   bare            (i) one COPY FROM STDIN of all rows into a plain logged table, no index, no
#                   constraint, one transaction: the baseline (bench/run.sh phase (c))
#   bare_batched    the same table, one COPY and one transaction per batch
#   current         (ii) the processor's staging path as it was up to 4049b43 (issue 13 then
#                   replaced it with event_ids by array parameters, a COPY straight into events
#                   and rollups merged in C; bench/run.sh prices that one): per batch, one
#                   transaction: COPY into a temporary staging table, then one statement
#   no_type_idx, no_user_idx, no_query_idx   current without events_tenant_type_time, without
#                   events_tenant_user_time, without both (migration 0005)
#   no_pk           current without the events primary key
#   no_event_ids    current without event_ids: every staged row goes into events (loses the
#                   at-most-once guarantee: a redelivered or retried messageId is stored again)
#   dedup_by_pk     no event_ids; INSERT INTO events ... ON CONFLICT DO NOTHING on the events
#                   primary key (tenant_id, occurred_at, message_id): exact for a Kafka
#                   redelivery (same record, same occurred_at), not for a client's retry whose
#                   occurred_at differs
#   no_rollups      current without the rollups upsert
#   rollups_minute  rollups at minute granularity only (per type; no quarter/hour/day, no
#                   all-types rows)
#   stage_text      staging columns properties/context as text, cast to jsonb on insert
#   stage_binary    the staging COPY in binary format (psql \copy of per-batch binary files
#                   made by COPY TO ... (FORMAT binary); jsonb's binary input is still text)
#   sync_off        current with synchronous_commit = off (for comparison only: not durable)
# Each repetition runs in one psql session whose backend reads its own /proc/self/stat
# (utime + stime) and clock before and after (needs a superuser or pg_read_server_files): the
# CPU of that backend only, not of the WAL writer, checkpointer or psql. Prints per variant the
# medians of CPU and wall time per row, rows/s, the ratio of its CPU to the baseline's and the
# difference to current, as a table on stderr and one JSON line on stdout.
#
# Settings (environment): DB_PRICE_ROWS (200000), DB_PRICE_BATCH (1000, as
# EVENTOPS_PROCESSOR_BATCH_MAX / workers would give at most 2500), DB_PRICE_REPS (3),
# DB_PRICE_VARIANTS (comma-separated subset, in the order above; default all),
# DB_PRICE_TIMEOUT_S (600: limit for any one psql call), DB_PRICE_KEEP=1 (keep the database and
# the work directory).
set -euo pipefail
export LC_ALL=C

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
(($# == 1)) || usage
[[ $1 == -h || $1 == --help ]] && usage
[[ -x $1 ]] || { echo "db_price: $1 is not an executable (run make build)" >&2; exit 2; }
bin=$(realpath -- "$1")
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

ROWS=${DB_PRICE_ROWS:-200000}
BATCH=${DB_PRICE_BATCH:-1000}
REPS=${DB_PRICE_REPS:-3}
TIMEOUT_S=${DB_PRICE_TIMEOUT_S:-600}
KEEP=${DB_PRICE_KEEP:-0}
ALL_VARIANTS=(bare bare_batched current no_type_idx no_user_idx no_query_idx no_pk no_event_ids
    dedup_by_pk no_rollups rollups_minute stage_text stage_binary sync_off)

say() { printf 'db_price: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for v in ROWS:DB_PRICE_ROWS BATCH:DB_PRICE_BATCH REPS:DB_PRICE_REPS TIMEOUT_S:DB_PRICE_TIMEOUT_S; do
    value=${v%%:*}
    [[ ${!value} =~ ^[1-9][0-9]*$ ]] || die "${v#*:} must be a positive integer, got '${!value}'"
done
((ROWS <= 10000000)) || die "DB_PRICE_ROWS at most 10,000,000"
((BATCH <= ROWS)) || die "DB_PRICE_BATCH larger than DB_PRICE_ROWS"
[[ $KEEP == [01] ]] || die "DB_PRICE_KEEP must be 0 or 1, got '$KEEP'"
variants=("${ALL_VARIANTS[@]}")
if [[ -n ${DB_PRICE_VARIANTS:-} ]]; then
    IFS=, read -ra variants <<<"$DB_PRICE_VARIANTS"
    for v in "${variants[@]}"; do
        [[ " ${ALL_VARIANTS[*]} " == *" $v "* ]] || die "unknown variant '$v' (${ALL_VARIANTS[*]})"
    done
fi
: "${EVENTOPS_PG_DSN:?not set: eval \"\$(scripts/stack.sh env)\"}"
PSQL_BIN=/usr/lib/postgresql/15/bin/psql
[[ -x $PSQL_BIN ]] || PSQL_BIN=$(command -v psql) || die "psql not found (scripts/deps.sh)"

id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
db=eo_price_$id
admin_dsn=$EVENTOPS_PG_DSN
if [[ $admin_dsn =~ (^|[[:space:]])dbname= ]]; then
    dsn=$(sed -E "s/(^|[[:space:]])dbname=[^[:space:]]*/\1dbname=$db/" <<<"$admin_dsn")
else
    dsn="$admin_dsn dbname=$db"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/eo-price.XXXXXX")
psql_at() { # psql_at DSN ARGS...: one bounded psql call, quiet, unaligned, stops on error
    local d=$1
    shift
    timeout "$TIMEOUT_S" "$PSQL_BIN" -X -q -At -v ON_ERROR_STOP=1 -d "$d" "$@"
}
psql_admin() { psql_at "$admin_dsn" "$@" </dev/null; }
psql_db() { psql_at "$dsn" "$@" </dev/null; }
db_created=0

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((KEEP)); then
        say "kept: database $db, work directory $work"
    else
        ((db_created)) && psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
        if ((rc == 0)); then rm -rf -- "$work"; else say "files kept in $work"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------------
# The staging path's SQL, as src/processor/pg_store.c had it up to 4049b43.
setup_sql="SET TimeZone = 'UTC';SET client_min_messages = warning;CREATE TEMP TABLE IF NOT EXISTS eo_stage ( tenant_id uuid, message_id text, event_type text, user_id text, anonymous_id text, occurred_at timestamptz, received_at timestamptz, sent_at timestamptz, properties jsonb, context jsonb, seq integer) ON COMMIT DELETE ROWS"
copy_sql="COPY eo_stage (tenant_id, message_id, event_type, user_id, anonymous_id, occurred_at, received_at, sent_at, properties, context, seq) FROM STDIN"

# The statement in pieces, so that the variants change one piece each.
q_staged="WITH staged AS (  SELECT DISTINCT ON (tenant_id, message_id) * FROM eo_stage  ORDER BY tenant_id, message_id, seq),"
q_ids=" new_ids AS (  INSERT INTO event_ids (tenant_id, message_id, occurred_at)  SELECT tenant_id, message_id, occurred_at FROM staged  ON CONFLICT DO NOTHING RETURNING tenant_id, message_id),"
q_cols="tenant_id, message_id, event_type, user_id, anonymous_id,   occurred_at, received_at, sent_at, properties, context"
q_vals="s.tenant_id, s.message_id, s.event_type, s.user_id, s.anonymous_id,   s.occurred_at, s.received_at, s.sent_at, s.properties, s.context"
events_part() { # $1: values, $2: FROM clause, $3: extra clause before RETURNING
    printf ' new_events AS (  INSERT INTO events (%s)  SELECT %s  FROM %s %s RETURNING tenant_id, event_type, occurred_at),' \
        "$q_cols" "$1" "$2" "$3"
}
q_events=$(events_part "$q_vals" "staged s JOIN new_ids USING (tenant_id, message_id)" '')
q_minute=" per_minute AS (  SELECT tenant_id, event_type, date_trunc('minute', occurred_at) AS minute, count(*) AS n  FROM new_events GROUP BY 1, 2, 3),"
q_bin="date_bin('15 minutes', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
q_typed=" typed AS (  SELECT tenant_id, 'minute' AS granularity, event_type, minute AS bucket_start, n  FROM per_minute  UNION ALL  SELECT tenant_id, 'quarter', event_type,   $q_bin, sum(n)::bigint  FROM per_minute GROUP BY tenant_id, event_type,   $q_bin  UNION ALL  SELECT tenant_id, 'hour', event_type, date_trunc('hour', minute), sum(n)::bigint  FROM per_minute GROUP BY tenant_id, event_type, date_trunc('hour', minute)  UNION ALL  SELECT tenant_id, 'day', event_type, date_trunc('day', minute), sum(n)::bigint  FROM per_minute GROUP BY tenant_id, event_type, date_trunc('day', minute)),"
q_counted=" counted AS (  SELECT * FROM typed  UNION ALL  SELECT tenant_id, granularity, '', bucket_start, sum(n)::bigint  FROM typed GROUP BY tenant_id, granularity, bucket_start),"
q_rolled=" rolled AS (  INSERT INTO rollups AS r (tenant_id, granularity, event_type, bucket_start, count)  SELECT tenant_id, granularity, event_type, bucket_start, n FROM counted  ORDER BY tenant_id, granularity, event_type, bucket_start  ON CONFLICT (tenant_id, granularity, event_type, bucket_start)  DO UPDATE SET count = r.count + EXCLUDED.count RETURNING 1)"
q_final="SELECT (SELECT count(*) FROM new_ids), (SELECT count(*) FROM rolled)"
current_sql="$q_staged$q_ids$q_events$q_minute$q_typed$q_counted$q_rolled$q_final"

# Sets sql to the statement of variant $1 ('' for the bare variants).
variant_sql() {
    local events_direct
    events_direct=$(events_part "$q_vals" "staged s" '')
    case $1 in
    bare | bare_batched) sql='SELECT 1' ;;
    current | no_type_idx | no_user_idx | no_query_idx | no_pk | stage_binary | sync_off)
        sql=$current_sql ;;
    no_event_ids)
        sql="$q_staged$events_direct$q_minute$q_typed$q_counted$q_rolled"
        sql+="SELECT (SELECT count(*) FROM new_events), (SELECT count(*) FROM rolled)" ;;
    dedup_by_pk)
        sql="$q_staged$(events_part "$q_vals" "staged s" "ON CONFLICT DO NOTHING")"
        sql+="$q_minute$q_typed$q_counted$q_rolled"
        sql+="SELECT (SELECT count(*) FROM new_events), (SELECT count(*) FROM rolled)" ;;
    no_rollups)
        sql="$q_staged$q_ids${q_events%,}"
        sql+="SELECT (SELECT count(*) FROM new_ids), (SELECT count(*) FROM new_events)" ;;
    rollups_minute)
        sql="$q_staged$q_ids$q_events"
        sql+=" counted AS (  SELECT tenant_id, 'minute' AS granularity, event_type,"
        sql+=" date_trunc('minute', occurred_at) AS bucket_start, count(*) AS n  FROM new_events"
        sql+=" GROUP BY 1, 2, 3, 4),$q_rolled$q_final" ;;
    stage_text)
        local text_vals=${q_vals/s.properties, s.context/s.properties::jsonb, s.context::jsonb}
        sql="$q_staged$q_ids$(events_part "$text_vals" "staged s JOIN new_ids USING (tenant_id, message_id)" '')"
        sql+="$q_minute$q_typed$q_counted$q_rolled$q_final" ;;
    *) die "no statement for variant $1" ;;
    esac
}

# Sets setup/teardown (SQL run once around the variant's repetitions, not measured), ddl (the
# session's staging table, measured session), session (SET commands) and body (the loading).
stage_cols="tenant_id uuid, message_id text, event_type text, user_id text, anonymous_id text,
    occurred_at timestamptz, received_at timestamptz, sent_at timestamptz"
bare_ddl="CREATE TABLE price_bare ($stage_cols, properties jsonb, context jsonb)"
type_idx="CREATE INDEX events_tenant_type_time ON events (tenant_id, event_type, occurred_at)
    INCLUDE (user_id, anonymous_id)"
user_idx="CREATE INDEX events_tenant_user_time ON events (tenant_id, user_id, occurred_at)
    WHERE user_id IS NOT NULL"
variant_setup() {
    setup='' teardown='' ddl=$setup_sql session='' body="\\i $work/batches.sql"
    case $1 in
    bare)
        setup=$bare_ddl teardown='DROP TABLE price_bare' ddl='SELECT 1'
        body="\\copy price_bare FROM '$work/rows.copy'" ;;
    bare_batched) # a plain logged eo_stage in public: the batches' COPY goes there, no statement
        setup="CREATE TABLE eo_stage ($stage_cols, properties jsonb, context jsonb, seq integer)"
        teardown='DROP TABLE eo_stage' ddl='SELECT 1' ;;
    no_type_idx) setup='DROP INDEX events_tenant_type_time' teardown=$type_idx ;;
    no_user_idx) setup='DROP INDEX events_tenant_user_time' teardown=$user_idx ;;
    no_query_idx)
        setup='DROP INDEX events_tenant_type_time; DROP INDEX events_tenant_user_time'
        teardown="$type_idx; $user_idx" ;;
    no_pk)
        setup='ALTER TABLE events DROP CONSTRAINT events_pkey'
        teardown='ALTER TABLE events ADD PRIMARY KEY (tenant_id, occurred_at, message_id)' ;;
    stage_text) ddl=${setup_sql//jsonb/text} ;;
    stage_binary) body="\\i $work/batches-binary.sql" ;;
    sync_off) session='SET synchronous_commit = off;' ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Database and rows

say "database $db: $ROWS rows in batches of $BATCH, ${#variants[@]} variants x $REPS"
psql_admin -c "CREATE DATABASE $db" >/dev/null
db_created=1
EVENTOPS_PG_DSN=$dsn "$bin" migrate >"$work/migrate.txt" 2>&1 ||
    die "migrate failed: $(tail -n 3 "$work/migrate.txt")"

nbatches=$(((ROWS + BATCH - 1) / BATCH))
psql_db -c "SET TimeZone = 'UTC'" -c "
CREATE TABLE price_src AS
SELECT i / $BATCH AS batch, i % $BATCH AS seq,
       ('00000000-0000-4000-8000-00000000000' || (1 + floor(x.r1 * 6))::int)::uuid AS tenant_id,
       gen_random_uuid()::text AS message_id,
       (ARRAY['page_viewed', 'product_viewed', 'button_clicked', 'search_performed',
              'added_to_cart', 'signed_in', 'signed_up', 'checkout_started',
              'order_completed', 'signed_out'])[1 + floor(x.r2 * x.r2 * 10)::int] AS event_type,
       CASE WHEN x.r3 >= 0.1 THEN 'user_' || floor(x.r4 * x.r4 * x.r4 * 100000)::int END AS user_id,
       CASE WHEN x.r3 < 0.1 THEN gen_random_uuid()::text END AS anonymous_id,
       x.arrival - x.r5 * interval '120 seconds' AS occurred_at,
       x.arrival AS received_at,
       CASE WHEN x.r3 < 0.9 THEN x.arrival - x.r5 * interval '100 seconds' END AS sent_at,
       jsonb_build_object('path', '/products/' || floor(x.r6 * 10000)::int,
                          'title', 'Product ' || floor(x.r6 * 10000)::int,
                          'price', round((x.r4 * 500)::numeric, 2), 'currency', 'EUR',
                          'plan', (ARRAY['free', 'pro', 'team'])[1 + floor(x.r5 * 3)::int],
                          'items', jsonb_build_array(floor(x.r5 * 10)::int, 'sku-' || floor(x.r6 * 1000)::int),
                          'newsletter', x.r6 < 0.5) AS properties,
       jsonb_build_object('library', jsonb_build_object('name', 'analytics.js', 'version', '4.12.0'),
                          'ip', '10.' || floor(x.r4 * 255)::int || '.' || floor(x.r5 * 255)::int
                                || '.' || floor(x.r6 * 255)::int,
                          'locale', 'en-US',
                          'userAgent', CASE WHEN x.r1 < 0.5
                              THEN 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
                              ELSE 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148' END)
           AS context
FROM generate_series(0, $ROWS - 1) AS i
CROSS JOIN LATERAL (
    SELECT random() + 0 * i AS r1, random() AS r2, random() AS r3, random() AS r4,
           random() AS r5, random() AS r6,
           date_trunc('day', now()) - interval '30 days'
               + (i / $BATCH) * (interval '30 days' / $nbatches) AS arrival) AS x" \
    -c "SELECT eventops_ensure_partitions((SELECT min(occurred_at)::date FROM price_src),
                                          (SELECT max(occurred_at)::date FROM price_src))" \
    -c 'ANALYZE price_src' >/dev/null
json_bytes=$(psql_db -c "SELECT round(avg(length(properties::text) + length(context::text)))
    FROM price_src")
days=$(psql_db -c "SELECT count(DISTINCT occurred_at::date) FROM price_src")

stage_list='tenant_id, message_id, event_type, user_id, anonymous_id, occurred_at, received_at, sent_at, properties, context'
psql_db -c "SET TimeZone = 'UTC'" \
    -c "\\copy (SELECT $stage_list, seq FROM price_src ORDER BY batch, seq) TO '$work/stage.copy'" \
    -c "\\copy (SELECT $stage_list FROM price_src ORDER BY batch, seq) TO '$work/rows.copy'" >/dev/null
copy_mib=$(($(stat -c %s "$work/rows.copy") / 1048576))
# One script for every staged variant: per batch BEGIN, the COPY with its rows, the statement
# (psql variable :store, set per variant), COMMIT.
awk -v batch="$BATCH" -v copy="$copy_sql;" '
    function close_batch() { print "\\."; print ":store;"; print "COMMIT;" }
    (NR - 1) % batch == 0 { print "BEGIN;"; print copy }
    { print }
    NR % batch == 0 { close_batch() }
    END { if (NR % batch) close_batch() }' "$work/stage.copy" >"$work/batches.sql"
if [[ " ${variants[*]} " == *" stage_binary "* ]]; then
    mkdir "$work/binary"
    for ((b = 0; b < nbatches; b++)); do
        printf '\\copy (SELECT %s, seq FROM price_src WHERE batch = %d ORDER BY seq) TO %s WITH (FORMAT binary)\n' \
            "$stage_list" "$b" "'$work/binary/$b'"
        printf 'BEGIN;\n\\copy eo_stage (%s, seq) FROM %s WITH (FORMAT binary)\n:store;\nCOMMIT;\n' \
            "$stage_list" "'$work/binary/$b'" >&3
    done 3>"$work/batches-binary.sql" >"$work/binary-export.sql"
    psql_db -c "SET TimeZone = 'UTC'" -f "$work/binary-export.sql" >/dev/null
fi
say "$ROWS rows over $days days, ~$json_bytes bytes of properties+context JSON per row, $copy_mib MiB of COPY text"

# ---------------------------------------------------------------------------------------------
# Measuring

clk_tck=$(getconf CLK_TCK)
stat_q="SELECT rtrim(pg_read_file('/proc/self/stat'), E'\\n') || ' ' || extract(epoch FROM clock_timestamp())"
psql_db -c "$stat_q" >/dev/null 2>&1 ||
    die "the database user cannot read /proc/self/stat through pg_read_file (needs a superuser or pg_read_server_files)"

# One repetition of variant $1: sets cpu_us and wall_us (per row) and checks the rows stored.
run_once() {
    local v=$1 out t0 t1 c0 c1 n want
    psql_db -c 'SET lock_timeout = 10000' -c 'TRUNCATE events, event_ids, rollups' \
        -c 'CHECKPOINT' >/dev/null
    {
        printf "SET TimeZone = 'UTC';\nSET client_min_messages = warning;\n%s\n%s;\n" \
            "$session" "$ddl"
        printf '\\o %s\n%s;\n\\o /dev/null\n%s\n\\o %s\n%s;\n\\o\n' "$work/stat0" "$stat_q" \
            "$body" "$work/stat1" "$stat_q"
    } >"$work/run.sql"
    psql_at "$dsn" -v store="$sql" -f "$work/run.sql" </dev/null >"$work/run.out" 2>&1 ||
        die "variant $v failed: $(tail -n 5 "$work/run.out")"
    read -r t0 c0 < <(awk '{ sub(/^.*\) /, ""); print $NF, $12 + $13 }' "$work/stat0")
    read -r t1 c1 < <(awk '{ sub(/^.*\) /, ""); print $NF, $12 + $13 }' "$work/stat1")
    cpu_us=$(calc "($c1 - $c0) * 1000000 / $clk_tck / $ROWS")
    wall_us=$(calc "($t1 - $t0) * 1000000 / $ROWS")
    case $v in
    bare) n=$(psql_db -c 'SELECT count(*) FROM price_bare') ;;
    bare_batched) n=$(psql_db -c 'SELECT count(*) FROM eo_stage') ;;
    *) n=$(psql_db -c 'SELECT count(*) FROM events') ;;
    esac
    ((n == ROWS)) || die "variant $v stored $n rows, expected $ROWS"
    case $v in
    bare_batched) psql_db -c 'TRUNCATE eo_stage' >/dev/null ;;
    bare) psql_db -c 'TRUNCATE price_bare' >/dev/null ;;
    no_rollups) ;;
    *)
        want=$ROWS
        [[ $v == rollups_minute ]] &&
            n=$(psql_db -c "SELECT sum(count) FROM rollups WHERE granularity = 'minute'") ||
            n=$(psql_db -c "SELECT sum(count) FROM rollups WHERE granularity = 'day' AND event_type = ''")
        [[ $n == "$want" ]] || die "variant $v: rollups count $n events, expected $want"
        ;;
    esac
}

declare -A med_cpu=() med_wall=()
rollup_rows=''
for v in "${variants[@]}"; do
    variant_sql "$v"
    variant_setup "$v"
    [[ -z $setup ]] || psql_db -c "$setup" >/dev/null
    cpus=() walls=()
    for ((k = 1; k <= REPS; k++)); do
        run_once "$v"
        cpus+=("$cpu_us") walls+=("$wall_us")
    done
    [[ $v == current ]] && rollup_rows=$(psql_db -c 'SELECT count(*) FROM rollups')
    [[ -z $teardown ]] || psql_db -c "$teardown" >/dev/null
    med_cpu[$v]=$(median "${cpus[@]}")
    med_wall[$v]=$(median "${walls[@]}")
    say "$(printf '%-15s cpu us/row %s, wall us/row %s' "$v" "${cpus[*]}" "${walls[*]}")"
done

# ---------------------------------------------------------------------------------------------
# Report

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] && commit+=-dirty
base=${med_cpu[bare]:-}
cur=${med_cpu[current]:-}
{
    echo
    echo "EventOps database path price per row, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
    echo "machine: $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
        "PostgreSQL $(psql_db -c 'SHOW server_version' | cut -d' ' -f1)"
    echo "rows: $ROWS ($days days, 6 tenants, ~$json_bytes bytes of jsonb text per row), batches" \
        "of $BATCH, $REPS repetitions, medians; CPU: the loading backend's utime+stime"
    [[ -z $rollup_rows ]] || echo "rollup rows after current: $rollup_rows" \
        "($(calc "$rollup_rows / $nbatches" | cut -d. -f1) per batch on average)"
    echo
    printf '%-15s %12s %12s %11s %10s %12s\n' variant 'cpu us/row' 'wall us/row' rows/s \
        'cpu/(i)' 'vs current'
    for v in "${variants[@]}"; do
        printf '%-15s %12.2f %12.2f %11.0f %10s %12s\n' "$v" "${med_cpu[$v]}" "${med_wall[$v]}" \
            "$(calc "1000000 / ${med_wall[$v]}")" \
            "$([[ -n $base ]] && printf '%.2f' "$(calc "${med_cpu[$v]} / $base")" || echo -)" \
            "$([[ -n $cur ]] && printf '%+.2f' "$(calc "${med_cpu[$v]} - $cur")" || echo -)"
    done
} >&2
printf '{"bench":"eventops-db-price","date":"%s","commit":"%s","rows":%s,"batch":%s,"reps":%s,"variants":{' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$ROWS" "$BATCH" "$REPS"
sep=''
for v in "${variants[@]}"; do
    printf '%s"%s":{"cpu_us_per_row":%.3f,"wall_us_per_row":%.3f}' "$sep" "$v" "${med_cpu[$v]}" \
        "${med_wall[$v]}"
    sep=,
done
printf '}}\n'
