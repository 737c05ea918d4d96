/* loadgen: HTTP/1.1 load generator for the EventOps collector (POST /events/batch).
 *
 * Pre-generates a pool of realistic batch bodies before the clock starts, then drives N
 * keep-alive connections from one epoll thread. Each request is patched in place just before
 * it is sent: a unique messageId per event (run nonce + global event sequence) and sentAt (the
 * send time). With --rate the send times follow a fixed schedule (open loop), and latency is
 * reported both from the actual send and from the scheduled send (the latter includes any wait
 * for a free connection, so a stalled server cannot hide behind fewer requests: no coordinated
 * omission). Prints one JSON line on stdout at the end; progress and errors go to stderr.
 *
 * Bounded: stops after --events or --duration, and gives up at --timeout whatever happens.
 * Loopback only: refuses a --host that does not resolve to 127.0.0.0/8 or ::1.
 *
 * Build: cc -std=c17 -O2 -Wall -Wextra -Werror -o loadgen loadgen.c
 * Threads: one; everything here is owned by it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define MAX_BATCH 100000
#define MAX_POOL_BODIES 1024
#define POOL_BYTES_CAP ((size_t)256 << 20)
#define BODY_BYTES_CAP ((size_t)64 << 20)
#define RESPONSE_CAP ((size_t)16 << 20)
#define LATENCY_SAMPLES_CAP ((size_t)32 << 20)
#define TS_LEN 24 /* 2025-01-02T03:04:05.678Z */
#define SEQ_HEX 12

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        die("out of memory (%zu bytes)", n);
    return q;
}

/* Parses a whole decimal integer in [min, max]; dies with the option name otherwise. */
static long long parse_ll(const char *opt, const char *s, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        die("--%s: expected an integer from %lld to %lld, got '%s'", opt, min, max, s);
    return v;
}

static double parse_double(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= min && v <= max))
        die("--%s: expected a number from %g to %g, got '%s'", opt, min, max, s);
    return v;
}

/* Formats unix milliseconds as RFC 3339 UTC with milliseconds: exactly TS_LEN characters. */
static void format_ts(int64_t unix_ms, char out[TS_LEN + 1])
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (strftime(out, TS_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
        die("cannot format the time %lld", (long long)unix_ms);
    unsigned ms = (unsigned)(unix_ms % 1000);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

static void put_hex(char *dst, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        dst[i] = hex[v & 0xf];
        v >>= 4;
    }
}

/* xorshift64*: deterministic per --seed. */
typedef struct {
    uint64_t s;
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

/* Uniform in [0, n). */
static uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)((rng_next(r) >> 32) * n >> 32);
}

/* ------------------------------------------------------------------------------------------ */
/* Growable text buffer with a hard cap (dies past it: the generator's own sizes are bounded). */

typedef struct {
    char *data;
    size_t len, cap, max;
} text_t;

static void text_reserve(text_t *t, size_t extra)
{
    if (t->len + extra + 1 <= t->cap)
        return;
    if (t->len + extra + 1 > t->max)
        die("buffer over its cap of %zu bytes", t->max);
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + extra + 1)
        cap *= 2;
    if (cap > t->max)
        cap = t->max;
    t->data = xrealloc(t->data, cap);
    t->cap = cap;
}

