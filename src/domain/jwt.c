/* JWT (EdDSA) verification and signing, JWKS parsing and writing (see jwt.h). */
#include "domain/jwt.h"

#include <jansson.h>
#include <math.h>
#include <openssl/pem.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "domain/b64.h"

#define HEADER_MAX 1024 /* decoded JOSE header, bytes */
#define ED25519_SIG 64
#define ED25519_PUB 32

typedef struct {
    char kid[EO_JWT_KID_MAX + 1];
    EVP_PKEY *pkey;
} entry_t;

struct eo_jwt_keyset {
    atomic_int refs;
    entry_t *entries;
    size_t n, cap;
};

eo_jwt_keyset_t *eo_jwt_keyset_new(void)
{
    eo_jwt_keyset_t *ks = calloc(1, sizeof *ks);
    if (ks)
        atomic_init(&ks->refs, 1);
    return ks;
}

bool eo_jwt_kid_valid(const char *kid, size_t len)
{
    if (len == 0 || len > EO_JWT_KID_MAX || kid[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int eo_jwt_keyset_add(eo_jwt_keyset_t *ks, const char *kid, EVP_PKEY *pkey)
{
    if (!eo_jwt_kid_valid(kid, strlen(kid)) || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519)
        return EO_EINVAL;
    if (eo_jwt_keyset_find(ks, kid))
        return EO_EEXIST;
    if (EO_ARRAY_RESERVE(ks->entries, ks->cap, ks->n + 1, 4) < 0)
        return EO_ENOMEM;
    if (!EVP_PKEY_up_ref(pkey))
        return EO_ENOMEM;
    entry_t *e = &ks->entries[ks->n++];
    snprintf(e->kid, sizeof e->kid, "%s", kid);
    e->pkey = pkey;
    return 0;
}

size_t eo_jwt_keyset_count(const eo_jwt_keyset_t *ks)
{
    return ks ? ks->n : 0;
}

const char *eo_jwt_keyset_kid(const eo_jwt_keyset_t *ks, size_t i)
{
    return ks->entries[i].kid;
}

EVP_PKEY *eo_jwt_keyset_key(const eo_jwt_keyset_t *ks, size_t i)
{
    return ks->entries[i].pkey;
}

EVP_PKEY *eo_jwt_keyset_find(const eo_jwt_keyset_t *ks, const char *kid)
{
    for (size_t i = 0; ks && i < ks->n; i++)
        if (strcmp(ks->entries[i].kid, kid) == 0)
            return ks->entries[i].pkey;
    return NULL;
}

eo_jwt_keyset_t *eo_jwt_keyset_ref(eo_jwt_keyset_t *ks)
{
    if (ks)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void eo_jwt_keyset_unref(eo_jwt_keyset_t *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->entries[i].pkey);
    free(ks->entries);
    free(ks);
}

/* ---- JWKS ---- */

int eo_jwks_parse(const char *json, size_t len, eo_jwt_keyset_t **out, char *err, size_t errlen)
{
    *out = NULL;
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(err, errlen, "JWKS is not JSON: %s", je.text);
        return EO_EPARSE;
    }
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        snprintf(err, errlen, "JWKS has no \"keys\" array");
        return EO_EPARSE;
    }
    eo_jwt_keyset_t *ks = eo_jwt_keyset_new();
    int r = ks ? 0 : EO_ENOMEM;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (r < 0)
            break;
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *crv = json_string_value(json_object_get(k, "crv"));
        const char *x = json_string_value(json_object_get(k, "x"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        if (!kty || strcmp(kty, "OKP") || !crv || strcmp(crv, "Ed25519") || !x || !kid ||
            (use && strcmp(use, "sig")) || (alg && strcmp(alg, "EdDSA")))
            continue; /* not a key we can use */
        uint8_t raw[ED25519_PUB + 1];
        int n = eo_b64url_decode(x, strlen(x), raw, sizeof raw);
        if (n != ED25519_PUB || !eo_jwt_kid_valid(kid, strlen(kid))) {
            snprintf(err, errlen, "JWKS key %zu has a bad \"x\" or \"kid\"", i);
            r = EO_EPARSE;
            break;
        }
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, ED25519_PUB);
        if (!pkey) {
            snprintf(err, errlen, "JWKS key %zu is not an Ed25519 point", i);
            r = EO_EPARSE;
            break;
        }
        r = eo_jwt_keyset_add(ks, kid, pkey);
        EVP_PKEY_free(pkey);
        if (r == EO_EEXIST || r == EO_EINVAL) {
            snprintf(err, errlen, "JWKS key %zu: duplicate or invalid kid", i);
            r = EO_EPARSE;
        }
    }
    json_decref(doc);
    if (r < 0) {
        eo_jwt_keyset_unref(ks);
        return r;
    }
    *out = ks;
    return 0;
}

int eo_jwks_write(const eo_jwt_keyset_t *ks, eo_buf_t *out)
{
    eo_buf_puts(out, "{\"keys\":[");
    for (size_t i = 0; i < eo_jwt_keyset_count(ks); i++) {
        uint8_t raw[ED25519_PUB];
        size_t n = sizeof raw;
        if (!EVP_PKEY_get_raw_public_key(ks->entries[i].pkey, raw, &n) || n != ED25519_PUB)
            return EO_EINVAL;
        char x[EO_B64URL_LEN(ED25519_PUB) + 1];
        eo_b64url_encode(raw, n, x);
        eo_buf_putf(out,
                    "%s{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\","
                    "\"alg\":\"EdDSA\",\"use\":\"sig\"}",
                    i ? "," : "", x, ks->entries[i].kid);
    }
    eo_buf_puts(out, "]}");
    return eo_buf_error(out);
}

/* ---- keys ---- */

/* Refuses encrypted PEM at once (OpenSSL would otherwise prompt on the terminal). */
static int no_password(char *buf, int size, int rwflag, void *ud)
{
    (void)buf, (void)size, (void)rwflag, (void)ud;
    return -1;
}

int eo_jwt_key_from_pem(const char *pem, size_t len, EVP_PKEY **out)
{
    *out = NULL;
    if (len > INT32_MAX)
        return EO_EPARSE;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return EO_ENOMEM;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    if (!pkey)
        return EO_EPARSE;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return EO_EINVAL;
    }
    *out = pkey;
    return 0;
}

