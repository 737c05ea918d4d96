/* Integration test: property rollups (ADR-24) against the stack's PostgreSQL, on a fresh
 * database: the processor's store (pg_store.h) writes the deltas of tracked paths in the events'
 * transaction, only for the events that went in (a rewritten batch adds none); values come out
 * byte for byte as PostgreSQL's eventops_property_text over the stored jsonb (strings with
 * escapes, integers, reals, booleans, objects, arrays, null, missing; records decoded both with
 * a tree and without one); the dictionary never passes its cap, and overflow counts what it
 * refused; a batch whose transaction fails at COMMIT (after its deltas were written) leaves
 * nothing, and stores them with its events when written again; the backfill waits for a transaction
 * that began before the tracking (it stored events without deltas) and then recounts them;
 * compaction passes keep every count; the counts equal a recount of the raw events throughout;
 * untracking deletes everything. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/pg.h"
#include "domain/event.h"
#include "domain/json_lex.h"
#include "domain/record.h"
#include "domain/record_scan.h"
#include "domain/rfc3339.h"
#include "itest.h"
#include "processor/compactor.h"
#include "processor/pg_store.h"

#define S_US INT64_C(1000000)
#define HOUR_US (3600 * S_US)

typedef struct {
    it_db_t db;
    eo_store_t *st;
    char tenant_a[37], tenant_b[37];
    eo_event_limits_t lim;
    int64_t now_us;
} fixture_t;

static fixture_t fx;
static int fast_decoded; /* records decoded without a tree (properties as text) */

static int64_t q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int64_t q(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof sql);
    return it_pg_int(fx.db.dsn, sql);
}

static void exec_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void exec_ok(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof sql);
    if (it_pg_exec(fx.db.dsn, sql) < 0)
        fail_msg("SQL failed: %s", sql);
}

static int group_setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    eo_event_limits_default(&fx.lim);
    fx.now_us = eo_clock_now_us();
    int applied = 0;
    if (it_db_create("eo_it_props", &fx.db) < 0 || it_db_migrate(fx.db.dsn, &applied) < 0 ||
        it_insert_tenant(fx.db.dsn, "tenant a", fx.tenant_a) < 0 ||
        it_insert_tenant(fx.db.dsn, "tenant b", fx.tenant_b) < 0)
        return -1;
    return eo_pg_store_new(fx.db.dsn, 0, &fx.st) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    eo_store_free(fx.st);
    it_db_drop(&fx.db);
    return 0;
}

/* ---- records as the collector writes them, decoded as the processor decodes them ---- */

#define BATCH_MAX 64

typedef struct {
    eo_record_t recs[BATCH_MAX];
    eo_record_t *ptrs[BATCH_MAX];
    eo_buf_t bytes[BATCH_MAX]; /* the record values (the fast decode borrows from them) */
    size_t n;
} batch_t;

/* The properties of event i: the tracked path "plan" and "meta.level" in every form. */
static const char *const props_of[] = {
    "{\"plan\":\"pro\",\"meta\":{\"level\":1}}",
    "{\"plan\":\"free\",\"meta\":{\"level\":2.5}}",
    "{\"plan\":\"pro\",\"meta\":{\"level\":true}}",
    "{\"plan\":null,\"meta\":{\"level\":null}}",
    "{\"meta\":{}}",
    "{\"plan\":\"team \\\"a\\\"\\n\\u00e9\",\"meta\":{\"level\":{\"b\":[1,\"x\"],\"aa\":1e20}}}",
    "{\"plan\":42,\"meta\":[1,2]}",
    "{\"plan\":1.0,\"meta\":{\"level\":[]}}",
    "{\"plan\":false,\"meta\":{\"level\":\"\"}}",
    "{\"plan\":{\"tier\":\"gold\",\"seats\":-0.0}}",
    "{\"plan\":\"enterprise\"}",
    "{\"plan\":\"pro\"}",
};
#define NPROPS (sizeof props_of / sizeof props_of[0])

