/* Unit tests of the HTTP routing (src/core/route.c): exact paths, case-sensitive methods, 404
 * versus 405, the index of the matched route, and the Allow value (table order, truncation to
 * whole methods); parameter segments ("{id}"): what they match and what not, their text, a
 * literal route before a parameter route, Allow over both. */
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

/* A table with parameter segments, as the analytics role has. */
static const eo_http_route_t ptable[] = {
    {"GET", "/analytics/rules", NULL, NULL, false},
    {"POST", "/analytics/rules", NULL, NULL, true},
    {"GET", "/analytics/rules/stream", NULL, NULL, false}, /* literal before {id} */
    {"GET", "/analytics/rules/{id}", NULL, NULL, false},
    {"PUT", "/analytics/rules/{id}", NULL, NULL, true},
    {"DELETE", "/analytics/rules/{id}", NULL, NULL, false},
    {"GET", "/analytics/rules/{id}/windows", NULL, NULL, false},
    {"GET", "/a/{x}/b/{y}", NULL, NULL, false},
};
#define PN (sizeof ptable / sizeof ptable[0])

static void test_find_params(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        eo_route_result_t want;
        size_t index;
    } rows[] = {
        {"GET", "/analytics/rules", EO_ROUTE_FOUND, 0},
        {"POST", "/analytics/rules", EO_ROUTE_FOUND, 1},
        {"GET", "/analytics/rules/stream", EO_ROUTE_FOUND, 2}, /* the literal route comes first */
        {"PUT", "/analytics/rules/stream", EO_ROUTE_FOUND, 4}, /* {id} serves its other methods */
        {"GET", "/analytics/rules/0190a1b2-0000-7000-8000-000000000001", EO_ROUTE_FOUND, 3},
        {"GET", "/analytics/rules/x", EO_ROUTE_FOUND, 3}, /* any one segment: the handler checks */
        {"GET", "/analytics/rules/{id}", EO_ROUTE_FOUND, 3},
        {"PUT", "/analytics/rules/42", EO_ROUTE_FOUND, 4},
        {"DELETE", "/analytics/rules/42", EO_ROUTE_FOUND, 5},
        {"POST", "/analytics/rules/42", EO_ROUTE_NO_METHOD, 0},
        {"GET", "/analytics/rules/42/windows", EO_ROUTE_FOUND, 6},
        {"PUT", "/analytics/rules/42/windows", EO_ROUTE_NO_METHOD, 0},
        {"GET", "/analytics/rules/", EO_ROUTE_NO_PATH, 0},         /* an empty segment */
        {"GET", "/analytics/rules//windows", EO_ROUTE_NO_PATH, 0}, /* an empty segment */
        {"GET", "/analytics/rules/42/", EO_ROUTE_NO_PATH, 0},
        {"GET", "/analytics/rules/42/x", EO_ROUTE_NO_PATH, 0},
        {"GET", "/analytics/rules/42/windows/x", EO_ROUTE_NO_PATH, 0},
        {"GET", "/analytics/rules/4/2", EO_ROUTE_NO_PATH, 0}, /* one segment only */
        {"GET", "/analytics/rule/42", EO_ROUTE_NO_PATH, 0},
        {"GET", "/analytics/rulesx", EO_ROUTE_NO_PATH, 0},
        {"GET", "/a/1/b/2", EO_ROUTE_FOUND, 7},
        {"GET", "/a/1/b/", EO_ROUTE_NO_PATH, 0},
        {"GET", "/a//b/2", EO_ROUTE_NO_PATH, 0},
        {"GET", "/a/1/c/2", EO_ROUTE_NO_PATH, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t idx = 99;
        eo_route_result_t r = eo_route_find(ptable, PN, rows[i].method, rows[i].path, &idx);
        if (r != rows[i].want)
            fail_msg("row %zu: %s %s gave %d, want %d", i, rows[i].method, rows[i].path, (int)r,
                     (int)rows[i].want);
        if (r == EO_ROUTE_FOUND && idx != rows[i].index)
            fail_msg("row %zu: %s %s matched route %zu, want %zu", i, rows[i].method, rows[i].path,
                     idx, rows[i].index);
    }
}

