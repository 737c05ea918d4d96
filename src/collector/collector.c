/* Collector role (see collector.h).
 *
 * A request's ingest_t lives as the HTTP request's user data. Its `pending` counter (atomic)
 * starts at accepted + 1: one per produced record, released by the Kafka delivery thread, and
 * one held by the MHD thread while it produces. Whoever brings it to zero answers; nothing
 * touches the ingest_t after answering, because the request may then be freed at once. */
#include "collector/collector.h"
#include "collector/collector_internal.h"
#include "collector/grpc_ingest.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "access/keystore.h"
#include "access/credentials.h"
#include "collector/kafka_sink.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/http.h"
#include "core/log.h"
#include "core/openapi.h"
#include "core/random.h"
#include "core/ratelimit.h"
#include "core/sched.h"
#include "domain/batch.h"
#include "domain/compat.h"
#include "domain/ingest_scan.h"
#include "domain/jwt.h"
#include "domain/record.h"
#include "domain/uuid7.h"

/* The per-event refusal codes of src/domain (the metrics' reason label; anything else is
 * "other", the last). */
static const char *const reject_reasons[] = {"missing_field",
                                             "invalid_type",
                                             "invalid_value",
                                             "invalid_timestamp",
                                             "timestamp_out_of_range",
                                             "too_long",
                                             "too_deep",
                                             "too_many_properties",
                                             "conflicting_fields",
                                             "empty_value",
                                             "invalid_json",
                                             "too_large",
                                             "other"};
#define REJECT_REASONS (sizeof reject_reasons / sizeof reject_reasons[0])

static void count_rejected(eo_counter_t *const *rejected, const char *code)
{
    size_t i = 0;
    while (i < REJECT_REASONS - 1 && strcmp(reject_reasons[i], code) != 0)
        i++;
    eo_counter_add(rejected[i], 1);
}

struct eo_collector {
    eo_config_t cfg;
    eo_metrics_t *metrics;
    eo_access_policy_t access;
    eo_access_policy_t compat_access; /* access, naming the body's write key as well */
    eo_counter_t *accepted;
    eo_counter_t *rejected[16]; /* by reject_reasons */
    eo_histogram_t *batch_size;
    eo_event_limits_t lim;
    eo_creds_t *creds;
    eo_keystore_t *token_keys; /* NULL: no key source, bearer tokens are refused */
    eo_ratelimit_t *limiter;
    eo_kafka_sink_t *sink;
    eo_http_server_t *http;
    eo_grpc_t *grpc; /* NULL: EVENTOPS_GRPC_PORT -1 */
    char retry_after[16];
};

typedef struct {
    eo_ingest_waiter_t w; /* first: the Kafka sink's opaque (on_delivered) */
    eo_collector_t *c;
    eo_http_req_t *req;
    char tenant_id[37];
    char *accepted_body;
    size_t accepted_len;
    eo_ratelimit_headers_t rl; /* RateLimit-* of the answer */
    size_t accepted;
    unsigned ok_status; /* of the answer once Kafka acknowledged: 202, or 200 (Segment, PostHog) */
    bool body_auth;     /* no Authorization header: the body's write key decides (compat routes) */
} ingest_t;

static _Thread_local eo_uuid7_gen_t uuid_gen;

static void ingest_free(void *p)
{
    ingest_t *in = p;
    if (!in)
        return;
    free(in->accepted_body);
    free(in);
}

/* The request's state, owned by the request from here on; NULL after answering 503. */
static ingest_t *ingest_new(eo_collector_t *c, eo_http_req_t *req)
{
    ingest_t *in = calloc(1, sizeof *in);
    if (!in) {
        eo_http_respond_error(req, 503, "overloaded", "out of memory", NULL, NULL);
        return NULL;
    }
    in->c = c;
    in->req = req;
    in->ok_status = 202;
    eo_http_set_user(req, in, ingest_free);
    return in;
}

/* The admitted credential's tenant and rate-limit headers go into the answer. */
static void admitted(ingest_t *in, const eo_access_t *a)
{
    memcpy(in->tenant_id, a->cred.tenant_id, sizeof in->tenant_id);
    in->rl = a->rl;
}

static bool ingest_on_headers(eo_http_req_t *req, void *ud)
{
    eo_collector_t *c = ud;
    eo_access_t a;
    if (eo_access_check(&c->access, eo_http_header(req, "Authorization"), &a) != EO_ACCESS_OK) {
        eo_access_answer(&c->access, req, &a);
        return false;
    }
    ingest_t *in = ingest_new(c, req);
    if (in)
        admitted(in, &a);
    return in != NULL;
}

