/* Query role (see query.h): authentication, parameters, cache, PostgreSQL connections.
 * Threads: MHD's pool threads run the handlers. Each thread keeps its own PostgreSQL
 * connection (thread-specific data, closed when the thread ends); the zone list is loaded
 * once under zones_lock and read-only afterwards. */
#include "query/query.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/access.h"
#include "access/keystore.h"
#include "access/credentials.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/http.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/openapi.h"
#include "core/pg.h"
#include "core/ratelimit.h"
#include "domain/rfc3339.h"
#include "query/cache.h"
#include "query/query_internal.h"

#define MAX_ARGS 16
#define DEFAULT_RANGE_US (INT64_C(7) * 86400 * 1000000)

static const char *const endpoint_names[EP_COUNT_ALL] = {
    "count", "trend", "unique_users", "breakdown", "funnel", "retention", "types", "events"};

enum { CACHE_HIT, CACHE_MISS, CACHE_ERROR };

struct eo_query {
    eo_config_t cfg;
    eo_metrics_t *metrics;
    eo_histogram_t *duration[EP_COUNT_ALL];
    eo_counter_t *cache_c[EP_COUNT_ALL][3];
    eo_access_policy_t access;
    eo_creds_t *creds;
    eo_keystore_t *keys;
    eo_ratelimit_t *limiter;
    eo_qcache_t *cache; /* NULL: EVENTOPS_QUERY_CACHE=off */
    eo_http_server_t *http;
    pthread_key_t conn_key;
    bool conn_key_made;
    pthread_mutex_t zones_lock;
    char **zones; /* sorted; set once, before zones_ready */
    atomic_bool zones_ready;
    size_t nzones;
    char retry_after[16];
};

/* Per-request state, set once the credential is checked. */
typedef struct {
    char tenant_id[37];
    eo_ratelimit_headers_t rl;
} qctx_t;

/* ---- PostgreSQL: one connection per thread ---- */

static void conn_free(void *p)
{
    if (p)
        PQfinish(p);
}

static PGconn *thread_conn(eo_query_t *q, char *err, size_t errlen)
{
    PGconn *c = pthread_getspecific(q->conn_key);
    if (c && PQstatus(c) == CONNECTION_OK)
        return c;
    if (c) {
        PQfinish(c);
        pthread_setspecific(q->conn_key, NULL);
    }
    if (eo_pg_connect(q->cfg.pg_dsn, &c, err, errlen) < 0)
        return NULL;
    char setup[256];
    snprintf(setup, sizeof setup,
             "SET statement_timeout = %lld; SET work_mem = '%lldMB'; SET TimeZone = 'UTC';"
             " SET jit = off; SET default_transaction_read_only = on",
             (long long)q->cfg.query_timeout_ms, (long long)q->cfg.query_work_mem_mb);
    if (eo_pg_exec(c, setup, err, errlen) < 0) {
        PQfinish(c);
        return NULL;
    }
    pthread_setspecific(q->conn_key, c);
    return c;
}

/* Drops this thread's connection when it broke (the next request reconnects). */
static void conn_check(eo_query_t *q, PGconn *c)
{
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        pthread_setspecific(q->conn_key, NULL);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads the zone names PostgreSQL knows (once). */
static int zones_load(eo_query_t *q, PGconn *c, char *err, size_t errlen)
{
    pthread_mutex_lock(&q->zones_lock);
    int rc = 0;
    if (!q->zones) {
        PGresult *res;
        rc = eo_pg_query(c, "SELECT name FROM pg_timezone_names", 0, NULL, &res, err, errlen);
        if (rc == 0) {
            size_t n = (size_t)PQntuples(res);
            char **z = calloc(n ? n : 1, sizeof *z);
            for (size_t i = 0; z && i < n; i++)
                if (!(z[i] = strdup(PQgetvalue(res, (int)i, 0))))
                    rc = EO_ENOMEM;
            if (!z)
                rc = EO_ENOMEM;
            PQclear(res);
            if (rc == 0) {
                qsort(z, n, sizeof *z, cmp_str);
                q->nzones = n;
                q->zones = z;
                atomic_store(&q->zones_ready, true);
            } else if (z) {
                for (size_t i = 0; i < n; i++)
                    free(z[i]);
                free(z);
            }
        }
    }
    pthread_mutex_unlock(&q->zones_lock);
    return rc;
}

static const char *zone_find(eo_query_t *q, const char *name)
{
    char **hit = bsearch(&name, q->zones, q->nzones, sizeof *q->zones, cmp_str);
    return hit ? *hit : NULL;
}

/* ---- authentication ---- */

/* 503 with Retry-After: the database cannot answer now. */
static void unavailable(eo_query_t *q, eo_http_req_t *req, const char *code, const char *what)
{
    const char *h[] = {"Retry-After", q->retry_after, NULL};
    eo_http_respond_error(req, 503, code, what, NULL, h);
}

static bool on_headers(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    eo_access_t a;
    if (eo_access_check(&q->access, eo_http_header(req, "Authorization"), &a) != EO_ACCESS_OK) {
        eo_access_answer(&q->access, req, &a);
        return false;
    }
    qctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
        return false;
    }
    memcpy(ctx->tenant_id, a.cred.tenant_id, sizeof ctx->tenant_id);
    ctx->rl = a.rl;
    eo_http_set_user(req, ctx, free);
    return true;
}

