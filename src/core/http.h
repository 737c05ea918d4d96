/* HTTP server wrapper over libmicrohttpd: routing, bounded bodies (gzip too), JSON errors,
 * asynchronous and streamed responses.
 *
 * Threads: MHD's pool threads run the callbacks. A handler either answers before returning
 * (eo_http_respond) or calls eo_http_suspend() and answers later from any thread; the request
 * stays alive until its answer has been sent. Headers and the body may be read only inside the
 * callbacks (and the body until the answer is given). */
#ifndef EO_CORE_HTTP_H
#define EO_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct eo_http_server eo_http_server_t;
typedef struct eo_http_req eo_http_req_t;

typedef struct {
    const char *method;
    const char *path;
    /* Optional: called once the headers are in, before any body byte is read (authenticate
     * here). Return true to go on, or answer and return false. */
    bool (*on_headers)(eo_http_req_t *req, void *ud);
    /* Called once with the whole (decompressed) body. */
    void (*on_request)(eo_http_req_t *req, void *ud);
    bool json_body; /* POST body must be JSON: other content types get 415 */
} eo_http_route_t;

/* Routing (src/core/route.c, pure): the route of (method, path) in a table. A route's path is
 * made of literal text and parameter segments "{name}" (a whole segment: after a '/', up to the
 * next '/' or the end). Literal text matches exactly; a parameter matches one non-empty segment
 * (no '/'): "/analytics/rules/{id}" matches "/analytics/rules/42", but not "/analytics/rules",
 * "/analytics/rules/" or "/analytics/rules/42/windows". Methods match case-sensitively
 * (RFC 9110). Among the routes whose path matches, the first with the method, in table order,
 * is the request's (put a literal route before a parameter route that also matches it). */
typedef enum {
    EO_ROUTE_FOUND,     /* *index is the route's */
    EO_ROUTE_NO_PATH,   /* 404 */
    EO_ROUTE_NO_METHOD, /* the path exists with other methods: 405 with Allow */
} eo_route_result_t;

eo_route_result_t eo_route_find(const eo_http_route_t *routes, size_t n, const char *method,
                                const char *path, size_t *index);
/* Writes the methods of path's routes, in table order, as an `Allow` value ("GET, POST") into
 * out (cap bytes, always terminated; a method that does not fit whole is left out). Returns the
 * number of methods written. */
size_t eo_route_allow(const eo_http_route_t *routes, size_t n, const char *path, char *out,
                      size_t cap);
/* True when path matches the route path pattern (see above). */
bool eo_route_match(const char *pattern, const char *path);
/* The text of parameter `name` ("id" for "{id}") of pattern in path: *value points into path,
 * *len is its length. False when path does not match pattern or pattern has no such
 * parameter. */
bool eo_route_param(const char *pattern, const char *path, const char *name, const char **value,
                    size_t *len);

typedef struct {
    const char *addr; /* numeric IPv4 or IPv6 address */
    uint16_t port;    /* 0: any free port */
    unsigned threads;
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned connection_timeout_s;
    size_t max_header_bytes;
    size_t read_buffer_bytes; /* a connection's read buffer beside the headers (0: 16 KiB) */
    size_t max_body_bytes;
    const eo_http_route_t *routes;
    size_t nroutes;
    void *ud; /* passed to the route callbacks */
    /* Optional: requests are counted in it (eventops_http_* with role="ROLE") and GET /metrics
     * serves it. */
    eo_metrics_t *metrics;
    const char *role;
    /* ?compression=gzip-js (or gzip) on a POST says the body is gzip without a
     * Content-Encoding, as PostHog's JavaScript SDK sends it */
    bool gzip_query;
} eo_http_options_t;

/* Fills opt from the shared HTTP settings of cfg (EVENTOPS_HTTP_*, EVENTOPS_MAX_BODY_BYTES) and
 * the given address, port, routes and user data. */
void eo_http_options_from_config(eo_http_options_t *opt, const eo_config_t *cfg, const char *addr,
                                 int64_t port, const eo_http_route_t *routes, size_t nroutes,
                                 void *ud);

int eo_http_server_start(const eo_http_options_t *opt, eo_http_server_t **out, char *err,
                         size_t errlen) EO_MUST_CHECK;
uint16_t eo_http_server_port(const eo_http_server_t *srv);
/* Stops accepting new connections, answers any new request on an open connection with 503 and
 * Connection: close, and makes every streamed answer end (read is called with closing set)
 * (idempotent). */
void eo_http_server_quiesce(eo_http_server_t *srv);
/* Waits up to timeout_ms for the requests in flight to end; returns how many remain. */
long eo_http_server_drain(eo_http_server_t *srv, int64_t timeout_ms);
/* Quiesces, drains for up to timeout_ms, stops the server and frees it. Every suspended
 * request must have been answered by then (libmicrohttpd cannot stop with one parked).
 * NULL is accepted. */
void eo_http_server_free(eo_http_server_t *srv, int64_t timeout_ms);

