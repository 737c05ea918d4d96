/* Unit tests of src/domain/qparams.h (docs/query.md): tables where every rule has a passing and
 * a failing row for interval and period names, eo_q_int (bounds, 18/19 digits, signs, spaces),
 * within durations (units, 1 s .. max, overflow), property paths and the exact text[] literal
 * they give (names, lengths, characters, cap), eo_q_text_ok (UTF-8 forms, control characters),
 * eo_q_list (items, lengths, empty pieces), zone-name shape, and the raw-events cursor (round
 * trips with ids of 1..4096 bytes and times from the first microsecond of year 0 to the last of
 * 9999, golden encodings, refusals of hand-made cursors: version, length field, truncation,
 * id_cap, id text, time; and the encoder refusing exactly what the decoder refuses). Every
 * parser is also called on buffers that are not NUL-terminated, to show it reads only the given
 * length. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/b64.h"
#include "domain/qparams.h"
#include "domain/rfc3339.h"

#define S_US INT64_C(1000000)
#define T2024 INT64_C(1704067200000000)           /* 2024-01-01T00:00:00Z */
#define MIN_US (EO_RFC3339_MIN_S * S_US)          /* 0000-01-01T00:00:00.000000Z */
#define MAX_US (EO_RFC3339_MAX_S * S_US + 999999) /* 9999-12-31T23:59:59.999999Z */
#define DAYS90 (INT64_C(90) * 86400)

/* A string literal with its length, NULs inside included. */
#define L(lit) lit, sizeof(lit) - 1

/* ---- interval and period ---- */

typedef struct {
    const char *in;
    int want; /* 0 or EO_EINVAL */
    eo_q_unit_t unit;
} unit_row_t;

static const unit_row_t interval_rows[] = {
    /* canonical names */
    {"minute", 0, EO_Q_MINUTE},
    {"hour", 0, EO_Q_HOUR},
    {"day", 0, EO_Q_DAY},
    {"week", 0, EO_Q_WEEK},
    {"month", 0, EO_Q_MONTH},
    /* aliases */
    {"hourly", 0, EO_Q_HOUR},
    {"daily", 0, EO_Q_DAY},
    {"weekly", 0, EO_Q_WEEK},
    {"monthly", 0, EO_Q_MONTH},
    /* case-sensitive */
    {"Day", EO_EINVAL, 0},
    {"DAY", EO_EINVAL, 0},
    {"Hourly", EO_EINVAL, 0},
    {"MONTH", EO_EINVAL, 0},
    /* whole words only */
    {"", EO_EINVAL, 0},
    {"d", EO_EINVAL, 0},
    {"da", EO_EINVAL, 0},
    {"days", EO_EINVAL, 0},
    {"dayly", EO_EINVAL, 0},
    {"min", EO_EINVAL, 0},
    {"minutes", EO_EINVAL, 0},
    {"hours", EO_EINVAL, 0},
    {"weeks", EO_EINVAL, 0},
    {"months", EO_EINVAL, 0},
    {" day", EO_EINVAL, 0},
    {"day ", EO_EINVAL, 0},
    {"day\n", EO_EINVAL, 0},
    {"dailyy", EO_EINVAL, 0},
    /* not units of this API */
    {"second", EO_EINVAL, 0},
    {"year", EO_EINVAL, 0},
    {"yearly", EO_EINVAL, 0},
    {"quarter", EO_EINVAL, 0},
    {"1d", EO_EINVAL, 0},
};

static const unit_row_t period_rows[] = {
    {"day", 0, EO_Q_DAY},
    {"week", 0, EO_Q_WEEK},
    {"daily", 0, EO_Q_DAY},
    {"weekly", 0, EO_Q_WEEK},
    /* intervals that are not periods */
    {"minute", EO_EINVAL, 0},
    {"hour", EO_EINVAL, 0},
    {"hourly", EO_EINVAL, 0},
    {"month", EO_EINVAL, 0},
    {"monthly", EO_EINVAL, 0},
    /* case, shape */
    {"Day", EO_EINVAL, 0},
    {"WEEK", EO_EINVAL, 0},
    {"", EO_EINVAL, 0},
    {"days", EO_EINVAL, 0},
    {"week ", EO_EINVAL, 0},
    {"year", EO_EINVAL, 0},
};

static void run_unit_rows(const unit_row_t *rows, size_t n, const char *what,
                          int (*parse)(const char *, size_t, eo_q_unit_t *))
{
    for (size_t i = 0; i < n; i++) {
        const unit_row_t *row = &rows[i];
        eo_q_unit_t u = (eo_q_unit_t)99;
        int r = parse(row->in, strlen(row->in), &u);
        if (r != row->want)
            fail_msg("%s row %zu '%s': got %d, want %d", what, i, row->in, r, row->want);
        if (r == 0 && u != row->unit)
            fail_msg("%s row %zu '%s': unit %d, want %d", what, i, row->in, (int)u, (int)row->unit);
    }
}

static void test_interval_rows(void **state)
{
    (void)state;
    run_unit_rows(interval_rows, sizeof interval_rows / sizeof interval_rows[0], "interval",
                  eo_q_interval);
}

static void test_period_rows(void **state)
{
    (void)state;
    run_unit_rows(period_rows, sizeof period_rows / sizeof period_rows[0], "period", eo_q_period);
}

/* docs/query.md lists the aliases hourly, daily, weekly and monthly, and nothing else: a bad
 * value is a 400. "minutely" is not in the contract (nor in qparams.h); qparams.c accepted it
 * before 396f01f. */
static void test_interval_no_minutely(void **state)
{
    (void)state;
    eo_q_unit_t u;
    assert_int_equal(eo_q_interval(L("minutely"), &u), EO_EINVAL);
}

static void test_interval_reads_len_bytes(void **state)
{
    (void)state;
    eo_q_unit_t u = (eo_q_unit_t)99;
    const char buf[] = {'w', 'e', 'e', 'k', 'l', 'y'}; /* not NUL-terminated */
    assert_int_equal(eo_q_interval(buf, sizeof buf, &u), 0);
    assert_int_equal(u, EO_Q_WEEK);
    assert_int_equal(eo_q_interval(buf, 4, &u), 0); /* "week" */
    assert_int_equal(u, EO_Q_WEEK);
    assert_int_equal(eo_q_interval(buf, 5, &u), EO_EINVAL); /* "weekl" */
    assert_int_equal(eo_q_interval(buf, 0, &u), EO_EINVAL);
    assert_int_equal(eo_q_interval(L("day\0"), &u), EO_EINVAL);
    assert_int_equal(eo_q_period(buf, 4, &u), 0);
    assert_int_equal(eo_q_period(L("daily\0"), &u), EO_EINVAL);
}

/* Canonical names round-trip through eo_q_interval; minimum lengths are positive and never
 * more than the unit's nominal length. */
static void test_unit_names(void **state)
{
    (void)state;
    static const char *const names[] = {"minute", "hour", "day", "week", "month"};
    static const int64_t nominal[] = {60, 3600, 86400, 7 * 86400, 28 * 86400};
    for (int u = EO_Q_MINUTE; u <= EO_Q_MONTH; u++) {
        assert_string_equal(eo_q_unit_name((eo_q_unit_t)u), names[u]);
        eo_q_unit_t back;
        assert_int_equal(eo_q_interval(names[u], strlen(names[u]), &back), 0);
        assert_int_equal(back, u);
        int64_t min_s = eo_q_unit_min_s((eo_q_unit_t)u);
        if (min_s <= 0 || min_s > nominal[u])
            fail_msg("unit %s: min %" PRId64 " s, nominal %" PRId64 " s", names[u], min_s,
                     nominal[u]);
    }
    assert_true(eo_q_unit_min_s(EO_Q_MINUTE) == 60); /* UTC minutes */
    assert_true(eo_q_unit_min_s(EO_Q_HOUR) <= 1800); /* Lord Howe's 30-minute shift */
    assert_true(eo_q_unit_min_s(EO_Q_DAY) <= 84600); /* a 23.5-hour day */
}

/* ---- integers ---- */

typedef struct {
    const char *in;
    int64_t min, max;
    int want;
    int64_t value;
} int_row_t;

