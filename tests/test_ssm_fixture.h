/* What the SSM and GSS suites share (compiled into each of them): S4D-Lin parameters and the
 * comparison against the fp64 reference at the outputs' scale. */
#ifndef CLATTN_TESTS_SSM_FIXTURE_H
#define CLATTN_TESTS_SSM_FIXTURE_H

#include "clattn.h"

#include <stddef.h>
#include <stdint.h>

/* S4D-Lin's initialisation (A = -1/2 + i pi n, log dt uniform in [log 0.001, log 0.1]) with C
 * random and Ct from the zero-order hold (the library's, checked against the reference in
 * test_ssm's test_zoh), D random: kernels decay slowly for small dt and oscillate fast for large
 * n, so long lengths test the accuracy of the powers. */
typedef struct ssm_params {
    size_t H, N;
    float *A, *Ct, *log_dt, *D;
} ssm_params;

void ssm_params_make(ssm_params *p, size_t H, size_t N, uint64_t seed);
void ssm_params_free(ssm_params *p);
/* The handle of p on ctx (with D or without); fails the running test on error. */
clattn_ssm *ssm_params_handle(clattn_context *ctx, const ssm_params *p, int with_d);

/* A device buffer of `floats` NaNs, and a malloc'd blocking read-back of one (after everything
 * enqueued on ctx); failures fail the running test. */
cl_mem ssm_poisoned_dev(clattn_context *ctx, size_t floats);
float *ssm_read_dev(clattn_context *ctx, cl_mem m, size_t floats);

/* The suites' group setup: a context on the configured device (its name printed), or -1 with
 * the reason (a missing device is a failure, never a skip). */
int ssm_open(clattn_context **ctx);

/* A call that must succeed: otherwise the running test fails with the context's message. */
#define SSM_OK(ctx, call)                                                                          \
    do {                                                                                           \
        clattn_status st_ = (call);                                                                \
        if (st_ != CLATTN_SUCCESS)                                                                 \
            fail_msg("%s: %s", #call, clattn_context_last_error(ctx));                             \
    } while (0)

/* DESIGN.md section 4 at the outputs' scale: every element within 1e-4 * max(1, max|ref|) and a
 * normalised error (L2) within 1e-5; fails the running test naming `what`. */
void ssm_check_close(const float *got, const float *ref, size_t n, const char *what);

#endif