static void test_match(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *path;
        bool want;
    } rows[] = {
        {"/x", "/x", true},
        {"/x", "/y", false},
        {"/{id}", "/abc", true},
        {"/{id}", "/", false},
        {"/{id}", "", false},
        {"/{id}", "/a/b", false},
        {"/{id}/", "/a/", true},
        {"/{id}/", "/a", false},
        /* a brace that is not a whole segment is literal text */
        {"/x{id}", "/x{id}", true},
        {"/x{id}", "/xa", false},
        {"/{id}x", "/{id}x", true},
        {"/{id}x", "/ax", false},
        {"/{}", "/{}", true},
        {"/{}", "/a", false},
        {"/{a/b}", "/{a/b}", true},
        {"/{unclosed", "/{unclosed", true},
        {"/{unclosed", "/a", false},
        {"", "", true},
        {"", "/", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (eo_route_match(rows[i].pattern, rows[i].path) != rows[i].want)
            fail_msg("row %zu: %s against %s, want %d", i, rows[i].path, rows[i].pattern,
                     (int)rows[i].want);
}

static void test_param(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *path, *name, *want; /* want NULL: no such parameter or no match */
    } rows[] = {
        {"/analytics/rules/{id}", "/analytics/rules/42", "id", "42"},
        {"/analytics/rules/{id}/windows", "/analytics/rules/abc-d/windows", "id", "abc-d"},
        {"/a/{x}/b/{y}", "/a/1/b/22", "x", "1"},
        {"/a/{x}/b/{y}", "/a/1/b/22", "y", "22"},
        {"/a/{x}/b/{y}", "/a/1/b/22", "z", NULL}, /* no such parameter */
        {"/a/{x}/b/{y}", "/a/1/b/22", "", NULL},  /* no such parameter */
        {"/a/{x}/b/{y}", "/a/1/c/22", "x", NULL}, /* no match */
        {"/analytics/rules/{id}", "/analytics/rules/", "id", NULL},
        {"/analytics/rules", "/analytics/rules", "id", NULL},
        {"/{id}", "/{id}", "id", "{id}"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *v = NULL;
        size_t n = 0;
        bool ok = eo_route_param(rows[i].pattern, rows[i].path, rows[i].name, &v, &n);
        if (ok != (rows[i].want != NULL))
            fail_msg("row %zu: %s of %s in %s gave %d", i, rows[i].name, rows[i].pattern,
                     rows[i].path, (int)ok);
        if (ok && (n != strlen(rows[i].want) || strncmp(v, rows[i].want, n) != 0))
            fail_msg("row %zu: %s is '%.*s', want '%s'", i, rows[i].name, (int)n, v, rows[i].want);
    }
    const char *v;
    size_t n;
    assert_false(eo_route_param("/{id}", "/a", NULL, &v, &n));
}

static void test_allow_params(void **state)
{
    (void)state;
    char allow[64];
    assert_int_equal(eo_route_allow(ptable, PN, "/analytics/rules", allow, sizeof allow), 2);
    assert_string_equal(allow, "GET, POST");
    assert_int_equal(eo_route_allow(ptable, PN, "/analytics/rules/42", allow, sizeof allow), 3);
    assert_string_equal(allow, "GET, PUT, DELETE");
    /* the literal route and {id} both serve GET: named once */
    assert_int_equal(eo_route_allow(ptable, PN, "/analytics/rules/stream", allow, sizeof allow), 3);
    assert_string_equal(allow, "GET, PUT, DELETE");
    assert_int_equal(eo_route_allow(ptable, PN, "/analytics/rules/42/windows", allow, sizeof allow),
                     1);
    assert_string_equal(allow, "GET");
    assert_int_equal(eo_route_allow(ptable, PN, "/analytics/rules/", allow, sizeof allow), 0);
    assert_string_equal(allow, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_find_params), cmocka_unit_test(test_match),
        cmocka_unit_test(test_param),       cmocka_unit_test(test_allow_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
