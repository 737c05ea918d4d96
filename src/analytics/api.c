/* The analytics role's HTTP API (see api.h): admission, parameters, SQL and JSON answers.
 * Every statement is parameterised and filters on the token's tenant first; rules are written
 * only through analytics_rule_write (migration 0006). Query-string arguments are collected by
 * the query role's domain code (domain/query_request.h: unknown, repeated, bare and unclean
 * arguments are refused alike), their values checked here. */
#include "analytics/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/limits.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/random.h"
#include "domain/qparams.h"
#include "domain/query_request.h"
#include "domain/record.h"
#include "domain/rfc3339.h"

#define MAX_ANSWER_BYTES (64 << 20)
#define DEFAULT_RANGE_US (INT64_C(86400) * 1000000) /* from, when not given: 24 h before to */
#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000
#define MAX_GROUP_BYTES 1024 /* the windows' group filter */
#define MAX_VERSION 2147483647

/* created_at as RFC 3339 in UTC with microseconds (as eo_rfc3339_format writes). */
#define CREATED_AT "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define R_CREATED_AT "to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* The request's admitted credential. */
typedef struct {
    char tenant_id[37];
    eo_ratelimit_headers_t rl;
} actx_t;

/* ---- set-up ---- */

static void *pg_open(void *ud, char *err, size_t errlen)
{
    const eo_analytics_api_t *api = ud;
    PGconn *c;
    if (eo_pg_connect(api->cfg->pg_dsn, &c, err, errlen) < 0)
        return NULL;
    char setup[160];
    snprintf(setup, sizeof setup,
             "SET statement_timeout = %lld; SET TimeZone = 'UTC'; SET jit = off",
             (long long)api->cfg->analytics_timeout_ms);
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

int eo_analytics_api_init(eo_analytics_api_t *api, const eo_config_t *cfg, eo_metrics_t *m,
                          eo_creds_t *creds, eo_keystore_t *keys, eo_ratelimit_t *limiter,
                          eo_zones_t *zones)
{
    memset(api, 0, sizeof *api);
    api->cfg = cfg;
    api->zones = zones;
    eo_analytics_rule_limits(&api->limits, cfg);
    snprintf(api->retry_after, sizeof api->retry_after, "%lld", (long long)cfg->retry_after_s);
    pthread_mutex_init(&api->id_lock, NULL);
    eo_tconn_ops_t ops = {.open = pg_open, .usable = pg_usable, .close = pg_close, .ud = api};
    if (eo_tconn_init(&api->conn, &ops) < 0) {
        pthread_mutex_destroy(&api->id_lock);
        return EO_ENOMEM;
    }
    api->conn_made = true;
    api->read = (eo_access_policy_t){
        .keys = keys,
        .creds = creds,
        .limiter = limiter,
        .cfg = cfg,
        .scope = "events:read",
        .missing = "send an access token with the events:read scope as 'Authorization: Bearer "
                   "TOKEN'",
        .no_tokens = "the analytics API takes access tokens only ('Authorization: Bearer "
                     "TOKEN'); write keys are for ingestion",
        .who = "client",
    };
    api->write = api->read;
    api->write.scope = "analytics:write";
    api->write.missing = "send an access token with the analytics:write scope as "
                         "'Authorization: Bearer TOKEN'";
    /* both policies count into the same eventops_auth_failures_total{role="analytics"} */
    eo_access_register_metrics(&api->read, m, "analytics");
    eo_access_register_metrics(&api->write, m, "analytics");
    static const char *const ops_names[EO_AAPI_OPS] = {"create", "update", "delete"};
    eo_metrics_counters(m, "eventops_analytics_rules_changes_total",
                        "Rule versions written through the HTTP API, by operation.", "analytics",
                        "op", ops_names, EO_AAPI_OPS, api->changes);
    static const char *const reasons[EO_AAPI_REFUSALS] = {"invalid_rule", "too_many_rules"};
    eo_metrics_counters(m, "eventops_analytics_rules_refused_total",
                        "Rule writes refused: an invalid definition (400), or the tenant's rule "
                        "limit (409).",
                        "analytics", "reason", reasons, EO_AAPI_REFUSALS, api->refused);
    int r = eo_backtest_pool_new(cfg, m, &api->backtests);
    if (r < 0) {
        eo_analytics_api_done(api);
        return r;
    }
    return 0;
}

void eo_analytics_api_stop(eo_analytics_api_t *api)
{
    eo_backtest_pool_stop(api->backtests);
}

void eo_analytics_api_done(eo_analytics_api_t *api)
{
    eo_backtest_pool_free(api->backtests);
    api->backtests = NULL;
    if (api->conn_made)
        eo_tconn_done(&api->conn);
    api->conn_made = false;
    pthread_mutex_destroy(&api->id_lock);
}

PGconn *eo_analytics_api_conn(eo_analytics_api_t *api, char *err, size_t errlen)
{
    return eo_tconn_get(&api->conn, err, errlen);
}

void eo_analytics_api_conn_check(eo_analytics_api_t *api)
{
    eo_tconn_check(&api->conn);
}

/* ---- admission ---- */

static bool admit(const eo_access_policy_t *pol, eo_http_req_t *req)
{
    eo_access_t a;
    if (eo_access_check(pol, eo_http_header(req, "Authorization"), &a) != EO_ACCESS_OK) {
        eo_access_answer(pol, req, &a);
        return false;
    }
    actx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
        return false;
    }
    memcpy(ctx->tenant_id, a.cred.tenant_id, sizeof ctx->tenant_id);
    ctx->rl = a.rl;
    eo_http_set_user(req, ctx, free);
    return true;
}

