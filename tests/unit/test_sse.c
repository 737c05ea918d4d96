/* Unit tests of src/domain/sse.h: the event id text of a position (a passing and a failing row
 * for every rule of the grammar, round trips, the longest id, caps to the byte), the position
 * helpers (get, passed, fit), which partitions a buffer cannot serve a resume from, record
 * keys, and the framing of events (line breaks of every kind) and comments. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "domain/sse.h"

typedef struct {
    const char *text;
    int ok;
} row_t;

static const row_t parse_rows[] = {
    {"w0-s0", 1},
    {"w12.0.7-s3.4", 1},
    {"w9223372036854775807-s0", 1}, /* INT64_MAX */
    {"w9223372036854775808-s0", 0}, /* one past */
    {"w99999999999999999999-s0", 0},
    {"w1234567890123456789-s1", 1}, /* 19 digits */
    {"w0.1-s2", 1},
    {"", 0},
    {"w", 0},
    {"w-s0", 0},     /* no offset */
    {"w0-s", 0},     /* no offset */
    {"w0", 0},       /* no summaries */
    {"s0-w0", 0},    /* order */
    {"w0-s0-", 0},   /* trailing */
    {"w0-s0.", 0},   /* empty offset */
    {"w0..1-s0", 0}, /* empty offset */
    {"w.0-s0", 0},
    {"w01-s0", 0}, /* leading zero */
    {"w00-s0", 0},
    {"W0-S0", 0},  /* case */
    {"w-1-s0", 0}, /* sign */
    {"w+1-s0", 0},
    {"w 1-s0", 0},
    {"w1 -s0", 0},
    {"w1-s0\n", 0},
    {"w1,2-s0", 0},
    {"w1x-s0", 0},
    {"w0-s0-w0", 0},
    {"w0-x0", 0},
};

static void test_parse_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_rows / sizeof parse_rows[0]; i++) {
        const row_t *r = &parse_rows[i];
        eo_sse_pos_t p;
        memset(&p, 0x5a, sizeof p);
        int rc = eo_sse_pos_parse(r->text, strlen(r->text), &p);
        if (r->ok && rc != 0)
            fail_msg("row %zu '%s' refused: %d", i, r->text, rc);
        if (!r->ok && rc != EO_EPARSE)
            fail_msg("row %zu '%s': %d, want EO_EPARSE", i, r->text, rc);
        if (!r->ok) {
            assert_int_equal(p.n[0], 0x5a5a); /* untouched on a refusal */
            continue;
        }
        char back[EO_SSE_ID_MAX];
        int n = eo_sse_pos_format(&p, back, sizeof back);
        assert_int_equal(n, (int)strlen(r->text));
        assert_string_equal(back, r->text); /* one text per position */
    }
}

static void test_parse_values(void **state)
{
    (void)state;
    eo_sse_pos_t p;
    assert_int_equal(eo_sse_pos_parse("w12.0.7-s3.4", 12, &p), 0);
    assert_int_equal(p.n[EO_SSE_WINDOWS], 3);
    assert_int_equal(p.n[EO_SSE_SUMMARIES], 2);
    assert_int_equal(p.next[EO_SSE_WINDOWS][0], 12);
    assert_int_equal(p.next[EO_SSE_WINDOWS][2], 7);
    assert_int_equal(p.next[EO_SSE_SUMMARIES][1], 4);
    /* the length given counts, not a NUL */
    assert_int_equal(eo_sse_pos_parse("w1-s2junk", 5, &p), 0);
    assert_int_equal(p.next[EO_SSE_SUMMARIES][0], 2);
}

/* The longest id: every partition of both topics at INT64_MAX. */
static void test_longest(void **state)
{
    (void)state;
    static eo_sse_pos_t p, q;
    eo_sse_pos_init(&p, EO_SSE_MAX_PARTITIONS, EO_SSE_MAX_PARTITIONS);
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        for (int i = 0; i < EO_SSE_MAX_PARTITIONS; i++)
            p.next[t][i] = INT64_MAX;
    static char text[EO_SSE_ID_MAX + 8];
    int n = eo_sse_pos_format(&p, text, EO_SSE_ID_MAX);
    assert_true(n > 0);
    assert_int_equal((size_t)n, EO_SSE_ID_MAX - 1); /* exactly the bound */
    assert_int_equal(eo_sse_pos_parse(text, (size_t)n, &q), 0);
    assert_memory_equal(&p, &q, sizeof p);
    /* one byte less does not fit, and says so */
    assert_int_equal(eo_sse_pos_format(&p, text, EO_SSE_ID_MAX - 1), EO_ELIMIT);
    assert_string_equal(text, "");
    /* EO_SSE_MAX_PARTITIONS offsets pass, one more is refused */
    for (int extra = 0; extra <= 1; extra++) {
        static char ids[EO_SSE_MAX_PARTITIONS * 2 + 16];
        size_t len = 0;
        ids[len++] = 'w';
        ids[len++] = '0';
        for (int i = 1; i < EO_SSE_MAX_PARTITIONS + extra; i++) {
            ids[len++] = '.';
            ids[len++] = '0';
        }
        memcpy(ids + len, "-s0", 3);
        len += 3;
        int r = eo_sse_pos_parse(ids, len, &q);
        assert_int_equal(r, extra ? EO_EPARSE : 0);
        if (!extra)
            assert_int_equal(q.n[EO_SSE_WINDOWS], EO_SSE_MAX_PARTITIONS);
    }
}

