/* Unit tests of src/domain/jwt.h: signing and verifying round trips, and a hostile matrix of
 * tokens assembled by hand (header and payload JSON, base64url, signatures made with OpenSSL
 * directly: Ed25519, HS256 keyed with the public key, ES256, RS256, none) where every rule of
 * eo_jwt_verify has a passing and a failing row; bit flips, dots, base64 forms, sizes; key
 * sets with two keys; JWKS writing and parsing; kid syntax; keys from PEM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/b64.h"
#include "domain/jwt.h"

#define ISS "https://auth.eventops.test"
#define AUD "eventops"
#define NOW INT64_C(1700000000)
#define LEEWAY 60
#define TENANT "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define TENANT_UPPER "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"

/* Keys made once for the whole group: A and B are in the set, C is not. */
static EVP_PKEY *key_a, *key_b, *key_c, *ec_key, *rsa_key;
static eo_jwt_keyset_t *keys;

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

static EVP_PKEY *new_ed25519(void)
{
    EVP_PKEY *key = NULL;
    eo_buf_t pem;
    eo_buf_init(&pem, 4096);
    assert_int_equal(eo_jwt_key_generate(&key, &pem), 0);
    assert_non_null(key);
    assert_non_null(strstr(pem.data, "-----BEGIN PRIVATE KEY-----"));
    eo_buf_done(&pem);
    return key;
}

static int setup(void **state)
{
    (void)state;
    key_a = new_ed25519();
    key_b = new_ed25519();
    key_c = new_ed25519();
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    keys = eo_jwt_keyset_new();
    if (!ec_key || !rsa_key || !keys || eo_jwt_keyset_add(keys, "key-a", key_a) != 0 ||
        eo_jwt_keyset_add(keys, "key-b", key_b) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    eo_jwt_keyset_unref(keys);
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    EVP_PKEY_free(key_c);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(rsa_key);
    return 0;
}

/* ---- token assembly ---- */

typedef enum {
    SIG_A,         /* Ed25519 with key A */
    SIG_B,         /* Ed25519 with key B */
    SIG_C,         /* Ed25519 with key C (in no set) */
    SIG_EMPTY,     /* an empty third part */
    SIG_ZERO,      /* 64 zero bytes */
    SIG_HS256_PUB, /* HMAC-SHA256 keyed with key A's 32 raw public bytes */
    SIG_HS256_X,   /* HMAC-SHA256 keyed with key A's base64url "x" text */
    SIG_ES256,     /* ECDSA P-256 SHA-256, JOSE r||s form (64 bytes) */
    SIG_RS256,     /* RSASSA-PKCS1-v1_5 SHA-256 */
    SIG_A_SHORT,   /* key A's signature less its last byte */
    SIG_A_LONG,    /* key A's signature and one more byte */
} signer_t;

static void append_b64url(eo_buf_t *out, const void *data, size_t n)
{
    char *text = malloc(EO_B64URL_LEN(n) + 1);
    assert_non_null(text);
    size_t len = eo_b64url_encode(data, n, text);
    assert_int_equal(eo_buf_append(out, text, len), 0);
    free(text);
}

static size_t sign_ed25519(EVP_PKEY *key, const char *input, size_t n, uint8_t sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = 64;
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)input, n), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(siglen, 64);
    return siglen;
}

/* ES256 in the JOSE form: r and s, 32 bytes each (RFC 7518 section 3.4). */
static size_t sign_es256(const char *input, size_t n, uint8_t sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t derlen = sizeof der;
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec_key), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &derlen, (const uint8_t *)input, n), 1);
    EVP_MD_CTX_free(ctx);
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

static size_t sign_rs256(const char *input, size_t n, uint8_t *sig, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = cap;
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa_key), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)input, n), 1);
    EVP_MD_CTX_free(ctx);
    return siglen;
}

static size_t sign_hs256(const void *secret, size_t secret_len, const char *input, size_t n,
                         uint8_t sig[32])
{
    unsigned int len = 32;
    assert_non_null(
        HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)input, n, sig, &len));
    assert_int_equal(len, 32);
    return len;
}

/* Appends '.' and the signature of out's text from start on, made by signer. */
static void append_signature(eo_buf_t *out, size_t start, signer_t signer)
{
    const char *input = out->data + start;
    size_t n = out->len - start;
    uint8_t sig[512];
    size_t siglen = 0;
    uint8_t pub[32];
    size_t publen = sizeof pub;
    char x[EO_B64URL_LEN(32) + 1];
    switch (signer) {
    case SIG_A:
    case SIG_A_SHORT:
    case SIG_A_LONG:
        siglen = sign_ed25519(key_a, input, n, sig);
        if (signer == SIG_A_SHORT)
            siglen--;
        if (signer == SIG_A_LONG)
            sig[siglen++] = 0;
        break;
    case SIG_B:
        siglen = sign_ed25519(key_b, input, n, sig);
        break;
    case SIG_C:
        siglen = sign_ed25519(key_c, input, n, sig);
        break;
    case SIG_EMPTY:
        siglen = 0;
        break;
    case SIG_ZERO:
        memset(sig, 0, 64);
        siglen = 64;
        break;
    case SIG_HS256_PUB:
        assert_int_equal(EVP_PKEY_get_raw_public_key(key_a, pub, &publen), 1);
        siglen = sign_hs256(pub, publen, input, n, sig);
        break;
    case SIG_HS256_X:
        assert_int_equal(EVP_PKEY_get_raw_public_key(key_a, pub, &publen), 1);
        eo_b64url_encode(pub, publen, x);
        siglen = sign_hs256(x, strlen(x), input, n, sig);
        break;
    case SIG_ES256:
        siglen = sign_es256(input, n, sig);
        break;
    case SIG_RS256:
        siglen = sign_rs256(input, n, sig, sizeof sig);
        break;
    }
    assert_int_equal(eo_buf_append_char(out, '.'), 0);
    append_b64url(out, sig, siglen);
}

/* A token of raw JSON header and payload (lengths given, so NUL bytes are possible). The
 * caller frees the result; *len (when not NULL) is its length. */
static char *token_raw(const char *header, size_t hlen, const char *payload, size_t plen,
                       signer_t signer, size_t *len)
{
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    append_b64url(&out, header, hlen);
    assert_int_equal(eo_buf_append_char(&out, '.'), 0);
    append_b64url(&out, payload, plen);
    append_signature(&out, 0, signer);
    return eo_buf_steal(&out, len);
}

/* A token of already encoded segments, signed over "hseg.pseg" exactly as given. */
static char *token_segments(const char *hseg, const char *pseg, signer_t signer)
{
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    assert_int_equal(eo_buf_append_str(&out, hseg), 0);
    assert_int_equal(eo_buf_append_char(&out, '.'), 0);
    assert_int_equal(eo_buf_append_str(&out, pseg), 0);
    append_signature(&out, 0, signer);
    return eo_buf_steal(&out, NULL);
}

