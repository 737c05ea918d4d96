/* Unit tests of src/core/buf.h: the hard cap (EO_ELIMIT, buffer unchanged), growth, reset,
 * steal, printf, and the JSON-string and COPY-text escaping appenders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static void assert_terminated(const eo_buf_t *b)
{
    assert_non_null(b->data);
    assert_true(b->len < b->cap);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_init_done(void **state)
{
    (void)state;
    eo_buf_t b;
    eo_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 100);
    eo_buf_done(&b);
    eo_buf_done(&b);
    eo_buf_done(NULL);
    /* an empty append allocates and terminates */
    eo_buf_init(&b, 100);
    assert_int_equal(eo_buf_append(&b, "", 0), 0);
    assert_terminated(&b);
    assert_string_equal(b.data, "");
    eo_buf_done(&b);
}

static void test_append_and_grow(void **state)
{
    (void)state;
    eo_buf_t b;
    eo_buf_init(&b, 1 << 20);
    char expect[10001];
    for (int i = 0; i < 10000; i++) {
        char c = (char)('a' + i % 26);
        expect[i] = c;
        assert_int_equal(eo_buf_append_char(&b, c), 0);
    }
    expect[10000] = '\0';
    assert_int_equal(b.len, 10000);
    assert_terminated(&b);
    assert_memory_equal(b.data, expect, 10000);
    assert_int_equal(eo_buf_append_str(&b, "xyz"), 0);
    assert_int_equal(eo_buf_append(&b, "\0bin\0", 5), 0); /* binary-safe */
    assert_int_equal(b.len, 10008);
    assert_memory_equal(b.data + 10000, "xyz\0bin\0", 8);
    assert_terminated(&b);
    eo_buf_done(&b);
}

