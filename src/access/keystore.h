/* Signing and verification keys of the auth system.
 *
 * A key folder holds one Ed25519 private key per file, `<kid>.pem` (PKCS#8, mode 0600). kids
 * are made of the creation time (UTC) and random hex, so they sort by age: the greatest is the
 * current signing key; every key in the folder is published and accepted until its file is
 * removed (see docs/security.md, key rotation).
 *
 * A keystore keeps the current key set of one source, a key folder or a JWKS URL, reloaded
 * every refresh interval by a background thread and on demand (a token with an unknown kid)
 * at most once per minimum interval. Readers take a reference on an immutable set. */
#ifndef EO_ACCESS_KEYSTORE_H
#define EO_ACCESS_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "domain/jwt.h"

/* Creates a new key file in dir (created 0700 when missing). Fills kid and path. */
int eo_keydir_create(const char *dir, char kid[EO_JWT_KID_MAX + 1], char *path, size_t pathlen,
                     char *err, size_t errlen) EO_MUST_CHECK;

/* Loads every `<kid>.pem` of dir into a new set sorted by kid (the current key last). Files
 * whose name is not a valid kid are ignored; an unreadable key file is an error. */
int eo_keydir_load(const char *dir, eo_jwt_keyset_t **out, char *err, size_t errlen) EO_MUST_CHECK;

/* Removes the key kid from dir. Returns 0, EO_ENOTFOUND or EO_EIO. */
int eo_keydir_delete(const char *dir, const char *kid, char *err, size_t errlen) EO_MUST_CHECK;

typedef struct eo_keystore eo_keystore_t;

typedef struct {
    const char *key_dir;  /* used when jwks_url is empty */
    const char *jwks_url; /* http(s) URL of a JWKS document */
    int64_t refresh_ms;
    int64_t min_refetch_ms;
} eo_keystore_options_t;

/* Loads once (a failure is logged, not fatal: the refresher keeps trying) and starts the
 * refresher thread. */
int eo_keystore_new(const eo_keystore_options_t *opt, eo_keystore_t **out, char *err,
                    size_t errlen) EO_MUST_CHECK;

/* The current set with a reference the caller drops with eo_jwt_keyset_unref(), or NULL when
 * no set was ever loaded. */
eo_jwt_keyset_t *eo_keystore_get(eo_keystore_t *ks);

/* Reloads now unless the last reload began less than min_refetch_ms ago; returns the set as
 * eo_keystore_get() (concurrent callers share one reload). */
eo_jwt_keyset_t *eo_keystore_refetch(eo_keystore_t *ks);

/* A number that changes whenever the set is replaced (each successful reload): a cache of
 * verified tokens is valid only for the generation it was filled under. */
uint64_t eo_keystore_generation(eo_keystore_t *ks);

/* True when the last reload succeeded and yielded at least one key. */
bool eo_keystore_ready(eo_keystore_t *ks);

void eo_keystore_free(eo_keystore_t *ks);

#endif