/* Test JSON is written with ' for " to keep the rows readable. */
static char *dequote(const char *text)
{
    char *s = strdup(text);
    assert_non_null(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static char *token(const char *header, const char *payload, signer_t signer)
{
    char *h = dequote(header), *p = dequote(payload);
    char *t = token_raw(h, strlen(h), p, strlen(p), signer, NULL);
    free(h);
    free(p);
    return t;
}

static char *b64url_text(const char *text)
{
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    append_b64url(&out, text, strlen(text));
    return eo_buf_steal(&out, NULL);
}

static int verify_with(const char *tok, size_t len, const eo_jwt_keyset_t *ks,
                       const eo_jwt_policy_t *pol, eo_jwt_claims_t *claims)
{
    char why[256] = "";
    int r = eo_jwt_verify(tok, len, ks, pol, claims, why, sizeof why);
    if (r == EO_EAUTH && why[0] == '\0')
        fail_msg("refused without a reason: %s", tok);
    return r;
}

static int verify(const char *tok, eo_jwt_claims_t *claims)
{
    eo_jwt_policy_t pol = policy();
    return verify_with(tok, strlen(tok), keys, &pol, claims);
}

/* ---- the good path ---- */

#define HDR "{'alg':'EdDSA','typ':'JWT','kid':'key-a'}"
#define P_ISS "'iss':'" ISS "'"
#define P_AUD "'aud':'" AUD "'"
#define P_SUB "'sub':'client-1'"
#define P_TEN "'tenant':'" TENANT "'"
#define P_IDS P_ISS "," P_AUD "," P_SUB "," P_TEN
#define P_SCOPE "'scope':'events:write'"
#define P_IAT "'iat':1699999990"
#define P_NBF "'nbf':1699999990"
#define P_EXP "'exp':1700000600"
#define P_TIMES P_IAT "," P_NBF "," P_EXP
#define P_JTI "'jti':'j1'"
#define GOOD "{" P_IDS "," P_SCOPE "," P_TIMES "," P_JTI "}"
/* every claim but the time ones, for rows about exp, nbf and iat */
#define P_NOTIME P_IDS "," P_SCOPE

static eo_jwt_claims_t sample_claims(void)
{
    eo_jwt_claims_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "client-1");
    snprintf(c.tenant_id, sizeof c.tenant_id, "%s", TENANT_UPPER);
    snprintf(c.scope, sizeof c.scope, "events:write events:read");
    snprintf(c.jti, sizeof c.jti, "jti-0001");
    c.iat = NOW - 5;
    c.nbf = NOW - 5;
    c.exp = NOW + 900;
    return c;
}

static char *signed_by_lib(const eo_jwt_claims_t *c, EVP_PKEY *key, const char *kid)
{
    eo_buf_t out;
    eo_buf_init(&out, 8192);
    assert_int_equal(eo_jwt_sign(c, ISS, AUD, key, kid, &out), 0);
    return eo_buf_steal(&out, NULL);
}

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    eo_jwt_claims_t in = sample_claims();
    char *tok = signed_by_lib(&in, key_a, "key-a");
    assert_int_equal(
        strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        strlen(tok));
    eo_jwt_claims_t out;
    assert_int_equal(verify(tok, &out), 0);
    assert_string_equal(out.kid, "key-a");
    assert_string_equal(out.sub, "client-1");
    assert_string_equal(out.tenant_id, TENANT); /* lower-cased */
    assert_string_equal(out.scope, "events:write events:read");
    assert_string_equal(out.jti, "jti-0001");
    assert_int_equal(out.iat, NOW - 5);
    assert_int_equal(out.nbf, NOW - 5);
    assert_int_equal(out.exp, NOW + 900);
    free(tok);

    /* with key B under its kid, and appended to a buffer that already holds text */
    eo_buf_t buf;
    eo_buf_init(&buf, 8192);
    assert_int_equal(eo_buf_append_str(&buf, "Bearer "), 0);
    assert_int_equal(eo_jwt_sign(&in, ISS, AUD, key_b, "key-b", &buf), 0);
    assert_int_equal(verify(buf.data + 7, &out), 0);
    assert_string_equal(out.kid, "key-b");
    eo_buf_done(&buf);
}

/* Claims eo_jwt_sign accepts without complaint must come back from eo_jwt_verify: a client
 * granted no scope, or claims without a jti, still get a token that verifies. */
static void test_sign_empty_scope_and_jti(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        eo_jwt_claims_t in = sample_claims();
        if (which == 0)
            in.scope[0] = '\0';
        else
            in.jti[0] = '\0';
        char *tok = signed_by_lib(&in, key_a, "key-a");
        eo_jwt_claims_t out;
        char why[256] = "";
        eo_jwt_policy_t pol = policy();
        int r = eo_jwt_verify(tok, strlen(tok), keys, &pol, &out, why, sizeof why);
        free(tok);
        if (r != 0)
            fail_msg("a token eo_jwt_sign made with an empty %s does not verify: %d (%s)",
                     which == 0 ? "scope" : "jti", r, why);
        assert_string_equal(which == 0 ? out.scope : out.jti, "");
    }
}

