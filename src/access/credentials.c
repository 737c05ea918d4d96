/* Credential cache (see credentials.h). Write keys are keyed by the SHA-256 of the key, clients
 * by the SHA-256 of "client:" + client id, in one open-addressing table.
 * Threads: the ticker's thread and missing lookups (serialised by refresh_lock) rebuild the
 * table; readers hold `lock` (rwlock) while reading the current table. */
#include "access/credentials.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/ticker.h"
#include "core/log.h"
#include "core/pg.h"
#include "core/writekey.h"

typedef struct {
    uint8_t hash[32];
    eo_cred_t cred;
    bool used;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t mask; /* capacity - 1 (power of two) */
} table_t;

struct eo_creds {
    char *dsn;
    int64_t refresh_ms;
    pthread_rwlock_t lock;
    table_t table; /* guarded by lock */
    bool loaded;   /* guarded by lock */
    pthread_mutex_t refresh_lock;
    PGconn *conn;               /* guarded by refresh_lock */
    int64_t lookup_interval_us; /* database lookups of missing credentials: one per interval, */
    atomic_llong lookup_tat_us; /* a second's worth at once (GCRA state) */
    atomic_llong last_ok_us;    /* monotonic time of the last good reload */
    eo_ticker_t *ticker;
};

static size_t slot_of(const uint8_t hash[32], size_t mask)
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (size_t)h & mask;
}

/* (Re)connects when needed; call with refresh_lock held. */
static int connect_db(eo_creds_t *wk)
{
    if (wk->conn && PQstatus(wk->conn) == CONNECTION_OK)
        return 0;
    PQfinish(wk->conn);
    wk->conn = NULL;
    char err[512];
    if (eo_pg_connect(wk->dsn, &wk->conn, err, sizeof err) < 0) {
        eo_log_warn("credentials: database unavailable", "error", err, NULL);
        return EO_EUNAVAIL;
    }
    return 0;
}

/* Reloads the table; call with refresh_lock held. */
static int reload(eo_creds_t *wk)
{
    char err[512];
    if (connect_db(wk) < 0)
        return EO_EUNAVAIL;
    PGresult *res;
    int r = eo_pg_query(wk->conn,
                        "SELECT key_hash, tenant_id, key_id, coalesce(rate_limit, 0), "
                        "coalesce(burst, 0) FROM write_keys WHERE revoked_at IS NULL "
                        "UNION ALL SELECT sha256(convert_to('client:' || client_id, 'UTF8')), "
                        "tenant_id, client_id, coalesce(rate_limit, 0), coalesce(burst, 0) "
                        "FROM oauth_clients WHERE revoked_at IS NULL",
                        0, NULL, &res, err, sizeof err);
    if (r < 0) {
        eo_log_warn("credentials: reload failed", "error", err, NULL);
        return r;
    }
    size_t n = (size_t)PQntuples(res), cap = 64;
    while (cap < n * 2)
        cap *= 2;
    table_t t = {calloc(cap, sizeof(slot_t)), cap - 1};
    if (!t.slots) {
        PQclear(res);
        return EO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t blen;
        unsigned char *bytes =
            PQunescapeBytea((const unsigned char *)PQgetvalue(res, (int)i, 0), &blen);
        if (!bytes || blen != 32) {
            PQfreemem(bytes);
            continue;
        }
        size_t s = slot_of(bytes, t.mask);
        while (t.slots[s].used)
            s = (s + 1) & t.mask;
        t.slots[s].used = true;
        memcpy(t.slots[s].hash, bytes, 32);
        eo_cred_t *c = &t.slots[s].cred;
        snprintf(c->tenant_id, sizeof c->tenant_id, "%s", PQgetvalue(res, (int)i, 1));
        snprintf(c->id, sizeof c->id, "%s", PQgetvalue(res, (int)i, 2));
        c->rate = (int32_t)strtol(PQgetvalue(res, (int)i, 3), NULL, 10);
        c->burst = (int32_t)strtol(PQgetvalue(res, (int)i, 4), NULL, 10);
        PQfreemem(bytes);
    }
    PQclear(res);
    pthread_rwlock_wrlock(&wk->lock);
    table_t old = wk->table;
    wk->table = t;
    wk->loaded = true;
    pthread_rwlock_unlock(&wk->lock);
    free(old.slots);
    atomic_store(&wk->last_ok_us, eo_clock_mono_us());
    return 0;
}

/* The ticker's periodic reload. */
static void tick(void *arg)
{
    eo_creds_t *wk = arg;
    pthread_mutex_lock(&wk->refresh_lock);
    eo_ignore(reload(wk));
    pthread_mutex_unlock(&wk->refresh_lock);
}

int eo_creds_new(const char *dsn, int64_t refresh_ms, int64_t lookups_per_s, eo_creds_t **out,
                 char *err, size_t errlen)
{
    eo_creds_t *wk = calloc(1, sizeof *wk);
    if (!wk || !(wk->dsn = strdup(dsn))) {
        free(wk);
        return EO_ENOMEM;
    }
    wk->refresh_ms = refresh_ms;
    wk->lookup_interval_us = 1000000 / (lookups_per_s > 0 ? lookups_per_s : 1);
    pthread_rwlock_init(&wk->lock, NULL);
    pthread_mutex_init(&wk->refresh_lock, NULL);
    pthread_mutex_lock(&wk->refresh_lock);
    (void)reload(wk);
    pthread_mutex_unlock(&wk->refresh_lock);
    if (eo_ticker_start("eo-credentials", refresh_ms, tick, wk, &wk->ticker) < 0) {
        snprintf(err, errlen, "cannot start the credential refresher");
        eo_creds_free(wk);
        return EO_ENOMEM;
    }
    *out = wk;
    return 0;
}

