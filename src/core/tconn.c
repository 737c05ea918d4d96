/* Per-thread connections with a down/retry switch (see tconn.h). */
#include "core/tconn.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"

/* pthread keys call a destructor with the value only: the close function travels with it. */
typedef struct {
    void *conn;
    void (*close)(void *conn);
} slot_t;

static void slot_free(void *p)
{
    slot_t *s = p;
    if (!s)
        return;
    if (s->conn)
        s->close(s->conn);
    free(s);
}

int eo_tconn_init(eo_tconn_t *t, const eo_tconn_ops_t *ops)
{
    t->ops = *ops;
    atomic_init(&t->down_until_us, 0);
    atomic_init(&t->down, false);
    return pthread_key_create(&t->key, slot_free) == 0 ? 0 : EO_ENOMEM;
}

void eo_tconn_done(eo_tconn_t *t)
{
    slot_free(pthread_getspecific(t->key));
    pthread_setspecific(t->key, NULL);
    pthread_key_delete(t->key);
}

static slot_t *slot_of(eo_tconn_t *t)
{
    slot_t *s = pthread_getspecific(t->key);
    if (s)
        return s;
    if (!(s = calloc(1, sizeof *s)))
        return NULL;
    s->close = t->ops.close;
    if (pthread_setspecific(t->key, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

bool eo_tconn_waiting(eo_tconn_t *t)
{
    return t->ops.retry_ms > 0 && eo_clock_mono_us() < atomic_load(&t->down_until_us);
}

void *eo_tconn_get(eo_tconn_t *t, char *err, size_t errlen)
{
    if (eo_tconn_waiting(t)) {
        snprintf(err, errlen, "marked down after a failure; retried after %lld ms",
                 (long long)t->ops.retry_ms);
        return NULL;
    }
    slot_t *s = slot_of(t);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s->conn && t->ops.usable(s->conn))
        return s->conn;
    if (s->conn) {
        t->ops.close(s->conn);
        s->conn = NULL;
    }
    s->conn = t->ops.open(t->ops.ud, err, errlen);
    return s->conn;
}

void eo_tconn_check(eo_tconn_t *t)
{
    slot_t *s = pthread_getspecific(t->key);
    if (s && s->conn && !t->ops.usable(s->conn)) {
        t->ops.close(s->conn);
        s->conn = NULL;
    }
}

void eo_tconn_drop(eo_tconn_t *t)
{
    slot_t *s = pthread_getspecific(t->key);
    if (s && s->conn) {
        t->ops.close(s->conn);
        s->conn = NULL;
    }
}

bool eo_tconn_fail(eo_tconn_t *t)
{
    if (t->ops.retry_ms > 0)
        atomic_store(&t->down_until_us, eo_clock_mono_us() + t->ops.retry_ms * 1000);
    return !atomic_exchange(&t->down, true);
}

bool eo_tconn_ok(eo_tconn_t *t)
{
    return atomic_load(&t->down) && atomic_exchange(&t->down, false);
}

bool eo_tconn_down(eo_tconn_t *t)
{
    return atomic_load(&t->down);
}