static void test_scope_has(void **state)
{
    (void)state;
    static const struct {
        const char *list, *scope;
        bool want;
    } rows[] = {
        {"events:write", "events:write", true},
        {"events:write events:read", "events:read", true},
        {"events:write events:read", "events:write", true},
        {"  events:read  events:write ", "events:write", true},
        {"events:write", "events:writ", false},
        {"events:write", "events:writes", false},
        {"events:writes", "events:write", false},
        {"xevents:write", "events:write", false},
        {"Events:Write", "events:write", false},
        {"events:read", "events:write", false},
        {"", "events:write", false},
        {"   ", "events:write", false},
        {"events:write", "", false},
        {"", "", false},
        {"a b", "a b", false},
        {"a b", "b", true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (eo_jwt_scope_has(rows[i].list, rows[i].scope) != rows[i].want)
            fail_msg("scope row %zu: '%s' has '%s' should be %d", i, rows[i].list, rows[i].scope,
                     rows[i].want);
}

/* ---- the hostile matrix ---- */

typedef struct {
    const char *header;
    const char *payload;
    signer_t signer;
    int want; /* 0, EO_EAUTH or EO_ENOTFOUND */
} row_t;

static const row_t rows[] = {
    /* the good token, and the same with key B under its own kid */
    {HDR, GOOD, SIG_A, 0},
    {"{'alg':'EdDSA','typ':'JWT','kid':'key-b'}", GOOD, SIG_B, 0},

    /* alg: EdDSA only */
    {"{'alg':'EdDSA','kid':'key-a'}", GOOD, SIG_A, 0},
    {"{'alg':'none','kid':'key-a'}", GOOD, SIG_EMPTY, EO_EAUTH},
    {"{'alg':'none','kid':'key-a'}", GOOD, SIG_ZERO, EO_EAUTH},
    {"{'alg':'none','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'None','kid':'key-a'}", GOOD, SIG_EMPTY, EO_EAUTH},
    {"{'alg':'None','kid':'key-a'}", GOOD, SIG_ZERO, EO_EAUTH},
    {"{'alg':'NONE','kid':'key-a'}", GOOD, SIG_EMPTY, EO_EAUTH},
    {"{'alg':'NONE','kid':'key-a'}", GOOD, SIG_ZERO, EO_EAUTH},
    {"{'alg':'none'}", GOOD, SIG_EMPTY, EO_EAUTH},
    {"{'alg':'HS256','typ':'JWT','kid':'key-a'}", GOOD, SIG_HS256_PUB, EO_EAUTH},
    {"{'alg':'HS256','typ':'JWT','kid':'key-a'}", GOOD, SIG_HS256_X, EO_EAUTH},
    {"{'alg':'ES256','typ':'JWT','kid':'key-a'}", GOOD, SIG_ES256, EO_EAUTH},
    {"{'alg':'RS256','typ':'JWT','kid':'key-a'}", GOOD, SIG_RS256, EO_EAUTH},
    {"{'alg':'EdDSA','typ':'JWT','kid':'key-a'}", GOOD, SIG_HS256_PUB, EO_EAUTH},
    {"{'alg':'EdDSA','typ':'JWT','kid':'key-a'}", GOOD, SIG_ES256, EO_EAUTH},
    {"{'alg':'EdDSA','typ':'JWT','kid':'key-a'}", GOOD, SIG_RS256, EO_EAUTH},
    {"{'typ':'JWT','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'eddsa','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA ','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'Ed25519','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':null,'kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':5,'kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':['EdDSA'],'kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},

    /* kid: present, valid, known (unknown but valid: EO_ENOTFOUND) */
    {"{'alg':'EdDSA','typ':'JWT'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-c'}", GOOD, SIG_C, EO_ENOTFOUND},
    {"{'alg':'EdDSA','kid':'KEY-A'}", GOOD, SIG_A, EO_ENOTFOUND},
    {"{'alg':'EdDSA','kid':'../../etc/passwd'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'..%2f..%2fetc%2fpasswd'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'\\u0027 OR 1=1 --'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a\\u0027; DROP TABLE keys; --'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'"
     "k1234567890123456789012345678901234567890123456789012345678901234'}",
     GOOD, SIG_A, EO_EAUTH}, /* 65 characters */
    {"{'alg':'EdDSA','kid':'"
     "k123456789012345678901234567890123456789012345678901234567890123'}",
     GOOD, SIG_A, EO_ENOTFOUND}, /* 64 characters */
    {"{'alg':'EdDSA','kid':''}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'.key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a\\u0000'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-\\u00e4'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':5}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':null}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':['key-a']}", GOOD, SIG_A, EO_EAUTH},

    /* typ: absent, JWT or at+jwt */
    {"{'alg':'EdDSA','typ':'at+jwt','kid':'key-a'}", GOOD, SIG_A, 0},
    {"{'alg':'EdDSA','typ':'application/at+jwt','kid':'key-a'}", GOOD, SIG_A, 0},
    {"{'alg':'EdDSA','typ':'JOSE','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','typ':'JWE','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','typ':'secevent+jwt','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','typ':'','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','typ':5,'kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','typ':null,'kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},

    /* no crit; no key named by the token itself */
    {"{'alg':'EdDSA','kid':'key-a','x-extra':1}", GOOD, SIG_A, 0},
    {"{'alg':'EdDSA','kid':'key-a','crit':['exp']}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','crit':[]}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','crit':['b64'],'b64':false}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','jwk':{'kty':'OKP','crv':'Ed25519','x':'AAAA'}}", GOOD, SIG_A,
     EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','jku':'https://evil.test/jwks.json'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','x5u':'https://evil.test/cert.pem'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','x5c':['MIIB']}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','jku':null}", GOOD, SIG_A, EO_EAUTH},

    /* the header is one JSON object without duplicate keys */
    {"{'alg':'EdDSA','alg':'none','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'none','alg':'EdDSA','kid':'key-a'}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a','kid':'key-b'}", GOOD, SIG_A, EO_EAUTH},
    {"['EdDSA','key-a']", GOOD, SIG_A, EO_EAUTH},
    {"'EdDSA'", GOOD, SIG_A, EO_EAUTH},
    {"5", GOOD, SIG_A, EO_EAUTH},
    {"null", GOOD, SIG_A, EO_EAUTH},
    {"{}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a'", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a'}x", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a'}{}", GOOD, SIG_A, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-a'} ", GOOD, SIG_A, 0},

    /* the signature: key A's, of the right length */
    {HDR, GOOD, SIG_B, EO_EAUTH},
    {HDR, GOOD, SIG_C, EO_EAUTH},
    {HDR, GOOD, SIG_ZERO, EO_EAUTH},
    {HDR, GOOD, SIG_EMPTY, EO_EAUTH},
    {HDR, GOOD, SIG_A_SHORT, EO_EAUTH},
    {HDR, GOOD, SIG_A_LONG, EO_EAUTH},
    {"{'alg':'EdDSA','kid':'key-b'}", GOOD, SIG_A, EO_EAUTH},

    /* the payload is one JSON object without duplicate keys or NUL */
    {HDR, "{" P_IDS "," P_SCOPE "," P_TIMES ",'sub':'other'}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS "," P_SCOPE "," P_TIMES ",'exp':1800000000}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS "," P_SCOPE "," P_TIMES ",'tenant':'" TENANT "'}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS "," P_SCOPE "," P_TIMES "," P_ISS "}", SIG_A, EO_EAUTH},
    {HDR, "[" P_ISS "]", SIG_A, EO_EAUTH},
    {HDR, "['" ISS "','" AUD "']", SIG_A, EO_EAUTH},
    {HDR, "'" ISS "'", SIG_A, EO_EAUTH},
    {HDR, "1700000600", SIG_A, EO_EAUTH},
    {HDR, "null", SIG_A, EO_EAUTH},
    {HDR, "{}", SIG_A, EO_EAUTH},
    {HDR, GOOD "x", SIG_A, EO_EAUTH},
    {HDR, GOOD "{}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':'client\\u0000-1'," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':'client\\u00001'," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},

    /* iss: required, exact */
    {HDR, "{" P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{'iss':'https://evil.test'," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{'iss':'" ISS "/'," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{'iss':'https://auth.eventops.tes'," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A,
     EO_EAUTH},
    {HDR, "{'iss':'HTTPS://AUTH.EVENTOPS.TEST'," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A,
     EO_EAUTH},
    {HDR, "{'iss':''," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{'iss':null," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{'iss':['" ISS "']," P_AUD "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},

    /* aud: required, ours or an array holding ours */
    {HDR, "{" P_IDS "," P_TIMES "}", SIG_A, 0},
    {HDR, "{" P_ISS "," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':'other'," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':'eventops '," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':'EVENTOPS'," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':['" AUD "']," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, 0},
    {HDR, "{" P_ISS ",'aud':['other','" AUD "']," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, 0},
    {HDR, "{" P_ISS ",'aud':[1,null,{},'" AUD "']," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, 0},
    {HDR, "{" P_ISS ",'aud':['other','more']," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':[]," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':[['" AUD "']]," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':7," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS ",'aud':null," P_SUB "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},

    /* exp: required NumericDate, not past (with leeway) */
    {HDR, "{" P_NOTIME "," P_IAT "," P_NBF "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1699999939}", SIG_A, EO_EAUTH}, /* now - leeway - 1 */
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1699999940}", SIG_A, EO_EAUTH}, /* now - leeway */
    {HDR, "{" P_NOTIME ",'iat':1699999000,'exp':1699999941}", SIG_A, 0}, /* within leeway */
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1700000000}", SIG_A, 0},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1700000600.75}", SIG_A, 0},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1.7000006e9}", SIG_A, 0},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1699999939.5}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':'1700000600'}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':null}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':true}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':[1700000600]}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':-1}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':-1700000600}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':-0.5}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':253402300799}", SIG_A, 0},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':253402300800}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':9223372036854775807}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':99999999999999999999}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1e300}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'exp':1e400}", SIG_A, EO_EAUTH},

    /* nbf: optional NumericDate, not in the future (with leeway) */
    {HDR, "{" P_NOTIME "," P_IAT "," P_EXP "}", SIG_A, 0},
    {HDR, "{" P_NOTIME "," P_IAT ",'nbf':1700000060," P_EXP "}", SIG_A, 0},
    {HDR, "{" P_NOTIME "," P_IAT ",'nbf':1700000061," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'nbf':1800000000," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'nbf':'1699999990'," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'nbf':null," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME "," P_IAT ",'nbf':-5," P_EXP "}", SIG_A, EO_EAUTH},

    /* iat: required NumericDate, not in the future (with leeway) */
    {HDR, "{" P_NOTIME "," P_NBF "," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME ",'iat':1700000060," P_EXP "}", SIG_A, 0},
    {HDR, "{" P_NOTIME ",'iat':1700000061," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME ",'iat':1699999990.5," P_EXP "}", SIG_A, 0},
    {HDR, "{" P_NOTIME ",'iat':'1699999990'," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME ",'iat':-1," P_EXP "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_NOTIME ",'iat':0," P_EXP "}", SIG_A, 0},

    /* sub: required string of 1..63 bytes without control characters */
    {HDR, "{" P_ISS "," P_AUD "," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':''," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':5," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':null," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':'a\\nb'," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':'a\\u007f'," P_TEN "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD ",'sub':'\\u00e9t\\u00e9'," P_TEN "," P_TIMES "}", SIG_A, 0},
    {HDR,
     "{" P_ISS "," P_AUD
     ",'sub':'s12345678901234567890123456789012345678901234567890123456789012'," P_TEN "," P_TIMES
     "}",
     SIG_A, 0}, /* 63 bytes */
    {HDR,
     "{" P_ISS "," P_AUD
     ",'sub':'s123456789012345678901234567890123456789012345678901234567890123'," P_TEN "," P_TIMES
     "}",
     SIG_A, EO_EAUTH}, /* 64 bytes */

    /* tenant: required uuid, any case, returned in lower case */
    {HDR, "{" P_ISS "," P_AUD "," P_SUB "," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'" TENANT_UPPER "'," P_TIMES "}", SIG_A, 0},
    {HDR, "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'not-a-uuid'," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR,
     "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5'," P_TIMES "}",
     SIG_A, EO_EAUTH},
    {HDR,
     "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b0'," P_TIMES "}",
     SIG_A, EO_EAUTH},
    {HDR,
     "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'0190a1b2c-3d4-7e5f-8a9b-0c1d2e3f4a5b'," P_TIMES "}",
     SIG_A, EO_EAUTH},
    {HDR,
     "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g'," P_TIMES "}",
     SIG_A, EO_EAUTH},
    {HDR,
     "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a}'," P_TIMES "}",
     SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'0190a1b2c3d47e5f8a9b0c1d2e3f4a5b'," P_TIMES "}",
     SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD "," P_SUB ",'tenant':''," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD "," P_SUB ",'tenant':42," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_ISS "," P_AUD "," P_SUB ",'tenant':['" TENANT "']," P_TIMES "}", SIG_A, EO_EAUTH},

    /* scope: optional string of at most 255 bytes */
    {HDR, "{" P_IDS ",'scope':'events:write events:read'," P_TIMES "}", SIG_A, 0},
    {HDR, "{" P_IDS ",'scope':['events:write']," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS ",'scope':5," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS ",'scope':null," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS ",'scope':{'events:write':true}," P_TIMES "}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS ",'scope':'events:write\\tevents:read'," P_TIMES "}", SIG_A, EO_EAUTH},

    /* jti: optional string */
    {HDR, "{" P_IDS "," P_TIMES ",'jti':'abc'}", SIG_A, 0},
    {HDR, "{" P_IDS "," P_TIMES ",'jti':5}", SIG_A, EO_EAUTH},
    {HDR, "{" P_IDS "," P_TIMES ",'jti':null}", SIG_A, EO_EAUTH},
};

static void test_matrix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *row = &rows[i];
        char *tok = token(row->header, row->payload, row->signer);
        eo_jwt_claims_t claims;
        int r = verify(tok, &claims);
        if (r != row->want)
            fail_msg("row %zu: got %d, want %d: header %s payload %s", i, r, row->want, row->header,
                     row->payload);
        if (r == 0) {
            assert_string_equal(claims.tenant_id, TENANT);
            assert_true(claims.exp + LEEWAY > NOW);
        }
        free(tok);
    }
}

/* Scope and jti are long strings: at the edge of their buffers. */
static void test_long_claims(void **state)
{
    (void)state;
    char scope[300], payload[600];
    for (int len = 254; len <= 257; len++) {
        memset(scope, 's', (size_t)len);
        scope[len] = '\0';
        snprintf(payload, sizeof payload, "{" P_IDS ",'scope':'%s'," P_TIMES "}", scope);
        char *tok = token(HDR, payload, SIG_A);
        eo_jwt_claims_t claims;
        int r = verify(tok, &claims);
        if (r != (len <= 255 ? 0 : EO_EAUTH))
            fail_msg("scope of %d bytes: %d", len, r);
        if (r == 0)
            assert_string_equal(claims.scope, scope);
        free(tok);
    }
    char jti[80];
    for (int len = 62; len <= 65; len++) {
        memset(jti, 'j', (size_t)len);
        jti[len] = '\0';
        snprintf(payload, sizeof payload, "{" P_IDS "," P_TIMES ",'jti':'%s'}", jti);
        char *tok = token(HDR, payload, SIG_A);
        eo_jwt_claims_t claims;
        int r = verify(tok, &claims);
        if (r != (len <= 63 ? 0 : EO_EAUTH))
            fail_msg("jti of %d bytes: %d", len, r);
        free(tok);
    }
}

/* The values of accepted tokens: case, real-number times, absent optional claims. */
static void test_claim_values(void **state)
{
    (void)state;
    eo_jwt_claims_t c;
    char *tok = token(HDR,
                      "{" P_ISS ",'aud':['x','" AUD "']," P_SUB ",'tenant':'" TENANT_UPPER
                      "','iat':1699999990.9,'exp':1700000600.75}",
                      SIG_A);
    assert_int_equal(verify(tok, &c), 0);
    assert_string_equal(c.kid, "key-a");
    assert_string_equal(c.sub, "client-1");
    assert_string_equal(c.tenant_id, TENANT);
    assert_string_equal(c.scope, "");
    assert_string_equal(c.jti, "");
    assert_int_equal(c.iat, 1699999990);
    assert_int_equal(c.nbf, 0);
    assert_int_equal(c.exp, 1700000600);
    free(tok);

    /* an unknown kid is reported so the caller can refresh its keys */
    tok = token("{'alg':'EdDSA','kid':'key-c'}", GOOD, SIG_C);
    assert_int_equal(verify(tok, &c), EO_ENOTFOUND);
    assert_string_equal(c.kid, "key-c");
    free(tok);
}

/* ---- tampering ---- */

/* Every single-bit change anywhere in a good token is refused. */
static void test_bit_flips(void **state)
{
    (void)state;
    eo_jwt_claims_t in = sample_claims();
    char *tok = signed_by_lib(&in, key_a, "key-a");
    size_t len = strlen(tok);
    const char *dot1 = strchr(tok, '.');
    size_t header_end = (size_t)(dot1 - tok);
    eo_jwt_policy_t pol = policy();
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    size_t flips = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, tok, len + 1);
            copy[i] = (char)(copy[i] ^ (1 << bit));
            eo_jwt_claims_t c;
            int r = verify_with(copy, len, keys, &pol, &c);
            if (r == 0 || !(r == EO_EAUTH || (r == EO_ENOTFOUND && i < header_end)))
                fail_msg("bit %d of byte %zu flipped: %d (%s)", bit, i, r, copy);
            flips++;
        }
    }
    assert_int_equal(flips, len * 8);
    free(copy);
    free(tok);
}

