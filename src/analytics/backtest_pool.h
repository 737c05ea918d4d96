/* Running rule backtests for the analytics HTTP API (docs/analytics.md, "Backtest"): admission
 * (at most EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT at once in total and
 * EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT_PER_TENANT per tenant), worker threads that read
 * the tenant's stored events from PostgreSQL and run them through the simulation (backtest.h),
 * and the HTTP answer.
 *
 * A backtest may take up to EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS, so it does not hold one of
 * libmicrohttpd's few pool threads: the handler (api.c) takes a slot, suspends the request and
 * submits the job; one of MAX_CONCURRENT workers runs it and answers. Every slot thus has a
 * worker, and a job never waits for another backtest.
 *
 * Reading: one read-only transaction with a cursor over the tenant's events of the rule's type
 * (all types for "*") in the simulation's read range, in (occurred_at, message_id) order,
 * fetched EO_BACKTEST_FETCH_ROWS rows at a time (never all in memory); every statement runs
 * under the backtest timeout (the workers' connections' statement_timeout) and the whole
 * backtest under it as a deadline, checked between fetches and closing ticks (503
 * query_timeout past it).
 *
 * Stopping (eo_backtest_pool_stop, after the HTTP server drained): the statement a running
 * backtest waits for is cancelled (PQcancel) and it ends, and every job still queued is
 * answered, with 503 shutting_down; the workers are joined, so no request stays suspended
 * here.
 *
 * Threads: the slots and the queue behind `lock` (backtest_pool.c); each worker owns its
 * backtest and its PostgreSQL connection (core/tconn.h). */
#ifndef EO_ANALYTICS_BACKTEST_POOL_H
#define EO_ANALYTICS_BACKTEST_POOL_H

#include <stdint.h>

#include "analytics/engine.h"
#include "core/config.h"
#include "core/error.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/ratelimit.h"

#define EO_BACKTEST_FETCH_ROWS 1000 /* rows per FETCH: at most 1000 events' bytes in memory */

typedef struct eo_backtest_pool eo_backtest_pool_t;

/* One admitted backtest. */
typedef struct {
    eo_http_req_t *req; /* suspended; the pool answers it */
    char tenant_id[37]; /* the token's: the slot's and the events' tenant */
    eo_ratelimit_headers_t rl;
    eo_engine_rule_t rule; /* the version to run; its tz borrowed from the role's zones */
    char *rule_json;       /* {"id","version","rule","createdAt"} as GET answers it (owned) */
    int64_t from_us, to_us;
} eo_backtest_job_t;

/* Starts cfg->analytics_backtest_max_concurrent workers (cfg borrowed: it outlives the pool)
 * and registers eventops_analytics_backtests_total{outcome} in m. Returns 0, EO_ENOMEM (or
 * EO_EIO when a thread cannot start). */
int eo_backtest_pool_new(const eo_config_t *cfg, eo_metrics_t *m,
                         eo_backtest_pool_t **out) EO_MUST_CHECK;

/* Takes a slot for tenant_id: 0, or EO_ELIMIT when the tenant (or everyone together) has the
 * most backtests running (counted as outcome "busy"), or EO_EUNAVAIL once stopping. Any thread.
 */
int eo_backtest_pool_acquire(eo_backtest_pool_t *p, const char *tenant_id) EO_MUST_CHECK;
/* Gives back a slot taken by acquire and not submitted. */
void eo_backtest_pool_release(eo_backtest_pool_t *p, const char *tenant_id);

/* Hands job over (its slot taken, its request suspended): a worker runs it, answers the
 * request, gives the slot back and frees the job and its rule_json. Any thread. */
void eo_backtest_pool_submit(eo_backtest_pool_t *p, eo_backtest_job_t *job);

/* Ends the running backtests and answers the queued ones (503), and joins the workers.
 * Idempotent; NULL accepted. */
void eo_backtest_pool_stop(eo_backtest_pool_t *p);
/* Stops (if not yet) and frees. NULL accepted. */
void eo_backtest_pool_free(eo_backtest_pool_t *p);

#endif
