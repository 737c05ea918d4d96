/* Redis connection settings and connecting (see redis.h). */
#include "core/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses redis://[:password@]host[:port][/db]. */
int eo_redis_parse_url(const char *url, eo_redis_addr_t *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    if (!url || !*url)
        return 0;
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "EVENTOPS_REDIS_URL must start with redis://");
        return EO_EINVAL;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof a->password) {
            snprintf(err, errlen, "EVENTOPS_REDIS_URL: password too long");
            return EO_EINVAL;
        }
        memcpy(a->password, pw, n);
        a->password[n] = '\0';
        p = at + 1;
    }
    const char *end = p + strcspn(p, ":/");
    size_t hn = (size_t)(end - p);
    if (hn == 0 || hn >= sizeof a->host) {
        snprintf(err, errlen, "EVENTOPS_REDIS_URL: bad host");
        return EO_EINVAL;
    }
    memcpy(a->host, p, hn);
    a->host[hn] = '\0';
    if (*end == ':') {
        char *e;
        long port = strtol(end + 1, &e, 10);
        if (port < 1 || port > 65535 || (*e && *e != '/')) {
            snprintf(err, errlen, "EVENTOPS_REDIS_URL: bad port");
            return EO_EINVAL;
        }
        a->port = (int)port;
        end = e;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (db < 0 || db > 1000 || *e) {
            snprintf(err, errlen, "EVENTOPS_REDIS_URL: bad database number");
            return EO_EINVAL;
        }
        a->db = (int)db;
    }
    a->set = true;
    return 0;
}

redisContext *eo_redis_connect(const eo_redis_addr_t *a, int64_t timeout_ms, char *err,
                               size_t errlen)
{
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "cannot set the Redis timeout");
        redisFree(c);
        return NULL;
    }
    const char *setup[2][3] = {{"AUTH", a->password, NULL}, {"SELECT", NULL, NULL}};
    char db[16];
    snprintf(db, sizeof db, "%d", a->db);
    setup[1][1] = db;
    for (int i = 0; i < 2; i++) {
        if ((i == 0 && !a->password[0]) || (i == 1 && a->db == 0))
            continue;
        redisReply *rep = redisCommandArgv(c, 2, setup[i], NULL);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (!ok)
            snprintf(err, errlen, "%s failed: %s", setup[i][0],
                     rep && rep->str ? rep->str : c->errstr);
        freeReplyObject(rep);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static void *tconn_open(void *ud, char *err, size_t errlen)
{
    const eo_redis_target_t *t = ud;
    return eo_redis_connect(&t->addr, t->timeout_ms, err, errlen);
}

static bool tconn_usable(const void *conn)
{
    return ((const redisContext *)conn)->err == 0;
}

static void tconn_close(void *conn)
{
    redisFree(conn);
}

eo_tconn_ops_t eo_redis_tconn_ops(const eo_redis_target_t *target, int64_t retry_ms)
{
    return (eo_tconn_ops_t){.open = tconn_open,
                            .usable = tconn_usable,
                            .close = tconn_close,
                            .ud = (void *)target,
                            .retry_ms = retry_ms};
}
