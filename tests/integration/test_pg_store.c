/* Integration test: src/migrate (eo_migrate_run) and src/processor/pg_store.h against the
 * stack's PostgreSQL, each on a fresh database.
 *
 * Migrations: a second run applies nothing; two concurrent runs both succeed and record each
 * migration once; schema_migrations names every compiled-in migration.
 * Store: records are built the way the collector and processor build them (eo_event_normalize,
 * eo_record_encode, eo_record_decode); a write inserts each new (tenant, messageId) once,
 * rewriting a batch changes nothing, rollups equal COUNT(*) per bucket at every granularity,
 * messageIds and event types with array and COPY syntax in them are stored as sent, every
 * stored user has one number per tenant, the user-set deltas and, after compaction passes of a
 * few rows each, the compacted sets hold exactly the users of their buckets' events,
 * missing daily partitions are created for old events, tenants are told apart, and a dead
 * server is reported as EO_EUNAVAIL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "domain/event.h"
#include "domain/record.h"
#include "domain/rfc3339.h"
#include "itest.h"
#include "migrate/migrate.h"
#include "core/pg.h"
#include "domain/timeline.h"
#include "domain/userset.h"
#include "processor/compactor.h"
#include "processor/pg_store.h"

#define S_US INT64_C(1000000)
#define MIN_US (60 * S_US)
#define HOUR_US (60 * MIN_US)
#define DAY_US (24 * HOUR_US)

/* Rows of rollups that differ from COUNT(*) of events per (tenant, granularity, eventType,
 * bucket), in either direction (missing, extra or wrong count); event type '' is every type. */
static const char rollup_mismatch_sql[] =
    "WITH g(granularity) AS (VALUES ('minute'), ('quarter'), ('hour'), ('day')),"
    " e AS (SELECT ev.tenant_id, g.granularity, coalesce(ev.event_type, '') AS event_type,"
    "        b.bucket_start, count(*) AS n"
    "       FROM events ev CROSS JOIN g CROSS JOIN LATERAL (SELECT CASE g.granularity"
    "        WHEN 'quarter' THEN date_bin('15 minutes', ev.occurred_at,"
    "                                     TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    "        ELSE date_trunc(g.granularity, ev.occurred_at) END AS bucket_start) b"
    "       GROUP BY GROUPING SETS ((ev.tenant_id, g.granularity, ev.event_type, b.bucket_start),"
    "                               (ev.tenant_id, g.granularity, b.bucket_start)))"
    " SELECT count(*) FROM e FULL JOIN rollups r"
    "  ON r.tenant_id = e.tenant_id AND r.granularity = e.granularity"
    "  AND r.event_type = e.event_type AND r.bucket_start = e.bucket_start"
    " WHERE r.count IS DISTINCT FROM e.n";

/* ---- shared fixture: one migrated database, two tenants, one store ---- */

typedef struct {
    it_db_t db;
    eo_store_t *st;
    char tenant_a[37], tenant_b[37];
    eo_event_limits_t lim;
    int64_t now_us;
} fixture_t;

static fixture_t fx;

static int group_setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    eo_event_limits_default(&fx.lim);
    fx.now_us = eo_clock_now_us();
    int applied = 0;
    if (it_db_create("eo_it_store", &fx.db) < 0 || it_db_migrate(fx.db.dsn, &applied) < 0 ||
        it_insert_tenant(fx.db.dsn, "tenant a", fx.tenant_a) < 0 ||
        it_insert_tenant(fx.db.dsn, "tenant b", fx.tenant_b) < 0)
        return -1;
    return eo_pg_store_new(fx.db.dsn, 0, &fx.st) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    eo_store_free(fx.st);
    fx.st = NULL;
    it_db_drop(&fx.db);
    return 0;
}

static int64_t q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* it_pg_int on the fixture database with a printf-style query. */
static int64_t q(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof sql);
    return it_pg_int(fx.db.dsn, sql);
}

/* ---- records, built as the collector encodes them and the processor decodes them ---- */

typedef struct {
    eo_record_t recs[64];
    eo_record_t *ptrs[64];
    size_t n;
} batch_t;

static void batch_add(batch_t *b, const char *tenant, const char *message_id,
                      const char *event_type, const char *user_id, int64_t occurred_us)
{
    assert_true(b->n < 64);
    char ts[EO_RFC3339_MAX];
    eo_rfc3339_format(occurred_us, ts);
    json_t *obj =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:i, s:s}, s:{s:s}}", "eventType", event_type, "userId",
                  user_id, "messageId", message_id, "timestamp", ts, "properties", "n", (int)b->n,
                  "tab", "a\tb\\c\nd", "context", "ip", "127.0.0.1");
    assert_non_null(obj);
    eo_event_t ev;
    eo_event_error_t err;
    int64_t received_us = fx.now_us;
    if (eo_event_normalize(obj, &fx.lim, received_us, 0, &ev, &err) < 0)
        fail_msg("normalize: %s %s: %s", err.code, err.field, err.message);
    eo_buf_t out;
    eo_buf_init(&out, (size_t)1 << 20);
    if (eo_record_encode(tenant, received_us, &ev, ev.message_id, &fx.lim, &out, &err) < 0)
        fail_msg("encode: %s: %s", err.code, err.message);
    json_decref(obj);
    eo_record_t *rec = &b->recs[b->n];
    if (eo_record_decode(out.data, out.len, &fx.lim, rec, &err) < 0)
        fail_msg("decode: %s %s: %s", err.code, err.field, err.message);
    eo_buf_done(&out);
    assert_string_equal(rec->tenant_id, tenant);
    assert_int_equal(rec->ev.occurred_at_us, occurred_us);
    b->ptrs[b->n] = rec;
    b->n++;
}

