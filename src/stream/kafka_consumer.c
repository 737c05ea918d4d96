/* Consume-transform-produce over Kafka (see kafka_consumer.h). The loop thread owns all of it
 * but `usable` (an atomic read by the HTTP threads). */
#include "stream/kafka_consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/clock.h"
#include "core/fault.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/signals.h"

struct eo_kafka_consumer {
    eo_kafka_consumer_options_t opt; /* strings point into the copies below */
    char *brokers, *group, *topic, *consumer_client_id, *producer_client_id, *transactional_id;
    char *consumer_fault, *producer_fault;
    rd_kafka_t *consumer;
    rd_kafka_t *producer; /* transactional */
    atomic_bool usable;   /* both clients are usable and no transaction is stuck */
    bool busy;            /* a batch is in hand: a revocation must not free it */
    bool revoked;         /* partitions were revoked while busy */
    bool consumer_broken; /* fatal error: rebuild the consumer */
    bool producer_broken; /* fatal error or unknown transaction outcome: rebuild the producer */
    bool rewind_pending;  /* the consumer must go back to the group's committed offsets */
    bool paused;          /* serve_paused() has the assignment paused */
    rd_kafka_message_t **held; /* polled while paused, taken first by the next batch */
    size_t held_from, nheld, held_cap;
    rd_kafka_topic_partition_list_t *offsets; /* of the open transaction */
    int64_t txn_deadline_us;
};

static const char *const rebuilt_clients[2] = {"consumer", "producer"};

void eo_kafka_consumer_register_metrics(eo_metrics_t *m, const char *role,
                                        eo_kafka_consumer_metrics_t *out)
{
    char name[128], labels[64];
    snprintf(name, sizeof name, "eventops_%s_transactions_aborted_total", role);
    snprintf(labels, sizeof labels, "role=\"%s\"", role);
    eo_kafka_rebuild_counters(m, role, rebuilt_clients, 2, out->rebuilds);
    out->aborts = eo_metrics_counter(
        m, name, "Kafka transactions aborted (the batch is read again).", labels);
}

static eo_counter_t *rebuilds_counter(const eo_kafka_consumer_t *kc, size_t client)
{
    return kc->opt.metrics ? kc->opt.metrics->rebuilds[client] : NULL;
}

static void clear_held(eo_kafka_consumer_t *kc)
{
    for (size_t i = kc->held_from; i < kc->nheld; i++)
        rd_kafka_message_destroy(kc->held[i]);
    kc->held_from = kc->nheld = 0;
}

/* Stops the process with a failure (the reason is logged by the caller). */
static void fail_stop(eo_kafka_consumer_t *kc)
{
    atomic_store(kc->opt.stopping, true);
    eo_signals_request_stop(true);
}

/* Out of memory while holding a message: skipping it would let a later offset be committed past
 * it, so the batch is dropped uncommitted and the process stops (its restart reads it again). */
static void cannot_hold(eo_kafka_consumer_t *kc, rd_kafka_message_t *m)
{
    rd_kafka_message_destroy(m);
    eo_log_error("out of memory while batching; stopping without committing", NULL);
    fail_stop(kc);
}

static void hold(eo_kafka_consumer_t *kc, rd_kafka_message_t *m)
{
    if (EO_ARRAY_RESERVE(kc->held, kc->held_cap, kc->nheld + 1, 1024) < 0) {
        cannot_hold(kc, m);
        return;
    }
    kc->held[kc->nheld++] = m;
}

rd_kafka_message_t *eo_kafka_consumer_take_held(eo_kafka_consumer_t *kc)
{
    if (kc->held_from == kc->nheld) {
        kc->held_from = kc->nheld = 0;
        return NULL;
    }
    return kc->held[kc->held_from++];
}

