/* Consumer-group lag monitor: the backlog of a group on a topic as the broker sees it.
 *
 * Every interval a thread of its own asks the brokers, through a consumer handle that carries
 * the group id but never joins the group, for the topic's partitions, each partition's high
 * watermark and the group's committed offsets. lag = high watermark - committed offset (the low
 * watermark where the group has no commit yet). It does not depend on the state of the
 * consuming client: a consumer that librdkafka made unusable, or one with no assignment, does
 * not hide the backlog (issue 10: the old gauge read librdkafka's statistics of the consumer
 * and froze at 3,700 while 99,000 records waited).
 *
 * The same measurements tell whether the brokers answer (a measurement completed recently) and
 * whether the group is stalled (domain/lag.h: a backlog and no committed progress for a set
 * time on the partitions this instance owns).
 *
 * Threads: the monitor's thread writes the table; any thread reads it. `lock` (in the .c)
 * guards the table, the assignment and the time of the last measurement. */
#ifndef EO_STREAM_KAFKA_LAG_H
#define EO_STREAM_KAFKA_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct eo_kafka_lag eo_kafka_lag_t;

typedef struct {
    const char *brokers;
    const char *group; /* consumer group whose committed offsets count */
    const char *topic;
    const char *role;    /* label value of the gauges */
    int64_t interval_ms; /* between measurements; also the broker request timeout */
} eo_kafka_lag_options_t;

/* Starts the monitor (first measurement at once). Returns 0, or a negative EO_E* code with the
 * reason in err. The caller owns *out (eo_kafka_lag_free). */
int eo_kafka_lag_new(const eo_kafka_lag_options_t *opt, eo_kafka_lag_t **out, char *err,
                     size_t errlen) EO_MUST_CHECK;

/* Stops the thread and frees. NULL accepted. */
void eo_kafka_lag_free(eo_kafka_lag_t *lag);

/* The partitions of the monitored topic this instance consumes now (copied from parts). Call from
 * the rebalance callback. Returns 0 or EO_ENOMEM (the previous set stays). */
int eo_kafka_lag_set_assigned(eo_kafka_lag_t *lag,
                              const rd_kafka_topic_partition_list_t *parts) EO_MUST_CHECK;

/* This instance consumes nothing now. */
void eo_kafka_lag_clear_assigned(eo_kafka_lag_t *lag);

/* True when a measurement completed within the last three intervals. */
bool eo_kafka_lag_brokers_up(eo_kafka_lag_t *lag);

/* True when an owned partition (every partition while none is owned) has had a backlog and
 * no committed progress for stall_ms (domain/lag.h). */
bool eo_kafka_lag_stalled(eo_kafka_lag_t *lag, int64_t stall_ms);

/* Appends the gauges eventops_kafka_consumer_lag{role,topic,partition} (every partition of
 * the topic) and eventops_kafka_consumer_lag_age_seconds{role} (time since the last
 * measurement; -1 before the first). A metrics collector (core/metrics.h). */
int eo_kafka_lag_write_metrics(eo_buf_t *out, void *lag) EO_MUST_CHECK;

#endif
