/* Integration test: the analytics sink (src/analytics/sink.h) against the stack's Kafka and
 * PostgreSQL, on fresh topics, a fresh consumer group and a fresh database holding the two
 * tables (with the columns migration 0006 gives them).
 *
 * The records are written the way the engine writes them: in Kafka transactions, keyed
 * "<tenantId>:<ruleId>". The tests run in order and share the fixture:
 *   1. first run: committed summaries and window results are stored once each; records of an
 *      aborted transaction never appear; duplicates (the same eventId, the same window and
 *      revision) are stored once; undecodable records are skipped and counted, and so are
 *      records the database refuses as data (isolated from the good rows of their batch);
 *      the columns hold the record's values (times in UTC) and body the record;
 *   2. restart: a new sink of the same group reads only what came after the committed offsets
 *      (its counters see nothing of the first run) and stores the new records, none twice;
 *   3. PostgreSQL refusing the writes (the windows table renamed away): the batch is kept,
 *      the sink is not ready and postgres_up is 0; once the table is back every row arrives;
 *   4. a second sink joining the group while the first keeps a batch it cannot store: the
 *      revoked batch is dropped uncommitted and read again; over both sinks each record is
 *      stored and counted once;
 *   5. PostgreSQL unreachable: the sink is not ready, stops promptly without committing, and
 *      the next sink stores what the first could not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/sink.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "itest.h"

#define TENANT "7a1d0c52-3b7e-4c0e-9f4e-2d1b6c8a0001"
#define RULE "7a1d0c52-3b7e-4c0e-9f4e-2d1b6c8a00ff"
#define WAIT_MS 60000

static const char tables_sql[] =
    "CREATE TABLE analytics_summaries ("
    " tenant_id uuid, event_id uuid, rule_id uuid, rule_version int, status text,"
    " group_key text, window_start timestamptz, window_end timestamptz,"
    " value double precision, threshold double precision, body jsonb NOT NULL,"
    " emitted_at timestamptz, PRIMARY KEY (tenant_id, event_id));"
    "CREATE TABLE analytics_windows ("
    " tenant_id uuid, rule_id uuid, rule_version int, group_key text,"
    " window_start timestamptz, window_end timestamptz, revision int, final bool,"
    " value double precision NULL, count bigint, body jsonb NOT NULL,"
    " PRIMARY KEY (tenant_id, rule_id, rule_version, group_key, window_start, revision))";

/* ---- shared fixture ---- */

/* A sink and the registry of its metrics (which outlives it). */
typedef struct {
    eo_analytics_sink_t *s;
    eo_metrics_t *m;
} sink_t;

static struct {
    it_db_t db;
    char summaries[IT_NAME_MAX], windows[IT_NAME_MAX], group[IT_NAME_MAX];
    rd_kafka_t *producer; /* transactional */
    sink_t a, b;          /* two members of the group */
} fx;

