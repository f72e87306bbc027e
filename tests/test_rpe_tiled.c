/* RPE attention's two direct kernels against the fp64 host reference (tests/reference/ref_rpe.c):
 * clattn_rpe_direct (a query row per work-item, chosen on CPUs) and clattn_rpe_direct_tiled
 * (register micro-tiles with __local tiles, chosen on GPU-like devices), each forced through
 * CLATTN_RPE_DIRECT_KERNEL so both run on every device config. Shapes are not multiples of the
 * tiles (32 rows and keys, 16 features, 8 x RPE_RD value columns per work-group): N = 1, 37, 70,
 * features 20 and 24, value columns 9 to 13 (one program: RPE_RD 2) and 72 (two column groups, the
 * second partial), grouped query heads, causal and not, ELU/RELU/FAVOR+, and the causal FFT path's directly summed head
 * rows (a partial last row block). Tolerance as test_rpe.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clattn.h"
#include "test_util.h"
#include "reference/ref_softmax.h"
#include "reference/ref_linear.h"
#include "reference/ref_rpe.h"

#define TOL ((tu_tol){1e-4, 1e-4, 1e-4})

static clattn_context *ctx;
static int cpu_device; /* PoCL: compiling clFFT's kernels costs more than the case is worth */

typedef struct tcase {
    size_t B, H, Hk, N, D, Dv;
    int causal;
    clattn_linear_feature_map fmap;
    size_t features; /* FAVOR's M */
    clattn_rpe_algo algo;
    float bias_scale;
} tcase;

/* The plan made for `d` holds the direct kernel `want`. */
static void expect_kernel(const clattn_rpe_desc *d, const size_t qs[4], const size_t ks[4],
                          const size_t vs[4], const char *want)
{
    clattn_plan *plan = NULL;
    clattn_plan_info info;
    if (clattn_rpe_plan_create(ctx, d, qs, ks, vs, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    int found = 0;
    for (unsigned i = 0; i < info.num_kernels; i++)
        found |= strcmp(info.kernels[i].name, want) == 0;
    if (!found)
        fail_msg("the plan has no %s", want);
    clattn_plan_destroy(plan);
}

static void run_case(const tcase *c)
{
    size_t nq = c->B * c->H * c->N * c->D, nk = c->B * c->Hk * c->N * c->D;
    size_t nv = c->B * c->Hk * c->N * c->Dv, no = c->B * c->H * c->N * c->Dv;
    size_t nb = c->H * (2 * c->N - 1), M = c->features;
    uint64_t seed = 1000 + c->N * 7 + c->Dv;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(nb, c->bias_scale, &seed);
    float *ref = malloc(no * sizeof(float)), *w = NULL;
    assert_non_null(ref);
    clattn_rpe_desc d;
    clattn_rpe_desc_init(&d);
    d.causal = c->causal;
    d.algorithm = c->algo;
    d.linear.feature_map = c->fmap;
    if (c->fmap == CLATTN_LINEAR_FEATURE_FAVOR) {
        w = malloc(M * c->D * sizeof(float));
        assert_non_null(w);
        ref_fill_uniform(w, M * c->D, 1.0f, &seed);
        d.linear.features = M;
        d.linear.projection = w;
        d.linear.projection_shape[0] = M;
        d.linear.projection_shape[1] = c->D;
    }
    ref_rpe_gqa(q, k, v, bias, ref, c->B, c->H, c->Hk, c->N, c->D, c->Dv, (int)c->fmap, w, M,
                CLATTN_LINEAR_DEFAULT_EPS, c->causal);
    size_t qs[4] = {c->B, c->H, c->N, c->D}, ks[4] = {c->B, c->Hk, c->N, c->D};
    size_t vs[4] = {c->B, c->Hk, c->N, c->Dv};
    static const char *modes[2] = {"rows", "tiled"};
    static const char *kernels[2] = {"clattn_rpe_direct", "clattn_rpe_direct_tiled"};
    for (int m = 0; m < 2; m++) {
        assert_int_equal(setenv("CLATTN_RPE_DIRECT_KERNEL", modes[m], 1), 0);
        expect_kernel(&d, qs, ks, vs, kernels[m]);
        float *out = tu_poisoned(no);
        if (clattn_rpe_host(ctx, &d, qs, ks, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
            fail_msg("%s: %s", modes[m], clattn_context_last_error(ctx));
        char what[128];
        snprintf(what, sizeof what, "%s B%zu H%zu/%zu N%zu D%zu Dv%zu causal %d fmap %d algo %d",
                 modes[m], c->B, c->H, c->Hk, c->N, c->D, c->Dv, c->causal, (int)c->fmap,
                 (int)c->algo);
        tu_check_close(out, ref, no, TOL, what);
        free(out);
    }
    unsetenv("CLATTN_RPE_DIRECT_KERNEL");
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
    free(w);
}

/* GQA, 20 features (two chunks, the second partial), 13 value columns, 37 rows. */
static void test_gqa_partial_tiles(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase c = {2, 4, 2, 37, 20, 13, causal, CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_RPE_DIRECT,
                   1.0f};
        run_case(&c);
    }
}

/* N = 1, and 72 value columns (two column groups) with RELU features and a large bias. */
static void test_edges(void **state)
{
    (void)state;
    tcase one = {1, 1, 1, 1, 3, 10, 1, CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_RPE_DIRECT, 1.0f};
    run_case(&one);
    one.causal = 0;
    run_case(&one);
    tcase wide = {1, 2, 2, 70, 5, 72, 1, CLATTN_LINEAR_FEATURE_RELU, 0, CLATTN_RPE_DIRECT,
                  30.0f};
    run_case(&wide);
}

/* FAVOR+ (per-row stabilisers in eps's scale), and the causal FFT path's head rows (rows < N: a
 * partial last row block). The latter not on CPU devices, where clFFT's kernels would be compiled
 * for this one case: test_rpe covers the causal FFT path there with the per-row kernel, and on
 * rusticl with the tiled one (AUTO's choice). */
static void test_favor_and_fft_head(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase f = {1, 2, 1, 45, 8, 11, causal, CLATTN_LINEAR_FEATURE_FAVOR, 24, CLATTN_RPE_DIRECT,
                   1.0f};
        run_case(&f);
    }
    tcase head = {1, 2, 2, 130, 6, 9, 1, CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_RPE_FFT, 1.0f};
    if (!cpu_device)
        run_case(&head);
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_context_last_error(NULL));
        return -1; /* a missing device is a failure, never a skip */
    }
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    fprintf(stderr, "device: %s / %s\n", info.platform_name, info.name);
    cpu_device = info.device_class == CLATTN_DEVICE_CPU;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gqa_partial_tiles),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_favor_and_fft_head),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
