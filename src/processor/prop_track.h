/* The processor's side of property rollups (ADR-24, sql/migrations/0009_property_rollups.sql):
 * the tracked paths of every tenant, a cache of each path's value dictionary, and per batch the
 * delta rows (tenant, path, event type and '' for all types, UTC hour, value or overflow, count)
 * of the events that went in, appended to property_rollup_deltas in the events' transaction.
 *
 * The tracked paths are (re)loaded whenever the version the batch's rollup statement reads
 * (tracked_properties_version, in the events' transaction) differs from the loaded one: no
 * statement of its own in a batch unless something is tracked or changed. A path's dictionary
 * is cached as it is learnt: a value met that is not cached, on a path not known to be full, is
 * asked of eventops_property_values() once (one statement per batch for all such values); a
 * path whose dictionary answered "not named" is full for good (a value never leaves it, none
 * enters), and its whole dictionary is then loaded once: from then on a value is named exactly
 * when it is cached, also one that another processor entered before the dictionary filled.
 *
 * Threads: one tracker per store, used by the store's thread only. */
#ifndef EO_PROCESSOR_PROP_TRACK_H
#define EO_PROCESSOR_PROP_TRACK_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/record.h"

typedef struct eo_prop_track eo_prop_track_t;

/* A tracker with nothing loaded (version -1). NULL when out of memory. */
eo_prop_track_t *eo_prop_track_new(void);
void eo_prop_track_free(eo_prop_track_t *pt);

/* The version of the tracked paths loaded, or -1 before the first load. */
int64_t eo_prop_track_version(const eo_prop_track_t *pt);

/* Loads every tenant's tracked paths and their version (one statement; the dictionaries cached
 * so far are dropped). Returns 0 or a negative code with err filled. */
int eo_prop_track_load(eo_prop_track_t *pt, PGconn *conn, char *err, size_t errlen) EO_MUST_CHECK;

/* Computes the tracked paths' values of the events recs[idx[k]], k < n, and learns from the
 * dictionary the values it has not cached (one statement when there are any; autocommitted
 * when called outside a transaction). The values stay with the tracker until the next call.
 * Returns 0 or a negative code with err filled. */
int eo_prop_track_values(eo_prop_track_t *pt, PGconn *conn, eo_record_t *const *recs,
                         const size_t *idx, size_t n, char *err, size_t errlen) EO_MUST_CHECK;

/* Appends the deltas of the events recs[idx[k]], k < n (a subset of those of the last
 * eo_prop_track_values call) in one statement; nothing when none has a tracked path. Returns
 * the number of delta rows, or a negative code with err filled. */
long eo_prop_track_write(eo_prop_track_t *pt, PGconn *conn, eo_record_t *const *recs,
                         const size_t *idx, size_t n, char *err, size_t errlen) EO_MUST_CHECK;

#endif
