/* CPU scheduling of the threads a role starts (ADR-26).
 *
 * On a machine shared with storage, the fair scheduler lets a woken thread wait behind a busy
 * one for up to a time slice at each hand-off, and a request crosses several threads (HTTP,
 * librdkafka's broker thread, the broker, the delivery poller): the accept latency's tail is
 * those waits, whatever the nice values. A real-time policy (SCHED_RR) for the threads on the
 * request path removes them; the kernel's real-time throttling still leaves the other threads
 * 5 % of each CPU (sched_rt_runtime_us). */
#ifndef EO_CORE_SCHED_H
#define EO_CORE_SCHED_H

#include <stddef.h>

#include "core/error.h"

/* The calling thread's policy and priority, to put back with eo_sched_restore. */
typedef struct {
    int policy;
    int priority;
} eo_sched_saved_t;

/* Puts the calling thread under SCHED_RR at priority (1-99), so the threads it starts until
 * eo_sched_restore inherit it. priority 0: changes nothing. Fails with EO_EINVAL (a message in
 * err naming the cause, e.g. missing CAP_SYS_NICE or RLIMIT_RTPRIO) when the kernel refuses. */
int eo_sched_rt_begin(int priority, eo_sched_saved_t *saved, char *err,
                      size_t errlen) EO_MUST_CHECK;

/* Gives the calling thread back the policy saved by eo_sched_rt_begin. */
void eo_sched_restore(const eo_sched_saved_t *saved);

#endif
