/* Unit tests of src/analytics/zones.c (included, h2o's habit: it needs only the domain and
 * libc): zone names accepted and refused (a passing and a failing row per rule), zones loaded
 * from the system's tz database and from a TZDIR made here (symbolic links inside it followed,
 * links leaving it refused, a file too large, a FIFO, a file that is not TZif), and the cache
 * (one zone per name, UTC as NULL, failures not cached, its limit, threads racing on a miss). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "analytics/zones.c"

#define US INT64_C(1000000)
#define HOUR (3600 * US)

static void test_names(void **state)
{
    (void)state;
    char a64[65], a65[66];
    memset(a64, 'A', 64), a64[64] = '\0';
    memset(a65, 'A', 65), a65[65] = '\0';
    static const int64_t none = INT64_MIN; /* no offset to check */
    const struct {
        const char *name;
        int rc;
        int64_t offset_2024_01_15; /* at 2024-01-15T12:00Z when loaded */
    } rows[] = {
        {"Europe/Berlin", 0, HOUR},
        {"UTC", 0, 0}, /* NULL: nothing read */
        {"Etc/UTC", 0, 0},
        {"Etc/GMT+5", 0, -5 * HOUR}, /* '+' allowed (POSIX sign: five hours behind) */
        {"Etc/GMT-14", 0, 14 * HOUR},
        {"America/Argentina/Buenos_Aires", 0, -3 * HOUR},
        {"America/Port-au-Prince", 0, -5 * HOUR}, /* '-' allowed */
        {"Cuba", 0, -5 * HOUR},                   /* a symbolic link inside the database */
        {"posix/Asia/Kolkata", 0, 5 * HOUR + HOUR / 2},
        {a64, EO_ENOTFOUND, none}, /* 64 bytes: the form is fine */
        {a65, EO_EINVAL, none},    /* 65 bytes */
        {"", EO_EINVAL, none},
        {NULL, EO_EINVAL, none},
        {"/etc/passwd", EO_EINVAL, none},
        {"/Europe/Berlin", EO_EINVAL, none},
        {"..", EO_EINVAL, none},
        {"../../../etc/passwd", EO_EINVAL, none},
        {"Europe/../../etc/passwd", EO_EINVAL, none},
        {"Europe//Berlin", EO_EINVAL, none},
        {"Europe/Berlin\n", EO_EINVAL, none},
        {"Europe/Berlin ", EO_EINVAL, none},
        {"Europe\\Berlin", EO_EINVAL, none},
        {"Europe/Berlin.", EO_EINVAL, none},
        {"zone1970.tab", EO_EINVAL, none},
        {"Europe/Berlin;rm", EO_EINVAL, none},
        {"Mars/Olympus_Mons", EO_ENOTFOUND, none},
        {"utc", EO_ENOTFOUND, none},     /* names are case-sensitive */
        {"Europe", EO_ENOTFOUND, none},  /* a directory */
        {"Europe/", EO_ENOTFOUND, none}, /* the same */
        {"Europe/Berlin/x", EO_ENOTFOUND, none},
        {"leapseconds", EO_EPARSE, none},         /* a text file of the database */
        {"right/Europe/Berlin", EO_EPARSE, none}, /* counts leap seconds */
    };
    unsetenv("TZDIR");
    const int64_t t = INT64_C(1705320000) * US; /* 2024-01-15T12:00Z */
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_tz_t *tz = (eo_tz_t *)&rows; /* must be set */
        char err[200] = "x";
        int rc = eo_zone_load(rows[i].name, &tz, err, sizeof err);
        if (rc != rows[i].rc)
            fail_msg("row %zu (%s): rc %d, want %d: %s", i, rows[i].name, rc, rows[i].rc, err);
        if (rc == 0) {
            assert_string_equal(err, "");
            if (strcmp(rows[i].name, "UTC") == 0)
                assert_null(tz);
            else
                assert_non_null(tz);
            if (eo_tz_offset_us(tz, t) != rows[i].offset_2024_01_15)
                fail_msg("row %zu (%s): offset %lld", i, rows[i].name,
                         (long long)eo_tz_offset_us(tz, t));
            eo_tz_free(tz);
        } else {
            assert_null(tz);
            assert_true(err[0] != '\0');
            if (rc == EO_ENOTFOUND && !strstr(err, rows[i].name))
                fail_msg("row %zu: the message does not name the zone: %s", i, err);
        }
    }
}

static void put_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    void *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* A database of our own in TZDIR: what lies under it is read, also through links, what a link
 * leads out of it to is not; files too large, FIFOs and non-TZif files are refused. */
