/* Shared between the query role's request handling (query.c) and its endpoints
 * (endpoints.c). */
#ifndef EO_QUERY_INTERNAL_H
#define EO_QUERY_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "domain/qparams.h"

typedef enum {
    EP_COUNT,
    EP_TREND,
    EP_UNIQUE_USERS,
    EP_BREAKDOWN,
    EP_FUNNEL,
    EP_RETENTION,
    EP_TYPES,
    EP_EVENTS,
    EP_COUNT_ALL /* number of endpoints */
} endpoint_t;

#define MAX_STEPS 100

/* One parsed, checked request. Strings point into the request's arguments (valid while the
 * request is handled) or into this struct. */
typedef struct {
    endpoint_t ep;
    const eo_config_t *cfg;
    char tenant_id[37];
    const char *event_type; /* NULL: all types */
    int64_t from_us, to_us;
    const char *tz; /* a name from pg_timezone_names */
    bool has_unit;
    eo_q_unit_t unit; /* trend and unique users: interval; retention: period */
    const char *property;
    char property_path[2 * EO_Q_PROPERTY_MAX + 16]; /* PostgreSQL text[] literal */
    size_t nsteps;
    const char *steps[MAX_STEPS];
    size_t step_len[MAX_STEPS];
    int64_t within_s;
    const char *start_event, *return_event;
    int64_t periods;
    int64_t limit;
    const char *user_id;
    bool has_cursor;
    int64_t cursor_us;
    char cursor_id[EO_Q_CURSOR_ID_MAX + 1];
} qreq_t;

/* Outcome of an endpoint: 0 with the JSON answer in out; EO_ELIMIT when the range holds more
 * buckets than allowed (a 400 naming field, message in err); EO_EUNAVAIL / EO_ETIMEOUT / other
 * codes for database failures (message in err). */
typedef int (*endpoint_fn)(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field,
                           char *err, size_t errlen);

int eo_q_count(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
               size_t errlen);
int eo_q_trend(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
               size_t errlen);
int eo_q_unique_users(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                      size_t errlen);
int eo_q_breakdown(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                   size_t errlen);
int eo_q_funnel(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                size_t errlen);
int eo_q_retention(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                   size_t errlen);
int eo_q_types(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
               size_t errlen);
int eo_q_events(PGconn *conn, const qreq_t *r, eo_buf_t *out, const char **field, char *err,
                size_t errlen);

#endif
