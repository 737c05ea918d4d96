/* IANA time zones by name for the analytics role (issue 12): a zone's TZif file read from the
 * system's tz database ($TZDIR, else /usr/share/zoneinfo) and parsed by src/domain/tz.c, and a
 * process-wide cache of the zones loaded so far, shared by the engine and the HTTP API. Names
 * come from tenants' rules, so they are checked before any path is built, and the file read
 * must lie under the database's directory once symbolic links are resolved. */
#ifndef EO_ANALYTICS_ZONES_H
#define EO_ANALYTICS_ZONES_H

#include <stddef.h>

#include "core/error.h"
#include "domain/tz.h"

#define EO_ZONE_NAME_MAX 64            /* bytes in a zone name */
#define EO_ZONE_FILE_MAX (1024 * 1024) /* bytes in a zone's file */
#define EO_ZONES_CACHE_MAX 1024        /* zones one cache keeps (tzdata 2025b has about 600) */

/* Loads the zone called name: 1 to 64 bytes of [A-Za-z0-9_+/-], without a leading '/', "//"
 * or ".." (so "Europe/Berlin", "Etc/GMT+5"); "UTC" is *out = NULL (the functions of tz.h take
 * NULL as UTC) without reading anything. The file is $TZDIR/<name> (TZDIR, read at each load,
 * unset or empty: /usr/share/zoneinfo); symbolic links are followed (tzdata uses them for aliases),
 * but its real path must stay under the real path of that directory; it must be a regular file of
 * at most 1 MiB. Returns 0 and *out (the caller frees it with eo_tz_free), or with the reason in
 * err: EO_EINVAL (the name's form), EO_ENOTFOUND (no such zone, or a path leaving the
 * directory), EO_ELIMIT (file too large), EO_EPARSE (not a valid TZif file), EO_EIO (read
 * error) or EO_ENOMEM. Any thread. */
int eo_zone_load(const char *name, eo_tz_t **out, char *err, size_t errlen) EO_MUST_CHECK;

/* The cache: a list of name -> zone guarded by one mutex. A zone stays loaded (and the
 * pointers handed out stay valid) until eo_zones_free; failures are not cached, so a zone
 * installed later is found on the next call. */
typedef struct eo_zones eo_zones_t;

int eo_zones_new(eo_zones_t **out) EO_MUST_CHECK; /* 0 or EO_ENOMEM */
/* Frees every zone; no other thread may use the cache or a zone from it any more. NULL ok. */
void eo_zones_free(eo_zones_t *z);

/* The zone called name, loaded on first use (eo_zone_load's rules; the file is read without
 * holding the lock). NULL with err[0] == '\0' for "UTC"; NULL with the reason in err on a
 * failure, also when the cache already holds EO_ZONES_CACHE_MAX zones (errlen must be above 0
 * to tell the two apart). The zone is borrowed from the cache. Any thread; a lookup takes the
 * lock and compares names, so resolve a rule's zone once, not per event. */
const eo_tz_t *eo_zones_get(eo_zones_t *z, const char *name, char *err, size_t errlen);

#endif