/* ---- parameters ---- */

typedef struct {
    const char *allowed; /* space-separated names */
    const char *name[MAX_ARGS];
    const char *value[MAX_ARGS];
    size_t len[MAX_ARGS];
    size_t n;
    char bad_field[72];
    char bad_msg[160];
} args_t;

static bool name_allowed(const char *allowed, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = allowed; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && memcmp(p, name, n) == 0)
            return true;
        p += w;
        while (*p == ' ')
            p++;
    }
    return false;
}

static bool collect_arg(void *ud, const char *name, const char *value, size_t value_len)
{
    args_t *a = ud;
    snprintf(a->bad_field, sizeof a->bad_field, "%.64s", name);
    for (char *p = a->bad_field; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    if (!name_allowed(a->allowed, name)) {
        snprintf(a->bad_msg, sizeof a->bad_msg, "unknown parameter; this endpoint takes: %s",
                 a->allowed);
        return false;
    }
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->name[i], name) == 0) {
            snprintf(a->bad_msg, sizeof a->bad_msg, "the parameter is given more than once");
            return false;
        }
    if (!value || strlen(value) != value_len || !eo_q_text_ok(value, value_len)) {
        snprintf(a->bad_msg, sizeof a->bad_msg,
                 !value ? "the parameter has no value"
                        : "the value holds a control character or is not UTF-8");
        return false;
    }
    if (a->n == MAX_ARGS) {
        snprintf(a->bad_msg, sizeof a->bad_msg, "too many parameters");
        return false;
    }
    a->name[a->n] = name;
    a->value[a->n] = value;
    a->len[a->n] = value_len;
    a->n++;
    a->bad_field[0] = '\0';
    return true;
}

static const char *arg(const args_t *a, const char *name, size_t *len)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->name[i], name) == 0) {
            if (len)
                *len = a->len[i];
            return a->value[i];
        }
    return NULL;
}

__attribute__((format(printf, 3, 4))) static void bad_param(eo_http_req_t *req, const char *field,
                                                            const char *fmt, ...)
{
    char detail[224], msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s %s", field, detail);
    eo_http_respond_error(req, 400, "invalid_parameter", msg, field, NULL);
}

static const char *const allowed_args[EP_COUNT_ALL] = {
    "eventType from to",
    "eventType interval from to tz",
    "eventType from to interval tz",
    "eventType property from to limit",
    "steps within from to",
    "startEvent returnEvent period periods from to tz",
    "",
    "eventType userId from to limit cursor",
};

/* An event-type-like text parameter: 1..max bytes. */
static bool text_param(eo_http_req_t *req, const args_t *a, const char *name, size_t max,
                       bool required, const char **out)
{
    size_t len;
    const char *v = arg(a, name, &len);
    *out = v;
    if (!v && required) {
        bad_param(req, name, "is required");
        return false;
    }
    if (v && (len == 0 || len > max)) {
        char d[64];
        snprintf(d, sizeof d, "%zu", max);
        bad_param(req, name, "must be 1 to %s bytes", d);
        return false;
    }
    return true;
}

