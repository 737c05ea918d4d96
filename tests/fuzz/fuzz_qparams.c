/* libFuzzer harness of every parser in src/domain/qparams.h on raw bytes: the value of one
 * query API parameter (docs/query.md). Each parser is checked against a reference written here
 * again, independently of src/domain/qparams.c. Invariants checked (abort on violation), beyond
 * "no crash, no leak, no read past the input":
 *  - every result is 0 or EO_EINVAL, and the reference agrees on which;
 *  - interval and period names are the contract's (canonical names and aliases only);
 *  - eo_q_int and eo_q_within give values within [min, max] (several bounds, some taken from
 *    the input), never an overflowed one;
 *  - eo_q_property writes a NUL-terminated literal within cap (buffers of exactly cap bytes),
 *    and the literal re-parses to the names of the path;
 *  - eo_q_text_ok agrees with a second UTF-8 checker;
 *  - eo_q_list items are non-empty, within the limits, clean text, and cover the input exactly
 *    (joined with ',' they give it back); arrays of exactly max_items entries;
 *  - eo_q_zone_shape_ok accepts only the allowed characters and lengths;
 *  - cursors, against a reference of the format written here (base64url and framing):
 *    the input as text decodes exactly when the reference accepts it (canonical base64url,
 *    version 1, a length field equal to the 1..4096 id bytes that follow, a time in
 *    0000..9999 to the last microsecond, a clean id), to the reference's time and id, and
 *    re-encodes to exactly the same text; id_cap is honoured to the byte; nothing is written
 *    on a refusal. The input as cursor bytes (base64url-encoded here) is checked the same way.
 *    The input as (time from the first 8 bytes, id from the rest) is encoded exactly when the
 *    pair is valid, to the reference's text, and decodes back to the pair; the encoder refuses
 *    exactly what the decoder refuses of the same pair framed by hand. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/qparams.h"
#include "domain/rfc3339.h"
#include "fuzz_check.h"

#define MIN_US (EO_RFC3339_MIN_S * INT64_C(1000000))
#define MAX_US (EO_RFC3339_MAX_S * INT64_C(1000000) + 999999)

static bool is(const uint8_t *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

static bool all_digits(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Value of 1..18 digits (fits in int64_t). */
static int64_t digits_value(const uint8_t *s, size_t n)
{
    int64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static void check_units(const uint8_t *s, size_t n)
{
    static const struct {
        const char *name;
        eo_q_unit_t unit;
    } names[] = {
        {"minute", EO_Q_MINUTE}, {"hour", EO_Q_HOUR},   {"day", EO_Q_DAY},   {"week", EO_Q_WEEK},
        {"month", EO_Q_MONTH},   {"hourly", EO_Q_HOUR}, {"daily", EO_Q_DAY}, {"weekly", EO_Q_WEEK},
        {"monthly", EO_Q_MONTH}}; /* no "minutely" */
    int want = EO_EINVAL;
    eo_q_unit_t want_unit = EO_Q_MINUTE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (is(s, n, names[i].name)) {
            want = 0;
            want_unit = names[i].unit;
        }
    eo_q_unit_t u = (eo_q_unit_t)99;
    int r = eo_q_interval((const char *)s, n, &u);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_interval: %d", r);
    CHECK(r == want, "eo_q_interval '%.*s': %d, reference %d", (int)n, (const char *)s, r, want);
    if (r == 0) {
        CHECK(u == want_unit, "eo_q_interval '%.*s': unit %d", (int)n, (const char *)s, (int)u);
        const char *name = eo_q_unit_name(u);
        eo_q_unit_t back;
        CHECK(eo_q_interval(name, strlen(name), &back) == 0 && back == u, "unit name %s", name);
        CHECK(eo_q_unit_min_s(u) > 0, "unit min");
    }
    bool period_ok = r == 0 && (u == EO_Q_DAY || u == EO_Q_WEEK);
    eo_q_unit_t p = (eo_q_unit_t)99;
    r = eo_q_period((const char *)s, n, &p);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_period: %d", r);
    CHECK((r == 0) == period_ok, "eo_q_period '%.*s': %d", (int)n, (const char *)s, r);
    CHECK(r != 0 || p == u, "eo_q_period and eo_q_interval disagree");
}

static void check_int(const uint8_t *s, size_t n, int64_t min, int64_t max)
{
    bool ok = n >= 1 && n <= 18 && all_digits(s, n);
    int64_t want = ok ? digits_value(s, n) : 0;
    ok = ok && want >= min && want <= max;
    int64_t v = -42;
    int r = eo_q_int((const char *)s, n, min, max, &v);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_int: %d", r);
    CHECK((r == 0) == ok, "eo_q_int '%.*s' [%lld, %lld]: %d", (int)n, (const char *)s,
          (long long)min, (long long)max, r);
    if (r == 0)
        CHECK(v == want && v >= min && v <= max, "eo_q_int '%.*s': %lld", (int)n, (const char *)s,
              (long long)v);
}

static void check_within(const uint8_t *s, size_t n, int64_t max_s)
{
    int64_t want = -1;
    if (n >= 2 && n - 1 <= 9 && all_digits(s, n - 1)) {
        int64_t unit = 0;
        switch (s[n - 1]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'w':
            unit = 604800;
            break;
        }
        int64_t v = digits_value(s, n - 1); /* at most 9 digits: no overflow below */
        if (unit && v >= 1 && v * unit <= max_s)
            want = v * unit;
    }
    int64_t got = -42;
    int r = eo_q_within((const char *)s, n, max_s, &got);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_within: %d", r);
    CHECK((r == 0) == (want >= 0), "eo_q_within '%.*s' max %lld: %d, reference %lld", (int)n,
          (const char *)s, (long long)max_s, r, (long long)want);
    if (r == 0)
        CHECK(got == want && got >= 1 && got <= max_s, "eo_q_within '%.*s': %lld", (int)n,
              (const char *)s, (long long)got);
}

static bool name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c == '-';
}

