/* The EVENTOPS_* settings table and its loader (see config.h). */
#include "core/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { CFG_STR, CFG_INT } cfg_type_t;

typedef struct {
    const char *name;
    cfg_type_t type;
    size_t offset;
    size_t size; /* for strings: the field's size */
    const char *def;
    int64_t min, max;
    const char *help;
} cfg_var_t;

#define S(field, name, def, help)                                                                  \
    {                                                                                              \
        name, CFG_STR, offsetof(eo_config_t, field), sizeof(((eo_config_t *)0)->field), def, 0, 0, \
            help                                                                                   \
    }
#define I(field, name, def, min, max, help)                                                        \
    {                                                                                              \
        name, CFG_INT, offsetof(eo_config_t, field), 0, #def, min, max, help                       \
    }

static const cfg_var_t vars[] = {
    S(log_level, "EVENTOPS_LOG_LEVEL", "info", "debug, info, warn or error"),
    S(pg_dsn, "EVENTOPS_PG_DSN", "host=127.0.0.1 port=55432 user=eventops dbname=eventops",
      "libpq connection string of the PostgreSQL database"),
    S(kafka_brokers, "EVENTOPS_KAFKA_BROKERS", "127.0.0.1:59092", "Kafka bootstrap servers"),
    S(events_topic, "EVENTOPS_KAFKA_EVENTS_TOPIC", "eventops.events", "topic of accepted events"),
    S(dlq_topic, "EVENTOPS_KAFKA_DLQ_TOPIC", "eventops.events.dlq",
      "dead-letter topic for records that can never be stored"),
    S(collector_addr, "EVENTOPS_COLLECTOR_ADDR", "127.0.0.1", "collector listen address"),
    I(collector_port, "EVENTOPS_COLLECTOR_PORT", 8080, 0, 65535, "collector listen port (0: any)"),
    I(grpc_port, "EVENTOPS_GRPC_PORT", 8090, -1, 65535,
      "collector's gRPC ingest port (eventops.v1.Ingest; 0: any free port, -1: no gRPC service)"),
    I(grpc_threads, "EVENTOPS_GRPC_THREADS", 2, 1, 64,
      "threads serving gRPC calls (a call waiting for Kafka holds none)"),
    I(grpc_max_streams, "EVENTOPS_GRPC_MAX_STREAMS", 100, 1, 100000,
      "gRPC calls in flight per client connection (HTTP/2 concurrent streams)"),
    I(collector_rt_priority, "EVENTOPS_COLLECTOR_RT_PRIORITY", 0, 0, 99,
      "real-time priority (SCHED_RR) of the collector's threads, for a collector sharing its "
      "cores with storage: no wait behind busy threads at each hand-off of a request (ADR-26; "
      "needs CAP_SYS_NICE); 0: the normal scheduler"),
    I(http_threads, "EVENTOPS_HTTP_THREADS", 2, 1, 256, "HTTP worker threads per server"),
    I(http_max_connections, "EVENTOPS_HTTP_MAX_CONNECTIONS", 1024, 1, 1000000,
      "open HTTP connections per server"),
    I(http_max_connections_per_ip, "EVENTOPS_HTTP_MAX_CONNECTIONS_PER_IP", 256, 1, 1000000,
      "open HTTP connections per client address"),
    I(http_connection_timeout_s, "EVENTOPS_HTTP_CONNECTION_TIMEOUT_S", 30, 1, 3600,
      "idle HTTP connection timeout, seconds"),
    I(http_max_header_bytes, "EVENTOPS_HTTP_MAX_HEADER_BYTES", 16384, 1024, 1048576,
      "request line plus headers, bytes"),
    I(http_read_buffer_bytes, "EVENTOPS_HTTP_READ_BUFFER_BYTES", 16384, 4096, 16777216,
      "a connection's read buffer beside its headers, bytes (cleared for every request)"),
    I(max_body_bytes, "EVENTOPS_MAX_BODY_BYTES", 524288, 1024, 67108864,
      "request body, bytes (also after gzip decompression)"),
    I(max_event_bytes, "EVENTOPS_MAX_EVENT_BYTES", 32768, 256, 16777216,
      "one normalised event, bytes"),
    I(max_batch_events, "EVENTOPS_MAX_BATCH_EVENTS", 1000, 1, 100000, "events per batch request"),
    I(max_nesting_depth, "EVENTOPS_MAX_NESTING_DEPTH", 32, 1, 1000,
      "nesting depth of objects and arrays in an event"),
    I(max_properties, "EVENTOPS_MAX_PROPERTIES", 512, 1, 100000,
      "top-level keys in properties (and in context)"),
    I(max_string_bytes, "EVENTOPS_MAX_STRING_BYTES", 8192, 16, 16777216,
      "any string value or key inside properties/context, bytes"),
    I(max_id_bytes, "EVENTOPS_MAX_ID_BYTES", 255, 8, 4096,
      "userId, anonymousId and messageId, bytes"),
    I(max_event_type_bytes, "EVENTOPS_MAX_EVENT_TYPE_BYTES", 200, 1, 4096, "eventType, bytes"),
    I(max_future_s, "EVENTOPS_MAX_FUTURE_S", 86400, 0, 31622400,
      "how far past the receive time an event's corrected timestamp may lie, seconds"),
    I(max_past_days, "EVENTOPS_MAX_PAST_DAYS", 3650, 1, 36500,
      "how far before the receive time an event's timestamp may lie, days"),
    I(kafka_ack_timeout_ms, "EVENTOPS_KAFKA_ACK_TIMEOUT_MS", 5000, 100, 300000,
      "how long the collector waits for Kafka to acknowledge before answering 503"),
    I(kafka_queue_max_messages, "EVENTOPS_KAFKA_QUEUE_MAX_MESSAGES", 200000, 1000, 10000000,
      "producer queue; when full the collector answers 503"),
    I(kafka_linger_us, "EVENTOPS_KAFKA_LINGER_US", 0, 0, 1000000,
      "producer linger, microseconds (0: a request's events go out at once; more batches "
      "across requests at that much latency)"),
    I(kafka_max_in_flight, "EVENTOPS_KAFKA_MAX_IN_FLIGHT", 1, 1, 5,
      "produce requests in flight per broker connection; while they are all out, the next "
      "events gather into one request (1: a lone event goes at once, a busy collector sends "
      "one large request per round trip)"),
    S(kafka_compression, "EVENTOPS_KAFKA_COMPRESSION", "none",
      "codec of the events the collector writes: none, lz4, zstd, snappy or gzip (none costs "
      "the least CPU on one machine; a codec saves network and disk between machines)"),
    I(retry_after_s, "EVENTOPS_RETRY_AFTER_S", 2, 1, 3600, "Retry-After sent with 503"),
    I(write_key_refresh_ms, "EVENTOPS_WRITE_KEY_REFRESH_MS", 2000, 100, 3600000,
      "how often the collector reloads write keys, clients and limits (revocation delay)"),
    I(credential_lookups_per_s, "EVENTOPS_CREDENTIAL_LOOKUPS_PER_S", 50, 1, 100000,
      "database lookups per second of credentials the collector has not cached (a flood of "
      "made-up keys cannot hammer PostgreSQL)"),
    S(processor_group, "EVENTOPS_PROCESSOR_GROUP", "eventops-processor", "Kafka consumer group"),
    S(processor_id, "EVENTOPS_PROCESSOR_ID", "",
      "stable id of this processor instance (Kafka transactional.id); default processor-HOSTNAME"),
    S(processor_addr, "EVENTOPS_PROCESSOR_ADDR", "127.0.0.1", "processor health listen address"),
    I(processor_port, "EVENTOPS_PROCESSOR_PORT", 8081, 0, 65535,
      "processor health port (/healthz, /readyz)"),
    I(user_cache_entries, "EVENTOPS_USER_CACHE_ENTRIES", 65536, 1024, 100000000,
      "user numbers each storage worker keeps in memory, per generation (ADR-22; two "
      "generations, about 100 bytes an entry: users seen within the last generation stay)"),
    I(user_sets_compact_ms, "EVENTOPS_USER_SETS_COMPACT_MS", 2000, 100, 3600000,
      "how often the processor merges the user-set deltas into the compacted sets, ms"),
    I(user_sets_compact_rows, "EVENTOPS_USER_SETS_COMPACT_ROWS", 2000, 10, 1000000,
      "user-set deltas merged per compaction transaction"),
    I(timeline_part_events, "EVENTOPS_TIMELINE_PART_EVENTS", 65536, 16, 100000000,
      "events of one hour and event type per timelines row (ADR-23): the compactor merges into "
      "an hour's last part while it has room, then starts the next (16 bytes each in memory)"),
    I(property_value_cap, "EVENTOPS_PROPERTY_VALUE_CAP", 1000, 1, 1000000,
      "values of a tracked property counted by name when tracking gives no cap; the others "
      "are counted together as overflow (ADR-24)"),
    I(property_value_cap_max, "EVENTOPS_PROPERTY_VALUE_CAP_MAX", 10000, 1, 1000000,
      "the largest cap a tracked property may be given (the processor caches up to this many "
      "values per tracked property)"),
    I(tracked_properties_max, "EVENTOPS_TRACKED_PROPERTIES_MAX", 20, 1, 1000,
      "tracked properties per tenant"),
    I(profile_aliases_max, "EVENTOPS_PROFILE_ALIASES_MAX", 1000, 1, 1000000,
      "aliases of a user listed, and merged into its profile, by GET /profiles/{userId}"),
    I(processor_workers, "EVENTOPS_PROCESSOR_WORKERS", 2, 1, 64,
      "storage threads (each with its own database connection) storing equal shares of a batch"),
    I(batch_max_events, "EVENTOPS_PROCESSOR_BATCH_MAX", 5000, 1, 1000000,
      "events per database transaction"),
    I(batch_max_wait_ms, "EVENTOPS_PROCESSOR_BATCH_WAIT_MS", 100, 1, 60000,
      "longest wait to fill a batch, ms"),
    I(retry_max_backoff_ms, "EVENTOPS_PROCESSOR_RETRY_MAX_MS", 5000, 10, 600000,
      "cap of the backoff while PostgreSQL is unavailable, ms"),
    I(partitions_ahead_days, "EVENTOPS_PARTITIONS_AHEAD_DAYS", 7, 1, 366,
      "daily events partitions created ahead of today"),
    I(malloc_keep_bytes, "EVENTOPS_MALLOC_KEEP_BYTES", 67108864, 0, 1073741824,
      "freed memory each process keeps for reuse instead of returning it to the kernel "
      "(glibc's trim threshold; blocks up to 32 MiB, or this, come from the heap): fresh pages "
      "cost a fault and a clearing each; 0: glibc's defaults"),
    I(malloc_trim_ms, "EVENTOPS_MALLOC_TRIM_MS", 30000, 0, 86400000,
      "how often each process gives the freed memory it keeps (EVENTOPS_MALLOC_KEEP_BYTES) back "
      "to the kernel (malloc_trim), ms: what a role needs again within that time is reused, "
      "rare peaks do not stay in its RSS; 0: never"),
    I(processor_prefetch_kbytes, "EVENTOPS_PROCESSOR_PREFETCH_KBYTES", 65536, 1024, 2097151,
      "KiB of fetched records the processor's consumer holds ahead of its batches "
      "(queued.max.messages.kbytes): bounds its memory while a backlog waits; 16384 drained "
      "a backlog 15-30 % slower (docs/benchmarks.md)"),
    I(kafka_fetch_min_bytes, "EVENTOPS_KAFKA_FETCH_MIN_BYTES", 65536, 1, 104857600,
      "bytes the processor's and the analytics role's fetches wait for, at most 50 ms (1: "
      "answer at once: more fetches, more broker CPU)"),
    I(kafka_session_timeout_ms, "EVENTOPS_KAFKA_SESSION_TIMEOUT_MS", 10000, 1000, 3600000,
      "consumer group session timeout, ms (within the broker's group.min/max.session.timeout.ms)"),
    I(kafka_txn_timeout_ms, "EVENTOPS_KAFKA_TXN_TIMEOUT_MS", 60000, 1000, 900000,
      "longest a processor transaction may stay open (transaction.timeout.ms); a commit not "
      "finished by then rebuilds the producer, ms"),
    I(kafka_call_timeout_ms, "EVENTOPS_KAFKA_CALL_TIMEOUT_MS", 1000, 100, 60000,
      "longest one blocking Kafka call of a consuming loop may take before the loop serves the "
      "group again, ms"),
    I(kafka_lag_interval_ms, "EVENTOPS_KAFKA_LAG_INTERVAL_MS", 1000, 100, 600000,
      "how often the consumer lag is measured at the brokers, ms"),
    I(processor_stall_ms, "EVENTOPS_PROCESSOR_STALL_MS", 30000, 1000, 86400000,
      "a backlog with no committed progress for this long makes the processor not ready, ms"),
    I(shutdown_timeout_ms, "EVENTOPS_SHUTDOWN_TIMEOUT_MS", 10000, 100, 600000,
      "how long a role drains on SIGTERM before giving up, ms"),
    S(auth_addr, "EVENTOPS_AUTH_ADDR", "127.0.0.1", "auth role listen address"),
    I(auth_port, "EVENTOPS_AUTH_PORT", 8082, 0, 65535, "auth role listen port (0: any)"),
    S(auth_public_url, "EVENTOPS_AUTH_PUBLIC_URL", "",
      "base URL clients reach the auth role at, for its metadata document (default "
      "http://ADDR:PORT)"),
    S(auth_key_dir, "EVENTOPS_AUTH_KEY_DIR", "",
      "folder of the token signing keys (<kid>.pem); the auth role needs it, a collector "
      "without a JWKS URL verifies with it"),
    S(auth_jwks_url, "EVENTOPS_AUTH_JWKS_URL", "",
      "JWKS URL the collector takes token verification keys from (instead of the key folder)"),
    I(auth_keys_refresh_ms, "EVENTOPS_AUTH_KEYS_REFRESH_MS", 60000, 100, 86400000,
      "how often signing keys are reloaded (key folder or JWKS), ms"),
    I(auth_keys_min_refetch_ms, "EVENTOPS_AUTH_KEYS_MIN_REFETCH_MS", 5000, 10, 3600000,
      "a token with an unknown kid reloads the keys at most once per this interval, ms"),
    S(auth_issuer, "EVENTOPS_AUTH_ISSUER", "eventops", "iss of access tokens"),
    S(auth_audience, "EVENTOPS_AUTH_AUDIENCE", "eventops", "aud of access tokens"),
    I(auth_token_ttl_s, "EVENTOPS_AUTH_TOKEN_TTL_S", 900, 1, 86400,
      "access token lifetime, seconds"),
    I(auth_leeway_s, "EVENTOPS_AUTH_LEEWAY_S", 30, 0, 600,
      "clock leeway when checking exp, nbf and iat, seconds"),
    I(auth_max_token_bytes, "EVENTOPS_AUTH_MAX_TOKEN_BYTES", 4096, 256, 65536,
      "longest bearer token accepted, bytes"),
    I(auth_client_rate, "EVENTOPS_AUTH_CLIENT_RATE", 5, 1, 1000000,
      "token endpoint: requests per second per client id"),
    I(auth_client_burst, "EVENTOPS_AUTH_CLIENT_BURST", 20, 1, 1000000,
      "token endpoint: burst per client id"),
    I(auth_ip_rate, "EVENTOPS_AUTH_IP_RATE", 20, 1, 1000000,
      "token endpoint: requests per second per source address"),
    I(auth_ip_burst, "EVENTOPS_AUTH_IP_BURST", 100, 1, 1000000,
      "token endpoint: burst per source address"),
    S(redis_url, "EVENTOPS_REDIS_URL", "redis://127.0.0.1:56379",
      "Redis shared by all instances for rate limits (redis://[:password@]host:port[/db])"),
    I(redis_timeout_ms, "EVENTOPS_REDIS_TIMEOUT_MS", 50, 1, 60000,
      "Redis connect and command timeout, ms"),
    I(redis_retry_ms, "EVENTOPS_REDIS_RETRY_MS", 1000, 10, 600000,
      "after a Redis failure, limit locally this long before trying Redis again, ms"),
    I(rate_limit_rate, "EVENTOPS_RATE_LIMIT_RATE", 1000, 1, 10000000,
      "default requests per second per client and per write key"),
    I(rate_limit_burst, "EVENTOPS_RATE_LIMIT_BURST", 2000, 1, 10000000,
      "default burst per client and per write key"),
    I(rate_limit_instances, "EVENTOPS_RATE_LIMIT_INSTANCES", 1, 1, 10000,
      "collector instances; with Redis unreachable each limits locally to rate/instances"),
    I(rate_limit_lease_max, "EVENTOPS_RATE_LIMIT_LEASE_MAX", 64, 1, 1000000,
      "the most requests of one key one Redis call leases to this instance (1: a call per "
      "request)"),
    I(rate_limit_lease_ms, "EVENTOPS_RATE_LIMIT_LEASE_MS", 50, 1, 60000,
      "leased requests not used within this are dropped, ms (the limit's bound grows by rate x "
      "this)"),
    S(query_addr, "EVENTOPS_QUERY_ADDR", "127.0.0.1", "query role listen address"),
    I(query_port, "EVENTOPS_QUERY_PORT", 8083, 0, 65535, "query role listen port (0: any)"),
    I(query_threads, "EVENTOPS_QUERY_THREADS", 4, 1, 256,
      "query role HTTP threads, each with its own PostgreSQL connection"),
    I(query_timeout_ms, "EVENTOPS_QUERY_TIMEOUT_MS", 30000, 100, 3600000,
      "statement timeout of one query; past it the answer is 503 query_timeout"),
    I(query_work_mem_mb, "EVENTOPS_QUERY_WORK_MEM_MB", 64, 1, 65536,
      "PostgreSQL work_mem of each query connection, MiB (hashing distinct users in memory)"),
    I(query_max_buckets, "EVENTOPS_QUERY_MAX_BUCKETS", 5000, 1, 1000000,
      "buckets one trend, unique-users series or retention table may span"),
    I(query_max_periods, "EVENTOPS_QUERY_MAX_PERIODS", 90, 1, 10000, "retention periods"),
    I(query_max_limit, "EVENTOPS_QUERY_MAX_LIMIT", 1000, 1, 100000,
      "largest limit of breakdown values and raw event pages"),
    I(query_max_funnel_steps, "EVENTOPS_QUERY_MAX_FUNNEL_STEPS", 10, 2, 100, "funnel steps"),
    I(query_max_within_s, "EVENTOPS_QUERY_MAX_WITHIN_S", 7776000, 1, 315360000,
      "longest funnel conversion window, seconds (default 90 days)"),
    I(query_max_funnel_events, "EVENTOPS_QUERY_MAX_FUNNEL_EVENTS", 50000000, 1, 4000000000,
      "events of its step types one funnel may read from the timelines (16 bytes each)"),
    S(query_cache, "EVENTOPS_QUERY_CACHE", "on", "on: cache answers in Redis; off: never"),
    I(query_open_window_s, "EVENTOPS_QUERY_OPEN_WINDOW_S", 3600, 0, 315360000,
      "a range ending later than now minus this is open (short cache life), seconds"),
    I(query_cache_open_ttl_ms, "EVENTOPS_QUERY_CACHE_OPEN_TTL_MS", 1000, 1, 86400000,
      "cache life of answers over open ranges, ms"),
    I(query_cache_closed_ttl_s, "EVENTOPS_QUERY_CACHE_CLOSED_TTL_S", 3600, 1, 31622400,
      "cache life of answers over closed ranges, seconds"),
    S(analytics_addr, "EVENTOPS_ANALYTICS_ADDR", "127.0.0.1", "analytics role listen address"),
    I(analytics_port, "EVENTOPS_ANALYTICS_PORT", 8084, 0, 65535,
      "analytics role listen port (0: any)"),
    S(analytics_group, "EVENTOPS_ANALYTICS_GROUP", "eventops-analytics",
      "Kafka consumer group of the analytics engine (reads the events topic)"),
    S(analytics_id, "EVENTOPS_ANALYTICS_ID", "analytics-1",
      "stable id of this analytics instance (Kafka transactional.id eventops-analytics-ID)"),
    S(analytics_summaries_topic, "EVENTOPS_ANALYTICS_SUMMARIES_TOPIC", "eventops.summaries",
      "topic of the summary events rules emit"),
    S(analytics_windows_topic, "EVENTOPS_ANALYTICS_WINDOWS_TOPIC", "eventops.analytics.windows",
      "topic of window results"),
    S(analytics_late_topic, "EVENTOPS_ANALYTICS_LATE_TOPIC", "eventops.analytics.late",
      "topic of events too late for their windows, with the reason"),
    S(analytics_changelog_topic, "EVENTOPS_ANALYTICS_CHANGELOG_TOPIC",
      "eventops.analytics.changelog", "compacted topic of the engine's state"),
    S(analytics_sink_group, "EVENTOPS_ANALYTICS_SINK_GROUP", "eventops-analytics-sink",
      "Kafka consumer group writing summaries and window results into PostgreSQL"),
    I(analytics_tick_ms, "EVENTOPS_ANALYTICS_TICK_MS", 200, 10, 60000,
      "one Kafka transaction of results, the tick's log and offsets per tick, ms"),
    I(analytics_checkpoint_ms, "EVENTOPS_ANALYTICS_CHECKPOINT_MS", 10000, 10, 3600000,
      "the engine's changed state goes into the changelog this often; a restore replays the "
      "ticks since, ms"),
    I(analytics_watermark_bound_ms, "EVENTOPS_ANALYTICS_WATERMARK_BOUND_MS", 1000, 0, 86400000,
      "a partition's watermark is its highest event time minus this, ms"),
    I(analytics_idle_ms, "EVENTOPS_ANALYTICS_IDLE_MS", 5000, 100, 86400000,
      "a partition without records for this long no longer holds the watermark back, ms"),
    I(analytics_rules_refresh_ms, "EVENTOPS_ANALYTICS_RULES_REFRESH_MS", 1000, 100, 86400000,
      "how often the engine reloads rules (also on a PostgreSQL notification), ms"),
    I(analytics_changes_interval_ms, "EVENTOPS_ANALYTICS_CHANGES_INTERVAL_MS", 1000, 10, 3600000,
      "emit \"changes\": at most one update per window per this interval, ms"),
    I(analytics_timeout_ms, "EVENTOPS_ANALYTICS_TIMEOUT_MS", 5000, 100, 3600000,
      "statement timeout of one analytics API database call; past it the answer is 503, ms"),
    I(analytics_max_rules_per_tenant, "EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT", 100, 1, 100000,
      "rules (not deleted) per tenant"),
    I(analytics_max_groups, "EVENTOPS_ANALYTICS_MAX_GROUPS", 10000, 1, 10000000,
      "groups per rule: the cap and default of a rule's maxGroups"),
    I(analytics_max_window_s, "EVENTOPS_ANALYTICS_MAX_WINDOW_S", 2678400, 1, 315360000,
      "longest window size or session gap, seconds (default 31 days)"),
    I(analytics_min_window_s, "EVENTOPS_ANALYTICS_MIN_WINDOW_S", 1, 1, 315360000,
      "shortest window size or session gap, seconds"),
    I(analytics_max_panes, "EVENTOPS_ANALYTICS_MAX_PANES", 1440, 1, 1000000,
      "panes per hopping window: size / gcd(size, slide)"),
    I(analytics_max_horizon_s, "EVENTOPS_ANALYTICS_MAX_HORIZON_S", 604800, 0, 315360000,
      "longest correction horizon of a rule, seconds (default 7 days)"),
    I(analytics_max_buckets, "EVENTOPS_ANALYTICS_MAX_BUCKETS", 1000, 1, 1000000,
      "buckets of a rolling aggregate, and the largest ewma span"),
    I(analytics_max_rule_bytes, "EVENTOPS_ANALYTICS_MAX_RULE_BYTES", 16384, 256, 1048576,
      "a rule's JSON definition (the body of POST/PUT /analytics/rules), bytes"),
    I(analytics_max_state_bytes_per_tenant, "EVENTOPS_ANALYTICS_MAX_STATE_BYTES_PER_TENANT",
      67108864, 65536, 1099511627776,
      "engine state per tenant; beyond it new keys are refused and counted, bytes"),
    I(analytics_max_streams, "EVENTOPS_ANALYTICS_MAX_STREAMS", 256, 1, 100000,
      "open GET /analytics/stream connections in total"),
    I(analytics_max_streams_per_tenant, "EVENTOPS_ANALYTICS_MAX_STREAMS_PER_TENANT", 16, 1, 100000,
      "open GET /analytics/stream connections per tenant"),
    I(analytics_sse_keepalive_s, "EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S", 15, 1, 3600,
      "a keep-alive comment on an idle event stream every this many seconds"),
    I(analytics_backtest_max_range_s, "EVENTOPS_ANALYTICS_BACKTEST_MAX_RANGE_S", 2678400, 1,
      315360000, "longest range (to - from) of a rule backtest, seconds (default 31 days)"),
    I(analytics_backtest_max_events, "EVENTOPS_ANALYTICS_BACKTEST_MAX_EVENTS", 5000000, 1,
      1000000000, "stored events one backtest reads; past it the answer is truncated"),
    I(analytics_backtest_max_results, "EVENTOPS_ANALYTICS_BACKTEST_MAX_RESULTS", 10000, 1, 10000000,
      "window results and summaries in one backtest's answer; past it truncated"),
    I(analytics_backtest_timeout_ms, "EVENTOPS_ANALYTICS_BACKTEST_TIMEOUT_MS", 60000, 100, 3600000,
      "one backtest's time (its reading and each statement); past it 503, ms"),
    I(analytics_backtest_max_concurrent, "EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT", 4, 1, 256,
      "backtests running at once in total (their worker threads); beyond it 429"),
    I(analytics_backtest_max_concurrent_per_tenant,
      "EVENTOPS_ANALYTICS_BACKTEST_MAX_CONCURRENT_PER_TENANT", 2, 1, 256,
      "backtests running at once per tenant; beyond it 429"),
    I(analytics_sse_buffer_records, "EVENTOPS_ANALYTICS_SSE_BUFFER_RECORDS", 10000, 1, 10000000,
      "recent window results and summaries kept in memory for the event streams (and their "
      "resumes), records"),
    I(analytics_sse_buffer_bytes, "EVENTOPS_ANALYTICS_SSE_BUFFER_BYTES", 67108864, 1048576,
      17179869184, "the same buffer's bound in bytes of records"),
    I(analytics_sse_max_backlog_bytes, "EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES", 1048576, 65536,
      1073741824,
      "an event stream whose client stays this far behind (bytes not yet sent) for a keep-alive "
      "interval is disconnected; it resumes with its Last-Event-ID"),
};

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return EO_EINVAL;
    *out = v;
    return 0;
}

