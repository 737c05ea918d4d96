/* The storage worker pool (see store_pool.h). */
#include "processor/store_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

/* A storage worker: its own thread and store. The loop thread hands it its share and waits;
 * `lock` guards the hand-over fields (has_job, done, quit); the share is written by one side
 * at a time. */
typedef struct {
    eo_store_pool_t *pool;
    eo_batch_share_t *share; /* pool->shares[i] */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool has_job, done, quit;
} worker_t;

struct eo_store_pool {
    eo_store_pool_options_t opt;
    worker_t *workers;
    eo_batch_share_t *shares; /* one per worker */
    size_t nworkers;
    eo_batch_item_t *items; /* of the batch being stored */
    eo_batch_wait_fn wait;
    void *wait_ud;
};

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    eo_log_thread_role(w->pool->opt.role);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->has_job && !w->quit)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->quit)
            break;
        w->has_job = false;
        pthread_mutex_unlock(&w->lock);
        eo_store_pool_t *pool = w->pool;
        eo_ignore(eo_batch_store_share(w->share, pool->items, pool->opt.lim, pool->opt.refused));
        pthread_mutex_lock(&w->lock);
        w->done = true;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Runs every worker that has a share (n > 0) and waits for all (an eo_batch_run_fn). */
static void run_workers(void *ud)
{
    eo_store_pool_t *pool = ud;
    for (size_t i = 0; i < pool->nworkers; i++) {
        worker_t *w = &pool->workers[i];
        if (!w->share->n)
            continue;
        pthread_mutex_lock(&w->lock);
        w->done = false;
        w->has_job = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    for (size_t i = 0; i < pool->nworkers; i++) {
        worker_t *w = &pool->workers[i];
        if (!w->share->n)
            continue;
        pthread_mutex_lock(&w->lock);
        while (!w->done)
            pthread_cond_wait(&w->cond, &w->lock);
        pthread_mutex_unlock(&w->lock);
    }
}

static bool wait_caller(void *ud, const char *err)
{
    eo_store_pool_t *pool = ud;
    return pool->wait(pool->wait_ud, err);
}

int eo_store_pool_store(eo_store_pool_t *pool, eo_batch_item_t *items, size_t n,
                        eo_batch_wait_fn wait, void *ud, size_t *inserted)
{
    pool->items = items;
    pool->wait = wait;
    pool->wait_ud = ud;
    return eo_batch_store(pool->shares, pool->nworkers, n, run_workers, wait_caller, pool,
                          inserted);
}

eo_store_t *eo_store_pool_first(eo_store_pool_t *pool)
{
    return pool->shares[0].store;
}

void eo_store_pool_free(eo_store_pool_t *pool)
{
    if (!pool)
        return;
    for (size_t i = 0; pool->workers && i < pool->nworkers; i++) {
        worker_t *w = &pool->workers[i];
        if (w->started) {
            pthread_mutex_lock(&w->lock);
            w->quit = true;
            pthread_cond_broadcast(&w->cond);
            pthread_mutex_unlock(&w->lock);
            pthread_join(w->thread, NULL);
        }
        eo_store_free(w->share->store);
        free(w->share->idx);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
    }
    free(pool->workers);
    free(pool->shares);
    free(pool);
}

int eo_store_pool_new(const eo_store_pool_options_t *opt, eo_store_pool_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    eo_store_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    pool->opt = *opt;
    if (!(pool->workers = calloc(opt->workers, sizeof *pool->workers)) ||
        !(pool->shares = calloc(opt->workers, sizeof *pool->shares))) {
        snprintf(err, errlen, "out of memory");
        eo_store_pool_free(pool);
        return EO_ENOMEM;
    }
    pool->nworkers = opt->workers;
    for (size_t i = 0; i < pool->nworkers; i++) {
        worker_t *w = &pool->workers[i];
        w->pool = pool;
        w->share = &pool->shares[i];
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
    }
    int r;
    for (size_t i = 0; i < pool->nworkers; i++) {
        worker_t *w = &pool->workers[i];
        if ((r = opt->open(opt->open_ud, &w->share->store)) < 0) {
            snprintf(err, errlen, "cannot open a store: %s", eo_strerror(r));
            goto fail;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "cannot start a storage worker");
            r = EO_ENOMEM;
            goto fail;
        }
        w->started = true;
    }
    *out = pool;
    return 0;
fail:
    eo_store_pool_free(pool);
    return r;
}
