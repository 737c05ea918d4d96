/* Unit tests of src/domain/batch.h: the accepted body shapes (array, {"events"}, {"batch"},
 * single object) and every way a body is refused, with the error code, field and status. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/batch.h"

#define EV "{'eventType':'e','userId':'u'}"

/* The limits of these tests: default ones, except 3 events per batch. */
static eo_event_limits_t test_limits(void)
{
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    lim.max_batch_events = 3;
    return lim;
}

/* Copies text to the heap with ' turned into " (tests pass exact lengths: no NUL needed). */
static char *body_of(const char *text, size_t *len)
{
    *len = strlen(text);
    char *s = malloc(*len + 1);
    assert_non_null(s);
    for (size_t i = 0; i <= *len; i++)
        s[i] = text[i] == '\'' ? '"' : text[i];
    return s;
}

typedef struct {
    const char *body;
    bool single;
    int want; /* 0 or EO_E* */
    const char *code;
    const char *field;
    size_t count; /* when accepted */
} row_t;

static const row_t rows[] = {
    /* accepted shapes */
    {"[" EV "]", false, 0, NULL, NULL, 1},
    {"[" EV "," EV "," EV "]", false, 0, NULL, NULL, 3},
    {"{'events':[" EV "," EV "]}", false, 0, NULL, NULL, 2},
    {"{'batch':[" EV "]}", false, 0, NULL, NULL, 1},
    {"{'batch':[" EV "],'context':{'library':'x'},'sentAt':'2024-01-01T00:00:00Z'}", false, 0, NULL,
     NULL, 1},
    {"{'events':[" EV "," EV "],'batch':[" EV "]}", false, 0, NULL, NULL, 2}, /* events wins */
    {" \n\t[" EV "]\r\n ", false, 0, NULL, NULL, 1},
    {"[{'eventType':'\u65e5\u672c\u8a9e \\ud83d\\ude00','userId':'u'}]", false, 0, NULL, NULL, 1},
    {"[1,'x',null]", false, 0, NULL, NULL, 3}, /* items are validated one by one later */
    {EV, true, 0, NULL, NULL, 1},
    {"{}", true, 0, NULL, NULL, 1},
    {"{'events':[" EV "]}", true, 0, NULL, NULL, 1}, /* single: the object is the event */

    /* shape errors */
    {"[" EV "]", true, EO_EINVAL, "invalid_type", "", 0},
    {EV, false, EO_EINVAL, "missing_field", "events", 0},
    {"{}", false, EO_EINVAL, "missing_field", "events", 0},
    {"{'events':{}}", false, EO_EINVAL, "invalid_type", "events", 0},
    {"{'events':" EV "}", false, EO_EINVAL, "invalid_type", "events", 0},
    {"{'events':null}", false, EO_EINVAL, "invalid_type", "events", 0},
    {"{'events':'[]'}", false, EO_EINVAL, "invalid_type", "events", 0},
    {"{'batch':7}", false, EO_EINVAL, "invalid_type", "batch", 0},
    {"[]", false, EO_EINVAL, "empty_batch", "events", 0},
    {"{'events':[]}", false, EO_EINVAL, "empty_batch", "events", 0},
    {"{'batch':[]}", false, EO_EINVAL, "empty_batch", "events", 0},
    {"[" EV "," EV "," EV "," EV "]", false, EO_ELIMIT, "too_many_events", "events", 0},
    {"{'batch':[1,2,3,4,5]}", false, EO_ELIMIT, "too_many_events", "events", 0},

    /* not JSON, or not strict JSON */
    {"", false, EO_EPARSE, "empty_body", "", 0},
    {"", true, EO_EPARSE, "empty_body", "", 0},
    {"   ", false, EO_EPARSE, "invalid_json", "", 0},
    {"42 43", false, EO_EPARSE, "invalid_json", "", 0},
    {"[" EV, false, EO_EPARSE, "invalid_json", "", 0},
    {"[" EV ",]", false, EO_EPARSE, "invalid_json", "", 0},
    {"{'events':[" EV "],}", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':'u','userId':'v'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"{'events':[],'events':[" EV "]}", false, EO_EPARSE, "invalid_json", "", 0},
    {"{'eventType':'e','eventType':'e','userId':'u'}", true, EO_EPARSE, "invalid_json", "", 0},
    {"[" EV "] x", false, EO_EPARSE, "invalid_json", "", 0},
    {"[" EV "][" EV "]", false, EO_EPARSE, "invalid_json", "", 0},
    {EV EV, true, EO_EPARSE, "invalid_json", "", 0},
    /* JSON, but a scalar at the top */
    {"'events'", false, EO_EINVAL, "invalid_type", "", 0},
    {"'events'", true, EO_EINVAL, "invalid_type", "", 0},
    {"42", false, EO_EINVAL, "invalid_type", "", 0},
    {"true", true, EO_EINVAL, "invalid_type", "", 0},
    {"null", false, EO_EINVAL, "invalid_type", "", 0},
    {"[{'eventType':'e',userId:'u'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':NaN}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':01}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':'u\\x'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':'u\\u0000'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':'a\tb'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':'\\ud800'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'e','userId':99999999999999999999}]", false, EO_EPARSE, "invalid_json", "", 0},
    /* invalid UTF-8: a stray continuation byte, 0xff, an overlong '/', an encoded surrogate,
     * a truncated sequence */
    {"[{'eventType':'\x80','userId':'u'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'\xff','userId':'u'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'\xc0\xaf','userId':'u'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'\xed\xa0\x80','userId':'u'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"[{'eventType':'\xe2\x82','userId':'u'}]", false, EO_EPARSE, "invalid_json", "", 0},
    {"{'\xf8\x88\x80\x80\x80':1}", true, EO_EPARSE, "invalid_json", "", 0},
};

static void test_rows(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *row = &rows[i];
        size_t len;
        char *body = body_of(row->body, &len);
        eo_batch_t batch;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int r = eo_batch_parse(body, len, row->single, &lim, &batch, &err);
        if (r != row->want)
            fail_msg("row %zu %s (single=%d): r=%d (%s: %s), want %d", i, row->body, row->single, r,
                     err.code, err.message, row->want);
        if (r == 0) {
            assert_non_null(batch.root);
            assert_non_null(batch.items);
            assert_int_equal(batch.count, row->count);
            assert_int_equal(batch.single, row->single);
            for (size_t k = 0; k < batch.count; k++)
                assert_non_null(eo_batch_item(&batch, k));
            if (row->single)
                assert_ptr_equal(eo_batch_item(&batch, 0), batch.root);
            else
                assert_null(eo_batch_item(&batch, batch.count));
        } else {
            if (strcmp(err.code, row->code) != 0 || strcmp(err.field, row->field) != 0)
                fail_msg("row %zu %s: code '%s' field '%s', want '%s' '%s'", i, row->body, err.code,
                         err.field, row->code, row->field);
            assert_true(err.message[0] != '\0');
            assert_null(batch.root); /* nothing to release after a failure */
            assert_int_equal(batch.count, 0);
        }
        eo_batch_done(&batch);
        eo_batch_done(&batch); /* idempotent */
        free(body);
    }
    eo_batch_done(NULL);
}

static void test_items_in_order(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    size_t len;
    char *body = body_of("{'events':[{'n':0},{'n':1},{'n':2}]}", &len);
    eo_batch_t batch;
    eo_event_error_t err;
    assert_int_equal(eo_batch_parse(body, len, false, &lim, &batch, &err), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(eo_batch_item(&batch, i), "n")), i);
    eo_batch_done(&batch);
    free(body);
}

