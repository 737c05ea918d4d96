/* IANA time zones: the TZif parser and the day and week bounds (see tz.h). A parsed zone keeps,
 * per transition, its instant, the offset from then on and the latest local time shown before
 * it ("reach"). The latest local time shown at or before t never decreases with t, so the first
 * instant that has shown a given local time is one binary search over the reaches; day and week
 * starts are such first instants of a local midnight. Immutable once parsed: no lock. */
#include "domain/tz.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US INT64_C(1000000)
#define DAY_US (86400 * US)
#define HEADER_LEN 44
#define MAX_TYPES 256
/* RFC 8536 section 3.2: utoff SHOULD be in -89999 .. 93599 (just inside -25 h .. +26 h). */
#define MIN_UTOFF (-89999)
#define MAX_UTOFF 93599
/* Transitions kept: within 2^61 microseconds of the epoch, twice the exact range, so that every
 * sum of an instant, an offset and a few days stays far from overflow. */
#define KEEP_S ((INT64_C(1) << 61) / US)

struct eo_tz {
    size_t n;            /* transitions kept */
    int64_t initial_off; /* offset before the first transition (us) */
    int64_t *at;         /* n transition instants, strictly ascending (us) */
    int64_t *off;        /* off[i]: offset from at[i] until at[i+1] (us) */
    int64_t *reach;      /* reach[i]: the latest local time shown before at[i] (us) */
    int64_t storage[];   /* the three arrays */
};

/* The counts of a TZif header (RFC 8536 section 3.1), in the file's order. */
typedef struct {
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} header_t;

