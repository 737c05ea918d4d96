/* Unit tests of src/domain/buckets.h: floors and ceilings (negative times too), the early
 * bucket-count bound, anchoring the first bucket at the range's start, and cutting buckets into
 * rollup and raw pieces: empty ranges, a range inside one minute, aligned and unaligned edges,
 * the raw-piece limit (8 pass, 9 fail), and local buckets across DST changes and odd offsets
 * (Europe/Berlin 2026-03-29 and 2026-10-25, America/New_York 2026-03-08 and 2026-11-01,
 * Australia/Lord_Howe's 30-minute shifts, Asia/Kolkata at +05:30). The local bucket starts of
 * those rows are what PostgreSQL's eventops_buckets() answers for them (sql/migrations/
 * 0005_query.sql): the C side only cuts. Every cut is also checked against the rules it must
 * keep: pieces and raw pieces cover [from, to) exactly, in time order, rollup pieces are
 * aligned to their granularity, no rollup row straddles a bucket start, raw pieces are under a
 * minute and lie inside one bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/buckets.h"
#include "domain/rfc3339.h"

#define MIN EO_US_PER_MIN
#define HOUR EO_US_PER_HOUR
#define DAY EO_US_PER_DAY

/* Microseconds of an RFC 3339 time (the test's own inputs: always valid). */
static int64_t T(const char *s)
{
    int64_t us = 0;
    if (eo_rfc3339_parse(s, strlen(s), &us) < 0)
        fail_msg("bad time in the test: %s", s);
    return us;
}

/* ---- floor and ceiling ---- */

static void test_floor_ceil(void **state)
{
    (void)state;
    static const struct {
        int64_t t, g, floor, ceil;
    } rows[] = {
        {0, MIN, 0, 0},
        {1, MIN, 0, MIN},
        {MIN, MIN, MIN, MIN},
        {MIN - 1, MIN, 0, MIN},
        {-1, MIN, -MIN, 0},
        {-MIN, MIN, -MIN, -MIN},
        {-MIN - 1, MIN, -2 * MIN, -MIN},
        {90 * MIN, HOUR, HOUR, 2 * HOUR},
        {DAY + 1, DAY, DAY, 2 * DAY},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_int_equal(eo_floor_to(rows[i].t, rows[i].g), rows[i].floor);
        assert_int_equal(eo_ceil_to(rows[i].t, rows[i].g), rows[i].ceil);
    }
}

/* ---- the early bound ---- */

static void test_too_many(void **state)
{
    (void)state;
    static const struct {
        int64_t span_us;
        eo_q_unit_t unit;
        int64_t max;
        bool want;
    } rows[] = {
        /* estimate = span / shortest bucket + 2; refused above 4 * max + 8 */
        {(4 * 10 + 6) * MIN, EO_Q_MINUTE, 10, false}, /* 48 */
        {(4 * 10 + 7) * MIN, EO_Q_MINUTE, 10, true},  /* 49 */
        {1000 * DAY, EO_Q_DAY, 5000, false},
        {1000 * DAY, EO_Q_HOUR, 5000, true}, /* 48000 half hours */
        {1, EO_Q_MONTH, 1, false},
        {INT64_C(10000) * 366 * DAY, EO_Q_MINUTE, 1000000, true},
    };
    int64_t from = T("2026-03-01T00:00:00Z");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(
            eo_buckets_too_many(from, from + rows[i].span_us, rows[i].unit, rows[i].max),
            rows[i].want);
}

/* ---- anchoring ---- */

static void test_anchor(void **state)
{
    (void)state;
    int64_t from = T("2026-03-29T00:00:00Z");
    /* a start at or before from: unchanged */
    int64_t s1[3] = {from - HOUR, from + HOUR}, o1[3] = {3600, 7200};
    assert_int_equal(eo_buckets_anchor(s1, o1, 2, from), 2);
    assert_int_equal(s1[0], from - HOUR);
    int64_t s2[3] = {from, from + HOUR}, o2[3] = {3600, 7200};
    assert_int_equal(eo_buckets_anchor(s2, o2, 2, from), 2);
    assert_int_equal(s2[0], from);
    /* the first starts after from: from goes first, with the next bucket's offset */
    int64_t s3[3] = {from + HOUR, from + 2 * HOUR}, o3[3] = {7200, 7200};
    assert_int_equal(eo_buckets_anchor(s3, o3, 2, from), 3);
    assert_int_equal(s3[0], from);
    assert_int_equal(s3[1], from + HOUR);
    assert_int_equal(s3[2], from + 2 * HOUR);
    assert_int_equal(o3[0], 7200);
    /* none at all: from alone, offset 0 */
    int64_t s4[1], o4[1];
    assert_int_equal(eo_buckets_anchor(s4, o4, 0, from), 1);
    assert_int_equal(s4[0], from);
    assert_int_equal(o4[0], 0);
}

