/* libmicrohttpd wrapper (see http.h).
 *
 * Threads: MHD pool threads run access_handler(), stream_reader() and request_completed(). A
 * request's answer may come from any thread; req->lock orders it with the suspension done by
 * the MHD thread, and so a stream's wake with its parking. srv->active counts requests in
 * flight (atomic) for draining on shutdown; srv->streams lists the requests answering with a
 * stream (behind streams_lock, taken before any req->lock) so that quiesce can end them. */
#include "core/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/random.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

#define EO_HTTP_MAX_ARGS 256 /* query arguments per request */
#define EO_STR_(x) #x
#define EO_STR(x) EO_STR_(x)

/* The series of one route (index nroutes: anything else). */
typedef struct {
    eo_counter_t *codes[5]; /* 1xx .. 5xx */
    eo_histogram_t *latency;
} route_metrics_t;

struct eo_http_server {
    struct MHD_Daemon *daemon;
    eo_http_options_t opt;
    route_metrics_t *rm;
    eo_http_route_t *routes; /* opt.routes: the role's, then GET /metrics */
    eo_gauge_t *in_flight;
    uint16_t port;
    bool quiesced;        /* only the stopping thread reads or writes it */
    atomic_bool draining; /* set by quiesce: new requests on open connections get 503 */
    atomic_long active;
    pthread_mutex_t streams_lock; /* guards streams and each listed request's stream links */
    struct eo_http_req *streams;  /* requests whose streamed answer was queued */
};

struct eo_http_req {
    eo_http_server_t *srv;
    struct MHD_Connection *conn;
    const eo_http_route_t *route;
    char *path; /* the request's path, kept when its route has parameters */
    eo_buf_t body;
    bool gzip;
    bool too_large;   /* the body passed the limit: discard the rest, answer 413 at its end */
    size_t discarded; /* body bytes thrown away after the limit */
    bool handled;     /* on_request was called */
    bool queued;      /* a response was handed to MHD */
    pthread_mutex_t lock;
    bool async;     /* handler called eo_http_suspend() */
    bool suspended; /* MHD_suspend_connection() was called and not yet resumed */
    /* pending answer (guarded by lock) */
    bool has_answer;
    unsigned status;
    char *answer;
    size_t answer_len;
    char **headers; /* {name, value, ..., NULL}, owned */
    /* a streamed answer (eo_http_respond_stream): set with the answer, then read-only */
    eo_http_stream_read_fn stream_read;
    void (*stream_free)(void *);
    void *stream_ud;
    bool stream_woken;  /* guarded by lock: a wake came while the stream was not parked */
    bool stream_listed; /* in srv->streams (streams_lock) */
    struct eo_http_req *stream_prev, *stream_next;
    void *user;
    void (*user_free)(void *);
    char ip[INET6_ADDRSTRLEN];
    int64_t start_us;
    size_t metrics_slot;
    char request_id[129];
    char trace_id[33];
};

static void req_free(struct eo_http_req *req)
{
    if (!req)
        return;
    if (req->stream_free)
        req->stream_free(req->stream_ud);
    if (req->user_free)
        req->user_free(req->user);
    eo_buf_done(&req->body);
    free(req->path);
    free(req->answer);
    if (req->headers) {
        for (char **h = req->headers; *h; h++)
            free(*h);
        free(req->headers);
    }
    pthread_mutex_destroy(&req->lock);
    free(req);
}

const char *eo_http_header(eo_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *eo_http_query(eo_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    bool (*fn)(void *ud, const char *name, const char *value, size_t value_len);
    void *ud;
} query_each_t;

static MHD_RESULT query_each_cb(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_len,
                                const char *value, size_t value_len)
{
    query_each_t *q = cls;
    return q->fn(q->ud, key, value, value ? value_len : 0) ? MHD_YES : MHD_NO;
}

void eo_http_query_each(eo_http_req_t *req,
                        bool (*fn)(void *ud, const char *name, const char *value, size_t value_len),
                        void *ud)
{
    query_each_t q = {fn, ud};
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, query_each_cb, &q);
}