/* Runs inside rd_kafka_consumer_poll() on the loop thread. Everything polled before a
 * revocation belongs to the old assignment: it is dropped here (it was not committed, so the
 * partitions' next owner reads it again), and what arrives after the new assignment is kept.
 * A batch in hand is only marked: its owner drops it when it sees eo_kafka_consumer_batch_lost. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    eo_kafka_consumer_t *kc = opaque;
    char n[16];
    snprintf(n, sizeof n, "%d", parts->cnt);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        eo_log_info("partitions assigned", "count", n, NULL);
        rd_kafka_assign(rk, parts);
        if (eo_kafka_lag_set_assigned(kc->opt.lag, parts) < 0)
            eo_log_warn("out of memory: the stall check keeps the previous assignment", NULL);
    } else {
        eo_log_info("partitions revoked", "count", n, NULL);
        if (kc->busy)
            kc->revoked = true;
        else if (kc->opt.on_revoke)
            kc->opt.on_revoke(kc->opt.ud);
        clear_held(kc);
        /* librdkafka keeps a partition's pause across a revocation: one revoked while
         * serve_paused() had it paused would come back paused and never be fetched again. It
         * is resumed here, while it is paused: resuming a partition that is not paused (say,
         * on the next assignment) makes librdkafka 2.0 fetch again from a stale offset and
         * deliver records twice (librdkafka #4637, fixed in 2.4.0). */
        if (kc->paused) {
            rd_kafka_resume_partitions(rk, parts);
            kc->paused = false;
        }
        rd_kafka_assign(rk, NULL);
        eo_kafka_lag_clear_assigned(kc->opt.lag);
    }
}