static void text_add(text_t *t, const char *s, size_t n)
{
    text_reserve(t, n);
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_str(text_t *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("vsnprintf failed");
    text_reserve(t, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* ------------------------------------------------------------------------------------------ */
/* Event generation */

typedef struct {
    uint32_t off, len;
} span_t;

/* Where the patched and the dumped parts of one event lie inside its body. */
typedef struct {
    uint32_t seq_off;  /* the SEQ_HEX hex digits ending the messageId */
    uint32_t sent_off; /* the TS_LEN characters of sentAt */
    span_t event_type, user_id, anonymous_id, timestamp, properties, context;
} event_spans_t;

typedef struct {
    text_t text;
    size_t nevents;
    event_spans_t *ev;
    bool in_use; /* sent on a connection and not answered yet: must not be patched */
} body_t;

static const struct {
    const char *name;
    unsigned weight;
    const char *keys[8]; /* property keys this type draws from */
} event_types[] = {
    {"page_viewed", 30, {"path", "title", "referrer", "url", "load_ms", "tab", NULL}},
    {"product_viewed", 15, {"product_id", "sku", "category", "price", "currency", "brand", NULL}},
    {"button_clicked", 12, {"button", "path", "position", "variant", "label", NULL}},
    {"search_performed", 10, {"query", "results", "page", "filters", "sort", NULL}},
    {"product_added", 8, {"product_id", "sku", "price", "quantity", "currency", "cart_id", NULL}},
    {"signed_in", 7, {"method", "remember", "provider", "mfa", NULL}},
    {"video_played", 6, {"video_id", "position_s", "duration_s", "quality", "autoplay", NULL}},
    {"checkout_started", 5, {"cart_id", "value", "currency", "items", "coupon", NULL}},
    {"signed_up", 4, {"method", "plan", "referrer", "trial", "provider", NULL}},
    {"order_completed",
     3,
     {"order_id", "revenue", "currency", "items", "shipping", "tax", "coupon", NULL}},
};
#define N_EVENT_TYPES (sizeof event_types / sizeof event_types[0])

static const char *const words[] = {
    "home",  "pricing", "docs",   "blog",     "careers", "shoes", "jackets", "outdoor",
    "sale",  "summer",  "winter", "checkout", "account", "help",  "search",  "compare",
    "email", "google",  "github", "password", "pro",     "team",  "starter", "annual",
};
#define N_WORDS (sizeof words / sizeof words[0])

static const char *const user_agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
};

static const char *pick_word(rng_t *r)
{
    return words[rng_below(r, N_WORDS)];
}

static void add_property_value(text_t *t, const char *key, rng_t *r)
{
    uint32_t x = rng_below(r, 1000000);
    if (strstr(key, "price") || strstr(key, "revenue") || strstr(key, "value") ||
        strstr(key, "tax") || strstr(key, "shipping"))
        text_printf(t, "%u.%02u", x % 500, x % 100);
    else if (strstr(key, "_ms") || strstr(key, "_s") || !strcmp(key, "results") ||
             !strcmp(key, "page") || !strcmp(key, "quantity") || !strcmp(key, "items") ||
             !strcmp(key, "position"))
        text_printf(t, "%u", x % 2000);
    else if (!strcmp(key, "remember") || !strcmp(key, "mfa") || !strcmp(key, "trial") ||
             !strcmp(key, "autoplay"))
        text_str(t, x & 1 ? "true" : "false");
    else if (!strcmp(key, "currency"))
        text_str(t, x % 3 == 0 ? "\"EUR\"" : x % 3 == 1 ? "\"USD\"" : "\"GBP\"");
    else if (!strcmp(key, "filters"))
        text_printf(t, "[\"%s\",\"%s\"]", pick_word(r), pick_word(r));
    else if (strstr(key, "_id") || !strcmp(key, "sku"))
        text_printf(t, "\"%c%c-%06u\"", 'A' + (char)(x % 26), 'A' + (char)(x / 26 % 26), x);
    else if (!strcmp(key, "url") || !strcmp(key, "referrer"))
        text_printf(t, "\"https://shop.example/%s\"", pick_word(r));
    else if (!strcmp(key, "path"))
        text_printf(t, "\"/%s/%s\"", pick_word(r), pick_word(r));
    else if (x & 1)
        text_printf(t, "\"%s %s\"", pick_word(r), pick_word(r));
    else
        text_printf(t, "\"%s\"", pick_word(r));
}

static span_t span_from(const text_t *t, size_t start)
{
    return (span_t){(uint32_t)start, (uint32_t)(t->len - start)};
}

/* The body forms: EventOps's own; Segment track messages ("type":"track","event" instead of
 * "eventType", the rest the same); PostHog events ("uuid", "event", "distinct_id" for the
 * userId, or the anonymousId of an anonymous event, "sent_at"; the rest the same, "context"
 * included, which PostHog's mapping reads but does not store). */
enum { FORM_EVENTOPS, FORM_SEGMENT, FORM_POSTHOG };

/* Appends one event object of the form; records where its parts lie. */
static void add_event(text_t *t, rng_t *r, const char *user_prefix, int64_t now_ms, int form,
                      event_spans_t *sp)
{
    bool posthog = form == FORM_POSTHOG;
    unsigned total = 0;
    for (size_t i = 0; i < N_EVENT_TYPES; i++)
        total += event_types[i].weight;
    unsigned pick = rng_below(r, total);
    size_t type = 0;
    while (pick >= event_types[type].weight)
        pick -= event_types[type++].weight;

    /* messageId: nonce part and sequence digits are patched per request */
    text_str(t, posthog ? "{\"uuid\":\"00000000-0000-4000-8000-"
                        : "{\"messageId\":\"00000000-0000-4000-8000-");
    sp->seq_off = (uint32_t)t->len;
    text_add(t, "000000000000", SEQ_HEX);
    text_str(t, form == FORM_SEGMENT   ? "\",\"type\":\"track\",\"event\":\""
                : form == FORM_POSTHOG ? "\",\"event\":\""
                                       : "\",\"eventType\":\"");
    size_t s = t->len;
    text_str(t, event_types[type].name);
    sp->event_type = span_from(t, s);
    text_str(t, "\"");

    /* 90% identified (userId among 100k, skewed towards low ids), 10% anonymous only;
     * a few identified ones carry an anonymousId too */
    uint32_t who = rng_below(r, 100);
    sp->user_id = sp->anonymous_id = (span_t){0, 0};
    if (who < 90) {
        uint32_t u = rng_below(r, 100000);
        u = (uint32_t)((uint64_t)u * u / 100000); /* skew: a few heavy users */
        text_str(t, posthog ? ",\"distinct_id\":\"" : ",\"userId\":\"");
        s = t->len;
        text_printf(t, "%suser-%06u", user_prefix, u);
        sp->user_id = span_from(t, s);
        text_str(t, "\"");
    }
    if (who >= (posthog ? 90 : 85)) { /* PostHog: one distinct_id */
        text_str(t, posthog ? ",\"distinct_id\":\"" : ",\"anonymousId\":\"");
        s = t->len;
        text_printf(t, "anon-%016" PRIx64, rng_next(r));
        sp->anonymous_id = span_from(t, s);
        text_str(t, "\"");
    }

    char ts[TS_LEN + 1];
    format_ts(now_ms - rng_below(r, 120000), ts);
    text_str(t, ",\"timestamp\":\"");
    s = t->len;
    text_str(t, ts);
    sp->timestamp = span_from(t, s);
    text_str(t, posthog ? "\",\"sent_at\":\"" : "\",\"sentAt\":\"");
    sp->sent_off = (uint32_t)t->len;
    text_str(t, ts);

    /* 3-6 distinct properties drawn from the type's keys */
    const char *const *keys = event_types[type].keys;
    size_t nkeys = 0;
    while (keys[nkeys])
        nkeys++;
    size_t want = 3 + rng_below(r, 4);
    if (want > nkeys)
        want = nkeys;
    unsigned used = 0;
    text_str(t, "\",\"properties\":");
    s = t->len;
    text_str(t, "{");
    for (size_t k = 0; k < want; k++) {
        size_t i;
        do
            i = rng_below(r, (uint32_t)nkeys);
        while (used & (1u << i));
        used |= 1u << i;
        text_printf(t, "%s\"%s\":", k ? "," : "", keys[i]);
        add_property_value(t, keys[i], r);
    }
    text_str(t, "}");
    sp->properties = span_from(t, s);

    /* context: library and ip always; a quarter also carry the user agent */
    uint64_t x = rng_next(r);
    text_str(t, ",\"context\":");
    s = t->len;
    text_printf(t,
                "{\"library\":{\"name\":\"analytics.js\",\"version\":\"4.%u.%u\"},"
                "\"ip\":\"10.%u.%u.%u\"",
                (unsigned)(x >> 60), (unsigned)(x >> 56 & 0xf), (unsigned)(x >> 16 & 0xff),
                (unsigned)(x >> 8 & 0xff), (unsigned)(x & 0xff));
    if ((x >> 24 & 3) == 0)
        text_printf(t, ",\"userAgent\":\"%s\"", user_agents[x >> 32 & 3]);
    text_str(t, "}");
    sp->context = span_from(t, s);
    text_str(t, "}");
}

/* Builds one batch body of n events: {"batch":[...]}; single: the one event itself (POST
 * /events). */
static void build_body(body_t *b, size_t n, rng_t *r, const char *user_prefix, int64_t now_ms,
                       bool single, int form)
{
    b->text = (text_t){.max = BODY_BYTES_CAP};
    b->nevents = n;
    b->ev = xmalloc(n * sizeof *b->ev);
    if (!single)
        text_str(&b->text, "{\"batch\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            text_str(&b->text, ",");
        add_event(&b->text, r, user_prefix, now_ms, form, &b->ev[i]);
    }
    if (!single)
        text_str(&b->text, "]}");
}

/* Writes the run's messageId nonce (first 20 hex digits) into every event of the body. */
static void stamp_nonce(body_t *b, uint64_t nonce_hi, uint64_t nonce_lo)
{
    for (size_t i = 0; i < b->nevents; i++) {
        char *id = b->text.data + b->ev[i].seq_off - 24; /* start of the messageId */
        put_hex(id, nonce_hi >> 32, 8);
        put_hex(id + 9, (nonce_hi >> 16) & 0xffff, 4);
        put_hex(id + 15, nonce_hi & 0xfff, 3);
        put_hex(id + 20, nonce_lo & 0xfff, 3);
    }
}

/* Patches sequence numbers and sentAt for one send. */
static void patch_body(body_t *b, uint64_t seq_base, const char sent[TS_LEN + 1])
{
    for (size_t i = 0; i < b->nevents; i++) {
        put_hex(b->text.data + b->ev[i].seq_off, seq_base + i, SEQ_HEX);
        memcpy(b->text.data + b->ev[i].sent_off, sent, TS_LEN);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Connections and requests */

typedef enum { CONN_IDLE, CONN_SENDING, CONN_READING, CONN_DEAD } conn_state_t;

/* One dispatched request, kept for the summary and for --dump-copy. */
typedef struct {
    uint32_t body;
    uint32_t nevents;
    uint64_t seq_base;
    int64_t sent_unix_ms;
    uint16_t status; /* 0: no answer (I/O error or timeout) */
    uint32_t accepted;
} request_t;

typedef struct {
    int fd;
    conn_state_t state;
    char head[1024];
    size_t head_len;
    size_t sent; /* bytes of head + body written */
    body_t *body;
    size_t req; /* index into requests */
    int64_t t_intended, t_sent;
    char *rbuf;
    size_t rlen, rcap;
} conn_t;

typedef struct {
    /* options */
    const char *host;
    int port;
    const char *key;
    int connections;
    int batch;
    long long events;  /* 0: bounded by duration */
    double duration_s; /* 0: bounded by events */
    double rate;       /* events/s; 0: as fast as possible */
    double timeout_s;  /* hard stop */
    uint64_t seed;
    const char *user_prefix;
    const char *dump_copy;
    const char *tenant_id;
    bool quiet;
    bool single;   /* POST /events, one event per request */
    int form;      /* FORM_*: POST /events/batch, /v1/batch (Segment) or /batch/ (PostHog) */
    int ok_status; /* what an accepted request answers: 202, or 200 (Segment) */
    bool print_sample;
    double start_at; /* unix seconds; 0: at once */

    /* state */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int ep, tfd;
    conn_t *conns;
    body_t *pool;
    size_t npool, next_body;
    body_t last; /* the smaller final batch of an --events run, built when first needed */
    bool last_built;
    uint64_t nonce_hi, nonce_lo;
    request_t *reqs;
    size_t nreqs, reqs_cap;
    uint64_t events_dispatched;
    int64_t t_start, t_end, t_start_real;
    double cpu_start_s;  /* process CPU time when the clock started */
    int64_t interval_ns; /* between scheduled requests (rate mode) */
    bool stop_sending;

    /* results */
    uint64_t status[600];
    uint64_t events_accepted, events_rejected, events_sent;
    uint64_t io_errors, connect_errors, protocol_errors, timeouts, reconnects;
    uint64_t bytes_sent, bytes_received;
    int64_t *lat, *lat_sched;
    size_t nlat, lat_cap;
    bool lat_truncated;
} gen_t;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static void resolve(gen_t *g)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    char port[8];
    snprintf(port, sizeof port, "%d", g->port);
    int r = getaddrinfo(g->host, port, &hints, &res);
    if (r != 0)
        die("cannot resolve %s: %s", g->host, gai_strerror(r));
    bool found = false;
    for (ai = res; ai && !found; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr))
            continue;
        memcpy(&g->addr, ai->ai_addr, ai->ai_addrlen);
        g->addrlen = ai->ai_addrlen;
        found = true;
    }
    freeaddrinfo(res);
    if (!found)
        die("%s is not a loopback address: loadgen only targets this machine", g->host);
}

/* Opens a blocking connection (loopback: immediate), then makes it non-blocking. */
static int open_conn(gen_t *g, conn_t *c)
{
    int fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&g->addr, g->addrlen) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = CONN_IDLE;
    c->rlen = 0;
    return 0;
}

