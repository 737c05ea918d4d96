/* Event timelines and funnels over them (see timeline.h). */
#include "domain/timeline.h"

#include "domain/buckets.h"

#include <stdlib.h>
#include <string.h>

#define VERSION 1

void eo_timeline_vec_done(eo_timeline_vec_t *v)
{
    free(v->e);
    *v = (eo_timeline_vec_t){0};
}

static int vec_reserve(eo_timeline_vec_t *v, size_t extra)
{
    if (extra <= v->cap - v->n)
        return 0;
    if (extra > SIZE_MAX / sizeof *v->e / 2 - v->n)
        return EO_ENOMEM;
    size_t cap = v->cap ? v->cap : 64;
    while (cap - v->n < extra)
        cap *= 2;
    eo_timeline_entry_t *e = realloc(v->e, cap * sizeof *e);
    if (!e)
        return EO_ENOMEM;
    v->e = e;
    v->cap = cap;
    return 0;
}

/* ---- encoding ---- */

static void put_varint(eo_buf_t *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    eo_buf_put(b, tmp, n);
}

/* Reads one varint at *p (< end) of at most 64 bits; false when cut off or too long. */
static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char byte = *(*p)++;
        if (shift == 63 && byte > 1)
            return false;
        x |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static int cmp_entry(const void *pa, const void *pb)
{
    const eo_timeline_entry_t *a = pa, *b = pb;
    if (a->user_no != b->user_no)
        return a->user_no < b->user_no ? -1 : 1;
    return (a->t_us > b->t_us) - (a->t_us < b->t_us);
}

void eo_timeline_sort_unique(eo_timeline_entry_t *e, size_t *n)
{
    if (*n < 2)
        return;
    qsort(e, *n, sizeof *e, cmp_entry);
    size_t k = 1;
    for (size_t i = 1; i < *n; i++)
        if (e[i].user_no != e[k - 1].user_no || e[i].t_us != e[k - 1].t_us)
            e[k++] = e[i];
    *n = k;
}

int eo_timeline_encode(const eo_timeline_entry_t *e, size_t n, int64_t bucket_start_us,
                       eo_buf_t *out)
{
    size_t users = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].t_us < bucket_start_us || e[i].t_us - bucket_start_us >= EO_TIMELINE_BUCKET_US)
            return EO_EINVAL;
        if (i > 0 && cmp_entry(&e[i - 1], &e[i]) >= 0)
            return EO_EINVAL;
        users += i == 0 || e[i].user_no != e[i - 1].user_no;
    }
    eo_buf_putc(out, VERSION);
    put_varint(out, users);
    uint32_t prev_user = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && e[j].user_no == e[i].user_no)
            j++;
        put_varint(out, e[i].user_no - prev_user);
        put_varint(out, j - i);
        put_varint(out, (uint64_t)(e[i].t_us - bucket_start_us));
        for (size_t k = i + 1; k < j; k++)
            put_varint(out, (uint64_t)(e[k].t_us - e[k - 1].t_us));
        prev_user = e[i].user_no;
        i = j;
    }
    return eo_buf_error(out);
}

int eo_timeline_decode(const void *bytes, size_t len, int64_t bucket_start_us, eo_timeline_vec_t *v)
{
    const unsigned char *p = bytes, *end = p + len;
    uint64_t users;
    if (len < 2 || *p++ != VERSION || !get_varint(&p, end, &users) ||
        users > (uint64_t)(end - p) / 3) /* each user takes at least 3 bytes */
        return EO_EDATA;
    size_t start = v->n;
    uint64_t user = 0;
    for (uint64_t u = 0; u < users; u++) {
        uint64_t gap, count, off;
        if (!get_varint(&p, end, &gap) || !get_varint(&p, end, &count) ||
            !get_varint(&p, end, &off) || (u > 0 && gap == 0) || gap > UINT32_MAX - user ||
            count == 0 || count > (uint64_t)(end - p) + 1 || off >= EO_TIMELINE_BUCKET_US)
            goto bad;
        user += gap;
        if (vec_reserve(v, (size_t)count) < 0) {
            v->n = start;
            return EO_ENOMEM;
        }
        v->e[v->n++] = (eo_timeline_entry_t){(uint32_t)user, bucket_start_us + (int64_t)off};
        for (uint64_t k = 1; k < count; k++) {
            uint64_t step;
            if (!get_varint(&p, end, &step) || step == 0 || step >= EO_TIMELINE_BUCKET_US - off)
                goto bad;
            off += step;
            v->e[v->n++] = (eo_timeline_entry_t){(uint32_t)user, bucket_start_us + (int64_t)off};
        }
    }
    if (p != end)
        goto bad;
    return 0;
bad:
    v->n = start;
    return EO_EDATA;
}

/* ---- deltas ---- */

/* A key while the deltas are built: its group's rank, the entry, and the event. */
typedef struct {
    uint32_t rank;
    eo_timeline_entry_t entry;
    size_t event;
} delta_key_t;