/* ---- cutting ---- */

typedef struct {
    eo_level_t level;
    const char *start, *end;
} want_piece_t;

#define MAX_WANT 12

typedef struct {
    const char *what;
    const char *from, *to;
    const char *starts[12]; /* the bucket starts, NULL-terminated (none: from is the one start) */
    int rc;
    want_piece_t rollup[MAX_WANT];              /* terminated by a NULL start */
    const char *raw[2 * EO_PIECES_MAX_RAW + 1]; /* start, end, ...; NULL-terminated */
} cut_row_t;

static const cut_row_t cut_rows[] = {
    {"empty range", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", {NULL}, 0, {{0}}, {NULL}},
    {"a bucket that starts at to adds nothing",
     "2026-03-01T10:00:00Z",
     "2026-03-01T11:00:00Z",
     {"2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"}},
     {NULL}},
    {"inside one minute",
     "2026-03-01T10:00:05Z",
     "2026-03-01T10:00:40.5Z",
     {NULL},
     0,
     {{0}},
     {"2026-03-01T10:00:05Z", "2026-03-01T10:00:40.5Z", NULL}},
    {"one whole minute",
     "2026-03-01T10:07:00Z",
     "2026-03-01T10:08:00Z",
     {NULL},
     0,
     {{EO_LEVEL_MINUTE, "2026-03-01T10:07:00Z", "2026-03-01T10:08:00Z"}},
     {NULL}},
    {"aligned days",
     "2026-03-01T00:00:00Z",
     "2026-03-03T00:00:00Z",
     {NULL},
     0,
     {{EO_LEVEL_DAY, "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"}},
     {NULL}},
    {"unaligned edges: every granularity on each side",
     "2026-03-01T10:07:30Z",
     "2026-03-03T13:46:10Z",
     {NULL},
     0,
     {{EO_LEVEL_MINUTE, "2026-03-01T10:08:00Z", "2026-03-01T10:15:00Z"},
      {EO_LEVEL_QUARTER, "2026-03-01T10:15:00Z", "2026-03-01T11:00:00Z"},
      {EO_LEVEL_HOUR, "2026-03-01T11:00:00Z", "2026-03-02T00:00:00Z"},
      {EO_LEVEL_DAY, "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"},
      {EO_LEVEL_HOUR, "2026-03-03T00:00:00Z", "2026-03-03T13:00:00Z"},
      {EO_LEVEL_QUARTER, "2026-03-03T13:00:00Z", "2026-03-03T13:45:00Z"},
      {EO_LEVEL_MINUTE, "2026-03-03T13:45:00Z", "2026-03-03T13:46:00Z"}},
     {"2026-03-01T10:07:30Z", "2026-03-01T10:08:00Z", "2026-03-03T13:46:00Z",
      "2026-03-03T13:46:10Z", NULL}},
    {"UTC days clipped to the range; neighbours merged",
     "2026-03-01T06:00:00Z",
     "2026-03-03T06:00:00Z",
     {"2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-03-01T06:00:00Z", "2026-03-02T00:00:00Z"},
      {EO_LEVEL_DAY, "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"},
      {EO_LEVEL_HOUR, "2026-03-03T00:00:00Z", "2026-03-03T06:00:00Z"}},
     {NULL}},
    {"the raw-piece limit: 8 pass",
     "2026-03-01T00:00:30Z",
     "2026-03-01T00:08:30Z",
     {"2026-03-01T00:00:30Z", "2026-03-01T00:02:30Z", "2026-03-01T00:04:30Z",
      "2026-03-01T00:06:30Z", NULL},
     0,
     {{EO_LEVEL_MINUTE, "2026-03-01T00:01:00Z", "2026-03-01T00:02:00Z"},
      {EO_LEVEL_MINUTE, "2026-03-01T00:03:00Z", "2026-03-01T00:04:00Z"},
      {EO_LEVEL_MINUTE, "2026-03-01T00:05:00Z", "2026-03-01T00:06:00Z"},
      {EO_LEVEL_MINUTE, "2026-03-01T00:07:00Z", "2026-03-01T00:08:00Z"}},
     {"2026-03-01T00:00:30Z", "2026-03-01T00:01:00Z", "2026-03-01T00:02:00Z",
      "2026-03-01T00:02:30Z", "2026-03-01T00:02:30Z", "2026-03-01T00:03:00Z",
      "2026-03-01T00:04:00Z", "2026-03-01T00:04:30Z", "2026-03-01T00:04:30Z",
      "2026-03-01T00:05:00Z", "2026-03-01T00:06:00Z", "2026-03-01T00:06:30Z",
      "2026-03-01T00:06:30Z", "2026-03-01T00:07:00Z", "2026-03-01T00:08:00Z",
      "2026-03-01T00:08:30Z", NULL}},
    {"the raw-piece limit: 9 fail",
     "2026-03-01T00:00:30Z",
     "2026-03-01T00:09:00Z",
     {"2026-03-01T00:00:30Z", "2026-03-01T00:02:30Z", "2026-03-01T00:04:30Z",
      "2026-03-01T00:06:30Z", "2026-03-01T00:08:30Z", NULL},
     EO_ELIMIT,
     {{0}},
     {NULL}},
    /* Europe/Berlin days, 2026-03-29 has 23 hours: no UTC day lies inside a local day */
    {"Europe/Berlin days across 2026-03-29",
     "2026-03-28T00:00:00Z",
     "2026-03-31T00:00:00Z",
     {"2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z",
      "2026-03-30T22:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"}},
     {NULL}},
    /* 2026-10-25 has 25 hours, and still holds no whole UTC day */
    {"Europe/Berlin days across 2026-10-25",
     "2026-10-24T22:00:00Z",
     "2026-10-26T23:00:00Z",
     {"2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-10-24T22:00:00Z", "2026-10-26T23:00:00Z"}},
     {NULL}},
    /* Europe/Berlin weeks (Monday local midnight): the one across 2026-03-29 is 167 hours */
    {"Europe/Berlin weeks across 2026-03-29",
     "2026-03-22T23:00:00Z",
     "2026-04-05T22:00:00Z",
     {"2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-03-22T23:00:00Z", "2026-03-23T00:00:00Z"},
      {EO_LEVEL_DAY, "2026-03-23T00:00:00Z", "2026-03-29T00:00:00Z"},
      {EO_LEVEL_HOUR, "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"},
      {EO_LEVEL_DAY, "2026-03-30T00:00:00Z", "2026-04-05T00:00:00Z"},
      {EO_LEVEL_HOUR, "2026-04-05T00:00:00Z", "2026-04-05T22:00:00Z"}},
     {NULL}},
    /* America/New_York days: 2026-03-08 has 23 hours (05:00Z to 04:00Z) */
    {"America/New_York days across 2026-03-08, from mid-bucket",
     "2026-03-07T12:00:00Z",
     "2026-03-10T00:00:00Z",
     {"2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-03-07T12:00:00Z", "2026-03-10T00:00:00Z"}},
     {NULL}},
    /* America/New_York weeks: the one across 2026-11-01 is 169 hours */
    {"America/New_York weeks across 2026-11-01",
     "2026-10-26T04:00:00Z",
     "2026-11-09T05:00:00Z",
     {"2026-10-26T04:00:00Z", "2026-11-02T05:00:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-10-26T04:00:00Z", "2026-10-27T00:00:00Z"},
      {EO_LEVEL_DAY, "2026-10-27T00:00:00Z", "2026-11-02T00:00:00Z"},
      {EO_LEVEL_HOUR, "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"},
      {EO_LEVEL_DAY, "2026-11-03T00:00:00Z", "2026-11-09T00:00:00Z"},
      {EO_LEVEL_HOUR, "2026-11-09T00:00:00Z", "2026-11-09T05:00:00Z"}},
     {NULL}},
    /* Australia/Lord_Howe hours, 2026-10-04 local: +10:30 to +11:00, a 90-minute local hour */
    {"Australia/Lord_Howe hours across the spring shift",
     "2026-10-03T14:00:00Z",
     "2026-10-03T17:30:00Z",
     {"2026-10-03T13:30:00Z", "2026-10-03T14:30:00Z", "2026-10-03T16:00:00Z",
      "2026-10-03T17:00:00Z", NULL},
     0,
     {{EO_LEVEL_QUARTER, "2026-10-03T14:00:00Z", "2026-10-03T15:00:00Z"},
      {EO_LEVEL_HOUR, "2026-10-03T15:00:00Z", "2026-10-03T17:00:00Z"},
      {EO_LEVEL_QUARTER, "2026-10-03T17:00:00Z", "2026-10-03T17:30:00Z"}},
     {NULL}},
    /* 2026-04-05 local: +11:00 back to +10:30 */
    {"Australia/Lord_Howe hours across the autumn shift",
     "2026-04-04T13:00:00Z",
     "2026-04-04T17:00:00Z",
     {"2026-04-04T13:00:00Z", "2026-04-04T14:00:00Z", "2026-04-04T15:30:00Z",
      "2026-04-04T16:30:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-04-04T13:00:00Z", "2026-04-04T15:00:00Z"},
      {EO_LEVEL_QUARTER, "2026-04-04T15:00:00Z", "2026-04-04T17:00:00Z"}},
     {NULL}},
    {"Australia/Lord_Howe days across the autumn shift",
     "2026-04-03T00:00:00Z",
     "2026-04-06T00:00:00Z",
     {"2026-04-02T13:00:00Z", "2026-04-03T13:00:00Z", "2026-04-04T13:00:00Z",
      "2026-04-05T13:30:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-04-03T00:00:00Z", "2026-04-05T13:00:00Z"},
      {EO_LEVEL_QUARTER, "2026-04-05T13:00:00Z", "2026-04-05T14:00:00Z"},
      {EO_LEVEL_HOUR, "2026-04-05T14:00:00Z", "2026-04-06T00:00:00Z"}},
     {NULL}},
    /* Asia/Kolkata days start at 18:30Z */
    {"Asia/Kolkata days",
     "2026-03-01T00:00:00Z",
     "2026-03-03T00:00:00Z",
     {"2026-02-28T18:30:00Z", "2026-03-01T18:30:00Z", "2026-03-02T18:30:00Z", NULL},
     0,
     {{EO_LEVEL_HOUR, "2026-03-01T00:00:00Z", "2026-03-01T18:00:00Z"},
      {EO_LEVEL_QUARTER, "2026-03-01T18:00:00Z", "2026-03-01T19:00:00Z"},
      {EO_LEVEL_HOUR, "2026-03-01T19:00:00Z", "2026-03-02T18:00:00Z"},
      {EO_LEVEL_QUARTER, "2026-03-02T18:00:00Z", "2026-03-02T19:00:00Z"},
      {EO_LEVEL_HOUR, "2026-03-02T19:00:00Z", "2026-03-03T00:00:00Z"}},
     {NULL}},
    /* Asia/Kolkata hours start at :30 UTC: no UTC hour row lies in one */
    {"Asia/Kolkata hours, unaligned from",
     "2026-03-01T00:10:00Z",
     "2026-03-01T03:00:00Z",
     {"2026-02-28T23:30:00Z", "2026-03-01T00:30:00Z", "2026-03-01T01:30:00Z",
      "2026-03-01T02:30:00Z", NULL},
     0,
     {{EO_LEVEL_MINUTE, "2026-03-01T00:10:00Z", "2026-03-01T00:15:00Z"},
      {EO_LEVEL_QUARTER, "2026-03-01T00:15:00Z", "2026-03-01T03:00:00Z"}},
     {NULL}},
};