const char *eo_http_body(eo_http_req_t *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

void eo_http_options_from_config(eo_http_options_t *opt, const eo_config_t *cfg, const char *addr,
                                 int64_t port, const eo_http_route_t *routes, size_t nroutes,
                                 void *ud)
{
    *opt = (eo_http_options_t){
        .addr = addr,
        .port = (uint16_t)port,
        .threads = (unsigned)cfg->http_threads,
        .max_connections = (unsigned)cfg->http_max_connections,
        .max_connections_per_ip = (unsigned)cfg->http_max_connections_per_ip,
        .connection_timeout_s = (unsigned)cfg->http_connection_timeout_s,
        .max_header_bytes = (size_t)cfg->http_max_header_bytes,
        .read_buffer_bytes = (size_t)cfg->http_read_buffer_bytes,
        .max_body_bytes = (size_t)cfg->max_body_bytes,
        .routes = routes,
        .nroutes = nroutes,
        .ud = ud,
    };
}

const char *eo_http_request_id(eo_http_req_t *req)
{
    return req->request_id;
}

static void random_hex(char *out, size_t bytes)
{
    uint8_t rnd[16];
    if (eo_random_id_bytes(rnd, bytes) < 0)
        memset(rnd, 0x5a, bytes); /* no randomness: still a well-formed id */
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[2 * bytes] = '\0';
}

void eo_http_traceparent(eo_http_req_t *req, char out[56])
{
    if (!req->trace_id[0]) /* no valid traceparent came: a new trace, made when first needed */
        random_hex(req->trace_id, 16);
    char span[17];
    random_hex(span, 8); /* per request: assembled without printf */
    memcpy(out, "00-", 3);
    memcpy(out + 3, req->trace_id, 32);
    out[35] = '-';
    memcpy(out + 36, span, 16);
    memcpy(out + 52, "-01", 4);
}

static bool lower_hex(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero = nonzero || s[i] != '0';
    }
    return nonzero;
}

/* Takes the client's X-Request-Id and traceparent trace id when well formed, else new ones. */
static void identify(struct eo_http_req *req)
{
    const char *id = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = id ? strlen(id) : 0;
    bool ok = n > 0 && n < sizeof req->request_id;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)id[i]) || strchr("._:-", id[i]);
    if (ok)
        memcpy(req->request_id, id, n + 1);
    else
        random_hex(req->request_id, 16);
    const char *tp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "traceparent");
    if (tp && strlen(tp) == 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' && tp[0] &&
        tp[1] && strchr("0123456789abcdef", tp[0]) && strchr("0123456789abcdef", tp[1]) &&
        strncmp(tp, "ff", 2) != 0 && lower_hex(tp + 3, 32) && lower_hex(tp + 36, 16)) {
        memcpy(req->trace_id, tp + 3, 32);
        req->trace_id[32] = '\0';
    } else {
        req->trace_id[0] = '\0'; /* made by eo_http_traceparent if the request needs one */
    }
}

const char *eo_http_client_ip(eo_http_req_t *req)
{
    return req->ip;
}

void eo_http_on_healthz(eo_http_req_t *req, void *ud)
{
    eo_http_respond(req, 200, "{\"status\":\"ok\"}", 15, NULL);
}

size_t eo_http_route_index(eo_http_req_t *req)
{
    return (size_t)(req->route - req->srv->opt.routes);
}

bool eo_http_path_param(eo_http_req_t *req, const char *name, char *out, size_t cap)
{
    const char *value;
    size_t n;
    if (!req->route || !req->path ||
        !eo_route_param(req->route->path, req->path, name, &value, &n) || n >= cap)
        return false;
    memcpy(out, value, n);
    out[n] = '\0';
    return true;
}

const char *eo_http_role(eo_http_req_t *req)
{
    return req->srv->opt.role ? req->srv->opt.role : "";
}

void eo_http_set_user(eo_http_req_t *req, void *user, void (*free_fn)(void *))
{
    req->user = user;
    req->user_free = free_fn;
}

void *eo_http_user(eo_http_req_t *req)
{
    return req->user;
}

