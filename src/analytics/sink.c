/* The analytics sink (see sink.h).
 *
 * Order of effects for one batch, which is what makes each summary and window result land in
 * PostgreSQL exactly once:
 *   1. poll up to batch_max records (or batch_wait_ms) from both topics, read_committed;
 *   2. decode each record into a row (domain/analytics_row.h: a JSON object named by the
 *      table's columns, with the record itself as body); an undecodable record is logged and
 *      skipped;
 *   3. one PostgreSQL transaction inserts all the rows, one statement per table (the rows go
 *      as one JSON array through jsonb_to_recordset), ON CONFLICT DO NOTHING. When it fails
 *      with a data error (SQLSTATE class 22 or 23) the rows are written one by one to find
 *      those the database refuses, which are logged and skipped. Any other failure keeps the
 *      batch: it is retried with backoff (50 ms doubling to 5 s) while the group is served
 *      with the assigned partitions paused;
 *   4. the offsets past the batch are committed synchronously.
 * A crash between 3 and 4 reads the batch again; its inserts skip what is stored. A revocation
 * before 4 drops the batch uncommitted: the partitions' next owner reads it again. Offsets are
 * never committed past a record that was neither stored nor skipped.
 *
 * Threads: the sink's thread owns everything here (the rebalance callback runs inside its
 * polls), except `stopping`, `pg_ok` and `kafka_ok`, atomics read by any thread (readiness,
 * the postgres_up gauge under the metrics registry's lock). */
#include "analytics/sink.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/signals.h"
#include "domain/analytics_row.h"

enum { SKIP_UNDECODABLE, SKIP_REFUSED, NSKIPS };

static const char *const kind_names[EO_ANALYTICS_ROW_KINDS] = {"summary", "window"};
static const char *const skip_reasons[NSKIPS] = {"undecodable", "refused_by_database"};

/* The rows' JSON text of a batch: at most EO_ANALYTICS_SINK_BATCH_BYTES_MAX of records plus
 * one record, each with its columns (well under 1 KiB) beside it. */
#define ROWS_MAX ((size_t)256 << 20)
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 5000
#define COMMIT_ATTEMPTS 5
#define PING_EVERY_US 2000000

static const char postgres_up_name[] = "eventops_analytics_sink_postgres_up";
static const char postgres_up_help[] = "1 while the analytics sink can write to PostgreSQL.";
static const char role_labels[] = "role=\"analytics\"";

/* $1 is a JSON array of rows (domain/analytics_row.h; the column lists follow its order);
 * returns the number of rows inserted (the others were there). Rows go in key order so that
 * two sinks writing the same keys cannot deadlock. */
static const char *const insert_sql[EO_ANALYTICS_ROW_KINDS] = {
    "WITH ins AS ("
    " INSERT INTO analytics_summaries (tenant_id, event_id, rule_id, rule_version, status,"
    "  group_key, window_start, window_end, value, threshold, emitted_at, body)"
    " SELECT tenant_id, event_id, rule_id, rule_version, status, group_key, window_start,"
    "  window_end, value, threshold, emitted_at, body"
    " FROM jsonb_to_recordset($1::jsonb) AS r(tenant_id uuid, event_id uuid, rule_id uuid,"
    "  rule_version int, status text, group_key text, window_start timestamptz,"
    "  window_end timestamptz, value double precision, threshold double precision,"
    "  emitted_at timestamptz, body jsonb)"
    " ORDER BY tenant_id, event_id"
    " ON CONFLICT DO NOTHING RETURNING 1)"
    "SELECT count(*) FROM ins",

    "WITH ins AS ("
    " INSERT INTO analytics_windows (tenant_id, rule_id, rule_version, group_key, window_start,"
    "  window_end, revision, final, value, count, body)"
    " SELECT tenant_id, rule_id, rule_version, group_key, window_start, window_end, revision,"
    "  final, value, count, body"
    " FROM jsonb_to_recordset($1::jsonb) AS r(tenant_id uuid, rule_id uuid, rule_version int,"
    "  group_key text, window_start timestamptz, window_end timestamptz, revision int,"
    "  final boolean, value double precision, count bigint, body jsonb)"
    " ORDER BY tenant_id, rule_id, rule_version, group_key, window_start, revision"
    " ON CONFLICT DO NOTHING RETURNING 1)"
    "SELECT count(*) FROM ins",
};

