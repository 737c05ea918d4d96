/* The processor's port to its event store: what the storage workers and the loop ask of it.
 * Adapters: PostgreSQL (pg_store.c) and the fake of tests/unit/test_batch_store.c.
 *
 * An adapter embeds eo_store_t as its first member and casts back in its functions. One store
 * is used by one thread at a time (each storage worker owns one; the loop uses the first
 * worker's between batches, while the workers wait). */
#ifndef EO_PROCESSOR_STORE_H
#define EO_PROCESSOR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/record.h"

typedef struct eo_store eo_store_t;

typedef struct {
    /* Sets known[i] for each record whose tenant exists. 0, or EO_EUNAVAIL / EO_EIO. */
    int (*check_tenants)(eo_store_t *st, eo_record_t *const *recs, size_t n, bool *known, char *err,
                         size_t errlen);
    /* Stores the records in one transaction; *inserted counts the new rows (duplicates of
     * stored records are skipped). Returns 0, EO_EDATA (the data itself was refused: split the
     * batch), or EO_EUNAVAIL / EO_EIO (retry later). */
    int (*write)(eo_store_t *st, eo_record_t *const *recs, size_t n, size_t *inserted, char *err,
                 size_t errlen);
    /* Checks that the store answers (reconnecting when needed). */
    int (*ping)(eo_store_t *st, char *err, size_t errlen);
    /* True when the last call succeeded (EO_EDATA counts as success: the store answered). */
    bool (*ok)(const eo_store_t *st);
    /* Prepares the store for the days from today-1 to today+ahead_days (UTC); now_us is wall
     * time. */
    int (*ensure_ahead)(eo_store_t *st, int64_t now_us, int64_t ahead_days, char *err,
                        size_t errlen);
    void (*free)(eo_store_t *st);
} eo_store_ops_t;

struct eo_store {
    const eo_store_ops_t *ops;
};

EO_MUST_CHECK static inline int eo_store_check_tenants(eo_store_t *st, eo_record_t *const *recs,
                                                       size_t n, bool *known, char *err,
                                                       size_t errlen)
{
    return st->ops->check_tenants(st, recs, n, known, err, errlen);
}

EO_MUST_CHECK static inline int eo_store_write(eo_store_t *st, eo_record_t *const *recs, size_t n,
                                               size_t *inserted, char *err, size_t errlen)
{
    return st->ops->write(st, recs, n, inserted, err, errlen);
}

EO_MUST_CHECK static inline int eo_store_ping(eo_store_t *st, char *err, size_t errlen)
{
    return st->ops->ping(st, err, errlen);
}

static inline bool eo_store_ok(const eo_store_t *st)
{
    return st->ops->ok(st);
}

EO_MUST_CHECK static inline int eo_store_ensure_ahead(eo_store_t *st, int64_t now_us,
                                                      int64_t ahead_days, char *err, size_t errlen)
{
    return st->ops->ensure_ahead(st, now_us, ahead_days, err, errlen);
}

/* NULL accepted. */
static inline void eo_store_free(eo_store_t *st)
{
    if (st)
        st->ops->free(st);
}

#endif
