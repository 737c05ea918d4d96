/* The analytics role (see analytics.h): starts the engine (runner.h) and the HTTP API (api.h)
 * over one metrics registry, and answers readiness.
 *
 * Order: start makes the credentials, token keys and rate limiter the API admits requests with,
 * the zone cache, then the engine, the live streams' reader (stream.h), then the HTTP server;
 * stop goes backwards, so that no request is in flight once the engine stops: new streams are
 * refused, the server drains (its quiesce ends the open streams, which hold no thread while they
 * wait; backtests in flight answer within the shutdown timeout), the backtests still running
 * are ended (503), then the server stops. Threads:
 * libmicrohttpd's pool threads run the handlers (ud is this role, whose first member is its API:
 * api.c reads ud as an eo_analytics_api_t); the engine runs its own threads. Everything here is set
 * at start and read-only until stop. */
#include "analytics/analytics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/credentials.h"
#include "access/keystore.h"
#include "analytics/api.h"
#include "analytics/runner.h"
#include "analytics/zones.h"
#include "analytics/stream.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/openapi.h"
#include "core/pg.h"
#include "core/ratelimit.h"
#include "domain/rule.h"

struct eo_analytics {
    eo_analytics_api_t api; /* first: the routes' ud is the role, read by api.c as its API */
    bool api_made;
    eo_config_t cfg;
    eo_metrics_t *metrics;
    eo_creds_t *creds;
    eo_keystore_t *keys;
    eo_ratelimit_t *limiter;
    eo_zones_t *zones; /* the rules' time zones, shared by the engine and the API's backtests */
    eo_analytics_runner_t *runner;
    eo_analytics_streams_t *streams;
    eo_http_server_t *http;
};

/* Ready when PostgreSQL answers, the engine is ready, the token keys are loaded and the
 * clients were reloaded recently (as the query role). */
static void on_readyz(eo_http_req_t *req, void *ud)
{
    eo_analytics_t *a = ud;
    char err[256];
    PGconn *c = eo_analytics_api_conn(&a->api, err, sizeof err);
    bool pg = false;
    if (c) {
        PGresult *res;
        pg = eo_pg_query(c, "SELECT 1", 0, NULL, &res, err, sizeof err) == 0;
        if (pg)
            PQclear(res);
        eo_analytics_api_conn_check(&a->api);
    }
    bool engine = eo_analytics_runner_ready(a->runner);
    bool keys = eo_keystore_ready(a->keys);
    bool ready = pg && engine && keys && eo_creds_fresh(a->creds);
    char body[128];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"postgres\":%s,\"engine\":%s,\"tokenKeys\":%s}",
                     ready ? "ready" : "unavailable", pg ? "true" : "false",
                     engine ? "true" : "false", keys ? "true" : "false");
    eo_http_respond(req, ready ? 200 : 503, body, (size_t)n, NULL);
}

/* The routes (test_openapi reads this table from the source and compares it with the
 * OpenAPI document). GET needs events:read, the writes analytics:write; a backtest changes
 * nothing, so it needs events:read (and takes no body). */