/* Parses and checks the request's parameters into r; answers 400 and returns false on a bad
 * one. */
static bool parse_request(eo_query_t *q, eo_http_req_t *req, endpoint_t ep, qreq_t *r)
{
    args_t a = {.allowed = allowed_args[ep]};
    eo_http_query_each(req, collect_arg, &a);
    if (a.bad_field[0] || a.bad_msg[0]) {
        eo_http_respond_error(req, 400, "invalid_parameter", a.bad_msg, a.bad_field, NULL);
        return false;
    }
    memset(r, 0, sizeof *r);
    r->ep = ep;
    r->cfg = &q->cfg;
    size_t max_type = (size_t)q->cfg.max_event_type_bytes;
    if (!text_param(req, &a, "eventType", max_type, false, &r->event_type))
        return false;
    /* from / to */
    size_t len;
    const char *v;
    bool has_from = false, has_to = false;
    if ((v = arg(&a, "from", &len))) {
        if (eo_rfc3339_parse(v, len, &r->from_us) < 0) {
            bad_param(req, "from", "%s", "must be an RFC 3339 time, e.g. 2026-03-29T00:00:00Z");
            return false;
        }
        has_from = true;
    }
    if ((v = arg(&a, "to", &len))) {
        if (eo_rfc3339_parse(v, len, &r->to_us) < 0) {
            bad_param(req, "to", "%s", "must be an RFC 3339 time, e.g. 2026-03-30T00:00:00Z");
            return false;
        }
        has_to = true;
    }
    if (!has_to) {
        int64_t now = eo_clock_now_us();
        r->to_us = (now / 1000000 + 1) * 1000000; /* the next whole second */
        if (has_from && r->from_us >= r->to_us) {
            bad_param(req, "from", "%s", "must be before to (default: now)");
            return false;
        }
    }
    if (!has_from)
        r->from_us = r->to_us - DEFAULT_RANGE_US;
    if (r->from_us >= r->to_us) {
        bad_param(req, "from", "%s", "must be before to");
        return false;
    }
    /* tz */
    r->tz = "UTC";
    if ((v = arg(&a, "tz", &len))) {
        r->tz = eo_q_zone_shape_ok(v, len) ? zone_find(q, v) : NULL;
        if (!r->tz) {
            bad_param(req, "tz", "%s", "must be an IANA time zone name, e.g. Europe/Berlin");
            return false;
        }
    }
    /* interval / period */
    if ((v = arg(&a, "interval", &len))) {
        if (eo_q_interval(v, len, &r->unit) < 0) {
            bad_param(req, "interval", "%s",
                      "must be minute, hour, day, week or month (or hourly, daily, weekly, "
                      "monthly)");
            return false;
        }
        r->has_unit = true;
    } else if (ep == EP_TREND) {
        r->unit = EO_Q_DAY;
        r->has_unit = true;
    }
    if (ep == EP_RETENTION) {
        r->unit = EO_Q_DAY;
        if ((v = arg(&a, "period", &len)) && eo_q_period(v, len, &r->unit) < 0) {
            bad_param(req, "period", "%s", "must be day or week (or daily, weekly)");
            return false;
        }
        r->has_unit = true;
        r->periods = 7;
        if ((v = arg(&a, "periods", &len)) &&
            eo_q_int(v, len, 1, q->cfg.query_max_periods, &r->periods) < 0) {
            char d[32];
            snprintf(d, sizeof d, "%lld", (long long)q->cfg.query_max_periods);
            bad_param(req, "periods", "must be an integer from 1 to %s", d);
            return false;
        }
        if (!text_param(req, &a, "startEvent", max_type, true, &r->start_event) ||
            !text_param(req, &a, "returnEvent", max_type, true, &r->return_event))
            return false;
    }
    /* limit */
    r->limit = ep == EP_BREAKDOWN ? 10 : 100;
    if ((v = arg(&a, "limit", &len)) &&
        eo_q_int(v, len, 1, q->cfg.query_max_limit, &r->limit) < 0) {
        char d[32];
        snprintf(d, sizeof d, "%lld", (long long)q->cfg.query_max_limit);
        bad_param(req, "limit", "must be an integer from 1 to %s", d);
        return false;
    }
    if (ep == EP_BREAKDOWN) {
        if (!(v = arg(&a, "property", &len))) {
            bad_param(req, "property", "%s", "is required (a path such as plan)");
            return false;
        }
        if (eo_q_property(v, len, r->property_path, sizeof r->property_path) < 0) {
            bad_param(req, "property", "%s",
                      "must be 1 to 4 names joined by '.', each 1 to 64 of A-Z a-z 0-9 _ $ -");
            return false;
        }
        r->property = v;
    }
    if (ep == EP_FUNNEL) {
        if (!(v = arg(&a, "steps", &len)) ||
            eo_q_list(v, len, (size_t)q->cfg.query_max_funnel_steps, max_type, r->steps,
                      r->step_len, &r->nsteps) < 0 ||
            r->nsteps < 2) {
            char d[32];
            snprintf(d, sizeof d, "%lld", (long long)q->cfg.query_max_funnel_steps);
            bad_param(req, "steps", "must list 2 to %s event types, comma-separated", d);
            return false;
        }
        r->within_s = 86400;
        if ((v = arg(&a, "within", &len))) {
            if (eo_q_within(v, len, q->cfg.query_max_within_s, &r->within_s) < 0) {
                char d[32];
                snprintf(d, sizeof d, "%lld", (long long)q->cfg.query_max_within_s);
                bad_param(req, "within",
                          "must be a number and a unit s, m, h, d or w (e.g. 1d), from 1 s to "
                          "%s s",
                          d);
                return false;
            }
        }
    }
    if (ep == EP_EVENTS) {
        if (!text_param(req, &a, "userId", (size_t)q->cfg.max_id_bytes, false, &r->user_id))
            return false;
        if ((v = arg(&a, "cursor", &len))) {
            if (eo_q_cursor_decode(v, len, &r->cursor_us, r->cursor_id, sizeof r->cursor_id) < 0) {
                bad_param(req, "cursor", "%s",
                          "is not a cursor this API gave (pass nextCursor back unchanged)");
                return false;
            }
            r->has_cursor = true;
        }
    }
    return true;
}