const char *eo_http_header(eo_http_req_t *req, const char *name);
const char *eo_http_query(eo_http_req_t *req, const char *name);
/* Calls fn for each query-string argument in order (decoded; value NULL for a bare name,
 * value_len counts an embedded NUL); stops when fn returns false. */
void eo_http_query_each(eo_http_req_t *req,
                        bool (*fn)(void *ud, const char *name, const char *value, size_t value_len),
                        void *ud);
const char *eo_http_body(eo_http_req_t *req, size_t *len);
const char *eo_http_client_ip(eo_http_req_t *req);
/* The liveness route every role serves at GET /healthz: 200 {"status":"ok"} while the process
 * answers HTTP (readiness, which depends on the role's services, is the role's own /readyz). */
void eo_http_on_healthz(eo_http_req_t *req, void *ud);
/* The index in eo_http_options_t.routes of the route req matched (valid from on_headers on),
 * so that one callback can serve several routes of a table. */
size_t eo_http_route_index(eo_http_req_t *req);
/* Copies the text of the path parameter `name` of req's route ("id" for a route path
 * "/analytics/rules/{id}"), as the request's (percent-decoded) path holds it, into out with a
 * NUL. False when the route has no such parameter or the text does not fit in cap - 1 bytes.
 * Valid from on_headers on. */
bool eo_http_path_param(eo_http_req_t *req, const char *name, char *out, size_t cap);
/* The role of the server answering req (eo_http_options_t.role; "" when not set). */
const char *eo_http_role(eo_http_req_t *req);
/* The request id: the client's X-Request-Id when it is 1..128 of [A-Za-z0-9._:-], else a new
 * one (32 hex). Echoed in every answer's X-Request-Id. */
const char *eo_http_request_id(eo_http_req_t *req);
/* A W3C traceparent for work done on behalf of this request: the client's trace id when its
 * traceparent header is valid (else a new one) and a new span id. */
void eo_http_traceparent(eo_http_req_t *req, char out[56]);

/* Per-request state of the role: freed with free_fn when the request ends. */
void eo_http_set_user(eo_http_req_t *req, void *user, void (*free_fn)(void *));
void *eo_http_user(eo_http_req_t *req);

/* Answers with a JSON body (copied). headers: {name, value, ..., NULL} or NULL.
 * Callable once per request, from any thread. */
void eo_http_respond(eo_http_req_t *req, unsigned status, const char *json, size_t len,
                     const char *const *headers);
/* Answers {"error": {"code", "message", "field"?}} (field omitted when NULL or ""). */
void eo_http_respond_error(eo_http_req_t *req, unsigned status, const char *code,
                           const char *message, const char *field, const char *const *headers);
/* The handler will answer later (from any thread). Only inside on_request. */
void eo_http_suspend(eo_http_req_t *req);

/* Streaming answers: a body of unknown length made while it is sent (Server-Sent Events), with
 * chunked transfer encoding (HTTP/1.1) or until the connection closes (HTTP/1.0).
 *
 * read fills buf (cap bytes, at least 1) with the next bytes of the body and returns their
 * count; or 0 when it has nothing now, and the connection is then parked: no thread waits and
 * read is not called again until eo_http_stream_wake(); or EO_HTTP_STREAM_END to end the body.
 * closing is true once the server stops (eo_http_server_quiesce): read must then end the body
 * (it may still return a last few bytes first). read runs on a libmicrohttpd thread, never
 * twice at once for one request, and must not block: the thread serves other connections.
 *
 * free_fn(ud) is called exactly once: when the request ends, however it ends (the body ended,
 * the client went away, the server stopped), or at once when the answer cannot be given (a
 * second answer). Until free_fn is called, eo_http_stream_wake(req) may be called from any
 * thread; never after it (free_fn is where the caller forgets req).
 *
 * Why parking and not a blocking read: the server runs a small pool of threads
 * (EVENTOPS_HTTP_THREADS) over all connections; a read that waited would hold a thread per
 * stream. A parked connection costs no thread, but libmicrohttpd does not see a client that
 * goes away meanwhile: it is noticed at the next write, so the caller writes now and then (a
 * keep-alive comment). libmicrohttpd cannot stop with a parked connection: quiesce wakes every
 * stream with closing set, and the server waits for them to end like any request in flight. */
#define EO_HTTP_STREAM_END (-1)
typedef long (*eo_http_stream_read_fn)(void *ud, char *buf, size_t cap, bool closing);

/* Answers status with a streamed body; headers as eo_http_respond (Content-Type should be
 * given; Cache-Control defaults to no-store). Callable once per request, like
 * eo_http_respond; ud is owned by the request from now on (see free_fn above). */
void eo_http_respond_stream(eo_http_req_t *req, unsigned status, const char *const *headers,
                            eo_http_stream_read_fn read, void (*free_fn)(void *ud), void *ud);
/* Asks for read to be called again soon: unparks the connection, or makes the next "nothing
 * now" of a read in progress try once more. Any thread; cheap when the stream is not parked. */
void eo_http_stream_wake(eo_http_req_t *req);

#endif
