/* `eventops admin` commands for OAuth clients, per-credential rate limits and token signing
 * keys. Runs on the main thread; prints text, or JSON with --json. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "access/keystore.h"
#include "access/secret.h"
#include "core/config.h"
#include "core/error.h"
#include "core/pg.h"

static const char *const commands[] = {
    "create-client",  "revoke-client",      "rotate-client-secret", "list-clients",
    "set-rate-limit", "create-signing-key", "list-signing-keys",    "delete-signing-key"};

bool eo_admin_auth_command(const char *cmd)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i]))
            return true;
    return false;
}

typedef struct {
    const char *cmd, *arg; /* the command and its one positional argument */
    const char *dir, *kid, *tenant, *scopes, *name, *client, *write_key;
    long rate, burst; /* 0: not given */
    bool as_json, use_default;
} opts_t;

static int parse_positive(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 100000000)
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char **target = !strcmp(a, "--dir")         ? &o->dir
                              : !strcmp(a, "--kid")       ? &o->kid
                              : !strcmp(a, "--tenant")    ? &o->tenant
                              : !strcmp(a, "--scopes")    ? &o->scopes
                              : !strcmp(a, "--name")      ? &o->name
                              : !strcmp(a, "--client")    ? &o->client
                              : !strcmp(a, "--write-key") ? &o->write_key
                                                          : NULL;
        if (target && i + 1 < argc) {
            *target = argv[++i];
        } else if ((!strcmp(a, "--rate") || !strcmp(a, "--burst")) && i + 1 < argc) {
            if (parse_positive(argv[++i], a[2] == 'r' ? &o->rate : &o->burst) < 0)
                return eo_admin_fail(a, "must be an integer from 1 to 100000000");
        } else if (!strcmp(a, "--json")) {
            o->as_json = true;
        } else if (!strcmp(a, "--default")) {
            o->use_default = true;
        } else if (a[0] != '-' && !o->arg) {
            o->arg = a;
        } else {
            eo_admin_usage(stderr);
            return 2;
        }
    }
    if ((o->rate > 0) != (o->burst > 0))
        return eo_admin_fail(o->cmd, "--rate and --burst go together");
    return 0;
}