bool eo_analytics_api_read_headers(eo_http_req_t *req, void *ud)
{
    return admit(&((eo_analytics_api_t *)ud)->read, req);
}

bool eo_analytics_api_write_headers(eo_http_req_t *req, void *ud)
{
    return admit(&((eo_analytics_api_t *)ud)->write, req);
}

/* ---- answers ---- */

/* A JSON answer with the rate-limit headers (and Location when given). */
static void answer(eo_http_req_t *req, unsigned status, const char *body, size_t len,
                   const char *location)
{
    const actx_t *ctx = eo_http_user(req);
    const char *h[] = {"RateLimit-Limit",
                       ctx->rl.limit,
                       "RateLimit-Remaining",
                       ctx->rl.remaining,
                       "RateLimit-Reset",
                       ctx->rl.reset,
                       location ? "Location" : NULL,
                       location,
                       NULL};
    eo_http_respond(req, status, body, len, h);
}

static void unavailable(const eo_analytics_api_t *api, eo_http_req_t *req, const char *code,
                        const char *message)
{
    const char *h[] = {"Retry-After", api->retry_after, NULL};
    eo_http_respond_error(req, 503, code, message, NULL, h);
}

/* 503 for a failed database call: query_timeout for the statement timeout, else
 * database_unavailable. */
static void db_failed(eo_analytics_api_t *api, eo_http_req_t *req, int rc, const char *err,
                      const char *what)
{
    eo_log_warn("analytics: database call failed", "call", what, "error", err, NULL);
    if (rc == EO_ETIMEOUT)
        unavailable(api, req, "query_timeout",
                    "the database took longer than the configured limit; narrow the range or "
                    "retry later");
    else
        unavailable(api, req, "database_unavailable", "the database could not answer; retry later");
}

static void not_found(eo_http_req_t *req)
{
    eo_http_respond_error(req, 404, "not_found", "no rule with this id", NULL, NULL);
}

static void bad_parameter(eo_http_req_t *req, const char *field, const char *message)
{
    eo_http_respond_error(req, 400, "invalid_parameter", message, field, NULL);
}

static void out_of_memory(eo_http_req_t *req)
{
    eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
}

/* Answers with the body built in out (503 when building it ran out of memory) and frees it. */
static void answer_buf(eo_http_req_t *req, unsigned status, eo_buf_t *out, const char *location)
{
    if (eo_buf_error(out) < 0)
        out_of_memory(req);
    else
        answer(req, status, out->data, out->len, location);
    eo_buf_done(out);
}

/* ---- the database ---- */

/* eo_pg_query, with the statement timeout (SQLSTATE 57014) as EO_ETIMEOUT. */
static int query(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
                 char *err, size_t errlen)
{
    int r = eo_pg_query(conn, sql, n, params, res, err, errlen);
    if (r < 0 && strncmp(err, "57014", 5) == 0)
        return EO_ETIMEOUT;
    return r;
}

/* This thread's connection, or NULL after answering 503. */
static PGconn *connection(eo_analytics_api_t *api, eo_http_req_t *req)
{
    char err[256];
    PGconn *conn = eo_analytics_api_conn(api, err, sizeof err);
    if (!conn) {
        eo_log_warn("analytics: cannot connect to PostgreSQL", "error", err, NULL);
        unavailable(api, req, "database_unavailable", "the database is unavailable; retry later");
    }
    return conn;
}

/* ---- parameters ---- */

static bool collect_arg(void *ud, const char *name, const char *value, size_t value_len)
{
    return eo_qargs_add(ud, name, value, value_len);
}

/* Collects the query-string arguments of req against params (space-separated names); answers
 * 400 and returns false on a refused one. */
static bool collect(eo_http_req_t *req, const char *params, eo_qargs_t *a)
{
    const eo_qreq_spec_t spec = {.params = params};
    eo_qargs_init(a, &spec);
    eo_http_query_each(req, collect_arg, a);
    if (a->refused) {
        bad_parameter(req, a->error.field,
                      *params || a->error.field[0] == '\0' ? a->error.message
                                                           : "this endpoint takes no parameters");
        return false;
    }
    return true;
}

