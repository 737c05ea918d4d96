/* One connection per thread to a service (PostgreSQL, Redis), with a down/retry switch.
 *
 * Each thread that calls eo_tconn_get() gets its own connection (thread-specific data, closed
 * when the thread exits), opened on first use and reopened when it is no longer usable. When
 * opening or a call fails, the caller reports it with eo_tconn_fail(): the service is then
 * "down" and, for retry_ms, eo_tconn_get() answers NULL at once instead of trying (so a dead
 * service costs no connect timeout per request); after that the next call tries again and
 * eo_tconn_ok() marks it up. eo_tconn_fail()/eo_tconn_ok() return true on the switch only, so
 * the caller logs each outage once. With retry_ms 0 there is no window: every get tries.
 * Threads: the switch is atomics; the connections are per thread. */
#ifndef EO_CORE_TCONN_H
#define EO_CORE_TCONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct {
    void *(*open)(void *ud, char *err, size_t errlen); /* NULL (reason in err) on failure */
    bool (*usable)(const void *conn);                  /* false: close it and reopen */
    void (*close)(void *conn);
    void *ud;
    int64_t retry_ms; /* how long a failure keeps the service down; 0: no down window */
} eo_tconn_ops_t;

typedef struct {
    eo_tconn_ops_t ops;
    pthread_key_t key;
    atomic_llong down_until_us; /* monotonic */
    atomic_bool down;
} eo_tconn_t;

int eo_tconn_init(eo_tconn_t *t, const eo_tconn_ops_t *ops) EO_MUST_CHECK;
/* Closes the calling thread's connection and releases the key (other threads' connections
 * were closed when they exited). */
void eo_tconn_done(eo_tconn_t *t);

/* This thread's usable connection, opened when needed; NULL while the service is marked down
 * (err says so) or when opening failed (err from open; the caller calls eo_tconn_fail). */
void *eo_tconn_get(eo_tconn_t *t, char *err, size_t errlen);
/* Closes this thread's connection when it is no longer usable (after an error). */
void eo_tconn_check(eo_tconn_t *t);
/* Closes this thread's connection whatever its state. */
void eo_tconn_drop(eo_tconn_t *t);

/* Marks the service down for retry_ms; true when it was up (the caller logs the outage). */
bool eo_tconn_fail(eo_tconn_t *t);
/* Marks the service up; true when it was down (the caller logs the recovery). */
bool eo_tconn_ok(eo_tconn_t *t);
/* True between a failure and the next success. */
bool eo_tconn_down(eo_tconn_t *t);
/* True within retry_ms of the last failure (eo_tconn_get answers NULL without trying). */
bool eo_tconn_waiting(eo_tconn_t *t);

#endif