/* The reference: 1..4 names of 1..64 name characters joined by '.'. */
static bool property_ok(const uint8_t *s, size_t n)
{
    size_t names = 1, len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (len == 0 || ++names > 4)
                return false;
            len = 0;
        } else if (!name_char(s[i]) || ++len > 64) {
            return false;
        }
    }
    return len > 0;
}

/* Parses the literal {"a","b",...} back into a dotted path in path (cap bytes). */
static bool literal_to_path(const char *lit, char *path, size_t cap)
{
    size_t n = strlen(lit), o = 0;
    if (n < 4 || lit[0] != '{' || lit[n - 1] != '}')
        return false;
    size_t i = 1;
    for (;;) {
        if (lit[i] != '"')
            return false;
        i++;
        size_t start = i;
        while (i < n && lit[i] != '"')
            i++;
        if (i >= n || i == start || o + (i - start) + 1 > cap)
            return false;
        memcpy(path + o, lit + start, i - start);
        o += i - start;
        i++; /* the closing quote */
        if (lit[i] == '}')
            break;
        if (lit[i] != ',')
            return false;
        path[o++] = '.';
        i++;
    }
    path[o] = '\0';
    return i == n - 1;
}

static void check_property(const uint8_t *s, size_t n, size_t cap)
{
    char *out = malloc(cap ? cap : 1); /* exactly cap bytes: ASan sees any write past it */
    CHECK(out != NULL, "no memory");
    int r = eo_q_property((const char *)s, n, out, cap);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_property: %d", r);
    bool ok = property_ok(s, n);
    CHECK(r != 0 || ok, "eo_q_property accepted '%.*s'", (int)n, (const char *)s);
    if (cap >= 2 * n + 16) /* qparams.c's documented-by-caller room; enough for any path */
        CHECK((r == 0) == ok, "eo_q_property '%.*s' cap %zu: %d", (int)n, (const char *)s, cap, r);
    if (r == 0) {
        size_t len = strnlen(out, cap);
        CHECK(len < cap, "literal not NUL-terminated within cap %zu", cap);
        CHECK(len <= n + 2 * 3 + 4, "literal of %zu bytes for a %zu-byte path", len, n);
        char path[EO_Q_PROPERTY_MAX + 1];
        CHECK(literal_to_path(out, path, sizeof path), "literal %s does not parse", out);
        CHECK(strlen(path) == n && memcmp(path, s, n) == 0, "literal %s is not the path", out);
    }
    free(out);
}