static rd_kafka_t *producer_new(void)
{
    char err[512], txn_id[IT_NAME_MAX];
    it_unique_name("eo_it_sink_txn", txn_id, sizeof txn_id);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers",
                        it_kafka_brokers(),
                        "transactional.id",
                        txn_id,
                        "transaction.timeout.ms",
                        "60000",
                        NULL};
    for (const char *const *p = kv; *p; p += 2) {
        if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "%s: %s\n", p[0], err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rd_kafka_new: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, 60000);
    if (e) {
        fprintf(stderr, "init_transactions: %s\n", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static int group_setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    it_unique_name("eo_it_sink_group", fx.group, sizeof fx.group);
    if (it_db_create("eo_it_sink", &fx.db) < 0 || it_pg_exec(fx.db.dsn, tables_sql) < 0 ||
        it_topic_create("eo_it_sink_summaries", 3, fx.summaries, sizeof fx.summaries) < 0 ||
        it_topic_create("eo_it_sink_windows", 2, fx.windows, sizeof fx.windows) < 0 ||
        !(fx.producer = producer_new()))
        return -1;
    return 0;
}

/* Deletes the test's consumer group (best effort). */
static void group_delete(const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", it_kafka_brokers(), err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteGroup_t *g = rd_kafka_DeleteGroup_new(group);
    rd_kafka_DeleteGroups(rk, &g, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (!ev || rd_kafka_event_error(ev))
        fprintf(stderr, "could not delete the consumer group %s: %s\n", group,
                ev ? rd_kafka_event_error_string(ev) : "timed out");
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteGroup_destroy(g);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

static int group_teardown(void **state)
{
    eo_analytics_sink_stop(fx.a.s);
    eo_analytics_sink_stop(fx.b.s);
    eo_metrics_free(fx.a.m);
    eo_metrics_free(fx.b.m);
    if (fx.producer)
        rd_kafka_destroy(fx.producer);
    group_delete(fx.group);
    it_topic_delete(fx.summaries);
    it_topic_delete(fx.windows);
    it_db_drop(&fx.db);
    return 0;
}

/* ---- records ---- */

/* Produces value on topic with the engine's key. */
static void produce(const char *topic, const char *value)
{
    static const char key[] = TENANT ":" RULE;
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(fx.producer, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_KEY(key, sizeof key - 1),
                                  RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(fx.producer, 100);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void txn_ok(rd_kafka_error_t *e, const char *what)
{
    if (e) {
        fprintf(stderr, "%s: %s\n", what, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        fail_msg("%s failed", what);
    }
}

static void txn_begin(void)
{
    txn_ok(rd_kafka_begin_transaction(fx.producer), "begin_transaction");
}

static void txn_commit(void)
{
    txn_ok(rd_kafka_commit_transaction(fx.producer, 60000), "commit_transaction");
}

/* Flushes (so that the records are on the log) and aborts. */
static void txn_abort(void)
{
    assert_int_equal(rd_kafka_flush(fx.producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    txn_ok(rd_kafka_abort_transaction(fx.producer, 60000), "abort_transaction");
}

/* The event id of summary i. */
static void event_id(int i, char out[37])
{
    snprintf(out, 37, "00000000-0000-5000-8000-%012d", i);
}

/* Summary i: window 10:i .. 10:i+5 on 2024-05-01, value 100 + i (+ 0.25 for odd i), status as
 * given (NULL: "firing"); emitted at 12:00:00.5+02:00. */
static void produce_summary(int i, const char *status)
{
    char id[37], v[512];
    event_id(i, id);
    snprintf(v, sizeof v,
             "{\"eventId\":\"%s\",\"type\":\"analytics.summary\",\"tenantId\":\"" TENANT "\","
             "\"status\":\"%s\",\"rule\":{\"id\":\"" RULE "\",\"version\":3,\"name\":\"burst\"},"
             "\"group\":{\"properties.plan\":\"pro\"},\"groupKey\":\"pro\","
             "\"window\":{\"start\":\"2024-05-01T10:%02d:00Z\","
             "\"end\":\"2024-05-01T10:%02d:00+00:00\"},\"value\":%d%s,\"threshold\":100,"
             "\"message\":\"%d signup events in 5 min\",\"revision\":1,\"final\":false,"
             "\"emittedAt\":\"2024-05-01T12:00:00.5+02:00\"}",
             id, status ? status : "firing", i % 60, (i + 5) % 60, 100 + i, i % 2 ? ".25" : "",
             100 + i);
    produce(fx.summaries, v);
}

/* Window result of group "g<j>" at revision rev: window 11:j .. 11:j+1, count j, value j (null
 * for j == 0), final. */
static void produce_window(const char *group_prefix, int j, int rev)
{
    char v[512], value[16];
    if (j == 0)
        snprintf(value, sizeof value, "null");
    else
        snprintf(value, sizeof value, "%d", j);
    snprintf(v, sizeof v,
             "{\"type\":\"analytics.window\",\"tenantId\":\"" TENANT "\","
             "\"rule\":{\"id\":\"" RULE "\",\"version\":3,\"name\":\"burst\"},"
             "\"group\":{\"properties.plan\":\"%s%d\"},\"groupKey\":\"%s%d\","
             "\"window\":{\"start\":\"2024-05-01T11:%02d:00Z\",\"end\":\"2024-05-01T11:%02d:00Z\"},"
             "\"aggregate\":\"count\",\"value\":%s,\"count\":%d,\"revision\":%d,\"final\":true,"
             "\"emittedAt\":\"2024-05-01T12:00:00Z\"}",
             group_prefix, j, group_prefix, j, j % 60, (j + 1) % 60, value, j, rev);
    produce(fx.windows, v);
}

/* ---- observing the sink ---- */

/* The value of the series `series` (name{labels}) in m, or -1 when it is not there. */
static double metric(eo_metrics_t *m, const char *series)
{
    eo_buf_t out;
    eo_buf_init(&out, (size_t)1 << 24);
    double v = -1;
    if (eo_metrics_write(m, &out) == 0) {
        size_t n = strlen(series);
        for (const char *line = out.data; line && *line;) {
            if (!strncmp(line, series, n) && line[n] == ' ') {
                v = strtod(line + n + 1, NULL);
                break;
            }
            line = strchr(line, '\n');
            line = line ? line + 1 : NULL;
        }
    }
    eo_buf_done(&out);
    return v;
}

#define RECORDS(kind) "eventops_analytics_sink_records_total{role=\"analytics\",kind=\"" kind "\"}"
#define SKIPPED(reason)                                                                            \
    "eventops_analytics_sink_skipped_total{role=\"analytics\",reason=\"" reason "\"}"
#define POSTGRES_UP "eventops_analytics_sink_postgres_up{role=\"analytics\"}"

static int64_t q(const char *sql)
{
    return it_pg_int(fx.db.dsn, sql);
}

/* The sink's counters: records by kind, skipped by reason. */
typedef struct {
    double summaries, windows, undecodable, refused;
} counters_t;

static counters_t counters(const sink_t *k)
{
    return (counters_t){metric(k->m, RECORDS("summary")), metric(k->m, RECORDS("window")),
                        metric(k->m, SKIPPED("undecodable")),
                        metric(k->m, SKIPPED("refused_by_database"))};
}

static counters_t counters_sum(const sink_t *k1, const sink_t *k2)
{
    counters_t c1 = counters(k1), c2 = k2 ? counters(k2) : (counters_t){0, 0, 0, 0};
    return (counters_t){c1.summaries + c2.summaries, c1.windows + c2.windows,
                        c1.undecodable + c2.undecodable, c1.refused + c2.refused};
}

/* Waits until the counters of k1 (plus those of k2, when not NULL) reach want, the records of
 * a step being all processed; then they must equal want (nothing read twice). */
static void wait_counters(const sink_t *k1, const sink_t *k2, counters_t want)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    counters_t c = counters_sum(k1, k2);
    while (it_now_ms() < deadline &&
           (c.summaries < want.summaries || c.windows < want.windows ||
            c.undecodable < want.undecodable || c.refused < want.refused)) {
        eo_clock_sleep_ms(100);
        c = counters_sum(k1, k2);
    }
    fprintf(stderr, "sink counters: summaries %g, windows %g, undecodable %g, refused %g\n",
            c.summaries, c.windows, c.undecodable, c.refused);
    assert_true(c.summaries == want.summaries);
    assert_true(c.windows == want.windows);
    assert_true(c.undecodable == want.undecodable);
    assert_true(c.refused == want.refused);
}

/* Starts k on dsn with a fresh registry; waits until it is ready when wait_ready. */
static void start_sink(sink_t *k, const char *dsn, bool wait_ready)
{
    assert_null(k->s);
    eo_metrics_free(k->m);
    assert_non_null(k->m = eo_metrics_new());
    eo_analytics_sink_options_t opt = {
        .brokers = it_kafka_brokers(),
        .group = fx.group,
        .summaries_topic = fx.summaries,
        .windows_topic = fx.windows,
        .pg_dsn = dsn,
        .session_timeout_ms = 10000,
        .batch_max = 8, /* several batches per step */
        .batch_wait_ms = 200,
    };
    char err[512] = "";
    int r = eo_analytics_sink_start(&opt, k->m, &k->s, err, sizeof err);
    if (r < 0)
        fail_msg("eo_analytics_sink_start: %s", err);
    int64_t deadline = it_now_ms() + WAIT_MS;
    while (wait_ready && !eo_analytics_sink_ready(k->s) && it_now_ms() < deadline)
        eo_clock_sleep_ms(50);
    assert_true(!wait_ready || eo_analytics_sink_ready(k->s));
}

static void stop_sink(sink_t *k)
{
    eo_analytics_sink_stop(k->s);
    k->s = NULL;
    /* the registry outlives the sink: its gauge no longer reads the sink */
    assert_true(metric(k->m, POSTGRES_UP) == 0);
}

/* Waits until k is not ready (PostgreSQL does not take its batch). */
static void wait_not_ready(const sink_t *k)
{
    int64_t deadline = it_now_ms() + WAIT_MS;
    while (eo_analytics_sink_ready(k->s) && it_now_ms() < deadline)
        eo_clock_sleep_ms(50);
    assert_false(eo_analytics_sink_ready(k->s));
    assert_true(metric(k->m, POSTGRES_UP) == 0);
}

/* ---- 1. first run ---- */

static void test_options_checked(void **state)
{
    eo_analytics_sink_options_t opt = {
        .brokers = it_kafka_brokers(),
        .group = fx.group,
        .summaries_topic = fx.summaries,
        .windows_topic = "",
        .pg_dsn = fx.db.dsn,
        .session_timeout_ms = 10000,
        .batch_max = 8,
        .batch_wait_ms = 200,
    };
    char err[256] = "";
    eo_analytics_sink_t *s = NULL;
    assert_int_equal(eo_analytics_sink_start(&opt, NULL, &s, err, sizeof err), EO_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "windows topic"));
    opt.windows_topic = fx.windows;
    opt.batch_max = 0;
    assert_int_equal(eo_analytics_sink_start(&opt, NULL, &s, err, sizeof err), EO_EINVAL);
    assert_non_null(strstr(err, "batch size"));
    assert_false(eo_analytics_sink_ready(NULL));
    eo_analytics_sink_stop(NULL);
}

static void test_first_run(void **state)
{
    /* committed: summaries 0..9, windows g0..g5 revision 1 */
    txn_begin();
    for (int i = 0; i < 10; i++)
        produce_summary(i, NULL);
    for (int j = 0; j < 6; j++)
        produce_window("g", j, 1);
    txn_commit();
    /* aborted: never stored */
    txn_begin();
    for (int i = 100; i < 105; i++)
        produce_summary(i, NULL);
    for (int j = 0; j < 3; j++)
        produce_window("aborted", j, 1);
    txn_abort();
    /* committed: duplicates, a new revision, and records to skip */
    txn_begin();
    produce_summary(3, NULL);
    produce_summary(7, NULL);
    produce_window("g", 2, 1);
    produce_window("g", 2, 2);
    produce(fx.summaries, "not json {");
    produce(fx.summaries, "{\"type\":\"analytics.summary\",\"tenantId\":\"" TENANT "\"}");
    produce(fx.windows, "{\"type\":\"analytics.summary\"}"); /* on the wrong topic */
    /* year 0000 is a valid RFC 3339 time, out of PostgreSQL's range (22008) */
    produce(fx.summaries,
            "{\"eventId\":\"00000000-0000-5000-8000-000000000050\",\"type\":\"analytics.summary\","
            "\"tenantId\":\"" TENANT "\",\"status\":\"firing\",\"rule\":{\"id\":\"" RULE "\","
            "\"version\":3},\"groupKey\":\"\",\"window\":{\"start\":\"2024-05-01T10:00:00Z\","
            "\"end\":\"2024-05-01T10:05:00Z\"},\"value\":1,\"threshold\":1,"
            "\"emittedAt\":\"0000-01-01T00:00:00Z\"}");
    produce(fx.windows,
            "{\"type\":\"analytics.window\",\"tenantId\":\"" TENANT "\","
            "\"rule\":{\"id\":\"" RULE "\",\"version\":3},\"groupKey\":\"old\","
            "\"window\":{\"start\":\"0000-01-01T00:00:00Z\",\"end\":\"0000-01-01T00:01:00Z\"},"
            "\"value\":1,\"count\":1,\"revision\":1,\"final\":true}");
    txn_commit();

    start_sink(&fx.a, fx.db.dsn, true);
    /* 10 + 2 duplicate summaries, 6 + 1 + 1 duplicate windows; 3 undecodable, 2 refused */
    wait_counters(&fx.a, NULL, (counters_t){12, 8, 3, 2});
    assert_int_equal(q("SELECT count(*) FROM analytics_summaries"), 10);
    assert_int_equal(q("SELECT count(DISTINCT event_id) FROM analytics_summaries WHERE event_id"
                       " BETWEEN '00000000-0000-5000-8000-000000000000'"
                       " AND '00000000-0000-5000-8000-000000000009'"),
                     10);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows"), 7);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows WHERE group_key LIKE 'aborted%'"),
                     0);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows WHERE group_key = 'g2'"), 2);

    /* the columns of summary 9 and of window g0 */
    assert_int_equal(
        q("SELECT count(*) FROM analytics_summaries WHERE"
          " event_id = '00000000-0000-5000-8000-000000000009'"
          " AND tenant_id = '" TENANT "' AND rule_id = '" RULE "' AND rule_version = 3"
          " AND status = 'firing' AND group_key = 'pro'"
          " AND window_start = '2024-05-01T10:09:00Z' AND window_end = '2024-05-01T10:14:00Z'"
          " AND value = 109.25 AND threshold = 100"
          " AND emitted_at = '2024-05-01T10:00:00.5Z'"
          " AND body->>'message' = '109 signup events in 5 min'"
          " AND body->'group'->>'properties.plan' = 'pro'"),
        1);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows WHERE group_key = 'g0'"
                       " AND tenant_id = '" TENANT "' AND rule_id = '" RULE "'"
                       " AND rule_version = 3 AND revision = 1 AND final AND value IS NULL"
                       " AND count = 0 AND window_start = '2024-05-01T11:00:00Z'"
                       " AND window_end = '2024-05-01T11:01:00Z'"
                       " AND body->>'aggregate' = 'count'"),
                     1);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows WHERE group_key = 'g5'"
                       " AND value = 5 AND count = 5"),
                     1);
    assert_true(metric(fx.a.m, POSTGRES_UP) == 1);
    assert_true(metric(fx.a.m, "eventops_analytics_sink_batches_total{role=\"analytics\"}") >= 3);
    stop_sink(&fx.a);
}

