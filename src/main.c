/* eventops: one binary, one subcommand per role. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "admin/admin.h"
#include "processor/compactor.h"
#include "analytics/analytics.h"
#include "auth/auth.h"
#include "collector/collector.h"
#include "core/config.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/ticker.h"
#include "migrate/migrate.h"
#include "processor/processor.h"
#include "query/query.h"

/* The long-running roles, in start order (each may rely on the ones before it being up in
 * `eventops all`); they stop in reverse order, so the collector stops accepting first and the
 * processor drains last. A role's start/stop pair is adapted to untyped handles here. */
#define ROLE_ADAPTERS(name, type, prefix)                                                          \
    static int start_##name(const eo_config_t *cfg, void **h, char *err, size_t errlen)            \
    {                                                                                              \
        type *p = NULL;                                                                            \
        int r = prefix##_start(cfg, &p, err, errlen);                                              \
        *h = p;                                                                                    \
        return r;                                                                                  \
    }                                                                                              \
    static void stop_##name(void *h)                                                               \
    {                                                                                              \
        prefix##_stop(h);                                                                          \
    }

ROLE_ADAPTERS(processor, eo_processor_t, eo_processor)
ROLE_ADAPTERS(analytics, eo_analytics_t, eo_analytics)
ROLE_ADAPTERS(auth, eo_auth_t, eo_auth)
ROLE_ADAPTERS(query, eo_query_t, eo_query)
ROLE_ADAPTERS(collector, eo_collector_t, eo_collector)

typedef struct {
    const char *name, *summary;
    int (*start)(const eo_config_t *cfg, void **h, char *err, size_t errlen);
    void (*stop)(void *h);
} role_t;

enum { PROCESSOR, ANALYTICS, AUTH, QUERY, COLLECTOR, NROLES };

static const role_t roles[NROLES] = {
    [PROCESSOR] = {"processor", "Kafka consumer storing events and rollups in PostgreSQL",
                   start_processor, stop_processor},
    [ANALYTICS] = {"analytics", "real-time engine: windows, rules, summary events; its rules API",
                   start_analytics, stop_analytics},
    [AUTH] = {"auth", "OAuth2 token endpoint (client credentials) and JWKS", start_auth, stop_auth},
    [QUERY] = {"query", "analytics API: counts, trends, users, funnels, retention", start_query,
               stop_query},
    [COLLECTOR] = {"collector", "HTTP ingest API (validate, authenticate, publish to Kafka)",
                   start_collector, stop_collector},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: eventops COMMAND [--help]\n\n");
    for (int i = NROLES - 1; i >= 0; i--)
        fprintf(out, "  %-10s  %s\n", roles[i].name, roles[i].summary);
    fprintf(out, "  all         collector, processor, analytics, auth and query in one process\n"
                 "  migrate     apply the SQL schema migrations\n"
                 "  admin       tenants and write keys (eventops admin --help)\n\n");
    eo_config_print_help(out);
}

/* In `eventops all`, the auth role needs signing keys and the query and analytics roles a way
 * to check tokens; without them they are left out with a warning (alone, they refuse to
 * start). */
static int choose(const eo_config_t *cfg, bool all, bool on[NROLES])
{
    if (on[AUTH] && !all && !cfg->auth_key_dir[0]) {
        eo_log_error("auth cannot start", "error", "EVENTOPS_AUTH_KEY_DIR is not set", NULL);
        return -1;
    }
    if (on[AUTH] && all && !cfg->auth_key_dir[0]) {
        eo_log_warn("auth role not started: EVENTOPS_AUTH_KEY_DIR is not set", NULL);
        on[AUTH] = false;
    }
    if (on[QUERY] && all && !cfg->auth_key_dir[0] && !cfg->auth_jwks_url[0]) {
        eo_log_warn("query role not started: neither EVENTOPS_AUTH_KEY_DIR nor "
                    "EVENTOPS_AUTH_JWKS_URL is set",
                    NULL);
        on[QUERY] = false;
    }
    if (on[ANALYTICS] && all && !cfg->auth_key_dir[0] && !cfg->auth_jwks_url[0]) {
        eo_log_warn("analytics role not started: neither EVENTOPS_AUTH_KEY_DIR nor "
                    "EVENTOPS_AUTH_JWKS_URL is set",
                    NULL);
        on[ANALYTICS] = false;
    }
    return 0;
}