/* Segment's and PostHog's routes: an Authorization header is checked now, as on /events;
 * without one, the write key in the body decides once it is read (admit_by_body). */
static bool compat_on_headers(eo_http_req_t *req, void *ud)
{
    const char *h = eo_http_header(req, "Authorization");
    if (h && *h)
        return ingest_on_headers(req, ud);
    ingest_t *in = ingest_new(ud, req);
    if (in)
        in->body_auth = true;
    return in != NULL;
}

/* Releases one hold on w; the last one calls w->finish. */
static void release(eo_ingest_waiter_t *w)
{
    if (atomic_fetch_sub(&w->pending, 1) == 1)
        w->finish(w);
}

/* An HTTP request's answer once Kafka acknowledged (or failed) every record it produced. */
static void finish_http(eo_ingest_waiter_t *w)
{
    ingest_t *in = (ingest_t *)w;
    if (atomic_load(&in->w.failed)) {
        const char *h[] = {"Retry-After", in->c->retry_after, NULL};
        eo_http_respond_error(in->req, 503, "kafka_unavailable",
                              "the events could not be made durable in time; retry with the same "
                              "messageIds",
                              NULL, h);
        return;
    }
    eo_counter_add(in->c->accepted, in->accepted);
    const char *h[] = {
        "RateLimit-Limit", in->rl.limit, "RateLimit-Remaining", in->rl.remaining, "RateLimit-Reset",
        in->rl.reset,      NULL};
    eo_http_respond(in->req, in->ok_status, in->accepted_body, in->accepted_len, h);
}

static void on_delivered(void *opaque, int err)
{
    eo_ingest_waiter_t *w = opaque;
    if (err) {
        int expected = 0;
        atomic_compare_exchange_strong(&w->failed, &expected, err);
    }
    release(w);
}

static int append_item_error(eo_buf_t *errors, size_t index, eo_str_t message_id,
                             const eo_event_error_t *e)
{
    eo_buf_puts(errors, errors->len ? "," : "");
    eo_buf_putf(errors, "{\"index\":%zu,\"messageId\":", index);
    if (message_id.s)
        eo_buf_put_json_str(errors, message_id.s, message_id.len);
    else
        eo_buf_puts(errors, "null");
    eo_buf_puts(errors, ",\"error\":{\"code\":");
    eo_buf_put_json_str(errors, e->code, strlen(e->code));
    eo_buf_puts(errors, ",\"message\":");
    eo_buf_put_json_str(errors, e->message, strlen(e->message));
    eo_buf_puts(errors, ",\"field\":");
    eo_buf_put_json_str(errors, e->field, strlen(e->field));
    eo_buf_puts(errors, "}}");
    return eo_buf_error(errors);
}

/* Spans of one encoded record inside the shared buffers. */
typedef struct {
    size_t key_off, key_len, val_off, val_len;
} span_t;

/* What a request builds: its records, their keys, the accepted messageIds, the refusals. */
struct eo_ingest_build {
    const char *tenant_id;
    eo_buf_t values, keys, ids, errors;
    span_t *spans; /* one per accepted event */
    size_t accepted;
    unsigned last_status; /* of the last refused event: 400, or 413 (too large) */
    eo_event_error_t e;   /* the last refusal */
    bool compat;          /* the events came from a Segment or PostHog body of compat_kind */
    eo_compat_kind_t compat_kind;
};
typedef eo_ingest_build_t build_t;

/* The most a request's outputs may hold (its records, keys, ids, refusals, answer). */
static size_t build_max(const eo_collector_t *c)
{
    return (size_t)c->cfg.max_body_bytes * 4 + 65536;
}

static void build_init(build_t *b, const eo_collector_t *c, const char *tenant_id)
{
    memset(b, 0, sizeof *b);
    b->tenant_id = tenant_id;
    b->last_status = 400;
    eo_buf_init(&b->values, build_max(c));
    eo_buf_init(&b->keys, build_max(c));
    eo_buf_init(&b->ids, build_max(c));
    eo_buf_init(&b->errors, build_max(c));
}

static void build_done(build_t *b)
{
    free(b->spans);
    eo_buf_done(&b->values);
    eo_buf_done(&b->keys);
    eo_buf_done(&b->ids);
    eo_buf_done(&b->errors);
}