static const int_row_t int_rows[] = {
    /* bounds are inclusive */
    {"1", 1, 1000, 0, 1},
    {"1000", 1, 1000, 0, 1000},
    {"10", 1, 1000, 0, 10},
    {"0", 1, 1000, EO_EINVAL, 0},
    {"1001", 1, 1000, EO_EINVAL, 0},
    {"0", 0, 0, 0, 0},
    {"1", 0, 0, EO_EINVAL, 0},
    {"7", 7, 7, 0, 7},
    {"6", 7, 7, EO_EINVAL, 0},
    {"8", 7, 7, EO_EINVAL, 0},
    {"90", 1, 90, 0, 90},
    {"91", 1, 90, EO_EINVAL, 0},
    {"5", 10, 1, EO_EINVAL, 0}, /* min > max: nothing fits */
    {"0", -5, 5, 0, 0},
    /* leading zeros are digits too */
    {"007", 1, 1000, 0, 7},
    {"0000", 0, 10, 0, 0},
    {"0001000", 1, 1000, 0, 1000},
    /* at most 18 digits, whatever their value */
    {"999999999999999999", 0, INT64_MAX, 0, INT64_C(999999999999999999)},
    {"000000000000000001", 0, INT64_MAX, 0, 1},
    {"100000000000000000", 0, INT64_MAX, 0, INT64_C(100000000000000000)},
    {"1000000000000000000", 0, INT64_MAX, EO_EINVAL, 0},
    {"0000000000000000001", 0, INT64_MAX, EO_EINVAL, 0},
    {"9223372036854775807", 0, INT64_MAX, EO_EINVAL, 0},
    {"9223372036854775808", 0, INT64_MAX, EO_EINVAL, 0},
    {"99999999999999999999999", 0, INT64_MAX, EO_EINVAL, 0},
    {"999999999999999999", 0, INT64_C(999999999999999998), EO_EINVAL, 0},
    /* digits only: no sign, no space, no other notation */
    {"", 0, 10, EO_EINVAL, 0},
    {"-1", -10, 10, EO_EINVAL, 0},
    {"-0", 0, 10, EO_EINVAL, 0},
    {"+1", 0, 10, EO_EINVAL, 0},
    {"+", 0, 10, EO_EINVAL, 0},
    {"-", 0, 10, EO_EINVAL, 0},
    {" 1", 0, 10, EO_EINVAL, 0},
    {"1 ", 0, 10, EO_EINVAL, 0},
    {"1 0", 0, 100, EO_EINVAL, 0},
    {"\t1", 0, 10, EO_EINVAL, 0},
    {"1\n", 0, 10, EO_EINVAL, 0},
    {"1a", 0, 100, EO_EINVAL, 0},
    {"a1", 0, 100, EO_EINVAL, 0},
    {"0x10", 0, 100, EO_EINVAL, 0},
    {"1e2", 0, 1000, EO_EINVAL, 0},
    {"1.0", 0, 10, EO_EINVAL, 0},
    {"1,000", 0, 10000, EO_EINVAL, 0},
    {"1_000", 0, 10000, EO_EINVAL, 0},
    {"\xd9\xa1", 0, 10, EO_EINVAL, 0},     /* ARABIC-INDIC DIGIT ONE */
    {"\xef\xbc\x91", 0, 10, EO_EINVAL, 0}, /* FULLWIDTH DIGIT ONE */
    {"/", 0, 10, EO_EINVAL, 0},            /* '0' - 1 */
    {":", 0, 10, EO_EINVAL, 0},            /* '9' + 1 */
};

static void test_int_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof int_rows / sizeof int_rows[0]; i++) {
        const int_row_t *row = &int_rows[i];
        int64_t v = -42;
        int r = eo_q_int(row->in, strlen(row->in), row->min, row->max, &v);
        if (r != row->want)
            fail_msg("int row %zu '%s' [%" PRId64 ", %" PRId64 "]: got %d, want %d", i, row->in,
                     row->min, row->max, r, row->want);
        if (r == 0 && v != row->value)
            fail_msg("int row %zu '%s': %" PRId64 ", want %" PRId64, i, row->in, v, row->value);
    }
}

static void test_int_reads_len_bytes(void **state)
{
    (void)state;
    int64_t v = 0;
    const char buf[] = {'1', '2', '3'}; /* not NUL-terminated */
    assert_int_equal(eo_q_int(buf, 3, 0, 1000, &v), 0);
    assert_true(v == 123);
    assert_int_equal(eo_q_int(buf, 2, 0, 1000, &v), 0);
    assert_true(v == 12);
    assert_int_equal(eo_q_int(buf, 0, 0, 1000, &v), EO_EINVAL);
    assert_int_equal(eo_q_int(L("12\0"), 0, 1000, &v), EO_EINVAL);
    assert_int_equal(eo_q_int(L("\0"
                                "12"),
                              0, 1000, &v),
                     EO_EINVAL);
    /* a 20-character text whose first 18 are digits: refused on length, not read further */
    assert_int_equal(eo_q_int("12345678901234567890", 20, 0, INT64_MAX, &v), EO_EINVAL);
}

/* ---- within ---- */

typedef struct {
    const char *in;
    int64_t max_s;
    int want;
    int64_t seconds;
} within_row_t;

static const within_row_t within_rows[] = {
    /* each unit */
    {"1s", DAYS90, 0, 1},
    {"1m", DAYS90, 0, 60},
    {"1h", DAYS90, 0, 3600},
    {"1d", DAYS90, 0, 86400},
    {"1w", DAYS90, 0, 7 * 86400},
    {"30m", DAYS90, 0, 1800},
    {"36h", DAYS90, 0, 36 * 3600},
    {"01d", DAYS90, 0, 86400}, /* leading zeros are digits */
    /* the maximum, in every unit, and one past it */
    {"90d", DAYS90, 0, DAYS90},
    {"91d", DAYS90, EO_EINVAL, 0},
    {"7776000s", DAYS90, 0, DAYS90},
    {"7776001s", DAYS90, EO_EINVAL, 0},
    {"129600m", DAYS90, 0, DAYS90},
    {"129601m", DAYS90, EO_EINVAL, 0},
    {"2160h", DAYS90, 0, DAYS90},
    {"2161h", DAYS90, EO_EINVAL, 0},
    {"12w", DAYS90, 0, 84 * 86400},
    {"13w", DAYS90, EO_EINVAL, 0}, /* 91 days */
    {"1d", 86400, 0, 86400},
    {"86400s", 86400, 0, 86400},
    {"86401s", 86400, EO_EINVAL, 0},
    {"1w", 86400, EO_EINVAL, 0},
    {"1s", 1, 0, 1},
    {"2s", 1, EO_EINVAL, 0},
    {"1s", 0, EO_EINVAL, 0}, /* no duration fits under 1 s */
    {"1m", 59, EO_EINVAL, 0},
    /* at least 1 s */
    {"0s", DAYS90, EO_EINVAL, 0},
    {"0d", DAYS90, EO_EINVAL, 0},
    {"000w", DAYS90, EO_EINVAL, 0},
    /* the number: digits only, at most 9 of them, no overflow */
    {"999999999s", INT64_MAX, 0, 999999999},
    {"999999999w", INT64_MAX, 0, INT64_C(999999999) * 7 * 86400},
    {"999999999w", DAYS90, EO_EINVAL, 0},
    {"9999999999s", INT64_MAX, EO_EINVAL, 0},
    {"0000000001s", INT64_MAX, EO_EINVAL, 0},
    {"99999999999999999999w", INT64_MAX, EO_EINVAL, 0},
    {"-1d", DAYS90, EO_EINVAL, 0},
    {"+1d", DAYS90, EO_EINVAL, 0},
    {"1.5d", DAYS90, EO_EINVAL, 0},
    {" 1d", DAYS90, EO_EINVAL, 0},
    {"1 d", DAYS90, EO_EINVAL, 0},
    {"1d ", DAYS90, EO_EINVAL, 0},
    {"1d\n", DAYS90, EO_EINVAL, 0},
    {"0x1d", DAYS90, EO_EINVAL, 0},
    /* the unit: one of s m h d w, lower case, last */
    {"1y", DAYS90, EO_EINVAL, 0},
    {"1M", DAYS90, EO_EINVAL, 0},
    {"1D", DAYS90, EO_EINVAL, 0},
    {"1S", DAYS90, EO_EINVAL, 0},
    {"1H", DAYS90, EO_EINVAL, 0},
    {"1W", DAYS90, EO_EINVAL, 0},
    {"1ms", DAYS90, EO_EINVAL, 0},
    {"1dd", DAYS90, EO_EINVAL, 0},
    {"1h30m", DAYS90, EO_EINVAL, 0},
    {"1day", DAYS90, EO_EINVAL, 0},
    {"d1", DAYS90, EO_EINVAL, 0},
    /* a number and a unit, both present */
    {"", DAYS90, EO_EINVAL, 0},
    {"d", DAYS90, EO_EINVAL, 0},
    {"s", DAYS90, EO_EINVAL, 0},
    {"10", DAYS90, EO_EINVAL, 0},
    {"86400", DAYS90, EO_EINVAL, 0},
};