static void test_format_caps(void **state)
{
    (void)state;
    eo_sse_pos_t p;
    eo_sse_pos_init(&p, 2, 1);
    p.next[0][0] = 10;
    p.next[0][1] = 5;
    p.next[1][0] = 0;
    char out[32];
    memset(out, 'X', sizeof out);
    assert_int_equal(eo_sse_pos_format(&p, out, sizeof out), 8);
    assert_string_equal(out, "w10.5-s0");
    for (size_t cap = 0; cap < 9; cap++) { /* "w10.5-s0" and its NUL need 9 */
        memset(out, 'X', sizeof out);
        assert_int_equal(eo_sse_pos_format(&p, out, cap), EO_ELIMIT);
        assert_int_equal(out[0], cap ? '\0' : 'X');
        assert_int_equal(out[cap], 'X'); /* nothing written at or past cap */
    }
    assert_int_equal(eo_sse_pos_format(&p, out, 9), 8);
    /* no partitions, a negative offset */
    eo_sse_pos_t empty;
    eo_sse_pos_init(&empty, 0, 1);
    assert_int_equal(eo_sse_pos_format(&empty, out, sizeof out), EO_EINVAL);
    p.next[0][1] = -1;
    assert_int_equal(eo_sse_pos_format(&p, out, sizeof out), EO_EINVAL);
}

static void test_helpers(void **state)
{
    (void)state;
    eo_sse_pos_t p;
    eo_sse_pos_init(&p, 2, 1);
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 1), 0);
    eo_sse_pos_passed(&p, EO_SSE_WINDOWS, 1, 41);
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 1), 42);
    eo_sse_pos_passed(&p, EO_SSE_WINDOWS, 1, 7); /* never back */
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 1), 42);
    eo_sse_pos_passed(&p, EO_SSE_WINDOWS, 2, 7); /* not a partition of p: ignored */
    eo_sse_pos_passed(&p, EO_SSE_WINDOWS, -1, 7);
    eo_sse_pos_passed(&p, EO_SSE_SUMMARIES, 0, INT64_MAX); /* no overflow */
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_SUMMARIES, 0), 0);
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 2), 0);
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, -3), 0);
    /* fit: partitions added at 0, extra ones dropped */
    eo_sse_pos_fit(&p, 3, 0);
    assert_int_equal(p.n[EO_SSE_WINDOWS], 3);
    assert_int_equal(p.n[EO_SSE_SUMMARIES], 0);
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 1), 42);
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 2), 0);
    eo_sse_pos_fit(&p, 1, 1);
    assert_int_equal(p.n[EO_SSE_WINDOWS], 1);
    eo_sse_pos_fit(&p, 2, 1); /* a dropped partition comes back at 0, not at its old value */
    assert_int_equal(eo_sse_pos_get(&p, EO_SSE_WINDOWS, 1), 0);
    eo_sse_pos_fit(&p, 9999, 1);
    assert_int_equal(p.n[EO_SSE_WINDOWS], EO_SSE_MAX_PARTITIONS);
}

static void test_outside(void **state)
{
    (void)state;
    eo_sse_pos_t base, head, v;
    eo_sse_pos_init(&base, 2, 1);
    eo_sse_pos_init(&head, 2, 1);
    base.next[0][0] = 10, head.next[0][0] = 20;
    base.next[0][1] = 5, head.next[0][1] = 5;
    base.next[1][0] = 0, head.next[1][0] = 3;
    bool out[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS];
    eo_sse_pos_init(&v, 2, 1);
    v.next[0][0] = 10, v.next[0][1] = 5, v.next[1][0] = 3; /* both ends are inside */
    assert_int_equal(eo_sse_pos_outside(&v, &base, &head, out), 0);
    assert_false(out[0][0] || out[0][1] || out[1][0]);
    v.next[0][0] = 9; /* behind */
    v.next[1][0] = 4; /* ahead */
    assert_int_equal(eo_sse_pos_outside(&v, &base, &head, out), 2);
    assert_true(out[0][0] && !out[0][1] && out[1][0]);
    assert_int_equal(eo_sse_pos_outside(&v, &base, NULL, out), 1); /* behind only */
    assert_true(out[0][0] && !out[1][0]);
    assert_int_equal(eo_sse_pos_outside(&v, &base, &head, NULL), 2);
    /* a position listing fewer partitions: the missing ones count as 0 */
    eo_sse_pos_init(&v, 1, 1);
    v.next[0][0] = 15;
    v.next[1][0] = 1;
    assert_int_equal(eo_sse_pos_outside(&v, &base, &head, out), 1);
    assert_true(!out[0][0] && out[0][1] && !out[1][0]);
    /* and more: the extra ones are ignored */
    eo_sse_pos_init(&v, 5, 1);
    v.next[0][0] = 15, v.next[0][1] = 5, v.next[0][4] = 999;
    assert_int_equal(eo_sse_pos_outside(&v, &base, &head, out), 0);
}