__attribute__((format(printf, 3, 4))) static int refuse(char *err, size_t errlen, const char *fmt,
                                                        ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return EO_EPARSE;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Reads the header at p (len bytes from there): the magic, the version and the counts. */
static int read_header(const uint8_t *p, size_t len, const char *which, uint8_t *version,
                       header_t *h, char *err, size_t errlen)
{
    if (len < HEADER_LEN)
        return refuse(err, errlen, "TZif %s header truncated: %zu of %d bytes", which, len,
                      HEADER_LEN);
    if (memcmp(p, "TZif", 4) != 0)
        return refuse(err, errlen, "not a TZif file: bad magic in the %s header", which);
    *version = p[4];
    if (*version != 0 && (*version < '2' || *version > '4'))
        return refuse(err, errlen, "unsupported TZif version byte 0x%02x", *version);
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    return 0;
}

/* The length of the data block after a header, for 4- or 8-byte times. Each count is below
 * 2^32, so the sum stays below 2^40: no overflow in 64 bits. */
static uint64_t block_len(const header_t *h, unsigned time_size)
{
    return (uint64_t)h->timecnt * time_size + h->timecnt + (uint64_t)h->typecnt * 6 + h->charcnt +
           (uint64_t)h->leapcnt * (time_size + 4) + h->isstdcnt + h->isutcnt;
}

/* The counts' rules (RFC 8536 section 3.1), and the block fits in the avail bytes. */
static int check_counts(const header_t *h, unsigned time_size, size_t avail, char *err,
                        size_t errlen)
{
    if (h->typecnt == 0)
        return refuse(err, errlen, "no local time types (typecnt 0)");
    if (h->typecnt > MAX_TYPES)
        return refuse(err, errlen, "typecnt %u is above %d", h->typecnt, MAX_TYPES);
    if (h->charcnt == 0)
        return refuse(err, errlen, "no time zone designations (charcnt 0)");
    if (h->isstdcnt != 0 && h->isstdcnt != h->typecnt)
        return refuse(err, errlen, "isstdcnt %u is neither 0 nor typecnt %u", h->isstdcnt,
                      h->typecnt);
    if (h->isutcnt != 0 && h->isutcnt != h->typecnt)
        return refuse(err, errlen, "isutcnt %u is neither 0 nor typecnt %u", h->isutcnt,
                      h->typecnt);
    uint64_t need = block_len(h, time_size);
    if (need > avail)
        return refuse(err, errlen,
                      "counts need %llu bytes of data, %zu left (truncated, or counts too large)",
                      (unsigned long long)need, avail);
    return 0;
}

/* Checks the data block at p (counts already checked to fit) and builds the zone from it. */
static int build(const uint8_t *p, const header_t *h, unsigned time_size, eo_tz_t **out, char *err,
                 size_t errlen)
{
    const uint8_t *times = p;
    const uint8_t *idx = times + (size_t)h->timecnt * time_size;
    const uint8_t *types = idx + h->timecnt;
    const uint8_t *isstd =
        types + (size_t)h->typecnt * 6 + h->charcnt + (size_t)h->leapcnt * (time_size + 4);
    const uint8_t *isut = isstd + h->isstdcnt;

    if (h->leapcnt != 0)
        return refuse(err, errlen,
                      "%u leap-second records: zones counting leap seconds (\"right/\") are not "
                      "supported",
                      h->leapcnt);
    int64_t utoff[MAX_TYPES];
    for (uint32_t i = 0; i < h->typecnt; i++) {
        const uint8_t *t = types + (size_t)i * 6;
        int32_t o = (int32_t)be32(t);
        if (o < MIN_UTOFF || o > MAX_UTOFF)
            return refuse(err, errlen, "type %u: UTC offset %d s out of range", i, o);
        if (t[4] > 1)
            return refuse(err, errlen, "type %u: isdst %u is neither 0 nor 1", i, t[4]);
        if (t[5] >= h->charcnt)
            return refuse(err, errlen, "type %u: designation index %u not below charcnt %u", i,
                          t[5], h->charcnt);
        utoff[i] = (int64_t)o * US;
    }
    for (uint32_t i = 0; i < h->isstdcnt; i++) {
        if (isstd[i] > 1)
            return refuse(err, errlen, "type %u: standard/wall indicator %u", i, isstd[i]);
        if (h->isutcnt && isut[i] > 1)
            return refuse(err, errlen, "type %u: UT/local indicator %u", i, isut[i]);
        if (h->isutcnt && isut[i] == 1 && isstd[i] == 0)
            return refuse(err, errlen, "type %u: UT indicator without standard indicator", i);
    }
    if (h->isstdcnt == 0)
        for (uint32_t i = 0; i < h->isutcnt; i++)
            if (isut[i] != 0)
                return refuse(err, errlen, "type %u: UT indicator without standard indicator", i);

    /* Transitions: strictly ascending, types in range; those far outside the exact range are
     * dropped (the last one before it sets the initial offset). */
    size_t first = 0, kept = 0;
    int64_t initial = utoff[0], prev = 0;
    for (uint32_t i = 0; i < h->timecnt; i++) {
        int64_t at = time_size == 8 ? be64(times + (size_t)i * 8)
                                    : (int64_t)(int32_t)be32(times + (size_t)i * 4);
        if (i > 0 && at <= prev)
            return refuse(err, errlen, "transition %u (%lld) is not after the one before", i,
                          (long long)at);
        prev = at;
        if (idx[i] >= h->typecnt)
            return refuse(err, errlen, "transition %u: type %u not below typecnt %u", i, idx[i],
                          h->typecnt);
        if (at < -KEEP_S) {
            initial = utoff[idx[i]];
            first = (size_t)i + 1;
        } else if (at <= KEEP_S) {
            kept++;
        }
    }

    eo_tz_t *tz = malloc(sizeof *tz + 3 * kept * sizeof(int64_t));
    if (!tz)
        return EO_ENOMEM;
    tz->n = kept;
    tz->initial_off = initial;
    tz->at = tz->storage;
    tz->off = tz->storage + kept;
    tz->reach = tz->storage + 2 * kept;
    int64_t before = initial;
    for (size_t k = 0; k < kept; k++) {
        size_t i = first + k;
        int64_t at = time_size == 8 ? be64(times + i * 8) : (int64_t)(int32_t)be32(times + i * 4);
        tz->at[k] = at * US;
        tz->off[k] = utoff[idx[i]];
        int64_t shown = tz->at[k] - 1 + before; /* local time just before the transition */
        tz->reach[k] = k > 0 && tz->reach[k - 1] > shown ? tz->reach[k - 1] : shown;
        before = tz->off[k];
    }
    *out = tz;
    return 0;
}

int eo_tz_parse(const void *data, size_t len, eo_tz_t **out, char *err, size_t errlen)
{
    const uint8_t *p = data;
    header_t h;
    uint8_t version, version2;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!p)
        len = 0;
    int rc = read_header(p, len, "first", &version, &h, err, errlen);
    if (rc)
        return rc;
    if (version == 0) {
        rc = check_counts(&h, 4, len - HEADER_LEN, err, errlen);
        return rc ? rc : build(p + HEADER_LEN, &h, 4, out, err, errlen);
    }

    /* Version 2 and later: skip the 32-bit block (only its length matters: readers of version
     * 2+ ignore it), and use the 64-bit one after a second header. */
    uint64_t skip = block_len(&h, 4);
    if (skip > len - HEADER_LEN)
        return refuse(err, errlen, "version 1 block needs %llu bytes, %zu left (truncated?)",
                      (unsigned long long)skip, len - HEADER_LEN);
    size_t off = HEADER_LEN + (size_t)skip;
    rc = read_header(p + off, len - off, "second", &version2, &h, err, errlen);
    if (rc)
        return rc;
    if (version2 != version)
        return refuse(err, errlen, "second header's version 0x%02x differs from 0x%02x", version2,
                      version);
    off += HEADER_LEN;
    rc = check_counts(&h, 8, len - off, err, errlen);
    if (rc)
        return rc;
    /* The footer (not applied, see tz.h) is framed by newlines: its absence means truncation. */
    size_t foot = off + (size_t)block_len(&h, 8);
    if (foot >= len || p[foot] != '\n' || !memchr(p + foot + 1, '\n', len - foot - 1))
        return refuse(err, errlen, "footer missing or not framed by newlines (truncated?)");
    return build(p + off, &h, 8, out, err, errlen);
}

