/* Exact attention with the options of real models (issue 16): additive bias, boolean mask, ALiBi,
 * sliding window, softcap, sinks, block-sparse layout and Dv != D, alone and combined with causal,
 * GQA, key lengths and lse, on every algorithm, against the fp64 reference ref_softmax_ex.
 * Inputs are random (never zeros), outputs poisoned; a -inf lse must match exactly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clattn.h"
#include "reference/ref_softmax.h"
#include "test_util.h"

static clattn_context *ctx;

/* One case. Bias / mask layouts: 0 none, 1 full [B, Hq, Nq, Nk], 2 one [Nq, Nk] for all
 * ({1, 1, Nq, Nk}), 3 per batch key padding ({B, 1, 1, Nk}). */
typedef struct ocase {
    size_t B, Hq, Hk, nq, nk, d, dv;
    int causal, key_lengths;
    int bias, mask;
    int alibi; /* 0 none, 1 standard slopes, 2 the caller's */
    int wl, wr; /* window sides; both -1: none */
    float softcap;
    int sinks;
    unsigned bq, bk; /* block mask when nonzero */
    float amp;
} ocase;

static ocase base_case(void)
{
    ocase c = {1, 2, 1, 37, 45, 24, 0, 0, 0, 0, 0, 0, -1, -1, 0.0f, 0, 0, 0, 1.0f};
    return c;
}

static void full_strides(const size_t shape[4], size_t st[4])
{
    st[3] = 1;
    st[2] = shape[3];
    st[1] = shape[2] * shape[3];
    st[0] = shape[1] * shape[2] * shape[3];
}

/* Strides of layout `kind` for the reference (0 on broadcast axes) and the shape of the view. */
static void layout(int kind, const ocase *c, size_t shape[4], size_t ref_st[4])
{
    size_t full[4] = {c->B, c->Hq, c->nq, c->nk};
    memcpy(shape, full, sizeof full);
    if (kind == 2)
        shape[0] = shape[1] = 1;
    if (kind == 3)
        shape[1] = shape[2] = 1;
    size_t st[4];
    full_strides(shape, st);
    for (int i = 0; i < 4; i++)
        ref_st[i] = shape[i] == 1 ? 0 : st[i];
}

/* Runs case c with algorithm algo; returns the worst normalised error of out and lse (INFINITY
 * on a NaN or a mismatched -inf), or -1 when the plan or the enqueue fails. */
