/* Parsing and checking the parameters of the query API (docs/query.md). Pure functions over
 * outside input: each returns 0 or EO_EINVAL (never reads past the given length). */
#ifndef EO_DOMAIN_QPARAMS_H
#define EO_DOMAIN_QPARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum { EO_Q_MINUTE, EO_Q_HOUR, EO_Q_DAY, EO_Q_WEEK, EO_Q_MONTH } eo_q_unit_t;

/* Canonical name of a unit ("minute" .. "month"). */
const char *eo_q_unit_name(eo_q_unit_t u);
/* Shortest length of one bucket of the unit in any zone, seconds (for bounding counts). */
int64_t eo_q_unit_min_s(eo_q_unit_t u);

/* minute|hour|day|week|month and hourly|daily|weekly|monthly. */
int eo_q_interval(const char *s, size_t n, eo_q_unit_t *out) EO_MUST_CHECK;
/* day|week and daily|weekly. */
int eo_q_period(const char *s, size_t n, eo_q_unit_t *out) EO_MUST_CHECK;

/* A decimal integer in [min, max] (digits only, no sign, no leading '+', at most 18 digits). */
int eo_q_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out) EO_MUST_CHECK;

/* A duration "<digits><s|m|h|d|w>" between 1 s and max_s; seconds in *out. */
int eo_q_within(const char *s, size_t n, int64_t max_s, int64_t *out) EO_MUST_CHECK;

/* A property path: 1..4 names joined by '.', each 1..64 of [A-Za-z0-9_$-]. Writes the
 * PostgreSQL text-array literal of the path ({"a","b"}) into out (cap bytes). */
#define EO_Q_PROPERTY_MAX 259 /* 4 names of 64 and 3 dots */
int eo_q_property(const char *s, size_t n, char *out, size_t cap) EO_MUST_CHECK;

/* True when s (n bytes) is valid UTF-8 without control characters (U+0000..U+001F, U+007F). */
bool eo_q_text_ok(const char *s, size_t n);

/* Splits a comma-separated list of 1..max_items non-empty items of at most max_item bytes of
 * text (eo_q_text_ok); starts[i]/lens[i] point into s. */
int eo_q_list(const char *s, size_t n, size_t max_items, size_t max_item, const char **starts,
              size_t *lens, size_t *count) EO_MUST_CHECK;

/* An IANA zone name's shape: 1..64 of [A-Za-z0-9_+/-], no leading '/'. (Whether the
 * zone exists is the caller's check.) */
bool eo_q_zone_shape_ok(const char *s, size_t n);

/* Raw-events cursor: the last row's time and message id (1..EO_Q_CURSOR_ID_MAX bytes of
 * eo_q_text_ok text), as base64url of: version 1, the time (8 bytes, big-endian), the id's
 * length (2 bytes, big-endian), the id. The length makes a truncated cursor invalid. */
#define EO_Q_CURSOR_ID_MAX 4096 /* EVENTOPS_MAX_ID_BYTES can be at most this */
#define EO_Q_CURSOR_MAX 5480    /* the longest cursor (5476 characters) and its NUL, rounded up */
/* EO_EINVAL for an id that is empty, too long or not clean text, or a time outside years
 * 0000..9999. */
int eo_q_cursor_encode(int64_t occurred_us, const char *message_id, size_t id_len,
                       char out[EO_Q_CURSOR_MAX]) EO_MUST_CHECK;
/* Decodes a cursor; id gets the message id, NUL-terminated (it must fit in id_cap bytes). */
int eo_q_cursor_decode(const char *s, size_t n, int64_t *occurred_us, char *id,
                       size_t id_cap) EO_MUST_CHECK;

#endif
