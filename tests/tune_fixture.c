/* Shared fixture of the tuner suites (see tune_fixture.h). */
#include "tune_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tune_fixture_setup(char *tmpl, clattn_context **ctx)
{
    if (!mkdtemp(tmpl) || setenv("CLATTN_CACHE_DIR", tmpl, 1) != 0)
        return -1;
    unsetenv("CLATTN_TUNING");
    return clattn_context_create(NULL, ctx) == CLATTN_SUCCESS ? 0 : -1;
}

int tune_fixture_teardown(const char *dir, clattn_context *ctx)
{
    clattn_context_destroy(ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tune_quantile(const double *v, size_t n, double q)
{
    double s[64];
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return s[(size_t)(q * (double)(n - 1) + 0.5)];
}
