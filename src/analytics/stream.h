/* The analytics role's live event streams (GET /analytics/stream, docs/analytics.md "Live
 * stream"): Server-Sent Events of the window results and summary events the engine commits to
 * its windows and summaries topics, of one tenant and some (or all) of its rules, resumable
 * with Last-Event-ID.
 *
 * The topics are the source of truth, read read_committed. One reader thread tails both from
 * their end (at start-up) into a bounded buffer of recent records (the last
 * EVENTOPS_ANALYTICS_SSE_BUFFER_RECORDS records or _BYTES bytes), which every stream reads:
 * no Kafka I/O per event per stream. An event's id is the position just after it in both
 * topics (domain/sse.h). A resume from a position the buffer still holds reads the buffer; an
 * older one first reads Kafka with a catch-up consumer of its own (assigned at the position,
 * read_committed, polled by the same reader thread) until it reaches the buffer. A position
 * older than the topics' retention (or one a topic never had) starts that partition from its
 * earliest record and says so in a ": reset" comment: nothing is skipped silently.
 *
 * Each stream starts with "retry: 2000", sends "event: window" / "event: summary" with the
 * record as data, and a ": keep-alive" comment after EVENTOPS_ANALYTICS_SSE_KEEPALIVE_S
 * seconds without an event. Limits: EVENTOPS_ANALYTICS_MAX_STREAMS open streams, _PER_TENANT
 * per tenant (429 beyond, naming the limit); a client that stays further behind than
 * EVENTOPS_ANALYTICS_SSE_MAX_BACKLOG_BYTES for a keep-alive interval is disconnected (it resumes
 * with its last id).
 *
 * Threads: the reader thread, and libmicrohttpd's pool threads that open streams and write them
 * (http.h: a stream waiting for records parks its connection, it holds no thread). One lock
 * guards the shared state (stream_internal.h). */
#ifndef EO_ANALYTICS_STREAM_H
#define EO_ANALYTICS_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/error.h"
#include "core/http.h"
#include "core/metrics.h"
#include "domain/sse.h"

typedef struct eo_analytics_streams eo_analytics_streams_t;

/* At most this many rule ids name the rules of one stream. */
#define EO_ANALYTICS_STREAM_MAX_RULES 100

/* Starts the reader thread (which finds the topics' partitions and their ends by itself, again
 * while Kafka is away) and registers into m (borrowed; it must outlive the streams):
 *   eventops_analytics_streams{role}: open streams (gauge);
 *   eventops_analytics_stream_events_total{role, kind="window"|"summary"}: events sent;
 *   eventops_analytics_streams_refused_total{role, reason="max_streams"|
 *     "max_streams_per_tenant"|"unavailable"}: streams refused (429, 503);
 *   eventops_analytics_stream_disconnects_total{role, reason="slow_client"}: streams ended
 *     because their client fell behind;
 *   eventops_analytics_stream_catchups_total{role}: resumes read from Kafka first, and
 *   eventops_analytics_stream_resets_total{role}: partitions started again from their
 *     earliest record.
 * Returns 0, or EO_ENOMEM / EO_EINVAL with the reason in err. */
int eo_analytics_streams_start(const eo_config_t *cfg, eo_metrics_t *m,
                               eo_analytics_streams_t **out, char *err,
                               size_t errlen) EO_MUST_CHECK;

/* Opens a stream on req for the tenant and its rules (nrules ids, canonical lower-case, at
 * most EO_ANALYTICS_STREAM_MAX_RULES, checked by the caller to be the tenant's; 0: every rule
 * of the tenant, also those made later), from a position (NULL: from now). Answers req: 200
 * and the stream (text/event-stream), 429 too_many_streams (with Retry-After, naming the limit)
 * or 503 stream_unavailable (with Retry-After) while the reader has not found the topics' ends
 * or the streams stop. headers ({name, value, ..., NULL}, at most 8 pairs: the rate-limit
 * headers) go with every answer. Any thread of the HTTP server; the strings are copied. */
void eo_analytics_streams_open(eo_analytics_streams_t *h, eo_http_req_t *req, const char *tenant_id,
                               const char (*rules)[37], size_t nrules, const eo_sse_pos_t *from,
                               const char *const *headers);

/* From now on new streams are refused (503). Call before stopping the HTTP server, whose
 * quiesce ends the open streams. */
void eo_analytics_streams_close(eo_analytics_streams_t *h);

/* Stops the reader thread and frees everything: after the HTTP server stopped (no stream is
 * open any more). NULL accepted. */
void eo_analytics_streams_stop(eo_analytics_streams_t *h);

#endif
