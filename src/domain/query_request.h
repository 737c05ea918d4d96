/* A query API request from its query-string parameters (docs/query.md): which names an
 * endpoint takes, each value checked by the parsers of qparams.h, defaults filled in, into one
 * checked request. Pure: the time, the limits and the zone list are passed in; nothing here
 * allocates.
 *
 * Two steps, so that the HTTP layer's argument iterator can feed the first:
 *  1. eo_qargs_add() per argument, in order: refuses a name the endpoint does not take, a name
 *     given twice, a bare name, a value with a NUL, a control character or bad UTF-8, and more
 *     than EO_QREQ_MAX_ARGS arguments; the first refusal ends the collection.
 *  2. eo_qreq_parse(): the values, in a fixed order (the first bad one is the one reported).
 * A refusal is a 400 invalid_parameter: error->message, and error->field (may be ""). */
#ifndef EO_DOMAIN_QUERY_REQUEST_H
#define EO_DOMAIN_QUERY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/qparams.h"

#define EO_QREQ_MAX_ARGS 16
#define EO_QREQ_MAX_STEPS 100 /* EVENTOPS_QUERY_MAX_FUNNEL_STEPS can be at most this */
#define EO_QREQ_DEFAULT_LIMIT 100
#define EO_QREQ_DEFAULT_RANGE_US (INT64_C(7) * 86400 * 1000000) /* from, when not given */
#define EO_QREQ_DEFAULT_PERIODS 7
#define EO_QREQ_DEFAULT_WITHIN_S 86400

/* What an endpoint takes. Each parameter means the same wherever it is taken:
 *   eventType, userId        optional text (1..max bytes)
 *   from, to                 RFC 3339 times; to defaults to the next whole second after now,
 *                            from to 7 days before to; from < to. An endpoint that does not
 *                            take to is all-time (ranged false; from, to: the defaults).
 *   tz                       a zone of the list; "UTC" when not given
 *   interval                 the bucket unit; none unless the spec names a default
 *   period, periods          the cohort unit (day, week; default day) and count (default 7)
 *   startEvent, returnEvent  required text
 *   limit                    1..max_limit; spec's default_limit (0: EO_QREQ_DEFAULT_LIMIT)
 *   property                 a required property path
 *   steps, within            2..max_funnel_steps event types (required); a window, default 1d
 *   cursor                   a raw-events cursor (eo_q_cursor_decode) */
typedef struct {
    const char *params;    /* the names taken, space-separated (quoted in the 400 for another) */
    int64_t default_limit; /* 0: EO_QREQ_DEFAULT_LIMIT */
    bool has_default_interval;
    eo_q_unit_t default_interval;
} eo_qreq_spec_t;

/* What the request is checked against, from outside the request. */
typedef struct {
    int64_t now_us;
    int64_t max_event_type_bytes;
    int64_t max_id_bytes; /* userId */
    int64_t max_periods;
    int64_t max_limit;
    int64_t max_funnel_steps; /* at most EO_QREQ_MAX_STEPS are kept */
    int64_t max_within_s;
    int64_t max_buckets;       /* copied into the request, for the endpoint to enforce */
    int64_t max_funnel_events; /* likewise */
    const char *const *zones;  /* sorted by strcmp; borrowed, must outlive the request */
    size_t nzones;
} eo_qreq_env_t;

typedef struct {
    char field[72];    /* the parameter's name ('?' for a byte that is not printable ASCII) */
    char message[320]; /* "<field> <what is wrong>", or for a refused argument what is wrong */
} eo_qreq_error_t;

/* The arguments of one request; names and values are borrowed from the caller. */
typedef struct {
    const char *params; /* the spec's */
    const char *name[EO_QREQ_MAX_ARGS];
    const char *value[EO_QREQ_MAX_ARGS];
    size_t len[EO_QREQ_MAX_ARGS];
    size_t n;
    bool refused;
    eo_qreq_error_t error;
} eo_qargs_t;

/* One parsed, checked request. Strings point into the arguments' values, the zone list or this
 * struct: valid while those are. */
typedef struct {
    char tenant_id[37];     /* not a parameter: the caller fills it in (the token's tenant) */
    const char *event_type; /* NULL: all types */
    bool ranged;            /* false: all-time (from_us, to_us still hold the defaults) */
    int64_t from_us, to_us;
    const char *tz; /* a name of the zone list */
    bool has_unit;
    eo_q_unit_t unit;       /* interval, or period */
    const char *unit_field; /* the parameter that set unit: "interval" or "period" */
    const char *property;
    char property_path[2 * EO_Q_PROPERTY_MAX + 16]; /* PostgreSQL text[] literal */
    size_t nsteps;
    const char *steps[EO_QREQ_MAX_STEPS];
    size_t step_len[EO_QREQ_MAX_STEPS];
    int64_t within_s;
    const char *start_event, *return_event;
    int64_t periods;
    int64_t limit;
    const char *user_id;
    bool has_cursor;
    int64_t cursor_us;
    char cursor_id[EO_Q_CURSOR_ID_MAX + 1];
    int64_t max_buckets;
    int64_t max_funnel_events;
} eo_qreq_t;

/* True when name is one of params (space-separated names). */
bool eo_qreq_takes(const char *params, const char *name);

void eo_qargs_init(eo_qargs_t *a, const eo_qreq_spec_t *spec);
/* Adds one argument (value NULL for a bare name; value_len counts an embedded NUL). false when
 * it is refused (a->refused, a->error set); call no more after that. */
bool eo_qargs_add(eo_qargs_t *a, const char *name, const char *value, size_t value_len);

/* Checks the collected arguments against spec and env into *out. 0, or EO_EINVAL with *error
 * set (also for a refusal of eo_qargs_add). */
int eo_qreq_parse(const eo_qreq_spec_t *spec, const eo_qargs_t *a, const eo_qreq_env_t *env,
                  eo_qreq_t *out, eo_qreq_error_t *error) EO_MUST_CHECK;

#endif
