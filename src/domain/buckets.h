/* The bucket maths of the query API (docs/query.md): which rollup rows and which raw events
 * answer a count over time buckets. Pure: no I/O; bucket boundaries are passed in.
 *
 * Where the boundaries come from: the local-time bucket starts of an IANA zone (a local day,
 * week or month, an hour of a zone with a half-hour offset, the days that DST makes 23 or 25
 * hours long) are computed by PostgreSQL (eventops_buckets() and eventops_local_start() in
 * sql/migrations/0005_query.sql, on its own tz database); this module takes them as UTC
 * microseconds. What it does with them:
 *  - bounds the number of buckets of a range before any query is sent
 *    (eo_buckets_too_many);
 *  - makes the first bucket start at or before the range's start (eo_buckets_anchor);
 *  - cuts every bucket, clipped to the range, into whole UTC days, hours, quarter hours and
 *    minutes (the rollup granularities) and the sub-minute rest (raw events), in time order,
 *    merging neighbouring pieces of one granularity (eo_pieces_cut). A rollup row lies inside
 *    one bucket whenever its piece does, so a UTC day's row is used only where the whole UTC
 *    day lies in one bucket (never across a local midnight). */
#ifndef EO_DOMAIN_BUCKETS_H
#define EO_DOMAIN_BUCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/qparams.h"

#define EO_US_PER_MIN INT64_C(60000000)
#define EO_US_PER_QUARTER (15 * EO_US_PER_MIN)
#define EO_US_PER_HOUR (60 * EO_US_PER_MIN)
#define EO_US_PER_DAY (24 * EO_US_PER_HOUR)

/* The rollup granularities, largest first (rollups.granularity in sql/); EO_LEVEL_RAW stands
 * for raw events. */
typedef enum {
    EO_LEVEL_DAY,
    EO_LEVEL_HOUR,
    EO_LEVEL_QUARTER,
    EO_LEVEL_MINUTE,
    EO_LEVEL_RAW
} eo_level_t;

/* "day", "hour", "quarter", "minute" (the rollups' granularity names), "raw". */
const char *eo_level_name(eo_level_t level);
/* Length of one rollup row of the level, microseconds (0 for EO_LEVEL_RAW). */
int64_t eo_level_us(eo_level_t level);

/* t rounded down / up to a multiple of g (> 0), for negative t too. */
int64_t eo_floor_to(int64_t t, int64_t g);
int64_t eo_ceil_to(int64_t t, int64_t g);

/* True when [from_us, to_us) surely holds far more than max buckets of the unit in any zone
 * (more than 4 * max + 8 of its shortest length): refused before asking the database. */
bool eo_buckets_too_many(int64_t from_us, int64_t to_us, eo_q_unit_t unit, int64_t max);

/* Bucket starts as the database gives them (the last start at or before from, if any, then
 * those inside the range) into buckets that start at or before from_us: when there is none,
 * or the first starts after from_us, from_us is put first with the zone offset of the bucket
 * after it (0 when there is none). start and offset must have room for n + 1 entries;
 * returns the new count. */
size_t eo_buckets_anchor(int64_t *start, int64_t *offset, size_t n, int64_t from_us);

/* Rollup and raw pieces of a range, in time order. Sub-minute (raw) pieces arise only where a
 * bucket edge is not a whole minute: at most this many. */
#define EO_PIECES_MAX_RAW 8

typedef struct {
    eo_level_t level; /* EO_LEVEL_DAY .. EO_LEVEL_MINUTE */
    int64_t start_us, end_us;
} eo_piece_t;

typedef struct {
    eo_piece_t *rollup; /* owned; neighbours of one level merged */
    size_t n, cap;
    int64_t raw_start[EO_PIECES_MAX_RAW], raw_end[EO_PIECES_MAX_RAW]; /* never merged */
    size_t nraw;
    int err; /* first failure: EO_ELIMIT (too many raw pieces) or EO_ENOMEM */
} eo_pieces_t;

void eo_pieces_init(eo_pieces_t *p);
void eo_pieces_done(eo_pieces_t *p);

/* Cuts the n buckets [start[i], start[i + 1]) (the last ends at to_us), each clipped to
 * [from_us, to_us), into pieces appended to p. A raw piece's start names its bucket; a rollup
 * piece may span buckets (each of its rows lies in one). 0, or EO_ELIMIT when more than
 * EO_PIECES_MAX_RAW raw pieces are needed, or EO_ENOMEM (also kept in p->err). */
int eo_pieces_cut(eo_pieces_t *p, const int64_t *start, size_t n, int64_t from_us,
                  int64_t to_us) EO_MUST_CHECK;

#endif
