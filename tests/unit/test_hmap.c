/* Unit tests of src/core/hmap.c: the map keeps the same contents as a plain array through many
 * puts, replacements and deletions (backward-shift deletion, growth), keys with NULs and keys of
 * 70 KB included; a map moved by value keeps working; eo_hmap_done frees keys and values (the
 * sanitizer build's leak check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hmap.h"

enum { KEYS = 5000 };

/* Key i: a short text key with a NUL inside, every 997th over 70 KB. */
static size_t make_key(size_t i, char **out)
{
    size_t len = i % 997 == 0 ? 70000 + i : 24;
    char *k = malloc(len);
    assert_non_null(k);
    memset(k, 'a' + (int)(i % 26), len);
    snprintf(k, 24, "key-%zu", i); /* its NUL stays inside the key */
    *out = k;
    return len;
}

static void exercise(eo_hmap_t *m)
{
    char *keys[KEYS];
    size_t lens[KEYS];
    uintptr_t want[KEYS] = {0}; /* 0: absent */
    for (size_t i = 0; i < KEYS; i++)
        lens[i] = make_key(i, &keys[i]);
    void *old;
    for (size_t i = 0; i < KEYS; i++) {
        assert_int_equal(eo_hmap_put(m, keys[i], lens[i], (void *)(i + 1), &old), 0);
        assert_null(old);
        want[i] = i + 1;
    }
    for (size_t i = 0; i < KEYS; i += 3) { /* replace a third */
        assert_int_equal(eo_hmap_put(m, keys[i], lens[i], (void *)(i + 100000), &old), 0);
        assert_int_equal((uintptr_t)old, want[i]);
        want[i] = i + 100000;
    }
    for (size_t i = 1; i < KEYS; i += 4) { /* delete a quarter */
        assert_int_equal((uintptr_t)eo_hmap_del(m, keys[i], lens[i]), want[i]);
        want[i] = 0;
    }
    for (size_t i = 1; i < KEYS; i += 8) { /* put some back */
        assert_int_equal(eo_hmap_put(m, keys[i], lens[i], (void *)(i + 7), &old), 0);
        assert_null(old);
        want[i] = i + 7;
    }
    size_t present = 0;
    for (size_t i = 0; i < KEYS; i++) {
        assert_int_equal((uintptr_t)eo_hmap_get(m, keys[i], lens[i]), want[i]);
        present += want[i] != 0;
    }
    assert_int_equal(m->count, present);
    assert_null(eo_hmap_get(m, "key-", 4)); /* a prefix of every key is not a key */
    for (size_t i = 0; i < KEYS; i++)
        free(keys[i]);
}

static void test_contents(void **state)
{
    (void)state;
    eo_hmap_t m;
    eo_hmap_init(&m);
    exercise(&m);
    eo_hmap_done(&m, NULL);
    assert_null(m.slots);
    assert_int_equal(m.count, 0);
}

static void test_moved_by_value(void **state)
{
    (void)state;
    eo_hmap_t m;
    eo_hmap_init(&m);
    void *old;
    for (size_t i = 0; i < 1000; i++) {
        char k[32];
        int n = snprintf(k, sizeof k, "user-%zu", i);
        assert_int_equal(eo_hmap_put(&m, k, (size_t)n, (void *)(i + 1), &old), 0);
    }
    /* moved by value (the user-number cache's generations): the copy owns the keys */
    eo_hmap_t moved = m;
    eo_hmap_init(&m);
    assert_null(eo_hmap_get(&m, "user-0", 6));
    assert_int_equal((uintptr_t)eo_hmap_get(&moved, "user-0", 6), 1);
    assert_int_equal((uintptr_t)eo_hmap_get(&moved, "user-999", 8), 1000);
    eo_hmap_done(&m, NULL);
    eo_hmap_done(&moved, NULL);
}

static void free_value(void *v)
{
    free(v);
}

static void test_done_frees_values(void **state)
{
    (void)state;
    eo_hmap_t m;
    eo_hmap_init(&m);
    void *old;
    for (int i = 0; i < 10; i++) {
        char k[8];
        int n = snprintf(k, sizeof k, "v%d", i);
        int *v = malloc(sizeof *v);
        assert_non_null(v);
        assert_int_equal(eo_hmap_put(&m, k, (size_t)n, v, &old), 0);
    }
    eo_hmap_done(&m, free_value); /* the leak check of the sanitizer build sees the rest */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contents),
        cmocka_unit_test(test_moved_by_value),
        cmocka_unit_test(test_done_frees_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
