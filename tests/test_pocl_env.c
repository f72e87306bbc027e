/* test_pocl_env.c - device-free checks of clattn__pocl_env_defaults (lib/core/pocl_env.c): when
 * clattn asks PoCL to pin its workers (POCL_AFFINITY=1) and when it leaves the environment alone.
 * The rule runs once per process, so each case runs in a forked child that sets its environment
 * and affinity mask, calls the rule (twice) and reports POCL_AFFINITY through its exit code. */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

enum { UNSET = 10, SET_1 = 11, SET_0 = 12, OTHER = 13, SETUP_FAILED = 14 };

typedef struct child_env {
    const char *pocl_affinity;  /* POCL_AFFINITY before the call (NULL: unset) */
    const char *clattn_opt;     /* CLATTN_POCL_AFFINITY */
    const char *max_threads;    /* POCL_MAX_PTHREAD_COUNT */
    int only_cpu0;              /* restrict the child to CPU 0 */
} child_env;

static int set_or_unset(const char *name, const char *value)
{
    return value ? setenv(name, value, 1) : unsetenv(name);
}

/* Every online CPU, as a mask: the state of an unrestricted process. */
static int allow_all_online(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (long c = 0; c < online && c < CPU_SETSIZE; c++)
        CPU_SET((int)c, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

static int run_child(const child_env *e)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int bad = set_or_unset("POCL_AFFINITY", e->pocl_affinity) ||
                  set_or_unset("CLATTN_POCL_AFFINITY", e->clattn_opt) ||
                  set_or_unset("POCL_MAX_PTHREAD_COUNT", e->max_threads);
        if (!bad && e->only_cpu0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(0, &set);
            bad = sched_setaffinity(0, sizeof set, &set) != 0;
        } else if (!bad) {
            bad = allow_all_online() != 0;
        }
        if (bad)
            _exit(SETUP_FAILED);
        clattn__pocl_env_defaults();
        const char *v = getenv("POCL_AFFINITY");
        int first = v == NULL                ? UNSET
                    : strcmp(v, "1") == 0    ? SET_1
                    : strcmp(v, "0") == 0    ? SET_0
                                             : OTHER;
        /* the rule runs once per process: a second call after the variable is gone sets nothing */
        unsetenv("POCL_AFFINITY");
        clattn__pocl_env_defaults();
        _exit(getenv("POCL_AFFINITY") ? OTHER : first);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static long online_cpus(void)
{
    return sysconf(_SC_NPROCESSORS_ONLN);
}

/* An unrestricted process on a machine of several CPUs: PoCL is asked to pin. */
static void test_pins_when_every_cpu_is_allowed(void **state)
{
    (void)state;
    child_env e = {0};
    int r = run_child(&e);
    if (r == SETUP_FAILED)
        skip(); /* this process may not run on every online CPU (a cpuset): nothing to check */
    assert_int_equal(r, online_cpus() >= 2 ? SET_1 : UNSET);
}

/* The user's own POCL_AFFINITY, either way, is kept. */
static void test_keeps_the_users_choice(void **state)
{
    (void)state;
    child_env e = {.pocl_affinity = "0"};
    int r = run_child(&e);
    if (r == SETUP_FAILED)
        skip();
    assert_int_equal(r, SET_0);
    e.pocl_affinity = "1";
    r = run_child(&e);
    assert_int_equal(r, SET_1);
}

/* CLATTN_POCL_AFFINITY=0 turns the rule off; other values leave it on. */
static void test_opt_out(void **state)
{
    (void)state;
    child_env e = {.clattn_opt = "0"};
    int r = run_child(&e);
    if (r == SETUP_FAILED)
        skip();
    assert_int_equal(r, UNSET);
    e.clattn_opt = "1";
    assert_int_equal(run_child(&e), online_cpus() >= 2 ? SET_1 : UNSET);
}

/* A process held to CPU 0 (taskset, a cpuset): PoCL's worker 1 could not be pinned to CPU 1, and
 * some PoCL versions abort when a pin fails, so nothing is set. */
static void test_restricted_mask_is_left_alone(void **state)
{
    (void)state;
    if (online_cpus() < 2)
        skip();
    child_env e = {.only_cpu0 = 1};
    int r = run_child(&e);
    if (r == SETUP_FAILED)
        skip();
    assert_int_equal(r, UNSET);
}

/* More PoCL workers asked for than there are CPUs, or a count that is not a number: not pinned. */
static void test_more_workers_than_cpus_is_left_alone(void **state)
{
    (void)state;
    char many[32];
    snprintf(many, sizeof many, "%ld", online_cpus() + 1);
    child_env e = {.max_threads = many};
    int r = run_child(&e);
    if (r == SETUP_FAILED)
        skip();
    assert_int_equal(r, UNSET);
    e.max_threads = "2x";
    assert_int_equal(run_child(&e), UNSET);
    e.max_threads = "1";
    assert_int_equal(run_child(&e), online_cpus() >= 2 ? SET_1 : UNSET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pins_when_every_cpu_is_allowed),
        cmocka_unit_test(test_keeps_the_users_choice),
        cmocka_unit_test(test_opt_out),
        cmocka_unit_test(test_restricted_mask_is_left_alone),
        cmocka_unit_test(test_more_workers_than_cpus_is_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
