/* User sets (see userset.h) on CRoaring. */
#include "domain/userset.h"

#include <roaring/roaring.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"

struct eo_userset {
    roaring_bitmap_t bm;
};

static roaring_bitmap_t *bm(eo_userset_t *s)
{
    return (roaring_bitmap_t *)s;
}

static const roaring_bitmap_t *cbm(const eo_userset_t *s)
{
    return (const roaring_bitmap_t *)s;
}

eo_userset_t *eo_userset_new(void)
{
    return (eo_userset_t *)roaring_bitmap_create();
}

void eo_userset_free(eo_userset_t *s)
{
    if (s)
        roaring_bitmap_free(bm(s));
}

void eo_userset_add(eo_userset_t *s, uint32_t user_no)
{
    roaring_bitmap_add(bm(s), user_no);
}

int eo_userset_add_serialized(eo_userset_t *s, const void *bytes, size_t len)
{
    /* the _safe reader checks every length against len before reading */
    if (roaring_bitmap_portable_deserialize_size(bytes, len) != len || len == 0)
        return EO_EDATA;
    roaring_bitmap_t *other = roaring_bitmap_portable_deserialize_safe(bytes, len);
    if (!other)
        return EO_EDATA;
    roaring_bitmap_or_inplace(bm(s), other);
    roaring_bitmap_free(other);
    return 0;
}

void eo_userset_add_set(eo_userset_t *s, const eo_userset_t *other)
{
    roaring_bitmap_or_inplace(bm(s), cbm(other));
}

void eo_userset_remove_set(eo_userset_t *s, const eo_userset_t *other)
{
    roaring_bitmap_andnot_inplace(bm(s), cbm(other));
}

uint64_t eo_userset_count(const eo_userset_t *s)
{
    return roaring_bitmap_get_cardinality(cbm(s));
}

uint64_t eo_userset_and_count(const eo_userset_t *a, const eo_userset_t *b)
{
    return roaring_bitmap_and_cardinality(cbm(a), cbm(b));
}

eo_userset_t *eo_userset_and(const eo_userset_t *a, const eo_userset_t *b)
{
    return (eo_userset_t *)roaring_bitmap_and(cbm(a), cbm(b));
}

int eo_userset_serialize(eo_userset_t *s, eo_buf_t *out)
{
    roaring_bitmap_run_optimize(bm(s));
    size_t n = roaring_bitmap_portable_size_in_bytes(bm(s));
    int r = eo_buf_reserve(out, n + 1);
    if (r < 0)
        return r;
    size_t wrote = roaring_bitmap_portable_serialize(bm(s), out->data + out->len);
    out->len += wrote;
    out->data[out->len] = '\0';
    return 0;
}

/* ---- deltas ---- */

int eo_delta_group_cmp(const char *tenant_a, eo_str_t type_a, int64_t bucket_a,
                       const char *tenant_b, eo_str_t type_b, int64_t bucket_b)
{
    int c = memcmp(tenant_a, tenant_b, 36);
    if (c == 0)
        c = eo_str_cmp(type_a, type_b);
    if (c == 0)
        c = (bucket_a > bucket_b) - (bucket_a < bucket_b);
    return c;
}

/* A distinct group and its id while the groups are ranked. */
typedef struct {
    const eo_delta_group_t *g;
    uint32_t id;
} ranked_t;

static int cmp_ranked(const void *pa, const void *pb)
{
    const eo_delta_group_t *a = ((const ranked_t *)pa)->g, *b = ((const ranked_t *)pb)->g;
    return eo_delta_group_cmp(a->tenant_id, a->event_type, a->bucket, b->tenant_id, b->event_type,
                              b->bucket);
}

static bool same_group(const eo_delta_group_t *a, const eo_delta_group_t *b)
{
    return a->bucket == b->bucket && eo_str_cmp(a->event_type, b->event_type) == 0 &&
           (a->tenant_id == b->tenant_id || memcmp(a->tenant_id, b->tenant_id, 36) == 0);
}

long eo_delta_rank(const eo_delta_group_t *g, size_t n, uint32_t *rank)
{
    if (n == 0)
        return 0;
    if (n >= UINT32_MAX / 2)
        return EO_ENOMEM;
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    /* open addressing: slot holds a group's id + 1 (0: empty); first[id] is its first key */
    uint32_t *slot = calloc(cap, sizeof *slot), *first = malloc(n * sizeof *first), *place = NULL;
    ranked_t *order = NULL;
    size_t groups = 0;
    if (!slot || !first) {
        free(slot);
        free(first);
        return EO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h = eo_hash_mem(g[i].tenant_id, 36) ^
                     eo_hash_mem(g[i].event_type.s, g[i].event_type.len) * UINT64_C(31) ^
                     (uint64_t)g[i].bucket * UINT64_C(0x9E3779B97F4A7C15);
        size_t at = (size_t)(h ^ h >> 29) & (cap - 1);
        while (slot[at] && !same_group(&g[first[slot[at] - 1]], &g[i]))
            at = (at + 1) & (cap - 1);
        if (!slot[at]) {
            first[groups] = (uint32_t)i;
            slot[at] = (uint32_t)++groups;
        }
        rank[i] = slot[at] - 1;
    }
    order = malloc(groups * sizeof *order);
    place = malloc(groups * sizeof *place);
    if (order && place) {
        for (size_t k = 0; k < groups; k++)
            order[k] = (ranked_t){&g[first[k]], (uint32_t)k};
        qsort(order, groups, sizeof *order, cmp_ranked);
        for (size_t k = 0; k < groups; k++)
            place[order[k].id] = (uint32_t)k;
        for (size_t i = 0; i < n; i++)
            rank[i] = place[rank[i]];
    }
    long r = order && place ? (long)groups : EO_ENOMEM;
    free(slot);
    free(first);
    free(order);
    free(place);
    return r;
}

