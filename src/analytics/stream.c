/* The analytics role's live event streams: the buffer, the streams and their HTTP side (see
 * stream.h; the reader thread is stream_kafka.c).
 *
 * The buffer is a ring of the last records read from the tail of both topics, each with a
 * sequence number. A stream reading the buffer (MODE_BUFFER) has a cursor (the next sequence
 * number) and a position (domain/sse.h: the id of its next event). It sends the records of its
 * tenant and rules whose offset is at or past its position for their partition, and passes
 * every record it reads (its position moves past it). So a resume may start at the oldest
 * record of the buffer, before its position, and still gets nothing twice: the buffer holds
 * every record of a partition from `base` on, and a position at or past base (and not past the
 * reader's `head`) is served from the buffer alone.
 *
 * Invariant: a stream's cursor is never before the oldest record. When the oldest record
 * leaves the buffer, a stream still on it passes it when it is not its own (or sent already);
 * when it is its own and unsent, the stream goes on from its position through a catch-up
 * (below), as a resume would: a burst larger than the buffer costs a Kafka read, not a
 * disconnect.
 *
 * Slow clients: a stream reading the buffer whose unsent records (appended since it started
 * reading it: `pending`) stay over EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES for a keep-alive
 * interval is ended (its client resumes with its last id); a burst that its client takes in
 * time is not held against it. A stream catching up holds at most the bound (its catch-up waits
 * for it); it is ended when its client took nothing for a keep-alive interval after the queue
 * became full (counted from then, not from its last write: a stream that was idle and is handed
 * a full queue at once has its interval). Once its catch-up is done (DONE queued) and until its
 * client reads that far, the buffer's records of the stream count in `pending` as well, and the
 * first rule applies to the queue and those together: a client that stops reading with less
 * than the bound queued is ended too. The keep-alive tick checks both.
 *
 * A resume from before the buffer (MODE_CATCH_UP) reads the queue its catch-up fills
 * (stream_kafka.c): records, positions of records that are not its own, resets, and at last
 * DONE, where it goes on from the buffer, or from another catch-up when the buffer moved past
 * it meanwhile.
 *
 * Threads: a stream is written by the HTTP thread of its connection (stream_read, one at a
 * time) and by the reader thread (appends, evictions, keep-alive wakes, its queue), all under
 * hub->lock. A stream that has nothing to send parks its connection (http.h); whatever gives it
 * something wakes it. */
#include "analytics/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/stream_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "domain/analytics_row.h"

#define FILL_BYTES (64 * 1024) /* formatted per read at most (one event may be longer) */
#define SCAN_MAX 4096          /* records passed per read, so that the lock is held briefly */
/* A stream's formatted output: FILL_BYTES plus one event of the largest record. */
#define OUT_MAX (FILL_BYTES + 2 * EO_ANALYTICS_ROW_RECORD_MAX + EO_SSE_ID_MAX + 1024)

static const char *const kind_names[EO_SSE_TOPICS] = {"window", "summary"};
static const char *const refusal_names[NREFUSED] = {"max_streams", "max_streams_per_tenant",
                                                    "unavailable"};

static stream_entry_t *entry_at(struct eo_analytics_streams *h, uint64_t seq)
{
    return &h->ring[seq % h->cap];
}

static int rule_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 36);
}

bool eo_streams_match(const stream_t *s, const char *tenant_id, const char *rule_id)
{
    if (memcmp(s->tenant_id, tenant_id, 36) != 0)
        return false;
    return s->nrules == 0 || bsearch(rule_id, s->rules, s->nrules, sizeof *s->rules, rule_cmp);
}

/* Has the stream's read called again soon (once per read). */
static void wake(stream_t *s)
{
    if (s->woken || !s->req)
        return;
    s->woken = true;
    eo_http_stream_wake(s->req);
}

