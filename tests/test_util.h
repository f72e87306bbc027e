/* Small helpers shared by the cmocka suites (compiled into each test executable; not a
 * reference: no numerics here). */
#ifndef CLATTN_TESTS_UTIL_H
#define CLATTN_TESTS_UTIL_H

#include "clattn.h"

#include <stddef.h>

/* A [B, H, N, D] view of buf whose data is laid out [B, N, H, D] when bnhd (else contiguous). */
clattn_tensor tu_view(cl_mem buf, size_t B, size_t H, size_t N, size_t D, int bnhd);

/* A malloc'd copy of x moved between the [B, H, N, D] and [B, N, H, D] layouts (to_bnhd: from the
 * first to the second). Aborts when out of memory. */
float *tu_relayout(const float *x, size_t B, size_t H, size_t N, size_t D, int to_bnhd);

/* A read-write buffer of `bytes` (at least 4) on ctx's context, filled from init when init is not
 * NULL (blocking); a failure fails the running cmocka test. */
cl_mem tu_buffer(clattn_context *ctx, size_t bytes, const void *init);

/* Blocking read of `bytes` of m into dst after everything enqueued on ctx; a failure fails the
 * running cmocka test. */
void tu_read(clattn_context *ctx, cl_mem m, size_t bytes, void *dst);

#endif
