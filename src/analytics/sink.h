/* The analytics sink: writes the engine's summaries and window results from Kafka into
 * PostgreSQL (analytics_summaries, analytics_windows), each exactly once.
 *
 * A consumer-group member (read_committed: records of aborted engine transactions are never
 * seen) subscribed to both topics polls a batch, inserts all of it in one PostgreSQL
 * transaction with ON CONFLICT DO NOTHING, then commits the batch's offsets synchronously. A
 * crash between the two reads the batch again, and the inserts skip what is there. A record
 * that cannot be decoded, or that the database refuses as data, is logged and counted and
 * skipped; while PostgreSQL is unavailable the batch is kept and retried with backoff, the
 * partitions paused and the group served meanwhile.
 *
 * Threads: the sink runs on its own thread, which owns everything in it; eo_analytics_sink_ready()
 * reads atomics from any thread. */
#ifndef EO_ANALYTICS_SINK_H
#define EO_ANALYTICS_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/metrics.h"

/* A batch is closed once its record values reach this many bytes (or batch_max records). */
#define EO_ANALYTICS_SINK_BATCH_BYTES_MAX ((size_t)64 << 20)
/* Bounds of the options' numbers (checked by eo_analytics_sink_start). */
#define EO_ANALYTICS_SINK_BATCH_MAX_LIMIT 100000
#define EO_ANALYTICS_SINK_BATCH_WAIT_MS_LIMIT 60000

typedef struct eo_analytics_sink eo_analytics_sink_t;

/* What the sink needs of the configuration (copied by eo_analytics_sink_start). */
typedef struct {
    const char *brokers, *group, *summaries_topic, *windows_topic, *pg_dsn;
    int64_t session_timeout_ms; /* the group session, 1000 .. 3600000 */
    int64_t batch_max;          /* records per batch, 1 .. EO_ANALYTICS_SINK_BATCH_MAX_LIMIT */
    int64_t batch_wait_ms;      /* longest wait to fill a batch, 1 .. ..._BATCH_WAIT_MS_LIMIT */
} eo_analytics_sink_options_t;

/* Builds the consumer and starts the sink's thread, which connects to PostgreSQL by itself
 * (and again after a failure). Registers into m (borrowed; it must outlive the sink; NULL: no
 * metrics):
 *   eventops_analytics_sink_records_total{role="analytics",kind="summary"|"window"}: records
 *     written to PostgreSQL (inserted, or already there);
 *   eventops_analytics_sink_skipped_total{role="analytics",reason="undecodable"|
 *     "refused_by_database"}: records skipped;
 *   eventops_analytics_sink_batches_total{role="analytics"}: batches stored and committed;
 *   eventops_analytics_sink_postgres_up{role="analytics"}: 1 while PostgreSQL takes writes.
 * Returns 0, EO_EINVAL (an option out of range), EO_EIO (the consumer could not be built) or
 * EO_ENOMEM, with the reason in err. The caller owns *out (eo_analytics_sink_stop). */
int eo_analytics_sink_start(const eo_analytics_sink_options_t *opt, eo_metrics_t *m,
                            eo_analytics_sink_t **out, char *err, size_t errlen) EO_MUST_CHECK;

/* True while PostgreSQL takes writes, the consumer is usable and the sink is not stopping.
 * Any thread. */
bool eo_analytics_sink_ready(const eo_analytics_sink_t *s);

/* Stops: finishes the batch in hand (stored and committed; dropped uncommitted while
 * PostgreSQL is unavailable), leaves the group, detaches the postgres_up gauge from the sink
 * and frees everything. NULL accepted. */
void eo_analytics_sink_stop(eo_analytics_sink_t *s);

#endif
