/* Key folders and keystores (see keystore.h).
 * Threads: `set` is guarded by `lock` (readers take a reference and leave); reloads are
 * serialised by `reload_lock` (the ticker's thread and eo_keystore_refetch). */
#include "access/keystore.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/array.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/ticker.h"
#include "core/log.h"
#include "core/random.h"

#define KEY_FILE_MAX 16384
#define JWKS_MAX (1024 * 1024)
#define JWKS_FETCH_TIMEOUT_MS 2000

/* ---- key folders ---- */

int eo_keydir_create(const char *dir, char kid[EO_JWT_KID_MAX + 1], char *path, size_t pathlen,
                     char *err, size_t errlen)
{
    if (!dir || !*dir) {
        snprintf(err, errlen, "no key folder: pass --dir or set EVENTOPS_AUTH_KEY_DIR");
        return EO_EINVAL;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return EO_EIO;
    }
    uint8_t rnd[4];
    int r = eo_random_bytes(rnd, sizeof rnd);
    if (r < 0)
        return r;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(kid, EO_JWT_KID_MAX + 1, "%s-%02x%02x%02x%02x", stamp, rnd[0], rnd[1], rnd[2], rnd[3]);
    if ((size_t)snprintf(path, pathlen, "%s/%s.pem", dir, kid) >= pathlen) {
        snprintf(err, errlen, "key folder path too long");
        return EO_EINVAL;
    }
    eo_buf_t pem;
    eo_buf_init(&pem, KEY_FILE_MAX);
    EVP_PKEY *key = NULL;
    r = eo_jwt_key_generate(&key, &pem);
    EVP_PKEY_free(key);
    if (r < 0) {
        eo_buf_done(&pem);
        snprintf(err, errlen, "cannot generate an Ed25519 key");
        return r;
    }
    /* Written under a name loaders ignore, then renamed: a reload never reads half a key. */
    char tmp[4096 + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, pem.data, pem.len) == (ssize_t)pem.len && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    eo_buf_done(&pem);
    if (ok && rename(tmp, path) < 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
        unlink(tmp);
        return EO_EIO;
    }
    return 0;
}

static int kid_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole small file into buf. */
static int read_file(const char *path, eo_buf_t *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return EO_EIO;
    char chunk[4096];
    ssize_t n;
    int r = 0;
    while (r == 0 && (n = read(fd, chunk, sizeof chunk)) > 0)
        r = eo_buf_append(buf, chunk, (size_t)n);
    if (r == 0 && n < 0)
        r = EO_EIO;
    close(fd);
    return r;
}

int eo_keydir_load(const char *dir, eo_jwt_keyset_t **out, char *err, size_t errlen)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open key folder %s: %s", dir, strerror(errno));
        return EO_EIO;
    }
    char **kids = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0 ||
            !eo_jwt_kid_valid(de->d_name, len - 4))
            continue;
        if ((r = EO_ARRAY_RESERVE(kids, cap, n + 1, 8)) < 0)
            break;
        if (!(kids[n] = strndup(de->d_name, len - 4)))
            r = EO_ENOMEM;
        else
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(kids, n, sizeof *kids, kid_cmp);
    eo_jwt_keyset_t *ks = r == 0 ? eo_jwt_keyset_new() : NULL;
    if (r == 0 && !ks)
        r = EO_ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.pem", dir, kids[i]);
        eo_buf_t pem;
        eo_buf_init(&pem, KEY_FILE_MAX);
        EVP_PKEY *key = NULL;
        r = read_file(path, &pem);
        if (r == 0)
            r = eo_jwt_key_from_pem(pem.data, pem.len, &key);
        if (r == 0)
            r = eo_jwt_keyset_add(ks, kids[i], key);
        if (r < 0)
            snprintf(err, errlen, "key file %s: %s", path,
                     r == EO_EIO ? strerror(errno) : "not an Ed25519 private key in PEM");
        EVP_PKEY_free(key);
        eo_buf_done(&pem);
    }
    for (size_t i = 0; i < n; i++)
        free(kids[i]);
    free(kids);
    if (r < 0) {
        eo_jwt_keyset_unref(ks);
        return r;
    }
    *out = ks;
    return 0;
}

int eo_keydir_delete(const char *dir, const char *kid, char *err, size_t errlen)
{
    if (!eo_jwt_kid_valid(kid, strlen(kid))) {
        snprintf(err, errlen, "'%s' is not a key id", kid);
        return EO_ENOTFOUND;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pem", dir, kid);
    if (unlink(path) < 0) {
        snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        return errno == ENOENT ? EO_ENOTFOUND : EO_EIO;
    }
    return 0;
}

/* ---- keystores ---- */

struct eo_keystore {
    char *key_dir, *jwks_url;
    int64_t refresh_ms, min_refetch_ms;
    pthread_mutex_t lock;
    eo_jwt_keyset_t *set; /* guarded by lock */
    pthread_mutex_t reload_lock;
    int64_t last_reload_us; /* guarded by reload_lock */
    atomic_bool ready;
    atomic_ullong generation;
    eo_ticker_t *ticker;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    eo_buf_t *b = ud;
    return eo_buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static int fetch_jwks(eo_keystore_t *ks, eo_jwt_keyset_t **out, char *err, size_t errlen)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return EO_ENOMEM;
    eo_buf_t body;
    eo_buf_init(&body, JWKS_MAX);
    curl_easy_setopt(curl, CURLOPT_URL, ks->jwks_url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)JWKS_FETCH_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    CURLcode cc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    int r;
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "fetching %s: %s", ks->jwks_url, curl_easy_strerror(cc));
        r = EO_EUNAVAIL;
    } else if (status != 200) {
        snprintf(err, errlen, "fetching %s: HTTP %ld", ks->jwks_url, status);
        r = EO_EUNAVAIL;
    } else {
        r = eo_jwks_parse(body.data ? body.data : "", body.len, out, err, errlen);
    }
    eo_buf_done(&body);
    return r;
}

