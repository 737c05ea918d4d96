/* Tracked properties in the processor (see prop_track.h). */
#include "processor/prop_track.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "core/pg.h"
#include "domain/buckets.h"
#include "domain/propval.h"
#include "domain/rfc3339.h"

#define TRACK_BUF_MAX ((size_t)1 << 30)
#define NARRAYS 7

typedef struct {
    char tenant[37];
    char *path; /* dotted */
    eo_proppath_t split;
    bool full;       /* the dictionary refused a value: it never takes another */
    bool complete;   /* named holds the whole (final) dictionary */
    eo_hmap_t named; /* values known to be in the dictionary */
} tracked_t;

/* One tracked path's value of one event. */
typedef struct {
    uint32_t path;
    bool named;
    size_t off, len; /* in pt->text */
} entry_t;

struct eo_prop_track {
    int64_t version;
    tracked_t *paths;
    size_t npaths, paths_cap;
    eo_hmap_t by_tenant; /* tenant id (36) -> index + 1 of its first path (paths sorted) */
    /* the last eo_prop_track_values call */
    entry_t *entries;
    size_t nentries, entries_cap;
    size_t *rec_first, rec_cap; /* per record index: first entry + 1 (0: none) */
    size_t *rec_count, count_cap;
    size_t nrec;
    eo_buf_t text;
    eo_buf_t arrays[NARRAYS];
};

eo_prop_track_t *eo_prop_track_new(void)
{
    eo_prop_track_t *pt = calloc(1, sizeof *pt);
    if (!pt)
        return NULL;
    pt->version = -1;
    eo_hmap_init(&pt->by_tenant);
    eo_buf_init(&pt->text, TRACK_BUF_MAX);
    for (int i = 0; i < NARRAYS; i++)
        eo_buf_init(&pt->arrays[i], TRACK_BUF_MAX);
    return pt;
}

static void paths_clear(eo_prop_track_t *pt)
{
    for (size_t i = 0; i < pt->npaths; i++) {
        free(pt->paths[i].path);
        eo_hmap_done(&pt->paths[i].named, NULL);
    }
    pt->npaths = 0;
    eo_hmap_done(&pt->by_tenant, NULL);
    eo_hmap_init(&pt->by_tenant);
}

void eo_prop_track_free(eo_prop_track_t *pt)
{
    if (!pt)
        return;
    paths_clear(pt);
    eo_hmap_done(&pt->by_tenant, NULL);
    free(pt->paths);
    free(pt->entries);
    free(pt->rec_first);
    free(pt->rec_count);
    eo_buf_done(&pt->text);
    for (int i = 0; i < NARRAYS; i++)
        eo_buf_done(&pt->arrays[i]);
    free(pt);
}

int64_t eo_prop_track_version(const eo_prop_track_t *pt)
{
    return pt->version;
}

int eo_prop_track_load(eo_prop_track_t *pt, PGconn *conn, char *err, size_t errlen)
{
    PGresult *res;
    int r = eo_pg_query(conn,
                        "SELECT v.version, tp.tenant_id::text, tp.path"
                        " FROM tracked_properties_version AS v"
                        " LEFT JOIN tracked_properties AS tp ON true ORDER BY 2, 3",
                        0, NULL, &res, err, errlen);
    if (r < 0)
        return r;
    paths_clear(pt);
    pt->version = -1;
    int rows = PQntuples(res);
    for (int i = 0; r == 0 && i < rows; i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        if (EO_ARRAY_RESERVE(pt->paths, pt->paths_cap, pt->npaths + 1, 16) < 0) {
            r = EO_ENOMEM;
            break;
        }
        tracked_t *t = &pt->paths[pt->npaths];
        memset(t, 0, sizeof *t);
        snprintf(t->tenant, sizeof t->tenant, "%s", PQgetvalue(res, i, 1));
        const char *path = PQgetvalue(res, i, 2);
        if (eo_proppath_parse(path, strlen(path), &t->split) < 0)
            continue; /* the table's CHECK keeps this from happening */
        if (!(t->path = strdup(path))) {
            r = EO_ENOMEM;
            break;
        }
        eo_hmap_init(&t->named);
        pt->npaths++;
        void *old;
        if (!eo_hmap_get(&pt->by_tenant, t->tenant, 36) &&
            eo_hmap_put(&pt->by_tenant, t->tenant, 36, (void *)(uintptr_t)pt->npaths, &old) < 0)
            r = EO_ENOMEM;
    }
    if (r == 0 && rows > 0)
        pt->version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (r < 0)
        snprintf(err, errlen, "cannot load the tracked properties: %s", eo_strerror(r));
    return r;
}

