/* PostgreSQL event store (see pg_store.h). A store is used by one thread at a time: the storage
 * worker that owns it, or the processor loop while the workers wait. */
#include "processor/pg_store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "core/pg.h"
#include "domain/json_out.h"
#include "domain/rfc3339.h"
#include "domain/rollup_delta.h"
#include "domain/timeline.h"
#include "domain/userset.h"
#include "domain/uuid7.h"
#include "processor/profile_store.h"
#include "processor/prop_track.h"

#define STORE_COPY_MAX ((size_t)1 << 30)
#define ARRAYS (sizeof((pg_store_t *)0)->arrays / sizeof((pg_store_t *)0)->arrays[0])

/* A set of 36-character tenant ids (open addressing, grows at half load). */
typedef struct {
    char (*ids)[37];
    size_t cap, count;
} tenant_set_t;

typedef struct {
    eo_store_t base; /* first: the port's functions cast back */
    char *dsn;
    PGconn *conn;
    bool ok;
    tenant_set_t tenants;
    int64_t *days; /* days (since epoch) whose partition exists, sorted */
    size_t ndays, days_cap;
    eo_buf_t copy;
    eo_buf_t scratch;
    /* one write's working memory, kept between writes */
    size_t *slots, slots_cap; /* hash table of first occurrences (SIZE_MAX: empty) */
    size_t *first, first_cap; /* indices of the first occurrences, in batch order */
    bool *went_in;            /* per first occurrence: event_ids took it */
    size_t went_in_cap;
    eo_rollup_event_t *stored; /* the rows that went in */
    size_t stored_cap;
    eo_buf_t arrays[8]; /* array parameters, binary (array_send's format) */
    size_t counts[8];   /* their elements */
    int array_err;      /* the first element that could not be written (a tenant id) */
    /* user numbers (ADR-22): tenant id (36 characters) + user key -> number + 1; a number never
     * changes once given, so the cache is never stale. Two generations: new entries go into
     * users; when it holds users_max, old (the generation before) is dropped and users becomes
     * old; a hit in old is copied into users. So users seen within the last generation stay
     * cached and memory stays under 2 x users_max entries. */
    eo_hmap_t users, old_users;
    size_t users_max;
    uint32_t *rec_user;
    size_t rec_user_cap;      /* per record of the batch: its user's number */
    size_t *asked, asked_cap; /* records whose user was not cached, in array order */
    size_t *dup, dup_cap;     /* pairs (record, earlier record with the same user) */
    eo_userset_event_t *set_events;
    size_t set_events_cap;
    eo_buf_t blob, tblob;         /* the batch's serialised user-set and timeline deltas */
    eo_prop_track_t *props;       /* tracked properties (ADR-24) */
    eo_profile_store_t *profiles; /* profiles, links and groups (ADR-28) */
    unsigned careful;         /* batches left that insert their ids with ON CONFLICT (ids_sql) */
    unsigned careful_numbers; /* asks left that go to user_numbers_sql */
} pg_store_t;

/* After a batch whose plain insert of its ids met a stored one, this many batches go straight
 * to the ON CONFLICT statement (a redelivery after a crash is usually several batches of
 * stored events); then the plain insert is tried again. */
#define CAREFUL_BATCHES 16u

static const char setup_sql[] = "SET TimeZone = 'UTC';"
                                "SET client_min_messages = warning;";

/* The batch's first occurrences go into event_ids in key order (so that concurrent transactions
 * cannot deadlock); those already stored are skipped. Answers the ordinals (1-based, in the
 * order of the arrays) of the ones that went in. */
static const char ids_sql[] =
    "WITH u AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])"
    "  WITH ORDINALITY AS u(tenant_id, message_id, occurred_at, i)),"
    " ins AS ("
    "  INSERT INTO event_ids (tenant_id, message_id, occurred_at)"
    "  SELECT tenant_id, message_id, occurred_at FROM u ORDER BY tenant_id, message_id"
    "  ON CONFLICT DO NOTHING RETURNING tenant_id, message_id)"
    "SELECT u.i FROM u JOIN ins USING (tenant_id, message_id)";

/* The same when no id of the batch is stored yet (nearly always): a plain insert costs a third
 * less than ON CONFLICT's (which probes the index before it inserts, ~3.8 us per row here);
 * every row goes in, or the statement fails with unique_violation (23505) and the transaction
 * starts again with ids_sql. */
static const char ids_plain_sql[] =
    "INSERT INTO event_ids (tenant_id, message_id, occurred_at)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) ORDER BY 1, 2";

/* The new rows, straight into events (PostgreSQL routes them to their daily partitions). */
static const char copy_sql[] =
    "COPY events (tenant_id, message_id, event_type, user_id, anonymous_id, occurred_at,"
    " received_at, sent_at, properties, context) FROM STDIN (FORMAT binary)";

/* The batch's rollup rows (domain/rollup_delta.h: one per key, merged by the processor), added
 * in key order so that concurrent transactions cannot deadlock. Answers the version of the
 * tracked properties (ADR-24) in the same statement: no round trip of its own. */
static const char rollups_sql[] =
    "WITH ins AS (INSERT INTO rollups AS r (tenant_id, granularity, event_type, bucket_start,"
    " count)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])"
    " ORDER BY 1, 2, 3, 4"
    " ON CONFLICT (tenant_id, granularity, event_type, bucket_start)"
    " DO UPDATE SET count = r.count + EXCLUDED.count RETURNING 1)"
    " SELECT version FROM tracked_properties_version";

