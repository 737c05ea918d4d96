/* Unit tests of the GCRA arithmetic of src/core/ratelimit.c, on its in-process limiter (no
 * Redis URL): the burst passes from rest and the next request is refused, RateLimit-Remaining
 * counts down, Retry-After and Reset follow the rate, keys are independent, and the local
 * share is rate and burst divided by the instance count. Rates are chosen so that the clock
 * cannot refill a request during the test (one per 1000 s) or refills at once (1e9/s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/ratelimit.h"

static eo_ratelimit_t *local_limiter(int64_t instances)
{
    eo_ratelimit_options_t opt = {"", 50, 1000, instances, 64, 50};
    eo_ratelimit_t *rl = NULL;
    char err[128];
    assert_int_equal(eo_ratelimit_new(&opt, &rl, err, sizeof err), 0);
    assert_false(eo_ratelimit_shared(rl));
    return rl;
}

static void test_burst_then_refused(void **state)
{
    eo_ratelimit_t *rl = local_limiter(1);
    eo_ratelimit_result_t res;
    for (int64_t i = 0; i < 3; i++) {
        eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 3, &res);
        assert_true(res.allowed);
        assert_int_equal(res.limit, 3);
        assert_int_equal(res.remaining, 2 - i);
    }
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 3, &res);
    assert_false(res.allowed);
    assert_int_equal(res.remaining, 0);
    /* one request is refilled every 1000 s */
    assert_in_range(res.retry_after_s, 999, 1000);
    assert_in_range(res.reset_s, 2999, 3000);
    eo_ratelimit_free(rl);
}

static void test_keys_are_independent(void **state)
{
    eo_ratelimit_t *rl = local_limiter(1);
    eo_ratelimit_result_t res;
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 1, &res);
    assert_true(res.allowed);
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 1, &res);
    assert_false(res.allowed);
    /* another credential, and the same id under another tenant, have their own buckets */
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:b", 0.001, 1, &res);
    assert_true(res.allowed);
    eo_ratelimit_take(rl, "eo:rl:{t2}:wk:a", 0.001, 1, &res);
    assert_true(res.allowed);
    eo_ratelimit_free(rl);
}

static void test_fast_rate_never_refuses(void **state)
{
    eo_ratelimit_t *rl = local_limiter(1);
    eo_ratelimit_result_t res;
    for (int i = 0; i < 1000; i++) {
        eo_ratelimit_take(rl, "eo:rl:{t1}:client:c", 1e9, 1, &res);
        assert_true(res.allowed);
    }
    eo_ratelimit_free(rl);
}

static void test_local_share_per_instance(void **state)
{
    eo_ratelimit_t *rl = local_limiter(2);
    eo_ratelimit_result_t res;
    /* burst 4 over 2 instances: 2 here */
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 4, &res);
    assert_true(res.allowed);
    assert_int_equal(res.limit, 2);
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 4, &res);
    assert_true(res.allowed);
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:a", 0.001, 4, &res);
    assert_false(res.allowed);
    /* a burst below the instance count still admits one */
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:b", 0.001, 1, &res);
    assert_true(res.allowed);
    assert_int_equal(res.limit, 1);
    eo_ratelimit_free(rl);
}

static void test_bad_arguments_are_clamped(void **state)
{
    eo_ratelimit_t *rl = local_limiter(1);
    eo_ratelimit_result_t res;
    /* rate <= 0 is one per second, burst < 1 is one */
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:z", 0, 0, &res);
    assert_true(res.allowed);
    assert_int_equal(res.limit, 1);
    eo_ratelimit_take(rl, "eo:rl:{t1}:wk:z", -5, -1, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_s, 1);
    eo_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_fast_rate_never_refuses),
        cmocka_unit_test(test_local_share_per_instance),
        cmocka_unit_test(test_bad_arguments_are_clamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