/* libmicrohttpd's content reader of a streamed answer: the caller's read, and parking when it
 * has nothing (see eo_http_respond_stream). Runs on the MHD thread of the connection. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct eo_http_req *req = cls;
    for (;;) {
        bool closing = atomic_load(&req->srv->draining);
        long n = req->stream_read(req->stream_ud, buf, max, closing);
        if (n > 0)
            return (size_t)n <= max ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
        if (n < 0 || closing)
            return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&req->lock);
        if (req->stream_woken || atomic_load(&req->srv->draining)) {
            req->stream_woken = false; /* something came meanwhile: read again */
            pthread_mutex_unlock(&req->lock);
            continue;
        }
        MHD_suspend_connection(req->conn);
        req->suspended = true;
        pthread_mutex_unlock(&req->lock);
        return 0;
    }
}

void eo_http_stream_wake(eo_http_req_t *req)
{
    pthread_mutex_lock(&req->lock);
    bool resume = req->suspended;
    req->suspended = false;
    if (!resume)
        req->stream_woken = true;
    pthread_mutex_unlock(&req->lock);
    if (resume)
        MHD_resume_connection(req->conn);
}

/* The MHD response of the stored answer: its bytes, or its stream (then listed for quiesce). */
static struct MHD_Response *make_response(struct eo_http_req *req)
{
    if (!req->stream_read)
        return MHD_create_response_from_buffer(
            req->answer_len, req->answer ? req->answer : (char *)"", MHD_RESPMEM_MUST_COPY);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, req, NULL);
    if (!resp)
        return NULL;
    eo_http_server_t *srv = req->srv;
    pthread_mutex_lock(&srv->streams_lock);
    req->stream_next = srv->streams;
    if (srv->streams)
        srv->streams->stream_prev = req;
    srv->streams = req;
    req->stream_listed = true;
    pthread_mutex_unlock(&srv->streams_lock);
    return resp;
}

/* Hands the stored answer to MHD. Runs on the MHD thread. */
static MHD_RESULT queue_answer(struct eo_http_req *req)
{
    struct MHD_Response *resp = make_response(req);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    bool content_type = false, cache_control = false;
    if (req->headers)
        for (char **h = req->headers; h[0] && h[1]; h += 2) {
            MHD_add_response_header(resp, h[0], h[1]);
            content_type = content_type || !strcasecmp(h[0], "Content-Type");
            cache_control = cache_control || !strcasecmp(h[0], "Cache-Control");
        }
    if (!content_type && req->status != 204) /* a 204 has no content to type */
        MHD_add_response_header(resp, "Content-Type", "application/json");
    if (!cache_control) /* the default: answers carry tenant data */
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_RESULT r = MHD_queue_response(req->conn, req->status, resp);
    MHD_destroy_response(resp);
    req->queued = true;
    return r;
}

/* A copy of headers ({name, value, ..., NULL}; NULL for none or out of memory). */
static char **copy_headers(const char *const *headers, size_t *n)
{
    size_t nh = 0;
    while (headers && headers[nh] && headers[nh + 1])
        nh += 2;
    *n = nh;
    char **hs = nh ? calloc(nh + 1, sizeof *hs) : NULL;
    for (size_t i = 0; hs && i < nh; i++)
        hs[i] = strdup(headers[i]);
    return hs;
}

static void free_headers(char **hs, size_t n)
{
    for (size_t i = 0; hs && i < n; i++)
        free(hs[i]);
    free(hs);
}

void eo_http_respond(eo_http_req_t *req, unsigned status, const char *json, size_t len,
                     const char *const *headers)
{
    char *copy = malloc(len + 1);
    size_t nh;
    char **hs = copy_headers(headers, &nh);
    if (copy) {
        memcpy(copy, json, len);
        copy[len] = '\0';
    }
    pthread_mutex_lock(&req->lock);
    if (req->has_answer) { /* a second answer is a bug; keep the first */
        pthread_mutex_unlock(&req->lock);
        free(copy);
        free_headers(hs, nh);
        return;
    }
    req->has_answer = true;
    req->status = copy ? status : 500;
    req->answer = copy;
    req->answer_len = copy ? len : 0;
    req->headers = hs;
    bool resume = req->suspended;
    req->suspended = false;
    pthread_mutex_unlock(&req->lock);
    if (resume)
        MHD_resume_connection(req->conn);
}

