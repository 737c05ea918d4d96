/* Unit tests of src/domain/b64.h: eo_b64url_encode on the RFC 4648 vectors (URL alphabet, no
 * padding), the strict eo_b64url_decode (round trips, and each refusal with a passing row next
 * to it), and the lenient eo_b64_decode used for HTTP Basic credentials. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "domain/b64.h"

typedef struct {
    const char *plain; /* bytes to encode (as text for readability) */
    size_t len;
    const char *encoded;
} vector_t;

#define V(s, e)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, e                                                                        \
    }

/* RFC 4648 section 10, without padding, plus bytes that use the two URL-only characters. */
static const vector_t vectors[] = {
    V("", ""),
    V("f", "Zg"),
    V("fo", "Zm8"),
    V("foo", "Zm9v"),
    V("foob", "Zm9vYg"),
    V("fooba", "Zm9vYmE"),
    V("foobar", "Zm9vYmFy"),
    V("\xfb\xff", "-_8"),
    V("\xff\xff\xfe", "___-"),
    V("\x00", "AA"),
    V("\x00\x00\x00", "AAAA"),
    V("\xff", "_w"),
    V("\x3e\x3f", "Pj8"),
};

static void test_encode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const vector_t *v = &vectors[i];
        char out[64];
        memset(out, 'X', sizeof out);
        size_t n = eo_b64url_encode((const uint8_t *)v->plain, v->len, out);
        if (n != strlen(v->encoded) || strcmp(out, v->encoded) != 0)
            fail_msg("row %zu: encoded '%s' (%zu), want '%s'", i, out, n, v->encoded);
        assert_int_equal(n, EO_B64URL_LEN(v->len));
        assert_int_equal(out[n], '\0');
        assert_int_equal(out[n + 1], 'X'); /* nothing written past the NUL */

        uint8_t back[64];
        int d = eo_b64url_decode(v->encoded, strlen(v->encoded), back, sizeof back);
        if (d != (int)v->len || memcmp(back, v->plain, v->len) != 0)
            fail_msg("row %zu: '%s' decodes to %d bytes", i, v->encoded, d);
        d = eo_b64_decode(v->encoded, strlen(v->encoded), back, sizeof back);
        assert_int_equal(d, (int)v->len);
        assert_memory_equal(back, v->plain, v->len);
    }
}

static void test_encoded_length_macro(void **state)
{
    (void)state;
    static const size_t want[] = {0, 2, 3, 4, 6, 7, 8, 10, 11, 12};
    for (size_t n = 0; n < sizeof want / sizeof want[0]; n++)
        assert_int_equal(EO_B64URL_LEN(n), want[n]);
    assert_int_equal(EO_B64URL_LEN(32), 43);
    assert_int_equal(EO_B64URL_LEN(64), 86);
}