/* The numbers of the keys not yet numbered are given outside the events' transaction (see
 * eventops_user_numbers in sql/migrations/0007_user_sets.sql). */
static const char user_numbers_sql[] =
    "SELECT i, user_no FROM eventops_user_numbers($1::uuid[], $2::text[])";

/* The same without ON CONFLICT on user_ids (migration 0011): a quarter less of PostgreSQL's CPU
 * per new key; fails with unique_violation when another transaction numbered one of the keys
 * meanwhile, and user_numbers_sql is asked instead. */
static const char user_numbers_plain_sql[] =
    "SELECT i, user_no FROM eventops_user_numbers_plain($1::uuid[], $2::text[])";

/* The batch's user-set deltas (domain/userset.h) and timeline deltas (domain/timeline.h), in
 * the events' transaction, one statement. */
static const char derived_deltas_sql[] =
    "WITH u AS (INSERT INTO user_set_deltas (tenant_id, event_type, bucket_start, users)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bytea[])),"
    " t AS (INSERT INTO timeline_deltas (tenant_id, event_type, bucket_start, events)"
    " SELECT * FROM unnest($5::uuid[], $6::text[], $7::timestamptz[], $8::bytea[]))"
    " SELECT 1";

static size_t hash_id(const char *id)
{
    return (size_t)eo_hash_mem(id, 36);
}

static bool tenant_known(const tenant_set_t *s, const char *id)
{
    if (!s->cap)
        return false;
    for (size_t i = hash_id(id) & (s->cap - 1); s->ids[i][0]; i = (i + 1) & (s->cap - 1))
        if (!memcmp(s->ids[i], id, 36))
            return true;
    return false;
}

static int tenant_add(tenant_set_t *s, const char *id)
{
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char(*ids)[37] = calloc(cap, 37);
        if (!ids)
            return EO_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->ids[i][0])
                continue;
            size_t j = hash_id(s->ids[i]) & (cap - 1);
            while (ids[j][0])
                j = (j + 1) & (cap - 1);
            memcpy(ids[j], s->ids[i], 37);
        }
        free(s->ids);
        s->ids = ids;
        s->cap = cap;
    }
    size_t j = hash_id(id) & (s->cap - 1);
    while (s->ids[j][0]) {
        if (!memcmp(s->ids[j], id, 36))
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    memcpy(s->ids[j], id, 36);
    s->ids[j][36] = '\0';
    s->count++;
    return 0;
}

static const eo_store_ops_t pg_ops;
static void pg_free(eo_store_t *base);

int eo_pg_store_new(const char *dsn, size_t user_cache_entries, eo_store_t **out)
{
    pg_store_t *st = calloc(1, sizeof *st);
    if (!st || !(st->dsn = strdup(dsn))) {
        free(st);
        return EO_ENOMEM;
    }
    st->base.ops = &pg_ops;
    eo_buf_init(&st->copy, STORE_COPY_MAX);
    eo_buf_init(&st->scratch, STORE_COPY_MAX);
    for (size_t i = 0; i < ARRAYS; i++)
        eo_buf_init(&st->arrays[i], STORE_COPY_MAX);
    eo_hmap_init(&st->users);
    eo_hmap_init(&st->old_users);
    st->users_max = user_cache_entries ? user_cache_entries : 65536;
    eo_buf_init(&st->blob, STORE_COPY_MAX);
    eo_buf_init(&st->tblob, STORE_COPY_MAX);
    if (!(st->props = eo_prop_track_new()) || eo_profile_store_new(&st->profiles) < 0) {
        pg_free(&st->base);
        return EO_ENOMEM;
    }
    *out = &st->base;
    return 0;
}

static void pg_free(eo_store_t *base)
{
    pg_store_t *st = (pg_store_t *)base;
    PQfinish(st->conn);
    free(st->tenants.ids);
    free(st->days);
    eo_buf_done(&st->copy);
    eo_buf_done(&st->scratch);
    for (size_t i = 0; i < ARRAYS; i++)
        eo_buf_done(&st->arrays[i]);
    free(st->slots);
    free(st->went_in);
    free(st->first);
    free(st->stored);
    eo_hmap_done(&st->users, NULL);
    eo_hmap_done(&st->old_users, NULL);
    free(st->rec_user);
    free(st->asked);
    free(st->dup);
    free(st->set_events);
    eo_buf_done(&st->blob);
    eo_buf_done(&st->tblob);
    eo_prop_track_free(st->props);
    eo_profile_store_free(st->profiles);
    free(st->dsn);
    free(st);
}

static bool pg_ok(const eo_store_t *base)
{
    return ((const pg_store_t *)base)->ok;
}

/* Connects (again) when needed. */
static int ensure_conn(pg_store_t *st, char *err, size_t errlen)
{
    if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
        return 0;
    PQfinish(st->conn);
    st->conn = NULL;
    int r = eo_pg_connect(st->dsn, &st->conn, err, errlen);
    if (r < 0)
        return st->ok = false, r;
    if ((r = eo_pg_exec(st->conn, setup_sql, err, errlen)) < 0) {
        PQfinish(st->conn);
        st->conn = NULL;
        return st->ok = false, r;
    }
    return 0;
}

