/* librdkafka helpers (see kafka.h). */
#include "core/kafka.h"

#include <stdio.h>

#include "core/log.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    eo_log_level_t l = level <= 3   ? EO_LOG_ERROR
                       : level <= 4 ? EO_LOG_WARN
                       : level <= 6 ? EO_LOG_INFO
                                    : EO_LOG_DEBUG;
    eo_log(l, "librdkafka", "client", rk ? rd_kafka_name(rk) : "-", "facility", fac, "error", buf,
           NULL);
}

rd_kafka_conf_t *eo_kafka_conf_new(const char *brokers, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (eo_kafka_set(conf, "bootstrap.servers", brokers, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

void eo_kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        eo_log_error("kafka client failed fatally; it will be rebuilt", "client", rd_kafka_name(rk),
                     "error", why, NULL);
        return;
    }
    eo_log_warn("kafka error", "client", rd_kafka_name(rk), "error", reason, "code",
                rd_kafka_err2name(err), NULL);
}

void eo_kafka_rebuild_counters(eo_metrics_t *m, const char *role, const char *const *clients,
                               size_t n, eo_counter_t **out)
{
    eo_metrics_counters(m, "eventops_kafka_client_rebuilds_total",
                        "Kafka clients rebuilt in the process after a fatal error or a "
                        "transaction of unknown outcome.",
                        role, "client", clients, n, out);
}

int eo_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                 size_t errlen)
{
    char reason[256];
    if (rd_kafka_conf_set(conf, key, value, reason, sizeof reason) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka %s: %s", key, reason);
        return EO_EINVAL;
    }
    return 0;
}

int eo_kafka_set_all(rd_kafka_conf_t *conf, const char *const *kv, char *err, size_t errlen)
{
    for (; kv[0]; kv += 2) {
        int r = eo_kafka_set(conf, kv[0], kv[1], err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

rd_kafka_t *eo_kafka_reader_new(const char *brokers, const char *group, const char *client_id,
                                const char *reset, const char *queued_kbytes, char *err,
                                size_t errlen)
{
    rd_kafka_conf_t *conf = eo_kafka_conf_new(brokers, err, errlen);
    if (!conf)
        return NULL;
    const char *kv[] = {"group.id",
                        group,
                        "client.id",
                        client_id,
                        "enable.auto.commit",
                        "false",
                        "enable.auto.offset.store",
                        "false",
                        "isolation.level",
                        "read_committed",
                        "enable.partition.eof",
                        "true",
                        "auto.offset.reset",
                        reset,
                        queued_kbytes ? "queued.max.messages.kbytes" : NULL,
                        queued_kbytes,
                        NULL};
    if (eo_kafka_set_all(conf, kv, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, eo_kafka_on_error);
    char reason[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", reason);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    conf = NULL; /* now owned by rk */
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

int eo_kafka_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *n, char *err,
                              size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e =
        t ? rd_kafka_metadata(rk, 0, t, &md, timeout_ms) : RD_KAFKA_RESP_ERR__FAIL;
    if (t)
        rd_kafka_topic_destroy(t);
    int r = 0;
    if (e || !md || md->topic_cnt != 1 || md->topics[0].err || !md->topics[0].partition_cnt) {
        snprintf(err, errlen, "no metadata for topic %s: %s", topic,
                 e ? rd_kafka_err2str(e)
                   : (md && md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "none"));
        r = EO_EUNAVAIL;
    } else {
        *n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return r;
}