/* xorshift32: deterministic bytes, so a failure reproduces. */
static uint32_t next_random(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void test_round_trip_random(void **state)
{
    (void)state;
    uint32_t seed = 0x9e3779b9u;
    for (int round = 0; round < 8; round++) {
        for (size_t len = 0; len <= 64; len++) {
            uint8_t in[64], out[64];
            for (size_t i = 0; i < len; i++)
                in[i] = (uint8_t)next_random(&seed);
            char text[EO_B64URL_LEN(64) + 1];
            size_t n = eo_b64url_encode(in, len, text);
            assert_int_equal(n, EO_B64URL_LEN(len));
            assert_int_equal(strlen(text), n);
            assert_null(strpbrk(text, "=+/"));
            int d = eo_b64url_decode(text, n, out, sizeof out);
            if (d != (int)len)
                fail_msg("length %zu: '%s' decodes to %d", len, text, d);
            assert_memory_equal(in, out, len);
            /* exactly enough room */
            d = eo_b64url_decode(text, n, out, len);
            assert_int_equal(d, (int)len);
            assert_memory_equal(in, out, len);
            /* one byte short */
            if (len > 0)
                assert_int_equal(eo_b64url_decode(text, n, out, len - 1), EO_ELIMIT);
            /* the lenient decoder agrees */
            d = eo_b64_decode(text, n, out, sizeof out);
            assert_int_equal(d, (int)len);
            assert_memory_equal(in, out, len);
        }
    }
}

typedef struct {
    const char *in;
    size_t cap;
    int want; /* decoded length, or EO_EPARSE / EO_ELIMIT */
} decode_row_t;

/* eo_b64url_decode: each refusal next to a passing row. */
static const decode_row_t strict_rows[] = {
    /* URL alphabet only */
    {"-_8", 16, 2},
    {"+/8", 16, EO_EPARSE},
    {"-/8", 16, EO_EPARSE},
    {"+_8", 16, EO_EPARSE},
    {"Pj8", 16, 2},
    {"Pj+", 16, EO_EPARSE},
    {"Pj/", 16, EO_EPARSE},
    /* no padding */
    {"Zg", 16, 1},
    {"Zg==", 16, EO_EPARSE},
    {"Zg=", 16, EO_EPARSE},
    {"Zm8", 16, 2},
    {"Zm8=", 16, EO_EPARSE},
    {"Zm9v", 16, 3},
    {"Zm9v====", 16, EO_EPARSE},
    {"=", 16, EO_EPARSE},
    {"Zm=v", 16, EO_EPARSE},
    /* no spaces or other characters */
    {"Zm9vYmFy", 16, 6},
    {"Zm9v YmFy", 16, EO_EPARSE},
    {" Zm9vYmFy", 16, EO_EPARSE},
    {"Zm9vYmFy ", 16, EO_EPARSE},
    {"Zm9v\nYmFy", 16, EO_EPARSE},
    {"Zm9v\tYmFy", 16, EO_EPARSE},
    {"Zm9v.YmFy", 16, EO_EPARSE},
    {"Zm9v*mFy", 16, EO_EPARSE},
    {"Zm9v\x80mFy", 16, EO_EPARSE},
    /* a length of 4k+1 cannot be base64 */
    {"", 16, 0},
    {"A", 16, EO_EPARSE},
    {"AA", 16, 1},
    {"AAAAA", 16, EO_EPARSE},
    {"AAAAAA", 16, 4},
    {"Zm9vYmFyZ", 16, EO_EPARSE},
    /* canonical: the unused low bits of the last character are zero */
    {"Zg", 16, 1},
    {"Zh", 16, EO_EPARSE},
    {"Zv", 16, EO_EPARSE},
    {"Z_", 16, EO_EPARSE},
    {"Zm8", 16, 2},
    {"Zm9", 16, EO_EPARSE},
    {"Zm-", 16, EO_EPARSE},
    {"_w", 16, 1},
    {"__", 16, EO_EPARSE},
    {"AAE", 16, 2},
    {"AAB", 16, EO_EPARSE},
    {"AAQ", 16, 2},
    {"AAS", 16, EO_EPARSE},
    /* the output must fit in cap */
    {"Zm9vYmFy", 6, 6},
    {"Zm9vYmFy", 5, EO_ELIMIT},
    {"Zm9vYmE", 5, 5},
    {"Zm9vYmE", 4, EO_ELIMIT},
    {"Zg", 1, 1},
    {"Zg", 0, EO_ELIMIT},
    {"", 0, 0},
};

/* eo_b64_decode: padding optional but correct, both alphabets. */
static const decode_row_t lenient_rows[] = {
    /* both alphabets, even mixed */
    {"-_8", 16, 2},
    {"+/8", 16, 2},
    {"+_8", 16, 2},
    {"-/8=", 16, 2},
    {"Zm9v*mFy", 16, EO_EPARSE},
    {"Zm9v YmFy", 16, EO_EPARSE},
    {"Zm9v.YmFy", 16, EO_EPARSE},
    /* optional padding, but the right amount */
    {"Zg", 16, 1},
    {"Zg==", 16, 1},
    {"Zg=", 16, EO_EPARSE},
    {"Zg===", 16, EO_EPARSE},
    {"Zm8", 16, 2},
    {"Zm8=", 16, 2},
    {"Zm8==", 16, EO_EPARSE},
    {"Zm9v", 16, 3},
    {"Zm9v=", 16, EO_EPARSE},
    {"Zm9v==", 16, EO_EPARSE},
    {"Zm9v====", 16, EO_EPARSE},
    {"=", 16, EO_EPARSE},
    {"==", 16, EO_EPARSE},
    {"====", 16, EO_EPARSE},
    {"Z===", 16, EO_EPARSE},
    {"A", 16, EO_EPARSE},
    {"A==", 16, EO_EPARSE},
    /* padding only at the end */
    {"Zg==Zg==", 16, EO_EPARSE},
    {"Zm=v", 16, EO_EPARSE},
    {"Zm9vYmFy", 16, 6},
    /* HTTP Basic: "user:pass" */
    {"dXNlcjpwYXNz", 16, 9},
    {"dXNlcjpwYXNzMQ==", 16, 10},
    /* the output must fit in cap */
    {"Zm9vYmFy", 6, 6},
    {"Zm9vYmFy", 5, EO_ELIMIT},
    {"Zg==", 1, 1},
    {"Zg==", 0, EO_ELIMIT},
};

static void run_rows(const decode_row_t *rows, size_t n, bool strict)
{
    for (size_t i = 0; i < n; i++) {
        const decode_row_t *row = &rows[i];
        uint8_t out[32];
        int got = strict ? eo_b64url_decode(row->in, strlen(row->in), out, row->cap)
                         : eo_b64_decode(row->in, strlen(row->in), out, row->cap);
        if (got != row->want)
            fail_msg("%s row %zu '%s' cap %zu: got %d, want %d", strict ? "strict" : "lenient", i,
                     row->in, row->cap, got, row->want);
    }
}

static void test_strict_rows(void **state)
{
    (void)state;
    run_rows(strict_rows, sizeof strict_rows / sizeof strict_rows[0], true);
}

static void test_lenient_rows(void **state)
{
    (void)state;
    run_rows(lenient_rows, sizeof lenient_rows / sizeof lenient_rows[0], false);
}

/* The decoders read exactly n bytes: a NUL or garbage past n is never looked at, and a NUL
 * inside the n bytes is refused. */
static void test_decode_reads_n_bytes(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(eo_b64url_decode("Zm9v!!!!", 4, out, sizeof out), 3);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(eo_b64url_decode("Zm\0v", 4, out, sizeof out), EO_EPARSE);
    assert_int_equal(eo_b64_decode("Zg==!!", 4, out, sizeof out), 1);
    assert_int_equal(eo_b64_decode("Z\0==", 4, out, sizeof out), EO_EPARSE);
}

/* Values decoded by both decoders: the lenient one reads "+/" and padding to the same bytes. */
static void test_lenient_equals_strict(void **state)
{
    (void)state;
    const uint8_t in[] = {0xfb, 0xef, 0xbe, 0xff, 0xfe, 0x3e, 0x3f};
    char url[EO_B64URL_LEN(sizeof in) + 1];
    size_t n = eo_b64url_encode(in, sizeof in, url);
    assert_string_equal(url, "----__4-Pw");
    const char *std = "++++//4+Pw==";
    uint8_t out[16];
    assert_int_equal(eo_b64_decode(std, strlen(std), out, sizeof out), (int)sizeof in);
    assert_memory_equal(out, in, sizeof in);
    assert_int_equal(eo_b64url_decode(std, strlen(std), out, sizeof out), EO_EPARSE);
    assert_int_equal(eo_b64url_decode(url, n, out, sizeof out), (int)sizeof in);
    assert_memory_equal(out, in, sizeof in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_vectors),        cmocka_unit_test(test_encoded_length_macro),
        cmocka_unit_test(test_round_trip_random),     cmocka_unit_test(test_strict_rows),
        cmocka_unit_test(test_lenient_rows),          cmocka_unit_test(test_decode_reads_n_bytes),
        cmocka_unit_test(test_lenient_equals_strict),
    };
    return cmocka_run_group_tests_name("b64", tests, NULL, NULL);
}
