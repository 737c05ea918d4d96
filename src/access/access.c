/* Admitting a request at a resource server (see access.h). */
#include "access/access.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "access/bearer.h"
#include "core/buf.h"
#include "domain/b64.h"

#define MAX_WRITE_KEY 1024

static const char *const reason_names[EO_ACCESS_REASONS] = {
    "missing_credentials", "malformed_credentials", "invalid_write_key",
    "invalid_token",       "insufficient_scope",    "credentials_unavailable"};

void eo_access_register_metrics(eo_access_policy_t *pol, eo_metrics_t *m, const char *role)
{
    snprintf(pol->retry_after, sizeof pol->retry_after, "%lld", (long long)pol->cfg->retry_after_s);
    eo_metrics_counters(m, "eventops_auth_failures_total",
                        "Requests refused before their body was read, by reason.", role, "reason",
                        reason_names, EO_ACCESS_REASONS, pol->failures);
}

/* Trims spaces around h's value after a scheme of skip bytes; returns the start, length in n. */
static const char *credential_of(const char *h, size_t skip, size_t *n)
{
    const char *k = h + skip;
    while (*k == ' ')
        k++;
    size_t len = strlen(k);
    while (len > 0 && k[len - 1] == ' ')
        len--;
    *n = len;
    return k;
}

/* Extracts a write key from Bearer KEY or Basic base64(KEY[:]). Returns 0, or EO_EINVAL. */
static int write_key_of(const char *h, char *key, size_t cap, size_t *len)
{
    size_t n;
    if (!strncasecmp(h, "Bearer ", 7)) {
        const char *k = credential_of(h, 7, &n);
        if (n == 0 || n >= cap)
            return EO_EINVAL;
        memcpy(key, k, n);
        *len = n;
        return 0;
    }
    if (!strncasecmp(h, "Basic ", 6)) {
        const char *k = credential_of(h, 6, &n);
        int d = eo_b64_decode(k, n, (uint8_t *)key, cap);
        if (d <= 0)
            return EO_EINVAL;
        char *colon = memchr(key, ':', (size_t)d);
        *len = colon ? (size_t)(colon - key) : (size_t)d;
        return *len == 0 ? EO_EINVAL : 0;
    }
    return EO_EINVAL;
}

static eo_access_verdict_t refuse(eo_access_t *out, eo_access_verdict_t v, const char *why)
{
    snprintf(out->why, sizeof out->why, "%s", why);
    return out->verdict = v;
}

/* The credential of a token: verified, of the scope, its client active and of its tenant. */
static eo_access_verdict_t token(const eo_access_policy_t *pol, const char *tok, size_t n,
                                 eo_access_t *out)
{
    if (!pol->keys)
        return refuse(out, EO_ACCESS_INVALID_TOKEN, pol->no_tokens);
    switch (eo_bearer_authorize(pol->keys, pol->cfg, pol->creds, tok, n, pol->scope, &out->cred,
                                out->why, sizeof out->why)) {
    case EO_BEARER_OK:
        return EO_ACCESS_OK;
    case EO_BEARER_SCOPE:
        return out->verdict = EO_ACCESS_SCOPE;
    case EO_BEARER_UNAVAILABLE:
        return out->verdict = EO_ACCESS_UNAVAILABLE;
    default:
        return out->verdict = EO_ACCESS_INVALID_TOKEN;
    }
}

/* The credential of a write key's text. */
static eo_access_verdict_t known_key(const eo_access_policy_t *pol, const char *key, size_t len,
                                     eo_access_t *out)
{
    int r = eo_creds_write_key(pol->creds, key, len, &out->cred);
    if (r == EO_EUNAVAIL)
        return refuse(out, EO_ACCESS_UNAVAILABLE,
                      "write keys cannot be checked right now; retry later");
    if (r < 0)
        return refuse(out, EO_ACCESS_INVALID_KEY, "unknown or revoked write key");
    return EO_ACCESS_OK;
}