static void test_keys(void **state)
{
    (void)state;
    const char *good = "c4613b65-8e21-4687-9bb9-eaf81f1250db:01a23733-2899-7174-8ae6-857439301d60";
    char tenant[37], rule[37];
    assert_int_equal(eo_sse_key_parse(good, strlen(good), tenant, rule), 0);
    assert_string_equal(tenant, "c4613b65-8e21-4687-9bb9-eaf81f1250db");
    assert_string_equal(rule, "01a23733-2899-7174-8ae6-857439301d60");
    static const char *const bad[] = {
        "C4613B65-8E21-4687-9BB9-EAF81F1250DB:01a23733-2899-7174-8ae6-857439301d60", /* case */
        "c4613b65-8e21-4687-9bb9-eaf81f1250db;01a23733-2899-7174-8ae6-857439301d60",
        "c4613b65-8e21-4687-9bb9-eaf81f1250db:01a23733-2899-7174-8ae6-857439301d6",
        "c4613b65-8e21-4687-9bb9-eaf81f1250db:01a23733-2899-7174-8ae6-857439301d600",
        "c4613b65-8e21-4687-9bb9-eaf81f1250db:01a23733x2899-7174-8ae6-857439301d60",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (eo_sse_key_parse(bad[i], strlen(bad[i]), tenant, rule) != EO_EPARSE)
            fail_msg("key %zu accepted", i);
    assert_int_equal(eo_sse_key_parse(NULL, 73, tenant, rule), EO_EPARSE);
    assert_int_equal(eo_sse_key_parse(good, strlen(good) - 1, tenant, rule), EO_EPARSE);
}

typedef struct {
    const char *data;
    const char *framed;
} frame_row_t;

static const frame_row_t frames[] = {
    {"{\"a\":1}", "event: window\nid: w1-s2\ndata: {\"a\":1}\n\n"},
    {"", "event: window\nid: w1-s2\ndata: \n\n"},
    {"a\nb", "event: window\nid: w1-s2\ndata: a\ndata: b\n\n"},
    {"a\rb", "event: window\nid: w1-s2\ndata: a\ndata: b\n\n"},
    {"a\r\nb", "event: window\nid: w1-s2\ndata: a\ndata: b\n\n"},
    {"a\n\rb", "event: window\nid: w1-s2\ndata: a\ndata: \ndata: b\n\n"},
    {"a\n", "event: window\nid: w1-s2\ndata: a\ndata: \n\n"},
    {"\n", "event: window\nid: w1-s2\ndata: \ndata: \n\n"},
    {" x", "event: window\nid: w1-s2\ndata:  x\n\n"}, /* the client strips one space only */
};

static void test_framing(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        eo_buf_t b;
        eo_buf_init(&b, 1024);
        eo_sse_put_event(&b, "window", "w1-s2", frames[i].data, strlen(frames[i].data));
        assert_int_equal(eo_buf_error(&b), 0);
        if (strcmp(b.data, frames[i].framed) != 0)
            fail_msg("row %zu: framed '%s', want '%s'", i, b.data, frames[i].framed);
        eo_buf_done(&b);
    }
    eo_buf_t b;
    eo_buf_init(&b, 1024);
    eo_sse_put_comment(&b, "keep-alive");
    eo_sse_put_comment(&b, "two\nlines\r");
    assert_string_equal(b.data, ": keep-alive\n\n: two lines \n\n");
    eo_buf_done(&b);
    /* sticky: a full buffer reports once */
    eo_buf_init(&b, 10);
    eo_sse_put_event(&b, "summary", "w1-s2", "{}", 2);
    assert_int_equal(eo_buf_error(&b), EO_ELIMIT);
    eo_buf_done(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rows), cmocka_unit_test(test_parse_values),
        cmocka_unit_test(test_longest),    cmocka_unit_test(test_format_caps),
        cmocka_unit_test(test_helpers),    cmocka_unit_test(test_outside),
        cmocka_unit_test(test_keys),       cmocka_unit_test(test_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
