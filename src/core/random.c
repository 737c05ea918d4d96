/* Random bytes from the kernel (see random.h). */
#include "core/random.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#define ID_BLOCK 512

int eo_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return EO_EIO;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static _Thread_local unsigned char id_block[ID_BLOCK];
static _Thread_local size_t id_left; /* unused bytes at the block's end */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void drop_block(void)
{
    memset(id_block, 0, sizeof id_block);
    id_left = 0; /* the child must not repeat its parent's bytes */
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, drop_block);
}

int eo_random_id_bytes(void *out, size_t n)
{
    if (n > ID_BLOCK / 4)
        return eo_random_bytes(out, n);
    if (id_left < n) {
        pthread_once(&atfork_once, register_atfork);
        int r = eo_random_bytes(id_block, sizeof id_block);
        if (r < 0)
            return r;
        id_left = sizeof id_block;
    }
    unsigned char *from = id_block + sizeof id_block - id_left;
    memcpy(out, from, n);
    memset(from, 0, n); /* each byte once */
    id_left -= n;
    return 0;
}
