/* `eventops admin` subcommands: create-tenant, create-write-key, revoke-write-key,
 * list-tenants, create-topics (and those of admin_auth.c and admin_rules.c). Each prints text,
 * or one JSON object with --json. Runs on the main thread. */
#include "admin/admin.h"
#include "admin/admin_internal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/kafka.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/writekey.h"
#include "domain/record.h"

void eo_admin_usage(FILE *out)
{
    fprintf(out, "usage: eventops admin COMMAND [--json]\n"
                 "  create-tenant NAME          create a tenant and its first write key\n"
                 "  create-write-key TENANT     new write key for a tenant (id or name)\n"
                 "  revoke-write-key KEY_ID     revoke a write key (wk_...)\n"
                 "  list-tenants                tenants with their active write keys\n"
                 "  create-topics [--partitions N] [--replication R]\n"
                 "                              create the events, dead-letter and analytics\n"
                 "                              topics when missing (defaults: 6 partitions,\n"
                 "                              replication 1)\n"
                 "  create-client --tenant T --scopes events:write,events:read [--name N]\n"
                 "                [--rate R --burst B]\n"
                 "                              OAuth client; prints its id and secret once\n"
                 "                              (scopes: events:write, events:read,\n"
                 "                              analytics:write)\n"
                 "  revoke-client CLIENT_ID     revoke a client (its tokens stop working)\n"
                 "  rotate-client-secret CLIENT_ID\n"
                 "                              new secret, shown once; the old one stops\n"
                 "  list-clients [--tenant T]   clients with scopes and limits\n"
                 "  set-rate-limit (--client ID | --write-key KEY_ID) (--rate R --burst B |\n"
                 "                 --default)   per-credential rate limit (requests/s, burst)\n"
                 "  create-signing-key [--dir D] new token signing key (D defaults to\n"
                 "                              EVENTOPS_AUTH_KEY_DIR); becomes the current one\n"
                 "  list-signing-keys [--dir D]  keys published in the JWKS\n"
                 "  delete-signing-key --kid K [--dir D]\n"
                 "                              withdraw a key: its tokens stop working\n"
                 "  backfill [--all]            compute the user sets and timelines (ADR-22,\n"
                 "                              ADR-23) of the events stored before them, now\n"
                 "                              (processors also do it in the background);\n"
                 "                              --all: recompute every day\n"
                 "  track-property --tenant T --path P [--cap N]\n"
                 "                              answer breakdowns by P from property rollups\n"
                 "                              (ADR-24); at most N values (default\n"
                 "                              EVENTOPS_PROPERTY_VALUE_CAP) by name, the rest\n"
                 "                              as overflow; a new cap rebuilds the counts\n"
                 "  untrack-property --tenant T --path P\n"
                 "                              stop, and delete the path's counts\n"
                 "  list-tracked-properties [--tenant T]\n"
                 "                              tracked paths, caps, values named, state\n"
                 "  rules list|show|create|update|delete --tenant T [--file F | --id ID]\n"
                 "                              a tenant's analytics rules (rules --help)\n"
                 "The write key is printed once; only its hash is stored.\n");
}

int eo_admin_fail(const char *what, const char *err)
{
    fprintf(stderr, "eventops admin: %s: %s\n", what, err);
    return 1;
}

void eo_admin_print_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(obj);
}

/* Inserts a new write key for tenant_id; fills key_id and key. */
static int insert_key(PGconn *conn, const char *tenant_id, char key_id[EO_WRITE_KEY_ID_LEN + 1],
                      char key[EO_WRITE_KEY_LEN + 1], char *err, size_t errlen)
{
    int r = eo_write_key_generate(key_id, key);
    if (r < 0) {
        snprintf(err, errlen, "no random bytes");
        return r;
    }
    uint8_t hash[32];
    eo_write_key_hash(key, strlen(key), hash);
    char hex[2 + 64 + 1] = "\\x";
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 + 2 * i, 3, "%02x", hash[i]);
    const char *params[] = {key_id, tenant_id, hex};
    PGresult *res;
    r = eo_pg_query(conn,
                    "INSERT INTO write_keys (key_id, tenant_id, key_hash) VALUES ($1, $2, $3)", 3,
                    params, &res, err, errlen);
    PQclear(res);
    return r;
}