static void batch_done(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        eo_record_done(&b->recs[i]);
    b->n = 0;
}

static size_t write_ok(batch_t *b)
{
    char err[512] = "";
    size_t inserted = 999999;
    int r = eo_store_write(fx.st, b->ptrs, b->n, &inserted, err, sizeof err);
    if (r < 0)
        fail_msg("eo_store_write: %s: %s", eo_strerror(r), err);
    assert_true(eo_store_ok(fx.st));
    return inserted;
}

/* The events partition holding us, e.g. "events_20240131". */
static void partition_name(int64_t us, char *out, size_t outlen)
{
    int64_t day = us / DAY_US - (us < 0 && us % DAY_US);
    int64_t y;
    unsigned m, d;
    eo_civil_from_days(day, &y, &m, &d);
    snprintf(out, outlen, "events_%04lld%02u%02u", (long long)y, m, d);
}

/* ---- migrations ---- */

static void check_schema_migrations(const char *dsn)
{
    char sql[512];
    assert_int_equal(it_pg_int(dsn, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)eo_migrations_count);
    assert_int_equal(it_pg_int(dsn, "SELECT count(DISTINCT version) FROM schema_migrations"),
                     (int64_t)eo_migrations_count);
    for (size_t i = 0; i < eo_migrations_count; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM schema_migrations WHERE version = %d AND name = '%s'"
                 " AND applied_at <= now()",
                 eo_migrations[i].version, eo_migrations[i].name);
        assert_int_equal(it_pg_int(dsn, sql), 1);
    }
}

static void test_migrate_twice(void **state)
{
    it_db_t db;
    assert_int_equal(it_db_create("eo_it_mig", &db), 0);
    int applied = -1;
    assert_int_equal(it_db_migrate(db.dsn, &applied), 0);
    assert_int_equal(applied, (int)eo_migrations_count);
    check_schema_migrations(db.dsn);
    applied = -1;
    assert_int_equal(it_db_migrate(db.dsn, &applied), 0);
    assert_int_equal(applied, 0);
    check_schema_migrations(db.dsn);
    static const char *const tables[] = {"tenants", "write_keys", "events", "event_ids", "rollups"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT to_regclass('%s') IS NOT NULL", tables[i]);
        assert_int_equal(it_pg_int(db.dsn, sql), 1);
    }
    /* 0002 creates the partitions of yesterday to today + 7 */
    assert_int_equal(
        it_pg_int(db.dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"),
        9);
    it_db_drop(&db);
}

typedef struct {
    const char *dsn;
    pthread_barrier_t *start;
    int r, applied;
} migrate_job_t;

static void *migrate_thread(void *arg)
{
    migrate_job_t *job = arg;
    pthread_barrier_wait(job->start);
    job->r = it_db_migrate(job->dsn, &job->applied);
    return NULL;
}

static void test_migrate_parallel(void **state)
{
    it_db_t db;
    assert_int_equal(it_db_create("eo_it_migpar", &db), 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    migrate_job_t jobs[2] = {{db.dsn, &start, -100, -1}, {db.dsn, &start, -100, -1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    assert_int_equal(jobs[0].r, 0);
    assert_int_equal(jobs[1].r, 0);
    assert_int_equal(jobs[0].applied + jobs[1].applied, (int)eo_migrations_count);
    check_schema_migrations(db.dsn);
    it_db_drop(&db);
}

/* ---- store ---- */

static void test_write_and_rewrite(void **state)
{
    /* an hour start two hours ago: several events per minute, several minutes per hour, several
     * hours, and a few days back */
    int64_t base = (fx.now_us / HOUR_US - 2) * HOUR_US;
    static const int64_t offsets[] = {
        0,
        10 * S_US,
        59 * S_US,
        MIN_US,
        MIN_US + 1,
        5 * MIN_US,
        59 * MIN_US,
        HOUR_US,
        HOUR_US + 1,
        90 * MIN_US,
        -1,
        -HOUR_US,
        -DAY_US,
        -DAY_US + 1,
        -2 * DAY_US,
        -3 * DAY_US,
        -3 * DAY_US + HOUR_US,
        2 * HOUR_US - S_US,
    };
    batch_t b = {0};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        char mid[64];
        snprintf(mid, sizeof mid, "w-%zu", i);
        batch_add(&b, i % 3 ? fx.tenant_a : fx.tenant_b, mid, i % 2 ? "page_view" : "signup",
                  "user-1", base + offsets[i]);
    }
    size_t n = b.n;
    int64_t before = q("SELECT count(*) FROM events");
    assert_int_equal(write_ok(&b), n);
    assert_int_equal(q("SELECT count(*) FROM events"), before + (int64_t)n);
    assert_int_equal(q("SELECT count(*) FROM event_ids WHERE message_id LIKE 'w-%%'"), n);
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id LIKE 'w-%%'"), n);
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    for (int g = 0; g < 8; g++) /* each granularity, per type and for all types together */
        assert_int_equal(q("SELECT sum(count) FROM rollups WHERE granularity = '%s'"
                           " AND (event_type = '') = %s",
                           (const char *[]){"minute", "quarter", "hour", "day"}[g % 4],
                           g < 4 ? "false" : "true"),
                         q("SELECT count(*) FROM events"));
    /* the stored row is the event as sent (COPY escaping round-trips) */
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id = 'w-1'"
                       " AND properties = '{\"n\": 1, \"tab\": \"a\\tb\\\\c\\nd\"}'::jsonb"
                       " AND context = '{\"ip\": \"127.0.0.1\"}'::jsonb AND user_id = 'user-1'"
                       " AND anonymous_id IS NULL AND sent_at IS NULL"
                       " AND event_type = 'page_view' AND tenant_id = '%s'",
                       fx.tenant_a),
                     1);
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id = 'w-0'"
                       " AND occurred_at = timestamptz 'epoch' + %lld * interval '1 microsecond'",
                       (long long)base),
                     1);

    /* the same batch again: nothing new, rollups unchanged */
    assert_int_equal(q("DROP TABLE IF EXISTS rollups_before;"
                       "CREATE TABLE rollups_before AS SELECT * FROM rollups;"
                       "SELECT count(*) FROM rollups_before"),
                     q("SELECT count(*) FROM rollups"));
    assert_int_equal(write_ok(&b), 0);
    assert_int_equal(q("SELECT count(*) FROM events"), before + (int64_t)n);
    assert_int_equal(q("SELECT count(*) FROM (SELECT * FROM rollups EXCEPT"
                       " SELECT * FROM rollups_before) x"),
                     0);
    assert_int_equal(q("SELECT count(*) FROM (SELECT * FROM rollups_before EXCEPT"
                       " SELECT * FROM rollups) x"),
                     0);
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    batch_done(&b);

    /* a batch mixing stored and new events inserts only the new ones */
    batch_add(&b, fx.tenant_b, "w-0", "signup", "user-1", base); /* stored above */
    batch_add(&b, fx.tenant_a, "w-new", "signup", "user-1", base);
    assert_int_equal(write_ok(&b), 1);
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    assert_int_equal(
        q("SELECT count FROM rollups WHERE granularity = 'minute'"
          " AND tenant_id = '%s' AND event_type = 'signup'"
          " AND bucket_start = timestamptz 'epoch' + %lld * interval '1 microsecond'",
          fx.tenant_a, (long long)base),
        q("SELECT count(*) FROM events WHERE tenant_id = '%s' AND event_type ="
          " 'signup' AND occurred_at >= timestamptz 'epoch' + %lld * interval '1 microsecond'"
          " AND occurred_at < timestamptz 'epoch' + %lld * interval '1 microsecond'",
          fx.tenant_a, (long long)base, (long long)(base + MIN_US)));
    batch_done(&b);
    assert_int_equal(q("DROP TABLE rollups_before; SELECT 0"), 0);
}

