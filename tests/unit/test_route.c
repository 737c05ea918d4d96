/* Unit tests of the HTTP routing (src/core/route.c): exact paths, case-sensitive methods, 404
 * versus 405, the index of the matched route, and the Allow value (table order, truncation to
 * whole methods). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/http.h"

static const eo_http_route_t table[] = {
    {"POST", "/events", NULL, NULL, true},       {"GET", "/events", NULL, NULL, false},
    {"POST", "/events/batch", NULL, NULL, true}, {"GET", "/healthz", NULL, NULL, false},
    {"DELETE", "/events", NULL, NULL, false},
};
#define N (sizeof table / sizeof table[0])

static void test_find(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        eo_route_result_t want;
        size_t index;
    } rows[] = {
        {"POST", "/events", EO_ROUTE_FOUND, 0},
        {"GET", "/events", EO_ROUTE_FOUND, 1},
        {"DELETE", "/events", EO_ROUTE_FOUND, 4},
        {"POST", "/events/batch", EO_ROUTE_FOUND, 2},
        {"GET", "/healthz", EO_ROUTE_FOUND, 3},
        {"PUT", "/events", EO_ROUTE_NO_METHOD, 0},
        {"get", "/events", EO_ROUTE_NO_METHOD, 0}, /* methods are case-sensitive */
        {"TRACE", "/healthz", EO_ROUTE_NO_METHOD, 0},
        {"GET", "/events/batch", EO_ROUTE_NO_METHOD, 0},
        {"GET", "/events/", EO_ROUTE_NO_PATH, 0}, /* exact paths only */
        {"GET", "/Events", EO_ROUTE_NO_PATH, 0},
        {"GET", "/events/batch/x", EO_ROUTE_NO_PATH, 0},
        {"GET", "", EO_ROUTE_NO_PATH, 0},
        {"GET", "/", EO_ROUTE_NO_PATH, 0},
        {"GET", "/healthz?x=1", EO_ROUTE_NO_PATH, 0}, /* the query string is not part of it */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t idx = 99;
        eo_route_result_t r = eo_route_find(table, N, rows[i].method, rows[i].path, &idx);
        if (r != rows[i].want)
            fail_msg("row %zu: %s %s gave %d, want %d", i, rows[i].method, rows[i].path, (int)r,
                     (int)rows[i].want);
        if (r == EO_ROUTE_FOUND)
            assert_int_equal(idx, rows[i].index);
        else
            assert_int_equal(idx, 99); /* untouched */
    }
    size_t idx;
    assert_int_equal(eo_route_find(table, 0, "GET", "/events", &idx), EO_ROUTE_NO_PATH);
}

static void test_allow(void **state)
{
    (void)state;
    char allow[64];
    assert_int_equal(eo_route_allow(table, N, "/events", allow, sizeof allow), 3);
    assert_string_equal(allow, "POST, GET, DELETE");
    assert_int_equal(eo_route_allow(table, N, "/healthz", allow, sizeof allow), 1);
    assert_string_equal(allow, "GET");
    assert_int_equal(eo_route_allow(table, N, "/nope", allow, sizeof allow), 0);
    assert_string_equal(allow, "");
    /* room for "POST, GET" (9 bytes + NUL) only: DELETE is left out whole */
    char small[10];
    assert_int_equal(eo_route_allow(table, N, "/events", small, sizeof small), 2);
    assert_string_equal(small, "POST, GET");
    char tiny[4];
    assert_int_equal(eo_route_allow(table, N, "/events", tiny, sizeof tiny), 1);
    assert_string_equal(tiny, "GET"); /* POST does not fit, GET does */
    assert_int_equal(eo_route_allow(table, N, "/events", tiny, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_allow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
