/* The collector's in-memory view of active write keys (hash -> tenant), reloaded from
 * PostgreSQL every refresh interval by a background thread. A key missing from memory is looked
 * up in the database (one indexed query, one at a time), so that a new key works at once;
 * a revoked key stops working within one interval. Thread-safe: lookups take a read lock on
 * the current table. */
#ifndef EO_COLLECTOR_WRITE_KEYS_H
#define EO_COLLECTOR_WRITE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct eo_write_keys eo_write_keys_t;

/* Loads the keys once (failure is not fatal: the refresher keeps trying) and starts the
 * refresher thread. */
int eo_write_keys_new(const char *dsn, int64_t refresh_ms, eo_write_keys_t **out, char *err,
                      size_t errlen) EO_MUST_CHECK;

/* Finds the tenant of key. Returns 0 with tenant_id filled, EO_ENOTFOUND (no such active key),
 * or EO_EUNAVAIL (not in memory and the database cannot tell now). */
int eo_write_keys_lookup(eo_write_keys_t *wk, const char *key, size_t len, char tenant_id[37]);

/* True when the last reload succeeded within three refresh intervals. */
bool eo_write_keys_fresh(eo_write_keys_t *wk);

void eo_write_keys_free(eo_write_keys_t *wk);

#endif
