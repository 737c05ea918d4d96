/* eventops: one binary, one subcommand per role. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "admin/admin.h"
#include "auth/auth.h"
#include "collector/collector.h"
#include "core/config.h"
#include "core/log.h"
#include "core/signals.h"
#include "migrate/migrate.h"
#include "processor/processor.h"
#include "query/query.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: eventops COMMAND [--help]\n\n"
                 "  collector   HTTP ingest API (validate, authenticate, publish to Kafka)\n"
                 "  processor   Kafka consumer storing events and rollups in PostgreSQL\n"
                 "  auth        OAuth2 token endpoint (client credentials) and JWKS\n"
                 "  query       analytics API: counts, trends, users, funnels, retention\n"
                 "  all         collector, processor, auth and query in one process\n"
                 "  migrate     apply the SQL schema migrations\n"
                 "  admin       tenants and write keys (eventops admin --help)\n\n");
    eo_config_print_help(out);
}

/* Runs the chosen long-running roles until SIGTERM/SIGINT, then stops them in order. */
static int run_roles(const char *role, bool collector, bool processor, bool auth, bool query)
{
    eo_config_t cfg;
    char err[512];
    eo_log_setup(role, EO_LOG_INFO);
    if (eo_config_load(&cfg, err, sizeof err) < 0) {
        eo_log_error("bad configuration", "error", err, NULL);
        return 2;
    }
    eo_log_setup(role, eo_log_level_parse(cfg.log_level));
    eo_signals_block();
    eo_processor_t *proc = NULL;
    eo_collector_t *coll = NULL;
    eo_auth_t *au = NULL;
    eo_query_t *qu = NULL;
    if (auth && !collector && !cfg.auth_key_dir[0]) {
        eo_log_error("auth cannot start", "error", "EVENTOPS_AUTH_KEY_DIR is not set", NULL);
        return 2;
    }
    if (auth && collector && !cfg.auth_key_dir[0]) {
        eo_log_warn("auth role not started: EVENTOPS_AUTH_KEY_DIR is not set", NULL);
        auth = false;
    }
    if (query && collector && !cfg.auth_key_dir[0] && !cfg.auth_jwks_url[0]) {
        eo_log_warn("query role not started: neither EVENTOPS_AUTH_KEY_DIR nor "
                    "EVENTOPS_AUTH_JWKS_URL is set",
                    NULL);
        query = false;
    }
    if (processor && eo_processor_start(&cfg, &proc, err, sizeof err) < 0) {
        eo_log_error("processor failed to start", "error", err, NULL);
        return 1;
    }
    if (auth && eo_auth_start(&cfg, &au, err, sizeof err) < 0) {
        eo_log_error("auth failed to start", "error", err, NULL);
        eo_processor_stop(proc);
        return 1;
    }
    if (query && eo_query_start(&cfg, &qu, err, sizeof err) < 0) {
        eo_log_error("query failed to start", "error", err, NULL);
        eo_auth_stop(au);
        eo_processor_stop(proc);
        return 1;
    }
    if (collector && eo_collector_start(&cfg, &coll, err, sizeof err) < 0) {
        eo_log_error("collector failed to start", "error", err, NULL);
        eo_query_stop(qu);
        eo_auth_stop(au);
        eo_processor_stop(proc);
        return 1;
    }
    int sig = eo_signals_wait();
    eo_log_info("shutting down", "signal", sig == 0 ? "internal" : strsignal(sig), NULL);
    eo_collector_stop(coll); /* stop accepting first, then drain the pipeline */
    eo_query_stop(qu);
    eo_auth_stop(au);
    eo_processor_stop(proc);
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
    if (!strcmp(cmd, "admin")) {
        eo_log_setup("admin", EO_LOG_WARN);
        return eo_admin_main(argc - 1, argv + 1);
    }
    bool coll = !strcmp(cmd, "collector"), proc = !strcmp(cmd, "processor"),
         auth = !strcmp(cmd, "auth"), query = !strcmp(cmd, "query"), all = !strcmp(cmd, "all");
    if (!coll && !proc && !auth && !query && !all) {
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
    int rc = run_roles(cmd, coll || all, proc || all, auth || all, query || all);
    curl_global_cleanup();
    return rc;
}