static void test_duplicates_in_batch(void **state)
{
    int64_t t = fx.now_us - 10 * MIN_US;
    batch_t b = {0};
    batch_add(&b, fx.tenant_a, "dup-1", "first", "user-2", t);
    batch_add(&b, fx.tenant_a, "dup-2", "other", "user-2", t);
    batch_add(&b, fx.tenant_a, "dup-1", "second", "user-2", t + S_US);
    batch_add(&b, fx.tenant_a, "dup-1", "third", "user-2", t + DAY_US / 2);
    /* the same messageId under another tenant is another event */
    batch_add(&b, fx.tenant_b, "dup-1", "first", "user-2", t);
    assert_int_equal(write_ok(&b), 3);
    assert_int_equal(
        q("SELECT count(*) FROM events WHERE message_id = 'dup-1' AND tenant_id = '%s'",
          fx.tenant_a),
        1);
    /* the first occurrence in the batch is the one kept */
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id = 'dup-1' AND tenant_id = '%s'"
                       " AND event_type = 'first'",
                       fx.tenant_a),
                     1);
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id = 'dup-1'"), 2);
    assert_int_equal(q("SELECT count(*) FROM rollups WHERE event_type IN ('second', 'third')"), 0);
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    assert_int_equal(write_ok(&b), 0);
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    batch_done(&b);
}

/* Batches of new events take the plain insert of their ids; the first batch that holds a
 * stored one after them (its plain insert fails with unique_violation) starts its transaction
 * again with ON CONFLICT and stores exactly its new events, as do the batches after it. */
static void test_stored_id_after_plain_batches(void **state)
{
    int64_t t = fx.now_us - 20 * MIN_US;
    int64_t before = q("SELECT count(*) FROM events");
    batch_t b = {0};
    for (int k = 0; k < 40; k++) { /* more than the batches that go to ON CONFLICT at once */
        char mid[32];
        snprintf(mid, sizeof mid, "plain-%d", k);
        batch_add(&b, fx.tenant_a, mid, "plain", "user-3", t + k);
        assert_int_equal(write_ok(&b), 1);
        batch_done(&b);
    }
    for (int k = 0; k < 3; k++) {
        char mid[32];
        snprintf(mid, sizeof mid, "plain-new-%d", k);
        batch_add(&b, fx.tenant_a, mid, "plain", "user-3", t + 100 + k);
        batch_add(&b, fx.tenant_a, "plain-7", "plain", "user-3", t + 7); /* stored */
        batch_add(&b, fx.tenant_b, "plain-7", "plain", "user-3", t + 7); /* not under b */
        assert_int_equal(write_ok(&b), k == 0 ? 2 : 1);
        batch_done(&b);
    }
    assert_int_equal(q("SELECT count(*) FROM events"), before + 40 + 3 + 1);
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id = 'plain-7'"), 2);
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
}

