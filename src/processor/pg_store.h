/* The processor's event store over PostgreSQL: one transaction per batch through COPY into a
 * staging table, then inserts that skip (tenant, messageId) pairs already stored and roll up
 * only the rows really inserted. Also keeps daily partitions and a cache of known tenants.
 * Used by the processor thread only. */
#ifndef EO_PROCESSOR_PG_STORE_H
#define EO_PROCESSOR_PG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/record.h"

typedef struct eo_pg_store eo_pg_store_t;

int eo_pg_store_new(const char *dsn, eo_pg_store_t **out) EO_MUST_CHECK;
void eo_pg_store_free(eo_pg_store_t *st);

/* Creates the daily partitions from today-1 to today+ahead (UTC); now_us is wall time. */
int eo_pg_store_ensure_ahead(eo_pg_store_t *st, int64_t now_us, int64_t ahead_days, char *err,
                             size_t errlen) EO_MUST_CHECK;

/* Sets known[i] for each record whose tenant exists. EO_EUNAVAIL/EO_EIO on failure. */
int eo_pg_store_check_tenants(eo_pg_store_t *st, eo_record_t *const *recs, size_t n, bool *known,
                              char *err, size_t errlen) EO_MUST_CHECK;

/* Stores the records in one transaction; *inserted counts the new rows. Returns 0, EO_EDATA
 * (the data itself was refused: split the batch), or EO_EUNAVAIL / EO_EIO (retry later). */
int eo_pg_store_write(eo_pg_store_t *st, eo_record_t *const *recs, size_t n, size_t *inserted,
                      char *err, size_t errlen) EO_MUST_CHECK;

/* Checks that the database answers (reconnecting when needed). */
int eo_pg_store_ping(eo_pg_store_t *st, char *err, size_t errlen) EO_MUST_CHECK;

/* True when the last database call succeeded. */
bool eo_pg_store_ok(const eo_pg_store_t *st);

#endif
