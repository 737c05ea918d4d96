/* Settings of every role, read from EVENTOPS_* environment variables with loopback defaults.
 * Loaded once at start-up into an eo_config_t that is immutable afterwards (share freely). */
#ifndef EO_CORE_CONFIG_H
#define EO_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef struct {
    /* shared */
    char log_level[16];
    char pg_dsn[512];
    char kafka_brokers[512];
    char events_topic[128];
    char dlq_topic[128];
    /* collector: HTTP */
    char collector_addr[64];
    int64_t collector_port;
    int64_t grpc_port; /* -1: off */
    int64_t grpc_threads;
    int64_t grpc_max_streams;
    int64_t collector_rt_priority;
    int64_t http_threads;
    int64_t http_max_connections;
    int64_t http_max_connections_per_ip;
    int64_t http_connection_timeout_s;
    int64_t http_max_header_bytes;
    int64_t http_read_buffer_bytes;
    /* collector: input limits */
    int64_t max_body_bytes;
    int64_t max_event_bytes;
    int64_t max_batch_events;
    int64_t max_nesting_depth;
    int64_t max_properties;
    int64_t max_string_bytes;
    int64_t max_id_bytes;
    int64_t max_event_type_bytes;
    int64_t max_future_s;
    int64_t max_past_days;
    /* collector: Kafka producer */
    int64_t kafka_ack_timeout_ms;
    int64_t kafka_queue_max_messages;
    int64_t kafka_linger_us;
    int64_t kafka_max_in_flight;
    int64_t malloc_keep_bytes;
    int64_t malloc_trim_ms;
    int64_t kafka_fetch_min_bytes;
    char kafka_compression[16];
    int64_t retry_after_s;
    int64_t write_key_refresh_ms;
    int64_t credential_lookups_per_s;
    /* processor */
    char processor_group[128];
    char processor_id[128];
    char processor_addr[64];
    int64_t processor_port;
    int64_t processor_workers;
    int64_t user_cache_entries;
    int64_t user_sets_compact_ms;
    int64_t user_sets_compact_rows;
    int64_t timeline_part_events;
    int64_t processor_prefetch_kbytes;
    int64_t property_value_cap; /* tracked properties (ADR-24): admin and query role */
    int64_t property_value_cap_max;
    int64_t tracked_properties_max;
    int64_t profile_aliases_max; /* query role: GET /profiles/{userId} */
    int64_t batch_max_events;
    int64_t batch_max_wait_ms;
    int64_t retry_max_backoff_ms;
    int64_t partitions_ahead_days;
    int64_t kafka_session_timeout_ms;
    int64_t kafka_txn_timeout_ms;
    int64_t kafka_call_timeout_ms;
    int64_t kafka_lag_interval_ms;
    int64_t processor_stall_ms;
    int64_t shutdown_timeout_ms;
    /* auth */
    char auth_addr[64];
    int64_t auth_port;
    char auth_public_url[256];
    char auth_key_dir[512];
    char auth_jwks_url[512];
    int64_t auth_keys_refresh_ms;
    int64_t auth_keys_min_refetch_ms;
    char auth_issuer[256];
    char auth_audience[256];
    int64_t auth_token_ttl_s;
    int64_t auth_leeway_s;
    int64_t auth_max_token_bytes;
    int64_t auth_client_rate;
    int64_t auth_client_burst;
    int64_t auth_ip_rate;
    int64_t auth_ip_burst;
    /* rate limiting */
    char redis_url[512];
    int64_t redis_timeout_ms;
    int64_t redis_retry_ms;
    int64_t rate_limit_rate;
    int64_t rate_limit_burst;
    int64_t rate_limit_instances;
    int64_t rate_limit_lease_max;
    int64_t rate_limit_lease_ms;
    /* query */
    char query_addr[64];
    int64_t query_port;
    int64_t query_threads;
    int64_t query_timeout_ms;
    int64_t query_work_mem_mb;
    int64_t query_max_buckets;
    int64_t query_max_periods;
    int64_t query_max_limit;
    int64_t query_max_funnel_steps;
    int64_t query_max_within_s;
    int64_t query_max_funnel_events;
    char query_cache[8];
    int64_t query_open_window_s;
    int64_t query_cache_open_ttl_ms;
    int64_t query_cache_closed_ttl_s;
    /* analytics (docs/analytics.md) */
    char analytics_addr[64];
    int64_t analytics_port;
    char analytics_group[128];
    char analytics_id[128]; /* the Kafka transactional.id is "eventops-analytics-<id>" */
    char analytics_summaries_topic[128];
    char analytics_windows_topic[128];
    char analytics_late_topic[128];
    char analytics_changelog_topic[128];
    char analytics_sink_group[128];
    int64_t analytics_tick_ms;
    int64_t analytics_checkpoint_ms;
    int64_t analytics_watermark_bound_ms;
    int64_t analytics_idle_ms;
    int64_t analytics_rules_refresh_ms;
    int64_t analytics_changes_interval_ms;
    int64_t analytics_timeout_ms;
    int64_t analytics_max_rules_per_tenant;
    int64_t analytics_max_groups;
    int64_t analytics_max_window_s;
    int64_t analytics_min_window_s;
    int64_t analytics_max_panes;
    int64_t analytics_max_horizon_s;
    int64_t analytics_max_buckets;
    int64_t analytics_max_rule_bytes;
    int64_t analytics_max_state_bytes_per_tenant;
    int64_t analytics_max_streams;
    int64_t analytics_max_streams_per_tenant;
    int64_t analytics_sse_keepalive_s;
    int64_t analytics_backtest_max_range_s;
    int64_t analytics_backtest_max_events;
    int64_t analytics_backtest_max_results;
    int64_t analytics_backtest_timeout_ms;
    int64_t analytics_backtest_max_concurrent;
    int64_t analytics_backtest_max_concurrent_per_tenant;
    int64_t analytics_sse_buffer_records; /* the live stream's buffer of recent results */
    int64_t analytics_sse_buffer_bytes;
    int64_t analytics_sse_max_backlog_bytes; /* a slower stream is disconnected */
} eo_config_t;

/* Fills cfg from the environment (defaults for unset variables). Returns 0, or EO_EINVAL with
 * the variable's name and the rule in err. */
int eo_config_load(eo_config_t *cfg, char *err, size_t errlen) EO_MUST_CHECK;

/* Prints every variable with its default and meaning, one per line (for --help). */
void eo_config_print_help(FILE *out);

#endif
