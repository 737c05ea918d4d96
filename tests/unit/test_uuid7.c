/* Unit tests of src/domain/uuid7.h: canonical text, version and variant bits, the embedded
 * timestamp, and strict ordering within and across milliseconds (counter overflow too); parsing
 * the text form back to 16 bytes (either case; wrong dashes, digits and lengths refused). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "domain/uuid7.h"

#define NOW_MS INT64_C(1717171717171) /* 2024-05-31, a 41-bit value */

/* Deterministic random bytes (xorshift64*), so a failure reproduces. */
static void fake_random(uint64_t *state, uint8_t rnd[10])
{
    for (int i = 0; i < 10; i++) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        rnd[i] = (uint8_t)((*state * 0x2545F4914F6CDD1Du) >> 56);
    }
}

static bool is_canonical(const char *id)
{
    if (strlen(id) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return id[14] == '7' && strchr("89ab", id[19]) != NULL;
}

static int64_t embedded_ms(const char *id)
{
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoll(hex, NULL, 16);
}

static unsigned embedded_seq(const char *id)
{
    char hex[4] = {id[15], id[16], id[17], '\0'};
    return (unsigned)strtoul(hex, NULL, 16);
}

static void test_format(void **state)
{
    (void)state;
    eo_uuid7_gen_t gen = {0};
    uint64_t rs = 1;
    for (int i = 0; i < 1000; i++) {
        uint8_t rnd[10];
        char id[EO_UUID_STR];
        fake_random(&rs, rnd);
        memset(id, 'X', sizeof id);
        eo_uuid7_next(&gen, NOW_MS + i / 10, rnd, id);
        if (!is_canonical(id))
            fail_msg("not a canonical UUIDv7: '%s'", id);
    }
}

/* Bit layout with fixed random bytes: variant 10 on top of rnd[2]'s low 6 bits, then
 * rnd[3..9] verbatim; counter seeded from rnd[0..1] & 0x3ff. */
static void test_layout(void **state)
{
    (void)state;
    eo_uuid7_gen_t gen = {0};
    const uint8_t ones[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t zeros[10] = {0};
    const uint8_t seq[10] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23};
    char id[EO_UUID_STR];

    eo_uuid7_next(&gen, NOW_MS, ones, id);
    assert_string_equal(id + 14, "73ff-bfff-ffffffffffff");
    assert_int_equal(embedded_seq(id), 0x3ff);

    eo_uuid7_next(&gen, NOW_MS + 1, zeros, id);
    assert_string_equal(id + 14, "7000-8000-000000000000");

    eo_uuid7_next(&gen, NOW_MS + 2, seq, id);
    assert_string_equal(id + 14, "7234-9678-9abcdef00123");

    eo_uuid7_gen_t g0 = {0};
    eo_uuid7_next(&g0, INT64_C(0x0123456789ab), zeros, id);
    assert_string_equal(id, "01234567-89ab-7000-8000-000000000000");
}

static void test_timestamp_decodes(void **state)
{
    (void)state;
    static const int64_t times[] = {1, 1000, NOW_MS, INT64_C(0xffffffffffff) - 1};
    uint64_t rs = 7;
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        eo_uuid7_gen_t gen = {0};
        uint8_t rnd[10];
        char id[EO_UUID_STR];
        fake_random(&rs, rnd);
        eo_uuid7_next(&gen, times[i], rnd, id);
        assert_true(embedded_ms(id) == times[i]);
        assert_true(gen.last_ms == times[i]);
    }
}

/* Generates n ids with now_ms(i) and checks that strcmp order equals generation order. */
static void check_strictly_increasing(int n, int64_t (*now)(int), uint64_t seed)
{
    eo_uuid7_gen_t gen = {0};
    uint64_t rs = seed;
    char prev[EO_UUID_STR] = "";
    for (int i = 0; i < n; i++) {
        uint8_t rnd[10];
        char id[EO_UUID_STR];
        fake_random(&rs, rnd);
        eo_uuid7_next(&gen, now(i), rnd, id);
        if (!is_canonical(id))
            fail_msg("id %d not canonical: '%s'", i, id);
        if (i > 0 && strcmp(prev, id) >= 0)
            fail_msg("id %d '%s' does not sort after id %d '%s'", i, id, i - 1, prev);
        memcpy(prev, id, sizeof id);
    }
}

static int64_t same_ms(int i)
{
    (void)i;
    return NOW_MS;
}

