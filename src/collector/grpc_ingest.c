/* gRPC ingest (see grpc_ingest.h).
 *
 * A call's state (call_t) is the tag of its two completions: CALL_NEW when a call arrived (its
 * request message read by the core: GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER), CALL_DONE when
 * its answer was sent. Between the two, a call that was admitted and has events to store waits
 * for Kafka as an HTTP request does: its waiter (collector_internal.h) is the first member, and
 * whoever releases the last hold (the Kafka delivery thread, usually) starts the answer's batch;
 * nothing touches the call after that until CALL_DONE frees it on a queue thread. */
#include "collector/grpc_ingest.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector/collector_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "domain/pb_event.h"

enum { M_SEND, M_BATCH, METHODS };
static const char *const method_paths[METHODS] = {"/eventops.v1.Ingest/Send",
                                                  "/eventops.v1.Ingest/SendBatch"};

/* The status codes a call ends with (the metric's code label; "OTHER" last). */
static const char *const status_names[] = {"OK",
                                           "INVALID_ARGUMENT",
                                           "UNAUTHENTICATED",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "UNAVAILABLE",
                                           "OTHER"};
static const grpc_status_code status_codes[] = {GRPC_STATUS_OK,
                                                GRPC_STATUS_INVALID_ARGUMENT,
                                                GRPC_STATUS_UNAUTHENTICATED,
                                                GRPC_STATUS_PERMISSION_DENIED,
                                                GRPC_STATUS_RESOURCE_EXHAUSTED,
                                                GRPC_STATUS_UNAVAILABLE};
#define STATUSES (sizeof status_names / sizeof status_names[0])

typedef enum { CALL_NEW, CALL_DONE } call_state_t;

typedef struct {
    eo_ingest_waiter_t w; /* first: the Kafka sink's opaque */
    struct eo_grpc *g;
    int method;
    call_state_t state;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;  /* the request message */
    grpc_byte_buffer *response; /* the OK answer, made before the events are produced */
    grpc_metadata trailing[3];
    size_t ntrailing;
    int cancelled;
    size_t accepted;
    char tenant_id[37];
} call_t;

struct eo_grpc {
    eo_collector_t *c;
    const eo_access_policy_t *pol;
    eo_event_limits_t lim;
    int64_t retry_after_s;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *methods[METHODS];
    pthread_t *threads;
    size_t nthreads;
    int port;
    int shutdown_tag; /* its address is the tag of the server's shutdown */
    atomic_int in_flight;
    atomic_bool stopping, shutdown_done;
    bool started; /* grpc_server_start was called */
    eo_counter_t *calls[STATUSES];
};

static void call_free(call_t *k)
{
    grpc_metadata_array_destroy(&k->md);
    if (k->payload)
        grpc_byte_buffer_destroy(k->payload);
    if (k->response)
        grpc_byte_buffer_destroy(k->response);
    for (size_t i = 0; i < k->ntrailing; i++)
        grpc_slice_unref(k->trailing[i].value);
    if (k->call)
        grpc_call_unref(k->call);
    free(k);
}

/* Asks the core for the next call of method. */
static int arm(struct eo_grpc *g, int method)
{
    call_t *k = calloc(1, sizeof *k);
    if (!k)
        return EO_ENOMEM;
    k->g = g;
    k->method = method;
    k->state = CALL_NEW;
    grpc_metadata_array_init(&k->md);
    if (grpc_server_request_registered_call(g->server, g->methods[method], &k->call, &k->deadline,
                                            &k->md, &k->payload, g->cq, g->cq, k) != GRPC_CALL_OK) {
        call_free(k);
        return EO_EIO;
    }
    return 0;
}

static void add_trailing(call_t *k, const char *key, const void *value, size_t len)
{
    if (k->ntrailing == sizeof k->trailing / sizeof k->trailing[0])
        return;
    grpc_metadata *m = &k->trailing[k->ntrailing++];
    memset(m, 0, sizeof *m);
    m->key = grpc_slice_from_static_string(key);
    m->value = grpc_slice_from_copied_buffer(value, len);
}