static void test_tzdir(void **state)
{
    (void)state;
    char dir[] = "/tmp/eo_test_zones_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[512];
    size_t len;
    void *berlin = read_all("/usr/share/zoneinfo/Europe/Berlin", &len);
    put_file(dir, "Good", berlin, len);
    path_in(p, sizeof p, dir, "Sub");
    assert_int_equal(mkdir(p, 0700), 0);
    put_file(dir, "Sub/Inner", berlin, len);
    free(berlin);
    path_in(p, sizeof p, dir, "Alias");
    assert_int_equal(symlink("Sub/Inner", p), 0);
    path_in(p, sizeof p, dir, "Up");
    assert_int_equal(symlink("Sub/../Good", p), 0); /* ".." in a link's target is fine */
    path_in(p, sizeof p, dir, "Escape");
    assert_int_equal(symlink("/usr/share/zoneinfo/Europe/Berlin", p), 0);
    path_in(p, sizeof p, dir, "EscapeDir");
    assert_int_equal(symlink("/usr/share/zoneinfo", p), 0);
    path_in(p, sizeof p, dir, "Dangling");
    assert_int_equal(symlink("Nowhere", p), 0);
    path_in(p, sizeof p, dir, "Loop");
    assert_int_equal(symlink("Loop", p), 0);
    path_in(p, sizeof p, dir, "Fifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    put_file(dir, "Garbage", "not a zone\n", 11);
    char *big = calloc(1, EO_ZONE_FILE_MAX + 1);
    assert_non_null(big);
    memcpy(big, "TZif", 4);
    put_file(dir, "Big", big, EO_ZONE_FILE_MAX + 1);
    put_file(dir, "Max", big, EO_ZONE_FILE_MAX); /* within the limit: refused as TZif only */
    free(big);

    static const struct {
        const char *name;
        int rc;
    } rows[] = {
        {"Good", 0},
        {"Sub/Inner", 0},
        {"Alias", 0},
        {"Up", 0},
        {"UTC", 0},
        {"Escape", EO_ENOTFOUND},
        {"EscapeDir/Europe/Berlin", EO_ENOTFOUND},
        {"Dangling", EO_ENOTFOUND},
        {"Loop", EO_ENOTFOUND},
        {"Fifo", EO_ENOTFOUND}, /* opened without blocking, then refused */
        {"Sub", EO_ENOTFOUND},
        {"Garbage", EO_EPARSE},
        {"Big", EO_ELIMIT},
        {"Max", EO_EPARSE},
        {"Europe/Berlin", EO_ENOTFOUND}, /* only TZDIR is searched */
    };
    setenv("TZDIR", dir, 1);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        eo_tz_t *tz = NULL;
        char err[300] = "";
        int rc = eo_zone_load(rows[i].name, &tz, err, sizeof err);
        if (rc != rows[i].rc)
            fail_msg("row %zu (%s): rc %d, want %d: %s", i, rows[i].name, rc, rows[i].rc, err);
        if (rc == 0 && strcmp(rows[i].name, "UTC") != 0)
            assert_int_equal(eo_tz_offset_us(tz, 0), HOUR);
        if (rc != 0)
            assert_true(err[0] != '\0' && tz == NULL);
        eo_tz_free(tz);
    }

    /* a TZDIR that does not exist; an empty one means the default */
    char missing[600];
    path_in(missing, sizeof missing, dir, "missing");
    setenv("TZDIR", missing, 1);
    eo_tz_t *tz = NULL;
    char err[300] = "";
    assert_int_equal(eo_zone_load("Good", &tz, err, sizeof err), EO_ENOTFOUND);
    setenv("TZDIR", "", 1);
    assert_int_equal(eo_zone_load("Europe/Berlin", &tz, err, sizeof err), 0);
    eo_tz_free(tz);
    unsetenv("TZDIR");

    static const char *const made[] = {"Good",   "Sub/Inner", "Alias",    "Up",
                                       "Escape", "EscapeDir", "Dangling", "Loop",
                                       "Fifo",   "Garbage",   "Big",      "Max"};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        path_in(p, sizeof p, dir, made[i]);
        assert_int_equal(unlink(p), 0);
    }
    path_in(p, sizeof p, dir, "Sub");
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* One zone per name, UTC as NULL with no error, failures reported and not cached. */
static void test_cache(void **state)
{
    (void)state;
    unsetenv("TZDIR");
    eo_zones_t *z = NULL;
    assert_int_equal(eo_zones_new(&z), 0);
    char err[200] = "x";
    const eo_tz_t *berlin = eo_zones_get(z, "Europe/Berlin", err, sizeof err);
    assert_non_null(berlin);
    assert_string_equal(err, "");
    assert_ptr_equal(eo_zones_get(z, "Europe/Berlin", err, sizeof err), berlin);
    assert_int_equal(eo_tz_offset_us(berlin, 0), HOUR);

    assert_null(eo_zones_get(z, "UTC", err, sizeof err));
    assert_string_equal(err, "");
    assert_null(eo_zones_get(z, "Mars/Olympus_Mons", err, sizeof err));
    assert_non_null(strstr(err, "Mars/Olympus_Mons"));
    assert_null(eo_zones_get(z, "/etc/passwd", err, sizeof err));
    assert_true(err[0] != '\0');
    assert_null(eo_zones_get(z, NULL, err, sizeof err));
    assert_true(err[0] != '\0');
    assert_int_equal(z->n, 1); /* failures are not cached */
    const eo_tz_t *kolkata = eo_zones_get(z, "Asia/Kolkata", err, sizeof err);
    assert_non_null(kolkata);
    assert_true(kolkata != berlin);
    assert_int_equal(z->n, 2);
    eo_zones_free(z);
    eo_zones_free(NULL);
}