static int finish_call(pg_store_t *st, int r)
{
    st->ok = r == 0 || r == EO_EDATA;
    if (r < 0 && st->conn && PQstatus(st->conn) == CONNECTION_OK &&
        PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        char ignored[128];
        eo_ignore(eo_pg_exec(st->conn, "ROLLBACK", ignored, sizeof ignored));
    }
    return r;
}

static bool day_known(const pg_store_t *st, int64_t day)
{
    size_t lo = 0, hi = st->ndays;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (st->days[mid] == day)
            return true;
        if (st->days[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static int day_add(pg_store_t *st, int64_t day)
{
    if (day_known(st, day))
        return 0;
    if (EO_ARRAY_RESERVE(st->days, st->days_cap, st->ndays + 1, 64) < 0)
        return EO_ENOMEM;
    size_t i = st->ndays;
    while (i > 0 && st->days[i - 1] > day) {
        st->days[i] = st->days[i - 1];
        i--;
    }
    st->days[i] = day;
    st->ndays++;
    return 0;
}

static int64_t day_of(int64_t us)
{
    int64_t d = us / 86400000000LL;
    return (us < 0 && us % 86400000000LL) ? d - 1 : d;
}

static int ensure_day(pg_store_t *st, int64_t day, char *err, size_t errlen)
{
    if (day_known(st, day))
        return 0;
    int64_t y;
    unsigned m, d;
    eo_civil_from_days(day, &y, &m, &d);
    char date[16];
    snprintf(date, sizeof date, "%04lld-%02u-%02u", (long long)y, m, d);
    const char *params[] = {date};
    PGresult *res;
    int r = eo_pg_query(st->conn, "SELECT eventops_ensure_partition($1::date)", 1, params, &res,
                        err, errlen);
    PQclear(res);
    return r < 0 ? r : day_add(st, day);
}

static int pg_ping(eo_store_t *base, char *err, size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    int r = ensure_conn(st, err, errlen);
    if (r == 0)
        r = eo_pg_exec(st->conn, "SELECT 1", err, errlen);
    return finish_call(st, r);
}

static int pg_ensure_ahead(eo_store_t *base, int64_t now_us, int64_t ahead_days, char *err,
                           size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    int r = ensure_conn(st, err, errlen);
    int64_t today = day_of(now_us);
    for (int64_t day = today - 1; r == 0 && day <= today + ahead_days; day++)
        r = ensure_day(st, day, err, errlen);
    return finish_call(st, r);
}

static int pg_check_tenants(eo_store_t *base, eo_record_t *const *recs, size_t n, bool *known,
                            char *err, size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    eo_buf_t missing;
    eo_buf_init(&missing, (size_t)1 << 26);
    tenant_set_t asked = {NULL, 0, 0}; /* each unknown tenant goes into the query once */
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        known[i] = tenant_known(&st->tenants, recs[i]->tenant_id);
        if (known[i] || tenant_known(&asked, recs[i]->tenant_id))
            continue;
        r = tenant_add(&asked, recs[i]->tenant_id);
        eo_buf_putf(&missing, "%s%s", missing.len ? "," : "{", recs[i]->tenant_id);
        r = r ? r : eo_buf_error(&missing);
    }
    free(asked.ids);
    if (r == 0 && missing.len > 0) {
        eo_buf_putc(&missing, '}');
        if ((r = eo_buf_error(&missing)) == 0)
            r = ensure_conn(st, err, errlen);
        PGresult *res = NULL;
        const char *params[] = {missing.data};
        if (r == 0)
            r = eo_pg_query(st->conn,
                            "SELECT tenant_id::text FROM tenants WHERE tenant_id = ANY($1::uuid[])",
                            1, params, &res, err, errlen);
        for (int row = 0; r == 0 && row < PQntuples(res); row++)
            r = tenant_add(&st->tenants, PQgetvalue(res, row, 0));
        PQclear(res);
        for (size_t i = 0; i < n && r == 0; i++)
            known[i] = tenant_known(&st->tenants, recs[i]->tenant_id);
        r = finish_call(st, r);
    }
    eo_buf_done(&missing);
    return r;
}

/* ---- the rows in PostgreSQL's binary COPY format ("COPY", "Binary Format"): a header; per
 * row its field count and each field as a length (-1: NULL) and its bytes, big-endian; a
 * trailer. uuid is its 16 bytes, timestamptz microseconds since 2000-01-01 UTC, jsonb a version
 * byte (1) and the JSON text: no text escaping, and no uuid or time parsing in the backend. */

#define PG_EPOCH_US 946684800000000LL /* 2000-01-01T00:00:00Z */
#define EVENTS_COLUMNS 10

/* "PGCOPY\n\377\r\n\0", the flags (0) and the header extension's length (0) */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static void put_be(eo_buf_t *b, uint64_t v, int bytes)
{
    unsigned char out[8];
    for (int i = 0; i < bytes; i++)
        out[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    eo_buf_put(b, out, (size_t)bytes);
}

/* A field's length; EO_ELIMIT past what the format holds. */
static int put_len(eo_buf_t *b, size_t n)
{
    if (n > INT32_MAX)
        return EO_ELIMIT;
    put_be(b, n, 4);
    return 0;
}

static void put_null(eo_buf_t *b)
{
    put_be(b, 0xffffffffu, 4);
}

static int bin_str(eo_buf_t *b, eo_str_t s)
{
    if (!s.s) {
        put_null(b);
        return 0;
    }
    int r = put_len(b, s.len);
    eo_buf_put(b, s.s, s.len);
    return r;
}

static void bin_time(eo_buf_t *b, int64_t us)
{
    if (us == EO_NO_TIME) {
        put_null(b);
        return;
    }
    put_be(b, 8, 4);
    put_be(b, (uint64_t)(us - PG_EPOCH_US), 8);
}

/* A UUID in its 8-4-4-4-12 text form (the records' tenant ids are canonical). */
static int bin_uuid(eo_buf_t *b, const char *text)
{
    uint8_t out[16];
    if (eo_uuid_parse(text, out) < 0)
        return EO_EINVAL;
    put_be(b, 16, 4);
    eo_buf_put(b, out, 16);
    return 0;
}

/* jsonb of obj (or text, when set: the decoder kept the normal-form text). Returns 0, or the
 * error of the JSON text (an append to b is checked with eo_buf_error). */
static int bin_json(eo_buf_t *b, eo_buf_t *scratch, json_t *obj, eo_str_t text)
{
    if (!text.s && obj) {
        eo_buf_reset(scratch);
        int r = eo_json_append(scratch, obj);
        if (r < 0)
            return r;
        text = (eo_str_t){scratch->data, scratch->len};
    } else if (!text.s) {
        text = (eo_str_t){"{}", 2};
    }
    int r = put_len(b, text.len + 1);
    eo_buf_putc(b, 1);
    eo_buf_put(b, text.s, text.len);
    return r;
}

/* Appends one row. Returns 0 or the first error. */
static int append_row(eo_buf_t *b, eo_buf_t *scratch, const eo_record_t *rec)
{
    const eo_event_t *ev = &rec->ev;
    put_be(b, EVENTS_COLUMNS, 2);
    int r = bin_uuid(b, rec->tenant_id);
    r = r ? r : bin_str(b, ev->message_id);
    r = r ? r : bin_str(b, ev->event_type);
    r = r ? r : bin_str(b, ev->user_id);
    r = r ? r : bin_str(b, ev->anonymous_id);
    bin_time(b, ev->occurred_at_us);
    bin_time(b, rec->received_at_us);
    bin_time(b, ev->sent_at_us);
    r = r ? r : bin_json(b, scratch, ev->properties, ev->properties_text);
    r = r ? r : bin_json(b, scratch, ev->context, ev->context_text);
    return r ? r : eo_buf_error(b);
}

/* ---- one write: first occurrences, event_ids, COPY into events, rollups ---- */

static uint64_t key_hash(const eo_record_t *rec)
{
    return eo_hash_mem(rec->tenant_id, 36) * 31 ^
           eo_hash_mem(rec->ev.message_id.s, rec->ev.message_id.len);
}

static bool key_equal(const eo_record_t *a, const eo_record_t *b)
{
    return memcmp(a->tenant_id, b->tenant_id, 36) == 0 &&
           a->ev.message_id.len == b->ev.message_id.len &&
           memcmp(a->ev.message_id.s, b->ev.message_id.s, a->ev.message_id.len) == 0;
}

/* st->first: the index of each (tenant, messageId)'s first occurrence in recs, in batch order
 * (a messageId repeated inside the batch keeps its first). Returns how many, or EO_ENOMEM. */
static long first_occurrences(pg_store_t *st, eo_record_t *const *recs, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (EO_ARRAY_RESERVE(st->slots, st->slots_cap, cap, 16) < 0 ||
        EO_ARRAY_RESERVE(st->first, st->first_cap, n, 16) < 0)
        return EO_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        st->slots[i] = SIZE_MAX;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)key_hash(recs[i]) & (cap - 1);
        while (st->slots[j] != SIZE_MAX && !key_equal(recs[st->slots[j]], recs[i]))
            j = (j + 1) & (cap - 1);
        if (st->slots[j] == SIZE_MAX) {
            st->slots[j] = i;
            st->first[count++] = i;
        }
    }
    return (long)count;
}

/* ---- array parameters in binary: no text for PostgreSQL's array_in to parse ---- */

/* pg_type OIDs of the elements */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_TEXT = 25, OID_TIMESTAMPTZ = 1184, OID_UUID = 2950 };