/* The rules every cut keeps (see the file comment). */
static void check_rules(const cut_row_t *row, const eo_pieces_t *p, const int64_t *starts, size_t n,
                        int64_t from, int64_t to)
{
    /* covered exactly, in order: merge the two lists by start */
    int64_t at = from;
    size_t i = 0, k = 0;
    while (i < p->n || k < p->nraw) {
        bool take_raw = k < p->nraw && (i == p->n || p->raw_start[k] < p->rollup[i].start_us);
        int64_t s = take_raw ? p->raw_start[k] : p->rollup[i].start_us;
        int64_t e = take_raw ? p->raw_end[k] : p->rollup[i].end_us;
        if (s != at || e <= s)
            fail_msg("%s: piece [%lld, %lld) does not follow %lld", row->what, (long long)s,
                     (long long)e, (long long)at);
        if (take_raw) {
            assert_true(e - s < MIN);
            for (size_t b = 0; b < n; b++) /* inside one bucket */
                assert_false(starts[b] > s && starts[b] < e);
            k++;
        } else {
            int64_t g = eo_level_us(p->rollup[i].level);
            assert_int_equal(eo_floor_to(s, g), s);
            assert_int_equal(eo_floor_to(e, g), e);
            for (size_t b = 0; b < n; b++) /* no row straddles a bucket start */
                if (starts[b] > s && starts[b] < e)
                    assert_int_equal(eo_floor_to(starts[b], g), starts[b]);
            if (i > 0 && p->rollup[i - 1].level == p->rollup[i].level)
                assert_true(p->rollup[i - 1].end_us != s); /* merged */
            i++;
        }
        at = e;
    }
    assert_int_equal(at, from < to ? to : from);
}

