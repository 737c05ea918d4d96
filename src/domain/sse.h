/* Server-Sent Events of the analytics stream (docs/analytics.md, "Live stream"): event ids that
 * are positions in the two topics the stream reads, the records' keys, and the framing of
 * events and comments. Pure: no I/O, no clock, no allocation but the caller's buffers.
 *
 * A position says, for every partition of the windows topic (w) and of the summaries topic (s),
 * the next offset to read: every record of a partition below it has been delivered (or was not
 * the stream's). An event's id is the position just after it, so a client that comes back with
 * it misses nothing committed after the event and gets nothing twice. As text:
 *
 *     w<offset>.<offset>...-s<offset>...      e.g. "w12.0.7-s3.4"
 *
 * one offset per partition in partition order, 1 .. EO_SSE_MAX_PARTITIONS per topic, each a
 * decimal 0 .. 2^63 - 1 without leading zeros. The text needs no escaping in a header or a
 * query string and is at most EO_SSE_ID_MAX - 1 bytes. The Last-Event-ID an outsider sends is
 * parsed with these limits; nothing else about it is trusted (a position the topics do not
 * hold is the stream's problem, see stream.c). */
#ifndef EO_DOMAIN_SSE_H
#define EO_DOMAIN_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define EO_SSE_TOPICS 2
#define EO_SSE_MAX_PARTITIONS 256
#define EO_SSE_OFFSET_DIGITS 19 /* INT64_MAX */
/* The longest id text plus its NUL: two topics of EO_SSE_MAX_PARTITIONS offsets of 19 digits,
 * each topic's letter and separators ("w", "-s", '.'), the NUL. */
#define EO_SSE_ID_MAX (2 * EO_SSE_MAX_PARTITIONS * (EO_SSE_OFFSET_DIGITS + 1) + 2)
/* A record key of the engine's windows and summaries topics: "<tenant id>:<rule id>". */
#define EO_SSE_KEY_LEN 73

typedef enum { EO_SSE_WINDOWS = 0, EO_SSE_SUMMARIES = 1 } eo_sse_topic_t;

typedef struct {
    uint16_t n[EO_SSE_TOPICS]; /* partitions of each topic, 0 .. EO_SSE_MAX_PARTITIONS */
    int64_t next[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS]; /* >= 0 below n */
} eo_sse_pos_t;

/* A position of nw and ns partitions (each at most EO_SSE_MAX_PARTITIONS), every offset 0. */
void eo_sse_pos_init(eo_sse_pos_t *p, uint16_t nw, uint16_t ns);

/* The next offset of a partition: 0 for a partition p does not list. */
int64_t eo_sse_pos_get(const eo_sse_pos_t *p, eo_sse_topic_t t, int32_t partition);

/* Records that the record at offset of partition was passed: its next offset becomes
 * offset + 1 unless it is already past it. A partition p does not list is ignored. */
void eo_sse_pos_passed(eo_sse_pos_t *p, eo_sse_topic_t t, int32_t partition, int64_t offset);

/* Gives p exactly nw and ns partitions: the ones it lacks start at 0, the ones beyond are
 * dropped. */
void eo_sse_pos_fit(eo_sse_pos_t *p, uint16_t nw, uint16_t ns);

/* Writes p as id text into out (cap bytes; EO_SSE_ID_MAX always suffices), NUL-terminated.
 * Returns the length, or EO_ELIMIT when it does not fit (nothing useful written) or EO_EINVAL
 * when p has no partition in a topic or a negative offset. */
int eo_sse_pos_format(const eo_sse_pos_t *p, char *out, size_t cap) EO_MUST_CHECK;

/* Parses id text (len bytes; no NUL needed) into out. Returns 0, or EO_EPARSE for anything but
 * the grammar above (empty, other characters, a leading zero, an offset past 2^63 - 1, no or
 * too many partitions, text after the end). out is written only on success. */
int eo_sse_pos_parse(const char *s, size_t len, eo_sse_pos_t *out) EO_MUST_CHECK;

/* Which partitions a ring cannot serve a resume from v for: the ring holds every record of a
 * partition from base on, and the reader has read up to head (base <= head; both list the
 * topics' partitions). A partition is behind when v < base (older than the ring) and ahead
 * when v > head (a position this reader has not reached: another reader's, or one the topic
 * never had); with head NULL only behind counts. Partitions base lists and v does not count as
 * 0; partitions beyond base's are ignored. Marks them in out (when not NULL; partitions within
 * the ring are cleared) and returns how many there are: 0 means the ring serves the resume. */
size_t eo_sse_pos_outside(const eo_sse_pos_t *v, const eo_sse_pos_t *base, const eo_sse_pos_t *head,
                          bool out[EO_SSE_TOPICS][EO_SSE_MAX_PARTITIONS]);

/* Splits a record key "<tenant id>:<rule id>" (canonical lower-case UUIDs, exactly
 * EO_SSE_KEY_LEN bytes) into tenant and rule (NUL-terminated). Returns 0 or EO_EPARSE. */
int eo_sse_key_parse(const void *key, size_t len, char tenant[37], char rule[37]) EO_MUST_CHECK;

/* Appends one event: "event: <name>\nid: <id>\ndata: <line>\n...\n". data is split at its line
 * breaks (CR, LF or CRLF) into data lines, so that a client gets data back exactly, each line
 * break as an LF (JSON written on one line comes back byte for byte). name and id must hold no
 * line break (id text never does). Sticky: check eo_buf_error(). */
void eo_sse_put_event(eo_buf_t *b, const char *name, const char *id, const char *data, size_t len);

/* Appends a comment ": <text>\n\n" (text without line breaks; they are replaced by spaces),
 * which clients ignore: keep-alives and notices. Sticky. */
void eo_sse_put_comment(eo_buf_t *b, const char *text);

#endif
