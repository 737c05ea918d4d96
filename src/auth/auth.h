/* The auth role: OAuth 2.0 client-credentials grant (RFC 6749 section 4.4) at
 * POST /oauth/token issuing EdDSA-signed JWT access tokens, and the public keys at
 * GET /.well-known/jwks.json. Clients and their argon2id-hashed secrets live in PostgreSQL;
 * signing keys in EVENTOPS_AUTH_KEY_DIR. The token endpoint is rate limited per source
 * address and per client id. */
#ifndef EO_AUTH_AUTH_H
#define EO_AUTH_AUTH_H

#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct eo_auth eo_auth_t;

int eo_auth_start(const eo_config_t *cfg, eo_auth_t **out, char *err, size_t errlen) EO_MUST_CHECK;
void eo_auth_stop(eo_auth_t *a); /* NULL accepted */

#endif
