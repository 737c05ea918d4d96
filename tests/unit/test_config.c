/* Unit tests of src/core/config.h: defaults, environment overrides, and rejection of bad
 * values with the variable's name in the error. Each test starts from an environment without
 * any EVENTOPS_* variable (the test runner may export some). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "domain/event.h"

extern char **environ;

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

static void test_defaults(void **state)
{
    (void)state;
    eo_config_t cfg;
    char err[256] = "";
    assert_int_equal(eo_config_load(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.kafka_brokers, "127.0.0.1:59092");
    assert_string_equal(cfg.events_topic, "eventops.events");
    assert_string_equal(cfg.dlq_topic, "eventops.events.dlq");
    assert_string_equal(cfg.collector_addr, "127.0.0.1");
    assert_non_null(strstr(cfg.pg_dsn, "dbname=eventops"));
    assert_true(cfg.collector_port == 8080);
    assert_true(cfg.processor_port == 8081);
    assert_true(cfg.http_threads == 2);
    assert_true(cfg.max_body_bytes == 524288);
    assert_true(cfg.kafka_ack_timeout_ms == 5000);
    assert_string_equal(cfg.kafka_compression, "none");
    assert_true(cfg.kafka_linger_us == 0);
    assert_true(cfg.batch_max_events == 5000);
    assert_true(cfg.shutdown_timeout_ms == 10000);
    /* analytics */
    assert_string_equal(cfg.analytics_addr, "127.0.0.1");
    assert_true(cfg.analytics_port == 8084);
    assert_string_equal(cfg.analytics_group, "eventops-analytics");
    assert_string_equal(cfg.analytics_id, "analytics-1");
    assert_string_equal(cfg.analytics_summaries_topic, "eventops.summaries");
    assert_string_equal(cfg.analytics_windows_topic, "eventops.analytics.windows");
    assert_string_equal(cfg.analytics_late_topic, "eventops.analytics.late");
    assert_string_equal(cfg.analytics_changelog_topic, "eventops.analytics.changelog");
    assert_string_equal(cfg.analytics_sink_group, "eventops-analytics-sink");
    assert_true(cfg.analytics_tick_ms == 200);
    assert_true(cfg.analytics_checkpoint_ms == 10000);
    assert_true(cfg.analytics_watermark_bound_ms == 1000);
    assert_true(cfg.analytics_idle_ms == 5000);
    assert_true(cfg.analytics_rules_refresh_ms == 1000);
    assert_true(cfg.analytics_changes_interval_ms == 1000);
    assert_true(cfg.analytics_timeout_ms == 5000);
    assert_true(cfg.analytics_max_rules_per_tenant == 100);
    assert_true(cfg.analytics_max_groups == 10000);
    assert_true(cfg.analytics_max_window_s == 2678400); /* 31 days */
    assert_true(cfg.analytics_min_window_s == 1);
    assert_true(cfg.analytics_max_panes == 1440);
    assert_true(cfg.analytics_max_horizon_s == 604800);
    assert_true(cfg.analytics_max_buckets == 1000);
    assert_true(cfg.analytics_max_rule_bytes == 16384);
    assert_true(cfg.analytics_max_state_bytes_per_tenant == 67108864);
    assert_true(cfg.analytics_max_streams == 256);
    assert_true(cfg.analytics_max_streams_per_tenant == 16);
    assert_true(cfg.analytics_sse_keepalive_s == 15);
    assert_true(cfg.analytics_backtest_max_range_s == 2678400); /* 31 days */
    assert_true(cfg.analytics_backtest_max_events == 5000000);
    assert_true(cfg.analytics_backtest_max_results == 10000);
    assert_true(cfg.analytics_backtest_timeout_ms == 60000);
    assert_true(cfg.analytics_backtest_max_concurrent == 4);
    assert_true(cfg.analytics_backtest_max_concurrent_per_tenant == 2);
    assert_true(cfg.analytics_sse_buffer_records == 10000);
    assert_true(cfg.analytics_sse_buffer_bytes == 67108864);
    assert_true(cfg.analytics_sse_max_backlog_bytes == 1048576);
    /* processor id defaults to processor-<hostname> */
    char host[64] = "";
    assert_int_equal(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    char want[128];
    snprintf(want, sizeof want, "processor-%s", host);
    assert_string_equal(cfg.processor_id, want);
}