void eo_http_respond_stream(eo_http_req_t *req, unsigned status, const char *const *headers,
                            eo_http_stream_read_fn read, void (*free_fn)(void *ud), void *ud)
{
    size_t nh;
    char **hs = copy_headers(headers, &nh);
    pthread_mutex_lock(&req->lock);
    if (req->has_answer) { /* a second answer is a bug; keep the first */
        pthread_mutex_unlock(&req->lock);
        free_headers(hs, nh);
        free_fn(ud);
        return;
    }
    req->has_answer = true;
    req->status = status;
    req->headers = hs;
    req->stream_read = read;
    req->stream_free = free_fn;
    req->stream_ud = ud;
    bool resume = req->suspended;
    req->suspended = false;
    pthread_mutex_unlock(&req->lock);
    if (resume)
        MHD_resume_connection(req->conn);
}

void eo_http_respond_error(eo_http_req_t *req, unsigned status, const char *code,
                           const char *message, const char *field, const char *const *headers)
{
    eo_buf_t b;
    eo_buf_init(&b, 4096);
    eo_buf_puts(&b, "{\"error\":{\"code\":");
    eo_buf_put_json_str(&b, code, strlen(code));
    eo_buf_puts(&b, ",\"message\":");
    eo_buf_put_json_str(&b, message, strlen(message));
    if (field && *field) {
        eo_buf_puts(&b, ",\"field\":");
        eo_buf_put_json_str(&b, field, strlen(field));
    }
    eo_buf_puts(&b, "}}");
    if (eo_buf_error(&b) < 0)
        eo_http_respond(req, status, "{\"error\":{\"code\":\"internal\"}}", 28, headers);
    else
        eo_http_respond(req, status, b.data, b.len, headers);
    eo_buf_done(&b);
}

void eo_http_suspend(eo_http_req_t *req)
{
    req->async = true;
}

static bool json_content_type(const char *ct)
{
    if (!ct || !*ct)
        return true; /* tolerated: many SDKs send none */
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
           (n == 10 && !strncasecmp(ct, "text/plain", 10));
}

/* Inflates a gzip body into a new buffer capped at max; replaces *body on success. */
static int gunzip(eo_buf_t *body, size_t max, const char **why)
{
    eo_buf_t out;
    eo_buf_init(&out, max);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        *why = "cannot start gzip decoding";
        return EO_ENOMEM;
    }
    zs.next_in = (Bytef *)body->data;
    zs.avail_in = (uInt)body->len;
    int r = 0;
    for (;;) {
        size_t want = out.max - out.len;
        if (want > 65536)
            want = 65536;
        unsigned char probe;
        if (want == 0) { /* full: the stream must end without another byte */
            zs.next_out = &probe;
            zs.avail_out = 1;
        } else if ((r = eo_buf_reserve(&out, want)) < 0) {
            *why = "out of memory";
            break;
        } else {
            zs.next_out = (Bytef *)out.data + out.len;
            zs.avail_out = (uInt)want;
        }
        int zr = inflate(&zs, Z_NO_FLUSH);
        if (want == 0 && zs.avail_out == 0) {
            *why = "the body exceeds the size limit after decompression";
            r = EO_ELIMIT;
            break;
        }
        if (want > 0) {
            out.len += want - zs.avail_out;
            out.data[out.len] = '\0';
        }
        if (zr == Z_STREAM_END) {
            if (zs.avail_in != 0) {
                *why = "trailing data after the gzip stream";
                r = EO_EPARSE;
            }
            break;
        }
        if ((zr != Z_OK && zr != Z_BUF_ERROR) || (zr == Z_BUF_ERROR && zs.avail_in == 0) ||
            (zs.avail_in == 0 && zs.avail_out != 0)) {
            *why = "the body is not valid gzip";
            r = EO_EPARSE;
            break;
        }
    }
    inflateEnd(&zs);
    if (r < 0) {
        eo_buf_done(&out);
        return r;
    }
    eo_buf_done(body);
    *body = out;
    return 0;
}

static MHD_RESULT add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    size_t *total = cls;
    *total += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

static MHD_RESULT respond_now(struct eo_http_req *req, unsigned status, const char *code,
                              const char *msg, const char *field)
{
    eo_http_respond_error(req, status, code, msg, field, NULL);
    return queue_answer(req);
}

/* Sends a complete JSON error answer straight on the socket and shuts it down. Only for
 * requests libmicrohttpd itself cannot answer (see check_uri). */
