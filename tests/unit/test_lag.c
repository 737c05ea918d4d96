/* Unit tests of src/domain/lag.c: backlog per partition, progress tracking across samples,
 * and the stall rule (a backlog with no committed progress for the stall time, on the
 * partitions an instance owns, or on every partition while it owns none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "domain/lag.h"

#define S INT64_C(1000000)

static eo_lag_partition_t part(int32_t id, int64_t end, int64_t committed)
{
    return (eo_lag_partition_t){.partition = id, .end = end, .committed = committed};
}

static void test_backlog(void **state)
{
    struct {
        int64_t end, committed, lag;
    } rows[] = {
        {100, 40, 60}, /* records not committed yet */
        {100, 100, 0}, /* caught up */
        {0, 0, 0},     /* empty partition */
        {50, 60, 0},   /* committed seen ahead of a stale end: never negative */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_lag_partition_t p = part(0, rows[i].end, rows[i].committed);
        assert_int_equal(eo_lag_of(&p), rows[i].lag);
    }
}

static void test_track_progress(void **state)
{
    eo_lag_partition_t prev[3] = {part(0, 100, 10), part(1, 100, 10), part(2, 5, 5)};
    prev[0].progress_us = prev[1].progress_us = prev[2].progress_us = 1 * S;
    /* fresh sample, in another order, with a partition the previous one did not have */
    eo_lag_partition_t fresh[4] = {part(1, 200, 10), /* backlog, commit unchanged: keeps 1 s */
                                   part(0, 200, 50), /* commit moved: progress now */
                                   part(2, 9, 5),    /* backlog, commit unchanged: keeps 1 s */
                                   part(3, 7, 0)};   /* new partition: progress now */
    eo_lag_track(prev, 3, fresh, 4, 9 * S);
    assert_int_equal(fresh[0].progress_us, 1 * S);
    assert_int_equal(fresh[1].progress_us, 9 * S);
    assert_int_equal(fresh[2].progress_us, 1 * S);
    assert_int_equal(fresh[3].progress_us, 9 * S);
    /* caught up with an unchanged commit (nothing arrived): that is progress too */
    eo_lag_partition_t idle[1] = {part(2, 5, 5)};
    eo_lag_track(prev, 3, idle, 1, 20 * S);
    assert_int_equal(idle[0].progress_us, 20 * S);
    /* no previous table: every partition starts now */
    eo_lag_partition_t first[1] = {part(0, 100, 0)};
    eo_lag_track(NULL, 0, first, 1, 3 * S);
    assert_int_equal(first[0].progress_us, 3 * S);
}

static void test_stalled(void **state)
{
    eo_lag_partition_t parts[3] = {part(0, 100, 100), part(1, 100, 40), part(2, 100, 100)};
    parts[0].progress_us = 50 * S;
    parts[1].progress_us = 10 * S; /* a backlog since 10 s */
    parts[2].progress_us = 50 * S;
    int32_t mine_1[] = {1}, mine_02[] = {0, 2};
    /* failing rows: a backlog without progress for the stall time */
    assert_true(eo_lag_stalled(parts, 3, NULL, 0, 40 * S, 30 * S)); /* exactly 30 s */
    assert_true(eo_lag_stalled(parts, 3, mine_1, 1, 60 * S, 30 * S));
    /* passing rows */
    assert_false(eo_lag_stalled(parts, 3, NULL, 0, 39 * S, 30 * S));    /* not long enough */
    assert_false(eo_lag_stalled(parts, 3, mine_02, 2, 60 * S, 30 * S)); /* not ours */
    assert_false(eo_lag_stalled(parts, 0, NULL, 0, 60 * S, 30 * S));    /* nothing measured */
    parts[1].committed = 100;                                           /* caught up */
    assert_false(eo_lag_stalled(parts, 3, NULL, 0, 60 * S, 30 * S));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backlog),
        cmocka_unit_test(test_track_progress),
        cmocka_unit_test(test_stalled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
