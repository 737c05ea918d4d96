/* Redis connection settings and connecting (hiredis, blocking, with a timeout on the connect
 * and on every command). Used by the rate limiter and the query cache; each keeps one
 * connection per thread. */
#ifndef EO_CORE_REDIS_H
#define EO_CORE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tconn.h"

typedef struct {
    bool set; /* false: no Redis configured */
    char host[256];
    int port;
    char password[256];
    int db;
} eo_redis_addr_t;

/* Parses redis://[:password@]host[:port][/db]; an empty url leaves a->set false. */
int eo_redis_parse_url(const char *url, eo_redis_addr_t *a, char *err, size_t errlen) EO_MUST_CHECK;

/* Connects, sets the timeout, and sends AUTH and SELECT when needed. NULL (reason in err) on
 * failure. */
redisContext *eo_redis_connect(const eo_redis_addr_t *a, int64_t timeout_ms, char *err,
                               size_t errlen);

/* Where to connect and the timeout of the connect and of every command. */
typedef struct {
    eo_redis_addr_t addr;
    int64_t timeout_ms;
} eo_redis_target_t;

/* Per-thread connection operations (core/tconn.h) opening hiredis connections to target,
 * which must outlive them; a connection with an error is reopened. */
eo_tconn_ops_t eo_redis_tconn_ops(const eo_redis_target_t *target, int64_t retry_ms);

#endif