/* messageIds and event types with the characters of PostgreSQL's array and COPY syntax
 * (quotes, backslashes, commas, braces, spaces, the word NULL, an empty-looking "")
 * are stored and rolled up as sent, each once. */
static void test_array_syntax_in_ids(void **state)
{
    static const char *const odd[] = {
        "q\"uote", "back\\slash", "com,ma", "{brace}", " lead space", "two  spaces",
        "NULL",    "\"\"",        "\\\"",   "é ü 漢",  "end\\",
    };
    static const char *const types[] = {
        /* no control characters in an event type */
        "t\"uote", "t\\slash", "t,ma", "{t}",    " t space", "t NULL",
        "NULL",    "\"\"",     "\\\"", "t é 漢", "t\\",
    };
    size_t nodd = sizeof odd / sizeof odd[0];
    int64_t t = fx.now_us - 20 * MIN_US;
    batch_t b = {0};
    for (size_t i = 0; i < nodd; i++)
        batch_add(&b, fx.tenant_a, odd[i], types[i], "user-odd", t);
    int64_t before = q("SELECT count(*) FROM events");
    assert_int_equal(write_ok(&b), nodd);
    assert_int_equal(q("SELECT count(*) FROM events"), before + (int64_t)nodd);
    for (size_t i = 0; i < nodd; i++) {
        eo_buf_t lit;
        eo_buf_init(&lit, 1024);
        for (const char *c = odd[i]; *c; c++) /* a standard SQL literal: '' for ' */
            eo_buf_put(&lit, *c == '\'' ? "''" : c, *c == '\'' ? 2 : 1);
        eo_buf_putc(&lit, '\0');
        assert_int_equal(eo_buf_error(&lit), 0);
        assert_int_equal(q("SELECT count(*) FROM events e JOIN event_ids USING"
                           " (tenant_id, message_id) WHERE message_id = '%s' AND tenant_id = '%s'",
                           lit.data, fx.tenant_a),
                         1);
        eo_buf_reset(&lit);
        for (const char *c = types[i]; *c; c++)
            eo_buf_put(&lit, *c == '\'' ? "''" : c, *c == '\'' ? 2 : 1);
        eo_buf_putc(&lit, '\0');
        assert_int_equal(eo_buf_error(&lit), 0);
        assert_int_equal(q("SELECT count FROM rollups WHERE event_type = '%s' AND tenant_id = '%s'"
                           " AND granularity = 'minute' AND bucket_start ="
                           " date_trunc('minute', timestamptz 'epoch' + %lld * interval"
                           " '1 microsecond')",
                           lit.data, fx.tenant_a, (long long)t),
                         1);
        eo_buf_done(&lit);
    }
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    assert_int_equal(write_ok(&b), 0); /* again: all found in event_ids */
    batch_done(&b);
}

static void test_old_events_get_partitions(void **state)
{
    static const int64_t days_back[] = {30, 400, 3000};
    batch_t b = {0};
    char names[3][32];
    for (int i = 0; i < 3; i++) {
        int64_t t = fx.now_us - days_back[i] * DAY_US;
        partition_name(t, names[i], sizeof names[i]);
        assert_int_equal(q("SELECT to_regclass('%s') IS NULL", names[i]), 1);
        char mid[32];
        snprintf(mid, sizeof mid, "old-%d", i);
        batch_add(&b, fx.tenant_b, mid, "old", "user-3", t);
    }
    assert_int_equal(write_ok(&b), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(q("SELECT to_regclass('%s') IS NOT NULL", names[i]), 1);
        assert_int_equal(q("SELECT count(*) FROM %s WHERE message_id = 'old-%d'", names[i], i), 1);
    }
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    /* a new store (empty partition cache) writing to existing partitions works too */
    eo_store_t *st2;
    assert_int_equal(eo_pg_store_new(fx.db.dsn, 0, &st2), 0);
    char err[512] = "";
    size_t inserted = 99;
    assert_int_equal(eo_store_write(st2, b.ptrs, b.n, &inserted, err, sizeof err), 0);
    assert_int_equal(inserted, 0);
    eo_store_free(st2);
    batch_done(&b);
}

static void test_check_tenants(void **state)
{
    static const char unknown[] = "00000000-0000-4000-8000-00000000beef";
    batch_t b = {0};
    int64_t t = fx.now_us;
    batch_add(&b, fx.tenant_a, "ct-1", "x", "u", t);
    batch_add(&b, unknown, "ct-2", "x", "u", t);
    batch_add(&b, fx.tenant_b, "ct-3", "x", "u", t);
    batch_add(&b, unknown, "ct-4", "x", "u", t);
    batch_add(&b, fx.tenant_a, "ct-5", "x", "u", t);
    bool known[5];
    char err[512] = "";
    memset(known, 0xff, sizeof known);
    assert_int_equal(eo_store_check_tenants(fx.st, b.ptrs, b.n, known, err, sizeof err), 0);
    assert_true(known[0]);
    assert_false(known[1]);
    assert_true(known[2]);
    assert_false(known[3]);
    assert_true(known[4]);
    /* again, from the cache */
    memset(known, 0xff, sizeof known);
    assert_int_equal(eo_store_check_tenants(fx.st, b.ptrs, b.n, known, err, sizeof err), 0);
    assert_true(known[0] && !known[1] && known[2] && !known[3] && known[4]);
    /* a tenant created later is found (unknown ids are not cached as unknown) */
    assert_int_equal(it_pg_exec(fx.db.dsn,
                                "INSERT INTO tenants (tenant_id, name) VALUES"
                                " ('00000000-0000-4000-8000-00000000beef', 'late tenant')"),
                     0);
    memset(known, 0, sizeof known);
    assert_int_equal(eo_store_check_tenants(fx.st, b.ptrs, b.n, known, err, sizeof err), 0);
    for (int i = 0; i < 5; i++)
        assert_true(known[i]);
    batch_done(&b);
}