/* The index of the tenant's first tracked path, or SIZE_MAX. */
static size_t first_path(const eo_prop_track_t *pt, const char *tenant)
{
    uintptr_t at = (uintptr_t)eo_hmap_get(&pt->by_tenant, tenant, 36);
    return at ? (size_t)at - 1 : SIZE_MAX;
}

/* Adds the entries of one record's tracked paths. */
static int record_values(eo_prop_track_t *pt, const eo_record_t *rec, size_t at, char *err,
                         size_t errlen)
{
    size_t p = first_path(pt, rec->tenant_id);
    if (p == SIZE_MAX)
        return 0;
    json_t *parsed = NULL;
    const json_t *props = rec->ev.properties;
    if (!props && rec->ev.properties_text.s) {
        json_error_t je;
        parsed = json_loadb(rec->ev.properties_text.s, rec->ev.properties_text.len,
                            JSON_REJECT_DUPLICATES, &je);
        if (!parsed) {
            snprintf(err, errlen, "cannot read an event's properties: %s", je.text);
            return EO_EDATA;
        }
        props = parsed;
    }
    int r = 0;
    pt->rec_first[at] = pt->nentries + 1;
    for (; r == 0 && p < pt->npaths && !memcmp(pt->paths[p].tenant, rec->tenant_id, 36); p++) {
        size_t off = pt->text.len;
        int got = eo_propval_text(props, &pt->paths[p].split, &pt->text);
        if (got < 0) {
            snprintf(err, errlen, "cannot take the value of %s: %s", pt->paths[p].path,
                     eo_strerror(got));
            r = got == EO_ELIMIT || got == EO_EINVAL ? EO_EDATA : got;
            break;
        }
        if (got == 0)
            continue; /* missing or null: "(none)", no row */
        if (EO_ARRAY_RESERVE(pt->entries, pt->entries_cap, pt->nentries + 1, 64) < 0) {
            r = EO_ENOMEM;
            break;
        }
        pt->entries[pt->nentries++] = (entry_t){(uint32_t)p, false, off, pt->text.len - off};
        pt->rec_count[at]++;
    }
    json_decref(parsed);
    return r;
}

static bool cached(const tracked_t *t, const char *value, size_t len)
{
    return eo_hmap_get(&t->named, value, len) != NULL;
}

/* Caches the whole dictionary of a full path (at most its cap of values; final: a full
 * dictionary never changes). */
static int load_dictionary(tracked_t *t, PGconn *conn, char *err, size_t errlen)
{
    const char *p[] = {t->tenant, t->path};
    PGresult *res;
    int r = eo_pg_query(
        conn, "SELECT value FROM property_values WHERE tenant_id = $1::uuid AND path = $2", 2, p,
        &res, err, errlen);
    for (int i = 0; r == 0 && i < PQntuples(res); i++) {
        void *old;
        if (eo_hmap_put(&t->named, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0), (void *)1,
                        &old) < 0)
            r = EO_ENOMEM;
    }
    PQclear(res);
    if (r == 0)
        t->complete = true;
    else if (r == EO_ENOMEM)
        snprintf(err, errlen, "out of memory");
    return r;
}

