/* The compactor of the derived structures (ADR-22, ADR-23, docs/schema.md "user sets" and
 * "timelines"): moves the deltas the storage workers append to user_set_deltas into the
 * compacted sets of user_sets (quarter hour, hour and day), and those of timeline_deltas into the
 * hours of timelines, so that a query reads a few rows per bucket rather than one per batch. Each
 * pass is one transaction that deletes a block of deltas and merges them into the rows that hold
 * their buckets: every snapshot sees each user either in a delta or in the compacted sets, so
 * answers stay exact while it runs, and a crash at any point leaves the data as it was before the
 * pass. Passes of several processors are serialised by a transaction-scoped advisory lock (a pass
 * that finds it taken does nothing). While the user sets are not complete (a database that had
 * events when migration 0007 ran), each interval first backfills one day (below); likewise the
 * timelines (migration 0008). */
#ifndef EO_PROCESSOR_COMPACTOR_H
#define EO_PROCESSOR_COMPACTOR_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_compactor eo_compactor_t;

/* The pg_advisory_*lock key that serialises compaction passes and backfill days (user sets and
 * property rollups alike). */
#define EO_COMPACTOR_LOCK_KEY "7465417420001"

/* Opens a transaction on conn and tries the compaction's transaction-scoped lock: 1 with the
 * transaction open and the lock held, 0 when another pass holds it (rolled back), or an error
 * (rolled back). */
int eo_compactor_begin(PGconn *conn, char *err, size_t errlen) EO_MUST_CHECK;
/* Rolls back the open transaction of conn, if any; returns r. */
int eo_compactor_rollback(PGconn *conn, int r);

/* One pass on conn (idle, no transaction open): merges the oldest `rows` deltas at most.
 * Returns how many were merged (0 also when another pass holds the lock), or an error (the
 * transaction is rolled back). */
long eo_compactor_pass(PGconn *conn, int64_t rows, char *err, size_t errlen);

/* The same for the timelines (ADR-23): merges the oldest `rows` timeline deltas at most into
 * the hours' rows of timelines, each hour in parts of at most part_events events (migration
 * 0012): the deltas go into the hour's last part while it has room, the rest into new parts. */
long eo_timeline_compactor_pass(PGconn *conn, int64_t rows, int64_t part_events, char *err,
                                size_t errlen);

/* The backfill (ADR-22, ADR-23): recomputes the user sets (or the timelines) of one UTC day
 * (YYYY-MM-DD) from its events in one repeatable-read transaction under the compaction lock:
 * the day's users are numbered first (autocommitted), then the day's rows are replaced and the
 * deltas inside it that the snapshot sees are deleted (their events are in the snapshot; later
 * deltas stay), and the day is recorded in user_sets_backfill (timelines_backfill). Returns 1
 * when done now, 0 when it was done before, or an error (rolled back; EO_EUNAVAIL also when
 * events without a user number were found, i.e. an older processor still stores events). */
int eo_user_sets_backfill_day(PGconn *conn, const char *day, char *err, size_t errlen);
int eo_timelines_backfill_day(PGconn *conn, const char *day, int64_t part_events, char *err,
                              size_t errlen);

/* One step of the backfill while derived_structures says a structure (the user sets first, then
 * the timelines) is not complete: its latest events partition not backfilled yet, or, when none
 * is left, marks it complete. Returns 1 when a day was backfilled (call again), 0 when every
 * structure is complete, or an error. part_events: as for eo_timeline_compactor_pass. */
int eo_derived_backfill_step(PGconn *conn, int64_t part_events, char *err, size_t errlen);

/* `eventops admin backfill [--all]`: runs the backfill steps on dsn until every structure is
 * complete, then the tracked properties' (ADR-24) until none can advance now (--all: first
 * forgets every day of the user sets and timelines done, for data loaded behind the processor's
 * back, e.g. by bench/query_load.sh). Progress to `progress` (may be NULL). Returns the exit
 * code. */
int eo_derived_backfill_run(const char *dsn, bool all_days, int64_t part_events, FILE *progress);

/* Property rollups (ADR-24, prop_compact.c). One pass: merges the oldest `rows` property
 * deltas at most into property_rollups (deltas of paths no longer tracked are dropped), in one
 * transaction under the compaction lock. Returns how many deltas were taken (0 also when another
 * pass holds the lock), or an error (rolled back). */
long eo_property_compact_pass(PGconn *conn, int64_t rows, char *err, size_t errlen);

/* One step of the backfill of the tracked paths in state 'backfilling': records the path's
 * tracked_xid when missing; once every transaction older than it has ended, recomputes the
 * path's counts of the latest UTC day not done yet (its values enter the dictionary first,
 * autocommitted; then in one repeatable-read transaction under the compaction lock the day's
 * deltas and rollups that the snapshot sees are replaced by a recount of its events); when no
 * day is left, marks the path complete. Returns 1 when it did a day or completed a path, 0 when
 * there was nothing it could do now, or an error. */
int eo_property_backfill_step(PGconn *conn, char *err, size_t errlen);

/* Starts a thread that connects to dsn and runs passes every interval_ms (passes follow each
 * other while they merge a whole block, up to 50 per interval; timelines in parts of at most
 * part_events). metrics may be NULL. */
int eo_compactor_start(const char *dsn, int64_t interval_ms, int64_t rows, int64_t part_events,
                       eo_metrics_t *metrics, eo_compactor_t **out, char *err,
                       size_t errlen) EO_MUST_CHECK;
/* Stops the thread (waiting for a pass in progress) and frees everything. NULL accepted. */
void eo_compactor_stop(eo_compactor_t *c);

#endif
