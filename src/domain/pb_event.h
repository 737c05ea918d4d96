/* gRPC ingest's messages (proto/eventops/v1/ingest.proto, compiled by protoc-c at build time)
 * to and from EventOps's event API: an Event message becomes the JSON event object that
 * POST /events takes, so it goes through the same validation; the answers are serialised here.
 * Pure: no I/O. */
#ifndef EO_DOMAIN_PB_EVENT_H
#define EO_DOMAIN_PB_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "domain/event.h"
#include "eventops/v1/ingest.pb-c.h"

/* The JSON event object of e: a member for each non-empty field (proto3 has no absent
 * strings: empty is absent), properties_json and context_json parsed. Returns 0 with *out
 * (the caller's), EO_EINVAL with err filled (a field that is not UTF-8: invalid_value; a
 * properties_json or context_json that is not one JSON object: invalid_json, field properties
 * or context), or EO_ENOMEM. */
int eo_pb_event_json(const Eventops__V1__Event *e, json_t **out,
                     eo_event_error_t *err) EO_MUST_CHECK;

/* Appends a SendResponse: accepted, the accepted messageIds (ids: JSON strings joined by ','),
 * and the refusals (errors: {"index","messageId","error":{"code","message","field"}} objects
 * joined by ','), as the collector's build writes them. Returns 0, EO_EPARSE (texts not of that
 * shape) or EO_ENOMEM. */
int eo_pb_send_response(size_t accepted, const char *ids, size_t ids_len, const char *errors,
                        size_t errors_len, eo_buf_t *out) EO_MUST_CHECK;

/* Appends a google.rpc.Status {code, message, details: [RetryInfo {retry_delay: retry_s}]}
 * (the value of the trailer grpc-status-details-bin) in protobuf's wire format. Returns 0 or
 * the buffer's error. */
int eo_pb_retry_status(int code, const char *message, int64_t retry_s, eo_buf_t *out) EO_MUST_CHECK;

#endif
