/* The storage worker pool: EVENTOPS_PROCESSOR_WORKERS threads, each with its own store (its own
 * PostgreSQL connection), storing equal shares of a batch in parallel (batch_store.h).
 *
 * Threads: the loop thread calls every function here; eo_store_pool_store() hands each worker
 * its share and waits for all of them, so the workers touch the batch's items only while the
 * loop waits. Between batches the workers sleep and the loop may use the first store. */
#ifndef EO_PROCESSOR_STORE_POOL_H
#define EO_PROCESSOR_STORE_POOL_H

#include <stddef.h>

#include "core/error.h"
#include "domain/event.h"
#include "processor/batch_store.h"
#include "processor/store.h"

typedef struct eo_store_pool eo_store_pool_t;

/* Makes one store for a worker (the caller's adapter). Returns 0 or a negative EO_E* code. */
typedef int (*eo_store_open_fn)(void *ud, eo_store_t **out);

typedef struct {
    size_t workers;
    eo_store_open_fn open;
    void *open_ud;
    const eo_event_limits_t *lim; /* borrowed: the decoding rules */
    eo_batch_refused_fn refused;  /* may be NULL */
    const char *role;             /* the workers' log role */
} eo_store_pool_options_t;

/* Opens the stores and starts the workers. Returns 0, or a negative EO_E* code with the reason
 * in err. The caller owns *out (eo_store_pool_free). */
int eo_store_pool_new(const eo_store_pool_options_t *opt, eo_store_pool_t **out, char *err,
                      size_t errlen) EO_MUST_CHECK;

/* Stops the workers (those started) and frees their stores. NULL accepted. */
void eo_store_pool_free(eo_store_pool_t *pool);

/* The first worker's store, for the loop's own calls between batches (borrowed). */
eo_store_t *eo_store_pool_first(eo_store_pool_t *pool);

/* Stores items[0..n) in one share per worker, with retries (eo_batch_store: wait(ud, err) is
 * called when a store was unavailable). Returns 0, or EO_ETIMEOUT when the batch must be
 * dropped. */
int eo_store_pool_store(eo_store_pool_t *pool, eo_batch_item_t *items, size_t n,
                        eo_batch_wait_fn wait, void *ud, size_t *inserted) EO_MUST_CHECK;

#endif
