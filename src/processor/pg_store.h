/* The processor's event store over PostgreSQL, an adapter of the store port (store.h): one
 * transaction per batch through COPY into a staging table, then inserts that skip (tenant,
 * messageId) pairs already stored and roll up only the rows really inserted. Also keeps daily
 * partitions and a cache of known tenants.
 *
 * Threads: a store has its own connection and is used by one thread at a time; each storage
 * worker owns one (store_pool.h), and the processor loop uses the first worker's between
 * batches, while the workers wait. */
#ifndef EO_PROCESSOR_PG_STORE_H
#define EO_PROCESSOR_PG_STORE_H

#include "core/error.h"
#include "processor/store.h"

/* A store connecting to dsn at its first call (and again whenever the connection broke).
 * Returns 0 or EO_ENOMEM; the caller owns *out (eo_store_free). The write refuses with EO_EDATA
 * what the database refuses as data (SQLSTATE class 22/23) or a batch too large to copy. */
int eo_pg_store_new(const char *dsn, eo_store_t **out) EO_MUST_CHECK;

#endif
