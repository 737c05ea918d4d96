/* Unit tests of src/core/sched.c: priority 0 changes nothing; an out-of-range priority is refused
 * with the range named; with the privilege (root or an RLIMIT_RTPRIO), a thread started between
 * eo_sched_rt_begin and eo_sched_restore runs under SCHED_RR at the priority and keeps it, while
 * the calling thread gets its own policy back; without it, the refusal names what is missing. */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/sched.h"

static void own_policy(int *policy, int *priority)
{
    struct sched_param p;
    assert_int_equal(pthread_getschedparam(pthread_self(), policy, &p), 0);
    *priority = p.sched_priority;
}

static void test_zero_changes_nothing(void **state)
{
    (void)state;
    eo_sched_saved_t saved;
    char err[256] = "";
    int policy, prio;
    assert_int_equal(eo_sched_rt_begin(0, &saved, err, sizeof err), 0);
    own_policy(&policy, &prio);
    assert_int_equal(policy, SCHED_OTHER);
    assert_int_equal(saved.policy, SCHED_OTHER);
    eo_sched_restore(&saved);
    own_policy(&policy, &prio);
    assert_int_equal(policy, SCHED_OTHER);
    assert_string_equal(err, "");
}

static void test_out_of_range_refused(void **state)
{
    (void)state;
    eo_sched_saved_t saved;
    char err[256] = "";
    assert_int_equal(eo_sched_rt_begin(100, &saved, err, sizeof err), EO_EINVAL);
    assert_non_null(strstr(err, "out of 1..99"));
    int policy, prio;
    own_policy(&policy, &prio);
    assert_int_equal(policy, SCHED_OTHER);
}

typedef struct {
    int policy, priority;
    sem_t *go; /* NULL: report at once */
} seen_t;

/* Reports the thread's policy, after `go` is posted when there is one. */
static void *report(void *arg)
{
    seen_t *seen = arg;
    if (seen->go)
        sem_wait(seen->go);
    struct sched_param p;
    pthread_getschedparam(pthread_self(), &seen->policy, &p);
    seen->priority = p.sched_priority;
    return NULL;
}

static bool may_use_rt(void)
{
    struct rlimit rl;
    return geteuid() == 0 || (getrlimit(RLIMIT_RTPRIO, &rl) == 0 && rl.rlim_cur >= 1);
}

static void test_threads_started_inherit(void **state)
{
    (void)state;
    eo_sched_saved_t saved;
    char err[256] = "";
    int r = eo_sched_rt_begin(1, &saved, err, sizeof err);
    if (!may_use_rt()) { /* the refusal is the behaviour to check here */
        assert_int_equal(r, EO_EINVAL);
        assert_non_null(strstr(err, "CAP_SYS_NICE"));
        return;
    }
    assert_int_equal(r, 0);
    sem_t go;
    assert_int_equal(sem_init(&go, 0, 0), 0);
    seen_t before = {.go = &go}, after = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, report, &before), 0);
    eo_sched_restore(&saved);
    int policy, prio;
    own_policy(&policy, &prio);
    assert_int_equal(policy, SCHED_OTHER);
    assert_int_equal(prio, 0);
    sem_post(&go); /* the thread started before the restore reports now */
    assert_int_equal(pthread_join(t, NULL), 0);
    sem_destroy(&go);
    assert_int_equal(before.policy, SCHED_RR);
    assert_int_equal(before.priority, 1);

    assert_int_equal(pthread_create(&t, NULL, report, &after), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(after.policy, SCHED_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_changes_nothing),
        cmocka_unit_test(test_out_of_range_refused),
        cmocka_unit_test(test_threads_started_inherit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
