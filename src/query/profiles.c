/* Answers about profiles (see profiles.h). */
#include "query/profiles.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pg.h"
#include "domain/event.h"
#include "domain/json_out.h"
#include "domain/profile.h"

/* The user id (c.k: id, or the user it is an alias of), then its aliases in order of their ids
 * (at most $3 + 1, to tell a truncated list), each with its profile (NULL columns when it has
 * none) and the times of its stored events (each id as a user id: the index
 * events_tenant_user_time answers both ends). Times in microseconds. */
static const char profile_sql[] =
    "WITH c AS (SELECT coalesce((SELECT user_key FROM profile_aliases"
    "  WHERE tenant_id = $1::uuid AND alias_key = $2), $2) AS k),"
    " ks AS (SELECT 0 AS o, c.k FROM c"
    "  UNION ALL (SELECT 1, a.alias_key FROM profile_aliases AS a, c"
    "  WHERE a.tenant_id = $1::uuid AND a.user_key = c.k AND a.alias_key <> c.k"
    "  ORDER BY a.alias_key COLLATE \"C\" LIMIT $3::bigint + 1))"
    " SELECT ks.k, p.traits::text, p.trait_ranks::text,"
    " (extract(epoch FROM p.first_seen) * 1000000)::bigint,"
    " (extract(epoch FROM p.last_seen) * 1000000)::bigint,"
    " (extract(epoch FROM e.f) * 1000000)::bigint, (extract(epoch FROM e.l) * 1000000)::bigint"
    " FROM ks LEFT JOIN profiles AS p ON p.tenant_id = $1::uuid AND p.user_key = ks.k"
    " LEFT JOIN LATERAL (SELECT min(occurred_at) AS f, max(occurred_at) AS l FROM events"
    "  WHERE tenant_id = $1::uuid AND user_id = ks.k) AS e ON true"
    " ORDER BY ks.o, ks.k COLLATE \"C\"";

static const char group_sql[] =
    "SELECT group_type, traits::text, (extract(epoch FROM first_seen) * 1000000)::bigint,"
    " (extract(epoch FROM last_seen) * 1000000)::bigint FROM profile_groups"
    " WHERE tenant_id = $1::uuid AND group_key = $2 AND ($3::text IS NULL OR group_type = $3)"
    " ORDER BY group_type COLLATE \"C\"";

/* Widens [*first, *last] by the times in columns fc and lc of row i (NULL: none). */
static void seen(const PGresult *res, int i, int fc, int lc, int64_t *first, int64_t *last)
{
    if (!PQgetisnull(res, i, fc)) {
        int64_t f = strtoll(PQgetvalue(res, i, fc), NULL, 10);
        *first = *first == EO_NO_TIME || f < *first ? f : *first;
    }
    if (!PQgetisnull(res, i, lc)) {
        int64_t l = strtoll(PQgetvalue(res, i, lc), NULL, 10);
        *last = *last == EO_NO_TIME || l > *last ? l : *last;
    }
}

static void put_time(eo_buf_t *out, const char *name, int64_t us)
{
    eo_buf_putc(out, ',');
    eo_json_put_time(out, name, us);
}

/* Merges the traits of row i into traits and ranks; false when out of memory or when the
 * stored text is not JSON (never: jsonb wrote it). */
static bool merge_row(const PGresult *res, int i, json_t *traits, json_t *ranks)
{
    if (PQgetisnull(res, i, 1))
        return true;
    json_t *t = json_loads(PQgetvalue(res, i, 1), 0, NULL);
    json_t *r = json_loads(PQgetvalue(res, i, 2), 0, NULL);
    bool ok = t && r && eo_profile_merge(traits, ranks, t, r) == 0;
    json_decref(t);
    json_decref(r);
    return ok;
}

int eo_q_profile(PGconn *conn, const char *tenant_id, const char *id, int64_t max_aliases,
                 eo_buf_t *out, char *err, size_t errlen)
{
    char maxt[24];
    snprintf(maxt, sizeof maxt, "%lld", (long long)max_aliases);
    const char *p[] = {tenant_id, id, maxt};
    PGresult *res;
    int r = eo_pg_query(conn, profile_sql, 3, p, &res, err, errlen);
    if (r < 0)
        return r;
    int rows = PQntuples(res);
    bool truncated = rows > max_aliases + 1;
    if (truncated)
        rows = (int)max_aliases + 1;
    json_t *traits = json_object(), *ranks = json_object();
    int64_t first = EO_NO_TIME, last = EO_NO_TIME;
    bool found = rows > 1; /* a link */
    r = traits && ranks ? 0 : EO_ENOMEM;
    for (int i = 0; i < rows && r == 0; i++) {
        found = found || !PQgetisnull(res, i, 1) || !PQgetisnull(res, i, 5);
        seen(res, i, 3, 4, &first, &last);
        seen(res, i, 5, 6, &first, &last);
        if (!merge_row(res, i, traits, ranks)) {
            snprintf(err, errlen, "cannot merge the stored traits");
            r = EO_ENOMEM;
        }
    }
    if (r == 0 && !found)
        r = EO_ENOTFOUND;
    if (r == 0) {
        const char *user = PQgetvalue(res, 0, 0);
        eo_buf_puts(out, "{\"userId\":");
        eo_buf_put_json_str(out, user, strlen(user));
        eo_buf_puts(out, ",\"traits\":");
        eo_ignore(eo_json_append(out, traits)); /* a failure is the buffer's */
        put_time(out, "firstSeen", first);
        put_time(out, "lastSeen", last);
        eo_buf_puts(out, ",\"aliases\":[");
        for (int i = 1; i < rows; i++) {
            if (i > 1)
                eo_buf_putc(out, ',');
            eo_buf_put_json_str(out, PQgetvalue(res, i, 0), strlen(PQgetvalue(res, i, 0)));
        }
        eo_buf_putf(out, "],\"aliasesTruncated\":%s}", truncated ? "true" : "false");
        r = eo_buf_error(out) ? EO_ENOMEM : 0;
    }
    json_decref(traits);
    json_decref(ranks);
    PQclear(res);
    return r;
}

int eo_q_group(PGconn *conn, const char *tenant_id, const char *group_key, const char *group_type,
               eo_buf_t *out, char *err, size_t errlen)
{
    const char *p[] = {tenant_id, group_key, group_type};
    PGresult *res;
    int r = eo_pg_query(conn, group_sql, 3, p, &res, err, errlen);
    if (r < 0)
        return r;
    int rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return EO_ENOTFOUND;
    }
    eo_buf_puts(out, "{\"groupId\":");
    eo_buf_put_json_str(out, group_key, strlen(group_key));
    eo_buf_puts(out, ",\"groups\":[");
    for (int i = 0; i < rows; i++) {
        eo_buf_puts(out, i ? ",{\"groupType\":" : "{\"groupType\":");
        eo_buf_put_json_str(out, PQgetvalue(res, i, 0), strlen(PQgetvalue(res, i, 0)));
        eo_buf_puts(out, ",\"traits\":");
        eo_buf_puts(out, PQgetvalue(res, i, 1)); /* jsonb's text: JSON */
        int64_t first = EO_NO_TIME, last = EO_NO_TIME;
        seen(res, i, 2, 3, &first, &last);
        put_time(out, "firstSeen", first);
        put_time(out, "lastSeen", last);
        eo_buf_putc(out, '}');
    }
    eo_buf_puts(out, "]}");
    PQclear(res);
    return eo_buf_error(out) ? EO_ENOMEM : 0;
}
