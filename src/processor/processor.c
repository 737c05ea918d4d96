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
 * Threads: the processor thread owns everything here except `stopping`, `pg_ok` and
 * `kafka_ok` (atomics read by the main and HTTP threads) and the lag monitor (its own
 * thread, stream/kafka_lag.h). */
#include "processor/processor.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/fault.h"
#include "core/http.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/openapi.h"
#include "core/signals.h"
#include "domain/record.h"
#include "processor/pg_store.h"
#include "stream/kafka_lag.h"

typedef struct {
    rd_kafka_message_t *msg;
    eo_record_t rec;
    bool attempted;       /* decoding was tried */
    bool decoded;         /* rec holds a valid record */
    bool dead;            /* goes to the dead-letter topic */
    eo_event_error_t why; /* when dead */
} item_t;

/* A storage worker: its own thread and PostgreSQL connection. The main thread hands it the
 * indexes of a share of the batch and waits; `lock` guards the hand-over
 * fields (has_job, done, quit); the job fields are written by one side at a time. */
typedef struct {
    eo_processor_t *p;
    eo_pg_store_t *store;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool has_job, done, quit;
    size_t *idx; /* indexes into p->items */
    size_t n, cap;
    int result;
    size_t inserted;
    char err[512];
} worker_t;

struct eo_processor {
    eo_config_t cfg;
    eo_event_limits_t lim;
    rd_kafka_t *consumer;
    rd_kafka_t *producer; /* transactional: dead letters + offsets */
    worker_t *workers;
    size_t nworkers;
    eo_http_server_t *http;
    pthread_t thread;
    atomic_bool stopping;
    atomic_bool pg_ok;    /* PostgreSQL took the last write or ping */
    atomic_bool kafka_ok; /* both clients are usable and no transaction is stuck */
    bool busy;            /* a batch is being stored or committed: a revocation must not free it */
    bool revoked;         /* partitions were revoked while busy */
    bool consumer_broken; /* fatal error: rebuild the consumer */
    bool producer_broken; /* fatal error or unknown transaction outcome: rebuild the producer */
    bool rewind_pending;  /* the consumer must go back to the group's committed offsets */
    eo_kafka_lag_t *lag;
    item_t *items;
    size_t nitems, cap;
    rd_kafka_message_t **held; /* polled while paused, processed next */
    size_t nheld, held_cap;
    int64_t next_ensure_us;
    int64_t next_ping_us; /* when idle, check the database this often for /readyz */
    eo_metrics_t *metrics;
    eo_counter_t *batches, *rows_inserted, *duplicates;
    eo_counter_t *dead_letters[5]; /* by dead_reasons */
    eo_histogram_t *db_write, *batch_size;
    eo_counter_t *rebuilds[2]; /* by rebuilt_clients */
    eo_counter_t *aborts;
};

static const char *const rebuilt_clients[2] = {"consumer", "producer"};

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
        if (rd_kafka_message_headers(p->items[i].msg, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        if (rd_kafka_header_get_last(h, "x-request-id", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            n > 0 && n <= 128)
            distinct_add(ids, v, n);
        if (rd_kafka_header_get_last(h, "traceparent", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            n == 55)
            distinct_add(traces, (const char *)v + 3, 32); /* the trace id */
    }
}

static void clear_items(eo_processor_t *p);
static void clear_held(eo_processor_t *p);

/* Runs inside rd_kafka_consumer_poll() on the processor thread. Everything polled before a
 * revocation belongs to the old assignment: it is dropped here (it was not committed, so the
 * partitions' next owner reads it again), and what arrives after the new assignment is kept.
 * Items the workers are storing are dropped by process_batch() when it sees `revoked`. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    eo_processor_t *p = opaque;
    char n[16];
    snprintf(n, sizeof n, "%d", parts->cnt);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        eo_log_info("partitions assigned", "count", n, NULL);
        rd_kafka_assign(rk, parts);
        /* librdkafka keeps a partition's pause across a revocation: one revoked while
         * serve_paused() had it paused would come back paused and never be fetched again */
        rd_kafka_resume_partitions(rk, parts);
        if (eo_kafka_lag_set_assigned(p->lag, parts) < 0)
            eo_log_warn("out of memory: the stall check keeps the previous assignment", NULL);
    } else {
        eo_log_info("partitions revoked", "count", n, NULL);
        if (p->busy)
            p->revoked = true;
        else
            clear_items(p);
        clear_held(p);
        rd_kafka_assign(rk, NULL);
        eo_kafka_lag_clear_assigned(p->lag);
    }
}

static void clear_items(eo_processor_t *p)
{
    for (size_t i = 0; i < p->nitems; i++) {
        eo_record_done(&p->items[i].rec);
        rd_kafka_message_destroy(p->items[i].msg);
    }
    p->nitems = 0;
}

