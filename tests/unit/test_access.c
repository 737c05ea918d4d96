/* Unit tests of the decisions of src/access/access.c that need no credential store: a missing
 * header, a header of no known shape, a token where no token keys are configured, and a write
 * key where only tokens are taken. Each refusal carries the message its answer will send.
 * (Decisions that look credentials up, the rate-limit step and the answers themselves are
 * exercised over HTTP by tests/e2e/test_auth_hostile.py, test_rate_limit.py and
 * test_tenant_isolation.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "access/access.h"

static eo_config_t cfg;

/* The collector's policy without a token key source, and the query's (tokens only). */
static eo_access_policy_t ingest = {
    .cfg = &cfg,
    .scope = "events:write",
    .write_keys = true,
    .missing = "send a credential",
    .no_tokens = "write keys only here",
    .who = "credential",
};
static eo_access_policy_t query = {
    .cfg = &cfg,
    .scope = "events:read",
    .write_keys = false,
    .missing = "send a token",
    .no_tokens = "tokens only here",
    .who = "client",
};

static void expect(const eo_access_policy_t *pol, const char *authorization,
                   eo_access_verdict_t verdict, const char *why)
{
    eo_access_t a;
    assert_int_equal(eo_access_check(pol, authorization, &a), verdict);
    assert_int_equal(a.verdict, verdict);
    assert_string_equal(a.why, why);
}

static void test_missing(void **state)
{
    expect(&ingest, NULL, EO_ACCESS_MISSING, "send a credential");
    expect(&ingest, "", EO_ACCESS_MISSING, "send a credential");
    expect(&query, NULL, EO_ACCESS_MISSING, "send a token");
}

static void test_malformed(void **state)
{
    static const char *const rows[] = {
        "Digest username=x",      /* unknown scheme */
        "Bearer ",                /* nothing after the scheme */
        "Bearer    ",             /* only spaces */
        "Basic !!!not-base64!!!", /* Basic that does not decode */
        "Basic Ond4",             /* base64 of ":wx": an empty user name */
        "bearer",                 /* the scheme alone */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        expect(&ingest, rows[i], EO_ACCESS_MALFORMED,
               "the Authorization header is not 'Bearer TOKEN', 'Bearer KEY' or 'Basic base64'");
    char huge[1100];
    memcpy(huge, "Bearer ", 7);
    memset(huge + 7, 'k', sizeof huge - 8);
    huge[sizeof huge - 1] = '\0';
    expect(&ingest, huge, EO_ACCESS_MALFORMED,
           "the Authorization header is not 'Bearer TOKEN', 'Bearer KEY' or 'Basic base64'");
}

static void test_tokens_without_keys(void **state)
{
    /* the shape of a JWT (two dots) is a token, refused where no keys are configured */
    expect(&ingest, "Bearer aaa.bbb.ccc", EO_ACCESS_INVALID_TOKEN, "write keys only here");
    expect(&ingest, "bearer   aaa.bbb.ccc  ", EO_ACCESS_INVALID_TOKEN, "write keys only here");
}

static void test_write_keys_where_only_tokens(void **state)
{
    expect(&query, "Bearer wk_0123456789abcdef.secret", EO_ACCESS_INVALID_TOKEN,
           "tokens only here");
    expect(&query, "Basic d2tfYWJjOg==", EO_ACCESS_INVALID_TOKEN, "tokens only here");
    expect(&query, "Digest x", EO_ACCESS_INVALID_TOKEN, "tokens only here");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_tokens_without_keys),
        cmocka_unit_test(test_write_keys_where_only_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
