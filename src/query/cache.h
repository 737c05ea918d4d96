/* The query answers' read-through cache in Redis (docs/query.md): GET before a query, SET with
 * a time to live after it. Each thread keeps its own connection. A failure (or a reply slower
 * than the Redis timeout) marks Redis down for the retry interval: meanwhile every call is a
 * miss without asking, so a dead Redis costs nothing per request. */
#ifndef EO_QUERY_CACHE_H
#define EO_QUERY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct eo_qcache eo_qcache_t;

/* url: redis://...; "" makes a cache that is always off. */
int eo_qcache_new(const char *url, int64_t timeout_ms, int64_t retry_ms, eo_qcache_t **out,
                  char *err, size_t errlen) EO_MUST_CHECK;
void eo_qcache_free(eo_qcache_t *c);

/* 1 and *val (malloc'd, NUL-terminated) on a hit, 0 on a miss, EO_EUNAVAIL when Redis failed
 * or is marked down. */
int eo_qcache_get(eo_qcache_t *c, const char *key, char **val, size_t *len);

/* Stores val for ttl_ms; 0 or EO_EUNAVAIL. */
int eo_qcache_set(eo_qcache_t *c, const char *key, const char *val, size_t len, int64_t ttl_ms);

/* "redis" (in use), "down" (failing, answers come from PostgreSQL) or "off". */
const char *eo_qcache_state(eo_qcache_t *c);

#endif
