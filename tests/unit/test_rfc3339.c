/* Unit tests of src/domain/rfc3339.h: parsing (syntax vs range errors, zones, fractions, leap
 * days and seconds), formatting in UTC and at a local offset (eo_rfc3339_format_local: whole
 * seconds and fractions, the returned length, the UTC form when the local time leaves years
 * 0000..9999), and the civil-date arithmetic underneath. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "domain/rfc3339.h"

#define S_US INT64_C(1000000)
#define DAY_US (INT64_C(86400) * S_US)

/* 2024-01-01T00:00:00Z, a reference point for the zone rows. */
#define T2024 INT64_C(1704067200000000)

typedef struct {
    const char *in;
    int64_t want;
} ok_row_t;

static const ok_row_t ok_rows[] = {
    /* zone designators and separators */
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01T00:00:00z", 0},
    {"1970-01-01t00:00:00Z", 0},
    {"1970-01-01t00:00:00z", 0},
    {"1970-01-01T00:00:00+00:00", 0},
    {"1970-01-01T00:00:00-00:00", 0},
    {"2024-01-01T00:00:00Z", T2024},
    {"2024-01-01T05:30:00+05:30", T2024},
    {"2023-12-31T20:30:00-03:30", T2024},
    {"2024-01-01T14:00:00+14:00", T2024},
    {"2023-12-31T12:00:00-12:00", T2024},
    {"2024-01-01T23:59:00+23:59", T2024},
    {"2023-12-31T00:01:00-23:59", T2024},
    /* fractions of 1..9 digits, truncated (not rounded) to microseconds */
    {"2024-01-01T00:00:00.1Z", T2024 + 100000},
    {"2024-01-01T00:00:00.12Z", T2024 + 120000},
    {"2024-01-01T00:00:00.123Z", T2024 + 123000},
    {"2024-01-01T00:00:00.1234Z", T2024 + 123400},
    {"2024-01-01T00:00:00.12345Z", T2024 + 123450},
    {"2024-01-01T00:00:00.123456Z", T2024 + 123456},
    {"2024-01-01T00:00:00.1234567Z", T2024 + 123456},
    {"2024-01-01T00:00:00.12345678Z", T2024 + 123456},
    {"2024-01-01T00:00:00.123456789Z", T2024 + 123456},
    {"2024-01-01T00:00:00.999999999Z", T2024 + 999999},
    {"2024-01-01T00:00:00.000001Z", T2024 + 1},
    {"2024-01-01T00:00:00.0000009Z", T2024},
    {"2024-01-01T05:30:00.5+05:30", T2024 + 500000},
    /* leap second: :60 counts as the next second */
    {"2016-12-31T23:59:60Z", INT64_C(1483228800000000)},
    {"2016-12-31T23:59:60.5Z", INT64_C(1483228800500000)},
    /* leap years */
    {"2024-02-29T12:34:56Z", INT64_C(1709210096000000)},
    {"2000-02-29T00:00:00Z", INT64_C(951782400000000)},
    {"2023-02-28T00:00:00Z", INT64_C(1677542400000000)},
    /* before 1970 */
    {"1969-12-31T23:59:59Z", -S_US},
    {"1969-12-31T23:59:59.5Z", -500000},
    {"1969-12-31T23:59:59.999999Z", -1},
    {"1969-07-20T20:17:40Z", INT64_C(-14182940000000)},
    {"1900-01-01T00:00:00Z", INT64_C(-2208988800000000)},
    {"0001-01-01T00:00:00Z", INT64_C(-62135596800000000)},
    {"0000-01-01T00:00:00Z", INT64_C(-62167219200000000)},
    /* far end, and 2^31 seconds */
    {"9999-12-31T23:59:59.999999Z", INT64_C(253402300799999999)},
    {"2038-01-19T03:14:08Z", INT64_C(2147483648000000)},
};

typedef struct {
    const char *in;
    int want; /* EO_EPARSE (syntax) or EO_EINVAL (a field out of range) */
} bad_row_t;

