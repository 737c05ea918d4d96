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