/* Every appender fails with EO_ELIMIT past max and leaves the buffer as it was. */
static void test_cap(void **state)
{
    (void)state;
    eo_buf_t b;
    eo_buf_init(&b, 10);
    assert_int_equal(eo_buf_append_str(&b, "0123456"), 0);

    assert_int_equal(eo_buf_append(&b, "abcd", 4), EO_ELIMIT);
    assert_int_equal(eo_buf_append_str(&b, "abcd"), EO_ELIMIT);
    assert_int_equal(eo_buf_printf(&b, "%d", 1234), EO_ELIMIT);
    assert_int_equal(eo_buf_reserve(&b, 4), EO_ELIMIT);
    assert_int_equal(eo_buf_reserve(&b, SIZE_MAX), EO_ELIMIT);
    assert_int_equal(eo_buf_append(&b, "x", SIZE_MAX), EO_ELIMIT);
    assert_int_equal(b.len, 7);
    assert_string_equal(b.data, "0123456");

    /* up to max exactly */
    assert_int_equal(eo_buf_printf(&b, "%s", "78"), 0);
    assert_int_equal(eo_buf_append_char(&b, '9'), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_int_equal(eo_buf_append_char(&b, 'x'), EO_ELIMIT);
    assert_int_equal(eo_buf_append(&b, "", 0), 0);
    assert_int_equal(eo_buf_reserve(&b, 0), 0);
    assert_string_equal(b.data, "0123456789");
    assert_true(b.cap <= b.max + 1);
    eo_buf_done(&b);

    /* max 0: nothing but empty appends */
    eo_buf_init(&b, 0);
    assert_int_equal(eo_buf_append_char(&b, 'x'), EO_ELIMIT);
    assert_int_equal(eo_buf_append_json_str(&b, "", 0), EO_ELIMIT);
    assert_int_equal(eo_buf_append_copy_text(&b, "x", 1), EO_ELIMIT);
    assert_int_equal(b.len, 0);
    eo_buf_done(&b);

    /* escaping that grows past max fails too (the escaped form is what counts) */
    static const struct {
        const char *s;
        size_t n;
        size_t max;
        int json;
    } grow[] = {
        {"\x01\x02", 2, 8, 1}, /* "\u0001\u0002" = 14 bytes */
        {"\"\"\"\"", 4, 8, 1}, /* 10 bytes */
        {"abcdefgh", 8, 9, 1}, /* quotes make it 10 */
        {"\t\t\t\t", 4, 7, 0}, /* 8 bytes */
        {"a\\b\\c", 5, 6, 0},  /* 7 bytes */
    };
    for (size_t i = 0; i < sizeof grow / sizeof grow[0]; i++) {
        eo_buf_init(&b, grow[i].max);
        int r = grow[i].json ? eo_buf_append_json_str(&b, grow[i].s, grow[i].n)
                             : eo_buf_append_copy_text(&b, grow[i].s, grow[i].n);
        assert_int_equal(r, EO_ELIMIT);
        assert_true(b.len <= grow[i].max);
        eo_buf_done(&b);
        eo_buf_init(&b, grow[i].max + 6);
        r = grow[i].json ? eo_buf_append_json_str(&b, grow[i].s, grow[i].n)
                         : eo_buf_append_copy_text(&b, grow[i].s, grow[i].n);
        assert_int_equal(r, 0);
        eo_buf_done(&b);
    }
}

static void test_printf(void **state)
{
    (void)state;
    eo_buf_t b;
    eo_buf_init(&b, 4096);
    assert_int_equal(eo_buf_printf(&b, "{\"v\":%d,\"s\":\"%s\",\"n\":%zu}", 1, "x", (size_t)42), 0);
    assert_string_equal(b.data, "{\"v\":1,\"s\":\"x\",\"n\":42}");
    assert_int_equal(b.len, strlen(b.data));
    assert_int_equal(eo_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(eo_buf_printf(&b, "|%05.1f|%-3s|", 3.14159, "a"), 0);
    assert_string_equal(b.data, "{\"v\":1,\"s\":\"x\",\"n\":42}|003.1|a  |");
    /* longer than the first allocation */
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    eo_buf_reset(&b);
    assert_int_equal(eo_buf_printf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[1000], '>');
    assert_terminated(&b);
    eo_buf_done(&b);
}

static void test_reset_and_steal(void **state)
{
    (void)state;
    eo_buf_t b;
    eo_buf_init(&b, 1024);
    assert_int_equal(eo_buf_append_str(&b, "hello"), 0);
    size_t cap = b.cap;
    eo_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(b.cap, cap);
    eo_buf_reset(&b);

    assert_int_equal(eo_buf_append_str(&b, "payload"), 0);
    size_t len = 0;
    char *p = eo_buf_steal(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 7);
    assert_string_equal(p, "payload");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 1024);
    /* the buffer is usable again, independent of the stolen memory */
    assert_int_equal(eo_buf_append_str(&b, "next"), 0);
    assert_string_equal(b.data, "next");
    assert_string_equal(p, "payload");
    free(p);
    p = eo_buf_steal(&b, NULL);
    assert_string_equal(p, "next");
    free(p);
    /* stealing an empty buffer gives NULL */
    eo_buf_t e;
    eo_buf_init(&e, 10);
    len = 99;
    assert_null(eo_buf_steal(&e, &len));
    assert_int_equal(len, 0);
    eo_buf_done(&b);
    eo_buf_reset(&e); /* reset of a never-used buffer */
    eo_buf_done(&e);
}

typedef struct {
    const char *in;
    size_t n;
    const char *out;
} esc_row_t;

static const esc_row_t json_rows[] = {
    {"", 0, "\"\""},
    {"plain", 5, "\"plain\""},
    {"a\"b", 3, "\"a\\\"b\""},
    {"a\\b", 3, "\"a\\\\b\""},
    {"\\\"", 2, "\"\\\\\\\"\""},
    {"l1\nl2", 5, "\"l1\\nl2\""},
    {"\r\t", 2, "\"\\r\\t\""},
    {"\x01", 1, "\"\\u0001\""},
    {"\x08\x0c", 2, "\"\\u0008\\u000c\""},
    {"\x1f", 1, "\"\\u001f\""},
    {"\x1b[0m", 4, "\"\\u001b[0m\""},
    {"a\0b", 3, "\"a\\u0000b\""},
    {"\x7f", 1, "\"\x7f\""},
    {"/<>'&", 5, "\"/<>'&\""},
    {"\xc3\xa9\xe2\x98\x95\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x98\x95\xf0\x9f\x98\x80\""},
    {"\xe2\x80\xa8", 3, "\"\xe2\x80\xa8\""},
    {"stop here\"not this", 9, "\"stop here\""},
};

static void test_json_str(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_rows / sizeof json_rows[0]; i++) {
        eo_buf_t b;
        eo_buf_init(&b, 1024);
        assert_int_equal(eo_buf_append_str(&b, "pre:"), 0);
        assert_int_equal(eo_buf_append_json_str(&b, json_rows[i].in, json_rows[i].n), 0);
        if (b.len != 4 + strlen(json_rows[i].out) ||
            memcmp(b.data + 4, json_rows[i].out, b.len - 4) != 0)
            fail_msg("row %zu: got %s, want %s", i, b.data + 4, json_rows[i].out);
        assert_terminated(&b);
        eo_buf_done(&b);
    }
}

