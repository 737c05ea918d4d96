/* Base64: strict base64url without padding (JWT, RFC 7515 section 2) and a lenient decoder
 * for HTTP Basic credentials. Pure functions. */
#ifndef EO_DOMAIN_B64_H
#define EO_DOMAIN_B64_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Characters eo_b64url_encode writes for n bytes (without the NUL). */
#define EO_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Encodes n bytes as base64url without padding into out (EO_B64URL_LEN(n) + 1 bytes, NUL
 * terminated). Returns the length written. */
size_t eo_b64url_encode(const uint8_t *in, size_t n, char *out);

/* Decodes canonical base64url without padding: only A-Z a-z 0-9 - _, no '=', and the unused
 * low bits of the last character must be zero (so each value has one encoding). Returns the
 * decoded length, EO_EPARSE for bad input or EO_ELIMIT when it would not fit in cap. */
int eo_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) EO_MUST_CHECK;

/* Decodes standard or URL-safe base64 with optional '=' padding (HTTP Basic credentials).
 * Returns the decoded length, EO_EPARSE or EO_ELIMIT. */
int eo_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap) EO_MUST_CHECK;

#endif
