/* libFuzzer harness of eo_jwks_parse on raw bytes (a key set fetched from the auth role or
 * read from a file). Invariants checked (abort on violation), beyond "no crash, no leak":
 *  - a refusal is EO_EPARSE with a reason and no set;
 *  - every kid of an accepted set is valid and unique;
 *  - eo_jwks_write of the set parses again to the same kids and public keys in the same order,
 *    and writing that set again gives the same document. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/jwt.h"
#include "fuzz_check.h"

static bool same_key(EVP_PKEY *a, EVP_PKEY *b)
{
    uint8_t ra[32], rb[32];
    size_t na = sizeof ra, nb = sizeof rb;
    return EVP_PKEY_get_raw_public_key(a, ra, &na) == 1 &&
           EVP_PKEY_get_raw_public_key(b, rb, &nb) == 1 && na == 32 && nb == 32 &&
           memcmp(ra, rb, 32) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eo_jwt_keyset_t *ks = NULL;
    char err[160] = "";
    int r = eo_jwks_parse((const char *)data, size, &ks, err, sizeof err);
    if (r != 0) {
        CHECK(r == EO_EPARSE, "eo_jwks_parse: %d", r);
        CHECK(ks == NULL, "a set after a refusal");
        CHECK(err[0] != '\0', "refused without a reason");
        return 0;
    }
    CHECK(ks != NULL, "accepted without a set");
    size_t n = eo_jwt_keyset_count(ks);
    for (size_t i = 0; i < n; i++) {
        const char *kid = eo_jwt_keyset_kid(ks, i);
        CHECK(eo_jwt_kid_valid(kid, strlen(kid)), "kid %zu is not valid: %s", i, kid);
        CHECK(eo_jwt_keyset_find(ks, kid) == eo_jwt_keyset_key(ks, i), "kid %s twice", kid);
        CHECK(EVP_PKEY_get_base_id(eo_jwt_keyset_key(ks, i)) == EVP_PKEY_ED25519, "not Ed25519");
    }

    eo_buf_t doc;
    eo_buf_init(&doc, 1 << 22);
    r = eo_jwks_write(ks, &doc);
    CHECK(r == 0, "eo_jwks_write: %d", r);
    eo_jwt_keyset_t *again = NULL;
    r = eo_jwks_parse(doc.data, doc.len, &again, err, sizeof err);
    CHECK(r == 0, "written JWKS does not parse (%d: %s): %s", r, err, doc.data);
    CHECK(eo_jwt_keyset_count(again) == n, "%zu keys became %zu", n, eo_jwt_keyset_count(again));
    for (size_t i = 0; i < n; i++) {
        CHECK(strcmp(eo_jwt_keyset_kid(ks, i), eo_jwt_keyset_kid(again, i)) == 0, "kid %zu changed",
              i);
        CHECK(same_key(eo_jwt_keyset_key(ks, i), eo_jwt_keyset_key(again, i)), "key %zu changed",
              i);
    }
    eo_buf_t doc2;
    eo_buf_init(&doc2, 1 << 22);
    r = eo_jwks_write(again, &doc2);
    CHECK(r == 0 && doc2.len == doc.len && memcmp(doc.data, doc2.data, doc.len) == 0,
          "writing is not stable");
    eo_buf_done(&doc2);
    eo_buf_done(&doc);
    eo_jwt_keyset_unref(again);
    eo_jwt_keyset_unref(ks);
    return 0;
}
