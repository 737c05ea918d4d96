/* Sets of users as roaring bitmaps of per-tenant user numbers (ADR-22, docs/schema.md "user
 * sets"): the deltas a batch of newly stored events adds, and the operations the compactor and
 * the query role need on stored sets (CRoaring's portable format, so any version of CRoaring,
 * or another language's Roaring library, reads them). Pure: no I/O. */
#ifndef EO_DOMAIN_USERSET_H
#define EO_DOMAIN_USERSET_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "domain/event.h"

/* The bucket of a delta: the UTC quarter hour holding the event. */
#define EO_USERSET_DELTA_US INT64_C(900000000)

/* One stored event: tenant (36 characters), type, time, and its user's number. */
typedef struct {
    const char *tenant_id;
    eo_str_t event_type;
    int64_t occurred_at_us;
    uint32_t user_no;
} eo_userset_event_t;

/* One delta row: the users of (tenant, type, quarter hour), serialised at bytes[off, off+len)
 * of the blob buffer. event_type borrows from the events ({"", 0}: all types together). */
typedef struct {
    const char *tenant_id;
    eo_str_t event_type;
    int64_t bucket_start_us;
    size_t off, len;
} eo_userset_row_t;

/* The order of delta rows (and of their keys): tenant, event type (bytewise), bucket. */
int eo_delta_group_cmp(const char *tenant_a, eo_str_t type_a, int64_t bucket_a,
                       const char *tenant_b, eo_str_t type_b, int64_t bucket_b);

/* A delta's group: tenant (36 characters), type, bucket start. */
typedef struct {
    const char *tenant_id;
    eo_str_t event_type;
    int64_t bucket;
} eo_delta_group_t;

/* Sets rank[i] to the place of g[i]'s group (equal tenant, type and bucket) among the distinct
 * groups of g[0, n) in eo_delta_group_cmp order (0-based), so that sorting by rank orders as
 * eo_delta_group_cmp does, with integer comparisons. Returns the number of groups, or
 * EO_ENOMEM. */
long eo_delta_rank(const eo_delta_group_t *g, size_t n, uint32_t *rank) EO_MUST_CHECK;

/* The delta rows of n events: one per (tenant, type, quarter hour) and per (tenant, "", quarter
 * hour), sorted by tenant, type and bucket; their bitmaps appended to blob (which is reset).
 * *rows (free()) and *nrows are set; n = 0 gives no rows. Returns 0, EO_ENOMEM, or blob's
 * error. */
int eo_userset_delta(const eo_userset_event_t *events, size_t n, eo_userset_row_t **rows,
                     size_t *nrows, eo_buf_t *blob) EO_MUST_CHECK;

/* A set under construction or read back (an opaque roaring bitmap). */
typedef struct eo_userset eo_userset_t;

eo_userset_t *eo_userset_new(void);
void eo_userset_free(eo_userset_t *s);
/* Adds one user number. */
void eo_userset_add(eo_userset_t *s, uint32_t user_no);
/* Adds every member of the serialised set bytes[0, len). EO_EDATA when the bytes are not a
 * portable roaring bitmap (nothing is added), EO_ENOMEM. */
int eo_userset_add_serialized(eo_userset_t *s, const void *bytes, size_t len) EO_MUST_CHECK;
/* Adds every member of other. */
void eo_userset_add_set(eo_userset_t *s, const eo_userset_t *other);
/* Removes every member of other. */
void eo_userset_remove_set(eo_userset_t *s, const eo_userset_t *other);
uint64_t eo_userset_count(const eo_userset_t *s);
/* |a AND b| */
uint64_t eo_userset_and_count(const eo_userset_t *a, const eo_userset_t *b);
/* A new set a AND b, or NULL (out of memory). */
eo_userset_t *eo_userset_and(const eo_userset_t *a, const eo_userset_t *b);
/* Appends the portable serialisation to out (compressing runs first). 0 or out's error. */
int eo_userset_serialize(eo_userset_t *s, eo_buf_t *out) EO_MUST_CHECK;

#endif