/* Asks the dictionary about the entries' values that are neither cached nor on a full path. */
static int ask_dictionary(eo_prop_track_t *pt, PGconn *conn, char *err, size_t errlen)
{
    eo_hmap_t asked; /* path index + value -> 1: each once */
    eo_hmap_init(&asked);
    eo_buf_t key;
    eo_buf_init(&key, TRACK_BUF_MAX);
    size_t *which = NULL, nwhich = 0, which_cap = 0; /* entry of each asked value */
    for (int i = 0; i < 3; i++)
        eo_buf_reset(&pt->arrays[i]);
    int r = 0;
    for (size_t e = 0; r == 0 && e < pt->nentries; e++) {
        const entry_t *en = &pt->entries[e];
        tracked_t *t = &pt->paths[en->path];
        const char *v = pt->text.data + en->off;
        if (t->full || cached(t, v, en->len))
            continue;
        eo_buf_reset(&key);
        eo_buf_put(&key, &en->path, sizeof en->path);
        eo_buf_put(&key, v, en->len);
        if ((r = eo_buf_error(&key)) < 0)
            break;
        if (eo_hmap_get(&asked, key.data, key.len))
            continue;
        void *old;
        if ((r = eo_hmap_put(&asked, key.data, key.len, (void *)1, &old)) < 0 ||
            EO_ARRAY_RESERVE(which, which_cap, nwhich + 1, 64) < 0) {
            r = EO_ENOMEM;
            break;
        }
        which[nwhich++] = e;
        eo_pg_array_elem(&pt->arrays[0], t->tenant, 36);
        eo_pg_array_str(&pt->arrays[1], t->path, strlen(t->path));
        eo_pg_array_str(&pt->arrays[2], v, en->len);
    }
    eo_hmap_done(&asked, NULL);
    eo_buf_done(&key);
    if (r < 0 || nwhich == 0) {
        free(which);
        if (r < 0)
            snprintf(err, errlen, "cannot gather the batch's property values: %s", eo_strerror(r));
        return r;
    }
    const char *params[3];
    for (int i = 0; i < 3; i++) {
        eo_pg_array_close(&pt->arrays[i]);
        r = r ? r : eo_buf_error(&pt->arrays[i]);
        params[i] = pt->arrays[i].data;
    }
    PGresult *res = NULL;
    if (r < 0)
        snprintf(err, errlen, "cannot build the batch's property values: %s", eo_strerror(r));
    else
        r = eo_pg_query(conn,
                        "SELECT i, named FROM eventops_property_values($1::uuid[], $2::text[],"
                        " $3::text[])",
                        3, params, &res, err, errlen);
    for (int row = 0; r == 0 && row < PQntuples(res); row++) {
        unsigned long long ord = strtoull(PQgetvalue(res, row, 0), NULL, 10);
        if (ord < 1 || ord > nwhich)
            continue;
        const entry_t *en = &pt->entries[which[ord - 1]];
        tracked_t *t = &pt->paths[en->path];
        if (strcmp(PQgetvalue(res, row, 1), "t") != 0) {
            t->full = true; /* loaded whole below */
            continue;
        }
        void *old;
        if (eo_hmap_put(&t->named, pt->text.data + en->off, en->len, (void *)1, &old) < 0)
            r = EO_ENOMEM;
    }
    PQclear(res);
    free(which);
    return r;
}

int eo_prop_track_values(eo_prop_track_t *pt, PGconn *conn, eo_record_t *const *recs,
                         const size_t *idx, size_t n, char *err, size_t errlen)
{
    pt->nentries = 0;
    pt->nrec = 0;
    eo_buf_reset(&pt->text);
    if (pt->npaths == 0 || n == 0)
        return 0;
    size_t nrec = 0;
    for (size_t k = 0; k < n; k++)
        if (idx[k] + 1 > nrec)
            nrec = idx[k] + 1;
    if (EO_ARRAY_RESERVE(pt->rec_first, pt->rec_cap, nrec, 64) < 0 ||
        EO_ARRAY_RESERVE(pt->rec_count, pt->count_cap, nrec, 64) < 0) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    memset(pt->rec_first, 0, nrec * sizeof *pt->rec_first);
    memset(pt->rec_count, 0, nrec * sizeof *pt->rec_count);
    pt->nrec = nrec;
    int r = 0;
    for (size_t k = 0; r == 0 && k < n; k++)
        r = record_values(pt, recs[idx[k]], idx[k], err, errlen);
    if (r == 0 && (r = eo_buf_error(&pt->text)) < 0)
        snprintf(err, errlen, "cannot hold the batch's property values: %s", eo_strerror(r));
    if (r == 0)
        r = ask_dictionary(pt, conn, err, errlen);
    /* a path found full has its final dictionary: all of it is cached, so that a value another
     * processor entered before it filled up is named here too */
    for (size_t i = 0; r == 0 && i < pt->npaths; i++)
        if (pt->paths[i].full && !pt->paths[i].complete)
            r = load_dictionary(&pt->paths[i], conn, err, errlen);
    for (size_t e = 0; r == 0 && e < pt->nentries; e++) {
        entry_t *en = &pt->entries[e];
        en->named = cached(&pt->paths[en->path], pt->text.data + en->off, en->len);
    }
    return r;
}

/* ---- the deltas ---- */

typedef struct {
    uint32_t path;
    bool named;
    eo_str_t type; /* empty: all types */
    int64_t hour;
    size_t off, len; /* the value in pt->text (named only) */
    int64_t count;
} row_t;

