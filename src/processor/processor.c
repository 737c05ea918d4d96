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
 * Threads: the processor thread owns everything here except `stopping` and `ready` (atomics
 * read by the main and HTTP threads). */
#include "processor/processor.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/http.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/openapi.h"
#include "core/signals.h"
#include "domain/record.h"
#include "processor/pg_store.h"

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
    atomic_bool ready;
    bool storing; /* the workers are working on items */
    bool revoked; /* partitions were revoked while storing: drop the batch in hand */
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
    pthread_mutex_t lag_lock;
    struct partition_lag {
        int32_t partition;
        int64_t lag;
    } * lags;     /* guarded by lag_lock: from librdkafka's statistics */
    size_t nlags; /* guarded by lag_lock */
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
    } else {
        eo_log_info("partitions revoked", "count", n, NULL);
        if (p->storing)
            p->revoked = true;
        else
            clear_items(p);
        clear_held(p);
        rd_kafka_assign(rk, NULL);
    }
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    eo_log_warn("kafka error", "error", reason, "code", rd_kafka_err2name(err), NULL);
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

/* Polls one message; NULL on timeout. Errors other than end-of-partition are logged. */
static rd_kafka_message_t *poll_one(eo_processor_t *p, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, timeout_ms);
    if (m && m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
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
    while (p->nitems < max && !atomic_load(&p->stopping)) {
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
    if (atomic_load(&p->stopping) && eo_signals_failed())
        clear_items(p); /* never commit a batch with a hole in it */
}

/* Pauses consumption and sleeps for the backoff while still serving the group protocol;
 * messages that arrive meanwhile are held for the next batch. Returns false when the batch in
 * hand must be dropped (partitions revoked) or the processor stops. */
static bool backoff(eo_processor_t *p, int64_t *delay_ms, int64_t stop_deadline_us)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(p->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        rd_kafka_pause_partitions(p->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    int64_t until = eo_clock_mono_us() + *delay_ms * 1000;
    while (eo_clock_mono_us() < until && !p->revoked) {
        if (atomic_load(&p->stopping) &&
            (eo_signals_failed() || eo_clock_mono_us() > stop_deadline_us))
            break;
        rd_kafka_message_t *m = poll_one(p, 50);
        if (m && hold(p, m) < 0)
            cannot_take(p, m);
    }
    *delay_ms =
        *delay_ms * 2 > p->cfg.retry_max_backoff_ms ? p->cfg.retry_max_backoff_ms : *delay_ms * 2;
    if (rd_kafka_assignment(p->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        rd_kafka_resume_partitions(p->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    if (p->revoked)
        return false;
    return !(atomic_load(&p->stopping) &&
             (eo_signals_failed() || eo_clock_mono_us() > stop_deadline_us));
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
        atomic_store(&p->ready, false);
        eo_log_warn("postgres unavailable; pausing consumption", "error", err, NULL);
        if (!backoff(p, &delay, stop_deadline))
            return EO_ETIMEOUT;
    }
    atomic_store(&p->ready, true);
    return 0;
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

/* Step 3: dead letters and offsets in one Kafka transaction. Returns 0, or EO_EIO when the
 * transaction was aborted (the caller rewinds), or EO_EUNAVAIL when the producer is fenced or
 * failed fatally (the process must restart). */
static int commit_batch(eo_processor_t *p, size_t *dead)
{
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->producer);
    if (e)
        goto failed;
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
            goto failed;
        }
        (*dead)++;
    }
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(p->consumer);
    e = rd_kafka_send_offsets_to_transaction(p->producer, offsets, cgmd, 30000);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (e)
        goto failed;
    for (int attempt = 0; attempt < 5; attempt++) {
        e = rd_kafka_commit_transaction(p->producer, 30000);
        if (!e)
            return 0;
        if (!rd_kafka_error_is_retriable(e))
            break;
        rd_kafka_error_destroy(e);
        e = NULL;
    }
failed:
    if (!e)
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "commit retries exhausted");
    eo_log_warn("kafka transaction failed", "error", rd_kafka_error_string(e), NULL);
    bool fatal = rd_kafka_error_is_fatal(e);
    rd_kafka_error_destroy(e);
    if (fatal)
        return EO_EUNAVAIL;
    e = rd_kafka_abort_transaction(p->producer, 30000);
    if (e) {
        eo_log_warn("kafka transaction abort failed", "error", rd_kafka_error_string(e), NULL);
        fatal = rd_kafka_error_is_fatal(e);
        rd_kafka_error_destroy(e);
        if (fatal)
            return EO_EUNAVAIL;
    }
    return EO_EIO;
}

/* Moves the consumer back to the first offset of each partition in the batch. */
static void rewind_batch(eo_processor_t *p)
{
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < p->nitems; i++) {
        rd_kafka_message_t *m = p->items[i].msg;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(pos, topic, m->partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(pos, topic, m->partition);
            tp->offset = m->offset;
        } else if (m->offset < tp->offset) {
            tp->offset = m->offset;
        }
    }
    rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, pos, 10000);
    if (e) {
        /* going on would commit offsets past the batch: stop, and let the restart read it */
        eo_log_error("rewind failed; stopping", "error", rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
        atomic_store(&p->stopping, true);
        eo_signals_request_stop(true);
    }
    rd_kafka_topic_partition_list_destroy(pos);
    clear_held(p); /* they lie after the rewind point and come again */
}