static void test_within_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof within_rows / sizeof within_rows[0]; i++) {
        const within_row_t *row = &within_rows[i];
        int64_t v = -42;
        int r = eo_q_within(row->in, strlen(row->in), row->max_s, &v);
        if (r != row->want)
            fail_msg("within row %zu '%s' max %" PRId64 ": got %d, want %d", i, row->in, row->max_s,
                     r, row->want);
        if (r == 0 && v != row->seconds)
            fail_msg("within row %zu '%s': %" PRId64 " s, want %" PRId64, i, row->in, v,
                     row->seconds);
    }
}

static void test_within_reads_len_bytes(void **state)
{
    (void)state;
    int64_t v = 0;
    const char buf[] = {'4', '5', 'm'}; /* not NUL-terminated */
    assert_int_equal(eo_q_within(buf, 3, DAYS90, &v), 0);
    assert_true(v == 2700);
    assert_int_equal(eo_q_within(buf, 2, DAYS90, &v), EO_EINVAL); /* "45" */
    assert_int_equal(eo_q_within(buf, 1, DAYS90, &v), EO_EINVAL);
    assert_int_equal(eo_q_within(buf, 0, DAYS90, &v), EO_EINVAL);
    assert_int_equal(eo_q_within(L("1d\0"), DAYS90, &v), EO_EINVAL);
    assert_int_equal(eo_q_within(L("1\0d"), DAYS90, &v), EO_EINVAL);
}

/* ---- property paths ---- */

#define CAP_DEFAULT (2 * EO_Q_PROPERTY_MAX + 16)

#define N64 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$"
#define N65 N64 "-"

typedef struct {
    const char *in;
    size_t n;   /* 0: strlen(in) */
    size_t cap; /* 0: CAP_DEFAULT */
    int want;
    const char *literal;
} property_row_t;

static const property_row_t property_rows[] = {
    /* 1 to 4 names */
    {"plan", 0, 0, 0, "{\"plan\"}"},
    {"address.city", 0, 0, 0, "{\"address\",\"city\"}"},
    {"a.b", 0, 0, 0, "{\"a\",\"b\"}"},
    {"a.b.c", 0, 0, 0, "{\"a\",\"b\",\"c\"}"},
    {"a.b.c.d", 0, 0, 0, "{\"a\",\"b\",\"c\",\"d\"}"},
    {"a.b.c.d.e", 0, 0, EO_EINVAL, NULL},
    {"a.b.c.d.", 0, 0, EO_EINVAL, NULL},
    {"a.b.c.d.e.f.g.h", 0, 0, EO_EINVAL, NULL},
    /* each name of [A-Za-z0-9_$-] */
    {"A_z-0$", 0, 0, 0, "{\"A_z-0$\"}"},
    {"$", 0, 0, 0, "{\"$\"}"},
    {"-", 0, 0, 0, "{\"-\"}"},
    {"_", 0, 0, 0, "{\"_\"}"},
    {"0", 0, 0, 0, "{\"0\"}"},
    {"$ref.-.9", 0, 0, 0, "{\"$ref\",\"-\",\"9\"}"},
    {"Plan.PLAN", 0, 0, 0, "{\"Plan\",\"PLAN\"}"},
    {"a b", 0, 0, EO_EINVAL, NULL},
    {" a", 0, 0, EO_EINVAL, NULL},
    {"a ", 0, 0, EO_EINVAL, NULL},
    {"a\"b", 0, 0, EO_EINVAL, NULL},
    {"a\\b", 0, 0, EO_EINVAL, NULL},
    {"a,b", 0, 0, EO_EINVAL, NULL},
    {"a{b", 0, 0, EO_EINVAL, NULL},
    {"a}", 0, 0, EO_EINVAL, NULL},
    {"a'b", 0, 0, EO_EINVAL, NULL},
    {"a/b", 0, 0, EO_EINVAL, NULL},
    {"a[0]", 0, 0, EO_EINVAL, NULL},
    {"a*", 0, 0, EO_EINVAL, NULL},
    {"a+b", 0, 0, EO_EINVAL, NULL},
    {"a:b", 0, 0, EO_EINVAL, NULL},
    {"a%2Eb", 0, 0, EO_EINVAL, NULL},
    {"a\tb", 0, 0, EO_EINVAL, NULL},
    {"a\nb", 0, 0, EO_EINVAL, NULL},
    {"a\x7f", 0, 0, EO_EINVAL, NULL},
    {"caf\xc3\xa9", 0, 0, EO_EINVAL, NULL},
    {"a\0b", 3, 0, EO_EINVAL, NULL},
    /* no empty names: leading, trailing or double dots */
    {"", 0, 0, EO_EINVAL, NULL},
    {".", 0, 0, EO_EINVAL, NULL},
    {"..", 0, 0, EO_EINVAL, NULL},
    {".a", 0, 0, EO_EINVAL, NULL},
    {"a.", 0, 0, EO_EINVAL, NULL},
    {"a..b", 0, 0, EO_EINVAL, NULL},
    {"a.b.", 0, 0, EO_EINVAL, NULL},
    {".a.b", 0, 0, EO_EINVAL, NULL},
    /* names of 1 to 64 characters, in any position */
    {N64, 0, 0, 0, "{\"" N64 "\"}"},
    {N65, 0, 0, EO_EINVAL, NULL},
    {"a." N64, 0, 0, 0, "{\"a\",\"" N64 "\"}"},
    {"a." N65, 0, 0, EO_EINVAL, NULL},
    {N65 ".a", 0, 0, EO_EINVAL, NULL},
    {"a.b.c." N64, 0, 0, 0, "{\"a\",\"b\",\"c\",\"" N64 "\"}"},
    {"a.b.c." N65, 0, 0, EO_EINVAL, NULL},
    {N64 "." N64 "." N64 "." N64, 0, 0, 0, "{\"" N64 "\",\"" N64 "\",\"" N64 "\",\"" N64 "\"}"},
    {N64 "." N64 "." N64 "." N65, 0, 0, EO_EINVAL, NULL},
    {N64 "." N64 "." N64 "." N64 ".a", 0, 0, EO_EINVAL, NULL},
    /* the reads stop at n */
    {"plan.x", 4, 0, 0, "{\"plan\"}"},
    {"a.b.c.d.e", 7, 0, 0, "{\"a\",\"b\",\"c\",\"d\"}"},
    {"a.", 1, 0, 0, "{\"a\"}"},
    /* a cap of 2n + 16 bytes is needed (qparams.c; qreq_t's buffer is 2*MAX + 16) */
    {"plan", 0, 24, 0, "{\"plan\"}"},
    {"plan", 0, 23, EO_EINVAL, NULL},
    {"plan", 0, 9, EO_EINVAL, NULL},
    {"plan", 0, 1, EO_EINVAL, NULL},
    {"a.b.c.d", 0, 30, 0, "{\"a\",\"b\",\"c\",\"d\"}"},
    {"a.b.c.d", 0, 29, EO_EINVAL, NULL},
    {N64 "." N64 "." N64 "." N64, 0, CAP_DEFAULT, 0,
     "{\"" N64 "\",\"" N64 "\",\"" N64 "\",\"" N64 "\"}"},
    {N64 "." N64 "." N64 "." N64, 0, CAP_DEFAULT - 1, EO_EINVAL, NULL},
};

static void test_property_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof property_rows / sizeof property_rows[0]; i++) {
        const property_row_t *row = &property_rows[i];
        size_t n = row->n ? row->n : strlen(row->in);
        size_t cap = row->cap ? row->cap : CAP_DEFAULT;
        char out[CAP_DEFAULT + 32];
        memset(out, 'X', sizeof out);
        int r = eo_q_property(row->in, n, out, cap);
        if (r != row->want)
            fail_msg("property row %zu '%.*s' cap %zu: got %d, want %d", i, (int)n, row->in, cap, r,
                     row->want);
        if (r == 0 && strcmp(out, row->literal) != 0)
            fail_msg("property row %zu '%.*s': %s, want %s", i, (int)n, row->in, out, row->literal);
        for (size_t k = cap; k < sizeof out; k++) /* never a byte past cap */
            if (out[k] != 'X')
                fail_msg("property row %zu '%.*s' cap %zu: byte %zu written", i, (int)n, row->in,
                         cap, k);
    }
}

/* The path names and the constant agree: 4 names of 64 and 3 dots. */
static void test_property_max(void **state)
{
    (void)state;
    assert_int_equal(EO_Q_PROPERTY_MAX, 4 * 64 + 3);
    const char *longest = N64 "." N64 "." N64 "." N64;
    assert_int_equal(strlen(longest), EO_Q_PROPERTY_MAX);
    char out[CAP_DEFAULT];
    assert_int_equal(eo_q_property(longest, strlen(longest), out, sizeof out), 0);
    assert_int_equal(strlen(out), EO_Q_PROPERTY_MAX + 3 * 2 + 4); /* quotes, braces */
}

