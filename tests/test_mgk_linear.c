/* Linear MGK (include/clattn/mgk.h, form CLATTN_MGK_LINEAR) against the fp64 reference
 * (tests/reference/ref_mgk.c): non-causal and causal, Nq != Nk, lengths that are not multiples of
 * anything, N = 1, R = 1, 2, 3, eps 0 and the default; the decoding state: steps over a sequence
 * (views into whole arrays, pi one position at a time) equal the causal reference, a reset starts
 * over, and steps create no kernel and look up no program; neither do a plan's enqueues.
 * Poisoned outputs throughout.
 * Tolerance: TU_TOL_FP32. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "test_util.h"
#include "reference/ref_mgk.h"

static clattn_context *ctx;

static float *positive_pi(size_t n, uint64_t *seed)
{
    float *p = tu_random(n, 1.0f, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = fabsf(p[i]);
    return p;
}

static void run_linear(size_t B, size_t H, size_t R, size_t Nq, size_t Nk, size_t D, int causal,
                       float eps)
{
    uint64_t seed = 0x11aa0000ull + Nq * 31 + Nk * 7 + R;
    size_t nq = B * H * Nq * D, nk = B * H * R * Nk * D, nv = B * H * Nk * D, np = H * R * Nk;
    float *q = tu_random(nq, 1.5f, &seed), *k = tu_random(nk, 1.5f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *pi = positive_pi(np, &seed);
    float *out = tu_poisoned(nq);
    double *ref = malloc(nq * sizeof *ref);
    ref_mgk_linear(q, k, v, pi, ref, B, H, R, Nq, Nk, D, eps, causal);
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = CLATTN_MGK_LINEAR;
    desc.causal = causal;
    desc.eps = eps;
    size_t qs[4] = {B, H, Nq, D}, ks[4] = {B, H * R, Nk, D};
    clattn_status st = clattn_mgk_host(ctx, &desc, qs, ks, q, k, v, pi, out, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("linear mgk: %s", clattn_context_last_error(ctx));
    char what[96];
    snprintf(what, sizeof what, "linear mgk R%zu Nq%zu Nk%zu causal %d", R, Nq, Nk, causal);
    tu_check_close_d(out, ref, nq, TU_TOL_FP32, what);
    free(q), free(k), free(v), free(pi), free(out), free(ref);
}

static void test_noncausal(void **st)
{
    (void)st;
    run_linear(2, 2, 2, 37, 37, 20, 0, 1e-5f);
    run_linear(1, 3, 2, 11, 50, 20, 0, 0.0f);
    run_linear(1, 1, 2, 1, 1, 20, 0, 1e-5f);
    run_linear(2, 1, 3, 9, 14, 20, 0, 1e-5f);
}

static void test_causal(void **st)
{
    (void)st;
    run_linear(2, 2, 2, 45, 45, 20, 1, 1e-5f);
    run_linear(1, 1, 2, 1, 1, 20, 1, 0.0f);
    run_linear(1, 2, 3, 17, 17, 20, 1, 1e-5f);
}

/* Steps over N positions equal the causal reference, row by row; a reset starts over. */
static void test_state_steps(void **st)
{
    (void)st;
    size_t B = 2, H = 2, R = 2, N = 13, D = 20;
    uint64_t seed = 4242;
    size_t nq = B * H * N * D, nk = nq * R, np = H * R * N;
    float *q = tu_random(nq, 1.5f, &seed), *k = tu_random(nk, 1.5f, &seed);
    float *v = tu_random(nq, 1.0f, &seed), *pi = positive_pi(np, &seed);
    float *out = tu_poisoned(nq);
    double *ref = malloc(nq * sizeof *ref);
    ref_mgk_linear(q, k, v, pi, ref, B, H, R, N, N, D, 1e-5, 1);
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
    cl_mem bv = tu_buffer(ctx, nq * 4, v), bp = tu_buffer(ctx, np * 4, pi);
    cl_mem bo = tu_buffer(ctx, nq * 4, out);
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = CLATTN_MGK_LINEAR;
    clattn_mgk_state *state = NULL;
    assert_int_equal(clattn_mgk_state_create(ctx, &desc, B, H, R, D, &state), CLATTN_SUCCESS);
    clattn_context_stats s0, s1;
    assert_int_equal(clattn_context_get_stats(ctx, &s0), CLATTN_SUCCESS);
    for (int pass = 0; pass < 2; pass++) {
        size_t upto = pass == 0 ? N : 5;
        if (pass == 1) {
            assert_int_equal(clattn_mgk_state_reset(state, 0, NULL, NULL), CLATTN_SUCCESS);
            tu_poison_buffer(ctx, bo, nq * 4);
        }
        for (size_t j = 0; j < upto; j++) {
            clattn_tensor tq = clattn_tensor_make(bq, B, H, N, D), tv = clattn_tensor_make(bv, B, H, N, D);
            clattn_tensor tk = clattn_tensor_make(bk, B, H * R, N, D);
            clattn_tensor to = clattn_tensor_make(bo, B, H, N, D);
            clattn_tensor tp = clattn_tensor_make(bp, 1, H, R, N);
            clattn_tensor *all[] = {&tq, &tv, &tk, &to, &tp};
            for (int i = 0; i < 5; i++) {
                all[i]->shape[all[i] == &tp ? 3 : 2] = 1;
                all[i]->offset = j * all[i]->strides[all[i] == &tp ? 3 : 2];
            }
            clattn_status s = clattn_mgk_state_step(state, &tq, &tk, &tv, &tp, &to, 0, NULL, NULL);
            if (s != CLATTN_SUCCESS)
                fail_msg("step %zu: %s", j, clattn_context_last_error(ctx));
        }
        tu_read(ctx, bo, nq * 4, out);
        /* compare the rows stepped so far */
        for (size_t bh = 0; bh < B * H; bh++)
            tu_check_close_d(out + bh * N * D, ref + bh * N * D, upto * D, TU_TOL_FP32,
                             pass == 0 ? "mgk state steps" : "mgk state after reset");
    }
    assert_int_equal(clattn_context_get_stats(ctx, &s1), CLATTN_SUCCESS);
    assert_int_equal(s1.kernels_created, s0.kernels_created);
    assert_int_equal(s1.program_lookups, s0.program_lookups);
    clattn_mgk_state_destroy(state);
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv);
    clReleaseMemObject(bp), clReleaseMemObject(bo);
    free(q), free(k), free(v), free(pi), free(out), free(ref);
}