/* The client's messageId, or a new UUIDv7. */
static int message_id(eo_str_t given, int64_t received_at, char generated[EO_UUID_STR],
                      eo_str_t *mid)
{
    if (given.s) {
        *mid = given;
        return 0;
    }
    uint8_t rnd[10];
    int r = eo_random_id_bytes(rnd, sizeof rnd);
    if (r < 0)
        return r;
    eo_uuid7_next(&uuid_gen, received_at / 1000, rnd, generated);
    *mid = (eo_str_t){generated, EO_UUID_STR - 1};
    return 0;
}

/* Records the accepted event whose record and key were just appended at *s. */
static int accept_event(build_t *b, span_t *s, eo_str_t mid)
{
    s->val_len = b->values.len - s->val_off;
    s->key_len = b->keys.len - s->key_off;
    eo_buf_puts(&b->ids, b->accepted ? "," : "");
    eo_buf_put_json_str(&b->ids, mid.s, mid.len);
    b->accepted++;
    return eo_buf_error(&b->ids);
}

/* Event i from jansson's tree: its record, or its refusal. Returns 0, or a failure that fails
 * the request (503). */
static int add_normalized(eo_collector_t *c, build_t *b, size_t i, json_t *item,
                          int64_t received_at)
{
    eo_event_t ev;
    char generated[EO_UUID_STR];
    eo_str_t mid = {NULL, 0};
    int r, vr = eo_event_normalize(item, &c->lim, received_at, 0, &ev, &b->e);
    if (vr == 0) {
        if ((r = message_id(ev.message_id, received_at, generated, &mid)) < 0)
            return r;
        span_t *s = &b->spans[b->accepted];
        s->val_off = b->values.len;
        s->key_off = b->keys.len;
        vr = eo_record_encode(b->tenant_id, received_at, &ev, mid, &c->lim, &b->values, &b->e);
        if (vr == 0)
            vr = eo_record_key(b->tenant_id, &ev, &b->keys);
        if (vr == 0)
            return accept_event(b, s, mid);
        eo_buf_truncate(&b->values, s->val_off); /* drop the partial record */
        eo_buf_truncate(&b->keys, s->key_off);
        if (vr != EO_ELIMIT || strcmp(b->e.code, "too_large") != 0)
            return vr;
        b->last_status = 413;
    } else {
        b->last_status = 400;
        mid = ev.message_id;
    }
    if (b->compat)
        eo_compat_name_field(b->compat_kind, &b->e);
    count_rejected(c->rejected, b->e.code);
    return append_item_error(&b->errors, i, mid, &b->e);
}

/* A scanned event's record written by the scan: 1, or 0 when the scan leaves the event to
 * jansson (a refusal, a limit, a record too large), or a failure that fails the request.
 * compat: the body's members when the event is a Segment or PostHog message, else NULL. */
static int try_scanned(eo_collector_t *c, build_t *b, const eo_jspan_t *item, eo_event_scan_t *ev,
                       int64_t received_at, const eo_compat_scan_t *compat)
{
    const eo_scan_names_t *names = compat ? compat->names : eo_scan_names_eventops();
    if (eo_event_scan_as(item, names, &c->lim, received_at, ev) != 0 ||
        (compat && (!eo_compat_scan_takes(compat, ev) ||
                    eo_compat_scan_defaults(compat, &c->lim, received_at, ev) != 0)))
        return 0;
    char generated[EO_UUID_STR];
    eo_str_t mid;
    int r = message_id(ev->message_id, received_at, generated, &mid);
    if (r < 0)
        return r;
    span_t *s = &b->spans[b->accepted];
    s->val_off = b->values.len;
    s->key_off = b->keys.len;
    r = eo_event_scan_record(b->tenant_id, received_at, ev, mid, &c->lim, &b->values);
    if (r == 0) {
        eo_event_t ids = {0};
        eo_event_scan_ids(ev, &ids);
        if ((r = eo_record_key(b->tenant_id, &ids, &b->keys)) == 0)
            return (r = accept_event(b, s, mid)) < 0 ? r : 1;
    }
    eo_buf_truncate(&b->values, s->val_off);
    eo_buf_truncate(&b->keys, s->key_off);
    return r == EO_ENOMEM ? r : 0;
}

/* Event i of a scanned body: its record written by the scan, or, for anything the scan leaves
 * to jansson, add_normalized of its tree. */
static int add_scanned(eo_collector_t *c, build_t *b, size_t i, const eo_jspan_t *item,
                       eo_event_scan_t *ev, int64_t received_at)
{
    int r = try_scanned(c, b, item, ev, received_at, NULL);
    if (r != 0)
        return r < 0 ? r : 0;
    json_error_t jerr;
    json_t *tree = json_loadb((const char *)item->s, item->len,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!tree) /* the body was checked: only memory can fail here */
        return EO_ENOMEM;
    r = add_normalized(c, b, i, tree, received_at);
    json_decref(tree);
    return r;
}

