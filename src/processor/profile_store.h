/* The profiles a batch of newly stored events changes (domain/profile.h), written in the events'
 * transaction by one statement (sql/migrations/0013_profiles.sql). Only events that may change a
 * profile (eo_profile_touches) are read again, so a batch without any costs a check per event.
 * Used by one thread at a time: the store that owns it. */
#ifndef EO_PROCESSOR_PROFILE_STORE_H
#define EO_PROCESSOR_PROFILE_STORE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "core/error.h"
#include "domain/record.h"

typedef struct eo_profile_store eo_profile_store_t;

/* Returns 0 or EO_ENOMEM. */
int eo_profile_store_new(eo_profile_store_t **out) EO_MUST_CHECK;
/* NULL accepted. */
void eo_profile_store_free(eo_profile_store_t *ps);

/* Merges the profile changes of recs[idx[0..n-1]] and writes them on conn, inside the caller's
 * transaction. Returns 0, EO_EDATA (an event's properties text is not JSON; the database refused
 * the data), or the database's error code (message in err). */
int eo_profile_store_write(eo_profile_store_t *ps, PGconn *conn, eo_record_t *const *recs,
                           const size_t *idx, size_t n, char *err, size_t errlen) EO_MUST_CHECK;

#endif