static const bad_row_t bad_rows[] = {
    /* fields out of range: syntactically fine */
    {"2024-00-01T00:00:00Z", EO_EINVAL},
    {"2024-13-01T00:00:00Z", EO_EINVAL},
    {"2024-01-00T00:00:00Z", EO_EINVAL},
    {"2024-01-32T00:00:00Z", EO_EINVAL},
    {"2024-04-31T00:00:00Z", EO_EINVAL},
    {"2024-02-30T00:00:00Z", EO_EINVAL},
    {"2023-02-29T00:00:00Z", EO_EINVAL},
    {"1900-02-29T00:00:00Z", EO_EINVAL},
    {"2024-01-01T24:00:00Z", EO_EINVAL},
    {"2024-01-01T00:60:00Z", EO_EINVAL},
    {"2024-01-01T00:00:61Z", EO_EINVAL},
    {"2024-01-01T00:00:99Z", EO_EINVAL},
    {"2024-01-01T00:00:00+24:00", EO_EINVAL},
    {"2024-01-01T00:00:00-99:00", EO_EINVAL},
    {"2024-01-01T00:00:00+05:60", EO_EINVAL},
    /* garbage */
    {"", EO_EPARSE},
    {"2024", EO_EPARSE},
    {"2024-01-01", EO_EPARSE},
    {"2024-01-01T", EO_EPARSE},
    {"2024-01-01T00:00", EO_EPARSE},
    {"2024-01-01T00:00Z", EO_EPARSE},
    {"2024-01-01T00:00:00", EO_EPARSE},
    {"2024-01-01T00:00:00.", EO_EPARSE},
    {"2024-01-01T00:00:00.Z", EO_EPARSE},
    {"2024-01-01T00:00:00,5Z", EO_EPARSE},
    {"2024-01-01T00:00:00.1234567890123456789Z", EO_EPARSE},
    {"2024-01-01T00:00:00Zx", EO_EPARSE},
    {"2024-01-01T00:00:00ZZ", EO_EPARSE},
    {"2024-01-01T00:00:00+05:30Z", EO_EPARSE},
    {"2024-01-01T00:00:00UTC", EO_EPARSE},
    {"2024-01-01T00:00:00GMT+1", EO_EPARSE},
    {"2024-01-01T00:00:00+0530", EO_EPARSE},
    {"2024-01-01T00:00:00+05", EO_EPARSE},
    {"2024-01-01T00:00:00+05:3", EO_EPARSE},
    {"2024-01-01T00:00:00+5:30", EO_EPARSE},
    {"2024-01-01T00:00:00+", EO_EPARSE},
    {"2024-01-01 00:00:00Z", EO_EPARSE},
    {"2024-01-01_00:00:00Z", EO_EPARSE},
    {"2024-01-01x00:00:00Z", EO_EPARSE},
    {"2024/01/01T00:00:00Z", EO_EPARSE},
    {"2024-01-01T00.00.00Z", EO_EPARSE},
    {"24-01-01T00:00:00Z", EO_EPARSE},
    {"02024-01-01T00:00:00Z", EO_EPARSE},
    {"-2024-01-01T00:00:00Z", EO_EPARSE},
    {"+2024-01-01T00:00:00Z", EO_EPARSE},
    {"2024-1-01T00:00:00Z", EO_EPARSE},
    {"2024-01-1T00:00:00Z", EO_EPARSE},
    {"2024-01-01T0:00:00Z", EO_EPARSE},
    {"2024-01-01T0a:00:00Z", EO_EPARSE},
    {" 2024-01-01T00:00:00Z", EO_EPARSE},
    {"2024-01-01T00:00:00Z ", EO_EPARSE},
    {"2024-01-01T00:00:00 Z", EO_EPARSE},
    {"2024-01-01T00:00:00\nZ", EO_EPARSE},
    {"１９７０-01-01T00:00:00Z", EO_EPARSE},
    {"not a timestamp at all", EO_EPARSE},
    /* a syntax error wins over a range error */
    {"2024-13-01T00:00:00", EO_EPARSE},
    {"2024-01-01T25:00:00+0100", EO_EPARSE},
};