/* glibc returns freed memory at the top of a heap to the kernel beyond 128 KiB and serves
 * blocks from 128 KiB up (dynamically up to 32 MiB) by mmap; librdkafka allocates each fetch
 * response whole, so the processor cleared fresh pages for every fetch (12 % of its CPU,
 * docs/benchmarks.md). Fixed thresholds keep up to `keep` bytes of freed memory for reuse. */
static void keep_freed_memory(int64_t keep)
{
    if (keep <= 0)
        return;
    int mmap_at = keep < (32 << 20) ? (int)keep : 32 << 20;
    if (!mallopt(M_TRIM_THRESHOLD, (int)keep) || !mallopt(M_MMAP_THRESHOLD, mmap_at))
        eo_log_warn("malloc thresholds not set", NULL);
}

/* Every EVENTOPS_MALLOC_TRIM_MS the kept memory goes back to the kernel (the free pages of every
 * arena, not only heap tops): like jemalloc's decay, memory reused within the interval is kept,
 * and a rare peak (a large batch, a backlog) does not stay in the RSS for good. */
static void trim_freed_memory(void *ud)
{
    (void)ud;
    malloc_trim(0);
}

/* Runs the chosen long-running roles until SIGTERM/SIGINT, then stops them in reverse order;
 * a role that fails to start stops the ones already running. */
static int run_roles(const char *cmd, bool all, bool on[NROLES])
{
    eo_config_t cfg;
    char err[512];
    eo_log_setup(cmd, EO_LOG_INFO);
    if (eo_config_load(&cfg, err, sizeof err) < 0) {
        eo_log_error("bad configuration", "error", err, NULL);
        return 2;
    }
    eo_log_setup(cmd, eo_log_level_parse(cfg.log_level));
    keep_freed_memory(cfg.malloc_keep_bytes);
    eo_signals_block();
    if (choose(&cfg, all, on) < 0)
        return 2;
    eo_ticker_t *trimmer = NULL;
    if (cfg.malloc_keep_bytes > 0 && cfg.malloc_trim_ms > 0 &&
        eo_ticker_start("eo-trim", cfg.malloc_trim_ms, trim_freed_memory, NULL, &trimmer) < 0)
        eo_log_warn("cannot start the memory trimmer: kept memory stays kept", NULL);
    void *handle[NROLES] = {0};
    int started = 0, rc = 0;
    for (; started < NROLES; started++) {
        if (on[started] && roles[started].start(&cfg, &handle[started], err, sizeof err) < 0) {
            char what[64];
            snprintf(what, sizeof what, "%s failed to start", roles[started].name);
            eo_log_error(what, "error", err, NULL);
            rc = 1;
            break;
        }
    }
    if (rc == 0) {
        int sig = eo_signals_wait();
        eo_log_info("shutting down", "signal", sig == 0 ? "internal" : strsignal(sig), NULL);
    }
    while (started-- > 0)
        if (on[started])
            roles[started].stop(handle[started]);
    eo_ticker_stop(trimmer);
    if (rc)
        return rc;
    bool failed = eo_signals_failed();
    eo_log_info("stopped", "clean", failed ? "false" : "true", NULL);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    bool help = argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "migrate")) {
        eo_log_setup("migrate", EO_LOG_INFO);
        return eo_migrate_main(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "admin") && argc > 2 && !strcmp(argv[2], "backfill")) {
        eo_log_setup("admin", EO_LOG_WARN);
        bool all_days = argc > 3 && !strcmp(argv[3], "--all");
        eo_config_t cfg;
        char err[512];
        if (argc > 4 || (argc == 4 && !all_days)) {
            fprintf(stderr, "usage: eventops admin backfill [--all]\n");
            return 2;
        }
        if (eo_config_load(&cfg, err, sizeof err) < 0) {
            fprintf(stderr, "eventops admin: configuration: %s\n", err);
            return 2;
        }
        return eo_derived_backfill_run(cfg.pg_dsn, all_days, cfg.timeline_part_events, stdout);
    }
    if (!strcmp(cmd, "admin")) {
        eo_log_setup("admin", EO_LOG_WARN);
        return eo_admin_main(argc - 1, argv + 1);
    }
    bool all = !strcmp(cmd, "all"), on[NROLES], any = all;
    for (int i = 0; i < NROLES; i++)
        any |= on[i] = all || !strcmp(cmd, roles[i].name);
    if (!any) {
        fprintf(stderr, "eventops: unknown command '%s'\n\n", cmd);
        usage(stderr);
        return 2;
    }
    if (help) {
        printf("usage: eventops %s\n\n", cmd);
        eo_config_print_help(stdout);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread starts */
    int rc = run_roles(cmd, all, on);
    curl_global_cleanup();
    return rc;
}