/* ---- 2. restart ---- */

static void test_restart(void **state)
{
    txn_begin();
    for (int i = 10; i < 15; i++)
        produce_summary(i, NULL);
    produce_summary(0, NULL); /* stored in the first run */
    produce_window("g", 6, 1);
    produce_window("g", 7, 1);
    txn_commit();

    start_sink(&fx.a, fx.db.dsn, true);
    /* only the new records: nothing of the first run is read again */
    wait_counters(&fx.a, NULL, (counters_t){6, 2, 0, 0});
    assert_int_equal(q("SELECT count(*) FROM analytics_summaries"), 15);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows"), 9);
}

/* ---- 3. PostgreSQL refusing the writes ---- */

static void test_postgres_refusing(void **state)
{
    assert_non_null(fx.a.s); /* still running from the restart */
    assert_int_equal(it_pg_exec(fx.db.dsn, "ALTER TABLE analytics_windows RENAME TO away"), 0);
    txn_begin();
    produce_window("g", 8, 1);
    produce_window("g", 9, 1);
    txn_commit();

    /* the batch is retried with backoff; the sink reports PostgreSQL down */
    wait_not_ready(&fx.a);
    eo_clock_sleep_ms(1500); /* a few retries */
    assert_false(eo_analytics_sink_ready(fx.a.s));
    assert_true(metric(fx.a.m, RECORDS("window")) == 2);
    assert_int_equal(q("SELECT count(*) FROM away"), 9);

    /* back: the kept batch arrives, once */
    assert_int_equal(it_pg_exec(fx.db.dsn, "ALTER TABLE away RENAME TO analytics_windows"), 0);
    wait_counters(&fx.a, NULL, (counters_t){6, 4, 0, 0});
    assert_int_equal(q("SELECT count(*) FROM analytics_windows"), 11);
    assert_true(eo_analytics_sink_ready(fx.a.s));
    assert_true(metric(fx.a.m, POSTGRES_UP) == 1);
}