/* Changing the decoded header or payload without signing again is refused. */
static void test_tampered_json(void **state)
{
    (void)state;
    char *good = token(HDR, GOOD, SIG_A);
    const char *sig = strrchr(good, '.');
    static const char *const payloads[] = {
        "{" P_IDS "," P_SCOPE "," P_TIMES ",'jti':'j2'}",
        "{" P_ISS "," P_AUD "," P_SUB ",'tenant':'0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c'," P_SCOPE
        "," P_TIMES "," P_JTI "}",
        "{" P_IDS ",'scope':'events:write events:read'," P_TIMES "," P_JTI "}",
        "{" P_IDS "," P_SCOPE "," P_IAT "," P_NBF ",'exp':1800000000," P_JTI "}",
        "{" P_IDS "," P_SCOPE "," P_TIMES "," P_JTI " }",
    };
    static const char *const headers[] = {
        "{'alg':'EdDSA','typ':'at+jwt','kid':'key-a'}",
        "{'alg':'EdDSA','kid':'key-a','typ':'JWT'}",
        "{'alg':'EdDSA','typ':'JWT','kid':'key-a'} ",
        "{'alg':'EdDSA','typ':'JWT','kid':'key-b'}",
    };
    char *hseg_good = NULL;
    {
        char *h = dequote(HDR);
        hseg_good = b64url_text(h);
        free(h);
    }
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char *p = dequote(payloads[i]);
        char *pseg = b64url_text(p);
        size_t n = strlen(hseg_good) + strlen(pseg) + strlen(sig) + 2;
        char *tok = malloc(n);
        assert_non_null(tok);
        snprintf(tok, n, "%s.%s%s", hseg_good, pseg, sig);
        eo_jwt_claims_t c;
        if (verify(tok, &c) != EO_EAUTH)
            fail_msg("payload %zu changed after signing is accepted", i);
        free(tok);
        free(pseg);
        free(p);
    }
    const char *pseg_good = strchr(good, '.') + 1;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *h = dequote(headers[i]);
        char *hseg = b64url_text(h);
        size_t n = strlen(hseg) + strlen(pseg_good) + 2;
        char *tok = malloc(n);
        assert_non_null(tok);
        snprintf(tok, n, "%s.%s", hseg, pseg_good);
        eo_jwt_claims_t c;
        if (verify(tok, &c) != EO_EAUTH)
            fail_msg("header %zu changed after signing is accepted", i);
        free(tok);
        free(hseg);
        free(h);
    }
    free(hseg_good);
    free(good);
}

