/* Query role: the analytics API over stored events (docs/query.md). Bearer JWTs with the
 * events:read scope; the tenant comes from the token. Counts and trends read the rollups; the
 * other endpoints read events through indexes. Answers are cached in Redis (read-through).
 * Threads: libmicrohttpd's pool threads run the handlers, each with its own PostgreSQL
 * connection and Redis connection. */
#ifndef EO_QUERY_QUERY_H
#define EO_QUERY_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct eo_query eo_query_t;

int eo_query_start(const eo_config_t *cfg, eo_query_t **out, char *err,
                   size_t errlen) EO_MUST_CHECK;
uint16_t eo_query_port(const eo_query_t *q);
/* Stops accepting, drains for up to the shutdown timeout, and frees (NULL accepted). */
void eo_query_stop(eo_query_t *q);

#endif
