/* eventops: one binary, one subcommand per role. */
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "collector/collector.h"
#include "core/config.h"
#include "core/log.h"
#include "core/signals.h"
#include "migrate/migrate.h"
#include "processor/processor.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: eventops COMMAND [--help]\n\n"
                 "  collector   HTTP ingest API (validate, authenticate, publish to Kafka)\n"
                 "  processor   Kafka consumer storing events and rollups in PostgreSQL\n"
                 "  all         collector and processor in one process\n"
                 "  migrate     apply the SQL schema migrations\n"
                 "  admin       tenants and write keys (eventops admin --help)\n\n");
    eo_config_print_help(out);
}

/* Runs the chosen long-running roles until SIGTERM/SIGINT, then stops them in order. */
static int run_roles(const char *role, bool collector, bool processor)
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
    if (processor && eo_processor_start(&cfg, &proc, err, sizeof err) < 0) {
        eo_log_error("processor failed to start", "error", err, NULL);
        return 1;
    }
    if (collector && eo_collector_start(&cfg, &coll, err, sizeof err) < 0) {
        eo_log_error("collector failed to start", "error", err, NULL);
        eo_processor_stop(proc);
        return 1;
    }
    int sig = eo_signals_wait();
    eo_log_info("shutting down", "signal", sig == 0 ? "internal" : strsignal(sig), NULL);
    eo_collector_stop(coll); /* stop accepting first, then drain the pipeline */
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
         all = !strcmp(cmd, "all");
    if (!coll && !proc && !all) {
        fprintf(stderr, "eventops: unknown command '%s'\n\n", cmd);
        usage(stderr);
        return 2;
    }
    if (help) {
        printf("usage: eventops %s\n\n", cmd);
        eo_config_print_help(stdout);
        return 0;
    }
    return run_roles(cmd, coll || all, proc || all);
}