/* Ends a stream whose client fell behind (its read answers the end). */
static void drop_slow(struct eo_analytics_streams *h, stream_t *s, const char *why)
{
    s->dead = true;
    eo_counter_add(h->slow, 1);
    eo_log_info("event stream disconnected: its client is too slow", "tenant_id", s->tenant_id,
                "reason", why, NULL);
    wake(s);
}

/* Starts reading the buffer from its oldest record (h->lock held). */
static void start_buffer(struct eo_analytics_streams *h, stream_t *s)
{
    s->mode = MODE_BUFFER;
    s->done_queued = false;
    s->cursor = h->first;
    s->pending = 0;
    s->over_since_us = 0;
    s->counted_from = h->next; /* the backlog counts what comes from now on */
    wake(s);
}

/* Goes on from the stream's position through a catch-up (h->lock held). */
static void start_catch_up(struct eo_analytics_streams *h, stream_t *s)
{
    s->mode = MODE_CATCH_UP;
    s->cu_wanted = true;
    s->done_queued = false;
    s->pending = 0;
    s->over_since_us = 0;
    eo_counter_add(h->catchups_total, 1);
    wake(s);
}

/* ---- the buffer (the reader thread appends) ---- */

/* Removes the oldest record; streams still on it pass it, or lose it (h->lock held). */
static void evict_first(struct eo_analytics_streams *h)
{
    stream_entry_t *e = entry_at(h, h->first);
    for (stream_t *s = h->streams; s; s = s->next) {
        if (s->mode != MODE_BUFFER || s->cursor != h->first || s->dead)
            continue;
        bool mine = eo_streams_match(s, e->tenant_id, e->rule_id);
        if (mine && e->offset >= eo_sse_pos_get(&s->pos, e->topic, e->partition)) {
            start_catch_up(h, s); /* its next record left the buffer: read it from Kafka */
            continue;
        }
        eo_sse_pos_passed(&s->pos, e->topic, e->partition, e->offset);
        if (mine && h->first >= s->counted_from)
            s->pending -= e->len < s->pending ? e->len : s->pending;
        s->cursor++;
    }
    eo_sse_pos_passed(&h->base, e->topic, e->partition, e->offset);
    h->bytes -= e->len;
    free(e->data);
    e->data = NULL;
    h->first++;
}

/* Marks a partition's position known (h->lock held); ready once every one is. */
static void know(struct eo_analytics_streams *h, eo_sse_topic_t t, int32_t partition, int64_t next)
{
    if (h->known[t][partition])
        return;
    h->known[t][partition] = true;
    h->base.next[t][partition] = next;
    h->head.next[t][partition] = next;
    for (int k = 0; k < EO_SSE_TOPICS; k++)
        for (uint16_t i = 0; i < h->head.n[k]; i++)
            if (!h->known[k][i])
                return;
    atomic_store(&h->ready, true);
    eo_log_info("event streams ready: reading the ends of the windows and summaries topics", NULL);
}

