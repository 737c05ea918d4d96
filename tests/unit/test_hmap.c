/* Unit tests of src/core/hmap.c: a map with malloc'd keys and one whose keys live in an arena
 * (eo_hmap_init_arena) keep the same contents through many puts, replacements and deletions
 * (checked against a plain array), keys with NULs and keys larger than an arena chunk included;
 * an arena map's reservation holds `expected` keys without growing; eo_hmap_done frees
 * everything (the sanitizer build's leak check). */
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

/* Key i: a short text key, every 7th with a NUL inside, every 997th longer than a chunk. */
static size_t make_key(size_t i, char **out)
{
    size_t len = i % 997 == 0 ? 70000 + i : 24;
    char *k = malloc(len);
    assert_non_null(k);
    memset(k, 'a' + (int)(i % 26), len);
    int n = snprintf(k, 24, "key-%zu", i);
    if (i % 7 == 0)
        k[n] = '\0', k[n + 1] = 'x'; /* a NUL inside the key */
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

static void test_malloced_keys(void **state)
{
    (void)state;
    eo_hmap_t m;
    eo_hmap_init(&m);
    exercise(&m);
    eo_hmap_done(&m, NULL);
    assert_null(m.slots);
    assert_int_equal(m.count, 0);
}

static void test_arena_keys(void **state)
{
    (void)state;
    eo_hmap_t m;
    assert_int_equal(eo_hmap_init_arena(&m, 0), 0);
    exercise(&m);
    eo_hmap_done(&m, NULL);
    assert_null(m.chunks);
    assert_false(m.arena); /* done leaves an empty map, as eo_hmap_init does */
}

static void test_arena_reservation(void **state)
{
    (void)state;
    eo_hmap_t m;
    assert_int_equal(eo_hmap_init_arena(&m, 1000), 0);
    size_t cap = m.cap;
    assert_true(cap >= 2000);
    eo_hmap_slot_t *slots = m.slots;
    void *old;
    for (size_t i = 0; i < 1000; i++) {
        char k[32];
        int n = snprintf(k, sizeof k, "user-%zu", i);
        assert_int_equal(eo_hmap_put(&m, k, (size_t)n, (void *)(i + 1), &old), 0);
    }
    assert_int_equal(m.cap, cap); /* no growth: the reservation held them */
    assert_ptr_equal(m.slots, slots);
    assert_int_equal((uintptr_t)eo_hmap_get(&m, "user-999", 8), 1000);
    /* moved by value (a cache generation becomes the old one): the copy owns the arena */
    eo_hmap_t moved = m;
    eo_hmap_init(&m);
    assert_int_equal((uintptr_t)eo_hmap_get(&moved, "user-0", 6), 1);
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
    assert_int_equal(eo_hmap_init_arena(&m, 4), 0);
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
        cmocka_unit_test(test_malloced_keys),
        cmocka_unit_test(test_arena_keys),
        cmocka_unit_test(test_arena_reservation),
        cmocka_unit_test(test_done_frees_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