static void refuse_on_socket(struct MHD_Connection *conn, unsigned status, const char *reason,
                             const char *code, const char *message)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    char body[256], answer[640], id[33];
    random_hex(id, 16);
    int nb = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                      message);
    int n = snprintf(answer, sizeof answer,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
                     "Cache-Control: no-store\r\nX-Request-Id: %s\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     status, reason, id, nb, body);
    if (n > 0 && (size_t)n < sizeof answer)
        eo_ignore((int)send(ci->connect_fd, answer, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT));
    shutdown(ci->connect_fd, SHUT_RDWR); /* libmicrohttpd then closes the connection */
}

/* Called with the raw request target before libmicrohttpd stores the query arguments. Each
 * argument takes a record from the connection's memory pool, and libmicrohttpd 0.9.75 neither
 * answers nor closes when the pool runs out (the connection hangs until its timeout). The pool
 * runs out with many arguments, or with a target so long that the read buffer leaves no room for
 * a few: so a target longer than the header limit, or with more than EO_HTTP_MAX_ARGS arguments,
 * is answered here and the connection closed (access_handler's own 431 comes too late for them). */
static void *check_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    eo_http_server_t *srv = cls;
    size_t len = strlen(uri), args = 0;
    const char *q = strchr(uri, '?');
    for (const char *p = q; p && *p; p++)
        args += *p == '&' || *p == '?';
    if (len > srv->opt.max_header_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request line and headers exceed %zu bytes",
                 srv->opt.max_header_bytes);
        refuse_on_socket(conn, 431, "Request Header Fields Too Large", "headers_too_large", msg);
    } else if (args > EO_HTTP_MAX_ARGS) {
        refuse_on_socket(
            conn, 400, "Bad Request", "too_many_parameters",
            "the query string holds more than " EO_STR(EO_HTTP_MAX_ARGS) " parameters");
    }
    return NULL; /* the request's state is made by access_handler */
}

/* GET /metrics, a route of every server given a registry. */
static void on_metrics(eo_http_req_t *req, void *ud)
{
    eo_buf_t text;
    eo_buf_init(&text, 16 * 1024 * 1024);
    static const char *const plain[] = {"Content-Type", "text/plain; version=0.0.4", NULL};
    if (eo_metrics_write(req->srv->opt.metrics, &text) == 0)
        eo_http_respond(req, 200, text.data, text.len, plain);
    else
        eo_http_respond_error(req, 503, "overloaded", "metrics could not be written", NULL, NULL);
    eo_buf_done(&text);
}

/* The request's state, made on libmicrohttpd's first call (NULL: no memory). */
static struct eo_http_req *req_new(eo_http_server_t *srv, struct MHD_Connection *conn)
{
    struct eo_http_req *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    pthread_mutex_init(&req->lock, NULL);
    req->srv = srv;
    req->conn = conn;
    eo_buf_init(&req->body, srv->opt.max_body_bytes);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->ip,
                      sizeof req->ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->ip,
                      sizeof req->ip);
    }
    eo_log_thread_role(srv->opt.role); /* this pool thread serves one role */
    atomic_fetch_add(&srv->active, 1);
    req->start_us = eo_clock_mono_us();
    req->metrics_slot = srv->opt.nroutes;
    eo_gauge_add(srv->in_flight, 1);
    identify(req);
    return req;
}

/* 405 with `Allow`: the methods of the routes of url (a path the server knows). */
static MHD_RESULT refuse_method(struct eo_http_req *req, const char *url)
{
    char allow[128];
    eo_route_allow(req->srv->opt.routes, req->srv->opt.nroutes, url, allow, sizeof allow);
    const char *h[] = {"Allow", allow, NULL};
    eo_http_respond_error(req, 405, "method_not_allowed", "this method is not allowed on this path",
                          NULL, h);
    return queue_answer(req);
}

/* The checks of the route's body headers: a declared length over the limit (413), an encoding
 * other than gzip or identity (415), a JSON route's content type (415). Answers and returns
 * false on a refusal. */