/* Starts the first n arrays with their element types: one dimension, no NULLs, the count
 * written when they are closed. */
static void arrays_begin(pg_store_t *st, size_t n, const uint32_t *oids)
{
    st->array_err = 0;
    for (size_t i = 0; i < n; i++) {
        eo_buf_t *b = &st->arrays[i];
        eo_buf_reset(b);
        st->counts[i] = 0;
        put_be(b, 1, 4);       /* dimensions */
        put_be(b, 0, 4);       /* flags: no NULL */
        put_be(b, oids[i], 4); /* element type */
        put_be(b, 0, 4);       /* elements: set by arrays_close */
        put_be(b, 1, 4);       /* lower bound */
    }
}

static void arr_uuid(pg_store_t *st, size_t i, const char *text)
{
    if (bin_uuid(&st->arrays[i], text) < 0 && !st->array_err)
        st->array_err = EO_EINVAL;
    st->counts[i]++;
}

static void arr_bytes(pg_store_t *st, size_t i, const void *p, size_t n)
{
    if (put_len(&st->arrays[i], n) < 0 && !st->array_err)
        st->array_err = EO_ELIMIT;
    eo_buf_put(&st->arrays[i], p, n);
    st->counts[i]++;
}

static void arr_time(pg_store_t *st, size_t i, int64_t us)
{
    put_be(&st->arrays[i], 8, 4);
    put_be(&st->arrays[i], (uint64_t)(us - PG_EPOCH_US), 8);
    st->counts[i]++;
}

