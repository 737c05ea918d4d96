/* `eventops migrate` (see migrate.h). */
#include "migrate/migrate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/pg.h"

#define MIGRATE_LOCK_KEY "4242000001"

static int apply_one(PGconn *conn, const eo_migration_t *m, char *err, size_t errlen)
{
    int r = eo_pg_exec(conn, "BEGIN", err, errlen);
    if (r < 0)
        return r;
    if ((r = eo_pg_exec(conn, m->sql, err, errlen)) < 0)
        goto fail;
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    PGresult *res;
    if ((r = eo_pg_query(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                         params, &res, err, errlen)) < 0)
        goto fail;
    PQclear(res);
    return eo_pg_exec(conn, "COMMIT", err, errlen);
fail:;
    char ignored[64];
    eo_ignore(eo_pg_exec(conn, "ROLLBACK", ignored, sizeof ignored));
    return r;
}

int eo_migrate_run(const char *dsn, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    PGconn *conn;
    int r = eo_pg_connect(dsn, &conn, err, errlen);
    if (r < 0)
        return r;
    if ((r = eo_pg_exec(conn,
                        "SET client_min_messages = warning; "
                        "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")",
                        err, errlen)) < 0)
        goto done;
    if ((r = eo_pg_exec(conn,
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())",
                        err, errlen)) < 0)
        goto done;
    PGresult *res;
    if ((r = eo_pg_query(conn, "SELECT version FROM schema_migrations", 0, NULL, &res, err,
                         errlen)) < 0)
        goto done;
    for (size_t i = 0; i < eo_migrations_count && r == 0; i++) {
        const eo_migration_t *m = &eo_migrations[i];
        bool done = false;
        for (int row = 0; row < PQntuples(res); row++)
            if (strtol(PQgetvalue(res, row, 0), NULL, 10) == m->version)
                done = true;
        if (done)
            continue;
        char detail[400];
        if ((r = apply_one(conn, m, detail, sizeof detail)) < 0) {
            snprintf(err, errlen, "%s: %s", m->name, detail);
            break;
        }
        eo_log_info("migration applied", "name", m->name, NULL);
        (*applied)++;
    }
    PQclear(res);
done:
    PQfinish(conn); /* also releases the advisory lock */
    return r;
}

int eo_migrate_main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: eventops migrate\nApplies the SQL migrations compiled into this binary "
               "to EVENTOPS_PG_DSN. Safe to run repeatedly and concurrently.\n\n");
        eo_config_print_help(stdout);
        return 0;
    }
    eo_config_t cfg;
    char err[512];
    if (eo_config_load(&cfg, err, sizeof err) < 0) {
        eo_log_error("bad configuration", "error", err, NULL);
        return 2;
    }
    int applied;
    if (eo_migrate_run(cfg.pg_dsn, &applied, err, sizeof err) < 0) {
        eo_log_error("migration failed", "error", err, NULL);
        return 1;
    }
    char n[16];
    snprintf(n, sizeof n, "%d", applied);
    eo_log_info("schema up to date", "applied", n, NULL);
    return 0;
}