static void close_conn(gen_t *g, conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    if (c->body)
        c->body->in_use = false;
    c->body = NULL;
    c->state = CONN_DEAD;
}

/* Replaces a connection that failed or that the server closed; once, without delay. */
static void reopen_conn(gen_t *g, conn_t *c)
{
    close_conn(g, c);
    if (g->stop_sending)
        return;
    g->reconnects++;
    if (open_conn(g, c) != 0) {
        g->connect_errors++;
        c->state = CONN_DEAD;
    }
}

static void record_latency(gen_t *g, int64_t lat, int64_t lat_sched)
{
    if (g->nlat == g->lat_cap) {
        if (g->lat_cap >= LATENCY_SAMPLES_CAP) {
            g->lat_truncated = true;
            return;
        }
        g->lat_cap = g->lat_cap ? g->lat_cap * 2 : 65536;
        g->lat = xrealloc(g->lat, g->lat_cap * sizeof *g->lat);
        g->lat_sched = xrealloc(g->lat_sched, g->lat_cap * sizeof *g->lat_sched);
    }
    g->lat[g->nlat] = lat;
    g->lat_sched[g->nlat++] = lat_sched;
}

/* Ends the request in flight on c with an error (no answer). */
static void fail_request(gen_t *g, conn_t *c, bool timeout)
{
    if (c->state == CONN_SENDING || c->state == CONN_READING) {
        if (timeout)
            g->timeouts++;
        else
            g->io_errors++;
    }
    reopen_conn(g, c);
}

