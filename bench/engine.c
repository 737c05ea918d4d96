/* The analytics engine's CPU per event without Kafka (bench/analytics.sh runs it; results in
 * docs/benchmarks.md): synthetic records of one tenant decoded as the runner decodes them
 * (eo_record_decode), fed to the engine, and a tick (with its changelog) every
 * EVENTS_PER_TICK records, as at 200k events/s with 200 ms ticks, and a checkpoint of the
 * changed state every 50 ticks (EVENTOPS_ANALYTICS_CHECKPOINT_MS 10 s).
 *
 *   build/bench_engine [events] [keys] [rules] [event time per event, us: 5 = 200k/s]
 *
 * Rule: hopping 5 min sliding by 1 min, count, grouped by userId (keys = users), a condition
 * that fires; event times advance 5 us per event (200k events/s) unless told. Prints decode, engine
 * and tick time per event, events/s per core of the whole, the state's groups and RSS.
 *
 * BENCH_SCAN=1 decodes with eo_record_scan + eo_record_from_scan instead (properties/context
 * parsed only when a rule reads them), the engine's candidate hot path; BENCH_SCAN=2 parses
 * both always (the cost when the rules read them). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analytics/engine.h"
#include "domain/record.h"
#include "domain/record_scan.h"
#include "domain/rfc3339.h"

#define TENANT "00000000-0000-4000-8000-000000000001"
#define EVENTS_PER_TICK 40000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * 4;
}

/* Whether any rule reads a path into properties / context (then the scan must parse it). */
static void rules_read(const eo_engine_rule_t *rules, long n, bool *props, bool *context)
{
    *props = *context = false;
    for (long i = 0; i < n; i++)
        eo_rule_reads(&rules[i].def, props, context);
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    long keys = argc > 2 ? strtol(argv[2], NULL, 10) : 100000;
    long nrules = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
    long step_us = argc > 4 ? strtol(argv[4], NULL, 10) : 5; /* event time per event */
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    lim.max_past_us = INT64_C(100) * 365 * 86400 * 1000000;
    eo_engine_options_t opt = {.partitions = 1,
                               .bound_us = 1000000,
                               .idle_us = INT64_MAX / 4,
                               .changes_interval_us = 1000000};
    eo_engine_t *e;
    if (eo_engine_new(&opt, &e) < 0)
        return 1;
    eo_engine_rule_t *rules = calloc((size_t)nrules, sizeof *rules);
    for (long i = 0; i < nrules; i++) {
        eo_engine_rule_t *r = &rules[i];
        snprintf(r->tenant_id, sizeof r->tenant_id, TENANT);
        snprintf(r->rule_id, sizeof r->rule_id, "00000000-0000-4000-8000-%012ld",
                 (i + 1) % 1000000);
        r->version = 1;
        const char *def = "{\"name\":\"bench\",\"eventType\":\"signup\",\"window\":{\"type\":"
                          "\"hopping\",\"size\":\"5m\",\"slide\":\"1m\"},\"groupBy\":[\"userId\"],"
                          "\"aggregate\":{\"fn\":\"count\"},\"grace\":\"5s\",\"maxGroups\":1000000,"
                          "\"condition\":{\"op\":\">=\",\"value\":30}}";
        eo_rule_limits_t rl;
        eo_rule_limits_default(&rl);
        rl.max_groups = 1000000;
        eo_event_error_t err;
        if (eo_rule_parse(def, strlen(def), &rl, &r->def, &err) < 0) {
            fprintf(stderr, "rule: %s\n", err.message);
            return 1;
        }
    }
    if (eo_engine_set_rules(e, rules, (size_t)nrules) < 0)
        return 1;
    const char *scan_env = getenv("BENCH_SCAN");
    long scan_mode = scan_env ? strtol(scan_env, NULL, 10) : 0;
    eo_record_scan_t *scan = scan_mode == 1 || scan_mode == 2 ? malloc(sizeof *scan) : NULL;
    bool want_props, want_context;
    rules_read(rules, nrules, &want_props, &want_context);
    want_props = want_props || scan_mode == 2;
    want_context = want_context || scan_mode == 2;
    int64_t t0 = INT64_C(1704067200) * 1000000;
    double decode = 0, feed = 0, tick = 0;
    size_t outputs = 0, changelog_bytes = 0;
    long ticks = 0;
    char body[1024], ts[EO_RFC3339_MAX];
    uint64_t x = 7;
    double start = now_s();
    long rss_start = rss_kib();
    for (long i = 0; i < events; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t t = t0 + i * step_us;
        ts[eo_rfc3339_format(t, ts)] = '\0';
        int n = snprintf(body, sizeof body,
                         "{\"v\":1,\"tenantId\":\"" TENANT "\",\"receivedAt\":\"%s\",\"event\":{"
                         "\"messageId\":\"m%ld\",\"eventType\":\"signup\",\"userId\":\"user-%ld\","
                         "\"timestamp\":\"%s\",\"properties\":{\"plan\":\"pro\",\"amount\":12.5}"
                         ",\"context\":{}}}",
                         ts, i, (long)((x >> 33) % (uint64_t)keys), ts);
        double a = now_s();
        eo_record_t rec;
        eo_event_error_t err;
        if (scan) {
            if (eo_record_scan(body, (size_t)n, scan) < 0 ||
                eo_record_from_scan(scan, want_props, want_context, &rec) < 0) {
                fprintf(stderr, "scan: %.*s\n", n, body);
                return 1;
            }
        } else if (eo_record_decode(body, (size_t)n, &lim, &rec, &err) < 0) {
            fprintf(stderr, "decode: %s\n", err.message);
            return 1;
        }
        double b = now_s();
        if (eo_engine_event(e, 0, &rec, body, (size_t)n, "k", 1, i) < 0)
            return 1;
        eo_record_done(&rec);
        double c = now_s();
        decode += b - a;
        feed += c - b;
        if ((i + 1) % EVENTS_PER_TICK == 0 || i + 1 == events) {
            if (eo_engine_tick(e, i, 0) < 0)
                return 1;
            (void)eo_engine_changed(e);
            if (++ticks % 50 == 0 && eo_engine_checkpoint(e) < 0) /* every 10 s at 200k/s */
                return 1;
            size_t no;
            const eo_out_t *o = eo_engine_outputs(e, &no);
            for (size_t k = 0; k < no; k++)
                if (o[k].kind == EO_OUT_CHANGELOG)
                    changelog_bytes += o[k].key.len + o[k].value.len;
            outputs += no;
            if (getenv("BENCH_DEBUG")) {
                uint64_t gg, bb;
                eo_engine_state_size(e, &gg, &bb);
                fprintf(stderr, "tick at %ld: %zu outputs, %" PRIu64 " groups, wm %" PRId64 "\n", i,
                        no, gg, eo_engine_watermark(e) - t0);
            }
            eo_engine_outputs_clear(e);
            tick += now_s() - c;
        }
    }
    double total = now_s() - start;
    uint64_t groups, bytes;
    eo_engine_state_size(e, &groups, &bytes);
    printf("events %ld, keys %ld, rules %ld, %s\n", events, keys, nrules,
           !scan        ? "eo_record_decode"
           : want_props ? "eo_record_scan, properties and context parsed"
                        : "eo_record_scan");
    printf("decode %.2f us/event, engine %.2f us/event, tick+changelog %.2f us/event\n",
           decode / (double)events * 1e6, feed / (double)events * 1e6, tick / (double)events * 1e6);
    printf("total %.2f us/event = %.0f events/s per core (engine side, no Kafka)\n",
           total / (double)events * 1e6, (double)events / total);
    printf("outputs %zu, changelog %.1f MB (%.0f B/event)\n", outputs,
           (double)changelog_bytes / 1e6, (double)changelog_bytes / (double)events);
    printf("state: %" PRIu64 " groups, %.1f MB counted, RSS %ld -> %ld KiB\n", groups,
           (double)bytes / 1e6, rss_start, rss_kib());
    eo_engine_free(e);
    free(rules);
    free(scan);
    return 0;
}
