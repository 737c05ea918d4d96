/* Shutdown signalling (see signals.h). State: two atomics written by any thread. */
#include "core/signals.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

static atomic_bool stop_failed;
static atomic_bool stop_requested;

void eo_signals_block(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int eo_signals_wait(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            if (atomic_load(&stop_requested))
                return 0;
            continue;
        }
        return sig;
    }
}

void eo_signals_request_stop(bool failed)
{
    if (failed)
        atomic_store(&stop_failed, true);
    atomic_store(&stop_requested, true);
    kill(getpid(), SIGUSR1);
}

bool eo_signals_failed(void)
{
    return atomic_load(&stop_failed);
}