static void clear_held(eo_processor_t *p)
{
    for (size_t i = 0; i < p->nheld; i++)
        rd_kafka_message_destroy(p->held[i]);
    p->nheld = 0;
}

static int hold(eo_processor_t *p, rd_kafka_message_t *m)
{
    if (p->nheld == p->held_cap) {
        size_t cap = p->held_cap ? p->held_cap * 2 : 1024;
        rd_kafka_message_t **h = realloc(p->held, cap * sizeof *h);
        if (!h)
            return EO_ENOMEM;
        p->held = h;
        p->held_cap = cap;
    }
    p->held[p->nheld++] = m;
    return 0;
}

static int add_item(eo_processor_t *p, rd_kafka_message_t *m)
{
    if (p->nitems == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1024;
        item_t *it = realloc(p->items, cap * sizeof *it);
        if (!it)
            return EO_ENOMEM;
        p->items = it;
        p->cap = cap;
    }
    item_t *it = &p->items[p->nitems++];
    memset(it, 0, sizeof *it);
    it->msg = m;
    return 0;
}

/* True when librdkafka made the client unusable. */
static bool client_failed(rd_kafka_t *rk)
{
    return rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Polls one message; NULL on timeout, on an error (logged, except end-of-partition), and once
 * the consumer failed fatally (it is then marked for a rebuild and not polled again). */
static rd_kafka_message_t *poll_one(eo_processor_t *p, int timeout_ms)
{
    if (p->consumer_broken)
        return NULL;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, timeout_ms);
    if (m && m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__FATAL || client_failed(p->consumer))
            p->consumer_broken = true;
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eo_log_warn("kafka consume error", "error", rd_kafka_message_errstr(m), NULL);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
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
    size_t take = p->nheld < max ? p->nheld : max;
    for (size_t i = 0; i < take; i++)
        if (add_item(p, p->held[i]) < 0)
            cannot_take(p, p->held[i]);
    if (take) {
        memmove(p->held, p->held + take, (p->nheld - take) * sizeof *p->held);
        p->nheld -= take;
    }
    int64_t deadline = eo_clock_mono_us() + p->cfg.batch_max_wait_ms * 1000;
    while (p->nitems < max && !atomic_load(&p->stopping) && !p->consumer_broken) {
        int64_t left = (deadline - eo_clock_mono_us()) / 1000;
        if (left <= 0)
            break;
        rd_kafka_message_t *m = poll_one(p, p->nitems ? (int)left : (int)(left < 100 ? left : 100));
        if (!m) {
            if (p->nitems == 0 && eo_clock_mono_us() >= deadline)
                break;
            continue;
        }
        if (add_item(p, m) < 0)
            cannot_take(p, m);
    }
    if ((atomic_load(&p->stopping) && eo_signals_failed()) || p->consumer_broken)
        clear_items(p); /* never commit a batch with a hole in it, or through a dead consumer */
}

/* True when a stop must not wait for the batch in hand any longer. */
static bool must_quit(eo_processor_t *p, int64_t stop_deadline_us)
{
    return atomic_load(&p->stopping) &&
           (eo_signals_failed() || eo_clock_mono_us() > stop_deadline_us);
}

/* Serves the group protocol for up to ms with the assigned partitions paused: rebalance
 * callbacks run, and messages fetched before the pause are held for the next batch. Returns
 * early on a revocation, a consumer failure or a stop that must not wait. */
