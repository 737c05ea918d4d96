/* Auth role (see auth.h).
 * Threads: MHD's pool threads run the handlers. The database connection is shared behind
 * db_lock (held for one query, never during argon2); keys come from the keystore; the rate
 * limiter is thread-safe. */
#include "auth/auth.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/keystore.h"
#include "access/secret.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/http.h"
#include "core/log.h"
#include "core/openapi.h"
#include "core/pg.h"
#include "core/random.h"
#include "core/ratelimit.h"
#include "domain/b64.h"
#include "domain/form.h"
#include "domain/jwt.h"

#define FORM_MAX_PAIRS 16
#define AUTH_MAX_BODY 8192
#define CRED_MAX 256

struct eo_auth {
    eo_config_t cfg;
    eo_keystore_t *keys;
    eo_ratelimit_t *limiter;
    eo_http_server_t *http;
    pthread_mutex_t db_lock;
    PGconn *conn;                        /* guarded by db_lock */
    char dummy_hash[EO_SECRET_HASH_MAX]; /* verified for unknown clients: same timing */
    eo_metrics_t *metrics;
    eo_counter_t *issued;
    eo_counter_t *errors[8]; /* by error_names */
};

static const char *const error_names[8] = {
    "invalid_request", "invalid_client",          "unsupported_grant_type", "invalid_scope",
    "rate_limited",    "temporarily_unavailable", "server_error",           "other"};

static const char *const basic_challenge[] = {"WWW-Authenticate", "Basic realm=\"eventops\"",
                                              "Pragma", "no-cache", NULL};
static const char *const no_cache[] = {"Pragma", "no-cache", NULL};

/* Answers an RFC 6749 section 5.2 error (and counts it). */
static void oauth_error(eo_auth_t *a, eo_http_req_t *req, unsigned status, const char *code,
                        const char *description, const char *const *headers)
{
    size_t e = 0;
    while (e < 7 && strcmp(error_names[e], code) != 0)
        e++;
    eo_counter_add(a->errors[e], 1);
    eo_buf_t b;
    eo_buf_init(&b, 4096);
    eo_buf_puts(&b, "{\"error\":");
    eo_buf_put_json_str(&b, code, strlen(code));
    eo_buf_puts(&b, ",\"error_description\":");
    eo_buf_put_json_str(&b, description, strlen(description));
    eo_buf_putc(&b, '}');
    if (!eo_buf_error(&b))
        eo_http_respond(req, status, b.data, b.len, headers ? headers : no_cache);
    else
        eo_http_respond(req, status, "{\"error\":\"server_error\"}", 24, no_cache);
    eo_buf_done(&b);
}

/* Applies the limit for key; answers 429 and returns false when over it. */
static bool within_limit(eo_auth_t *a, eo_http_req_t *req, const char *key, int64_t rate,
                         int64_t burst, const char *what)
{
    eo_ratelimit_result_t rl;
    eo_ratelimit_take(a->limiter, key, (double)rate, burst, &rl);
    if (rl.allowed)
        return true;
    char retry[24], limit[24], reset[24], msg[128];
    snprintf(retry, sizeof retry, "%lld", (long long)rl.retry_after_s);
    snprintf(limit, sizeof limit, "%lld", (long long)rl.limit);
    snprintf(reset, sizeof reset, "%lld", (long long)rl.reset_s);
    const char *h[] = {"Retry-After",
                       retry,
                       "RateLimit-Limit",
                       limit,
                       "RateLimit-Remaining",
                       "0",
                       "RateLimit-Reset",
                       reset,
                       "Pragma",
                       "no-cache",
                       NULL};
    snprintf(msg, sizeof msg, "too many token requests %s; retry after %s s", what, retry);
    oauth_error(a, req, 429, "rate_limited", msg, h);
    return false;
}

/* The source address a token request is limited by: IPv4 as is, IPv6 by its /64 (one
 * subscriber usually holds a whole /64, so single addresses would give unlimited buckets). */
static void source_of(const char *ip, char out[INET6_ADDRSTRLEN + 4])
{
    struct in6_addr a;
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a) == 1) {
        memset(a.s6_addr + 8, 0, 8);
        char text[INET6_ADDRSTRLEN];
        if (inet_ntop(AF_INET6, &a, text, sizeof text)) {
            snprintf(out, INET6_ADDRSTRLEN + 4, "%s/64", text);
            return;
        }
    }
    snprintf(out, INET6_ADDRSTRLEN + 4, "%s", ip);
}