/* A NUL byte anywhere is refused, even inside a string or after the JSON. */
static void test_nul_byte(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    static const char with_nul[][12] = {"[{}]\0", "[{\"a\":\"\0\"}]", "\0[{}]"};
    static const size_t lens[] = {5, 11, 5};
    for (size_t i = 0; i < 3; i++) {
        for (int single = 0; single <= 1; single++) {
            eo_batch_t batch;
            eo_event_error_t err;
            int r = eo_batch_parse(with_nul[i], lens[i], single, &lim, &batch, &err);
            assert_int_equal(r, EO_EPARSE);
            assert_string_equal(err.code, "invalid_json");
            assert_non_null(strstr(err.message, "NUL"));
            eo_batch_done(&batch);
        }
    }
}

/* The body is len bytes, not a C string: bytes past len are never read. */
static void test_length_bounded(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    const char text[] = "[{\"eventType\":\"e\",\"userId\":\"u\"}]trailing garbage";
    eo_batch_t batch;
    eo_event_error_t err;
    assert_int_equal(eo_batch_parse(text, 32, false, &lim, &batch, &err), 0);
    assert_int_equal(batch.count, 1);
    eo_batch_done(&batch);
    assert_int_equal(eo_batch_parse(text, 33, false, &lim, &batch, &err), EO_EPARSE);
    assert_int_equal(eo_batch_parse(text, 31, false, &lim, &batch, &err), EO_EPARSE);

    /* exactly len bytes on the heap, so ASan catches any read past the end */
    char *exact = malloc(32);
    assert_non_null(exact);
    memcpy(exact, text, 32);
    assert_int_equal(eo_batch_parse(exact, 32, false, &lim, &batch, &err), 0);
    eo_batch_done(&batch);
    assert_int_equal(eo_batch_parse(exact, 20, false, &lim, &batch, &err), EO_EPARSE);
    free(exact);
}

