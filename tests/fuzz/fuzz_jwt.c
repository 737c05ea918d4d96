/* libFuzzer harness of eo_jwt_verify on raw token bytes (what a client sends as a Bearer
 * token), against a fixed set of two Ed25519 keys whose private halves are written below: they
 * are test keys, public on purpose, so that the corpus can hold validly signed tokens (made
 * once with a throwaway script) for the fuzzer to mutate. Since mutations rarely keep a
 * signature valid, an input that starts with '{' (never the start of a token) is instead
 * "header JSON, newline, payload JSON" (or only the payload, under a fixed header), which the
 * harness encodes and signs with key fuzz-a itself, so that the checks behind the signature are
 * explored too. Invariants checked (abort on
 * violation), beyond "no crash, no leak":
 *  - the result is 0, EO_EAUTH (with a reason) or EO_ENOTFOUND (with a valid, unknown kid);
 *  - accepted claims are NUL-terminated strings, the tenant is 36 characters of lower-case
 *    uuid, the token is not expired, not early (nbf, iat) and its kid is in the set;
 *  - signing the accepted claims again with the same key gives a token that verifies to the
 *    same claims. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/b64.h"
#include "domain/jwt.h"
#include "fuzz_check.h"

#define ISS "https://auth.eventops.test"
#define AUD "eventops"
#define NOW INT64_C(1700000000)
#define LEEWAY 60

static const char pem_a[] = "-----BEGIN PRIVATE KEY-----\n"
                            "MC4CAQAwBQYDK2VwBCIEIDzRGjjjhw5vYzCG4m/XAzbRIVl9gwqDnJRNz5Gag7nm\n"
                            "-----END PRIVATE KEY-----\n";
static const char pem_b[] = "-----BEGIN PRIVATE KEY-----\n"
                            "MC4CAQAwBQYDK2VwBCIEIHY1Y4zmqsWP2NrXzNkWMyRPax2q8jcVKODIMSOS+p+Q\n"
                            "-----END PRIVATE KEY-----\n";

/* Built once; read-only afterwards (libFuzzer runs inputs on one thread). */
static eo_jwt_keyset_t *keys;

static void add_key(const char *pem, const char *kid)
{
    EVP_PKEY *key = NULL;
    int r = eo_jwt_key_from_pem(pem, strlen(pem), &key);
    CHECK(r == 0, "fixed key %s does not load: %d", kid, r);
    r = eo_jwt_keyset_add(keys, kid, key);
    CHECK(r == 0, "fixed key %s not added: %d", kid, r);
    EVP_PKEY_free(key); /* the set holds its own reference */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    keys = eo_jwt_keyset_new();
    CHECK(keys != NULL, "no memory");
    add_key(pem_a, "fuzz-a");
    add_key(pem_b, "fuzz-b");
    return 0;
}

