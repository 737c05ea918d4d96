/* The rollup rows of a batch (see rollup_delta.h): the events are counted per (tenant, type,
 * minute) through their groups' ranks (eo_delta_rank, no sort of the events), each minute's
 * count goes into its 4 granularities twice (its type and ""), and those rows are sorted and
 * summed. */
#include "domain/rollup_delta.h"

#include <stdlib.h>
#include <string.h>

#include "domain/userset.h"

#define US_PER_MINUTE 60000000LL

static const struct {
    const char *name;
    int64_t us;
} grans[EO_ROLLUP_GRANULARITIES] = {
    [EO_ROLLUP_MINUTE] = {"minute", US_PER_MINUTE},
    [EO_ROLLUP_QUARTER] = {"quarter", 15 * US_PER_MINUTE},
    [EO_ROLLUP_HOUR] = {"hour", 60 * US_PER_MINUTE},
    [EO_ROLLUP_DAY] = {"day", 1440 * US_PER_MINUTE},
};

const char *eo_rollup_granularity_name(eo_rollup_granularity_t g)
{
    return g < EO_ROLLUP_GRANULARITIES ? grans[g].name : "";
}

/* The start of the bucket of size us holding t (UTC; epoch-aligned, as the store's
 * date_trunc and date_bin from 2000-01-01 are for these sizes). */
static int64_t floor_to(int64_t t, int64_t us)
{
    int64_t q = t / us;
    return (q - (t % us < 0)) * us;
}

/* tenant, granularity name, type, bucket: the order of the rollups primary key */
static int cmp_row(const void *pa, const void *pb)
{
    const eo_rollup_row_t *a = pa, *b = pb;
    int c = memcmp(a->tenant_id, b->tenant_id, 36);
    if (c == 0 && a->granularity != b->granularity)
        c = strcmp(grans[a->granularity].name, grans[b->granularity].name);
    if (c == 0)
        c = eo_str_cmp(a->event_type, b->event_type);
    if (c == 0)
        c = (a->bucket_start_us > b->bucket_start_us) - (a->bucket_start_us < b->bucket_start_us);
    return c;
}

/* Sorts rows and sums those of one key into one. Returns the rows left. */
static size_t merge(eo_rollup_row_t *rows, size_t n)
{
    if (n == 0)
        return 0;
    qsort(rows, n, sizeof *rows, cmp_row);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        if (cmp_row(&rows[out], &rows[i]) == 0)
            rows[out].count += rows[i].count;
        else
            rows[++out] = rows[i];
    }
    return out + 1;
}

int eo_rollup_delta(const eo_rollup_event_t *events, size_t n, eo_rollup_row_t **rows,
                    size_t *nrows)
{
    *rows = NULL;
    *nrows = 0;
    if (n == 0)
        return 0;
    /* the events counted per (tenant, type, minute) without sorting them: one rank per group */
    eo_delta_group_t *grp = malloc(n * sizeof *grp);
    uint32_t *rank = malloc(n * sizeof *rank);
    eo_rollup_row_t *minutes = NULL;
    long groups = grp && rank ? 0 : EO_ENOMEM;
    for (size_t i = 0; groups == 0 && i < n; i++)
        grp[i] = (eo_delta_group_t){events[i].tenant_id, events[i].event_type,
                                    floor_to(events[i].occurred_at_us, US_PER_MINUTE)};
    if (groups == 0)
        groups = eo_delta_rank(grp, n, rank);
    if (groups > 0 && !(minutes = calloc((size_t)groups, sizeof *minutes)))
        groups = EO_ENOMEM;
    for (size_t i = 0; groups > 0 && i < n; i++) {
        eo_rollup_row_t *m = &minutes[rank[i]];
        if (m->count++ == 0) {
            m->tenant_id = grp[i].tenant_id;
            m->event_type = grp[i].event_type;
            m->granularity = EO_ROLLUP_MINUTE;
            m->bucket_start_us = grp[i].bucket;
        }
    }
    free(grp);
    free(rank);
    if (groups < 0) {
        free(minutes);
        return (int)groups;
    }
    size_t nmin = (size_t)groups; /* in rank order: already the order merge would give */
    if (nmin > SIZE_MAX / (2 * EO_ROLLUP_GRANULARITIES * sizeof *minutes)) {
        free(minutes);
        return EO_ENOMEM;
    }
    eo_rollup_row_t *all = malloc(nmin * 2 * EO_ROLLUP_GRANULARITIES * sizeof *all);
    if (!all) {
        free(minutes);
        return EO_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nmin; i++) {
        for (int g = 0; g < EO_ROLLUP_GRANULARITIES; g++) {
            eo_rollup_row_t r = minutes[i];
            r.granularity = (eo_rollup_granularity_t)g;
            r.bucket_start_us = floor_to(minutes[i].bucket_start_us, grans[g].us);
            all[k++] = r;
            r.event_type = (eo_str_t){"", 0};
            all[k++] = r;
        }
    }
    free(minutes);
    *nrows = merge(all, k);
    *rows = all;
    return 0;
}
