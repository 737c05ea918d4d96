/* qgen: synthetic event data for the query benchmark (bench/query_load.sh).
 *
 *   qgen tenants                              tenant id, name, share of events, users (TSV)
 *   qgen plan --events N --days D --end-us E  per UTC day of the window [E - D days, E):
 *                                             day index, date, from_us, to_us, events (TSV)
 *   qgen day  --events N --days D --end-us E --day I [--seed S]
 *                                             COPY text (FROM STDIN, text format) of that day's
 *                                             events, in the column order of the events table
 *
 * Deterministic: the same arguments give the same bytes, so a day can be generated again after
 * an interrupted load. Event counts per day follow a growth trend (0.7x at the start of the
 * window to 1.3x at its end), weekends at 0.75x, and are exact: the days sum to N.
 *
 * Model, per tenant (one big tenant holds 85% of the events):
 *   - users: user-NNNNNNN ids; each has a signup day (uniform over the window and the 60 days
 *     before it), a plan (free/starter/pro/enterprise, 5% none), a city (Zipf over 40 cities,
 *     30% none) and a platform (web or mobile). Activity is skewed: a session picks a user as
 *     n * r^2 (a few heavy users), among those already signed up.
 *   - on their signup day 85% of new users have a session holding signed_up;
 *   - anonymous-only sessions (10%) come from a pool of visitors (anonymousId only);
 *     5% of identified users' events also carry their device's anonymousId;
 *   - a session is 1 + geometric (mean 7) events a few seconds apart, started at a time of
 *     day drawn from a diurnal curve, and walks a shopping funnel (product_viewed ->
 *     product_added -> checkout_started -> payment_info_entered -> order_completed) between
 *     browsing events. 20 event types in all, with skewed frequencies.
 * Within a day the rows are sorted by occurred_at (as the pipeline would store them); the
 * messageIds are UUIDv7 built from occurred_at (unique: the day's row number is in them).
 *
 * Build: cc -std=c17 -O2 -Wall -Wextra -Werror -o qgen qgen.c -lm */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_US 86400000000LL
#define MAX_DAY_EVENTS (1u << 24) /* the row number's bits in the messageId */

static void die(const char *msg)
{
    fprintf(stderr, "qgen: %s\n", msg);
    exit(2);
}

/* ------------------------------------------------------------------------------------------ */
/* Random numbers: splitmix64 for seeding and hashing, xoshiro256** for streams */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(mix64(mix64(a) ^ b) ^ c);
}

typedef struct {
    uint64_t s[4];
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = seed = mix64(seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double rng_unit(rng_t *r) /* [0, 1) */
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)((rng_next(r) >> 32) * n >> 32);
}

/* ------------------------------------------------------------------------------------------ */
/* Tenants, event types, value lists */

static const struct {
    const char *id, *name;
    double share;
    uint32_t users;
} tenants[] = {
    {"7f3c9a12-4b8e-4d21-9c6a-0a1b2c3d4e01", "qbench-big", 0.85, 850000},
    {"7f3c9a12-4b8e-4d21-9c6a-0a1b2c3d4e02", "qbench-mid", 0.08, 80000},
    {"7f3c9a12-4b8e-4d21-9c6a-0a1b2c3d4e03", "qbench-small", 0.04, 40000},
    {"7f3c9a12-4b8e-4d21-9c6a-0a1b2c3d4e04", "qbench-tiny", 0.02, 20000},
    {"7f3c9a12-4b8e-4d21-9c6a-0a1b2c3d4e05", "qbench-trial", 0.01, 10000},
};
#define N_TENANTS (sizeof tenants / sizeof tenants[0])

enum {
    T_PAGE,
    T_SCREEN,
    T_APP_OPENED,
    T_PRODUCT_VIEWED,
    T_SEARCH,
    T_BUTTON,
    T_PRODUCT_ADDED,
    T_CART_VIEWED,
    T_CHECKOUT,
    T_PAYMENT,
    T_ORDER,
    T_SIGNED_IN,
    T_SIGNED_UP,
    T_SUBSCRIPTION,
    T_VIDEO,
    T_NOTIFICATION,
    T_SHARE,
    T_REVIEW,
    T_COUPON,
    T_ERROR,
    N_TYPES
};

