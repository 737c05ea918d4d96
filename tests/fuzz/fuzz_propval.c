/* libFuzzer harness of src/domain/propval.h. The input is a property path (outside input: the
 * admin command's --path and the query role's {path}), a newline, and the properties of an
 * event as JSON text (what the processor reads from Kafka). Invariants checked (abort on
 * violation), beyond "no crash, no leak, no read past the input":
 *  - eo_proppath_parse accepts exactly 1..4 names of 1..64 [A-Za-z0-9_$-] joined by '.'
 *    (a reference written here again), and the names joined by '.' give the input back;
 *  - eo_propval_text answers 0 or 1 for a JSON object, 1 only with a non-empty text unless
 *    the value is the empty string, and the text of a non-string value is valid JSON that
 *    jansson reads back (integers as reals) to an equal value;
 *  - eo_propval_numeric of the whole input answers 0 or EO_EINVAL; its output is accepted by
 *    itself again and unchanged (numeric's text is a fixed point: no exponent, no '-0'). */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/propval.h"
#include "fuzz_check.h"

static bool name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c == '-';
}

static bool ref_path_ok(const uint8_t *s, size_t n)
{
    size_t names = 0, len = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!name_char(s[i]))
                return false;
            len++;
            continue;
        }
        if (len == 0 || len > 64 || ++names > 4)
            return false;
        len = 0;
    }
    return true;
}

/* Equal JSON values, numbers compared as doubles (jsonb's text of 1e20 is an integer text that
 * jansson may read as a real). */
static bool same(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return x == y || (fabs(x - y) <= 1e-12 * fabs(x));
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !same(v, w))
                return false;
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_string(a))
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    return true;
}

static void check_numeric(const uint8_t *data, size_t size)
{
    eo_buf_t a, b;
    eo_buf_init(&a, 1 << 16);
    eo_buf_init(&b, 1 << 16);
    int r = eo_propval_numeric((const char *)data, size, &a);
    CHECK(r == 0 || r == EO_EINVAL, "numeric: %d", r);
    if (r == 0) {
        CHECK(a.len > 0, "numeric: empty text");
        CHECK(eo_propval_numeric(a.data, a.len, &b) == 0, "numeric: its text refused");
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "numeric: not a fixed point");
        CHECK(!memchr(a.data, 'e', a.len) && !memchr(a.data, 'E', a.len), "numeric: exponent");
        CHECK(!(a.len >= 2 && a.data[0] == '-' && a.data[1] == '0' &&
                strspn(a.data + 1, "0.") == a.len - 1),
              "numeric: negative zero");
    }
    eo_buf_done(&a);
    eo_buf_done(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_numeric(data, size);
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : size;
    eo_proppath_t path;
    int r = eo_proppath_parse((const char *)data, plen, &path);
    CHECK((r == 0) == ref_path_ok(data, plen), "path: %d", r);
    if (r < 0 || !nl)
        return 0;
    char joined[EO_PROPPATH_MAX + 1] = "";
    size_t off = 0;
    for (size_t i = 0; i < path.n; i++)
        off +=
            (size_t)snprintf(joined + off, sizeof joined - off, "%s%s", i ? "." : "", path.name[i]);
    CHECK(off == plen && memcmp(joined, data, plen) == 0, "path: names do not give it back");
    json_error_t je;
    json_t *props = json_loadb((const char *)nl + 1, size - plen - 1, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(props)) {
        json_decref(props);
        return 0;
    }
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    r = eo_propval_text(props, &path, &out);
    CHECK(r == 0 || r == 1 || r == EO_EINVAL || r == EO_ELIMIT, "text: %d", r);
    if (r == 1) {
        /* the value itself, found again here by keys only (array steps are not re-checked) */
        const json_t *v = props;
        for (size_t i = 0; v && i < path.n; i++)
            v = json_is_object(v) ? json_object_get(v, path.name[i]) : NULL;
        if (v && !json_is_string(v)) {
            json_t *back =
                json_loadb(out.data, out.len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &je);
            CHECK(back != NULL, "text: not JSON: %.*s", (int)out.len, out.data);
            CHECK(same(v, back), "text: reads back to another value: %.*s", (int)out.len, out.data);
            json_decref(back);
        } else if (v) {
            CHECK(out.len == json_string_length(v), "text: string changed");
        }
    }
    eo_buf_done(&out);
    json_decref(props);
    return 0;
}