/* ---- text ---- */

typedef struct {
    const char *s;
    size_t n;
    bool want;
} text_row_t;

static const text_row_t text_rows[] = {
    /* ASCII from space to '~'; the empty text */
    {L(""), true},
    {L("abc"), true},
    {L(" "), true},
    {L("~"), true},
    {L("signup, page view!"), true},
    {L("\"quoted\" \\ {x}"), true},
    /* control characters U+0000..U+001F and DEL */
    {L("\0"), false},
    {L("a\0b"), false},
    {L("\x01"), false},
    {L("\t"), false},
    {L("a\nb"), false},
    {L("\r"), false},
    {L("\x1b[0m"), false},
    {L("\x1f"), false},
    {L("\x7f"), false},
    {L("a\x7f"), false},
    /* C1 controls (U+0080..U+009F) are valid UTF-8 and not in the refused set */
    {L("\xc2\x80"), true},
    {L("\xc2\x9f"), true},
    /* valid multi-byte forms, at the edges of each length */
    {L("\xc2\xa0"), true},                 /* U+00A0 */
    {L("\xc3\xa9t\xc3\xa9"), true},        /* été */
    {L("\xdf\xbf"), true},                 /* U+07FF */
    {L("\xe0\xa0\x80"), true},             /* U+0800 */
    {L("\xe2\x82\xac"), true},             /* € */
    {L("\xe6\x97\xa5\xe6\x9c\xac"), true}, /* 日本 */
    {L("\xed\x9f\xbf"), true},             /* U+D7FF */
    {L("\xee\x80\x80"), true},             /* U+E000 */
    {L("\xef\xbf\xbd"), true},             /* U+FFFD */
    {L("\xef\xbf\xbf"), true},             /* U+FFFF */
    {L("\xf0\x90\x80\x80"), true},         /* U+10000 */
    {L("\xf0\x9f\x98\x80"), true},         /* 😀 */
    {L("\xf4\x8f\xbf\xbf"), true},         /* U+10FFFF */
    /* overlong forms */
    {L("\xc0\x80"), false},
    {L("\xc0\xaf"), false},
    {L("\xc1\xbf"), false},
    {L("\xe0\x80\x80"), false},
    {L("\xe0\x80\xaf"), false},
    {L("\xe0\x9f\xbf"), false},
    {L("\xf0\x80\x80\x80"), false},
    {L("\xf0\x80\x80\xaf"), false},
    {L("\xf0\x8f\xbf\xbf"), false},
    /* surrogates, alone or paired */
    {L("\xed\xa0\x80"), false},
    {L("\xed\xaf\xbf"), false},
    {L("\xed\xb0\x80"), false},
    {L("\xed\xbf\xbf"), false},
    {L("\xed\xa0\xbd\xed\xb8\x80"), false},
    /* past U+10FFFF, and the old 5- and 6-byte forms */
    {L("\xf4\x90\x80\x80"), false},
    {L("\xf4\xbf\xbf\xbf"), false},
    {L("\xf5\x80\x80\x80"), false},
    {L("\xf7\xbf\xbf\xbf"), false},
    {L("\xf8\x88\x80\x80\x80"), false},
    {L("\xfc\x84\x80\x80\x80\x80"), false},
    {L("\xfe"), false},
    {L("\xff"), false},
    /* truncated sequences, at the end or followed by another character */
    {L("\xc3"), false},
    {L("a\xc3"), false},
    {L("\xe2\x82"), false},
    {L("\xe2"), false},
    {L("\xe2\x82"
       "a"),
     false},
    {L("\xf0\x9f\x98"), false},
    {L("\xf0\x9f"), false},
    {L("\xf0\x9f\x98"
       "a"),
     false},
    {L("\xc3\x28"), false},
    {L("\xe2\x28\xac"), false},
    {L("\xf0\x9f\x28\x80"), false},
    /* stray continuation bytes */
    {L("\x80"), false},
    {L("a\xbf"), false},
    {L("\xc3\xa9\xa9"), false},
};

static void test_text_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof text_rows / sizeof text_rows[0]; i++) {
        const text_row_t *row = &text_rows[i];
        if (eo_q_text_ok(row->s, row->n) != row->want) {
            char hex[64] = "";
            for (size_t k = 0; k < row->n && 3 * k + 3 < sizeof hex; k++)
                snprintf(hex + 3 * k, sizeof hex - 3 * k, "%02x ", (unsigned char)row->s[k]);
            fail_msg("text row %zu [%s]: got %d, want %d", i, hex, !row->want, row->want);
        }
    }
}

static void test_text_reads_len_bytes(void **state)
{
    (void)state;
    const char euro[] = {'\xe2', '\x82', '\xac'}; /* not NUL-terminated */
    assert_true(eo_q_text_ok(euro, 3));
    assert_false(eo_q_text_ok(euro, 2)); /* cut inside the character */
    assert_false(eo_q_text_ok(euro, 1));
    assert_true(eo_q_text_ok(euro, 0));
    assert_true(eo_q_text_ok("ab\n", 2)); /* the newline is past n */
}

/* ---- lists ---- */

#define MAX_LIST 12

typedef struct {
    const char *in;
    size_t n; /* 0: strlen(in) */
    size_t max_items, max_item;
    int want;
    const char *items[MAX_LIST + 1]; /* NULL-terminated */
} list_row_t;

