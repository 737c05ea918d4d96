/* Idempotent Kafka producer for accepted events (see kafka_sink.h).
 *
 * A producer that librdkafka made unusable (a fatal error: every later write fails at once) is
 * rebuilt by the poller thread: a new producer takes the old one's place under the write lock,
 * then the old one's records are purged, so their requests answer 503 and their clients resend
 * (the processor stores a messageId once, so a record that did reach Kafka is not doubled).
 *
 * Threads: any thread produces, holding `swap` for reading while it uses `rk` and `topic`; the
 * poller thread runs delivery callbacks and is the only writer of `rk` and `topic` (under
 * `swap` for writing). `stopping` is an atomic flag read by the poller. */
#include "collector/kafka_sink.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/fault.h"
#include "core/kafka.h"
#include "core/log.h"

struct eo_kafka_sink {
    pthread_rwlock_t swap; /* guards rk and topic against a rebuild */
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    eo_config_t cfg;
    eo_sink_done_fn done;
    eo_histogram_t *latency;
    eo_counter_t *errors, *rebuilds;
    atomic_bool stopping;
    pthread_t poller;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    eo_kafka_sink_t *sink = opaque;
    int err = 0;
    int64_t us = rd_kafka_message_latency(msg);
    if (us >= 0)
        eo_histogram_observe(sink->latency, (double)us / 1e6);
    if (msg->err) {
        eo_counter_add(sink->errors, 1);
        err = msg->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? EO_ETIMEOUT : EO_EUNAVAIL;
        eo_log_warn("kafka delivery failed", "error", rd_kafka_err2str(msg->err), NULL);
    }
    sink->done(msg->_private, err);
}

/* A new idempotent producer and its topic handle, or -1 with the reason in err. */
static int producer_new(eo_kafka_sink_t *sink, rd_kafka_t **rk, rd_kafka_topic_t **topic, char *err,
                        size_t errlen)
{
    const eo_config_t *cfg = &sink->cfg;
    rd_kafka_conf_t *conf = eo_kafka_conf_new(cfg->kafka_brokers, err, errlen);
    if (!conf)
        return EO_EINVAL;
    char timeout[24], queue[24], linger[24], inflight[24];
    snprintf(timeout, sizeof timeout, "%lld", (long long)cfg->kafka_ack_timeout_ms);
    snprintf(queue, sizeof queue, "%lld", (long long)cfg->kafka_queue_max_messages);
    snprintf(linger, sizeof linger, "%.3f", (double)cfg->kafka_linger_us / 1000.0); /* ms */
    snprintf(inflight, sizeof inflight, "%lld", (long long)cfg->kafka_max_in_flight);
    const char *kv[] = {"client.id",
                        "eventops-collector",
                        "enable.idempotence",
                        "true",
                        "acks",
                        "all",
                        "message.timeout.ms",
                        timeout,
                        "queue.buffering.max.messages",
                        queue,
                        "queue.buffering.max.kbytes",
                        "1048576",
                        "linger.ms",
                        linger,
                        "max.in.flight.requests.per.connection",
                        inflight,
                        "batch.num.messages",
                        "10000",
                        "compression.codec",
                        cfg->kafka_compression,
                        "socket.keepalive.enable",
                        "true",
                        NULL};
    if (eo_kafka_set_all(conf, kv, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return EO_EINVAL;
    }
    rd_kafka_conf_set_opaque(conf, sink);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, eo_kafka_on_error); /* fatal: the poller rebuilds */
    char reason[512];
    if (!(*rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason))) {
        snprintf(err, errlen, "kafka producer: %s", reason);
        rd_kafka_conf_destroy(conf);
        return EO_EIO;
    }
    conf = NULL; /* now owned by the producer */
    if (!(*topic = rd_kafka_topic_new(*rk, cfg->events_topic, NULL))) {
        snprintf(err, errlen, "kafka topic handle: %s", rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(*rk);
        *rk = NULL;
        return EO_EIO;
    }
    return 0;
}

/* Fails what old still holds (the reports reach their requests through this thread) and
 * frees it. Poller thread. */
static void retire(rd_kafka_t *old, rd_kafka_topic_t *topic)
{
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && rd_kafka_outq_len(old) > 0; i++)
        rd_kafka_poll(old, 50);
    if (rd_kafka_outq_len(old) > 0) /* purged records report at once: not seen so far */
        eo_log_warn("kafka producer retired with records unreported", NULL);
    rd_kafka_topic_destroy(topic);
    rd_kafka_destroy(old);
}

/* Replaces a producer that failed fatally. Returns false when no new one could be made (the
 * poller tries again later; meanwhile writes fail at once and requests answer 503). */
static bool rebuild(eo_kafka_sink_t *sink)
{
    char err[512];
    rd_kafka_t *rk;
    rd_kafka_topic_t *topic;
    if (producer_new(sink, &rk, &topic, err, sizeof err) < 0) {
        eo_log_error("cannot rebuild the kafka producer", "error", err, NULL);
        return false;
    }
    pthread_rwlock_wrlock(&sink->swap);
    rd_kafka_t *old = sink->rk;
    rd_kafka_topic_t *old_topic = sink->topic;
    sink->rk = rk;
    sink->topic = topic;
    pthread_rwlock_unlock(&sink->swap);
    retire(old, old_topic);
    eo_counter_add(sink->rebuilds, 1);
    eo_log_info("kafka producer rebuilt", NULL);
    return true;
}