/* The plan path (features kernel + the linear family's plan): two enqueues of one plan create no
 * kernel and look up no program, and the second gives the same output. */
static void test_plan_no_builds(void **st)
{
    (void)st;
    size_t B = 1, H = 2, R = 2, N = 21, D = 20;
    uint64_t seed = 808;
    size_t nq = B * H * N * D, nk = nq * R, np = H * R * N;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nq, 1.0f, &seed), *pi = positive_pi(np, &seed);
    float *o1 = tu_poisoned(nq), *o2 = tu_poisoned(nq);
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
    cl_mem bv = tu_buffer(ctx, nq * 4, v), bp = tu_buffer(ctx, np * 4, pi);
    cl_mem bo = tu_buffer(ctx, nq * 4, o1);
    for (int causal = 0; causal <= 1; causal++) {
        clattn_mgk_desc desc;
        clattn_mgk_desc_init(&desc);
        desc.form = CLATTN_MGK_LINEAR;
        desc.causal = causal;
        size_t qs[4] = {B, H, N, D}, ks[4] = {B, H * R, N, D};
        clattn_plan *plan = NULL;
        assert_int_equal(clattn_mgk_plan_create(ctx, &desc, qs, ks, &plan), CLATTN_SUCCESS);
        clattn_tensor tq = clattn_tensor_make(bq, B, H, N, D), tv = clattn_tensor_make(bv, B, H, N, D);
        clattn_tensor tk = clattn_tensor_make(bk, B, H * R, N, D), to = clattn_tensor_make(bo, B, H, N, D);
        clattn_tensor tp = clattn_tensor_make(bp, 1, H, R, N);
        clattn_context_stats s0, s1;
        assert_int_equal(clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, NULL, 0, NULL, NULL),
                         CLATTN_SUCCESS);
        tu_read(ctx, bo, nq * 4, o1);
        tu_poison_buffer(ctx, bo, nq * 4);
        assert_int_equal(clattn_context_get_stats(ctx, &s0), CLATTN_SUCCESS);
        assert_int_equal(clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, NULL, 0, NULL, NULL),
                         CLATTN_SUCCESS);
        assert_int_equal(clattn_context_get_stats(ctx, &s1), CLATTN_SUCCESS);
        assert_int_equal(s1.kernels_created, s0.kernels_created);
        assert_int_equal(s1.program_lookups, s0.program_lookups);
        tu_read(ctx, bo, nq * 4, o2);
        assert_memory_equal(o1, o2, nq * 4);
        clattn_plan_destroy(plan);
    }
    clReleaseMemObject(bq), clReleaseMemObject(bk), clReleaseMemObject(bv);
    clReleaseMemObject(bp), clReleaseMemObject(bo);
    free(q), free(k), free(v), free(pi), free(o1), free(o2);
}

static int setup(void **st)
{
    (void)st;
    ctx = tu_context();
    return ctx ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noncausal),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_state_steps),
        cmocka_unit_test(test_plan_no_builds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
