/* Shared between the query role's request handling (query.c) and its endpoints
 * (endpoints.c): the table of endpoints. Adding an endpoint is one row of eo_q_endpoints, its
 * handler in endpoints.c, its operation in docs/openapi.json, and its path in query.c's route
 * table (which the HTTP layer and test_openapi read; checked against this table at start). */
#ifndef EO_QUERY_INTERNAL_H
#define EO_QUERY_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "domain/query_request.h"

/* One parsed, checked request (domain/query_request.h), its tenant filled in. */
typedef eo_qreq_t qreq_t;

/* Outcome of an endpoint: 0 with the JSON answer in out; EO_ELIMIT when the range holds more
 * buckets than allowed (a 400 naming field, message in err); EO_EUNAVAIL / EO_ETIMEOUT / other
 * codes for database failures (message in err). */
/* What answered a query (the X-Query-Source header, the cache value's first line and the
 * metric eventops_query_source_total): rollups, raw events, user sets (ADR-22), timelines
 * (ADR-23) or property rollups (ADR-24). */
typedef enum {
    EO_Q_SRC_ROLLUPS,
    EO_Q_SRC_EVENTS,
    EO_Q_SRC_USER_SETS,
    EO_Q_SRC_TIMELINES,
    EO_Q_SRC_PROPERTY_ROLLUPS,
    EO_Q_SOURCES
} eo_q_source_t;

/* "rollups", "events", "user_sets", "timelines", "property_rollups". */
const char *eo_q_source_name(eo_q_source_t s);

/* Computes the answer into out and says in *source what answered (it is EO_Q_SRC_EVENTS when
 * called). */
typedef int (*endpoint_fn)(PGconn *conn, const qreq_t *r, eo_buf_t *out, eo_q_source_t *source,
                           const char **field, char *err, size_t errlen);

/* One endpoint of the query API: everything the role derives per endpoint comes from here
 * (route, metrics labels, cache key, allowed parameters, dispatch). */
typedef struct {
    const char *path;    /* GET path */
    const char *name;    /* label endpoint="..." of the metrics; part of the cache key */
    eo_qreq_spec_t spec; /* the parameters it takes and their defaults */
    endpoint_fn answer;  /* computes the answer */
    bool cacheable;      /* answers go through the Redis cache */
} eo_q_endpoint_t;

#define EO_Q_MAX_ENDPOINTS 16 /* per-endpoint metrics query.c keeps */

extern const eo_q_endpoint_t eo_q_endpoints[];
extern const size_t eo_q_nendpoints;

#endif
