/* Integration test helpers (see itest.h). */
#include "itest.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migrate/migrate.h"

const char *it_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

const char *it_pg_dsn(void)
{
    return it_env("EVENTOPS_PG_DSN", "host=127.0.0.1 port=55432 user=eventops dbname=eventops");
}

const char *it_kafka_brokers(void)
{
    return it_env("EVENTOPS_KAFKA_BROKERS", "127.0.0.1:59092");
}

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_unique_name(const char *prefix, char *out, size_t outlen)
{
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)time(NULL) ^ (uint32_t)clock();
    snprintf(out, outlen, "%s_%ld_%08" PRIx32, prefix, (long)getpid(), rnd);
}

/* Appends s to out as a single-quoted conninfo value. */
static int append_quoted(char *out, size_t outlen, size_t *pos, const char *s)
{
    if (*pos + 1 >= outlen)
        return -1;
    out[(*pos)++] = '\'';
    for (; *s; s++) {
        if (*pos + 3 >= outlen)
            return -1;
        if (*s == '\'' || *s == '\\')
            out[(*pos)++] = '\\';
        out[(*pos)++] = *s;
    }
    out[(*pos)++] = '\'';
    out[*pos] = '\0';
    return 0;
}

int it_dsn_with_dbname(const char *base_dsn, const char *dbname, char *out, size_t outlen)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base_dsn, &errmsg);
    if (!opts) {
        fprintf(stderr, "itest: cannot parse DSN: %s\n", errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return -1;
    }
    size_t pos = 0;
    out[0] = '\0';
    int r = 0;
    bool have_db = false;
    for (PQconninfoOption *o = opts; o->keyword && r == 0; o++) {
        const char *val = o->val;
        if (!strcmp(o->keyword, "dbname")) {
            val = dbname;
            have_db = true;
        }
        if (!val)
            continue;
        int n = snprintf(out + pos, outlen - pos, "%s%s=", pos ? " " : "", o->keyword);
        if (n < 0 || (size_t)n >= outlen - pos) {
            r = -1;
            break;
        }
        pos += (size_t)n;
        r = append_quoted(out, outlen, &pos, val);
    }
    PQconninfoFree(opts);
    if (r == 0 && !have_db) {
        int n = snprintf(out + pos, outlen - pos, "%sdbname=", pos ? " " : "");
        if (n < 0 || (size_t)n >= outlen - pos)
            return -1;
        pos += (size_t)n;
        r = append_quoted(out, outlen, &pos, dbname);
    }
    return r;
}

static PGconn *connect_utc(const char *dsn)
{
    PGconn *conn = PQconnectdb(dsn);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "itest: cannot connect: %s\n", conn ? PQerrorMessage(conn) : "no memory");
        PQfinish(conn);
        return NULL;
    }
    PGresult *res = PQexec(conn, "SET client_min_messages = warning; SET TimeZone = 'UTC'");
    PQclear(res);
    return conn;
}

/* Runs sql on dsn; returns the last result (caller clears) or NULL after logging. */
static PGresult *run(const char *dsn, const char *sql)
{
    PGconn *conn = connect_utc(dsn);
    if (!conn)
        return NULL;
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "itest: SQL failed: %s\n  in: %s\n", PQerrorMessage(conn), sql);
        PQclear(res);
        res = NULL;
    }
    PQfinish(conn);
    return res;
}

int64_t it_pg_int(const char *dsn, const char *sql)
{
    PGresult *res = run(dsn, sql);
    if (!res)
        return INT64_MIN;
    int64_t v = INT64_MIN;
    if (PQntuples(res) >= 1 && PQnfields(res) >= 1 && !PQgetisnull(res, 0, 0)) {
        const char *s = PQgetvalue(res, 0, 0);
        char *end;
        long long n = strtoll(s, &end, 10);
        if (end != s && *end == '\0')
            v = n;
        else if (!strcmp(s, "t") || !strcmp(s, "f"))
            v = s[0] == 't';
        else
            fprintf(stderr, "itest: not an integer: '%s'\n  in: %s\n", s, sql);
    } else {
        fprintf(stderr, "itest: no value\n  in: %s\n", sql);
    }
    PQclear(res);
    return v;
}