static const char *const type_names[N_TYPES] = {
    "page_viewed",      "screen_viewed",        "app_opened",      "product_viewed",
    "search_performed", "button_clicked",       "product_added",   "cart_viewed",
    "checkout_started", "payment_info_entered", "order_completed", "signed_in",
    "signed_up",        "subscription_started", "video_played",    "notification_clicked",
    "share_clicked",    "review_submitted",     "coupon_applied",  "error_shown",
};

/* Browsing events between funnel steps: type and weight (web; mobile swaps page for screen). */
static const struct {
    uint8_t type;
    uint16_t weight;
} browse[] = {
    {T_PAGE, 450}, {T_SEARCH, 120},      {T_BUTTON, 150},     {T_PRODUCT_VIEWED, 130},
    {T_VIDEO, 50}, {T_NOTIFICATION, 25}, {T_SHARE, 20},       {T_ERROR, 25},
    {T_REVIEW, 6}, {T_COUPON, 8},        {T_CART_VIEWED, 16},
};
#define N_BROWSE (sizeof browse / sizeof browse[0])

static const char *const plans[] = {"free", "starter", "pro", "enterprise"};

static const struct {
    const char *city, *country;
} cities[] = {
    {"London", "GB"},    {"New York", "US"},  {"Berlin", "DE"},       {"Paris", "FR"},
    {"Tokyo", "JP"},     {"São Paulo", "BR"}, {"Mumbai", "IN"},       {"Madrid", "ES"},
    {"Toronto", "CA"},   {"Sydney", "AU"},    {"Amsterdam", "NL"},    {"Chicago", "US"},
    {"Munich", "DE"},    {"Milan", "IT"},     {"Seoul", "KR"},        {"Mexico City", "MX"},
    {"Stockholm", "SE"}, {"Dublin", "IE"},    {"Warsaw", "PL"},       {"Vienna", "AT"},
    {"Zürich", "CH"},    {"Lisbon", "PT"},    {"Austin", "US"},       {"Singapore", "SG"},
    {"Bangalore", "IN"}, {"Lagos", "NG"},     {"Cairo", "EG"},        {"Istanbul", "TR"},
    {"Prague", "CZ"},    {"Oslo", "NO"},      {"Helsinki", "FI"},     {"Copenhagen", "DK"},
    {"Brussels", "BE"},  {"Lyon", "FR"},      {"Hamburg", "DE"},      {"Seattle", "US"},
    {"Vancouver", "CA"}, {"Melbourne", "AU"}, {"Buenos Aires", "AR"}, {"Jakarta", "ID"},
};
#define N_CITIES (sizeof cities / sizeof cities[0])

static const char *const words[] = {
    "home",  "pricing", "docs",   "blog",     "careers", "shoes", "jackets", "outdoor",
    "sale",  "summer",  "winter", "checkout", "account", "help",  "search",  "compare",
    "email", "google",  "github", "password", "pro",     "team",  "starter", "annual",
};
#define N_WORDS (sizeof words / sizeof words[0])

/* ------------------------------------------------------------------------------------------ */
/* The window and its days */

typedef struct {
    int64_t events, end_us, first_day; /* first_day: days since epoch of the first UTC day */
    int days, ndays;                   /* window length in days; UTC days it touches */
    uint64_t seed;
} window_t;

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void window_init(window_t *w)
{
    int64_t start = w->end_us - (int64_t)w->days * DAY_US;
    w->first_day = floor_div(start, DAY_US);
    w->ndays = (int)(floor_div(w->end_us - 1, DAY_US) - w->first_day + 1);
}

static void day_range(const window_t *w, int i, int64_t *lo, int64_t *hi)
{
    int64_t start = w->end_us - (int64_t)w->days * DAY_US;
    *lo = (w->first_day + i) * DAY_US;
    *hi = *lo + DAY_US;
    if (*lo < start)
        *lo = start;
    if (*hi > w->end_us)
        *hi = w->end_us;
}

static double day_weight(const window_t *w, int i)
{
    int64_t lo, hi, start = w->end_us - (int64_t)w->days * DAY_US;
    day_range(w, i, &lo, &hi);
    double cover = (double)(hi - lo) / (double)DAY_US;
    double mid = ((double)(lo - start) + (double)(hi - lo) / 2) / (double)(w->end_us - start);
    int dow = (int)(((w->first_day + i) % 7 + 11) % 7); /* 1970-01-01 was a Thursday: 0 = Sun */
    return cover * (0.7 + 0.6 * mid) * (dow == 0 || dow == 6 ? 0.75 : 1.0);
}