static void batch_add(batch_t *b, const char *tenant, const char *message_id,
                      const char *event_type, int64_t occurred_us, const char *props)
{
    assert_true(b->n < BATCH_MAX);
    char ts[EO_RFC3339_MAX];
    eo_rfc3339_format(occurred_us, ts);
    json_error_t je;
    json_t *p = json_loads(props, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(p);
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:o}", "eventType", event_type, "userId", "u1",
                            "messageId", message_id, "timestamp", ts, "properties", p);
    assert_non_null(obj);
    eo_event_t ev;
    eo_event_error_t err;
    if (eo_event_normalize(obj, &fx.lim, fx.now_us, 0, &ev, &err) < 0)
        fail_msg("normalize: %s %s: %s", err.code, err.field, err.message);
    eo_buf_t *out = &b->bytes[b->n];
    eo_buf_init(out, (size_t)1 << 20);
    if (eo_record_encode(tenant, fx.now_us, &ev, ev.message_id, &fx.lim, out, &err) < 0)
        fail_msg("encode: %s: %s", err.code, err.message);
    json_decref(obj);
    eo_record_t *rec = &b->recs[b->n];
    bool fast = false;
    if (b->n % 2) { /* every other record without a tree, as the processor reads most */
        eo_json_keys_t keys;
        eo_json_keys_init(&keys);
        eo_record_scan_t *scan = malloc(sizeof *scan);
        eo_buf_t norm;
        eo_buf_init(&norm, (size_t)1 << 20);
        assert_non_null(scan);
        fast = eo_record_fast_decode(out->data, out->len, &fx.lim, &keys, scan, &norm, rec) == 0;
        free(scan);
        eo_json_keys_done(&keys);
        eo_buf_done(&norm);
        if (!fast)
            eo_record_done(rec);
        else {
            assert_null(rec->ev.properties);
            fast_decoded++;
        }
    }
    if (!fast && eo_record_decode(out->data, out->len, &fx.lim, rec, &err) < 0)
        fail_msg("decode: %s %s: %s", err.code, err.field, err.message);
    b->ptrs[b->n] = rec;
    b->n++;
}

static void batch_done(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        eo_record_done(&b->recs[i]);
        eo_buf_done(&b->bytes[i]);
    }
    b->n = 0;
}

static size_t write_ok(batch_t *b)
{
    char err[512] = "";
    size_t inserted = 999999;
    int r = eo_store_write(fx.st, b->ptrs, b->n, &inserted, err, sizeof err);
    if (r < 0)
        fail_msg("eo_store_write: %s: %s", eo_strerror(r), err);
    return inserted;
}

/* A batch of n events of tenant, from message ids prefix-0.., two types, over three hours. */
static size_t write_events(const char *tenant, const char *prefix, size_t n, int64_t start_us)
{
    batch_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%zu", prefix, i);
        batch_add(b, tenant, id, i % 3 ? "signup" : "order", start_us + (int64_t)i * 7 * 60 * S_US,
                  props_of[i % NPROPS]);
    }
    size_t got = write_ok(b);
    batch_done(b);
    free(b);
    return got;
}

/* Keys whose count (rollups plus deltas) differs from a recount of the raw events, mapped
 * through the dictionary, for every tracked path of every tenant (in either direction). */
static int64_t mismatches(void)
{
    return q("WITH e AS (SELECT tp.tenant_id, tp.path, ty.t AS event_type,"
             "  date_bin('1 hour', ev.occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS h,"
             "  pv.value IS NULL AS overflow, coalesce(pv.value, '') AS value, count(*) AS n"
             " FROM tracked_properties AS tp JOIN events AS ev ON ev.tenant_id = tp.tenant_id"
             " CROSS JOIN LATERAL (SELECT eventops_property_text(ev.properties"
             "  #> string_to_array(tp.path, '.')) AS v) AS x"
             " LEFT JOIN property_values AS pv ON pv.tenant_id = tp.tenant_id"
             "  AND pv.path = tp.path AND pv.value = x.v"
             " CROSS JOIN LATERAL (VALUES (ev.event_type), ('')) AS ty(t)"
             " WHERE x.v IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6),"
             " s AS (SELECT tenant_id, path, event_type, bucket_start AS h, overflow, value,"
             "  sum(count) AS n FROM (SELECT tenant_id, path, event_type, bucket_start, overflow,"
             "  value, count FROM property_rollups UNION ALL SELECT tenant_id, path, event_type,"
             "  bucket_start, overflow, value, count FROM property_rollup_deltas) AS u"
             "  GROUP BY 1, 2, 3, 4, 5, 6)"
             " SELECT count(*) FROM e FULL JOIN s USING (tenant_id, path, event_type, h,"
             "  overflow, value) WHERE e.n IS DISTINCT FROM s.n");
}