/* ---- shape: dots, empty parts, base64 forms, size, NUL ---- */

/* Writes shape into out with 'h', 'p' and 's' replaced by those texts. */
static void expand(const char *shape, const char *h, const char *p, const char *s, char *out,
                   size_t cap)
{
    eo_buf_t b;
    eo_buf_init(&b, cap - 1);
    for (const char *c = shape; *c; c++) {
        int r = *c == 'h'   ? eo_buf_append_str(&b, h)
                : *c == 'p' ? eo_buf_append_str(&b, p)
                : *c == 's' ? eo_buf_append_str(&b, s)
                            : eo_buf_append_char(&b, *c);
        assert_int_equal(r, 0);
    }
    assert_int_equal(eo_buf_append(&b, "", 0), 0);
    memcpy(out, b.data, b.len + 1);
    eo_buf_done(&b);
}

static void test_dots_and_parts(void **state)
{
    (void)state;
    char *good = token(HDR, GOOD, SIG_A);
    const char *d1 = strchr(good, '.');
    const char *d2 = strchr(d1 + 1, '.');
    size_t hlen = (size_t)(d1 - good);
    size_t plen = (size_t)(d2 - d1 - 1);
    char h[512], p[1024], s[128];
    snprintf(h, sizeof h, "%.*s", (int)hlen, good);
    snprintf(p, sizeof p, "%.*s", (int)plen, d1 + 1);
    snprintf(s, sizeof s, "%s", d2 + 1);

    char tok[2048];
    static const struct {
        const char *shape; /* h, p, s: the good token's parts; other characters as they are */
        int want;
    } shapes[] = {
        {"h.p.s", 0},
        {"hps", EO_EAUTH},       /* 0 dots */
        {"h.ps", EO_EAUTH},      /* 1 dot */
        {"hp.s", EO_EAUTH},      /* 1 dot */
        {"h.p.s.", EO_EAUTH},    /* 3 dots, empty fourth part */
        {"h.p.s.x", EO_EAUTH},   /* 3 dots */
        {"h.p..s", EO_EAUTH},    /* 3 dots */
        {".h.p.s", EO_EAUTH},    /* 3 dots */
        {"h.p.s..", EO_EAUTH},   /* 4 dots */
        {"h.p.s.s", EO_EAUTH},   /* 3 dots */
        {"h.p.h.p", EO_EAUTH},   /* 3 dots */
        {"h.p.s.h.p", EO_EAUTH}, /* 4 dots: five parts like a JWE */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        expand(shapes[i].shape, h, p, s, tok, sizeof tok);
        eo_jwt_claims_t c;
        int r = verify(tok, &c);
        if (r != shapes[i].want)
            fail_msg("shape %zu (%s): %d, want %d", i, shapes[i].shape, r, shapes[i].want);
    }
    /* empty parts */
    static const char *const empties[] = {"..", "...", ".", "", "a..", ".a.", "..a"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        eo_jwt_claims_t c;
        assert_int_equal(verify(empties[i], &c), EO_EAUTH);
    }
    snprintf(tok, sizeof tok, ".%s.%s", p, s);
    eo_jwt_claims_t c;
    assert_int_equal(verify(tok, &c), EO_EAUTH);
    snprintf(tok, sizeof tok, "%s..%s", h, s);
    assert_int_equal(verify(tok, &c), EO_EAUTH);
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    assert_int_equal(verify(tok, &c), EO_EAUTH);
    /* an empty payload, signed */
    char *hq = dequote(HDR);
    char *t = token_raw(hq, strlen(hq), "", 0, SIG_A, NULL);
    assert_int_equal(verify(t, &c), EO_EAUTH);
    free(t);
    free(hq);
    free(good);
}

/* Replaces '-' by '+' and '_' by '/' in s (standard alphabet); returns how many changed. */
static int to_std_alphabet(char *s)
{
    int n = 0;
    for (; *s; s++) {
        if (*s == '-' || *s == '_') {
            *s = *s == '-' ? '+' : '/';
            n++;
        }
    }
    return n;
}

/* Segments in another base64 form are refused even when the signature covers them. */
static void test_bad_base64(void **state)
{
    (void)state;
    /* this header's encoding holds '-' and '_' and needs "==" padding in standard base64 */
    char *h = dequote("{'alg':'EdDSA','typ':'JWT','kid':'key-a','x-pad':'~~~?\?\?'}");
    char *p = dequote("{" P_IDS "," P_SCOPE "," P_TIMES ",'jti':'~~~?\?\?'}");
    assert_int_equal(strlen(h) % 3, 1);
    char *hseg = b64url_text(h), *pseg = b64url_text(p);
    assert_non_null(strchr(hseg, '-'));
    assert_non_null(strchr(hseg, '_'));
    assert_non_null(strchr(pseg, '-'));
    assert_non_null(strchr(pseg, '_'));
    eo_jwt_claims_t c;

    char *tok = token_segments(hseg, pseg, SIG_A); /* the passing row */
    assert_int_equal(verify(tok, &c), 0);
    free(tok);

    char seg[1024], seg2[1024];
    static const struct {
        const char *what;
        bool header;       /* which segment is changed */
        const char *shape; /* 's' is the segment */
    } forms[] = {
        {"header padded", true, "s=="},      {"header padded once", true, "s="},
        {"payload padded", false, "s="},     {"payload padded twice", false, "s=="},
        {"header with '*'", true, "*s"},     {"payload with '*'", false, "s*"},
        {"header with a space", true, "s "}, {"payload with a newline", false, "s\n"},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        expand(forms[i].shape, "", "", forms[i].header ? hseg : pseg, seg, sizeof seg);
        tok = token_segments(forms[i].header ? seg : hseg, forms[i].header ? pseg : seg, SIG_A);
        int r = verify(tok, &c);
        if (r != EO_EAUTH)
            fail_msg("%s: %d", forms[i].what, r);
        free(tok);
    }
    /* the standard alphabet ('+' and '/') in the header, then in the payload */
    snprintf(seg, sizeof seg, "%s", hseg);
    assert_true(to_std_alphabet(seg) >= 2);
    tok = token_segments(seg, pseg, SIG_A);
    assert_int_equal(verify(tok, &c), EO_EAUTH);
    free(tok);
    snprintf(seg2, sizeof seg2, "%s", pseg);
    assert_true(to_std_alphabet(seg2) >= 2);
    tok = token_segments(hseg, seg2, SIG_A);
    assert_int_equal(verify(tok, &c), EO_EAUTH);
    free(tok);
    /* only '+' or only '/' */
    for (int which = 0; which < 2; which++) {
        snprintf(seg, sizeof seg, "%s", hseg);
        char *at = strchr(seg, which ? '_' : '-');
        *at = which ? '/' : '+';
        tok = token_segments(seg, pseg, SIG_A);
        assert_int_equal(verify(tok, &c), EO_EAUTH);
        free(tok);
    }

    /* the signature in other forms: padded, standard alphabet, non-canonical last character */
    tok = token_segments(hseg, pseg, SIG_A);
    size_t n = strlen(tok);
    char *bad = malloc(n + 3);
    assert_non_null(bad);
    snprintf(bad, n + 3, "%s==", tok);
    assert_int_equal(verify(bad, &c), EO_EAUTH);
    snprintf(bad, n + 3, "%s", tok);
    /* 64 bytes leave 4 unused bits in the last of 86 characters: 'A', 'Q', 'g' or 'w' has
     * them zero, and the next character in the alphabet sets the lowest */
    assert_non_null(strchr("AQgw", tok[n - 1]));
    bad[n - 1] = (char)(tok[n - 1] + 1);
    assert_int_equal(verify(bad, &c), EO_EAUTH);
    snprintf(bad, n + 3, "%s", tok);
    char *sigpart = strrchr(bad, '.') + 1;
    if (to_std_alphabet(sigpart) > 0)
        assert_int_equal(verify(bad, &c), EO_EAUTH);
    snprintf(bad, n + 3, "%s", tok);
    bad[n - 3] = '*';
    assert_int_equal(verify(bad, &c), EO_EAUTH);
    free(bad);
    free(tok);
    free(hseg);
    free(pseg);
    free(h);
    free(p);
}

