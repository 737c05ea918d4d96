/* Client ids, secrets and their argon2id hashes (see secret.h). */
#include "access/secret.h"

#include <argon2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/random.h"
#include "domain/b64.h"

int eo_client_generate(char id[EO_CLIENT_ID_LEN + 1], char secret[EO_CLIENT_SECRET_LEN + 1])
{
    uint8_t rnd[8 + 32];
    int r = eo_random_bytes(rnd, sizeof rnd);
    if (r < 0)
        return r;
    memcpy(id, "cl_", 3);
    for (int i = 0; i < 8; i++)
        snprintf(id + 3 + 2 * i, 3, "%02x", rnd[i]);
    memcpy(secret, "cs_", 3);
    eo_b64url_encode(rnd + 8, 32, secret + 3);
    return 0;
}

int eo_secret_hash(const char *secret, size_t len, char out[EO_SECRET_HASH_MAX])
{
    uint8_t salt[16];
    int r = eo_random_bytes(salt, sizeof salt);
    if (r < 0)
        return r;
    r = argon2id_hash_encoded(EO_ARGON2_T_COST, EO_ARGON2_M_COST_KIB, EO_ARGON2_PARALLELISM, secret,
                              len, salt, sizeof salt, 32, out, EO_SECRET_HASH_MAX);
    return r == ARGON2_OK ? 0 : EO_ENOMEM;
}

bool eo_secret_verify(const char *encoded, const char *secret, size_t len)
{
    return strncmp(encoded, "$argon2id$", 10) == 0 &&
           argon2id_verify(encoded, secret, len) == ARGON2_OK;
}
