/* Unit tests of src/domain/form.h: eo_form_parse on a table where every rule (pairs, '+',
 * %XX, empty pieces and values, names, control characters, UTF-8, max_pairs) has a passing and
 * a failing row; eo_form_get with repeated names; eo_form_unescape and its cap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "domain/form.h"

#define MAX_WANT 4

typedef struct {
    const char *body;
    size_t max_pairs;
    int want;                            /* 0, EO_EPARSE or EO_ELIMIT */
    const char *pairs[2 * MAX_WANT + 1]; /* name, value, ..., NULL (when accepted) */
} row_t;

static const row_t rows[] = {
    /* name=value pairs separated by '&' */
    {"a=1", 8, 0, {"a", "1", NULL}},
    {"grant_type=client_credentials&scope=events%3Awrite",
     8,
     0,
     {"grant_type", "client_credentials", "scope", "events:write", NULL}},
    {"a=1&b=2&c=3", 8, 0, {"a", "1", "b", "2", "c", "3", NULL}},
    {"a=b=c", 8, 0, {"a", "b=c", NULL}},
    {"", 8, 0, {NULL}},
    /* '+' is a space, in names and values; %2B is a '+' */
    {"a=x+y", 8, 0, {"a", "x y", NULL}},
    {"a+b=+", 8, 0, {"a b", " ", NULL}},
    {"a=x%2By", 8, 0, {"a", "x+y", NULL}},
    {"a=x%20y", 8, 0, {"a", "x y", NULL}},
    /* %XX: upper- and lower-case hex */
    {"a=%41%42", 8, 0, {"a", "AB", NULL}},
    {"a=%6a%6A", 8, 0, {"a", "jj", NULL}},
    {"a=%3d%26", 8, 0, {"a", "=&", NULL}},
    {"%61%3D=v", 8, 0, {"a=", "v", NULL}},
    {"a=%7e%7E", 8, 0, {"a", "~~", NULL}},
    /* bad escapes */
    {"a=%", 8, EO_EPARSE, {NULL}},
    {"a=%4", 8, EO_EPARSE, {NULL}},
    {"a=%4&b=1", 8, EO_EPARSE, {NULL}},
    {"a=%zz", 8, EO_EPARSE, {NULL}},
    {"a=%4g", 8, EO_EPARSE, {NULL}},
    {"a=%g4", 8, EO_EPARSE, {NULL}},
    {"a=% 4", 8, EO_EPARSE, {NULL}},
    {"a=%+4", 8, EO_EPARSE, {NULL}},
    {"%=1", 8, EO_EPARSE, {NULL}},
    {"%zz=1", 8, EO_EPARSE, {NULL}},
    {"a=%%41", 8, EO_EPARSE, {NULL}},
    {"a=1&b=%", 8, EO_EPARSE, {NULL}},
    /* empty value, and a name without '=' (an empty value too) */
    {"a=", 8, 0, {"a", "", NULL}},
    {"a=&b=2", 8, 0, {"a", "", "b", "2", NULL}},
    {"a", 8, 0, {"a", "", NULL}},
    {"a&b=2&c", 8, 0, {"a", "", "b", "2", "c", "", NULL}},
    /* empty pieces between '&' are skipped */
    {"a=1&&b=2", 8, 0, {"a", "1", "b", "2", NULL}},
    {"&a=1&", 8, 0, {"a", "1", NULL}},
    {"&&&", 8, 0, {NULL}},
    {"&", 8, 0, {NULL}},
    /* a name is not empty */
    {"=1", 8, EO_EPARSE, {NULL}},
    {"=", 8, EO_EPARSE, {NULL}},
    {"a=1&=2", 8, EO_EPARSE, {NULL}},
    {"a=1&=", 8, EO_EPARSE, {NULL}},
    {"+=1", 8, 0, {" ", "1", NULL}},
    /* no control characters, encoded or not, NUL included; DEL neither */
    {"a=x%09y", 8, EO_EPARSE, {NULL}},
    {"a=x\ty", 8, EO_EPARSE, {NULL}},
    {"a=%0a", 8, EO_EPARSE, {NULL}},
    {"a=%0D%0A", 8, EO_EPARSE, {NULL}},
    {"a=\n", 8, EO_EPARSE, {NULL}},
    {"a=%00", 8, EO_EPARSE, {NULL}},
    {"a%00=1", 8, EO_EPARSE, {NULL}},
    {"a=%1f", 8, EO_EPARSE, {NULL}},
    {"a=%1F", 8, EO_EPARSE, {NULL}},
    {"a=%7f", 8, EO_EPARSE, {NULL}},
    {"a=\x7f", 8, EO_EPARSE, {NULL}},
    {"a\x01=1", 8, EO_EPARSE, {NULL}},
    {"a=%20%21", 8, 0, {"a", " !", NULL}},
    /* valid UTF-8, encoded or raw */
    {"a=%C3%A9", 8, 0, {"a", "\xc3\xa9", NULL}},
    {"a=\xc3\xa9", 8, 0, {"a", "\xc3\xa9", NULL}},
    {"a=%E2%82%AC", 8, 0, {"a", "\xe2\x82\xac", NULL}},
    {"a=%F0%9F%98%80", 8, 0, {"a", "\xf0\x9f\x98\x80", NULL}},
    {"a=%ed%9f%bf", 8, 0, {"a", "\xed\x9f\xbf", NULL}},
    {"a=%f4%8f%bf%bf", 8, 0, {"a", "\xf4\x8f\xbf\xbf", NULL}},
    {"%C3%A9=1", 8, 0, {"\xc3\xa9", "1", NULL}},
    /* invalid UTF-8: overlong forms */
    {"a=%C0%AF", 8, EO_EPARSE, {NULL}},
    {"a=%C1%BF", 8, EO_EPARSE, {NULL}},
    {"a=%E0%80%AF", 8, EO_EPARSE, {NULL}},
    {"a=%F0%80%80%AF", 8, EO_EPARSE, {NULL}},
    {"a=%C0%80", 8, EO_EPARSE, {NULL}},
    /* surrogates, and code points past U+10FFFF */
    {"a=%ED%A0%80", 8, EO_EPARSE, {NULL}},
    {"a=%ED%BF%BF", 8, EO_EPARSE, {NULL}},
    {"a=\xed\xa0\x80", 8, EO_EPARSE, {NULL}},
    {"a=%F4%90%80%80", 8, EO_EPARSE, {NULL}},
    {"a=%F8%88%80%80%80", 8, EO_EPARSE, {NULL}},
    /* truncated sequences, stray continuation bytes, bytes never in UTF-8 */
    {"a=%E2%82", 8, EO_EPARSE, {NULL}},
    {"a=%E2%82&b=%AC", 8, EO_EPARSE, {NULL}},
    {"a=%C3", 8, EO_EPARSE, {NULL}},
    {"a=\xc3", 8, EO_EPARSE, {NULL}},
    {"a=%F0%9F%98", 8, EO_EPARSE, {NULL}},
    {"a=%80", 8, EO_EPARSE, {NULL}},
    {"a=%C3%28", 8, EO_EPARSE, {NULL}},
    {"a=%FF", 8, EO_EPARSE, {NULL}},
    {"a=%FE", 8, EO_EPARSE, {NULL}},
    {"%C3=1", 8, EO_EPARSE, {NULL}},
    /* at most max_pairs pairs; empty pieces do not count */
    {"a&b&c", 3, 0, {"a", "", "b", "", "c", "", NULL}},
    {"a&b&c&d", 3, EO_ELIMIT, {NULL}},
    {"a&b&c&", 3, 0, {"a", "", "b", "", "c", "", NULL}},
    {"a&&b&&c&&", 3, 0, {"a", "", "b", "", "c", "", NULL}},
    {"a=1", 1, 0, {"a", "1", NULL}},
    {"a=1&b=2", 1, EO_ELIMIT, {NULL}},
    {"", 0, 0, {NULL}},
    {"a", 0, EO_ELIMIT, {NULL}},
    /* repeated names are kept, in order */
    {"a=1&a=2", 8, 0, {"a", "1", "a", "2", NULL}},
};

