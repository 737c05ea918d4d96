/* Verifying bearer JWTs at a resource server (collector, query): the policy from the
 * configuration, the keys from a keystore (refetched once on an unknown kid), and a per-thread
 * cache of tokens already verified. An Ed25519 verification costs ~0.2 ms here and a client
 * sends the same token for many minutes; cached entries are keyed by the token's SHA-256 and
 * valid for the key-set generation they were verified under (a withdrawn key empties them) and
 * until the token expires. Revocation of the client is the caller's check, on every request. */
#ifndef EO_AUTH_BEARER_H
#define EO_AUTH_BEARER_H

#include <stddef.h>

#include "auth/keystore.h"
#include "core/config.h"
#include "core/http.h"
#include "domain/jwt.h"

/* Verifies token (n bytes). Returns 0 with claims' sub, tenant_id and scope filled;
 * EO_EAUTH when the token is refused (reason in why); EO_EUNAVAIL when the keys cannot be
 * loaded right now. */
int eo_bearer_verify(eo_keystore_t *keys, const eo_config_t *cfg, const char *token, size_t n,
                     eo_jwt_claims_t *claims, char *why, size_t whylen) EO_MUST_CHECK;

/* Answers 401 invalid_token (RFC 6750) naming why, in the body and in WWW-Authenticate. */
void eo_bearer_refuse(eo_http_req_t *req, const char *why);

#endif