static double run_case(const ocase *c, clattn_softmax_algo algo)
{
    size_t dv = c->dv ? c->dv : c->d;
    size_t nq = c->B * c->Hq * c->nq * c->d, nk = c->B * c->Hk * c->nk * c->d;
    size_t nv = c->B * c->Hk * c->nk * dv, no = c->B * c->Hq * c->nq * dv;
    size_t nl = c->B * c->Hq * c->nq, nqk = c->nq * c->nk * c->B * c->Hq;
    uint64_t seed = 1234 + c->d * 7 + c->nq;
    float *q = tu_random(nq, c->amp, &seed), *k = tu_random(nk, c->amp, &seed),
          *v = tu_random(nv, 1.0f, &seed);
    float *ref = malloc(no * 4), *rl = malloc(nl * 4), *o = tu_poisoned(no), *l = tu_poisoned(nl);
    int32_t *kl = malloc(c->B * sizeof *kl);
    for (size_t b = 0; b < c->B; b++)
        kl[b] = (int32_t)(b + 1 == c->B ? c->nk : (c->nk * (b + 1)) / (c->B + 1));
    float *bias = tu_random(nqk, 2.0f, &seed);
    for (size_t i = 0; i < nqk; i += 7)
        bias[i] = -INFINITY;
    uint8_t *mask = malloc(nqk);
    for (size_t i = 0; i < nqk; i++)
        mask[i] = (uint8_t)((i * 2654435761u >> 7) % 4 != 0);
    float *slopes = tu_random(c->Hq, 0.5f, &seed), *sinks = tu_random(c->Hq, 3.0f, &seed);
    for (size_t h = 0; h < c->Hq; h++)
        slopes[h] = fabsf(slopes[h]) + 0.01f;
    size_t nbq = c->bq ? (c->nq + c->bq - 1) / c->bq : 1, nbk = c->bk ? (c->nk + c->bk - 1) / c->bk : 1;
    size_t nbm = c->B * c->Hq * nbq * nbk;
    uint8_t *bm = malloc(nbm);
    for (size_t i = 0; i < nbm; i++)
        bm[i] = (uint8_t)((i * 40503u >> 3) % 3 != 0);

    ref_softmax_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.causal = c->causal;
    ro.key_lengths = c->key_lengths ? kl : NULL;
    ro.Dv = dv;
    size_t bshape[4], mshape[4];
    if (c->bias) {
        layout(c->bias, c, bshape, ro.bias_stride);
        ro.bias = bias;
    }
    if (c->mask) {
        layout(c->mask, c, mshape, ro.mask_stride);
        ro.mask = mask;
    }
    float std_slopes[64];
    if (c->alibi) {
        ref_alibi_slopes(c->Hq, std_slopes);
        ro.alibi_slopes = c->alibi == 1 ? std_slopes : slopes;
    }
    if (c->wl >= 0 || c->wr >= 0) {
        ro.window = 1;
        ro.window_left = c->wl;
        ro.window_right = c->wr;
    }
    ro.softcap = c->softcap;
    ro.sinks = c->sinks ? sinks : NULL;
    size_t bmshape[4] = {c->B, c->Hq, nbq, nbk};
    if (c->bq) {
        full_strides(bmshape, ro.block_mask_stride);
        ro.block_mask = bm;
        ro.block_q = c->bq;
        ro.block_k = c->bk;
    }
    ref_softmax_ex(q, k, v, ref, rl, c->B, c->Hq, c->Hk, c->nq, c->nk, c->d, &ro);

    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k),
           bv = tu_buffer(ctx, nv * 4, v), bo = tu_buffer(ctx, no * 4, o),
           bl = tu_buffer(ctx, nl * 4, l), bkl = tu_buffer(ctx, c->B * 4, kl),
           bb = tu_buffer(ctx, nqk * 4, bias), bmk = tu_buffer(ctx, nqk, mask),
           bsl = tu_buffer(ctx, c->Hq * 4, slopes), bsk = tu_buffer(ctx, c->Hq * 4, sinks),
           bbm = tu_buffer(ctx, nbm, bm);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.algorithm = algo;
    desc.causal = c->causal;
    desc.key_lengths = c->key_lengths ? bkl : NULL;
    if (c->bias) {
        desc.bias = clattn_tensor_make(bb, bshape[0], bshape[1], bshape[2], bshape[3]);
    }
    if (c->mask) {
        desc.mask = clattn_tensor_make_typed(bmk, CLATTN_U8, mshape[0], mshape[1], mshape[2],
                                             mshape[3]);
    }
    desc.alibi = c->alibi != 0;
    desc.alibi_slopes = c->alibi == 2 ? bsl : NULL;
    desc.window_left = c->wl;
    desc.window_right = c->wr;
    desc.softcap = c->softcap;
    desc.sinks = c->sinks ? bsk : NULL;
    if (c->bq) {
        desc.block_mask = clattn_tensor_make_typed(bbm, CLATTN_U8, bmshape[0], bmshape[1],
                                                   bmshape[2], bmshape[3]);
        desc.block_q = c->bq;
        desc.block_k = c->bk;
    }
    size_t sq[4] = {c->B, c->Hq, c->nq, c->d}, sk[4] = {c->B, c->Hk, c->nk, c->d},
           sv[4] = {c->B, c->Hk, c->nk, dv};
    clattn_plan *plan = NULL;
    double err = -1;
    if (clattn_softmax_plan_create(ctx, &desc, sq, sk, sv, &plan) == CLATTN_SUCCESS) {
        clattn_tensor tq = clattn_tensor_make(bq, sq[0], sq[1], sq[2], sq[3]);
        clattn_tensor tk = clattn_tensor_make(bk, sk[0], sk[1], sk[2], sk[3]);
        clattn_tensor tv = clattn_tensor_make(bv, sv[0], sv[1], sv[2], sv[3]);
        clattn_tensor to = clattn_tensor_make(bo, sq[0], sq[1], sq[2], dv);
        clattn_tensor tl = clattn_tensor_make(bl, sq[0], sq[1], sq[2], 1);
        if (clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL) ==
            CLATTN_SUCCESS) {
            tu_read(ctx, bo, no * 4, o);
            tu_read(ctx, bl, nl * 4, l);
            err = tu_norm_inf_err(o, ref, no);
            for (size_t i = 0; i < nl; i++) {
                if (isinf(rl[i]) || isinf(l[i])) {
                    if (!(isinf(rl[i]) && isinf(l[i]) && rl[i] == l[i]))
                        err = INFINITY;
                } else if (fabs(l[i] - rl[i]) / fmax(1.0, fabs(rl[i])) > err) {
                    err = fabs(l[i] - rl[i]) / fmax(1.0, fabs(rl[i]));
                }
            }
            for (size_t i = 0; i < no; i++)
                if (isnan(o[i]))
                    err = INFINITY;
        }
        clattn_plan_destroy(plan);
    }
    if (err < 0)
        fprintf(stderr, "case failed: %s\n", clattn_context_last_error(ctx));
    cl_mem all[] = {bq, bk, bv, bo, bl, bkl, bb, bmk, bsl, bsk, bbm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(rl);
    free(o);
    free(l);
    free(kl);
    free(bias);
    free(mask);
    free(slopes);
    free(sinks);
    free(bm);
    return err;
}