static eo_jwt_policy_t policy(void)
{
    return (eo_jwt_policy_t){
        .issuer = ISS,
        .audience = AUD,
        .now_s = NOW,
        .leeway_s = LEEWAY,
        .max_token_bytes = 4096,
    };
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static bool lower_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static void check_resign(const eo_jwt_claims_t *c, const eo_jwt_policy_t *pol)
{
    EVP_PKEY *key = eo_jwt_keyset_find(keys, c->kid);
    eo_buf_t tok;
    eo_buf_init(&tok, 8192);
    int r = eo_jwt_sign(c, pol->issuer, pol->audience, key, c->kid, &tok);
    CHECK(r == 0, "eo_jwt_sign of accepted claims: %d", r);
    eo_jwt_claims_t again;
    char why[256] = "";
    r = eo_jwt_verify(tok.data, tok.len, keys, pol, &again, why, sizeof why);
    CHECK(r == 0, "re-signed claims do not verify (%d: %s): %s", r, why, tok.data);
    CHECK(strcmp(again.kid, c->kid) == 0, "kid changed");
    CHECK(strcmp(again.sub, c->sub) == 0, "sub changed");
    CHECK(strcmp(again.tenant_id, c->tenant_id) == 0, "tenant changed");
    CHECK(strcmp(again.scope, c->scope) == 0, "scope changed");
    CHECK(strcmp(again.jti, c->jti) == 0, "jti changed");
    CHECK(again.iat == c->iat && again.nbf == c->nbf && again.exp == c->exp, "times changed");
    eo_buf_done(&tok);
}

static void append_b64url(eo_buf_t *out, const void *data, size_t n)
{
    int r = eo_buf_reserve(out, EO_B64URL_LEN(n) + 1);
    CHECK(r == 0, "no memory");
    out->len += eo_b64url_encode(data, n, out->data + out->len);
}

/* Encodes header and payload (JSON text) and signs them with key fuzz-a into out. */
static void sign_json(const char *header, size_t hlen, const char *payload, size_t plen,
                      eo_buf_t *out)
{
    append_b64url(out, header, hlen);
    CHECK(eo_buf_append_char(out, '.') == 0, "no memory");
    append_b64url(out, payload, plen);
    uint8_t sig[64];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(ctx != NULL, "no memory");
    CHECK(EVP_DigestSignInit(ctx, NULL, NULL, NULL, eo_jwt_keyset_find(keys, "fuzz-a")) == 1 &&
              EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)out->data, out->len) == 1,
          "signing failed");
    EVP_MD_CTX_free(ctx);
    CHECK(eo_buf_append_char(out, '.') == 0, "no memory");
    append_b64url(out, sig, siglen);
}

static void check_token(const char *token, size_t size)
{
    eo_jwt_policy_t pol = policy();
    eo_jwt_claims_t c;
    char why[256] = "";
    int r = eo_jwt_verify(token, size, keys, &pol, &c, why, sizeof why);
    if (r == EO_EAUTH) {
        CHECK(why[0] != '\0', "refused without a reason");
        return;
    }
    if (r == EO_ENOTFOUND) {
        CHECK(terminated(c.kid, sizeof c.kid), "kid not terminated");
        CHECK(eo_jwt_kid_valid(c.kid, strlen(c.kid)), "unknown kid is not valid: %s", c.kid);
        CHECK(eo_jwt_keyset_find(keys, c.kid) == NULL, "kid %s is known", c.kid);
        return;
    }
    CHECK(r == 0, "eo_jwt_verify: %d", r);
    CHECK(terminated(c.kid, sizeof c.kid) && terminated(c.sub, sizeof c.sub) &&
              terminated(c.tenant_id, sizeof c.tenant_id) && terminated(c.scope, sizeof c.scope) &&
              terminated(c.jti, sizeof c.jti),
          "a claim is not NUL-terminated");
    CHECK(eo_jwt_keyset_find(keys, c.kid) != NULL, "accepted with unknown kid %s", c.kid);
    CHECK(c.sub[0] != '\0', "empty sub");
    CHECK(lower_uuid(c.tenant_id), "tenant %s", c.tenant_id);
    CHECK(c.exp + LEEWAY > NOW, "expired: exp %lld", (long long)c.exp);
    CHECK(c.nbf - LEEWAY <= NOW, "early: nbf %lld", (long long)c.nbf);
    CHECK(c.iat - LEEWAY <= NOW, "issued in the future: iat %lld", (long long)c.iat);
    CHECK(c.iat >= 0 && c.nbf >= 0 && c.exp >= 0, "negative time");
    CHECK(size <= pol.max_token_bytes, "longer than max_token_bytes");
    check_resign(&c, &pol);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (size == 0 || text[0] != '{') {
        check_token(text, size);
        return 0;
    }
    static const char fixed_header[] = "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"fuzz-a\"}";
    const char *nl = memchr(text, '\n', size);
    eo_buf_t tok;
    eo_buf_init(&tok, 4 * size + 256);
    if (nl)
        sign_json(text, (size_t)(nl - text), nl + 1, size - (size_t)(nl + 1 - text), &tok);
    else
        sign_json(fixed_header, strlen(fixed_header), text, size, &tok);
    check_token(tok.data, tok.len);
    eo_buf_done(&tok);
    return 0;
}
