/* Property values as breakdown text (see propval.h). */
#include "domain/propval.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "domain/json_out.h"

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c == '-';
}

int eo_proppath_parse(const char *s, size_t n, eo_proppath_t *out)
{
    memset(out, 0, sizeof *out);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!name_char(s[i]))
                return EO_EINVAL;
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > EO_PROPPATH_MAX_NAME || out->n == EO_PROPPATH_MAX_NAMES)
            return EO_EINVAL;
        memcpy(out->name[out->n], s + start, len);
        out->name[out->n][len] = '\0';
        out->n++;
        start = i + 1;
    }
    return 0;
}

/* ---- numbers: numeric_in + numeric_out ---- */

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

int eo_propval_numeric(const char *s, size_t n, eo_buf_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && s[i] == '-')
        neg = true, i++;
    size_t int_at = i;
    while (i < n && digit(s[i]))
        i++;
    size_t int_len = i - int_at;
    if (int_len == 0)
        return EO_EINVAL;
    size_t frac_at = i, frac_len = 0;
    if (i < n && s[i] == '.') {
        frac_at = ++i;
        while (i < n && digit(s[i]))
            i++;
        frac_len = i - frac_at;
        if (frac_len == 0)
            return EO_EINVAL;
    }
    long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i == n || !digit(s[i]))
            return EO_EINVAL;
        while (i < n && digit(s[i])) {
            exp = exp * 10 + (s[i++] - '0');
            if (exp > 1000)
                return EO_EINVAL;
        }
        exp = eneg ? -exp : exp;
    }
    if (i != n)
        return EO_EINVAL;
    /* the digits d[0..nd) with the decimal point after position point (may be <0 or >nd) */
    size_t nd = int_len + frac_len;
    long point = (long)int_len + exp;
    long dscale = (long)frac_len - exp;
    if (dscale < 0)
        dscale = 0;
#define DIGIT_AT(k) ((k) < int_len ? s[int_at + (k)] : s[frac_at + (k)-int_len])
    /* digit at position p (0: the first digit left of the point is at point - 1) */
    bool zero = true;
    for (size_t k = 0; k < nd; k++)
        if (DIGIT_AT(k) != '0')
            zero = false;
    int r = 0;
    if (neg && !zero)
        r = eo_buf_append_char(out, '-');
    /* the integer part: digits at indices [0, point), without leading zeros */
    bool started = false;
    for (long k = 0; r == 0 && k < point; k++) {
        char c = k < (long)nd ? DIGIT_AT((size_t)k) : '0';
        if (!started && c == '0')
            continue;
        started = true;
        r = eo_buf_append_char(out, c);
    }
    if (r == 0 && !started)
        r = eo_buf_append_char(out, '0');
    if (r == 0 && dscale > 0)
        r = eo_buf_append_char(out, '.');
    for (long k = 0; r == 0 && k < dscale; k++) {
        long at = point + k;
        char c = at >= 0 && at < (long)nd ? DIGIT_AT((size_t)at) : '0';
        r = eo_buf_append_char(out, c);
    }
#undef DIGIT_AT
    return r;
}

/* ---- jsonb's text ---- */

/* A string as PostgreSQL's escape_json writes it. */
static int jsonb_string(const char *s, size_t n, eo_buf_t *out)
{
    int r = eo_buf_append_char(out, '"');
    for (size_t i = 0; r == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '\b'   ? "\\b"
                          : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '"'  ? "\\\""
                          : c == '\\' ? "\\\\"
                                      : NULL;
        if (esc)
            r = eo_buf_append_str(out, esc);
        else if (c < 0x20)
            r = eo_buf_printf(out, "\\u%04x", (unsigned)c);
        else
            r = eo_buf_append_char(out, (char)c);
    }
    return r ? r : eo_buf_append_char(out, '"');
}

static int number_text(const json_t *v, eo_buf_t *out)
{
    char text[48];
    size_t n;
    if (json_is_integer(v)) {
        n = eo_fmt_i64(text, (int64_t)json_integer_value(v));
    } else {
        double d = json_real_value(v);
        if (!isfinite(d))
            return EO_EINVAL;
        n = eo_json_format_real(d, text, sizeof text);
        if (!n)
            return EO_EINVAL;
    }
    return eo_propval_numeric(text, n, out);
}

typedef struct {
    const char *key;
    size_t len;
    const json_t *value;
} member_t;

static int cmp_member(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->key, y->key, x->len);
}

int eo_propval_jsonb(const json_t *v, eo_buf_t *out)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        member_t *m = calloc(n ? n : 1, sizeof *m);
        if (!m)
            return EO_ENOMEM;
        size_t k = 0;
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            if (k < n)
                m[k++] = (member_t){key, strlen(key), child};
        }
        qsort(m, k, sizeof *m, cmp_member);
        int r = eo_buf_append_char(out, '{');
        for (size_t i = 0; r == 0 && i < k; i++) {
            if (i)
                r = eo_buf_append(out, ", ", 2);
            r = r ? r : jsonb_string(m[i].key, m[i].len, out);
            r = r ? r : eo_buf_append(out, ": ", 2);
            r = r ? r : eo_propval_jsonb(m[i].value, out);
        }
        free(m);
        return r ? r : eo_buf_append_char(out, '}');
    }
    case JSON_ARRAY: {
        int r = eo_buf_append_char(out, '[');
        for (size_t i = 0; r == 0 && i < json_array_size(v); i++) {
            if (i)
                r = eo_buf_append(out, ", ", 2);
            r = r ? r : eo_propval_jsonb(json_array_get(v, i), out);
        }
        return r ? r : eo_buf_append_char(out, ']');
    }
    case JSON_STRING:
        return jsonb_string(json_string_value(v), json_string_length(v), out);
    case JSON_INTEGER:
    case JSON_REAL:
        return number_text(v, out);
    case JSON_TRUE:
        return eo_buf_append(out, "true", 4);
    case JSON_FALSE:
        return eo_buf_append(out, "false", 5);
    default:
        return eo_buf_append(out, "null", 4);
    }
}

/* ---- the path ---- */

/* An array element as `#>` finds it: name is a decimal integer (strtol's form, as PostgreSQL's
 * strtoint reads it), negative counting from the end; NULL when it is not one or out of range. */
static const json_t *array_step(const json_t *a, const char *name)
{
    char *end;
    errno = 0;
    long idx = strtol(name, &end, 10);
    if (end == name || *end != '\0' || errno != 0 || idx > INT_MAX || idx < INT_MIN)
        return NULL;
    size_t size = json_array_size(a);
    if (idx < 0) {
        if ((size_t)(-(long long)idx) > size)
            return NULL;
        return json_array_get(a, size - (size_t)(-(long long)idx));
    }
    return json_array_get(a, (size_t)idx);
}

int eo_propval_text(const json_t *props, const eo_proppath_t *path, eo_buf_t *out)
{
    const json_t *v = props;
    for (size_t i = 0; v && i < path->n; i++) {
        if (json_is_object(v))
            v = json_object_get(v, path->name[i]);
        else if (json_is_array(v))
            v = array_step(v, path->name[i]);
        else
            v = NULL;
    }
    if (!v || json_is_null(v))
        return 0;
    int r;
    if (json_is_string(v))
        r = eo_buf_append(out, json_string_value(v), json_string_length(v));
    else
        r = eo_propval_jsonb(v, out);
    return r < 0 ? r : 1;
}
