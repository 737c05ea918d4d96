/* The bucket maths of the query API (see buckets.h). */
#include "domain/buckets.h"

#include <stdlib.h>
#include <string.h>

#include "core/array.h"

const char *eo_level_name(eo_level_t level)
{
    static const char *const names[] = {"day", "hour", "quarter", "minute", "raw"};
    return names[level];
}

int64_t eo_level_us(eo_level_t level)
{
    static const int64_t us[] = {EO_US_PER_DAY, EO_US_PER_HOUR, EO_US_PER_QUARTER, EO_US_PER_MIN,
                                 0};
    return us[level];
}

int64_t eo_floor_to(int64_t t, int64_t g)
{
    int64_t q = t / g;
    if (t % g != 0 && t < 0)
        q--;
    return q * g;
}

int64_t eo_ceil_to(int64_t t, int64_t g)
{
    int64_t f = eo_floor_to(t, g);
    return f == t ? t : f + g;
}

bool eo_buckets_too_many(int64_t from_us, int64_t to_us, eo_q_unit_t unit, int64_t max)
{
    int64_t estimate = (to_us - from_us) / (eo_q_unit_min_s(unit) * 1000000) + 2;
    return estimate > 4 * max + 8;
}

size_t eo_buckets_anchor(int64_t *start, int64_t *offset, size_t n, int64_t from_us)
{
    if (n > 0 && start[0] <= from_us)
        return n;
    memmove(start + 1, start, n * sizeof *start);
    memmove(offset + 1, offset, n * sizeof *offset);
    start[0] = from_us;
    offset[0] = n ? offset[1] : 0;
    return n + 1;
}

void eo_pieces_init(eo_pieces_t *p)
{
    memset(p, 0, sizeof *p);
}

void eo_pieces_done(eo_pieces_t *p)
{
    if (!p)
        return;
    free(p->rollup);
    memset(p, 0, sizeof *p);
}

/* Appends one piece: a raw piece as it is, a rollup piece merged into the last one when that
 * has the same level and ends where this one starts. */
static void piece(eo_pieces_t *p, eo_level_t level, int64_t s, int64_t e)
{
    if (p->err)
        return;
    if (level == EO_LEVEL_RAW) {
        if (p->nraw == EO_PIECES_MAX_RAW) {
            p->err = EO_ELIMIT;
            return;
        }
        p->raw_start[p->nraw] = s;
        p->raw_end[p->nraw] = e;
        p->nraw++;
        return;
    }
    eo_piece_t *last = p->n ? &p->rollup[p->n - 1] : NULL;
    if (last && last->level == level && last->end_us == s) {
        last->end_us = e;
        return;
    }
    if (EO_ARRAY_RESERVE(p->rollup, p->cap, p->n + 1, 64) < 0) {
        p->err = EO_ENOMEM;
        return;
    }
    p->rollup[p->n++] = (eo_piece_t){level, s, e};
}

/* Cuts [s, e) into whole units of level, then of the finer levels, in time order. */
static void split(eo_pieces_t *p, int64_t s, int64_t e, eo_level_t level)
{
    if (s >= e)
        return;
    if (level == EO_LEVEL_RAW) {
        piece(p, EO_LEVEL_RAW, s, e);
        return;
    }
    int64_t g = eo_level_us(level);
    int64_t cs = eo_ceil_to(s, g), fe = eo_floor_to(e, g);
    if (cs >= fe) {
        split(p, s, e, (eo_level_t)(level + 1));
        return;
    }
    split(p, s, cs, (eo_level_t)(level + 1));
    piece(p, level, cs, fe);
    split(p, fe, e, (eo_level_t)(level + 1));
}

int eo_pieces_cut(eo_pieces_t *p, const int64_t *start, size_t n, int64_t from_us, int64_t to_us)
{
    for (size_t i = 0; i < n && !p->err; i++) {
        int64_t s = start[i] > from_us ? start[i] : from_us;
        int64_t e = i + 1 < n && start[i + 1] < to_us ? start[i + 1] : to_us;
        split(p, s, e, EO_LEVEL_DAY);
    }
    return p->err;
}