/* The cache key: tenant, endpoint, and the SHA-256 of the normalised parameters. */
static int cache_key(const qreq_t *r, char *out, size_t cap)
{
    eo_buf_t b;
    eo_buf_init(&b, 1 << 20);
    bool ranged = r->ep != EP_TYPES; /* types is all-time */
    int rc =
        eo_buf_printf(&b, "v1|%lld|%lld|%s|%s|%d|%lld|%lld|%lld|",
                      (long long)(ranged ? r->from_us : 0), (long long)(ranged ? r->to_us : 0),
                      r->tz ? r->tz : "", r->has_unit ? eo_q_unit_name(r->unit) : "", r->has_unit,
                      (long long)r->limit, (long long)r->periods, (long long)r->within_s);
    const char *texts[] = {r->event_type, r->property, r->start_event, r->return_event};
    for (size_t i = 0; rc == 0 && i < 4; i++) {
        rc = texts[i] ? eo_buf_printf(&b, "%zu:", strlen(texts[i])) : eo_buf_append_str(&b, "-:");
        rc = rc ? rc : texts[i] ? eo_buf_append_str(&b, texts[i]) : 0;
    }
    for (size_t i = 0; rc == 0 && i < r->nsteps; i++) {
        rc = eo_buf_printf(&b, "|%zu:", r->step_len[i]);
        rc = rc ? rc : eo_buf_append(&b, r->steps[i], r->step_len[i]);
    }
    if (rc == 0) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)(b.data ? b.data : ""), b.len, d);
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        snprintf(out, cap, "eo:q:{%s}:%s:%s", r->tenant_id, endpoint_names[r->ep], hex);
    }
    eo_buf_done(&b);
    return rc;
}

static const endpoint_fn endpoint_fns[EP_COUNT_ALL] = {
    eo_q_count,  eo_q_trend,     eo_q_unique_users, eo_q_breakdown,
    eo_q_funnel, eo_q_retention, eo_q_types,        eo_q_events};

