/* libFuzzer harness of src/domain/sse.h on raw bytes: a Last-Event-ID (or lastEventId) as an
 * outsider sends it, a record key, and record bytes framed as an event. Invariants checked
 * (abort on violation), beyond "no crash, no leak, no read past the input":
 *  - eo_sse_pos_parse returns 0 or EO_EPARSE, and accepts exactly what a reference parser of
 *    the grammar written here again accepts (a letter w, 1..256 decimal offsets without leading
 *    zeros up to 2^63 - 1 joined by '.', "-s", the same), to the reference's offsets; nothing
 *    is written on a refusal;
 *  - an accepted id formats back to exactly the input (one text per position), shorter than
 *    EO_SSE_ID_MAX, and every cap below its length + 1 is refused without writing at or past
 *    cap;
 *  - eo_sse_pos_outside counts what it marks, and every marked partition is outside [base,
 *    head] of a base and head taken from the id itself;
 *  - eo_sse_key_parse accepts exactly 73 bytes "<uuid>:<uuid>" in lower case, split there;
 *  - the input framed by eo_sse_put_event and read back by an SSE parser written here gives the
 *    event name, the id and the input with each line break (CR, LF, CRLF) as an LF. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/sse.h"
#include "fuzz_check.h"

/* The reference: offsets of one topic from s[*i] (after its letter); -1 on a refusal. */
static int ref_offsets(const uint8_t *s, size_t n, size_t *i, int64_t *out, int *count)
{
    *count = 0;
    for (;;) {
        size_t start = *i;
        while (*i < n && s[*i] >= '0' && s[*i] <= '9')
            (*i)++;
        size_t d = *i - start;
        if (d == 0 || d > 19 || (d > 1 && s[start] == '0'))
            return -1;
        char tmp[20];
        memcpy(tmp, s + start, d);
        tmp[d] = '\0';
        if (d == 19 && strcmp(tmp, "9223372036854775807") > 0)
            return -1;
        if (*count == EO_SSE_MAX_PARTITIONS)
            return -1;
        out[(*count)++] = strtoll(tmp, NULL, 10);
        if (*i < n && s[*i] == '.') {
            (*i)++;
            continue;
        }
        return 0;
    }
}

static bool ref_parse(const uint8_t *s, size_t n, int64_t off[2][EO_SSE_MAX_PARTITIONS],
                      int count[2])
{
    size_t i = 0;
    if (i >= n || s[i++] != 'w' || ref_offsets(s, n, &i, off[0], &count[0]) < 0)
        return false;
    if (i + 1 >= n || s[i] != '-' || s[i + 1] != 's')
        return false;
    i += 2;
    if (ref_offsets(s, n, &i, off[1], &count[1]) < 0)
        return false;
    return i == n;
}

static void check_id(const uint8_t *data, size_t size)
{
    static eo_sse_pos_t p;
    static int64_t off[2][EO_SSE_MAX_PARTITIONS];
    int count[2];
    memset(&p, 0x7e, sizeof p);
    int r = eo_sse_pos_parse((const char *)data, size, &p);
    CHECK(r == 0 || r == EO_EPARSE, "parse: %d", r);
    bool want = ref_parse(data, size, off, count);
    CHECK((r == 0) == want, "parse %d, reference %d, input '%.*s'", r, want,
          (int)(size < 200 ? size : 200), (const char *)data);
    if (r != 0) {
        CHECK(p.n[0] == 0x7e7e, "written on a refusal");
        return;
    }
    for (int t = 0; t < 2; t++) {
        CHECK(p.n[t] == count[t], "topic %d: %d partitions, reference %d", t, p.n[t], count[t]);
        for (int k = 0; k < count[t]; k++)
            CHECK(p.next[t][k] == off[t][k], "offset %d/%d differs", t, k);
    }
    static char text[EO_SSE_ID_MAX + 16];
    int n = eo_sse_pos_format(&p, text, EO_SSE_ID_MAX);
    CHECK(n == (int)size && memcmp(text, data, size) == 0 && text[n] == '\0',
          "formats back as '%s'", text);
    CHECK((size_t)n < EO_SSE_ID_MAX, "longer than EO_SSE_ID_MAX");
    size_t caps[] = {0, 1, size / 2, size};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        size_t cap = caps[k];
        memset(text, 'X', cap + 1);
        CHECK(eo_sse_pos_format(&p, text, cap) == EO_ELIMIT, "cap %zu not refused", cap);
        CHECK(text[cap] == 'X', "written at cap %zu", cap);
    }
    /* base: every offset halved; head: the id; the id itself is inside, its halves behind */
    static eo_sse_pos_t base, half;
    base = p;
    half = p;
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < p.n[t]; k++) {
            base.next[t][k] = p.next[t][k] / 2;
            half.next[t][k] = p.next[t][k] / 4;
        }
    CHECK(eo_sse_pos_outside(&p, &base, &p, NULL) == 0, "the head is outside");
    static bool out[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS];
    size_t m = eo_sse_pos_outside(&half, &base, &p, out);
    size_t marked = 0;
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < p.n[t]; k++) {
            marked += out[t][k];
            if (out[t][k])
                CHECK(half.next[t][k] < base.next[t][k], "marked but inside");
            else
                CHECK(half.next[t][k] >= base.next[t][k], "behind but not marked");
        }
    CHECK(m == marked, "counted %zu, marked %zu", m, marked);
}