/* Events of day i: cumulative rounding, so that the days sum to exactly w->events. */
static int64_t day_events(const window_t *w, int i)
{
    double total = 0, before = 0;
    for (int d = 0; d < w->ndays; d++) {
        double x = day_weight(w, d);
        total += x;
        if (d < i)
            before += x;
    }
    double upto = before + day_weight(w, i);
    return llround((double)w->events * upto / total) - llround((double)w->events * before / total);
}

static int64_t split(int64_t n, size_t t) /* tenant t's part of n, cumulative rounding */
{
    double before = 0;
    for (size_t k = 0; k < t; k++)
        before += tenants[k].share;
    int64_t upto = t + 1 == N_TENANTS ? n : llround((double)n * (before + tenants[t].share));
    return upto - llround((double)n * before);
}

/* ------------------------------------------------------------------------------------------ */
/* Users */

/* Signup day relative to the window's first UTC day: -60 .. ndays-1. */
static int signup_day(const window_t *w, size_t t, uint32_t u)
{
    return (int)(hash3(w->seed ^ 0x5157, t, u) % (uint64_t)(w->ndays + 60)) - 60;
}

static uint64_t user_hash(const window_t *w, size_t t, uint32_t u)
{
    return hash3(w->seed ^ 0xa77, t, u);
}

/* ------------------------------------------------------------------------------------------ */
/* One day's events */

typedef struct {
    int64_t t;      /* occurred_at, µs since epoch */
    uint32_t who;   /* user or visitor number */
    uint32_t sess;  /* session hash: context, properties */
    uint8_t tenant; /* index into tenants */
    uint8_t type;
    uint8_t anon; /* 1: anonymous-only visitor */
    uint8_t mobile;
} ev_t;

typedef struct {
    ev_t *v;
    size_t n, cap;
} evs_t;

static void push(evs_t *e, ev_t x)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1 << 16;
        e->v = realloc(e->v, e->cap * sizeof *e->v);
        if (!e->v)
            die("out of memory");
    }
    e->v[e->n++] = x;
}

/* A start time in [lo, hi) following a diurnal curve (peak 15:00 UTC, trough 03:00). */
static int64_t session_start(rng_t *r, int64_t lo, int64_t hi)
{
    for (;;) {
        int64_t t = lo + (int64_t)(rng_unit(r) * (double)(hi - lo));
        double h = (double)(t % DAY_US) / 3.6e9;
        if (rng_unit(r) * 1.6 < 1.0 + 0.6 * cos((h - 15.0) * M_PI / 12.0))
            return t;
    }
}

static uint8_t pick_browse(rng_t *r, bool mobile, int stage)
{
    static unsigned total;
    if (!total)
        for (size_t i = 0; i < N_BROWSE; i++)
            total += browse[i].weight;
    unsigned x = rng_below(r, total);
    size_t i = 0;
    while (x >= browse[i].weight)
        x -= browse[i++].weight;
    uint8_t ty = browse[i].type;
    if (ty == T_PAGE && mobile)
        return T_SCREEN;
    if (ty == T_NOTIFICATION && !mobile)
        return T_PAGE;
    if (ty == T_COUPON && stage < 2)
        return T_BUTTON;
    return ty;
}

/* Appends one session of at most `budget` events; returns how many it appended. */
static int64_t session(evs_t *e, rng_t *r, size_t t, uint32_t who, bool anon, bool mobile,
                       bool signup, int64_t lo, int64_t hi, int64_t budget)
{
    uint32_t sess = (uint32_t)rng_next(r);
    int64_t ts = session_start(r, lo, hi), n = 0;
    int len = 1;
    while (len < 60 && rng_unit(r) > 1.0 / 7.0)
        len++;
    if (signup && len < 3)
        len = 3;
    int stage = 0;
    for (int k = 0; k < len && n < budget && ts < hi; k++) {
        uint8_t ty;
        double p = rng_unit(r);
        if (k == 0)
            ty = mobile ? T_APP_OPENED : T_PAGE;
        else if (k == 1 && signup)
            ty = T_SIGNED_UP;
        else if (k == 2 && signup && p < 0.12)
            ty = T_SUBSCRIPTION;
        else if (k == 1 && !anon && p < 0.25)
            ty = T_SIGNED_IN;
        else if (stage == 0 && p < 0.22)
            ty = T_PRODUCT_VIEWED, stage = 1;
        else if (stage == 1 && p < 0.22)
            ty = T_PRODUCT_ADDED, stage = 2;
        else if (stage == 2 && p < 0.30)
            ty = T_CHECKOUT, stage = 3;
        else if (stage == 3 && p < 0.55)
            ty = T_PAYMENT, stage = 4;
        else if (stage == 4 && p < 0.65)
            ty = T_ORDER, stage = 5;
        else
            ty = pick_browse(r, mobile, stage);
        push(e, (ev_t){ts, who, sess, (uint8_t)t, ty, anon, mobile});
        n++;
        ts += 1000000 + (int64_t)(-log(1.0 - rng_unit(r)) * 25e6); /* 1 s + exp(mean 25 s) */
    }
    return n;
}

