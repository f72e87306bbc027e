/* The fused causal form of linear attention (kernels_cl/linear_causal.cl, issue 11 section 2):
 * plain causal plans of the element-wise maps without momentum on a CPU-like device that is not
 * loop-capped take it (plan info: variant clattn_linear_causal, launch "causal-fused eb=N"), others
 * the materialised chunk pipeline (CLATTN_LINEAR_CAUSAL=chunked forces it); non-causal plans with
 * enough (b, key head, value block) items take the same kernel.
 * Against the fp64 reference at lengths that are not a multiple of the 16-row chunk, N = 1, few
 * (b, head) pairs (value columns split across work-items) and many (whole value rows), strided
 * views, Dv not a multiple of 16, and GQA. Shapes stay small (two builds of the program: 1 and 4
 * value blocks per work-item on a 2-core PoCL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linear_fixture.h"

/* Bakes a plan of the shapes and checks which form it runs. */
static void expect_form_x(const clattn_linear_desc *d, size_t B, size_t Hq, size_t Hk, size_t N,
                          size_t Nk, size_t D, size_t Dv, int fused)
{
    size_t qs[4] = {B, Hq, N, D}, ks[4] = {B, Hk, Nk, D}, vs[4] = {B, Hk, Nk, Dv};
    clattn_plan *plan = NULL;
    if (clattn_linear_plan_create(ctx, d, qs, ks, vs, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_plan_info pi;
    assert_int_equal(clattn_plan_get_info(plan, &pi), CLATTN_SUCCESS);
    const char *want = fused ? "clattn_linear_causal" : "not clattn_linear_causal";
    if ((strcmp(pi.variant, "clattn_linear_causal") == 0) != fused ||
        (strstr(pi.launch, "causal-fused") != NULL) != fused)
        fail_msg("B%zu Hq%zu N%zu D%zu Dv%zu: variant %s launch '%s', expected %s", B, Hq, N, D,
                 Dv, pi.variant, pi.launch, want);
    clattn_plan_destroy(plan);
}

static void expect_form(const clattn_linear_desc *d, size_t B, size_t Hq, size_t Hk, size_t N,
                        size_t D, size_t Dv, int fused)
{
    expect_form_x(d, B, Hq, Hk, N, N, D, Dv, fused);
}

/* The fused form where the device takes it: not on llvmpipe (loop-capped). */
static int fused_here(void) { return !llvmpipe; }

static void test_fused_vs_reference(void **state)
{
    (void)state;
    static const struct {
        size_t B, H, N, D, Dv;
        clattn_linear_feature_map f;
        int bnhd;
    } cs[] = {
        {1, 2, 37, 16, 16, CLATTN_LINEAR_FEATURE_ELU, 0},      /* N not a multiple of 16 */
        {1, 1, 1, 16, 16, CLATTN_LINEAR_FEATURE_ELU, 0},       /* N = 1 */
        {1, 1, 50, 24, 40, CLATTN_LINEAR_FEATURE_RELU, 0},     /* B*H 1: Dv split, D, Dv odd */
        {3, 4, 45, 32, 64, CLATTN_LINEAR_FEATURE_RELU, 1},     /* B*H 12: whole rows, strided */
        {3, 3, 33, 16, 48, CLATTN_LINEAR_FEATURE_IDENTITY, 1}, /* Dv 48 in a 64-column item */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        clattn_linear_desc d;
        clattn_linear_desc_init(&d);
        d.causal = 1;
        d.feature_map = cs[i].f;
        expect_form(&d, cs[i].B, cs[i].H, cs[i].H, cs[i].N, cs[i].D, cs[i].Dv, fused_here());
        check_desc_layout(&d, cs[i].B, cs[i].H, cs[i].N, cs[i].N, cs[i].D, cs[i].Dv, 1.0f,
                          LIN_TOL, "fused causal", cs[i].bnhd);
    }
    /* elu far into its exponential branch (inputs in [-6, 6]) */
    clattn_linear_desc e;
    clattn_linear_desc_init(&e);
    e.causal = 1;
    check_desc(&e, 1, 2, 37, 37, 16, 16, 6.0f, LIN_TOL, "fused causal elu amp 6");
    /* eps 0 as well */
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.causal = 1;
    d.eps = 0.0f;
    check_desc(&d, 1, 2, 37, 37, 16, 16, 1.0f, LIN_TOL, "fused causal eps 0");
}

/* The non-causal form through the same kernel (all keys, then the query rows) where B * Hk *
 * (value blocks) fills the device: cross lengths, strided views, relu. */
static void test_noncausal(void **state)
{
    (void)state;
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.feature_map = CLATTN_LINEAR_FEATURE_RELU;
    expect_form_x(&d, 3, 4, 4, 29, 45, 32, 64, fused_here());
    check_desc_layout(&d, 3, 4, 29, 45, 32, 64, 1.0f, LIN_TOL, "fused non-causal", 1);
    d.feature_map = CLATTN_LINEAR_FEATURE_ELU;
    check_desc_layout(&d, 3, 4, 1, 17, 32, 64, 1.0f, LIN_TOL, "fused non-causal Nq 1", 0);
}

/* The forms that keep the chunk pipeline, and the override. */
static void test_routing(void **state)
{
    (void)state;
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    d.causal = 1;
    expect_form(&d, 1, 4, 2, 20, 16, 16, fused_here()); /* GQA: one item per key head */
    d.causal = 0;
    expect_form(&d, 1, 2, 2, 20, 16, 16, 0); /* non-causal: its own fused form */
    d.causal = 1;
    d.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
    d.mu = 0.5f;
    expect_form(&d, 1, 2, 2, 20, 16, 16, 0); /* momentum */
    d.momentum = CLATTN_LINEAR_MOMENTUM_NONE;
    assert_int_equal(setenv("CLATTN_LINEAR_CAUSAL", "chunked", 1), 0);
    expect_form(&d, 1, 2, 2, 20, 16, 16, 0);
    assert_int_equal(unsetenv("CLATTN_LINEAR_CAUSAL"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_vs_reference),
        cmocka_unit_test(test_noncausal),
        cmocka_unit_test(test_routing),
    };
    return lin_run("test_linear_causal", tests, sizeof tests / sizeof tests[0]);
}