/* The credential of the write key of an Authorization header. */
static eo_access_verdict_t write_key(const eo_access_policy_t *pol, const char *h, eo_access_t *out)
{
    char key[MAX_WRITE_KEY];
    size_t len = 0;
    if (strlen(h) > MAX_WRITE_KEY || write_key_of(h, key, sizeof key, &len) < 0)
        return refuse(out, EO_ACCESS_MALFORMED,
                      "the Authorization header is not 'Bearer TOKEN', 'Bearer KEY' or "
                      "'Basic base64'");
    return known_key(pol, key, len, out);
}

/* One request from the credential's limit (its own rate and burst, else the defaults), keyed
 * eo:rl:{tenant}:<client|wk>:<id>. */
static eo_access_verdict_t rate_limit(const eo_access_policy_t *pol, const char *kind,
                                      eo_access_t *out)
{
    const eo_cred_t *cred = &out->cred;
    char key[128];
    snprintf(key, sizeof key, "eo:rl:{%s}:%s:%s", cred->tenant_id, kind, cred->id);
    eo_ratelimit_result_t res;
    eo_ratelimit_take(pol->limiter, key,
                      (double)(cred->rate > 0 ? cred->rate : pol->cfg->rate_limit_rate),
                      cred->burst > 0 ? cred->burst : pol->cfg->rate_limit_burst, &res);
    eo_fmt_i64(out->rl.limit, res.limit); /* per request: not printf */
    eo_fmt_i64(out->rl.remaining, res.remaining);
    eo_fmt_i64(out->rl.reset, res.reset_s);
    if (res.allowed)
        return out->verdict = EO_ACCESS_OK;
    snprintf(out->retry, sizeof out->retry, "%lld", (long long)res.retry_after_s);
    snprintf(out->why, sizeof out->why, "too many requests for this %s; retry after %s s", pol->who,
             out->retry);
    return out->verdict = EO_ACCESS_LIMITED;
}

eo_access_verdict_t eo_access_check(const eo_access_policy_t *pol, const char *authorization,
                                    eo_access_t *out)
{
    memset(out, 0, sizeof *out);
    if (!authorization || !*authorization)
        return refuse(out, EO_ACCESS_MISSING, pol->missing);
    size_t n;
    const char *tok = eo_bearer_jwt(authorization, &n);
    if (tok) {
        if (token(pol, tok, n, out) != EO_ACCESS_OK)
            return out->verdict;
        return rate_limit(pol, "client", out);
    }
    if (!pol->write_keys)
        return refuse(out, EO_ACCESS_INVALID_TOKEN, pol->no_tokens);
    if (write_key(pol, authorization, out) != EO_ACCESS_OK)
        return out->verdict;
    return rate_limit(pol, "wk", out);
}

eo_access_verdict_t eo_access_check_key(const eo_access_policy_t *pol, const char *key, size_t len,
                                        const char *field, eo_access_t *out)
{
    memset(out, 0, sizeof *out);
    out->field = field;
    if (!pol->write_keys)
        return refuse(out, EO_ACCESS_INVALID_KEY, "write keys are not taken here");
    if (len == 0)
        return refuse(out, EO_ACCESS_MISSING, pol->missing);
    if (len >= MAX_WRITE_KEY)
        return refuse(out, EO_ACCESS_MALFORMED, "the write key is longer than a write key can be");
    if (known_key(pol, key, len, out) != EO_ACCESS_OK)
        return out->verdict;
    return rate_limit(pol, "wk", out);
}