static bool token_on_headers(eo_http_req_t *req, void *ud)
{
    eo_auth_t *a = ud;
    char key[128], source[INET6_ADDRSTRLEN + 4];
    source_of(eo_http_client_ip(req), source);
    snprintf(key, sizeof key, "eo:rl:auth:ip:%s", source);
    if (!within_limit(a, req, key, a->cfg.auth_ip_rate, a->cfg.auth_ip_burst, "from this address"))
        return false;
    const char *ct = eo_http_header(req, "Content-Type");
    size_t n = ct ? strcspn(ct, "; \t") : 0;
    if (!ct || n != 33 || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        oauth_error(a, req, 400, "invalid_request",
                    "the body must be application/x-www-form-urlencoded", NULL);
        return false;
    }
    return true;
}

/* Client credentials from the Basic header (RFC 6749 section 2.3.1: both parts
 * form-urlencoded). Returns 1 when present and well formed, 0 when absent, -1 when malformed. */
static int basic_credentials(const char *h, char id[CRED_MAX], char secret[CRED_MAX])
{
    if (!h)
        return 0;
    if (strncasecmp(h, "Basic ", 6) != 0)
        return -1;
    const char *p = h + 6;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == ' ')
        n--;
    uint8_t raw[2 * CRED_MAX];
    int len = eo_b64_decode(p, n, raw, sizeof raw);
    if (len <= 0)
        return -1;
    const uint8_t *colon = memchr(raw, ':', (size_t)len);
    if (!colon)
        return -1;
    size_t idlen = (size_t)(colon - raw);
    if (idlen == 0 || eo_form_unescape((const char *)raw, idlen, id, CRED_MAX) <= 0 ||
        eo_form_unescape((const char *)colon + 1, (size_t)len - idlen - 1, secret, CRED_MAX) <= 0)
        return -1;
    return 1;
}

typedef struct {
    bool found, revoked;
    char tenant_id[37];
    char secret_hash[EO_SECRET_HASH_MAX];
    char scopes[256]; /* space-separated */
} client_row_t;

/* Looks the client up. Returns 0 (row->found says whether it exists) or EO_EUNAVAIL. */
static int load_client(eo_auth_t *a, const char *client_id, client_row_t *row)
{
    memset(row, 0, sizeof *row);
    char err[512];
    int r = 0;
    pthread_mutex_lock(&a->db_lock);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!a->conn || PQstatus(a->conn) != CONNECTION_OK) {
            PQfinish(a->conn);
            a->conn = NULL;
            if ((r = eo_pg_connect(a->cfg.pg_dsn, &a->conn, err, sizeof err)) < 0)
                break;
        }
        const char *params[] = {client_id};
        PGresult *res;
        r = eo_pg_query(a->conn,
                        "SELECT tenant_id, secret_hash, array_to_string(scopes, ' '), "
                        "revoked_at IS NOT NULL FROM oauth_clients WHERE client_id = $1",
                        1, params, &res, err, sizeof err);
        if (r < 0) {
            PQfinish(a->conn); /* the connection may be broken: reconnect once */
            a->conn = NULL;
            continue;
        }
        if (PQntuples(res) == 1) {
            row->found = true;
            snprintf(row->tenant_id, sizeof row->tenant_id, "%s", PQgetvalue(res, 0, 0));
            snprintf(row->secret_hash, sizeof row->secret_hash, "%s", PQgetvalue(res, 0, 1));
            snprintf(row->scopes, sizeof row->scopes, "%s", PQgetvalue(res, 0, 2));
            row->revoked = PQgetvalue(res, 0, 3)[0] == 't';
        }
        PQclear(res);
        break;
    }
    pthread_mutex_unlock(&a->db_lock);
    if (r < 0) {
        eo_log_warn("auth: client lookup failed", "error", err, NULL);
        return EO_EUNAVAIL;
    }
    return 0;
}

/* The granted scope: every requested scope must be the client's; none requested: all of
 * them. Returns false when a requested scope is not allowed. */
static bool grant_scope(const char *requested, const char *allowed, char out[256])
{
    out[0] = '\0';
    if (!requested || !*requested) {
        snprintf(out, 256, "%s", allowed);
        return true;
    }
    size_t o = 0;
    for (const char *p = requested; *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        size_t n = (size_t)(e - p);
        if (n == 0)
            break;
        char one[64];
        if (n >= sizeof one)
            return false;
        memcpy(one, p, n);
        one[n] = '\0';
        if (!eo_jwt_scope_has(allowed, one))
            return false;
        if (!eo_jwt_scope_has(out, one)) {
            if (o + n + 2 > 256)
                return false;
            if (o)
                out[o++] = ' ';
            memcpy(out + o, one, n + 1);
            o += n;
        }
        p = e;
    }
    return o > 0;
}

