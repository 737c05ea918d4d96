/* Compact JSON writer (see json_out.h). */
#include "domain/json_out.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/event.h"
#include "domain/rfc3339.h"

size_t eo_json_format_real(double d, char *out, size_t outlen)
{
    int n = 0;
    /* %.15g is exact for every decimal of up to 15 digits; 16 and 17 cover the rest */
    for (int precision = 15; precision <= 17; precision++) {
        n = snprintf(out, outlen, "%.*g", precision, d);
        if (n < 0 || (size_t)n >= outlen)
            return 0;
        if (strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".eE") && (size_t)n + 2 < outlen) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    return (size_t)n;
}

int eo_json_append(eo_buf_t *out, const json_t *v)
{
    int r;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if ((r = eo_buf_append_char(out, '{')) < 0)
            return r;
        const char *key;
        json_t *child;
        bool first = true;
        json_object_foreach((json_t *)v, key, child)
        {
            if (!first && (r = eo_buf_append_char(out, ',')) < 0)
                return r;
            first = false;
            if ((r = eo_buf_append_json_str(out, key, strlen(key))) < 0 ||
                (r = eo_buf_append_char(out, ':')) < 0 || (r = eo_json_append(out, child)) < 0)
                return r;
        }
        return eo_buf_append_char(out, '}');
    }
    case JSON_ARRAY: {
        if ((r = eo_buf_append_char(out, '[')) < 0)
            return r;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i && (r = eo_buf_append_char(out, ',')) < 0)
                return r;
            if ((r = eo_json_append(out, json_array_get(v, i))) < 0)
                return r;
        }
        return eo_buf_append_char(out, ']');
    }
    case JSON_STRING:
        return eo_buf_append_json_str(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return eo_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        if (!isfinite(d))
            return EO_EINVAL;
        char text[40];
        size_t n = eo_json_format_real(d, text, sizeof text);
        return n ? eo_buf_append(out, text, n) : EO_EINVAL;
    }
    case JSON_TRUE:
        return eo_buf_append(out, "true", 4);
    case JSON_FALSE:
        return eo_buf_append(out, "false", 5);
    default:
        return eo_buf_append(out, "null", 4);
    }
}

void eo_json_put_time(eo_buf_t *b, const char *key, int64_t us)
{
    if (us == EO_NO_TIME) {
        eo_buf_putf(b, "\"%s\":null", key);
        return;
    }
    char t[EO_RFC3339_MAX];
    eo_rfc3339_format(us, t);
    eo_buf_putf(b, "\"%s\":\"%s\"", key, t);
}