static const char setup_sql[] = "SET client_min_messages = warning;"
                                "SET TimeZone = 'UTC';"
                                "SET statement_timeout = '60s'";

/* A polled record. */
typedef struct {
    rd_kafka_message_t *msg; /* owned */
    int kind;                /* KIND_*, or -1 while not decoded or once skipped */
    int skipped;             /* SKIP_*, or -1 */
    size_t off, len;         /* its row (a JSON object) in the sink's rows */
} item_t;

struct eo_analytics_sink {
    eo_analytics_sink_options_t opt; /* strings point into the copies below */
    char *brokers, *group, *summaries_topic, *windows_topic, *pg_dsn;
    rd_kafka_t *consumer;
    PGconn *conn;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    atomic_bool pg_ok;    /* PostgreSQL took the last write or ping */
    atomic_bool kafka_ok; /* the consumer did not fail fatally */
    /* Polled records in order: [0, nbatch) is the batch being stored, the rest were polled
     * while it was (held for the next batch). */
    item_t *items;
    size_t nitems, nbatch, cap;
    bool busy;      /* the batch is being stored or committed: a revocation marks it lost */
    bool lost;      /* the batch's partitions were revoked: drop it uncommitted */
    bool paused;    /* the assigned partitions are paused (serve_paused) */
    eo_buf_t rows;  /* the batch's rows */
    eo_buf_t param; /* a JSON array of rows: a statement's parameter */
    int64_t next_ping_us;
    eo_metrics_t *metrics;
    eo_counter_t *records[EO_ANALYTICS_ROW_KINDS], *skipped[NSKIPS], *batches;
};

/* ---- polled records ---- */

/* Destroys the records from index `from` on. */
static void drop_items(eo_analytics_sink_t *s, size_t from)
{
    for (size_t i = from; i < s->nitems; i++)
        rd_kafka_message_destroy(s->items[i].msg);
    if (from < s->nitems)
        s->nitems = from;
}

static int add_item(eo_analytics_sink_t *s, rd_kafka_message_t *m)
{
    if (EO_ARRAY_RESERVE(s->items, s->cap, s->nitems + 1, 256) < 0)
        return EO_ENOMEM;
    s->items[s->nitems++] = (item_t){.msg = m, .kind = -1, .skipped = -1};
    return 0;
}

/* Out of memory while taking a record: skipping it would let a later offset be committed past
 * it, so the sink stops without committing anything more (a restart reads it again). The
 * caller drops what it holds. */
static void cannot_take(eo_analytics_sink_t *s, rd_kafka_message_t *m)
{
    rd_kafka_message_destroy(m);
    eo_log_error("analytics sink: out of memory while batching; stopping without committing", NULL);
    atomic_store(&s->stopping, true);
    eo_signals_request_stop(true);
}

/* Logs a skipped record with where it is. */
static void log_skipped(const item_t *it, const char *why)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)it->msg->partition);
    snprintf(off, sizeof off, "%lld", (long long)it->msg->offset);
    eo_log_warn("analytics record skipped", "reason", skip_reasons[it->skipped], "topic",
                rd_kafka_topic_name(it->msg->rkt), "partition", part, "offset", off, "error", why,
                NULL);
}

static void skip_item(item_t *it, int reason, const char *why)
{
    it->kind = -1;
    it->skipped = reason;
    log_skipped(it, why);
}

/* ---- the consumer ---- */

