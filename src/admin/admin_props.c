/* `eventops admin track-property | untrack-property | list-tracked-properties`: the properties
 * whose breakdowns are answered from property rollups (ADR-24). Tracking and untracking are the
 * SQL functions eventops_track_property / eventops_untrack_property (migration 0009), which the
 * query role's API calls too. Runs on the main thread. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "core/config.h"
#include "core/pg.h"
#include "domain/propval.h"

bool eo_admin_props_command(const char *cmd)
{
    return !strcmp(cmd, "track-property") || !strcmp(cmd, "untrack-property") ||
           !strcmp(cmd, "list-tracked-properties");
}

static int track(PGconn *conn, const eo_config_t *cfg, const char *tenant, const char *path,
                 long long cap, bool as_json)
{
    char err[512], capt[24], maxt[24];
    snprintf(capt, sizeof capt, "%lld", cap);
    snprintf(maxt, sizeof maxt, "%lld", (long long)cfg->tracked_properties_max);
    const char *p[] = {tenant, path, capt, maxt};
    PGresult *res;
    if (eo_pg_query(conn, "SELECT eventops_track_property($1::uuid, $2, $3::int, $4::int)", 4, p,
                    &res, err, sizeof err) < 0)
        return eo_admin_fail("track-property", err);
    char outcome[16];
    snprintf(outcome, sizeof outcome, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!strcmp(outcome, "limit")) {
        snprintf(err, sizeof err, "the tenant tracks %lld properties already (at most)",
                 (long long)cfg->tracked_properties_max);
        return eo_admin_fail("track-property", err);
    }
    if (as_json)
        eo_admin_print_json(json_pack("{s:s, s:s, s:I, s:s}", "tenantId", tenant, "path", path,
                                      "cap", (json_int_t)cap, "result", outcome));
    else
        printf("%s %s (cap %lld): %s%s\n", tenant, path, cap, outcome,
               strcmp(outcome, "unchanged") ? "; the processors backfill it from the events" : "");
    return 0;
}

static int untrack(PGconn *conn, const char *tenant, const char *path, bool as_json)
{
    char err[512];
    const char *p[] = {tenant, path};
    PGresult *res;
    if (eo_pg_query(conn, "SELECT eventops_untrack_property($1::uuid, $2)", 2, p, &res, err,
                    sizeof err) < 0)
        return eo_admin_fail("untrack-property", err);
    bool was = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!was) {
        snprintf(err, sizeof err, "%s is not tracked for this tenant", path);
        return eo_admin_fail("untrack-property", err);
    }
    if (as_json)
        eo_admin_print_json(
            json_pack("{s:s, s:s, s:s}", "tenantId", tenant, "path", path, "result", "untracked"));
    else
        printf("%s %s: untracked\n", tenant, path);
    return 0;
}

static int list(PGconn *conn, const char *tenant, bool as_json)
{
    char err[512];
    const char *p[] = {tenant};
    PGresult *res;
    if (eo_pg_query(conn,
                    "SELECT tp.tenant_id::text, tp.path, tp.value_cap, tp.state,"
                    " to_char(tp.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                    " (SELECT count(*) FROM property_values AS v WHERE v.tenant_id = tp.tenant_id"
                    " AND v.path = tp.path) FROM tracked_properties AS tp"
                    " WHERE $1::uuid IS NULL OR tp.tenant_id = $1::uuid ORDER BY 1, 2",
                    1, p, &res, err, sizeof err) < 0)
        return eo_admin_fail("list-tracked-properties", err);
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        if (as_json)
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:I, s:s, s:s, s:I}", "tenantId", PQgetvalue(res, i, 0),
                               "path", PQgetvalue(res, i, 1), "cap",
                               (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10), "state",
                               PQgetvalue(res, i, 3), "createdAt", PQgetvalue(res, i, 4), "values",
                               (json_int_t)strtoll(PQgetvalue(res, i, 5), NULL, 10)));
        else
            printf("%s  %-24s  cap %-7s  values %-7s  %s  since %s\n", PQgetvalue(res, i, 0),
                   PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 5),
                   PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
    }
    PQclear(res);
    if (as_json)
        eo_admin_print_json(json_pack("{s:o}", "trackedProperties", arr));
    else
        json_decref(arr);
    return 0;
}

int eo_admin_props_main(int argc, char **argv)
{
    const char *cmd = argv[1], *tenant_arg = NULL, *path = NULL, *cap_arg = NULL;
    bool as_json = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = true;
        else if (!strcmp(argv[i], "--tenant") && i + 1 < argc)
            tenant_arg = argv[++i];
        else if (!strcmp(argv[i], "--path") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--cap") && i + 1 < argc && !strcmp(cmd, "track-property"))
            cap_arg = argv[++i];
        else {
            eo_admin_usage(stderr);
            return 2;
        }
    }
    bool listing = !strcmp(cmd, "list-tracked-properties");
    if (!listing && (!tenant_arg || !path)) {
        eo_admin_usage(stderr);
        return 2;
    }
    eo_proppath_t split;
    if (path && eo_proppath_parse(path, strlen(path), &split) < 0)
        return eo_admin_fail("--path", "1 to 4 names joined by '.', each 1-64 of [A-Za-z0-9_$-]");
    eo_config_t cfg;
    char err[512];
    if (eo_config_load(&cfg, err, sizeof err) < 0)
        return eo_admin_fail("configuration", err);
    long long cap = cfg.property_value_cap < cfg.property_value_cap_max
                        ? cfg.property_value_cap
                        : cfg.property_value_cap_max;
    if (cap_arg) {
        char *end;
        cap = strtoll(cap_arg, &end, 10);
        if (*cap_arg == '\0' || *end != '\0' || cap < 1 || cap > cfg.property_value_cap_max) {
            snprintf(err, sizeof err,
                     "must be an integer from 1 to %lld (EVENTOPS_PROPERTY_VALUE_CAP_MAX)",
                     (long long)cfg.property_value_cap_max);
            return eo_admin_fail("--cap", err);
        }
    }
    PGconn *conn;
    if (eo_pg_connect(cfg.pg_dsn, &conn, err, sizeof err) < 0)
        return eo_admin_fail("database", err);
    char tenant[37] = "";
    int r = 0;
    if (tenant_arg && eo_admin_resolve_tenant(conn, tenant_arg, tenant, err, sizeof err) < 0)
        r = eo_admin_fail(cmd, err);
    else if (listing)
        r = list(conn, tenant_arg ? tenant : NULL, as_json);
    else if (!strcmp(cmd, "track-property"))
        r = track(conn, &cfg, tenant, path, cap, as_json);
    else
        r = untrack(conn, tenant, path, as_json);
    PQfinish(conn);
    return r;
}