static bool uuid_ref(const uint8_t *s)
{
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static void check_key(const uint8_t *data, size_t size)
{
    char tenant[37], rule[37];
    int r = eo_sse_key_parse(data, size, tenant, rule);
    bool want = size == 73 && data[36] == ':' && uuid_ref(data) && uuid_ref(data + 37);
    CHECK((r == 0) == want, "key: %d, reference %d", r, want);
    if (r == 0)
        CHECK(!memcmp(tenant, data, 36) && !memcmp(rule, data + 37, 36) && !tenant[36] && !rule[36],
              "key split wrong");
}

/* Reads one framed event back as a client would; the data is written into out. */
static void check_framing(const uint8_t *data, size_t size)
{
    eo_buf_t b;
    eo_buf_init(&b, 8 * size + 256); /* each byte a line break: "data: " and LF */
    eo_sse_put_event(&b, "summary", "w1-s2", (const char *)data, size);
    CHECK(eo_buf_error(&b) == 0, "framing failed");
    /* a client: lines end at LF (we only wrote LF), fields split at the first ':', one space */
    char *got = malloc(size + 1);
    size_t glen = 0, ndata = 0;
    char event[16] = "", id[16] = "";
    size_t i = 0;
    bool ended = false;
    while (i < b.len) {
        size_t start = i;
        while (i < b.len && b.data[i] != '\n')
            i++;
        CHECK(i < b.len, "a line without its LF");
        size_t len = i - start;
        const char *line = b.data + start;
        i++;
        if (len == 0) {
            ended = true;
            CHECK(i == b.len, "bytes after the event's end");
            break;
        }
        const char *colon = memchr(line, ':', len);
        CHECK(colon != NULL, "a line without a field name");
        size_t flen = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vlen = len - flen - 1;
        if (vlen && *v == ' ')
            v++, vlen--;
        if (flen == 5 && !memcmp(line, "event", 5)) {
            CHECK(vlen < sizeof event, "event too long");
            memcpy(event, v, vlen);
            event[vlen] = '\0';
        } else if (flen == 2 && !memcmp(line, "id", 2)) {
            CHECK(vlen < sizeof id, "id too long");
            memcpy(id, v, vlen);
            id[vlen] = '\0';
        } else {
            CHECK(flen == 4 && !memcmp(line, "data", 4), "an unknown field");
            if (ndata++)
                got[glen++] = '\n';
            CHECK(glen + vlen <= size, "more data than given");
            memcpy(got + glen, v, vlen);
            glen += vlen;
        }
    }
    CHECK(ended && !strcmp(event, "summary") && !strcmp(id, "w1-s2"), "event or id lost");
    /* the input with CRLF, CR and LF as LF */
    size_t k = 0, j = 0;
    while (k < size) {
        if (data[k] == '\r' || data[k] == '\n') {
            CHECK(j < glen && got[j] == '\n', "a line break lost at %zu", k);
            k += data[k] == '\r' && k + 1 < size && data[k + 1] == '\n' ? 2 : 1;
        } else {
            CHECK(j < glen && got[j] == (char)data[k], "data differs at %zu", k);
            k++;
        }
        j++;
    }
    CHECK(j == glen, "data longer than given");
    free(got);
    eo_buf_done(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024)
        return 0;
    check_id(data, size);
    check_key(data, size);
    check_framing(data, size);
    return 0;
}
