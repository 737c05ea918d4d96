/* Metrics registry and text exposition (see metrics.h).
 * Threads: registration and writing take `lock`; updates are lock-free atomics. A gauge or a
 * histogram's sum is a double kept as its bits in an atomic integer (updated by CAS). */
#include "core/metrics.h"

#ifndef EO_VERSION
#define EO_VERSION "0.3.0"
#endif

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const double eo_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t eo_metrics_latency_nbuckets =
    sizeof eo_metrics_latency_buckets / sizeof eo_metrics_latency_buckets[0];
const double eo_metrics_size_buckets[] = {1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
const size_t eo_metrics_size_nbuckets =
    sizeof eo_metrics_size_buckets / sizeof eo_metrics_size_buckets[0];

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

struct eo_counter {
    atomic_ullong value;
};

struct eo_gauge {
    atomic_ullong bits;       /* a double */
    double (*read)(void *ud); /* a callback gauge: the value read at each write */
    void *ud;
};

struct eo_histogram {
    double *bounds;
    size_t nbounds;
    atomic_ullong *counts; /* nbounds + 1, not cumulative */
    atomic_ullong sum_bits;
};

typedef struct series {
    char *labels;
    union {
        eo_counter_t counter;
        eo_gauge_t gauge;
        eo_histogram_t histogram;
    } u;
    struct series *next;
} series_t;

typedef struct family {
    char *name, *help;
    kind_t kind;
    series_t *series, *last;
    struct family *next;
} family_t;

typedef struct collector {
    int (*collect)(eo_buf_t *, void *);
    void *ud;
    struct collector *next;
} collector_t;

struct eo_metrics {
    pthread_mutex_t lock;
    family_t *families, *last;
    collector_t *collectors;
};

eo_metrics_t *eo_metrics_new(void)
{
    eo_metrics_t *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void eo_metrics_free(eo_metrics_t *m)
{
    if (!m)
        return;
    for (family_t *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (series_t *s = f->series, *sn; s; s = sn) {
            sn = s->next;
            if (f->kind == KIND_HISTOGRAM) {
                free(s->u.histogram.bounds);
                free(s->u.histogram.counts);
            }
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    for (collector_t *c = m->collectors, *cn; c; c = cn) {
        cn = c->next;
        free(c);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Finds or creates the series; call with the lock held. */
static series_t *series_of(eo_metrics_t *m, const char *name, const char *help, const char *labels,
                           kind_t kind, bool *created)
{
    *created = false;
    family_t *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f && f->kind != kind)
        return NULL;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f || !(f->name = strdup(name)) || !(f->help = strdup(help))) {
            if (f)
                free(f->name);
            free(f);
            return NULL;
        }
        f->kind = kind;
        if (m->last)
            m->last->next = f;
        else
            m->families = f;
        m->last = f;
    }
    for (series_t *s = f->series; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    series_t *s = calloc(1, sizeof *s);
    if (!s || !(s->labels = strdup(labels))) {
        free(s);
        return NULL;
    }
    if (f->last)
        f->last->next = s;
    else
        f->series = s;
    f->last = s;
    *created = true;
    return s;
}

/* Registers (or finds) a series under the lock; a new histogram gets its buckets. NULL when m
 * is NULL, out of memory, or name is another type. */
static series_t *add_series(eo_metrics_t *m, const char *name, const char *help, const char *labels,
                            kind_t kind, const double *bounds, size_t nbounds)
{
    if (!m)
        return NULL;
    bool created;
    pthread_mutex_lock(&m->lock);
    series_t *s = series_of(m, name, help, labels, kind, &created);
    if (s && created && kind == KIND_HISTOGRAM) {
        eo_histogram_t *h = &s->u.histogram;
        h->bounds = malloc(nbounds * sizeof *h->bounds);
        h->counts = calloc(nbounds + 1, sizeof *h->counts);
        if (h->bounds && h->counts) {
            memcpy(h->bounds, bounds, nbounds * sizeof *bounds);
            h->nbounds = nbounds;
        } else {
            free(h->bounds);
            free(h->counts);
            h->bounds = NULL;
            h->counts = NULL; /* observes do nothing; written as empty */
        }
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

eo_counter_t *eo_metrics_counter(eo_metrics_t *m, const char *name, const char *help,
                                 const char *labels)
{
    series_t *s = add_series(m, name, help, labels, KIND_COUNTER, NULL, 0);
    return s ? &s->u.counter : NULL;
}

eo_gauge_t *eo_metrics_gauge(eo_metrics_t *m, const char *name, const char *help,
                             const char *labels)
{
    series_t *s = add_series(m, name, help, labels, KIND_GAUGE, NULL, 0);
    return s ? &s->u.gauge : NULL;
}

eo_histogram_t *eo_metrics_histogram(eo_metrics_t *m, const char *name, const char *help,
                                     const char *labels, const double *bounds, size_t nbounds)
{
    series_t *s = add_series(m, name, help, labels, KIND_HISTOGRAM, bounds, nbounds);
    return s ? &s->u.histogram : NULL;
}

void eo_counter_add(eo_counter_t *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void add_double(atomic_ullong *bits, double delta)
{
    unsigned long long old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, bits_of(double_of(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void eo_gauge_set(eo_gauge_t *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, bits_of(v), memory_order_relaxed);
}

void eo_gauge_add(eo_gauge_t *g, double delta)
{
    if (g)
        add_double(&g->bits, delta);
}

void eo_histogram_observe(eo_histogram_t *h, double v)
{
    if (!h || !h->counts)
        return;
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    add_double(&h->sum_bits, v);
}

void eo_metrics_build_info(eo_metrics_t *m, const char *role)
{
    char labels[128];
    snprintf(labels, sizeof labels, "role=\"%s\",version=\"%s\"", role, EO_VERSION);
    eo_gauge_set(
        eo_metrics_gauge(m, "eventops_build_info", "The running build (always 1).", labels), 1);
}

int eo_metrics_gauge_fn(eo_metrics_t *m, const char *name, const char *help, const char *labels,
                        double (*read)(void *ud), void *ud)
{
    if (!m)
        return EO_EINVAL;
    bool created;
    pthread_mutex_lock(&m->lock);
    series_t *s = series_of(m, name, help, labels, KIND_GAUGE, &created);
    if (s) {
        s->u.gauge.read = read;
        s->u.gauge.ud = ud;
    }
    pthread_mutex_unlock(&m->lock);
    return s ? 0 : EO_ENOMEM;
}

int eo_metrics_add_collector(eo_metrics_t *m, int (*collect)(eo_buf_t *, void *), void *ud)
{
    collector_t *c = calloc(1, sizeof *c);
    if (!c)
        return EO_ENOMEM;
    c->collect = collect;
    c->ud = ud;
    pthread_mutex_lock(&m->lock);
    collector_t **p = &m->collectors;
    while (*p)
        p = &(*p)->next;
    *p = c;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* Formats v with the fewest of 15..17 significant digits that read back exactly. */
static void shortest(double v, char out[32])
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(out, 32, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* A sample value: integers exactly, others in their shortest exact form; NaN/Inf spelled the
 * Prometheus way. */
static void write_value(eo_buf_t *out, double v)
{
    char text[32];
    if (isnan(v))
        eo_buf_puts(out, "NaN");
    else if (isinf(v))
        eo_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9e15)
        eo_buf_putf(out, "%.0f", v);
    else {
        shortest(v, text);
        eo_buf_puts(out, text);
    }
}

static void write_sample(eo_buf_t *out, const char *name, const char *suffix, const char *labels,
                         const char *extra, double v)
{
    bool any = labels[0] || extra[0];
    eo_buf_putf(out, "%s%s%s%s%s%s%s ", name, suffix, any ? "{" : "", labels,
                labels[0] && extra[0] ? "," : "", extra, any ? "}" : "");
    write_value(out, v);
    eo_buf_putc(out, '\n');
}

static double gauge_value(const eo_gauge_t *g)
{
    return g->read ? g->read(g->ud) : double_of(atomic_load(&g->bits));
}

static void write_family(eo_buf_t *out, const family_t *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    eo_buf_putf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, types[f->kind]);
    for (const series_t *s = f->series; !eo_buf_error(out) && s; s = s->next) {
        if (f->kind == KIND_COUNTER) {
            write_sample(out, f->name, "", s->labels, "", (double)atomic_load(&s->u.counter.value));
        } else if (f->kind == KIND_GAUGE) {
            write_sample(out, f->name, "", s->labels, "", gauge_value(&s->u.gauge));
        } else {
            const eo_histogram_t *h = &s->u.histogram;
            uint64_t cumulative = 0;
            for (size_t i = 0; h->counts && i <= h->nbounds; i++) {
                cumulative += atomic_load(&h->counts[i]);
                char le[48], bound[32];
                if (i < h->nbounds) {
                    shortest(h->bounds[i], bound);
                    snprintf(le, sizeof le, "le=\"%s\"", bound);
                } else
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                write_sample(out, f->name, "_bucket", s->labels, le, (double)cumulative);
            }
            write_sample(out, f->name, "_sum", s->labels, "", double_of(atomic_load(&h->sum_bits)));
            write_sample(out, f->name, "_count", s->labels, "", (double)cumulative);
        }
    }
}

/* process_* metrics from /proc (Linux). */
static void write_process(eo_buf_t *out)
{
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    double rss = 0, vsize = 0, cpu = 0, start = 0, fds = 0, max_fds = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        const char *p = strrchr(buf, ')'); /* the command may hold spaces */
        unsigned long utime = 0, stime = 0, vs = 0;
        unsigned long long starttime = 0;
        long rsspages = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                        "%*d %*d %llu %lu %ld",
                        &utime, &stime, &starttime, &vs, &rsspages) == 5) {
            cpu = (double)(utime + stime) / (double)ticks;
            vsize = (double)vs;
            rss = (double)rsspages * (double)page;
            FILE *st = fopen("/proc/stat", "r");
            char line[256];
            while (st && fgets(line, sizeof line, st)) {
                unsigned long long btime;
                if (sscanf(line, "btime %llu", &btime) == 1) {
                    start = (double)btime + (double)starttime / (double)ticks;
                    break;
                }
            }
            if (st)
                fclose(st);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *de; d && (de = readdir(d));)
        fds += de->d_name[0] != '.';
    if (d) {
        closedir(d);
        fds -= 1; /* the directory stream itself */
    }
    max_fds = (double)sysconf(_SC_OPEN_MAX);
    static const struct {
        const char *name, *help, *type;
    } proc[] = {
        {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
         "counter"},
        {"process_resident_memory_bytes", "Resident memory size in bytes.", "gauge"},
        {"process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge"},
        {"process_open_fds", "Number of open file descriptors.", "gauge"},
        {"process_max_fds", "Maximum number of open file descriptors.", "gauge"},
        {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
         "gauge"},
    };
    const double values[] = {cpu, rss, vsize, fds, max_fds, start};
    for (size_t i = 0; i < sizeof proc / sizeof proc[0]; i++) {
        eo_buf_putf(out, "# HELP %s %s\n# TYPE %s %s\n", proc[i].name, proc[i].help, proc[i].name,
                    proc[i].type);
        write_sample(out, proc[i].name, "", "", "", values[i]);
    }
}

int eo_metrics_write(eo_metrics_t *m, eo_buf_t *out)
{
    int r = eo_buf_error(out);
    pthread_mutex_lock(&m->lock);
    for (const family_t *f = m->families; r == 0 && f; f = f->next) {
        write_family(out, f);
        r = eo_buf_error(out);
    }
    for (const collector_t *c = m->collectors; r == 0 && c; c = c->next)
        r = c->collect(out, c->ud);
    pthread_mutex_unlock(&m->lock);
    if (r == 0)
        write_process(out);
    return r ? r : eo_buf_error(out);
}

void eo_metrics_counters(eo_metrics_t *m, const char *name, const char *help, const char *role,
                         const char *label, const char *const *values, size_t n, eo_counter_t **out)
{
    for (size_t i = 0; i < n; i++) {
        char labels[256];
        snprintf(labels, sizeof labels, "role=\"%s\",%s=\"%s\"", role, label, values[i]);
        out[i] = eo_metrics_counter(m, name, help, labels);
    }
}
