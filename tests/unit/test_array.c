/* Unit tests of src/core/array.h: doubling from the first capacity, jumping to a larger need,
 * no change when there is room, and no change on a size overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/array.h"

static void test_grow(void **state)
{
    (void)state;
    int *v = NULL;
    size_t cap = 0;
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, 1, 4), 0);
    assert_int_equal(cap, 4);
    assert_non_null(v);
    for (int i = 0; i < 4; i++)
        v[i] = i;
    int *before = v;
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, 4, 4), 0); /* room already: unchanged */
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 4);
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, 5, 4), 0); /* doubles */
    assert_int_equal(cap, 8);
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, 100, 4), 0); /* doubles until it fits */
    assert_int_equal(cap, 128);
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i], i); /* contents kept */
    free(v);

    v = NULL;
    cap = 0;
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, 3, 0), 0); /* first 0 means 1 */
    assert_int_equal(cap, 4);
    free(v);
}

static void test_overflow(void **state)
{
    (void)state;
    int64_t *v = NULL;
    size_t cap = 0;
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, SIZE_MAX / 4, 8), EO_ENOMEM);
    assert_null(v);
    assert_int_equal(cap, 0);
    assert_int_equal(EO_ARRAY_RESERVE(v, cap, SIZE_MAX, 8), EO_ENOMEM);
    assert_int_equal(cap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
