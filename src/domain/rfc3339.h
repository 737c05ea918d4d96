/* RFC 3339 timestamps <-> microseconds since the Unix epoch (UTC). Pure functions. */
#ifndef EO_DOMAIN_RFC3339_H
#define EO_DOMAIN_RFC3339_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define EO_RFC3339_MAX 40 /* buffer size for eo_rfc3339_format(_local), NUL included */

/* Seconds since the epoch of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants a
 * timestamp may denote (UTC), so that every parsed time formats back as RFC 3339. */
#define EO_RFC3339_MIN_S (-62167219200LL)
#define EO_RFC3339_MAX_S (253402300799LL)

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" ('t'/'z' accepted; a leap second
 * :60 counts as the next second; fraction digits past microseconds are truncated).
 * Returns 0 and sets *us, or EO_EPARSE (bad syntax) / EO_EINVAL (a field out of range, or an
 * instant outside years 0000..9999 UTC). */
int eo_rfc3339_parse(const char *s, size_t n, int64_t *us) EO_MUST_CHECK;

/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" into out (EO_RFC3339_MAX bytes); us must lie within
 * years 0000..9999 (every parsed time does). Returns the length. */
size_t eo_rfc3339_format(int64_t us, char out[EO_RFC3339_MAX]);

/* Writes the instant us as the local time at offset_s from UTC: "YYYY-MM-DDTHH:MM:SS+HH:MM"
 * (".ffffff" only when not whole seconds; the offset's seconds are dropped). When the local
 * time falls outside years 0000..9999 it writes the UTC form of eo_rfc3339_format instead.
 * Returns the length. */
size_t eo_rfc3339_format_local(int64_t us, int64_t offset_s, char out[EO_RFC3339_MAX]);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t eo_days_from_civil(int64_t y, unsigned m, unsigned d);
void eo_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