static void process_batch(eo_processor_t *p)
{
    size_t inserted = 0, dead = 0;
    int64_t t0 = eo_clock_mono_us();
    p->storing = true;
    int stored = store_batch(p, &inserted);
    p->storing = false;
    int64_t t1 = eo_clock_mono_us();
    if (stored < 0) {
        clear_items(p); /* not committed: redelivered after the rebalance or restart */
        p->revoked = false;
        return;
    }
    if (p->revoked) {
        clear_items(p);
        p->revoked = false;
        return;
    }
    int r = commit_batch(p, &dead);
    if (r == EO_EUNAVAIL) {
        eo_log_error("kafka producer failed fatally; stopping", NULL);
        eo_signals_request_stop(true);
        atomic_store(&p->stopping, true);
    } else if (r < 0) {
        rewind_batch(p);
    } else {
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
            atomic_store(&p->ready, eo_pg_store_ok(p->workers[0].store));
        }
        collect(p);
        if (p->nitems) {
            process_batch(p);
            p->next_ping_us = eo_clock_mono_us() + 2000000;
        } else if (eo_clock_mono_us() >= p->next_ping_us) {
            char err[512];
            bool ok = eo_pg_store_ping(p->workers[0].store, err, sizeof err) == 0;
            if (!ok && atomic_load(&p->ready))
                eo_log_warn("postgres unavailable", "error", err, NULL);
            atomic_store(&p->ready, ok);
            p->next_ping_us = eo_clock_mono_us() + 2000000;
        }
    }
    /* the batch in hand was finished by the loop; leave the group */
    rd_kafka_consumer_close(p->consumer);
    return NULL;
}

static void on_healthz(eo_http_req_t *req, void *ud)
{
    eo_http_respond(req, 200, "{\"status\":\"ok\"}", 15, NULL);
}

static void on_readyz(eo_http_req_t *req, void *ud)
{
    eo_processor_t *p = ud;
    bool ok = atomic_load(&p->ready) && !atomic_load(&p->stopping);
    const char *body = ok ? "{\"status\":\"ready\"}" : "{\"status\":\"unavailable\"}";
    eo_http_respond(req, ok ? 200 : 503, body, strlen(body), NULL);
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

/* librdkafka statistics (consumer thread): keeps the lag of each assigned partition of the
 * events topic. Returns 0: librdkafka frees the JSON. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    eo_processor_t *p = opaque;
    json_t *doc = json_loadb(json, len, 0, NULL);
    json_t *parts = json_object_get(
        json_object_get(json_object_get(doc, "topics"), p->cfg.events_topic), "partitions");
    size_t n = 0, cap = json_object_size(parts);
    struct partition_lag *lags = cap ? calloc(cap, sizeof *lags) : NULL;
    const char *key;
    json_t *v;
    json_object_foreach(parts, key, v)
    {
        json_int_t id = json_integer_value(json_object_get(v, "partition"));
        const char *state = json_string_value(json_object_get(v, "fetch_state"));
        if (!lags || id < 0 || !state || !strcmp(state, "none"))
            continue; /* the internal partition, or not assigned */
        /* The end: the last stable offset (read_committed), else the high watermark. The
         * start: the furthest of the offset handed to us, the committed one (transactions
         * commit through the producer, so librdkafka's own consumer_lag never moves) and the
         * stored one; none known yet: the low watermark, where consumption begins. */
        json_int_t end = json_integer_value(json_object_get(v, "ls_offset"));
        if (end < 0)
            end = json_integer_value(json_object_get(v, "hi_offset"));
        json_int_t base = -1;
        static const char *const starts[] = {"app_offset", "committed_offset", "stored_offset"};
        for (int k = 0; k < 3; k++) {
            json_t *o = json_object_get(v, starts[k]);
            if (json_is_integer(o) && json_integer_value(o) > base)
                base = json_integer_value(o);
        }
        if (base < 0)
            base = json_integer_value(json_object_get(v, "lo_offset"));
        if (end < 0 || base < 0)
            continue;
        json_int_t lag = end > base ? end - base : 0;
        lags[n].partition = (int32_t)id;
        lags[n++].lag = (int64_t)lag;
    }
    json_decref(doc);
    pthread_mutex_lock(&p->lag_lock);
    free(p->lags);
    p->lags = lags;
    p->nlags = n;
    pthread_mutex_unlock(&p->lag_lock);
    return 0;
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
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_stats_cb(conf, on_stats);
    }
    char reason[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, reason, sizeof reason);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", reason);
        rd_kafka_conf_destroy(conf);
    }
    return rk; /* conf is owned by rk on success */
}