/* A key while the deltas are built: its group's rank, and the event. */
typedef struct {
    uint32_t rank, user;
    size_t event;
} delta_key_t;

static int cmp_key(const void *pa, const void *pb)
{
    const delta_key_t *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    return (a->user > b->user) - (a->user < b->user);
}

static int64_t floor_to(int64_t t, int64_t us)
{
    int64_t q = t / us;
    return (q - (t % us < 0)) * us;
}

/* tenant, type, bucket: the order of the rows */
static int cmp_row(const void *pa, const void *pb)
{
    const eo_userset_row_t *a = pa, *b = pb;
    return eo_delta_group_cmp(a->tenant_id, a->event_type, a->bucket_start_us, b->tenant_id,
                              b->event_type, b->bucket_start_us);
}

/* The all-types set of (tenant, bucket) being gathered. */
typedef struct {
    const char *tenant_id;
    int64_t bucket;
    roaring_bitmap_t *set;
} all_types_t;

int eo_userset_delta(const eo_userset_event_t *events, size_t n, eo_userset_row_t **rows,
                     size_t *nrows, eo_buf_t *blob)
{
    *rows = NULL;
    *nrows = 0;
    eo_buf_reset(blob);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / (2 * sizeof(eo_delta_group_t)))
        return EO_ENOMEM;
    /* the events sorted once by (group rank, user); each type's group gives its row and is
     * added to its (tenant, quarter)'s all-types set (few per batch: a short list) */
    eo_delta_group_t *g = malloc(n * sizeof *g);
    uint32_t *rank = malloc(n * sizeof *rank);
    delta_key_t *keys = malloc(n * sizeof *keys);
    uint32_t *users = malloc(n * sizeof *users);
    eo_userset_row_t *out = NULL;
    all_types_t *all = NULL;
    size_t nall = 0, capall = 0, k = 0;
    long groups = 0;
    int r = g && rank && keys && users ? 0 : EO_ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++)
        g[i] = (eo_delta_group_t){events[i].tenant_id, events[i].event_type,
                                  floor_to(events[i].occurred_at_us, EO_USERSET_DELTA_US)};
    if (r == 0 && (groups = eo_delta_rank(g, n, rank)) < 0)
        r = (int)groups;
    if (r == 0) {
        for (size_t i = 0; i < n; i++)
            keys[i] = (delta_key_t){rank[i], events[i].user_no, i};
        qsort(keys, n, sizeof *keys, cmp_key);
        /* at most one all-types row per group */
        if (!(out = malloc(2 * (size_t)groups * sizeof *out)))
            r = EO_ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < n;) {
        size_t j = i, nu = 0;
        for (; j < n && keys[j].rank == keys[i].rank; j++)
            if (nu == 0 || users[nu - 1] != keys[j].user)
                users[nu++] = keys[j].user;
        const eo_delta_group_t *grp = &g[keys[i].event];
        roaring_bitmap_t *b = roaring_bitmap_of_ptr(nu, users);
        if (!b) {
            r = EO_ENOMEM;
            break;
        }
        size_t a = 0;
        while (a < nall &&
               !(all[a].bucket == grp->bucket && memcmp(all[a].tenant_id, grp->tenant_id, 36) == 0))
            a++;
        if (a == nall) {
            if (nall == capall) {
                size_t cap = capall ? 2 * capall : 8;
                all_types_t *grown = realloc(all, cap * sizeof *grown);
                if (!grown) {
                    roaring_bitmap_free(b);
                    r = EO_ENOMEM;
                    break;
                }
                all = grown;
                capall = cap;
            }
            all[nall++] = (all_types_t){grp->tenant_id, grp->bucket, roaring_bitmap_create()};
            if (!all[a].set) {
                roaring_bitmap_free(b);
                r = EO_ENOMEM;
                break;
            }
        }
        roaring_bitmap_or_inplace(all[a].set, b);
        size_t off = blob->len;
        r = eo_userset_serialize((eo_userset_t *)b, blob);
        roaring_bitmap_free(b);
        out[k++] =
            (eo_userset_row_t){grp->tenant_id, grp->event_type, grp->bucket, off, blob->len - off};
        i = j;
    }
    for (size_t a = 0; a < nall; a++) {
        if (r == 0) {
            size_t off = blob->len;
            r = eo_userset_serialize((eo_userset_t *)all[a].set, blob);
            out[k++] =
                (eo_userset_row_t){all[a].tenant_id, {"", 0}, all[a].bucket, off, blob->len - off};
        }
        roaring_bitmap_free(all[a].set);
    }
    free(all);
    free(g);
    free(rank);
    free(keys);
    free(users);
    if (r < 0) {
        free(out);
        return r;
    }
    qsort(out, k, sizeof *out, cmp_row);
    *rows = out;
    *nrows = k;
    return 0;
}
