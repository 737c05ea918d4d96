/* Event timelines (ADR-23, docs/schema.md "timelines"): per (tenant, event type, UTC hour) the
 * exact times of the events with their users' numbers, so funnels are answered without reading
 * the events. The deltas a batch of newly stored events adds, their encoding, and the funnel
 * evaluated over decoded timelines. Pure: no I/O.
 *
 * Encoding of one hour (all integers LEB128 varints, unsigned): a version byte (1), the number
 * of users U, then per user in ascending user number: the gap to the previous user's number (the
 * first: the number itself), the count c >= 1 of its times, the first time as microseconds after
 * the hour's start (< 3,600,000,000), and c - 1 increments to the next time (ascending, no
 * repeats). Equal (user, time) pairs are kept once: a funnel takes the earliest time of a user
 * after another, which a repeated pair cannot change. */
#ifndef EO_DOMAIN_TIMELINE_H
#define EO_DOMAIN_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "domain/userset.h"

/* The bucket of a timeline row and of a delta: the UTC hour holding the event. */
#define EO_TIMELINE_BUCKET_US INT64_C(3600000000)

/* One event in a timeline: its user's number and its time (µs since the Unix epoch). */
typedef struct {
    uint32_t user_no;
    int64_t t_us;
} eo_timeline_entry_t;

/* A growable array of entries. */
typedef struct {
    eo_timeline_entry_t *e;
    size_t n, cap;
} eo_timeline_vec_t;

void eo_timeline_vec_done(eo_timeline_vec_t *v);

/* One delta row: the events of (tenant, type, hour), encoded at bytes[off, off+len) of the blob
 * buffer. event_type borrows from the events. */
typedef struct {
    const char *tenant_id;
    eo_str_t event_type;
    int64_t bucket_start_us;
    size_t off, len;
} eo_timeline_row_t;

/* The delta rows of n stored events (the user sets' view of an event: tenant, type, time, user
 * number): one per (tenant, type, hour), sorted by tenant, type and hour; their encodings
 * appended to blob (which is reset). *rows (free()) and *nrows are set; n = 0 gives no rows.
 * Returns 0, EO_ENOMEM, or blob's error. */
int eo_timeline_delta(const eo_userset_event_t *events, size_t n, eo_timeline_row_t **rows,
                      size_t *nrows, eo_buf_t *blob) EO_MUST_CHECK;

/* Sorts e[0, *n) by (user, time) and drops repeated pairs (*n shrinks). */
void eo_timeline_sort_unique(eo_timeline_entry_t *e, size_t *n);

/* Appends the encoding of e[0, n) (sorted and unique, every time inside the hour that starts at
 * bucket_start_us) to out. EO_EINVAL for entries that are not so; else 0 or out's error. */
int eo_timeline_encode(const eo_timeline_entry_t *e, size_t n, int64_t bucket_start_us,
                       eo_buf_t *out) EO_MUST_CHECK;

/* Appends the entries of the encoded hour bytes[0, len) starting at bucket_start_us to v.
 * EO_EDATA when the bytes are not such an encoding (v keeps what it had), EO_ENOMEM. */
int eo_timeline_decode(const void *bytes, size_t len, int64_t bucket_start_us,
                       eo_timeline_vec_t *v) EO_MUST_CHECK;

/* A funnel (docs/query.md): nsteps (2..EO_FUNNEL_MAX_STEPS) steps; steps[k] holds the events of
 * step k's type (any order, repeats allowed; several steps may share one vector); same_type[k]
 * (k >= 1) says step k has step k-1's type. For each user, t1 is the earliest step-0 event with
 * from <= t < to; step k is reached by the earliest event of its type at or after step k-1's
 * time (strictly after when same_type[k]) and before t1 + within. users[k] gets how many users
 * reached step k. */
#define EO_FUNNEL_MAX_STEPS 100
typedef struct {
    size_t nsteps;
    const eo_timeline_vec_t *steps[EO_FUNNEL_MAX_STEPS];
    bool same_type[EO_FUNNEL_MAX_STEPS];
    int64_t from_us, to_us, within_us;
} eo_funnel_t;

/* 0, EO_EINVAL (bad step count), or EO_ENOMEM. Memory: 25 bytes per user number up to the
 * highest one in step 0. */
int eo_funnel_eval(const eo_funnel_t *f, uint64_t *users) EO_MUST_CHECK;

#endif