/* 401 invalid_token with the RFC 6750 challenge naming why. */
static void refuse_token(eo_http_req_t *req, const char *why)
{
    char challenge[320], clean[200];
    snprintf(clean, sizeof clean, "%s", why);
    for (char *p = clean; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '\'';
    snprintf(challenge, sizeof challenge,
             "Bearer realm=\"eventops\", error=\"invalid_token\", error_description=\"%s\"", clean);
    const char *h[] = {"WWW-Authenticate", challenge, NULL};
    eo_http_respond_error(req, 401, "invalid_token", why, "Authorization", h);
}

const char *eo_access_refusal(const eo_access_policy_t *pol, const eo_access_t *a)
{
    if (a->verdict < EO_ACCESS_REASONS) {
        eo_counter_add(pol->failures[a->verdict], 1);
        return reason_names[a->verdict];
    }
    return a->verdict == EO_ACCESS_LIMITED ? "rate_limited" : "ok";
}

void eo_access_answer(const eo_access_policy_t *pol, eo_http_req_t *req, const eo_access_t *a)
{
    if (a->verdict < EO_ACCESS_REASONS)
        eo_counter_add(pol->failures[a->verdict], 1);
    /* the schemes a client may use, named in every 401 but invalid_token's own challenge */
    const char *schemes = pol->write_keys ? "Bearer realm=\"eventops\", Basic realm=\"eventops\""
                                          : "Bearer realm=\"eventops\"";
    char challenge[160];
    switch (a->verdict) {
    case EO_ACCESS_MISSING:
    case EO_ACCESS_MALFORMED:
    case EO_ACCESS_INVALID_KEY: {
        const char *h[] = {"WWW-Authenticate", schemes, NULL};
        eo_http_respond_error(req, 401, reason_names[a->verdict], a->why,
                              a->field ? a->field : "Authorization", h);
        return;
    }
    case EO_ACCESS_INVALID_TOKEN:
        refuse_token(req, a->why);
        return;
    case EO_ACCESS_SCOPE: {
        snprintf(challenge, sizeof challenge,
                 "Bearer realm=\"eventops\", error=\"insufficient_scope\", scope=\"%s\"",
                 pol->scope);
        const char *h[] = {"WWW-Authenticate", challenge, NULL};
        eo_http_respond_error(req, 403, "insufficient_scope", a->why, "Authorization", h);
        return;
    }
    case EO_ACCESS_UNAVAILABLE: {
        const char *h[] = {"Retry-After", pol->retry_after, NULL};
        eo_http_respond_error(req, 503, "credentials_unavailable", a->why, NULL, h);
        return;
    }
    case EO_ACCESS_LIMITED: {
        const char *h[] = {"Retry-After",
                           a->retry,
                           "RateLimit-Limit",
                           a->rl.limit,
                           "RateLimit-Remaining",
                           a->rl.remaining,
                           "RateLimit-Reset",
                           a->rl.reset,
                           NULL};
        eo_http_respond_error(req, 429, "rate_limited", a->why, NULL, h);
        return;
    }
    case EO_ACCESS_OK:
        return;
    }
}

int eo_access_services_open(const eo_config_t *cfg, eo_metrics_t *m, const char *role,
                            bool keys_optional, eo_creds_t **creds, eo_keystore_t **keys,
                            eo_ratelimit_t **limiter, char *err, size_t errlen)
{
    *creds = NULL;
    *keys = NULL;
    *limiter = NULL;
    int r = eo_creds_new(cfg->pg_dsn, cfg->write_key_refresh_ms, cfg->credential_lookups_per_s,
                         creds, err, errlen);
    if (r == 0 && (!keys_optional || cfg->auth_jwks_url[0] || cfg->auth_key_dir[0])) {
        eo_keystore_options_t ko = {
            .key_dir = cfg->auth_key_dir,
            .jwks_url = cfg->auth_jwks_url,
            .refresh_ms = cfg->auth_keys_refresh_ms,
            .min_refetch_ms = cfg->auth_keys_min_refetch_ms,
        };
        r = eo_keystore_new(&ko, keys, err, errlen);
    }
    eo_ratelimit_options_t ro;
    eo_ratelimit_options_from_config(&ro, cfg);
    if (r == 0)
        r = eo_ratelimit_new(&ro, limiter, err, errlen);
    if (r == 0 && (r = eo_ratelimit_register_metrics(*limiter, m, role)) < 0)
        snprintf(err, errlen, "out of memory");
    if (r < 0) {
        eo_access_services_close(*creds, *keys, *limiter);
        *creds = NULL;
        *keys = NULL;
        *limiter = NULL;
    }
    return r;
}

void eo_access_services_close(eo_creds_t *creds, eo_keystore_t *keys, eo_ratelimit_t *limiter)
{
    eo_ratelimit_free(limiter);
    eo_keystore_free(keys);
    eo_creds_free(creds);
}
