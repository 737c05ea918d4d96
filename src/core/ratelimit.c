/* GCRA rate limiter on Redis with a local fallback (see ratelimit.h).
 * Threads: each thread has its own Redis connection with a shared down/retry switch
 * (core/tconn.h); the counters are atomics; each local shard has a mutex. */
#include "core/ratelimit.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/redis.h"

#define SHARDS 64
#define SHARD_MAX_KEYS 65536

/* KEYS[1]: the key; ARGV: rate per second, burst, requests wanted (>= 1). Times in
 * microseconds of Redis's clock. Grants as many of the wanted requests as the bucket holds now
 * (at least one, or none). Returns {granted, remaining, retry_after_us, reset_us}. */
static const char script[] = "local rate = tonumber(ARGV[1])\n"
                             "local burst = tonumber(ARGV[2])\n"
                             "local want = tonumber(ARGV[3])\n"
                             "local t = redis.call('TIME')\n"
                             "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                             "local interval = 1000000 / rate\n"
                             "local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now\n"
                             "if tat < now then tat = now end\n"
                             "local allow_at = tat + interval - interval * burst\n"
                             "if allow_at > now then\n"
                             "  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}\n"
                             "end\n"
                             "local avail = 1 + math.floor((now - allow_at) / interval)\n"
                             "local k = math.min(want, avail)\n"
                             "local new_tat = tat + k * interval\n"
                             "redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',\n"
                             "           math.ceil((new_tat - now) / 1000) + 1)\n"
                             "return {k, avail - k, 0, math.ceil(new_tat - now)}\n";

/* One key's state on this instance: its local GCRA (while Redis is unreachable) and its lease
 * from Redis. Times are of the monotonic clock. */
typedef struct {
    uint64_t hash;           /* 0: empty */
    int64_t tat_us;          /* the local limiter's theoretical arrival time */
    int64_t tokens;          /* requests leased from Redis and not used yet */
    int64_t lease_until_us;  /* they may be used until then */
    int64_t lease_size;      /* what the last lease asked for */
    int64_t denied_until_us; /* Redis refused: refuse here until then without asking */
    int64_t remaining;       /* Redis's remaining after the last lease or refusal */
    int64_t reset_at_us;     /* Redis's reset then, on this clock */
} local_entry_t;

typedef struct {
    pthread_mutex_t lock;
    local_entry_t *slots;
    size_t cap, used;
} shard_t;

struct eo_ratelimit {
    eo_redis_target_t redis;
    int64_t instances;
    int64_t lease_max, lease_us;
    char sha[41];
    eo_tconn_t conn; /* per thread; down: the last decision was local because of Redis */
    eo_counter_t *refused_c, *redis_errors_c, *local_c, *leased_c; /* NULL until registered */
    shard_t shards[SHARDS];
};

void eo_ratelimit_options_from_config(eo_ratelimit_options_t *opt, const eo_config_t *cfg)
{
    *opt = (eo_ratelimit_options_t){
        .redis_url = cfg->redis_url,
        .timeout_ms = cfg->redis_timeout_ms,
        .retry_ms = cfg->redis_retry_ms,
        .instances = cfg->rate_limit_instances,
        .lease_max = cfg->rate_limit_lease_max,
        .lease_ms = cfg->rate_limit_lease_ms,
    };
}

int eo_ratelimit_new(const eo_ratelimit_options_t *opt, eo_ratelimit_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    eo_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return EO_ENOMEM;
    int r = eo_redis_parse_url(opt->redis_url, &rl->redis.addr, err, errlen);
    if (r < 0) {
        free(rl);
        return r;
    }
    rl->redis.timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 50;
    rl->instances = opt->instances > 0 ? opt->instances : 1;
    rl->lease_max = opt->lease_max > 0 ? opt->lease_max : 1;
    rl->lease_us = (opt->lease_ms > 0 ? opt->lease_ms : 50) * 1000;
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), digest);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(rl->sha + 2 * i, 3, "%02x", digest[i]);
    eo_tconn_ops_t ops = eo_redis_tconn_ops(&rl->redis, opt->retry_ms > 0 ? opt->retry_ms : 1000);
    if (eo_tconn_init(&rl->conn, &ops) < 0) {
        free(rl);
        return EO_ENOMEM;
    }
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&rl->shards[i].lock, NULL);
    *out = rl;
    return 0;
}