static const list_row_t list_rows[] = {
    /* one or more items */
    {"signup", 0, 10, 64, 0, {"signup", NULL}},
    {"a,b,c", 0, 10, 64, 0, {"a", "b", "c", NULL}},
    {"signup,page view,checkout", 0, 10, 64, 0, {"signup", "page view", "checkout", NULL}},
    {"a,a", 0, 10, 64, 0, {"a", "a", NULL}},         /* repeats are kept */
    {" a , b ", 0, 10, 64, 0, {" a ", " b ", NULL}}, /* spaces too */
    {"\xc3\xa9,\xe2\x82\xac", 0, 10, 64, 0, {"\xc3\xa9", "\xe2\x82\xac", NULL}},
    /* no empty items: leading, trailing or double commas, or nothing at all */
    {"", 0, 10, 64, EO_EINVAL, {NULL}},
    {",", 0, 10, 64, EO_EINVAL, {NULL}},
    {",,", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a,", 0, 10, 64, EO_EINVAL, {NULL}},
    {",a", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a,,b", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a,b,", 0, 10, 64, EO_EINVAL, {NULL}},
    /* at most max_items */
    {"a,b,c", 0, 3, 64, 0, {"a", "b", "c", NULL}},
    {"a,b,c,d", 0, 3, 64, EO_EINVAL, {NULL}},
    {"a", 0, 1, 64, 0, {"a", NULL}},
    {"a,b", 0, 1, 64, EO_EINVAL, {NULL}},
    {"a", 0, 0, 64, EO_EINVAL, {NULL}},
    {"1,2,3,4,5,6,7,8,9,10",
     0,
     10,
     64,
     0,
     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", NULL}},
    {"1,2,3,4,5,6,7,8,9,10,11", 0, 10, 64, EO_EINVAL, {NULL}},
    /* at most max_item bytes each (bytes, not characters) */
    {"abc,de", 0, 10, 3, 0, {"abc", "de", NULL}},
    {"abcd,de", 0, 10, 3, EO_EINVAL, {NULL}},
    {"ab,abcd", 0, 10, 3, EO_EINVAL, {NULL}},
    {"\xc3\xa9", 0, 10, 2, 0, {"\xc3\xa9", NULL}},
    {"\xc3\xa9", 0, 10, 1, EO_EINVAL, {NULL}},
    {"\xe2\x82\xac,a", 0, 10, 2, EO_EINVAL, {NULL}},
    {"a", 0, 10, 0, EO_EINVAL, {NULL}},
    /* every item is text (eo_q_text_ok) */
    {"a,b\tc", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a\n,b", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a,\x7f", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a,\xff", 0, 10, 64, EO_EINVAL, {NULL}},
    {"\xc3,\xa9", 0, 10, 64, EO_EINVAL, {NULL}}, /* a character cut by the comma */
    {"a,\xed\xa0\x80", 0, 10, 64, EO_EINVAL, {NULL}},
    {"a\0,b", 4, 10, 64, EO_EINVAL, {NULL}},
    /* the reads stop at n */
    {"a,b,", 3, 10, 64, 0, {"a", "b", NULL}},
    {"a,b,c", 1, 10, 64, 0, {"a", NULL}},
    {"a,b", 2, 10, 64, EO_EINVAL, {NULL}},
};

static void test_list_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof list_rows / sizeof list_rows[0]; i++) {
        const list_row_t *row = &list_rows[i];
        size_t n = row->n ? row->n : strlen(row->in);
        const char *starts[MAX_LIST + 1];
        size_t lens[MAX_LIST + 1], count = 99;
        for (size_t k = 0; k <= MAX_LIST; k++) {
            starts[k] = NULL;
            lens[k] = 99;
        }
        assert_true(row->max_items <= MAX_LIST);
        int r = eo_q_list(row->in, n, row->max_items, row->max_item, starts, lens, &count);
        if (r != row->want)
            fail_msg("list row %zu '%.*s' (%zu, %zu): got %d, want %d", i, (int)n, row->in,
                     row->max_items, row->max_item, r, row->want);
        for (size_t k = row->max_items; k <= MAX_LIST; k++) /* nothing past max_items */
            if (starts[k] != NULL || lens[k] != 99)
                fail_msg("list row %zu '%.*s': item %zu written past max_items", i, (int)n, row->in,
                         k);
        if (r < 0)
            continue;
        size_t want = 0;
        while (row->items[want])
            want++;
        if (count != want)
            fail_msg("list row %zu '%.*s': %zu items, want %zu", i, (int)n, row->in, count, want);
        const char *next = row->in;
        for (size_t k = 0; k < count; k++) {
            if (starts[k] != next) /* in s, in order, covering it */
                fail_msg("list row %zu: item %zu starts at %td, want %td", i, k,
                         starts[k] - row->in, next - row->in);
            if (lens[k] != strlen(row->items[k]) || memcmp(starts[k], row->items[k], lens[k]) != 0)
                fail_msg("list row %zu: item %zu is '%.*s', want '%s'", i, k, (int)lens[k],
                         starts[k], row->items[k]);
            next = starts[k] + lens[k] + 1;
        }
        assert_true(next == row->in + n + 1);
    }
}

/* ---- zone names ---- */

#define Z64 "America/Argentina/Buenos_Aires/abcdefghijklmnopqrstuvwxyz-+01234"

typedef struct {
    const char *in;
    size_t n; /* 0: strlen(in) */
    bool want;
} zone_row_t;

static const zone_row_t zone_rows[] = {
    /* [A-Za-z0-9_+/-], 1..64 */
    {"UTC", 0, true},
    {"Z", 0, true},
    {"Europe/Berlin", 0, true},
    {"Asia/Kolkata", 0, true},
    {"Asia/Kathmandu", 0, true},
    {"Australia/Lord_Howe", 0, true},
    {"America/Argentina/Buenos_Aires", 0, true},
    {"America/Port-au-Prince", 0, true},
    {"Etc/GMT+5", 0, true},
    {"Etc/GMT-14", 0, true},
    {"EST5EDT", 0, true},
    {"posix/Europe/Berlin", 0, true},
    {Z64, 0, true},
    {Z64 "3", 0, false},
    {"", 0, false},
    /* shape only: existence is the caller's check */
    {"Nowhere/Atlantis", 0, true},
    {"Europe/", 0, true},
    {"a//b", 0, true},
    /* no leading '/' */
    {"/etc/localtime", 0, false},
    {"/", 0, false},
    {"//UTC", 0, false},
    /* other characters */
    {"../etc/passwd", 0, false},
    {"Europe/../../etc", 0, false},
    {"Europe\\Berlin", 0, false},
    {"Europe Berlin", 0, false},
    {" UTC", 0, false},
    {"UTC ", 0, false},
    {"UTC\n", 0, false},
    {"UTC\0", 4, false},
    {"UTC'", 0, false},
    {"UTC;", 0, false},
    {"UTC:", 0, false},
    {"+05:30", 0, false},
    {"Europe/Z\xc3\xbcrich", 0, false},
    {"UTC\x7f", 0, false},
    /* the reads stop at n */
    {"UTC\n", 3, true},
    {"/UTC", 0, false},
};

static void test_zone_rows(void **state)
{
    (void)state;
    assert_int_equal(strlen(Z64), 64);
    for (size_t i = 0; i < sizeof zone_rows / sizeof zone_rows[0]; i++) {
        const zone_row_t *row = &zone_rows[i];
        size_t n = row->n ? row->n : strlen(row->in);
        if (eo_q_zone_shape_ok(row->in, n) != row->want)
            fail_msg("zone row %zu '%.*s': got %d, want %d", i, (int)n, row->in, !row->want,
                     row->want);
    }
}

/* ---- cursors ---- */

#define HEAD 11 /* version, time (8 bytes, big-endian), id length (2 bytes, big-endian) */
/* Characters of the longest cursor: an id of EO_Q_CURSOR_ID_MAX bytes. */
#define CURSOR_LEN_MAX EO_B64URL_LEN(HEAD + EO_Q_CURSOR_ID_MAX)
#define ID_CAP (EO_Q_CURSOR_ID_MAX + 1) /* room for any id and its NUL */

/* Ids built by fill_ids (group setup): ASCII of 255 .. 4097 bytes, 4096 bytes of multi-byte
 * UTF-8 ending exactly at the limit, and 4096 bytes whose last character is cut. */
static char id255[256], id256[257], id4095[4096], id4096[4097], id4097[4098];
static char id4096_emoji[4097]; /* 1024 x U+1F600 (4 bytes each) */
static char id4096_euro[4097];  /* 'a' and 1365 x U+20AC (3 bytes each) */
static char id4096_cut[4097];   /* 4095 'a' and the first byte of a 3-byte character */

static void fill_ascii(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i] = "0123456789abcdef"[i % 16];
    s[n] = '\0';
}

static int fill_ids(void **state)
{
    (void)state;
    fill_ascii(id255, 255);
    fill_ascii(id256, 256);
    fill_ascii(id4095, 4095);
    fill_ascii(id4096, 4096);
    fill_ascii(id4097, 4097);
    for (size_t i = 0; i < 4096; i += 4)
        memcpy(id4096_emoji + i, "\xf0\x9f\x98\x80", 4);
    id4096_euro[0] = 'a';
    for (size_t i = 1; i < 4096; i += 3)
        memcpy(id4096_euro + i, "\xe2\x82\xac", 3);
    memset(id4096_cut, 'a', 4095);
    id4096_cut[4095] = '\xe2';
    return 0;
}

static bool b64url_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Encodes a hand-made cursor: version, time, length field (len_field < 0: id_len) and id
 * bytes, cut to raw_len bytes when raw_len is not 0. out holds EO_B64URL_LEN(raw) + 1 bytes. */
static size_t craft(uint8_t version, int64_t us, long len_field, const char *id, size_t id_len,
                    size_t raw_len, char *out)
{
    static uint8_t raw[HEAD + EO_Q_CURSOR_ID_MAX + 64];
    assert_true(id_len <= EO_Q_CURSOR_ID_MAX + 64);
    uint16_t f = len_field < 0 ? (uint16_t)id_len : (uint16_t)len_field;
    raw[0] = version;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)((uint64_t)us >> (56 - 8 * i));
    raw[9] = (uint8_t)(f >> 8);
    raw[10] = (uint8_t)f;
    if (id_len)
        memcpy(raw + HEAD, id, id_len);
    assert_true(raw_len <= HEAD + id_len);
    return eo_b64url_encode(raw, raw_len ? raw_len : HEAD + id_len, out);
}

#define CRAFT_TEXT (EO_B64URL_LEN(HEAD + EO_Q_CURSOR_ID_MAX + 64) + 1)