static bool body_headers_ok(struct eo_http_req *req, MHD_RESULT *result)
{
    const eo_http_server_t *srv = req->srv;
    struct MHD_Connection *conn = req->conn;
    const char *len_hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (len_hdr) {
        char *end;
        unsigned long long n = strtoull(len_hdr, &end, 10);
        if (*end == '\0' && n > srv->opt.max_body_bytes) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body exceeds the limit of %zu bytes",
                     srv->opt.max_body_bytes);
            *result = respond_now(req, 413, "body_too_large", msg, NULL);
            return false;
        }
    }
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && *enc && strcasecmp(enc, "identity") != 0) {
        if (strcasecmp(enc, "gzip") != 0) {
            *result = respond_now(req, 415, "unsupported_encoding",
                                  "Content-Encoding must be gzip or identity", NULL);
            return false;
        }
        req->gzip = true;
    }
    const char *compression =
        srv->opt.gzip_query
            ? MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "compression")
            : NULL;
    if (compression && (!strcmp(compression, "gzip-js") || !strcmp(compression, "gzip")))
        req->gzip = true;
    if (req->route->json_body &&
        !json_content_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"))) {
        *result = respond_now(req, 415, "unsupported_media_type",
                              "Content-Type must be application/json", NULL);
        return false;
    }
    return true;
}

/* libmicrohttpd's first call of a request (headers in, no body byte read): makes its state,
 * then refuses what the headers alone decide (431, 503 while draining, 404, 405, 413, 415, the
 * route's on_headers) or lets the body come. */
static MHD_RESULT first_call(eo_http_server_t *srv, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, void **con_cls)
{
    struct eo_http_req *req = req_new(srv, conn);
    if (!req)
        return MHD_NO;
    *con_cls = req;

    size_t header_bytes = strlen(url) + strlen(method) + strlen(version) + 4;
    MHD_get_connection_values(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_header_size,
                              &header_bytes);
    if (header_bytes > srv->opt.max_header_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request line and headers exceed %zu bytes",
                 srv->opt.max_header_bytes);
        return respond_now(req, 431, "headers_too_large", msg, NULL);
    }
    if (atomic_load(&srv->draining)) { /* a keep-alive client's next request */
        static const char *const closing[] = {"Retry-After", "1", "Connection", "close", NULL};
        eo_http_respond_error(req, 503, "shutting_down",
                              "the server is shutting down; retry on a new connection", NULL,
                              closing);
        return queue_answer(req);
    }
    size_t idx = 0;
    eo_route_result_t found = eo_route_find(srv->opt.routes, srv->opt.nroutes, method, url, &idx);
    if (found == EO_ROUTE_NO_METHOD)
        return refuse_method(req, url);
    if (found == EO_ROUTE_NO_PATH)
        return respond_now(req, 404, "not_found", "no such endpoint", NULL);
    req->route = &srv->opt.routes[idx];
    req->metrics_slot = idx;
    if (strchr(req->route->path, '{') && !(req->path = strdup(url)))
        return respond_now(req, 503, "overloaded", "out of memory", NULL);
    MHD_RESULT refused;
    if (!body_headers_ok(req, &refused))
        return refused;
    if (req->route->on_headers && !req->route->on_headers(req, srv->opt.ud))
        return queue_answer(req);
    return MHD_YES;
}

/* A chunk of the body: stored up to the limit. libmicrohttpd cannot queue an answer in the
 * middle of a body: past the limit the rest is read without being stored and answered 413 at
 * its end (dispatch); a sender that goes on far past it is cut off. */
static MHD_RESULT take_body(struct eo_http_req *req, const char *data, size_t *size)
{
    if (!req->too_large && eo_buf_append(&req->body, data, *size) < 0) {
        req->too_large = true;
        eo_buf_done(&req->body);
    }
    if (req->too_large) {
        req->discarded += *size;
        if (req->discarded > 4 * req->srv->opt.max_body_bytes)
            return MHD_NO;
    }
    *size = 0;
    return MHD_YES;
}

/* The whole body is in: 413 if it passed the limit; else decompressed and handed to the route's
 * on_request, whose answer is queued now or, when it suspended the request, once it comes
 * (libmicrohttpd calls again after MHD_resume_connection). */
