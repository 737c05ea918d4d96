/* Rate limiting with GCRA (the generic cell rate algorithm: a token bucket kept as one
 * "theoretical arrival time" per key). Shared by every instance through Redis: one atomic Lua
 * script on Redis server time takes requests from the bucket. A key that is busy on this
 * instance leases several at once (up to lease_max, and at most a quarter of the burst divided
 * by the instances; the size doubles while leases are used up within lease_ms and falls back to
 * one otherwise) and spends them without a round trip; leased requests not used within lease_ms
 * are dropped. A refusal is remembered until Redis said the next request can pass. When Redis is
 * unreachable or slow, decisions fall back to an in-process limiter (rate and burst divided by
 * the configured instance count), with a log line on each switch; Redis is tried again after
 * the retry interval.
 *
 * With rate r per second and burst b, `b` requests pass at once from rest and over any window
 * of T seconds at most b + r*(T + lease_ms) are admitted (b + r*T when every lease is of one
 * request: lease_max 1, a small burst, or a key that is not busy). Keys are the caller's (they
 * carry the tenant).
 * Threads: any; each thread keeps its own Redis connection. The local table is sharded, each
 * shard behind its own mutex. */
#ifndef EO_CORE_RATELIMIT_H
#define EO_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_ratelimit eo_ratelimit_t;

typedef struct {
    const char *redis_url; /* redis://[:password@]host[:port][/db]; "" = local only */
    int64_t timeout_ms;    /* connect and command timeout */
    int64_t retry_ms;      /* after a Redis failure, stay local this long */
    int64_t instances;     /* local limits are rate/instances, burst/instances */
    int64_t lease_max;     /* the most requests one Redis call leases (1: one call each) */
    int64_t lease_ms;      /* leased requests not used within this are dropped */
} eo_ratelimit_options_t;

typedef struct {
    bool allowed;
    int64_t limit;         /* the burst: RateLimit-Limit */
    int64_t remaining;     /* requests that would pass right now: RateLimit-Remaining */
    int64_t reset_s;       /* seconds until the bucket is full again: RateLimit-Reset */
    int64_t retry_after_s; /* when refused: seconds to wait (>= 1) */
} eo_ratelimit_result_t;

/* The options from cfg's EVENTOPS_REDIS_* and EVENTOPS_RATE_LIMIT_* settings. */
void eo_ratelimit_options_from_config(eo_ratelimit_options_t *opt, const eo_config_t *cfg);

int eo_ratelimit_new(const eo_ratelimit_options_t *opt, eo_ratelimit_t **out, char *err,
                     size_t errlen) EO_MUST_CHECK;

/* Takes one request for key under rate (per second, > 0) and burst (>= 1). Never fails: a
 * Redis problem makes the local limiter decide. */
void eo_ratelimit_take(eo_ratelimit_t *rl, const char *key, double rate, int64_t burst,
                       eo_ratelimit_result_t *res);

/* True while decisions are made by Redis. */
bool eo_ratelimit_shared(eo_ratelimit_t *rl);

/* Counts decisions in m, labelled role="ROLE": eventops_rate_limited_total,
 * eventops_ratelimit_redis_errors_total, eventops_ratelimit_local_decisions_total and the gauge
 * eventops_ratelimit_shared (1 with Redis, 0 local). Call before the first decision. */
int eo_ratelimit_register_metrics(eo_ratelimit_t *rl, eo_metrics_t *m,
                                  const char *role) EO_MUST_CHECK;

/* Frees rl; call after every thread that used it stopped using it. NULL accepted. */
void eo_ratelimit_free(eo_ratelimit_t *rl);

/* The RateLimit-* header values of a decision, for the answer. */
typedef struct {
    char limit[24], remaining[24], reset[24];
} eo_ratelimit_headers_t;

#endif