int eo_jwt_key_generate(EVP_PKEY **out, eo_buf_t *pem)
{
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey)
        return EO_ENOMEM;
    BIO *bio = BIO_new(BIO_s_mem());
    int r = bio ? 0 : EO_ENOMEM;
    if (r == 0 && !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
        r = EO_EIO;
    if (r == 0) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        r = eo_buf_append(pem, data, (size_t)n);
    }
    BIO_free(bio);
    if (r < 0) {
        EVP_PKEY_free(pkey);
        return r;
    }
    *out = pkey;
    return 0;
}

/* ---- verification ---- */

static int refuse(char *why, size_t whylen, const char *reason)
{
    snprintf(why, whylen, "%s", reason);
    return EO_EAUTH;
}

/* Decodes one base64url segment and parses it as a JSON object without duplicate keys. */
static json_t *segment_object(const char *s, size_t n, size_t max)
{
    uint8_t *raw = malloc(max ? max : 1);
    if (!raw)
        return NULL;
    int len = eo_b64url_decode(s, n, raw, max);
    json_t *obj = NULL;
    if (len > 0 && memchr(raw, '\0', (size_t)len) == NULL)
        obj = json_loadb((const char *)raw, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

/* A NumericDate claim (RFC 7519: a JSON number of seconds). Returns false when absent or not a
 * finite number in range. */
static bool numeric_date(json_t *claims, const char *name, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return *out >= 0 && *out < 253402300800; /* before year 10000 */
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < 0 || d >= 253402300800.0)
            return false;
        *out = (int64_t)floor(d);
        return true;
    }
    return false;
}

/* Copies a string claim of 1..cap-1 bytes without control characters. */
static bool string_claim(json_t *claims, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(claims, name);
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    memcpy(out, s, n + 1);
    return true;
}

