/* Server-Sent Events of the analytics stream (see sse.h). */
#include "domain/sse.h"

#include <string.h>

#include "domain/record.h"

static const char topic_letter[EO_SSE_TOPICS] = {'w', 's'};

void eo_sse_pos_init(eo_sse_pos_t *p, uint16_t nw, uint16_t ns)
{
    memset(p, 0, sizeof *p);
    p->n[EO_SSE_WINDOWS] = nw > EO_SSE_MAX_PARTITIONS ? EO_SSE_MAX_PARTITIONS : nw;
    p->n[EO_SSE_SUMMARIES] = ns > EO_SSE_MAX_PARTITIONS ? EO_SSE_MAX_PARTITIONS : ns;
}

int64_t eo_sse_pos_get(const eo_sse_pos_t *p, eo_sse_topic_t t, int32_t partition)
{
    if (partition < 0 || partition >= p->n[t])
        return 0;
    return p->next[t][partition];
}

void eo_sse_pos_passed(eo_sse_pos_t *p, eo_sse_topic_t t, int32_t partition, int64_t offset)
{
    if (partition < 0 || partition >= p->n[t] || offset < 0 || offset == INT64_MAX)
        return;
    if (p->next[t][partition] < offset + 1)
        p->next[t][partition] = offset + 1;
}

void eo_sse_pos_fit(eo_sse_pos_t *p, uint16_t nw, uint16_t ns)
{
    const uint16_t want[EO_SSE_TOPICS] = {nw, ns};
    for (int t = 0; t < EO_SSE_TOPICS; t++) {
        uint16_t n = want[t] > EO_SSE_MAX_PARTITIONS ? EO_SSE_MAX_PARTITIONS : want[t];
        for (uint16_t i = p->n[t]; i < n; i++)
            p->next[t][i] = 0;
        p->n[t] = n;
    }
}

/* Writes v in decimal into out (at least EO_SSE_OFFSET_DIGITS bytes); returns the length. */
static size_t put_offset(int64_t v, char *out)
{
    char tmp[EO_SSE_OFFSET_DIGITS];
    size_t n = 0;
    uint64_t u = (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

int eo_sse_pos_format(const eo_sse_pos_t *p, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    size_t len = 0;
    for (int t = 0; t < EO_SSE_TOPICS; t++) {
        if (p->n[t] == 0 || p->n[t] > EO_SSE_MAX_PARTITIONS)
            return EO_EINVAL;
        for (uint16_t i = 0; i < p->n[t]; i++) {
            if (p->next[t][i] < 0) {
                if (cap)
                    out[0] = '\0';
                return EO_EINVAL;
            }
            char digits[EO_SSE_OFFSET_DIGITS];
            size_t nd = put_offset(p->next[t][i], digits);
            size_t lead = i > 0 ? 1 : (t > 0 ? 2 : 1); /* '.', or "-s" / "w" */
            if (len + lead + nd + 1 > cap) {
                if (cap)
                    out[0] = '\0';
                return EO_ELIMIT;
            }
            if (i > 0) {
                out[len++] = '.';
            } else {
                if (t > 0)
                    out[len++] = '-';
                out[len++] = topic_letter[t];
            }
            memcpy(out + len, digits, nd);
            len += nd;
        }
    }
    out[len] = '\0';
    return (int)len;
}

/* Parses the offsets of one topic from s[*i] on (after its letter) up to the end or a '-',
 * into next[] and *n. Returns 0 or EO_EPARSE. */
static int parse_offsets(const char *s, size_t len, size_t *i, int64_t *next, uint16_t *n)
{
    size_t count = 0;
    for (;;) {
        if (count == EO_SSE_MAX_PARTITIONS)
            return EO_EPARSE;
        size_t start = *i;
        uint64_t v = 0;
        while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
            if (*i - start == EO_SSE_OFFSET_DIGITS)
                return EO_EPARSE; /* 20 digits are past INT64_MAX */
            v = v * 10 + (uint64_t)(s[*i] - '0');
            (*i)++;
        }
        size_t digits = *i - start;
        if (digits == 0 || (digits > 1 && s[start] == '0') || v > (uint64_t)INT64_MAX)
            return EO_EPARSE;
        next[count++] = (int64_t)v;
        if (*i == len || s[*i] == '-')
            break;
        if (s[*i] != '.')
            return EO_EPARSE;
        (*i)++;
    }
    *n = (uint16_t)count;
    return 0;
}

int eo_sse_pos_parse(const char *s, size_t len, eo_sse_pos_t *out)
{
    eo_sse_pos_t p;
    size_t i = 0;
    for (int t = 0; t < EO_SSE_TOPICS; t++) {
        if (t > 0 && (i >= len || s[i++] != '-'))
            return EO_EPARSE;
        if (i >= len || s[i++] != topic_letter[t])
            return EO_EPARSE;
        if (parse_offsets(s, len, &i, p.next[t], &p.n[t]) < 0)
            return EO_EPARSE;
    }
    if (i != len)
        return EO_EPARSE;
    *out = p;
    return 0;
}

size_t eo_sse_pos_outside(const eo_sse_pos_t *v, const eo_sse_pos_t *base, const eo_sse_pos_t *head,
                          bool out[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS])
{
    size_t count = 0;
    for (int t = 0; t < EO_SSE_TOPICS; t++) {
        for (int32_t i = 0; i < base->n[t]; i++) {
            int64_t at = eo_sse_pos_get(v, (eo_sse_topic_t)t, i);
            bool outside =
                at < base->next[t][i] || (head && at > eo_sse_pos_get(head, (eo_sse_topic_t)t, i));
            count += outside;
            if (out)
                out[t][i] = outside;
        }
    }
    return count;
}

int eo_sse_key_parse(const void *key, size_t len, char tenant[37], char rule[37])
{
    const char *k = key;
    if (!k || len != EO_SSE_KEY_LEN || k[36] != ':' || !eo_uuid_valid(k, 36) ||
        !eo_uuid_valid(k + 37, 36))
        return EO_EPARSE;
    memcpy(tenant, k, 36);
    tenant[36] = '\0';
    memcpy(rule, k + 37, 36);
    rule[36] = '\0';
    return 0;
}

void eo_sse_put_event(eo_buf_t *b, const char *name, const char *id, const char *data, size_t len)
{
    eo_buf_puts(b, "event: ");
    eo_buf_puts(b, name);
    eo_buf_puts(b, "\nid: ");
    eo_buf_puts(b, id);
    eo_buf_putc(b, '\n');
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < len && data[i] != '\r' && data[i] != '\n')
            i++;
        eo_buf_puts(b, "data: ");
        eo_buf_put(b, data + start, i - start);
        eo_buf_putc(b, '\n');
        if (i == len)
            break;
        /* one line break (CRLF counts as one); a break at the very end gives an empty line */
        i += data[i] == '\r' && i + 1 < len && data[i + 1] == '\n' ? 2 : 1;
    }
    eo_buf_putc(b, '\n');
}

void eo_sse_put_comment(eo_buf_t *b, const char *text)
{
    eo_buf_puts(b, ": ");
    for (const char *c = text; *c; c++)
        eo_buf_putc(b, *c == '\r' || *c == '\n' ? ' ' : *c);
    eo_buf_puts(b, "\n\n");
}