static MHD_RESULT dispatch(struct eo_http_req *req)
{
    const eo_http_server_t *srv = req->srv;
    if (req->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body exceeds the limit of %zu bytes",
                 srv->opt.max_body_bytes);
        return respond_now(req, 413, "body_too_large", msg, NULL);
    }
    if (req->handled) { /* resumed after an asynchronous answer */
        pthread_mutex_lock(&req->lock);
        bool ready = req->has_answer;
        pthread_mutex_unlock(&req->lock);
        return ready ? queue_answer(req) : MHD_YES;
    }
    req->handled = true;
    if (req->gzip && req->body.len > 0) {
        const char *why = NULL;
        int r = gunzip(&req->body, srv->opt.max_body_bytes, &why);
        if (r == EO_ELIMIT)
            return respond_now(req, 413, "body_too_large", why, NULL);
        if (r < 0)
            return respond_now(req, 400, "invalid_gzip", why, NULL);
    }
    req->route->on_request(req, srv->opt.ud);
    pthread_mutex_lock(&req->lock);
    if (!req->has_answer) {
        if (!req->async) {
            pthread_mutex_unlock(&req->lock);
            return respond_now(req, 500, "internal", "the handler gave no answer", NULL);
        }
        MHD_suspend_connection(req->conn);
        req->suspended = true;
        pthread_mutex_unlock(&req->lock);
        return MHD_YES;
    }
    pthread_mutex_unlock(&req->lock);
    return queue_answer(req);
}