static bool more_to_send(const gen_t *g)
{
    if (g->stop_sending || interrupted)
        return false;
    if (g->events > 0 && g->events_dispatched >= (uint64_t)g->events)
        return false;
    return true;
}

static body_t *take_body(gen_t *g, size_t *index)
{
    for (size_t tries = 0; tries < g->npool; tries++) {
        size_t i = g->next_body++ % g->npool;
        if (!g->pool[i].in_use) {
            *index = i;
            return &g->pool[i];
        }
    }
    die("no free request body (pool smaller than connections)");
}

static void try_send(gen_t *g, conn_t *c);

/* Starts the next request on idle connection c. */
static void dispatch(gen_t *g, conn_t *c, int64_t intended)
{
    uint64_t n = (uint64_t)g->batch;
    if (g->events > 0 && g->events - (long long)g->events_dispatched < (long long)n)
        n = (uint64_t)(g->events - (long long)g->events_dispatched);
    size_t bi;
    body_t *b = take_body(g, &bi);
    /* a smaller last batch: a pool body of the right size is built on the fly, once */
    if (n != b->nevents) {
        if (!g->last_built) {
            rng_t r = {g->seed ^ 0x5eed5eed5eedULL};
            build_body(&g->last, (size_t)n, &r, g->user_prefix, real_ns() / 1000000, g->single,
                       g->form);
            stamp_nonce(&g->last, g->nonce_hi, g->nonce_lo);
            g->last_built = true;
        }
        b = &g->last;
        bi = UINT32_MAX;
    }
    int64_t now_real = real_ns();
    char sent[TS_LEN + 1];
    format_ts(now_real / 1000000, sent);
    patch_body(b, g->events_dispatched, sent);
    b->in_use = true;

    if (g->nreqs == g->reqs_cap) {
        g->reqs_cap = g->reqs_cap ? g->reqs_cap * 2 : 4096;
        g->reqs = xrealloc(g->reqs, g->reqs_cap * sizeof *g->reqs);
    }
    g->reqs[g->nreqs] = (request_t){.body = (uint32_t)bi,
                                    .nevents = (uint32_t)n,
                                    .seq_base = g->events_dispatched,
                                    .sent_unix_ms = now_real / 1000000};
    c->req = g->nreqs++;
    g->events_dispatched += n;
    g->events_sent += n;

    int hn = snprintf(c->head, sizeof c->head,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "User-Agent: eventops-loadgen/1.0\r\n\r\n",
                      g->single                 ? "/events"
                      : g->form == FORM_SEGMENT ? "/v1/batch"
                      : g->form == FORM_POSTHOG ? "/batch/"
                                                : "/events/batch",
                      g->host, g->port, g->key, b->text.len);
    if (hn < 0 || (size_t)hn >= sizeof c->head)
        die("request head too long");
    c->head_len = (size_t)hn;
    c->body = b;
    c->sent = 0;
    c->rlen = 0;
    c->state = CONN_SENDING;
    c->t_intended = intended;
    c->t_sent = mono_ns();
    try_send(g, c);
}

static void try_send(gen_t *g, conn_t *c)
{
    while (c->state == CONN_SENDING) {
        size_t total = c->head_len + c->body->text.len;
        struct iovec iov[2];
        int n = 0;
        if (c->sent < c->head_len)
            iov[n++] = (struct iovec){c->head + c->sent, c->head_len - c->sent};
        size_t boff = c->sent > c->head_len ? c->sent - c->head_len : 0;
        iov[n++] = (struct iovec){c->body->text.data + boff, c->body->text.len - boff};
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* EPOLLOUT (edge) resumes */
            if (errno == EINTR)
                continue;
            fail_request(g, c, false);
            return;
        }
        c->sent += (size_t)w;
        g->bytes_sent += (size_t)w;
        if (c->sent == total)
            c->state = CONN_READING;
    }
}

