/* Compact JSON output of jansson values into a capped buffer. Unlike jansson's dumper it
 * writes every real in its shortest form that reads back to the same double (324.24 stays
 * 324.24, not 324.24000000000001), so stored properties keep the numbers clients sent. */
#ifndef EO_DOMAIN_JSON_OUT_H
#define EO_DOMAIN_JSON_OUT_H

#include <jansson.h>
#include <stdint.h>

#include "core/buf.h"

/* Appends v as compact JSON. Returns 0, or EO_ELIMIT / EO_ENOMEM from the buffer, or
 * EO_EINVAL for a value JSON cannot hold (NaN, infinity). */
int eo_json_append(eo_buf_t *out, const json_t *v) EO_MUST_CHECK;

/* Writes the shortest decimal text of d that reads back to d into out (at least 32 bytes);
 * always with a '.' or an exponent so that it stays a real. Returns the length. */
size_t eo_json_format_real(double d, char *out, size_t outlen);

/* Appends "key":"<RFC 3339 UTC time, microseconds>", or "key":null when us is EO_NO_TIME (an
 * append error stays in the buffer: eo_buf_error). */
void eo_json_put_time(eo_buf_t *b, const char *key, int64_t us);

#endif