static void test_unavailable(void **state)
{
    uint16_t port = it_closed_port();
    assert_true(port > 0);
    char dsn[256];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%u user=eventops dbname=eventops", port);
    eo_store_t *st;
    assert_int_equal(eo_pg_store_new(dsn, 0, &st), 0);
    batch_t b = {0};
    batch_add(&b, fx.tenant_a, "down-1", "x", "u", fx.now_us);
    char err[512] = "";
    size_t inserted = 99;
    assert_int_equal(eo_store_write(st, b.ptrs, b.n, &inserted, err, sizeof err), EO_EUNAVAIL);
    assert_int_equal(inserted, 0);
    assert_true(err[0] != '\0');
    assert_false(eo_store_ok(st));
    bool known[1];
    assert_int_equal(eo_store_check_tenants(st, b.ptrs, b.n, known, err, sizeof err), EO_EUNAVAIL);
    assert_int_equal(eo_store_ensure_ahead(st, fx.now_us, 2, err, sizeof err), EO_EUNAVAIL);
    eo_store_free(st);
    batch_done(&b);
}

static void test_rollups_total(void **state)
{
    /* after every test above: rollups still equal COUNT(*) per bucket */
    assert_int_equal(q("%s", rollup_mismatch_sql), 0);
    assert_int_equal(q("SELECT count(*) FROM events"), q("SELECT count(*) FROM event_ids"));
}

/* The users of every (tenant, granularity, type, bucket) by SQL over events, as "{n,...}". */
static const char expected_sets_sql[] =
    "WITH g(granularity, width) AS (VALUES ('quarter', interval '15 minutes'),"
    "  ('hour', interval '1 hour'), ('day', interval '1 day')),"
    " e AS (SELECT ev.tenant_id, g.granularity, t.event_type,"
    "   date_bin(g.width, ev.occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket_start,"
    "   x.user_no"
    "  FROM events ev CROSS JOIN g"
    "  CROSS JOIN LATERAL (VALUES (ev.event_type), ('')) AS t(event_type)"
    "  JOIN user_ids x ON x.tenant_id = ev.tenant_id"
    "   AND x.user_key = coalesce(ev.user_id, ev.anonymous_id))"
    " SELECT tenant_id::text || '|' || granularity || '|' || event_type || '|' ||"
    "  (extract(epoch FROM bucket_start) * 1000000)::bigint, array_agg(DISTINCT user_no)::text"
    " FROM e GROUP BY tenant_id, granularity, event_type, bucket_start ORDER BY 1";

static const char stored_sets_sql[] =
    "SELECT tenant_id::text || '|' || granularity || '|' || event_type || '|' ||"
    "  (extract(epoch FROM bucket_start) * 1000000)::bigint, users"
    " FROM user_sets ORDER BY 1";

static eo_userset_t *set_of_text(const char *text)
{
    eo_userset_t *s = eo_userset_new();
    assert_non_null(s);
    for (const char *p = text + 1; *p && *p != '}';) {
        char *end;
        eo_userset_add(s, (uint32_t)strtoul(p, &end, 10));
        p = *end == ',' ? end + 1 : end;
    }
    return s;
}

/* user_sets equal the users of the events of every bucket (no delta left). */
static void check_sets_equal_events(PGconn *conn)
{
    char err[512];
    PGresult *want, *got;
    assert_int_equal(eo_pg_query(conn, expected_sets_sql, 0, NULL, &want, err, sizeof err), 0);
    assert_int_equal(eo_pg_query(conn, stored_sets_sql, 0, NULL, &got, err, sizeof err), 0);
    assert_int_equal(PQntuples(got), PQntuples(want));
    for (int i = 0; i < PQntuples(want); i++) {
        assert_string_equal(PQgetvalue(got, i, 0), PQgetvalue(want, i, 0));
        eo_userset_t *w = set_of_text(PQgetvalue(want, i, 1)), *g = eo_userset_new();
        size_t len;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(got, i, 1), &len);
        assert_non_null(bytes);
        assert_int_equal(eo_userset_add_serialized(g, bytes, len), 0);
        PQfreemem(bytes);
        assert_int_equal(eo_userset_count(g), eo_userset_count(w));
        assert_int_equal(eo_userset_and_count(g, w), eo_userset_count(w));
        eo_userset_free(w);
        eo_userset_free(g);
    }
    PQclear(want);
    PQclear(got);
}

/* The timelines (compacted rows and deltas together) hold exactly the stored events' (user
 * number, time) pairs of each (tenant, type, UTC hour). */