/* Each option alone, then every option at once, with GQA, causal and key lengths. */
static void check_algo(clattn_softmax_algo algo)
{
    ocase cs[12];
    int n = 0;
    ocase c = base_case();
    cs[n++] = c;                                  /* plain */
    c = base_case(); c.bias = 1; cs[n++] = c;
    c = base_case(); c.mask = 2; c.causal = 1; cs[n++] = c;
    c = base_case(); c.alibi = 1; c.causal = 1; cs[n++] = c;
    c = base_case(); c.alibi = 2; cs[n++] = c;
    c = base_case(); c.wl = 5; c.wr = 3; cs[n++] = c;
    c = base_case(); c.softcap = 5.0f; c.amp = 4.0f; cs[n++] = c;
    c = base_case(); c.sinks = 1; c.causal = 1; c.nq = 50; cs[n++] = c; /* rows with no key */
    c = base_case(); c.bq = 16; c.bk = 16; cs[n++] = c;
    c = base_case(); c.dv = 40; cs[n++] = c;
    c = base_case(); /* everything */
    c.B = 2; c.Hq = 4; c.Hk = 2; c.key_lengths = 1; c.causal = 1; c.bias = 3; c.mask = 1;
    c.alibi = 1; c.wl = 20; c.wr = 0; c.softcap = 8.0f; c.sinks = 1; c.bq = 32; c.bk = 16;
    c.dv = 17;
    cs[n++] = c;
    for (int i = 0; i < n; i++) {
        double err = run_case(&cs[i], algo);
        if (!(err >= 0 && err <= 1e-4))
            print_error("algo %d case %d: error %g\n", (int)algo, i, err);
        assert_true(err >= 0 && err <= 1e-4);
    }
}

static void test_naive(void **state)
{
    (void)state;
    check_algo(CLATTN_SOFTMAX_NAIVE);
}

/* ---- TILED_CPU (the cpu stream of issue 16) ---- */
static void test_tiled_cpu(void **state)
{
    (void)state;
    check_algo(CLATTN_SOFTMAX_TILED_CPU);
}

/* D and Dv beyond the old space, each with a few options: Dv < D and not a multiple of 16, D above
 * 256 (two P.V passes), D 512 with Dv 8; small shapes (each case is one kernel build). */
static void test_tiled_cpu_dims(void **state)
{
    (void)state;
    ocase cs[3];
    ocase c = base_case();
    c.d = 100; c.dv = 72; c.causal = 1; c.bias = 1; c.nq = 21; c.nk = 33;
    cs[0] = c;
    c = base_case();
    c.d = 320; c.Hq = 2; c.Hk = 1; c.key_lengths = 1; c.B = 2; c.nq = 9; c.nk = 40;
    cs[1] = c;
    c = base_case();
    c.d = 512; c.dv = 8; c.sinks = 1; c.wl = 7; c.wr = 2; c.bq = 16; c.bk = 16; c.nq = 19;
    c.nk = 50;
    cs[2] = c;
    for (int i = 0; i < 3; i++) {
        double err = run_case(&cs[i], CLATTN_SOFTMAX_TILED_CPU);
        if (!(err >= 0 && err <= 1e-4))
            print_error("tiled_cpu dims case %d: error %g\n", i, err);
        assert_true(err >= 0 && err <= 1e-4);
    }
}

/* One small case of every option at once (argv[1] == "oclgrind-cpu": the ctest oclgrind_softmax_cpu
 * runs it under oclgrind --data-races). */
static void test_tiled_cpu_oclgrind(void **state)
{
    (void)state;
    ocase c = base_case();
    c.B = 1; c.Hq = 2; c.Hk = 1; c.nq = 9; c.nk = 37; c.d = 16; c.dv = 8; c.causal = 1;
    c.key_lengths = 1; c.bias = 2; c.mask = 1; c.alibi = 1; c.wl = 20; c.wr = 0; c.softcap = 8.0f;
    c.sinks = 1; c.bq = 16; c.bk = 16;
    double err = run_case(&c, CLATTN_SOFTMAX_TILED_CPU);
    if (!(err >= 0 && err <= 1e-4))
        print_error("tiled_cpu oclgrind case: error %g\n", err);
    assert_true(err >= 0 && err <= 1e-4);
}

static int setup(void **state)
{
    (void)state;
    ctx = tu_context();
    return ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    clattn_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "oclgrind-cpu") == 0) {
        const struct CMUnitTest og[] = {cmocka_unit_test(test_tiled_cpu_oclgrind)};
        return cmocka_run_group_tests(og, setup, teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naive),
        cmocka_unit_test(test_tiled_cpu),
        cmocka_unit_test(test_tiled_cpu_dims),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
