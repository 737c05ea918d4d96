/* The resource servers' (collector, query) in-memory view of active credentials: write keys (by
 * SHA-256 of the key) and OAuth clients (by client id), each with its tenant and rate limit
 * override. Reloaded from PostgreSQL every refresh interval by a background thread. A credential
 * missing from memory is looked up in the database (one indexed query, one at a time, at most a
 * configured number per second), so that a new key or client works at once; a revoked one stops
 * working within one interval. Thread-safe: lookups take a read lock on the current table. */
#ifndef EO_ACCESS_CREDENTIALS_H
#define EO_ACCESS_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"

typedef struct eo_creds eo_creds_t;

typedef struct {
    char tenant_id[37];
    char id[24];   /* write key id (wk_...) or client id (cl_...) */
    int32_t rate;  /* requests per second; 0: the configured default */
    int32_t burst; /* 0: the configured default */
} eo_cred_t;

/* Loads the credentials once (failure is not fatal: the refresher keeps trying) and starts
 * the refresher thread. lookups_per_s bounds the database queries for credentials missing from
 * memory (a second's worth may come at once); past it a missing credential is reported as not
 * found (or unavailable while nothing is loaded) without asking. */
int eo_creds_new(const char *dsn, int64_t refresh_ms, int64_t lookups_per_s, eo_creds_t **out,
                 char *err, size_t errlen) EO_MUST_CHECK;

/* Finds an active write key. Returns 0 with out filled, EO_ENOTFOUND (no such active key), or
 * EO_EUNAVAIL (not in memory and the database cannot tell now). */
int eo_creds_write_key(eo_creds_t *c, const char *key, size_t len, eo_cred_t *out);

/* Finds an active (not revoked) OAuth client; same results as eo_creds_write_key. */
int eo_creds_client(eo_creds_t *c, const char *client_id, eo_cred_t *out);

/* True when the last reload succeeded within three refresh intervals. */
bool eo_creds_fresh(eo_creds_t *c);

void eo_creds_free(eo_creds_t *c);

#endif