static void answer(eo_http_req_t *req, const char *body, size_t len, const char *cache_state,
                   const qctx_t *ctx)
{
    const char *h[] = {"Cache-Control",
                       "no-store",
                       "X-Cache",
                       cache_state,
                       "RateLimit-Limit",
                       ctx->rl.limit,
                       "RateLimit-Remaining",
                       ctx->rl.remaining,
                       "RateLimit-Reset",
                       ctx->rl.reset,
                       NULL};
    eo_http_respond(req, 200, body, len, h);
}

static void handle(eo_http_req_t *req, eo_query_t *q, endpoint_t ep)
{
    int64_t t0 = eo_clock_mono_us();
    qctx_t *ctx = eo_http_user(req);
    char err[512] = "";
    PGconn *conn = NULL;
    if (!atomic_load(&q->zones_ready)) { /* loaded at start; PostgreSQL may have been down then */
        conn = thread_conn(q, err, sizeof err);
        if (!conn || zones_load(q, conn, err, sizeof err) < 0) {
            eo_log_warn("query: cannot load time zones", "error", err, NULL);
            unavailable(q, req, "database_unavailable", "the database is unavailable; retry later");
            return;
        }
    }
    qreq_t r;
    if (!parse_request(q, req, ep, &r))
        return;
    memcpy(r.tenant_id, ctx->tenant_id, sizeof r.tenant_id);
    char key[192];
    bool cacheable = q->cache && ep != EP_EVENTS && cache_key(&r, key, sizeof key) == 0;
    const char *state = "bypass";
    if (cacheable) {
        char *val;
        size_t len;
        int c = eo_qcache_get(q->cache, key, &val, &len);
        eo_counter_add(q->cache_c[ep][c == 1 ? CACHE_HIT : c == 0 ? CACHE_MISS : CACHE_ERROR], 1);
        if (c == 1) {
            answer(req, val, len, "hit", ctx);
            free(val);
            eo_histogram_observe(q->duration[ep], (double)(eo_clock_mono_us() - t0) / 1e6);
            return;
        }
        state = c == 0 ? "miss" : "bypass";
        cacheable = c == 0; /* after a failed lookup, do not wait on Redis a second time */
    }
    if (!conn && !(conn = thread_conn(q, err, sizeof err))) {
        eo_log_warn("query: cannot connect to PostgreSQL", "error", err, NULL);
        unavailable(q, req, "database_unavailable", "the database is unavailable; retry later");
        return;
    }
    eo_buf_t out;
    eo_buf_init(&out, 256 << 20);
    const char *field = NULL;
    int rc = endpoint_fns[ep](conn, &r, &out, &field, err, sizeof err);
    conn_check(q, conn);
    if (rc == EO_ELIMIT) {
        eo_http_respond_error(req, 400, "invalid_parameter", err, field, NULL);
    } else if (rc == EO_ETIMEOUT) {
        eo_log_warn("query: statement timeout", "endpoint", endpoint_names[ep], NULL);
        unavailable(q, req, "query_timeout",
                    "the query took longer than the configured limit; narrow the range");
    } else if (rc < 0) {
        eo_log_warn("query failed", "endpoint", endpoint_names[ep], "error", err, NULL);
        unavailable(q, req, "database_unavailable", "the database could not answer; retry later");
    } else {
        answer(req, out.data, out.len, state, ctx);
        if (cacheable) {
            bool open = r.to_us > eo_clock_now_us() - q->cfg.query_open_window_s * 1000000;
            int64_t ttl =
                open ? q->cfg.query_cache_open_ttl_ms : q->cfg.query_cache_closed_ttl_s * 1000;
            if (eo_qcache_set(q->cache, key, out.data, out.len, ttl) < 0)
                eo_counter_add(q->cache_c[ep][CACHE_ERROR], 1);
        }
    }
    eo_buf_done(&out);
    eo_histogram_observe(q->duration[ep], (double)(eo_clock_mono_us() - t0) / 1e6);
}

#define HANDLER(fn, ep)                                                                            \
    static void fn(eo_http_req_t *req, void *ud)                                                   \
    {                                                                                              \
        handle(req, ud, ep);                                                                       \
    }