/* The cache keeps at most EO_ZONES_CACHE_MAX zones; past it, a new name is refused and the
 * zones it holds are still served. */
static void test_cache_limit(void **state)
{
    (void)state;
    char dir[] = "/tmp/eo_test_zones_XXXXXX";
    assert_non_null(mkdtemp(dir));
    size_t len;
    void *utc = read_all("/usr/share/zoneinfo/Etc/UTC", &len);
    put_file(dir, "Z", utc, len);
    free(utc);
    char p[512], name[32];
    for (int i = 0; i <= EO_ZONES_CACHE_MAX; i++) {
        snprintf(name, sizeof name, "L%d", i);
        path_in(p, sizeof p, dir, name);
        assert_int_equal(symlink("Z", p), 0);
    }
    setenv("TZDIR", dir, 1);
    eo_zones_t *z = NULL;
    assert_int_equal(eo_zones_new(&z), 0);
    char err[200];
    const eo_tz_t *first = NULL;
    for (int i = 0; i < EO_ZONES_CACHE_MAX; i++) {
        snprintf(name, sizeof name, "L%d", i);
        const eo_tz_t *tz = eo_zones_get(z, name, err, sizeof err);
        if (!tz)
            fail_msg("%s: %s", name, err);
        if (i == 0)
            first = tz;
    }
    snprintf(name, sizeof name, "L%d", EO_ZONES_CACHE_MAX);
    assert_null(eo_zones_get(z, name, err, sizeof err));
    assert_non_null(strstr(err, "cache"));
    assert_ptr_equal(eo_zones_get(z, "L0", err, sizeof err), first);
    eo_zones_free(z);
    unsetenv("TZDIR");

    for (int i = 0; i <= EO_ZONES_CACHE_MAX; i++) {
        snprintf(name, sizeof name, "L%d", i);
        path_in(p, sizeof p, dir, name);
        assert_int_equal(unlink(p), 0);
    }
    path_in(p, sizeof p, dir, "Z");
    assert_int_equal(unlink(p), 0);
    assert_int_equal(rmdir(dir), 0);
}

#define THREADS 8
static const char *const race_names[] = {"Europe/Berlin", "Asia/Kolkata", "America/New_York", "UTC",
                                         "Australia/Lord_Howe"};

typedef struct {
    eo_zones_t *z;
    const eo_tz_t *got[sizeof race_names / sizeof race_names[0]];
    int failures;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    for (int round = 0; round < 50; round++)
        for (size_t i = 0; i < sizeof race_names / sizeof race_names[0]; i++) {
            char err[200];
            const eo_tz_t *tz = eo_zones_get(r->z, race_names[i], err, sizeof err);
            if ((tz == NULL) != (strcmp(race_names[i], "UTC") == 0) || err[0] != '\0')
                r->failures++;
            if (round > 0 && tz != r->got[i])
                r->failures++; /* a name gives one zone, always */
            r->got[i] = tz;
        }
    return NULL;
}

/* Threads missing the same names at once: each name ends with one zone, the same for all. */
static void test_cache_threads(void **state)
{
    (void)state;
    unsetenv("TZDIR");
    eo_zones_t *z = NULL;
    assert_int_equal(eo_zones_new(&z), 0);
    pthread_t th[THREADS];
    racer_t r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (racer_t){.z = z};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(r[i].failures, 0);
        for (size_t k = 0; k < sizeof race_names / sizeof race_names[0]; k++)
            assert_ptr_equal(r[i].got[k], r[0].got[k]);
    }
    assert_int_equal(z->n, 4);
    eo_zones_free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),         cmocka_unit_test(test_tzdir),
        cmocka_unit_test(test_cache),         cmocka_unit_test(test_cache_limit),
        cmocka_unit_test(test_cache_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