static void check_text(const uint8_t *s, size_t n)
{
    bool got = eo_q_text_ok((const char *)s, n), want = clean_utf8(s, n);
    CHECK(got == want, "eo_q_text_ok: %d, reference %d (%zu bytes)", got, want, n);
}

static void check_list(const uint8_t *s, size_t n, size_t max_items, size_t max_item)
{
    /* the reference: split on ',' */
    bool ok = true;
    size_t items = 0, begin = 0;
    for (size_t i = 0; i <= n && ok; i++) {
        if (i < n && s[i] != ',')
            continue;
        size_t len = i - begin;
        ok = len >= 1 && len <= max_item && ++items <= max_items && clean_utf8(s + begin, len);
        begin = i + 1;
    }
    const char **starts = malloc((max_items ? max_items : 1) * sizeof *starts);
    size_t *lens = malloc((max_items ? max_items : 1) * sizeof *lens);
    CHECK(starts != NULL && lens != NULL, "no memory");
    size_t count = 0;
    int r = eo_q_list((const char *)s, n, max_items, max_item, starts, lens, &count);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_list: %d", r);
    CHECK((r == 0) == ok, "eo_q_list (%zu, %zu): %d, reference %d", max_items, max_item, r, ok);
    if (r == 0) {
        CHECK(count >= 1 && count <= max_items && count == items, "eo_q_list: %zu items", count);
        const char *next = (const char *)s;
        for (size_t k = 0; k < count; k++) {
            CHECK(starts[k] == next, "item %zu does not start where the previous ended", k);
            CHECK(lens[k] >= 1 && lens[k] <= max_item, "item %zu of %zu bytes", k, lens[k]);
            CHECK(memchr(starts[k], ',', lens[k]) == NULL, "item %zu holds a comma", k);
            CHECK(eo_q_text_ok(starts[k], lens[k]), "item %zu is not clean text", k);
            next = starts[k] + lens[k];
            CHECK(k + 1 == count || *next == ',', "items %zu and %zu not split by ','", k, k + 1);
            next++;
        }
        CHECK(next == (const char *)s + n + 1, "the items do not cover the input");
    }
    free(starts);
    free(lens);
}

static void check_zone(const uint8_t *s, size_t n)
{
    bool want = n >= 1 && n <= 64 && s[0] != '/';
    for (size_t i = 0; i < n && want; i++)
        want = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
               (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '+' || s[i] == '/' ||
               s[i] == '-';
    bool got = eo_q_zone_shape_ok((const char *)s, n);
    CHECK(got == want, "eo_q_zone_shape_ok '%.*s': %d", (int)n, (const char *)s, got);
}

/* ---- cursors: a reference of the format, independent of qparams.c and b64.c ---- */

#define HEAD 11 /* version 1, time (8 bytes, big-endian), id length (2 bytes, big-endian) */
#define ID_CAP (EO_Q_CURSOR_ID_MAX + 1)
/* Characters of base64url without padding for n bytes. */
#define REF_B64_LEN(n) ((4 * (size_t)(n) + 2) / 3)
#define CURSOR_LEN_MAX REF_B64_LEN(HEAD + EO_Q_CURSOR_ID_MAX)

static const char ref_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url of n bytes without padding into out (REF_B64_LEN(n) + 1 bytes); the length. */
static size_t ref_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8 | in[i]) & 0xffff;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = ref_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = ref_alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Decodes s when it is the one spelling ref_b64_encode gives for some bytes (canonical:
 * alphabet, no padding, unused bits zero, no dangling character); the byte count or -1. out
 * holds n * 3 / 4 + 1 bytes. */
static long ref_b64_decode(const char *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(ref_alphabet, s[i], sizeof ref_alphabet);
        if (!p)
            return -1;
        acc = (acc << 6 | (uint32_t)(p - ref_alphabet)) & 0xffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    char *back = malloc(REF_B64_LEN(o) + 1);
    CHECK(back != NULL, "no memory");
    bool same = ref_b64_encode(out, o, back) == n && memcmp(back, s, n) == 0;
    free(back);
    return same ? (long)o : -1;
}

/* The reference of a decoded cursor: 11 header bytes, version 1, a length field equal to the
 * id bytes that follow (1..4096), a time in 0000..9999 and a clean id. */
