/* Unit tests of src/domain/window.c: pane size (gcd of size and slide), pane floors before and
 * after the epoch, the windows holding a time (first and last start, checked against a brute
 * force over every window), spec validation, and the watermark (minimum over partitions that
 * are not idle, minus the bound; the wall clock when all are idle; never backwards). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "domain/window.h"

#define S INT64_C(1000000)
#define MIN (60 * S)

static void test_init(void **state)
{
    (void)state;
    static const struct {
        int64_t size, slide, max_panes;
        int rc;
        int64_t pane;
    } rows[] = {
        {5 * MIN, MIN, 1000, 0, MIN},          /* hopping 5 min by 1 min: 1-minute panes */
        {5 * MIN, 5 * MIN, 1000, 0, 5 * MIN},  /* tumbling: one pane per window */
        {10 * MIN, 4 * MIN, 1000, 0, 2 * MIN}, /* gcd */
        {7 * S, 3 * S, 1000, 0, S},
        {60 * MIN, MIN, 60, 0, MIN},            /* exactly max_panes */
        {60 * MIN, MIN, 59, EO_EINVAL, 0},      /* too many panes */
        {5 * MIN, 6 * MIN, 1000, EO_EINVAL, 0}, /* slide > size */
        {0, MIN, 1000, EO_EINVAL, 0},
        {5 * MIN, 0, 1000, EO_EINVAL, 0},
        {-5 * MIN, MIN, 1000, EO_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_window_t w;
        int rc = eo_window_init(&w, rows[i].size, rows[i].slide, rows[i].max_panes);
        if (rc != rows[i].rc)
            fail_msg("row %zu: rc %d, want %d", i, rc, rows[i].rc);
        if (rc == 0) {
            assert_int_equal(w.pane_us, rows[i].pane);
            assert_int_equal(eo_window_panes(&w), rows[i].size / rows[i].pane);
        }
    }
}

static void test_pane_of(void **state)
{
    (void)state;
    eo_window_t w;
    assert_int_equal(eo_window_init(&w, 5 * MIN, MIN, 100), 0);
    static const struct {
        int64_t t, pane;
    } rows[] = {
        {0, 0},
        {1, 0},
        {MIN - 1, 0},
        {MIN, MIN},
        {MIN + 1, MIN},
        {-1, -MIN}, /* before the epoch: floor, not truncation */
        {-MIN, -MIN},
        {-MIN - 1, -2 * MIN},
        {INT64_C(1764633600000000) + 30 * S, INT64_C(1764633600000000)}, /* 2025-12-02 */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(eo_window_pane_of(&w, rows[i].t), rows[i].pane);
}

/* The windows [k*slide, k*slide+size) holding t, found by brute force. */
static void brute(const eo_window_t *w, int64_t t, int64_t *first, int64_t *last, int *count)
{
    *count = 0;
    for (int64_t k = -1000; k <= 1000; k++) {
        int64_t s = k * w->slide_us;
        if (s <= t && t < s + w->size_us) {
            if (!*count)
                *first = s;
            *last = s;
            ++*count;
        }
    }
}

static void test_span(void **state)
{
    (void)state;
    static const int64_t specs[][2] = {
        {5 * MIN, MIN}, {5 * MIN, 5 * MIN}, {10 * MIN, 4 * MIN}, {7 * S, 3 * S}, {3 * S, 2 * S}};
    static const int64_t times[] = {0,       1,           MIN - 1, MIN,  MIN + 1,      5 * MIN,
                                    7 * MIN, 13 * S,      -1,      -MIN, -7 * MIN - 3, 2 * S,
                                    3 * S,   20 * MIN + 7};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        eo_window_t w;
        assert_int_equal(eo_window_init(&w, specs[i][0], specs[i][1], 1000), 0);
        for (size_t j = 0; j < sizeof times / sizeof times[0]; j++) {
            int64_t first, last, bf = 0, bl = 0;
            int count;
            eo_window_span(&w, times[j], &first, &last);
            brute(&w, times[j], &bf, &bl, &count);
            assert_true(count > 0);
            if (first != bf || last != bl)
                fail_msg("spec %zu t %lld: span [%lld, %lld], brute force [%lld, %lld]", i,
                         (long long)times[j], (long long)first, (long long)last, (long long)bf,
                         (long long)bl);
            assert_int_equal((last - first) / w.slide_us + 1, count);
        }
    }
}