/* Every byte 0x00..0x7f plus some UTF-8 survives a trip through a real JSON parser. */
static void test_json_str_parses_back(void **state)
{
    (void)state;
    char in[128 + 16];
    size_t n = 0;
    for (int c = 0; c < 128; c++)
        in[n++] = (char)c;
    memcpy(in + n, "\xc3\xa9\xf0\x9f\x98\x80", 6);
    n += 6;
    eo_buf_t b;
    eo_buf_init(&b, 4096);
    assert_int_equal(eo_buf_append_char(&b, '['), 0);
    assert_int_equal(eo_buf_append_json_str(&b, in, n), 0);
    assert_int_equal(eo_buf_append_char(&b, ']'), 0);
    json_error_t jerr;
    json_t *root = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &jerr);
    if (!root)
        fail_msg("not JSON: %s", jerr.text);
    json_t *s = json_array_get(root, 0);
    assert_int_equal(json_string_length(s), n);
    assert_memory_equal(json_string_value(s), in, n);
    json_decref(root);
    eo_buf_done(&b);
}

static const esc_row_t copy_rows[] = {
    {"", 0, ""},
    {"plain text", 10, "plain text"},
    {"a\\b", 3, "a\\\\b"},
    {"\\N", 2, "\\\\N"},
    {"a\tb", 3, "a\\tb"},
    {"a\nb", 3, "a\\nb"},
    {"a\rb", 3, "a\\rb"},
    {"\\.\n", 3, "\\\\.\\n"},
    {"\t\n\r\\", 4, "\\t\\n\\r\\\\"},
    {"{\"k\":\"v\\\"\"}", 11, "{\"k\":\"v\\\\\"\"}"},
    {"\x01\x1f\x7f", 3, "\x01\x1f\x7f"},
    {"\xc3\xa9\xe2\x98\x95", 5, "\xc3\xa9\xe2\x98\x95"},
    {"cut\there", 3, "cut"},
};

static void test_copy_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof copy_rows / sizeof copy_rows[0]; i++) {
        eo_buf_t b;
        eo_buf_init(&b, 1024);
        assert_int_equal(eo_buf_append_str(&b, "x"), 0);
        assert_int_equal(eo_buf_append_copy_text(&b, copy_rows[i].in, copy_rows[i].n), 0);
        if (b.len != 1 + strlen(copy_rows[i].out) ||
            memcmp(b.data + 1, copy_rows[i].out, b.len - 1) != 0)
            fail_msg("row %zu: got '%s', want '%s'", i, b.data + 1, copy_rows[i].out);
        assert_terminated(&b);
        /* no raw tab, newline or CR survives: rows and columns stay intact */
        assert_null(memchr(b.data + 1, '\t', b.len - 1));
        assert_null(memchr(b.data + 1, '\n', b.len - 1));
        assert_null(memchr(b.data + 1, '\r', b.len - 1));
        eo_buf_done(&b);
    }
}

