/* In-process access to the clfault shim (tests/shim/clfault.c) for a test run with it preloaded
 * (LD_PRELOAD, as tests/CMakeLists.txt sets for the suites that use it). Without the shim,
 * shim_loaded() is false and the others do nothing: such tests skip. */
#ifndef CLATTN_TESTS_CLFAULT_H
#define CLATTN_TESTS_CLFAULT_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

/* The shim's symbol `name` in the process's global scope (preloaded objects included). */
static inline void *shim_symbol(const char *name)
{
    void *self = dlopen(NULL, RTLD_LAZY);
    void *sym = self ? dlsym(self, name) : NULL;
    if (self)
        dlclose(self);
    return sym;
}

static inline bool shim_loaded(void) { return shim_symbol("clfault_count") != NULL; }

/* Calls of OpenCL function `fn` made so far through the loader (NULL: every wrapped function);
 * 0 without the shim. */
static inline unsigned long shim_calls(const char *fn)
{
    unsigned long (*count)(const char *);
    *(void **)&count = shim_symbol("clfault_count");
    return count ? count(fn) : 0;
}

/* Makes the nth next call of `fn` (NULL: of any wrapped function) fail with the shim's error for
 * that function; nth 0 disarms. */
static inline void shim_fail_next(const char *fn, unsigned long nth)
{
    void (*arm)(const char *, unsigned long);
    *(void **)&arm = shim_symbol("clfault_fail_next");
    if (arm)
        arm(fn, nth);
}

#endif