/* Sends the call's answer: its message when it has one, then status and details; the call is
 * freed at its CALL_DONE completion. */
static void answer(call_t *k, grpc_status_code status, const char *details)
{
    struct eo_grpc *g = k->g;
    size_t si = 0;
    while (si < STATUSES - 1 && status_codes[si] != status)
        si++;
    eo_counter_add(g->calls[si], 1);
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == GRPC_STATUS_OK && k->response) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = k->response;
    }
    grpc_slice d = grpc_slice_from_copied_string(details);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    ops[n].data.send_status_from_server.status_details = &d;
    ops[n].data.send_status_from_server.trailing_metadata_count = k->ntrailing;
    ops[n++].data.send_status_from_server.trailing_metadata = k->trailing;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &k->cancelled;
    k->state = CALL_DONE;
    grpc_call_error e = grpc_call_start_batch(k->call, ops, n, k, NULL);
    grpc_slice_unref(d);
    if (e != GRPC_CALL_OK) { /* no completion will come */
        eo_log_warn("grpc: cannot answer a call", "error", grpc_call_error_to_string(e), NULL);
        atomic_fetch_sub(&g->in_flight, 1);
        call_free(k);
    }
}

/* A refusal: status, "code: message" as details, and the code and field as trailing metadata
 * (eventops-error-code, eventops-error-field); retry_s > 0 adds a google.rpc.RetryInfo. */
static void refuse(call_t *k, grpc_status_code status, const char *code, const char *message,
                   const char *field, int64_t retry_s)
{
    char details[400];
    snprintf(details, sizeof details, "%.40s: %.340s", code, message);
    add_trailing(k, "eventops-error-code", code, strlen(code));
    if (field && *field)
        add_trailing(k, "eventops-error-field", field, strlen(field));
    if (retry_s > 0) {
        eo_buf_t st;
        eo_buf_init(&st, 4096);
        if (eo_pb_retry_status((int)status, details, retry_s, &st) == 0)
            add_trailing(k, "grpc-status-details-bin", st.data, st.len);
        eo_buf_done(&st);
    }
    answer(k, status, details);
}

/* The answer once Kafka acknowledged (or failed) every record the call produced. */
static void finish_kafka(eo_ingest_waiter_t *w)
{
    call_t *k = (call_t *)w;
    if (atomic_load(&k->w.failed)) {
        refuse(k, GRPC_STATUS_UNAVAILABLE, "kafka_unavailable",
               "the events could not be made durable in time; retry with the same messageIds", NULL,
               k->g->retry_after_s);
        return;
    }
    eo_ingest_count_accepted(k->g->c, k->accepted);
    answer(k, GRPC_STATUS_OK, "");
}

/* The value of metadata key (lower case) as a NUL-terminated copy in out; false when absent or
 * too long. */
static bool metadata(const call_t *k, const char *key, char *out, size_t cap)
{
    for (size_t i = 0; i < k->md.count; i++) {
        const grpc_metadata *m = &k->md.metadata[i];
        if (grpc_slice_str_cmp(m->key, key) != 0)
            continue;
        size_t n = GRPC_SLICE_LENGTH(m->value);
        if (n >= cap || memchr(GRPC_SLICE_START_PTR(m->value), '\0', n))
            return false;
        memcpy(out, GRPC_SLICE_START_PTR(m->value), n);
        out[n] = '\0';
        return true;
    }
    return false;
}

