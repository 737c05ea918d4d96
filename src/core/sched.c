/* CPU scheduling of the threads a role starts (see sched.h). */
#include "core/sched.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

int eo_sched_rt_begin(int priority, eo_sched_saved_t *saved, char *err, size_t errlen)
{
    struct sched_param p;
    if (pthread_getschedparam(pthread_self(), &saved->policy, &p) != 0) {
        saved->policy = SCHED_OTHER;
        p.sched_priority = 0;
    }
    saved->priority = p.sched_priority;
    if (priority <= 0)
        return 0;
    int lo = sched_get_priority_min(SCHED_RR), hi = sched_get_priority_max(SCHED_RR);
    if (priority < lo || priority > hi) {
        snprintf(err, errlen, "real-time priority %d out of %d..%d", priority, lo, hi);
        return EO_EINVAL;
    }
    p.sched_priority = priority;
    int e = pthread_setschedparam(pthread_self(), SCHED_RR, &p);
    if (e != 0) {
        snprintf(err, errlen,
                 "cannot use SCHED_RR at priority %d: %s (needs CAP_SYS_NICE or an "
                 "RLIMIT_RTPRIO of at least the priority)",
                 priority, strerror(e));
        return EO_EINVAL;
    }
    return 0;
}

void eo_sched_restore(const eo_sched_saved_t *saved)
{
    struct sched_param p = {.sched_priority = saved->priority};
    (void)pthread_setschedparam(pthread_self(), saved->policy, &p);
}