/* The input limits documented as "the same as config.c" really are. */
static void test_defaults_match_event_limits(void **state)
{
    (void)state;
    eo_config_t cfg;
    char err[256];
    assert_int_equal(eo_config_load(&cfg, err, sizeof err), 0);
    eo_event_limits_t lim, from_cfg;
    eo_event_limits_default(&lim);
    eo_event_limits_from_config(&from_cfg, &cfg);
    assert_true(lim.max_event_bytes == from_cfg.max_event_bytes);
    assert_true(lim.max_batch_events == from_cfg.max_batch_events);
    assert_true(lim.max_depth == from_cfg.max_depth);
    assert_true(lim.max_properties == from_cfg.max_properties);
    assert_true(lim.max_string_bytes == from_cfg.max_string_bytes);
    assert_true(lim.max_id_bytes == from_cfg.max_id_bytes);
    assert_true(lim.max_event_type_bytes == from_cfg.max_event_type_bytes);
    assert_true(lim.max_future_us == from_cfg.max_future_us);
    assert_true(lim.max_past_us == from_cfg.max_past_us);
    /* and the configured values are what the limits say */
    assert_true((int64_t)from_cfg.max_event_bytes == cfg.max_event_bytes);
    assert_true(from_cfg.max_past_us == cfg.max_past_days * 86400 * INT64_C(1000000));
}

typedef struct {
    const char *name;
    const char *value;
    int ok;
} row_t;