static void test_cursor_round_trip(void **state)
{
    (void)state;
    static const char *const ids[] = {
        "a",   /* 12 raw bytes: 16 characters, none unused */
        "ab",  /* 13: the last character carries 4 unused bits */
        "abc", /* 14: 2 unused bits */
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "msg \"quoted\" \\ {x},y",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "\xc2\x80", /* a C1 control is clean text */
        id255,
        id256, /* the length's high byte in use */
        id4095,
        id4096,
        id4096_emoji,
        id4096_euro,
    };
    static const int64_t times[] = {
        0,
        1,
        -1,
        T2024 + 123456,
        INT64_C(-14182940000000), /* 1969 */
        INT64_C(-2208988800000000),
        MIN_US, /* 0000-01-01T00:00:00.000000Z */
        MIN_US + 1,
        MIN_US + S_US,
        EO_RFC3339_MAX_S * S_US - 1,
        EO_RFC3339_MAX_S * S_US, /* the last second of 9999 */
        EO_RFC3339_MAX_S * S_US + 500000,
        MAX_US - 1,
        MAX_US, /* 9999-12-31T23:59:59.999999Z */
    };
    static char c[EO_Q_CURSOR_MAX + 16], id[ID_CAP + 16];
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        for (size_t k = 0; k < sizeof times / sizeof times[0]; k++) {
            size_t len = strlen(ids[i]);
            memset(c, 'X', sizeof c);
            assert_int_equal(eo_q_cursor_encode(times[k], ids[i], len, c), 0);
            size_t n = strnlen(c, sizeof c);
            if (n != EO_B64URL_LEN(HEAD + len) || n > CURSOR_LEN_MAX || !b64url_only(c, n))
                fail_msg("cursor (%" PRId64 ", %zu-byte id): %zu characters '%.40s...'", times[k],
                         len, n, c);
            for (size_t j = n + 1; j < sizeof c; j++) /* nothing past the NUL */
                if (c[j] != 'X')
                    fail_msg("cursor (%" PRId64 ", %zu-byte id): byte %zu written", times[k], len,
                             j);
            int64_t us = 42;
            memset(id, 'X', sizeof id);
            int r = eo_q_cursor_decode(c, n, &us, id, ID_CAP);
            if (r != 0 || us != times[k] || strlen(id) != len || memcmp(id, ids[i], len) != 0)
                fail_msg("cursor (%" PRId64 ", %zu-byte id) -> '%.40s...' -> %d (%" PRId64 ")",
                         times[k], len, c, r, us);
        }
}

/* The encoding is part of the API: cursors given out must stay readable across releases. */
typedef struct {
    int64_t us;
    const char *id;
    const char *text;
} golden_row_t;

static const golden_row_t golden_rows[] = {
    /* 01 | 00 00 00 00 00 00 00 00 | 00 01 | 61 */
    {0, "a", "AQAAAAAAAAAAAAFh"},
    /* 01 | 00 06 0d d7 10 21 20 00 (T2024) | 00 03 | 61 62 63 */
    {T2024, "abc", "AQAGDdcQISAAAANhYmM"},
    /* 01 | ff ff ff ff ff ff ff ff (-1) | 00 01 | 61 */
    {-1, "a", "Af__________AAFh"},
    /* 01 | ff 23 23 3e 56 e9 00 00 (0000-01-01T00:00:00Z) | 00 02 | 6d 31 */
    {MIN_US, "m1", "Af8jIz5W6QAAAAJtMQ"},
    /* 01 | 03 84 44 0c cc 73 5f ff (9999-12-31T23:59:59.999999Z) | 00 02 | 6d 31 */
    {MAX_US, "m1", "AQOERAzMc1__AAJtMQ"},
    /* 01 | 00 06 0d d7 10 23 02 40 (T2024 + 123456) | 00 24 | a UUIDv7 */
    {T2024 + 123456, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
     "AQAGDdcQIwJAACQwMTkwYTFiMi1jM2Q0LTdlNWYtOGE5Yi0wYzFkMmUzZjRhNWI"},
    /* 01 | 00 .. 00 | 00 05 | 63 61 66 c3 a9 ("café") */
    {0, "caf\xc3\xa9", "AQAAAAAAAAAAAAVjYWbDqQ"},
};

static void test_cursor_golden(void **state)
{
    (void)state;
    char c[EO_Q_CURSOR_MAX], id[ID_CAP];
    for (size_t i = 0; i < sizeof golden_rows / sizeof golden_rows[0]; i++) {
        const golden_row_t *row = &golden_rows[i];
        assert_int_equal(eo_q_cursor_encode(row->us, row->id, strlen(row->id), c), 0);
        if (strcmp(c, row->text) != 0)
            fail_msg("golden row %zu: '%s', want '%s'", i, c, row->text);
        int64_t us = 42;
        assert_int_equal(eo_q_cursor_decode(row->text, strlen(row->text), &us, id, sizeof id), 0);
        if (us != row->us || strcmp(id, row->id) != 0)
            fail_msg("golden row %zu: '%s' decodes to (%" PRId64 ", '%s')", i, row->text, us, id);
    }
    /* long ids: the length field's high byte. 01 | 00 .. 00 | 01 00 | 'a' x 256 */
    char a[EO_Q_CURSOR_ID_MAX];
    memset(a, 'a', sizeof a);
    assert_int_equal(eo_q_cursor_encode(0, a, 256, c), 0);
    assert_int_equal(strlen(c), 356);
    assert_memory_equal(c, "AQAAAAAAAAAAAQBh", 16);
    /* 01 | 00 .. 00 | 10 00 | 'a' x 4096: the longest cursor */
    assert_int_equal(eo_q_cursor_encode(0, a, sizeof a, c), 0);
    assert_int_equal(strlen(c), 5476);
    assert_memory_equal(c, "AQAAAAAAAAAAEABh", 16);
    assert_string_equal(c + 5476 - 8, "YWFhYWFh");
}

/* The constants agree with the format. */
static void test_cursor_sizes(void **state)
{
    (void)state;
    assert_int_equal(EO_Q_CURSOR_ID_MAX, 4096);
    assert_int_equal(CURSOR_LEN_MAX, 5476);
    assert_true(CURSOR_LEN_MAX + 1 <= EO_Q_CURSOR_MAX); /* the text and its NUL fit */
    char c[EO_Q_CURSOR_MAX];
    assert_int_equal(eo_q_cursor_encode(MIN_US, id4096_emoji, 4096, c), 0);
    assert_int_equal(strlen(c), CURSOR_LEN_MAX);
    assert_int_equal(eo_q_cursor_encode(MAX_US, id4096, 4096, c), 0);
    assert_int_equal(strlen(c), CURSOR_LEN_MAX);
}

typedef struct {
    const char *what;
    uint8_t version;
    int64_t us;
    const char *id;
    size_t id_len;
    long len_field; /* < 0: id_len */
    size_t raw_len; /* 0: the whole cursor; else cut to this many bytes */
    int want;
} crafted_row_t;

/* Rows of version 1 with their true length field, not cut ("framed" rows), are exactly what
 * eo_q_cursor_encode(us, id, id_len) gives: it must accept and refuse the same ones. */