/* Finds header `name` in the head [p, end); returns its value start or NULL. */
static const char *find_header(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Parses one complete response if rbuf holds it. Returns 1 when done, 0 when more is needed,
 * -1 on a protocol error. */
static int parse_response(gen_t *g, conn_t *c, bool *close_after)
{
    char *hend = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!hend)
        return c->rlen > 65536 ? -1 : 0;
    if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0)
        return -1;
    char code[4] = {c->rbuf[9], c->rbuf[10], c->rbuf[11], 0};
    char *end;
    long status = strtol(code, &end, 10);
    if (*end || status < 100 || status > 599)
        return -1;
    const char *line_end = memmem(c->rbuf, (size_t)(hend - c->rbuf), "\r\n", 2);
    const char *hstart = line_end ? line_end + 2 : hend;
    size_t vlen;
    const char *cl = find_header(hstart, hend + 2, "Content-Length", &vlen);
    if (!cl)
        return -1; /* the collector always sends Content-Length; chunked is not expected */
    char num[24];
    if (vlen == 0 || vlen >= sizeof num)
        return -1;
    memcpy(num, cl, vlen);
    num[vlen] = '\0';
    unsigned long long body_len = strtoull(num, &end, 10);
    if (*end || body_len > RESPONSE_CAP)
        return -1;
    size_t need = (size_t)(hend + 4 - c->rbuf) + (size_t)body_len;
    if (c->rlen < need)
        return 0;
    if (c->rlen > need)
        return -1; /* no pipelining: nothing may follow */
    const char *conn_hdr = find_header(hstart, hend + 2, "Connection", &vlen);
    *close_after = conn_hdr && vlen >= 5 && !strncasecmp(conn_hdr, "close", 5);

    request_t *rq = &g->reqs[c->req];
    rq->status = (uint16_t)status;
    g->status[status]++;
    if (status == g->ok_status) {
        const char *body = hend + 4;
        const char *a = memmem(body, (size_t)body_len, "\"accepted\":", 11);
        unsigned long accepted = a ? strtoul(a + 11, NULL, 10) : rq->nevents;
        if (accepted > rq->nevents)
            accepted = rq->nevents;
        rq->accepted = (uint32_t)accepted;
        g->events_accepted += accepted;
        g->events_rejected += rq->nevents - accepted;
    } else {
        g->events_rejected += rq->nevents;
        if (!g->quiet && g->status[status] <= 3) {
            int shown = (int)(body_len < 300 ? body_len : 300);
            fprintf(stderr, "loadgen: HTTP %ld: %.*s\n", status, shown, hend + 4);
        }
    }
    int64_t now = mono_ns();
    record_latency(g, now - c->t_sent, now - c->t_intended);
    g->t_end = now;
    return 1;
}

static void on_readable(gen_t *g, conn_t *c)
{
    for (;;) {
        if (c->rcap - c->rlen < 16384) {
            if (c->rcap >= RESPONSE_CAP + 65536) {
                g->protocol_errors++;
                fail_request(g, c, false);
                return;
            }
            c->rcap = c->rcap ? c->rcap * 2 : 65536;
            c->rbuf = xrealloc(c->rbuf, c->rcap);
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail_request(g, c, false);
            return;
        }
        if (n == 0) { /* server closed: an error only with a request in flight */
            fail_request(g, c, false);
            return;
        }
        g->bytes_received += (size_t)n;
        c->rlen += (size_t)n;
        if (c->state != CONN_READING) {
            /* bytes before the whole request went out: an early answer (413, 401...) */
            if (c->state != CONN_SENDING) {
                g->protocol_errors++;
                reopen_conn(g, c);
                return;
            }
        }
        bool close_after = false;
        int r = parse_response(g, c, &close_after);
        if (r < 0) {
            g->protocol_errors++;
            fail_request(g, c, false);
            return;
        }
        if (r == 1) {
            c->body->in_use = false;
            c->body = NULL;
            c->rlen = 0;
            bool early = c->state == CONN_SENDING;
            c->state = CONN_IDLE;
            if (close_after || early)
                reopen_conn(g, c);
            return;
        }
    }
}

/* Arms the pacing timer for absolute monotonic time t (ns). */
static void arm_timer(gen_t *g, int64_t t)
{
    struct itimerspec its = {.it_value = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000}};
    if (timerfd_settime(g->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        die("timerfd_settime: %s", strerror(errno));
}

static size_t in_flight(const gen_t *g)
{
    size_t n = 0;
    for (int i = 0; i < g->connections; i++)
        n += g->conns[i].state == CONN_SENDING || g->conns[i].state == CONN_READING;
    return n;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void run(gen_t *g)
{
    g->cpu_start_s = cpu_seconds();
    g->t_start = mono_ns();
    g->t_start_real = real_ns();
    g->t_end = g->t_start;
    int64_t hard_stop = g->t_start + (int64_t)(g->timeout_s * 1e9);
    int64_t send_until = g->duration_s > 0 ? g->t_start + (int64_t)(g->duration_s * 1e9) : 0;
    uint64_t scheduled = 0; /* requests whose scheduled time has been handed out */
    int64_t next_progress = g->t_start + 1000000000;
    struct epoll_event evs[256];

    for (;;) {
        int64_t now = mono_ns();
        if (interrupted || now >= hard_stop)
            break;
        if (send_until && now >= send_until)
            g->stop_sending = true;

        /* hand out due requests to idle connections */
        for (int i = 0; i < g->connections && more_to_send(g); i++) {
            conn_t *c = &g->conns[i];
            if (c->state == CONN_DEAD && !g->stop_sending && open_conn(g, c) != 0) {
                g->connect_errors++;
                continue;
            }
            if (c->state != CONN_IDLE)
                continue;
            int64_t intended = now;
            if (g->interval_ns) {
                intended = g->t_start + (int64_t)scheduled * g->interval_ns;
                if (intended > now)
                    break;
            }
            scheduled++;
            dispatch(g, c, intended);
        }
        size_t busy = in_flight(g);
        if (!more_to_send(g) && busy == 0)
            break;
        bool all_dead = true;
        for (int i = 0; i < g->connections; i++)
            all_dead &= g->conns[i].state == CONN_DEAD;
        if (all_dead && g->connect_errors > (uint64_t)g->connections * 3) {
            fprintf(stderr, "loadgen: cannot connect to %s:%d\n", g->host, g->port);
            break;
        }

        int timeout_ms = 100;
        if (g->interval_ns && more_to_send(g)) {
            int64_t due = g->t_start + (int64_t)scheduled * g->interval_ns;
            if (due > now)
                arm_timer(g, due);
            else
                timeout_ms = busy < (size_t)g->connections ? 0 : 100;
        }
        int n = epoll_wait(g->ep, evs, 256, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) { /* the pacing timer */
                uint64_t ticks;
                ssize_t rr = read(g->tfd, &ticks, sizeof ticks);
                (void)rr;
                continue;
            }
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                if (c->state == CONN_IDLE)
                    reopen_conn(g, c);
                else
                    on_readable(g, c); /* reads what is left, then sees EOF or the error */
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                try_send(g, c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP)))
                on_readable(g, c);
        }
        if (!g->quiet && mono_ns() >= next_progress) {
            double el = (double)(mono_ns() - g->t_start) / 1e9;
            fprintf(stderr, "loadgen: %.0fs: %" PRIu64 " events sent, %" PRIu64 " accepted\n", el,
                    g->events_sent, g->events_accepted);
            next_progress += 1000000000;
        }
    }
    /* whatever is still in flight got no answer in time */
    for (int i = 0; i < g->connections; i++) {
        conn_t *c = &g->conns[i];
        if (c->state == CONN_SENDING || c->state == CONN_READING)
            g->timeouts++;
        g->stop_sending = true;
        close_conn(g, c);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Results */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n), in milliseconds. */