/* Room for n more bytes in b, when it can have it (else it grows as it goes). */
static void presize(eo_buf_t *b, size_t n)
{
    if (eo_buf_reserve(b, n) < 0)
        eo_buf_truncate(b, b->len); /* forget the failed reservation */
}

/* Sizes the outputs for count events of a body of len bytes up front (the records are about the
 * body plus a fixed part per event, the keys and ids a fixed part), so that nothing regrows
 * while events are added, and makes the spans. Returns 0 or EO_ENOMEM. */
static int build_reserve(build_t *b, size_t len, size_t count)
{
    presize(&b->values, len + len / 4 + count * 192);
    presize(&b->keys, count * 80);
    presize(&b->ids, count * 48);
    return (b->spans = calloc(count, sizeof *b->spans)) ? 0 : EO_ENOMEM;
}

/* Answers what b built. No event accepted: the refusals (one event's error when single, else
 * 400 no_valid_events with each). Otherwise produces the records and answers in->ok_status
 * once Kafka acknowledged every one (finish_http): {<head>"accepted":N,"messageIds":[...],
 * "errors":[...]?}, head being "{" or a protocol's success members ("{\"status\":1,"). */
static void deliver(eo_collector_t *c, ingest_t *in, eo_http_req_t *req, build_t *b, bool single,
                    const char *head, unsigned ok_status)
{
    eo_buf_t out;
    eo_buf_init(&out, build_max(c));
    if (b->accepted == 0) {
        if (single) {
            eo_http_respond_error(req, b->last_status, b->e.code, b->e.message, b->e.field, NULL);
            eo_buf_done(&out);
            return;
        }
        eo_buf_puts(&out, "{\"error\":{\"code\":\"no_valid_events\",\"message\":"
                          "\"no event in the batch is valid\"},\"accepted\":0,\"errors\":[");
        eo_buf_put(&out, b->errors.data, b->errors.len);
        eo_buf_puts(&out, "]}");
        if (!eo_buf_error(&out))
            eo_http_respond(req, 400, out.data, out.len, NULL);
        else
            eo_http_respond_error(req, 400, "no_valid_events", "no event is valid", NULL, NULL);
        eo_buf_done(&out);
        return;
    }
    eo_buf_puts(&out, head);
    eo_buf_putf(&out, "\"accepted\":%zu,\"messageIds\":[", b->accepted);
    eo_buf_put(&out, b->ids.data, b->ids.len);
    eo_buf_putc(&out, ']');
    if (b->errors.len) {
        eo_buf_puts(&out, ",\"errors\":[");
        eo_buf_put(&out, b->errors.data, b->errors.len);
        eo_buf_putc(&out, ']');
    }
    eo_buf_putc(&out, '}');
    if (eo_buf_error(&out)) {
        eo_buf_done(&out);
        eo_http_respond_error(req, 503, "overloaded", "the request could not be processed", NULL,
                              NULL);
        return;
    }
    in->accepted_body = eo_buf_steal(&out, &in->accepted_len);
    in->accepted = b->accepted;
    in->ok_status = ok_status;
    char traceparent[56];
    eo_http_traceparent(req, traceparent);
    in->w.finish = finish_http;
    eo_http_suspend(req);
    eo_ingest_produce(c, b, &in->w, eo_http_request_id(req), traceparent);
}

void eo_ingest_produce(eo_collector_t *c, const eo_ingest_build_t *b, eo_ingest_waiter_t *w,
                       const char *request_id, const char *traceparent)
{
    atomic_store(&w->failed, 0);
    atomic_store(&w->pending, (int)b->accepted + 1);
    for (size_t i = 0; i < b->accepted; i++) {
        int r = eo_kafka_sink_produce(c->sink, b->keys.data + b->spans[i].key_off,
                                      b->spans[i].key_len, b->values.data + b->spans[i].val_off,
                                      b->spans[i].val_len, request_id, traceparent, w);
        if (r < 0) {
            int expected = 0;
            atomic_compare_exchange_strong(&w->failed, &expected, r);
            atomic_fetch_sub(&w->pending, (int)(b->accepted - i)); /* never produced */
            break;
        }
    }
    release(w); /* the producing thread's hold */
}

/* ---- the build, for the gRPC service (collector_internal.h) ---- */

