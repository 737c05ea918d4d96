/* The processor's event store over PostgreSQL, an adapter of the store port (store.h): one
 * transaction per batch: the first occurrence of each (tenant, messageId) of the batch goes
 * into event_ids (array parameters, one statement), which answers the ones not stored before;
 * only those rows are copied, once, straight into events (COPY), and their rollup counts,
 * merged in C (domain/rollup_delta.h), are added with one upsert, and their users, as numbers
 * (user_ids) gathered in one bitmap per tenant, type and quarter hour (domain/userset.h), go
 * into user_set_deltas (ADR-22). Also keeps daily partitions, a cache of known tenants and a
 * cache of user numbers (two generations of user_cache_entries; 0: 65,536).
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
int eo_pg_store_new(const char *dsn, size_t user_cache_entries, eo_store_t **out) EO_MUST_CHECK;

#endif