static const crafted_row_t crafted_rows[] = {
    {"valid", 1, T2024, "m1", 2, -1, 0, 0},
    {"valid, 1-byte id", 1, T2024, "a", 1, -1, 0, 0},
    {"valid, 255-byte id", 1, T2024, id255, 255, -1, 0, 0},
    {"valid, 256-byte id", 1, T2024, id256, 256, -1, 0, 0},
    {"valid, 4096-byte id", 1, T2024, id4096, 4096, -1, 0, 0},
    {"valid, 4096 bytes of 4-byte characters", 1, T2024, id4096_emoji, 4096, -1, 0, 0},
    {"valid, 4096 bytes of 3-byte characters", 1, T2024, id4096_euro, 4096, -1, 0, 0},
    {"valid, first microsecond of year 0", 1, MIN_US, "m1", 2, -1, 0, 0},
    {"valid, last second of 9999", 1, EO_RFC3339_MAX_S *S_US, "m1", 2, -1, 0, 0},
    {"valid, last microsecond of 9999", 1, MAX_US, "m1", 2, -1, 0, 0},
    /* version 1 only */
    {"version 0", 0, T2024, "m1", 2, -1, 0, EO_EINVAL},
    {"version 2", 2, T2024, "m1", 2, -1, 0, EO_EINVAL},
    {"version 255", 255, T2024, "m1", 2, -1, 0, EO_EINVAL},
    /* 11 header bytes and an id of at least one byte */
    {"no id", 1, T2024, "", 0, -1, 0, EO_EINVAL},
    {"version only", 1, T2024, "m1", 2, -1, 1, EO_EINVAL},
    {"half a time", 1, T2024, "m1", 2, -1, 5, EO_EINVAL},
    {"time, no length", 1, T2024, "m1", 2, -1, 9, EO_EINVAL},
    {"half a length", 1, T2024, "m1", 2, -1, 10, EO_EINVAL},
    {"header only", 1, T2024, "m1", 2, -1, HEAD, EO_EINVAL},
    /* the length field is the id's length, exactly */
    {"length 1 too big", 1, T2024, "m1", 2, 3, 0, EO_EINVAL},
    {"length 1 too small", 1, T2024, "m1", 2, 1, 0, EO_EINVAL},
    {"length 0", 1, T2024, "m1", 2, 0, 0, EO_EINVAL},
    {"length 0xffff", 1, T2024, "m1", 2, 0xffff, 0, EO_EINVAL},
    {"length 256 little-endian", 1, T2024, id256, 256, 0x0001, 0, EO_EINVAL},
    {"length 256, 255 bytes", 1, T2024, id255, 255, 256, 0, EO_EINVAL},
    {"length 255, 256 bytes", 1, T2024, id256, 256, 255, 0, EO_EINVAL},
    {"length 4096, 4095 bytes", 1, T2024, id4095, 4095, 4096, 0, EO_EINVAL},
    {"length 4095, 4096 bytes", 1, T2024, id4096, 4096, 4095, 0, EO_EINVAL},
    {"length 4097, 4096 bytes", 1, T2024, id4096, 4096, 4097, 0, EO_EINVAL},
    /* truncated cursors: the id cut short of its length field */
    {"cut by one byte", 1, T2024, "abc", 3, -1, HEAD + 2, EO_EINVAL},
    {"cut to 12 bytes (16 characters)", 1, T2024, "abcd", 4, -1, 12, EO_EINVAL},
    {"cut to 15 bytes (20 characters)", 1, T2024, "abcdefgh", 8, -1, 15, EO_EINVAL},
    {"cut to 24 bytes (32 characters)", 1, T2024, id255, 255, -1, 24, EO_EINVAL},
    {"4096-byte id cut by one byte", 1, T2024, id4096, 4096, -1, HEAD + 4095, EO_EINVAL},
    {"4096-byte id cut to 4104 bytes (5472 characters)", 1, T2024, id4096, 4096, -1, 4104,
     EO_EINVAL},
    /* at most 4096 id bytes */
    {"4097-byte id", 1, T2024, id4097, 4097, -1, 0, EO_EINVAL},
    /* the id is text */
    {"id NUL", 1, T2024, "a\0b", 3, -1, 0, EO_EINVAL},
    {"id NUL at the end", 1, T2024, "ab\0", 3, -1, 0, EO_EINVAL},
    {"id \\x01", 1, T2024, "\x01", 1, -1, 0, EO_EINVAL},
    {"id newline", 1, T2024, "a\nb", 3, -1, 0, EO_EINVAL},
    {"id DEL", 1, T2024, "a\x7f", 2, -1, 0, EO_EINVAL},
    {"id 0xff", 1, T2024, "\xff", 1, -1, 0, EO_EINVAL},
    {"id overlong", 1, T2024, "\xc0\xaf", 2, -1, 0, EO_EINVAL},
    {"id surrogate", 1, T2024, "\xed\xa0\x80", 3, -1, 0, EO_EINVAL},
    {"id truncated UTF-8", 1, T2024, "a\xe2\x82", 3, -1, 0, EO_EINVAL},
    {"4096-byte id, last character cut", 1, T2024, id4096_cut, 4096, -1, 0, EO_EINVAL},
    /* times within 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z */
    {"time before year 0", 1, MIN_US - 1, "m1", 2, -1, 0, EO_EINVAL},
    {"time year 10000", 1, MAX_US + 1, "m1", 2, -1, 0, EO_EINVAL},
    {"time INT64_MIN", 1, INT64_MIN, "m1", 2, -1, 0, EO_EINVAL},
    {"time INT64_MAX", 1, INT64_MAX, "m1", 2, -1, 0, EO_EINVAL},
    {"time year 10001", 1, MAX_US + INT64_C(31536000) * S_US, "m1", 2, -1, 0, EO_EINVAL},
};

static void test_cursor_decode_crafted(void **state)
{
    (void)state;
    static char c[CRAFT_TEXT], e[CRAFT_TEXT], id[ID_CAP + 64];
    for (size_t i = 0; i < sizeof crafted_rows / sizeof crafted_rows[0]; i++) {
        const crafted_row_t *row = &crafted_rows[i];
        size_t n =
            craft(row->version, row->us, row->len_field, row->id, row->id_len, row->raw_len, c);
        memset(id, 'X', sizeof id);
        int64_t us = 42;
        int r = eo_q_cursor_decode(c, n, &us, id, ID_CAP);
        if (r != row->want)
            fail_msg("crafted cursor '%s' (%.40s): got %d, want %d", row->what, c, r, row->want);
        if (r == 0 &&
            (us != row->us || strlen(id) != row->id_len || memcmp(id, row->id, row->id_len) != 0))
            fail_msg("crafted cursor '%s': decoded differently", row->what);
        if (r != 0 && us != 42)
            fail_msg("crafted cursor '%s': time written on a refusal", row->what);
        for (size_t k = r == 0 ? ID_CAP : 0; k < sizeof id; k++) /* nothing past id_cap */
            if (id[k] != 'X')
                fail_msg("crafted cursor '%s': id byte %zu written", row->what, k);
        if (row->version != 1 || row->len_field >= 0 || row->raw_len != 0)
            continue;
        /* framed: the encoder gives this text, or refuses like the decoder */
        int w = eo_q_cursor_encode(row->us, row->id, row->id_len, e);
        if (w != r)
            fail_msg("crafted cursor '%s': encode %d, decode %d", row->what, w, r);
        if (w == 0 && strcmp(e, c) != 0)
            fail_msg("crafted cursor '%s': encodes as '%.40s', crafted '%.40s'", row->what, e, c);
    }
}

/* id_cap must hold the id and its NUL; buffers of exactly id_cap bytes (ASan sees overflows). */
static void test_cursor_id_cap(void **state)
{
    (void)state;
    static const char *const ids[] = {"a", "m1", id255, id256, id4096};
    char c[EO_Q_CURSOR_MAX];
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        size_t len = strlen(ids[i]);
        assert_int_equal(eo_q_cursor_encode(T2024, ids[i], len, c), 0);
        size_t n = strlen(c);
        int64_t us = 42;
        char *fit = malloc(len + 1), *small = malloc(len);
        assert_non_null(fit);
        assert_non_null(small);
        memset(small, 'X', len);
        if (eo_q_cursor_decode(c, n, &us, small, len) != EO_EINVAL)
            fail_msg("%zu-byte id decoded into id_cap %zu", len, len);
        for (size_t k = 0; k < len; k++)
            if (small[k] != 'X')
                fail_msg("%zu-byte id, id_cap %zu: byte %zu written", len, len, k);
        assert_true(us == 42);
        assert_int_equal(eo_q_cursor_decode(c, n, &us, fit, 1), EO_EINVAL);
        assert_int_equal(eo_q_cursor_decode(c, n, &us, fit, 0), EO_EINVAL);
        assert_true(us == 42);
        assert_int_equal(eo_q_cursor_decode(c, n, &us, fit, len + 1), 0);
        assert_true(us == T2024);
        assert_string_equal(fit, ids[i]);
        free(fit);
        free(small);
    }
}

/* A cursor cut anywhere (at a multiple of 4 characters too, where it is still well-formed
 * base64url) or lengthened is refused. */
static void test_cursor_truncated(void **state)
{
    (void)state;
    static const char *const ids[] = {"a",   "ab",  "abc", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                      id255, id4096};
    static char c[EO_Q_CURSOR_MAX + 8], id[ID_CAP];
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        assert_int_equal(eo_q_cursor_encode(T2024, ids[i], strlen(ids[i]), c), 0);
        size_t n = strlen(c), fours = 0;
        int64_t us = 0;
        assert_int_equal(eo_q_cursor_decode(c, n, &us, id, sizeof id), 0);
        for (size_t k = 0; k < n; k++) {
            if (eo_q_cursor_decode(c, k, &us, id, sizeof id) != EO_EINVAL)
                fail_msg("%zu-byte id: cursor cut to %zu of %zu characters decoded", strlen(ids[i]),
                         k, n);
            fours += k % 4 == 0 && k >= 16;
        }
        /* past the header, some cuts were whole base64 groups (the length field refused them) */
        assert_true(n <= 16 || fours >= 1);
        for (size_t k = 1; k <= 4; k++) { /* "A" x k more: zero bits, or zero bytes */
            memset(c + n, 'A', k);
            if (eo_q_cursor_decode(c, n + k, &us, id, sizeof id) != EO_EINVAL)
                fail_msg("%zu-byte id: cursor with %zu more characters decoded", strlen(ids[i]), k);
        }
    }
}

typedef struct {
    int64_t us;
    const char *id;
    size_t id_len;
} encode_refusal_row_t;