static void arr_i64(pg_store_t *st, size_t i, int64_t v)
{
    put_be(&st->arrays[i], 8, 4);
    put_be(&st->arrays[i], (uint64_t)v, 8);
    st->counts[i]++;
}

/* The user keys' arrays: tenant ids and keys. */
static const uint32_t key_oids[] = {OID_UUID, OID_TEXT};

/* Writes each array's count (an empty one becomes a zero-dimension array) and fills params
 * and lengths; 0 or the first error. */
static int arrays_close(pg_store_t *st, size_t n, const char **params, int *lengths)
{
    int r = st->array_err;
    for (size_t i = 0; i < n; i++) {
        eo_buf_t *b = &st->arrays[i];
        r = r ? r : eo_buf_error(b);
        if (r == 0 && (st->counts[i] > INT32_MAX || b->len > INT32_MAX))
            r = EO_ELIMIT;
        if (r < 0)
            break;
        unsigned char *h = (unsigned char *)b->data;
        if (st->counts[i] == 0) {
            memset(h, 0, 4); /* dimensions 0: flags and type follow, nothing else */
            b->len = 12;
        } else {
            for (int k = 0; k < 4; k++)
                h[12 + k] = (unsigned char)(st->counts[i] >> (8 * (3 - k)));
        }
        params[i] = b->data;
        lengths[i] = (int)b->len;
    }
    return r;
}

/* A record's user key: userId, else anonymousId (docs/query.md). */
static eo_str_t user_key(const eo_record_t *rec)
{
    return rec->ev.user_id.s ? rec->ev.user_id : rec->ev.anonymous_id;
}

/* The cache key of a record's user into scratch: tenant id and user key. */
static int cache_key(pg_store_t *st, const eo_record_t *rec)
{
    eo_str_t k = user_key(rec);
    eo_buf_reset(&st->scratch);
    eo_buf_put(&st->scratch, rec->tenant_id, 36);
    eo_buf_put(&st->scratch, k.s, k.len);
    return eo_buf_error(&st->scratch);
}

/* Puts the key in st->scratch with its number into the current generation. */
static int cache_put_scratch(pg_store_t *st, uint32_t no)
{
    if (st->users.count >= st->users_max) { /* full: it becomes the old generation */
        eo_hmap_done(&st->old_users, NULL);
        st->old_users = st->users;
        eo_hmap_init(&st->users);
    }
    void *old;
    return eo_hmap_put(&st->users, st->scratch.data, st->scratch.len,
                       (void *)(uintptr_t)((uint64_t)no + 1), &old);
}

static int cache_put(pg_store_t *st, const eo_record_t *rec, uint32_t no)
{
    int r = cache_key(st, rec);
    return r ? r : cache_put_scratch(st, no);
}

/* The number + 1 of the key in st->scratch, or 0 (a hit in the old generation is renewed). */
static uintptr_t cache_get_scratch(pg_store_t *st)
{
    uintptr_t v = (uintptr_t)eo_hmap_get(&st->users, st->scratch.data, st->scratch.len);
    if (v)
        return v;
    v = (uintptr_t)eo_hmap_get(&st->old_users, st->scratch.data, st->scratch.len);
    if (v && cache_put_scratch(st, (uint32_t)(v - 1)) < 0)
        return v; /* not renewed (out of memory): still a hit */
    return v;
}

/* The plain statement first (ADR-3, ADR-22): runs plain_sql unless *careful asks are left (then
 * counts one down). 1: it succeeded (*res holds its result); 0: one of the keys it inserts is
 * stored already (unique_violation, nothing changed): the ON CONFLICT statement must answer, for
 * this ask and the next CAREFUL_BATCHES; or another error (err says it). */
static int plain_first(pg_store_t *st, unsigned *careful, const char *plain_sql, int nparams,
                       const char *const *params, const int *lengths, PGresult **res, char *err,
                       size_t errlen)
{
    *res = NULL;
    if (*careful > 0) {
        (*careful)--;
        return 0;
    }
    int r =
        eo_pg_query_binary_params(st->conn, plain_sql, nparams, params, lengths, res, err, errlen);
    if (r == 0)
        return 1;
    if (r != EO_EDATA || strncmp(err, "23505", 5) != 0) /* eo_pg_error: "<SQLSTATE>: ..." */
        return r;
    *careful = CAREFUL_BATCHES;
    return 0;
}

/* Asks the database for the numbers of the records st->asked[0, *nasked) (whose keys are in
 * st->arrays[0] and [1]); keeps in st->asked those that did not come back, and rebuilds the
 * arrays for them. */