static void test_parse_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ok_rows / sizeof ok_rows[0]; i++) {
        const ok_row_t *row = &ok_rows[i];
        int64_t us = 42;
        int r = eo_rfc3339_parse(row->in, strlen(row->in), &us);
        if (r != 0 || us != row->want)
            fail_msg("'%s': r=%d us=%" PRId64 ", want 0 and %" PRId64, row->in, r, us, row->want);
    }
}

static void test_parse_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        const bad_row_t *row = &bad_rows[i];
        int64_t us = 0;
        int r = eo_rfc3339_parse(row->in, strlen(row->in), &us);
        if (r != row->want)
            fail_msg("'%s': r=%d, want %d", row->in, r, row->want);
    }
}

/* The parser reads exactly n bytes: no NUL terminator needed, nothing read past n. */
static void test_parse_length_bounded(void **state)
{
    (void)state;
    const char *s = "2024-01-01T00:00:00Zgarbage";
    int64_t us = 0;
    assert_int_equal(eo_rfc3339_parse(s, 20, &us), 0);
    assert_true(us == T2024);
    assert_int_equal(eo_rfc3339_parse(s, 19, &us), EO_EPARSE);
    assert_int_equal(eo_rfc3339_parse(s, 21, &us), EO_EPARSE);
    assert_int_equal(eo_rfc3339_parse(s, 0, &us), EO_EPARSE);
    for (size_t n = 0; n < 20; n++) /* every prefix is incomplete */
        assert_int_equal(eo_rfc3339_parse(s, n, &us), EO_EPARSE);
}

typedef struct {
    int64_t us;
    const char *text;
} fmt_row_t;

static const fmt_row_t fmt_rows[] = {
    {0, "1970-01-01T00:00:00.000000Z"},
    {1, "1970-01-01T00:00:00.000001Z"},
    {-1, "1969-12-31T23:59:59.999999Z"},
    {-S_US, "1969-12-31T23:59:59.000000Z"},
    {-DAY_US, "1969-12-31T00:00:00.000000Z"},
    {-DAY_US - 1, "1969-12-30T23:59:59.999999Z"},
    {T2024 + 123456, "2024-01-01T00:00:00.123456Z"},
    {INT64_C(1709210096000000), "2024-02-29T12:34:56.000000Z"},
    {INT64_C(-2208988800000000), "1900-01-01T00:00:00.000000Z"},
    {INT64_C(-62167219200000000), "0000-01-01T00:00:00.000000Z"},
    {INT64_C(253402300799999999), "9999-12-31T23:59:59.999999Z"},
};

static void test_format(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fmt_rows / sizeof fmt_rows[0]; i++) {
        char out[EO_RFC3339_MAX];
        size_t n = eo_rfc3339_format(fmt_rows[i].us, out);
        assert_string_equal(out, fmt_rows[i].text);
        assert_int_equal(n, strlen(fmt_rows[i].text));
        assert_int_equal(n, 27);
    }
}

typedef struct {
    int64_t us, offset_s;
    const char *text;
} local_row_t;

#define HOUR_S INT64_C(3600)
#define MINUTE_S INT64_C(60)
#define MIN_US (EO_RFC3339_MIN_S * S_US)          /* 0000-01-01T00:00:00.000000Z */
#define MAX_US (EO_RFC3339_MAX_S * S_US + 999999) /* 9999-12-31T23:59:59.999999Z */
#define T9999_23H INT64_C(253402297200000000)     /* 9999-12-31T23:00:00Z */

