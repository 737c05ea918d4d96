/* `eventops admin rules list|show|create|update|delete --tenant T [--file F | --id ID]`: a
 * tenant's analytics rules, as the analytics API manages them (docs/analytics.md). A rule file
 * is checked by the same parser and limits (EVENTOPS_ANALYTICS_*), stored as its canonical
 * JSON, and written through the database function analytics_rule_write (migration 0006), which
 * makes versions and enforces EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT as the API does. Runs on
 * the main thread; prints text, or with --json what the API answers. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error.h"
#include "core/pg.h"
#include "core/random.h"
#include "domain/record.h"
#include "domain/rule.h"
#include "domain/uuid7.h"

#define CREATED_AT "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define US_PER_S INT64_C(1000000)

typedef struct {
    const char *sub; /* list, show, create, update, delete */
    const char *tenant, *file, *id;
    bool as_json;
} opts_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: eventops admin rules COMMAND --tenant T [--json]\n"
                 "  list                        the tenant's rules (current versions)\n"
                 "  show --id ID                one rule\n"
                 "  create --file F             a new rule from a JSON file ('-': stdin)\n"
                 "  update --id ID --file F     the rule's next version\n"
                 "  delete --id ID              delete the rule (its versions are kept)\n"
                 "T is the tenant's id or name. Rules are checked with the limits of\n"
                 "EVENTOPS_ANALYTICS_* (eventops analytics --help); docs/analytics.md.\n");
}

/* The rule limits of cfg: the same as the analytics role's eo_analytics_rule_limits
 * (src/analytics/limits.c; a role may not include another role's header). */
