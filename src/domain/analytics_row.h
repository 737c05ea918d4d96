/* The rows of the analytics sink: a record the engine writes to its summaries or windows topic
 * (issue 12; docs/analytics.md), decoded into one row of analytics_summaries or
 * analytics_windows. A row is a JSON object named by the table's columns, which PostgreSQL
 * reads in arrays through jsonb_to_recordset, its values checked and normalised (times in UTC
 * with microseconds, numbers as reals), with the record itself as "body":
 *
 *   summary {"eventId","type":"analytics.summary","tenantId","status","rule":{"id","version"},
 *            "groupKey","window":{"start","end"},"value","threshold","emittedAt",...}
 *     -> {"tenant_id","event_id","rule_id","rule_version","status","group_key","window_start",
 *         "window_end","value","threshold","emitted_at","body"}
 *   window  {"type":"analytics.window","tenantId","rule":{"id","version"},"groupKey",
 *            "window":{"start","end"},"revision","final","value","count",...}
 *     -> {"tenant_id","rule_id","rule_version","group_key","window_start","window_end",
 *         "revision","final","value","count","body"}
 *
 * Field rules: ids are canonical lower-case UUIDs; rule.version and revision integers
 * 0..2^31-1; count an integer >= 0; status and groupKey strings; final a boolean; times RFC 3339
 * (any offset); value and threshold numbers, or null or absent. Other members are kept in the
 * body only. Pure: no I/O. */
#ifndef EO_DOMAIN_ANALYTICS_ROW_H
#define EO_DOMAIN_ANALYTICS_ROW_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

/* A record value longer than this is refused unread. */
#define EO_ANALYTICS_ROW_RECORD_MAX ((size_t)1 << 20)

typedef enum {
    EO_ANALYTICS_ROW_SUMMARY,
    EO_ANALYTICS_ROW_WINDOW,
    EO_ANALYTICS_ROW_KINDS
} eo_analytics_row_kind_t;

/* Appends the row of the record (len bytes) to rows and sets *kind. The record's "type", when
 * it has one, names its kind, which its topic must carry (on_summaries: the topic carries
 * summaries; on_windows: window results); without one, the topic must carry one kind only.
 * Returns 0; EO_EPARSE with the reason in why (naming the field) for a record that is not a
 * summary or window result of this topic; or the buffer's EO_ENOMEM / EO_ELIMIT. Nothing is
 * appended unless it returns 0. */
int eo_analytics_row_append(eo_buf_t *rows, const void *record, size_t len, bool on_summaries,
                            bool on_windows, eo_analytics_row_kind_t *kind, char *why,
                            size_t whylen) EO_MUST_CHECK;

#endif