static double pct_ms(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

static void write_copy_field(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\')
            fputs("\\\\", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else
            fputc(ch, f);
    }
}

static void write_span(FILE *f, const body_t *b, span_t s)
{
    if (s.len == 0)
        fputs("\\N", f);
    else
        write_copy_field(f, b->text.data + s.off, s.len);
}

/* Writes one COPY text row per accepted event, in the column order of the events table:
 * tenant_id, message_id, event_type, user_id, anonymous_id, occurred_at, received_at,
 * sent_at, properties, context. occurred_at is the event's timestamp and received_at the
 * send time: close to what the collector stores, not byte-identical. */
static int dump_copy(const gen_t *g)
{
    FILE *f = fopen(g->dump_copy, "w");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", g->dump_copy, strerror(errno));
        return -1;
    }
    uint64_t rows = 0;
    for (size_t r = 0; r < g->nreqs; r++) {
        const request_t *rq = &g->reqs[r];
        if (rq->status != g->ok_status || rq->accepted != rq->nevents)
            continue; /* partially accepted batches are left out */
        const body_t *b = rq->body == UINT32_MAX ? &g->last : &g->pool[rq->body];
        char sent[TS_LEN + 1];
        format_ts(rq->sent_unix_ms, sent);
        for (size_t i = 0; i < b->nevents; i++) {
            const event_spans_t *sp = &b->ev[i];
            char id[37];
            memcpy(id, b->text.data + sp->seq_off - 24, 24);
            put_hex(id + 24, rq->seq_base + i, SEQ_HEX);
            id[36] = '\0';
            fprintf(f, "%s\t%s\t", g->tenant_id, id);
            write_span(f, b, sp->event_type);
            fputc('\t', f);
            write_span(f, b, sp->user_id);
            fputc('\t', f);
            write_span(f, b, sp->anonymous_id);
            fputc('\t', f);
            write_span(f, b, sp->timestamp);
            fprintf(f, "\t%s\t%s\t", sent, sent);
            write_span(f, b, sp->properties);
            fputc('\t', f);
            write_span(f, b, sp->context);
            fputc('\n', f);
            rows++;
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "loadgen: %s: write failed\n", g->dump_copy);
        return -1;
    }
    if (!g->quiet)
        fprintf(stderr, "loadgen: wrote %" PRIu64 " COPY rows to %s\n", rows, g->dump_copy);
    return 0;
}