static bool ref_cursor(const uint8_t *raw, size_t len, int64_t *us, size_t *id_len)
{
    if (len < HEAD + 1 || raw[0] != 1)
        return false;
    uint64_t t = 0;
    for (int i = 1; i <= 8; i++)
        t = t << 8 | raw[i];
    size_t field = (size_t)raw[9] * 256 + raw[10];
    *us = (int64_t)t;
    *id_len = field;
    return field == len - HEAD && field >= 1 && field <= EO_Q_CURSOR_ID_MAX && *us >= MIN_US &&
           *us <= MAX_US && clean_utf8(raw + HEAD, field);
}

/* The cursor text of (us, id) by the reference (any id length up to 65535). */
static char *ref_cursor_text(int64_t us, const uint8_t *id, size_t id_len)
{
    uint8_t *raw = malloc(HEAD + id_len);
    char *text = malloc(REF_B64_LEN(HEAD + id_len) + 1);
    CHECK(raw != NULL && text != NULL && id_len <= 0xffff, "no memory");
    raw[0] = 1;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)((uint64_t)us >> (56 - 8 * i));
    raw[9] = (uint8_t)(id_len >> 8);
    raw[10] = (uint8_t)id_len;
    if (id_len)
        memcpy(raw + HEAD, id, id_len);
    ref_b64_encode(raw, HEAD + id_len, text);
    free(raw);
    return text;
}

/* eo_q_cursor_decode of text s agrees with the reference; a decoded cursor encodes back to
 * exactly s; id_cap is honoured to the byte (buffers of exactly id_cap bytes). */
static void check_cursor_decode(const char *s, size_t n)
{
    uint8_t *raw = malloc(n * 3 / 4 + 1);
    CHECK(raw != NULL, "no memory");
    long len = ref_b64_decode(s, n, raw);
    int64_t want_us = 0;
    size_t want_len = 0;
    bool want = len >= 0 && ref_cursor(raw, (size_t)len, &want_us, &want_len);

    char *id = malloc(ID_CAP);
    CHECK(id != NULL, "no memory");
    memset(id, 'X', ID_CAP);
    int64_t us = 42;
    int r = eo_q_cursor_decode(s, n, &us, id, ID_CAP);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_cursor_decode: %d", r);
    CHECK((r == 0) == want, "eo_q_cursor_decode '%.*s' (%zu characters): %d, reference %d",
          n > 64 ? 64 : (int)n, s, n, r, want);
    if (r != 0) {
        CHECK(us == 42 && id[0] == 'X', "eo_q_cursor_decode wrote on a refusal");
    } else {
        CHECK(n <= CURSOR_LEN_MAX, "a cursor of %zu characters decoded", n);
        CHECK(us == want_us, "cursor time %lld, reference %lld", (long long)us, (long long)want_us);
        CHECK(strnlen(id, ID_CAP) == want_len && memcmp(id, raw + HEAD, want_len) == 0,
              "cursor id differs from the reference");
        /* one spelling per value: it encodes back to exactly s */
        char *back = malloc(EO_Q_CURSOR_MAX);
        CHECK(back != NULL, "no memory");
        CHECK(eo_q_cursor_encode(us, id, want_len, back) == 0, "decoded cursor does not encode");
        CHECK(strnlen(back, EO_Q_CURSOR_MAX) == n && memcmp(back, s, n) == 0,
              "cursor '%.*s' encodes back as '%.64s' (two spellings of one cursor)",
              n > 64 ? 64 : (int)n, s, back);
        free(back);
        /* id_cap: the id and its NUL, not a byte less */
        char *fit = malloc(want_len + 1), *small = malloc(want_len);
        CHECK(fit != NULL && small != NULL, "no memory");
        int64_t us2 = 42;
        CHECK(eo_q_cursor_decode(s, n, &us2, small, want_len) == EO_EINVAL && us2 == 42,
              "id_cap %zu accepted a %zu-byte id", want_len, want_len);
        CHECK(eo_q_cursor_decode(s, n, &us2, fit, want_len + 1) == 0 && us2 == us &&
                  memcmp(fit, id, want_len + 1) == 0,
              "id_cap %zu refused a %zu-byte id", want_len + 1, want_len);
        free(fit);
        free(small);
    }
    free(id);
    free(raw);
}