static uint32_t skewed(rng_t *r, uint32_t n, double power)
{
    uint32_t x = (uint32_t)(pow(rng_unit(r), power) * n);
    return x < n ? x : n - 1;
}

static void gen_tenant_day(const window_t *w, int day, size_t t, int64_t want, evs_t *e)
{
    rng_t r;
    rng_seed(&r, hash3(w->seed, (uint64_t)(w->first_day + day), t));
    int64_t lo, hi, have = 0;
    day_range(w, day, &lo, &hi);
    uint32_t nusers = tenants[t].users, nvisitors = nusers / 2;

    /* New users' signup sessions first (a user's signup day is a property of the user). */
    for (uint32_t u = 0; u < nusers && have < want; u++) {
        if (signup_day(w, t, u) != day || rng_unit(&r) >= 0.85)
            continue;
        bool mobile = user_hash(w, t, u) >> 63;
        have += session(e, &r, t, u, false, mobile, true, lo, hi, want - have);
    }
    while (have < want) {
        if (rng_unit(&r) < 0.10) {
            uint32_t v = skewed(&r, nvisitors, 1.5);
            have += session(e, &r, t, v, true, hash3(t, v, 7) & 1, false, lo, hi, want - have);
            continue;
        }
        uint32_t u = 0;
        int tries = 0;
        do
            u = skewed(&r, nusers, 2.0);
        while (signup_day(w, t, u) > day && ++tries < 64);
        if (tries == 64)
            continue;
        bool mobile = user_hash(w, t, u) >> 63;
        have += session(e, &r, t, u, false, mobile, false, lo, hi, want - have);
    }
}

static int cmp_ev(const void *a, const void *b)
{
    const ev_t *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->tenant != y->tenant)
        return x->tenant - y->tenant;
    if (x->who != y->who)
        return x->who < y->who ? -1 : 1;
    return (int)x->type - (int)y->type;
}

/* ------------------------------------------------------------------------------------------ */
/* COPY text output */

typedef struct {
    char *p, *end, *buf;
} out_t;

static void flush(out_t *o)
{
    size_t n = (size_t)(o->p - o->buf);
    if (n && fwrite(o->buf, 1, n, stdout) != n)
        die("write error on stdout");
    o->p = o->buf;
}

static void put(out_t *o, const char *s, size_t n)
{
    memcpy(o->p, s, n);
    o->p += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    o->p += vsnprintf(o->p, (size_t)(o->end - o->p), fmt, ap);
    va_end(ap);
}

static void civil(int64_t z, int *y, unsigned *m, unsigned *d) /* days since epoch -> date */
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static void put_ts(out_t *o, int64_t us)
{
    int64_t day = floor_div(us, DAY_US), rem = us - day * DAY_US;
    int y;
    unsigned m, d;
    civil(day, &y, &m, &d);
    int64_t s = rem / 1000000;
    putf(o, "%04d-%02u-%02u %02d:%02d:%02d.%06d+00", y, m, d, (int)(s / 3600), (int)(s / 60 % 60),
         (int)(s % 60), (int)(rem % 1000000));
}

static void put_hex(out_t *o, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--)
        o->p[i] = hex[v & 15], v >>= 4;
    o->p += digits;
}

static const char *word(rng_t *r)
{
    return words[rng_below(r, N_WORDS)];
}