/* Runs inside the sink's polls. Everything polled before a revocation belongs to the old
 * assignment and is dropped (it was not committed, so the partitions' next owner reads it
 * again); a batch being stored is only marked lost, and its owner drops it. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    eo_analytics_sink_t *s = opaque;
    char n[16];
    snprintf(n, sizeof n, "%d", parts->cnt);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        eo_log_info("analytics sink: partitions assigned", "count", n, NULL);
        rd_kafka_assign(rk, parts);
        return;
    }
    eo_log_info("analytics sink: partitions revoked", "count", n, NULL);
    if (s->busy)
        s->lost = true;
    drop_items(s, s->busy ? s->nbatch : 0);
    /* librdkafka keeps a pause across a revocation: a partition revoked while the backoff had
     * it paused would come back paused and never be fetched again. They are resumed here,
     * while they are paused: resuming a partition that is not paused (say, on the next
     * assignment) makes librdkafka 2.0 fetch again from a stale offset and deliver records
     * twice (librdkafka #4637, fixed in 2.4.0). */
    if (s->paused) {
        rd_kafka_resume_partitions(rk, parts);
        s->paused = false;
    }
    rd_kafka_assign(rk, NULL);
}

/* A consumer of both topics. Dynamic membership, so that a session that times out while the
 * brokers are away rejoins instead of being fenced; max.poll.interval.ms is far above one
 * PostgreSQL statement (statement_timeout 60 s) or one backoff step. */
