/* Query cache on Redis (see cache.h).
 * Threads: each thread's connection lives in thread-specific data; `down_until_us` and `down`
 * are atomics. */
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
    eo_redis_addr_t addr;
    int64_t timeout_ms, retry_ms;
    pthread_key_t conn_key;
    atomic_llong down_until_us; /* monotonic */
    atomic_bool down;
};

static void conn_free(void *p)
{
    if (p)
        redisFree(p);
}

int eo_qcache_new(const char *url, int64_t timeout_ms, int64_t retry_ms, eo_qcache_t **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    eo_qcache_t *c = calloc(1, sizeof *c);
    if (!c)
        return EO_ENOMEM;
    int r = eo_redis_parse_url(url, &c->addr, err, errlen);
    if (r < 0 || pthread_key_create(&c->conn_key, conn_free) != 0) {
        free(c);
        return r < 0 ? r : EO_ENOMEM;
    }
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    c->retry_ms = retry_ms > 0 ? retry_ms : 1000;
    *out = c;
    return 0;
}

void eo_qcache_free(eo_qcache_t *c)
{
    if (!c)
        return;
    conn_free(pthread_getspecific(c->conn_key));
    pthread_key_delete(c->conn_key);
    free(c);
}

static void mark_down(eo_qcache_t *c, const char *why)
{
    atomic_store(&c->down_until_us, eo_clock_mono_us() + c->retry_ms * 1000);
    if (!atomic_exchange(&c->down, true))
        eo_log_warn("query cache: Redis unavailable, answering from PostgreSQL", "error", why,
                    NULL);
}

/* This thread's connection, or NULL (Redis marked down, or connecting failed). */
static redisContext *conn_of(eo_qcache_t *c)
{
    if (!c->addr.set || eo_clock_mono_us() < atomic_load(&c->down_until_us))
        return NULL;
    redisContext *rc = pthread_getspecific(c->conn_key);
    if (rc && !rc->err)
        return rc;
    if (rc) {
        redisFree(rc);
        pthread_setspecific(c->conn_key, NULL);
    }
    char err[256];
    rc = eo_redis_connect(&c->addr, c->timeout_ms, err, sizeof err);
    if (!rc) {
        mark_down(c, err);
        return NULL;
    }
    pthread_setspecific(c->conn_key, rc);
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
    if (rc->err || !rep) {
        redisFree(rc);
        pthread_setspecific(c->conn_key, NULL);
    }
    mark_down(c, why);
    return false;
}

static void mark_up(eo_qcache_t *c)
{
    if (atomic_load(&c->down) && atomic_exchange(&c->down, false))
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
    if (!c->addr.set)
        return "off";
    return atomic_load(&c->down) ? "down" : "redis";
}
