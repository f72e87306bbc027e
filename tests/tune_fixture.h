/* Shared fixture of the tuner suites on a real device (test_tune.c, test_tune_ops.c), compiled
 * into each: a fresh CLATTN_CACHE_DIR and context per suite, and quantiles for their independent
 * re-timing (its clock: clattn__tune_now_s, the tuner's own). */
#ifndef CLATTN_TESTS_TUNE_FIXTURE_H
#define CLATTN_TESTS_TUNE_FIXTURE_H

#include "clattn.h"

#include <stddef.h>

/* Makes a fresh directory from `tmpl` ("/tmp/name-XXXXXX", rewritten in place), points
 * CLATTN_CACHE_DIR at it, unsets CLATTN_TUNING and creates *ctx on the default device: 0 or -1. */
int tune_fixture_setup(char *tmpl, clattn_context **ctx);
/* Destroys ctx and removes the directory: 0 or -1. */
int tune_fixture_teardown(const char *dir, clattn_context *ctx);
/* The q-th quantile (0..1) of n <= 64 values (sorted copy). */
double tune_quantile(const double *v, size_t n, double q);

#endif