void eo_ratelimit_free(eo_ratelimit_t *rl)
{
    if (!rl)
        return;
    eo_tconn_done(&rl->conn);
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_destroy(&rl->shards[i].lock);
        free(rl->shards[i].slots);
    }
    free(rl);
}

/* ---- local limiter ---- */

static uint64_t hash_key(const char *key)
{
    uint64_t h = eo_hash64(key, strlen(key));
    return h ? h : 1; /* 0 marks an empty slot */
}

/* True while an entry still limits or holds a lease or a refusal. */
static bool entry_live(const local_entry_t *e, int64_t now)
{
    return e->hash && (e->tat_us > now || e->lease_until_us > now || e->denied_until_us > now);
}

/* Rebuilds the shard keeping only live entries; grows it when still half full. Call with the
 * shard's lock held. */
static int shard_rebuild(shard_t *s, int64_t now)
{
    size_t live = 0;
    for (size_t i = 0; i < s->cap; i++)
        live += entry_live(&s->slots[i], now);
    size_t cap = 64;
    while (cap < live * 4)
        cap *= 2;
    if (live >= SHARD_MAX_KEYS)
        live = 0, cap = 64; /* far too many keys: forget them all rather than grow forever */
    local_entry_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return EO_ENOMEM;
    size_t used = 0;
    for (size_t i = 0; live && i < s->cap; i++) {
        local_entry_t e = s->slots[i];
        if (!entry_live(&e, now))
            continue;
        size_t k = (size_t)(e.hash / SHARDS) & (cap - 1); /* the low bits chose the shard */
        while (slots[k].hash)
            k = (k + 1) & (cap - 1);
        slots[k] = e;
        used++;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    s->used = used;
    return 0;
}

/* The key's entry in its shard, added when missing; NULL when out of memory. Call with the
 * shard's lock held. */
static local_entry_t *entry_of(shard_t *s, uint64_t h, int64_t now)
{
    if ((s->used + 1) * 2 > s->cap && shard_rebuild(s, now) < 0)
        return NULL;
    size_t k = (size_t)(h / SHARDS) & (s->cap - 1);
    while (s->slots[k].hash && s->slots[k].hash != h)
        k = (k + 1) & (s->cap - 1);
    local_entry_t *e = &s->slots[k];
    if (!e->hash) {
        *e = (local_entry_t){.hash = h};
        s->used++;
    }
    return e;
}

static int64_t ceil_s(int64_t us)
{
    return us > 0 ? (us + 999999) / 1000000 : 0;
}

static void take_local(eo_ratelimit_t *rl, const char *key, double rate, int64_t burst,
                       eo_ratelimit_result_t *res)
{
    rate /= (double)rl->instances;
    burst /= rl->instances;
    if (burst < 1)
        burst = 1;
    res->limit = burst;
    eo_counter_add(rl->local_c, 1);
    uint64_t h = hash_key(key);
    shard_t *s = &rl->shards[h % SHARDS];
    int64_t now = eo_clock_mono_us();
    double interval = 1e6 / rate;
    pthread_mutex_lock(&s->lock);
    local_entry_t *e = entry_of(s, h, now);
    if (!e) {
        pthread_mutex_unlock(&s->lock);
        res->allowed = true; /* out of memory: admit rather than refuse everyone */
        res->remaining = 0;
        res->reset_s = 0;
        return;
    }
    double tat = e->tat_us > now ? (double)e->tat_us : (double)now;
    double new_tat = tat + interval, allow_at = new_tat - interval * (double)burst;
    if (allow_at > (double)now) {
        res->allowed = false;
        res->remaining = 0;
        res->retry_after_s = (int64_t)ceil((allow_at - (double)now) / 1e6);
        res->reset_s = (int64_t)ceil((tat - (double)now) / 1e6);
    } else {
        e->tat_us = (int64_t)new_tat;
        res->allowed = true;
        res->remaining = (int64_t)floor(((double)now - allow_at) / interval);
        res->reset_s = (int64_t)ceil((new_tat - (double)now) / 1e6);
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- Redis, through leases ---- */

/* Runs the script for `want` requests; returns 0 with *granted, res and the reply's retry and
 * reset (us) filled, or EO_EUNAVAIL (reason in err). */
static int lease_redis(eo_ratelimit_t *rl, const char *key, double rate, int64_t burst,
                       int64_t want, int64_t *granted, int64_t *retry_us, int64_t *reset_us,
                       eo_ratelimit_result_t *res, char *err, size_t errlen)
{
    redisContext *c = eo_tconn_get(&rl->conn, err, errlen);
    if (!c)
        return EO_EUNAVAIL;
    char rate_s[32], burst_s[24], want_s[24];
    snprintf(rate_s, sizeof rate_s, "%.6f", rate);
    snprintf(burst_s, sizeof burst_s, "%lld", (long long)burst);
    snprintf(want_s, sizeof want_s, "%lld", (long long)want);
    redisReply *rep =
        redisCommand(c, "EVALSHA %s 1 %s %s %s %s", rl->sha, key, rate_s, burst_s, want_s);
    if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
        freeReplyObject(rep);
        rep = redisCommand(c, "EVAL %s 1 %s %s %s %s", script, key, rate_s, burst_s, want_s);
    }
    bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4;
    for (size_t i = 0; ok && i < 4; i++)
        ok = rep->element[i]->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        snprintf(err, errlen, "%s",
                 rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                 : c->err                              ? c->errstr
                                                       : "unexpected reply");
        freeReplyObject(rep);
        if (c->err || !rep)
            eo_tconn_drop(&rl->conn);
        return EO_EUNAVAIL;
    }
    *granted = rep->element[0]->integer;
    res->remaining = rep->element[1]->integer;
    *retry_us = rep->element[2]->integer;
    *reset_us = rep->element[3]->integer;
    res->limit = burst;
    freeReplyObject(rep);
    return 0;
}

/* The most one lease may ask for: EVENTOPS_RATE_LIMIT_LEASE_MAX, and at most a quarter of the
 * burst shared by the instances (tokens one instance holds are out of the others' reach). */
static int64_t lease_cap(const eo_ratelimit_t *rl, int64_t burst)
{
    int64_t cap = burst / (4 * rl->instances);
    if (cap > rl->lease_max)
        cap = rl->lease_max;
    return cap > 1 ? cap : 1;
}

/* Decides from the key's lease or cached refusal when it can: true with res filled; else false
 * with *want set to the size of the lease to ask Redis for. */
static bool take_leased(eo_ratelimit_t *rl, local_entry_t *e, int64_t burst, int64_t now,
                        int64_t *want, eo_ratelimit_result_t *res)
{
    res->limit = burst;
    if (e->denied_until_us > now) {
        res->allowed = false;
        res->remaining = 0;
        res->retry_after_s = ceil_s(e->denied_until_us - now);
        res->reset_s = ceil_s(e->reset_at_us - now);
        return true;
    }
    if (e->tokens > 0 && e->lease_until_us > now) {
        e->tokens--;
        res->allowed = true;
        res->remaining = e->remaining + e->tokens;
        res->reset_s = ceil_s(e->reset_at_us - now);
        return true;
    }
    /* A lease used up before it expired asks for twice as much next time; otherwise one. */
    bool used_up = e->tokens == 0 && e->lease_until_us > now;
    *want = used_up && e->lease_size > 0 ? 2 * e->lease_size : 1;
    int64_t cap = lease_cap(rl, burst);
    if (*want > cap)
        *want = cap;
    e->tokens = 0; /* an expired lease is dropped: its requests were counted when leased */
    return false;
}

/* One decision through Redis. Returns 0 with res filled, or EO_EUNAVAIL (reason in err). */
static int take_redis(eo_ratelimit_t *rl, const char *key, double rate, int64_t burst,
                      eo_ratelimit_result_t *res, char *err, size_t errlen)
{
    uint64_t h = hash_key(key);
    shard_t *s = &rl->shards[h % SHARDS];
    int64_t now = eo_clock_mono_us(), want = 1;
    pthread_mutex_lock(&s->lock);
    local_entry_t *e = entry_of(s, h, now);
    bool decided = e && take_leased(rl, e, burst, now, &want, res);
    pthread_mutex_unlock(&s->lock);
    if (decided) {
        eo_counter_add(rl->leased_c, 1);
        return 0;
    }
    int64_t granted = 0, retry_us = 0, reset_us = 0;
    int r =
        lease_redis(rl, key, rate, burst, want, &granted, &retry_us, &reset_us, res, err, errlen);
    if (r < 0)
        return r;
    res->allowed = granted > 0;
    res->retry_after_s = ceil_s(retry_us);
    res->reset_s = ceil_s(reset_us);
    now = eo_clock_mono_us();
    pthread_mutex_lock(&s->lock);
    e = entry_of(s, h, now); /* the shard may have been rebuilt meanwhile */
    if (e && granted > 0) {
        /* tokens still held from a concurrent lease keep its earlier expiry for all: no
         * leased request is spent later than LEASE_MS after Redis counted it */
        if (e->lease_until_us <= now)
            e->tokens = 0; /* what is left of an expired lease is dropped */
        /* tokens still held here came from a concurrent lease whose answer may have been
         * processed before or after this one: Redis's remaining is at most the lower of the
         * two (taking the later-processed one could count the same tokens twice) */
        bool concurrent = e->tokens > 0;
        if (!concurrent)
            e->lease_until_us = now + rl->lease_us;
        e->tokens += granted - 1;
        e->denied_until_us = 0;
        e->lease_size = want;
        if (!concurrent || res->remaining < e->remaining)
            e->remaining = res->remaining;
        res->remaining = e->remaining;
        e->reset_at_us = now + reset_us;
        res->remaining += e->tokens;
    } else if (e) {
        e->denied_until_us = now + retry_us; /* nothing comes back before then */
        e->reset_at_us = now + reset_us;
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void eo_ratelimit_take(eo_ratelimit_t *rl, const char *key, double rate, int64_t burst,
                       eo_ratelimit_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (!(rate > 0))
        rate = 1;
    if (burst < 1)
        burst = 1;
    bool done = false;
    if (rl->redis.addr.set && !eo_tconn_waiting(&rl->conn)) {
        char err[256] = "";
        if (take_redis(rl, key, rate, burst, res, err, sizeof err) == 0) {
            done = true;
            if (eo_tconn_ok(&rl->conn))
                eo_log_info("rate limiter: Redis back, limits shared again", NULL);
        } else {
            eo_counter_add(rl->redis_errors_c, 1);
            if (eo_tconn_fail(&rl->conn))
                eo_log_warn("rate limiter: Redis unavailable, limiting locally", "error", err,
                            NULL);
        }
    }
    if (!done)
        take_local(rl, key, rate, burst, res);
    if (!res->allowed) {
        eo_counter_add(rl->refused_c, 1);
        if (res->retry_after_s < 1)
            res->retry_after_s = 1;
    }
}

bool eo_ratelimit_shared(eo_ratelimit_t *rl)
{
    return rl->redis.addr.set && !eo_tconn_down(&rl->conn);
}

/* eventops_ratelimit_shared, read from the limiter's state at each scrape (a gauge set on
 * every switch could be left wrong by two threads switching at once). */
static double read_shared(void *ud)
{
    return eo_ratelimit_shared(ud) ? 1 : 0;
}

int eo_ratelimit_register_metrics(eo_ratelimit_t *rl, eo_metrics_t *m, const char *role)
{
    char labels[96];
    snprintf(labels, sizeof labels, "role=\"%s\"", role);
    rl->refused_c = eo_metrics_counter(m, "eventops_rate_limited_total",
                                       "Requests refused by the rate limiter (429).", labels);
    rl->redis_errors_c = eo_metrics_counter(m, "eventops_ratelimit_redis_errors_total",
                                            "Rate-limit decisions Redis failed to make.", labels);
    rl->local_c = eo_metrics_counter(m, "eventops_ratelimit_local_decisions_total",
                                     "Decisions made by the local fallback limiter.", labels);
    rl->leased_c = eo_metrics_counter(m, "eventops_ratelimit_leased_decisions_total",
                                      "Decisions made without a Redis call, from requests "
                                      "leased from Redis or a refusal it gave.",
                                      labels);
    return eo_metrics_gauge_fn(m, "eventops_ratelimit_shared",
                               "1 while limits are shared through Redis, 0 while this instance "
                               "limits locally.",
                               labels, read_shared, rl);
}