/* ---- 4. a rebalance while a batch is kept ---- */

/* Sink a holds a batch it cannot store when sink b joins the group: a drops it uncommitted,
 * and the partitions' new owners read it again; every record is stored once and counted once
 * over both sinks. */
static void test_rebalance_drops_kept_batch(void **state)
{
    assert_non_null(fx.a.s);
    counters_t before = counters(&fx.a);
    assert_int_equal(it_pg_exec(fx.db.dsn, "ALTER TABLE analytics_windows RENAME TO away"), 0);
    txn_begin();
    for (int j = 10; j < 30; j++)
        produce_window("g", j, 1);
    for (int i = 20; i < 40; i++)
        produce_summary(i, NULL);
    txn_commit();
    wait_not_ready(&fx.a);

    start_sink(&fx.b, fx.db.dsn, false);
    eo_clock_sleep_ms(3000); /* b joins; both now hold batches they cannot store */
    assert_int_equal(q("SELECT count(*) FROM away"), 11);

    assert_int_equal(it_pg_exec(fx.db.dsn, "ALTER TABLE away RENAME TO analytics_windows"), 0);
    counters_t want = {before.summaries + 20, before.windows + 20, 0, 0};
    wait_counters(&fx.a, &fx.b, want);
    assert_int_equal(q("SELECT count(*) FROM analytics_summaries"), 35);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows"), 31);
    stop_sink(&fx.b);
    stop_sink(&fx.a);
}