static void test_watermark(void **state)
{
    (void)state;
    eo_watermark_part_t parts[3];
    eo_watermark_t wm;
    const int64_t bound = 2 * S, idle = 10 * S, wall = 1000 * S;
    eo_watermark_init(&wm, parts, 3, bound, idle);

    /* nothing seen: the wall clock minus the bound */
    assert_int_equal(eo_watermark_advance(&wm, 0, wall), wall - bound);

    /* an active partition's event time rules, but behind the wall-clock value it never moves
     * the watermark back */
    eo_watermark_observe(&wm, 0, 500 * S, 1 * S);
    assert_int_equal(eo_watermark_advance(&wm, 1 * S, wall + S), wall - bound);

    /* a fresh watermark: partitions 0 and 1 active, 2 never seen (idle) */
    eo_watermark_part_t p2[3];
    eo_watermark_t w2;
    eo_watermark_init(&w2, p2, 3, bound, idle);
    eo_watermark_observe(&w2, 0, 100 * S, 0);
    eo_watermark_observe(&w2, 1, 90 * S, 0);
    eo_watermark_observe(&w2, 0, 95 * S, 0); /* out of order: the max stays 100 */
    assert_int_equal(eo_watermark_advance(&w2, S, wall), 90 * S - bound);
    eo_watermark_observe(&w2, 1, 120 * S, 2 * S);
    assert_int_equal(eo_watermark_advance(&w2, 3 * S, wall), 100 * S - bound);

    /* partition 0 goes idle (no record for idle): only partition 1 counts */
    assert_int_equal(eo_watermark_advance(&w2, 10 * S, wall), 120 * S - bound);
    /* partition 0 comes back with an older time: the watermark does not go back */
    eo_watermark_observe(&w2, 0, 101 * S, 11 * S);
    assert_int_equal(eo_watermark_advance(&w2, 11 * S, wall), 120 * S - bound);
    /* both idle: the wall clock */
    assert_int_equal(eo_watermark_advance(&w2, 30 * S, wall), wall - bound);
    /* then traffic again, behind the wall clock: stays */
    eo_watermark_observe(&w2, 2, 200 * S, 31 * S);
    assert_int_equal(eo_watermark_advance(&w2, 31 * S, wall), wall - bound);
}

/* A held partition (not assigned, or with a backlog) is never idle: before its first record
 * the watermark waits; after it, its highest event time holds the watermark back. */
static void test_watermark_held(void **state)
{
    (void)state;
    eo_watermark_part_t parts[2];
    eo_watermark_t wm;
    eo_watermark_init(&wm, parts, 2, 0, 1000);
    eo_watermark_observe(&wm, 0, 500, 0);
    parts[1].held = true;
    assert_true(eo_watermark_advance(&wm, 10, 9999) == INT64_MIN);   /* 1 unknown: wait */
    assert_true(eo_watermark_advance(&wm, 5000, 9999) == INT64_MIN); /* idle or not */
    eo_watermark_observe(&wm, 1, 300, 5000);
    assert_true(eo_watermark_advance(&wm, 5001, 9999) == 300);
    assert_true(eo_watermark_advance(&wm, 90000, 9999) == 300); /* all idle, 1 held */
    parts[1].held = false; /* caught up: idle again, the wall clock leads */
    assert_true(eo_watermark_advance(&wm, 90000, 9999) == 9999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),           cmocka_unit_test(test_pane_of),
        cmocka_unit_test(test_span),           cmocka_unit_test(test_watermark),
        cmocka_unit_test(test_watermark_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