/* True when librdkafka made the client unusable. */
static bool client_failed(rd_kafka_t *rk)
{
    return rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_message_t *eo_kafka_consumer_poll(eo_kafka_consumer_t *kc, int timeout_ms)
{
    if (kc->consumer_broken)
        return NULL;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(kc->consumer, timeout_ms);
    if (m && m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__FATAL || client_failed(kc->consumer))
            kc->consumer_broken = true;
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eo_log_warn("kafka consume error", "error", rd_kafka_message_errstr(m), NULL);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

void eo_kafka_consumer_serve_paused(eo_kafka_consumer_t *kc, int64_t ms)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!kc->consumer_broken && rd_kafka_assignment(kc->consumer, &parts) == 0 && parts) {
        rd_kafka_pause_partitions(kc->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        kc->paused = true;
    }
    int64_t until = eo_clock_mono_us() + ms * 1000;
    while (eo_clock_mono_us() < until && !kc->revoked && !kc->consumer_broken &&
           !(atomic_load(kc->opt.stopping) && eo_signals_failed())) {
        rd_kafka_message_t *m = eo_kafka_consumer_poll(kc, 50);
        if (m)
            hold(kc, m);
    }
    /* only what this call paused: an assignment taken meanwhile was never paused (#4637) */
    if (kc->paused && !kc->consumer_broken && rd_kafka_assignment(kc->consumer, &parts) == 0 &&
        parts) {
        rd_kafka_resume_partitions(kc->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    kc->paused = false;
}

void eo_kafka_consumer_caught_up(eo_kafka_consumer_t *kc, const int64_t *next, bool *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = false;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (kc->consumer_broken || rd_kafka_assignment(kc->consumer, &parts) != 0 || !parts)
        return;
    if (rd_kafka_position(kc->consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            int64_t low, high;
            if (tp->partition < 0 || (size_t)tp->partition >= n ||
                rd_kafka_get_watermark_offsets(kc->consumer, tp->topic, tp->partition, &low,
                                               &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
                high < 0)
                continue;
            int64_t pos = tp->offset;
            if (next && next[tp->partition] > pos)
                pos = next[tp->partition];
            /* nothing read and nothing known: only an empty partition is caught up */
            out[tp->partition] = pos >= 0 ? pos >= high : high == low;
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void eo_kafka_consumer_batch_begin(eo_kafka_consumer_t *kc)
{
    kc->busy = true;
}

void eo_kafka_consumer_batch_end(eo_kafka_consumer_t *kc)
{
    kc->busy = false;
    kc->revoked = false;
}

bool eo_kafka_consumer_batch_lost(const eo_kafka_consumer_t *kc)
{
    return kc->revoked || kc->consumer_broken;
}

bool eo_kafka_consumer_failed(const eo_kafka_consumer_t *kc)
{
    return kc->consumer_broken;
}

bool eo_kafka_consumer_usable(const eo_kafka_consumer_t *kc)
{
    return atomic_load(&kc->usable);
}

/* A client of the options' brokers with the pairs kv = {key, value, ..., NULL}. */
static rd_kafka_t *new_client(eo_kafka_consumer_t *kc, rd_kafka_type_t type, const char *const *kv,
                              char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = eo_kafka_conf_new(kc->opt.brokers, err, errlen);
    if (!conf)
        return NULL;
    if (eo_kafka_set_all(conf, kv, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, kc);
    rd_kafka_conf_set_error_cb(conf, eo_kafka_on_error); /* fatal: heal() rebuilds */
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

/* The transactional producer of the results and offsets. */
static rd_kafka_t *producer_new(eo_kafka_consumer_t *kc, char *err, size_t errlen)
{
    char txn_timeout[24];
    snprintf(txn_timeout, sizeof txn_timeout, "%lld", (long long)kc->opt.txn_timeout_ms);
    const char *kv[] = {"client.id",
                        kc->opt.producer_client_id,
                        "transactional.id",
                        kc->opt.transactional_id,
                        "transaction.timeout.ms",
                        txn_timeout,
                        "acks",
                        "all",
                        "linger.ms",
                        "0",
                        NULL};
    return new_client(kc, RD_KAFKA_PRODUCER, kv, err, errlen);
}

/* A consumer subscribed to the topic. Dynamic membership (no group.instance.id): a session
 * that times out while the brokers are away rejoins as a new member instead of being fenced.
 * max.poll.interval.ms is far above the longest the owner's loop goes without polling (one
 * Kafka call, call_timeout_ms, or one attempt of its own work). read_committed: records of
 * aborted transactions are never seen. */
static rd_kafka_t *consumer_new(eo_kafka_consumer_t *kc, char *err, size_t errlen)
{
    char session[24], fetch_min[24];
    snprintf(session, sizeof session, "%lld", (long long)kc->opt.session_timeout_ms);
    snprintf(fetch_min, sizeof fetch_min, "%lld",
             (long long)(kc->opt.fetch_min_bytes > 0 ? kc->opt.fetch_min_bytes : 1));
    char prefetch[24];
    snprintf(prefetch, sizeof prefetch, "%lld", (long long)kc->opt.prefetch_kbytes);
    const char *kv[] = {"group.id",
                        kc->opt.group,
                        "client.id",
                        kc->opt.consumer_client_id,
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
                        "fetch.min.bytes",
                        fetch_min,
                        "enable.partition.eof",
                        "false",
                        kc->opt.prefetch_kbytes > 0 ? "queued.max.messages.kbytes" : NULL,
                        prefetch,
                        NULL};
    rd_kafka_t *rk = new_client(kc, RD_KAFKA_CONSUMER, kv, err, errlen);
    if (!rk)
        return NULL;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, kc->opt.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(kerr));
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NULL;
    }
    return rk;
}

/* Copies the option strings so that the module outlives its caller's configuration. */
static int copy_options(eo_kafka_consumer_t *kc, const eo_kafka_consumer_options_t *opt)
{
    kc->opt = *opt;
    struct {
        char **copy;
        const char **field;
    } strs[] = {
        {&kc->brokers, &kc->opt.brokers},
        {&kc->group, &kc->opt.group},
        {&kc->topic, &kc->opt.topic},
        {&kc->consumer_client_id, &kc->opt.consumer_client_id},
        {&kc->producer_client_id, &kc->opt.producer_client_id},
        {&kc->transactional_id, &kc->opt.transactional_id},
        {&kc->consumer_fault, &kc->opt.consumer_fault},
        {&kc->producer_fault, &kc->opt.producer_fault},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!(*strs[i].copy = strdup(*strs[i].field ? *strs[i].field : "")))
            return EO_ENOMEM;
        *strs[i].field = *strs[i].copy;
    }
    return 0;
}

int eo_kafka_consumer_new(const eo_kafka_consumer_options_t *opt, eo_kafka_consumer_t **out,
                          char *err, size_t errlen)
{
    *out = NULL;
    eo_kafka_consumer_t *kc = calloc(1, sizeof *kc);
    if (!kc) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    int r = copy_options(kc, opt);
    if (r < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    r = EO_EIO;
    if (!(kc->consumer = consumer_new(kc, err, errlen)) ||
        !(kc->producer = producer_new(kc, err, errlen)))
        goto fail;
    rd_kafka_error_t *e = rd_kafka_init_transactions(kc->producer, 30000);
    if (e) {
        snprintf(err, errlen, "kafka init_transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        r = EO_EUNAVAIL;
        goto fail;
    }
    atomic_store(&kc->usable, true);
    *out = kc;
    return 0;
fail:
    eo_kafka_consumer_free(kc);
    return r;
}

void eo_kafka_consumer_close(eo_kafka_consumer_t *kc)
{
    if (kc->consumer && !kc->consumer_broken)
        rd_kafka_consumer_close(kc->consumer);
}

void eo_kafka_consumer_free(eo_kafka_consumer_t *kc)
{
    if (!kc)
        return;
    clear_held(kc);
    if (kc->consumer) /* closed by the owner's loop, unless it failed */
        rd_kafka_destroy_flags(kc->consumer,
                               kc->consumer_broken ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    if (kc->producer) {
        rd_kafka_flush(kc->producer, 5000);
        rd_kafka_destroy(kc->producer);
    }
    if (kc->offsets)
        rd_kafka_topic_partition_list_destroy(kc->offsets);
    free(kc->held);
    free(kc->brokers);
    free(kc->group);
    free(kc->topic);
    free(kc->consumer_client_id);
    free(kc->producer_client_id);
    free(kc->transactional_id);
    free(kc->consumer_fault);
    free(kc->producer_fault);
    free(kc);
}

/* Runs a transaction call until it succeeds, fails for good, or the deadline passes; a
 * retriable failure (a timeout while the broker is away) is retried after serving the group
 * for a moment. Returns NULL or the last error (caller owns it). */
typedef rd_kafka_error_t *(*txn_call_fn)(eo_kafka_consumer_t *kc, void *arg);

static rd_kafka_error_t *txn_retry(eo_kafka_consumer_t *kc, txn_call_fn call, void *arg,
                                   int64_t deadline_us)
{
    for (;;) {
        rd_kafka_error_t *e = call(kc, arg);
        if (!e || !rd_kafka_error_is_retriable(e) || eo_clock_mono_us() >= deadline_us ||
            atomic_load(kc->opt.stopping))
            return e; /* stopping: what is uncommitted is read again after the restart */
        rd_kafka_error_destroy(e);
        eo_kafka_consumer_serve_paused(kc, 50);
    }
}

static rd_kafka_error_t *send_offsets(eo_kafka_consumer_t *kc, void *arg)
{
    return rd_kafka_send_offsets_to_transaction(kc->producer, kc->offsets, arg,
                                                (int)kc->opt.call_timeout_ms);
}

static rd_kafka_error_t *commit(eo_kafka_consumer_t *kc, void *arg)
{
    return rd_kafka_commit_transaction(kc->producer, (int)kc->opt.call_timeout_ms);
}

static rd_kafka_error_t *abort_txn(eo_kafka_consumer_t *kc, void *arg)
{
    return rd_kafka_abort_transaction(kc->producer, (int)kc->opt.call_timeout_ms);
}

static void drop_offsets(eo_kafka_consumer_t *kc)
{
    if (kc->offsets)
        rd_kafka_topic_partition_list_destroy(kc->offsets);
    kc->offsets = NULL;
}

/* A transaction call failed (e is consumed). The batch is not committed and the consumer must
 * go back to the committed offsets. Unless the producer failed fatally the transaction is
 * aborted (timeouts retried until the deadline); one that cannot be aborted, or whose producer
 * failed fatally, marks the producer for a rebuild, whose init_transactions settles it.
 * Returns EO_EIO. */
static int txn_failed(eo_kafka_consumer_t *kc, rd_kafka_error_t *e)
{
    drop_offsets(kc);
    eo_log_warn("kafka transaction failed", "error", rd_kafka_error_string(e), "code",
                rd_kafka_error_name(e), NULL);
    bool fatal = rd_kafka_error_is_fatal(e);
    rd_kafka_error_destroy(e);
    kc->rewind_pending = true;
    if (!fatal) { /* an abort is refused where it cannot be (e.g. a commit under way) */
        e = txn_retry(kc, abort_txn, NULL, kc->txn_deadline_us);
        if (!e) {
            eo_counter_add(kc->opt.metrics ? kc->opt.metrics->aborts : NULL, 1);
            return EO_EIO;
        }
        eo_log_warn("kafka transaction abort failed", "error", rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
    }
    kc->producer_broken = true;
    return EO_EIO;
}

int eo_kafka_consumer_txn_begin(eo_kafka_consumer_t *kc)
{
    drop_offsets(kc);
    kc->txn_deadline_us = eo_clock_mono_us() + kc->opt.txn_timeout_ms * 1000;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(kc->producer);
    if (e)
        return txn_failed(kc, e);
    kc->offsets = rd_kafka_topic_partition_list_new(8);
    return 0;
}

void eo_kafka_consumer_txn_consumed(eo_kafka_consumer_t *kc, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(kc->offsets, topic, m->partition);
    if (!tp)
        tp = rd_kafka_topic_partition_list_add(kc->offsets, topic, m->partition);
    if (m->offset + 1 > tp->offset)
        tp->offset = m->offset + 1;
}

int eo_kafka_consumer_txn_produce(eo_kafka_consumer_t *kc, const char *topic, const void *key,
                                  size_t key_len, const void *value, size_t len,
                                  rd_kafka_headers_t *headers)
{
    rd_kafka_resp_err_t perr;
    if (headers)
        perr = rd_kafka_producev(kc->producer, RD_KAFKA_V_TOPIC(topic),
                                 RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
    else
        perr = rd_kafka_producev(kc->producer, RD_KAFKA_V_TOPIC(topic),
                                 RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!perr)
        return 0;
    if (headers)
        rd_kafka_headers_destroy(headers);
    return txn_failed(kc,
                      rd_kafka_error_new(perr, "producing a record: %s", rd_kafka_err2str(perr)));
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

int eo_kafka_consumer_txn_dead_letter(eo_kafka_consumer_t *kc, const char *topic,
                                      const rd_kafka_message_t *m, const char *code,
                                      const char *message, const char *field)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    add_header(h, "eventops-error-code", code);
    add_header(h, "eventops-error-message", message);
    add_header(h, "eventops-error-field", field);
    add_header(h, "eventops-source-topic", rd_kafka_topic_name(m->rkt));
    add_header(h, "eventops-source-partition", part);
    add_header(h, "eventops-source-offset", off);
    rd_kafka_resp_err_t perr = rd_kafka_producev(
        kc->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (!perr)
        return 0;
    rd_kafka_headers_destroy(h);
    return txn_failed(
        kc, rd_kafka_error_new(perr, "producing a dead letter: %s", rd_kafka_err2str(perr)));
}

int eo_kafka_consumer_txn_commit(eo_kafka_consumer_t *kc)
{
    rd_kafka_error_t *e = NULL;
    if (kc->offsets && kc->offsets->cnt > 0) { /* a transaction may only produce (a tick) */
        rd_kafka_consumer_group_metadata_t *group = rd_kafka_consumer_group_metadata(kc->consumer);
        e = txn_retry(kc, send_offsets, group, kc->txn_deadline_us);
        rd_kafka_consumer_group_metadata_destroy(group);
    }
    drop_offsets(kc);
    if (!e)
        e = txn_retry(kc, commit, NULL, kc->txn_deadline_us);
    return e ? txn_failed(kc, e) : 0;
}

/* Moves the consumer to the group's committed offsets (the log start where there is none) on
 * every assigned partition, dropping what was held. Returns 0, or EO_EUNAVAIL when the brokers
 * did not answer in time (heal tries again). */
static int rewind_to_committed(eo_kafka_consumer_t *kc)
{
    clear_held(kc);
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(kc->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return EO_EUNAVAIL;
    int timeout = (int)kc->opt.call_timeout_ms, r = 0;
    if (parts->cnt > 0 && rd_kafka_committed(kc->consumer, parts, timeout) != 0)
        r = EO_EUNAVAIL;
    for (int i = 0; r == 0 && i < parts->cnt; i++) {
        if (parts->elems[i].err)
            r = EO_EUNAVAIL;
        else if (parts->elems[i].offset < 0)
            parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (r == 0 && parts->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(kc->consumer, parts, timeout);
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
        kc->rewind_pending = false;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return r;
}

/* A new transactional producer with the same transactional.id: init_transactions fences the
 * old one and settles its open transaction. Timeouts are retried while serving the group; a
 * fatal failure stops the process. */
static void rebuild_producer(eo_kafka_consumer_t *kc)
{
    char why[512] = "transaction outcome unknown";
    if (client_failed(kc->producer))
        rd_kafka_fatal_error(kc->producer, why, sizeof why);
    eo_log_warn("rebuilding the kafka producer", "reason", why, NULL);
    atomic_store(&kc->usable, false);
    eo_counter_add(rebuilds_counter(kc, 1), 1);
    rd_kafka_purge(kc->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(kc->producer);
    char err[512];
    if (!(kc->producer = producer_new(kc, err, sizeof err))) {
        eo_log_error("cannot rebuild the kafka producer; stopping", "error", err, NULL);
        fail_stop(kc);
        return;
    }
    int64_t delay = 100;
    while (!atomic_load(kc->opt.stopping)) {
        rd_kafka_error_t *e =
            rd_kafka_init_transactions(kc->producer, (int)kc->opt.call_timeout_ms);
        if (!e) {
            eo_log_info("kafka producer rebuilt", NULL);
            kc->producer_broken = false;
            kc->rewind_pending = true;
            return;
        }
        bool fatal = rd_kafka_error_is_fatal(e);
        if (fatal)
            eo_log_error("cannot rebuild the kafka producer; stopping", "error",
                         rd_kafka_error_string(e), NULL);
        rd_kafka_error_destroy(e);
        if (fatal) {
            fail_stop(kc);
            return;
        }
        eo_kafka_consumer_serve_paused(kc, delay);
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

/* A new consumer (a new group member): it starts from the committed offsets. */
static void rebuild_consumer(eo_kafka_consumer_t *kc)
{
    char why[512] = "";
    rd_kafka_fatal_error(kc->consumer, why, sizeof why);
    eo_log_warn("rebuilding the kafka consumer", "reason", why, NULL);
    atomic_store(&kc->usable, false);
    eo_counter_add(rebuilds_counter(kc, 0), 1);
    clear_held(kc);
    eo_kafka_lag_clear_assigned(kc->opt.lag);
    rd_kafka_destroy_flags(kc->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    char err[512];
    if (!(kc->consumer = consumer_new(kc, err, sizeof err))) {
        eo_log_error("cannot rebuild the kafka consumer; stopping", "error", err, NULL);
        fail_stop(kc);
        return;
    }
    eo_log_info("kafka consumer rebuilt", NULL);
    kc->paused = false; /* a new consumer: nothing of it is paused */
    kc->consumer_broken = false;
    kc->rewind_pending = false;
}

bool eo_kafka_consumer_heal(eo_kafka_consumer_t *kc)
{
    if (kc->opt.consumer_fault[0] && eo_fault_take(kc->opt.consumer_fault))
        rd_kafka_test_fatal_error(kc->consumer, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID,
                                  "fault injection");
    if (kc->opt.producer_fault[0] && eo_fault_take(kc->opt.producer_fault))
        rd_kafka_test_fatal_error(kc->producer, RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                                  "fault injection");
    if (!kc->producer_broken && client_failed(kc->producer))
        kc->producer_broken = true;
    if (!kc->consumer_broken && client_failed(kc->consumer))
        kc->consumer_broken = true;
    if (kc->producer_broken)
        rebuild_producer(kc);
    if (!atomic_load(kc->opt.stopping) && kc->consumer_broken)
        rebuild_consumer(kc);
    if (atomic_load(kc->opt.stopping))
        return false;
    if (kc->rewind_pending && !kc->producer_broken && rewind_to_committed(kc) < 0)
        eo_kafka_consumer_serve_paused(kc, 100);
    bool ok = !kc->producer_broken && !kc->consumer_broken && !kc->rewind_pending;
    atomic_store(&kc->usable, ok);
    return ok;
}
