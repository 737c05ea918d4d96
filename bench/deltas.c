/* The processor's CPU per event for the derived rows of a batch, without PostgreSQL: the rollup
 * rows (eo_rollup_delta), the user-set deltas (eo_userset_delta) and the timeline deltas
 * (eo_timeline_delta) of batches shaped like bench/run.sh's (one tenant, 10 event types,
 * 65,000 users, event times within two minutes). Each record holds its own copy of the tenant
 * id, as the processor's records do.
 *
 *   build/bench_deltas [batch size: 2500] [batches: 400]
 *
 * Prints nanoseconds per event for each, the median of 5 rounds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/rollup_delta.h"
#include "domain/timeline.h"
#include "domain/userset.h"

#define TENANT "00000000-0000-4000-8000-000000000001"
#define ROUNDS 5

static const char *const types[] = {"page_view", "signup", "add_to_cart", "checkout", "purchase",
                                    "search",    "login",  "logout",      "share",    "app_open"};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t batch = argc > 1 ? strtoull(argv[1], NULL, 10) : 2500;
    size_t batches = argc > 2 ? strtoull(argv[2], NULL, 10) : 400;
    if (batch == 0 || batches == 0)
        return 2;
    char(*tenants)[37] = malloc(batch * sizeof *tenants);
    eo_userset_event_t *ev = malloc(batch * sizeof *ev);
    eo_rollup_event_t *rev = malloc(batch * sizeof *rev);
    if (!tenants || !ev || !rev)
        return 1;
    eo_buf_t blob, tblob;
    eo_buf_init(&blob, 1 << 30);
    eo_buf_init(&tblob, 1 << 30);
    int64_t base = INT64_C(1780000000) * 1000000;
    double t_roll[ROUNDS], t_set[ROUNDS], t_tl[ROUNDS];
    srand(1);
    for (int round = 0; round < ROUNDS; round++) {
        double roll = 0, set = 0, tl = 0;
        for (size_t b = 0; b < batches; b++) {
            for (size_t i = 0; i < batch; i++) {
                memcpy(tenants[i], TENANT, 37);
                const char *t = types[rand() % 10];
                int64_t at = base + (int64_t)(b * batch + i) * 5 + rand() % 120000000;
                ev[i] = (eo_userset_event_t){
                    tenants[i], {t, strlen(t)}, at, (uint32_t)(rand() % 65000)};
                rev[i] = (eo_rollup_event_t){tenants[i], {t, strlen(t)}, at};
            }
            double t0 = now_ns();
            eo_rollup_row_t *rows = NULL;
            size_t nrows = 0;
            if (eo_rollup_delta(rev, batch, &rows, &nrows) < 0)
                return 1;
            double t1 = now_ns();
            eo_userset_row_t *srows = NULL;
            if (eo_userset_delta(ev, batch, &srows, &nrows, &blob) < 0)
                return 1;
            double t2 = now_ns();
            eo_timeline_row_t *trows = NULL;
            if (eo_timeline_delta(ev, batch, &trows, &nrows, &tblob) < 0)
                return 1;
            double t3 = now_ns();
            free(rows);
            free(srows);
            free(trows);
            roll += t1 - t0;
            set += t2 - t1;
            tl += t3 - t2;
        }
        double n = (double)(batch * batches);
        t_roll[round] = roll / n;
        t_set[round] = set / n;
        t_tl[round] = tl / n;
    }
    qsort(t_roll, ROUNDS, sizeof(double), cmp_double);
    qsort(t_set, ROUNDS, sizeof(double), cmp_double);
    qsort(t_tl, ROUNDS, sizeof(double), cmp_double);
    printf("batch %zu, %zu batches: ns per event (median of %d): rollups %.1f, user sets %.1f, "
           "timelines %.1f, all %.1f\n",
           batch, batches, ROUNDS, t_roll[ROUNDS / 2], t_set[ROUNDS / 2], t_tl[ROUNDS / 2],
           t_roll[ROUNDS / 2] + t_set[ROUNDS / 2] + t_tl[ROUNDS / 2]);
    eo_buf_done(&blob);
    eo_buf_done(&tblob);
    free(tenants);
    free(ev);
    free(rev);
    return 0;
}