static void put_properties(out_t *o, const window_t *w, const ev_t *e, rng_t *r)
{
    uint64_t uh =
        e->anon ? hash3(w->seed ^ 0xf00, e->tenant, e->who) : user_hash(w, e->tenant, e->who);
    bool first = true;
#define SEP() (first ? (first = false, "") : ",")
    puts_(o, "{");
    /* plan: a user trait (none for visitors, 5% of users; null on 1% of events) */
    if (!e->anon && (uh & 0xff) >= 13) {
        unsigned p = (unsigned)(uh >> 8 & 0xff);
        const char *plan = plans[p < 147 ? 0 : p < 200 ? 1 : p < 240 ? 2 : 3];
        if (rng_below(r, 100) == 0)
            putf(o, "%s\"plan\":null", SEP());
        else
            putf(o, "%s\"plan\":\"%s\"", SEP(), plan);
    }
    /* address.city: 70% of users, 30% of visitors; Zipf-like over the cities */
    if ((uh >> 16 & 0xff) < (e->anon ? 77u : 179u)) {
        double x = (double)(uh >> 24 & 0xffff) / 65536.0;
        size_t c = (size_t)(pow(x, 2.2) * N_CITIES);
        putf(o, "%s\"address\":{\"city\":\"%s\"}", SEP(), cities[c].city);
    }
    uint32_t x = (uint32_t)rng_next(r);
    switch (e->type) {
    case T_PAGE:
        putf(o, "%s\"path\":\"/%s/%s\"", SEP(), word(r), word(r));
        break;
    case T_SCREEN:
        putf(o, "%s\"screen\":\"%s\"", SEP(), word(r));
        break;
    case T_PRODUCT_VIEWED:
    case T_PRODUCT_ADDED:
        putf(o, "%s\"product_id\":\"P-%05u\",\"price\":%u.%02u", SEP(), x % 20000, x % 300,
             x / 7 % 100);
        break;
    case T_SEARCH:
        putf(o, "%s\"query\":\"%s %s\"", SEP(), word(r), word(r));
        break;
    case T_BUTTON:
        putf(o, "%s\"button\":\"%s\"", SEP(), word(r));
        break;
    case T_CHECKOUT:
    case T_PAYMENT:
        putf(o, "%s\"cart_id\":\"c%08x\"", SEP(), e->sess);
        break;
    case T_ORDER:
        putf(o, "%s\"order_id\":\"o%08x\",\"revenue\":%u.%02u,\"currency\":\"%s\"", SEP(), x,
             x % 900 + 10, x / 7 % 100, x % 3 ? "EUR" : "USD");
        break;
    case T_SIGNED_IN:
    case T_SIGNED_UP:
        putf(o, "%s\"method\":\"%s\"", SEP(), x % 3 ? "email" : "google");
        break;
    case T_VIDEO:
        putf(o, "%s\"video_id\":\"v%04u\",\"position_s\":%u", SEP(), x % 5000, x % 600);
        break;
    case T_ERROR:
        putf(o, "%s\"code\":%u", SEP(), 400 + x % 4);
        break;
    default:
        break;
    }
#undef SEP
    puts_(o, "}");
}

/* A small context (the benchmark keeps the database well under 40 GB; real contexts are larger,
 * but no query endpoint reads them). */
static void put_context(out_t *o, const ev_t *e)
{
    uint32_t s = e->sess;
    if (e->mobile)
        putf(o, "{\"ip\":\"10.%u.%u.%u\",\"os\":\"%s\"}", s >> 16 & 0xff, s >> 24, s >> 1 & 0x7f,
             s & 1 ? "iOS" : "Android");
    else
        putf(o, "{\"ip\":\"10.%u.%u.%u\"}", s >> 16 & 0xff, s >> 24, s >> 1 & 0x7f);
}