static const local_row_t local_rows[] = {
    /* UTC, and whole-hour offsets either side */
    {T2024, 0, "2024-01-01T00:00:00+00:00"},
    {T2024, HOUR_S, "2024-01-01T01:00:00+01:00"},
    {T2024, 2 * HOUR_S, "2024-01-01T02:00:00+02:00"},
    {T2024 + 12 * HOUR_S * S_US, -5 * HOUR_S, "2024-01-01T07:00:00-05:00"},
    {T2024 + 12 * HOUR_S * S_US, 14 * HOUR_S, "2024-01-02T02:00:00+14:00"},
    {T2024 + 12 * HOUR_S * S_US, -12 * HOUR_S, "2024-01-01T00:00:00-12:00"},
    /* half-hour and 45-minute offsets (Kolkata, Newfoundland, Marquesas, Kathmandu, Chatham) */
    {T2024, 5 * HOUR_S + 30 * MINUTE_S, "2024-01-01T05:30:00+05:30"},
    {T2024, -(3 * HOUR_S + 30 * MINUTE_S), "2023-12-31T20:30:00-03:30"},
    {T2024, -(9 * HOUR_S + 30 * MINUTE_S), "2023-12-31T14:30:00-09:30"},
    {T2024, 5 * HOUR_S + 45 * MINUTE_S, "2024-01-01T05:45:00+05:45"},
    {T2024, 12 * HOUR_S + 45 * MINUTE_S, "2024-01-01T12:45:00+12:45"},
    {T2024, 10 * HOUR_S + 30 * MINUTE_S, "2024-01-01T10:30:00+10:30"}, /* Lord Howe, summer */
    {T2024 - 5 * HOUR_S * S_US - 45 * MINUTE_S * S_US, 5 * HOUR_S + 45 * MINUTE_S,
     "2024-01-01T00:00:00+05:45"},
    /* a local midnight (a day bucket's start) */
    {T2024 - HOUR_S * S_US, HOUR_S, "2024-01-01T00:00:00+01:00"},
    {T2024 + 5 * HOUR_S * S_US, -5 * HOUR_S, "2024-01-01T00:00:00-05:00"},
    {INT64_C(1711666800000000), HOUR_S, "2024-03-29T00:00:00+01:00"}, /* docs/query.md's example */
    /* fractions kept only when not whole seconds, all six digits */
    {T2024 + 500000, HOUR_S, "2024-01-01T01:00:00.500000+01:00"},
    {T2024 + 1, 0, "2024-01-01T00:00:00.000001+00:00"},
    {T2024 + 999999, -(3 * HOUR_S + 30 * MINUTE_S), "2023-12-31T20:30:00.999999-03:30"},
    {T2024 + S_US, 0, "2024-01-01T00:00:01+00:00"},
    {T2024 - 1, 0, "2023-12-31T23:59:59.999999+00:00"},
    /* before 1970: negative times */
    {-1, 0, "1969-12-31T23:59:59.999999+00:00"},
    {-S_US, HOUR_S, "1970-01-01T00:59:59+01:00"},
    {-S_US, -HOUR_S, "1969-12-31T22:59:59-01:00"},
    {-500000, 5 * HOUR_S + 30 * MINUTE_S, "1970-01-01T05:29:59.500000+05:30"},
    {INT64_C(-2208988800000000), -5 * HOUR_S, "1899-12-31T19:00:00-05:00"},
    /* the date rolls over at midnight, across months, a leap day and years */
    {INT64_C(1709247600000000), HOUR_S, "2024-03-01T00:00:00+01:00"},     /* 2024-02-29T23:00Z */
    {INT64_C(1709247600000000), -HOUR_S, "2024-02-29T22:00:00-01:00"},    /* same instant */
    {INT64_C(1709164800000000), -HOUR_S, "2024-02-28T23:00:00-01:00"},    /* 2024-02-29T00:00Z */
    {INT64_C(1704063600000000), 2 * HOUR_S, "2024-01-01T01:00:00+02:00"}, /* 2023-12-31T23:00Z */
    {T2024 + 30 * MINUTE_S * S_US, -HOUR_S, "2023-12-31T23:30:00-01:00"},
    {INT64_C(946684799000000), 1, "2000-01-01T00:00:00+00:00"}, /* a 1 s offset */
    {INT64_C(946684799000000), 14 * HOUR_S, "2000-01-01T13:59:59+14:00"},
    /* an offset with seconds (local mean time): the wall clock keeps them, the offset not */
    {0, -(4 * HOUR_S + 56 * MINUTE_S + 2), "1969-12-31T19:03:58-04:56"},
    {0, 19 * MINUTE_S + 32, "1970-01-01T00:19:32+00:19"},
    /* the ends of the parsed range, at offset 0 */
    {INT64_C(-62167219200000000), 0, "0000-01-01T00:00:00+00:00"},
    {INT64_C(253402300799999999), 0, "9999-12-31T23:59:59.999999+00:00"},
    {INT64_C(-62167219200000000), 14 * HOUR_S, "0000-01-01T14:00:00+14:00"},
    {INT64_C(253402300799000000), -12 * HOUR_S, "9999-12-31T11:59:59-12:00"},
    /* the longest local form: a fraction and an offset, 32 characters */
    {T2024 + 123456, 5 * HOUR_S + 45 * MINUTE_S, "2024-01-01T05:45:00.123456+05:45"},
    {T2024 - 1, -(23 * HOUR_S + 59 * MINUTE_S), "2023-12-31T00:00:59.999999-23:59"},
    {MAX_US, 0, "9999-12-31T23:59:59.999999+00:00"},
    {MAX_US - 14 * HOUR_S * S_US, 14 * HOUR_S, "9999-12-31T23:59:59.999999+14:00"},
    {MAX_US - 5 * HOUR_S * S_US, 5 * HOUR_S, "9999-12-31T23:59:59.999999+05:00"},
    {MIN_US + 1, 0, "0000-01-01T00:00:00.000001+00:00"},
    {MIN_US + 12 * HOUR_S * S_US + 1, -12 * HOUR_S, "0000-01-01T00:00:00.000001-12:00"},
    {MIN_US + 5 * HOUR_S * S_US, -5 * HOUR_S, "0000-01-01T00:00:00-05:00"},
    /* a local time outside 0000..9999: the UTC form of eo_rfc3339_format, 27 characters */
    {T9999_23H, 5 * HOUR_S, "9999-12-31T23:00:00.000000Z"},
    {T9999_23H, HOUR_S, "9999-12-31T23:00:00.000000Z"},
    {T9999_23H, HOUR_S - 1, "9999-12-31T23:59:59+00:59"}, /* still inside */
    {MIN_US, -5 * HOUR_S, "0000-01-01T00:00:00.000000Z"},
    {MIN_US, -1, "0000-01-01T00:00:00.000000Z"},
    {MIN_US + 123456, -HOUR_S, "0000-01-01T00:00:00.123456Z"},
    {MIN_US + 5 * HOUR_S * S_US - 1, -5 * HOUR_S, "0000-01-01T04:59:59.999999Z"},
    {MAX_US - 5 * HOUR_S * S_US + 1, 5 * HOUR_S, "9999-12-31T19:00:00.000000Z"},
    {MAX_US, 1, "9999-12-31T23:59:59.999999Z"},
    {MAX_US, 14 * HOUR_S, "9999-12-31T23:59:59.999999Z"},
    {EO_RFC3339_MAX_S * S_US, 1, "9999-12-31T23:59:59.000000Z"},
    {MIN_US, -12 * HOUR_S, "0000-01-01T00:00:00.000000Z"},
};

