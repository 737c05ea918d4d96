/* libpq helpers (see pg.h). */
#include "core/pg.h"

#include <stdio.h>
#include <string.h>

int eo_pg_connect(const char *dsn, PGconn **out, char *err, size_t errlen)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {dsn, "5", "eventops", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        snprintf(err, errlen, "out of memory");
        *out = NULL;
        return EO_ENOMEM;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(conn));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(conn);
        *out = NULL;
        return EO_EUNAVAIL;
    }
    *out = conn;
    return 0;
}

int eo_pg_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    snprintf(err, errlen, "%s: %s", state ? state : "-----", msg ? msg : "");
    err[strcspn(err, "\n")] = '\0';
    if (PQstatus(conn) != CONNECTION_OK || !state)
        return EO_EUNAVAIL;
    /* 08 connection, 53 resources, 57 operator intervention (shutdown), 40 rollback
     * (serialization, deadlock): all worth a retry. 22 data exception, 23 integrity: never. */
    if (!strncmp(state, "08", 2) || !strncmp(state, "53", 2) || !strncmp(state, "57", 2) ||
        !strncmp(state, "40", 2) || !strncmp(state, "55", 2))
        return EO_EUNAVAIL;
    if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))
        return EO_EDATA;
    return EO_EIO;
}

int eo_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int r = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        r = eo_pg_error(conn, res, err, errlen);
    PQclear(res);
    return r;
}

/* PQexecParams with its result checked; lengths and formats NULL: text parameters. */
static int query_as(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    const int *lengths, const int *formats, int format, PGresult **res, char *err,
                    size_t errlen)
{
    *res = PQexecParams(conn, sql, nparams, NULL, params, lengths, formats, format);
    ExecStatusType st = *res ? PQresultStatus(*res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    int r = eo_pg_error(conn, *res, err, errlen);
    PQclear(*res);
    *res = NULL;
    return r;
}

int eo_pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                PGresult **res, char *err, size_t errlen)
{
    return query_as(conn, sql, nparams, params, NULL, NULL, 0, res, err, errlen);
}

int eo_pg_query_binary(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       PGresult **res, char *err, size_t errlen)
{
    return query_as(conn, sql, nparams, params, NULL, NULL, 1, res, err, errlen);
}

int eo_pg_query_binary_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                              const int *lengths, PGresult **res, char *err, size_t errlen)
{
    enum { MAX_PARAMS = 32 };
    *res = NULL;
    if (nparams < 0 || nparams > MAX_PARAMS) {
        snprintf(err, errlen, "too many parameters: %d", nparams);
        return EO_EINVAL;
    }
    int binary[MAX_PARAMS];
    for (int i = 0; i < nparams; i++)
        binary[i] = 1;
    return query_as(conn, sql, nparams, params, lengths, binary, 0, res, err, errlen);
}

int eo_pg_copy_in(PGconn *conn, const char *copy_sql, const char *data, size_t len, char *err,
                  size_t errlen)
{
    PGresult *res = PQexec(conn, copy_sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        int r = eo_pg_error(conn, res, err, errlen);
        PQclear(res);
        return r;
    }
    PQclear(res);
    const size_t chunk = 1 << 20;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (PQputCopyData(conn, data + off, (int)n) != 1) {
            snprintf(err, errlen, "COPY: %s", PQerrorMessage(conn));
            return EO_EUNAVAIL;
        }
    }
    if (PQputCopyEnd(conn, NULL) != 1) {
        snprintf(err, errlen, "COPY end: %s", PQerrorMessage(conn));
        return EO_EUNAVAIL;
    }
    int r = 0;
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && r == 0)
            r = eo_pg_error(conn, res, err, errlen);
        PQclear(res);
    }
    return r;
}

static void array_next(eo_buf_t *b)
{
    eo_buf_putc(b, b->len == 0 ? '{' : ',');
}

void eo_pg_array_elem(eo_buf_t *b, const char *text, size_t n)
{
    array_next(b);
    eo_buf_put(b, text, n);
}

void eo_pg_array_str(eo_buf_t *b, const char *s, size_t n)
{
    array_next(b);
    eo_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            eo_buf_putc(b, '\\');
        eo_buf_putc(b, s[i]);
    }
    eo_buf_putc(b, '"');
}

void eo_pg_array_bytea(eo_buf_t *b, const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *u = p;
    array_next(b);
    eo_buf_puts(b, "\"\\\\x");
    for (size_t i = 0; i < n; i++) {
        char two[2] = {digits[u[i] >> 4], digits[u[i] & 15]};
        eo_buf_put(b, two, 2);
    }
    eo_buf_putc(b, '"');
}

void eo_pg_array_close(eo_buf_t *b)
{
    eo_buf_puts(b, b->len == 0 ? "{}" : "}");
}
