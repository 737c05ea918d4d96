/* Verifying bearer JWTs at a resource server (collector, query): the policy from the
 * configuration, the keys from a keystore (refetched once on an unknown kid), and a per-thread
 * cache of tokens already verified. An Ed25519 verification costs ~0.2 ms here and a client
 * sends the same token for many minutes; cached entries are keyed by the token's SHA-256 and
 * valid for the key-set generation they were verified under (a withdrawn key empties them) and
 * until the token expires. Revocation of the client is the caller's check, on every request. */
#ifndef EO_ACCESS_BEARER_H
#define EO_ACCESS_BEARER_H

#include <stddef.h>

#include "access/keystore.h"
#include "access/credentials.h"
#include "core/config.h"
#include "domain/jwt.h"

/* Verifies token (n bytes). Returns 0 with claims' sub, tenant_id and scope filled;
 * EO_EAUTH when the token is refused (reason in why); EO_EUNAVAIL when the keys cannot be
 * loaded right now. */
int eo_bearer_verify(eo_keystore_t *keys, const eo_config_t *cfg, const char *token, size_t n,
                     eo_jwt_claims_t *claims, char *why, size_t whylen) EO_MUST_CHECK;

/* The token in an Authorization value "Bearer TOKEN" (spaces trimmed, length in *n) when it has
 * the shape of a JWT (two dots; a write key has one); NULL otherwise. */
const char *eo_bearer_jwt(const char *authorization, size_t *n);

typedef enum {
    EO_BEARER_OK,
    EO_BEARER_INVALID,    /* bad token, or its client unknown, revoked or of another tenant */
    EO_BEARER_SCOPE,      /* a good token without the scope */
    EO_BEARER_UNAVAILABLE /* keys or clients cannot be checked right now */
} eo_bearer_result_t;

/* Verifies token (eo_bearer_verify), requires scope, and checks in creds that its client is
 * active and of the token's tenant (on every request: revocation); fills cred. The reason of a
 * refusal goes to why. */
eo_bearer_result_t eo_bearer_authorize(eo_keystore_t *keys, const eo_config_t *cfg,
                                       eo_creds_t *creds, const char *token, size_t n,
                                       const char *scope, eo_cred_t *cred, char *why,
                                       size_t whylen);

#endif
