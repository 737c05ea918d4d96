/* Unit tests of src/analytics/limits.c (included, as h2o's tests do): the rule limits from the
 * settings, by default the domain's defaults (eo_rule_limits_default), and each setting in its
 * unit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/analytics/limits.c"
#include "core/config.h"

extern char **environ;

/* Starts from an environment without EVENTOPS_* variables (the runner may export some). */
static int clear_env(void **state)
{
    (void)state;
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            if (strncmp(*e, "EVENTOPS_", 9) == 0 && eq && (size_t)(eq - *e) < sizeof name) {
                memcpy(name, *e, (size_t)(eq - *e));
                name[eq - *e] = '\0';
                break;
            }
        }
        if (!name[0])
            return 0;
        unsetenv(name);
    }
}

/* The configured defaults are the domain's documented defaults. */
static void test_defaults(void **state)
{
    (void)state;
    eo_config_t cfg;
    char err[256];
    assert_int_equal(eo_config_load(&cfg, err, sizeof err), 0);
    eo_rule_limits_t want, got;
    eo_rule_limits_default(&want);
    eo_analytics_rule_limits(&got, &cfg);
    assert_true(got.max_window_us == want.max_window_us);
    assert_true(got.min_window_us == want.min_window_us);
    assert_true(got.max_panes == want.max_panes);
    assert_true(got.max_groups == want.max_groups);
    assert_true(got.max_horizon_us == want.max_horizon_us);
    assert_true(got.max_buckets == want.max_buckets);
    assert_true(got.max_rule_bytes == want.max_rule_bytes);
    assert_true(got.max_window_us == INT64_C(31) * 86400 * 1000000);
}

/* Each setting lands in its field, seconds as microseconds. */
static void test_settings(void **state)
{
    (void)state;
    static const char *const vars[][2] = {
        {"EVENTOPS_ANALYTICS_MAX_WINDOW_S", "7200"},  {"EVENTOPS_ANALYTICS_MIN_WINDOW_S", "60"},
        {"EVENTOPS_ANALYTICS_MAX_PANES", "12"},       {"EVENTOPS_ANALYTICS_MAX_GROUPS", "34"},
        {"EVENTOPS_ANALYTICS_MAX_HORIZON_S", "0"},    {"EVENTOPS_ANALYTICS_MAX_BUCKETS", "56"},
        {"EVENTOPS_ANALYTICS_MAX_RULE_BYTES", "789"},
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        assert_int_equal(setenv(vars[i][0], vars[i][1], 1), 0);
    eo_config_t cfg;
    char err[256];
    assert_int_equal(eo_config_load(&cfg, err, sizeof err), 0);
    eo_rule_limits_t lim;
    eo_analytics_rule_limits(&lim, &cfg);
    assert_true(lim.max_window_us == INT64_C(7200) * 1000000);
    assert_true(lim.min_window_us == INT64_C(60) * 1000000);
    assert_true(lim.max_panes == 12);
    assert_true(lim.max_groups == 34);
    assert_true(lim.max_horizon_us == 0);
    assert_true(lim.max_buckets == 56);
    assert_true(lim.max_rule_bytes == 789);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i][0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_settings, clear_env),
    };
    return cmocka_run_group_tests_name("analytics_limits", tests, NULL, NULL);
}