static int ask_numbers(pg_store_t *st, eo_record_t *const *recs, size_t *nasked, char *err,
                       size_t errlen)
{
    const char *params[2];
    int lengths[2];
    int r = arrays_close(st, 2, params, lengths);
    if (r < 0) {
        snprintf(err, errlen, "cannot build the batch's user keys: %s", eo_strerror(r));
        return r == EO_ELIMIT || r == EO_EINVAL ? EO_EDATA : r;
    }
    PGresult *res;
    /* plain fails when another transaction numbered one of them: then ask skipping those */
    if ((r = plain_first(st, &st->careful_numbers, user_numbers_plain_sql, 2, params, lengths, &res,
                         err, errlen)) < 0 ||
        (r == 0 && (r = eo_pg_query_binary_params(st->conn, user_numbers_sql, 2, params, lengths,
                                                  &res, err, errlen)) < 0))
        return r;
    r = 0;
    size_t n = *nasked;
    bool *got = calloc(n, sizeof *got);
    if (!got) {
        PQclear(res);
        return EO_ENOMEM;
    }
    for (int row = 0; r == 0 && row < PQntuples(res); row++) {
        unsigned long long ord = strtoull(PQgetvalue(res, row, 0), NULL, 10);
        long long no = strtoll(PQgetvalue(res, row, 1), NULL, 10);
        if (ord < 1 || ord > n || no < 0 || no > UINT32_MAX)
            continue;
        st->rec_user[st->asked[ord - 1]] = (uint32_t)no;
        got[ord - 1] = true;
        r = cache_put(st, recs[st->asked[ord - 1]], (uint32_t)no);
    }
    PQclear(res);
    arrays_begin(st, 2, key_oids);
    size_t left = 0;
    for (size_t k = 0; r == 0 && k < n; k++) {
        if (got[k])
            continue;
        const eo_record_t *rec = recs[st->asked[k]];
        eo_str_t key = user_key(rec);
        arr_uuid(st, 0, rec->tenant_id);
        arr_bytes(st, 1, key.s, key.len);
        st->asked[left++] = st->asked[k];
    }
    free(got);
    *nasked = left;
    return r;
}

/* st->rec_user[i] for the first occurrences (st->first[0, nfirst)): from the cache, the others
 * numbered by the database in one autocommitted statement (before the events' transaction). */
static int number_users(pg_store_t *st, eo_record_t *const *recs, size_t n, size_t nfirst,
                        char *err, size_t errlen)
{
    if (EO_ARRAY_RESERVE(st->rec_user, st->rec_user_cap, n, 16) < 0 ||
        EO_ARRAY_RESERVE(st->asked, st->asked_cap, nfirst, 16) < 0) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    if (EO_ARRAY_RESERVE(st->dup, st->dup_cap, 2 * nfirst, 16) < 0) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    arrays_begin(st, 2, key_oids);
    eo_hmap_t batch; /* the keys asked for in this batch: each once */
    eo_hmap_init(&batch);
    size_t nasked = 0, ndup = 0;
    int r = 0;
    for (size_t k = 0; r == 0 && k < nfirst; k++) {
        const eo_record_t *rec = recs[st->first[k]];
        if ((r = cache_key(st, rec)) < 0) {
            snprintf(err, errlen, "cannot build a user key: %s", eo_strerror(r));
            r = r == EO_ELIMIT ? EO_EDATA : r;
            break;
        }
        uintptr_t no = cache_get_scratch(st);
        if (no) {
            st->rec_user[st->first[k]] = (uint32_t)(no - 1);
            continue;
        }
        void *v;
        if ((v = eo_hmap_get(&batch, st->scratch.data, st->scratch.len))) {
            st->dup[2 * ndup] = st->first[k];
            st->dup[2 * ndup + 1] = (size_t)((uintptr_t)v - 1);
            ndup++;
            continue;
        }
        void *old;
        if ((r = eo_hmap_put(&batch, st->scratch.data, st->scratch.len,
                             (void *)(uintptr_t)(st->first[k] + 1), &old)) < 0) {
            snprintf(err, errlen, "out of memory");
            break;
        }
        eo_str_t key = user_key(rec);
        arr_uuid(st, 0, rec->tenant_id);
        arr_bytes(st, 1, key.s, key.len);
        st->asked[nasked++] = st->first[k];
    }
    eo_hmap_done(&batch, NULL);
    if (r < 0)
        return r;
    /* the keys another transaction numbered meanwhile come back on the next ask */
    for (int ask = 0; nasked > 0 && ask < 3; ask++) {
        if ((r = ask_numbers(st, recs, &nasked, err, errlen)) < 0)
            return r;
    }
    if (nasked > 0) {
        snprintf(err, errlen, "%zu user keys came back without a number", nasked);
        return EO_EUNAVAIL;
    }
    for (size_t d = 0; d < ndup; d++) /* the batch's later events of an asked user */
        st->rec_user[st->dup[2 * d]] = st->rec_user[st->dup[2 * d + 1]];
    return 0;
}