static const char *arg(const eo_qargs_t *a, const char *name, size_t *len)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->name[i], name) == 0) {
            *len = a->len[i];
            return a->value[i];
        }
    return NULL;
}

/* A rule id: a UUID in any case, written into out in lower case. */
static bool uuid_arg(const char *s, size_t n, char out[37])
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++)
        out[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i]);
    out[36] = '\0';
    return eo_uuid_valid(out, 36);
}

/* The {id} of the route as a rule id; answers 400 and returns false when it is not a UUID. */
static bool path_id(eo_http_req_t *req, char id[37])
{
    char raw[64];
    if (!eo_http_path_param(req, "id", raw, sizeof raw) || !uuid_arg(raw, strlen(raw), id)) {
        bad_parameter(req, "id", "id must be a rule id (a UUID, as the API gave it)");
        return false;
    }
    return true;
}

/* from and to (RFC 3339; to defaults to now, from to 24 h before to; from before to).
 * Answers 400 and returns false on a bad one. */
static bool range(eo_http_req_t *req, const eo_qargs_t *a, int64_t *from_us, int64_t *to_us)
{
    size_t len = 0;
    const char *v;
    bool has_from = false;
    *to_us = eo_clock_now_us();
    if ((v = arg(a, "from", &len))) {
        if (eo_rfc3339_parse(v, len, from_us) < 0) {
            bad_parameter(req, "from", "from must be an RFC 3339 time, e.g. 2026-03-29T00:00:00Z");
            return false;
        }
        has_from = true;
    }
    if ((v = arg(a, "to", &len)) && eo_rfc3339_parse(v, len, to_us) < 0) {
        bad_parameter(req, "to", "to must be an RFC 3339 time, e.g. 2026-03-30T00:00:00Z");
        return false;
    }
    if (!has_from)
        *from_us = *to_us - DEFAULT_RANGE_US;
    if (*from_us >= *to_us) {
        bad_parameter(req, "from", "from must be before to (default: now)");
        return false;
    }
    return true;
}

/* range(), and limit (1..1000, default 100). */
static bool range_and_limit(eo_http_req_t *req, const eo_qargs_t *a, int64_t *from_us,
                            int64_t *to_us, int64_t *limit)
{
    size_t len = 0;
    const char *v;
    if (!range(req, a, from_us, to_us))
        return false;
    *limit = DEFAULT_LIMIT;
    if ((v = arg(a, "limit", &len)) && eo_q_int(v, len, 1, MAX_LIMIT, limit) < 0) {
        bad_parameter(req, "limit", "limit must be an integer from 1 to 1000");
        return false;
    }
    return true;
}

/* ---- rules ---- */

/* Appends {"id","version","rule","createdAt"}: rule is JSON text. */
static void put_rule(eo_buf_t *b, const char *id, const char *version, const char *rule,
                     size_t rule_len, const char *created_at)
{
    eo_buf_puts(b, "{\"id\":");
    eo_buf_put_json_str(b, id, strlen(id));
    eo_buf_putf(b, ",\"version\":%s,\"rule\":", version);
    eo_buf_put(b, rule, rule_len);
    eo_buf_puts(b, ",\"createdAt\":");
    eo_buf_put_json_str(b, created_at, strlen(created_at));
    eo_buf_putc(b, '}');
}

/* A new rule id (UUIDv7). */
static int new_rule_id(eo_analytics_api_t *api, char out[EO_UUID_STR])
{
    uint8_t rnd[10];
    if (eo_random_bytes(rnd, sizeof rnd) < 0)
        return EO_EIO;
    pthread_mutex_lock(&api->id_lock);
    eo_uuid7_next(&api->ids, eo_clock_now_us() / 1000, rnd, out);
    pthread_mutex_unlock(&api->id_lock);
    return 0;
}

/* Parses the body as a rule and writes its canonical JSON into canon; answers 400 (413 for a
 * rule over the byte limit) and returns false when it is not a valid rule. */
static bool parse_rule(eo_analytics_api_t *api, eo_http_req_t *req, eo_buf_t *canon)
{
    size_t len;
    const char *body = eo_http_body(req, &len);
    eo_rule_t rule;
    eo_event_error_t e;
    memset(&e, 0, sizeof e);
    int r = eo_rule_parse(body, len, &api->limits, &rule, &e);
    if (r < 0) {
        eo_counter_add(api->refused[EO_AAPI_INVALID_RULE], 1);
        if (r == EO_ELIMIT && strcmp(e.code, "too_large") == 0)
            eo_http_respond_error(req, 413, "body_too_large", e.message, NULL, NULL);
        else
            eo_http_respond_error(req, 400, e.code[0] ? e.code : "invalid_rule",
                                  e.message[0] ? e.message : "the rule is not valid", e.field,
                                  NULL);
        return false;
    }
    if (eo_rule_to_json(&rule, canon) < 0) {
        out_of_memory(req);
        return false;
    }
    return true;
}

