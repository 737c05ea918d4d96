/* OAuth client credentials: ids "cl_<16 hex>", secrets "cs_<43 base64url>" (256 random bits),
 * stored as argon2id PHC strings (OWASP's minimum: m=19 MiB, t=2, p=1). libargon2 is used
 * from this file only. */
#ifndef EO_ACCESS_SECRET_H
#define EO_ACCESS_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define EO_CLIENT_ID_LEN 19     /* "cl_" + 16 hex */
#define EO_CLIENT_SECRET_LEN 46 /* "cs_" + 43 */
#define EO_SECRET_HASH_MAX 128

#define EO_ARGON2_T_COST 2
#define EO_ARGON2_M_COST_KIB 19456
#define EO_ARGON2_PARALLELISM 1

int eo_client_generate(char id[EO_CLIENT_ID_LEN + 1],
                       char secret[EO_CLIENT_SECRET_LEN + 1]) EO_MUST_CHECK;

/* argon2id of secret with a random salt, as a PHC string. */
int eo_secret_hash(const char *secret, size_t len, char out[EO_SECRET_HASH_MAX]) EO_MUST_CHECK;

/* True when secret matches the PHC string (argon2's comparison is constant time). */
bool eo_secret_verify(const char *encoded, const char *secret, size_t len);

#endif
