/* Asks PoCL's CPU driver to pin its worker threads, before OpenCL first initialises in this
 * process (README, "Environment variables"; docs/measurements/2026-12-07-s9-affinity.log).
 *
 * PoCL runs a launch's work-groups on one worker thread per core. Unpinned, a process sometimes
 * keeps both workers of a 2-core machine on one core for its whole life (a launch of a few
 * milliseconds ends before Linux's load balancer separates them, and each wakes where it slept):
 * causal attention at N 1024 D 64 took about 5 ms in some processes and 9-10 ms in others, twice
 * the time; pinned, 4.2-4.6 ms in all twelve (session 9). PoCL pins worker i to CPU i
 * when POCL_AFFINITY is set, and reads it once, when its platform is first queried. */
#define _GNU_SOURCE
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <sched.h>
#include <unistd.h>

/* Whether PoCL can pin worker i to CPU i for all its workers: this process may run on every online
 * CPU, numbered from 0 without holes, and no more workers were asked for than there are CPUs.
 * (Some PoCL versions abort when a pin fails.) */
static bool may_pin_all(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return false;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 2 || online > CPU_SETSIZE || CPU_COUNT(&set) != online)
        return false;
    for (long c = 0; c < online; c++)
        if (!CPU_ISSET((int)c, &set))
            return false;
    const char *threads = getenv("POCL_MAX_PTHREAD_COUNT");
    if (threads && *threads) {
        char *end = NULL;
        long n = strtol(threads, &end, 10);
        if (*end != '\0' || n < 1 || n > online)
            return false;
    }
    return true;
}

static void pin_pocl_workers(void)
{
    if (clattn__env_is_zero("CLATTN_POCL_AFFINITY"))
        return;
    if (getenv("POCL_AFFINITY")) /* the user's own choice, either way */
        return;
    if (may_pin_all())
        setenv("POCL_AFFINITY", "1", 0);
}
#endif

void clattn__pocl_env_defaults(void)
{
#ifdef __linux__
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pin_pocl_workers);
#endif
}
