/* Helpers shared by the integration tests (tests/integration/test_*.c): settings of the local
 * stack, a fresh PostgreSQL database per test (created on the stack's server, dropped at the
 * end), migrations, unique Kafka topics through the librdkafka admin API, and one-value queries
 * over libpq. Every helper reports problems on stderr and returns a negative value; tests turn
 * that into a failed assertion. Not thread-safe unless said otherwise. */
#ifndef EO_TESTS_ITEST_H
#define EO_TESTS_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IT_NAME_MAX 64
#define IT_DSN_MAX 1024

/* Returns getenv(name) when set and non-empty, else def (both borrowed). */
const char *it_env(const char *name, const char *def);

/* The stack's settings, with the same defaults as src/core/config.c. */
const char *it_pg_dsn(void);
const char *it_kafka_brokers(void);

/* A unique name "<prefix>_<pid>_<random hex>", lower case, usable as a database or topic
 * name. */
void it_unique_name(const char *prefix, char *out, size_t outlen);

/* A fresh database on the stack's server. */
typedef struct {
    char name[IT_NAME_MAX];
    char dsn[IT_DSN_MAX]; /* the stack DSN with dbname replaced */
} it_db_t;

/* Creates a fresh, empty database named "<prefix>_<pid>_<random>" and fills db. 0 or -1. */
int it_db_create(const char *prefix, it_db_t *db);

/* Drops the database (terminating its sessions). Accepts a db that was never created. */
void it_db_drop(it_db_t *db);

/* Runs eo_migrate_run on dsn; *applied counts the migrations applied. 0 or an EO_E* code. */
int it_db_migrate(const char *dsn, int *applied);

/* Returns a copy of base_dsn (keyword/value or URI form) with dbname replaced, in out.
 * 0 or -1. */
int it_dsn_with_dbname(const char *base_dsn, const char *dbname, char *out, size_t outlen);

/* Runs sql (one or more statements, TimeZone set to UTC first) and returns the first column of
 * the first row of the last result as an integer. Returns INT64_MIN on any failure (connection,
 * SQL error, no row, NULL or non-integer value). */
int64_t it_pg_int(const char *dsn, const char *sql);

/* Runs sql (one or more statements) for its effect. 0 or -1. */
int it_pg_exec(const char *dsn, const char *sql);

/* Runs sql and copies the first column of the first row of the last result as text into out.
 * 0 or -1 (also for NULL or no row). */
int it_pg_text(const char *dsn, const char *sql, char *out, size_t outlen);

/* Inserts a tenant named name (plain text, no quotes) into the database at dsn; its id into out.
 * 0 or -1. */
int it_insert_tenant(const char *dsn, const char *name, char out[37]);

/* Creates a topic named "<prefix>_<pid>_<random>" with the given partitions (replication 1)
 * through the librdkafka admin API and waits until its metadata shows a leader for every
 * partition. Fills name. 0 or -1. */
int it_topic_create(const char *prefix, int partitions, char *name, size_t namelen);

/* Deletes a topic created by it_topic_create (best effort; logs on failure). NULL or "" is a
 * no-op. */
void it_topic_delete(const char *name);

/* A TCP port on 127.0.0.1 that was free a moment ago and on which nothing listens now
 * (bound to 0, then closed). 0 on failure. */
uint16_t it_closed_port(void);

/* Monotonic milliseconds. */
int64_t it_now_ms(void);

#endif