static const char expected_timelines_sql[] =
    "SELECT e.tenant_id::text || '|' || e.event_type || '|' || (extract(epoch FROM"
    " date_trunc('hour', e.occurred_at AT TIME ZONE 'UTC')) * 1000000)::bigint,"
    " u.user_no, (extract(epoch FROM e.occurred_at) * 1000000)::bigint"
    " FROM events AS e JOIN user_ids AS u ON u.tenant_id = e.tenant_id"
    " AND u.user_key = coalesce(e.user_id, e.anonymous_id) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

static const char stored_timelines_sql[] =
    "SELECT k, b, events FROM (SELECT tenant_id::text || '|' || event_type || '|' ||"
    " (extract(epoch FROM bucket_start) * 1000000)::bigint AS k,"
    " (extract(epoch FROM bucket_start) * 1000000)::bigint AS b, events FROM timelines"
    " UNION ALL SELECT tenant_id::text || '|' || event_type || '|' ||"
    " (extract(epoch FROM bucket_start) * 1000000)::bigint,"
    " (extract(epoch FROM bucket_start) * 1000000)::bigint, events FROM timeline_deltas) AS x"
    " ORDER BY 1";

static void check_timelines_equal_events(PGconn *conn)
{
    char err[512];
    PGresult *want, *got;
    assert_int_equal(eo_pg_query(conn, expected_timelines_sql, 0, NULL, &want, err, sizeof err), 0);
    assert_int_equal(eo_pg_query(conn, stored_timelines_sql, 0, NULL, &got, err, sizeof err), 0);
    int w = 0, nw = PQntuples(want);
    for (int i = 0; i < PQntuples(got);) {
        const char *key = PQgetvalue(got, i, 0);
        eo_timeline_vec_t v = {0};
        for (; i < PQntuples(got) && strcmp(PQgetvalue(got, i, 0), key) == 0; i++) {
            size_t len;
            unsigned char *bytes =
                PQunescapeBytea((const unsigned char *)PQgetvalue(got, i, 2), &len);
            assert_non_null(bytes);
            assert_int_equal(
                eo_timeline_decode(bytes, len, strtoll(PQgetvalue(got, i, 1), NULL, 10), &v), 0);
            PQfreemem(bytes);
        }
        eo_timeline_sort_unique(v.e, &v.n);
        for (size_t k = 0; k < v.n; k++, w++) {
            assert_true(w < nw);
            assert_string_equal(PQgetvalue(want, w, 0), key);
            assert_int_equal(v.e[k].user_no, strtoll(PQgetvalue(want, w, 1), NULL, 10));
            assert_int_equal(v.e[k].t_us, strtoll(PQgetvalue(want, w, 2), NULL, 10));
        }
        eo_timeline_vec_done(&v);
    }
    assert_int_equal(w, nw);
    PQclear(want);
    PQclear(got);
}

/* The hours' parts (migration 0012): numbered from 0 without gaps, every part but an hour's last
 * one full (cap events), none over it, each one's n_events its decoded events; and some hour
 * held in more than one part (the cap is below the busiest hour's events). */
static void check_timeline_parts(PGconn *conn, int64_t cap)
{
    assert_int_equal(
        q("SELECT count(*) FROM timelines WHERE n_events < 1 OR n_events > %lld", (long long)cap),
        0);
    assert_int_equal(q("SELECT count(*) FROM (SELECT 1 FROM timelines"
                       " GROUP BY tenant_id, event_type, bucket_start"
                       " HAVING max(part) + 1 <> count(*) OR min(part) <> 0) AS x"),
                     0);
    assert_int_equal(q("SELECT count(*) FROM timelines AS t WHERE n_events <> %lld AND part <"
                       " (SELECT max(part) FROM timelines AS s WHERE s.tenant_id = t.tenant_id"
                       " AND s.event_type = t.event_type AND s.bucket_start = t.bucket_start)",
                       (long long)cap),
                     0);
    assert_true(q("SELECT count(*) FROM timelines WHERE part > 0") > 0);
    char err[512];
    PGresult *res;
    assert_int_equal(eo_pg_query(conn,
                                 "SELECT (extract(epoch FROM bucket_start) * 1000000)::bigint,"
                                 " n_events, events FROM timelines",
                                 0, NULL, &res, err, sizeof err),
                     0);
    for (int i = 0; i < PQntuples(res); i++) {
        size_t len;
        unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
        assert_non_null(bytes);
        eo_timeline_vec_t v = {0};
        assert_int_equal(
            eo_timeline_decode(bytes, len, strtoll(PQgetvalue(res, i, 0), NULL, 10), &v), 0);
        PQfreemem(bytes);
        assert_int_equal(v.n, strtoll(PQgetvalue(res, i, 1), NULL, 10));
        eo_timeline_vec_done(&v);
    }
    PQclear(res);
}