static void test_parse_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *row = &rows[i];
        eo_form_t form;
        char err[128] = "";
        int r = eo_form_parse(row->body, strlen(row->body), row->max_pairs, &form, err, sizeof err);
        if (r != row->want)
            fail_msg("row %zu '%s': got %d (%s), want %d", i, row->body, r, err, row->want);
        if (r < 0) {
            if (err[0] == '\0')
                fail_msg("row %zu '%s': refused without a reason", i, row->body);
            assert_int_equal(form.count, 0);
            assert_null(form.pairs);
            continue;
        }
        size_t n = 0;
        while (row->pairs[2 * n])
            n++;
        if (form.count != n)
            fail_msg("row %zu '%s': %zu pairs, want %zu", i, row->body, form.count, n);
        for (size_t k = 0; k < n; k++) {
            if (strcmp(form.pairs[k].name, row->pairs[2 * k]) != 0 ||
                strcmp(form.pairs[k].value, row->pairs[2 * k + 1]) != 0)
                fail_msg("row %zu '%s': pair %zu is '%s'='%s', want '%s'='%s'", i, row->body, k,
                         form.pairs[k].name, form.pairs[k].value, row->pairs[2 * k],
                         row->pairs[2 * k + 1]);
        }
        eo_form_done(&form);
        assert_int_equal(form.count, 0);
        assert_null(form.pairs);
    }
}

/* The body is read for len bytes only: no NUL terminator is needed, and a NUL inside is an
 * error (a control character). */