static void refuse_access(call_t *k, const eo_access_t *a)
{
    const char *code = eo_access_refusal(k->g->pol, a);
    switch (a->verdict) {
    case EO_ACCESS_SCOPE:
        refuse(k, GRPC_STATUS_PERMISSION_DENIED, code, a->why, "authorization", 0);
        return;
    case EO_ACCESS_UNAVAILABLE:
        refuse(k, GRPC_STATUS_UNAVAILABLE, code, a->why, NULL, k->g->retry_after_s);
        return;
    case EO_ACCESS_LIMITED:
        refuse(k, GRPC_STATUS_RESOURCE_EXHAUSTED, code, a->why, NULL,
               strtoll(a->retry, NULL, 10) > 0 ? strtoll(a->retry, NULL, 10) : 1);
        return;
    default:
        refuse(k, GRPC_STATUS_UNAUTHENTICATED, code, a->why, "authorization", 0);
        return;
    }
}

/* The request's events (unpacked into *msg, freed by the caller with free_msg) into *events
 * and *n; false after refusing the call. */
static bool unpack(call_t *k, ProtobufCMessage **msg, Eventops__V1__Event ***events, size_t *n)
{
    if (!k->payload) {
        refuse(k, GRPC_STATUS_INVALID_ARGUMENT, "empty_body", "the call has no request message",
               NULL, 0);
        return false;
    }
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, k->payload)) {
        refuse(k, GRPC_STATUS_INVALID_ARGUMENT, "invalid_encoding",
               "the request message could not be decompressed", NULL, 0);
        return false;
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    const uint8_t *p = GRPC_SLICE_START_PTR(s);
    size_t len = GRPC_SLICE_LENGTH(s);
    if (k->method == M_SEND) {
        Eventops__V1__Event *e = eventops__v1__event__unpack(NULL, len, p);
        if ((*msg = (ProtobufCMessage *)e)) {
            *events = NULL;
            *n = 1;
        }
    } else {
        Eventops__V1__SendBatchRequest *b = eventops__v1__send_batch_request__unpack(NULL, len, p);
        if ((*msg = (ProtobufCMessage *)b)) {
            *events = b->events;
            *n = b->n_events;
        }
    }
    grpc_slice_unref(s);
    if (!*msg) {
        refuse(k, GRPC_STATUS_INVALID_ARGUMENT, "malformed_message",
               k->method == M_SEND ? "the request is not an eventops.v1.Event message"
                                   : "the request is not an eventops.v1.SendBatchRequest message",
               NULL, 0);
        return false;
    }
    if (k->method == M_BATCH && *n == 0) {
        refuse(k, GRPC_STATUS_INVALID_ARGUMENT, "empty_batch", "the batch holds no events",
               "events", 0);
        return false;
    }
    if (*n > k->g->lim.max_batch_events) {
        char m[96];
        snprintf(m, sizeof m, "the batch holds more than %zu events (EVENTOPS_MAX_BATCH_EVENTS)",
                 k->g->lim.max_batch_events);
        refuse(k, GRPC_STATUS_INVALID_ARGUMENT, "too_many_events", m, "events", 0);
        return false;
    }
    return true;
}

/* Builds event i of the call into b: its record, or its refusal. 0 or a failure. */
static int add_event(call_t *k, eo_ingest_build_t *b, size_t i, const Eventops__V1__Event *e,
                     int64_t received_at)
{
    json_t *obj;
    eo_event_error_t err;
    int r = eo_pb_event_json(e, &obj, &err);
    if (r == EO_EINVAL) {
        eo_str_t mid = {NULL, 0};
        if (e->message_id && *e->message_id)
            mid = (eo_str_t){e->message_id, strlen(e->message_id)};
        return eo_ingest_build_refuse(k->g->c, b, i, mid, &err);
    }
    if (r < 0)
        return r;
    r = eo_ingest_build_add(k->g->c, b, i, obj, received_at);
    json_decref(obj);
    return r;
}

/* The refusal of a call none of whose events is valid. */
static void refuse_events(call_t *k, const eo_ingest_build_t *b)
{
    unsigned status;
    const eo_event_error_t *e = eo_ingest_build_last_error(b, &status);
    if (k->method == M_SEND) {
        refuse(k, GRPC_STATUS_INVALID_ARGUMENT, e->code, e->message, e->field, 0);
        return;
    }
    char m[320];
    snprintf(m, sizeof m, "no event in the batch is valid (the last: %.40s: %.200s)", e->code,
             e->message);
    refuse(k, GRPC_STATUS_INVALID_ARGUMENT, "no_valid_events", m, e->field, 0);
}