/* Finds the entry of hash whose id has the kind's prefix ("wk_" or "cl_"): the two kinds share
 * the table, and a write key must never match a client's entry or the reverse. */
static int find(eo_creds_t *wk, const uint8_t hash[32], const char *kind, eo_cred_t *out)
{
    int r = EO_ENOTFOUND;
    pthread_rwlock_rdlock(&wk->lock);
    if (!wk->loaded) {
        r = EO_EUNAVAIL;
    } else {
        for (size_t s = slot_of(hash, wk->table.mask); wk->table.slots[s].used;
             s = (s + 1) & wk->table.mask) {
            if (CRYPTO_memcmp(wk->table.slots[s].hash, hash, 32) == 0 &&
                strncmp(wk->table.slots[s].cred.id, kind, 3) == 0) {
                *out = wk->table.slots[s].cred;
                r = 0;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&wk->lock);
    return r;
}

/* Asks the database whether the credential exists and is active (query with one parameter):
 * 0 when it does (then the table is reloaded so that it holds it), EO_ENOTFOUND, or
 * EO_EUNAVAIL. Call with refresh_lock held. */
static int ask_database(eo_creds_t *wk, const char *query, const char *param)
{
    char err[512];
    if (connect_db(wk) < 0)
        return EO_EUNAVAIL;
    const char *params[] = {param};
    PGresult *res;
    int r = eo_pg_query(wk->conn, query, 1, params, &res, err, sizeof err);
    if (r < 0) {
        eo_log_warn("credentials: lookup failed", "error", err, NULL);
        return EO_EUNAVAIL;
    }
    bool found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return EO_ENOTFOUND;
    return reload(wk) < 0 ? EO_EUNAVAIL : 0;
}

/* Memory first; then (a credential newer than the last reload) one indexed query, one at a
 * time under the lock; one that exists triggers a reload. While the database is unreachable
 * the caller must answer 503, not 401: the credential may be valid. */
static int lookup(eo_creds_t *wk, const uint8_t hash[32], const char *kind, const char *query,
                  const char *param, eo_cred_t *out)
{
    int r = find(wk, hash, kind, out);
    if (r == 0)
        return 0;
    /* Over budget (a flood of made-up credentials): answer from memory alone, without even
     * queueing on the lock, rather than hammering PostgreSQL; a real new credential is in
     * memory after the next reload. The budget is taken lock-free (GCRA on an atomic). */
    int64_t now = eo_clock_mono_us();
    long long tat = atomic_load(&wk->lookup_tat_us), next;
    do {
        next = (tat > now ? tat : now) + wk->lookup_interval_us;
        if (next - now > 1000000)
            return r;
    } while (!atomic_compare_exchange_weak(&wk->lookup_tat_us, &tat, next));
    pthread_mutex_lock(&wk->refresh_lock);
    r = find(wk, hash, kind, out); /* another caller may have reloaded meanwhile */
    if (r != 0) {
        r = ask_database(wk, query, param);
        if (r == 0)
            r = find(wk, hash, kind, out);
    }
    pthread_mutex_unlock(&wk->refresh_lock);
    return r;
}

int eo_creds_write_key(eo_creds_t *wk, const char *key, size_t len, eo_cred_t *out)
{
    /* Only the write key format is hashed: anything else (e.g. "client:<id>", which hashes to
     * a client's entry) is unknown without a lookup. */
    if (len != EO_WRITE_KEY_LEN || strncmp(key, "wk_", 3) != 0 || key[EO_WRITE_KEY_ID_LEN] != '.')
        return EO_ENOTFOUND;
    uint8_t hash[32];
    eo_write_key_hash(key, len, hash);
    char hex[2 + 64 + 1] = "\\x";
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 + 2 * i] = digits[hash[i] >> 4];
        hex[3 + 2 * i] = digits[hash[i] & 15];
    }
    hex[2 + 64] = '\0';
    return lookup(wk, hash, "wk_",
                  "SELECT 1 FROM write_keys WHERE key_hash = $1::bytea AND revoked_at IS NULL", hex,
                  out);
}

int eo_creds_client(eo_creds_t *wk, const char *client_id, eo_cred_t *out)
{
    size_t n = strlen(client_id);
    if (n == 0 || n >= sizeof out->id)
        return EO_ENOTFOUND;
    char prefixed[8 + sizeof out->id] = "client:";
    memcpy(prefixed + 7, client_id, n + 1);
    uint8_t hash[32];
    eo_write_key_hash(prefixed, 7 + n, hash);
    return lookup(wk, hash, "cl_",
                  "SELECT 1 FROM oauth_clients WHERE client_id = $1 AND revoked_at IS NULL",
                  client_id, out);
}

bool eo_creds_fresh(eo_creds_t *wk)
{
    long long ok = atomic_load(&wk->last_ok_us);
    return ok > 0 && eo_clock_mono_us() - ok < 3 * wk->refresh_ms * 1000 + 1000000;
}

void eo_creds_free(eo_creds_t *wk)
{
    if (!wk)
        return;
    eo_ticker_stop(wk->ticker);
    PQfinish(wk->conn);
    free(wk->table.slots);
    pthread_rwlock_destroy(&wk->lock);
    pthread_mutex_destroy(&wk->refresh_lock);
    free(wk->dsn);
    free(wk);
}