/* Checks a comma-separated scope list and writes it as a PostgreSQL array literal. */
static int scopes_literal(const char *list, char *out, size_t cap, json_t *names)
{
    size_t o = 0;
    out[o++] = '{';
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        bool known = (n == 12 && !strncmp(p, "events:write", n)) ||
                     (n == 11 && !strncmp(p, "events:read", n)) ||
                     (n == 15 && !strncmp(p, "analytics:write", n));
        if (!known || o + n + 3 > cap)
            return -1;
        if (o > 1)
            out[o++] = ',';
        memcpy(out + o, p, n);
        o += n;
        json_array_append_new(names, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    if (o == 1)
        return -1;
    out[o++] = '}';
    out[o] = '\0';
    return 0;
}

static int create_client(PGconn *conn, const opts_t *o)
{
    char err[512], tenant_id[37];
    if (!o->tenant || !o->scopes)
        return eo_admin_fail("create-client", "--tenant and --scopes are required");
    json_t *names = json_array();
    char scopes[128];
    if (scopes_literal(o->scopes, scopes, sizeof scopes, names) < 0) {
        json_decref(names);
        eo_ignore(eo_admin_fail("create-client",
                                "--scopes: a comma-separated list of events:write, events:read, "
                                "analytics:write"));
        return 2;
    }
    if (eo_admin_resolve_tenant(conn, o->tenant, tenant_id, err, sizeof err) < 0) {
        json_decref(names);
        return eo_admin_fail("create-client", err);
    }
    char id[EO_CLIENT_ID_LEN + 1], secret[EO_CLIENT_SECRET_LEN + 1], hash[EO_SECRET_HASH_MAX];
    if (eo_client_generate(id, secret) < 0 || eo_secret_hash(secret, strlen(secret), hash) < 0) {
        json_decref(names);
        return eo_admin_fail("create-client", "cannot create a secret");
    }
    char rate[24] = "", burst[24] = "";
    if (o->rate) {
        snprintf(rate, sizeof rate, "%ld", o->rate);
        snprintf(burst, sizeof burst, "%ld", o->burst);
    }
    const char *params[] = {id,
                            tenant_id,
                            o->name ? o->name : "",
                            hash,
                            scopes,
                            o->rate ? rate : NULL,
                            o->rate ? burst : NULL};
    PGresult *res;
    if (eo_pg_query(conn,
                    "INSERT INTO oauth_clients (client_id, tenant_id, name, secret_hash, scopes, "
                    "rate_limit, burst) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    7, params, &res, err, sizeof err) < 0) {
        json_decref(names);
        return eo_admin_fail("create-client", err);
    }
    PQclear(res);
    if (o->as_json) {
        eo_admin_print_json(json_pack("{s:s, s:s, s:s, s:o}", "clientId", id, "clientSecret",
                                      secret, "tenantId", tenant_id, "scopes", names));
    } else {
        printf("client %s for tenant %s, scopes %s\nsecret: %s\n(shown once: store it now)\n", id,
               tenant_id, o->scopes, secret);
        json_decref(names);
    }
    return 0;
}

static int revoke_client(PGconn *conn, const opts_t *o)
{
    char err[512];
    const char *id = o->arg ? o->arg : o->client;
    if (!id)
        return eo_admin_fail("revoke-client", "which client? (revoke-client CLIENT_ID)");
    const char *params[] = {id};
    PGresult *res;
    if (eo_pg_query(conn,
                    "UPDATE oauth_clients SET revoked_at = coalesce(revoked_at, now()) "
                    "WHERE client_id = $1 RETURNING 1",
                    1, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("revoke-client", err);
    int found = PQntuples(res);
    PQclear(res);
    if (!found) {
        snprintf(err, sizeof err, "no client '%s'", id);
        return eo_admin_fail("revoke-client", err);
    }
    if (o->as_json)
        eo_admin_print_json(json_pack("{s:s, s:b}", "clientId", id, "revoked", 1));
    else
        printf("client %s revoked\n", id);
    return 0;
}

/* A new secret for an existing, active client; the old one stops working at once (tokens
 * already issued stay valid until they expire). */
static int rotate_client_secret(PGconn *conn, const opts_t *o)
{
    char err[512];
    const char *id = o->arg ? o->arg : o->client;
    if (!id)
        return eo_admin_fail("rotate-client-secret", "which client? (rotate-client-secret ID)");
    char unused[EO_CLIENT_ID_LEN + 1], secret[EO_CLIENT_SECRET_LEN + 1], hash[EO_SECRET_HASH_MAX];
    if (eo_client_generate(unused, secret) < 0 || eo_secret_hash(secret, strlen(secret), hash) < 0)
        return eo_admin_fail("rotate-client-secret", "cannot create a secret");
    const char *params[] = {id, hash};
    PGresult *res;
    if (eo_pg_query(conn,
                    "UPDATE oauth_clients SET secret_hash = $2 "
                    "WHERE client_id = $1 AND revoked_at IS NULL RETURNING 1",
                    2, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("rotate-client-secret", err);
    int found = PQntuples(res);
    PQclear(res);
    if (!found) {
        snprintf(err, sizeof err, "no active client '%s'", id);
        return eo_admin_fail("rotate-client-secret", err);
    }
    if (o->as_json)
        eo_admin_print_json(json_pack("{s:s, s:s}", "clientId", id, "clientSecret", secret));
    else
        printf("client %s: new secret %s\n(shown once: store it now; the old one no longer "
               "works)\n",
               id, secret);
    return 0;
}

static json_t *int_or_null(const char *s)
{
    return *s ? json_integer(strtoll(s, NULL, 10)) : json_null();
}

static int list_clients(PGconn *conn, const opts_t *o)
{
    char err[512], tenant_id[37] = "";
    if (o->tenant && eo_admin_resolve_tenant(conn, o->tenant, tenant_id, err, sizeof err) < 0)
        return eo_admin_fail("list-clients", err);
    const char *params[] = {tenant_id[0] ? tenant_id : NULL};
    PGresult *res;
    if (eo_pg_query(conn,
                    "SELECT client_id, tenant_id, name, array_to_string(scopes, ','), "
                    " coalesce(rate_limit::text, ''), coalesce(burst::text, ''),"
                    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                    " coalesce(to_char(revoked_at AT TIME ZONE 'UTC', "
                    "  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
                    "FROM oauth_clients WHERE $1::uuid IS NULL OR tenant_id = $1::uuid "
                    "ORDER BY created_at, client_id",
                    1, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("list-clients", err);
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *scopes = PQgetvalue(res, i, 3), *revoked = PQgetvalue(res, i, 7);
        if (!o->as_json) {
            printf("%s  tenant %s  scopes %s  limit %s/%s  %s\n", PQgetvalue(res, i, 0),
                   PQgetvalue(res, i, 1), scopes,
                   *PQgetvalue(res, i, 4) ? PQgetvalue(res, i, 4) : "default",
                   *PQgetvalue(res, i, 5) ? PQgetvalue(res, i, 5) : "default",
                   *revoked ? "revoked" : "active");
            continue;
        }
        json_t *names = json_array();
        for (const char *p = scopes; *p;) {
            size_t n = strcspn(p, ",");
            json_array_append_new(names, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o}", "clientId", PQgetvalue(res, i, 0),
                      "tenantId", PQgetvalue(res, i, 1), "name", PQgetvalue(res, i, 2), "scopes",
                      names, "rateLimit", int_or_null(PQgetvalue(res, i, 4)), "burst",
                      int_or_null(PQgetvalue(res, i, 5)), "createdAt", PQgetvalue(res, i, 6),
                      "revokedAt", *revoked ? json_string(revoked) : json_null()));
    }
    PQclear(res);
    if (o->as_json)
        eo_admin_print_json(list);
    else
        json_decref(list);
    return 0;
}

static int set_rate_limit(PGconn *conn, const opts_t *o)
{
    char err[512];
    if ((o->client != NULL) == (o->write_key != NULL) || (o->rate > 0) == o->use_default)
        return eo_admin_fail("set-rate-limit", "give --client ID or --write-key KEY_ID, and "
                                               "--rate R --burst B or --default");
    char rate[24], burst[24];
    snprintf(rate, sizeof rate, "%ld", o->rate);
    snprintf(burst, sizeof burst, "%ld", o->burst);
    const char *params[] = {o->client ? o->client : o->write_key, o->rate ? rate : NULL,
                            o->rate ? burst : NULL};
    PGresult *res;
    if (eo_pg_query(conn,
                    o->client ? "UPDATE oauth_clients SET rate_limit = $2, burst = $3 "
                                "WHERE client_id = $1 RETURNING 1"
                              : "UPDATE write_keys SET rate_limit = $2, burst = $3 "
                                "WHERE key_id = $1 RETURNING 1",
                    3, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("set-rate-limit", err);
    int found = PQntuples(res);
    PQclear(res);
    if (!found) {
        snprintf(err, sizeof err, "no %s '%s'", o->client ? "client" : "write key", params[0]);
        return eo_admin_fail("set-rate-limit", err);
    }
    if (o->as_json)
        eo_admin_print_json(json_pack("{s:s, s:o, s:o}", o->client ? "clientId" : "writeKeyId",
                                      params[0], "rateLimit",
                                      o->rate ? json_integer(o->rate) : json_null(), "burst",
                                      o->rate ? json_integer(o->burst) : json_null()));
    else if (o->rate)
        printf("%s: %ld requests/s, burst %ld\n", params[0], o->rate, o->burst);
    else
        printf("%s: default limits\n", params[0]);
    return 0;
}

static int signing_keys(const opts_t *o, const char *default_dir)
{
    char err[512];
    const char *dir = o->dir ? o->dir : default_dir;
    if (!dir || !*dir)
        return eo_admin_fail(o->cmd, "no key folder: pass --dir or set EVENTOPS_AUTH_KEY_DIR");
    if (!strcmp(o->cmd, "create-signing-key")) {
        char kid[EO_JWT_KID_MAX + 1], path[4096];
        if (eo_keydir_create(dir, kid, path, sizeof path, err, sizeof err) < 0)
            return eo_admin_fail(o->cmd, err);
        if (o->as_json)
            eo_admin_print_json(
                json_pack("{s:s, s:s, s:s}", "kid", kid, "path", path, "algorithm", "EdDSA"));
        else
            printf("signing key %s written to %s (it signs new tokens once the auth role "
                   "reloads its keys)\n",
                   kid, path);
        return 0;
    }
    if (!strcmp(o->cmd, "delete-signing-key")) {
        const char *kid = o->kid ? o->kid : o->arg;
        if (!kid)
            return eo_admin_fail(o->cmd, "which key? (--kid KID)");
        if (eo_keydir_delete(dir, kid, err, sizeof err) < 0)
            return eo_admin_fail(o->cmd, err);
        if (o->as_json)
            eo_admin_print_json(json_pack("{s:s, s:b}", "kid", kid, "deleted", 1));
        else
            printf("signing key %s withdrawn\n", kid);
        return 0;
    }
    eo_jwt_keyset_t *set;
    if (eo_keydir_load(dir, &set, err, sizeof err) < 0)
        return eo_admin_fail(o->cmd, err);
    json_t *list = json_array();
    size_t n = eo_jwt_keyset_count(set);
    for (size_t i = 0; i < n; i++) {
        if (o->as_json)
            json_array_append_new(list, json_pack("{s:s, s:b}", "kid", eo_jwt_keyset_kid(set, i),
                                                  "current", i == n - 1));
        else
            printf("%s%s\n", eo_jwt_keyset_kid(set, i), i == n - 1 ? "  (current)" : "");
    }
    eo_jwt_keyset_unref(set);
    if (o->as_json)
        eo_admin_print_json(list);
    else
        json_decref(list);
    return 0;
}

int eo_admin_auth_main(int argc, char **argv)
{
    opts_t o;
    int r = parse_opts(argc, argv, &o);
    if (r != 0)
        return r;
    eo_config_t cfg;
    char err[512];
    if (eo_config_load(&cfg, err, sizeof err) < 0)
        return eo_admin_fail("configuration", err);
    if (strstr(o.cmd, "signing-key"))
        return signing_keys(&o, cfg.auth_key_dir);
    PGconn *conn;
    if (eo_pg_connect(cfg.pg_dsn, &conn, err, sizeof err) < 0)
        return eo_admin_fail("database", err);
    if (!strcmp(o.cmd, "create-client"))
        r = create_client(conn, &o);
    else if (!strcmp(o.cmd, "revoke-client"))
        r = revoke_client(conn, &o);
    else if (!strcmp(o.cmd, "rotate-client-secret"))
        r = rotate_client_secret(conn, &o);
    else if (!strcmp(o.cmd, "list-clients"))
        r = list_clients(conn, &o);
    else
        r = set_rate_limit(conn, &o);
    PQfinish(conn);
    return r;
}