static void test_format_local(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof local_rows / sizeof local_rows[0]; i++) {
        const local_row_t *row = &local_rows[i];
        char out[EO_RFC3339_MAX + 8];
        memset(out, 'X', sizeof out);
        size_t n = eo_rfc3339_format_local(row->us, row->offset_s, out);
        if (strnlen(out, sizeof out) != strlen(row->text) || strcmp(out, row->text) != 0 ||
            n != strlen(row->text))
            fail_msg("local row %zu (%" PRId64 ", %+" PRId64 " s): '%.*s' (%zu), want '%s'", i,
                     row->us, row->offset_s, (int)sizeof out, out, n, row->text);
        for (size_t k = n + 1; k < sizeof out; k++) /* nothing past the NUL */
            if (out[k] != 'X')
                fail_msg("local row %zu: byte %zu written", i, k);
    }
    /* every form fits: 25, 32 (fraction) or 27 (UTC fallback) characters and the NUL */
    assert_true(32 < EO_RFC3339_MAX);
}

/* For whole-minute offsets the text denotes the same instant: parse(format_local(us, off)) == us
 * over the whole of 0000..9999, near its ends too (deterministic LCG sweep). A local time inside
 * 0000..9999 gives the local form (25 characters, 32 with a fraction) ending in the offset;
 * outside it, exactly eo_rfc3339_format(us) (27 characters). */
