/* The user-set compactor (ADR-22, docs/schema.md "user sets"): moves the deltas the storage
 * workers append to user_set_deltas into the compacted sets of user_sets (quarter hour, hour and
 * day), so that a query unites a few rows per bucket rather than one per batch. Each pass is one
 * transaction that deletes a block of deltas and merges them into the rows that hold their
 * buckets: every snapshot sees each user either in a delta or in the compacted sets, so answers
 * stay exact while it runs, and a crash at any point leaves the data as it was before the pass.
 * Passes of several processors are serialised by a transaction-scoped advisory lock (a pass
 * that finds it taken does nothing). */
#ifndef EO_PROCESSOR_COMPACTOR_H
#define EO_PROCESSOR_COMPACTOR_H

#include <libpq-fe.h>
#include <stdint.h>

#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_compactor eo_compactor_t;

/* One pass on conn (idle, no transaction open): merges the oldest `rows` deltas at most.
 * Returns how many were merged (0 also when another pass holds the lock), or an error (the
 * transaction is rolled back). */
long eo_compactor_pass(PGconn *conn, int64_t rows, char *err, size_t errlen);

/* Starts a thread that connects to dsn and runs passes every interval_ms (passes follow each
 * other while they merge a whole block, up to 50 per interval). metrics may be NULL. */
int eo_compactor_start(const char *dsn, int64_t interval_ms, int64_t rows, eo_metrics_t *metrics,
                       eo_compactor_t **out, char *err, size_t errlen) EO_MUST_CHECK;
/* Stops the thread (waiting for a pass in progress) and frees everything. NULL accepted. */
void eo_compactor_stop(eo_compactor_t *c);

#endif