static const eo_http_route_t routes[] = {
    {"POST", "/analytics/rules", eo_analytics_api_write_headers, eo_analytics_api_create_rule,
     true},
    {"GET", "/analytics/rules", eo_analytics_api_read_headers, eo_analytics_api_list_rules, false},
    {"GET", "/analytics/rules/{id}", eo_analytics_api_read_headers, eo_analytics_api_get_rule,
     false},
    {"PUT", "/analytics/rules/{id}", eo_analytics_api_write_headers, eo_analytics_api_update_rule,
     true},
    {"DELETE", "/analytics/rules/{id}", eo_analytics_api_write_headers,
     eo_analytics_api_delete_rule, false},
    {"GET", "/analytics/rules/{id}/windows", eo_analytics_api_read_headers,
     eo_analytics_api_list_windows, false},
    {"GET", "/analytics/summaries", eo_analytics_api_read_headers, eo_analytics_api_list_summaries,
     false},
    {"POST", "/analytics/rules/{id}/backtest", eo_analytics_api_read_headers,
     eo_analytics_api_backtest_rule, false},
    {"GET", "/analytics/stream", eo_analytics_api_read_headers, eo_analytics_api_stream, false},
    {"GET", "/healthz", NULL, eo_http_on_healthz, false},
    {"GET", "/readyz", NULL, on_readyz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
};

int eo_analytics_start(const eo_config_t *cfg, eo_analytics_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->auth_jwks_url[0] && !cfg->auth_key_dir[0]) {
        snprintf(err, errlen,
                 "the analytics role needs a token key source: set EVENTOPS_AUTH_KEY_DIR or "
                 "EVENTOPS_AUTH_JWKS_URL");
        return EO_EINVAL;
    }
    eo_analytics_t *a = calloc(1, sizeof *a);
    if (!a)
        return EO_ENOMEM;
    a->cfg = *cfg;
    int r = EO_ENOMEM;
    if (!(a->metrics = eo_metrics_new())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    eo_metrics_build_info(a->metrics, "analytics");
    if ((r = eo_access_services_open(cfg, a->metrics, "analytics", false, &a->creds, &a->keys,
                                     &a->limiter, err, errlen)) < 0)
        goto fail;
    if ((r = eo_zones_new(&a->zones)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((r = eo_analytics_api_init(&a->api, &a->cfg, a->metrics, a->creds, a->keys, a->limiter,
                                   a->zones)) < 0) {
        snprintf(err, errlen,
                 r == EO_ENOMEM ? "out of memory" : "cannot start the backtest workers");
        goto fail;
    }
    a->api_made = true;
    if ((r = eo_analytics_runner_start(&a->cfg, a->metrics, a->zones, &a->runner, err, errlen)) < 0)
        goto fail;
    if ((r = eo_analytics_streams_start(&a->cfg, a->metrics, &a->streams, err, errlen)) < 0)
        goto fail;
    a->api.streams = a->streams;
    eo_http_options_t opt;
    eo_http_options_from_config(&opt, cfg, cfg->analytics_addr, cfg->analytics_port, routes,
                                sizeof routes / sizeof routes[0], a);
    /* a body is one rule: the parser's limit, which is never below EO_RULE_JSON_MAX (every
     * canonical text fits, so what GET answers can be PUT back) */
    opt.max_body_bytes = (size_t)cfg->analytics_max_rule_bytes > EO_RULE_JSON_MAX
                             ? (size_t)cfg->analytics_max_rule_bytes
                             : EO_RULE_JSON_MAX;
    opt.metrics = a->metrics;
    opt.role = "analytics";
    if ((r = eo_http_server_start(&opt, &a->http, err, errlen)) < 0)
        goto fail;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)eo_http_server_port(a->http));
    eo_log_info("analytics listening", "addr", cfg->analytics_addr, "port", port, "group",
                cfg->analytics_group, "instance", cfg->analytics_id, NULL);
    *out = a;
    return 0;
fail:
    eo_analytics_stop(a);
    return r;
}

uint16_t eo_analytics_port(const eo_analytics_t *a)
{
    return eo_http_server_port(a->http);
}

void eo_analytics_stop(eo_analytics_t *a)
{
    if (!a)
        return;
    eo_analytics_streams_close(a->streams); /* new streams 503; quiesce ends the open ones */
    if (a->http) { /* backtests in flight may answer within the drain; the rest get 503 */
        eo_http_server_quiesce(a->http);
        eo_http_server_drain(a->http, a->cfg.shutdown_timeout_ms);
    }
    if (a->api_made)
        eo_analytics_api_stop(&a->api);
    eo_http_server_free(a->http, a->cfg.shutdown_timeout_ms);
    eo_analytics_streams_stop(a->streams);
    eo_analytics_runner_stop(a->runner);
    if (a->api_made)
        eo_analytics_api_done(&a->api);
    eo_zones_free(a->zones);
    eo_access_services_close(a->creds, a->keys, a->limiter);
    eo_metrics_free(a->metrics);
    free(a);
}
