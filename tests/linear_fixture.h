/* Shared fixture of the linear-attention suites (test_linear.c forms, test_linear_favor.c,
 * test_linear_momentum.c, test_linear_state.c, test_linear_validation.c), compiled into each.
 *
 * Every comparison is against the fp64 reference (tests/reference/ref_linear.c: the direct formula
 * for the non-causal form, the sequential recurrence for the causal one; ref_linear_general for
 * FAVOR+ and momentum, itself checked against hand-computed values and the closed form in
 * test_linear_momentum.c), through tests/test_util.h's harness with LIN_TOL unless a test states
 * otherwise. Inputs are random (never zero); outputs are poisoned with NaN before each run so an
 * unwritten element fails. The identity feature map gets positive q and k: with signed features
 * the denominator phi(q) . z can cancel to nearly 0 and the quotient is ill-conditioned in any
 * precision (eps only guards the division by zero). */
#ifndef CLATTN_TESTS_LINEAR_FIXTURE_H
#define CLATTN_TESTS_LINEAR_FIXTURE_H

#include "clattn.h"
#include "test_util.h"

#include <stddef.h>
#include <stdint.h>

struct CMUnitTest;

/* DESIGN.md section 4's tolerance, per element and normalised (tests/test_util.h). */
#define LIN_TOL TU_TOL_FP32
#define LIN_ATOL 1e-4

extern clattn_context *ctx;
/* llvmpipe (rusticl) stops any kernel loop after 65535 iterations per work-item; the kernels
 * here loop at most max(64, Nk / 256) keys, N / 64 chunks and D * (Dv + 64) in one output row, so
 * every case stays under it. */
extern int llvmpipe;
extern const clattn_linear_feature_map fmaps[3]; /* ELU, RELU, IDENTITY */

/* Runs a suite on a context of the configured device (CLATTN_DEVICE); CLATTN_TEST_FILTER=pattern
 * runs only the matching cases. */
int lin_run(const char *name, const struct CMUnitTest *tests, size_t n);

/* tu_expect_status on the suite's context. */
void lin_expect(clattn_status got, clattn_status want, const char *what);

/* On llvmpipe every call of a new shape costs ~0.1 s of CPU, so the FAVOR+/momentum tests run
 * the relu and identity maps (the element-wise path ELU already covers) and a few duplicate forms
 * only on PoCL's devices. */
int light_skip(clattn_linear_feature_map f);

cl_command_queue queue(void);

/* Random inputs in [-1, 1) (positive for the identity map), or in [-amp, amp]. */
float *inputs(size_t n, int positive, uint64_t *seed);
float *inputs_amp(size_t n, clattn_linear_feature_map f, float amp, uint64_t *seed);

/* ---- descs of every form and their reference ---- */

/* The reference's parameters for a desc: eps as given (0: none), step size 0 -> 1. */
double desc_eps(const clattn_linear_desc *d);
double desc_eta(const clattn_linear_desc *d);
/* The W a FAVOR desc uses for head dim D (a copy of the caller's, or the one drawn from its
 * seed); NULL for the other maps. */
float *desc_w(const clattn_linear_desc *d, size_t D);
void ref_of_desc(const clattn_linear_desc *d, const float *w, const float *q, const float *k,
                 const float *v, float *out, size_t B, size_t H, size_t Nq, size_t Nk, size_t D,
                 size_t Dv, int causal);
/* A desc of the given form. FAVOR with `supplied` gets a random W of its own in *wbuf (the
 * caller frees it), otherwise draws from wseed. */
clattn_linear_desc make_desc(clattn_linear_feature_map fmap, size_t M, int supplied, uint64_t wseed,
                             size_t D, clattn_linear_momentum mom, float mu, float eta, float **wbuf);
const char *fmap_name(clattn_linear_feature_map f);
const char *mom_name(clattn_linear_momentum m);

/* clattn_linear_enqueue on host arrays [B, H, N, *] (stored on the device as [B, N, H, *] views
 * when bnhd); returns the output in [B, H, N, Dv] (poisoned before the run). */
float *device_linear_layout(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq,
                            size_t Nk, size_t D, size_t Dv, const float *q, const float *k,
                            const float *v, int bnhd);
float *device_linear(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk,
                     size_t D, size_t Dv, const float *q, const float *k, const float *v);
/* One run of desc d (its causal flag) on random inputs of amplitude amp against the reference. */
void check_desc_layout(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk,
                       size_t D, size_t Dv, float amp, tu_tol tol, const char *what, int bnhd);
void check_desc(const clattn_linear_desc *d, size_t B, size_t H, size_t Nq, size_t Nk, size_t D,
                size_t Dv, float amp, tu_tol tol, const char *what);
/* On llvmpipe the library refuses FAVOR with more than 896 features (UNSUPPORTED): checks that
 * refusal, with the output left untouched. */
void expect_llvmpipe_refusal(const clattn_linear_desc *d, size_t N, size_t D);
/* x [B][Hk][N][D] with every head repeated `group` times (query head h reads key head
 * h / group), so the reference computes GQA as multi-head attention. */
float *expand_heads(const float *x, size_t B, size_t Hk, size_t N, size_t D, size_t group);
double dot_rows(const float *w, size_t a, size_t b, size_t D);

/* ---- the decoding state ---- */

typedef struct seqdata {
    size_t B, H, N, D, Dv;
    float *q, *k, *v, *ref; /* [B, H, N, *]; ref: causal attention over all N */
    cl_mem bq, bk, bv, bo;
} seqdata;

void seq_make(seqdata *s, size_t B, size_t H, size_t N, size_t D, size_t Dv,
              clattn_linear_feature_map fmap);
void seq_make_desc(seqdata *s, size_t B, size_t H, size_t N, size_t D, size_t Dv,
                   const clattn_linear_desc *d);
void seq_free(seqdata *s);
/* Positions [n0, n0 + len) of a dense [B, H, N, d] buffer, as a view. */
clattn_tensor window(cl_mem buf, const seqdata *s, size_t d, size_t n0, size_t len);
void prefill(clattn_linear_state *st, const seqdata *s, size_t n0, size_t len, int out);
void step(clattn_linear_state *st, const seqdata *s, size_t n, cl_mem obuf);
void check_outputs(const seqdata *s, const char *what);
clattn_linear_state *state_new(const seqdata *s, clattn_linear_feature_map fmap);
clattn_linear_state *state_of_desc(const seqdata *s, const clattn_linear_desc *d);

/* The forms the state tests run: every momentum form with ELU and FAVOR (drawn and supplied W). */
typedef struct form {
    clattn_linear_feature_map fmap;
    clattn_linear_momentum mom;
    int supplied;
} form;
extern const form forms[7];
clattn_linear_desc form_desc(const form *f, size_t D, float **w);

/* ---- plans ---- */

clattn_context_stats stats_now(void);
/* Fails unless kernels_created and program_lookups are unchanged. */
void expect_same_stats(const clattn_context_stats *a, const clattn_context_stats *b,
                       const char *what);

#endif
