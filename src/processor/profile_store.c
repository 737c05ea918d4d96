/* Profiles of stored events, written in the events' transaction (see profile_store.h). */
#include "processor/profile_store.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/pg.h"
#include "domain/profile.h"

struct eo_profile_store {
    eo_profile_batch_t *batch;
    eo_buf_t doc; /* the batch as JSON (eo_profile_batch_json) */
};

/* The batch's profiles, links and groups, each set in key order (so that concurrent
 * transactions cannot deadlock), merged into the stored rows by the rules of migration 0013. */
static const char profiles_sql[] =
    "WITH d AS (SELECT $1::jsonb AS j),"
    " p AS (INSERT INTO profiles AS p (tenant_id, user_key, traits, trait_ranks, first_seen,"
    "  last_seen)"
    "  SELECT x.t, x.k, x.traits, x.ranks, x.f, x.l FROM d, jsonb_to_recordset(d.j->'profiles')"
    "  AS x(t uuid, k text, traits jsonb, ranks jsonb, f timestamptz, l timestamptz)"
    "  ORDER BY 1, 2"
    "  ON CONFLICT (tenant_id, user_key) DO UPDATE SET (traits, trait_ranks) ="
    "  (SELECT * FROM eventops_merge_traits(p.traits, p.trait_ranks, EXCLUDED.traits,"
    "  EXCLUDED.trait_ranks)),"
    "  first_seen = least(p.first_seen, EXCLUDED.first_seen),"
    "  last_seen = greatest(p.last_seen, EXCLUDED.last_seen) RETURNING 1),"
    " a AS (INSERT INTO profile_aliases AS a (tenant_id, alias_key, user_key, linked_at,"
    "  message_id)"
    "  SELECT x.t, x.a, x.u, x.at, x.m FROM d, jsonb_to_recordset(d.j->'aliases')"
    "  AS x(t uuid, a text, u text, at timestamptz, m text) ORDER BY 1, 2"
    "  ON CONFLICT (tenant_id, alias_key) DO UPDATE SET user_key = EXCLUDED.user_key,"
    "  linked_at = EXCLUDED.linked_at, message_id = EXCLUDED.message_id"
    "  WHERE (EXCLUDED.linked_at, EXCLUDED.message_id COLLATE \"C\") <"
    "  (a.linked_at, a.message_id COLLATE \"C\") RETURNING 1),"
    " g AS (INSERT INTO profile_groups AS g (tenant_id, group_key, group_type, traits,"
    "  trait_ranks, first_seen, last_seen)"
    "  SELECT x.t, x.gk, x.gt, x.traits, x.ranks, x.f, x.l FROM d,"
    "  jsonb_to_recordset(d.j->'groups') AS x(t uuid, gk text, gt text, traits jsonb,"
    "  ranks jsonb, f timestamptz, l timestamptz) ORDER BY 1, 2, 3"
    "  ON CONFLICT (tenant_id, group_key, group_type) DO UPDATE SET (traits, trait_ranks) ="
    "  (SELECT * FROM eventops_merge_traits(g.traits, g.trait_ranks, EXCLUDED.traits,"
    "  EXCLUDED.trait_ranks)),"
    "  first_seen = least(g.first_seen, EXCLUDED.first_seen),"
    "  last_seen = greatest(g.last_seen, EXCLUDED.last_seen) RETURNING 1)"
    " SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM a), (SELECT count(*) FROM g)";

int eo_profile_store_new(eo_profile_store_t **out)
{
    eo_profile_store_t *ps = calloc(1, sizeof *ps);
    if (!ps || eo_profile_batch_new(&ps->batch) < 0) {
        free(ps);
        return EO_ENOMEM;
    }
    eo_buf_init(&ps->doc, (size_t)1 << 30);
    *out = ps;
    return 0;
}

void eo_profile_store_free(eo_profile_store_t *ps)
{
    if (!ps)
        return;
    eo_profile_batch_free(ps->batch);
    eo_buf_done(&ps->doc);
    free(ps);
}

/* Adds one record's changes; its properties text is parsed when it has no tree. */
static int add_record(eo_profile_store_t *ps, const eo_record_t *rec, char *err, size_t errlen)
{
    const eo_event_t *ev = &rec->ev;
    if (!eo_profile_touches(ev->event_type, ev->properties, ev->properties_text))
        return 0;
    json_t *props = ev->properties, *parsed = NULL;
    if (!props && ev->properties_text.s) {
        json_error_t je;
        if (!(props = parsed = json_loadb(ev->properties_text.s, ev->properties_text.len,
                                          JSON_REJECT_DUPLICATES, &je))) {
            snprintf(err, errlen, "an event's properties are not JSON: %s", je.text);
            return EO_EDATA;
        }
    }
    eo_profile_event_t pe = {rec->tenant_id, ev->event_type,     ev->user_id, ev->anonymous_id,
                             ev->message_id, ev->occurred_at_us, props};
    int r = eo_profile_batch_add(ps->batch, &pe);
    json_decref(parsed);
    if (r < 0)
        snprintf(err, errlen, "cannot merge the batch's profiles: %s", eo_strerror(r));
    return r;
}

int eo_profile_store_write(eo_profile_store_t *ps, PGconn *conn, eo_record_t *const *recs,
                           const size_t *idx, size_t n, char *err, size_t errlen)
{
    eo_profile_batch_reset(ps->batch);
    int r = 0;
    for (size_t k = 0; k < n && r == 0; k++)
        r = add_record(ps, recs[idx[k]], err, errlen);
    if (r < 0 || eo_profile_batch_empty(ps->batch))
        return r;
    eo_buf_reset(&ps->doc);
    if ((r = eo_profile_batch_json(ps->batch, &ps->doc)) < 0 ||
        (r = eo_buf_append_char(&ps->doc, '\0')) < 0) {
        snprintf(err, errlen, "cannot write the batch's profiles: %s", eo_strerror(r));
        return r == EO_ELIMIT ? EO_EDATA : r;
    }
    const char *p[] = {ps->doc.data};
    PGresult *res;
    r = eo_pg_query(conn, profiles_sql, 1, p, &res, err, errlen);
    PQclear(res);
    return r;
}