static void emit_day(const window_t *w, int day, evs_t *e)
{
    out_t o;
    size_t cap = 1 << 20;
    o.buf = o.p = malloc(cap + 4096);
    if (!o.buf)
        die("out of memory");
    o.end = o.buf + cap + 4096;
    for (size_t i = 0; i < e->n; i++) {
        const ev_t *v = &e->v[i];
        rng_t r;
        rng_seed(&r, hash3(w->seed ^ 0xe7, (uint64_t)(w->first_day + day), i));
        puts_(&o, tenants[v->tenant].id);
        *o.p++ = '\t';
        /* messageId: UUIDv7 of occurred_at (ms), 12 random bits, variant, then 14 + 24 random
         * bits and the day's 24-bit row number */
        uint64_t ms = (uint64_t)(v->t / 1000), rnd = rng_next(&r);
        put_hex(&o, ms >> 16, 8);
        *o.p++ = '-';
        put_hex(&o, ms & 0xffff, 4);
        *o.p++ = '-';
        put_hex(&o, 0x7000 | (rnd & 0xfff), 4);
        *o.p++ = '-';
        put_hex(&o, 0x8000 | (rnd >> 12 & 0x3fff), 4);
        *o.p++ = '-';
        put_hex(&o, (rnd >> 26 & 0xffffff) << 24 | i, 12);
        *o.p++ = '\t';
        puts_(&o, type_names[v->type]);
        *o.p++ = '\t';
        bool device = !v->anon && rng_below(&r, 100) < 5;
        if (v->anon)
            puts_(&o, "\\N\t");
        else
            putf(&o, "user-%07u\t", v->who);
        if (v->anon || device)
            putf(&o, "anon-%016" PRIx64 "\t", hash3(0xdead, v->tenant, v->who * 2u + v->anon));
        else
            puts_(&o, "\\N\t");
        put_ts(&o, v->t);
        *o.p++ = '\t';
        int64_t sent = v->t + 5000 + rng_below(&r, 500000);
        put_ts(&o, sent + 10000 + rng_below(&r, 50000)); /* received_at */
        *o.p++ = '\t';
        if (rng_below(&r, 100) < 5)
            puts_(&o, "\\N");
        else
            put_ts(&o, sent);
        *o.p++ = '\t';
        put_properties(&o, w, v, &r);
        *o.p++ = '\t';
        put_context(&o, v);
        *o.p++ = '\n';
        if (o.p - o.buf > (ptrdiff_t)cap)
            flush(&o);
    }
    flush(&o);
    free(o.buf);
}

/* ------------------------------------------------------------------------------------------ */

static int64_t arg_ll(const char *name, const char *s, int64_t min, int64_t max)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end || v < min || v > max) {
        fprintf(stderr, "qgen: bad %s: %s\n", name, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: qgen tenants | plan --events N --days D --end-us E | day ... --day I");
    const char *cmd = argv[1];
    window_t w = {.events = 0, .end_us = 0, .days = 120, .seed = 1};
    int day = -1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--events"))
            w.events = arg_ll("--events", argv[i + 1], 1, (int64_t)1 << 40);
        else if (!strcmp(argv[i], "--days"))
            w.days = (int)arg_ll("--days", argv[i + 1], 1, 3650);
        else if (!strcmp(argv[i], "--end-us"))
            w.end_us = arg_ll("--end-us", argv[i + 1], 1, INT64_MAX / 2);
        else if (!strcmp(argv[i], "--day"))
            day = (int)arg_ll("--day", argv[i + 1], 0, 4000);
        else if (!strcmp(argv[i], "--seed"))
            w.seed = (uint64_t)arg_ll("--seed", argv[i + 1], 0, INT64_MAX);
        else
            die("unknown option");
    }
    if (!strcmp(cmd, "tenants")) {
        for (size_t t = 0; t < N_TENANTS; t++)
            printf("%s\t%s\t%.2f\t%u\n", tenants[t].id, tenants[t].name, tenants[t].share,
                   tenants[t].users);
        return 0;
    }
    if (!w.events || !w.end_us)
        die("--events and --end-us are required");
    window_init(&w);
    if (!strcmp(cmd, "plan")) {
        for (int i = 0; i < w.ndays; i++) {
            int64_t lo, hi;
            day_range(&w, i, &lo, &hi);
            int y;
            unsigned m, d;
            civil(w.first_day + i, &y, &m, &d);
            printf("%d\t%04d-%02u-%02u\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n", i, y, m, d, lo,
                   hi, day_events(&w, i));
        }
        return 0;
    }
    if (strcmp(cmd, "day") || day < 0 || day >= w.ndays)
        die("usage: qgen day --events N --days D --end-us E --day I (0 <= I < days in window)");
    int64_t n = day_events(&w, day);
    if (n >= (int64_t)MAX_DAY_EVENTS)
        die("more than 2^24 events in one day: use more days or fewer events");
    evs_t e = {NULL, 0, 0};
    for (size_t t = 0; t < N_TENANTS; t++)
        gen_tenant_day(&w, day, t, split(n, t), &e);
    qsort(e.v, e.n, sizeof *e.v, cmp_ev);
    emit_day(&w, day, &e);
    free(e.v);
    return 0;
}
