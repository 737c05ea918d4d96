/* Unit tests of src/core/metrics.h: registration, updates and the Prometheus text format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

static char *render(eo_metrics_t *m)
{
    eo_buf_t out;
    eo_buf_init(&out, 1 << 20);
    assert_int_equal(eo_metrics_write(m, &out), 0);
    size_t len;
    return eo_buf_steal(&out, &len);
}

static void assert_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing %s in:\n%s", line, text);
}

static void test_counter_and_gauge(void **state)
{
    eo_metrics_t *m = eo_metrics_new();
    eo_counter_t *a = eo_metrics_counter(m, "t_requests_total", "Requests.", "code=\"2xx\"");
    eo_counter_t *b = eo_metrics_counter(m, "t_requests_total", "Requests.", "code=\"5xx\"");
    assert_ptr_equal(eo_metrics_counter(m, "t_requests_total", "Requests.", "code=\"2xx\""), a);
    eo_counter_add(a, 3);
    eo_counter_add(a, 4);
    eo_counter_add(b, 1);
    eo_counter_add(NULL, 1); /* accepted */
    eo_gauge_t *g = eo_metrics_gauge(m, "t_queue", "Queue.", "");
    eo_gauge_set(g, 2.5);
    eo_gauge_add(g, -1);
    assert_null(eo_metrics_gauge(m, "t_requests_total", "x", "")); /* another type */
    char *text = render(m);
    assert_has(text, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"
                     "t_requests_total{code=\"2xx\"} 7\nt_requests_total{code=\"5xx\"} 1\n");
    assert_has(text, "# TYPE t_queue gauge\nt_queue 1.5\n");
    assert_has(text, "# TYPE process_cpu_seconds_total counter\n");
    assert_has(text, "\nprocess_resident_memory_bytes ");
    assert_has(text, "\nprocess_open_fds ");
    assert_has(text, "\nprocess_start_time_seconds ");
    free(text);
    eo_metrics_free(m);
}

static void test_histogram(void **state)
{
    eo_metrics_t *m = eo_metrics_new();
    const double bounds[] = {0.1, 1, 10};
    eo_histogram_t *h = eo_metrics_histogram(m, "t_seconds", "Latency.", "role=\"x\"", bounds, 3);
    eo_histogram_observe(h, 0.05);
    eo_histogram_observe(h, 0.1); /* le is inclusive */
    eo_histogram_observe(h, 5);
    eo_histogram_observe(h, 50);
    char *text = render(m);
    assert_has(text, "# TYPE t_seconds histogram\n"
                     "t_seconds_bucket{role=\"x\",le=\"0.1\"} 2\n"
                     "t_seconds_bucket{role=\"x\",le=\"1\"} 2\n"
                     "t_seconds_bucket{role=\"x\",le=\"10\"} 3\n"
                     "t_seconds_bucket{role=\"x\",le=\"+Inf\"} 4\n"
                     "t_seconds_sum{role=\"x\"} 55.15\n"
                     "t_seconds_count{role=\"x\"} 4\n");
    free(text);
    eo_metrics_free(m);
}

static int extra(eo_buf_t *out, void *ud)
{
    return eo_buf_printf(out, "# TYPE t_extra gauge\nt_extra %d\n", *(int *)ud);
}

static void test_collector_and_build_info(void **state)
{
    eo_metrics_t *m = eo_metrics_new();
    int v = 42;
    assert_int_equal(eo_metrics_add_collector(m, extra, &v), 0);
    eo_metrics_build_info(m, "tester");
    char *text = render(m);
    assert_has(text, "t_extra 42\n");
    assert_has(text, "eventops_build_info{role=\"tester\",version=\"");
    free(text);
    eo_metrics_free(m);
}

static double read_half(void *ud)
{
    return *(int *)ud / 2.0;
}

/* A callback gauge is read at each write, written with its family's HELP and TYPE, and a
 * second series of the same family shares them. */
static void test_gauge_fn(void **state)
{
    eo_metrics_t *m = eo_metrics_new();
    int v = 3, w = 10;
    assert_int_equal(eo_metrics_gauge_fn(m, "t_up", "Up or not.", "role=\"a\"", read_half, &v), 0);
    assert_int_equal(eo_metrics_gauge_fn(m, "t_up", "Up or not.", "role=\"b\"", read_half, &w), 0);
    char *text = render(m);
    assert_has(text, "# HELP t_up Up or not.\n# TYPE t_up gauge\nt_up{role=\"a\"} 1.5\n"
                     "t_up{role=\"b\"} 5\n");
    free(text);
    v = 8;
    text = render(m);
    assert_has(text, "t_up{role=\"a\"} 4\n");
    free(text);
    /* a name already registered as another type is refused */
    assert_non_null(eo_metrics_counter(m, "t_count", "A counter.", ""));
    assert_int_equal(eo_metrics_gauge_fn(m, "t_count", "x", "", read_half, &v), EO_ENOMEM);
    assert_int_equal(eo_metrics_gauge_fn(NULL, "t_x", "x", "", read_half, &v), EO_EINVAL);
    eo_metrics_free(m);
}

static eo_counter_t *shared_counter;
static eo_histogram_t *shared_hist;

static void *hammer(void *arg)
{
    for (int i = 0; i < 100000; i++) {
        eo_counter_add(shared_counter, 1);
        eo_histogram_observe(shared_hist, 1);
    }
    return NULL;
}

/* Updates from several threads are not lost (atomics, CAS on the sum). */
static void test_concurrent_updates(void **state)
{
    eo_metrics_t *m = eo_metrics_new();
    const double bounds[] = {0.5};
    shared_counter = eo_metrics_counter(m, "t_total", "T.", "");
    shared_hist = eo_metrics_histogram(m, "t_h", "H.", "", bounds, 1);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = render(m);
    assert_has(text, "\nt_total 400000\n");
    assert_has(text, "t_h_sum 400000\nt_h_count 400000\n");
    free(text);
    eo_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_collector_and_build_info), cmocka_unit_test(test_gauge_fn),
        cmocka_unit_test(test_concurrent_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