static void on_token(eo_http_req_t *req, void *ud)
{
    eo_auth_t *a = ud;
    size_t len;
    const char *body = eo_http_body(req, &len);
    eo_form_t form;
    char err[160];
    if (eo_form_parse(body ? body : "", body ? len : 0, FORM_MAX_PAIRS, &form, err, sizeof err) <
        0) {
        oauth_error(a, req, 400, "invalid_request", err, NULL);
        return;
    }
    for (size_t i = 0; i < form.count; i++) {
        size_t count;
        eo_form_get(&form, form.pairs[i].name, &count);
        if (count > 1) {
            snprintf(err, sizeof err, "the parameter '%.40s' is repeated", form.pairs[i].name);
            oauth_error(a, req, 400, "invalid_request", err, NULL);
            goto done;
        }
    }
    const char *grant = eo_form_get(&form, "grant_type", NULL);
    if (!grant || !*grant) {
        oauth_error(a, req, 400, "invalid_request", "grant_type is missing", NULL);
        goto done;
    }
    if (strcmp(grant, "client_credentials") != 0) {
        oauth_error(a, req, 400, "unsupported_grant_type", "only client_credentials is supported",
                    NULL);
        goto done;
    }
    char id[CRED_MAX], secret[CRED_MAX];
    int basic = basic_credentials(eo_http_header(req, "Authorization"), id, secret);
    const char *form_id = eo_form_get(&form, "client_id", NULL);
    const char *form_secret = eo_form_get(&form, "client_secret", NULL);
    if (basic < 0) {
        oauth_error(a, req, 401, "invalid_client", "the Authorization header is not valid Basic",
                    basic_challenge);
        goto done;
    }
    if (basic > 0 && form_secret) {
        oauth_error(a, req, 400, "invalid_request",
                    "use one client authentication method: Basic or the form, not both", NULL);
        goto done;
    }
    if (basic > 0 && form_id) {
        oauth_error(a, req, 400, "invalid_request",
                    "client_id goes in the Basic header or in the form, not in both", NULL);
        goto done;
    }
    if (basic == 0) {
        if (!form_id && !form_secret) {
            oauth_error(a, req, 401, "invalid_client",
                        "client authentication is missing (HTTP Basic or client_id and "
                        "client_secret)",
                        basic_challenge);
            goto done;
        }
        if (!form_id || !form_secret || !*form_id) {
            oauth_error(a, req, 400, "invalid_request",
                        "client_id and client_secret must be sent together", NULL);
            goto done;
        }
        if (strlen(form_id) >= CRED_MAX || strlen(form_secret) >= CRED_MAX) {
            oauth_error(a, req, 401, "invalid_client", "unknown client or wrong secret",
                        basic_challenge);
            goto done;
        }
        snprintf(id, sizeof id, "%s", form_id);
        snprintf(secret, sizeof secret, "%s", form_secret);
    }
    char key[CRED_MAX + 32];
    snprintf(key, sizeof key, "eo:rl:auth:client:%s", id);
    if (!within_limit(a, req, key, a->cfg.auth_client_rate, a->cfg.auth_client_burst,
                      "for this client"))
        goto done;
    client_row_t row;
    if (load_client(a, id, &row) < 0) {
        const char *h[] = {"Retry-After", "2", "Pragma", "no-cache", NULL};
        oauth_error(a, req, 503, "temporarily_unavailable",
                    "clients cannot be checked right now; retry later", h);
        goto done;
    }
    bool ok = eo_secret_verify(row.found ? row.secret_hash : a->dummy_hash, secret, strlen(secret));
    if (!row.found || !ok || row.revoked) {
        oauth_error(a, req, 401, "invalid_client", "unknown or revoked client, or wrong secret",
                    basic_challenge);
        goto done;
    }
    eo_jwt_claims_t claims = {0};
    if (!grant_scope(eo_form_get(&form, "scope", NULL), row.scopes, claims.scope)) {
        oauth_error(a, req, 400, "invalid_scope",
                    "a requested scope is unknown or not granted to this client", NULL);
        goto done;
    }
    snprintf(claims.sub, sizeof claims.sub, "%.63s", id); /* a stored id is 19 bytes */
    snprintf(claims.tenant_id, sizeof claims.tenant_id, "%s", row.tenant_id);
    uint8_t rnd[12];
    if (eo_random_bytes(rnd, sizeof rnd) < 0) {
        oauth_error(a, req, 500, "server_error", "no randomness", NULL);
        goto done;
    }
    eo_b64url_encode(rnd, sizeof rnd, claims.jti);
    claims.iat = claims.nbf = eo_clock_now_us() / 1000000;
    claims.exp = claims.iat + a->cfg.auth_token_ttl_s;
    eo_jwt_keyset_t *set = eo_keystore_get(a->keys);
    size_t nkeys = eo_jwt_keyset_count(set);
    eo_buf_t out;
    eo_buf_init(&out, 8192);
    int r = nkeys ? 0 : EO_EUNAVAIL;
    if (r == 0) {
        eo_buf_puts(&out, "{\"access_token\":\"");
        r = eo_jwt_sign(&claims, a->cfg.auth_issuer, a->cfg.auth_audience,
                        eo_jwt_keyset_key(set, nkeys - 1), eo_jwt_keyset_kid(set, nkeys - 1), &out);
        eo_buf_putf(&out, "\",\"token_type\":\"Bearer\",\"expires_in\":%lld,\"scope\":",
                    (long long)a->cfg.auth_token_ttl_s);
        eo_buf_put_json_str(&out, claims.scope, strlen(claims.scope));
        eo_buf_putc(&out, '}');
        r = r ? r : eo_buf_error(&out);
    }
    eo_jwt_keyset_unref(set);
    if (r == 0) {
        eo_http_respond(req, 200, out.data, out.len, no_cache);
        eo_counter_add(a->issued, 1);
        eo_log_info("token issued", "client_id", id, "tenant_id", claims.tenant_id, "scope",
                    claims.scope, NULL);
    } else {
        const char *h[] = {"Retry-After", "2", "Pragma", "no-cache", NULL};
        oauth_error(a, req, 503, "temporarily_unavailable", "no signing key is available", h);
    }
    eo_buf_done(&out);
done:
    eo_form_done(&form);
}