long eo_prop_track_write(eo_prop_track_t *pt, PGconn *conn, eo_record_t *const *recs,
                         const size_t *idx, size_t n, char *err, size_t errlen)
{
    if (pt->nentries == 0)
        return 0;
    eo_hmap_t index; /* row key -> row + 1 */
    eo_hmap_init(&index);
    eo_buf_t key;
    eo_buf_init(&key, TRACK_BUF_MAX);
    row_t *rows = NULL;
    size_t nrows = 0, rows_cap = 0;
    int r = 0;
    for (size_t k = 0; r == 0 && k < n; k++) {
        size_t at = idx[k];
        if (at >= pt->nrec || !pt->rec_first[at])
            continue;
        const eo_record_t *rec = recs[at];
        int64_t hour = eo_floor_to(rec->ev.occurred_at_us, EO_US_PER_HOUR);
        for (size_t e = pt->rec_first[at] - 1;
             r == 0 && e < pt->rec_first[at] - 1 + pt->rec_count[at]; e++) {
            const entry_t *en = &pt->entries[e];
            for (int all = 0; r == 0 && all < 2; all++) {
                row_t row = {en->path, en->named, all ? (eo_str_t){"", 0} : rec->ev.event_type,
                             hour,     en->off,   en->named ? en->len : 0,
                             1};
                eo_buf_reset(&key);
                eo_buf_put(&key, &row.path, sizeof row.path);
                eo_buf_put(&key, &row.hour, sizeof row.hour);
                eo_buf_putc(&key, row.named ? 'v' : 'o');
                uint32_t tl = (uint32_t)row.type.len;
                eo_buf_put(&key, &tl, sizeof tl);
                eo_buf_put(&key, row.type.s, row.type.len);
                eo_buf_put(&key, pt->text.data + row.off, row.len);
                if ((r = eo_buf_error(&key)) < 0)
                    break;
                uintptr_t found = (uintptr_t)eo_hmap_get(&index, key.data, key.len);
                if (found) {
                    rows[found - 1].count++;
                    continue;
                }
                void *old;
                if (EO_ARRAY_RESERVE(rows, rows_cap, nrows + 1, 64) < 0 ||
                    eo_hmap_put(&index, key.data, key.len, (void *)(uintptr_t)(nrows + 1), &old) <
                        0) {
                    r = EO_ENOMEM;
                    break;
                }
                rows[nrows++] = row;
            }
        }
    }
    eo_hmap_done(&index, NULL);
    eo_buf_done(&key);
    for (int i = 0; i < NARRAYS; i++)
        eo_buf_reset(&pt->arrays[i]);
    for (size_t i = 0; r == 0 && i < nrows; i++) {
        const row_t *row = &rows[i];
        const tracked_t *t = &pt->paths[row->path];
        char text[EO_RFC3339_MAX > EO_I64_TEXT ? EO_RFC3339_MAX : EO_I64_TEXT];
        eo_pg_array_elem(&pt->arrays[0], t->tenant, 36);
        eo_pg_array_str(&pt->arrays[1], t->path, strlen(t->path));
        eo_pg_array_str(&pt->arrays[2], row->type.s, row->type.len);
        eo_pg_array_elem(&pt->arrays[3], text, eo_rfc3339_format(row->hour, text));
        eo_pg_array_elem(&pt->arrays[4], row->named ? "f" : "t", 1);
        eo_pg_array_str(&pt->arrays[5], pt->text.data + row->off, row->len);
        eo_pg_array_elem(&pt->arrays[6], text, eo_fmt_i64(text, row->count));
    }
    free(rows);
    const char *params[NARRAYS];
    for (int i = 0; i < NARRAYS; i++) {
        eo_pg_array_close(&pt->arrays[i]);
        r = r ? r : eo_buf_error(&pt->arrays[i]);
        params[i] = pt->arrays[i].data;
    }
    if (r < 0) {
        snprintf(err, errlen, "cannot build the batch's property deltas: %s", eo_strerror(r));
        return r == EO_ELIMIT ? EO_EDATA : r;
    }
    if (nrows == 0)
        return 0;
    PGresult *res;
    r = eo_pg_query(conn,
                    "INSERT INTO property_rollup_deltas (tenant_id, path, event_type, bucket_start,"
                    " overflow, value, count) SELECT * FROM unnest($1::uuid[], $2::text[],"
                    " $3::text[], $4::timestamptz[], $5::boolean[], $6::text[], $7::bigint[])",
                    NARRAYS, params, &res, err, errlen);
    PQclear(res);
    return r < 0 ? r : (long)nrows;
}
