/* Unit tests of src/core/writekey.h: key format, uniqueness, and the SHA-256 hash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/writekey.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Decodes the 43-character secret into 32 bytes; false when a character is not base64url or
 * the unused low bits of the last one are not zero (a non-canonical encoding). */
static bool decode_secret(const char *s, uint8_t out[32])
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (int i = 0; i < 43; i++) {
        const char *p = s[i] ? strchr(b64url, s[i]) : NULL;
        if (!p)
            return false;
        acc = (acc << 6) | (uint32_t)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return o == 32 && bits == 2 && (acc & 3) == 0;
}

static void check_format(const char *key_id, const char *key)
{
    assert_int_equal(strlen(key_id), EO_WRITE_KEY_ID_LEN);
    assert_int_equal(EO_WRITE_KEY_ID_LEN, 15);
    assert_int_equal(strncmp(key_id, "wk_", 3), 0);
    for (int i = 3; i < EO_WRITE_KEY_ID_LEN; i++)
        if (!is_lower_hex(key_id[i]))
            fail_msg("key id '%s' is not wk_ + 12 lower-case hex", key_id);
    assert_int_equal(strlen(key), EO_WRITE_KEY_LEN);
    assert_int_equal(EO_WRITE_KEY_LEN, 59);
    assert_memory_equal(key, key_id, EO_WRITE_KEY_ID_LEN);
    assert_int_equal(key[EO_WRITE_KEY_ID_LEN], '.');
    uint8_t secret[32];
    if (!decode_secret(key + EO_WRITE_KEY_ID_LEN + 1, secret))
        fail_msg("secret of '%s' is not 43 canonical base64url characters", key);
    assert_null(strchr(key, '='));
    assert_null(strchr(key, '+'));
    assert_null(strchr(key, '/'));
}

static void test_format(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        char key_id[EO_WRITE_KEY_ID_LEN + 1], key[EO_WRITE_KEY_LEN + 1];
        memset(key_id, 'X', sizeof key_id);
        memset(key, 'X', sizeof key);
        assert_int_equal(eo_write_key_generate(key_id, key), 0);
        check_format(key_id, key);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_unique(void **state)
{
    (void)state;
    enum { N = 1000 };
    char(*keys)[EO_WRITE_KEY_LEN + 1] = calloc(N, sizeof *keys);
    char(*ids)[EO_WRITE_KEY_ID_LEN + 1] = calloc(N, sizeof *ids);
    assert_non_null(keys);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        assert_int_equal(eo_write_key_generate(ids[i], keys[i]), 0);
        check_format(ids[i], keys[i]);
    }
    qsort(keys, N, sizeof *keys, cmp_str);
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0)
            fail_msg("duplicate key %s", keys[i]);
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("duplicate key id %s", ids[i]);
    }
    /* the secret part alone is unique too (and not derived from the id) */
    for (int i = 0; i < N; i++)
        memmove(keys[i], keys[i] + EO_WRITE_KEY_ID_LEN + 1, 44);
    qsort(keys, N, sizeof *keys, cmp_str);
    for (int i = 1; i < N; i++)
        assert_int_not_equal(strcmp(keys[i - 1], keys[i]), 0);
    free(keys);
    free(ids);
}

static void test_hash_known_vectors(void **state)
{
    (void)state;
    static const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
                                      0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
                                      0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
                                      0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t out[32];
    eo_write_key_hash("", 0, out);
    assert_memory_equal(out, empty, 32);
    eo_write_key_hash("abc", 3, out);
    assert_memory_equal(out, abc, 32);
    eo_write_key_hash("abcdef", 3, out); /* only len bytes */
    assert_memory_equal(out, abc, 32);
}

static void test_hash_deterministic_and_distinct(void **state)
{
    (void)state;
    char id1[EO_WRITE_KEY_ID_LEN + 1], k1[EO_WRITE_KEY_LEN + 1];
    char id2[EO_WRITE_KEY_ID_LEN + 1], k2[EO_WRITE_KEY_LEN + 1];
    assert_int_equal(eo_write_key_generate(id1, k1), 0);
    assert_int_equal(eo_write_key_generate(id2, k2), 0);
    uint8_t h1[32], h1b[32], h2[32], h1_short[32];
    eo_write_key_hash(k1, EO_WRITE_KEY_LEN, h1);
    eo_write_key_hash(k1, EO_WRITE_KEY_LEN, h1b);
    eo_write_key_hash(k2, EO_WRITE_KEY_LEN, h2);
    eo_write_key_hash(k1, EO_WRITE_KEY_LEN - 1, h1_short);
    assert_memory_equal(h1, h1b, 32);
    assert_memory_not_equal(h1, h2, 32);
    assert_memory_not_equal(h1, h1_short, 32);
    /* one character changed */
    k1[EO_WRITE_KEY_LEN - 1] = k1[EO_WRITE_KEY_LEN - 1] == 'A' ? 'E' : 'A';
    eo_write_key_hash(k1, EO_WRITE_KEY_LEN, h1b);
    assert_memory_not_equal(h1, h1b, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_unique),
        cmocka_unit_test(test_hash_known_vectors),
        cmocka_unit_test(test_hash_deterministic_and_distinct),
    };
    return cmocka_run_group_tests_name("writekey", tests, NULL, NULL);
}