int eo_ingest_build_new(eo_collector_t *c, const char *tenant_id, size_t count, size_t bytes,
                        eo_ingest_build_t **out)
{
    build_t *b = malloc(sizeof *b);
    if (!b)
        return EO_ENOMEM;
    build_init(b, c, tenant_id);
    if (build_reserve(b, bytes, count ? count : 1) < 0) {
        eo_ingest_build_free(b);
        return EO_ENOMEM;
    }
    *out = b;
    return 0;
}

int eo_ingest_build_add(eo_collector_t *c, eo_ingest_build_t *b, size_t i, json_t *event,
                        int64_t received_at)
{
    int r = add_normalized(c, b, i, event, received_at);
    return r ? r : eo_buf_error(&b->ids);
}

int eo_ingest_build_refuse(eo_collector_t *c, eo_ingest_build_t *b, size_t i, eo_str_t message_id,
                           const eo_event_error_t *e)
{
    b->e = *e;
    b->last_status = 400;
    count_rejected(c->rejected, e->code);
    return append_item_error(&b->errors, i, message_id, e);
}

size_t eo_ingest_build_accepted(const eo_ingest_build_t *b)
{
    return b->accepted;
}

void eo_ingest_build_texts(const eo_ingest_build_t *b, const char **ids, size_t *ids_len,
                           const char **errors, size_t *errors_len)
{
    *ids = b->ids.data ? b->ids.data : "";
    *ids_len = b->ids.len;
    *errors = b->errors.data ? b->errors.data : "";
    *errors_len = b->errors.len;
}

const eo_event_error_t *eo_ingest_build_last_error(const eo_ingest_build_t *b, unsigned *status)
{
    *status = b->last_status;
    return &b->e;
}

void eo_ingest_count_accepted(eo_collector_t *c, size_t n)
{
    eo_counter_add(c->accepted, n);
}

void eo_ingest_observe_batch(eo_collector_t *c, size_t n)
{
    eo_histogram_observe(c->batch_size, (double)n);
}

void eo_ingest_build_free(eo_ingest_build_t *b)
{
    if (!b)
        return;
    build_done(b);
    free(b);
}

static void respond_overloaded(eo_http_req_t *req)
{
    eo_http_respond_error(req, 503, "overloaded", "the request could not be processed", NULL, NULL);
}

static void ingest_on_request(eo_http_req_t *req, void *ud, bool single)
{
    eo_collector_t *c = ud;
    ingest_t *in = eo_http_user(req);
    size_t len;
    const char *body = eo_http_body(req, &len);
    int64_t received_at = eo_clock_now_us();
    /* the scan, or (for a body it leaves to jansson) jansson's tree */
    eo_json_keys_t keys;
    eo_body_scan_t scan;
    eo_batch_t batch = {0};
    eo_json_keys_init(&keys);
    eo_body_scan_init(&scan);
    eo_event_scan_t *ev = NULL;
    build_t b;
    build_init(&b, c, in->tenant_id);
    int r = eo_body_scan(body, len, single, &c->lim, &keys, &scan);
    size_t count = scan.count;
    if (r == EO_EPARSE) {
        if ((r = eo_batch_parse(body, len, single, &c->lim, &batch, &b.e)) < 0) {
            /* the whole body: counted as one rejected event */
            count_rejected(c->rejected, b.e.code);
            eo_http_respond_error(req, r == EO_ELIMIT ? 413 : 400, b.e.code, b.e.message, b.e.field,
                                  NULL);
            goto done;
        }
        count = batch.count;
    }
    eo_histogram_observe(c->batch_size, (double)count);
    /* a reservation that fails (over the cap) leaves the buffer growing as it goes */
    if (r == 0)
        r = build_reserve(&b, len, count);
    if (r == 0 && !batch.root && !(ev = malloc(sizeof *ev)))
        r = EO_ENOMEM;
    for (size_t i = 0; i < count && r == 0; i++)
        r = batch.root ? add_normalized(c, &b, i, eo_batch_item(&batch, i), received_at)
                       : add_scanned(c, &b, i, &scan.items[i], ev, received_at);
    r = r ? r : eo_buf_error(&b.ids);
    if (r < 0)
        respond_overloaded(req);
    else
        deliver(c, in, req, &b, single, "{", 202);
done:
    free(ev);
    build_done(&b);
    eo_batch_done(&batch);
    eo_body_scan_done(&scan);
    eo_json_keys_done(&keys);
}