HANDLER(on_count, EP_COUNT)
HANDLER(on_trend, EP_TREND)
HANDLER(on_unique_users, EP_UNIQUE_USERS)
HANDLER(on_breakdown, EP_BREAKDOWN)
HANDLER(on_funnel, EP_FUNNEL)
HANDLER(on_retention, EP_RETENTION)
HANDLER(on_types, EP_TYPES)
HANDLER(on_events, EP_EVENTS)

static void on_healthz(eo_http_req_t *req, void *ud)
{
    eo_http_respond(req, 200, "{\"status\":\"ok\"}", 15, NULL);
}

static void on_readyz(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    char err[256];
    PGconn *c = thread_conn(q, err, sizeof err);
    bool pg = false;
    if (c) {
        PGresult *res;
        pg = eo_pg_query(c, "SELECT 1", 0, NULL, &res, err, sizeof err) == 0;
        if (pg)
            PQclear(res);
        conn_check(q, c);
    }
    bool keys = eo_keystore_ready(q->keys);
    bool ready = pg && keys && eo_creds_fresh(q->creds);
    char body[160];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"postgres\":%s,\"tokenKeys\":%s,\"cache\":\"%s\"}",
                     ready ? "ready" : "unavailable", pg ? "true" : "false",
                     keys ? "true" : "false", q->cache ? eo_qcache_state(q->cache) : "off");
    eo_http_respond(req, ready ? 200 : 503, body, (size_t)n, NULL);
}

