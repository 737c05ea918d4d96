/* Unit tests of src/domain/aggregate.c: count, sum, min, max and mean of values; nothing from
 * an empty aggregate; merging panes equals adding every value (in any order, with compensated
 * sums: values that lose their low bits in a plain sum); the mean of a window is the total over
 * the count, never a mean of means; the rolling mean over the last n buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "domain/aggregate.h"

static void test_basics(void **state)
{
    (void)state;
    eo_agg_t a;
    eo_agg_init(&a);
    double v = 123;
    assert_false(eo_agg_mean(&a, &v));
    assert_false(eo_agg_min(&a, &v));
    assert_false(eo_agg_max(&a, &v));
    assert_true(v == 123); /* untouched */
    assert_true(eo_agg_sum(&a) == 0);
    static const double xs[] = {3, -1.5, 10, 0, 2.5};
    for (size_t i = 0; i < 5; i++)
        eo_agg_add(&a, xs[i]);
    assert_int_equal(a.count, 5);
    assert_true(eo_agg_sum(&a) == 14);
    assert_true(eo_agg_mean(&a, &v) && v == 2.8);
    assert_true(eo_agg_min(&a, &v) && v == -1.5);
    assert_true(eo_agg_max(&a, &v) && v == 10);

    eo_agg_t one;
    eo_agg_init(&one);
    eo_agg_add(&one, -7);
    assert_true(eo_agg_min(&one, &v) && v == -7);
    assert_true(eo_agg_max(&one, &v) && v == -7);
}

/* Mean of a window from panes: (1+2+3 + 10) / 4, not the mean of the panes' means (6). */
static void test_mean_not_mean_of_means(void **state)
{
    (void)state;
    eo_agg_t p1, p2, w;
    eo_agg_init(&p1);
    eo_agg_init(&p2);
    eo_agg_init(&w);
    eo_agg_add(&p1, 1);
    eo_agg_add(&p1, 2);
    eo_agg_add(&p1, 3);
    eo_agg_add(&p2, 10);
    eo_agg_merge(&w, &p1);
    eo_agg_merge(&w, &p2);
    double m;
    assert_true(eo_agg_mean(&w, &m));
    assert_true(m == 4);
    eo_agg_t empty;
    eo_agg_init(&empty);
    eo_agg_merge(&w, &empty); /* an empty pane changes nothing */
    assert_int_equal(w.count, 4);
    assert_true(eo_agg_min(&w, &m) && m == 1);
    assert_true(eo_agg_max(&w, &m) && m == 10);
}

/* 1e16 + 1 + 1 + ... : a plain double sum loses every 1; the compensated one keeps them, and
 * merging the panes in either order gives the exact total. */
static void test_compensated_merge(void **state)
{
    (void)state;
    eo_agg_t big, ones, w1, w2;
    eo_agg_init(&big);
    eo_agg_init(&ones);
    eo_agg_add(&big, 1e16);
    for (int i = 0; i < 1000; i++)
        eo_agg_add(&ones, 1);
    eo_agg_add(&big, -1e16);
    eo_agg_add(&big, 1e16);
    eo_agg_init(&w1);
    eo_agg_merge(&w1, &big);
    eo_agg_merge(&w1, &ones);
    eo_agg_init(&w2);
    eo_agg_merge(&w2, &ones);
    eo_agg_merge(&w2, &big);
    assert_true(eo_agg_sum(&w1) == 1e16 + 1000);
    assert_true(eo_agg_sum(&w2) == 1e16 + 1000);
    eo_agg_t all;
    eo_agg_init(&all);
    eo_agg_add(&all, 1e16);
    for (int i = 0; i < 1000; i++)
        eo_agg_add(&all, 1);
    eo_agg_add(&all, -1e16);
    eo_agg_add(&all, 1e16);
    assert_true(eo_agg_sum(&all) == eo_agg_sum(&w1));
    assert_int_equal(w1.count, 1003);
}

static void test_rolling_mean(void **state)
{
    (void)state;
    static const double v[] = {4, 0, 2, 6, 0, 0, 9};
    static const struct {
        int64_t i, n;
        double want;
    } rows[] = {
        {0, 3, 4},       /* one bucket exists: its value */
        {1, 3, 2},       /* (4 + 0) / 2: not floored to three */
        {2, 3, 2},       /* (4 + 0 + 2) / 3 */
        {3, 3, 8.0 / 3}, /* (0 + 2 + 6) / 3 */
        {5, 3, 2},       /* (6 + 0 + 0) / 3: empty buckets count as 0 */
        {6, 1, 9},       /* the current bucket alone */
        {6, 100, 3},     /* every bucket: 21 / 7 */
        {-1, 3, 0},      /* nothing */
        {3, 0, 0},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        double got = eo_rolling_mean(v, rows[k].i, rows[k].n);
        if (got != rows[k].want)
            fail_msg("row %zu: %.17g, want %.17g", k, got, rows[k].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_mean_not_mean_of_means),
        cmocka_unit_test(test_compensated_merge),
        cmocka_unit_test(test_rolling_mean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
