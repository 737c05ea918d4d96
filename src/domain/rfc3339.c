/* RFC 3339 parsing and formatting (see rfc3339.h). Date arithmetic after H. Hinnant's
 * public-domain "days from civil" algorithm. */
#include "domain/rfc3339.h"

#include <stdio.h>
#include <string.h>

int64_t eo_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void eo_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n, size_t pos, size_t count, int *out)
{
    if (pos + count > n)
        return EO_EPARSE;
    int v = 0;
    for (size_t i = 0; i < count; i++) {
        char c = s[pos + i];
        if (c < '0' || c > '9')
            return EO_EPARSE;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

int eo_rfc3339_parse(const char *s, size_t n, int64_t *us)
{
    int year, mon, day, hour, min, sec;
    if (digits(s, n, 0, 4, &year) || n < 5 || s[4] != '-' || digits(s, n, 5, 2, &mon) || n < 8 ||
        s[7] != '-' || digits(s, n, 8, 2, &day) || n < 11 || (s[10] != 'T' && s[10] != 't') ||
        digits(s, n, 11, 2, &hour) || n < 14 || s[13] != ':' || digits(s, n, 14, 2, &min) ||
        n < 17 || s[16] != ':' || digits(s, n, 17, 2, &sec))
        return EO_EPARSE;
    size_t pos = 19;
    int64_t frac_us = 0;
    if (pos < n && s[pos] == '.') {
        pos++;
        size_t start = pos, scale = 100000;
        while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
            frac_us += (s[pos] - '0') * (int64_t)scale;
            scale /= 10;
            pos++;
        }
        if (pos == start || pos - start > 18)
            return EO_EPARSE;
    }
    if (pos >= n)
        return EO_EPARSE;
    int offset_s = 0;
    if (s[pos] == 'Z' || s[pos] == 'z') {
        pos++;
    } else if (s[pos] == '+' || s[pos] == '-') {
        int oh, om;
        if (digits(s, n, pos + 1, 2, &oh) || pos + 3 >= n || s[pos + 3] != ':' ||
            digits(s, n, pos + 4, 2, &om))
            return EO_EPARSE;
        if (oh > 23 || om > 59)
            return EO_EINVAL;
        offset_s = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
        pos += 6;
    } else {
        return EO_EPARSE;
    }
    if (pos != n)
        return EO_EPARSE;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
        sec > 60)
        return EO_EINVAL;
    int64_t days = eo_days_from_civil(year, (unsigned)mon, (unsigned)day);
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - offset_s;
    /* an offset or a leap second may carry the instant out of 0000..9999, which
     * eo_rfc3339_format could not write back in this form */
    if (secs < EO_RFC3339_MIN_S || secs > EO_RFC3339_MAX_S)
        return EO_EINVAL;
    *us = secs * 1000000 + frac_us;
    return 0;
}

/* Writes v (>= 0) as exactly n decimal digits, zero-padded. */
static void put_digits(char *out, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t eo_rfc3339_format(int64_t us, char out[EO_RFC3339_MAX])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    eo_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) { /* outside the documented range: printf says it as it is */
        int len = snprintf(out, EO_RFC3339_MAX, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ",
                           (long long)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60),
                           (int)(rem % 60), (long long)frac);
        return len < 0 ? 0 : (size_t)len;
    }
    /* by hand: this runs once per ingested event (receivedAt) */
    put_digits(out, y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, rem / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, rem / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, rem % 60, 2);
    out[19] = '.';
    put_digits(out + 20, frac, 6);
    out[26] = 'Z';
    out[27] = '\0';
    return 27;
}

size_t eo_rfc3339_format_local(int64_t us, int64_t offset_s, char out[EO_RFC3339_MAX])
{
    int64_t local = us + offset_s * 1000000;
    if (local < EO_RFC3339_MIN_S * 1000000 || local > EO_RFC3339_MAX_S * 1000000 + 999999)
        return eo_rfc3339_format(us, out);
    char wall[EO_RFC3339_MAX];
    eo_rfc3339_format(local, wall); /* "YYYY-MM-DDTHH:MM:SS.ffffffZ", 27 characters */
    int keep = memcmp(wall + 19, ".000000", 7) == 0 ? 19 : 26;
    int64_t a = offset_s < 0 ? -offset_s : offset_s;
    int len = snprintf(out, EO_RFC3339_MAX, "%.*s%c%02d:%02d", keep, wall, offset_s < 0 ? '-' : '+',
                       (int)(a / 3600), (int)(a / 60 % 60));
    return len < 0 ? 0 : (size_t)len;
}