static void test_cut(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof cut_rows / sizeof cut_rows[0]; r++) {
        const cut_row_t *row = &cut_rows[r];
        int64_t from = T(row->from), to = T(row->to), starts[12];
        size_t n = 0;
        for (; row->starts[n]; n++)
            starts[n] = T(row->starts[n]);
        if (n == 0)
            starts[n++] = from;
        eo_pieces_t p;
        eo_pieces_init(&p);
        int rc = eo_pieces_cut(&p, starts, n, from, to);
        if (rc != row->rc)
            fail_msg("%s: %d, want %d", row->what, rc, row->rc);
        if (rc == 0) {
            size_t want_n = 0, want_raw = 0;
            while (want_n < MAX_WANT && row->rollup[want_n].start)
                want_n++;
            while (row->raw[2 * want_raw])
                want_raw++;
            if (p.n != want_n || p.nraw != want_raw)
                fail_msg("%s: %zu rollup and %zu raw pieces, want %zu and %zu", row->what, p.n,
                         p.nraw, want_n, want_raw);
            for (size_t i = 0; i < want_n; i++) {
                const want_piece_t *w = &row->rollup[i];
                if (p.rollup[i].level != w->level || p.rollup[i].start_us != T(w->start) ||
                    p.rollup[i].end_us != T(w->end))
                    fail_msg("%s: piece %zu differs (want %s %s..%s)", row->what, i,
                             eo_level_name(w->level), w->start, w->end);
            }
            for (size_t k = 0; k < want_raw; k++) {
                assert_int_equal(p.raw_start[k], T(row->raw[2 * k]));
                assert_int_equal(p.raw_end[k], T(row->raw[2 * k + 1]));
            }
            check_rules(row, &p, starts, n, from, to);
        } else {
            assert_int_equal(p.err, rc);
            /* the error sticks */
            assert_int_equal(eo_pieces_cut(&p, starts, 1, from, from + MIN), rc);
        }
        eo_pieces_done(&p);
    }
}