/* Consumer lag per assigned partition and PostgreSQL's state, at each scrape. The lags come
 * from librdkafka's statistics (every 2 s): high watermark minus the larger of the consumed
 * and the committed offset, which is right also before a partition's first message. */
static int write_lag(eo_buf_t *out, void *ud)
{
    eo_processor_t *p = ud;
    int r = eo_buf_printf(out,
                          "# HELP eventops_processor_postgres_up 1 while the processor can write "
                          "to PostgreSQL.\n# TYPE eventops_processor_postgres_up gauge\n"
                          "eventops_processor_postgres_up{role=\"processor\"} %d\n"
                          "# HELP eventops_kafka_consumer_lag Records of an assigned partition not "
                          "yet processed.\n"
                          "# TYPE eventops_kafka_consumer_lag gauge\n",
                          atomic_load(&p->ready) ? 1 : 0);
    pthread_mutex_lock(&p->lag_lock);
    for (size_t i = 0; r == 0 && i < p->nlags; i++)
        r = eo_buf_printf(out,
                          "eventops_kafka_consumer_lag{role=\"processor\",topic=\"%s\","
                          "partition=\"%d\"} %lld\n",
                          p->cfg.events_topic, (int)p->lags[i].partition,
                          (long long)p->lags[i].lag);
    pthread_mutex_unlock(&p->lag_lock);
    return r;
}

static void free_metrics(eo_processor_t *p)
{
    eo_metrics_free(p->metrics);
    free(p->lags);
    pthread_mutex_destroy(&p->lag_lock);
}

static int register_metrics(eo_processor_t *p)
{
    pthread_mutex_init(&p->lag_lock, NULL);
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
    eo_metrics_build_info(p->metrics, "processor");
    return eo_metrics_add_collector(p->metrics, write_lag, p);
}

int eo_processor_start(const eo_config_t *cfg, eo_processor_t **out, char *err, size_t errlen)
{
    *out = NULL;
    eo_processor_t *p = calloc(1, sizeof *p);
    if (!p)
        return EO_ENOMEM;
    p->cfg = *cfg;
    eo_event_limits_from_config(&p->lim, cfg);
    if (register_metrics(p) < 0) {
        free_metrics(p);
        free(p);
        return EO_ENOMEM;
    }
    char txn_id[160];
    snprintf(txn_id, sizeof txn_id, "eventops-%s", cfg->processor_id);
    const char *consumer_kv[] = {"group.id",
                                 cfg->processor_group,
                                 "group.instance.id",
                                 cfg->processor_id,
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
                                 "10000",
                                 "fetch.wait.max.ms",
                                 "50",
                                 "enable.partition.eof",
                                 "false",
                                 "statistics.interval.ms",
                                 "2000",
                                 NULL};
    const char *producer_kv[] = {"client.id",
                                 "eventops-processor-dlq",
                                 "transactional.id",
                                 txn_id,
                                 "transaction.timeout.ms",
                                 "60000",
                                 "acks",
                                 "all",
                                 "linger.ms",
                                 "0",
                                 NULL};
    int r = EO_EIO;
    if (!(p->consumer = new_client(cfg, RD_KAFKA_CONSUMER, consumer_kv, p, err, errlen)) ||
        !(p->producer = new_client(cfg, RD_KAFKA_PRODUCER, producer_kv, p, err, errlen)))
        goto fail;
    rd_kafka_error_t *e = rd_kafka_init_transactions(p->producer, 30000);
    if (e) {
        snprintf(err, errlen, "kafka init_transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        r = EO_EUNAVAIL;
        goto fail;
    }
    rd_kafka_poll_set_consumer(p->consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->events_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(p->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(kerr));
        goto fail;
    }
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
    eo_http_server_free(p->http, 0);
    stop_workers(p);
    if (p->producer)
        rd_kafka_destroy(p->producer);
    if (p->consumer)
        rd_kafka_destroy(p->consumer);
    free_metrics(p);
    free(p);
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
    eo_http_server_free(p->http, 1000);
    rd_kafka_destroy(p->consumer);
    rd_kafka_flush(p->producer, 5000);
    rd_kafka_destroy(p->producer);
    stop_workers(p);
    free(p->items);
    free(p->held);
    eo_log_info("processor stopped", NULL);
    free_metrics(p);
    free(p);
}