void eo_streams_append(struct eo_analytics_streams *h, eo_sse_topic_t t, int32_t partition,
                       int64_t offset, const void *key, size_t key_len, const void *value,
                       size_t len)
{
    char tenant[37], rule[37];
    bool usable = value && len > 0 && len <= EO_ANALYTICS_ROW_RECORD_MAX &&
                  eo_sse_key_parse(key, key_len, tenant, rule) == 0;
    char *data = usable ? malloc(len) : NULL;
    if (data)
        memcpy(data, value, len);
    pthread_mutex_lock(&h->lock);
    if (partition < 0 || partition >= h->head.n[t]) {
        pthread_mutex_unlock(&h->lock);
        free(data);
        return;
    }
    know(h, t, partition, offset);
    if (offset < eo_sse_pos_get(&h->head, t, partition)) { /* again, after a rebuilt reader */
        pthread_mutex_unlock(&h->lock);
        free(data);
        return;
    }
    eo_sse_pos_passed(&h->head, t, partition, offset);
    if (!data) { /* a record no stream can carry: passed like a gap in the offsets */
        if (h->first == h->next) /* nothing buffered: base moves with head */
            eo_sse_pos_passed(&h->base, t, partition, offset);
        pthread_mutex_unlock(&h->lock);
        if (value && len > 0) {
            char part[16], off[24];
            snprintf(part, sizeof part, "%d", (int)partition);
            snprintf(off, sizeof off, "%lld", (long long)offset);
            eo_log_warn("event streams: a record that cannot be streamed is skipped (a key that "
                        "is not tenant:rule, a value over 1 MiB, or out of memory)",
                        "topic", h->topics[t], "partition", part, "offset", off, NULL);
        }
        return;
    }
    while (h->first < h->next && (h->next - h->first >= h->cap || h->bytes + len > h->max_bytes))
        evict_first(h);
    stream_entry_t *e = entry_at(h, h->next);
    *e = (stream_entry_t){
        .topic = t, .partition = partition, .offset = offset, .data = data, .len = len};
    memcpy(e->tenant_id, tenant, sizeof tenant);
    memcpy(e->rule_id, rule, sizeof rule);
    h->bytes += len;
    h->next++;
    for (stream_t *s = h->streams; s; s = s->next) {
        bool counts = s->mode == MODE_BUFFER || (s->mode == MODE_CATCH_UP && s->done_queued);
        if (!counts || s->dead || !eo_streams_match(s, tenant, rule))
            continue;
        s->pending += len;
        if (s->pending + s->q_bytes > h->max_backlog && !s->over_since_us)
            s->over_since_us = eo_clock_mono_us();
        wake(s);
    }
    pthread_mutex_unlock(&h->lock);
}

void eo_streams_at_end(struct eo_analytics_streams *h, eo_sse_topic_t t, int32_t partition,
                       int64_t offset)
{
    pthread_mutex_lock(&h->lock);
    if (partition >= 0 && partition < h->head.n[t] && offset >= 0) {
        know(h, t, partition, offset);
        if (offset > h->head.next[t][partition])
            h->head.next[t][partition] = offset; /* past control records */
        if (h->first == h->next && offset > h->base.next[t][partition])
            h->base.next[t][partition] = offset;
    }
    pthread_mutex_unlock(&h->lock);
}

void eo_streams_tick(struct eo_analytics_streams *h, int64_t now_us)
{
    pthread_mutex_lock(&h->lock);
    for (stream_t *s = h->streams; s; s = s->next) {
        if (!s->dead && s->over_since_us && now_us - s->over_since_us >= h->keepalive_us)
            drop_slow(h, s, "its backlog stayed over EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES");
        else if (!s->dead && s->mode == MODE_CATCH_UP && s->full_since_us &&
                 now_us - (s->progress_us > s->full_since_us ? s->progress_us : s->full_since_us) >=
                     h->keepalive_us)
            drop_slow(h, s, "it took nothing while its catch-up waited for it");
        if (now_us >= s->next_keepalive_us || s->dead)
            wake(s);
    }
    pthread_mutex_unlock(&h->lock);
}

int eo_streams_enqueue(stream_t *s, item_kind_t kind, eo_sse_topic_t t, int32_t partition,
                       int64_t offset, const void *data, size_t len)
{
    stream_item_t *last = s->q_tail;
    if (kind == ITEM_POSITION && last && last->kind == ITEM_POSITION && last->topic == t &&
        last->partition == partition) {
        if (offset > last->offset)
            last->offset = offset; /* one item per run of passed records */
        return 0;
    }
    stream_item_t *it = malloc(sizeof *it + len);
    if (!it)
        return EO_ENOMEM;
    *it = (stream_item_t){
        .kind = kind, .topic = t, .partition = partition, .offset = offset, .len = len};
    if (len)
        memcpy(it->data, data, len);
    if (last)
        last->next = it;
    else
        s->q_head = it;
    s->q_tail = it;
    s->q_bytes += STREAM_ITEM_OVERHEAD + len;
    if (s->q_bytes >= s->hub->max_backlog && !s->full_since_us)
        s->full_since_us = eo_clock_mono_us(); /* its client has a keep-alive interval from now */
    if (kind == ITEM_DONE)
        s->done_queued = true; /* the buffer's records of it count from now on */
    wake(s);
    return 0;
}