static rd_kafka_t *consumer_new(eo_analytics_sink_t *s, char *err, size_t errlen)
{
    char session[24];
    snprintf(session, sizeof session, "%lld", (long long)s->opt.session_timeout_ms);
    const char *kv[] = {"group.id",
                        s->opt.group,
                        "client.id",
                        "eventops-analytics-sink",
                        "enable.auto.commit",
                        "false",
                        "enable.auto.offset.store",
                        "false",
                        "auto.offset.reset",
                        "earliest",
                        "isolation.level",
                        "read_committed",
                        "session.timeout.ms",
                        session,
                        "max.poll.interval.ms",
                        "300000",
                        "fetch.wait.max.ms",
                        "100",
                        "enable.partition.eof",
                        "false",
                        NULL};
    rd_kafka_conf_t *conf = eo_kafka_conf_new(s->opt.brokers, err, errlen);
    if (!conf)
        return NULL;
    if (eo_kafka_set_all(conf, kv, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_error_cb(conf, eo_kafka_on_error);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    char reason[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", reason);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    conf = NULL; /* now owned by rk */
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, s->opt.summaries_topic, RD_KAFKA_PARTITION_UA);
    if (strcmp(s->opt.summaries_topic, s->opt.windows_topic) != 0)
        rd_kafka_topic_partition_list_add(topics, s->opt.windows_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(kerr));
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NULL;
    }
    return rk;
}

/* One record (the caller owns it), or NULL on a timeout or an error (logged; a fatal one marks
 * the consumer for a rebuild). */
static rd_kafka_message_t *poll_one(eo_analytics_sink_t *s, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(s->consumer, timeout_ms);
    if (m && m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__FATAL ||
            rd_kafka_fatal_error(s->consumer, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
            atomic_store(&s->kafka_ok, false);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eo_log_warn("analytics sink: kafka consume error", "error", rd_kafka_message_errstr(m),
                        NULL);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

/* Pauses or resumes every assigned partition; only paused partitions are ever resumed (see
 * on_rebalance). */
static void set_paused(eo_analytics_sink_t *s, bool paused)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (s->paused == paused)
        return;
    s->paused = paused;
    if (rd_kafka_assignment(s->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    if (paused)
        rd_kafka_pause_partitions(s->consumer, parts);
    else
        rd_kafka_resume_partitions(s->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* True while the batch in hand may still be committed. */
static bool batch_alive(eo_analytics_sink_t *s)
{
    return !s->lost && atomic_load(&s->kafka_ok) && !atomic_load(&s->stopping);
}

/* Serves the group for ms with the assigned partitions paused: rebalance callbacks run, and
 * records fetched before the pause are held after the batch. Returns batch_alive(). */
static bool serve_paused(eo_analytics_sink_t *s, int64_t ms)
{
    set_paused(s, true);
    int64_t until = eo_clock_mono_us() + ms * 1000;
    while (eo_clock_mono_us() < until && batch_alive(s)) {
        int64_t left = (until - eo_clock_mono_us()) / 1000 + 1;
        rd_kafka_message_t *m = poll_one(s, left < 50 ? (int)left : 50);
        if (m && add_item(s, m) < 0)
            cannot_take(s, m);
    }
    if (atomic_load(&s->kafka_ok))
        set_paused(s, false);
    return batch_alive(s);
}

/* Fills the batch: the held records first, then up to batch_max records, the byte bound or
 * batch_wait_ms. */
static void collect(eo_analytics_sink_t *s)
{
    size_t max = (size_t)s->opt.batch_max, bytes = 0;
    for (size_t i = 0; i < s->nitems; i++)
        bytes += s->items[i].msg->len;
    int64_t deadline = eo_clock_mono_us() + s->opt.batch_wait_ms * 1000;
    while (s->nitems < max && bytes < EO_ANALYTICS_SINK_BATCH_BYTES_MAX &&
           !atomic_load(&s->stopping) && atomic_load(&s->kafka_ok)) {
        int64_t left = (deadline - eo_clock_mono_us()) / 1000;
        if (left <= 0)
            break;
        rd_kafka_message_t *m = poll_one(s, s->nitems || left < 100 ? (int)left : 100);
        if (!m)
            continue;
        bytes += m->len;
        if (add_item(s, m) < 0) {
            cannot_take(s, m);
            drop_items(s, 0);
            return;
        }
    }
    if (!atomic_load(&s->kafka_ok))
        drop_items(s, 0); /* never commit through a dead consumer */
}

/* ---- decoding ---- */

/* Decodes the record of it into its row in s->rows (domain/analytics_row.h). Returns 0,
 * EO_EPARSE (why filled), or EO_ENOMEM / EO_ELIMIT from the rows buffer. */
static int decode_row(eo_analytics_sink_t *s, item_t *it, char *why, size_t whylen)
{
    const rd_kafka_message_t *m = it->msg;
    const char *topic = rd_kafka_topic_name(m->rkt);
    size_t start = s->rows.len;
    eo_analytics_row_kind_t kind;
    int r = eo_analytics_row_append(&s->rows, m->payload, m->len,
                                    !strcmp(topic, s->opt.summaries_topic),
                                    !strcmp(topic, s->opt.windows_topic), &kind, why, whylen);
    if (r < 0)
        return r;
    it->kind = (int)kind;
    it->off = start;
    it->len = s->rows.len - start;
    return 0;
}

/* Decodes every record of the batch; the undecodable are skipped. Returns 0, or EO_ENOMEM /
 * EO_ELIMIT when the rows do not fit in memory. */
static int decode_batch(eo_analytics_sink_t *s)
{
    eo_buf_reset(&s->rows);
    for (size_t i = 0; i < s->nbatch; i++) {
        item_t *it = &s->items[i];
        char why[256];
        int r = decode_row(s, it, why, sizeof why);
        if (r == EO_EPARSE)
            skip_item(it, SKIP_UNDECODABLE, why);
        else if (r < 0)
            return r;
    }
    return 0;
}

/* ---- PostgreSQL ---- */

/* Connects (again) when needed. */
static int ensure_conn(eo_analytics_sink_t *s, char *err, size_t errlen)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    PQfinish(s->conn);
    s->conn = NULL;
    int r = eo_pg_connect(s->opt.pg_dsn, &s->conn, err, errlen);
    if (r == 0 && (r = eo_pg_exec(s->conn, setup_sql, err, errlen)) < 0) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    return r;
}

/* Ends an open transaction after a failure (a broken connection is replaced later). */
static void rollback(eo_analytics_sink_t *s)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        char ignored[128];
        eo_ignore(eo_pg_exec(s->conn, "ROLLBACK", ignored, sizeof ignored));
    }
}

/* Inserts the rows of s->param (a JSON array of rows of kind); adds the rows inserted to
 * *inserted. Returns 0 or eo_pg_error's class. */
static int insert_param(eo_analytics_sink_t *s, int kind, size_t *inserted, char *err,
                        size_t errlen)
{
    const char *params[] = {s->param.data};
    PGresult *res;
    int r = eo_pg_query(s->conn, insert_sql[kind], 1, params, &res, err, errlen);
    if (r < 0)
        return r;
    *inserted += (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* Puts into s->param the JSON array of the batch's rows of kind (only: that item's row alone,
 * when not NULL); *count is the number of rows. Returns 0 or the buffer's error. */
static int build_param(eo_analytics_sink_t *s, int kind, const item_t *only, size_t *count)
{
    eo_buf_reset(&s->param);
    eo_buf_putc(&s->param, '[');
    *count = 0;
    for (size_t i = 0; i < s->nbatch; i++) {
        const item_t *it = &s->items[i];
        if (it->kind != kind || (only && it != only))
            continue;
        if ((*count)++)
            eo_buf_putc(&s->param, ',');
        eo_buf_put(&s->param, s->rows.data + it->off, it->len);
    }
    eo_buf_putc(&s->param, ']');
    return eo_buf_error(&s->param);
}

/* Writes every row of the batch in one transaction (none when every record was skipped).
 * Returns 0 or a classified error (EO_EDATA: some row is refused); *inserted counts the new
 * rows. */
static int write_batch(eo_analytics_sink_t *s, size_t *inserted, char *err, size_t errlen)
{
    *inserted = 0;
    size_t live = 0;
    for (size_t i = 0; i < s->nbatch; i++)
        live += s->items[i].kind >= 0;
    if (live == 0)
        return 0;
    int r = ensure_conn(s, err, errlen);
    if (r == 0)
        r = eo_pg_exec(s->conn, "BEGIN", err, errlen);
    for (int k = 0; r == 0 && k < EO_ANALYTICS_ROW_KINDS; k++) {
        size_t n;
        if ((r = build_param(s, k, NULL, &n)) < 0)
            snprintf(err, errlen, "building the rows: %s", eo_strerror(r));
        else if (n > 0)
            r = insert_param(s, k, inserted, err, errlen);
    }
    if (r == 0)
        r = eo_pg_exec(s->conn, "COMMIT", err, errlen);
    if (r < 0) {
        *inserted = 0;
        rollback(s);
    }
    return r;
}

/* The batch was refused as data: writes its rows one statement each (the inserts are
 * idempotent, so each may commit alone) and skips the rows the database refuses. Returns 0, or
 * a failure other than a data error (the batch is retried whole). */
static int write_each(eo_analytics_sink_t *s, size_t *inserted, char *err, size_t errlen)
{
    *inserted = 0;
    for (size_t i = 0; i < s->nbatch; i++) {
        item_t *it = &s->items[i];
        if (it->kind < 0)
            continue;
        size_t n;
        int r = build_param(s, it->kind, it, &n);
        if (r < 0) {
            snprintf(err, errlen, "building the row: %s", eo_strerror(r));
            return r;
        }
        if ((r = ensure_conn(s, err, errlen)) == 0)
            r = insert_param(s, it->kind, inserted, err, errlen);
        if (r == EO_EDATA)
            skip_item(it, SKIP_REFUSED, err);
        else if (r < 0)
            return r;
    }
    return 0;
}

/* Writes the batch, retrying with backoff while PostgreSQL does not take it. Returns 0 once
 * every row is stored or skipped, or EO_ETIMEOUT when the batch must be dropped uncommitted
 * (partitions revoked, consumer failed, stopping). */
static int store(eo_analytics_sink_t *s, size_t *inserted)
{
    int64_t delay_ms = BACKOFF_FIRST_MS;
    for (;;) {
        char err[512];
        int r = write_batch(s, inserted, err, sizeof err);
        if (r == EO_EDATA)
            r = write_each(s, inserted, err, sizeof err);
        if (r == 0) {
            atomic_store(&s->pg_ok, true);
            return 0;
        }
        atomic_store(&s->pg_ok, false);
        char retry[24];
        snprintf(retry, sizeof retry, "%lld", (long long)delay_ms);
        eo_log_warn("analytics sink: cannot write to postgres; pausing consumption", "error", err,
                    "retry_ms", retry, NULL);
        if (!serve_paused(s, delay_ms))
            return EO_ETIMEOUT;
        delay_ms = delay_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay_ms * 2;
    }
}

/* While idle: checks the database for readiness and the postgres_up gauge. */
static void ping(eo_analytics_sink_t *s)
{
    char err[512];
    int r = ensure_conn(s, err, sizeof err);
    if (r == 0)
        r = eo_pg_exec(s->conn, "SELECT 1", err, sizeof err);
    if (r < 0 && (atomic_load(&s->pg_ok) || s->next_ping_us == 0)) /* went down, or the first */
        eo_log_warn("analytics sink: postgres unavailable", "error", err, NULL);
    atomic_store(&s->pg_ok, r == 0);
    s->next_ping_us = eo_clock_mono_us() + PING_EVERY_US;
}

/* ---- one batch ---- */

/* Commits the offsets past the batch's records, synchronously. A failure is retried a few
 * times while the group is served; after that the batch stays uncommitted, to be read again
 * after a rebalance or a restart (its inserts skip what is stored). Returns 0 or EO_EIO. */
static int commit_offsets(eo_analytics_sink_t *s)
{
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < s->nbatch; i++) {
        const rd_kafka_message_t *m = s->items[i].msg;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(offsets, topic, m->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(offsets, topic, m->partition);
        if (m->offset + 1 > tp->offset)
            tp->offset = m->offset + 1;
    }
    rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t delay_ms = 100;
    for (int attempt = 1;; attempt++) {
        kerr = rd_kafka_commit(s->consumer, offsets, 0);
        if (!kerr || attempt == COMMIT_ATTEMPTS || !serve_paused(s, delay_ms))
            break;
        delay_ms *= 2;
    }
    rd_kafka_topic_partition_list_destroy(offsets);
    if (kerr)
        eo_log_warn("analytics sink: offsets not committed; the batch will be read again", "error",
                    rd_kafka_err2str(kerr), NULL);
    return kerr ? EO_EIO : 0;
}

/* Counts and logs a stored batch. */
static void batch_done(eo_analytics_sink_t *s, size_t inserted, int64_t t0)
{
    size_t kinds[EO_ANALYTICS_ROW_KINDS] = {0}, skips[NSKIPS] = {0};
    for (size_t i = 0; i < s->nbatch; i++) {
        const item_t *it = &s->items[i];
        if (it->kind >= 0)
            kinds[it->kind]++;
        else if (it->skipped >= 0)
            skips[it->skipped]++;
    }
    for (int k = 0; k < EO_ANALYTICS_ROW_KINDS; k++)
        eo_counter_add(s->records[k], kinds[k]);
    for (int k = 0; k < NSKIPS; k++)
        eo_counter_add(s->skipped[k], skips[k]);
    eo_counter_add(s->batches, 1);
    char n[24], sum[24], win[24], ins[24], dup[24], skipped[24], ms[24];
    size_t rows = kinds[EO_ANALYTICS_ROW_SUMMARY] + kinds[EO_ANALYTICS_ROW_WINDOW];
    snprintf(n, sizeof n, "%zu", s->nbatch);
    snprintf(sum, sizeof sum, "%zu", kinds[EO_ANALYTICS_ROW_SUMMARY]);
    snprintf(win, sizeof win, "%zu", kinds[EO_ANALYTICS_ROW_WINDOW]);
    snprintf(ins, sizeof ins, "%zu", inserted);
    snprintf(dup, sizeof dup, "%zu", rows >= inserted ? rows - inserted : 0);
    snprintf(skipped, sizeof skipped, "%zu", skips[SKIP_UNDECODABLE] + skips[SKIP_REFUSED]);
    snprintf(ms, sizeof ms, "%.1f", (double)(eo_clock_mono_us() - t0) / 1000);
    eo_log_info("analytics batch stored", "records", n, "summaries", sum, "windows", win,
                "inserted", ins, "duplicates", dup, "skipped", skipped, "store_ms", ms, NULL);
}

/* Stores the polled records as one batch and commits their offsets; the records polled
 * meanwhile stay for the next batch. */
static void process_batch(eo_analytics_sink_t *s)
{
    int64_t t0 = eo_clock_mono_us();
    s->nbatch = s->nitems;
    s->busy = true;
    s->lost = false;
    size_t inserted = 0;
    int r = decode_batch(s);
    if (r < 0) {
        eo_log_error("analytics sink: out of memory decoding a batch; stopping without committing",
                     "error", eo_strerror(r), NULL);
        atomic_store(&s->stopping, true);
        eo_signals_request_stop(true);
    } else {
        r = store(s, &inserted);
    }
    if (r == 0 && !s->lost && atomic_load(&s->kafka_ok)) {
        batch_done(s, inserted, t0);
        eo_ignore(commit_offsets(s)); /* logged; uncommitted is read again, idempotently */
    }
    s->busy = false;
    s->lost = false;
    /* the batch is done or dropped; the records held meanwhile move to the front (a revocation
     * dropped them, leaving nitems == nbatch) */
    size_t n = s->nitems, done = s->nbatch;
    for (size_t i = 0; i < done; i++)
        rd_kafka_message_destroy(s->items[i].msg);
    memmove(s->items, s->items + done, (n - done) * sizeof *s->items);
    s->nitems = n - done;
    s->nbatch = 0;
}

/* ---- the thread ---- */

/* Replaces a consumer librdkafka made unusable: a new group member starts from the committed
 * offsets, and what was polled is dropped. When none can be built the sink stops and asks the
 * process to stop with a failure. */
static void rebuild_consumer(eo_analytics_sink_t *s)
{
    char why[512] = "";
    rd_kafka_fatal_error(s->consumer, why, sizeof why);
    eo_log_warn("analytics sink: rebuilding the kafka consumer", "reason", why, NULL);
    drop_items(s, 0);
    rd_kafka_destroy_flags(s->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    s->paused = false;
    char err[512];
    if (!(s->consumer = consumer_new(s, err, sizeof err))) {
        eo_log_error("analytics sink: cannot rebuild the kafka consumer; stopping", "error", err,
                     NULL);
        atomic_store(&s->stopping, true);
        eo_signals_request_stop(true);
        return;
    }
    atomic_store(&s->kafka_ok, true);
}

static void *run(void *arg)
{
    eo_log_thread_role("analytics");
    eo_analytics_sink_t *s = arg;
    ping(s);
    while (!atomic_load(&s->stopping)) {
        if (!atomic_load(&s->kafka_ok)) {
            rebuild_consumer(s);
            continue;
        }
        collect(s);
        if (s->nitems) {
            process_batch(s); /* also when stopping: the batch in hand is finished */
            s->next_ping_us = eo_clock_mono_us() + PING_EVERY_US;
        } else if (eo_clock_mono_us() >= s->next_ping_us) {
            ping(s);
        }
    }
    if (s->consumer && atomic_load(&s->kafka_ok))
        rd_kafka_consumer_close(s->consumer); /* its revocation drops what is held */
    return NULL;
}

/* ---- start and stop ---- */

static double read_postgres_up(void *ud)
{
    const eo_analytics_sink_t *s = ud;
    return atomic_load(&s->pg_ok);
}

/* What the gauge reads once the sink is gone. */
static double read_zero(void *ud)
{
    (void)ud;
    return 0;
}

/* Registers the sink's series into m (nothing when m is NULL). */
static int register_metrics(eo_analytics_sink_t *s, eo_metrics_t *m)
{
    if (!m)
        return 0;
    s->metrics = m;
    eo_metrics_counters(m, "eventops_analytics_sink_records_total",
                        "Summaries and window results written to PostgreSQL (inserted, or already "
                        "there), by kind.",
                        "analytics", "kind", kind_names, EO_ANALYTICS_ROW_KINDS, s->records);
    eo_metrics_counters(m, "eventops_analytics_sink_skipped_total",
                        "Records of the summaries and windows topics skipped, by reason (each "
                        "logged with its topic, partition and offset).",
                        "analytics", "reason", skip_reasons, NSKIPS, s->skipped);
    s->batches = eo_metrics_counter(m, "eventops_analytics_sink_batches_total",
                                    "Batches of summaries and window results written to "
                                    "PostgreSQL.",
                                    role_labels);
    return eo_metrics_gauge_fn(m, postgres_up_name, postgres_up_help, role_labels, read_postgres_up,
                               s);
}

/* Checks the options; EO_EINVAL with the reason in err. */
static int check_options(const eo_analytics_sink_options_t *o, char *err, size_t errlen)
{
    const struct {
        const char *name, *value;
    } strs[] = {{"brokers", o->brokers},
                {"group", o->group},
                {"summaries topic", o->summaries_topic},
                {"windows topic", o->windows_topic},
                {"PostgreSQL DSN", o->pg_dsn}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!strs[i].value || !strs[i].value[0]) {
            snprintf(err, errlen, "analytics sink: the %s is empty", strs[i].name);
            return EO_EINVAL;
        }
    }
    const struct {
        const char *name;
        int64_t value, min, max;
    } nums[] = {
        {"session timeout (ms)", o->session_timeout_ms, 1000, 3600000},
        {"batch size", o->batch_max, 1, EO_ANALYTICS_SINK_BATCH_MAX_LIMIT},
        {"batch wait (ms)", o->batch_wait_ms, 1, EO_ANALYTICS_SINK_BATCH_WAIT_MS_LIMIT},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (nums[i].value < nums[i].min || nums[i].value > nums[i].max) {
            snprintf(err, errlen, "analytics sink: the %s must be %lld..%lld, not %lld",
                     nums[i].name, (long long)nums[i].min, (long long)nums[i].max,
                     (long long)nums[i].value);
            return EO_EINVAL;
        }
    }
    return 0;
}

/* Copies the option strings so that the sink outlives its caller's configuration. */
static int copy_options(eo_analytics_sink_t *s, const eo_analytics_sink_options_t *opt)
{
    s->opt = *opt;
    struct {
        char **copy;
        const char **field;
    } strs[] = {
        {&s->brokers, &s->opt.brokers},
        {&s->group, &s->opt.group},
        {&s->summaries_topic, &s->opt.summaries_topic},
        {&s->windows_topic, &s->opt.windows_topic},
        {&s->pg_dsn, &s->opt.pg_dsn},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!(*strs[i].copy = strdup(*strs[i].field)))
            return EO_ENOMEM;
        *strs[i].field = *strs[i].copy;
    }
    return 0;
}

/* Frees what eo_analytics_sink_start made (its thread is joined or never started). */
static void destroy(eo_analytics_sink_t *s)
{
    if (s->metrics) /* the registry outlives the sink: its gauge must not read freed memory */
        eo_ignore(eo_metrics_gauge_fn(s->metrics, postgres_up_name, postgres_up_help, role_labels,
                                      read_zero, NULL));
    drop_items(s, 0);
    free(s->items);
    if (s->consumer) /* closed by the thread, unless it failed or never ran */
        rd_kafka_destroy_flags(s->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    PQfinish(s->conn);
    eo_buf_done(&s->rows);
    eo_buf_done(&s->param);
    free(s->brokers);
    free(s->group);
    free(s->summaries_topic);
    free(s->windows_topic);
    free(s->pg_dsn);
    free(s);
}

int eo_analytics_sink_start(const eo_analytics_sink_options_t *opt, eo_metrics_t *m,
                            eo_analytics_sink_t **out, char *err, size_t errlen)
{
    *out = NULL;
    int r = check_options(opt, err, errlen);
    if (r < 0)
        return r;
    eo_analytics_sink_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    eo_buf_init(&s->rows, ROWS_MAX);
    eo_buf_init(&s->param, ROWS_MAX);
    if ((r = copy_options(s, opt)) < 0 || (r = register_metrics(s, m)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    r = EO_EIO;
    if (!(s->consumer = consumer_new(s, err, errlen)))
        goto fail;
    atomic_store(&s->kafka_ok, true);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(err, errlen, "cannot start the analytics sink thread");
        r = EO_ENOMEM;
        goto fail;
    }
    s->thread_started = true;
    eo_log_info("analytics sink started", "group", s->opt.group, "summaries_topic",
                s->opt.summaries_topic, "windows_topic", s->opt.windows_topic, NULL);
    *out = s;
    return 0;
fail:
    destroy(s);
    return r;
}

bool eo_analytics_sink_ready(const eo_analytics_sink_t *s)
{
    return s && atomic_load(&s->pg_ok) && atomic_load(&s->kafka_ok) && !atomic_load(&s->stopping);
}

void eo_analytics_sink_stop(eo_analytics_sink_t *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    destroy(s);
    eo_log_info("analytics sink stopped", NULL);
}