static void backfill_until_complete(PGconn *conn)
{
    char err[512];
    for (int i = 0; i < 400; i++) {
        if (q("SELECT count(*) FROM tracked_properties WHERE state <> 'complete'") == 0)
            return;
        if (eo_property_backfill_step(conn, err, sizeof err) < 0)
            fail_msg("backfill: %s", err);
    }
    fail_msg("the backfill did not complete");
}

static void compact_all(PGconn *conn)
{
    char err[512];
    long n;
    while ((n = eo_property_compact_pass(conn, 5, err, sizeof err)) > 0)
        ;
    if (n < 0)
        fail_msg("compaction: %s", err);
}

static void track(const char *tenant, const char *path, int cap, const char *want)
{
    char got[32];
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT eventops_track_property('%s', '%s', %d, 20)", tenant, path,
             cap);
    assert_int_equal(it_pg_text(fx.db.dsn, sql, got, sizeof got), 0);
    assert_string_equal(got, want);
}

/* Events stored before tracking, tracking, events with deltas, the backfill, compaction. */
static void test_deltas_and_backfill(void **state)
{
    (void)state;
    int64_t t0 = (fx.now_us / HOUR_US - 30) * HOUR_US + 5 * 60 * S_US; /* 30 hours ago, :05 */
    assert_int_equal(write_events(fx.tenant_a, "before", 24, t0), 24);
    assert_int_equal(q("SELECT count(*) FROM property_rollup_deltas"), 0);
    track(fx.tenant_a, "plan", 5, "tracked");
    track(fx.tenant_a, "meta.level", 1000, "tracked");
    track(fx.tenant_b, "plan", 1000, "tracked");
    track(fx.tenant_a, "plan", 5, "unchanged");
    assert_int_equal(q("SELECT count(*) FROM tracked_properties WHERE state = 'backfilling'"), 3);
    /* the store sees the new version in the batch's transaction and writes deltas */
    assert_int_equal(write_events(fx.tenant_a, "after", 36, t0 + HOUR_US), 36);
    assert_int_equal(write_events(fx.tenant_b, "after-b", 12, t0), 12);
    int64_t deltas = q("SELECT count(*) FROM property_rollup_deltas");
    assert_true(deltas > 0);
    /* deltas only for what went in: the same batch again adds none */
    assert_int_equal(write_events(fx.tenant_a, "after", 36, t0 + HOUR_US), 0);
    assert_int_equal(q("SELECT count(*) FROM property_rollup_deltas"), deltas);
    /* per tenant, type '' and path, the deltas count exactly the events with a value */
    assert_int_equal(q("SELECT sum(count) FROM property_rollup_deltas WHERE tenant_id = '%s'"
                       " AND path = 'plan' AND event_type = ''",
                       fx.tenant_a),
                     q("SELECT count(*) FROM events WHERE tenant_id = '%s' AND message_id LIKE"
                       " 'after-%%' AND eventops_property_text(properties #> '{plan}') IS NOT NULL",
                       fx.tenant_a));
    /* the dictionary of "plan" (cap 5) is full; values past it are overflow */
    assert_int_equal(q("SELECT count(*) FROM property_values WHERE tenant_id = '%s'"
                       " AND path = 'plan'",
                       fx.tenant_a),
                     5);
    assert_true(q("SELECT coalesce(sum(count), 0) FROM property_rollup_deltas WHERE tenant_id ="
                  " '%s' AND path = 'plan' AND overflow",
                  fx.tenant_a) > 0);
    /* the C text of every named value is the SQL text of some stored value */
    assert_int_equal(q("SELECT count(*) FROM property_values AS pv WHERE NOT EXISTS (SELECT 1"
                       " FROM events AS e WHERE e.tenant_id = pv.tenant_id AND"
                       " eventops_property_text(e.properties #> string_to_array(pv.path, '.'))"
                       " = pv.value)"),
                     0);
    PGconn *conn;
    char err[512];
    assert_int_equal(eo_pg_connect(fx.db.dsn, &conn, err, sizeof err), 0);
    backfill_until_complete(conn);
    assert_int_equal(mismatches(), 0);
    assert_true(fast_decoded > 10);
    /* the check sees a count that is off by one */
    exec_ok("INSERT INTO property_rollup_deltas (tenant_id, path, event_type, bucket_start,"
            " overflow, value, count) SELECT tenant_id, path, event_type, bucket_start, overflow,"
            " value, 1 FROM property_rollups LIMIT 1");
    assert_int_equal(mismatches(), 1);
    exec_ok("DELETE FROM property_rollup_deltas WHERE id = (SELECT max(id) FROM"
            " property_rollup_deltas)");
    assert_int_equal(mismatches(), 0);
    /* the tenant's events before tracking are in the counts now */
    assert_int_equal(q("SELECT sum(count) FROM (SELECT count FROM property_rollups WHERE"
                       " tenant_id = '%s' AND path = 'meta.level' AND event_type = '' UNION ALL"
                       " SELECT count FROM property_rollup_deltas WHERE tenant_id = '%s' AND"
                       " path = 'meta.level' AND event_type = '') AS u",
                       fx.tenant_a, fx.tenant_a),
                     q("SELECT count(*) FROM events WHERE tenant_id = '%s' AND"
                       " eventops_property_text(properties #> '{meta,level}') IS NOT NULL",
                       fx.tenant_a));
    compact_all(conn);
    assert_int_equal(q("SELECT count(*) FROM property_rollup_deltas"), 0);
    assert_int_equal(mismatches(), 0);
    /* more events after compaction: deltas again, still exact, then merged into existing rows */
    assert_true(write_events(fx.tenant_a, "later", 30, t0 + 2 * HOUR_US) == 30);
    assert_int_equal(mismatches(), 0);
    compact_all(conn);
    assert_int_equal(mismatches(), 0);
    assert_int_equal(q("SELECT count(*) FROM property_values WHERE tenant_id = '%s'"
                       " AND path = 'plan'",
                       fx.tenant_a),
                     5);
    PQfinish(conn);
}