static void print_summary(gen_t *g, double pool_event_bytes, size_t body_bytes)
{
    double el = (double)(g->t_end - g->t_start) / 1e9;
    if (el <= 0)
        el = 1e-9;
    qsort(g->lat, g->nlat, sizeof *g->lat, cmp_i64);
    qsort(g->lat_sched, g->nlat, sizeof *g->lat_sched, cmp_i64);
    uint64_t non202 = 0;
    for (int s = 0; s < 600; s++)
        if (s != g->ok_status)
            non202 += g->status[s];
    printf("{\"tool\":\"eventops-loadgen\",\"single\":%s,\"connections\":%d,\"batch\":%d,"
           "\"rate_target\":%.0f,"
           "\"events_target\":%lld,\"duration_target_s\":%.3f,\"bytes_per_event\":%.0f,"
           "\"bytes_per_request\":%zu,",
           g->single ? "true" : "false", g->connections, g->batch, g->rate, g->events,
           g->duration_s, pool_event_bytes, body_bytes);
    printf("\"requests_sent\":%zu,\"requests_202\":%" PRIu64 ",\"requests_non202\":%" PRIu64
           ",\"events_sent\":%" PRIu64 ",\"events_accepted\":%" PRIu64
           ",\"events_rejected\":%" PRIu64 ",",
           g->nreqs, g->status[g->ok_status], non202, g->events_sent, g->events_accepted,
           g->events_rejected);
    printf("\"status\":{");
    bool first = true;
    for (int s = 0; s < 600; s++) {
        if (!g->status[s])
            continue;
        printf("%s\"%d\":%" PRIu64, first ? "" : ",", s, g->status[s]);
        first = false;
    }
    printf("},\"io_errors\":%" PRIu64 ",\"timeouts\":%" PRIu64 ",\"protocol_errors\":%" PRIu64
           ",\"connect_errors\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",",
           g->io_errors, g->timeouts, g->protocol_errors, g->connect_errors, g->reconnects);
    printf("\"start_late_s\":%.6f,", g->start_at > 0 && g->t_start_real / 1e9 > g->start_at
                                         ? g->t_start_real / 1e9 - g->start_at
                                         : 0.0);
    printf("\"start_unix\":%.6f,\"end_unix\":%.6f,\"elapsed_s\":%.6f,", g->t_start_real / 1e9,
           (g->t_start_real + (g->t_end - g->t_start)) / 1e9, el);
    printf("\"accepted_events_per_s\":%.1f,\"requests_per_s\":%.1f,\"mbytes_sent_per_s\":%.2f,",
           (double)g->events_accepted / el, (double)g->nreqs / el,
           (double)g->bytes_sent / el / 1e6);
    printf("\"cpu_s\":%.3f,\"pregen_cpu_s\":%.3f,", cpu_seconds() - g->cpu_start_s, g->cpu_start_s);
    printf("\"latency_samples\":%zu,\"latency_truncated\":%s,", g->nlat,
           g->lat_truncated ? "true" : "false");
    printf("\"latency_p50_ms\":%.3f,\"latency_p90_ms\":%.3f,\"latency_p99_ms\":%.3f,"
           "\"latency_p999_ms\":%.3f,\"latency_max_ms\":%.3f,",
           pct_ms(g->lat, g->nlat, 0.50), pct_ms(g->lat, g->nlat, 0.90),
           pct_ms(g->lat, g->nlat, 0.99), pct_ms(g->lat, g->nlat, 0.999),
           g->nlat ? (double)g->lat[g->nlat - 1] / 1e6 : 0.0);
    printf("\"sched_latency_p50_ms\":%.3f,\"sched_latency_p90_ms\":%.3f,"
           "\"sched_latency_p99_ms\":%.3f,\"sched_latency_max_ms\":%.3f}\n",
           pct_ms(g->lat_sched, g->nlat, 0.50), pct_ms(g->lat_sched, g->nlat, 0.90),
           pct_ms(g->lat_sched, g->nlat, 0.99),
           g->nlat ? (double)g->lat_sched[g->nlat - 1] / 1e6 : 0.0);
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */

static void body_done(body_t *b)
{
    free(b->text.data);
    free(b->ev);
}

/* Frees what main() allocated; the connections are closed by run(). */
static void gen_done(gen_t *g)
{
    for (size_t i = 0; i < g->npool; i++)
        body_done(&g->pool[i]);
    free(g->pool);
    if (g->last_built)
        body_done(&g->last);
    for (int i = 0; g->conns && i < g->connections; i++)
        free(g->conns[i].rbuf);
    free(g->conns);
    free(g->reqs);
    free(g->lat);
    free(g->lat_sched);
    if (g->ep >= 0)
        close(g->ep);
    if (g->tfd >= 0)
        close(g->tfd);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loadgen [options]\n"
            "  --host H             collector host, loopback only [127.0.0.1]\n"
            "  --port P             collector port [8080]\n"
            "  --key KEY            write key, sent as 'Authorization: Bearer KEY'\n"
            "                       (default: $LOADGEN_WRITE_KEY, which keeps it out of ps)\n"
            "  --connections N      keep-alive connections, one request in flight each [16]\n"
            "  --batch B            events per POST /events/batch [100]\n"
            "  --single             one event per POST /events (no batch wrapper; --batch 1)\n"
            "  --segment            Segment track messages to POST /v1/batch (the same content;\n"
            "                       answered 200 instead of 202)\n"
            "  --posthog            PostHog events to POST /batch/ (likewise)\n"
            "  --events TOTAL       events to send (default 200000 unless --duration)\n"
            "  --duration S         send for S seconds instead\n"
            "  --rate R             target events/s on a fixed schedule; 0 = as fast as possible\n"
            "  --timeout S          hard stop, whatever is in flight [duration + 60, or 600]\n"
            "  --seed N             content seed (event types, users, properties) [1]\n"
            "  --user-prefix P      prefix of generated userIds (tenant-like namespace) ['']\n"
            "  --dump-copy FILE     after the run, write COPY text rows of the accepted events\n"
            "  --tenant-id UUID     tenant_id column for --dump-copy\n"
            "  --quiet              no progress lines on stderr\n"
            "  --start-at T         start the clock at unix time T (seconds), after the\n"
            "                       pre-generation: lets a caller measure exactly the run\n"
            "  --print-sample       print the first request body and its size, then exit\n"
            "Prints one JSON line on stdout. Exit 0 when every request got 202, 1 otherwise.\n");
}

