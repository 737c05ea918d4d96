/* The collector's event sink: an idempotent librdkafka producer (acks=all) whose delivery
 * reports call back per message. A background thread serves the reports and rebuilds the
 * producer in the process when librdkafka makes it unusable (a fatal error). Thread-safe. */
#ifndef EO_COLLECTOR_KAFKA_SINK_H
#define EO_COLLECTOR_KAFKA_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_kafka_sink eo_kafka_sink_t;

/* Called once per produced message on the sink's thread: err is 0 when Kafka acknowledged
 * the write (it is durable), or a negative EO_E* code. */
typedef void (*eo_sink_done_fn)(void *opaque, int err);

int eo_kafka_sink_new(const eo_config_t *cfg, eo_sink_done_fn done, eo_kafka_sink_t **out,
                      char *err, size_t errlen) EO_MUST_CHECK;

/* Counts deliveries in m: eventops_kafka_produce_latency_seconds, _delivery_errors_total,
 * eventops_kafka_client_rebuilds_total and the gauge eventops_kafka_messages_queued
 * (role="collector"). Call before producing. */
int eo_kafka_sink_register_metrics(eo_kafka_sink_t *sink, eo_metrics_t *m) EO_MUST_CHECK;

/* Enqueues one record (copied) with the headers x-request-id and traceparent (either may be
 * NULL). Returns 0 (done will be called later), EO_EUNAVAIL when the queue is full or the
 * producer failed fatally, or EO_EIO (done is not called then). */
int eo_kafka_sink_produce(eo_kafka_sink_t *sink, const void *key, size_t keylen, const void *value,
                          size_t len, const char *request_id, const char *traceparent,
                          void *opaque) EO_MUST_CHECK;

/* True when the producer is usable and the brokers answer (a metadata request within
 * timeout_ms succeeds). */
bool eo_kafka_sink_ready(eo_kafka_sink_t *sink, int timeout_ms);

/* Fails every record not yet acknowledged (their callbacks report EO_EUNAVAIL). */
void eo_kafka_sink_purge(eo_kafka_sink_t *sink);

/* Waits up to timeout_ms for outstanding deliveries, then frees. NULL is accepted. */
void eo_kafka_sink_free(eo_kafka_sink_t *sink, int64_t timeout_ms);

#endif