/* One event of tenant A with properties {"tier": value}, written by store st. */
static void write_tier(eo_store_t *st, const char *message_id, const char *value, int64_t t)
{
    batch_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    char props[128];
    snprintf(props, sizeof props, "{\"tier\":\"%s\"}", value);
    batch_add(b, fx.tenant_a, message_id, "order", t, props);
    char err[512] = "";
    size_t inserted = 0;
    if (eo_store_write(st, b->ptrs, b->n, &inserted, err, sizeof err) < 0)
        fail_msg("eo_store_write: %s", err);
    assert_int_equal(inserted, 1);
    batch_done(b);
    free(b);
}

/* Two processors share a dictionary (cap 2): one enters "x", the other enters "y", finds the
 * dictionary full with "z", and must still count its "x" by name (not as overflow), though it
 * never asked the dictionary about "x". */
static void test_dictionary_shared_by_processors(void **state)
{
    (void)state;
    eo_store_t *other;
    assert_int_equal(eo_pg_store_new(fx.db.dsn, 0, &other), 0);
    track(fx.tenant_a, "tier", 2, "tracked");
    int64_t t = (fx.now_us / HOUR_US - 4) * HOUR_US;
    write_tier(other, "tier-1", "x", t);
    write_tier(fx.st, "tier-2", "y", t + S_US);
    write_tier(fx.st, "tier-3", "z", t + 2 * S_US);
    write_tier(fx.st, "tier-4", "x", t + 3 * S_US);
    write_tier(other, "tier-5", "w", t + 4 * S_US);
    assert_int_equal(q("SELECT count(*) FROM property_values WHERE path = 'tier'"), 2);
    assert_int_equal(q("SELECT sum(count) FROM property_rollup_deltas WHERE path = 'tier'"
                       " AND event_type = '' AND value = 'x'"),
                     2);
    assert_int_equal(q("SELECT sum(count) FROM property_rollup_deltas WHERE path = 'tier'"
                       " AND event_type = '' AND overflow"),
                     2);
    assert_int_equal(mismatches(), 0);
    eo_store_free(other);
}