static bool uuid_lower(const char *s, char out[37])
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        out[i] = c;
    }
    out[36] = '\0';
    return true;
}

static bool audience_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return false;
    size_t i;
    json_t *a;
    json_array_foreach(aud, i,
                       a) if (json_is_string(a) && !strcmp(json_string_value(a), want)) return true;
    return false;
}

static int check_header(json_t *h, eo_jwt_claims_t *claims, char *why, size_t whylen)
{
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (!alg)
        return refuse(why, whylen, "the token header has no \"alg\"");
    if (strcmp(alg, "EdDSA") != 0)
        return refuse(why, whylen, "the token's algorithm is not accepted (only EdDSA)");
    json_t *typ = json_object_get(h, "typ");
    if (typ && !(json_is_string(typ) && (!strcmp(json_string_value(typ), "JWT") ||
                                         !strcmp(json_string_value(typ), "at+jwt") ||
                                         !strcmp(json_string_value(typ), "application/at+jwt"))))
        return refuse(why, whylen, "the token's \"typ\" is not JWT or at+jwt");
    if (json_object_get(h, "crit"))
        return refuse(why, whylen, "the token header has \"crit\" extensions (not supported)");
    if (json_object_get(h, "jku") || json_object_get(h, "jwk") || json_object_get(h, "x5u") ||
        json_object_get(h, "x5c"))
        return refuse(why, whylen, "the token header names its own key (not accepted)");
    json_t *kid = json_object_get(h, "kid");
    if (!json_is_string(kid) || !eo_jwt_kid_valid(json_string_value(kid), json_string_length(kid)))
        return refuse(why, whylen, "the token header has no valid \"kid\"");
    snprintf(claims->kid, sizeof claims->kid, "%s", json_string_value(kid));
    return 0;
}

static int check_claims(json_t *c, const eo_jwt_policy_t *p, eo_jwt_claims_t *claims, char *why,
                        size_t whylen)
{
    const char *iss = json_string_value(json_object_get(c, "iss"));
    if (!iss || strcmp(iss, p->issuer) != 0)
        return refuse(why, whylen, "the token's issuer (iss) is missing or wrong");
    if (!audience_ok(json_object_get(c, "aud"), p->audience))
        return refuse(why, whylen, "the token's audience (aud) is missing or wrong");
    if (!numeric_date(c, "exp", &claims->exp))
        return refuse(why, whylen, "the token has no valid expiry (exp)");
    if (!numeric_date(c, "iat", &claims->iat))
        return refuse(why, whylen, "the token has no valid issue time (iat)");
    claims->nbf = 0;
    if (json_object_get(c, "nbf") && !numeric_date(c, "nbf", &claims->nbf))
        return refuse(why, whylen, "the token's nbf is not a valid time");
    if (claims->exp + p->leeway_s <= p->now_s)
        return refuse(why, whylen, "the token has expired");
    if (claims->nbf - p->leeway_s > p->now_s)
        return refuse(why, whylen, "the token is not valid yet (nbf)");
    if (claims->iat - p->leeway_s > p->now_s)
        return refuse(why, whylen, "the token was issued in the future (iat)");
    if (!string_claim(c, "sub", claims->sub, sizeof claims->sub))
        return refuse(why, whylen, "the token has no valid subject (sub)");
    char tenant[64];
    if (!string_claim(c, "tenant", tenant, sizeof tenant) || !uuid_lower(tenant, claims->tenant_id))
        return refuse(why, whylen, "the token has no valid tenant");
    claims->scope[0] = '\0'; /* absent or "": no scope (the caller answers 403) */
    json_t *scope = json_object_get(c, "scope");
    if (scope && !(json_is_string(scope) && json_string_length(scope) == 0) &&
        !string_claim(c, "scope", claims->scope, sizeof claims->scope))
        return refuse(why, whylen, "the token's scope is not a valid string");
    claims->jti[0] = '\0';
    if (json_object_get(c, "jti") && !string_claim(c, "jti", claims->jti, sizeof claims->jti))
        return refuse(why, whylen, "the token's jti is not a valid string");
    return 0;
}