/* The compatibility routes, in the order of the route table from COMPAT_FIRST on. */
static const eo_compat_kind_t compat_kinds[] = {
    EO_COMPAT_TRACK,   EO_COMPAT_IDENTIFY, EO_COMPAT_PAGE,          EO_COMPAT_SCREEN,
    EO_COMPAT_GROUP,   EO_COMPAT_ALIAS,    EO_COMPAT_SEGMENT_BATCH, EO_COMPAT_SEGMENT_BATCH,
    EO_COMPAT_POSTHOG, EO_COMPAT_POSTHOG,  EO_COMPAT_POSTHOG,       EO_COMPAT_POSTHOG};
#define COMPAT_FIRST 5 /* the index of /v1/track in routes */

/* A request without an Authorization header: the write key its body carries (key, len bytes)
 * decides. */
static bool admit_by_body(eo_collector_t *c, ingest_t *in, eo_http_req_t *req,
                          eo_compat_kind_t kind, const char *key, size_t len)
{
    eo_access_t a;
    const char *field = kind == EO_COMPAT_POSTHOG ? "api_key" : "writeKey";
    if (eo_access_check_key(&c->compat_access, key, len, field, &a) != EO_ACCESS_OK) {
        eo_access_answer(&c->compat_access, req, &a);
        return false;
    }
    admitted(in, &a);
    return true;
}

/* Message i of a compatibility body through jansson: read as an EventOps event
 * (domain/compat.h), then as add_normalized. */
static int add_compat(eo_collector_t *c, build_t *b, const eo_compat_body_t *cb, size_t i,
                      int64_t received_at)
{
    json_t *ev;
    eo_str_t mid;
    int r = eo_compat_event(cb, i, received_at, &ev, &mid, &b->e);
    if (r == EO_EINVAL) {
        b->last_status = 400;
        count_rejected(c->rejected, b->e.code);
        return append_item_error(&b->errors, i, mid, &b->e);
    }
    if (r < 0)
        return r;
    r = add_normalized(c, b, i, ev, received_at);
    json_decref(ev);
    return r;
}

/* Segment's and PostHog's bodies: each message read as an EventOps event and made durable as
 * on /events/batch; answered 200 as the SDKs expect ({"success":true,...} for Segment,
 * {"status":1,...} for PostHog). Segment track messages and PostHog events that read the same
 * either way go through the ingest scan (eo_compat_scan_takes); everything else through
 * jansson, whose tree is made only when a message needs it. */
static void compat_on_request(eo_http_req_t *req, void *ud)
{
    eo_collector_t *c = ud;
    ingest_t *in = eo_http_user(req);
    eo_compat_kind_t kind = compat_kinds[eo_http_route_index(req) - COMPAT_FIRST];
    size_t len;
    const char *body = eo_http_body(req, &len);
    int64_t received_at = eo_clock_now_us();
    eo_compat_body_t cb = {0};
    eo_json_keys_t keys;
    eo_body_scan_t scan;
    eo_compat_scan_t info;
    eo_event_scan_t *ev = NULL;
    eo_json_keys_init(&keys);
    eo_body_scan_init(&scan);
    build_t b;
    build_init(&b, c, in->tenant_id);
    b.compat = true;
    b.compat_kind = kind;
    /* a key the request is admitted by must be plain text in the body (else jansson finds it) */
    bool scanned = eo_compat_scan(body, len, kind, &c->lim, &keys, &scan, &info) == 0 &&
                   !(in->body_auth && (info.write_key.kind != EO_JV_STRING || info.write_key.esc));
    int r = scanned ? 0 : eo_compat_parse(body, len, kind, &c->lim, &cb, &b.e);
    if (r < 0) {
        if (!in->body_auth) /* the whole body of an admitted client: one rejected event */
            count_rejected(c->rejected, b.e.code);
        eo_http_respond_error(req, r == EO_ELIMIT ? 413 : 400, b.e.code, b.e.message, b.e.field,
                              NULL);
        goto done;
    }
    if (in->body_auth && !(scanned ? admit_by_body(c, in, req, kind, (const char *)info.write_key.s,
                                                   info.write_key.len)
                                   : admit_by_body(c, in, req, kind, cb.key.s, cb.key.len)))
        goto done;
    size_t count = scanned ? scan.count : cb.count;
    eo_histogram_observe(c->batch_size, (double)count);
    r = build_reserve(&b, len, count);
    if (r == 0 && scanned && !(ev = malloc(sizeof *ev)))
        r = EO_ENOMEM;
    for (size_t i = 0; i < count && r == 0; i++) {
        if (scanned) {
            r = try_scanned(c, &b, &scan.items[i], ev, received_at, &info);
            if (r != 0) {
                r = r < 0 ? r : 0;
                continue;
            }
        }
        if (!cb.root && eo_compat_parse(body, len, kind, &c->lim, &cb, &b.e) < 0)
            r = EO_EPARSE; /* not reached: the scan accepted the body */
        else
            r = add_compat(c, &b, &cb, i, received_at);
    }
    r = r ? r : eo_buf_error(&b.ids);
    if (r < 0)
        respond_overloaded(req);
    else
        deliver(c, in, req, &b, scanned ? info.single : cb.single,
                kind == EO_COMPAT_POSTHOG ? "{\"status\":1," : "{\"success\":true,", 200);
done:
    free(ev);
    build_done(&b);
    eo_compat_done(&cb);
    eo_body_scan_done(&scan);
    eo_json_keys_done(&keys);
}