static int cmp_key(const void *pa, const void *pb)
{
    const delta_key_t *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    return cmp_entry(&a->entry, &b->entry);
}

int eo_timeline_delta(const eo_userset_event_t *events, size_t n, eo_timeline_row_t **rows,
                      size_t *nrows, eo_buf_t *blob)
{
    *rows = NULL;
    *nrows = 0;
    eo_buf_reset(blob);
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / sizeof(delta_key_t))
        return EO_ENOMEM;
    eo_delta_group_t *g = malloc(n * sizeof *g);
    uint32_t *rank = malloc(n * sizeof *rank);
    delta_key_t *keys = malloc(n * sizeof *keys);
    eo_timeline_entry_t *group = malloc(n * sizeof *group);
    eo_timeline_row_t *out = NULL;
    int r = g && rank && keys && group ? 0 : EO_ENOMEM;
    long groups = 0;
    size_t k = 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        g[i] = (eo_delta_group_t){events[i].tenant_id, events[i].event_type,
                                  eo_floor_to(events[i].occurred_at_us, EO_TIMELINE_BUCKET_US)};
    if (r == 0 && (groups = eo_delta_rank(g, n, rank)) < 0)
        r = (int)groups;
    if (r == 0) {
        for (size_t i = 0; i < n; i++)
            keys[i] = (delta_key_t){rank[i], {events[i].user_no, events[i].occurred_at_us}, i};
        qsort(keys, n, sizeof *keys, cmp_key);
        if (!(out = malloc((size_t)groups * sizeof *out)))
            r = EO_ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < n;) {
        size_t j = i, ng = 0;
        for (; j < n && keys[j].rank == keys[i].rank; j++)
            if (ng == 0 || cmp_entry(&group[ng - 1], &keys[j].entry) != 0)
                group[ng++] = keys[j].entry;
        const eo_delta_group_t *grp = &g[keys[i].event];
        size_t off = blob->len;
        r = eo_timeline_encode(group, ng, grp->bucket, blob);
        out[k++] =
            (eo_timeline_row_t){grp->tenant_id, grp->event_type, grp->bucket, off, blob->len - off};
        i = j;
    }
    free(g);
    free(rank);
    free(keys);
    free(group);
    if (r < 0) {
        free(out);
        return r;
    }
    *rows = out;
    *nrows = k;
    return 0;
}

/* ---- funnels ---- */

int eo_funnel_eval(const eo_funnel_t *f, uint64_t *users)
{
    if (f->nsteps < 2 || f->nsteps > EO_FUNNEL_MAX_STEPS)
        return EO_EINVAL;
    memset(users, 0, f->nsteps * sizeof *users);
    /* user numbers up to the highest that starts the funnel: the only ones that matter */
    const eo_timeline_vec_t *s0 = f->steps[0];
    size_t nu = 0;
    for (size_t i = 0; i < s0->n; i++) {
        const eo_timeline_entry_t *e = &s0->e[i];
        if (e->t_us >= f->from_us && e->t_us < f->to_us && (size_t)e->user_no + 1 > nu)
            nu = (size_t)e->user_no + 1;
    }
    if (nu == 0)
        return 0;
    int64_t *t1 = malloc(nu * sizeof *t1), *tk = malloc(nu * sizeof *tk),
            *cand = malloc(nu * sizeof *cand);
    uint8_t *stage = calloc(nu, 1); /* steps reached */
    int r = t1 && tk && cand && stage ? 0 : EO_ENOMEM;
    if (r == 0) {
        for (size_t u = 0; u < nu; u++)
            t1[u] = INT64_MAX;
        for (size_t i = 0; i < s0->n; i++) {
            const eo_timeline_entry_t *e = &s0->e[i];
            if (e->t_us >= f->from_us && e->t_us < f->to_us && e->t_us < t1[e->user_no])
                t1[e->user_no] = e->t_us;
        }
        for (size_t u = 0; u < nu; u++)
            if (t1[u] != INT64_MAX) {
                stage[u] = 1;
                tk[u] = t1[u];
                users[0]++;
            }
    }
    for (size_t k = 1; r == 0 && k < f->nsteps; k++) {
        for (size_t u = 0; u < nu; u++)
            cand[u] = INT64_MAX;
        const eo_timeline_vec_t *s = f->steps[k];
        const bool strict = f->same_type[k];
        for (size_t i = 0; i < s->n; i++) {
            const eo_timeline_entry_t *e = &s->e[i];
            size_t u = e->user_no;
            if (u >= nu || stage[u] != k)
                continue;
            if ((strict ? e->t_us > tk[u] : e->t_us >= tk[u]) && e->t_us - t1[u] < f->within_us &&
                e->t_us < cand[u])
                cand[u] = e->t_us;
        }
        for (size_t u = 0; u < nu; u++)
            if (cand[u] != INT64_MAX) {
                stage[u] = (uint8_t)(k + 1);
                tk[u] = cand[u];
                users[k]++;
            }
    }
    free(t1);
    free(tk);
    free(cand);
    free(stage);
    return r;
}