static void test_oversized(void **state)
{
    (void)state;
    char *tok = token(HDR, GOOD, SIG_A);
    size_t len = strlen(tok);
    eo_jwt_policy_t pol = policy();
    eo_jwt_claims_t c;
    pol.max_token_bytes = len;
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), 0);
    pol.max_token_bytes = len - 1;
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), EO_EAUTH);
    pol.max_token_bytes = 0;
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), EO_EAUTH);
    free(tok);

    /* a big but well-formed token under the default limit is refused for its size alone */
    char *big = malloc(8192);
    assert_non_null(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    char *payload = malloc(8192);
    assert_non_null(payload);
    snprintf(payload, 8192, "{" P_IDS "," P_TIMES ",'pad':'%s'}", big);
    tok = token(HDR, payload, SIG_A);
    pol = policy();
    assert_true(strlen(tok) > pol.max_token_bytes);
    assert_int_equal(verify_with(tok, strlen(tok), keys, &pol, &c), EO_EAUTH);
    pol.max_token_bytes = strlen(tok);
    assert_int_equal(verify_with(tok, strlen(tok), keys, &pol, &c), 0);
    free(tok);

    /* a header over its 1024-byte limit, even when signed */
    snprintf(payload, 8192, "{'alg':'EdDSA','kid':'key-a','pad':'%.1100s'}", big);
    tok = token(payload, GOOD, SIG_A);
    pol.max_token_bytes = 1 << 20;
    assert_int_equal(verify_with(tok, strlen(tok), keys, &pol, &c), EO_EAUTH);
    free(tok);
    free(payload);
    free(big);
}

/* A NUL byte in the decoded JSON, or in the token text, is refused. */
static void test_nul_bytes(void **state)
{
    (void)state;
    char *hq = dequote(HDR), *pq = dequote(GOOD);
    size_t hlen = strlen(hq), plen = strlen(pq);
    char payload[1024], header[256];
    eo_jwt_claims_t c;
    eo_jwt_policy_t pol = policy();
    size_t len;

    /* the passing row: the same bytes without NUL */
    char *tok = token_raw(hq, hlen, pq, plen, SIG_A, &len);
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), 0);
    free(tok);

    /* after the JSON, inside a string, in the header */
    memcpy(payload, pq, plen);
    payload[plen] = '\0';
    tok = token_raw(hq, hlen, payload, plen + 1, SIG_A, &len);
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), EO_EAUTH);
    free(tok);

    const char *at = strstr(pq, "client-1");
    assert_non_null(at);
    memcpy(payload, pq, plen);
    payload[(size_t)(at - pq) + 6] = '\0'; /* "client\0-1" */
    tok = token_raw(hq, hlen, payload, plen, SIG_A, &len);
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), EO_EAUTH);
    free(tok);

    memcpy(header, hq, hlen);
    header[hlen] = '\0';
    tok = token_raw(header, hlen + 1, pq, plen, SIG_A, &len);
    assert_int_equal(verify_with(tok, len, keys, &pol, &c), EO_EAUTH);
    free(tok);

    /* a NUL in the token text itself, with the bytes after it counted */
    tok = token_raw(hq, hlen, pq, plen, SIG_A, &len);
    char *with_nul = malloc(len + 2);
    assert_non_null(with_nul);
    memcpy(with_nul, tok, len);
    with_nul[len] = '\0';
    with_nul[len + 1] = 'A';
    assert_int_equal(verify_with(with_nul, len + 1, keys, &pol, &c), EO_EAUTH);
    assert_int_equal(verify_with(with_nul, len + 2, keys, &pol, &c), EO_EAUTH);
    /* the length is what counts: garbage after len is never read */
    assert_int_equal(verify_with(with_nul, len, keys, &pol, &c), 0);
    free(with_nul);
    free(tok);
    free(hq);
    free(pq);
}

/* ---- key sets and JWKS ---- */