int main(int argc, char **argv)
{
    gen_t g = {.ok_status = 202,
               .host = "127.0.0.1",
               .port = 8080,
               .connections = 16,
               .batch = 100,
               .seed = 1,
               .user_prefix = "",
               .ep = -1,
               .tfd = -1};
    g.key = getenv("LOADGEN_WRITE_KEY");
    g.timeout_s = -1;
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"connections", required_argument, NULL, 'c'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"single", no_argument, NULL, '1'},
                                         {"segment", no_argument, NULL, 'g'},
                                         {"posthog", no_argument, NULL, 'P'},
                                         {"events", required_argument, NULL, 'n'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"user-prefix", required_argument, NULL, 'u'},
                                         {"tenant-prefix", required_argument, NULL, 'u'},
                                         {"dump-copy", required_argument, NULL, 'D'},
                                         {"tenant-id", required_argument, NULL, 'T'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"print-sample", no_argument, NULL, 'S'},
                                         {"start-at", required_argument, NULL, 'A'},
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            g.host = optarg;
            break;
        case 'p':
            g.port = (int)parse_ll("port", optarg, 1, 65535);
            break;
        case 'k':
            g.key = optarg;
            break;
        case 'c':
            g.connections = (int)parse_ll("connections", optarg, 1, MAX_CONNECTIONS);
            break;
        case 'b':
            g.batch = (int)parse_ll("batch", optarg, 1, MAX_BATCH);
            break;
        case 'n':
            g.events = parse_ll("events", optarg, 1, 1000000000000LL);
            break;
        case 'd':
            g.duration_s = parse_double("duration", optarg, 0.001, 86400);
            break;
        case 'r':
            g.rate = parse_double("rate", optarg, 0, 1e9);
            break;
        case 't':
            g.timeout_s = parse_double("timeout", optarg, 0.001, 86400);
            break;
        case 's':
            g.seed = (uint64_t)parse_ll("seed", optarg, 0, INT64_MAX);
            break;
        case 'u':
            g.user_prefix = optarg;
            break;
        case 'D':
            g.dump_copy = optarg;
            break;
        case 'T':
            g.tenant_id = optarg;
            break;
        case 'q':
            g.quiet = true;
            break;
        case '1':
            g.single = true;
            break;
        case 'g':
            g.form = FORM_SEGMENT;
            g.ok_status = 200;
            break;
        case 'P':
            g.form = FORM_POSTHOG;
            g.ok_status = 200;
            break;
        case 'A':
            g.start_at = parse_double("start-at", optarg, 0, 1e11);
            break;
        case 'S':
            g.print_sample = true;
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (g.single)
        g.batch = 1;
    if (!g.key || !*g.key)
        die("no write key: pass --key or set LOADGEN_WRITE_KEY");
    if (strlen(g.key) > 512 || strpbrk(g.key, "\r\n"))
        die("the write key is too long or holds a line break");
    if (strlen(g.user_prefix) > 64 || strpbrk(g.user_prefix, "\"\\\t\r\n"))
        die("--user-prefix: at most 64 characters, no quotes, backslashes or control characters");
    if (g.dump_copy && (!g.tenant_id || strlen(g.tenant_id) != 36))
        die("--dump-copy needs --tenant-id UUID");
    if (g.events == 0 && g.duration_s == 0)
        g.events = 200000;
    if (g.timeout_s < 0)
        g.timeout_s = g.duration_s > 0 ? g.duration_s + 60 : 600;
    if (g.rate > 0)
        g.interval_ns = (int64_t)((double)g.batch / g.rate * 1e9);
    if (g.rate > 0 && g.interval_ns < 1)
        die("--rate too high for --batch");

    resolve(&g);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* the request pool: bodies of `batch` events, built before the clock starts */
    uint64_t seedx = g.seed;
    rng_t rng = {splitmix64(&seedx) | 1};
    uint64_t noncex = (uint64_t)real_ns() ^ ((uint64_t)getpid() << 32);
    g.nonce_hi = splitmix64(&noncex);
    g.nonce_lo = splitmix64(&noncex);
    uint64_t requests = g.events > 0
                            ? ((uint64_t)g.events + (uint64_t)g.batch - 1) / (uint64_t)g.batch
                            : UINT64_MAX;
    size_t want = MAX_POOL_BODIES;
    if ((uint64_t)want > requests)
        want = (size_t)requests;
    if (want < (size_t)g.connections * 2)
        want = (size_t)g.connections * 2;
    int64_t now_ms = real_ns() / 1000000;
    g.pool = xmalloc(want * sizeof *g.pool);
    size_t pool_bytes = 0, pool_events = 0;
    for (g.npool = 0; g.npool < want; g.npool++) {
        if (g.npool >= (size_t)g.connections * 2 && pool_bytes >= POOL_BYTES_CAP)
            break;
        body_t *b = &g.pool[g.npool];
        build_body(b, (size_t)g.batch, &rng, g.user_prefix, now_ms, g.single, g.form);
        b->in_use = false;
        stamp_nonce(b, g.nonce_hi, g.nonce_lo);
        pool_bytes += b->text.len;
        pool_events += b->nevents;
    }
    double bytes_per_event = (double)(pool_bytes - g.npool * 12) / (double)pool_events;
    size_t body_bytes = pool_bytes / g.npool;
    if (!g.quiet)
        fprintf(stderr,
                "loadgen: %zu request bodies pre-generated (%.1f MB, %.0f bytes/event); "
                "%d connections to %s:%d\n",
                g.npool, pool_bytes / 1e6, bytes_per_event, g.connections, g.host, g.port);

    if (g.print_sample) {
        printf("%s\n", g.pool[0].text.data);
        fprintf(stderr, "loadgen: %zu bytes, %zu events, %.0f bytes/event over the pool\n",
                g.pool[0].text.len, g.pool[0].nevents, bytes_per_event);
        gen_done(&g);
        return 0;
    }
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g.ep < 0 || g.tfd < 0)
        die("epoll/timerfd: %s", strerror(errno));
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, g.tfd, &tev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    g.conns = xmalloc((size_t)g.connections * sizeof *g.conns);
    for (int i = 0; i < g.connections; i++) {
        g.conns[i] = (conn_t){.fd = -1, .state = CONN_DEAD};
        if (open_conn(&g, &g.conns[i]) != 0)
            die("cannot connect to %s:%d: %s", g.host, g.port, strerror(errno));
    }

    if (g.start_at > 0) {
        double wait_s = g.start_at - (double)real_ns() / 1e9;
        if (wait_s > 3600)
            die("--start-at is more than an hour away");
        if (wait_s > 0) {
            struct timespec ts = {(time_t)g.start_at,
                                  (long)((g.start_at - (double)(time_t)g.start_at) * 1e9)};
            while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR &&
                   !interrupted)
                ;
        }
    }
    run(&g);

    print_summary(&g, bytes_per_event, body_bytes);
    int rc = 0;
    if (g.dump_copy && dump_copy(&g) < 0)
        rc = 1;
    uint64_t non202 = g.nreqs - g.status[g.ok_status];
    if (non202 || g.events_rejected || g.io_errors || g.timeouts || interrupted)
        rc = 1;
    gen_done(&g);
    return rc;
}
