/* Processor role (see processor.h).
 *
 * Order of effects for one batch, which is what makes storage effectively-once:
 *   1. decode and validate every record (the collector's rules); unknown tenants and invalid
 *      records become dead letters;
 *   2. one PostgreSQL transaction stores the good rows (duplicates skipped, rollups from
 *      inserted rows only); a row the database refuses is isolated by splitting the batch and
 *      becomes a dead letter; while PostgreSQL is unavailable the partitions are paused and
 *      the batch is retried with backoff;
 *   3. one Kafka transaction produces the dead letters and commits the offsets.
 * A crash between 2 and 3 redelivers the batch: storage skips what it has, and the aborted
 * Kafka transaction means dead letters are never doubled for read_committed readers.
 *
 * Kafka failures (issue 10). No Kafka call blocks the loop for longer than
 * EVENTOPS_KAFKA_CALL_TIMEOUT_MS: a transaction call that times out is retried while the loop
 * serves the group with its partitions paused, until EVENTOPS_KAFKA_TXN_TIMEOUT_MS. A
 * transaction that must abort is aborted, and the consumer is rewound to the group's committed
 * offsets. A client librdkafka made unusable (a fatal error), or a transaction whose outcome
 * stayed unknown, is rebuilt in the process: a new producer with the same transactional.id
 * (init_transactions settles the old one's open transaction, committed or aborted), then a
 * rewind to the committed offsets, which are right whatever that outcome was; a new consumer
 * starts from them by itself. The batch in hand is dropped uncommitted and read again, so the
 * guarantee holds; the process exits (non-zero) only when a client cannot be built at all.
 * The group uses dynamic membership: a broker outage longer than the session timeout ends in
 * a rejoin, never in static-membership fencing (librdkafka #3437).
 *
 * Where each part lives: this file is the loop, start and stop, readiness and metrics; the
 * Kafka side (poll, rebalance, pause, transactions, rewind, rebuilds) is stream/kafka_consumer.h;
 * storing a batch (decoding, unknown tenants, splitting around refused records, retries) is
 * batch_store.h behind the store port (store.h, PostgreSQL: pg_store.h), run in parallel by
 * the storage workers of store_pool.h.
 *
 * Threads: the processor thread owns everything here except `stopping` and `pg_ok` (atomics
 * read by the main and HTTP threads), the storage workers (store_pool.h: they touch the batch
 * only while this thread waits for them) and the lag monitor (its own thread,
 * stream/kafka_lag.h). */
#include "processor/processor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/clock.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/openapi.h"
#include "core/signals.h"
#include "processor/batch_store.h"
#include "processor/compactor.h"
#include "processor/pg_store.h"
#include "processor/store_pool.h"
#include "stream/kafka_consumer.h"
#include "stream/kafka_lag.h"

struct eo_processor {
    eo_config_t cfg;
    eo_event_limits_t lim;
    eo_kafka_consumer_t *kc; /* the group consumer and the producer of dead letters + offsets */
    eo_store_pool_t *pool;
    eo_http_server_t *http;
    pthread_t thread;
    eo_compactor_t *compactor; /* merges user-set deltas (its own thread and connection) */
    atomic_bool stopping;
    atomic_bool pg_ok; /* PostgreSQL took the last write or ping */
    eo_kafka_lag_t *lag;
    eo_batch_item_t *items; /* the batch; each item's source is its Kafka message */
    size_t nitems, cap;
    int64_t next_ensure_us;
    int64_t next_ping_us; /* when idle, check the database this often for /readyz */
    eo_metrics_t *metrics;
    eo_counter_t *batches, *rows_inserted, *duplicates;
    eo_counter_t *dead_letters[5]; /* by dead_reasons */
    eo_histogram_t *db_write, *batch_size;
    eo_kafka_consumer_metrics_t kafka_metrics;
};

/* The dead-letter reasons of the metrics (anything else is "invalid": a validation code). */
static const char *const dead_reasons[5] = {"undecodable", "invalid", "refused_by_database",
                                            "unknown_tenant", "other"};

static size_t dead_reason(const char *code)
{
    if (!strcmp(code, "undecodable"))
        return 0;
    if (!strcmp(code, "storage_rejected"))
        return 2;
    if (!strcmp(code, "unknown_tenant"))
        return 3;
    return code[0] ? 1 : 4;
}