static void on_jwks(eo_http_req_t *req, void *ud)
{
    eo_auth_t *a = ud;
    eo_jwt_keyset_t *set = eo_keystore_get(a->keys);
    eo_buf_t out;
    eo_buf_init(&out, 1024 * 1024);
    int r = set ? eo_jwks_write(set, &out) : eo_buf_append_str(&out, "{\"keys\":[]}");
    eo_jwt_keyset_unref(set);
    static const char *const cache[] = {"Cache-Control", "public, max-age=60", NULL};
    if (r == 0)
        eo_http_respond(req, 200, out.data, out.len, cache);
    else
        eo_http_respond_error(req, 503, "unavailable", "the key set cannot be written", NULL, NULL);
    eo_buf_done(&out);
}

/* OAuth 2.0 Authorization Server Metadata (RFC 8414). */
static void on_metadata(eo_http_req_t *req, void *ud)
{
    eo_auth_t *a = ud;
    char base[300];
    if (a->cfg.auth_public_url[0]) {
        size_t n = strlen(a->cfg.auth_public_url);
        while (n > 0 && a->cfg.auth_public_url[n - 1] == '/')
            n--;
        snprintf(base, sizeof base, "%.*s", (int)n, a->cfg.auth_public_url);
    } else {
        bool v6 = strchr(a->cfg.auth_addr, ':') != NULL;
        snprintf(base, sizeof base, "http://%s%s%s:%u", v6 ? "[" : "", a->cfg.auth_addr,
                 v6 ? "]" : "", (unsigned)eo_http_server_port(a->http));
    }
    json_t *doc = json_pack(
        "{s:s, s:s+, s:s+, s:[s], s:[s,s], s:[s,s,s], s:[s], s:[s]}", "issuer", a->cfg.auth_issuer,
        "token_endpoint", base, "/oauth/token", "jwks_uri", base, "/.well-known/jwks.json",
        "grant_types_supported", "client_credentials", "token_endpoint_auth_methods_supported",
        "client_secret_basic", "client_secret_post", "scopes_supported", "events:write",
        "events:read", "analytics:write", "response_types_supported", "token",
        "token_endpoint_auth_signing_alg_values_supported", "EdDSA");
    char *out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (out)
        eo_http_respond(req, 200, out, strlen(out), NULL);
    else
        eo_http_respond_error(req, 503, "unavailable", "out of memory", NULL, NULL);
    free(out);
}