static void test_format_local_round_trip(void **state)
{
    (void)state;
    static const int64_t offsets[] = {0,
                                      HOUR_S,
                                      -HOUR_S,
                                      5 * HOUR_S + 30 * MINUTE_S,
                                      -(3 * HOUR_S + 30 * MINUTE_S),
                                      5 * HOUR_S + 45 * MINUTE_S,
                                      14 * HOUR_S,
                                      -12 * HOUR_S,
                                      13 * HOUR_S + 45 * MINUTE_S,
                                      -(9 * HOUR_S + 30 * MINUTE_S),
                                      -23 * HOUR_S - 59 * MINUTE_S,
                                      23 * HOUR_S + 59 * MINUTE_S};
    const uint64_t edge = (uint64_t)(2 * DAY_US);
    uint64_t x = 0x2545f4914f6cdd1du;
    size_t inside = 0, outside = 0;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int64_t us;
        if (i % 4 == 2) /* within two days of either end */
            us = MIN_US + (int64_t)(x % edge);
        else if (i % 4 == 3)
            us = MAX_US - (int64_t)(x % edge);
        else
            us = MIN_US + (int64_t)(x % (uint64_t)(MAX_US - MIN_US + 1));
        if (i % 3 == 0)
            us -= us % S_US; /* whole seconds too (towards 0: stays in range) */
        int64_t off = offsets[(x >> 33) % (sizeof offsets / sizeof offsets[0])];
        int64_t local = us + off * S_US;
        char out[EO_RFC3339_MAX], utc[EO_RFC3339_MAX];
        int64_t back = 0;
        size_t n = eo_rfc3339_format_local(us, off, out);
        eo_rfc3339_format(us, utc);
        bool ok;
        if (local >= MIN_US && local <= MAX_US) {
            inside++;
            char sign[32];
            snprintf(sign, sizeof sign, "%c%02d:%02d", off < 0 ? '-' : '+',
                     (int)((off < 0 ? -off : off) / 3600), (int)((off < 0 ? -off : off) / 60 % 60));
            ok = n == (us % S_US == 0 ? 25u : 32u) && strcmp(out + n - 6, sign) == 0;
        } else {
            outside++;
            ok = n == 27 && strcmp(out, utc) == 0;
        }
        if (!ok || n != strlen(out) || eo_rfc3339_parse(out, n, &back) != 0 || back != us)
            fail_msg("%" PRId64 " at %+" PRId64 " s -> '%s' (%zu) -> %" PRId64, us, off, out, n,
                     back);
    }
    assert_true(inside > 0 && outside > 0); /* both forms were met */
}

/* format(parse(x)) == x for canonical text; for other spellings it is the UTC form. */
static void test_round_trip_text(void **state)
{
    (void)state;
    static const char *const canonical[] = {
        "1970-01-01T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z", "2000-02-29T00:00:00.000000Z",
        "1969-12-31T23:59:59.999999Z", "1900-03-01T12:00:00.000001Z", "0000-01-01T00:00:00.000000Z",
        "0000-02-29T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z", "1582-10-15T01:02:03.040506Z",
        "2100-02-28T10:20:30.405060Z",
    };
    for (size_t i = 0; i < sizeof canonical / sizeof canonical[0]; i++) {
        int64_t us;
        char out[EO_RFC3339_MAX];
        assert_int_equal(eo_rfc3339_parse(canonical[i], strlen(canonical[i]), &us), 0);
        eo_rfc3339_format(us, out);
        assert_string_equal(out, canonical[i]);
    }
    static const char *const other[][2] = {
        {"2024-01-01T05:30:00.5+05:30", "2024-01-01T00:00:00.500000Z"},
        {"2023-12-31t20:30:00-03:30", "2024-01-01T00:00:00.000000Z"},
        {"2016-12-31T23:59:60z", "2017-01-01T00:00:00.000000Z"},
        {"2024-03-01T00:00:00+01:00", "2024-02-29T23:00:00.000000Z"},
        {"1970-01-01T00:00:00.123456789Z", "1970-01-01T00:00:00.123456Z"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        int64_t us;
        char out[EO_RFC3339_MAX];
        assert_int_equal(eo_rfc3339_parse(other[i][0], strlen(other[i][0]), &us), 0);
        eo_rfc3339_format(us, out);
        assert_string_equal(out, other[i][1]);
    }
}

/* parse(format(us)) == us over the whole 0000..9999 range (deterministic LCG sweep). */
static void test_round_trip_us(void **state)
{
    (void)state;
    const int64_t lo = INT64_C(-62167219200000000), hi = INT64_C(253402300799999999);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        int64_t us = lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
        char out[EO_RFC3339_MAX];
        int64_t back = 0;
        size_t n = eo_rfc3339_format(us, out);
        assert_int_equal(n, 27);
        if (eo_rfc3339_parse(out, n, &back) != 0 || back != us)
            fail_msg("%" PRId64 " -> '%s' -> %" PRId64, us, out, back);
    }
}

