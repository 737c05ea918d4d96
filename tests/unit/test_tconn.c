/* Unit tests of src/core/tconn.h with a fake service: one connection per thread, reopened
 * when unusable, closed when its thread exits; the down/retry switch (a failure keeps gets
 * from trying for retry_ms; the switch reports each transition once; retry_ms 0: no window). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/tconn.h"

typedef struct {
    bool usable;
    int id;
} fake_conn_t;

typedef struct {
    atomic_int opened, closed;
    bool refuse;
} fake_service_t;

static void *fake_open(void *ud, char *err, size_t errlen)
{
    fake_service_t *s = ud;
    if (s->refuse) {
        snprintf(err, errlen, "connection refused");
        return NULL;
    }
    fake_conn_t *c = calloc(1, sizeof *c);
    c->usable = true;
    c->id = atomic_fetch_add(&s->opened, 1) + 1;
    return c;
}

static bool fake_usable(const void *conn)
{
    return ((const fake_conn_t *)conn)->usable;
}

static fake_service_t *closing_service;

static void fake_close(void *conn)
{
    atomic_fetch_add(&closing_service->closed, 1);
    free(conn);
}

static eo_tconn_ops_t ops_for(fake_service_t *s, int64_t retry_ms)
{
    closing_service = s;
    return (eo_tconn_ops_t){.open = fake_open,
                            .usable = fake_usable,
                            .close = fake_close,
                            .ud = s,
                            .retry_ms = retry_ms};
}

static void test_reuse_and_reopen(void **state)
{
    (void)state;
    fake_service_t svc = {0};
    eo_tconn_t t;
    eo_tconn_ops_t ops = ops_for(&svc, 0);
    assert_int_equal(eo_tconn_init(&t, &ops), 0);
    char err[128];
    fake_conn_t *a = eo_tconn_get(&t, err, sizeof err);
    assert_non_null(a);
    assert_ptr_equal(eo_tconn_get(&t, err, sizeof err), a); /* reused */
    assert_int_equal(atomic_load(&svc.opened), 1);
    a->usable = false;
    eo_tconn_check(&t); /* closes the broken one */
    assert_int_equal(atomic_load(&svc.closed), 1);
    fake_conn_t *b = eo_tconn_get(&t, err, sizeof err);
    assert_int_equal(b->id, 2);
    b->usable = false; /* a get also replaces an unusable connection */
    fake_conn_t *c = eo_tconn_get(&t, err, sizeof err);
    assert_int_equal(c->id, 3);
    assert_int_equal(atomic_load(&svc.closed), 2);
    eo_tconn_drop(&t);
    assert_int_equal(atomic_load(&svc.closed), 3);
    eo_tconn_done(&t);
    assert_int_equal(atomic_load(&svc.closed), 3);
}

static eo_tconn_t *shared;

static void *other_thread(void *arg)
{
    char err[128];
    fake_conn_t **out = arg;
    *out = eo_tconn_get(shared, err, sizeof err);
    return NULL; /* exiting closes the thread's connection */
}

static void test_per_thread(void **state)
{
    (void)state;
    fake_service_t svc = {0};
    eo_tconn_t t;
    eo_tconn_ops_t ops = ops_for(&svc, 0);
    assert_int_equal(eo_tconn_init(&t, &ops), 0);
    shared = &t;
    char err[128];
    fake_conn_t *mine = eo_tconn_get(&t, err, sizeof err);
    fake_conn_t *theirs = NULL;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread, &theirs), 0);
    pthread_join(th, NULL);
    assert_non_null(theirs);
    assert_ptr_not_equal(theirs, mine);
    assert_int_equal(atomic_load(&svc.opened), 2);
    assert_int_equal(atomic_load(&svc.closed), 1); /* the other thread's, at its exit */
    eo_tconn_done(&t);                             /* closes this thread's */
    assert_int_equal(atomic_load(&svc.closed), 2);
}

static void test_down_switch(void **state)
{
    (void)state;
    fake_service_t svc = {.refuse = true};
    eo_tconn_t t;
    eo_tconn_ops_t ops = ops_for(&svc, 1000);
    assert_int_equal(eo_tconn_init(&t, &ops), 0);
    char err[128];
    assert_false(eo_tconn_down(&t));
    assert_null(eo_tconn_get(&t, err, sizeof err));
    assert_string_equal(err, "connection refused");
    assert_true(eo_tconn_fail(&t));  /* the switch: reported once */
    assert_false(eo_tconn_fail(&t)); /* still down */
    assert_true(eo_tconn_down(&t));
    assert_true(eo_tconn_waiting(&t));
    svc.refuse = false;
    assert_null(eo_tconn_get(&t, err, sizeof err)); /* in the window: no try */
    assert_int_equal(atomic_load(&svc.opened), 0);
    usleep(1100 * 1000);
    assert_false(eo_tconn_waiting(&t));
    assert_non_null(eo_tconn_get(&t, err, sizeof err));
    assert_true(eo_tconn_ok(&t)); /* back: reported once */
    assert_false(eo_tconn_ok(&t));
    assert_false(eo_tconn_down(&t));
    eo_tconn_done(&t);

    /* retry_ms 0: failures mark it down but every get tries */
    fake_service_t svc0 = {.refuse = true};
    ops = ops_for(&svc0, 0);
    assert_int_equal(eo_tconn_init(&t, &ops), 0);
    assert_null(eo_tconn_get(&t, err, sizeof err));
    assert_true(eo_tconn_fail(&t));
    assert_false(eo_tconn_waiting(&t));
    svc0.refuse = false;
    assert_non_null(eo_tconn_get(&t, err, sizeof err));
    eo_tconn_done(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_and_reopen),
        cmocka_unit_test(test_per_thread),
        cmocka_unit_test(test_down_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