/* Many buckets: the rollup array grows, and the rules hold for every zone-like offset. */
static void test_cut_many(void **state)
{
    (void)state;
    static const int64_t offsets_s[] = {0, 3600, -18000, 19800, 37800, 39600, 20700};
    int64_t from = T("2026-01-01T00:00:00Z"), to = T("2026-07-01T00:00:00Z");
    size_t n = 0;
    int64_t *starts = calloc(201, sizeof *starts), *offsets = calloc(201, sizeof *offsets);
    assert_non_null(starts);
    assert_non_null(offsets);
    for (size_t z = 0; z < sizeof offsets_s / sizeof offsets_s[0]; z++) {
        n = 0;
        for (int64_t t = from - offsets_s[z] * 1000000; t < to && n < 200; t += DAY)
            starts[n++] = t;
        n = eo_buckets_anchor(starts, offsets, n, from);
        eo_pieces_t p;
        eo_pieces_init(&p);
        cut_row_t row = {.what = "many days"};
        assert_int_equal(eo_pieces_cut(&p, starts, n, from, to), 0);
        check_rules(&row, &p, starts, n, from, to);
        if (offsets_s[z] == 0)
            assert_int_equal(p.n, 1); /* UTC: one merged day piece */
        eo_pieces_done(&p);
    }
    free(starts);
    free(offsets);
    eo_pieces_done(NULL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(eo_level_name(EO_LEVEL_DAY), "day");
    assert_string_equal(eo_level_name(EO_LEVEL_HOUR), "hour");
    assert_string_equal(eo_level_name(EO_LEVEL_QUARTER), "quarter");
    assert_string_equal(eo_level_name(EO_LEVEL_MINUTE), "minute");
    assert_int_equal(eo_level_us(EO_LEVEL_QUARTER), 15 * MIN);
    assert_int_equal(eo_level_us(EO_LEVEL_RAW), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floor_ceil), cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_anchor),     cmocka_unit_test(test_cut),
        cmocka_unit_test(test_cut_many),   cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