static const eo_http_route_t routes[] = {
    {"GET", "/events/count", on_headers, on_count, false},
    {"GET", "/events/trend", on_headers, on_trend, false},
    {"GET", "/events/unique-users", on_headers, on_unique_users, false},
    {"GET", "/events/breakdown", on_headers, on_breakdown, false},
    {"GET", "/events/funnel", on_headers, on_funnel, false},
    {"GET", "/events/retention", on_headers, on_retention, false},
    {"GET", "/events/types", on_headers, on_types, false},
    {"GET", "/events", on_headers, on_events, false},
    {"GET", "/healthz", NULL, on_healthz, false},
    {"GET", "/readyz", NULL, on_readyz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
};

int eo_query_start(const eo_config_t *cfg, eo_query_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->auth_jwks_url[0] && !cfg->auth_key_dir[0]) {
        snprintf(err, errlen,
                 "the query role needs a token key source: set EVENTOPS_AUTH_KEY_DIR or "
                 "EVENTOPS_AUTH_JWKS_URL");
        return EO_EINVAL;
    }
    if (strcmp(cfg->query_cache, "on") != 0 && strcmp(cfg->query_cache, "off") != 0) {
        snprintf(err, errlen, "EVENTOPS_QUERY_CACHE must be on or off");
        return EO_EINVAL;
    }
    eo_query_t *q = calloc(1, sizeof *q);
    if (!q)
        return EO_ENOMEM;
    q->cfg = *cfg;
    pthread_mutex_init(&q->zones_lock, NULL);
    snprintf(q->retry_after, sizeof q->retry_after, "%lld", (long long)cfg->retry_after_s);
    int r = EO_ENOMEM;
    if (pthread_key_create(&q->conn_key, conn_free) != 0)
        goto fail;
    q->conn_key_made = true;
    if (!(q->metrics = eo_metrics_new()))
        goto fail;
    char labels[160];
    for (int e = 0; e < EP_COUNT_ALL; e++) {
        snprintf(labels, sizeof labels, "role=\"query\",endpoint=\"%s\"", endpoint_names[e]);
        q->duration[e] =
            eo_metrics_histogram(q->metrics, "eventops_query_duration_seconds",
                                 "Time to answer a query (cache included), by endpoint.", labels,
                                 eo_metrics_latency_buckets, eo_metrics_latency_nbuckets);
        static const char *const results[3] = {"hit", "miss", "error"};
        for (int k = 0; k < 3; k++) {
            snprintf(labels, sizeof labels, "role=\"query\",endpoint=\"%s\",result=\"%s\"",
                     endpoint_names[e], results[k]);
            q->cache_c[e][k] = eo_metrics_counter(
                q->metrics, "eventops_cache_requests_total",
                "Query cache lookups and failed stores, by endpoint and result.", labels);
        }
    }
    q->access = (eo_access_policy_t){
        .cfg = &q->cfg,
        .scope = "events:read",
        .missing = "send an access token with the events:read scope as 'Authorization: Bearer "
                   "TOKEN'",
        .no_tokens = "the query API takes access tokens only ('Authorization: Bearer TOKEN'); "
                     "write keys are for ingestion",
        .who = "client",
    };
    eo_access_register_metrics(&q->access, q->metrics, "query");
    eo_metrics_build_info(q->metrics, "query");
    if ((r = eo_creds_new(cfg->pg_dsn, cfg->write_key_refresh_ms, cfg->credential_lookups_per_s,
                          &q->creds, err, errlen)) < 0)
        goto fail;
    eo_keystore_options_t ko = {
        .key_dir = cfg->auth_key_dir,
        .jwks_url = cfg->auth_jwks_url,
        .refresh_ms = cfg->auth_keys_refresh_ms,
        .min_refetch_ms = cfg->auth_keys_min_refetch_ms,
    };
    if ((r = eo_keystore_new(&ko, &q->keys, err, errlen)) < 0)
        goto fail;
    eo_ratelimit_options_t ro = {cfg->redis_url, cfg->redis_timeout_ms, cfg->redis_retry_ms,
                                 cfg->rate_limit_instances};
    if ((r = eo_ratelimit_new(&ro, &q->limiter, err, errlen)) < 0)
        goto fail;
    if ((r = eo_ratelimit_register_metrics(q->limiter, q->metrics, "query")) < 0)
        goto fail;
    q->access.creds = q->creds;
    q->access.keys = q->keys;
    q->access.limiter = q->limiter;
    if (strcmp(cfg->query_cache, "on") == 0 && !cfg->redis_url[0])
        eo_log_warn("query: EVENTOPS_REDIS_URL is empty, answers are not cached", NULL);
    if (strcmp(cfg->query_cache, "on") == 0 && cfg->redis_url[0] &&
        (r = eo_qcache_new(cfg->redis_url, cfg->redis_timeout_ms, cfg->redis_retry_ms, &q->cache,
                           err, errlen)) < 0)
        goto fail;
    { /* the zone list; when PostgreSQL is down now, the first request loads it */
        char zerr[256];
        PGconn *c = NULL;
        if (eo_pg_connect(cfg->pg_dsn, &c, zerr, sizeof zerr) == 0) {
            if (zones_load(q, c, zerr, sizeof zerr) < 0)
                eo_log_warn("query: cannot load time zones yet", "error", zerr, NULL);
            PQfinish(c);
        } else {
            eo_log_warn("query: PostgreSQL unavailable at start", "error", zerr, NULL);
        }
    }
    eo_http_options_t opt;
    eo_http_options_from_config(&opt, cfg, cfg->query_addr, cfg->query_port, routes,
                                sizeof routes / sizeof routes[0], q);
    opt.threads = (unsigned)cfg->query_threads;
    opt.metrics = q->metrics;
    opt.role = "query";
    if ((r = eo_http_server_start(&opt, &q->http, err, errlen)) < 0)
        goto fail;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)eo_http_server_port(q->http));
    eo_log_info("query listening", "addr", cfg->query_addr, "port", port, "cache",
                q->cache ? "on" : "off", NULL);
    *out = q;
    return 0;
fail:
    eo_query_stop(q);
    return r;
}

uint16_t eo_query_port(const eo_query_t *q)
{
    return eo_http_server_port(q->http);
}

void eo_query_stop(eo_query_t *q)
{
    if (!q)
        return;
    eo_http_server_free(q->http, q->cfg.shutdown_timeout_ms);
    eo_qcache_free(q->cache);
    eo_ratelimit_free(q->limiter);
    eo_keystore_free(q->keys);
    eo_creds_free(q->creds);
    if (q->conn_key_made) {
        conn_free(pthread_getspecific(q->conn_key));
        pthread_key_delete(q->conn_key);
    }
    for (size_t i = 0; i < q->nzones; i++)
        free(q->zones[i]);
    free(q->zones);
    pthread_mutex_destroy(&q->zones_lock);
    eo_metrics_free(q->metrics);
    free(q);
}
