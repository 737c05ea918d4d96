/* Query role (see query.h): authentication, parameters, cache, PostgreSQL connections; the
 * routes, metrics and dispatch come from the table of endpoints (eo_q_endpoints, endpoints.c).
 * Threads: MHD's pool threads run the handlers. Each thread keeps its own PostgreSQL
 * connection (thread-specific data, closed when the thread ends); the zone list is loaded
 * once under zones_lock and read-only afterwards. */
#include "query/query.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
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
#include "core/tconn.h"
#include "domain/propval.h"
#include "domain/qparams.h"
#include "query/cache.h"
#include "query/profiles.h"
#include "query/query_internal.h"

enum { CACHE_HIT, CACHE_MISS, CACHE_ERROR };

struct eo_query {
    eo_config_t cfg;
    eo_metrics_t *metrics;
    eo_histogram_t *duration[EO_Q_MAX_ENDPOINTS];
    eo_counter_t *cache_c[EO_Q_MAX_ENDPOINTS][3];
    eo_counter_t *source_c[EO_Q_MAX_ENDPOINTS][EO_Q_SOURCES];
    eo_access_policy_t access;
    eo_access_policy_t write_access; /* analytics:write: changes to tracked properties */
    eo_creds_t *creds;
    eo_keystore_t *keys;
    eo_ratelimit_t *limiter;
    eo_qcache_t *cache; /* NULL: EVENTOPS_QUERY_CACHE=off */
    eo_http_server_t *http;
    eo_tconn_t conn; /* PostgreSQL, one per thread; no down window (every request tries) */
    bool conn_made;
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

/* Opens a connection with the role's session settings (core/tconn.h calls it). */
static void *pg_open(void *ud, char *err, size_t errlen)
{
    eo_query_t *q = ud;
    PGconn *c;
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
    return c;
}

static bool pg_usable(const void *c)
{
    return PQstatus(c) == CONNECTION_OK;
}

static void pg_close(void *c)
{
    PQfinish(c);
}

static PGconn *thread_conn(eo_query_t *q, char *err, size_t errlen)
{
    return eo_tconn_get(&q->conn, err, errlen);
}

/* Drops this thread's connection when it broke (the next request reconnects). */
static void conn_check(eo_query_t *q)
{
    eo_tconn_check(&q->conn);
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

/* ---- authentication ---- */

/* 503 with Retry-After: the database cannot answer now. */
static void unavailable(eo_query_t *q, eo_http_req_t *req, const char *code, const char *what)
{
    const char *h[] = {"Retry-After", q->retry_after, NULL};
    eo_http_respond_error(req, 503, code, what, NULL, h);
}

/* Admits a request under pol (token, scope, rate limit) and keeps its tenant. */
static bool admit(const eo_access_policy_t *pol, eo_http_req_t *req)
{
    eo_access_t a;
    if (eo_access_check(pol, eo_http_header(req, "Authorization"), &a) != EO_ACCESS_OK) {
        eo_access_answer(pol, req, &a);
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

static bool on_headers(eo_http_req_t *req, void *ud)
{
    return admit(&((eo_query_t *)ud)->access, req);
}

/* ---- parameters ---- */

static bool collect_arg(void *ud, const char *name, const char *value, size_t value_len)
{
    return eo_qargs_add(ud, name, value, value_len);
}

/* Parses and checks the request's parameters into r (domain/query_request.h); answers 400 and
 * returns false on a bad one. */
static bool parse_request(eo_query_t *q, eo_http_req_t *req, const eo_q_endpoint_t *ep, qreq_t *r)
{
    eo_qargs_t a;
    eo_qargs_init(&a, &ep->spec);
    eo_http_query_each(req, collect_arg, &a);
    const eo_qreq_env_t env = {
        .now_us = eo_clock_now_us(),
        .max_event_type_bytes = q->cfg.max_event_type_bytes,
        .max_id_bytes = q->cfg.max_id_bytes,
        .max_periods = q->cfg.query_max_periods,
        .max_limit = q->cfg.query_max_limit,
        .max_funnel_steps = q->cfg.query_max_funnel_steps,
        .max_within_s = q->cfg.query_max_within_s,
        .max_buckets = q->cfg.query_max_buckets,
        .max_funnel_events = q->cfg.query_max_funnel_events,
        .zones = (const char *const *)q->zones,
        .nzones = q->nzones,
    };
    eo_qreq_error_t error;
    if (eo_qreq_parse(&ep->spec, &a, &env, r, &error) < 0) {
        eo_http_respond_error(req, 400, "invalid_parameter", error.message, error.field, NULL);
        return false;
    }
    return true;
}

/* The cache key: tenant, endpoint, and the SHA-256 of the normalised parameters. */
static int cache_key(const eo_q_endpoint_t *ep, const qreq_t *r, char *out, size_t cap)
{
    eo_buf_t b;
    eo_buf_init(&b, 1 << 20);
    eo_buf_putf(&b, "v1|%lld|%lld|%s|%s|%d|%lld|%lld|%lld|",
                (long long)(r->ranged ? r->from_us : 0), (long long)(r->ranged ? r->to_us : 0),
                r->tz ? r->tz : "", r->has_unit ? eo_q_unit_name(r->unit) : "", r->has_unit,
                (long long)r->limit, (long long)r->periods, (long long)r->within_s);
    const char *texts[] = {r->event_type, r->property, r->start_event, r->return_event};
    for (size_t i = 0; i < 4; i++) {
        if (texts[i]) {
            eo_buf_putf(&b, "%zu:", strlen(texts[i]));
            eo_buf_puts(&b, texts[i]);
        } else {
            eo_buf_puts(&b, "-:");
        }
    }
    for (size_t i = 0; i < r->nsteps; i++) {
        eo_buf_putf(&b, "|%zu:", r->step_len[i]);
        eo_buf_put(&b, r->steps[i], r->step_len[i]);
    }
    int rc = eo_buf_error(&b);
    if (rc == 0) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)(b.data ? b.data : ""), b.len, d);
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        snprintf(out, cap, "eo:q:{%s}:%s:%s", r->tenant_id, ep->name, hex);
    }
    eo_buf_done(&b);
    return rc;
}

static void answer(eo_http_req_t *req, const char *body, size_t len, const char *cache_state,
                   const char *source, const qctx_t *ctx)
{
    const char *h[] = {"Cache-Control",
                       "no-store",
                       "X-Cache",
                       cache_state,
                       "X-Query-Source",
                       source,
                       "RateLimit-Limit",
                       ctx->rl.limit,
                       "RateLimit-Remaining",
                       ctx->rl.remaining,
                       "RateLimit-Reset",
                       ctx->rl.reset,
                       NULL};
    eo_http_respond(req, 200, body, len, h);
}

/* Answers one request to endpoint i of eo_q_endpoints. */
static void handle(eo_http_req_t *req, eo_query_t *q, size_t i)
{
    const eo_q_endpoint_t *ep = &eo_q_endpoints[i];
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
    bool cacheable = q->cache && ep->cacheable && cache_key(ep, &r, key, sizeof key) == 0;
    const char *state = "bypass";
    if (cacheable) {
        char *val;
        size_t len;
        int c = eo_qcache_get(q->cache, key, &val, &len);
        eo_counter_add(q->cache_c[i][c == 1 ? CACHE_HIT : c == 0 ? CACHE_MISS : CACHE_ERROR], 1);
        /* a cached value is "<source>\n<answer>"; anything else (an entry of an older version)
         * counts as a miss */
        const char *nl = c == 1 ? memchr(val, '\n', len < 16 ? len : 16) : NULL;
        if (c == 1 && nl && nl + 1 < val + len && nl[1] == '{') {
            char source[16];
            snprintf(source, sizeof source, "%.*s", (int)(nl - val), val);
            answer(req, nl + 1, len - (size_t)(nl + 1 - val), "hit", source, ctx);
            free(val);
            eo_histogram_observe(q->duration[i], (double)(eo_clock_mono_us() - t0) / 1e6);
            return;
        }
        if (c == 1) { /* not in this version's form: answered anew and stored again */
            free(val);
            c = 0;
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
    eo_q_source_t source = EO_Q_SRC_EVENTS;
    int rc = ep->answer(conn, &r, &out, &source, &field, err, sizeof err);
    conn_check(q);
    if (rc == EO_ELIMIT) {
        eo_http_respond_error(req, 400, "invalid_parameter", err, field, NULL);
    } else if (rc == EO_ETIMEOUT) {
        eo_log_warn("query: statement timeout", "endpoint", ep->name, NULL);
        unavailable(q, req, "query_timeout",
                    "the query took longer than the configured limit; narrow the range");
    } else if (rc < 0) {
        eo_log_warn("query failed", "endpoint", ep->name, "error", err, NULL);
        unavailable(q, req, "database_unavailable", "the database could not answer; retry later");
    } else {
        eo_counter_add(q->source_c[i][source], 1);
        answer(req, out.data, out.len, state, eo_q_source_name(source), ctx);
        if (cacheable) {
            /* the cached value: "<source>\n<answer>" */
            eo_buf_t value;
            eo_buf_init(&value, 256 << 20);
            eo_buf_puts(&value, eo_q_source_name(source));
            eo_buf_putc(&value, '\n');
            eo_buf_put(&value, out.data, out.len);
            bool open = r.to_us > eo_clock_now_us() - q->cfg.query_open_window_s * 1000000;
            int64_t ttl =
                open ? q->cfg.query_cache_open_ttl_ms : q->cfg.query_cache_closed_ttl_s * 1000;
            if (eo_buf_error(&value) ||
                eo_qcache_set(q->cache, key, value.data, value.len, ttl) < 0)
                eo_counter_add(q->cache_c[i][CACHE_ERROR], 1);
            eo_buf_done(&value);
        }
    }
    eo_buf_done(&out);
    eo_histogram_observe(q->duration[i], (double)(eo_clock_mono_us() - t0) / 1e6);
}

/* The callback of every endpoint route: route i is endpoint i of the table (routes_check). */
static void on_endpoint(eo_http_req_t *req, void *ud)
{
    handle(req, ud, eo_http_route_index(req));
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
        conn_check(q);
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

/* ---- tracked properties (ADR-24): GET /properties/tracked, PUT and DELETE
 * /properties/tracked/{path}; reading needs events:read, changing analytics:write ---- */

static bool on_props_read_headers(eo_http_req_t *req, void *ud)
{
    return admit(&((eo_query_t *)ud)->access, req);
}

static bool on_props_write_headers(eo_http_req_t *req, void *ud)
{
    return admit(&((eo_query_t *)ud)->write_access, req);
}

static void props_answer(eo_http_req_t *req, unsigned status, const char *body, size_t len)
{
    const qctx_t *ctx = eo_http_user(req);
    const char *h[] = {"Cache-Control",
                       "no-store",
                       "RateLimit-Limit",
                       ctx->rl.limit,
                       "RateLimit-Remaining",
                       ctx->rl.remaining,
                       "RateLimit-Reset",
                       ctx->rl.reset,
                       NULL};
    eo_http_respond(req, status, body, len, h);
}

static bool first_arg(void *ud, const char *name, const char *value, size_t value_len)
{
    (void)value, (void)value_len;
    snprintf(ud, 72, "%s", name);
    return false;
}

static PGconn *request_conn(eo_query_t *q, eo_http_req_t *req);

/* The request's PostgreSQL connection, or an answer (503) and NULL; 400 when the request has a
 * query string (these operations take no parameters). */
static PGconn *props_conn(eo_query_t *q, eo_http_req_t *req)
{
    char name[72] = "";
    eo_http_query_each(req, first_arg, name);
    if (name[0]) {
        eo_http_respond_error(req, 400, "invalid_parameter", "this operation takes no parameters",
                              name, NULL);
        return NULL;
    }
    return request_conn(q, req);
}

/* The request's PostgreSQL connection, or an answer (503) and NULL. */
static PGconn *request_conn(eo_query_t *q, eo_http_req_t *req)
{
    char err[512];
    PGconn *conn = thread_conn(q, err, sizeof err);
    if (!conn) {
        eo_log_warn("query: cannot connect to PostgreSQL", "error", err, NULL);
        unavailable(q, req, "database_unavailable", "the database is unavailable; retry later");
    }
    return conn;
}

/* The {path} of the request, checked; answers 400 and returns false when it is not a path. */
static bool props_path(eo_http_req_t *req, char path[EO_PROPPATH_MAX + 1])
{
    eo_proppath_t split;
    if (!eo_http_path_param(req, "path", path, EO_PROPPATH_MAX + 1) ||
        eo_proppath_parse(path, strlen(path), &split) < 0) {
        eo_http_respond_error(req, 400, "invalid_parameter",
                              "a property path is 1 to 4 names joined by '.', each 1 to 64 of "
                              "[A-Za-z0-9_$-]",
                              "path", NULL);
        return false;
    }
    return true;
}

/* One tracked property as JSON: {"path","cap","state","values","createdAt"} from a row of
 * props_sql. */
static void put_tracked(eo_buf_t *b, const PGresult *res, int row)
{
    eo_buf_puts(b, "{\"path\":");
    const char *path = PQgetvalue(res, row, 0);
    eo_buf_put_json_str(b, path, strlen(path));
    eo_buf_putf(b, ",\"cap\":%s,\"state\":\"%s\",\"values\":%s,\"createdAt\":\"%s\"}",
                PQgetvalue(res, row, 1), PQgetvalue(res, row, 2), PQgetvalue(res, row, 3),
                PQgetvalue(res, row, 4));
}

static const char props_sql[] =
    "SELECT tp.path, tp.value_cap, tp.state, (SELECT count(*) FROM property_values AS v"
    " WHERE v.tenant_id = tp.tenant_id AND v.path = tp.path),"
    " to_char(tp.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM tracked_properties AS tp WHERE tp.tenant_id = $1::uuid AND ($2::text IS NULL"
    " OR tp.path = $2) ORDER BY tp.path COLLATE \"C\"";

static void props_failed(eo_query_t *q, eo_http_req_t *req, const char *err)
{
    conn_check(q);
    eo_log_warn("query: tracked properties", "error", err, NULL);
    unavailable(q, req, "database_unavailable", "the database could not answer; retry later");
}

static void on_props_list(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    const qctx_t *ctx = eo_http_user(req);
    PGconn *conn = props_conn(q, req);
    if (!conn)
        return;
    char err[512];
    const char *p[] = {ctx->tenant_id, NULL};
    PGresult *res;
    if (eo_pg_query(conn, props_sql, 2, p, &res, err, sizeof err) < 0)
        return props_failed(q, req, err);
    eo_buf_t out;
    eo_buf_init(&out, 16 << 20);
    eo_buf_puts(&out, "{\"trackedProperties\":[");
    for (int i = 0; i < PQntuples(res); i++) {
        if (i)
            eo_buf_putc(&out, ',');
        put_tracked(&out, res, i);
    }
    eo_buf_puts(&out, "]}");
    PQclear(res);
    if (eo_buf_error(&out))
        eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
    else
        props_answer(req, 200, out.data, out.len);
    eo_buf_done(&out);
}

/* The cap of a PUT body: none (or empty) gives the default; else {"cap": 1..max}. Answers 400
 * and returns false on anything else. */
static bool props_cap(eo_query_t *q, eo_http_req_t *req, long long *cap)
{
    *cap = q->cfg.property_value_cap < q->cfg.property_value_cap_max
               ? q->cfg.property_value_cap
               : q->cfg.property_value_cap_max; /* the default, never past the maximum */
    size_t len;
    const char *body = eo_http_body(req, &len);
    if (!body || len == 0)
        return true;
    json_error_t je;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(obj)) {
        json_decref(obj);
        eo_http_respond_error(req, 400, "malformed_json",
                              "the body is a JSON object {\"cap\": N}, or empty", NULL, NULL);
        return false;
    }
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "cap") != 0) {
            eo_http_respond_error(req, 400, "unknown_field", "the body takes only \"cap\"", key,
                                  NULL);
            ok = false;
            break;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > q->cfg.property_value_cap_max) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "cap is an integer from 1 to %lld (EVENTOPS_PROPERTY_VALUE_CAP_MAX)",
                     (long long)q->cfg.property_value_cap_max);
            eo_http_respond_error(req, 400, "invalid_value", msg, "cap", NULL);
            ok = false;
            break;
        }
        *cap = (long long)json_integer_value(v);
    }
    json_decref(obj);
    return ok;
}