static void test_epoch_zero(void **state)
{
    (void)state;
    int64_t us = -1;
    assert_int_equal(eo_rfc3339_parse("1970-01-01T00:00:00Z", 20, &us), 0);
    assert_true(us == 0);
    assert_true(eo_days_from_civil(1970, 1, 1) == 0);
    int64_t y;
    unsigned m, d;
    eo_civil_from_days(0, &y, &m, &d);
    assert_true(y == 1970);
    assert_int_equal(m, 1);
    assert_int_equal(d, 1);
}

static void test_civil_known_points(void **state)
{
    (void)state;
    static const struct {
        int64_t y;
        unsigned m, d;
        int64_t days;
    } rows[] = {
        {1970, 1, 1, 0},      {1969, 12, 31, -1},    {1970, 1, 2, 1},         {2000, 3, 1, 11017},
        {2000, 2, 29, 11016}, {2024, 1, 1, 19723},   {1900, 1, 1, -25567},    {0, 3, 1, -719468},
        {0, 1, 1, -719528},   {-1, 12, 31, -719529}, {9999, 12, 31, 2932896},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_true(eo_days_from_civil(rows[i].y, rows[i].m, rows[i].d) == rows[i].days);
        int64_t y;
        unsigned m, d;
        eo_civil_from_days(rows[i].days, &y, &m, &d);
        assert_true(y == rows[i].y);
        assert_int_equal(m, rows[i].m);
        assert_int_equal(d, rows[i].d);
    }
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Every day from year -2000 to 12000: round trip, and consecutive days are consecutive
 * dates of the proleptic Gregorian calendar. */
static void test_civil_round_trip_wide(void **state)
{
    (void)state;
    const int64_t first = eo_days_from_civil(-2000, 1, 1), last = eo_days_from_civil(12000, 1, 1);
    int64_t py;
    unsigned pm, pd;
    eo_civil_from_days(first, &py, &pm, &pd);
    assert_true(py == -2000 && pm == 1 && pd == 1);
    for (int64_t days = first + 1; days <= last; days++) {
        int64_t y;
        unsigned m, d;
        eo_civil_from_days(days, &y, &m, &d);
        if (eo_days_from_civil(y, m, d) != days)
            fail_msg("day %" PRId64 " -> %" PRId64 "-%u-%u does not map back", days, y, m, d);
        bool next_day = y == py && m == pm && d == pd + 1;
        bool next_month = y == py && m == pm + 1 && d == 1 && pd == month_days(py, pm);
        bool next_year = y == py + 1 && m == 1 && d == 1 && pm == 12 && pd == 31;
        if (!next_day && !next_month && !next_year)
            fail_msg("day %" PRId64 ": %" PRId64 "-%u-%u follows %" PRId64 "-%u-%u", days, y, m, d,
                     py, pm, pd);
        py = y;
        pm = m;
        pd = d;
    }
    assert_true(py == 12000 && pm == 1 && pd == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_parse_length_bounded),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_local),
        cmocka_unit_test(test_format_local_round_trip),
        cmocka_unit_test(test_round_trip_text),
        cmocka_unit_test(test_round_trip_us),
        cmocka_unit_test(test_epoch_zero),
        cmocka_unit_test(test_civil_known_points),
        cmocka_unit_test(test_civil_round_trip_wide),
    };
    return cmocka_run_group_tests_name("rfc3339", tests, NULL, NULL);
}
