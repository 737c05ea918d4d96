/* Thin libpq helpers: connecting, running statements, COPY, and classifying failures into
 * "retry later" (EO_EUNAVAIL) versus "the data itself is refused" (EO_EDATA). A PGconn is
 * used by one thread at a time. Errors go to the caller's buffer; nothing here logs. */
#ifndef EO_CORE_PG_H
#define EO_CORE_PG_H

#include <libpq-fe.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

/* Connects (with a 5 s connect timeout unless dsn sets one). *out is NULL on failure. */
int eo_pg_connect(const char *dsn, PGconn **out, char *err, size_t errlen) EO_MUST_CHECK;

/* Classifies a failed result (or NULL result) on conn into EO_EUNAVAIL / EO_EDATA / EO_EIO
 * and writes "SQLSTATE: message" into err. */
int eo_pg_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/* Runs sql (no parameters, any number of statements); 0 or a classified error. */
int eo_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen) EO_MUST_CHECK;

/* Runs a parameterised statement returning rows; *res is owned by the caller (PQclear). */
int eo_pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                PGresult **res, char *err, size_t errlen) EO_MUST_CHECK;

/* The same with every result column in PostgreSQL's binary format (int4 as 4 bytes big-endian,
 * bytea as its bytes: no hex to decode). */
int eo_pg_query_binary(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       PGresult **res, char *err, size_t errlen) EO_MUST_CHECK;

/* A parameterised statement whose parameters are all in PostgreSQL's binary format
 * (lengths[i] bytes each; e.g. arrays in array_send's format), text results. */
int eo_pg_query_binary_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                              const int *lengths, PGresult **res, char *err,
                              size_t errlen) EO_MUST_CHECK;

/* COPY ... FROM STDIN with data (text format). */
int eo_pg_copy_in(PGconn *conn, const char *copy_sql, const char *data, size_t len, char *err,
                  size_t errlen) EO_MUST_CHECK;

/* Array parameters in PostgreSQL's text form ({a,"b \"c\"",...}), one element per call; an
 * append error stays in the buffer (eo_buf_error). */
/* An element as it is (numbers, uuids, times: no quotes or separators in them). */
void eo_pg_array_elem(eo_buf_t *b, const char *text, size_t n);
/* A quoted element: any text, '"' and '\\' escaped. */
void eo_pg_array_str(eo_buf_t *b, const char *s, size_t n);
/* A bytea element in hex ("\\x..."). */
void eo_pg_array_bytea(eo_buf_t *b, const void *p, size_t n);
/* Ends the array ("{}" when it has no element). */
void eo_pg_array_close(eo_buf_t *b);

#endif