/* Adds the stored rows' users to user_set_deltas and their times to timeline_deltas. */
static int add_derived(pg_store_t *st, eo_record_t *const *recs, size_t nnew, char *err,
                       size_t errlen)
{
    if (EO_ARRAY_RESERVE(st->set_events, st->set_events_cap, nnew, 16) < 0)
        return EO_ENOMEM;
    for (size_t k = 0; k < nnew; k++) {
        const eo_record_t *rec = recs[st->first[k]];
        st->set_events[k] = (eo_userset_event_t){
            rec->tenant_id, rec->ev.event_type, rec->ev.occurred_at_us, st->rec_user[st->first[k]]};
    }
    eo_userset_row_t *rows = NULL;
    eo_timeline_row_t *trows = NULL;
    size_t nrows = 0, ntrows = 0;
    int r = eo_userset_delta(st->set_events, nnew, &rows, &nrows, &st->blob);
    if (r == 0)
        r = eo_timeline_delta(st->set_events, nnew, &trows, &ntrows, &st->tblob);
    if (r < 0) {
        free(rows);
        snprintf(err, errlen, "cannot build the batch's user sets and timelines: %s",
                 eo_strerror(r));
        return r == EO_ELIMIT || r == EO_EINVAL ? EO_EDATA : r;
    }
    static const uint32_t oids[] = {OID_UUID, OID_TEXT, OID_TIMESTAMPTZ, OID_BYTEA,
                                    OID_UUID, OID_TEXT, OID_TIMESTAMPTZ, OID_BYTEA};
    arrays_begin(st, 8, oids);
    for (size_t i = 0; i < nrows; i++) {
        const eo_userset_row_t *row = &rows[i];
        arr_uuid(st, 0, row->tenant_id);
        arr_bytes(st, 1, row->event_type.s, row->event_type.len);
        arr_time(st, 2, row->bucket_start_us);
        arr_bytes(st, 3, st->blob.data + row->off, row->len);
    }
    for (size_t i = 0; i < ntrows; i++) {
        const eo_timeline_row_t *row = &trows[i];
        arr_uuid(st, 4, row->tenant_id);
        arr_bytes(st, 5, row->event_type.s, row->event_type.len);
        arr_time(st, 6, row->bucket_start_us);
        arr_bytes(st, 7, st->tblob.data + row->off, row->len);
    }
    free(rows);
    free(trows);
    const char *params[8];
    int lengths[8];
    if ((r = arrays_close(st, 8, params, lengths)) < 0) {
        snprintf(err, errlen, "cannot build the batch's user sets and timelines: %s",
                 eo_strerror(r));
        return r == EO_ELIMIT || r == EO_EINVAL ? EO_EDATA : r;
    }
    PGresult *res;
    r = eo_pg_query_binary_params(st->conn, derived_deltas_sql, 8, params, lengths, &res, err,
                                  errlen);
    PQclear(res);
    return r;
}

/* Inserts the first occurrences into event_ids; moves those that went in to the front of
 * st->first (in batch order) and returns how many, or an error. */
static long insert_ids(pg_store_t *st, eo_record_t *const *recs, size_t nfirst, char *err,
                       size_t errlen)
{
    static const uint32_t oids[] = {OID_UUID, OID_TEXT, OID_TIMESTAMPTZ};
    arrays_begin(st, 3, oids);
    for (size_t k = 0; k < nfirst; k++) {
        const eo_record_t *rec = recs[st->first[k]];
        arr_uuid(st, 0, rec->tenant_id);
        arr_bytes(st, 1, rec->ev.message_id.s, rec->ev.message_id.len);
        arr_time(st, 2, rec->ev.occurred_at_us);
    }
    const char *params[3];
    int lengths[3];
    int r = arrays_close(st, 3, params, lengths);
    if (r < 0) {
        snprintf(err, errlen, "cannot build the batch's ids: %s", eo_strerror(r));
        return r == EO_ELIMIT || r == EO_EINVAL ? EO_EDATA : r;
    }
    PGresult *res;
    bool fresh = st->careful == 0; /* the plain insert is tried: a failure leaves the
                                      transaction aborted */
    if ((r = plain_first(st, &st->careful, ids_plain_sql, 3, params, lengths, &res, err, errlen)) <
        0)
        return r;
    PQclear(res);
    if (r == 1)
        return (long)nfirst; /* every one went in */
    /* one of them is stored: the transaction (nothing in it yet) starts again */
    if (fresh && ((r = eo_pg_exec(st->conn, "ROLLBACK", err, errlen)) < 0 ||
                  (r = eo_pg_exec(st->conn, "BEGIN", err, errlen)) < 0))
        return r;
    if ((r = eo_pg_query_binary_params(st->conn, ids_sql, 3, params, lengths, &res, err, errlen)) <
        0)
        return r;
    if (EO_ARRAY_RESERVE(st->went_in, st->went_in_cap, nfirst, 16) < 0) {
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    memset(st->went_in, 0, nfirst * sizeof *st->went_in);
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        unsigned long long ord = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        if (ord >= 1 && ord <= nfirst)
            st->went_in[ord - 1] = true;
    }
    PQclear(res);
    size_t kept = 0;
    for (size_t k = 0; k < nfirst; k++)
        if (st->went_in[k])
            st->first[kept++] = st->first[k];
    return (long)kept;
}