/* Reloads from the source; call with reload_lock held. */
static int reload(eo_keystore_t *ks)
{
    char err[512] = "";
    eo_jwt_keyset_t *set = NULL;
    ks->last_reload_us = eo_clock_mono_us();
    int r = ks->jwks_url[0] ? fetch_jwks(ks, &set, err, sizeof err)
                            : eo_keydir_load(ks->key_dir, &set, err, sizeof err);
    if (r < 0) {
        if (atomic_exchange(&ks->ready, false) || !ks->set)
            eo_log_warn("signing keys: reload failed", "error", err, NULL);
        return r;
    }
    if (eo_jwt_keyset_count(set) == 0 && atomic_load(&ks->ready))
        eo_log_warn("signing keys: the source has no key", "source",
                    ks->jwks_url[0] ? ks->jwks_url : ks->key_dir, NULL);
    pthread_mutex_lock(&ks->lock);
    eo_jwt_keyset_t *old = ks->set;
    ks->set = set;
    atomic_fetch_add(&ks->generation, 1);
    pthread_mutex_unlock(&ks->lock);
    eo_jwt_keyset_unref(old);
    atomic_store(&ks->ready, eo_jwt_keyset_count(set) > 0);
    return 0;
}

/* The ticker's periodic reload. */
static void tick(void *arg)
{
    eo_keystore_t *ks = arg;
    pthread_mutex_lock(&ks->reload_lock);
    eo_ignore(reload(ks));
    pthread_mutex_unlock(&ks->reload_lock);
}

int eo_keystore_new(const eo_keystore_options_t *opt, eo_keystore_t **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *url = opt->jwks_url ? opt->jwks_url : "";
    const char *dir = opt->key_dir ? opt->key_dir : "";
    if (!*url && !*dir) {
        snprintf(err, errlen, "no key source: set EVENTOPS_AUTH_JWKS_URL or EVENTOPS_AUTH_KEY_DIR");
        return EO_EINVAL;
    }
    eo_keystore_t *ks = calloc(1, sizeof *ks);
    if (!ks || !(ks->jwks_url = strdup(url)) || !(ks->key_dir = strdup(dir))) {
        if (ks)
            free(ks->jwks_url);
        free(ks);
        return EO_ENOMEM;
    }
    ks->refresh_ms = opt->refresh_ms > 0 ? opt->refresh_ms : 60000;
    ks->min_refetch_ms = opt->min_refetch_ms > 0 ? opt->min_refetch_ms : 5000;
    pthread_mutex_init(&ks->lock, NULL);
    pthread_mutex_init(&ks->reload_lock, NULL);
    pthread_mutex_lock(&ks->reload_lock);
    eo_ignore(reload(ks));
    pthread_mutex_unlock(&ks->reload_lock);
    if (eo_ticker_start("eo-keys", ks->refresh_ms, tick, ks, &ks->ticker) < 0) {
        snprintf(err, errlen, "cannot start the key refresher");
        eo_keystore_free(ks);
        return EO_ENOMEM;
    }
    *out = ks;
    return 0;
}

eo_jwt_keyset_t *eo_keystore_get(eo_keystore_t *ks)
{
    pthread_mutex_lock(&ks->lock);
    eo_jwt_keyset_t *set = eo_jwt_keyset_ref(ks->set);
    pthread_mutex_unlock(&ks->lock);
    return set;
}

eo_jwt_keyset_t *eo_keystore_refetch(eo_keystore_t *ks)
{
    int64_t asked = eo_clock_mono_us();
    /* Another reload is running (a fetch may take seconds): wait for it a short while only, so
     * that made-up kids cannot park the HTTP threads. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 250 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (pthread_mutex_timedlock(&ks->reload_lock, &until) != 0)
        return eo_keystore_get(ks);
    /* A reload that began after this call was made already answers it. */
    if (ks->last_reload_us < asked && asked - ks->last_reload_us >= ks->min_refetch_ms * 1000)
        eo_ignore(reload(ks));
    pthread_mutex_unlock(&ks->reload_lock);
    return eo_keystore_get(ks);
}

uint64_t eo_keystore_generation(eo_keystore_t *ks)
{
    return atomic_load(&ks->generation);
}

bool eo_keystore_ready(eo_keystore_t *ks)
{
    return atomic_load(&ks->ready);
}

void eo_keystore_free(eo_keystore_t *ks)
{
    if (!ks)
        return;
    eo_ticker_stop(ks->ticker);
    eo_jwt_keyset_unref(ks->set);
    pthread_mutex_destroy(&ks->lock);
    pthread_mutex_destroy(&ks->reload_lock);
    free(ks->key_dir);
    free(ks->jwks_url);
    free(ks);
}