static void test_parse_reads_len_bytes(void **state)
{
    (void)state;
    char err[128];
    eo_form_t form;
    const char body[] = {'a', '=', '1', '&', 'b', '=', '2'}; /* not NUL-terminated */
    assert_int_equal(eo_form_parse(body, sizeof body, 8, &form, err, sizeof err), 0);
    assert_int_equal(form.count, 2);
    assert_string_equal(eo_form_get(&form, "b", NULL), "2");
    eo_form_done(&form);

    assert_int_equal(eo_form_parse("a=1&b=2", 3, 8, &form, err, sizeof err), 0);
    assert_int_equal(form.count, 1);
    assert_null(eo_form_get(&form, "b", NULL));
    eo_form_done(&form);

    assert_int_equal(eo_form_parse("a=1\0b", 5, 8, &form, err, sizeof err), EO_EPARSE);
    assert_int_equal(form.count, 0);
    assert_int_equal(eo_form_parse("a\0=1", 4, 8, &form, err, sizeof err), EO_EPARSE);
}

static void test_get(void **state)
{
    (void)state;
    char err[128];
    eo_form_t form;
    const char *body = "scope=a&grant_type=x&scope=b&scope=c&empty=&bare";
    assert_int_equal(eo_form_parse(body, strlen(body), 16, &form, err, sizeof err), 0);
    size_t count = 99;
    assert_string_equal(eo_form_get(&form, "scope", &count), "a"); /* the first one */
    assert_int_equal(count, 3);
    assert_string_equal(eo_form_get(&form, "grant_type", &count), "x");
    assert_int_equal(count, 1);
    assert_string_equal(eo_form_get(&form, "empty", &count), "");
    assert_int_equal(count, 1);
    assert_string_equal(eo_form_get(&form, "bare", &count), "");
    assert_int_equal(count, 1);
    assert_null(eo_form_get(&form, "missing", &count));
    assert_int_equal(count, 0);
    assert_null(eo_form_get(&form, "Scope", &count)); /* names are case-sensitive */
    assert_int_equal(count, 0);
    assert_null(eo_form_get(&form, "scop", &count)); /* and matched whole */
    assert_int_equal(count, 0);
    assert_string_equal(eo_form_get(&form, "scope", NULL), "a"); /* count is optional */
    eo_form_done(&form);
    eo_form_done(&form); /* done twice is harmless */

    eo_form_t empty = {NULL, 0};
    assert_null(eo_form_get(&empty, "a", &count));
    assert_int_equal(count, 0);
}

typedef struct {
    const char *in;
    size_t cap;
    int want; /* length, EO_EPARSE or EO_ELIMIT */
    const char *out;
} unescape_row_t;

static const unescape_row_t unescape_rows[] = {
    {"abc", 8, 3, "abc"},
    {"a+b%41", 8, 4, "a bA"},
    {"%e2%82%ac", 8, 3, "\xe2\x82\xac"},
    {"&=", 8, 2, "&="}, /* no special meaning here */
    {"", 8, 0, ""},
    {"%", 8, EO_EPARSE, NULL},
    {"%4", 8, EO_EPARSE, NULL},
    {"%zz", 8, EO_EPARSE, NULL},
    {"%00", 8, EO_EPARSE, NULL},
    {"%C0%AF", 8, EO_EPARSE, NULL},
    {"%ED%A0%80", 8, EO_EPARSE, NULL},
    {"%E2%82", 8, EO_EPARSE, NULL},
    /* cap counts the NUL: n decoded bytes need n + 1 */
    {"abc", 4, 3, "abc"},
    {"abc", 3, EO_ELIMIT, NULL},
    {"%41%42%43", 4, 3, "ABC"},
    {"%41%42%43", 3, EO_ELIMIT, NULL},
    {"a", 2, 1, "a"},
    {"a", 1, EO_ELIMIT, NULL},
    {"", 1, 0, ""},
    {"", 0, EO_ELIMIT, NULL},
    {"\xe2\x82\xac", 4, 3, "\xe2\x82\xac"},
    {"\xe2\x82\xac", 3, EO_ELIMIT, NULL},
};

static void test_unescape_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof unescape_rows / sizeof unescape_rows[0]; i++) {
        const unescape_row_t *row = &unescape_rows[i];
        char out[16];
        memset(out, 'X', sizeof out);
        int r = eo_form_unescape(row->in, strlen(row->in), out, row->cap);
        if (r != row->want)
            fail_msg("unescape row %zu '%s' cap %zu: got %d, want %d", i, row->in, row->cap, r,
                     row->want);
        if (r >= 0 && strcmp(out, row->out) != 0)
            fail_msg("unescape row %zu '%s': '%s', want '%s'", i, row->in, out, row->out);
        /* never a byte written past cap */
        for (size_t k = row->cap; k < sizeof out; k++)
            if (out[k] != 'X')
                fail_msg("unescape row %zu '%s' cap %zu: byte %zu written", i, row->in, row->cap,
                         k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rows),
        cmocka_unit_test(test_parse_reads_len_bytes),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_unescape_rows),
    };
    return cmocka_run_group_tests_name("form", tests, NULL, NULL);
}
