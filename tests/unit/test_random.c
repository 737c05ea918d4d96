/* Unit tests of src/core/random.c: identifier bytes from the per-thread block are never handed
 * out twice (no 16-byte value repeats over many calls, across the block's refills), requests
 * larger than a quarter of the block come straight from the kernel, and a forked child does not
 * repeat the bytes its parent has not used yet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/random.h"

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_ids_never_repeat(void **state)
{
    (void)state;
    enum { N = 20000 };
    uint8_t(*ids)[16] = malloc(sizeof *ids * N);
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++) {
        uint8_t skip[3];
        assert_int_equal(eo_random_id_bytes(ids[i], 16), 0);
        if (i % 7 == 0) /* odd sizes between them: refills land mid-id */
            assert_int_equal(eo_random_id_bytes(skip, sizeof skip), 0);
    }
    qsort(ids, N, sizeof *ids, cmp16);
    for (size_t i = 1; i < N; i++)
        assert_true(memcmp(ids[i - 1], ids[i], 16) != 0);
    free(ids);
}

static void test_large_requests(void **state)
{
    (void)state;
    uint8_t a[1024], b[1024];
    assert_int_equal(eo_random_id_bytes(a, sizeof a), 0);
    assert_int_equal(eo_random_id_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(eo_random_id_bytes(a, 0), 0);
}

static void test_fork_does_not_repeat(void **state)
{
    (void)state;
    uint8_t first[16], parent[16], child[16];
    assert_int_equal(eo_random_id_bytes(first, sizeof first), 0); /* the block is filled */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t mine[16];
        int ok = eo_random_id_bytes(mine, sizeof mine) == 0 &&
                 write(fds[1], mine, sizeof mine) == (ssize_t)sizeof mine;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(eo_random_id_bytes(parent, sizeof parent), 0);
    assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(parent, child, sizeof parent);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_never_repeat),
        cmocka_unit_test(test_large_requests),
        cmocka_unit_test(test_fork_does_not_repeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