static void serve_paused(eo_processor_t *p, int64_t ms)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!p->consumer_broken && rd_kafka_assignment(p->consumer, &parts) == 0 && parts) {
        rd_kafka_pause_partitions(p->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    int64_t until = eo_clock_mono_us() + ms * 1000;
    while (eo_clock_mono_us() < until && !p->revoked && !p->consumer_broken &&
           !(atomic_load(&p->stopping) && eo_signals_failed())) {
        rd_kafka_message_t *m = poll_one(p, 50);
        if (m && hold(p, m) < 0)
            cannot_take(p, m);
    }
    if (!p->consumer_broken && rd_kafka_assignment(p->consumer, &parts) == 0 && parts) {
        rd_kafka_resume_partitions(p->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
}

/* Sleeps for the backoff while serving the group (serve_paused), then doubles it up to the
 * cap. Returns false when the batch in hand must be dropped (partitions revoked, consumer
 * failed) or the processor stops. */
static bool backoff(eo_processor_t *p, int64_t *delay_ms, int64_t stop_deadline_us)
{
    int64_t until = eo_clock_mono_us() + *delay_ms * 1000;
    while (eo_clock_mono_us() < until && !p->revoked && !p->consumer_broken &&
           !must_quit(p, stop_deadline_us))
        serve_paused(p, (until - eo_clock_mono_us()) / 1000 + 1);
    *delay_ms =
        *delay_ms * 2 > p->cfg.retry_max_backoff_ms ? p->cfg.retry_max_backoff_ms : *delay_ms * 2;
    return !p->revoked && !p->consumer_broken && !must_quit(p, stop_deadline_us);
}

/* Stores recs[0..n) (items idx[0..n)), splitting on EO_EDATA to isolate rows the database
 * refuses, which become dead letters. Returns 0, or EO_EUNAVAIL/EO_EIO. Worker thread. */
static int store_split(worker_t *w, size_t *idx, eo_record_t **recs, size_t n)
{
    size_t ins = 0;
    int r = eo_pg_store_write(w->store, recs, n, &ins, w->err, sizeof w->err);
    if (r == 0) {
        w->inserted += ins;
        return 0;
    }
    if (r != EO_EDATA)
        return r;
    if (n == 1) {
        item_t *it = &w->p->items[idx[0]];
        it->dead = true;
        eo_event_error_set(&it->why, "storage_rejected", "", "%s", w->err);
        eo_log_warn("record refused by the database", "error", w->err, NULL);
        return 0;
    }
    size_t half = n / 2;
    if ((r = store_split(w, idx, recs, half)) < 0)
        return r;
    return store_split(w, idx + half, recs + half, n - half);
}

/* One worker's share of a batch: decode and validate, check tenants, store. Worker thread. */
static int store_share(worker_t *w)
{
    eo_processor_t *p = w->p;
    size_t n = w->n;
    eo_record_t **recs = calloc(n, sizeof *recs);
    size_t *idx = calloc(n, sizeof *idx);
    bool *known = calloc(n, sizeof *known);
    int r = EO_ENOMEM;
    if (!recs || !idx || !known) {
        snprintf(w->err, sizeof w->err, "out of memory");
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &p->items[w->idx[i]];
        if (!it->attempted) {
            it->attempted = true;
            if (eo_record_decode(it->msg->payload, it->msg->len, &p->lim, &it->rec, &it->why) < 0) {
                eo_record_done(&it->rec);
                it->dead = true;
            } else {
                it->decoded = true;
            }
        }
        if (it->decoded && !it->dead) {
            idx[m] = w->idx[i];
            recs[m++] = &it->rec;
        }
    }
    if ((r = eo_pg_store_check_tenants(w->store, recs, m, known, w->err, sizeof w->err)) < 0)
        goto done;
    size_t k = 0;
    for (size_t j = 0; j < m; j++) {
        item_t *it = &p->items[idx[j]];
        if (!known[j]) {
            it->dead = true;
            eo_event_error_set(&it->why, "unknown_tenant", "tenantId", "no tenant %s",
                               it->rec.tenant_id);
            continue;
        }
        idx[k] = idx[j];
        recs[k++] = recs[j];
    }
    r = k ? store_split(w, idx, recs, k) : 0;
done:
    free(recs);
    free(idx);
    free(known);
    return r;
}

static void *worker_main(void *arg)
{
    eo_log_thread_role("processor");
    worker_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->has_job && !w->quit)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit)
            break;
        w->has_job = false;
        pthread_mutex_unlock(&w->lock);
        w->inserted = 0;
        w->result = store_share(w);
        pthread_mutex_lock(&w->lock);
        w->done = true;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Runs every worker that has a share (n > 0) and waits for all. */
static void run_workers(eo_processor_t *p)
{
    for (size_t i = 0; i < p->nworkers; i++) {
        worker_t *w = &p->workers[i];
        if (!w->n)
            continue;
        pthread_mutex_lock(&w->lock);
        w->done = false;
        w->has_job = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    for (size_t i = 0; i < p->nworkers; i++) {
        worker_t *w = &p->workers[i];
        if (!w->n)
            continue;
        pthread_mutex_lock(&w->lock);
        while (!w->done)
            pthread_cond_wait(&w->cond, &w->lock);
        pthread_mutex_unlock(&w->lock);
    }
}

/* Splits the batch into equal contiguous shares, one per worker. Not by partition: a poll
 * returns messages in per-partition runs, so a batch often comes from two or three partitions
 * and a split by partition left one worker with most of it. The same messageId in two shares
 * is safe: both transactions insert event_ids in key order, the second waits and skips it. */
static int share_out(eo_processor_t *p)
{
    size_t k = p->nworkers, n = p->nitems;
    for (size_t i = 0; i < k; i++) {
        worker_t *w = &p->workers[i];
        size_t from = n * i / k, to = n * (i + 1) / k;
        if (to - from > w->cap) {
            size_t *idx = realloc(w->idx, (to - from) * sizeof *idx);
            if (!idx)
                return EO_ENOMEM;
            w->idx = idx;
            w->cap = to - from;
        }
        w->n = to - from;
        for (size_t j = from; j < to; j++)
            w->idx[j - from] = j;
    }
    return 0;
}

/* Steps 1 and 2 with retries: shares that failed (database unavailable) are run again after a
 * backoff while consumption is paused. Returns 0, or EO_ETIMEOUT when the batch must be
 * dropped (partitions revoked, or stopping). */
static int store_batch(eo_processor_t *p, size_t *inserted)
{
    int64_t delay = 50, stop_deadline = eo_clock_mono_us() + p->cfg.shutdown_timeout_ms * 1000;
    *inserted = 0;
    if (share_out(p) < 0)
        return EO_ETIMEOUT;
    for (;;) {
        run_workers(p);
        const char *err = NULL;
        for (size_t i = 0; i < p->nworkers; i++) {
            worker_t *w = &p->workers[i];
            if (!w->n)
                continue;
            if (w->result == 0) {
                *inserted += w->inserted;
                w->n = 0; /* done: not run again */
            } else if (!err) {
                err = w->err;
            }
        }
        if (!err)
            break;
        atomic_store(&p->pg_ok, false);
        eo_log_warn("postgres unavailable; pausing consumption", "error", err, NULL);
        if (!backoff(p, &delay, stop_deadline))
            return EO_ETIMEOUT;
    }
    atomic_store(&p->pg_ok, true);
    return 0;
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

static rd_kafka_t *producer_new(eo_processor_t *p, char *err, size_t errlen);
static rd_kafka_t *consumer_new(eo_processor_t *p, char *err, size_t errlen);

/* Stops the process with a failure (the reason is logged by the caller). */
static void fail_stop(eo_processor_t *p)
{
    atomic_store(&p->stopping, true);
    eo_signals_request_stop(true);
}

/* Runs a transaction call until it succeeds, fails for good, or the deadline passes; a
 * retriable failure (a timeout while the broker is away) is retried after serving the group
 * for a moment. Returns NULL or the last error (caller owns it). */
typedef rd_kafka_error_t *(*txn_call_fn)(eo_processor_t *p, void *arg);

static rd_kafka_error_t *txn_retry(eo_processor_t *p, txn_call_fn call, void *arg,
                                   int64_t deadline_us)
{
    for (;;) {
        rd_kafka_error_t *e = call(p, arg);
        if (!e || !rd_kafka_error_is_retriable(e) || eo_clock_mono_us() >= deadline_us ||
            atomic_load(&p->stopping))
            return e; /* stopping: what is uncommitted is read again after the restart */
        rd_kafka_error_destroy(e);
        serve_paused(p, 50);
    }
}

typedef struct {
    rd_kafka_topic_partition_list_t *offsets;
    rd_kafka_consumer_group_metadata_t *group;
} send_offsets_t;

static rd_kafka_error_t *send_offsets(eo_processor_t *p, void *arg)
{
    send_offsets_t *a = arg;
    return rd_kafka_send_offsets_to_transaction(p->producer, a->offsets, a->group,
                                                (int)p->cfg.kafka_call_timeout_ms);
}

static rd_kafka_error_t *commit(eo_processor_t *p, void *arg)
{
    return rd_kafka_commit_transaction(p->producer, (int)p->cfg.kafka_call_timeout_ms);
}

static rd_kafka_error_t *abort_txn(eo_processor_t *p, void *arg)
{
    return rd_kafka_abort_transaction(p->producer, (int)p->cfg.kafka_call_timeout_ms);
}

/* A transaction call failed (e is consumed). The batch is not committed and the consumer must
 * go back to the committed offsets. Unless the producer failed fatally the transaction is
 * aborted (timeouts retried until the deadline); one that cannot be aborted, or whose producer
 * failed fatally, marks the producer for a rebuild, whose init_transactions settles it.
 * Returns EO_EIO. */
static int txn_failed(eo_processor_t *p, rd_kafka_error_t *e, int64_t deadline_us)
{
    eo_log_warn("kafka transaction failed", "error", rd_kafka_error_string(e), "code",
                rd_kafka_error_name(e), NULL);
    bool fatal = rd_kafka_error_is_fatal(e);
    rd_kafka_error_destroy(e);
    p->rewind_pending = true;
    if (!fatal) { /* an abort is refused where it cannot be (e.g. a commit under way) */
        e = txn_retry(p, abort_txn, NULL, deadline_us);
        if (!e) {
            eo_counter_add(p->aborts, 1);
            return EO_EIO;
        }
        eo_log_warn("kafka transaction abort failed", "error", rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
    }
    p->producer_broken = true;
    return EO_EIO;
}

/* Step 3: dead letters and offsets in one Kafka transaction. Returns 0 when committed, or
 * EO_EIO when not (see txn_failed). No call blocks longer than EVENTOPS_KAFKA_CALL_TIMEOUT_MS;
 * the whole is bounded by EVENTOPS_KAFKA_TXN_TIMEOUT_MS. */
static int commit_batch(eo_processor_t *p, size_t *dead)
{
    int64_t deadline = eo_clock_mono_us() + p->cfg.kafka_txn_timeout_ms * 1000;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->producer);
    if (e)
        return txn_failed(p, e, deadline);
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(8);
    *dead = 0;
    for (size_t i = 0; i < p->nitems; i++) {
        item_t *it = &p->items[i];
        rd_kafka_message_t *m = it->msg;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(offsets, topic, m->partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(offsets, topic, m->partition);
        if (m->offset + 1 > tp->offset)
            tp->offset = m->offset + 1;
        if (!it->dead)
            continue;
        rd_kafka_headers_t *h = rd_kafka_headers_new(6);
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", (int)m->partition);
        snprintf(off, sizeof off, "%lld", (long long)m->offset);
        add_header(h, "eventops-error-code", it->why.code);
        add_header(h, "eventops-error-message", it->why.message);
        add_header(h, "eventops-error-field", it->why.field);
        add_header(h, "eventops-source-topic", topic);
        add_header(h, "eventops-source-partition", part);
        add_header(h, "eventops-source-offset", off);
        rd_kafka_resp_err_t perr = rd_kafka_producev(
            p->producer, RD_KAFKA_V_TOPIC(p->cfg.dlq_topic), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (perr) {
            rd_kafka_headers_destroy(h);
            rd_kafka_topic_partition_list_destroy(offsets);
            e = rd_kafka_error_new(perr, "producing a dead letter: %s", rd_kafka_err2str(perr));
            return txn_failed(p, e, deadline);
        }
        (*dead)++;
    }
    send_offsets_t a = {offsets, rd_kafka_consumer_group_metadata(p->consumer)};
    e = txn_retry(p, send_offsets, &a, deadline);
    rd_kafka_consumer_group_metadata_destroy(a.group);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (!e)
        e = txn_retry(p, commit, NULL, deadline);
    return e ? txn_failed(p, e, deadline) : 0;
}

/* Moves the consumer to the group's committed offsets (the log start where there is none) on
 * every assigned partition, dropping what was held. Returns 0, or EO_EUNAVAIL when the brokers
 * did not answer in time (the loop tries again). */
static int rewind_to_committed(eo_processor_t *p)
{
    clear_held(p);
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(p->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return EO_EUNAVAIL;
    int timeout = (int)p->cfg.kafka_call_timeout_ms, r = 0;
    if (parts->cnt > 0 && rd_kafka_committed(p->consumer, parts, timeout) != 0)
        r = EO_EUNAVAIL;
    for (int i = 0; r == 0 && i < parts->cnt; i++) {
        if (parts->elems[i].err)
            r = EO_EUNAVAIL;
        else if (parts->elems[i].offset < 0)
            parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (r == 0 && parts->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, parts, timeout);
        if (e) {
            eo_log_warn("kafka rewind failed; trying again", "error", rd_kafka_error_string(e),
                        NULL);
            rd_kafka_error_destroy(e);
            r = EO_EUNAVAIL;
        }
    }
    if (r == 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", parts->cnt);
        eo_log_info("consumer rewound to the committed offsets", "partitions", n, NULL);
        p->rewind_pending = false;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return r;
}

/* A new transactional producer with the same transactional.id: init_transactions fences the
 * old one and settles its open transaction. Timeouts are retried while serving the group; a
 * fatal failure stops the process. */
static void rebuild_producer(eo_processor_t *p)
{
    char why[512] = "transaction outcome unknown";
    if (client_failed(p->producer))
        rd_kafka_fatal_error(p->producer, why, sizeof why);
    eo_log_warn("rebuilding the kafka producer", "reason", why, NULL);
    atomic_store(&p->kafka_ok, false);
    eo_counter_add(p->rebuilds[1], 1);
    rd_kafka_purge(p->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(p->producer);
    char err[512];
    if (!(p->producer = producer_new(p, err, sizeof err))) {
        eo_log_error("cannot rebuild the kafka producer; stopping", "error", err, NULL);
        fail_stop(p);
        return;
    }
    int64_t delay = 100;
    while (!atomic_load(&p->stopping)) {
        rd_kafka_error_t *e =
            rd_kafka_init_transactions(p->producer, (int)p->cfg.kafka_call_timeout_ms);
        if (!e) {
            eo_log_info("kafka producer rebuilt", NULL);
            p->producer_broken = false;
            p->rewind_pending = true;
            return;
        }
        bool fatal = rd_kafka_error_is_fatal(e);
        if (fatal)
            eo_log_error("cannot rebuild the kafka producer; stopping", "error",
                         rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
        if (fatal) {
            fail_stop(p);
            return;
        }
        serve_paused(p, delay);
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

/* A new consumer (a new group member): it starts from the committed offsets. */
static void rebuild_consumer(eo_processor_t *p)
{
    char why[512] = "";
    rd_kafka_fatal_error(p->consumer, why, sizeof why);
    eo_log_warn("rebuilding the kafka consumer", "reason", why, NULL);
    atomic_store(&p->kafka_ok, false);
    eo_counter_add(p->rebuilds[0], 1);
    clear_held(p);
    eo_kafka_lag_clear_assigned(p->lag);
    rd_kafka_destroy_flags(p->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    char err[512];
    if (!(p->consumer = consumer_new(p, err, sizeof err))) {
        eo_log_error("cannot rebuild the kafka consumer; stopping", "error", err, NULL);
        fail_stop(p);
        return;
    }
    eo_log_info("kafka consumer rebuilt", NULL);
    p->consumer_broken = false;
    p->rewind_pending = false;
}

/* Before a batch: rebuilds failed clients and rewinds when needed. Returns true when both
 * clients are usable and positioned at the committed offsets. */
static bool heal_kafka(eo_processor_t *p)
{
    if (eo_fault_take("processor-consumer-fatal"))
        rd_kafka_test_fatal_error(p->consumer, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID,
                                  "fault injection");
    if (eo_fault_take("processor-producer-fatal"))
        rd_kafka_test_fatal_error(p->producer, RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                                  "fault injection");
    if (!p->producer_broken && client_failed(p->producer))
        p->producer_broken = true;
    if (!p->consumer_broken && client_failed(p->consumer))
        p->consumer_broken = true;
    if (p->producer_broken)
        rebuild_producer(p);
    if (!atomic_load(&p->stopping) && p->consumer_broken)
        rebuild_consumer(p);
    if (atomic_load(&p->stopping))
        return false;
    if (p->rewind_pending && !p->producer_broken && rewind_to_committed(p) < 0)
        serve_paused(p, 100);
    bool ok = !p->producer_broken && !p->consumer_broken && !p->rewind_pending;
    atomic_store(&p->kafka_ok, ok);
    return ok;
}

static void process_batch(eo_processor_t *p)
{
    size_t inserted = 0, dead = 0;
    int64_t t0 = eo_clock_mono_us();
    p->busy = true;
    int stored = store_batch(p, &inserted);
    int64_t t1 = eo_clock_mono_us();
    /* not committed: read again after the rebalance, rebuild or restart */
    int r = stored < 0 || p->revoked || p->consumer_broken ? EO_EIO : commit_batch(p, &dead);
    p->busy = false;
    p->revoked = false;
    if (r == 0) {
        char n[24], ins[24], d[24], store_ms[24], commit_ms[24];
        snprintf(n, sizeof n, "%zu", p->nitems);
        snprintf(ins, sizeof ins, "%zu", inserted);
        snprintf(d, sizeof d, "%zu", dead);
        snprintf(store_ms, sizeof store_ms, "%.1f", (double)(t1 - t0) / 1000);
        snprintf(commit_ms, sizeof commit_ms, "%.1f", (double)(eo_clock_mono_us() - t1) / 1000);
        size_t records = p->nitems,
               dups = records - dead >= inserted ? records - dead - inserted : 0;
        /* at most what a log value holds, so that the lists end with whole ids */
        char dup[24], ids[EO_LOG_VALUE_MAX], traces[100 * 34];
        snprintf(dup, sizeof dup, "%zu", dups);
        distinct_t id_list, trace_list;
        distinct_init(&id_list, ids, sizeof ids);
        distinct_init(&trace_list, traces, sizeof traces);
        batch_ids(p, &id_list, &trace_list);
        eo_log_info("batch stored", "records", n, "inserted", ins, "duplicates", dup,
                    "dead_letters", d, "store_ms", store_ms, "kafka_commit_ms", commit_ms,
                    "request_ids", ids, "trace_ids", traces, NULL);
        eo_counter_add(p->batches, 1);
        eo_counter_add(p->rows_inserted, inserted);
        eo_counter_add(p->duplicates, dups);
        eo_histogram_observe(p->db_write, (double)(t1 - t0) / 1e6);
        eo_histogram_observe(p->batch_size, (double)records);
        for (size_t i = 0; dead && i < p->nitems; i++)
            if (p->items[i].dead)
                eo_counter_add(p->dead_letters[dead_reason(p->items[i].why.code)], 1);
        if (dead)
            eo_log_warn("records sent to the dead-letter topic", "count", d, "topic",
                        p->cfg.dlq_topic, NULL);
    }
    clear_items(p);
}

static void *run(void *arg)
{
    eo_log_thread_role("processor");
    eo_processor_t *p = arg;
    while (!atomic_load(&p->stopping)) {
        int64_t now = eo_clock_mono_us();
        if (now >= p->next_ensure_us) {
            char err[512];
            if (eo_pg_store_ensure_ahead(p->workers[0].store, eo_clock_now_us(),
                                         p->cfg.partitions_ahead_days, err, sizeof err) < 0) {
                eo_log_warn("creating partitions ahead failed", "error", err, NULL);
                p->next_ensure_us = now + 5000000;
            } else {
                p->next_ensure_us = now + 3600 * INT64_C(1000000);
            }
            p->next_ping_us = now + 2000000;
            atomic_store(&p->pg_ok, eo_pg_store_ok(p->workers[0].store));
        }
        if (!heal_kafka(p))
            continue;
        collect(p);
        if (p->nitems) {
            process_batch(p);
            p->next_ping_us = eo_clock_mono_us() + 2000000;
        } else if (eo_clock_mono_us() >= p->next_ping_us) {
            char err[512];
            bool ok = eo_pg_store_ping(p->workers[0].store, err, sizeof err) == 0;
            if (!ok && atomic_load(&p->pg_ok))
                eo_log_warn("postgres unavailable", "error", err, NULL);
            atomic_store(&p->pg_ok, ok);
            p->next_ping_us = eo_clock_mono_us() + 2000000;
        }
    }
    /* the batch in hand was finished by the loop; leave the group */
    if (p->consumer && !p->consumer_broken)
        rd_kafka_consumer_close(p->consumer);
    return NULL;
}

static void on_healthz(eo_http_req_t *req, void *ud)
{
    eo_http_respond(req, 200, "{\"status\":\"ok\"}", 15, NULL);
}

/* What readiness and the status gauges say, read from any thread. */
typedef struct {
    bool postgres, kafka, stalled, ready;
} status_t;

static status_t status_now(eo_processor_t *p)
{
    status_t st;
    st.postgres = atomic_load(&p->pg_ok);
    st.kafka = atomic_load(&p->kafka_ok) && eo_kafka_lag_brokers_up(p->lag);
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
    {"GET", "/healthz", NULL, on_healthz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
    {"GET", "/readyz", NULL, on_readyz, false},
};

/* Stops and frees the workers (those started, on a failed start too). */
static void stop_workers(eo_processor_t *p)
{
    for (size_t i = 0; p->workers && i < p->nworkers; i++) {
        worker_t *w = &p->workers[i];
        if (w->started) {
            pthread_mutex_lock(&w->lock);
            w->quit = true;
            pthread_cond_broadcast(&w->cond);
            pthread_mutex_unlock(&w->lock);
            pthread_join(w->thread, NULL);
        }
        eo_pg_store_free(w->store);
        free(w->idx);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
    }
    free(p->workers);
    p->workers = NULL;
}

static rd_kafka_t *new_client(const eo_config_t *cfg, rd_kafka_type_t type, const char *const *kv,
                              eo_processor_t *p, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = eo_kafka_conf_new(cfg->kafka_brokers, err, errlen);
    if (!conf)
        return NULL;
    if (eo_kafka_set_all(conf, kv, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_error_cb(conf, eo_kafka_on_error); /* fatal: the loop rebuilds */
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    char reason[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, reason, sizeof reason);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", reason);
        rd_kafka_conf_destroy(conf);
    }
    return rk; /* conf is owned by rk on success */
}

/* The state gauges at each scrape (the lag gauges come from the lag monitor). */
static int write_status(eo_buf_t *out, void *ud)
{
    status_t st = status_now(ud);
    return eo_buf_printf(out,
                         "# HELP eventops_processor_postgres_up 1 while the processor can write "
                         "to PostgreSQL.\n# TYPE eventops_processor_postgres_up gauge\n"
                         "eventops_processor_postgres_up{role=\"processor\"} %d\n"
                         "# HELP eventops_processor_kafka_up 1 while the brokers answer and the "
                         "processor's Kafka clients are usable.\n"
                         "# TYPE eventops_processor_kafka_up gauge\n"
                         "eventops_processor_kafka_up{role=\"processor\"} %d\n"
                         "# HELP eventops_processor_stalled 1 while a partition of this "
                         "processor has a backlog and no committed progress for "
                         "EVENTOPS_PROCESSOR_STALL_MS.\n"
                         "# TYPE eventops_processor_stalled gauge\n"
                         "eventops_processor_stalled{role=\"processor\"} %d\n",
                         st.postgres, st.kafka, st.stalled);
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
    eo_kafka_rebuild_counters(p->metrics, "processor", rebuilt_clients, 2, p->rebuilds);
    p->aborts = eo_metrics_counter(p->metrics, "eventops_processor_transactions_aborted_total",
                                   "Kafka transactions aborted (the batch is read again).", role);
    eo_metrics_build_info(p->metrics, "processor");
    int r = eo_metrics_add_collector(p->metrics, write_status, p);
    return r < 0 ? r : eo_metrics_add_collector(p->metrics, eo_kafka_lag_write_metrics, p->lag);
}

/* The transactional producer of dead letters and offsets. */
static rd_kafka_t *producer_new(eo_processor_t *p, char *err, size_t errlen)
{
    char txn_id[160], txn_timeout[24];
    snprintf(txn_id, sizeof txn_id, "eventops-%s", p->cfg.processor_id);
    snprintf(txn_timeout, sizeof txn_timeout, "%lld", (long long)p->cfg.kafka_txn_timeout_ms);
    const char *kv[] = {"client.id",
                        "eventops-processor-dlq",
                        "transactional.id",
                        txn_id,
                        "transaction.timeout.ms",
                        txn_timeout,
                        "acks",
                        "all",
                        "linger.ms",
                        "0",
                        NULL};
    return new_client(&p->cfg, RD_KAFKA_PRODUCER, kv, p, err, errlen);
}

/* A consumer subscribed to the events topic. Dynamic membership (no group.instance.id): a
 * session that times out while the brokers are away rejoins as a new member instead of being
 * fenced. max.poll.interval.ms is far above the longest the loop goes without polling (one
 * Kafka call, EVENTOPS_KAFKA_CALL_TIMEOUT_MS, or one storage attempt). */
static rd_kafka_t *consumer_new(eo_processor_t *p, char *err, size_t errlen)
{
    char session[24];
    snprintf(session, sizeof session, "%lld", (long long)p->cfg.kafka_session_timeout_ms);
    const char *kv[] = {"group.id",
                        p->cfg.processor_group,
                        "client.id",
                        "eventops-processor",
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
                        "50",
                        "enable.partition.eof",
                        "false",
                        NULL};
    rd_kafka_t *rk = new_client(&p->cfg, RD_KAFKA_CONSUMER, kv, p, err, errlen);
    if (!rk)
        return NULL;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, p->cfg.events_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(kerr));
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NULL;
    }
    return rk;
}

/* Frees what eo_processor_start made (on its failure, or at the end of stop). */
static void destroy(eo_processor_t *p)
{
    eo_http_server_free(p->http, 1000);
    if (p->consumer) /* closed by the loop, unless it failed */
        rd_kafka_destroy_flags(p->consumer,
                               p->consumer_broken ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    if (p->producer) {
        rd_kafka_flush(p->producer, 5000);
        rd_kafka_destroy(p->producer);
    }
    stop_workers(p);
    eo_kafka_lag_free(p->lag);
    eo_metrics_free(p->metrics);
    free(p->items);
    free(p->held);
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
    r = EO_EIO;
    if (!(p->consumer = consumer_new(p, err, errlen)) ||
        !(p->producer = producer_new(p, err, errlen)))
        goto fail;
    rd_kafka_error_t *e = rd_kafka_init_transactions(p->producer, 30000);
    if (e) {
        snprintf(err, errlen, "kafka init_transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        r = EO_EUNAVAIL;
        goto fail;
    }
    atomic_store(&p->kafka_ok, true);
    p->nworkers = (size_t)cfg->processor_workers;
    if (!(p->workers = calloc(p->nworkers, sizeof *p->workers))) {
        r = EO_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < p->nworkers; i++) {
        worker_t *w = &p->workers[i];
        w->p = p;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        if ((r = eo_pg_store_new(cfg->pg_dsn, &w->store)) < 0)
            goto fail;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "cannot start a storage worker");
            r = EO_ENOMEM;
            goto fail;
        }
        w->started = true;
    }
    eo_http_options_t opt = {
        .addr = cfg->processor_addr,
        .port = (uint16_t)cfg->processor_port,
        .threads = 1,
        .max_connections = 64,
        .max_connections_per_ip = 64,
        .connection_timeout_s = 10,
        .max_header_bytes = (size_t)cfg->http_max_header_bytes,
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
    clear_held(p);
    destroy(p);
    eo_log_info("processor stopped", NULL);
}
