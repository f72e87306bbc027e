/* Small helpers shared by the cmocka suites (compiled into each test executable; not a
 * reference: no numerics here). */
#ifndef CLATTN_TESTS_UTIL_H
#define CLATTN_TESTS_UTIL_H

#include "clattn.h"

#include <stddef.h>
#include <stdint.h>

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

/* ---- the shared harness: tolerances, poisoned outputs, invalid calls ---- */

/* Tolerances of one comparison against a double-precision reference: every element must satisfy
 * |x - r| <= atol + rtol * |r|, and the normalised error ||x - r||_2 / max(||r||_2, tiny) must be
 * <= nerr (0: not checked). State them next to each test. */
typedef struct tu_tol {
    double atol, rtol, nerr;
} tu_tol;
/* The house tolerance of DESIGN.md section 4 for fp32 against fp64 on unit-scale data. */
#define TU_TOL_FP32 ((tu_tol){1e-4, 1e-4, 1e-5})

/* Fails the running test (naming `what`, the first bad index, the worst element and the
 * normalised error) when got and ref differ beyond tol, or when got holds a NaN/Inf that ref does
 * not (poison left behind). ref is float (rounded reference) or double (tu_check_close_d). */
void tu_check_close(const float *got, const float *ref, size_t n, tu_tol tol, const char *what);
void tu_check_close_d(const float *got, const double *ref, size_t n, tu_tol tol,
                      const char *what);
/* ---- half storage (clattn.h's accuracy contract) ---- */
/* Rounds x[0..n) in place through dt: the half-rounded inputs a reference must be computed on. */
void tu_round_to(float *x, size_t n, clattn_dtype dt);
/* malloc'd host arrays: floats packed as dt elements, and dt elements unpacked to floats. */
void *tu_pack(const float *x, size_t n, clattn_dtype dt);
float *tu_unpack(const void *p, size_t n, clattn_dtype dt);
/* One unit in the last place of dt at |r| (0 for f32). */
double tu_ulp(double r, clattn_dtype dt);
/* got holds n elements of type dt: each must satisfy |x - r| <= ulp_dt(r) + atol + rtol*|r|
 * (f16 references at or beyond 65520 may read as infinity of their sign), and the normalised
 * error must be <= nerr plus half an ulp of relative rounding. The contract's check: pass
 * TU_TOL_FP32-like tolerances (1e-4) for accumulations in fp32. */
void tu_check_typed(const void *got, clattn_dtype dt, const double *ref, size_t n, tu_tol tol,
                    const char *what);
/* max_i |x - r| / max(1, max|r|): DESIGN.md's normalised infinity-norm error. */
double tu_norm_inf_err(const float *got, const float *ref, size_t n);

/* Uniform random floats in [-amp, amp) from *seed (never all zeros); malloc'd, never NULL. */
float *tu_random(size_t n, float amp, uint64_t *seed);
/* n NaNs (a poisoned host output); malloc'd, never NULL. */
float *tu_poisoned(size_t n);
/* Fills `bytes` of a device buffer with a pattern no kernel writes (NaN floats). */
void tu_poison_buffer(clattn_context *ctx, cl_mem m, size_t bytes);

/* Proof that a refused call touched nothing: snapshot the outputs' bytes, make the call, then
 * tu_watch_check compares every watched buffer (and host array) byte for byte. */
#define TU_WATCH_MAX 16
typedef struct tu_watch {
    clattn_context *ctx;
    struct {
        cl_mem mem;        /* device buffer, or NULL for a host array */
        const void *host;
        size_t bytes;
        unsigned char *snap;
        const char *name;
    } w[TU_WATCH_MAX];
    size_t n;
} tu_watch;
void tu_watch_init(tu_watch *w, clattn_context *ctx);
void tu_watch_buffer(tu_watch *w, cl_mem m, size_t bytes, const char *name);
void tu_watch_host(tu_watch *w, const void *p, size_t bytes, const char *name);
void tu_watch_check(const tu_watch *w, const char *call);
void tu_watch_free(tu_watch *w);

/* Asserts that a call returned `want` and left a non-empty message on ctx (or, for ctx NULL, on
 * the thread's creation message). */
void tu_expect_status(clattn_context *ctx, clattn_status got, clattn_status want,
                      const char *call);

/* Puts a known stale message on ctx (when not NULL) and on the calling thread, so that
 * tu_expect_fresh_status can tell the message a refused call wrote from one left before it. */
void tu_stale_messages(clattn_context *ctx);
/* tu_expect_status, and the message (ctx's, or the thread's for ctx NULL) is the call's own: not
 * the one tu_stale_messages left, and it starts with the status name and ": ". */
void tu_expect_fresh_status(clattn_context *ctx, clattn_status got, clattn_status want,
                            const char *call);

/* A context on the configured device (CLATTN_DEVICE, as ctest sets it); fails the test when none. */
clattn_context *tu_context(void);

/* An out-of-order queue on ctx's context and device, or NULL when the device does not advertise
 * out-of-order execution (rusticl); fails the test when it does and creation fails anyway. The
 * caller releases the queue. tu_out_of_order_queue skips the test (cmocka skip) instead of
 * returning NULL. */
cl_command_queue tu_try_out_of_order_queue(clattn_context *ctx);
cl_command_queue tu_out_of_order_queue(clattn_context *ctx);

#endif
