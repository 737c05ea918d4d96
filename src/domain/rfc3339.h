/* RFC 3339 timestamps <-> microseconds since the Unix epoch (UTC). Pure functions. */
#ifndef EO_DOMAIN_RFC3339_H
#define EO_DOMAIN_RFC3339_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define EO_RFC3339_MAX 32 /* buffer size for eo_rfc3339_format, NUL included */

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" ('t'/'z' accepted; a leap second
 * :60 counts as the next second; fraction digits past microseconds are truncated).
 * Returns 0 and sets *us, or EO_EPARSE (bad syntax) / EO_EINVAL (a field out of range). */
int eo_rfc3339_parse(const char *s, size_t n, int64_t *us) EO_MUST_CHECK;

/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" into out (EO_RFC3339_MAX bytes). Years outside
 * 0000..9999 are clamped by the caller's validation, not here. Returns the length. */
size_t eo_rfc3339_format(int64_t us, char out[EO_RFC3339_MAX]);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t eo_days_from_civil(int64_t y, unsigned m, unsigned d);
void eo_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
