/* The EVENTOPS_* settings table and its loader (see config.h). */
#include "core/config.h"

#include <errno.h>
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
    I(http_threads, "EVENTOPS_HTTP_THREADS", 2, 1, 256, "HTTP worker threads per server"),
    I(http_max_connections, "EVENTOPS_HTTP_MAX_CONNECTIONS", 1024, 1, 1000000,
      "open HTTP connections per server"),
    I(http_max_connections_per_ip, "EVENTOPS_HTTP_MAX_CONNECTIONS_PER_IP", 256, 1, 1000000,
      "open HTTP connections per client address"),
    I(http_connection_timeout_s, "EVENTOPS_HTTP_CONNECTION_TIMEOUT_S", 30, 1, 3600,
      "idle HTTP connection timeout, seconds"),
    I(http_max_header_bytes, "EVENTOPS_HTTP_MAX_HEADER_BYTES", 16384, 1024, 1048576,
      "request line plus headers, bytes"),
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
    I(kafka_linger_ms, "EVENTOPS_KAFKA_LINGER_MS", 2, 0, 1000, "producer linger, ms"),
    I(retry_after_s, "EVENTOPS_RETRY_AFTER_S", 2, 1, 3600, "Retry-After sent with 503"),
    I(write_key_refresh_ms, "EVENTOPS_WRITE_KEY_REFRESH_MS", 2000, 100, 3600000,
      "how often the collector reloads write keys (revocation delay)"),
    S(processor_group, "EVENTOPS_PROCESSOR_GROUP", "eventops-processor", "Kafka consumer group"),
    S(processor_id, "EVENTOPS_PROCESSOR_ID", "",
      "stable id of this processor instance (Kafka transactional.id); default processor-HOSTNAME"),
    S(processor_addr, "EVENTOPS_PROCESSOR_ADDR", "127.0.0.1", "processor health listen address"),
    I(processor_port, "EVENTOPS_PROCESSOR_PORT", 8081, 0, 65535,
      "processor health port (/healthz, /readyz)"),
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
    I(shutdown_timeout_ms, "EVENTOPS_SHUTDOWN_TIMEOUT_MS", 10000, 100, 600000,
      "how long a role drains on SIGTERM before giving up, ms"),
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

int eo_config_load(eo_config_t *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
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
