/* Periodic background thread (see ticker.h). `stopping` is guarded by `lock`; the thread
 * sleeps on `cond` so that a stop wakes it at once. */
#include "core/ticker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct eo_ticker {
    int64_t interval_ms;
    void (*fn)(void *);
    void *ud;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    pthread_t thread;
};

static void *run(void *arg)
{
    eo_ticker_t *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (t->interval_ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(t->interval_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        while (!t->stopping && pthread_cond_timedwait(&t->cond, &t->lock, &ts) == 0)
            ; /* woken without a stop: keep waiting for the deadline */
        if (t->stopping)
            break;
        pthread_mutex_unlock(&t->lock);
        t->fn(t->ud);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int eo_ticker_start(const char *name, int64_t interval_ms, void (*fn)(void *ud), void *ud,
                    eo_ticker_t **out)
{
    *out = NULL;
    eo_ticker_t *t = calloc(1, sizeof *t);
    if (!t)
        return EO_ENOMEM;
    t->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    t->fn = fn;
    t->ud = ud;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return EO_ENOMEM;
    }
    char comm[16]; /* the kernel's limit, NUL included */
    snprintf(comm, sizeof comm, "%s", name);
    (void)pthread_setname_np(t->thread, comm);
    *out = t;
    return 0;
}

void eo_ticker_stop(eo_ticker_t *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