/* Writes a rule version through analytics_rule_write and answers: create (201, with
 * Location), update (200) or delete (204); 404 for a rule the tenant does not have (or has
 * deleted), 409 too_many_rules past the tenant's limit. */
static void write_rule(eo_analytics_api_t *api, eo_http_req_t *req, int op)
{
    const actx_t *ctx = eo_http_user(req);
    char id[EO_UUID_STR];
    if (op != EO_AAPI_CREATE && !path_id(req, id))
        return;
    if (op == EO_AAPI_CREATE && new_rule_id(api, id) < 0) {
        unavailable(api, req, "overloaded", "no random bytes for a rule id; retry later");
        return;
    }
    eo_qargs_t a;
    if (!collect(req, "", &a))
        return;
    eo_buf_t canon;
    eo_buf_init(&canon, (size_t)api->cfg->analytics_max_rule_bytes * 4 + 4096);
    if (op != EO_AAPI_DELETE && !parse_rule(api, req, &canon)) {
        eo_buf_done(&canon);
        return;
    }
    PGconn *conn = connection(api, req);
    if (!conn) {
        eo_buf_done(&canon);
        return;
    }
    char max[24];
    snprintf(max, sizeof max, "%lld", (long long)api->cfg->analytics_max_rules_per_tenant);
    const char *params[] = {ctx->tenant_id,
                            id,
                            op == EO_AAPI_CREATE ? "true" : "false",
                            op == EO_AAPI_DELETE ? NULL : canon.data,
                            op == EO_AAPI_DELETE ? "true" : "false",
                            max};
    PGresult *res;
    char err[512];
    int r = query(conn,
                  "SELECT status, version, " CREATED_AT " FROM analytics_rule_write("
                  "$1::uuid, $2::uuid, $3::boolean, $4::jsonb, $5::boolean, $6::integer)",
                  6, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    if (r < 0) {
        db_failed(api, req, r, err, "analytics_rule_write");
        eo_buf_done(&canon);
        return;
    }
    const char *status = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    if (!strcmp(status, "not_found")) {
        not_found(req);
    } else if (!strcmp(status, "too_many_rules")) {
        eo_counter_add(api->refused[EO_AAPI_TOO_MANY_RULES], 1);
        char msg[160];
        snprintf(msg, sizeof msg, "the tenant has %s rules, the most allowed; delete one first",
                 max);
        eo_http_respond_error(req, 409, "too_many_rules", msg, NULL, NULL);
    } else if (!strcmp(status, "deleted")) {
        eo_counter_add(api->changes[op], 1);
        answer(req, 204, "", 0, NULL);
        eo_log_info("rule deleted", "tenant_id", ctx->tenant_id, "rule_id", id, NULL);
    } else if (!strcmp(status, "created") || !strcmp(status, "updated")) {
        eo_counter_add(api->changes[op], 1);
        eo_buf_t out;
        eo_buf_init(&out, canon.len + 512);
        put_rule(&out, id, PQgetvalue(res, 0, 1), canon.data, canon.len, PQgetvalue(res, 0, 2));
        char location[64];
        snprintf(location, sizeof location, "/analytics/rules/%s", id);
        answer_buf(req, op == EO_AAPI_CREATE ? 201 : 200, &out,
                   op == EO_AAPI_CREATE ? location : NULL);
        eo_log_info(op == EO_AAPI_CREATE ? "rule created" : "rule updated", "tenant_id",
                    ctx->tenant_id, "rule_id", id, "version", PQgetvalue(res, 0, 1), NULL);
    } else {
        db_failed(api, req, EO_EIO, status, "analytics_rule_write: unexpected answer");
    }
    PQclear(res);
    eo_buf_done(&canon);
}

void eo_analytics_api_create_rule(eo_http_req_t *req, void *ud)
{
    write_rule(ud, req, EO_AAPI_CREATE);
}

void eo_analytics_api_update_rule(eo_http_req_t *req, void *ud)
{
    write_rule(ud, req, EO_AAPI_UPDATE);
}

void eo_analytics_api_delete_rule(eo_http_req_t *req, void *ud)
{
    write_rule(ud, req, EO_AAPI_DELETE);
}

/* Answers the rows (id, version, definition, created_at) of res: {"rules":[...]} when list,
 * else the one rule (404 when there is none). */
static void answer_rules(eo_http_req_t *req, const PGresult *res, bool list)
{
    int n = PQntuples(res);
    if (!list && n != 1) {
        not_found(req);
        return;
    }
    eo_buf_t out;
    eo_buf_init(&out, MAX_ANSWER_BYTES);
    if (list)
        eo_buf_puts(&out, "{\"rules\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            eo_buf_putc(&out, ',');
        const char *def = PQgetvalue(res, i, 2);
        put_rule(&out, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), def, strlen(def),
                 PQgetvalue(res, i, 3));
    }
    if (list)
        eo_buf_puts(&out, "]}");
    answer_buf(req, 200, &out, NULL);
}

