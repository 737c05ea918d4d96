/* Random bytes from the kernel (see random.h). */
#include "core/random.h"

#include <errno.h>
#include <sys/random.h>

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