int it_pg_exec(const char *dsn, const char *sql)
{
    PGresult *res = run(dsn, sql);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int it_pg_text(const char *dsn, const char *sql, char *out, size_t outlen)
{
    PGresult *res = run(dsn, sql);
    if (!res)
        return -1;
    int r = -1;
    if (PQntuples(res) >= 1 && PQnfields(res) >= 1 && !PQgetisnull(res, 0, 0)) {
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
        r = 0;
    }
    PQclear(res);
    return r;
}

int it_insert_tenant(const char *dsn, const char *name, char out[37])
{
    char sql[256];
    int n = snprintf(sql, sizeof sql,
                     "INSERT INTO tenants (name) VALUES ('%s') RETURNING tenant_id", name);
    if (n < 0 || (size_t)n >= sizeof sql || strchr(name, '\''))
        return -1;
    return it_pg_text(dsn, sql, out, 37);
}

int it_db_create(const char *prefix, it_db_t *db)
{
    memset(db, 0, sizeof *db);
    char name[IT_NAME_MAX];
    it_unique_name(prefix, name, sizeof name);
    char dsn[IT_DSN_MAX];
    if (it_dsn_with_dbname(it_pg_dsn(), name, dsn, sizeof dsn) < 0)
        return -1;
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
    if (it_pg_exec(it_pg_dsn(), sql) < 0)
        return -1;
    memcpy(db->name, name, sizeof name);
    memcpy(db->dsn, dsn, sizeof dsn);
    return 0;
}

void it_db_drop(it_db_t *db)
{
    if (!db || !db->name[0])
        return;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db->name);
    if (it_pg_exec(it_pg_dsn(), sql) < 0)
        fprintf(stderr, "itest: could not drop database %s\n", db->name);
    db->name[0] = '\0';
}

int it_db_migrate(const char *dsn, int *applied)
{
    char err[512] = "";
    int r = eo_migrate_run(dsn, applied, err, sizeof err);
    if (r < 0)
        fprintf(stderr, "itest: migration failed: %s\n", err);
    return r;
}

static rd_kafka_t *admin_client(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", it_kafka_brokers(), err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "itest: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "itest: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return rk; /* conf is now owned by rk */
}

/* True when the topic's metadata lists `partitions` partitions, each with a leader. */
static bool topic_ready(rd_kafka_t *rk, const char *name, int partitions)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
    if (!rkt)
        return false;
    const struct rd_kafka_metadata *md = NULL;
    bool ok = false;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < md->topic_cnt; i++) {
            const rd_kafka_metadata_topic_t *t = &md->topics[i];
            if (strcmp(t->topic, name) != 0 || t->err || t->partition_cnt != partitions)
                continue;
            ok = true;
            for (int p = 0; p < t->partition_cnt; p++)
                if (t->partitions[p].err || t->partitions[p].leader < 0)
                    ok = false;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return ok;
}

int it_topic_create(const char *prefix, int partitions, char *name, size_t namelen)
{
    it_unique_name(prefix, name, namelen);
    rd_kafka_t *rk = admin_client();
    if (!rk)
        return -1;
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, 1, err, sizeof err);
    if (!nt) {
        fprintf(stderr, "itest: %s\n", err);
        rd_kafka_destroy(rk);
        return -1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int r = -1;
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!res) {
        fprintf(stderr, "itest: CreateTopics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer");
    } else {
        size_t n;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        if (n == 1 && rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR)
            r = 0;
        else
            fprintf(stderr, "itest: CreateTopics %s: %s\n", name,
                    n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    int64_t deadline = it_now_ms() + 30000;
    while (r == 0 && !topic_ready(rk, name, partitions)) {
        if (it_now_ms() > deadline) {
            fprintf(stderr, "itest: topic %s has no leaders after 30 s\n", name);
            r = -1;
        }
        usleep(100 * 1000);
    }
    rd_kafka_destroy(rk);
    return r;
}

void it_topic_delete(const char *name)
{
    if (!name || !*name)
        return;
    rd_kafka_t *rk = admin_client();
    if (!rk)
        return;
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_DeleteTopics_result_t *res = ev ? rd_kafka_event_DeleteTopics_result(ev) : NULL;
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_DeleteTopics_result_topics(res, &n) : NULL;
    if (!tr || n != 1 || rd_kafka_topic_result_error(tr[0]))
        fprintf(stderr, "itest: could not delete topic %s: %s\n", name,
                tr && n ? rd_kafka_topic_result_error_string(tr[0])
                        : (ev ? rd_kafka_event_error_string(ev) : "no answer"));
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

uint16_t it_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    uint16_t port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}