static void on_event(eo_http_req_t *req, void *ud)
{
    ingest_on_request(req, ud, true);
}

static void on_batch(eo_http_req_t *req, void *ud)
{
    ingest_on_request(req, ud, false);
}

static void on_readyz(eo_http_req_t *req, void *ud)
{
    eo_collector_t *c = ud;
    bool kafka = eo_kafka_sink_ready(c->sink, 1000);
    bool pg = eo_creds_fresh(c->creds);
    bool keys = !c->token_keys || eo_keystore_ready(c->token_keys);
    char body[192];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"kafka\":%s,\"postgres\":%s,\"tokenKeys\":%s,"
                     "\"rateLimiter\":\"%s\"}",
                     kafka && pg ? "ready" : "unavailable", kafka ? "true" : "false",
                     pg ? "true" : "false",
                     !c->token_keys ? "null"
                     : keys         ? "true"
                                    : "false",
                     eo_ratelimit_shared(c->limiter) ? "redis" : "local");
    eo_http_respond(req, kafka && pg ? 200 : 503, body, (size_t)n, NULL);
}

static const eo_http_route_t routes[] = {
    {"POST", "/events", ingest_on_headers, on_event, true},
    {"POST", "/events/batch", ingest_on_headers, on_batch, true},
    {"GET", "/healthz", NULL, eo_http_on_healthz, false},
    {"GET", "/openapi.json", NULL, eo_openapi_on_request, false},
    {"GET", "/readyz", NULL, on_readyz, false},
    /* COMPAT_FIRST: Segment's HTTP Tracking API, then PostHog's capture (compat_kinds) */
    {"POST", "/v1/track", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/identify", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/page", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/screen", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/group", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/alias", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/batch", compat_on_headers, compat_on_request, true},
    {"POST", "/v1/import", compat_on_headers, compat_on_request, true},
    {"POST", "/batch/", compat_on_headers, compat_on_request, true},
    {"POST", "/capture/", compat_on_headers, compat_on_request, true},
    {"POST", "/e/", compat_on_headers, compat_on_request, true},
    {"POST", "/i/v0/e/", compat_on_headers, compat_on_request, true},
};
_Static_assert(sizeof routes / sizeof routes[0] ==
                   COMPAT_FIRST + sizeof compat_kinds / sizeof compat_kinds[0],
               "every compatibility route has its kind");