static void *poll_loop(void *arg)
{
    eo_log_thread_role("collector");
    eo_kafka_sink_t *sink = arg;
    int64_t retry_at = 0;
    while (!atomic_load(&sink->stopping)) {
        rd_kafka_poll(sink->rk, 50); /* this thread is the only writer of rk */
        if (eo_fault_take("collector-producer-fatal"))
            rd_kafka_test_fatal_error(sink->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      "fault injection");
        if (rd_kafka_fatal_error(sink->rk, NULL, 0) && eo_clock_mono_us() >= retry_at &&
            !rebuild(sink))
            retry_at = eo_clock_mono_us() + 1000000;
    }
    return NULL;
}

int eo_kafka_sink_new(const eo_config_t *cfg, eo_sink_done_fn done, eo_kafka_sink_t **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    eo_kafka_sink_t *sink = calloc(1, sizeof *sink);
    if (!sink)
        return EO_ENOMEM;
    sink->done = done;
    sink->cfg = *cfg;
    int r = producer_new(sink, &sink->rk, &sink->topic, err, errlen);
    if (r < 0) {
        free(sink);
        return r;
    }
    pthread_rwlock_init(&sink->swap, NULL);
    if (pthread_create(&sink->poller, NULL, poll_loop, sink) != 0) {
        snprintf(err, errlen, "cannot start the kafka producer");
        rd_kafka_topic_destroy(sink->topic);
        rd_kafka_destroy(sink->rk);
        pthread_rwlock_destroy(&sink->swap);
        free(sink);
        return EO_EIO;
    }
    *out = sink;
    return 0;
}

static double read_queued(void *ud)
{
    eo_kafka_sink_t *sink = ud;
    pthread_rwlock_rdlock(&sink->swap);
    int queued = rd_kafka_outq_len(sink->rk);
    pthread_rwlock_unlock(&sink->swap);
    return queued;
}

int eo_kafka_sink_register_metrics(eo_kafka_sink_t *sink, eo_metrics_t *m)
{
    sink->latency = eo_metrics_histogram(
        m, "eventops_kafka_produce_latency_seconds",
        "Time from producing an event to Kafka's acknowledgement (or failure).",
        "role=\"collector\"", eo_metrics_latency_buckets, eo_metrics_latency_nbuckets);
    sink->errors = eo_metrics_counter(m, "eventops_kafka_delivery_errors_total",
                                      "Events Kafka did not acknowledge (timeout, broker error).",
                                      "role=\"collector\"");
    static const char *const clients[] = {"producer"};
    eo_kafka_rebuild_counters(m, "collector", clients, 1, &sink->rebuilds);
    return eo_metrics_gauge_fn(m, "eventops_kafka_messages_queued",
                               "Messages produced and not yet acknowledged by Kafka.",
                               "role=\"collector\"", read_queued, sink);
}

int eo_kafka_sink_produce(eo_kafka_sink_t *sink, const void *key, size_t keylen, const void *value,
                          size_t len, const char *request_id, const char *traceparent, void *opaque)
{
    pthread_rwlock_rdlock(&sink->swap);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        sink->rk, RD_KAFKA_V_RKT(sink->topic), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_HEADER("x-request-id", request_id ? request_id : "", -1),
        RD_KAFKA_V_HEADER("traceparent", traceparent ? traceparent : "", -1), RD_KAFKA_V_END);
    pthread_rwlock_unlock(&sink->swap);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL || e == RD_KAFKA_RESP_ERR__FATAL)
        return EO_EUNAVAIL;
    return EO_EIO;
}

bool eo_kafka_sink_ready(eo_kafka_sink_t *sink, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    pthread_rwlock_rdlock(&sink->swap);
    bool ok = !rd_kafka_fatal_error(sink->rk, NULL, 0) &&
              rd_kafka_metadata(sink->rk, 0, sink->topic, &md, timeout_ms) == 0 &&
              md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_rwlock_unlock(&sink->swap);
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}

void eo_kafka_sink_purge(eo_kafka_sink_t *sink)
{
    /* the poller thread serves the purged messages' reports */
    pthread_rwlock_rdlock(&sink->swap);
    rd_kafka_purge(sink->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    pthread_rwlock_unlock(&sink->swap);
}

void eo_kafka_sink_free(eo_kafka_sink_t *sink, int64_t timeout_ms)
{
    if (!sink)
        return;
    /* flush serves the remaining delivery reports on this thread once the poller stops */
    atomic_store(&sink->stopping, true);
    pthread_join(sink->poller, NULL);
    if (rd_kafka_flush(sink->rk, (int)timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        eo_log_warn("kafka producer: undelivered messages at shutdown", NULL);
    rd_kafka_purge(sink->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(sink->rk, 0); /* purged messages report failure to their requests */
    rd_kafka_topic_destroy(sink->topic);
    rd_kafka_destroy(sink->rk);
    pthread_rwlock_destroy(&sink->swap);
    free(sink);
}