static void test_two_keys(void **state)
{
    (void)state;
    assert_int_equal(eo_jwt_keyset_count(keys), 2);
    assert_string_equal(eo_jwt_keyset_kid(keys, 0), "key-a");
    assert_string_equal(eo_jwt_keyset_kid(keys, 1), "key-b");
    assert_ptr_equal(eo_jwt_keyset_key(keys, 0), key_a);
    assert_ptr_equal(eo_jwt_keyset_find(keys, "key-b"), key_b);
    assert_null(eo_jwt_keyset_find(keys, "key-c"));
    assert_null(eo_jwt_keyset_find(NULL, "key-a"));
    assert_int_equal(eo_jwt_keyset_count(NULL), 0);

    eo_jwt_claims_t in = sample_claims(), c;
    struct {
        EVP_PKEY *key;
        const char *kid;
        int want;
    } cases[] = {
        {key_a, "key-a", 0},
        {key_b, "key-b", 0},
        {key_a, "key-b", EO_EAUTH}, /* signed by A, labelled B */
        {key_b, "key-a", EO_EAUTH},
        {key_c, "key-a", EO_EAUTH},
        {key_c, "key-c", EO_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = signed_by_lib(&in, cases[i].key, cases[i].kid);
        int r = verify(tok, &c);
        if (r != cases[i].want)
            fail_msg("case %zu (kid %s): %d, want %d", i, cases[i].kid, r, cases[i].want);
        if (r == 0)
            assert_string_equal(c.kid, cases[i].kid);
        free(tok);
    }

    /* a set of only key B does not know key A */
    eo_jwt_keyset_t *only_b = eo_jwt_keyset_new();
    assert_non_null(only_b);
    assert_int_equal(eo_jwt_keyset_add(only_b, "key-b", key_b), 0);
    eo_jwt_policy_t pol = policy();
    char *tok = signed_by_lib(&in, key_a, "key-a");
    assert_int_equal(verify_with(tok, strlen(tok), only_b, &pol, &c), EO_ENOTFOUND);
    free(tok);
    tok = signed_by_lib(&in, key_b, "key-b");
    assert_int_equal(verify_with(tok, strlen(tok), only_b, &pol, &c), 0);
    /* reference counting: the set lives until its last reference goes */
    assert_ptr_equal(eo_jwt_keyset_ref(only_b), only_b);
    eo_jwt_keyset_unref(only_b);
    assert_int_equal(verify_with(tok, strlen(tok), only_b, &pol, &c), 0);
    eo_jwt_keyset_unref(only_b);
    eo_jwt_keyset_unref(NULL);
    assert_null(eo_jwt_keyset_ref(NULL));
    free(tok);

    /* an empty set knows no kid */
    eo_jwt_keyset_t *none = eo_jwt_keyset_new();
    tok = signed_by_lib(&in, key_a, "key-a");
    assert_int_equal(verify_with(tok, strlen(tok), none, &pol, &c), EO_ENOTFOUND);
    free(tok);
    eo_jwt_keyset_unref(none);
}

static void test_keyset_add(void **state)
{
    (void)state;
    eo_jwt_keyset_t *ks = eo_jwt_keyset_new();
    assert_non_null(ks);
    assert_int_equal(eo_jwt_keyset_add(ks, "k1", key_a), 0);
    assert_int_equal(eo_jwt_keyset_add(ks, "k1", key_b), EO_EEXIST);
    assert_int_equal(eo_jwt_keyset_add(ks, "k2", key_a), 0); /* one key under two kids */
    assert_int_equal(eo_jwt_keyset_add(ks, "", key_b), EO_EINVAL);
    assert_int_equal(eo_jwt_keyset_add(ks, "../k", key_b), EO_EINVAL);
    assert_int_equal(eo_jwt_keyset_add(ks, ".k", key_b), EO_EINVAL);
    assert_int_equal(eo_jwt_keyset_add(ks, "k3", ec_key), EO_EINVAL);
    assert_int_equal(eo_jwt_keyset_add(ks, "k3", rsa_key), EO_EINVAL);
    for (int i = 0; i < 20; i++) { /* growth */
        char kid[16];
        snprintf(kid, sizeof kid, "g%d", i);
        assert_int_equal(eo_jwt_keyset_add(ks, kid, key_c), 0);
    }
    assert_int_equal(eo_jwt_keyset_count(ks), 22);
    assert_string_equal(eo_jwt_keyset_kid(ks, 21), "g19");
    assert_ptr_equal(eo_jwt_keyset_find(ks, "g7"), key_c);
    eo_jwt_keyset_unref(ks);
}

static void raw_public(EVP_PKEY *key, uint8_t out[32])
{
    size_t n = 32;
    assert_int_equal(EVP_PKEY_get_raw_public_key(key, out, &n), 1);
    assert_int_equal(n, 32);
}

static void test_jwks_round_trip(void **state)
{
    (void)state;
    eo_buf_t doc;
    eo_buf_init(&doc, 1 << 16);
    assert_int_equal(eo_jwks_write(keys, &doc), 0);
    assert_null(strstr(doc.data, "\"d\"")); /* public halves only */
    char err[160] = "";
    eo_jwt_keyset_t *parsed = NULL;
    int r = eo_jwks_parse(doc.data, doc.len, &parsed, err, sizeof err);
    if (r != 0)
        fail_msg("written JWKS does not parse: %s: %s", err, doc.data);
    assert_int_equal(eo_jwt_keyset_count(parsed), eo_jwt_keyset_count(keys));
    for (size_t i = 0; i < eo_jwt_keyset_count(keys); i++) {
        assert_string_equal(eo_jwt_keyset_kid(parsed, i), eo_jwt_keyset_kid(keys, i));
        uint8_t want[32], got[32];
        raw_public(eo_jwt_keyset_key(keys, i), want);
        raw_public(eo_jwt_keyset_key(parsed, i), got);
        assert_memory_equal(want, got, 32);
    }
    /* the parsed (public) set verifies the same tokens, and refuses the same */
    eo_jwt_claims_t in = sample_claims(), c;
    eo_jwt_policy_t pol = policy();
    EVP_PKEY *signers[] = {key_a, key_b, key_a};
    const char *kids[] = {"key-a", "key-b", "key-b"};
    for (size_t i = 0; i < 3; i++) {
        char *tok = signed_by_lib(&in, signers[i], kids[i]);
        int want = verify_with(tok, strlen(tok), keys, &pol, &c);
        assert_int_equal(verify_with(tok, strlen(tok), parsed, &pol, &c), want);
        assert_int_equal(want, i < 2 ? 0 : EO_EAUTH);
        free(tok);
    }
    /* writing the parsed set again gives the same document */
    eo_buf_t again;
    eo_buf_init(&again, 1 << 16);
    assert_int_equal(eo_jwks_write(parsed, &again), 0);
    assert_string_equal(again.data, doc.data);
    eo_buf_done(&again);
    eo_jwt_keyset_unref(parsed);

    /* an empty set */
    eo_jwt_keyset_t *none = eo_jwt_keyset_new();
    eo_buf_reset(&doc);
    assert_int_equal(eo_jwks_write(none, &doc), 0);
    assert_int_equal(eo_jwks_parse(doc.data, doc.len, &parsed, err, sizeof err), 0);
    assert_int_equal(eo_jwt_keyset_count(parsed), 0);
    eo_jwt_keyset_unref(parsed);
    eo_jwt_keyset_unref(none);
    eo_buf_done(&doc);
}

#define X_OK "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" /* RFC 8037 A.2 */
#define OKP(kid) "{'kty':'OKP','crv':'Ed25519','x':'" X_OK "','kid':'" kid "'}"

typedef struct {
    const char *json;
    int want;     /* 0 or EO_EPARSE */
    size_t count; /* keys when accepted */
} jwks_row_t;

static const jwks_row_t jwks_rows[] = {
    {"{'keys':[" OKP("k1") "]}", 0, 1},
    {"{'keys':[" OKP("k1") "," OKP("k2") "]}", 0, 2},
    {"{'keys':[]}", 0, 0},
    /* use sig and alg EdDSA when given */
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'" X_OK "','kid':'k','use':'sig','alg':'EdDSA'}]}",
     0, 1},
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'" X_OK "','kid':'k','use':'enc'}]}", 0, 0},
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'" X_OK "','kid':'k','alg':'ES256'}]}", 0, 0},
    /* other key types and curves are skipped */
    {"{'keys':[{'kty':'RSA','kid':'rsa1','use':'sig','alg':'RS256','n':'0vx7agoebGcQSuu','e':"
     "'AQAB'}," OKP("k1") "]}",
     0, 1},
    {"{'keys':[{'kty':'EC','crv':'P-256','kid':'ec1','x':'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvR"
     "VEU','y':'x_FEzRnUhH-9wGJH8dqYwLMOsnVoJw6cwcR_oqU6q9Y'}]}",
     0, 0},
    {"{'keys':[{'kty':'OKP','crv':'X25519','x':'" X_OK "','kid':'x1'}," OKP("k1") "]}", 0, 1},
    {"{'keys':[{'kty':'OKP','crv':'Ed448','x':'" X_OK "','kid':'e448'}]}", 0, 0},
    {"{'keys':[{'kty':'oct','k':'c2VjcmV0','kid':'hmac'}]}", 0, 0},
    {"{'keys':[5,'x',null,[]," OKP("k1") "]}", 0, 1},
    /* x: 32 bytes of canonical base64url */
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUQ',"
     "'kid':'k'}]}",
     EO_EPARSE, 0}, /* 31 bytes */
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURoA',"
     "'kid':'k'}]}",
     EO_EPARSE, 0}, /* 44 characters */
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURoAAA',"
     "'kid':'k'}]}",
     EO_EPARSE, 0}, /* 34 bytes */
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=',"
     "'kid':'k'}]}",
     EO_EPARSE, 0},
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo',"
     "'kid':'k'}]}",
     EO_EPARSE, 0},
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp',"
     "'kid':'k'}]}",
     EO_EPARSE, 0}, /* non-canonical last character */
    {"{'keys':[{'kty':'OKP','crv':'Ed25519','x':'','kid':'k'}]}", EO_EPARSE, 0},
    /* kid: valid and unique */
    {"{'keys':[" OKP("k1") "," OKP("k1") "]}", EO_EPARSE, 0},
    {"{'keys':[" OKP("../../etc/passwd") "]}", EO_EPARSE, 0},
    {"{'keys':[" OKP("") "]}", EO_EPARSE, 0},
    {"{'keys':[" OKP(".k") "]}", EO_EPARSE, 0},
    /* a JSON object with a keys array, without duplicate members */
    {"", EO_EPARSE, 0},
    {"not json", EO_EPARSE, 0},
    {"{'keys':[" OKP("k1") "]", EO_EPARSE, 0},
    {"{'keys':[" OKP("k1") "]}x", EO_EPARSE, 0},
    {"{}", EO_EPARSE, 0},
    {"{'key':[]}", EO_EPARSE, 0},
    {"{'keys':{}}", EO_EPARSE, 0},
    {"{'keys':null}", EO_EPARSE, 0},
    {"{'keys':'[]'}", EO_EPARSE, 0},
    {"[" OKP("k1") "]", EO_EPARSE, 0},
    {"{'keys':[],'keys':[]}", EO_EPARSE, 0},
    {"{'keys':[{'kty':'OKP','kty':'OKP','crv':'Ed25519','x':'" X_OK "','kid':'k'}]}", EO_EPARSE, 0},
};

