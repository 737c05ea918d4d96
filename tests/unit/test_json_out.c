/* Unit tests of src/domain/json_out.c: compact output and exact, shortest reals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "domain/json_out.h"

static void expect_real(double d, const char *text)
{
    char out[40];
    size_t n = eo_json_format_real(d, out, sizeof out);
    assert_int_equal(n, strlen(text));
    assert_string_equal(out, text);
    assert_true(strtod(out, NULL) == d);
}

static void test_reals_shortest_exact(void **state)
{
    expect_real(324.24, "324.24");
    expect_real(0.1, "0.1");
    expect_real(0.1 + 0.2, "0.30000000000000004");
    expect_real(1.0, "1.0");
    expect_real(-0.5, "-0.5");
    expect_real(1e300, "1e+300");
    expect_real(123456789012345680.0, "1.2345678901234568e+17");
    expect_real(5e-324, "4.94065645841247e-324");
    expect_real(2.5e-7, "2.5e-07");
}

static void expect_json(const char *in, const char *out)
{
    json_error_t jerr;
    json_t *v = json_loads(in, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    eo_buf_t b;
    eo_buf_init(&b, 4096);
    assert_int_equal(eo_json_append(&b, v), 0);
    assert_string_equal(b.data, out);
    /* the output parses back to an equal value */
    json_t *back = json_loads(b.data, JSON_DECODE_ANY, &jerr);
    assert_non_null(back);
    assert_true(json_equal(v, back));
    json_decref(back);
    json_decref(v);
    eo_buf_done(&b);
}

static void test_values(void **state)
{
    expect_json("{ \"price\" : 324.24, \"n\": 3, \"ok\": true }",
                "{\"price\":324.24,\"n\":3,\"ok\":true}");
    expect_json("[1, 2.0, null, false, \"a\\\"b\\\\c\\n\\u0001\", {}, []]",
                "[1,2.0,null,false,\"a\\\"b\\\\c\\n\\u0001\",{},[]]");
    expect_json("{\"z\":1,\"a\":{\"y\":[{\"x\":-9223372036854775808}]}}",
                "{\"z\":1,\"a\":{\"y\":[{\"x\":-9223372036854775808}]}}");
    expect_json("\"h\\u00e9llo \\u20ac\"", "\"h\xc3\xa9llo \xe2\x82\xac\"");
}

static void test_cap(void **state)
{
    json_t *v = json_pack("{s:s}", "key", "a fairly long value that will not fit");
    eo_buf_t b;
    eo_buf_init(&b, 16);
    assert_int_equal(eo_json_append(&b, v), EO_ELIMIT);
    eo_buf_done(&b);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reals_shortest_exact),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