static void test_user_sets(void **state)
{
    /* after every write above: one number per user and tenant, never shared */
    assert_int_equal(q("SELECT count(*) FROM (SELECT DISTINCT tenant_id,"
                       " coalesce(user_id, anonymous_id) FROM events) AS u"
                       " WHERE NOT EXISTS (SELECT 1 FROM user_ids x WHERE x.tenant_id = u.tenant_id"
                       " AND x.user_key = u.coalesce)"),
                     0);
    assert_int_equal(q("SELECT count(*) FROM (SELECT tenant_id, user_no FROM user_ids"
                       " GROUP BY 1, 2 HAVING count(*) > 1) AS d"),
                     0);
    int64_t deltas = q("SELECT count(*) FROM user_set_deltas");
    assert_true(deltas > 0);
    assert_int_equal(q("SELECT count(*) FROM user_sets"), 0);
    PGconn *conn;
    char err[512];
    assert_int_equal(eo_pg_connect(fx.db.dsn, &conn, err, sizeof err), 0);
    long moved = 0, n;
    int passes = 0;
    while ((n = eo_compactor_pass(conn, 3, err, sizeof err)) > 0) {
        moved += n;
        passes++;
    }
    if (n < 0)
        fail_msg("compaction: %s", err);
    assert_int_equal(moved, deltas);
    assert_true(passes >= 2); /* merging into rows that exist already was exercised */
    assert_int_equal(q("SELECT count(*) FROM user_set_deltas"), 0);
    check_sets_equal_events(conn);
    assert_int_equal(eo_compactor_pass(conn, 3, err, sizeof err), 0); /* nothing left */
    /* the timelines likewise: exact on deltas only, then on compacted rows only */
    deltas = q("SELECT count(*) FROM timeline_deltas");
    assert_true(deltas > 0);
    assert_int_equal(q("SELECT count(*) FROM timelines"), 0);
    check_timelines_equal_events(conn);
    moved = 0, passes = 0;
    while ((n = eo_timeline_compactor_pass(conn, 3, 4, err, sizeof err)) > 0) {
        moved += n;
        passes++;
    }
    if (n < 0)
        fail_msg("timeline compaction: %s", err);
    assert_int_equal(moved, deltas);
    assert_true(passes >= 2);
    assert_int_equal(q("SELECT count(*) FROM timeline_deltas"), 0);
    check_timelines_equal_events(conn);
    check_timeline_parts(conn, 4); /* merged into parts of 4 events at most */
    PQfinish(conn);
}

/* Two connections numbering overlapping new keys at once, 30 rounds: every key gets one number,
 * no number is given twice, and each call answers every key it was asked (a key the other
 * numbered meanwhile comes back on a second ask, as pg_store asks). */
typedef struct {
    int id;
    int failures;
} numberer_t;

static void *numberer(void *arg)
{
    numberer_t *w = arg;
    PGconn *conn;
    char err[512];
    if (eo_pg_connect(fx.db.dsn, &conn, err, sizeof err) < 0) {
        w->failures++;
        return NULL;
    }
    for (int round = 0; round < 30; round++) {
        char t[8192], k[8192];
        int nt = snprintf(t, sizeof t, "{"), nk = snprintf(k, sizeof k, "{");
        for (int i = 0; i < 40; i++) { /* keys 0..59 of the round, both threads, shifted */
            int key = (i + 20 * w->id) % 60;
            nt += snprintf(t + nt, sizeof t - (size_t)nt, "%s%s", i ? "," : "", fx.tenant_a);
            nk += snprintf(k + nk, sizeof k - (size_t)nk, "%s\"race-%d-%d\"", i ? "," : "", round,
                           key);
        }
        snprintf(t + nt, sizeof t - (size_t)nt, "}");
        snprintf(k + nk, sizeof k - (size_t)nk, "}");
        const char *p[] = {t, k};
        int answered = 0;
        for (int ask = 0; ask < 3 && answered < 40; ask++) {
            PGresult *res;
            if (eo_pg_query(conn,
                            "SELECT count(*) FROM eventops_user_numbers($1::uuid[], $2::text[])", 2,
                            p, &res, err, sizeof err) < 0) {
                w->failures++;
                break;
            }
            answered = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
        }
        if (answered != 40)
            w->failures++;
    }
    PQfinish(conn);
    return NULL;
}