/* A call that arrived: admitted, read, built, produced; answered now (a refusal) or once Kafka
 * acknowledged its events (finish_kafka). */
static void handle(call_t *k)
{
    struct eo_grpc *g = k->g;
    int64_t received_at = eo_clock_now_us();
    char auth[4096];
    eo_access_t a;
    if (eo_access_check(g->pol, metadata(k, "authorization", auth, sizeof auth) ? auth : NULL,
                        &a) != EO_ACCESS_OK) {
        refuse_access(k, &a);
        return;
    }
    memcpy(k->tenant_id, a.cred.tenant_id, sizeof k->tenant_id);
    ProtobufCMessage *msg = NULL;
    Eventops__V1__Event **events = NULL;
    size_t n = 0;
    if (!unpack(k, &msg, &events, &n))
        return;
    eo_ingest_observe_batch(g->c, n);
    size_t bytes = k->payload ? grpc_byte_buffer_length(k->payload) : 0;
    eo_ingest_build_t *b = NULL;
    int r = eo_ingest_build_new(g->c, k->tenant_id, n, bytes, &b);
    for (size_t i = 0; i < n && r == 0; i++)
        r = add_event(k, b, i, events ? events[i] : (Eventops__V1__Event *)msg, received_at);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0) {
        eo_ingest_build_free(b);
        refuse(k, GRPC_STATUS_UNAVAILABLE, "overloaded", "the call could not be processed", NULL,
               g->retry_after_s);
        return;
    }
    if ((k->accepted = eo_ingest_build_accepted(b)) == 0) {
        refuse_events(k, b);
        eo_ingest_build_free(b);
        return;
    }
    const char *ids, *errors;
    size_t ids_len, errors_len;
    eo_ingest_build_texts(b, &ids, &ids_len, &errors, &errors_len);
    eo_buf_t out;
    eo_buf_init(&out, (size_t)1 << 30);
    if (eo_pb_send_response(k->accepted, ids, ids_len, errors, errors_len, &out) < 0) {
        eo_buf_done(&out);
        eo_ingest_build_free(b);
        refuse(k, GRPC_STATUS_UNAVAILABLE, "overloaded", "the call could not be processed", NULL,
               g->retry_after_s);
        return;
    }
    grpc_slice s = grpc_slice_from_copied_buffer(out.data ? out.data : "", out.len);
    k->response = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    eo_buf_done(&out);
    char request_id[128];
    bool has_id = metadata(k, "x-request-id", request_id, sizeof request_id);
    k->w.finish = finish_kafka;
    eo_ingest_produce(g->c, b, &k->w, has_id ? request_id : NULL, NULL); /* k may be gone now */
    eo_ingest_build_free(b);
}

static void *serve(void *arg)
{
    struct eo_grpc *g = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &g->shutdown_tag) {
            atomic_store(&g->shutdown_done, true);
            continue;
        }
        call_t *k = ev.tag;
        if (k->state == CALL_DONE) {
            atomic_fetch_sub(&g->in_flight, 1);
            call_free(k);
            continue;
        }
        if (!ev.success) { /* the server is shutting down */
            call_free(k);
            continue;
        }
        atomic_fetch_add(&g->in_flight, 1);
        if (!atomic_load(&g->stopping) && arm(g, k->method) < 0)
            eo_log_warn("grpc: cannot wait for the next call", "method", method_paths[k->method],
                        NULL);
        handle(k);
    }
    return NULL;
}

