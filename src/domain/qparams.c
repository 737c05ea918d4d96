/* Query API parameters (see qparams.h). */
#include "domain/qparams.h"

#include <string.h>

#include "domain/b64.h"
#include "domain/rfc3339.h"

static bool is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

const char *eo_q_unit_name(eo_q_unit_t u)
{
    static const char *const names[] = {"minute", "hour", "day", "week", "month"};
    return names[u];
}

int64_t eo_q_unit_min_s(eo_q_unit_t u)
{
    /* an hour bucket can shrink to 30 minutes and a day to 22 hours across a DST change */
    static const int64_t min_s[] = {60, 1800, 79200, 6 * 86400, 27 * 86400};
    return min_s[u];
}

int eo_q_interval(const char *s, size_t n, eo_q_unit_t *out)
{
    static const char *const names[][2] = {{"minute", NULL},
                                           {"hour", "hourly"},
                                           {"day", "daily"},
                                           {"week", "weekly"},
                                           {"month", "monthly"}};
    for (int u = 0; u < 5; u++)
        if (is(s, n, names[u][0]) || (names[u][1] && is(s, n, names[u][1]))) {
            *out = (eo_q_unit_t)u;
            return 0;
        }
    return EO_EINVAL;
}

int eo_q_period(const char *s, size_t n, eo_q_unit_t *out)
{
    eo_q_unit_t u;
    if (eo_q_interval(s, n, &u) < 0 || (u != EO_Q_DAY && u != EO_Q_WEEK))
        return EO_EINVAL;
    *out = u;
    return 0;
}

int eo_q_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    if (n == 0 || n > 18)
        return EO_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return EO_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return EO_EINVAL;
    *out = v;
    return 0;
}

int eo_q_within(const char *s, size_t n, int64_t max_s, int64_t *out)
{
    if (n < 2)
        return EO_EINVAL;
    int64_t unit;
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
        unit = 7 * 86400;
        break;
    default:
        return EO_EINVAL;
    }
    int64_t v;
    if (n - 1 > 9 || eo_q_int(s, n - 1, 1, 999999999, &v) < 0 || v > max_s / unit)
        return EO_EINVAL;
    *out = v * unit;
    return 0;
}

int eo_q_property(const char *s, size_t n, char *out, size_t cap)
{
    if (n == 0 || n > EO_Q_PROPERTY_MAX || cap < 2 * n + 16)
        return EO_EINVAL;
    size_t o = 0, names = 0, len = 0;
    out[o++] = '{';
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (len == 0 || ++names >= 4)
                return EO_EINVAL;
            len = 0;
            out[o++] = '"';
            out[o++] = ',';
            out[o++] = '"';
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '$' || c == '-';
        if (!ok || ++len > 64)
            return EO_EINVAL;
        out[o++] = c;
    }
    if (len == 0)
        return EO_EINVAL;
    out[o++] = '"';
    out[o++] = '}';
    out[o] = '\0';
    return 0;
}

bool eo_q_text_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += len;
    }
    return true;
}

int eo_q_list(const char *s, size_t n, size_t max_items, size_t max_item, const char **starts,
              size_t *lens, size_t *count)
{
    size_t k = 0, begin = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        size_t len = i - begin;
        if (len == 0 || len > max_item || k >= max_items || !eo_q_text_ok(s + begin, len))
            return EO_EINVAL;
        starts[k] = s + begin;
        lens[k++] = len;
        begin = i + 1;
    }
    *count = k;
    return 0;
}

bool eo_q_zone_shape_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || s[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '+' || c == '/' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

#define CURSOR_VERSION 1
#define CURSOR_HEAD 11 /* version, time (8 bytes, big-endian), id length (2 bytes) */

static bool cursor_time_ok(int64_t us)
{
    return us >= EO_RFC3339_MIN_S * 1000000 && us <= EO_RFC3339_MAX_S * 1000000 + 999999;
}

int eo_q_cursor_encode(int64_t occurred_us, const char *message_id, size_t id_len,
                       char out[EO_Q_CURSOR_MAX])
{
    if (id_len == 0 || id_len > EO_Q_CURSOR_ID_MAX || !cursor_time_ok(occurred_us) ||
        !eo_q_text_ok(message_id, id_len))
        return EO_EINVAL;
    uint8_t raw[CURSOR_HEAD + EO_Q_CURSOR_ID_MAX];
    raw[0] = CURSOR_VERSION;
    uint64_t t = (uint64_t)occurred_us;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)(t >> (56 - 8 * i));
    raw[9] = (uint8_t)(id_len >> 8);
    raw[10] = (uint8_t)id_len;
    memcpy(raw + CURSOR_HEAD, message_id, id_len);
    eo_b64url_encode(raw, CURSOR_HEAD + id_len, out);
    return 0;
}

int eo_q_cursor_decode(const char *s, size_t n, int64_t *occurred_us, char *id, size_t id_cap)
{
    uint8_t raw[CURSOR_HEAD + EO_Q_CURSOR_ID_MAX];
    if (n > EO_B64URL_LEN(sizeof raw))
        return EO_EINVAL;
    int len = eo_b64url_decode(s, n, raw, sizeof raw);
    if (len < CURSOR_HEAD + 1 || raw[0] != CURSOR_VERSION)
        return EO_EINVAL;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = (t << 8) | raw[1 + i];
    size_t id_len = (size_t)raw[9] << 8 | raw[10];
    int64_t us = (int64_t)t;
    if (id_len != (size_t)len - CURSOR_HEAD || id_len >= id_cap || !cursor_time_ok(us) ||
        !eo_q_text_ok((const char *)raw + CURSOR_HEAD, id_len))
        return EO_EINVAL;
    *occurred_us = us;
    memcpy(id, raw + CURSOR_HEAD, id_len);
    id[id_len] = '\0';
    return 0;
}