/* ---- 5. PostgreSQL unreachable ---- */

/* A sink whose PostgreSQL does not answer is not ready and keeps its batch; stopped, it drops
 * the batch uncommitted, and a sink that can reach PostgreSQL stores it. */
static void test_postgres_unreachable(void **state)
{
    char dsn[128];
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%u user=eventops dbname=none",
             (unsigned)it_closed_port());
    txn_begin();
    for (int i = 40; i < 45; i++)
        produce_summary(i, NULL);
    txn_commit();
    start_sink(&fx.a, dsn, false);
    eo_clock_sleep_ms(2000);
    assert_false(eo_analytics_sink_ready(fx.a.s));
    assert_true(metric(fx.a.m, POSTGRES_UP) == 0);
    int64_t t0 = it_now_ms();
    stop_sink(&fx.a);
    assert_true(it_now_ms() - t0 < 10000); /* the backoff does not hold the stop */
    assert_int_equal(q("SELECT count(*) FROM analytics_summaries"), 35);

    start_sink(&fx.a, fx.db.dsn, true);
    wait_counters(&fx.a, NULL, (counters_t){5, 0, 0, 0});
    assert_int_equal(q("SELECT count(*) FROM analytics_summaries"), 40);
    assert_int_equal(q("SELECT count(*) FROM analytics_windows"), 31);
    stop_sink(&fx.a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_checked),
        cmocka_unit_test(test_first_run),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_postgres_refusing),
        cmocka_unit_test(test_rebalance_drops_kept_batch),
        cmocka_unit_test(test_postgres_unreachable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