void eo_tz_free(eo_tz_t *tz)
{
    free(tz);
}

size_t eo_tz_transitions(const eo_tz_t *tz)
{
    return tz ? tz->n : 0;
}

static int64_t clamp(int64_t t)
{
    return t < EO_TZ_MIN_US ? EO_TZ_MIN_US : t > EO_TZ_MAX_US ? EO_TZ_MAX_US : t;
}

/* floor(a / b) for b > 0, also for negative a. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return a % b != 0 && a < 0 ? q - 1 : q;
}

/* The index of the last transition at or before t, or -1 before the first. */
static ptrdiff_t segment_of(const eo_tz_t *tz, int64_t t)
{
    size_t lo = 0, hi = tz->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

static int64_t offset_in(const eo_tz_t *tz, ptrdiff_t seg)
{
    return seg < 0 ? tz->initial_off : tz->off[seg];
}

/* The latest local time shown at or before t (t already clamped). */
static int64_t reached(const eo_tz_t *tz, int64_t t)
{
    if (!tz)
        return t;
    ptrdiff_t seg = segment_of(tz, t);
    int64_t local = t + offset_in(tz, seg);
    return seg >= 0 && tz->reach[seg] > local ? tz->reach[seg] : local;
}

/* The first instant u with reached(u) >= local. The first transition whose reach is at least
 * local ends the segment where it is reached (the last segment when none does); within that
 * segment the clock shows local at local - offset, or already at the segment's start. */
static int64_t first_reaching(const eo_tz_t *tz, int64_t local)
{
    if (!tz)
        return local;
    size_t lo = 0, hi = tz->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->reach[mid] >= local)
            hi = mid;
        else
            lo = mid + 1;
    }
    ptrdiff_t seg = (ptrdiff_t)lo - 1;
    int64_t u = local - offset_in(tz, seg);
    return seg >= 0 && u < tz->at[seg] ? tz->at[seg] : u;
}

int64_t eo_tz_offset_us(const eo_tz_t *tz, int64_t t_us)
{
    return tz ? offset_in(tz, segment_of(tz, clamp(t_us))) : 0;
}

/* The local day (days since 1970-01-01) holding t: the latest date shown at or before t. */
static int64_t day_of(const eo_tz_t *tz, int64_t t_us)
{
    return floor_div(reached(tz, clamp(t_us)), DAY_US);
}

/* The local day of the Monday starting the ISO week of day d (1970-01-05 was a Monday). */
static int64_t monday_of(int64_t d)
{
    return d - (d + 3 - floor_div(d + 3, 7) * 7);
}

int64_t eo_tz_day_start(const eo_tz_t *tz, int64_t t_us)
{
    return first_reaching(tz, day_of(tz, t_us) * DAY_US);
}

int64_t eo_tz_day_end(const eo_tz_t *tz, int64_t t_us)
{
    return first_reaching(tz, (day_of(tz, t_us) + 1) * DAY_US);
}

int64_t eo_tz_week_start(const eo_tz_t *tz, int64_t t_us)
{
    return first_reaching(tz, monday_of(day_of(tz, t_us)) * DAY_US);
}

int64_t eo_tz_week_end(const eo_tz_t *tz, int64_t t_us)
{
    return first_reaching(tz, (monday_of(day_of(tz, t_us)) + 7) * DAY_US);
}