/* The put family remembers the first error: later puts do nothing (even ones that would fit),
 * eo_buf_error() reports it, and truncate/reset clear it. The append family records it too. */
static void test_sticky_error(void **state)
{
    (void)state;
    eo_buf_t b;
    eo_buf_init(&b, 8);
    assert_int_equal(eo_buf_error(&b), 0);
    eo_buf_puts(&b, "abc");
    eo_buf_putf(&b, "%d", 12);
    assert_int_equal(eo_buf_error(&b), 0);
    assert_string_equal(b.data, "abc12");
    eo_buf_puts(&b, "toolong"); /* fails: 5 + 7 > 8 */
    assert_int_equal(eo_buf_error(&b), EO_ELIMIT);
    eo_buf_putc(&b, 'x'); /* would fit, but the buffer is failed */
    eo_buf_put(&b, "y", 1);
    eo_buf_put_json_str(&b, "", 0);
    eo_buf_put_copy_text(&b, "z", 1);
    assert_string_equal(b.data, "abc12");
    assert_int_equal(eo_buf_error(&b), EO_ELIMIT);

    eo_buf_truncate(&b, 3); /* drops the tail and the error */
    assert_int_equal(eo_buf_error(&b), 0);
    assert_string_equal(b.data, "abc");
    eo_buf_put_json_str(&b, "q", 1);
    assert_string_equal(b.data, "abc\"q\"");
    eo_buf_truncate(&b, 100); /* longer than the content: only clears the error */
    assert_int_equal(b.len, 6);

    /* the append family records the first error but each call stands alone */
    assert_int_equal(eo_buf_append_str(&b, "12345"), EO_ELIMIT);
    assert_int_equal(eo_buf_append_char(&b, '!'), 0);
    assert_int_equal(eo_buf_error(&b), EO_ELIMIT);
    eo_buf_reset(&b);
    assert_int_equal(eo_buf_error(&b), 0);
    assert_int_equal(b.len, 0);
    eo_buf_putf(&b, "%s", "0123456789");
    assert_int_equal(eo_buf_error(&b), EO_ELIMIT);
    eo_buf_done(&b);
    assert_int_equal(eo_buf_error(&b), 0);
}

/* eo_fmt_i64 and eo_buf_put_i64 write what printf's %lld writes, at the edges too. */
static void test_i64(void **state)
{
    (void)state;
    const int64_t vs[] = {
        0,   1,         -1,     9,         10,        -10,           99,
        100, 123456789, -98765, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1000000000000000000LL};
    eo_buf_t b;
    eo_buf_init(&b, 1 << 16);
    char want_all[1024] = "";
    size_t at = 0;
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        char got[EO_I64_TEXT], want[32];
        snprintf(want, sizeof want, "%lld", (long long)vs[i]);
        assert_int_equal(eo_fmt_i64(got, vs[i]), strlen(want));
        assert_string_equal(got, want);
        eo_buf_put_i64(&b, vs[i]);
        eo_buf_putc(&b, ',');
        at += (size_t)snprintf(want_all + at, sizeof want_all - at, "%s,", want);
    }
    assert_int_equal(eo_buf_error(&b), 0);
    assert_string_equal(b.data, want_all);
    eo_buf_done(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_done), cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_cap),       cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_printf),    cmocka_unit_test(test_reset_and_steal),
        cmocka_unit_test(test_json_str),  cmocka_unit_test(test_json_str_parses_back),
        cmocka_unit_test(test_copy_text), cmocka_unit_test(test_i64),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