/* The message of a syntax error says where it is. */
static void test_error_position(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    static const struct {
        const char *body;
        const char *where;
    } cases[] = {
        {"[{'eventType':'e',}]", "line 1 column"},
        {"[\n  {'eventType':'e'},\n  {'eventType' 'e'}\n]", "line 3 column"},
        {"{'events':[]} !", "line 1 column"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *body = body_of(cases[i].body, &len);
        eo_batch_t batch;
        eo_event_error_t err;
        assert_int_equal(eo_batch_parse(body, len, false, &lim, &batch, &err), EO_EPARSE);
        if (!strstr(err.message, cases[i].where))
            fail_msg("%s: message '%s' does not say '%s'", cases[i].body, err.message,
                     cases[i].where);
        eo_batch_done(&batch);
        free(body);
    }
}

/* Default limits: 1000 events accepted, 1001 refused with EO_ELIMIT. */
static void test_default_batch_limit(void **state)
{
    (void)state;
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    assert_int_equal(lim.max_batch_events, 1000);
    for (size_t n = 999; n <= 1001; n++) {
        char *body = malloc(n * 3 + 16);
        assert_non_null(body);
        size_t len = 0;
        body[len++] = '[';
        for (size_t i = 0; i < n; i++) {
            if (i)
                body[len++] = ',';
            body[len++] = '{';
            body[len++] = '}';
        }
        body[len++] = ']';
        eo_batch_t batch;
        eo_event_error_t err;
        int r = eo_batch_parse(body, len, false, &lim, &batch, &err);
        if (n <= 1000) {
            assert_int_equal(r, 0);
            assert_int_equal(batch.count, n);
        } else {
            assert_int_equal(r, EO_ELIMIT);
            assert_string_equal(err.code, "too_many_events");
            assert_non_null(strstr(err.message, "1001"));
        }
        eo_batch_done(&batch);
        free(body);
    }
}

/* Very deep nesting fails cleanly (no stack overflow, no leak), in both modes. */
static void test_deep_nesting(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    const size_t depth = 10000;
    char *body = malloc(6 * depth + 64);
    assert_non_null(body);
    static const struct {
        char open, close;
        const char *prefix;
    } shapes[] = {{'[', ']', ""}, {'[', ']', "{\"events\":"}, {'{', '}', ""}};
    for (size_t s = 0; s < 3; s++) {
        for (int balanced = 0; balanced <= 1; balanced++) {
            size_t len = 0;
            memcpy(body, shapes[s].prefix, strlen(shapes[s].prefix));
            len += strlen(shapes[s].prefix);
            for (size_t i = 0; i < depth; i++) {
                if (shapes[s].open == '{' && i > 0) {
                    memcpy(body + len, "\"a\":{", 5);
                    len += 5;
                } else {
                    body[len++] = shapes[s].open;
                }
            }
            for (size_t i = 0; balanced && i < depth; i++)
                body[len++] = shapes[s].close;
            for (int single = 0; single <= 1; single++) {
                eo_batch_t batch;
                eo_event_error_t err;
                int r = eo_batch_parse(body, len, single, &lim, &batch, &err);
                assert_int_equal(r, EO_EPARSE);
                assert_string_equal(err.code, "invalid_json");
                assert_null(batch.root);
                eo_batch_done(&batch);
            }
        }
    }
    free(body);
}

/* The path the collector takes: parse, then normalise and encode each item on its own. */
static void test_items_normalize_and_encode(void **state)
{
    (void)state;
    const eo_event_limits_t lim = test_limits();
    size_t len;
    char *body = body_of("{'batch':[{'event':'a','userId':1},{'name':'b','anonymousId':'x'},"
                         "{'eventType':'c'}]}",
                         &len);
    eo_batch_t batch;
    eo_event_error_t err;
    assert_int_equal(eo_batch_parse(body, len, false, &lim, &batch, &err), 0);
    assert_int_equal(batch.count, 3);
    eo_buf_t out;
    eo_buf_init(&out, 4096);
    int accepted = 0;
    for (size_t i = 0; i < batch.count; i++) {
        eo_event_t ev;
        if (eo_event_normalize(eo_batch_item(&batch, i), &lim, 0, 0, &ev, &err) < 0) {
            assert_int_equal(i, 2);
            assert_string_equal(err.code, "missing_field");
            assert_string_equal(err.field, "userId");
            continue;
        }
        accepted++;
        assert_int_equal(eo_event_encode(&ev, (eo_str_t){"m", 1}, &out), 0);
    }
    assert_int_equal(accepted, 2);
    assert_non_null(strstr(out.data, "\"eventType\":\"a\",\"userId\":\"1\""));
    assert_non_null(strstr(out.data, "\"eventType\":\"b\",\"userId\":null,\"anonymousId\":\"x\""));
    eo_buf_done(&out);
    eo_batch_done(&batch);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),           cmocka_unit_test(test_items_in_order),
        cmocka_unit_test(test_nul_byte),       cmocka_unit_test(test_length_bounded),
        cmocka_unit_test(test_error_position), cmocka_unit_test(test_default_batch_limit),
        cmocka_unit_test(test_deep_nesting),   cmocka_unit_test(test_items_normalize_and_encode),
    };
    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
