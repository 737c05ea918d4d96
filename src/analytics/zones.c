/* IANA time zones by name and their process-wide cache (see zones.h). eo_zone_load holds no
 * state. The cache's list is guarded by its mutex (lock); the zones in it are immutable and
 * read by any thread without the lock. A miss reads and parses the file outside the lock, then
 * inserts it unless another thread was quicker (its copy wins, ours is freed). */
#include "analytics/zones.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_TZDIR "/usr/share/zoneinfo"

/* 1..64 bytes of [A-Za-z0-9_+/-], no leading '/', no "//", no "..". */
static bool valid_name(const char *name)
{
    size_t len = strnlen(name, EO_ZONE_NAME_MAX + 1);
    if (len == 0 || len > EO_ZONE_NAME_MAX || name[0] == '/')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '+' || c == '-' || c == '/';
        if (!ok)
            return false;
    }
    return !strstr(name, "//") && !strstr(name, "..");
}

/* True when path is dir itself or lies under it (both real paths). */
static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Reads the regular file at real_path (no symbolic link left in it) into *data (malloc'd). */
static int read_zone_file(const char *real_path, const char *name, uint8_t **data, size_t *len,
                          char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat refuses it next. */
    int fd = open(real_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "time zone \"%s\": cannot open: %s", name, strerror(e));
        return e == ENOENT || e == ELOOP ? EO_ENOTFOUND : EO_EIO;
    }
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "time zone \"%s\": cannot stat: %s", name, strerror(errno));
        rc = EO_EIO;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "unknown time zone \"%s\" (not a zone file)", name);
        rc = EO_ENOTFOUND;
        goto done;
    }
    if (st.st_size > EO_ZONE_FILE_MAX) {
        snprintf(err, errlen, "time zone \"%s\": file of %lld bytes is above %d", name,
                 (long long)st.st_size, EO_ZONE_FILE_MAX);
        rc = EO_ELIMIT;
        goto done;
    }
    size_t want = (size_t)st.st_size;
    buf = malloc(want ? want : 1);
    if (!buf) {
        rc = EO_ENOMEM;
        goto done;
    }
    while (got < want) { /* a file that grew since fstat is read up to its old size */
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "time zone \"%s\": read: %s", name, strerror(errno));
            rc = EO_EIO;
            goto done;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
done:
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = got;
    return 0;
}

int eo_zone_load(const char *name, eo_tz_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    if (!name || !valid_name(name)) {
        snprintf(err, errlen,
                 "bad time zone name: 1 to %d of [A-Za-z0-9_+/-], without a leading '/', "
                 "\"//\" or \"..\"",
                 EO_ZONE_NAME_MAX);
        return EO_EINVAL;
    }
    if (strcmp(name, "UTC") == 0)
        return 0;

    const char *dir = getenv("TZDIR");
    if (!dir || !dir[0])
        dir = DEFAULT_TZDIR;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, errlen, "time zone \"%s\": TZDIR path too long", name);
        return EO_EINVAL;
    }
    int rc = 0;
    uint8_t *data = NULL;
    size_t len = 0;
    char *real_dir = realpath(dir, NULL);
    char *real_path = NULL;
    if (!real_dir) {
        snprintf(err, errlen, "unknown time zone \"%s\": no time zone database at %s (%s)", name,
                 dir, strerror(errno));
        rc = EO_ENOTFOUND;
        goto done;
    }
    real_path = realpath(path, NULL);
    if (!real_path) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR || e == ELOOP) {
            snprintf(err, errlen, "unknown time zone \"%s\"", name);
            rc = EO_ENOTFOUND;
        } else {
            snprintf(err, errlen, "time zone \"%s\": %s", name, strerror(e));
            rc = e == ENOMEM ? EO_ENOMEM : EO_EIO;
        }
        goto done;
    }
    if (!under(real_path, real_dir)) {
        snprintf(err, errlen, "unknown time zone \"%s\" (its file is outside %s)", name, dir);
        rc = EO_ENOTFOUND;
        goto done;
    }
    rc = read_zone_file(real_path, name, &data, &len, err, errlen);
    if (rc)
        goto done;
    char perr[160];
    rc = eo_tz_parse(data, len, out, perr, sizeof perr);
    if (rc == EO_EPARSE)
        snprintf(err, errlen, "time zone \"%s\": %s", name, perr);
    else if (rc)
        snprintf(err, errlen, "time zone \"%s\": %s", name, eo_strerror(rc));
done:
    free(data);
    free(real_path);
    free(real_dir);
    return rc;
}

typedef struct {
    char name[EO_ZONE_NAME_MAX + 1];
    eo_tz_t *tz;
} entry_t;

struct eo_zones {
    pthread_mutex_t lock; /* guards entries, n and cap */
    entry_t *entries;
    size_t n, cap;
};

int eo_zones_new(eo_zones_t **out)
{
    eo_zones_t *z = calloc(1, sizeof *z);
    if (!z)
        return EO_ENOMEM;
    pthread_mutex_init(&z->lock, NULL);
    *out = z;
    return 0;
}

void eo_zones_free(eo_zones_t *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->n; i++)
        eo_tz_free(z->entries[i].tz);
    free(z->entries);
    pthread_mutex_destroy(&z->lock);
    free(z);
}

/* The zone cached under name, or NULL. Called with the lock held. */
static eo_tz_t *find(const eo_zones_t *z, const char *name)
{
    for (size_t i = 0; i < z->n; i++)
        if (strcmp(z->entries[i].name, name) == 0)
            return z->entries[i].tz;
    return NULL;
}

const eo_tz_t *eo_zones_get(eo_zones_t *z, const char *name, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (name && strcmp(name, "UTC") == 0)
        return NULL;
    if (name) {
        pthread_mutex_lock(&z->lock);
        eo_tz_t *hit = find(z, name);
        pthread_mutex_unlock(&z->lock);
        if (hit)
            return hit;
    }
    eo_tz_t *tz = NULL;
    if (eo_zone_load(name, &tz, err, errlen) != 0)
        return NULL;

    pthread_mutex_lock(&z->lock);
    eo_tz_t *hit = find(z, name);
    if (hit) { /* another thread loaded it meanwhile */
        pthread_mutex_unlock(&z->lock);
        eo_tz_free(tz);
        return hit;
    }
    if (z->n == EO_ZONES_CACHE_MAX) {
        pthread_mutex_unlock(&z->lock);
        eo_tz_free(tz);
        snprintf(err, errlen, "time zone \"%s\": the cache holds %d zones already", name,
                 EO_ZONES_CACHE_MAX);
        return NULL;
    }
    if (z->n == z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 16;
        entry_t *grown = realloc(z->entries, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&z->lock);
            eo_tz_free(tz);
            snprintf(err, errlen, "time zone \"%s\": out of memory", name);
            return NULL;
        }
        z->entries = grown;
        z->cap = cap;
    }
    entry_t *e = &z->entries[z->n++];
    snprintf(e->name, sizeof e->name, "%s", name); /* valid_name: at most 64 bytes */
    e->tz = tz;                                    /* now owned by the cache */
    pthread_mutex_unlock(&z->lock);
    return tz;
}
