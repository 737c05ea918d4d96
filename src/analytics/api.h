/* The analytics role's HTTP API (docs/analytics.md, "HTTP API"), used by analytics.c, which
 * owns the route table, the server and readiness:
 *   POST   /analytics/rules                 a new rule (analytics:write)         201
 *   GET    /analytics/rules                 the current versions (events:read)
 *   GET    /analytics/rules/{id}[?version]  one rule, current or a given version
 *   PUT    /analytics/rules/{id}            its next version (analytics:write)   200
 *   DELETE /analytics/rules/{id}            its deletion (analytics:write)       204
 *   GET    /analytics/rules/{id}/windows    its window results, latest revision of each
 *   GET    /analytics/summaries             the summary events of the tenant's rules
 *   POST   /analytics/rules/{id}/backtest   what the rule would have emitted over stored
 *                                           events (events:read: it changes nothing); run by
 *                                           a worker of backtest_pool.h, 429 past its slots
 *   GET    /analytics/stream[?rules]        live window results and summaries (stream.h)
 * The tenant is always the bearer token's: another tenant's rule is 404 like an unknown one,
 * and so is a deleted rule (its rows stay in the database; its summaries stay listed).
 * Rules are written through the database function analytics_rule_write (migration 0006), which
 * makes versions and counts the tenant's rules race-free.
 *
 * Threads: libmicrohttpd's pool threads run the handlers, each with its own PostgreSQL
 * connection (core/tconn.h, statement timeout EVENTOPS_ANALYTICS_TIMEOUT_MS). The API's state
 * is set up by eo_analytics_api_init and read-only afterwards, but for the rule id generator
 * (behind id_lock), the counters (atomics) and the backtests (backtest_pool.h: its own lock and
 * workers, which answer the backtest requests). */
#ifndef EO_ANALYTICS_API_H
#define EO_ANALYTICS_API_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>

#include "access/access.h"
#include "analytics/backtest_pool.h"
#include "analytics/zones.h"
#include "analytics/stream.h"
#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/tconn.h"
#include "domain/rule.h"
#include "domain/uuid7.h"

enum { EO_AAPI_CREATE, EO_AAPI_UPDATE, EO_AAPI_DELETE, EO_AAPI_OPS };
enum { EO_AAPI_INVALID_RULE, EO_AAPI_TOO_MANY_RULES, EO_AAPI_REFUSALS };

typedef struct {
    const eo_config_t *cfg; /* borrowed: outlives the API */
    eo_rule_limits_t limits;
    eo_access_policy_t read;  /* GET: events:read */
    eo_access_policy_t write; /* POST, PUT, DELETE: analytics:write */
    eo_tconn_t conn;          /* PostgreSQL, one per thread */
    bool conn_made;
    pthread_mutex_t id_lock;            /* guards ids */
    eo_uuid7_gen_t ids;                 /* rule ids: UUIDv7, so that rules list in creation order */
    eo_counter_t *changes[EO_AAPI_OPS]; /* eventops_analytics_rules_changes_total{op} */
    eo_counter_t *refused[EO_AAPI_REFUSALS]; /* eventops_analytics_rules_refused_total{reason} */
    char retry_after[24];
    eo_zones_t *zones;               /* the role's zone cache (borrowed): backtested rules' zones */
    eo_backtest_pool_t *backtests;   /* owned */
    eo_analytics_streams_t *streams; /* the live streams: set by the role after init */
} eo_analytics_api_t;

/* Sets up api for cfg: the limits, both access policies over the shared credentials, token keys
 * and rate limiter (borrowed; read.creds etc. point at them), the zone cache (borrowed), the
 * per-thread connections, the backtest workers and the metrics in m. Returns 0 or EO_ENOMEM
 * (EO_EIO when a worker thread cannot start). */
int eo_analytics_api_init(eo_analytics_api_t *api, const eo_config_t *cfg, eo_metrics_t *m,
                          eo_creds_t *creds, eo_keystore_t *keys, eo_ratelimit_t *limiter,
                          eo_zones_t *zones) EO_MUST_CHECK;
/* Ends the backtests still running or queued (answered 503) and joins their workers: after the
 * HTTP server drained and before it is freed, so that no request stays suspended. */
void eo_analytics_api_stop(eo_analytics_api_t *api);
/* Releases what init made (after the HTTP server stopped). */
void eo_analytics_api_done(eo_analytics_api_t *api);

/* This thread's PostgreSQL connection (NULL with the reason in err), and the check after using
 * it (drops it when it broke). */
PGconn *eo_analytics_api_conn(eo_analytics_api_t *api, char *err, size_t errlen);
void eo_analytics_api_conn_check(eo_analytics_api_t *api);

/* on_headers of the routes: admits the request with the read or the write policy (a refusal is
 * answered there) and keeps the token's tenant for the handler. ud is the eo_analytics_api_t. */
bool eo_analytics_api_read_headers(eo_http_req_t *req, void *ud);
bool eo_analytics_api_write_headers(eo_http_req_t *req, void *ud);

/* The handlers (on_request), one per route; ud is the eo_analytics_api_t. */
void eo_analytics_api_create_rule(eo_http_req_t *req, void *ud);
void eo_analytics_api_list_rules(eo_http_req_t *req, void *ud);
void eo_analytics_api_get_rule(eo_http_req_t *req, void *ud);
void eo_analytics_api_update_rule(eo_http_req_t *req, void *ud);
void eo_analytics_api_delete_rule(eo_http_req_t *req, void *ud);
void eo_analytics_api_list_windows(eo_http_req_t *req, void *ud);
void eo_analytics_api_list_summaries(eo_http_req_t *req, void *ud);
void eo_analytics_api_backtest_rule(eo_http_req_t *req, void *ud);
/* GET /analytics/stream: checks rules (1 .. EO_ANALYTICS_STREAM_MAX_RULES ids of the tenant's
 * rules, comma-separated; absent: every rule) and the position to resume from (the
 * Last-Event-ID header, else lastEventId), then opens the stream (stream.h). */
void eo_analytics_api_stream(eo_http_req_t *req, void *ud);

#endif
