/* Bearer JWT verification with a per-thread cache (see bearer.h). */
#include "access/bearer.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"

#define CACHE_SLOTS 64

typedef struct {
    uint8_t digest[32];
    const eo_keystore_t *owner;
    uint64_t generation;
    int64_t valid_until_s; /* exp + leeway */
    char tenant_id[37];
    char sub[64];
    char scope[256];
} cache_entry_t;

static _Thread_local cache_entry_t cache[CACHE_SLOTS];

int eo_bearer_verify(eo_keystore_t *keys, const eo_config_t *cfg, const char *token, size_t n,
                     eo_jwt_claims_t *claims, char *why, size_t whylen)
{
    eo_jwt_policy_t policy = {
        .issuer = cfg->auth_issuer,
        .audience = cfg->auth_audience,
        .now_s = eo_clock_now_us() / 1000000,
        .leeway_s = cfg->auth_leeway_s,
        .max_token_bytes = (size_t)cfg->auth_max_token_bytes,
    };
    uint8_t digest[32];
    SHA256((const unsigned char *)token, n, digest);
    uint64_t generation = eo_keystore_generation(keys);
    cache_entry_t *e = &cache[digest[0] % CACHE_SLOTS];
    if (e->owner == keys && e->generation == generation && policy.now_s < e->valid_until_s &&
        CRYPTO_memcmp(e->digest, digest, sizeof digest) == 0) {
        memset(claims, 0, sizeof *claims);
        memcpy(claims->tenant_id, e->tenant_id, sizeof claims->tenant_id);
        memcpy(claims->sub, e->sub, sizeof claims->sub);
        memcpy(claims->scope, e->scope, sizeof claims->scope);
        return 0;
    }
    eo_jwt_keyset_t *set = eo_keystore_get(keys);
    int r = eo_jwt_verify(token, n, set, &policy, claims, why, whylen);
    eo_jwt_keyset_unref(set);
    if (r == EO_ENOTFOUND) { /* a new key, perhaps: reload (rate limited) and retry */
        set = eo_keystore_refetch(keys);
        r = eo_jwt_verify(token, n, set, &policy, claims, why, whylen);
        eo_jwt_keyset_unref(set);
        if (r == EO_ENOTFOUND && !eo_keystore_ready(keys)) {
            snprintf(why, whylen, "token keys cannot be loaded right now; retry later");
            return EO_EUNAVAIL;
        }
    }
    if (r < 0)
        return EO_EAUTH;
    if (eo_keystore_generation(keys) == generation) { /* not reloaded meanwhile */
        memcpy(e->digest, digest, sizeof digest);
        e->owner = keys;
        e->generation = generation;
        e->valid_until_s = claims->exp + policy.leeway_s;
        memcpy(e->tenant_id, claims->tenant_id, sizeof e->tenant_id);
        memcpy(e->sub, claims->sub, sizeof e->sub);
        memcpy(e->scope, claims->scope, sizeof e->scope);
    }
    return 0;
}

const char *eo_bearer_jwt(const char *authorization, size_t *n)
{
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok), dots = 0;
    while (len > 0 && tok[len - 1] == ' ')
        len--;
    for (size_t i = 0; i < len; i++)
        dots += tok[i] == '.';
    *n = len;
    return dots == 2 ? tok : NULL;
}

eo_bearer_result_t eo_bearer_authorize(eo_keystore_t *keys, const eo_config_t *cfg,
                                       eo_creds_t *creds, const char *token, size_t n,
                                       const char *scope, eo_cred_t *cred, char *why, size_t whylen)
{
    eo_jwt_claims_t claims;
    int r = eo_bearer_verify(keys, cfg, token, n, &claims, why, whylen);
    if (r == EO_EUNAVAIL)
        return EO_BEARER_UNAVAILABLE;
    if (r < 0)
        return EO_BEARER_INVALID;
    if (!eo_jwt_scope_has(claims.scope, scope)) {
        snprintf(why, whylen, "the token lacks the %s scope", scope);
        return EO_BEARER_SCOPE;
    }
    r = eo_creds_client(creds, claims.sub, cred);
    if (r == EO_EUNAVAIL) {
        snprintf(why, whylen, "clients cannot be checked right now; retry later");
        return EO_BEARER_UNAVAILABLE;
    }
    if (r < 0 || strcmp(cred->tenant_id, claims.tenant_id) != 0) {
        snprintf(why, whylen, "the token's client is unknown or revoked");
        return EO_BEARER_INVALID;
    }
    return EO_BEARER_OK;
}