/* Adds the stored rows' counts to rollups; *version: the tracked properties' version. */
static int add_rollups(pg_store_t *st, eo_record_t *const *recs, size_t nnew, int64_t *version,
                       char *err, size_t errlen)
{
    if (EO_ARRAY_RESERVE(st->stored, st->stored_cap, nnew, 16) < 0)
        return EO_ENOMEM;
    for (size_t k = 0; k < nnew; k++) {
        const eo_record_t *rec = recs[st->first[k]];
        st->stored[k] =
            (eo_rollup_event_t){rec->tenant_id, rec->ev.event_type, rec->ev.occurred_at_us};
    }
    eo_rollup_row_t *rows;
    size_t nrows;
    int r = eo_rollup_delta(st->stored, nnew, &rows, &nrows);
    if (r < 0)
        return r;
    static const uint32_t oids[] = {OID_UUID, OID_TEXT, OID_TEXT, OID_TIMESTAMPTZ, OID_INT8};
    arrays_begin(st, 5, oids);
    for (size_t i = 0; i < nrows; i++) {
        const eo_rollup_row_t *row = &rows[i];
        const char *g = eo_rollup_granularity_name(row->granularity);
        arr_uuid(st, 0, row->tenant_id);
        arr_bytes(st, 1, g, strlen(g));
        arr_bytes(st, 2, row->event_type.s, row->event_type.len);
        arr_time(st, 3, row->bucket_start_us);
        arr_i64(st, 4, row->count);
    }
    free(rows);
    const char *params[5];
    int lengths[5];
    if ((r = arrays_close(st, 5, params, lengths)) < 0) {
        snprintf(err, errlen, "cannot build the batch's rollups: %s", eo_strerror(r));
        return r == EO_ELIMIT || r == EO_EINVAL ? EO_EDATA : r;
    }
    PGresult *res;
    r = eo_pg_query_binary_params(st->conn, rollups_sql, 5, params, lengths, &res, err, errlen);
    if (r == 0)
        *version = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    return r;
}

/* The property deltas of the stored rows (ADR-24), in the events' transaction. The values were
 * computed (and the dictionary asked, autocommitted) before the transaction with the tracked
 * paths loaded then; when the version the rollup statement read differs, the paths are loaded
 * again and the values computed again, here in the transaction (a load newer than that version
 * is as good: ADR-24 needs only a load later than the rollup statement's snapshot). */
static int add_property_deltas(pg_store_t *st, eo_record_t *const *recs, size_t nnew,
                               int64_t version, char *err, size_t errlen)
{
    int r = 0;
    if (version != eo_prop_track_version(st->props) &&
        ((r = eo_prop_track_load(st->props, st->conn, err, errlen)) < 0 ||
         (r = eo_prop_track_values(st->props, st->conn, recs, st->first, nnew, err, errlen)) < 0))
        return r;
    long rows = eo_prop_track_write(st->props, st->conn, recs, st->first, nnew, err, errlen);
    return rows < 0 ? (int)rows : 0;
}

static int pg_write(eo_store_t *base, eo_record_t *const *recs, size_t n, size_t *inserted,
                    char *err, size_t errlen)
{
    pg_store_t *st = (pg_store_t *)base;
    *inserted = 0;
    int r = ensure_conn(st, err, errlen);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = ensure_day(st, day_of(recs[i]->ev.occurred_at_us), err, errlen);
    if (r < 0)
        return finish_call(st, r);
    long nfirst = first_occurrences(st, recs, n);
    if (nfirst < 0)
        return finish_call(st, (int)nfirst);
    if ((r = number_users(st, recs, n, (size_t)nfirst, err, errlen)) < 0)
        return finish_call(st, r);
    /* tracked properties: loaded at the first write, then checked in every batch's transaction;
     * new values enter the dictionaries here, outside the transaction (as user numbers do) */
    if ((eo_prop_track_version(st->props) < 0 &&
         (r = eo_prop_track_load(st->props, st->conn, err, errlen)) < 0) ||
        (r = eo_prop_track_values(st->props, st->conn, recs, st->first, (size_t)nfirst, err,
                                  errlen)) < 0 ||
        (r = eo_pg_exec(st->conn, "BEGIN", err, errlen)) < 0)
        return finish_call(st, r);
    long nnew = insert_ids(st, recs, (size_t)nfirst, err, errlen);
    if (nnew < 0)
        return finish_call(st, (int)nnew);
    if (nnew > 0) {
        eo_buf_reset(&st->copy);
        eo_buf_put(&st->copy, copy_header, sizeof copy_header);
        for (long k = 0; k < nnew && r == 0; k++)
            r = append_row(&st->copy, &st->scratch, recs[st->first[k]]);
        put_be(&st->copy, 0xffffu, 2); /* the trailer: a field count of -1 */
        if (r == 0)
            r = eo_buf_error(&st->copy);
        if (r < 0) {
            snprintf(err, errlen, "cannot build the COPY data: %s", eo_strerror(r));
            return finish_call(st, r == EO_ELIMIT || r == EO_EINVAL ? EO_EDATA : r);
        }
        int64_t version = -1;
        if ((r = eo_pg_copy_in(st->conn, copy_sql, st->copy.data, st->copy.len, err, errlen)) < 0 ||
            (r = add_rollups(st, recs, (size_t)nnew, &version, err, errlen)) < 0 ||
            (r = add_derived(st, recs, (size_t)nnew, err, errlen)) < 0 ||
            (r = add_property_deltas(st, recs, (size_t)nnew, version, err, errlen)) < 0 ||
            (r = eo_profile_store_write(st->profiles, st->conn, recs, st->first, (size_t)nnew, err,
                                        errlen)) < 0)
            return finish_call(st, r);
    }
    if ((r = eo_pg_exec(st->conn, "COMMIT", err, errlen)) == 0)
        *inserted = (size_t)nnew;
    return finish_call(st, r);
}

static const eo_store_ops_t pg_ops = {
    .check_tenants = pg_check_tenants,
    .write = pg_write,
    .ping = pg_ping,
    .ok = pg_ok,
    .ensure_ahead = pg_ensure_ahead,
    .free = pg_free,
};