/* A batch whose transaction fails at COMMIT, after its events, rollups and property deltas were
 * written (a deferred trigger refuses the deltas of event type "boom"): nothing of it stays, the
 * store reports the failure, and the same batch written again afterwards is stored with its
 * deltas, the counts equal to the events throughout. */
static void test_failed_commit_keeps_agreement(void **state)
{
    (void)state;
    exec_ok("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'boom at commit'; END$$;"
            "CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON property_rollup_deltas"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.event_type = 'boom')"
            " EXECUTE FUNCTION boom()");
    int64_t events = q("SELECT count(*) FROM events"), deltas = q("SELECT count(*) FROM"
                                                                  " property_rollup_deltas");
    int64_t t0 = (fx.now_us / HOUR_US - 5) * HOUR_US;
    batch_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    for (size_t i = 0; i < 8; i++) {
        char id[32];
        snprintf(id, sizeof id, "boom-%zu", i);
        batch_add(b, fx.tenant_a, id, i % 2 ? "boom" : "order", t0 + (int64_t)i * 60 * S_US,
                  props_of[i % NPROPS]);
    }
    char err[512] = "";
    size_t inserted = 0;
    int r = eo_store_write(fx.st, b->ptrs, b->n, &inserted, err, sizeof err);
    assert_true(r < 0);
    assert_non_null(strstr(err, "boom at commit"));
    assert_int_equal(inserted, 0);
    assert_int_equal(q("SELECT count(*) FROM events"), events);
    assert_int_equal(q("SELECT count(*) FROM event_ids WHERE message_id LIKE 'boom-%%'"), 0);
    assert_int_equal(q("SELECT count(*) FROM property_rollup_deltas"), deltas);
    assert_int_equal(mismatches(), 0);
    exec_ok("DROP TRIGGER boom ON property_rollup_deltas; DROP FUNCTION boom()");
    assert_int_equal(write_ok(b), 8);
    assert_true(q("SELECT count(*) FROM property_rollup_deltas") > deltas);
    assert_int_equal(mismatches(), 0);
    batch_done(b);
    free(b);
}

/* A transaction that began before a path was tracked stores events without its deltas (as a
 * storage worker's transaction that read the old version would): the backfill must not take
 * its snapshot until that transaction ended, and then counts its events. */
static void test_backfill_waits_for_older_transactions(void **state)
{
    (void)state;
    PGconn *old, *conn;
    char err[512];
    assert_int_equal(eo_pg_connect(fx.db.dsn, &old, err, sizeof err), 0);
    assert_int_equal(eo_pg_connect(fx.db.dsn, &conn, err, sizeof err), 0);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO events (tenant_id, message_id, event_type, user_id,"
             " occurred_at, received_at, properties) SELECT '%s', 'old-tx-' || g, 'order', 'u',"
             " now() - interval '2 hours' + g * interval '1 minute', now(),"
             " jsonb_build_object('country', CASE WHEN g %% 3 = 0 THEN 'DE' ELSE 'FR' END)"
             " FROM generate_series(1, 50) AS g",
             fx.tenant_a);
    assert_int_equal(eo_pg_exec(old, sql, err, sizeof err), 0);
    track(fx.tenant_a, "country", 1000, "tracked");
    for (int i = 0; i < 5; i++) /* it records tracked_xid, then has to wait */
        assert_true(eo_property_backfill_step(conn, err, sizeof err) >= 0);
    assert_int_equal(q("SELECT count(*) FROM property_backfill WHERE path = 'country'"), 0);
    assert_int_equal(q("SELECT count(*) FROM tracked_properties WHERE path = 'country'"
                       " AND state = 'backfilling' AND tracked_xid IS NOT NULL"),
                     1);
    assert_int_equal(eo_pg_exec(old, "COMMIT", err, sizeof err), 0);
    backfill_until_complete(conn);
    assert_int_equal(mismatches(), 0);
    assert_int_equal(q("SELECT sum(count) FROM property_rollups WHERE tenant_id = '%s'"
                       " AND path = 'country' AND event_type = '' AND value = 'DE'",
                       fx.tenant_a),
                     16);
    PQfinish(old);
    PQfinish(conn);
}

