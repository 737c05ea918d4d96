/* The collector's in-memory view of active write keys (hash -> tenant), reloaded from
 * PostgreSQL every refresh interval by a background thread, and at once (at most every 250 ms)
 * when an unknown key arrives, so that new keys work immediately and revoked keys stop working
 * within one interval. Thread-safe: lookups take a read lock on the current snapshot. */
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

/* Finds the tenant of key. Returns 0 with tenant_id filled, EO_ENOTFOUND, or EO_EUNAVAIL when
 * no key set was ever loaded. */
int eo_write_keys_lookup(eo_write_keys_t *wk, const char *key, size_t len, char tenant_id[37]);

/* True when the last reload succeeded within three refresh intervals. */
bool eo_write_keys_fresh(eo_write_keys_t *wk);

void eo_write_keys_free(eo_write_keys_t *wk);

#endif