int eo_collector_start(const eo_config_t *cfg, eo_collector_t **out, char *err, size_t errlen)
{
    *out = NULL;
    eo_collector_t *c = calloc(1, sizeof *c);
    if (!c)
        return EO_ENOMEM;
    c->cfg = *cfg;
    eo_event_limits_from_config(&c->lim, cfg);
    snprintf(c->retry_after, sizeof c->retry_after, "%lld", (long long)cfg->retry_after_s);
    if (!(c->metrics = eo_metrics_new())) {
        free(c);
        return EO_ENOMEM;
    }
    c->access = (eo_access_policy_t){
        .cfg = &c->cfg,
        .scope = "events:write",
        .write_keys = true,
        .missing = "send an access token or a write key as 'Authorization: Bearer ...' (a write "
                   "key also as the HTTP Basic user name)",
        .no_tokens = "this collector accepts write keys only (no token key source is configured)",
        .who = "credential",
    };
    eo_access_register_metrics(&c->access, c->metrics, "collector");
    c->accepted =
        eo_metrics_counter(c->metrics, "eventops_events_accepted_total",
                           "Events acknowledged by Kafka and answered 202.", "role=\"collector\"");
    eo_metrics_counters(c->metrics, "eventops_events_rejected_total",
                        "Events refused by validation, by reason.", "collector", "reason",
                        reject_reasons, REJECT_REASONS, c->rejected);
    c->batch_size = eo_metrics_histogram(c->metrics, "eventops_batch_size_events",
                                         "Events per ingest request.", "role=\"collector\"",
                                         eo_metrics_size_buckets, eo_metrics_size_nbuckets);
    eo_metrics_build_info(c->metrics, "collector");
    /* The threads started from here on (librdkafka's, the HTTP server's) are on the request
     * path: they take the real-time policy when one is configured; the caller's comes back. */
    eo_sched_saved_t sched;
    int r = eo_sched_rt_begin((int)cfg->collector_rt_priority, &sched, err, errlen);
    if (r < 0)
        goto fail;
    r = eo_access_services_open(cfg, c->metrics, "collector", true, &c->creds, &c->token_keys,
                                &c->limiter, err, errlen);
    if (r < 0)
        goto fail;
    if (!c->token_keys)
        eo_log_warn("collector: no token key source (EVENTOPS_AUTH_JWKS_URL or "
                    "EVENTOPS_AUTH_KEY_DIR); only write keys are accepted",
                    NULL);
    c->access.creds = c->creds;
    c->access.keys = c->token_keys;
    c->access.limiter = c->limiter;
    c->compat_access = c->access; /* the same counters and services */
    c->compat_access.missing =
        "send a write key as 'Authorization: Basic base64(KEY:)' or 'Bearer KEY', or in the body "
        "as writeKey (Segment) or api_key (PostHog)";
    if ((r = eo_kafka_sink_new(cfg, on_delivered, &c->sink, err, errlen)) < 0 ||
        (r = eo_kafka_sink_register_metrics(c->sink, c->metrics)) < 0)
        goto fail;
    eo_http_options_t opt;
    eo_http_options_from_config(&opt, cfg, cfg->collector_addr, cfg->collector_port, routes,
                                sizeof routes / sizeof routes[0], c);
    opt.metrics = c->metrics;
    opt.role = "collector";
    opt.gzip_query = true; /* PostHog's capture */
    if ((r = eo_http_server_start(&opt, &c->http, err, errlen)) < 0)
        goto fail;
    if (cfg->grpc_port >= 0 &&
        (r = eo_grpc_start(c, &c->cfg, &c->access, c->metrics, &c->grpc, err, errlen)) < 0)
        goto fail;
    eo_sched_restore(&sched);
    char port[8], gport[8];
    snprintf(port, sizeof port, "%u", (unsigned)eo_http_server_port(c->http));
    snprintf(gport, sizeof gport, "%d", c->grpc ? eo_grpc_port(c->grpc) : -1);
    eo_log_info("collector listening", "addr", cfg->collector_addr, "port", port, "grpc_port",
                gport, NULL);
    *out = c;
    return 0;
fail:
    eo_sched_restore(&sched);
    eo_collector_stop(c);
    return r;
}

uint16_t eo_collector_port(const eo_collector_t *c)
{
    return eo_http_server_port(c->http);
}

void eo_collector_stop(eo_collector_t *c)
{
    if (!c)
        return;
    if (c->grpc)
        eo_ignore(eo_grpc_drain(c->grpc, 0)); /* takes no more calls */
    if (c->http) {
        /* Requests waiting for Kafka are parked in the HTTP server, which cannot stop with one
         * parked: past the drain time, fail what Kafka has not acknowledged (503s) first. */
        eo_http_server_quiesce(c->http);
        long left = eo_http_server_drain(c->http, c->cfg.shutdown_timeout_ms);
        for (int round = 0; left > 0 && c->sink && round < 10; round++) {
            if (round == 0)
                eo_log_warn("shutdown: failing requests still waiting for Kafka", NULL);
            eo_kafka_sink_purge(c->sink); /* also what a request produced after the last round */
            left = eo_http_server_drain(c->http, 500);
        }
        eo_http_server_free(c->http, 1000);
    }
    if (c->grpc) {
        /* calls waiting for Kafka: as the HTTP requests (UNAVAILABLE once purged) */
        int left = eo_grpc_drain(c->grpc, c->http ? 1000 : c->cfg.shutdown_timeout_ms);
        for (int round = 0; left > 0 && c->sink && round < 10; round++) {
            eo_kafka_sink_purge(c->sink);
            left = eo_grpc_drain(c->grpc, 500);
        }
        eo_grpc_free(c->grpc);
    }
    eo_kafka_sink_free(c->sink, c->cfg.shutdown_timeout_ms);
    eo_access_services_close(c->creds, c->token_keys, c->limiter);
    eo_metrics_free(c->metrics);
    free(c);
}
