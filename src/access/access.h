/* Admitting a request at a resource server (collector, query), before its body is read: the
 * Authorization header is authenticated (an access token, or a write key where the policy
 * takes them), the token's scope authorized, and one request taken from the credential's rate
 * limit. eo_access_check() returns a decision and answers nothing; eo_access_answer() is the
 * one place that turns a refusal into its HTTP answer (401, 403, 429 or 503, with the
 * challenge and retry headers) and counts it in eventops_auth_failures_total{reason}.
 *
 * Threads: a policy is filled at start-up and read-only afterwards; any HTTP thread checks. */
#ifndef EO_ACCESS_ACCESS_H
#define EO_ACCESS_ACCESS_H

#include <stdbool.h>

#include "access/credentials.h"
#include "access/keystore.h"
#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/ratelimit.h"

/* A refusal's reason: the error code of the answer and the metrics' reason label. */
typedef enum {
    EO_ACCESS_MISSING,       /* no Authorization header: 401 missing_credentials */
    EO_ACCESS_MALFORMED,     /* not Bearer/Basic of a credential's shape: 401 */
    EO_ACCESS_INVALID_KEY,   /* unknown or revoked write key: 401 invalid_write_key */
    EO_ACCESS_INVALID_TOKEN, /* 401 invalid_token (RFC 6750 challenge) */
    EO_ACCESS_SCOPE,         /* a good token without the scope: 403 insufficient_scope */
    EO_ACCESS_UNAVAILABLE,   /* credentials cannot be checked now: 503 + Retry-After */
    EO_ACCESS_REASONS,       /* the number of reasons above */
    EO_ACCESS_LIMITED = EO_ACCESS_REASONS, /* over the rate limit: 429 (the limiter counts) */
    EO_ACCESS_OK
} eo_access_verdict_t;

typedef struct {
    eo_keystore_t *keys;     /* token keys; NULL: every token is refused */
    eo_creds_t *creds;       /* write keys and clients */
    eo_ratelimit_t *limiter; /* per-credential limits */
    const eo_config_t *cfg;  /* token policy, default rate and burst, Retry-After */
    const char *scope;       /* what a token needs, e.g. "events:write" */
    bool write_keys;         /* write keys are taken too (ingestion) */
    const char *missing;     /* the message of 401 missing_credentials: what to send */
    const char *no_tokens;   /* the message refusing a token while keys is NULL */
    const char *who;         /* what a 429 calls the credential ("credential", "client") */
    char retry_after[24];    /* filled by eo_access_register_metrics */
    eo_counter_t *failures[EO_ACCESS_REASONS]; /* filled by eo_access_register_metrics */
} eo_access_policy_t;

/* A decision. cred and rl are filled when verdict is EO_ACCESS_OK or EO_ACCESS_LIMITED. */
typedef struct {
    eo_access_verdict_t verdict;
    eo_cred_t cred;
    eo_ratelimit_headers_t rl; /* RateLimit-* for the answer */
    char retry[24];            /* EO_ACCESS_LIMITED: Retry-After, seconds */
    char why[160];             /* a refusal's message */
    const char *field;         /* the part of the request refused; NULL: "Authorization" */
} eo_access_t;

/* The services a policy borrows, made from the configuration as every admitting role makes
 * them: the credentials (write keys and clients), the token keys (EVENTOPS_AUTH_KEY_DIR or
 * _JWKS_URL; with keys_optional and neither set, *keys is NULL and every token is refused) and
 * the rate limiter, whose metrics go into m for role. On failure, what was made is freed, the
 * three are NULL and err says why. */
int eo_access_services_open(const eo_config_t *cfg, eo_metrics_t *m, const char *role,
                            bool keys_optional, eo_creds_t **creds, eo_keystore_t **keys,
                            eo_ratelimit_t **limiter, char *err, size_t errlen) EO_MUST_CHECK;

/* Frees what eo_access_services_open made (NULLs accepted). */
void eo_access_services_close(eo_creds_t *creds, eo_keystore_t *keys, eo_ratelimit_t *limiter);

/* Registers eventops_auth_failures_total{role, reason} for every reason, and the Retry-After
 * of the 503 from pol->cfg. Call once at start-up, after filling the rest of pol. */
void eo_access_register_metrics(eo_access_policy_t *pol, eo_metrics_t *m, const char *role);

/* Decides on the Authorization header value (NULL or "" when absent). Takes one request
 * from the credential's rate limit when it is authenticated and authorized. Returns
 * out->verdict. */
eo_access_verdict_t eo_access_check(const eo_access_policy_t *pol, const char *authorization,
                                    eo_access_t *out);

/* Decides on a write key sent in the request body (Segment's writeKey, PostHog's api_key) by
 * a request without an Authorization header, as eo_access_check decides on "Bearer KEY";
 * field (static) names where it was in a refusal. Returns out->verdict. */
eo_access_verdict_t eo_access_check_key(const eo_access_policy_t *pol, const char *key, size_t len,
                                        const char *field, eo_access_t *out);

/* Answers a decision other than EO_ACCESS_OK on req and counts it. */
void eo_access_answer(const eo_access_policy_t *pol, eo_http_req_t *req, const eo_access_t *a);

/* Counts a decision other than EO_ACCESS_OK as eo_access_answer does, for an answer in another
 * protocol (gRPC), and returns its error code ("missing_credentials", ..., "rate_limited"). */
const char *eo_access_refusal(const eo_access_policy_t *pol, const eo_access_t *a);

#endif