/* ---- writing a stream (its HTTP thread, h->lock held) ---- */

static void put_event(struct eo_analytics_streams *h, stream_t *s, eo_sse_topic_t t,
                      const char *data, size_t len)
{
    if (eo_sse_pos_format(&s->pos, s->id, EO_SSE_ID_MAX) < 0) {
        s->dead = true; /* cannot happen: the position lists the topics' partitions */
        return;
    }
    eo_sse_put_event(&s->out, kind_names[t], s->id, data, len);
    eo_counter_add(h->events[t], 1);
}

/* Formats the buffer's records from the cursor on. True when it stopped at SCAN_MAX. */
static bool fill_from_buffer(struct eo_analytics_streams *h, stream_t *s)
{
    size_t scanned = 0;
    while (s->cursor < h->next && s->out.len < FILL_BYTES) {
        if (scanned++ == SCAN_MAX)
            return true;
        uint64_t seq = s->cursor++;
        const stream_entry_t *e = entry_at(h, seq);
        bool mine = eo_streams_match(s, e->tenant_id, e->rule_id);
        bool fresh = e->offset >= eo_sse_pos_get(&s->pos, e->topic, e->partition);
        eo_sse_pos_passed(&s->pos, e->topic, e->partition, e->offset);
        if (mine && seq >= s->counted_from)
            s->pending -= e->len < s->pending ? e->len : s->pending;
        if (mine && fresh)
            put_event(h, s, e->topic, e->data, e->len);
    }
    return false;
}

/* DONE of a catch-up: on from the buffer when it still holds the stream's position, else from
 * another catch-up (the reader starts it). */
static void after_catch_up(struct eo_analytics_streams *h, stream_t *s)
{
    if (eo_sse_pos_outside(&s->pos, &h->base, NULL, NULL) == 0)
        start_buffer(h, s);
    else
        start_catch_up(h, s);
}

/* Formats the catch-up's queue. */
static void fill_from_queue(struct eo_analytics_streams *h, stream_t *s)
{
    while (s->mode == MODE_CATCH_UP && s->q_head && s->out.len < FILL_BYTES) {
        stream_item_t *it = s->q_head;
        s->q_head = it->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->q_bytes -= STREAM_ITEM_OVERHEAD + it->len;
        if (s->q_bytes < h->max_backlog)
            s->full_since_us = 0;
        switch (it->kind) {
        case ITEM_RECORD: {
            bool fresh = it->offset >= eo_sse_pos_get(&s->pos, it->topic, it->partition);
            eo_sse_pos_passed(&s->pos, it->topic, it->partition, it->offset);
            if (fresh)
                put_event(h, s, it->topic, it->data, it->len);
            break;
        }
        case ITEM_POSITION:
            if (it->offset > 0)
                eo_sse_pos_passed(&s->pos, it->topic, it->partition, it->offset - 1);
            break;
        case ITEM_RESET: {
            if (it->partition >= 0 && it->partition < s->pos.n[it->topic])
                s->pos.next[it->topic][it->partition] = 0;
            char note[160];
            snprintf(note, sizeof note,
                     "reset %s partition %d: the position is not in the topic (older than "
                     "its retention, or past its end); from its earliest record on",
                     kind_names[it->topic], (int)it->partition);
            eo_sse_put_comment(&s->out, note);
            break;
        }
        case ITEM_DONE:
            after_catch_up(h, s);
            break;
        }
        free(it);
    }
}