static int64_t tick_every_7(int i)
{
    return NOW_MS + i / 7;
}

static int64_t tick_every_5000(int i)
{
    return NOW_MS + i / 5000;
}

static int64_t every_call_new_ms(int i)
{
    return NOW_MS + i * 13;
}

/* A clock that steps back by 3 ms every 100 calls. */
static int64_t clock_steps_back(int i)
{
    return NOW_MS + i / 10 - 3 * (i % 100 == 99);
}

static void test_order_same_ms(void **state)
{
    (void)state;
    check_strictly_increasing(10000, same_ms, 1);
    check_strictly_increasing(10000, same_ms, 99);
}

static void test_order_across_ms(void **state)
{
    (void)state;
    check_strictly_increasing(10000, tick_every_7, 3);
    check_strictly_increasing(10000, every_call_new_ms, 4);
    check_strictly_increasing(20000, tick_every_5000, 5);
    check_strictly_increasing(10000, clock_steps_back, 6);
}

/* More than 4096 ids in one millisecond: the counter runs out and the generator borrows the
 * next millisecond; ids stay strictly increasing and the timestamp moves forward. */
static void test_counter_overflow(void **state)
{
    (void)state;
    eo_uuid7_gen_t gen = {0};
    const uint8_t high[10] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}; /* seq starts at 0x3ff */
    char prev[EO_UUID_STR], id[EO_UUID_STR];
    eo_uuid7_next(&gen, NOW_MS, high, prev);
    assert_int_equal(embedded_seq(prev), 0x3ff);
    int borrowed_at = -1;
    for (int i = 1; i < 9000; i++) {
        eo_uuid7_next(&gen, NOW_MS, high, id);
        if (strcmp(prev, id) >= 0)
            fail_msg("id %d '%s' does not sort after '%s'", i, id, prev);
        if (borrowed_at < 0 && embedded_ms(id) != NOW_MS)
            borrowed_at = i;
        memcpy(prev, id, sizeof id);
    }
    assert_int_equal(borrowed_at, 0x1000 - 0x3ff); /* seq 0x3ff..0xfff, then next ms */
    assert_true(embedded_ms(prev) == NOW_MS + 2);
    /* when the real clock catches up, ids still increase */
    eo_uuid7_next(&gen, NOW_MS + 1, high, id);
    assert_true(strcmp(prev, id) < 0);
    memcpy(prev, id, sizeof id);
    eo_uuid7_next(&gen, NOW_MS + 3, high, id);
    assert_true(strcmp(prev, id) < 0);
    assert_true(embedded_ms(id) == NOW_MS + 3);
}

static void test_parse(void **state)
{
    (void)state;
    uint8_t b[16];
    static const uint8_t want[16] = {0x01, 0x8f, 0xcd, 0xef, 0x12, 0x34, 0x7a, 0xbc,
                                     0x8d, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab};
    assert_int_equal(eo_uuid_parse("018fcdef-1234-7abc-8def-0123456789ab", b), 0);
    assert_memory_equal(b, want, 16);
    assert_int_equal(eo_uuid_parse("018FCDEF-1234-7ABC-8DEF-0123456789AB", b), 0);
    assert_memory_equal(b, want, 16);
    static const char *const bad[] = {
        "018fcdef-1234-7abc-8def-0123456789ag", /* not a hex digit */
        "018fcdef12347abc8def0123456789ab----", /* dashes elsewhere */
        "018fcdef-1234-7abc-8def_0123456789ab", /* not a dash */
        "018fcdef-1234-7abc-8def-0123456789a",  /* short: its NUL is not a digit */
        "g18fcdef-1234-7abc-8def-0123456789ab",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (eo_uuid_parse(bad[i], b) != -1)
            fail_msg("accepted %s", bad[i]);
    /* whatever the generator writes parses */
    eo_uuid7_gen_t gen = {0};
    uint8_t rnd[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    char id[EO_UUID_STR];
    eo_uuid7_next(&gen, NOW_MS, rnd, id);
    assert_int_equal(eo_uuid_parse(id, b), 0);
    assert_int_equal(b[6] >> 4, 7); /* the version nibble */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_timestamp_decodes),
        cmocka_unit_test(test_order_same_ms),
        cmocka_unit_test(test_order_across_ms),
        cmocka_unit_test(test_counter_overflow),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests_name("uuid7", tests, NULL, NULL);
}
