/* Unit tests of src/domain/propval.h: paths (a passing and a failing row per rule), numbers as
 * numeric's text, jsonb's text of objects and arrays, and the value of a path in properties as
 * the breakdown SQL gives it. The expected texts are PostgreSQL 15's answers to the same
 * jsonb (checked with psql; the integration and e2e tests compare against the server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "domain/propval.h"

static void test_path(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int ok;
        size_t n;
    } rows[] = {
        {"plan", 1, 1},
        {"address.city", 1, 2},
        {"a.b.c.d", 1, 4},
        {"a.b.c.d.e", 0, 0}, /* at most 4 names */
        {"", 0, 0},          /* at least one */
        {"a..b", 0, 0},      /* no empty name */
        {".a", 0, 0},
        {"a.", 0, 0},
        {"a b", 0, 0}, /* only [A-Za-z0-9_$-] */
        {"$x-1_Y", 1, 1},
        {"a/b", 0, 0},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, 1},  /* 64 */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 0}, /* 65 */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_proppath_t p;
        int r = eo_proppath_parse(rows[i].s, strlen(rows[i].s), &p);
        if ((r == 0) != rows[i].ok)
            fail_msg("path '%s': got %d", rows[i].s, r);
        if (r == 0)
            assert_int_equal(p.n, rows[i].n);
    }
    eo_proppath_t p;
    assert_int_equal(eo_proppath_parse("address.city", 12, &p), 0);
    assert_string_equal(p.name[0], "address");
    assert_string_equal(p.name[1], "city");
}

static void test_numeric(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"0", "0"},
        {"-0", "0"},
        {"42", "42"},
        {"-17", "-17"},
        {"9223372036854775807", "9223372036854775807"},
        {"1.0", "1.0"},
        {"-0.0", "0.0"},
        {"1.5", "1.5"},
        {"1e+20", "100000000000000000000"},
        {"1.5e-07", "0.00000015"},
        {"1.5e2", "150"},
        {"12.50e1", "125.0"},
        {"-1.25E-3", "-0.00125"},
        {"0.001", "0.001"},
    };
    eo_buf_t b;
    eo_buf_init(&b, 1 << 16);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_buf_reset(&b);
        assert_int_equal(eo_propval_numeric(rows[i].in, strlen(rows[i].in), &b), 0);
        if (b.len != strlen(rows[i].out) || memcmp(b.data, rows[i].out, b.len) != 0)
            fail_msg("numeric '%s': got '%.*s', want '%s'", rows[i].in, (int)b.len, b.data,
                     rows[i].out);
    }
    /* the largest double: 17976931348623157 and 292 zeros (309 digits) */
    eo_buf_reset(&b);
    assert_int_equal(eo_propval_numeric("1.7976931348623157e+308", 23, &b), 0);
    assert_int_equal(b.len, 309);
    assert_memory_equal(b.data, "17976931348623157000", 20);
    for (size_t i = 17; i < b.len; i++)
        assert_int_equal(b.data[i], '0');
    /* 5e-324: a 0, a point and 323 zeros before the 5 */
    eo_buf_reset(&b);
    assert_int_equal(eo_propval_numeric("5e-324", 6, &b), 0);
    assert_int_equal(b.len, 2 + 324);
    assert_memory_equal(b.data, "0.000", 5);
    assert_int_equal(b.data[b.len - 1], '5');
    static const char *bad[] = {"", "-", "1.", ".5", "1e", "1e+", "01x", "1e1001", "+1", "a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eo_buf_reset(&b);
        if (eo_propval_numeric(bad[i], strlen(bad[i]), &b) != EO_EINVAL)
            fail_msg("numeric '%s' accepted", bad[i]);
    }
    eo_buf_done(&b);
}

/* The breakdown text of props #> path (NULL: none). */
static void check(const char *props, const char *path, const char *want)
{
    json_error_t je;
    json_t *obj = json_loads(props, JSON_REJECT_DUPLICATES, &je);
    if (!obj)
        fail_msg("bad JSON in the test: %s", props);
    eo_proppath_t p;
    assert_int_equal(eo_proppath_parse(path, strlen(path), &p), 0);
    eo_buf_t b;
    eo_buf_init(&b, 1 << 16);
    int r = eo_propval_text(obj, &p, &b);
    if (!want && r != 0)
        fail_msg("%s #> %s: got '%.*s', want none", props, path, (int)b.len, b.data);
    if (want && (r != 1 || b.len != strlen(want) || memcmp(b.data, want, b.len) != 0))
        fail_msg("%s #> %s: got %d '%.*s', want '%s'", props, path, r, (int)b.len, b.data, want);
    eo_buf_done(&b);
    json_decref(obj);
}

static void test_values(void **state)
{
    (void)state;
    check("{\"plan\":\"pro\"}", "plan", "pro");
    check("{\"plan\":\"a \\\"q\\\"\\n\\u00e9\"}", "plan", "a \"q\"\n\xc3\xa9"); /* as is */
    check("{\"plan\":\"\"}", "plan", "");
    check("{\"plan\":null}", "plan", NULL);
    check("{}", "plan", NULL);
    check("{\"other\":1}", "plan", NULL);
    check("{\"n\":42}", "n", "42");
    check("{\"n\":-0.0}", "n", "0.0");
    check("{\"n\":1.0}", "n", "1.0");
    check("{\"n\":1e20}", "n", "100000000000000000000");
    check("{\"n\":324.24}", "n", "324.24");
    check("{\"b\":true}", "b", "true");
    check("{\"b\":false}", "b", "false");
    check("{\"o\":{\"bb\":1,\"a\":[1,\"x\\ny\\u0001\"],\"c\":{\"z\":true,\"yy\":null}}}", "o",
          "{\"a\": [1, \"x\\ny\\u0001\"], \"c\": {\"z\": true, \"yy\": null}, \"bb\": 1}");
    check("{\"o\":{}}", "o", "{}");
    check("{\"o\":[]}", "o", "[]");
    check("{\"o\":[1.50,\"\\\\\",{\"k\":\"\\t\"}]}", "o", "[1.5, \"\\\\\", {\"k\": \"\\t\"}]");
    check("{\"address\":{\"city\":\"Berlin\"}}", "address.city", "Berlin");
    check("{\"address\":\"Berlin\"}", "address.city", NULL); /* through a scalar: none */
    check("{\"address\":{\"city\":null}}", "address.city", NULL);
    /* array steps as #> reads them */
    const char *arr = "{\"a\":[10,20,30,40,50,60,70,80]}";
    check(arr, "a.1", "20");
    check(arr, "a.01", "20");
    check(arr, "a.007", "80");
    check(arr, "a.-1", "80");
    check(arr, "a.-01", "80");
    check(arr, "a.00", "10");
    check(arr, "a.-0", "10");
    check(arr, "a.8", NULL);
    check(arr, "a.-9", NULL);
    check(arr, "a.2147483648", NULL);
    check(arr, "a.x", NULL);
    check(arr, "a.1x", NULL);
    check(arr, "a.-", NULL);
    check("{\"a\":[{\"k\":\"v\"}]}", "a.0.k", "v");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