void eo_analytics_api_list_rules(eo_http_req_t *req, void *ud)
{
    eo_analytics_api_t *api = ud;
    const actx_t *ctx = eo_http_user(req);
    eo_qargs_t a;
    if (!collect(req, "", &a))
        return;
    PGconn *conn = connection(api, req);
    if (!conn)
        return;
    const char *params[] = {ctx->tenant_id};
    PGresult *res;
    char err[512];
    int r = query(conn,
                  "SELECT rule_id, version, definition::text, " CREATED_AT
                  " FROM analytics_rules_current WHERE tenant_id = $1::uuid AND NOT deleted"
                  " ORDER BY rule_id",
                  1, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    if (r < 0) {
        db_failed(api, req, r, err, "list rules");
        return;
    }
    answer_rules(req, res, true);
    PQclear(res);
}

void eo_analytics_api_get_rule(eo_http_req_t *req, void *ud)
{
    eo_analytics_api_t *api = ud;
    const actx_t *ctx = eo_http_user(req);
    char id[EO_UUID_STR];
    eo_qargs_t a;
    if (!path_id(req, id) || !collect(req, "version", &a))
        return;
    size_t len = 0;
    const char *v = arg(&a, "version", &len);
    int64_t version = 0;
    if (v && eo_q_int(v, len, 1, MAX_VERSION, &version) < 0) {
        bad_parameter(req, "version", "version must be an integer from 1 to 2147483647");
        return;
    }
    PGconn *conn = connection(api, req);
    if (!conn)
        return;
    char vtext[24];
    snprintf(vtext, sizeof vtext, "%lld", (long long)version);
    const char *params[] = {ctx->tenant_id, id, vtext};
    PGresult *res;
    char err[512];
    /* a given version of a rule that is not deleted (a deleted rule is gone from the API) */
    int r = v ? query(conn,
                      "SELECT r.rule_id, r.version, r.definition::text, " R_CREATED_AT
                      " FROM analytics_rules r JOIN analytics_rules_current c"
                      " ON c.tenant_id = r.tenant_id AND c.rule_id = r.rule_id AND NOT c.deleted"
                      " WHERE r.tenant_id = $1::uuid AND r.rule_id = $2::uuid"
                      " AND r.version = $3::integer",
                      3, params, &res, err, sizeof err)
              : query(conn,
                      "SELECT rule_id, version, definition::text, " CREATED_AT
                      " FROM analytics_rules_current WHERE tenant_id = $1::uuid "
                      "AND rule_id = $2::uuid AND NOT deleted",
                      2, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    if (r < 0) {
        db_failed(api, req, r, err, "get rule");
        return;
    }
    answer_rules(req, res, false);
    PQclear(res);
}

/* ---- summaries and window results ---- */

/* Answers {"<key>":[<row 0, column 0>]} where the one row's column holds a JSON array (or
 * NULL for none). */
static void answer_array(eo_http_req_t *req, const char *key, const PGresult *res)
{
    const char *items =
        PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "[]";
    eo_buf_t out;
    eo_buf_init(&out, MAX_ANSWER_BYTES);
    eo_buf_putf(&out, "{\"%s\":", key);
    eo_buf_puts(&out, items);
    eo_buf_putc(&out, '}');
    answer_buf(req, 200, &out, NULL);
}

void eo_analytics_api_list_summaries(eo_http_req_t *req, void *ud)
{
    eo_analytics_api_t *api = ud;
    const actx_t *ctx = eo_http_user(req);
    eo_qargs_t a;
    int64_t from_us, to_us, limit;
    if (!collect(req, "from to ruleId limit", &a) ||
        !range_and_limit(req, &a, &from_us, &to_us, &limit))
        return;
    size_t len = 0;
    const char *v = arg(&a, "ruleId", &len);
    char rule_id[37];
    if (v && !uuid_arg(v, len, rule_id)) {
        bad_parameter(req, "ruleId", "ruleId must be a rule id (a UUID)");
        return;
    }
    PGconn *conn = connection(api, req);
    if (!conn)
        return;
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], lim[24];
    eo_rfc3339_format(from_us, from);
    eo_rfc3339_format(to_us, to);
    snprintf(lim, sizeof lim, "%lld", (long long)limit);
    const char *params[] = {ctx->tenant_id, from, to, lim, v ? rule_id : NULL};
    PGresult *res;
    char err[512];
    int r = query(conn,
                  "SELECT json_agg(body ORDER BY window_start DESC, emitted_at DESC, event_id) "
                  "FROM (SELECT body, window_start, emitted_at, event_id FROM analytics_summaries "
                  " WHERE tenant_id = $1::uuid AND window_start >= $2::timestamptz "
                  " AND window_start < $3::timestamptz "
                  " AND ($5::uuid IS NULL OR rule_id = $5::uuid) "
                  " ORDER BY window_start DESC, emitted_at DESC, event_id LIMIT $4::integer) s",
                  5, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    if (r < 0) {
        db_failed(api, req, r, err, "list summaries");
        return;
    }
    answer_array(req, "summaries", res);
    PQclear(res);
}

void eo_analytics_api_list_windows(eo_http_req_t *req, void *ud)
{
    eo_analytics_api_t *api = ud;
    const actx_t *ctx = eo_http_user(req);
    char id[EO_UUID_STR];
    eo_qargs_t a;
    int64_t from_us, to_us, limit;
    if (!path_id(req, id) || !collect(req, "from to group limit", &a) ||
        !range_and_limit(req, &a, &from_us, &to_us, &limit))
        return;
    size_t glen = 0;
    const char *group = arg(&a, "group", &glen);
    if (group && glen > MAX_GROUP_BYTES) {
        bad_parameter(req, "group", "group must be at most 1024 bytes");
        return;
    }
    PGconn *conn = connection(api, req);
    if (!conn)
        return;
    char from[EO_RFC3339_MAX], to[EO_RFC3339_MAX], lim[24];
    eo_rfc3339_format(from_us, from);
    eo_rfc3339_format(to_us, to);
    snprintf(lim, sizeof lim, "%lld", (long long)limit);
    const char *params[] = {ctx->tenant_id, id, from, to, lim, group};
    PGresult *res;
    char err[512];
    /* the rule must be the tenant's and not deleted; then the latest revision of each window
     * (version, group, start), newest first */
    int r = query(conn,
                  "SELECT CASE WHEN EXISTS (SELECT 1 FROM analytics_rules_current "
                  "  WHERE tenant_id = $1::uuid AND rule_id = $2::uuid AND NOT deleted) "
                  " THEN coalesce((SELECT json_agg(body ORDER BY window_start DESC, group_key, "
                  "   rule_version DESC) FROM ("
                  "   SELECT body, window_start, group_key, rule_version FROM ("
                  "    SELECT DISTINCT ON (rule_version, group_key, window_start) body, "
                  "     window_start, group_key, rule_version FROM analytics_windows "
                  "    WHERE tenant_id = $1::uuid AND rule_id = $2::uuid "
                  "     AND window_start >= $3::timestamptz AND window_start < $4::timestamptz "
                  "     AND ($6::text IS NULL OR group_key = $6::text) "
                  "    ORDER BY rule_version, group_key, window_start, revision DESC) latest "
                  "   ORDER BY window_start DESC, group_key, rule_version DESC "
                  "   LIMIT $5::integer) w), '[]') END",
                  6, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    if (r < 0) {
        db_failed(api, req, r, err, "list windows");
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
        not_found(req);
    else
        answer_array(req, "windows", res);
    PQclear(res);
}

/* ---- backtests ---- */

/* The range of a backtest: range(), not longer than EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S.
 * Answers 400 naming from (the range's start moves with its length) and returns false. */
static bool backtest_range(eo_analytics_api_t *api, eo_http_req_t *req, const eo_qargs_t *a,
                           int64_t *from_us, int64_t *to_us)
{
    if (!range(req, a, from_us, to_us))
        return false;
    int64_t max_s = api->cfg->analytics_backtest_max_range_s;
    if (*to_us - *from_us > max_s * 1000000 || *from_us < EO_RFC3339_MIN_S * 1000000) {
        char msg[200];
        snprintf(
            msg, sizeof msg,
            "the range from..to is longer than %lld s (EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S)",
            (long long)max_s);
        bad_parameter(req, "from", msg);
        return false;
    }
    return true;
}

/* The rule version to backtest (the current one, or `version`) with its definition parsed and
 * its zone loaded into job; answers (404, 409, 503) and returns false when there is none. */
static bool backtest_rule(eo_analytics_api_t *api, eo_http_req_t *req, const char *id,
                          int64_t version, eo_backtest_job_t *job)
{
    PGconn *conn = connection(api, req);
    if (!conn)
        return false;
    char vtext[24];
    snprintf(vtext, sizeof vtext, "%lld", (long long)version);
    const char *params[] = {job->tenant_id, id, version ? vtext : NULL};
    PGresult *res;
    char err[512];
    int r = query(conn,
                  "SELECT r.rule_id, r.version, r.definition::text, " R_CREATED_AT
                  " FROM analytics_rules r JOIN analytics_rules_current c"
                  " ON c.tenant_id = r.tenant_id AND c.rule_id = r.rule_id AND NOT c.deleted"
                  " WHERE r.tenant_id = $1::uuid AND r.rule_id = $2::uuid"
                  " AND r.version = coalesce($3::integer, c.version)",
                  3, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    if (r < 0) {
        db_failed(api, req, r, err, "backtest rule");
        return false;
    }
    bool ok = false;
    eo_buf_t rj;
    eo_buf_init(&rj, EO_RULE_JSON_MAX * 4 + 4096);
    if (PQntuples(res) != 1) {
        not_found(req);
        goto done;
    }
    const char *def = PQgetvalue(res, 0, 2);
    eo_engine_rule_t *er = &job->rule;
    memcpy(er->tenant_id, job->tenant_id, sizeof er->tenant_id);
    memcpy(er->rule_id, id, sizeof er->rule_id);
    er->version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    eo_event_error_t why;
    memset(&why, 0, sizeof why);
    char zerr[256] = "";
    if (eo_rule_parse(def, strlen(def), &api->limits, &er->def, &why) < 0 ||
        (!(er->tz = eo_zones_get(api->zones, er->def.zone, zerr, sizeof zerr)) && zerr[0])) {
        char msg[512];
        snprintf(msg, sizeof msg, "the stored rule cannot run under the current settings: %s",
                 zerr[0] ? zerr : why.message);
        eo_http_respond_error(req, 409, "invalid_rule", msg, zerr[0] ? "window.zone" : why.field,
                              NULL);
        goto done;
    }
    put_rule(&rj, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), def, strlen(def),
             PQgetvalue(res, 0, 3));
    size_t len;
    if (eo_buf_error(&rj) < 0 || !(job->rule_json = eo_buf_steal(&rj, &len))) {
        out_of_memory(req);
        goto done;
    }
    ok = true;
done:
    eo_buf_done(&rj);
    PQclear(res);
    return ok;
}

void eo_analytics_api_backtest_rule(eo_http_req_t *req, void *ud)
{
    eo_analytics_api_t *api = ud;
    const actx_t *ctx = eo_http_user(req);
    char id[EO_UUID_STR];
    eo_qargs_t a;
    int64_t from_us, to_us, version = 0;
    if (!path_id(req, id) || !collect(req, "from to version", &a) ||
        !backtest_range(api, req, &a, &from_us, &to_us))
        return;
    size_t len = 0;
    const char *v = arg(&a, "version", &len);
    if (v && eo_q_int(v, len, 1, MAX_VERSION, &version) < 0) {
        bad_parameter(req, "version", "version must be an integer from 1 to 2147483647");
        return;
    }
    eo_backtest_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        out_of_memory(req);
        return;
    }
    job->req = req;
    memcpy(job->tenant_id, ctx->tenant_id, sizeof job->tenant_id);
    job->rl = ctx->rl;
    job->from_us = from_us;
    job->to_us = to_us;
    if (!backtest_rule(api, req, id, version, job)) {
        free(job->rule_json);
        free(job);
        return;
    }
    int r = eo_backtest_pool_acquire(api->backtests, job->tenant_id);
    if (r < 0) {
        const char *h[] = {"Retry-After",     api->retry_after,      "RateLimit-Limit",
                           ctx->rl.limit,     "RateLimit-Remaining", ctx->rl.remaining,
                           "RateLimit-Reset", ctx->rl.reset,         NULL};
        if (r == EO_ELIMIT)
            eo_http_respond_error(req, 429, "too_many_backtests",
                                  "the most backtests are running (per tenant: "
                                  "EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT_PER_TENANT, in all: "
                                  "EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT); retry when one "
                                  "has answered",
                                  NULL, h);
        else
            eo_http_respond_error(req, 503, "shutting_down",
                                  "the server is shutting down; retry the backtest later", NULL, h);
        free(job->rule_json);
        free(job);
        return;
    }
    eo_http_suspend(req);
    eo_backtest_pool_submit(api->backtests, job); /* job = NULL: now the pool's, which answers */
}

/* ---- the live stream ---- */

/* rules: comma-separated rule ids (any case; repeats count once), 1 .. max, into out in lower
 * case. False for anything else. */
static bool rule_list(const char *v, size_t len, char (*out)[37], size_t max, size_t *n)
{
    *n = 0;
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        char id[37];
        if (!uuid_arg(v + start, i - start, id))
            return false;
        bool seen = false;
        for (size_t k = 0; k < *n && !seen; k++)
            seen = memcmp(out[k], id, 37) == 0;
        if (!seen) {
            if (*n == max)
                return false;
            memcpy(out[(*n)++], id, 37);
        }
        if (i == len)
            return true;
        i++; /* the comma: an id must follow */
    }
}

/* The first of the n rule ids that is not a rule of the tenant (or is deleted) into missing
 * ("" when all are); false after answering 503 when the database cannot tell. */
static bool first_missing_rule(eo_analytics_api_t *api, eo_http_req_t *req, const char *tenant,
                               const char (*ids)[37], size_t n, char missing[37])
{
    missing[0] = '\0';
    PGconn *conn = connection(api, req);
    if (!conn)
        return false;
    eo_buf_t arr;
    eo_buf_init(&arr, (size_t)EO_ANALYTICS_STREAM_MAX_RULES * 37 + 8);
    eo_buf_putc(&arr, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            eo_buf_putc(&arr, ',');
        eo_buf_put(&arr, ids[i], 36);
    }
    eo_buf_putc(&arr, '}');
    if (eo_buf_error(&arr) < 0) {
        eo_buf_done(&arr);
        out_of_memory(req);
        return false;
    }
    const char *params[] = {tenant, arr.data};
    PGresult *res;
    char err[512];
    int r = query(conn,
                  "SELECT r.id::text FROM unnest($2::uuid[]) WITH ORDINALITY AS r(id, i) "
                  "WHERE NOT EXISTS (SELECT 1 FROM analytics_rules_current c "
                  " WHERE c.tenant_id = $1::uuid AND c.rule_id = r.id AND NOT c.deleted) "
                  "ORDER BY r.i LIMIT 1",
                  2, params, &res, err, sizeof err);
    eo_analytics_api_conn_check(api);
    eo_buf_done(&arr);
    if (r < 0) {
        db_failed(api, req, r, err, "stream rules");
        return false;
    }
    if (PQntuples(res) == 1)
        snprintf(missing, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return true;
}

/* One position text of field (len bytes; empty: none) into *pos (allocated; NULL for none).
 * Answers 400 naming field and returns false when it is not an id of the stream, 503 when out
 * of memory. */
static bool parse_position(eo_http_req_t *req, const char *field, const char *text, size_t len,
                           eo_sse_pos_t **pos)
{
    *pos = NULL;
    if (!text || !len)
        return true;
    if (!(*pos = malloc(sizeof **pos))) {
        out_of_memory(req);
        return false;
    }
    if (eo_sse_pos_parse(text, len, *pos) < 0) {
        free(*pos);
        *pos = NULL;
        char msg[160];
        snprintf(msg, sizeof msg,
                 "%s must be the id of an event of this stream (e.g. w12.0.7-s3.4)", field);
        bad_parameter(req, field, msg);
        return false;
    }
    return true;
}

/* The position to resume from: the Last-Event-ID header (EventSource sends it), else the
 * lastEventId parameter; *pos NULL for none (or empty ones). Both are checked when both are
 * given (a bad one is 400 naming it); the header wins. False after answering. */
static bool resume_position(eo_http_req_t *req, const eo_qargs_t *a, eo_sse_pos_t **pos)
{
    size_t qlen = 0;
    const char *header = eo_http_header(req, "Last-Event-ID");
    const char *param = arg(a, "lastEventId", &qlen);
    eo_sse_pos_t *from_param;
    if (!parse_position(req, "lastEventId", param, qlen, &from_param))
        return false;
    if (!parse_position(req, "Last-Event-ID", header, header ? strlen(header) : 0, pos)) {
        free(from_param);
        return false;
    }
    if (*pos)
        free(from_param);
    else
        *pos = from_param;
    return true;
}

void eo_analytics_api_stream(eo_http_req_t *req, void *ud)
{
    eo_analytics_api_t *api = ud;
    const actx_t *ctx = eo_http_user(req);
    eo_qargs_t a;
    if (!collect(req, "rules lastEventId", &a))
        return;
    size_t len = 0, n = 0;
    const char *v = arg(&a, "rules", &len);
    char rules[EO_ANALYTICS_STREAM_MAX_RULES][37];
    if (v && !rule_list(v, len, rules, EO_ANALYTICS_STREAM_MAX_RULES, &n)) {
        bad_parameter(req, "rules",
                      "rules must be 1 to 100 rule ids (UUIDs, as the API gave them) separated "
                      "by commas");
        return;
    }
    eo_sse_pos_t *pos;
    if (!resume_position(req, &a, &pos))
        return;
    char missing[37] = "";
    if (n && !first_missing_rule(api, req, ctx->tenant_id, (const char(*)[37])rules, n, missing)) {
        free(pos);
        return;
    }
    if (missing[0]) {
        free(pos);
        char msg[96];
        snprintf(msg, sizeof msg, "no rule with id %s", missing);
        eo_http_respond_error(req, 404, "not_found", msg, "rules", NULL);
        return;
    }
    const char *h[] = {"RateLimit-Limit",
                       ctx->rl.limit,
                       "RateLimit-Remaining",
                       ctx->rl.remaining,
                       "RateLimit-Reset",
                       ctx->rl.reset,
                       NULL};
    eo_analytics_streams_open(api->streams, req, ctx->tenant_id, (const char(*)[37])rules, n, pos,
                              h);
    free(pos);
}