/* Refills the stream's output. True when there is more to read at once (the scan stopped). */
static bool fill(struct eo_analytics_streams *h, stream_t *s, int64_t now_us)
{
    if (!s->greeted) {
        eo_buf_puts(&s->out, "retry: 2000\n\n");
        s->greeted = true;
    }
    bool more = false;
    if (s->mode == MODE_CATCH_UP)
        fill_from_queue(h, s);
    if (s->mode == MODE_BUFFER)
        more = fill_from_buffer(h, s);
    if (s->out.len == 0 && now_us >= s->next_keepalive_us)
        eo_sse_put_comment(&s->out, "keep-alive");
    if (eo_buf_error(&s->out) < 0) {
        eo_log_warn("event stream ended: its output cannot be written", "tenant_id", s->tenant_id,
                    "error", eo_strerror(eo_buf_error(&s->out)), NULL);
        s->dead = true;
    }
    return more;
}

/* The stream's eo_http_stream_read_fn. */
static long stream_read(void *ud, char *buf, size_t cap, bool closing)
{
    stream_t *s = ud;
    struct eo_analytics_streams *h = s->hub;
    if (closing)
        return EO_HTTP_STREAM_END; /* the client resumes from its last id */
    int64_t now = eo_clock_mono_us();
    pthread_mutex_lock(&h->lock);
    s->woken = false;
    bool more = false;
    if (!s->dead && s->out_sent == s->out.len) {
        eo_buf_reset(&s->out);
        s->out_sent = 0;
        more = fill(h, s, now);
    }
    long n = EO_HTTP_STREAM_END;
    if (!s->dead || s->out_sent < s->out.len) { /* a dead stream ends after a whole event */
        size_t left = s->out.len - s->out_sent;
        n = (long)(left < cap ? left : cap);
        memcpy(buf, s->out.data + s->out_sent, (size_t)n);
        s->out_sent += (size_t)n;
        if (n > 0) {
            s->next_keepalive_us = now + h->keepalive_us;
            s->progress_us = now;
        } else if (s->dead) {
            n = EO_HTTP_STREAM_END;
        }
        if (s->pending + s->q_bytes <= h->max_backlog)
            s->over_since_us = 0; /* back under the bound in time */
    }
    pthread_mutex_unlock(&h->lock);
    if (more && n == 0)
        eo_http_stream_wake(s->req); /* read again at once rather than park */
    return n;
}

/* Frees a stream's own memory (it is unlinked). */
static void stream_destroy(stream_t *s)
{
    for (stream_item_t *it = s->q_head, *next; it; it = next) {
        next = it->next;
        free(it);
    }
    eo_buf_done(&s->out);
    free(s->id);
    free(s->rules);
    free(s);
}