/* Resolves a tenant given by id or by name; fills tenant_id. */
int eo_admin_resolve_tenant(PGconn *conn, const char *arg, char tenant_id[37], char *err,
                            size_t errlen)
{
    const char *params[] = {arg};
    PGresult *res;
    const char *sql = eo_uuid_valid(arg, strlen(arg))
                          ? "SELECT tenant_id FROM tenants WHERE tenant_id = $1::uuid"
                          : "SELECT tenant_id FROM tenants WHERE name = $1";
    int r = eo_pg_query(conn, sql, 1, params, &res, err, errlen);
    if (r < 0)
        return r;
    if (PQntuples(res) != 1) {
        snprintf(err, errlen, "no tenant with id or name '%s'", arg);
        PQclear(res);
        return EO_ENOTFOUND;
    }
    snprintf(tenant_id, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static int create_tenant(PGconn *conn, const char *name, bool as_json)
{
    char err[512];
    if (eo_pg_exec(conn, "BEGIN", err, sizeof err) < 0)
        return eo_admin_fail("create-tenant", err);
    const char *params[] = {name};
    PGresult *res;
    if (eo_pg_query(conn, "INSERT INTO tenants (name) VALUES ($1) RETURNING tenant_id", 1, params,
                    &res, err, sizeof err) < 0)
        return eo_admin_fail("create-tenant", err);
    char tenant_id[37];
    snprintf(tenant_id, sizeof tenant_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    char key_id[EO_WRITE_KEY_ID_LEN + 1], key[EO_WRITE_KEY_LEN + 1];
    if (insert_key(conn, tenant_id, key_id, key, err, sizeof err) < 0 ||
        eo_pg_exec(conn, "COMMIT", err, sizeof err) < 0)
        return eo_admin_fail("create-tenant", err);
    if (as_json)
        eo_admin_print_json(json_pack("{s:s, s:s, s:s, s:s}", "tenantId", tenant_id, "name", name,
                                      "writeKeyId", key_id, "writeKey", key));
    else
        printf("tenant %s (%s)\nwrite key %s: %s\n(shown once: store it now)\n", name, tenant_id,
               key_id, key);
    return 0;
}

static int create_write_key(PGconn *conn, const char *tenant, bool as_json)
{
    char err[512], tenant_id[37];
    char key_id[EO_WRITE_KEY_ID_LEN + 1], key[EO_WRITE_KEY_LEN + 1];
    if (eo_admin_resolve_tenant(conn, tenant, tenant_id, err, sizeof err) < 0 ||
        insert_key(conn, tenant_id, key_id, key, err, sizeof err) < 0)
        return eo_admin_fail("create-write-key", err);
    if (as_json)
        eo_admin_print_json(json_pack("{s:s, s:s, s:s}", "tenantId", tenant_id, "writeKeyId",
                                      key_id, "writeKey", key));
    else
        printf("write key %s for tenant %s: %s\n(shown once: store it now)\n", key_id, tenant_id,
               key);
    return 0;
}

static int revoke_write_key(PGconn *conn, const char *key_id, bool as_json)
{
    char err[512];
    const char *params[] = {key_id};
    PGresult *res;
    if (eo_pg_query(conn,
                    "UPDATE write_keys SET revoked_at = coalesce(revoked_at, now()) "
                    "WHERE key_id = $1 RETURNING tenant_id",
                    1, params, &res, err, sizeof err) < 0)
        return eo_admin_fail("revoke-write-key", err);
    int found = PQntuples(res);
    PQclear(res);
    if (!found) {
        snprintf(err, sizeof err, "no write key '%s'", key_id);
        return eo_admin_fail("revoke-write-key", err);
    }
    if (as_json)
        eo_admin_print_json(json_pack("{s:s, s:b}", "writeKeyId", key_id, "revoked", 1));
    else
        printf("write key %s revoked\n", key_id);
    return 0;
}

static int list_tenants(PGconn *conn, bool as_json)
{
    char err[512];
    PGresult *res;
    if (eo_pg_query(conn,
                    "SELECT t.tenant_id, t.name, "
                    " to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                    " coalesce(string_agg(k.key_id, ',' ORDER BY k.key_id), '') "
                    "FROM tenants t LEFT JOIN write_keys k "
                    " ON k.tenant_id = t.tenant_id AND k.revoked_at IS NULL "
                    "GROUP BY t.tenant_id ORDER BY t.created_at, t.name",
                    0, NULL, &res, err, sizeof err) < 0)
        return eo_admin_fail("list-tenants", err);
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *keys = json_array();
        char *ids = PQgetvalue(res, i, 3);
        for (char *p = ids; *p;) {
            size_t n = strcspn(p, ",");
            json_array_append_new(keys, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        if (as_json)
            json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o}", "tenantId",
                                                  PQgetvalue(res, i, 0), "name",
                                                  PQgetvalue(res, i, 1), "createdAt",
                                                  PQgetvalue(res, i, 2), "writeKeyIds", keys));
        else {
            printf("%s  %-24s  %s  keys: %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 2), *ids ? ids : "-");
            json_decref(keys);
        }
    }
    PQclear(res);
    if (as_json)
        eo_admin_print_json(json_pack("{s:o}", "tenants", list));
    else
        json_decref(list);
    return 0;
}

/* Creates, unless they exist, the events topic (partitions), the dead-letter topic (half as
 * many, at least 1), and the analytics role's: its windows, late-events and state changelog
 * topics with as many partitions as the events topic (the changelog's partition i holds the
 * state of input partition i; compacted), and the summaries topic (half as many). */
static int create_topics(const eo_config_t *cfg, int partitions, int replication, bool as_json)
{
    char err[512];
    rd_kafka_conf_t *conf = eo_kafka_conf_new(cfg->kafka_brokers, err, sizeof err);
    if (!conf)
        return eo_admin_fail("create-topics", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return eo_admin_fail("create-topics", err);
    }
    int half = partitions / 2 > 0 ? partitions / 2 : 1;
    const struct {
        const char *name;
        int partitions;
        const char *retention_ms; /* NULL: compacted, kept until replaced */
    } want[] = {
        {cfg->events_topic, partitions, "604800000"},
        {cfg->dlq_topic, half, "2592000000"},
        {cfg->analytics_summaries_topic, half, "2592000000"},
        {cfg->analytics_windows_topic, partitions, "604800000"},
        {cfg->analytics_late_topic, partitions, "2592000000"},
        {cfg->analytics_changelog_topic, partitions, NULL},
    };
    enum { NTOPICS = sizeof want / sizeof want[0] };
    rd_kafka_NewTopic_t *topics[NTOPICS];
    for (int i = 0; i < NTOPICS; i++) {
        topics[i] =
            rd_kafka_NewTopic_new(want[i].name, want[i].partitions, replication, err, sizeof err);
        if (!topics[i])
            return eo_admin_fail("create-topics", err);
        rd_kafka_NewTopic_set_config(topics[i], "min.insync.replicas", replication > 1 ? "2" : "1");
        if (want[i].retention_ms)
            rd_kafka_NewTopic_set_config(topics[i], "retention.ms", want[i].retention_ms);
        else
            rd_kafka_NewTopic_set_config(topics[i], "cleanup.policy", "compact");
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics, NTOPICS, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int r = 0;
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!res) {
        r = eo_admin_fail("create-topics",
                          ev ? rd_kafka_event_error_string(ev) : "no answer from Kafka");
    } else {
        size_t n;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        json_t *out = json_object();
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            const char *state = e == RD_KAFKA_RESP_ERR_NO_ERROR               ? "created"
                                : e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? "exists"
                                                                              : NULL;
            if (!state) {
                r = eo_admin_fail(rd_kafka_topic_result_name(tr[i]),
                                  rd_kafka_topic_result_error_string(tr[i]));
                continue;
            }
            json_object_set_new(out, rd_kafka_topic_result_name(tr[i]), json_string(state));
            if (!as_json)
                printf("topic %s: %s\n", rd_kafka_topic_result_name(tr[i]), state);
        }
        if (as_json && r == 0)
            eo_admin_print_json(out);
        else
            json_decref(out);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(topics, NTOPICS);
    rd_kafka_destroy(rk);
    return r;
}

static int parse_count(const char *s, int max, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > max)
        return EO_EINVAL;
    *out = (int)v;
    return 0;
}

int eo_admin_main(int argc, char **argv)
{
    if (argc > 1 && eo_admin_auth_command(argv[1]))
        return eo_admin_auth_main(argc, argv);
    if (argc > 1 && eo_admin_props_command(argv[1]))
        return eo_admin_props_main(argc, argv);
    if (argc > 1 && eo_admin_rules_command(argv[1]))
        return eo_admin_rules_main(argc, argv);
    int partitions = 6, replication = 1;
    bool as_json = false;
    const char *args[3] = {NULL, NULL, NULL};
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = true;
        else if (!strcmp(argv[i], "--partitions") && i + 1 < argc) {
            if (parse_count(argv[++i], 10000, &partitions) < 0)
                return eo_admin_fail("--partitions", "must be an integer from 1 to 10000");
        } else if (!strcmp(argv[i], "--replication") && i + 1 < argc) {
            if (parse_count(argv[++i], 100, &replication) < 0)
                return eo_admin_fail("--replication", "must be an integer from 1 to 100");
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            eo_admin_usage(stdout);
            return 0;
        } else if (nargs < 3)
            args[nargs++] = argv[i];
        else {
            eo_admin_usage(stderr);
            return 2;
        }
    }
    const char *cmd = args[0];
    bool needs_arg = cmd && strcmp(cmd, "list-tenants") != 0 && strcmp(cmd, "create-topics") != 0;
    if (!cmd || (needs_arg && nargs != 2) || (!needs_arg && nargs != 1)) {
        eo_admin_usage(stderr);
        return 2;
    }
    eo_config_t cfg;
    char err[512];
    if (eo_config_load(&cfg, err, sizeof err) < 0)
        return eo_admin_fail("configuration", err);
    if (!strcmp(cmd, "create-topics"))
        return create_topics(&cfg, partitions, replication, as_json);
    PGconn *conn;
    if (eo_pg_connect(cfg.pg_dsn, &conn, err, sizeof err) < 0)
        return eo_admin_fail("database", err);
    int r;
    if (!strcmp(cmd, "create-tenant"))
        r = create_tenant(conn, args[1], as_json);
    else if (!strcmp(cmd, "create-write-key"))
        r = create_write_key(conn, args[1], as_json);
    else if (!strcmp(cmd, "revoke-write-key"))
        r = revoke_write_key(conn, args[1], as_json);
    else if (!strcmp(cmd, "list-tenants"))
        r = list_tenants(conn, as_json);
    else {
        eo_admin_usage(stderr);
        r = 2;
    }
    PQfinish(conn);
    return r;
}