static MHD_RESULT access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct eo_http_req *req = *con_cls;
    if (!req)
        return first_call(cls, conn, url, method, version, con_cls);
    if (req->queued) { /* answered early: swallow the rest of the body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0)
        return take_body(req, upload_data, upload_data_size);
    return dispatch(req);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    eo_http_server_t *srv = cls;
    struct eo_http_req *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    if (srv->rm) {
        route_metrics_t *rm = &srv->rm[req->metrics_slot];
        unsigned cls_ = req->has_answer ? req->status / 100 : 0;
        if (cls_ >= 1 && cls_ <= 5)
            eo_counter_add(rm->codes[cls_ - 1], 1);
        eo_histogram_observe(rm->latency, (double)(eo_clock_mono_us() - req->start_us) / 1e6);
    }
    eo_gauge_add(srv->in_flight, -1);
    if (req->stream_listed) {
        pthread_mutex_lock(&srv->streams_lock);
        if (req->stream_prev)
            req->stream_prev->stream_next = req->stream_next;
        else
            srv->streams = req->stream_next;
        if (req->stream_next)
            req->stream_next->stream_prev = req->stream_prev;
        req->stream_listed = false;
        pthread_mutex_unlock(&srv->streams_lock);
    }
    req_free(req);
    atomic_fetch_sub(&srv->active, 1);
}

/* Registers the request series of every route (a path served by several methods shares them)
 * and "other". */
static int register_metrics(eo_http_server_t *srv)
{
    const eo_http_options_t *o = &srv->opt;
    srv->rm = calloc(o->nroutes + 1, sizeof *srv->rm);
    if (!srv->rm)
        return EO_ENOMEM;
    const char *role = o->role ? o->role : "unknown";
    char labels[256];
    snprintf(labels, sizeof labels, "role=\"%s\"", role);
    srv->in_flight = eo_metrics_gauge(o->metrics, "eventops_http_requests_in_flight",
                                      "HTTP requests being handled.", labels);
    for (size_t i = 0; i < o->nroutes + 1; i++) {
        const char *route = i < o->nroutes ? o->routes[i].path : "other";
        for (int c = 0; c < 5; c++) {
            snprintf(labels, sizeof labels, "role=\"%s\",route=\"%s\",code=\"%dxx\"", role, route,
                     c + 1);
            srv->rm[i].codes[c] =
                eo_metrics_counter(o->metrics, "eventops_http_requests_total",
                                   "HTTP requests answered, by route and status class.", labels);
        }
        snprintf(labels, sizeof labels, "role=\"%s\",route=\"%s\"", role, route);
        srv->rm[i].latency =
            eo_metrics_histogram(o->metrics, "eventops_http_request_duration_seconds",
                                 "Time from the request's arrival to the end of its answer.",
                                 labels, eo_metrics_latency_buckets, eo_metrics_latency_nbuckets);
    }
    return 0;
}

/* libmicrohttpd's error lines. A client that went away while its answer was being sent (a
 * stream's client closing it, mostly) is no fault of the server: logged at debug level. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    bool gone = strstr(msg, "no longer available for sending") ||
                strstr(msg, "forcibly closed by remote peer") ||
                strstr(msg, "socket is not connected");
    eo_log(gone ? EO_LOG_DEBUG : EO_LOG_WARN, "http server", "error", msg, NULL);
}

int eo_http_server_start(const eo_http_options_t *opt, eo_http_server_t **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    eo_http_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return EO_ENOMEM;
    pthread_mutex_init(&srv->streams_lock, NULL);
    srv->opt = *opt;
    /* the role's routes, and GET /metrics when there is a registry to serve */
    srv->routes = calloc(opt->nroutes + 1, sizeof *srv->routes);
    if (!srv->routes) {
        pthread_mutex_destroy(&srv->streams_lock);
        free(srv);
        return EO_ENOMEM;
    }
    memcpy(srv->routes, opt->routes, opt->nroutes * sizeof *srv->routes);
    if (opt->metrics)
        srv->routes[srv->opt.nroutes++] =
            (eo_http_route_t){"GET", "/metrics", NULL, on_metrics, false};
    srv->opt.routes = srv->routes;
    if (opt->metrics && register_metrics(srv) < 0) {
        free(srv->routes);
        pthread_mutex_destroy(&srv->streams_lock);
        free(srv);
        return EO_ENOMEM;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, opt->addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(opt->port);
    } else if (inet_pton(AF_INET6, opt->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(opt->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "not a numeric IP address: %s", opt->addr);
        free(srv->rm);
        free(srv->routes);
        pthread_mutex_destroy(&srv->streams_lock);
        free(srv);
        return EO_EINVAL;
    }
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)opt->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)opt->max_connections_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)opt->connection_timeout_s, NULL},
        /* room for headers up to the limit plus the read buffer, so that requests just over
         * the limit still get our JSON 431; far larger ones get MHD's own 431 (check_uri keeps
         * the query arguments within it). libmicrohttpd clears the whole pool for every
         * request on a connection, so it is kept no larger than that: a body larger than the
         * read buffer arrives in several pieces, which costs less than clearing more. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT,
         (intptr_t)(2 * opt->max_header_bytes +
                    (opt->read_buffer_bytes ? opt->read_buffer_bytes : 16384)),
         NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)check_uri, srv},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_completed, srv},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {opt->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)opt->threads,
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    srv->daemon = MHD_start_daemon(flags, opt->port, NULL, NULL, access_handler, srv,
                                   MHD_OPTION_ARRAY, options, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %u", opt->addr, (unsigned)opt->port);
        free(srv->rm);
        free(srv->routes);
        pthread_mutex_destroy(&srv->streams_lock);
        free(srv);
        return EO_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : opt->port;
    *out = srv;
    return 0;
}

uint16_t eo_http_server_port(const eo_http_server_t *srv)
{
    return srv->port;
}

void eo_http_server_quiesce(eo_http_server_t *srv)
{
    if (srv->quiesced)
        return;
    srv->quiesced = true;
    atomic_store(&srv->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    /* streams end: each reads again with closing set (a parked one is unparked) */
    pthread_mutex_lock(&srv->streams_lock);
    for (struct eo_http_req *req = srv->streams; req; req = req->stream_next)
        eo_http_stream_wake(req);
    pthread_mutex_unlock(&srv->streams_lock);
}

long eo_http_server_drain(eo_http_server_t *srv, int64_t timeout_ms)
{
    int64_t deadline = eo_clock_mono_us() + timeout_ms * 1000;
    while (atomic_load(&srv->active) > 0 && eo_clock_mono_us() < deadline)
        eo_clock_sleep_ms(10);
    return atomic_load(&srv->active);
}

void eo_http_server_free(eo_http_server_t *srv, int64_t timeout_ms)
{
    if (!srv)
        return;
    eo_http_server_quiesce(srv);
    eo_http_server_drain(srv, timeout_ms);
    MHD_stop_daemon(srv->daemon);
    free(srv->rm);
    free(srv->routes);
    pthread_mutex_destroy(&srv->streams_lock);
    free(srv);
}