/* The stream's free_fn: its request ended. */
static void stream_free(void *ud)
{
    stream_t *s = ud;
    struct eo_analytics_streams *h = s->hub;
    pthread_mutex_lock(&h->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->nstreams--;
    if (s->cu)
        s->cu->stream = NULL; /* the reader destroys it */
    s->req = NULL;
    pthread_mutex_unlock(&h->lock);
    eo_gauge_add(h->open, -1);
    stream_destroy(s);
}

/* ---- opening ---- */

#define MAX_HEADERS 8 /* name/value pairs a caller gives with every answer */

/* headers = {first, value, the caller's pairs..., NULL} into out (2 * MAX_HEADERS + 3). */
static void with_header(const char **out, const char *first, const char *value,
                        const char *const *headers)
{
    size_t n = 0;
    out[n++] = first;
    out[n++] = value;
    for (size_t i = 0; headers && headers[i] && headers[i + 1] && i < 2 * MAX_HEADERS; i += 2) {
        out[n++] = headers[i];
        out[n++] = headers[i + 1];
    }
    out[n] = NULL;
}

/* The refusal of a stream: 429 over a limit (naming it), 503 before the reader is ready. */
static void refuse(struct eo_analytics_streams *h, eo_http_req_t *req, int reason, size_t limit,
                   const char *const *headers)
{
    eo_counter_add(h->refused[reason], 1);
    const char *hd[2 * MAX_HEADERS + 3];
    with_header(hd, "Retry-After", h->retry_after, headers);
    if (reason == REFUSED_UNAVAILABLE) {
        eo_http_respond_error(req, 503, "stream_unavailable",
                              "event streams are not available yet (the windows and summaries "
                              "topics are being read) or any more (the role stops); retry later",
                              NULL, hd);
        return;
    }
    char msg[200];
    snprintf(msg, sizeof msg,
             "%zu event streams are open%s, the most EVENTOPS_ANALYTICS_MAX_STREAMS%s allows; "
             "close one or retry later",
             limit, reason == REFUSED_MAX_STREAMS ? "" : " for this tenant",
             reason == REFUSED_MAX_STREAMS ? "" : "_PER_TENANT");
    eo_http_respond_error(req, 429, "too_many_streams", msg, NULL, hd);
}

void eo_analytics_streams_open(eo_analytics_streams_t *h, eo_http_req_t *req, const char *tenant_id,
                               const char (*rules)[37], size_t nrules, const eo_sse_pos_t *from,
                               const char *const *headers)
{
    stream_t *s = calloc(1, sizeof *s);
    if (s) {
        s->id = malloc(EO_SSE_ID_MAX);
        s->rules = nrules ? malloc(nrules * sizeof *s->rules) : NULL;
        eo_buf_init(&s->out, OUT_MAX);
    }
    if (!s || !s->id || (nrules && !s->rules)) {
        if (s)
            stream_destroy(s);
        eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
        return;
    }
    memcpy(s->tenant_id, tenant_id, 36);
    s->tenant_id[36] = '\0';
    if (nrules) {
        memcpy(s->rules, rules, nrules * sizeof *s->rules);
        qsort(s->rules, nrules, sizeof *s->rules, rule_cmp);
    }
    s->nrules = nrules;
    s->hub = h;
    pthread_mutex_lock(&h->lock);
    size_t mine = 0;
    for (const stream_t *o = h->streams; o; o = o->next)
        mine += memcmp(o->tenant_id, s->tenant_id, 36) == 0;
    int reason = -1;
    size_t limit = 0;
    if (h->closing || !atomic_load(&h->ready))
        reason = REFUSED_UNAVAILABLE;
    else if (h->nstreams >= h->max_streams)
        reason = REFUSED_MAX_STREAMS, limit = h->max_streams;
    else if (mine >= h->max_per_tenant)
        reason = REFUSED_MAX_STREAMS_PER_TENANT, limit = h->max_per_tenant;
    if (reason >= 0) {
        pthread_mutex_unlock(&h->lock);
        stream_destroy(s);
        refuse(h, req, reason, limit, headers);
        return;
    }
    s->req = req;
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    h->nstreams++;
    s->progress_us = eo_clock_mono_us();
    s->next_keepalive_us = s->progress_us + h->keepalive_us;
    if (!from) { /* from now: the reader's position */
        s->pos = h->head;
        s->mode = MODE_BUFFER;
        s->cursor = s->counted_from = h->next;
    } else {
        s->pos = *from;
        eo_sse_pos_fit(&s->pos, h->head.n[EO_SSE_WINDOWS], h->head.n[EO_SSE_SUMMARIES]);
        if (eo_sse_pos_outside(&s->pos, &h->base, &h->head, NULL) == 0)
            start_buffer(h, s);
        else
            start_catch_up(h, s);
    }
    pthread_mutex_unlock(&h->lock);
    eo_gauge_add(h->open, 1);
    const char *hd[2 * MAX_HEADERS + 3];
    with_header(hd, "Content-Type", "text/event-stream", headers);
    eo_http_respond_stream(req, 200, hd, stream_read, stream_free, s);
}

/* ---- start and stop ---- */

void eo_analytics_streams_close(eo_analytics_streams_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->closing = true;
    pthread_mutex_unlock(&h->lock);
}

static void register_metrics(struct eo_analytics_streams *h, eo_metrics_t *m)
{
    h->open = eo_metrics_gauge(m, "eventops_analytics_streams", "Open event streams.",
                               "role=\"analytics\"");
    eo_metrics_counters(m, "eventops_analytics_stream_events_total",
                        "Events sent on event streams, by kind.", "analytics", "kind", kind_names,
                        EO_SSE_TOPICS, h->events);
    eo_metrics_counters(m, "eventops_analytics_streams_refused_total",
                        "Event streams refused: over EVENTOPS_ANALYTICS_MAX_STREAMS (429), over "
                        "_PER_TENANT (429), or before the topics are read (503).",
                        "analytics", "reason", refusal_names, NREFUSED, h->refused);
    static const char *const slow[] = {"slow_client"};
    eo_metrics_counters(m, "eventops_analytics_stream_disconnects_total",
                        "Event streams ended because their client fell behind (it resumes with "
                        "its Last-Event-ID).",
                        "analytics", "reason", slow, 1, &h->slow);
    h->catchups_total = eo_metrics_counter(m, "eventops_analytics_stream_catchups_total",
                                           "Stream resumes older than the buffer, and "
                                           "streams whose next result left it, read from "
                                           "Kafka first.",
                                           "role=\"analytics\"");
    h->resets = eo_metrics_counter(m, "eventops_analytics_stream_resets_total",
                                   "Partitions a resume read from their earliest record (its "
                                   "position was past the topic's retention).",
                                   "role=\"analytics\"");
}

static void destroy(struct eo_analytics_streams *h)
{
    for (uint64_t q = h->first; h->ring && q < h->next; q++)
        free(entry_at(h, q)->data);
    free(h->ring);
    free(h->brokers);
    for (int t = 0; t < EO_SSE_TOPICS; t++)
        free(h->topics[t]);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

int eo_analytics_streams_start(const eo_config_t *cfg, eo_metrics_t *m,
                               eo_analytics_streams_t **out, char *err, size_t errlen)
{
    *out = NULL;
    struct eo_analytics_streams *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->cap = (size_t)cfg->analytics_sse_buffer_records;
    h->max_bytes = (size_t)cfg->analytics_sse_buffer_bytes;
    h->max_backlog = (size_t)cfg->analytics_sse_max_backlog_bytes;
    h->max_streams = (size_t)cfg->analytics_max_streams;
    h->max_per_tenant = (size_t)cfg->analytics_max_streams_per_tenant;
    h->keepalive_us = cfg->analytics_sse_keepalive_s * INT64_C(1000000);
    snprintf(h->retry_after, sizeof h->retry_after, "%lld", (long long)cfg->retry_after_s);
    h->ring = calloc(h->cap, sizeof *h->ring);
    h->brokers = strdup(cfg->kafka_brokers);
    h->topics[EO_SSE_WINDOWS] = strdup(cfg->analytics_windows_topic);
    h->topics[EO_SSE_SUMMARIES] = strdup(cfg->analytics_summaries_topic);
    if (!h->ring || !h->brokers || !h->topics[0] || !h->topics[1]) {
        destroy(h);
        snprintf(err, errlen, "out of memory");
        return EO_ENOMEM;
    }
    if (strcmp(h->topics[0], h->topics[1]) == 0) {
        destroy(h);
        snprintf(err, errlen,
                 "EVENTOPS_ANALYTICS_WINDOWS_TOPIC and EVENTOPS_ANALYTICS_SUMMARIES_TOPIC must "
                 "differ (%s)",
                 cfg->analytics_windows_topic);
        return EO_EINVAL;
    }
    register_metrics(h, m);
    if (pthread_create(&h->thread, NULL, eo_streams_reader, h) != 0) {
        destroy(h);
        snprintf(err, errlen, "cannot start the event streams' reader thread");
        return EO_ENOMEM;
    }
    h->thread_started = true;
    *out = h;
    return 0;
}

void eo_analytics_streams_stop(eo_analytics_streams_t *h)
{
    if (!h)
        return;
    eo_analytics_streams_close(h);
    atomic_store(&h->stopping, true);
    if (h->thread_started)
        pthread_join(h->thread, NULL);
    /* the HTTP server stopped: every stream ended; nothing is left but the buffer */
    destroy(h);
}
