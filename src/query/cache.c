/* Query cache on Redis (see cache.h).
 * Threads: each thread has its own Redis connection with a shared down/retry switch
 * (core/tconn.h). */
#include "query/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/redis.h"

struct eo_qcache {
    eo_redis_target_t redis;
    eo_tconn_t conn;
};

int eo_qcache_new(const char *url, int64_t timeout_ms, int64_t retry_ms, eo_qcache_t **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    eo_qcache_t *c = calloc(1, sizeof *c);
    if (!c)
        return EO_ENOMEM;
    int r = eo_redis_parse_url(url, &c->redis.addr, err, errlen);
    c->redis.timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    eo_tconn_ops_t ops = eo_redis_tconn_ops(&c->redis, retry_ms > 0 ? retry_ms : 1000);
    if (r < 0 || eo_tconn_init(&c->conn, &ops) < 0) {
        free(c);
        return r < 0 ? r : EO_ENOMEM;
    }
    *out = c;
    return 0;
}

void eo_qcache_free(eo_qcache_t *c)
{
    if (!c)
        return;
    eo_tconn_done(&c->conn);
    free(c);
}

static void mark_down(eo_qcache_t *c, const char *why)
{
    if (eo_tconn_fail(&c->conn))
        eo_log_warn("query cache: Redis unavailable, answering from PostgreSQL", "error", why,
                    NULL);
}

/* This thread's connection, or NULL (Redis marked down, or connecting failed). */
static redisContext *conn_of(eo_qcache_t *c)
{
    if (!c->redis.addr.set || eo_tconn_waiting(&c->conn))
        return NULL;
    char err[256];
    redisContext *rc = eo_tconn_get(&c->conn, err, sizeof err);
    if (!rc)
        mark_down(c, err);
    return rc;
}

/* Checks a reply; on failure drops a broken connection, marks Redis down and returns false. */
static bool reply_ok(eo_qcache_t *c, redisContext *rc, redisReply *rep, int type)
{
    if (rep && (rep->type == type || (type == REDIS_REPLY_STRING && rep->type == REDIS_REPLY_NIL)))
        return true;
    char why[256];
    snprintf(why, sizeof why, "%s",
             rep && rep->type == REDIS_REPLY_ERROR ? rep->str
             : rc->err                             ? rc->errstr
                                                   : "unexpected reply");
    if (rc->err || !rep)
        eo_tconn_drop(&c->conn);
    mark_down(c, why);
    return false;
}

static void mark_up(eo_qcache_t *c)
{
    if (eo_tconn_ok(&c->conn))
        eo_log_info("query cache: Redis back", NULL);
}

int eo_qcache_get(eo_qcache_t *c, const char *key, char **val, size_t *len)
{
    redisContext *rc = conn_of(c);
    if (!rc)
        return EO_EUNAVAIL;
    redisReply *rep = redisCommand(rc, "GET %s", key);
    if (!reply_ok(c, rc, rep, REDIS_REPLY_STRING)) {
        freeReplyObject(rep);
        return EO_EUNAVAIL;
    }
    mark_up(c);
    int r = 0;
    if (rep->type == REDIS_REPLY_STRING) {
        *val = malloc(rep->len + 1);
        if (*val) {
            memcpy(*val, rep->str, rep->len);
            (*val)[rep->len] = '\0';
            *len = rep->len;
            r = 1;
        }
    }
    freeReplyObject(rep);
    return r;
}

int eo_qcache_set(eo_qcache_t *c, const char *key, const char *val, size_t len, int64_t ttl_ms)
{
    redisContext *rc = conn_of(c);
    if (!rc)
        return EO_EUNAVAIL;
    redisReply *rep = redisCommand(rc, "SET %s %b PX %lld", key, val, len, (long long)ttl_ms);
    bool ok = reply_ok(c, rc, rep, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    if (ok)
        mark_up(c);
    return ok ? 0 : EO_EUNAVAIL;
}

const char *eo_qcache_state(eo_qcache_t *c)
{
    if (!c->redis.addr.set)
        return "off";
    return eo_tconn_down(&c->conn) ? "down" : "redis";
}