static const row_t rows[] = {
    /* integers in range, at both edges */
    {"EVENTOPS_COLLECTOR_PORT", "9090", 1},
    {"EVENTOPS_COLLECTOR_PORT", "0", 1},
    {"EVENTOPS_COLLECTOR_PORT", "65535", 1},
    {"EVENTOPS_COLLECTOR_PORT", "65536", 0},
    {"EVENTOPS_COLLECTOR_PORT", "-1", 0},
    {"EVENTOPS_MAX_EVENT_BYTES", "256", 1},
    {"EVENTOPS_MAX_EVENT_BYTES", "255", 0},
    {"EVENTOPS_MAX_EVENT_BYTES", "16777216", 1},
    {"EVENTOPS_MAX_EVENT_BYTES", "16777217", 0},
    {"EVENTOPS_MAX_BATCH_EVENTS", "1", 1},
    {"EVENTOPS_MAX_BATCH_EVENTS", "0", 0},
    {"EVENTOPS_MAX_FUTURE_S", "0", 1},
    {"EVENTOPS_MAX_FUTURE_S", "-5", 0},
    {"EVENTOPS_MAX_ID_BYTES", "8", 1},
    {"EVENTOPS_MAX_ID_BYTES", "7", 0},
    {"EVENTOPS_PROCESSOR_BATCH_MAX", "1000000", 1},
    {"EVENTOPS_PROCESSOR_BATCH_MAX", "1000001", 0},
    /* not integers */
    {"EVENTOPS_HTTP_THREADS", "4", 1},
    {"EVENTOPS_HTTP_THREADS", "four", 0},
    {"EVENTOPS_HTTP_THREADS", "4x", 0},
    {"EVENTOPS_HTTP_THREADS", "4 ", 0},
    {"EVENTOPS_HTTP_THREADS", "1.5", 0},
    {"EVENTOPS_HTTP_THREADS", "0x10", 0},
    {"EVENTOPS_HTTP_THREADS", "1e2", 0},
    {"EVENTOPS_HTTP_THREADS", "-", 0},
    {"EVENTOPS_HTTP_THREADS", "99999999999999999999", 0},
    {"EVENTOPS_KAFKA_LINGER_US", "-99999999999999999999", 0},
    {"EVENTOPS_KAFKA_LINGER_US", "1000001", 0},
    {"EVENTOPS_KAFKA_LINGER_US", "250", 1},
    /* a renamed setting is refused, not ignored */
    {"EVENTOPS_KAFKA_LINGER_MS", "2", 0},
    {"EVENTOPS_KAFKA_LINGER_MS", "0", 0},
    {"EVENTOPS_KAFKA_LINGER_MS", "", 1},
    /* strings: at most the field's size - 1 bytes */
    {"EVENTOPS_LOG_LEVEL", "debug", 1},
    {"EVENTOPS_LOG_LEVEL", "123456789012345", 1},
    {"EVENTOPS_LOG_LEVEL", "1234567890123456", 0},
    {"EVENTOPS_KAFKA_EVENTS_TOPIC", "t", 1},
    /* analytics */
    {"EVENTOPS_ANALYTICS_PORT", "0", 1},
    {"EVENTOPS_ANALYTICS_PORT", "65536", 0},
    {"EVENTOPS_ANALYTICS_TICK_MS", "10", 1},
    {"EVENTOPS_ANALYTICS_TICK_MS", "9", 0},
    {"EVENTOPS_ANALYTICS_CHECKPOINT_MS", "10", 1},
    {"EVENTOPS_ANALYTICS_CHECKPOINT_MS", "9", 0},
    {"EVENTOPS_ANALYTICS_WATERMARK_BOUND_MS", "0", 1},
    {"EVENTOPS_ANALYTICS_WATERMARK_BOUND_MS", "-1", 0},
    {"EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT", "1", 1},
    {"EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT", "0", 0},
    {"EVENTOPS_ANALYTICS_MAX_RULE_BYTES", "256", 1},
    {"EVENTOPS_ANALYTICS_MAX_RULE_BYTES", "255", 0},
    {"EVENTOPS_ANALYTICS_MAX_RULE_BYTES", "1048576", 1},
    {"EVENTOPS_ANALYTICS_MAX_RULE_BYTES", "1048577", 0},
    {"EVENTOPS_ANALYTICS_MAX_STATE_BYTES_PER_TENANT", "1099511627776", 1},
    {"EVENTOPS_ANALYTICS_MAX_STATE_BYTES_PER_TENANT", "1099511627777", 0},
    {"EVENTOPS_ANALYTICS_MAX_HORIZON_S", "0", 1},
    {"EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S", "0", 0},
    {"EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S", "1", 1},
    {"EVENTOPS_ANALYTICS_SSE_BUFFER_RECORDS", "1", 1},
    {"EVENTOPS_ANALYTICS_SSE_BUFFER_RECORDS", "0", 0},
    {"EVENTOPS_ANALYTICS_SSE_BUFFER_RECORDS", "10000001", 0},
    {"EVENTOPS_ANALYTICS_SSE_BUFFER_BYTES", "1048576", 1},
    {"EVENTOPS_ANALYTICS_SSE_BUFFER_BYTES", "1048575", 0},
    {"EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES", "65536", 1},
    {"EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES", "65535", 0},
    {"EVENTOPS_ANALYTICS_ID", "analytics-7", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S", "1", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S", "0", 0},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S", "315360000", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S", "315360001", 0},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_EVENTS", "1000000000", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_EVENTS", "0", 0},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_RESULTS", "1", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_RESULTS", "10000001", 0},
    {"EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS", "100", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS", "99", 0},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT", "256", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT", "257", 0},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT_PER_TENANT", "1", 1},
    {"EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT_PER_TENANT", "0", 0},
    /* the shortest window may not be longer than the longest (default 31 days) */
    {"EVENTOPS_ANALYTICS_MIN_WINDOW_S", "2678400", 1},
    {"EVENTOPS_ANALYTICS_MIN_WINDOW_S", "2678401", 0},
    {"EVENTOPS_ANALYTICS_MAX_WINDOW_S", "1", 1}, /* the default minimum is 1 */
    {"EVENTOPS_KAFKA_COMPRESSION", "none", 1},
    {"EVENTOPS_KAFKA_COMPRESSION", "lz4", 1},
    {"EVENTOPS_KAFKA_COMPRESSION", "zstd", 1},
    {"EVENTOPS_KAFKA_COMPRESSION", "snappy", 1},
    {"EVENTOPS_KAFKA_COMPRESSION", "gzip", 1},
    {"EVENTOPS_KAFKA_COMPRESSION", "LZ4", 0},
    {"EVENTOPS_KAFKA_COMPRESSION", "brotli", 0},
};

static void test_overrides_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *row = &rows[i];
        assert_int_equal(setenv(row->name, row->value, 1), 0);
        eo_config_t cfg;
        char err[256] = "";
        int r = eo_config_load(&cfg, err, sizeof err);
        unsetenv(row->name);
        if (row->ok && r != 0)
            fail_msg("%s=%s rejected: %s", row->name, row->value, err);
        if (!row->ok && (r != EO_EINVAL || !strstr(err, row->name)))
            fail_msg("%s=%s: r=%d err '%s', want EO_EINVAL naming the variable", row->name,
                     row->value, r, err);
    }
}