/* Up to 100 distinct values, written comma-separated into out. */
typedef struct {
    char *out;
    size_t cap, len, count;
    const char *seen[100];
    size_t seen_len[100];
} distinct_t;

static void distinct_init(distinct_t *d, char *out, size_t cap)
{
    d->out = out;
    d->cap = cap;
    d->len = d->count = 0;
    out[0] = '\0';
}

static void distinct_add(distinct_t *d, const void *v, size_t n)
{
    if (d->count == 100 || d->len + n + 2 > d->cap)
        return;
    for (size_t k = d->count; k-- > 0;) /* newest first: a request's events are adjacent */
        if (d->seen_len[k] == n && !memcmp(d->seen[k], v, n))
            return;
    if (d->len)
        d->out[d->len++] = ',';
    memcpy(d->out + d->len, v, n);
    d->seen[d->count] = d->out + d->len;
    d->seen_len[d->count++] = n;
    d->len += n;
    d->out[d->len] = '\0';
}

/* The distinct request ids (x-request-id headers) and trace ids (of the traceparent headers)
 * of the batch, in one pass over its records. */
static void batch_ids(eo_processor_t *p, distinct_t *ids, distinct_t *traces)
{
    for (size_t i = 0; i < p->nitems && (ids->count < 100 || traces->count < 100); i++) {
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t n;
        if (rd_kafka_message_headers(p->items[i].source, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        if (rd_kafka_header_get_last(h, "x-request-id", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            n > 0 && n <= 128)
            distinct_add(ids, v, n);
        if (rd_kafka_header_get_last(h, "traceparent", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            n == 55)
            distinct_add(traces, (const char *)v + 3, 32); /* the trace id */
    }
}

/* Drops the batch in hand (not committed: it is read again). Also the consumer module's
 * on_revoke: a revocation while no batch is being stored drops what was polled before it. */
static void clear_items(void *arg)
{
    eo_processor_t *p = arg;
    for (size_t i = 0; i < p->nitems; i++) {
        eo_batch_item_done(&p->items[i]);
        rd_kafka_message_destroy(p->items[i].source);
    }
    p->nitems = 0;
}

static int add_item(eo_processor_t *p, rd_kafka_message_t *m)
{
    if (EO_ARRAY_RESERVE(p->items, p->cap, p->nitems + 1, 1024) < 0)
        return EO_ENOMEM;
    eo_batch_item_init(&p->items[p->nitems++], m->payload, m->len, m);
    return 0;
}

/* Out of memory while taking a message: skipping it would let a later offset be committed past
 * it, so the batch is dropped uncommitted and the process stops (its restart reads it again). */
static void cannot_take(eo_processor_t *p, rd_kafka_message_t *m)
{
    rd_kafka_message_destroy(m);
    eo_log_error("out of memory while batching; stopping without committing", NULL);
    atomic_store(&p->stopping, true);
    eo_signals_request_stop(true);
}

/* Fills the batch: messages held from a pause first, then up to the count or time bound. */
static void collect(eo_processor_t *p)
{
    size_t max = (size_t)p->cfg.batch_max_events;
    rd_kafka_message_t *m;
    while (p->nitems < max && (m = eo_kafka_consumer_take_held(p->kc)))
        if (add_item(p, m) < 0)
            cannot_take(p, m);
    int64_t deadline = eo_clock_mono_us() + p->cfg.batch_max_wait_ms * 1000;
    while (p->nitems < max && !atomic_load(&p->stopping) && !eo_kafka_consumer_failed(p->kc)) {
        int64_t left = (deadline - eo_clock_mono_us()) / 1000;
        if (left <= 0)
            break;
        m = eo_kafka_consumer_poll(p->kc, p->nitems ? (int)left : (int)(left < 100 ? left : 100));
        if (!m) {
            if (p->nitems == 0 && eo_clock_mono_us() >= deadline)
                break;
            continue;
        }
        if (add_item(p, m) < 0)
            cannot_take(p, m);
    }
    if ((atomic_load(&p->stopping) && eo_signals_failed()) || eo_kafka_consumer_failed(p->kc))
        clear_items(p); /* never commit a batch with a hole in it, or through a dead consumer */
}

/* True when a stop must not wait for the batch in hand any longer. */
static bool must_quit(eo_processor_t *p, int64_t stop_deadline_us)
{
    return atomic_load(&p->stopping) &&
           (eo_signals_failed() || eo_clock_mono_us() > stop_deadline_us);
}

/* The storage of one batch, between its attempts. */
typedef struct {
    eo_processor_t *p;
    int64_t delay_ms, stop_deadline_us;
} retry_t;

/* The store was unavailable: sleeps for the backoff while serving the group with the
 * partitions paused, then doubles it up to the cap. Returns false when the batch in hand must
 * be dropped (partitions revoked, consumer failed) or the processor stops. An
 * eo_batch_wait_fn. */
static bool backoff(void *arg, const char *err)
{
    retry_t *rt = arg;
    eo_processor_t *p = rt->p;
    atomic_store(&p->pg_ok, false);
    eo_log_warn("postgres unavailable; pausing consumption", "error", err, NULL);
    int64_t until = eo_clock_mono_us() + rt->delay_ms * 1000;
    while (eo_clock_mono_us() < until && !eo_kafka_consumer_batch_lost(p->kc) &&
           !must_quit(p, rt->stop_deadline_us))
        eo_kafka_consumer_serve_paused(p->kc, (until - eo_clock_mono_us()) / 1000 + 1);
    rt->delay_ms = rt->delay_ms * 2 > p->cfg.retry_max_backoff_ms ? p->cfg.retry_max_backoff_ms
                                                                  : rt->delay_ms * 2;
    return !eo_kafka_consumer_batch_lost(p->kc) && !must_quit(p, rt->stop_deadline_us);
}

/* Logs a record the database refused (on a storage worker's thread). */
static void log_refused(const char *err)
{
    eo_log_warn("record refused by the database", "error", err, NULL);
}

/* Steps 1 and 2 with retries. Returns 0, or EO_ETIMEOUT when the batch must be dropped
 * (partitions revoked, or stopping). */
static int store_batch(eo_processor_t *p, size_t *inserted)
{
    retry_t rt = {p, 50, eo_clock_mono_us() + p->cfg.shutdown_timeout_ms * 1000};
    int r = eo_store_pool_store(p->pool, p->items, p->nitems, backoff, &rt, inserted);
    if (r == 0)
        atomic_store(&p->pg_ok, true);
    return r;
}

/* Step 3: dead letters and offsets in one Kafka transaction. Returns 0 when committed, or
 * EO_EIO when not (the consumer module aborted it and rewinds). No call blocks longer than
 * EVENTOPS_KAFKA_CALL_TIMEOUT_MS; the whole is bounded by EVENTOPS_KAFKA_TXN_TIMEOUT_MS. */
static int commit_batch(eo_processor_t *p, size_t *dead)
{
    int r = eo_kafka_consumer_txn_begin(p->kc);
    if (r < 0)
        return r;
    *dead = 0;
    for (size_t i = 0; i < p->nitems; i++) {
        eo_batch_item_t *it = &p->items[i];
        eo_kafka_consumer_txn_consumed(p->kc, it->source);
        if (!it->dead)
            continue;
        if ((r = eo_kafka_consumer_txn_dead_letter(p->kc, p->cfg.dlq_topic, it->source,
                                                   it->why.code, it->why.message, it->why.field)) <
            0)
            return r;
        (*dead)++;
    }
    return eo_kafka_consumer_txn_commit(p->kc);
}

/* Logs and counts a committed batch. */
static void batch_done(eo_processor_t *p, size_t inserted, size_t dead, int64_t t0, int64_t t1)
{
    char n[24], ins[24], d[24], store_ms[24], commit_ms[24];
    snprintf(n, sizeof n, "%zu", p->nitems);
    snprintf(ins, sizeof ins, "%zu", inserted);
    snprintf(d, sizeof d, "%zu", dead);
    snprintf(store_ms, sizeof store_ms, "%.1f", (double)(t1 - t0) / 1000);
    snprintf(commit_ms, sizeof commit_ms, "%.1f", (double)(eo_clock_mono_us() - t1) / 1000);
    size_t records = p->nitems, dups = records - dead >= inserted ? records - dead - inserted : 0;
    /* at most what a log value holds, so that the lists end with whole ids */
    char dup[24], ids[EO_LOG_VALUE_MAX], traces[100 * 34];
    snprintf(dup, sizeof dup, "%zu", dups);
    distinct_t id_list, trace_list;
    distinct_init(&id_list, ids, sizeof ids);
    distinct_init(&trace_list, traces, sizeof traces);
    batch_ids(p, &id_list, &trace_list);
    eo_log_info("batch stored", "records", n, "inserted", ins, "duplicates", dup, "dead_letters", d,
                "store_ms", store_ms, "kafka_commit_ms", commit_ms, "request_ids", ids, "trace_ids",
                traces, NULL);
    eo_counter_add(p->batches, 1);
    eo_counter_add(p->rows_inserted, inserted);
    eo_counter_add(p->duplicates, dups);
    eo_histogram_observe(p->db_write, (double)(t1 - t0) / 1e6);
    eo_histogram_observe(p->batch_size, (double)records);
    for (size_t i = 0; dead && i < p->nitems; i++)
        if (p->items[i].dead)
            eo_counter_add(p->dead_letters[dead_reason(p->items[i].why.code)], 1);
    if (dead)
        eo_log_warn("records sent to the dead-letter topic", "count", d, "topic", p->cfg.dlq_topic,
                    NULL);
}

static void process_batch(eo_processor_t *p)
{
    size_t inserted = 0, dead = 0;
    int64_t t0 = eo_clock_mono_us();
    eo_kafka_consumer_batch_begin(p->kc);
    int stored = store_batch(p, &inserted);
    int64_t t1 = eo_clock_mono_us();
    /* not committed: read again after the rebalance, rebuild or restart */
    int r = stored < 0 || eo_kafka_consumer_batch_lost(p->kc) ? EO_EIO : commit_batch(p, &dead);
    eo_kafka_consumer_batch_end(p->kc);
    if (r == 0)
        batch_done(p, inserted, dead, t0, t1);
    clear_items(p);
}

/* Keeps the daily partitions ahead (hourly; every 5 s after a failure). */
static void tend_store(eo_processor_t *p)
{
    int64_t now = eo_clock_mono_us();
    if (now < p->next_ensure_us)
        return;
    eo_store_t *st = eo_store_pool_first(p->pool);
    char err[512];
    if (eo_store_ensure_ahead(st, eo_clock_now_us(), p->cfg.partitions_ahead_days, err,
                              sizeof err) < 0) {
        eo_log_warn("creating partitions ahead failed", "error", err, NULL);
        p->next_ensure_us = now + 5000000;
    } else {
        p->next_ensure_us = now + 3600 * INT64_C(1000000);
    }
    p->next_ping_us = now + 2000000;
    atomic_store(&p->pg_ok, eo_store_ok(st));
}

/* While idle: checks the database for /readyz. */
static void ping_store(eo_processor_t *p)
{
    char err[512];
    bool ok = eo_store_ping(eo_store_pool_first(p->pool), err, sizeof err) == 0;
    if (!ok && atomic_load(&p->pg_ok))
        eo_log_warn("postgres unavailable", "error", err, NULL);
    atomic_store(&p->pg_ok, ok);
    p->next_ping_us = eo_clock_mono_us() + 2000000;
}

static void *run(void *arg)
{
    eo_log_thread_role("processor");
    eo_processor_t *p = arg;
    while (!atomic_load(&p->stopping)) {
        tend_store(p);
        if (!eo_kafka_consumer_heal(p->kc))
            continue;
        collect(p);
        if (p->nitems) {
            process_batch(p);
            p->next_ping_us = eo_clock_mono_us() + 2000000;
        } else if (eo_clock_mono_us() >= p->next_ping_us) {
            ping_store(p);
        }
    }
    /* the batch in hand was finished by the loop; leave the group */
    eo_kafka_consumer_close(p->kc);
    return NULL;
}

/* What readiness and the status gauges say, read from any thread. */
typedef struct {
    bool postgres, kafka, stalled, ready;
} status_t;

static status_t status_now(eo_processor_t *p)
{
    status_t st;
    st.postgres = atomic_load(&p->pg_ok);
    st.kafka = eo_kafka_consumer_usable(p->kc) && eo_kafka_lag_brokers_up(p->lag);
    st.stalled = eo_kafka_lag_stalled(p->lag, p->cfg.processor_stall_ms);
    st.ready = st.postgres && st.kafka && !st.stalled && !atomic_load(&p->stopping);
    return st;
}

static void on_readyz(eo_http_req_t *req, void *ud)
{
    status_t st = status_now(ud);
    char body[128];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"postgres\":%s,\"kafka\":%s,\"stalled\":%s}",
                     st.ready ? "ready" : "unavailable", st.postgres ? "true" : "false",
                     st.kafka ? "true" : "false", st.stalled ? "true" : "false");
    eo_http_respond(req, st.ready ? 200 : 503, body, (size_t)n, NULL);
}

static const eo_http_route_t routes[] = {
    {"GET", "/healthz", NULL, eo_http_on_healthz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
    {"GET", "/readyz", NULL, on_readyz, false},
};

/* The state gauges, read at each scrape (the lag gauges come from the lag monitor). */
static double read_postgres_up(void *ud)
{
    return status_now(ud).postgres;
}

static double read_kafka_up(void *ud)
{
    return status_now(ud).kafka;
}

static double read_stalled(void *ud)
{
    return status_now(ud).stalled;
}

static int register_metrics(eo_processor_t *p)
{
    if (!(p->metrics = eo_metrics_new()))
        return EO_ENOMEM;
    const char *role = "role=\"processor\"";
    p->batches = eo_metrics_counter(p->metrics, "eventops_processor_batches_total",
                                    "Batches stored and committed.", role);
    p->rows_inserted = eo_metrics_counter(p->metrics, "eventops_processor_rows_inserted_total",
                                          "Events inserted into PostgreSQL.", role);
    p->duplicates = eo_metrics_counter(p->metrics, "eventops_processor_duplicates_skipped_total",
                                       "Records skipped because their messageId was stored.", role);
    eo_metrics_counters(p->metrics, "eventops_processor_dead_letters_total",
                        "Records sent to the dead-letter topic, by reason.", "processor", "reason",
                        dead_reasons, 5, p->dead_letters);
    p->db_write = eo_metrics_histogram(p->metrics, "eventops_processor_db_write_seconds",
                                       "Time to store one batch in PostgreSQL.", role,
                                       eo_metrics_latency_buckets, eo_metrics_latency_nbuckets);
    p->batch_size = eo_metrics_histogram(p->metrics, "eventops_processor_batch_size_events",
                                         "Records per batch.", role, eo_metrics_size_buckets,
                                         eo_metrics_size_nbuckets);
    eo_kafka_consumer_register_metrics(p->metrics, "processor", &p->kafka_metrics);
    eo_metrics_build_info(p->metrics, "processor");
    int r = eo_metrics_gauge_fn(p->metrics, "eventops_processor_postgres_up",
                                "1 while the processor can write to PostgreSQL.", role,
                                read_postgres_up, p);
    r = r < 0 ? r
              : eo_metrics_gauge_fn(p->metrics, "eventops_processor_kafka_up",
                                    "1 while the brokers answer and the processor's Kafka clients "
                                    "are usable.",
                                    role, read_kafka_up, p);
    r = r < 0 ? r
              : eo_metrics_gauge_fn(p->metrics, "eventops_processor_stalled",
                                    "1 while a partition of this processor has a backlog and no "
                                    "committed progress for EVENTOPS_PROCESSOR_STALL_MS.",
                                    role, read_stalled, p);
    return r < 0 ? r : eo_metrics_add_collector(p->metrics, eo_kafka_lag_write_metrics, p->lag);
}

static int open_pg_store(void *ud, eo_store_t **out)
{
    const eo_processor_t *p = ud;
    return eo_pg_store_new(p->cfg.pg_dsn, (size_t)p->cfg.user_cache_entries, out);
}

/* Frees what eo_processor_start made (on its failure, or at the end of stop). */
static void destroy(eo_processor_t *p)
{
    eo_http_server_free(p->http, 1000);
    eo_compactor_stop(p->compactor);
    eo_kafka_consumer_free(p->kc);
    eo_store_pool_free(p->pool);
    eo_kafka_lag_free(p->lag);
    eo_metrics_free(p->metrics);
    free(p->items);
    free(p);
}

int eo_processor_start(const eo_config_t *cfg, eo_processor_t **out, char *err, size_t errlen)
{
    *out = NULL;
    eo_processor_t *p = calloc(1, sizeof *p);
    if (!p)
        return EO_ENOMEM;
    p->cfg = *cfg;
    eo_event_limits_from_config(&p->lim, cfg);
    int r;
    eo_kafka_lag_options_t lag_opt = {
        .brokers = cfg->kafka_brokers,
        .group = cfg->processor_group,
        .topic = cfg->events_topic,
        .role = "processor",
        .interval_ms = cfg->kafka_lag_interval_ms,
    };
    if ((r = eo_kafka_lag_new(&lag_opt, &p->lag, err, errlen)) < 0)
        goto fail;
    if ((r = register_metrics(p)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    char txn_id[160];
    snprintf(txn_id, sizeof txn_id, "eventops-%s", cfg->processor_id);
    eo_kafka_consumer_options_t kopt = {
        .brokers = cfg->kafka_brokers,
        .group = cfg->processor_group,
        .topic = cfg->events_topic,
        .consumer_client_id = "eventops-processor",
        .producer_client_id = "eventops-processor-dlq",
        .transactional_id = txn_id,
        .session_timeout_ms = cfg->kafka_session_timeout_ms,
        .fetch_min_bytes = cfg->kafka_fetch_min_bytes,
        .prefetch_kbytes = cfg->processor_prefetch_kbytes,
        .call_timeout_ms = cfg->kafka_call_timeout_ms,
        .txn_timeout_ms = cfg->kafka_txn_timeout_ms,
        .consumer_fault = "processor-consumer-fatal",
        .producer_fault = "processor-producer-fatal",
        .lag = p->lag,
        .metrics = &p->kafka_metrics,
        .stopping = &p->stopping,
        .on_revoke = clear_items,
        .ud = p,
    };
    if ((r = eo_kafka_consumer_new(&kopt, &p->kc, err, errlen)) < 0)
        goto fail;
    eo_store_pool_options_t popt = {
        .workers = (size_t)cfg->processor_workers,
        .open = open_pg_store,
        .open_ud = p,
        .lim = &p->lim,
        .refused = log_refused,
        .role = "processor",
    };
    if ((r = eo_store_pool_new(&popt, &p->pool, err, errlen)) < 0)
        goto fail;
    if ((r = eo_compactor_start(cfg->pg_dsn, cfg->user_sets_compact_ms, cfg->user_sets_compact_rows,
                                cfg->timeline_part_events, p->metrics, &p->compactor, err,
                                errlen)) < 0)
        goto fail;
    eo_http_options_t opt = {
        .addr = cfg->processor_addr,
        .port = (uint16_t)cfg->processor_port,
        .threads = 1,
        .max_connections = 64,
        .max_connections_per_ip = 64,
        .connection_timeout_s = 10,
        .max_header_bytes = (size_t)cfg->http_max_header_bytes,
        .read_buffer_bytes = (size_t)cfg->http_read_buffer_bytes,
        .max_body_bytes = 1024,
        .routes = routes,
        .nroutes = sizeof routes / sizeof routes[0],
        .ud = p,
        .metrics = p->metrics,
        .role = "processor",
    };
    if ((r = eo_http_server_start(&opt, &p->http, err, errlen)) < 0)
        goto fail;
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        snprintf(err, errlen, "cannot start the processor thread");
        r = EO_ENOMEM;
        goto fail;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)eo_http_server_port(p->http));
    eo_log_info("processor started", "group", cfg->processor_group, "instance", cfg->processor_id,
                "topic", cfg->events_topic, "health_port", port, NULL);
    *out = p;
    return 0;
fail:
    destroy(p);
    return r;
}

void eo_processor_stop(eo_processor_t *p)
{
    if (!p)
        return;
    atomic_store(&p->stopping, true);
    pthread_join(p->thread, NULL);
    clear_items(p);
    destroy(p);
    eo_log_info("processor stopped", NULL);
}