static void rule_limits(eo_rule_limits_t *lim, const eo_config_t *cfg)
{
    *lim = (eo_rule_limits_t){
        .max_window_us = cfg->analytics_max_window_s * US_PER_S,
        .min_window_us = cfg->analytics_min_window_s * US_PER_S,
        .max_panes = cfg->analytics_max_panes,
        .max_groups = cfg->analytics_max_groups,
        .max_horizon_us = cfg->analytics_max_horizon_s * US_PER_S,
        .max_buckets = cfg->analytics_max_buckets,
        .max_rule_bytes = (size_t)cfg->analytics_max_rule_bytes,
    };
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **target = !strcmp(a, "--tenant") ? &o->tenant
                              : !strcmp(a, "--file") ? &o->file
                              : !strcmp(a, "--id")   ? &o->id
                                                     : NULL;
        if (target && i + 1 < argc) {
            *target = argv[++i];
        } else if (!strcmp(a, "--json")) {
            o->as_json = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (a[0] != '-' && !o->sub) {
            o->sub = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    static const char *const subs[] = {"list", "show", "create", "update", "delete"};
    bool known = false;
    for (size_t i = 0; o->sub && i < sizeof subs / sizeof subs[0]; i++)
        known = known || !strcmp(o->sub, subs[i]);
    bool wants_id = o->sub && strcmp(o->sub, "list") != 0 && strcmp(o->sub, "create") != 0;
    bool wants_file = o->sub && (!strcmp(o->sub, "create") || !strcmp(o->sub, "update"));
    if (!known || !o->tenant || wants_id != (o->id != NULL) || wants_file != (o->file != NULL)) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Reads the rule file (or stdin for "-") into out, at most max bytes. */
static int read_file(const char *path, size_t max, eo_buf_t *out, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return EO_EIO;
    }
    char chunk[4096];
    size_t n;
    int r = 0;
    while (r == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (eo_buf_append(out, chunk, n) < 0) {
            snprintf(err, errlen, "%s: longer than %zu bytes (EVENTOPS_ANALYTICS_MAX_RULE_BYTES)",
                     path, max);
            r = EO_ELIMIT;
        }
    if (r == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: cannot read", path);
        r = EO_EIO;
    }
    if (f != stdin)
        fclose(f);
    return r;
}

/* Parses the rule file into its canonical JSON (canon). Prints why on failure. */
static int canonical_rule(const opts_t *o, const eo_config_t *cfg, eo_buf_t *canon)
{
    eo_rule_limits_t lim;
    rule_limits(&lim, cfg);
    /* the parser's limit: never below EO_RULE_JSON_MAX */
    size_t max = lim.max_rule_bytes > EO_RULE_JSON_MAX ? lim.max_rule_bytes : EO_RULE_JSON_MAX;
    eo_buf_t text;
    eo_buf_init(&text, max);
    char err[512];
    int r = read_file(o->file, max, &text, err, sizeof err);
    if (r < 0) {
        eo_buf_done(&text);
        return eo_admin_fail(o->sub, err);
    }
    eo_rule_t rule;
    eo_event_error_t e;
    memset(&e, 0, sizeof e);
    if (eo_rule_parse(text.data ? text.data : "", text.len, &lim, &rule, &e) < 0) {
        eo_buf_done(&text);
        snprintf(err, sizeof err, "%s%s%s (%s)", e.field, e.field[0] ? ": " : "", e.message,
                 e.code);
        return eo_admin_fail(o->sub, err);
    }
    eo_buf_done(&text);
    if (eo_rule_to_json(&rule, canon) < 0)
        return eo_admin_fail(o->sub, "out of memory");
    return 0;
}

/* Prints one rule (row of id, version, definition, created_at). */
static void print_rule(const opts_t *o, const char *id, const char *version, const char *def,
                       const char *created_at)
{
    if (!o->as_json) {
        printf("rule %s version %s (%s)\n%s\n", id, version, created_at, def);
        return;
    }
    json_error_t je;
    json_t *rule = json_loads(def, 0, &je);
    eo_admin_print_json(json_pack("{s:s, s:I, s:o, s:s}", "id", id, "version",
                                  (json_int_t)strtoll(version, NULL, 10), "rule",
                                  rule ? rule : json_null(), "createdAt", created_at));
}

static int list_rules(PGconn *conn, const opts_t *o, const char *tenant_id)
{
    char err[512];
    const char *params[] = {tenant_id};
    PGresult *res;
    if (eo_pg_query(conn,
                    "SELECT rule_id, version, definition::text, " CREATED_AT
                    ", definition->>'name' FROM analytics_rules_current "
                    "WHERE tenant_id = $1::uuid AND NOT deleted ORDER BY rule_id",
                    1, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("list", err);
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        if (!o->as_json) {
            printf("%s  v%s  %s  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
            continue;
        }
        json_error_t je;
        json_t *rule = json_loads(PQgetvalue(res, i, 2), 0, &je);
        json_array_append_new(
            list, json_pack("{s:s, s:I, s:o, s:s}", "id", PQgetvalue(res, i, 0), "version",
                            (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10), "rule",
                            rule ? rule : json_null(), "createdAt", PQgetvalue(res, i, 3)));
    }
    PQclear(res);
    if (o->as_json)
        eo_admin_print_json(json_pack("{s:o}", "rules", list));
    else
        json_decref(list);
    return 0;
}

static int show_rule(PGconn *conn, const opts_t *o, const char *tenant_id, const char *id)
{
    char err[512];
    const char *params[] = {tenant_id, id};
    PGresult *res;
    if (eo_pg_query(conn,
                    "SELECT rule_id, version, definition::text, " CREATED_AT
                    " FROM analytics_rules_current WHERE tenant_id = $1::uuid "
                    "AND rule_id = $2::uuid AND NOT deleted",
                    2, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("show", err);
    int r = 0;
    if (PQntuples(res) != 1) {
        snprintf(err, sizeof err, "the tenant has no rule '%s'", id);
        r = eo_admin_fail("show", err);
    } else {
        print_rule(o, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                   PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    return r;
}

/* create, update and delete: one call of analytics_rule_write. */
static int write_rule(PGconn *conn, const opts_t *o, const eo_config_t *cfg, const char *tenant_id,
                      const char *given_id)
{
    bool create = !strcmp(o->sub, "create"), del = !strcmp(o->sub, "delete");
    char id[EO_UUID_STR], err[512];
    if (create) {
        uint8_t rnd[10];
        if (eo_random_bytes(rnd, sizeof rnd) < 0)
            return eo_admin_fail(o->sub, "no random bytes");
        eo_uuid7_gen_t gen = {0};
        eo_uuid7_next(&gen, eo_clock_now_us() / 1000, rnd, id);
    } else {
        snprintf(id, sizeof id, "%s", given_id);
    }
    eo_buf_t canon;
    eo_buf_init(&canon, (size_t)cfg->analytics_max_rule_bytes * 4 + 4096);
    if (!del) {
        int r = canonical_rule(o, cfg, &canon);
        if (r != 0) {
            eo_buf_done(&canon);
            return r;
        }
    }
    char max[24];
    snprintf(max, sizeof max, "%lld", (long long)cfg->analytics_max_rules_per_tenant);
    const char *params[] = {
        tenant_id, id, create ? "true" : "false", del ? NULL : canon.data, del ? "true" : "false",
        max};
    PGresult *res;
    int r = eo_pg_query(conn,
                        "SELECT status, version, " CREATED_AT " FROM "
                        "analytics_rule_write($1::uuid, $2::uuid, $3::boolean, $4::jsonb, "
                        "$5::boolean, $6::integer)",
                        6, params, &res, err, sizeof err);
    if (r < 0) {
        eo_buf_done(&canon);
        return eo_admin_fail(o->sub, err);
    }
    const char *status = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    if (!strcmp(status, "not_found")) {
        snprintf(err, sizeof err, "the tenant has no rule '%s'", id);
        r = eo_admin_fail(o->sub, err);
    } else if (!strcmp(status, "too_many_rules")) {
        snprintf(err, sizeof err,
                 "the tenant has %s rules, the most allowed "
                 "(EVENTOPS_ANALYTICS_MAX_RULES_PER_TENANT); delete one first",
                 max);
        r = eo_admin_fail(o->sub, err);
    } else if (del) {
        if (o->as_json)
            eo_admin_print_json(json_pack("{s:s, s:I, s:b}", "id", id, "version",
                                          (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                          "deleted", 1));
        else
            printf("rule %s deleted (version %s)\n", id, PQgetvalue(res, 0, 1));
    } else {
        print_rule(o, id, PQgetvalue(res, 0, 1), canon.data, PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    eo_buf_done(&canon);
    return r;
}

bool eo_admin_rules_command(const char *cmd)
{
    return !strcmp(cmd, "rules");
}

int eo_admin_rules_main(int argc, char **argv)
{
    opts_t o;
    int r = parse_opts(argc, argv, &o);
    if (r != 0)
        return r == 1 ? 0 : r;
    char id[EO_UUID_STR] = "";
    if (o.id) {
        size_t n = strlen(o.id);
        for (size_t i = 0; i < n && n < sizeof id; i++)
            id[i] = (char)((o.id[i] >= 'A' && o.id[i] <= 'F') ? o.id[i] - 'A' + 'a' : o.id[i]);
        if (n != 36 || !eo_uuid_valid(id, n)) {
            eo_ignore(eo_admin_fail(o.sub, "--id: a rule id (a UUID)"));
            return 2;
        }
    }
    eo_config_t cfg;
    char err[512], tenant_id[37];
    if (eo_config_load(&cfg, err, sizeof err) < 0)
        return eo_admin_fail("configuration", err);
    PGconn *conn;
    if (eo_pg_connect(cfg.pg_dsn, &conn, err, sizeof err) < 0)
        return eo_admin_fail("database", err);
    if (eo_admin_resolve_tenant(conn, o.tenant, tenant_id, err, sizeof err) < 0)
        r = eo_admin_fail(o.sub, err);
    else if (!strcmp(o.sub, "list"))
        r = list_rules(conn, &o, tenant_id);
    else if (!strcmp(o.sub, "show"))
        r = show_rule(conn, &o, tenant_id, id);
    else
        r = write_rule(conn, &o, &cfg, tenant_id, id);
    PQfinish(conn);
    return r;
}