/* Settings that were renamed: a deployment that still sets the old name is told the new one
 * rather than silently getting the default. */
static const struct {
    const char *old_name, *now;
} renamed[] = {
    {"EVENTOPS_KAFKA_LINGER_MS", "EVENTOPS_KAFKA_LINGER_US (microseconds)"},
};

int eo_config_load(eo_config_t *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++) {
        const char *val = getenv(renamed[i].old_name);
        if (val && *val) { /* empty counts as unset, as for every setting */
            snprintf(err, errlen, "%s: no longer read; set %s instead", renamed[i].old_name,
                     renamed[i].now);
            return EO_EINVAL;
        }
    }
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const cfg_var_t *v = &vars[i];
        const char *val = getenv(v->name);
        if (!val || !*val)
            val = v->def;
        char *field = (char *)cfg + v->offset;
        if (v->type == CFG_STR) {
            if (strlen(val) >= v->size) {
                snprintf(err, errlen, "%s: longer than %zu bytes", v->name, v->size - 1);
                return EO_EINVAL;
            }
            memcpy(field, val, strlen(val) + 1);
        } else {
            int64_t n;
            if (parse_int(val, &n) < 0 || n < v->min || n > v->max) {
                snprintf(err, errlen, "%s: must be an integer from %lld to %lld", v->name,
                         (long long)v->min, (long long)v->max);
                return EO_EINVAL;
            }
            memcpy(field, &n, sizeof n);
        }
    }
    if (cfg->analytics_min_window_s > cfg->analytics_max_window_s) {
        snprintf(
            err, errlen,
            "EVENTOPS_ANALYTICS_MIN_WINDOW_S: must not exceed EVENTOPS_ANALYTICS_MAX_WINDOW_S");
        return EO_EINVAL;
    }
    static const char *const codecs[] = {"none", "lz4", "zstd", "snappy", "gzip"};
    bool codec_known = false;
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        codec_known = codec_known || strcmp(cfg->kafka_compression, codecs[i]) == 0;
    if (!codec_known) {
        snprintf(err, errlen,
                 "EVENTOPS_KAFKA_COMPRESSION: must be none, lz4, zstd, snappy or gzip");
        return EO_EINVAL;
    }
    if (!cfg->processor_id[0]) {
        char host[64] = "local";
        if (gethostname(host, sizeof host) != 0)
            memcpy(host, "local", 6);
        host[sizeof host - 1] = '\0';
        snprintf(cfg->processor_id, sizeof cfg->processor_id, "processor-%s", host);
    }
    return 0;
}

void eo_config_print_help(FILE *out)
{
    fprintf(out, "Environment (default in brackets):\n");
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        fprintf(out, "  %-38s %s [%s]\n", vars[i].name, vars[i].help, vars[i].def);
}