static void test_jwks_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof jwks_rows / sizeof jwks_rows[0]; i++) {
        char *json = dequote(jwks_rows[i].json);
        eo_jwt_keyset_t *ks = (eo_jwt_keyset_t *)&ks; /* must be overwritten */
        char err[160] = "";
        int r = eo_jwks_parse(json, strlen(json), &ks, err, sizeof err);
        if (r != jwks_rows[i].want)
            fail_msg("JWKS row %zu: %d (%s), want %d: %s", i, r, err, jwks_rows[i].want, json);
        if (r == 0) {
            assert_non_null(ks);
            assert_int_equal(eo_jwt_keyset_count(ks), jwks_rows[i].count);
        } else {
            assert_null(ks);
            if (err[0] == '\0')
                fail_msg("JWKS row %zu refused without a reason", i);
        }
        eo_jwt_keyset_unref(ks);
        free(json);
    }
}

/* The RFC 8037 A.2 public key verifies RFC 8037 A.4's signature; a JWT by hand with it. */
static void test_jwks_rfc8037(void **state)
{
    (void)state;
    char *json = dequote("{'keys':[" OKP("rfc") "]}");
    eo_jwt_keyset_t *ks = NULL;
    char err[160];
    assert_int_equal(eo_jwks_parse(json, strlen(json), &ks, err, sizeof err), 0);
    free(json);
    EVP_PKEY *pub = eo_jwt_keyset_find(ks, "rfc");
    assert_non_null(pub);
    static const char input[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    static const char sig_b64[] =
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    uint8_t sig[64];
    assert_int_equal(eo_b64url_decode(sig_b64, strlen(sig_b64), sig, sizeof sig), 64);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub), 1);
    assert_int_equal(
        EVP_DigestVerify(ctx, sig, sizeof sig, (const uint8_t *)input, sizeof input - 1), 1);
    EVP_MD_CTX_free(ctx);
    /* that token has no kid and no claims: refused */
    char tok[256];
    snprintf(tok, sizeof tok, "%s.%s", input, sig_b64);
    eo_jwt_policy_t pol = policy();
    eo_jwt_claims_t c;
    assert_int_equal(verify_with(tok, strlen(tok), ks, &pol, &c), EO_EAUTH);
    eo_jwt_keyset_unref(ks);
}

static void test_kid_valid(void **state)
{
    (void)state;
    static const struct {
        const char *kid;
        bool want;
    } rows_kid[] = {
        {"a", true},
        {"", false},
        {"key-2024_01.A", true},
        {"key/2024", false},
        {"0", true},
        {"-", true},
        {"_k", true},
        {"k.", true},
        {"a..b", true},
        {".k", false},
        {".", false},
        {"..", false},
        {"../../etc/passwd", false},
        {"' OR 1=1 --", false},
        {"k k", false},
        {"k\t", false},
        {"k\n", false},
        {"k%2e", false},
        {"k+", false},
        {"k=", false},
        {"k\"", false},
        {"k\\", false},
        {"k\xc3\xa4", false},
        {"1234567890123456789012345678901234567890123456789012345678901234", true},   /* 64 */
        {"12345678901234567890123456789012345678901234567890123456789012345", false}, /* 65 */
    };
    for (size_t i = 0; i < sizeof rows_kid / sizeof rows_kid[0]; i++)
        if (eo_jwt_kid_valid(rows_kid[i].kid, strlen(rows_kid[i].kid)) != rows_kid[i].want)
            fail_msg("kid row %zu '%s': want %d", i, rows_kid[i].kid, rows_kid[i].want);
    /* the length is what counts, not a NUL */
    assert_true(eo_jwt_kid_valid("abc", 2));
    assert_false(eo_jwt_kid_valid("a\0c", 3));
    assert_false(eo_jwt_kid_valid("abc", 0));
}

static char *pem_of(EVP_PKEY *key, bool private_key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    int ok = private_key ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_PUBKEY(bio, key);
    assert_int_equal(ok, 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = strndup(data, (size_t)n);
    assert_non_null(pem);
    BIO_free(bio);
    return pem;
}

static void test_key_from_pem(void **state)
{
    (void)state;
    /* round trip of a generated key's PEM */
    EVP_PKEY *gen = NULL, *loaded = NULL;
    eo_buf_t pem;
    eo_buf_init(&pem, 4096);
    assert_int_equal(eo_jwt_key_generate(&gen, &pem), 0);
    assert_int_equal(eo_jwt_key_from_pem(pem.data, pem.len, &loaded), 0);
    uint8_t a[32], b[32];
    raw_public(gen, a);
    raw_public(loaded, b);
    assert_memory_equal(a, b, 32);
    assert_int_equal(EVP_PKEY_eq(gen, loaded), 1);
    /* the loaded key signs tokens the generated one verifies */
    eo_jwt_keyset_t *ks = eo_jwt_keyset_new();
    assert_int_equal(eo_jwt_keyset_add(ks, "gen", gen), 0);
    eo_jwt_claims_t in = sample_claims(), c;
    char *tok = signed_by_lib(&in, loaded, "gen");
    eo_jwt_policy_t pol = policy();
    assert_int_equal(verify_with(tok, strlen(tok), ks, &pol, &c), 0);
    free(tok);
    eo_jwt_keyset_unref(ks);
    EVP_PKEY_free(loaded);

    /* the PEM's length is what counts */
    loaded = (EVP_PKEY *)&loaded;
    assert_int_equal(eo_jwt_key_from_pem(pem.data, pem.len / 2, &loaded), EO_EPARSE);
    assert_null(loaded);
    eo_buf_done(&pem);
    EVP_PKEY_free(gen);

    /* garbage */
    static const char *const garbage[] = {
        "",
        "not a key",
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        loaded = (EVP_PKEY *)&loaded;
        int r = eo_jwt_key_from_pem(garbage[i], strlen(garbage[i]), &loaded);
        if (r != EO_EPARSE)
            fail_msg("garbage PEM %zu: %d", i, r);
        assert_null(loaded);
    }

    /* a public key is not a private key */
    char *pub = pem_of(key_a, false);
    loaded = (EVP_PKEY *)&loaded;
    assert_int_equal(eo_jwt_key_from_pem(pub, strlen(pub), &loaded), EO_EPARSE);
    assert_null(loaded);
    free(pub);

    /* RSA, EC P-256, X25519 and Ed448 private keys are not Ed25519 */
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    assert_non_null(x25519);
    assert_non_null(ed448);
    EVP_PKEY *others[] = {rsa_key, ec_key, x25519, ed448};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char *text = pem_of(others[i], true);
        loaded = (EVP_PKEY *)&loaded;
        int r = eo_jwt_key_from_pem(text, strlen(text), &loaded);
        if (r != EO_EINVAL)
            fail_msg("non-Ed25519 PEM %zu: %d", i, r);
        assert_null(loaded);
        free(text);
    }
    EVP_PKEY_free(x25519);
    EVP_PKEY_free(ed448);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_sign_empty_scope_and_jti),
        cmocka_unit_test(test_scope_has),
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_long_claims),
        cmocka_unit_test(test_claim_values),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_tampered_json),
        cmocka_unit_test(test_dots_and_parts),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_two_keys),
        cmocka_unit_test(test_keyset_add),
        cmocka_unit_test(test_jwks_round_trip),
        cmocka_unit_test(test_jwks_rows),
        cmocka_unit_test(test_jwks_rfc8037),
        cmocka_unit_test(test_kid_valid),
        cmocka_unit_test(test_key_from_pem),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