/* The input as the bytes of a cursor (framing, length field and all): their text decodes
 * exactly when the reference accepts them. */
static void check_cursor_raw(const uint8_t *s, size_t n)
{
    char *text = malloc(REF_B64_LEN(n) + 1);
    CHECK(text != NULL, "no memory");
    size_t len = ref_b64_encode(s, n, text);
    check_cursor_decode(text, len);
    free(text);
}

/* The input as (time from the first 8 bytes, id from the rest): eo_q_cursor_encode accepts
 * exactly the valid pairs, writes the reference text for them, the decoder gives the pair back,
 * and the encoder refuses exactly what the decoder refuses of the same pair framed by hand. */
static void check_cursor_encode(const uint8_t *s, size_t n)
{
    uint64_t t = 0;
    for (size_t i = 0; i < 8; i++)
        t = t << 8 | (i < n ? s[i] : 0);
    int64_t us = (int64_t)t;
    const uint8_t *mid = n > 8 ? s + 8 : (const uint8_t *)"";
    size_t mid_len = n > 8 ? n - 8 : 0;
    bool want = mid_len >= 1 && mid_len <= EO_Q_CURSOR_ID_MAX && clean_utf8(mid, mid_len) &&
                us >= MIN_US && us <= MAX_US;
    char *c = malloc(EO_Q_CURSOR_MAX); /* exactly EO_Q_CURSOR_MAX: ASan sees writes past it */
    CHECK(c != NULL, "no memory");
    int r = eo_q_cursor_encode(us, (const char *)mid, mid_len, c);
    CHECK(r == 0 || r == EO_EINVAL, "eo_q_cursor_encode: %d", r);
    CHECK((r == 0) == want, "eo_q_cursor_encode (%lld, %zu-byte id): %d, reference %d",
          (long long)us, mid_len, r, want);
    if (mid_len > 0xffff) {
        free(c);
        return; /* no length field for it */
    }
    char *ref = ref_cursor_text(us, mid, mid_len);
    size_t ref_len = strlen(ref);
    char *id = malloc(ID_CAP);
    CHECK(id != NULL, "no memory");
    int64_t back = 42;
    int d = eo_q_cursor_decode(ref, ref_len, &back, id, ID_CAP);
    CHECK(d == r, "(%lld, %zu-byte id): encode %d, decode of it framed %d", (long long)us, mid_len,
          r, d);
    if (r == 0) {
        size_t len = strnlen(c, EO_Q_CURSOR_MAX);
        CHECK(len < EO_Q_CURSOR_MAX && len == ref_len && memcmp(c, ref, len) == 0,
              "cursor '%.64s' (%zu), reference '%.64s' (%zu)", c, len, ref, ref_len);
        CHECK(back == us && strnlen(id, ID_CAP) == mid_len && memcmp(id, mid, mid_len) == 0,
              "cursor (%lld, %zu-byte id) decodes to (%lld, %zu-byte id)", (long long)us, mid_len,
              (long long)back, strnlen(id, ID_CAP));
    }
    free(id);
    free(ref);
    free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_units(data, size);

    check_int(data, size, 1, 1000);
    check_int(data, size, 0, INT64_MAX);
    check_int(data, size, INT64_MIN, INT64_MAX);
    check_int(data, size, 5, 4);
    int64_t a = size > 0 ? (int64_t)data[0] * 1000003 : 0, b = a + (size > 1 ? data[1] : 0);
    check_int(data, size, a, b);

    check_within(data, size, 90 * 86400);
    check_within(data, size, INT64_MAX);
    check_within(data, size, 0);
    check_within(data, size, size > 0 ? (int64_t)data[size - 1] * 3607 : 1);

    check_property(data, size, 2 * EO_Q_PROPERTY_MAX + 16);
    check_property(data, size, 2 * size + 16);
    check_property(data, size, size + 11); /* room for the literal, less than 2n + 16 */
    check_property(data, size, size / 2);

    check_text(data, size);

    check_list(data, size, 10, 64);
    check_list(data, size, 3, 8);
    check_list(data, size, 1, 255);
    check_list(data, size, 0, 64);

    check_zone(data, size);

    check_cursor_decode((const char *)data, size);
    check_cursor_raw(data, size);
    check_cursor_encode(data, size);
    return 0;
}