static bool signature_ok(EVP_PKEY *key, const char *signed_part, size_t n, const uint8_t *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
              EVP_DigestVerify(ctx, sig, ED25519_SIG, (const unsigned char *)signed_part, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

int eo_jwt_verify(const char *token, size_t len, const eo_jwt_keyset_t *ks,
                  const eo_jwt_policy_t *policy, eo_jwt_claims_t *claims, char *why, size_t whylen)
{
    memset(claims, 0, sizeof *claims);
    if (len > policy->max_token_bytes)
        return refuse(why, whylen, "the token is too long");
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return refuse(why, whylen, "the token is not three dot-separated parts");
    size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - token);
    if (hlen == 0 || plen == 0 || slen == 0)
        return refuse(why, whylen, "the token has an empty part");
    json_t *header = segment_object(token, hlen, HEADER_MAX);
    if (!header)
        return refuse(why, whylen,
                      "the token header is not a JSON object in base64url (without duplicate "
                      "keys)");
    int r = check_header(header, claims, why, whylen);
    json_decref(header);
    if (r < 0)
        return r;
    EVP_PKEY *key = eo_jwt_keyset_find(ks, claims->kid);
    if (!key) {
        snprintf(why, whylen, "the token's signing key (kid) is unknown");
        return EO_ENOTFOUND;
    }
    uint8_t sig[ED25519_SIG];
    if (eo_b64url_decode(dot2 + 1, slen, sig, sizeof sig) != ED25519_SIG ||
        !signature_ok(key, token, (size_t)(dot2 - token), sig))
        return refuse(why, whylen, "the token's signature is not valid");
    json_t *payload = segment_object(dot1 + 1, plen, plen);
    if (!payload)
        return refuse(why, whylen,
                      "the token payload is not a JSON object in base64url (without duplicate "
                      "keys)");
    r = check_claims(payload, policy, claims, why, whylen);
    json_decref(payload);
    return r;
}

bool eo_jwt_scope_has(const char *list, const char *scope)
{
    size_t n = strlen(scope);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && n > 0 && memcmp(p, scope, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* ---- signing ---- */

static int append_b64url(eo_buf_t *out, const void *data, size_t n)
{
    int r = eo_buf_reserve(out, EO_B64URL_LEN(n) + 1);
    if (r < 0)
        return r;
    out->len += eo_b64url_encode(data, n, out->data + out->len);
    return 0;
}

int eo_jwt_sign(const eo_jwt_claims_t *claims, const char *issuer, const char *audience,
                EVP_PKEY *key, const char *kid, eo_buf_t *out)
{
    json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", "at+jwt", "kid", kid);
    json_t *c =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "iss", issuer, "aud", audience, "sub",
                  claims->sub, "tenant", claims->tenant_id, "iat", (json_int_t)claims->iat, "nbf",
                  (json_int_t)claims->nbf, "exp", (json_int_t)claims->exp);
    /* Optional claims are left out when empty (the verifier reads both forms the same). */
    if (c && claims->scope[0])
        json_object_set_new(c, "scope", json_string(claims->scope));
    if (c && claims->jti[0])
        json_object_set_new(c, "jti", json_string(claims->jti));
    char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
    char *cs = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(h);
    json_decref(c);
    size_t start = out->len;
    int r = hs && cs ? 0 : EO_ENOMEM;
    if (r == 0) {
        r = append_b64url(out, hs, strlen(hs));
        r = r ? r : eo_buf_append_char(out, '.');
        r = r ? r : append_b64url(out, cs, strlen(cs));
    }
    free(hs);
    free(cs);
    if (r < 0)
        return r;
    uint8_t sig[ED25519_SIG];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
              EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out->data + start,
                             out->len - start) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok || siglen != ED25519_SIG)
        return EO_EIO;
    r = eo_buf_append_char(out, '.');
    return r ? r : append_b64url(out, sig, siglen);
}
