/* Unit tests of src/domain/rollup_delta.h: no events give no rows; a small batch gives exactly
 * the rows the store's SQL aggregation gave (minute, quarter hour from 2000-01-01, hour and day
 * in UTC, each for its type and for "" all types), merged per key and in the rollups primary
 * key's order; times before 1970 floor downwards; and a random batch of 5,000 events over 3
 * tenants, 5 types and 3 days agrees with a brute-force count of every key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/rfc3339.h"
#include "domain/rollup_delta.h"

#define TA "0b6f0c1e-0000-4000-8000-00000000000a"
#define TB "0b6f0c1e-0000-4000-8000-00000000000b"
#define MIN 60000000LL

static int64_t T(const char *s)
{
    int64_t us = 0;
    if (eo_rfc3339_parse(s, strlen(s), &us) < 0)
        fail_msg("bad time in the test: %s", s);
    return us;
}

static eo_str_t S(const char *s)
{
    return (eo_str_t){s, strlen(s)};
}

static eo_rollup_event_t E(const char *tenant, const char *type, const char *when)
{
    return (eo_rollup_event_t){tenant, S(type), T(when)};
}

static bool str_eq(eo_str_t a, const char *b)
{
    return a.len == strlen(b) && memcmp(a.s, b, a.len) == 0;
}

static void test_empty(void **state)
{
    (void)state;
    eo_rollup_row_t *rows = (eo_rollup_row_t *)1;
    size_t n = 99;
    assert_int_equal(eo_rollup_delta(NULL, 0, &rows, &n), 0);
    assert_null(rows);
    assert_int_equal(n, 0);
}

static void test_small_batch(void **state)
{
    (void)state;
    eo_rollup_event_t ev[] = {
        E(TB, "signup", "2026-12-01T23:59:59.999999Z"),
        E(TA, "signup", "2026-12-03T10:00:10Z"),
        E(TA, "order", "2026-12-03T10:16:00Z"),
        E(TA, "signup", "2026-12-03T10:00:50.5Z"),
    };
    static const struct {
        const char *tenant, *gran, *type, *bucket;
        int64_t count;
    } want[] = {
        {TA, "day", "", "2026-12-03T00:00:00Z", 3},
        {TA, "day", "order", "2026-12-03T00:00:00Z", 1},
        {TA, "day", "signup", "2026-12-03T00:00:00Z", 2},
        {TA, "hour", "", "2026-12-03T10:00:00Z", 3},
        {TA, "hour", "order", "2026-12-03T10:00:00Z", 1},
        {TA, "hour", "signup", "2026-12-03T10:00:00Z", 2},
        {TA, "minute", "", "2026-12-03T10:00:00Z", 2},
        {TA, "minute", "", "2026-12-03T10:16:00Z", 1},
        {TA, "minute", "order", "2026-12-03T10:16:00Z", 1},
        {TA, "minute", "signup", "2026-12-03T10:00:00Z", 2},
        {TA, "quarter", "", "2026-12-03T10:00:00Z", 2},
        {TA, "quarter", "", "2026-12-03T10:15:00Z", 1},
        {TA, "quarter", "order", "2026-12-03T10:15:00Z", 1},
        {TA, "quarter", "signup", "2026-12-03T10:00:00Z", 2},
        {TB, "day", "", "2026-12-01T00:00:00Z", 1},
        {TB, "day", "signup", "2026-12-01T00:00:00Z", 1},
        {TB, "hour", "", "2026-12-01T23:00:00Z", 1},
        {TB, "hour", "signup", "2026-12-01T23:00:00Z", 1},
        {TB, "minute", "", "2026-12-01T23:59:00Z", 1},
        {TB, "minute", "signup", "2026-12-01T23:59:00Z", 1},
        {TB, "quarter", "", "2026-12-01T23:45:00Z", 1},
        {TB, "quarter", "signup", "2026-12-01T23:45:00Z", 1},
    };
    eo_rollup_row_t *rows;
    size_t n;
    assert_int_equal(eo_rollup_delta(ev, 4, &rows, &n), 0);
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) {
        const eo_rollup_row_t *r = &rows[i];
        if (memcmp(r->tenant_id, want[i].tenant, 36) != 0 ||
            strcmp(eo_rollup_granularity_name(r->granularity), want[i].gran) != 0 ||
            !str_eq(r->event_type, want[i].type) || r->bucket_start_us != T(want[i].bucket) ||
            r->count != want[i].count)
            fail_msg("row %zu: %.36s %s %.*s %lld x%lld, want %s %s %s %s x%lld", i, r->tenant_id,
                     eo_rollup_granularity_name(r->granularity), (int)r->event_type.len,
                     r->event_type.s, (long long)r->bucket_start_us, (long long)r->count,
                     want[i].tenant, want[i].gran, want[i].type, want[i].bucket,
                     (long long)want[i].count);
    }
    free(rows);
}

static void test_before_1970(void **state)
{
    (void)state;
    eo_rollup_event_t ev[] = {{TA, S("x"), -1}};
    eo_rollup_row_t *rows;
    size_t n;
    assert_int_equal(eo_rollup_delta(ev, 1, &rows, &n), 0);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++) {
        int64_t want;
        switch (rows[i].granularity) {
        case EO_ROLLUP_MINUTE:
            want = -MIN;
            break;
        case EO_ROLLUP_QUARTER:
            want = -15 * MIN;
            break;
        case EO_ROLLUP_HOUR:
            want = -60 * MIN;
            break;
        default:
            want = -1440 * MIN;
            break;
        }
        assert_true(rows[i].bucket_start_us == want);
        assert_true(rows[i].count == 1);
    }
    free(rows);
}

/* Brute force: the events of (tenant, type or all, bucket of g). */
static int64_t count_of(const eo_rollup_event_t *ev, size_t n, const eo_rollup_row_t *r)
{
    static const int64_t size[] = {MIN, 15 * MIN, 60 * MIN, 1440 * MIN};
    int64_t c = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t = ev[i].occurred_at_us;
        int64_t start =
            t - ((t % size[r->granularity]) + size[r->granularity]) % size[r->granularity];
        if (memcmp(ev[i].tenant_id, r->tenant_id, 36) == 0 && start == r->bucket_start_us &&
            (r->event_type.len == 0 ||
             (ev[i].event_type.len == r->event_type.len &&
              memcmp(ev[i].event_type.s, r->event_type.s, r->event_type.len) == 0)))
            c++;
    }
    return c;
}