static const encode_refusal_row_t encode_refusal_rows[] = {
    /* an id of 1..4096 bytes */
    {0, "", 0},
    {0, "a", 0},
    {T2024, id4097, 4097},
    {T2024, id4097, 65535},
    /* of clean text */
    {T2024, "a\0b", 3},
    {T2024, "\x01", 1},
    {T2024, "a\nb", 3},
    {T2024, "\t", 1},
    {T2024, "a\x7f", 2},
    {T2024, "\xff", 1},
    {T2024, "\xc0\xaf", 2},
    {T2024, "\xed\xa0\x80", 3},
    {T2024, "\xf4\x90\x80\x80", 4},
    {T2024, "a\xe2\x82", 3},
    {T2024, "\xe2\x82\xac", 2}, /* a character cut by id_len */
    {T2024, id4096_cut, 4096},
    /* a time in 0000..9999 */
    {MIN_US - 1, "m1", 2},
    {MAX_US + 1, "m1", 2},
    {INT64_MIN, "m1", 2},
    {INT64_MAX, "m1", 2},
    {MIN_US - INT64_C(31536000) * S_US, "m1", 2},
    {MAX_US + INT64_C(31536000) * S_US, "m1", 2},
};

/* The encoder refuses what the decoder would refuse (the same pair, framed by hand). */
static void test_cursor_encode_refusals(void **state)
{
    (void)state;
    static char c[CRAFT_TEXT], id[ID_CAP];
    for (size_t i = 0; i < sizeof encode_refusal_rows / sizeof encode_refusal_rows[0]; i++) {
        const encode_refusal_row_t *row = &encode_refusal_rows[i];
        int r = eo_q_cursor_encode(row->us, row->id, row->id_len, c);
        if (r != EO_EINVAL)
            fail_msg("encode refusal row %zu (%" PRId64 ", %zu-byte id): got %d", i, row->us,
                     row->id_len, r);
        if (row->id_len > EO_Q_CURSOR_ID_MAX + 64)
            continue; /* more than craft's buffer */
        int64_t us = 42;
        size_t n = craft(1, row->us, -1, row->id, row->id_len, 0, c);
        if (eo_q_cursor_decode(c, n, &us, id, sizeof id) != EO_EINVAL)
            fail_msg("encode refusal row %zu: the decoder accepts it", i);
    }
    /* the edges themselves are accepted */
    assert_int_equal(eo_q_cursor_encode(MIN_US, "a", 1, c), 0);
    assert_int_equal(eo_q_cursor_encode(MAX_US, "a", 1, c), 0);
    assert_int_equal(eo_q_cursor_encode(T2024, id4096, 4096, c), 0);
    assert_int_equal(eo_q_cursor_encode(T2024, "\xe2\x82\xac", 3, c), 0);
}

typedef struct {
    const char *what;
    const char *in;
} text_cursor_row_t;

static const text_cursor_row_t garbage_rows[] = {
    {"empty", ""},
    {"one character", "A"},
    {"not base64", "!!!!!!!!!!!!!!!!"},
    {"words", "next page please"},
    {"a number", "12345"},
    {"JSON", "{\"t\":0,\"id\":\"a\"}"},
    {"5 characters (no byte boundary)", "AQAAA"},
    /* the canonical form of AQAAAAAAAAAAAAJhYg (0, "ab") in other spellings */
    {"padded", "AQAAAAAAAAAAAAJhYg=="},
    {"padded once", "AQAAAAAAAAAAAAJhYg="},
    {"unused bits set", "AQAAAAAAAAAAAAJhYh"},
    {"unused bits set (2)", "AQAAAAAAAAAAAAJhYv"},
    {"std alphabet '/'", "Af//////////AAJhYg"},
    {"std alphabet '+'", "Af++++++++++AAJhYg"},
    {"trailing space", "AQAAAAAAAAAAAAJhYg "},
    {"trailing newline", "AQAAAAAAAAAAAAJhYg\n"},
    {"leading space", " AQAAAAAAAAAAAAJhYg"},
    {"inner space", "AQAAAAAA AAAAAAJhYg"},
    {"percent-encoded", "AQAAAAAAAAAAAAJhYg%3D%3D"},
    {"one character short", "AQAAAAAAAAAAAAJhY"},
    {"cut at 16 characters", "AQAAAAAAAAAAAAJh"},
    {"one character more (a zero byte)", "AQAAAAAAAAAAAAJhYgA"},
    {"four characters more", "AQAAAAAAAAAAAAJhYgAAAA"},
    /* cursors of the format before the length field (0, "a") and (T2024, "abc") */
    {"old format, 10 bytes", "AQAAAAAAAAAAYQ"},
    {"old format, 12 bytes", "AQAGDdcQISAAYWJj"},
};

static void test_cursor_decode_garbage(void **state)
{
    (void)state;
    char id[ID_CAP];
    int64_t us = 0;
    /* the canonical spellings themselves are fine */
    assert_int_equal(eo_q_cursor_decode(L("AQAAAAAAAAAAAAJhYg"), &us, id, sizeof id), 0);
    assert_true(us == 0);
    assert_string_equal(id, "ab");
    assert_int_equal(eo_q_cursor_decode(L("Af__________AAJhYg"), &us, id, sizeof id), 0);
    assert_true(us == -1);
    assert_string_equal(id, "ab");
    for (size_t i = 0; i < sizeof garbage_rows / sizeof garbage_rows[0]; i++) {
        const text_cursor_row_t *row = &garbage_rows[i];
        int r = eo_q_cursor_decode(row->in, strlen(row->in), &us, id, sizeof id);
        if (r != EO_EINVAL)
            fail_msg("cursor '%s' (%s): got %d, want %d", row->in, row->what, r, EO_EINVAL);
    }
}

static void test_cursor_decode_limits(void **state)
{
    (void)state;
    static char c[EO_Q_CURSOR_MAX + 64], id[ID_CAP];
    int64_t us = 0;
    /* the longest cursor decodes; more text than it is refused, whatever it holds */
    assert_int_equal(eo_q_cursor_encode(T2024, id4096, 4096, c), 0);
    size_t n = strlen(c);
    assert_int_equal(n, CURSOR_LEN_MAX);
    assert_int_equal(eo_q_cursor_decode(c, n, &us, id, sizeof id), 0);
    assert_string_equal(id, id4096);
    memset(c, 'A', sizeof c);
    assert_int_equal(eo_q_cursor_decode(c, CURSOR_LEN_MAX, &us, id, sizeof id), EO_EINVAL);
    assert_int_equal(eo_q_cursor_decode(c, CURSOR_LEN_MAX + 1, &us, id, sizeof id), EO_EINVAL);
    assert_int_equal(eo_q_cursor_decode(c, CURSOR_LEN_MAX + 4, &us, id, sizeof id), EO_EINVAL);
    assert_int_equal(eo_q_cursor_decode(c, sizeof c, &us, id, sizeof id), EO_EINVAL);
    /* reads only n bytes: a cursor followed by more text */
    memcpy(c, "AQAAAAAAAAAAAAFh", 16);
    assert_int_equal(eo_q_cursor_decode(c, 16, &us, id, sizeof id), 0);
    assert_string_equal(id, "a");
    assert_int_equal(eo_q_cursor_decode(c, 17, &us, id, sizeof id), EO_EINVAL);
    assert_int_equal(eo_q_cursor_decode(c, 20, &us, id, sizeof id), EO_EINVAL);
    /* nothing is written on a refusal */
    us = 42;
    memset(id, 'X', sizeof id);
    assert_int_equal(eo_q_cursor_decode(L("AQAAAAAAAAAAAAJhYh"), &us, id, sizeof id), EO_EINVAL);
    assert_int_equal(eo_q_cursor_decode(L("AQAAAAAAAAAAAAJh"), &us, id, sizeof id), EO_EINVAL);
    assert_true(us == 42);
    assert_int_equal(id[0], 'X');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval_rows),
        cmocka_unit_test(test_period_rows),
        cmocka_unit_test(test_interval_no_minutely),
        cmocka_unit_test(test_interval_reads_len_bytes),
        cmocka_unit_test(test_unit_names),
        cmocka_unit_test(test_int_rows),
        cmocka_unit_test(test_int_reads_len_bytes),
        cmocka_unit_test(test_within_rows),
        cmocka_unit_test(test_within_reads_len_bytes),
        cmocka_unit_test(test_property_rows),
        cmocka_unit_test(test_property_max),
        cmocka_unit_test(test_text_rows),
        cmocka_unit_test(test_text_reads_len_bytes),
        cmocka_unit_test(test_list_rows),
        cmocka_unit_test(test_zone_rows),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_golden),
        cmocka_unit_test(test_cursor_sizes),
        cmocka_unit_test(test_cursor_decode_crafted),
        cmocka_unit_test(test_cursor_id_cap),
        cmocka_unit_test(test_cursor_truncated),
        cmocka_unit_test(test_cursor_encode_refusals),
        cmocka_unit_test(test_cursor_decode_garbage),
        cmocka_unit_test(test_cursor_decode_limits),
    };
    return cmocka_run_group_tests_name("qparams", tests, fill_ids, NULL);
}