/* Runs one write statement (the role's sessions are read-only by default) and answers its one
 * value into out; 0 or the error. */
static int props_write(PGconn *conn, const char *sql, int n, const char *const *p, char *out,
                       size_t outlen, char *err, size_t errlen)
{
    int r = eo_pg_exec(conn, "BEGIN READ WRITE", err, errlen);
    PGresult *res = NULL;
    if (r == 0 && (r = eo_pg_query(conn, sql, n, p, &res, err, errlen)) == 0) {
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    r = r ? r : eo_pg_exec(conn, "COMMIT", err, errlen);
    if (r < 0 && PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        char ignored[128];
        eo_ignore(eo_pg_exec(conn, "ROLLBACK", ignored, sizeof ignored));
    }
    return r;
}

static void on_props_put(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    const qctx_t *ctx = eo_http_user(req);
    char path[EO_PROPPATH_MAX + 1];
    long long cap;
    if (!props_path(req, path) || !props_cap(q, req, &cap))
        return;
    PGconn *conn = props_conn(q, req);
    if (!conn)
        return;
    char err[512], capt[24], maxt[24], outcome[16];
    snprintf(capt, sizeof capt, "%lld", cap);
    snprintf(maxt, sizeof maxt, "%lld", (long long)q->cfg.tracked_properties_max);
    const char *p[] = {ctx->tenant_id, path, capt, maxt};
    if (props_write(conn, "SELECT eventops_track_property($1::uuid, $2, $3::int, $4::int)", 4, p,
                    outcome, sizeof outcome, err, sizeof err) < 0)
        return props_failed(q, req, err);
    if (!strcmp(outcome, "limit")) {
        char msg[160];
        snprintf(msg, sizeof msg, "the tenant tracks %lld properties already (at most)",
                 (long long)q->cfg.tracked_properties_max);
        eo_http_respond_error(req, 409, "too_many_tracked_properties", msg, NULL, NULL);
        return;
    }
    PGresult *res;
    const char *lp[] = {ctx->tenant_id, path};
    if (eo_pg_query(conn, props_sql, 2, lp, &res, err, sizeof err) < 0)
        return props_failed(q, req, err);
    eo_buf_t out;
    eo_buf_init(&out, 1 << 16);
    if (PQntuples(res) == 1)
        put_tracked(&out, res, 0);
    PQclear(res);
    if (out.len > 0) { /* "result" joins the object */
        eo_buf_truncate(&out, out.len - 1);
        eo_buf_putf(&out, ",\"result\":\"%s\"}", outcome);
    }
    if (eo_buf_error(&out) || out.len == 0)
        props_failed(q, req, "the tracked property vanished after it was written");
    else
        props_answer(req, strcmp(outcome, "tracked") ? 200 : 201, out.data, out.len);
    eo_buf_done(&out);
}

static void on_props_delete(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    const qctx_t *ctx = eo_http_user(req);
    char path[EO_PROPPATH_MAX + 1];
    if (!props_path(req, path))
        return;
    PGconn *conn = props_conn(q, req);
    if (!conn)
        return;
    char err[512], was[8];
    const char *p[] = {ctx->tenant_id, path};
    if (props_write(conn, "SELECT eventops_untrack_property($1::uuid, $2)", 2, p, was, sizeof was,
                    err, sizeof err) < 0)
        return props_failed(q, req, err);
    if (strcmp(was, "t") != 0) {
        eo_http_respond_error(req, 404, "not_found", "this property is not tracked", "path", NULL);
        return;
    }
    props_answer(req, 204, "", 0);
}

/* ---- profiles (docs/profiles.md) ---- */

/* The one parameter a profile request may take (groupType, or none: allowed NULL) into value;
 * answers 400 and returns false on any other. */
typedef struct {
    const char *allowed;
    char *value;
    size_t cap;
    char bad[72];
} profile_args_t;

static bool profile_arg(void *ud, const char *name, const char *value, size_t value_len)
{
    profile_args_t *a = ud;
    if (!a->allowed || strcmp(name, a->allowed) != 0 || !value || value_len == 0 ||
        value_len >= a->cap || strlen(value) != value_len || !eo_q_text_ok(value, value_len)) {
        snprintf(a->bad, sizeof a->bad, "%s", name);
        return false;
    }
    memcpy(a->value, value, value_len);
    a->value[value_len] = '\0';
    return true;
}

/* Answers a profile or group lookup: 200 with out, 404 naming field, or 503. */
static void profile_answer(eo_query_t *q, eo_http_req_t *req, int r, const eo_buf_t *out,
                           const char *field, const char *err)
{
    if (r == 0)
        return props_answer(req, 200, out->data, out->len);
    if (r == EO_ENOTFOUND)
        return eo_http_respond_error(req, 404, "not_found",
                                     strcmp(field, "userId") == 0
                                         ? "no profile, alias or event of this user id"
                                         : "no group with this id",
                                     field, NULL);
    if (r == EO_ENOMEM)
        return eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
    conn_check(q);
    eo_log_warn("query: profiles", "error", err, NULL);
    unavailable(q, req, "database_unavailable", "the database could not answer; retry later");
}

/* The {name} of the path into id (1 to EVENTOPS_MAX_ID_BYTES bytes); answers 400 and returns
 * false when it is not one. */
static bool profile_id(eo_query_t *q, eo_http_req_t *req, const char *name, char *id, size_t cap)
{
    size_t max = (size_t)q->cfg.max_id_bytes + 1 < cap ? (size_t)q->cfg.max_id_bytes + 1 : cap;
    if (eo_http_path_param(req, name, id, max) && id[0] && eo_q_text_ok(id, strlen(id)))
        return true;
    char msg[128];
    snprintf(msg, sizeof msg,
             "%s is 1 to %lld bytes (EVENTOPS_MAX_ID_BYTES) of UTF-8 without control characters",
             name, (long long)q->cfg.max_id_bytes);
    eo_http_respond_error(req, 400, "invalid_parameter", msg, name, NULL);
    return false;
}

static void on_profile_get(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    const qctx_t *ctx = eo_http_user(req);
    char id[1024];
    if (!profile_id(q, req, "userId", id, sizeof id))
        return;
    PGconn *conn = props_conn(q, req);
    if (!conn)
        return;
    eo_buf_t out;
    eo_buf_init(&out, (size_t)64 << 20);
    char err[512] = "";
    int r =
        eo_q_profile(conn, ctx->tenant_id, id, q->cfg.profile_aliases_max, &out, err, sizeof err);
    profile_answer(q, req, r, &out, "userId", err);
    eo_buf_done(&out);
}

static void on_group_get(eo_http_req_t *req, void *ud)
{
    eo_query_t *q = ud;
    const qctx_t *ctx = eo_http_user(req);
    char id[1024], type[1024] = "";
    if (!profile_id(q, req, "groupId", id, sizeof id))
        return;
    size_t cap = (size_t)q->cfg.max_id_bytes + 1 < sizeof type ? (size_t)q->cfg.max_id_bytes + 1
                                                               : sizeof type;
    profile_args_t args = {"groupType", type, cap, ""};
    eo_http_query_each(req, profile_arg, &args);
    if (args.bad[0]) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "this operation takes only groupType: 1 to %lld bytes (EVENTOPS_MAX_ID_BYTES) of "
                 "UTF-8 without control characters",
                 (long long)q->cfg.max_id_bytes);
        eo_http_respond_error(req, 400, "invalid_parameter", msg, args.bad, NULL);
        return;
    }
    PGconn *conn = request_conn(q, req);
    if (!conn)
        return;
    eo_buf_t out;
    eo_buf_init(&out, (size_t)64 << 20);
    char err[512] = "";
    int r = eo_q_group(conn, ctx->tenant_id, id, type[0] ? type : NULL, &out, err, sizeof err);
    profile_answer(q, req, r, &out, "groupId", err);
    eo_buf_done(&out);
}