static void test_numbering_race(void **state)
{
    numberer_t w[2] = {{0, 0}, {1, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, numberer, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(w[0].failures + w[1].failures, 0);
    assert_int_equal(q("SELECT count(*) FROM user_ids WHERE user_key LIKE 'race-%%'"), 30 * 60);
    assert_int_equal(q("SELECT count(*) FROM (SELECT user_no FROM user_ids WHERE tenant_id = '%s'"
                       " GROUP BY 1 HAVING count(*) > 1) AS d",
                       fx.tenant_a),
                     0);
    assert_true(q("SELECT max(user_no) FROM user_ids WHERE tenant_id = '%s'", fx.tenant_a) <
                q("SELECT next_no FROM user_counters WHERE tenant_id = '%s'", fx.tenant_a));
}

/* Two stores (two processors) writing batches of events whose users overlap and are new, at
 * once, 30 rounds: the numbering's plain statement meets the other's keys (unique_violation)
 * and asks again with ON CONFLICT; every event is stored, every key has one number and no
 * number is given twice. */
#define STORE_RACE_ROUNDS 30
typedef struct {
    eo_store_t *st;
    batch_t *batches; /* STORE_RACE_ROUNDS, built beforehand (cmocka asserts stay on the main
                         thread) */
    size_t inserted;
    int failures;
} store_racer_t;

static void *store_racer(void *arg)
{
    store_racer_t *w = arg;
    for (int round = 0; round < STORE_RACE_ROUNDS; round++) {
        char err[512];
        size_t ins = 0;
        batch_t *b = &w->batches[round];
        if (eo_store_write(w->st, b->ptrs, b->n, &ins, err, sizeof err) < 0)
            w->failures++;
        w->inserted += ins;
    }
    return NULL;
}

static void test_numbering_race_through_stores(void **state)
{
    store_racer_t w[2] = {{0}, {0}};
    int64_t t = fx.now_us - 30 * MIN_US;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(eo_pg_store_new(fx.db.dsn, 0, &w[i].st), 0);
        w[i].batches = calloc(STORE_RACE_ROUNDS, sizeof *w[i].batches);
        assert_non_null(w[i].batches);
        for (int round = 0; round < STORE_RACE_ROUNDS; round++)
            for (int k = 0; k < 40; k++) { /* users 0..59 of the round, both stores, shifted */
                char mid[48], user[48];
                snprintf(mid, sizeof mid, "srace-%d-%d-%d", i, round, k);
                snprintf(user, sizeof user, "srace-user-%d-%d", round, (k + 20 * i) % 60);
                batch_add(&w[i].batches[round], fx.tenant_a, mid, "race", user, t + k);
            }
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, store_racer, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].failures, 0);
        assert_int_equal(w[i].inserted, STORE_RACE_ROUNDS * 40);
        for (int round = 0; round < STORE_RACE_ROUNDS; round++)
            batch_done(&w[i].batches[round]);
        free(w[i].batches);
        eo_store_free(w[i].st);
    }
    assert_int_equal(q("SELECT count(*) FROM user_ids WHERE user_key LIKE 'srace-user-%%'"),
                     STORE_RACE_ROUNDS * 60);
    assert_int_equal(q("SELECT count(*) FROM (SELECT user_no FROM user_ids WHERE tenant_id = '%s'"
                       " GROUP BY 1 HAVING count(*) > 1) AS d",
                       fx.tenant_a),
                     0);
    assert_int_equal(q("SELECT count(*) FROM events WHERE message_id LIKE 'srace-%%'"),
                     2 * STORE_RACE_ROUNDS * 40);
    /* (test_backfill stored events behind the rollups' back: only this test's type is checked) */
    assert_int_equal(q("SELECT sum(count) FROM rollups WHERE event_type = 'race'"
                       " AND granularity = 'minute'"),
                     2 * STORE_RACE_ROUNDS * 40);
}

/* A database that had events before the user sets and timelines: events stored behind the
 * processor's back (old users and new ones, two types, over a whole day and a day edge), both
 * structures marked incomplete; the backfill steps recompute every day of each until both are
 * complete and equal the events again. */
static void test_backfill(void **state)
{
    assert_int_equal(
        it_pg_exec(
            fx.db.dsn,
            "SELECT eventops_ensure_partitions('2025-06-01', '2025-06-03');"
            "INSERT INTO events (tenant_id, message_id, event_type, user_id, anonymous_id,"
            " occurred_at, received_at)"
            " SELECT t.tenant_id, 'backfill-' || t.tenant_id || '-' || g, CASE WHEN g % 3 = 0"
            " THEN 'signup' ELSE 'order' END, CASE WHEN g % 5 = 0 THEN NULL ELSE"
            " 'old-user-' || (g % 37) END, 'anon-' || (g % 11),"
            " TIMESTAMPTZ '2025-06-01 00:00:00+00' + g * interval '97 seconds', now()"
            " FROM tenants AS t CROSS JOIN generate_series(0, 1999) AS g;"
            "INSERT INTO event_ids (tenant_id, message_id, occurred_at)"
            " SELECT tenant_id, message_id, occurred_at FROM events"
            " WHERE message_id LIKE 'backfill-%';"
            "UPDATE derived_structures SET complete = false"
            " WHERE name IN ('user_sets', 'timelines')"),
        0);
    PGconn *conn;
    char err[512];
    assert_int_equal(eo_pg_connect(fx.db.dsn, &conn, err, sizeof err), 0);
    int steps = 0, r;
    while ((r = eo_derived_backfill_step(conn, 10, err, sizeof err)) == 1)
        steps++;
    if (r < 0)
        fail_msg("backfill: %s", err);
    /* each day once per structure */
    assert_int_equal(steps, 2 * q("SELECT count(*) FROM pg_inherits"
                                  " WHERE inhparent = 'events'::regclass"));
    assert_int_equal(q("SELECT count(*) FROM derived_structures"
                       " WHERE name IN ('user_sets', 'timelines') AND complete"),
                     2);
    assert_int_equal(eo_user_sets_backfill_day(conn, "2025-06-01", err, sizeof err), 0);
    assert_int_equal(eo_timelines_backfill_day(conn, "2025-06-01", 10, err, sizeof err), 0);
    assert_int_equal(q("SELECT count(*) FROM user_set_deltas"), 0);
    assert_int_equal(q("SELECT count(*) FROM timeline_deltas"), 0);
    check_sets_equal_events(conn);
    check_timelines_equal_events(conn);
    check_timeline_parts(conn, 10); /* recomputed hours in parts of 10 events at most */
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_migrate_parallel),
        cmocka_unit_test(test_write_and_rewrite),
        cmocka_unit_test(test_duplicates_in_batch),
        cmocka_unit_test(test_stored_id_after_plain_batches),
        cmocka_unit_test(test_array_syntax_in_ids),
        cmocka_unit_test(test_old_events_get_partitions),
        cmocka_unit_test(test_check_tenants),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_rollups_total),
        cmocka_unit_test(test_user_sets),
        cmocka_unit_test(test_backfill),
        cmocka_unit_test(test_numbering_race),
        cmocka_unit_test(test_numbering_race_through_stores),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