/* A new cap rebuilds the counts; untracking deletes every row of the path, and a delta written
 * for it afterwards is dropped by the compactor. */
static void test_retrack_and_untrack(void **state)
{
    (void)state;
    PGconn *conn;
    char err[512];
    assert_int_equal(eo_pg_connect(fx.db.dsn, &conn, err, sizeof err), 0);
    track(fx.tenant_a, "plan", 1000, "retracked");
    assert_int_equal(q("SELECT count(*) FROM property_rollups WHERE tenant_id = '%s'"
                       " AND path = 'plan'",
                       fx.tenant_a),
                     0);
    backfill_until_complete(conn);
    assert_int_equal(mismatches(), 0);
    assert_int_equal(q("SELECT count(*) FROM property_rollups WHERE tenant_id = '%s' AND path ="
                       " 'plan' AND overflow",
                       fx.tenant_a),
                     0);
    assert_int_equal(q("SELECT eventops_untrack_property('%s', 'plan')::int", fx.tenant_a), 1);
    assert_int_equal(q("SELECT eventops_untrack_property('%s', 'plan')::int", fx.tenant_a), 0);
    assert_int_equal(q("SELECT (SELECT count(*) FROM property_rollups WHERE tenant_id = '%s' AND"
                       " path = 'plan') + (SELECT count(*) FROM property_values WHERE tenant_id ="
                       " '%s' AND path = 'plan')",
                       fx.tenant_a, fx.tenant_a),
                     0);
    exec_ok("INSERT INTO property_rollup_deltas (tenant_id, path, event_type, bucket_start,"
            " overflow, value, count) VALUES ('%s', 'plan', '', now(), false, 'late', 1)",
            fx.tenant_a);
    compact_all(conn);
    assert_int_equal(q("SELECT count(*) FROM property_rollups WHERE path = 'plan' AND tenant_id"
                       " = '%s'",
                       fx.tenant_a),
                     0);
    assert_int_equal(mismatches(), 0);
    /* the store notices the change in its next batch: no more deltas for the path */
    int64_t before = q("SELECT count(*) FROM property_rollup_deltas WHERE path = 'plan'"
                       " AND tenant_id = '%s'",
                       fx.tenant_a);
    int64_t t0 = (fx.now_us / HOUR_US - 3) * HOUR_US;
    assert_int_equal(write_events(fx.tenant_a, "untracked", 12, t0), 12);
    assert_int_equal(q("SELECT count(*) FROM property_rollup_deltas WHERE path = 'plan'"
                       " AND tenant_id = '%s'",
                       fx.tenant_a),
                     before);
    assert_int_equal(mismatches(), 0);
    /* the limit of tracked paths per tenant */
    char got[32];
    assert_int_equal(it_pg_text(fx.db.dsn,
                                "SELECT eventops_track_property((SELECT tenant_id FROM tenants"
                                " WHERE name = 'tenant b'), 'other', 10, 1)",
                                got, sizeof got),
                     0);
    assert_string_equal(got, "limit");
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deltas_and_backfill),
        cmocka_unit_test(test_dictionary_shared_by_processors),
        cmocka_unit_test(test_failed_commit_keeps_agreement),
        cmocka_unit_test(test_backfill_waits_for_older_transactions),
        cmocka_unit_test(test_retrack_and_untrack),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