static void test_random_batch(void **state)
{
    (void)state;
    static const char *const tenants[] = {TA, TB, "0b6f0c1e-0000-4000-8000-00000000000c"};
    static const char *const types[] = {"a", "ab", "b", "order_placed", "signup"};
    enum { N = 5000 };
    eo_rollup_event_t *ev = malloc(N * sizeof *ev);
    assert_non_null(ev);
    srand(20261203);
    int64_t base = T("2026-11-30T00:00:00Z");
    for (size_t i = 0; i < N; i++)
        ev[i] =
            (eo_rollup_event_t){tenants[rand() % 3], S(types[rand() % 5]),
                                base + (int64_t)(rand() % (3 * 1440)) * MIN + rand() % 60000000};
    eo_rollup_row_t *rows;
    size_t n;
    assert_int_equal(eo_rollup_delta(ev, N, &rows, &n), 0);
    int64_t per_gran_all[EO_ROLLUP_GRANULARITIES] = {0};
    for (size_t i = 0; i < n; i++) {
        int64_t want = count_of(ev, N, &rows[i]);
        if (rows[i].count != want || want == 0)
            fail_msg("row %zu: count %lld, brute force %lld", i, (long long)rows[i].count,
                     (long long)want);
        if (rows[i].event_type.len == 0)
            per_gran_all[rows[i].granularity] += rows[i].count;
        if (i > 0) { /* strictly increasing: each key once, in order */
            const eo_rollup_row_t *p = &rows[i - 1], *r = &rows[i];
            int c = memcmp(p->tenant_id, r->tenant_id, 36);
            if (c == 0)
                c = strcmp(eo_rollup_granularity_name(p->granularity),
                           eo_rollup_granularity_name(r->granularity));
            if (c == 0) {
                size_t m =
                    p->event_type.len < r->event_type.len ? p->event_type.len : r->event_type.len;
                c = m ? memcmp(p->event_type.s, r->event_type.s, m) : 0;
                if (c == 0)
                    c = (p->event_type.len > r->event_type.len) -
                        (p->event_type.len < r->event_type.len);
            }
            if (c == 0)
                c = p->bucket_start_us < r->bucket_start_us ? -1 : 1;
            if (c >= 0)
                fail_msg("rows %zu and %zu out of order", i - 1, i);
        }
    }
    for (int g = 0; g < EO_ROLLUP_GRANULARITIES; g++)
        assert_true(per_gran_all[g] == N); /* every event counted once per granularity */
    free(rows);
    free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_small_batch),
        cmocka_unit_test(test_before_1970),
        cmocka_unit_test(test_random_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
