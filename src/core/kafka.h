/* librdkafka helpers shared by the roles: configuration with errors in the caller's buffer,
 * librdkafka's own log lines routed into our JSON log, one error callback for every client,
 * and the counters of clients rebuilt after a fatal error. */
#ifndef EO_CORE_KAFKA_H
#define EO_CORE_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "core/error.h"
#include "core/metrics.h"

/* A new configuration with bootstrap.servers set and logging routed to eo_log. Caller owns it
 * (rd_kafka_conf_destroy, or hand it to rd_kafka_new). NULL on failure (err filled). */
rd_kafka_conf_t *eo_kafka_conf_new(const char *brokers, char *err, size_t errlen);

/* Sets key=value; EO_EINVAL with librdkafka's reason in err. */
int eo_kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                 size_t errlen) EO_MUST_CHECK;

/* Sets several pairs: kv = {key, value, key, value, ..., NULL}. */
int eo_kafka_set_all(rd_kafka_conf_t *conf, const char *const *kv, char *err,
                     size_t errlen) EO_MUST_CHECK;

/* The error callback of every client (rd_kafka_conf_set_error_cb): a fatal error, after which
 * librdkafka refuses all work and the owner rebuilds the client, is logged as an error with its
 * cause and the client's name; any other error as a warning. */
void eo_kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque);

/* A consumer assigned by hand (rd_kafka_assign; no subscription, nothing committed; group is
 * set only because librdkafka's consumer needs one): read_committed, end-of-partition events,
 * auto.offset.reset `reset` ("earliest", "error", ...), at most queued_kbytes prefetched per
 * partition (NULL: librdkafka's default), errors through eo_kafka_on_error. Polled with
 * rd_kafka_consumer_poll. NULL with the reason in err. */
rd_kafka_t *eo_kafka_reader_new(const char *brokers, const char *group, const char *client_id,
                                const char *reset, const char *queued_kbytes, char *err,
                                size_t errlen);

/* The partition count of topic, from a metadata request of at most timeout_ms. Returns 0, or
 * EO_EUNAVAIL (no answer, an unknown topic, no partitions) with the reason in err. */
int eo_kafka_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, int *n, char *err,
                              size_t errlen) EO_MUST_CHECK;

/* Registers eventops_kafka_client_rebuilds_total{role, client} for clients[0..n) into out. */
void eo_kafka_rebuild_counters(eo_metrics_t *m, const char *role, const char *const *clients,
                               size_t n, eo_counter_t **out);

#endif