int eo_grpc_start(eo_collector_t *c, const eo_config_t *cfg, const eo_access_policy_t *pol,
                  eo_metrics_t *m, eo_grpc_t **out, char *err, size_t errlen)
{
    *out = NULL;
    struct eo_grpc *g = calloc(1, sizeof *g);
    if (!g)
        return EO_ENOMEM;
    g->c = c;
    g->pol = pol;
    g->retry_after_s = cfg->retry_after_s;
    eo_event_limits_from_config(&g->lim, cfg);
    eo_metrics_counters(m, "eventops_grpc_calls_total",
                        "gRPC ingest calls answered, by status code.", "collector", "code",
                        status_names, STATUSES, g->calls);
    grpc_init();
    /* the largest request message: the HTTP body limit; compressed messages are taken (gzip,
     * deflate) and answers are not compressed */
    grpc_arg args[2];
    memset(args, 0, sizeof args);
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)cfg->max_body_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[1].value.integer = (int)cfg->grpc_max_streams;
    grpc_channel_args cargs = {2, args};
    g->server = grpc_server_create(&cargs, NULL);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);
    for (int i = 0; i < METHODS; i++)
        g->methods[i] = grpc_server_register_method(g->server, method_paths[i], NULL,
                                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    char addr[96];
    snprintf(addr, sizeof addr, "%s:%lld", cfg->collector_addr, (long long)cfg->grpc_port);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    g->port = grpc_server_add_http2_port(g->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (g->port == 0) {
        snprintf(err, errlen, "grpc: cannot listen on %s", addr);
        eo_grpc_free(g);
        return EO_EIO;
    }
    grpc_server_start(g->server);
    g->started = true;
    int r = 0;
    for (int i = 0; i < METHODS && r == 0; i++)
        for (int64_t k = 0; k < cfg->grpc_threads * 4 && r == 0; k++)
            r = arm(g, i);
    if (r == 0 && !(g->threads = calloc((size_t)cfg->grpc_threads, sizeof *g->threads)))
        r = EO_ENOMEM;
    for (int64_t i = 0; r == 0 && i < cfg->grpc_threads; i++) {
        if (pthread_create(&g->threads[i], NULL, serve, g) != 0)
            r = EO_EIO;
        else
            g->nthreads++;
    }
    if (r < 0) {
        snprintf(err, errlen, "grpc: cannot start: %s", eo_strerror(r));
        eo_grpc_free(g);
        return r;
    }
    *out = g;
    return 0;
}

int eo_grpc_port(const eo_grpc_t *g)
{
    return g->port;
}

int eo_grpc_drain(eo_grpc_t *g, int64_t timeout_ms)
{
    if (!atomic_exchange(&g->stopping, true))
        grpc_server_shutdown_and_notify(g->server, g->cq, &g->shutdown_tag);
    int64_t end = eo_clock_mono_us() + timeout_ms * 1000;
    while (!atomic_load(&g->shutdown_done) && eo_clock_mono_us() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&g->shutdown_done))
        return 0;
    int n = atomic_load(&g->in_flight);
    return n > 0 ? n : 1;
}

void eo_grpc_free(eo_grpc_t *g)
{
    if (!g)
        return;
    if (g->started && eo_grpc_drain(g, 0) != 0) {
        grpc_server_cancel_all_calls(g->server);
        if (g->nthreads)
            eo_ignore(eo_grpc_drain(g, 5000) < 0 ? -1 : 0);
    }
    if (g->server)
        grpc_server_destroy(g->server);
    if (g->cq) {
        grpc_completion_queue_shutdown(g->cq);
        for (size_t i = 0; i < g->nthreads; i++)
            pthread_join(g->threads[i], NULL);
        if (!g->nthreads) { /* no thread served the queue: drain it here */
            grpc_event ev;
            do {
                ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type == GRPC_OP_COMPLETE && ev.tag != &g->shutdown_tag)
                    call_free(ev.tag);
            } while (ev.type != GRPC_QUEUE_SHUTDOWN);
        }
        grpc_completion_queue_destroy(g->cq);
    }
    free(g->threads);
    free(g);
    grpc_shutdown();
}
