/* The register-tiled output kernel of linear attention's non-causal forms (linear_fused.cl
 * clattn_linear_out_tiled, issue 12), forced on every device (CLATTN_LINEAR_OUT_KERNEL=tiled: the
 * scheduler's tile for the shape) against the fp64 reference: the fused form (phi from the q
 * view) with and without fixed momentum, the materialised forms (FAVOR+ features, adaptive
 * momentum's rows), query rows and value columns that are not tile multiples, N = 1, Dv != D,
 * GQA, strided [B, N, H, D] views and half tensors; the plans report the kernel.
 *
 * Shapes keep Dv > 32 so one tile (16 x 8 work-items, 8 x 4 micro-tile) serves every case: two
 * builds of linear_fused.cl in all (float32, f16; linear.cl's builds are the other suites'). CLATTN_TEST_LINEAR_TILES=all (by hand) runs the
 * float32 cases once per tile of the scheduler's candidate list instead, each tile forced. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linear_fixture.h"
#include "reference/ref_linear.h"

/* The plan of desc d for these shapes reports the tiled kernel. */
static void expect_tiled(const clattn_linear_desc *d, size_t B, size_t Hq, size_t Hk, size_t Nq,
                         size_t Nk, size_t D, size_t Dv)
{
    size_t qs[4] = {B, Hq, Nq, D}, ks[4] = {B, Hk, Nk, D}, vs[4] = {B, Hk, Nk, Dv};
    clattn_plan *plan = NULL;
    if (clattn_linear_plan_create(ctx, d, qs, ks, vs, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_plan_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    /* (an adaptive plan reports its scan kernel as the variant) */
    const char *want = d->momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? "clattn_linear_adaptive"
                                                                     : "clattn_linear_out_tiled";
    if (strcmp(info.variant, want) != 0 || !strstr(info.build_options, "-DLINEAR_OT_TX="))
        fail_msg("%s %s: variant %s, options %s", fmap_name(d->feature_map),
                 mom_name(d->momentum), info.variant, info.build_options);
    clattn_plan_destroy(plan);
}

static clattn_linear_desc desc(clattn_linear_feature_map f, clattn_linear_momentum mom,
                               size_t D, float **w)
{
    clattn_linear_desc d = make_desc(f, 40, 0, 17, D, mom, 0.9f, 0.5f, w);
    d.causal = 0;
    /* FUSED: on GPU-like devices AUTO takes CLBlast's GEMMs without momentum. */
    d.algorithm = CLATTN_LINEAR_FUSED;
    return d;
}

/* The fused form: phi(q) computed while staging, from the caller's view. */
static void test_fused(void **state)
{
    (void)state;
    static const clattn_linear_momentum moms[] = {CLATTN_LINEAR_MOMENTUM_NONE,
                                                  CLATTN_LINEAR_MOMENTUM_FIXED};
    for (size_t m = 0; m < 2; m++) {
        float *w;
        clattn_linear_desc d = desc(CLATTN_LINEAR_FEATURE_ELU, moms[m], 24, &w);
        expect_tiled(&d, 1, 2, 2, 70, 45, 24, 40);
        /* 70 rows: a full and a partial row tile; Dv 40: a partial column tile; D 24: a partial
         * feature stage (padding features 0). */
        check_desc(&d, 1, 2, 70, 45, 24, 40, 1.0f, LIN_TOL, "tiled fused");
        /* Dv 72: two column tiles, the second 8 wide; Nq 130 > two row tiles. */
        check_desc(&d, 1, 1, 130, 70, 16, 72, 1.0f, LIN_TOL, "tiled fused two column tiles");
        check_desc(&d, 2, 1, 1, 1, 24, 40, 1.0f, LIN_TOL, "tiled fused N 1");
        /* Strided: [B, N, H, D] views. */
        check_desc_layout(&d, 2, 3, 33, 50, 24, 40, 1.0f, LIN_TOL, "tiled fused bnhd", 1);
        free(w);
    }
    float *w;
    clattn_linear_desc d = desc(CLATTN_LINEAR_FEATURE_RELU, CLATTN_LINEAR_MOMENTUM_FIXED, 24, &w);
    check_desc(&d, 1, 2, 70, 45, 24, 40, 1.0f, LIN_TOL, "tiled fused relu");
    d = desc(CLATTN_LINEAR_FEATURE_IDENTITY, CLATTN_LINEAR_MOMENTUM_NONE, 24, &w);
    check_desc(&d, 1, 2, 70, 45, 24, 40, 1.0f, LIN_TOL, "tiled fused identity");
}

/* The materialised forms: FAVOR+ features (with their log-scales in eps) and adaptive momentum's
 * non-causal rows (the state S, no B). */
static void test_materialised(void **state)
{
    (void)state;
    static const clattn_linear_momentum moms[] = {CLATTN_LINEAR_MOMENTUM_NONE,
                                                  CLATTN_LINEAR_MOMENTUM_FIXED};
    for (size_t m = 0; m < 2; m++) {
        float *w;
        clattn_linear_desc d = desc(CLATTN_LINEAR_FEATURE_FAVOR, moms[m], 16, &w);
        expect_tiled(&d, 1, 2, 2, 70, 45, 16, 40);
        check_desc(&d, 1, 2, 70, 45, 16, 40, 1.0f, LIN_TOL, "tiled favor");
        check_desc(&d, 1, 1, 1, 1, 16, 40, 1.0f, LIN_TOL, "tiled favor N 1");
        free(w);
    }
    float *w;
    clattn_linear_desc d = desc(CLATTN_LINEAR_FEATURE_ELU, CLATTN_LINEAR_MOMENTUM_ADAPTIVE, 16, &w);
    d.algorithm = CLATTN_LINEAR_AUTO;
    expect_tiled(&d, 1, 2, 2, 50, 40, 16, 40);
    check_desc(&d, 1, 2, 50, 40, 16, 40, 1.0f, LIN_TOL, "tiled adaptive");
}

/* GQA: 4 query heads over 2 key heads (each reads key head h / 2), fused and materialised. */
static void test_gqa(void **state)
{
    (void)state;
    static const clattn_linear_feature_map maps[] = {CLATTN_LINEAR_FEATURE_ELU,
                                                     CLATTN_LINEAR_FEATURE_FAVOR};
    size_t B = 2, Hq = 4, Hk = 2, group = 2, Nq = 45, N = 60, D = 16, Dv = 40;
    for (size_t f = 0; f < 2; f++) {
        float *w;
        clattn_linear_desc d = desc(maps[f], CLATTN_LINEAR_MOMENTUM_FIXED, D, &w);
        uint64_t seed = 4242 + f;
        size_t nq = B * Hq * Nq * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv;
        size_t no = B * Hq * Nq * Dv;
        float *q = inputs_amp(nq, d.feature_map, 1.0f, &seed);
        float *k = inputs_amp(nk, d.feature_map, 1.0f, &seed);
        float *v = inputs_amp(nv, CLATTN_LINEAR_FEATURE_ELU, 1.0f, &seed);
        float *ke = expand_heads(k, B, Hk, N, D, group), *ve = expand_heads(v, B, Hk, N, Dv, group);
        float *wd = desc_w(&d, D), *ref = malloc(no * 4), *out = malloc(no * 4);
        assert_true(ref && out);
        ref_of_desc(&d, wd, q, ke, ve, ref, B, Hq, Nq, N, D, Dv, 0);
        expect_tiled(&d, B, Hq, Hk, Nq, N, D, Dv);
        cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
        cl_mem bv = tu_buffer(ctx, nv * 4, v), bo = tu_buffer(ctx, no * 4, NULL);
        tu_poison_buffer(ctx, bo, no * 4);
        clattn_tensor tq = clattn_tensor_make(bq, B, Hq, Nq, D);
        clattn_tensor tk = clattn_tensor_make(bk, B, Hk, N, D);
        clattn_tensor tv = clattn_tensor_make(bv, B, Hk, N, Dv);
        clattn_tensor to = clattn_tensor_make(bo, B, Hq, Nq, Dv);
        if (clattn_linear_enqueue(ctx, &d, &tq, &tk, &tv, &to, 0, NULL, NULL) != CLATTN_SUCCESS)
            fail_msg("GQA enqueue: %s", clattn_context_last_error(ctx));
        tu_read(ctx, bo, no * 4, out);
        tu_check_close(out, ref, no, LIN_TOL, maps[f] == CLATTN_LINEAR_FEATURE_ELU
                                                  ? "tiled GQA elu fixed"
                                                  : "tiled GQA favor fixed");
        cl_mem all[] = {bq, bk, bv, bo};
        for (int i = 0; i < 4; i++)
            clReleaseMemObject(all[i]);
        free(q);
        free(k);
        free(v);
        free(ke);
        free(ve);
        free(wd);
        free(ref);
        free(out);
        free(w);
    }
}

/* Half tensors (q, k, v and out f16): the fused form reads q through CLATTN_LOAD, the
 * materialised one its float features; out stored as f16. Against the reference on the
 * half-rounded inputs. */
static void test_half(void **state)
{
    (void)state;
    /* Its own build of the programs (~10 s of PoCL compile): on pocl and rusticl, not again on
     * pocl_basic (the same compiler; the kernel's typed loads and stores are CLATTN_LOAD/STORE). */
    const char *pd = getenv("POCL_DEVICES");
    if (pd && strcmp(pd, "basic") == 0)
        skip();
    static const clattn_linear_feature_map maps[] = {CLATTN_LINEAR_FEATURE_ELU,
                                                     CLATTN_LINEAR_FEATURE_FAVOR};
    size_t B = 1, H = 2, Nq = 70, Nk = 45, D = 16, Dv = 40;
    size_t nq = B * H * Nq * D, nk = B * H * Nk * D, nv = B * H * Nk * Dv, no = B * H * Nq * Dv;
    for (size_t f = 0; f < 2; f++) {
        float *w;
        clattn_linear_desc d = desc(maps[f], CLATTN_LINEAR_MOMENTUM_FIXED, D, &w);
        uint64_t seed = 777 + f;
        float *q = inputs(nq, 0, &seed), *k = inputs(nk, 0, &seed), *v = inputs(nv, 0, &seed);
        tu_round_to(q, nq, CLATTN_F16);
        tu_round_to(k, nk, CLATTN_F16);
        tu_round_to(v, nv, CLATTN_F16);
        float *wd = desc_w(&d, D);
        double *ref = malloc(no * sizeof *ref);
        assert_non_null(ref);
        ref_linear_general_d(q, k, v, ref, B, H, Nq, Nk, D, Dv, (int)d.feature_map, wd,
                             d.features, desc_eps(&d), 0, (int)d.momentum, (double)d.mu,
                             desc_eta(&d));
        void *pq = tu_pack(q, nq, CLATTN_F16), *pk = tu_pack(k, nk, CLATTN_F16);
        void *pv = tu_pack(v, nv, CLATTN_F16);
        cl_mem bq = tu_buffer(ctx, nq * 2, pq), bk = tu_buffer(ctx, nk * 2, pk);
        cl_mem bv = tu_buffer(ctx, nv * 2, pv), bo = tu_buffer(ctx, no * 2, NULL);
        tu_poison_buffer(ctx, bo, no * 2);
        clattn_tensor tq = clattn_tensor_make_typed(bq, CLATTN_F16, B, H, Nq, D);
        clattn_tensor tk = clattn_tensor_make_typed(bk, CLATTN_F16, B, H, Nk, D);
        clattn_tensor tv = clattn_tensor_make_typed(bv, CLATTN_F16, B, H, Nk, Dv);
        clattn_tensor to = clattn_tensor_make_typed(bo, CLATTN_F16, B, H, Nq, Dv);
        if (clattn_linear_enqueue(ctx, &d, &tq, &tk, &tv, &to, 0, NULL, NULL) != CLATTN_SUCCESS)
            fail_msg("f16 enqueue: %s", clattn_context_last_error(ctx));
        void *got = malloc(no * 2);
        assert_non_null(got);
        tu_read(ctx, bo, no * 2, got);
        tu_check_typed(got, CLATTN_F16, ref, no, LIN_TOL,
                       f == 0 ? "tiled f16 elu fixed" : "tiled f16 favor fixed");
        cl_mem all[] = {bq, bk, bv, bo};
        for (int i = 0; i < 4; i++)
            clReleaseMemObject(all[i]);
        free(pq);
        free(pk);
        free(pv);
        free(got);
        free(q);
        free(k);
        free(v);
        free(wd);
        free(ref);
        free(w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused),
        cmocka_unit_test(test_materialised),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_half),
    };
    const char *all = getenv("CLATTN_TEST_LINEAR_TILES");
    if (!all || strcmp(all, "all") != 0) {
        setenv("CLATTN_LINEAR_OUT_KERNEL", "tiled", 1);
        return lin_run("test_linear_tiled", tests, sizeof tests / sizeof tests[0]);
    }
    /* Every candidate tile of lib/sched/sched_linear.c, forced in turn (float32 cases). */
    static const unsigned tiles[][4] = {{16, 8, 8, 4}, {16, 16, 4, 4}, {8, 8, 8, 8},
                                        {8, 16, 4, 4}, {16, 16, 8, 8}, {8, 8, 4, 4}};
    int rc = 0;
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        char env[64];
        snprintf(env, sizeof env, "tiled:%u,%u,%u,%u", tiles[t][0], tiles[t][1], tiles[t][2],
                 tiles[t][3]);
        setenv("CLATTN_LINEAR_OUT_KERNEL", env, 1);
        printf("tile %s\n", env);
        rc |= lin_run("test_linear_tiled", tests, 3);
    }
    return rc;
}
