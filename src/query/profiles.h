/* The query role's answers about profiles (docs/profiles.md): GET /profiles/{userId} and
 * GET /groups/{groupId}. The routes, credentials and connections are query.c's; this computes
 * the answers. */
#ifndef EO_QUERY_PROFILES_H
#define EO_QUERY_PROFILES_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* The profile of id in tenant: id, or the user id it is an alias of, with the traits of that
 * user's profile merged with those of the profiles of its aliases (at most max_aliases, in
 * order of their ids) by the ranks of their traits (domain/profile.h); first and last seen over
 * those profiles and the stored events of those ids. Appends
 *   {"userId","traits","firstSeen","lastSeen","aliases":[...],"aliasesTruncated"}
 * to out. Returns 0, EO_ENOTFOUND (no profile, link or event of id), EO_ENOMEM, or the database's
 * error code (message in err). */
int eo_q_profile(PGconn *conn, const char *tenant_id, const char *id, int64_t max_aliases,
                 eo_buf_t *out, char *err, size_t errlen) EO_MUST_CHECK;

/* The groups of key group_key in tenant (of type group_type only, unless NULL):
 *   {"groupId","groups":[{"groupType","traits","firstSeen","lastSeen"}]} (types in order).
 * Returns 0, EO_ENOTFOUND (none), EO_ENOMEM, or the database's error code. */
int eo_q_group(PGconn *conn, const char *tenant_id, const char *group_key, const char *group_type,
               eo_buf_t *out, char *err, size_t errlen) EO_MUST_CHECK;

#endif