/* The refusal of a renamed setting names the one to set instead. */
static void test_renamed_names_successor(void **state)
{
    (void)state;
    assert_int_equal(setenv("EVENTOPS_KAFKA_LINGER_MS", "2", 1), 0);
    eo_config_t cfg;
    char err[256] = "";
    int r = eo_config_load(&cfg, err, sizeof err);
    unsetenv("EVENTOPS_KAFKA_LINGER_MS");
    assert_int_equal(r, EO_EINVAL);
    assert_non_null(strstr(err, "EVENTOPS_KAFKA_LINGER_US"));
}

static void test_override_values(void **state)
{
    (void)state;
    assert_int_equal(setenv("EVENTOPS_COLLECTOR_PORT", "9090", 1), 0);
    assert_int_equal(setenv("EVENTOPS_LOG_LEVEL", "debug", 1), 0);
    assert_int_equal(setenv("EVENTOPS_PROCESSOR_ID", "proc-7", 1), 0);
    assert_int_equal(setenv("EVENTOPS_MAX_NESTING_DEPTH", "5", 1), 0);
    assert_int_equal(setenv("EVENTOPS_KAFKA_DLQ_TOPIC", "", 1), 0); /* empty: default */
    eo_config_t cfg;
    char err[256];
    assert_int_equal(eo_config_load(&cfg, err, sizeof err), 0);
    assert_true(cfg.collector_port == 9090);
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.processor_id, "proc-7");
    assert_true(cfg.max_nesting_depth == 5);
    assert_string_equal(cfg.dlq_topic, "eventops.events.dlq");
    assert_true(cfg.processor_port == 8081); /* untouched */
    unsetenv("EVENTOPS_COLLECTOR_PORT");
    unsetenv("EVENTOPS_LOG_LEVEL");
    unsetenv("EVENTOPS_PROCESSOR_ID");
    unsetenv("EVENTOPS_MAX_NESTING_DEPTH");
    unsetenv("EVENTOPS_KAFKA_DLQ_TOPIC");
}

/* A long connection string: 511 bytes fit pg_dsn[512], 512 do not. */
static void test_long_strings(void **state)
{
    (void)state;
    char dsn[600];
    for (size_t n = 511; n <= 512; n++) {
        memset(dsn, 'd', n);
        dsn[n] = '\0';
        assert_int_equal(setenv("EVENTOPS_PG_DSN", dsn, 1), 0);
        eo_config_t cfg;
        char err[256] = "";
        int r = eo_config_load(&cfg, err, sizeof err);
        if (n == 511) {
            assert_int_equal(r, 0);
            assert_int_equal(strlen(cfg.pg_dsn), 511);
        } else {
            assert_int_equal(r, EO_EINVAL);
            assert_non_null(strstr(err, "EVENTOPS_PG_DSN"));
        }
    }
    unsetenv("EVENTOPS_PG_DSN");
    /* a small error buffer is truncated, not overrun */
    assert_int_equal(setenv("EVENTOPS_HTTP_THREADS", "0", 1), 0);
    eo_config_t cfg;
    char small[8];
    memset(small, 'z', sizeof small);
    assert_int_equal(eo_config_load(&cfg, small, sizeof small), EO_EINVAL);
    assert_string_equal(small, "EVENTOP");
    unsetenv("EVENTOPS_HTTP_THREADS");
}

static void test_print_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    eo_config_print_help(f);
    fclose(f);
    assert_non_null(strstr(text, "EVENTOPS_COLLECTOR_PORT"));
    assert_non_null(strstr(text, "[8080]"));
    assert_non_null(strstr(text, "EVENTOPS_MAX_BATCH_EVENTS"));
    assert_non_null(strstr(text, "EVENTOPS_ANALYTICS_PORT"));
    assert_non_null(strstr(text, "[8084]"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_defaults_match_event_limits, clear_env),
        cmocka_unit_test_setup(test_overrides_table, clear_env),
        cmocka_unit_test_setup(test_renamed_names_successor, clear_env),
        cmocka_unit_test_setup(test_override_values, clear_env),
        cmocka_unit_test_setup(test_long_strings, clear_env),
        cmocka_unit_test_setup(test_print_help, clear_env),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