/* The routes: the endpoints of eo_q_endpoints in its order, then the role's own. The HTTP layer
 * tells a handler the index of its route, and test_openapi reads this table from the source to
 * compare it with the OpenAPI document, so the paths are written here as well; routes_check()
 * refuses to start when they differ from the endpoint table's. */
static const eo_http_route_t routes[] = {
    {"GET", "/events/count", on_headers, on_endpoint, false},
    {"GET", "/events/trend", on_headers, on_endpoint, false},
    {"GET", "/events/unique-users", on_headers, on_endpoint, false},
    {"GET", "/events/breakdown", on_headers, on_endpoint, false},
    {"GET", "/events/funnel", on_headers, on_endpoint, false},
    {"GET", "/events/retention", on_headers, on_endpoint, false},
    {"GET", "/events/types", on_headers, on_endpoint, false},
    {"GET", "/events", on_headers, on_endpoint, false},
    {"GET", "/properties/tracked", on_props_read_headers, on_props_list, false},
    {"PUT", "/properties/tracked/{path}", on_props_write_headers, on_props_put, false},
    {"DELETE", "/properties/tracked/{path}", on_props_write_headers, on_props_delete, false},
    {"GET", "/profiles/{userId}", on_props_read_headers, on_profile_get, false},
    {"GET", "/groups/{groupId}", on_props_read_headers, on_group_get, false},
    {"GET", "/healthz", NULL, eo_http_on_healthz, false},
    {"GET", "/readyz", NULL, on_readyz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
};

/* 0 when route i is endpoint i of the table (path and handler) for every endpoint, and no other
 * route is an endpoint's; EO_EINVAL with the first difference in err. */
static int routes_check(char *err, size_t errlen)
{
    size_t nroutes = sizeof routes / sizeof routes[0];
    for (size_t i = 0; i < nroutes; i++) {
        bool endpoint = i < eo_q_nendpoints;
        if (endpoint ? strcmp(routes[i].path, eo_q_endpoints[i].path) != 0 ||
                           routes[i].on_request != on_endpoint
                     : routes[i].on_headers == on_headers) {
            snprintf(err, errlen, "query: route %s does not match the endpoint table (%s)",
                     routes[i].path, endpoint ? eo_q_endpoints[i].path : "no endpoint");
            return EO_EINVAL;
        }
    }
    if (nroutes < eo_q_nendpoints) {
        snprintf(err, errlen, "query: endpoint %s has no route", eo_q_endpoints[nroutes].path);
        return EO_EINVAL;
    }
    return 0;
}

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
    int r = routes_check(err, errlen);
    if (r < 0)
        return r;
    eo_query_t *q = calloc(1, sizeof *q);
    if (!q)
        return EO_ENOMEM;
    q->cfg = *cfg;
    pthread_mutex_init(&q->zones_lock, NULL);
    snprintf(q->retry_after, sizeof q->retry_after, "%lld", (long long)cfg->retry_after_s);
    r = EO_ENOMEM;
    eo_tconn_ops_t ops = {.open = pg_open, .usable = pg_usable, .close = pg_close, .ud = q};
    if (eo_tconn_init(&q->conn, &ops) < 0)
        goto fail;
    q->conn_made = true;
    if (!(q->metrics = eo_metrics_new()))
        goto fail;
    char labels[160];
    for (size_t e = 0; e < eo_q_nendpoints; e++) {
        snprintf(labels, sizeof labels, "role=\"query\",endpoint=\"%s\"", eo_q_endpoints[e].name);
        q->duration[e] =
            eo_metrics_histogram(q->metrics, "eventops_query_duration_seconds",
                                 "Time to answer a query (cache included), by endpoint.", labels,
                                 eo_metrics_latency_buckets, eo_metrics_latency_nbuckets);
        static const char *const results[3] = {"hit", "miss", "error"};
        for (int k = 0; k < 3; k++) {
            snprintf(labels, sizeof labels, "role=\"query\",endpoint=\"%s\",result=\"%s\"",
                     eo_q_endpoints[e].name, results[k]);
            q->cache_c[e][k] = eo_metrics_counter(
                q->metrics, "eventops_cache_requests_total",
                "Query cache lookups and failed stores, by endpoint and result.", labels);
        }
        for (int k = 0; k < EO_Q_SOURCES; k++) {
            snprintf(labels, sizeof labels, "role=\"query\",endpoint=\"%s\",source=\"%s\"",
                     eo_q_endpoints[e].name, eo_q_source_name((eo_q_source_t)k));
            q->source_c[e][k] = eo_metrics_counter(
                q->metrics, "eventops_query_source_total",
                "Answers computed (not from the cache), by endpoint and what answered: rollups, "
                "raw events, user sets, timelines or property rollups.",
                labels);
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
    q->write_access = q->access;
    q->write_access.scope = "analytics:write";
    q->write_access.missing = "send an access token with the analytics:write scope as "
                              "'Authorization: Bearer TOKEN'";
    /* both policies count into the same eventops_auth_failures_total{role="query"} */
    eo_access_register_metrics(&q->access, q->metrics, "query");
    eo_access_register_metrics(&q->write_access, q->metrics, "query");
    eo_metrics_build_info(q->metrics, "query");
    if ((r = eo_access_services_open(cfg, q->metrics, "query", false, &q->creds, &q->keys,
                                     &q->limiter, err, errlen)) < 0)
        goto fail;
    q->access.creds = q->creds;
    q->access.keys = q->keys;
    q->access.limiter = q->limiter;
    q->write_access.creds = q->creds;
    q->write_access.keys = q->keys;
    q->write_access.limiter = q->limiter;
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
    eo_access_services_close(q->creds, q->keys, q->limiter);
    if (q->conn_made) {
        eo_tconn_done(&q->conn);
    }
    for (size_t i = 0; i < q->nzones; i++)
        free(q->zones[i]);
    free(q->zones);
    pthread_mutex_destroy(&q->zones_lock);
    eo_metrics_free(q->metrics);
    free(q);
}
