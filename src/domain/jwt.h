/* JSON Web Tokens signed with Ed25519 ("EdDSA", RFC 8037), the only algorithm EventOps issues
 * and accepts; key sets (JWKS, RFC 7517) of Ed25519 public keys. Crypto is OpenSSL 3's; this
 * file is its only user for signatures. No I/O and no clock: the caller passes the time.
 *
 * Verification is strict by design (see docs/security.md): alg pinned to EdDSA, a known kid,
 * canonical base64url, JSON objects without duplicate keys, no "crit", and the claims iss,
 * aud, sub, tenant, iat and exp required. */
#ifndef EO_DOMAIN_JWT_H
#define EO_DOMAIN_JWT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define EO_JWT_KID_MAX 64 /* kid: 1..64 of A-Z a-z 0-9 - _ . */

/* An immutable set of Ed25519 keys by kid, shared by reference count. */
typedef struct eo_jwt_keyset eo_jwt_keyset_t;

eo_jwt_keyset_t *eo_jwt_keyset_new(void);
/* Adds pkey (an Ed25519 key; public or private) under kid; takes a reference of pkey. Returns
 * 0, EO_EINVAL (bad kid, not Ed25519), EO_EEXIST or EO_ENOMEM. */
int eo_jwt_keyset_add(eo_jwt_keyset_t *ks, const char *kid, EVP_PKEY *pkey) EO_MUST_CHECK;
size_t eo_jwt_keyset_count(const eo_jwt_keyset_t *ks);
/* The i-th kid (in the order added) and its key (owned by the set). */
const char *eo_jwt_keyset_kid(const eo_jwt_keyset_t *ks, size_t i);
EVP_PKEY *eo_jwt_keyset_key(const eo_jwt_keyset_t *ks, size_t i);
EVP_PKEY *eo_jwt_keyset_find(const eo_jwt_keyset_t *ks, const char *kid);
eo_jwt_keyset_t *eo_jwt_keyset_ref(eo_jwt_keyset_t *ks);
void eo_jwt_keyset_unref(eo_jwt_keyset_t *ks); /* NULL accepted */

/* True when kid is 1..EO_JWT_KID_MAX of A-Z a-z 0-9 - _ . and does not start with '.'. */
bool eo_jwt_kid_valid(const char *kid, size_t len);

/* Parses a JWKS document; keys other than OKP/Ed25519 signature keys are skipped. Returns 0
 * with a new set in *out, EO_EPARSE (reason in err) or EO_ENOMEM. */
int eo_jwks_parse(const char *json, size_t len, eo_jwt_keyset_t **out, char *err,
                  size_t errlen) EO_MUST_CHECK;
/* Appends the JWKS document of the public halves of ks to out. */
int eo_jwks_write(const eo_jwt_keyset_t *ks, eo_buf_t *out) EO_MUST_CHECK;

/* Reads an Ed25519 private key from PEM (PKCS#8). Returns 0, EO_EPARSE or EO_EINVAL. */
int eo_jwt_key_from_pem(const char *pem, size_t len, EVP_PKEY **out) EO_MUST_CHECK;
/* Creates a new Ed25519 key and appends its PKCS#8 PEM to pem. */
int eo_jwt_key_generate(EVP_PKEY **out, eo_buf_t *pem) EO_MUST_CHECK;

typedef struct {
    const char *issuer;
    const char *audience;
    int64_t now_s;
    int64_t leeway_s;
    size_t max_token_bytes;
} eo_jwt_policy_t;

typedef struct {
    char kid[EO_JWT_KID_MAX + 1];
    char sub[64];       /* client id */
    char tenant_id[37]; /* lower-case uuid */
    char scope[256];    /* space-separated */
    char jti[64];
    int64_t iat, nbf, exp;
} eo_jwt_claims_t;

/* Verifies token (len bytes) against ks and policy. Returns 0 with claims filled;
 * EO_ENOTFOUND when the header is acceptable but ks has no key with its kid (claims->kid is
 * set: the caller may refresh its keys and retry); EO_EAUTH for any other refusal, with the
 * reason (safe to show the client) in why. */
int eo_jwt_verify(const char *token, size_t len, const eo_jwt_keyset_t *ks,
                  const eo_jwt_policy_t *policy, eo_jwt_claims_t *claims, char *why,
                  size_t whylen) EO_MUST_CHECK;

/* True when the space-separated list holds scope exactly. */
bool eo_jwt_scope_has(const char *list, const char *scope);

/* Appends a signed token with claims iss, aud, sub, tenant, scope, iat, nbf, exp and jti
 * (from claims and policy) to out, signed by key under kid. */
int eo_jwt_sign(const eo_jwt_claims_t *claims, const char *issuer, const char *audience,
                EVP_PKEY *key, const char *kid, eo_buf_t *out) EO_MUST_CHECK;

#endif