static void on_readyz(eo_http_req_t *req, void *ud)
{
    eo_auth_t *a = ud;
    bool keys = eo_keystore_ready(a->keys);
    client_row_t row;
    bool pg = load_client(a, "cl_0000000000000000", &row) == 0;
    bool redis = eo_ratelimit_shared(a->limiter);
    char body[160];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"signingKeys\":%s,\"postgres\":%s,"
                     "\"rateLimiter\":\"%s\"}",
                     keys && pg ? "ready" : "unavailable", keys ? "true" : "false",
                     pg ? "true" : "false", redis ? "redis" : "local");
    eo_http_respond(req, keys && pg ? 200 : 503, body, (size_t)n, NULL);
}

static const eo_http_route_t routes[] = {
    {"POST", "/oauth/token", token_on_headers, on_token, false},
    {"GET", "/.well-known/jwks.json", NULL, on_jwks, false},
    {"GET", "/.well-known/oauth-authorization-server", NULL, on_metadata, false},
    {"GET", "/healthz", NULL, eo_http_on_healthz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
    {"GET", "/readyz", NULL, on_readyz, false},
};

int eo_auth_start(const eo_config_t *cfg, eo_auth_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->auth_key_dir[0]) {
        snprintf(err, errlen,
                 "EVENTOPS_AUTH_KEY_DIR is not set (create a key with "
                 "`eventops admin create-signing-key --dir DIR`)");
        return EO_EINVAL;
    }
    eo_auth_t *a = calloc(1, sizeof *a);
    if (!a)
        return EO_ENOMEM;
    a->cfg = *cfg;
    pthread_mutex_init(&a->db_lock, NULL);
    if (!(a->metrics = eo_metrics_new())) {
        eo_auth_stop(a);
        return EO_ENOMEM;
    }
    a->issued = eo_metrics_counter(a->metrics, "eventops_auth_tokens_issued_total",
                                   "Access tokens issued.", "role=\"auth\"");
    eo_metrics_counters(a->metrics, "eventops_auth_token_errors_total",
                        "Token requests refused, by OAuth error code.", "auth", "error",
                        error_names, 8, a->errors);
    eo_metrics_build_info(a->metrics, "auth");
    int r = eo_secret_hash("not a secret", 12, a->dummy_hash);
    if (r < 0) {
        snprintf(err, errlen, "argon2id is not available");
        goto fail;
    }
    eo_keystore_options_t ko = {
        .key_dir = cfg->auth_key_dir,
        .jwks_url = "",
        .refresh_ms = cfg->auth_keys_refresh_ms,
        .min_refetch_ms = cfg->auth_keys_min_refetch_ms,
    };
    if ((r = eo_keystore_new(&ko, &a->keys, err, errlen)) < 0)
        goto fail;
    eo_ratelimit_options_t ro;
    eo_ratelimit_options_from_config(&ro, cfg);
    if ((r = eo_ratelimit_new(&ro, &a->limiter, err, errlen)) < 0)
        goto fail;
    if ((r = eo_ratelimit_register_metrics(a->limiter, a->metrics, "auth")) < 0)
        goto fail;
    eo_http_options_t opt;
    eo_http_options_from_config(&opt, cfg, cfg->auth_addr, cfg->auth_port, routes,
                                sizeof routes / sizeof routes[0], a);
    opt.max_body_bytes = AUTH_MAX_BODY; /* a token request is a few short form fields */
    opt.metrics = a->metrics;
    opt.role = "auth";
    if ((r = eo_http_server_start(&opt, &a->http, err, errlen)) < 0)
        goto fail;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)eo_http_server_port(a->http));
    eo_log_info("auth listening", "addr", cfg->auth_addr, "port", port, "key_dir",
                cfg->auth_key_dir, NULL);
    if (!eo_keystore_ready(a->keys))
        eo_log_warn("auth: no signing key yet; create one with `eventops admin "
                    "create-signing-key`",
                    "key_dir", cfg->auth_key_dir, NULL);
    *out = a;
    return 0;
fail:
    eo_auth_stop(a);
    return r;
}

void eo_auth_stop(eo_auth_t *a)
{
    if (!a)
        return;
    eo_http_server_free(a->http, a->cfg.shutdown_timeout_ms);
    eo_keystore_free(a->keys);
    eo_ratelimit_free(a->limiter);
    PQfinish(a->conn);
    eo_metrics_free(a->metrics);
    pthread_mutex_destroy(&a->db_lock);
    free(a);
}
