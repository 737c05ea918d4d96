/* Storing a batch through the store port (see batch_store.h). */
#include "processor/batch_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/array.h"
#include "domain/record_scan.h"

void eo_batch_item_init(eo_batch_item_t *it, const void *payload, size_t len, void *source)
{
    memset(it, 0, sizeof *it);
    it->payload = payload;
    it->len = len;
    it->source = source;
}

void eo_batch_item_done(eo_batch_item_t *it)
{
    eo_record_done(&it->rec);
}

/* Stores recs[0..n) (items idx[0..n)), splitting on EO_EDATA to isolate the records the store
 * refuses, which become dead. Returns 0, or the store's EO_EUNAVAIL / EO_EIO. */
static int store_split(eo_batch_share_t *sh, eo_batch_item_t *items, size_t *idx,
                       eo_record_t **recs, size_t n, eo_batch_refused_fn refused)
{
    size_t ins = 0;
    int r = eo_store_write(sh->store, recs, n, &ins, sh->err, sizeof sh->err);
    if (r == 0) {
        sh->inserted += ins;
        return 0;
    }
    if (r != EO_EDATA)
        return r;
    if (n == 1) {
        eo_batch_item_t *it = &items[idx[0]];
        it->dead = true;
        eo_event_error_set(&it->why, "storage_rejected", "", "%s", sh->err);
        if (refused)
            refused(sh->err);
        return 0;
    }
    size_t half = n / 2;
    if ((r = store_split(sh, items, idx, recs, half, refused)) < 0)
        return r;
    return store_split(sh, items, idx + half, recs + half, n - half, refused);
}

/* The scratch of the tree-less decoder, for one share's run. */
typedef struct {
    eo_json_keys_t keys;
    eo_record_scan_t *scan;
    eo_buf_t norm;
} decoder_t;

/* Decodes the item once (without a tree when the record allows: record_scan.h, else with
 * eo_record_decode); a failure makes it dead with the decoder's reason. */
static void decode(eo_batch_item_t *it, const eo_event_limits_t *lim, decoder_t *d)
{
    if (it->attempted)
        return;
    it->attempted = true;
    if (d->scan && eo_record_fast_decode(it->payload, it->len, lim, &d->keys, d->scan, &d->norm,
                                         &it->rec) == 0) {
        it->decoded = true;
        return;
    }
    if (eo_record_decode(it->payload, it->len, lim, &it->rec, &it->why) < 0) {
        eo_record_done(&it->rec);
        it->dead = true;
    } else {
        it->decoded = true;
    }
}

int eo_batch_store_share(eo_batch_share_t *sh, eo_batch_item_t *items, const eo_event_limits_t *lim,
                         eo_batch_refused_fn refused)
{
    size_t n = sh->n;
    sh->inserted = 0;
    eo_record_t **recs = calloc(n ? n : 1, sizeof *recs);
    size_t *idx = calloc(n ? n : 1, sizeof *idx);
    bool *known = calloc(n ? n : 1, sizeof *known);
    int r = EO_ENOMEM;
    if (!recs || !idx || !known) {
        snprintf(sh->err, sizeof sh->err, "out of memory");
        goto done;
    }
    decoder_t d = {.scan = malloc(sizeof *d.scan)}; /* none: eo_record_decode alone */
    eo_json_keys_init(&d.keys);
    eo_buf_init(&d.norm, lim->max_event_bytes + EO_RECORD_ENVELOPE_MAX);
    size_t m = 0; /* the decoded, living items */
    for (size_t i = 0; i < n; i++) {
        eo_batch_item_t *it = &items[sh->idx[i]];
        decode(it, lim, &d);
        if (it->decoded && !it->dead) {
            idx[m] = sh->idx[i];
            recs[m++] = &it->rec;
        }
    }
    free(d.scan);
    eo_json_keys_done(&d.keys);
    eo_buf_done(&d.norm);
    if ((r = eo_store_check_tenants(sh->store, recs, m, known, sh->err, sizeof sh->err)) < 0)
        goto done;
    size_t k = 0; /* of those, the items of known tenants */
    for (size_t j = 0; j < m; j++) {
        eo_batch_item_t *it = &items[idx[j]];
        if (!known[j]) {
            it->dead = true;
            eo_event_error_set(&it->why, "unknown_tenant", "tenantId", "no tenant %s",
                               it->rec.tenant_id);
            continue;
        }
        idx[k] = idx[j];
        recs[k++] = recs[j];
    }
    r = k ? store_split(sh, items, idx, recs, k, refused) : 0;
done:
    free(recs);
    free(idx);
    free(known);
    return sh->result = r;
}

int eo_batch_share_out(eo_batch_share_t *shares, size_t k, size_t n)
{
    for (size_t i = 0; i < k; i++) {
        eo_batch_share_t *sh = &shares[i];
        size_t from = n * i / k, to = n * (i + 1) / k;
        if (EO_ARRAY_RESERVE(sh->idx, sh->cap, to - from, 1024) < 0)
            return EO_ENOMEM;
        sh->n = to - from;
        for (size_t j = from; j < to; j++)
            sh->idx[j - from] = j;
    }
    return 0;
}

int eo_batch_store(eo_batch_share_t *shares, size_t k, size_t n, eo_batch_run_fn run,
                   eo_batch_wait_fn wait, void *ud, size_t *inserted)
{
    *inserted = 0;
    if (eo_batch_share_out(shares, k, n) < 0)
        return EO_ETIMEOUT;
    for (;;) {
        run(ud);
        const char *err = NULL;
        for (size_t i = 0; i < k; i++) {
            eo_batch_share_t *sh = &shares[i];
            if (!sh->n)
                continue;
            if (sh->result == 0) {
                *inserted += sh->inserted;
                sh->n = 0; /* done: not run again */
            } else if (!err) {
                err = sh->err;
            }
        }
        if (!err)
            return 0;
        if (!wait(ud, err))
            return EO_ETIMEOUT;
    }
}
