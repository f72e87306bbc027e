/* Exact softmax attention with half storage (issue 15): q, k, v and out each f32, f16 or bf16,
 * on every algorithm (TILED_CPU, TILED_GPU, TILED_GPU_ROWS, NAIVE, AUTO).
 *
 * Reference: the fp64 host reference (tests/reference/ref_softmax.c) computed from the SAME
 * half-rounded inputs (tu_round_to). Tolerance: clattn.h's accuracy contract through
 * tu_check_typed with TU_TOL_FP32 (|x - r| <= ulp_dt(r) + 1e-4 + 1e-4 |r|, normalised error
 * <= 1e-5 + half an ulp); lse (always float32) with tu_check_close_d and TU_TOL_FP32 (-inf rows
 * exactly). Outputs are poisoned with 0xff bytes (NaN in every type) before each run. Small shapes
 * only: the suite runs on pocl, pocl_basic and rusticl in a few seconds. */
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
#include "reference/ref_softmax.h"

static clattn_context *ctx;

#define F32 CLATTN_F32
#define F16 CLATTN_F16
#define BF16 CLATTN_BF16

typedef struct dcase {
    size_t B, Hq, Hk, Nq, Nk, D;
    int causal;
    int key_lengths; /* per batch {0, Nk, random, ...}: batch 0's rows see no key */
    float amp;       /* inputs uniform in [-amp, amp] (0: 1) */
    float scale;     /* 0: 1/sqrt(D) */
    clattn_softmax_algo algo;
    int bnhd;        /* every tensor a [B, N, H, D]-strided view */
    clattn_dtype dt[4]; /* q, k, v, out */
} dcase;

static const char *dn(clattn_dtype d) { return clattn_dtype_name(d); }

/* A buffer of `bytes` filled with 0xff (NaN as f32, f16 and bf16). */
static cl_mem poisoned(size_t bytes)
{
    unsigned char *p = malloc(bytes);
    assert_non_null(p);
    memset(p, 0xff, bytes);
    cl_mem m = tu_buffer(ctx, bytes, p);
    free(p);
    return m;
}

/* A device copy of x ([B, H, N, D] floats) as dt elements, laid out [B, N, H, D] when bnhd. */
static cl_mem upload(const float *x, size_t B, size_t H, size_t N, size_t D, int bnhd,
                     clattn_dtype dt)
{
    size_t n = B * H * N * D;
    float *r = bnhd ? tu_relayout(x, B, H, N, D, 1) : (float *)x;
    void *p = tu_pack(r, n, dt);
    cl_mem m = tu_buffer(ctx, n * clattn_dtype_size(dt), p);
    free(p);
    if (bnhd)
        free(r);
    return m;
}

static clattn_tensor view(cl_mem m, size_t B, size_t H, size_t N, size_t D, int bnhd,
                          clattn_dtype dt)
{
    clattn_tensor t = tu_view(m, B, H, N, D, bnhd);
    t.dtype = dt;
    return t;
}

static void run_case(const dcase *c)
{
    uint64_t seed = 0x51ed2701u ^ (c->Nq * 131 + c->Nk * 17 + c->D * 7 + c->Hq +
                                   (uint64_t)(c->dt[0] * 27 + c->dt[1] * 9 + c->dt[2] * 3 + c->dt[3]));
    size_t nq = c->B * c->Hq * c->Nq * c->D, nk = c->B * c->Hk * c->Nk * c->D;
    size_t nl = c->B * c->Hq * c->Nq;
    float amp = c->amp > 0 ? c->amp : 1.0f;
    float *q = tu_random(nq, amp, &seed), *k = tu_random(nk, amp, &seed);
    float *v = tu_random(nk, 1.0f, &seed);
    tu_round_to(q, nq, c->dt[0]);
    tu_round_to(k, nk, c->dt[1]);
    tu_round_to(v, nk, c->dt[2]);
    float *ref = malloc(nq * 4), *ref_lse = malloc(nl * 4);
    double *refd = malloc(nq * sizeof(double)), *lsed = malloc(nl * sizeof(double));
    int32_t *kl = calloc(c->B, sizeof(int32_t));
    assert_true(ref && ref_lse && refd && lsed && kl);
    for (size_t b = 0; b < c->B; b++)
        kl[b] = (int32_t)(b == 0 ? 0 : b == 1 ? c->Nk : (seed >> 11) % (c->Nk + 1));
    const int32_t *klp = c->key_lengths ? kl : NULL;
    double scale = c->scale != 0.0f ? c->scale : 1.0 / sqrt((double)c->D);
    ref_softmax(q, k, v, ref, ref_lse, c->B, c->Hq, c->Hk, c->Nq, c->Nk, c->D, scale, c->causal,
                klp);
    for (size_t i = 0; i < nq; i++)
        refd[i] = ref[i];
    for (size_t i = 0; i < nl; i++)
        lsed[i] = ref_lse[i];

    cl_mem bq = upload(q, c->B, c->Hq, c->Nq, c->D, c->bnhd, c->dt[0]);
    cl_mem bk = upload(k, c->B, c->Hk, c->Nk, c->D, c->bnhd, c->dt[1]);
    cl_mem bv = upload(v, c->B, c->Hk, c->Nk, c->D, c->bnhd, c->dt[2]);
    size_t obytes = nq * clattn_dtype_size(c->dt[3]);
    cl_mem bo = poisoned(obytes), bl = poisoned(nl * 4);
    cl_mem bkl = tu_buffer(ctx, c->B * sizeof(int32_t), kl);

    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    desc.causal = c->causal;
    desc.scale = c->scale;
    desc.algorithm = c->algo;
    desc.q_dtype = c->dt[0];
    desc.k_dtype = c->dt[1];
    desc.v_dtype = c->dt[2];
    desc.out_dtype = c->dt[3];
    if (klp)
        desc.key_lengths = bkl;
    size_t qs[4] = {c->B, c->Hq, c->Nq, c->D}, ks[4] = {c->B, c->Hk, c->Nk, c->D};
    clattn_plan *plan = NULL;
    clattn_status st = clattn_softmax_plan_create(ctx, &desc, qs, ks, ks, &plan);
    if (st != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_tensor tq = view(bq, c->B, c->Hq, c->Nq, c->D, c->bnhd, c->dt[0]);
    clattn_tensor tk = view(bk, c->B, c->Hk, c->Nk, c->D, c->bnhd, c->dt[1]);
    clattn_tensor tv = view(bv, c->B, c->Hk, c->Nk, c->D, c->bnhd, c->dt[2]);
    clattn_tensor to = view(bo, c->B, c->Hq, c->Nq, c->D, c->bnhd, c->dt[3]);
    clattn_tensor tl = clattn_tensor_make(bl, c->B, c->Hq, c->Nq, 1);
    /* The plan's kernels exist: enqueues create none. */
    clattn_context_stats s0, s1;
    assert_int_equal(clattn_context_get_stats(ctx, &s0), CLATTN_SUCCESS);
    for (int rep = 0; rep < 2; rep++) {
        st = clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &tl, 0, NULL, NULL);
        if (st != CLATTN_SUCCESS)
            fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    }
    assert_int_equal(clattn_context_get_stats(ctx, &s1), CLATTN_SUCCESS);
    assert_int_equal(s1.kernels_created, s0.kernels_created);

    unsigned char *raw = malloc(obytes);
    float *lse = malloc(nl * 4);
    assert_true(raw && lse);
    tu_read(ctx, bo, obytes, raw);
    tu_read(ctx, bl, nl * 4, lse);
    void *got = raw;
    if (c->bnhd) { /* back to [B, H, N, D] */
        float *f = tu_unpack(raw, nq, c->dt[3]);
        float *r = tu_relayout(f, c->B, c->Hq, c->Nq, c->D, 0);
        got = tu_pack(r, nq, c->dt[3]);
        free(f);
        free(r);
    }
    clattn_plan_info info;
    clattn_plan_get_info(plan, &info);
    char what[240];
    snprintf(what, sizeof what,
             "%s q %s k %s v %s out %s B%zu Hq%zu Hk%zu Nq%zu Nk%zu D%zu causal%d kl%d bnhd%d "
             "scale %g",
             info.variant, dn(c->dt[0]), dn(c->dt[1]), dn(c->dt[2]), dn(c->dt[3]), c->B, c->Hq,
             c->Hk, c->Nq, c->Nk, c->D, c->causal, c->key_lengths, c->bnhd, (double)c->scale);
    tu_check_typed(got, c->dt[3], refd, nq, TU_TOL_FP32, what);
    tu_check_close_d(lse, lsed, nl, TU_TOL_FP32, what);

    clattn_plan_destroy(plan);
    cl_mem all[] = {bq, bk, bv, bo, bl, bkl};
    for (size_t i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
    if (got != raw)
        free(got);
    free(raw);
    free(lse);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(ref_lse);
    free(refd);
    free(lsed);
    free(kl);
}

/* Every program (algorithm x D x types) costs a kernel compilation (about a second on PoCL), so
 * the cases reuse few type combinations at D 16: TILED_CPU (AUTO's choice on CPUs) takes the whole
 * matrix -- all f16, all bf16, f16 in / f32 out, f32 in / bf16 out, mixed bf16 q / f16 k / f32 v /
 * f16 out -- and the other algorithms two combinations that between them load and store every
 * type: the mixed one and f16 q / bf16 k / bf16 v / bf16 out. */
static const clattn_dtype C_H[4] = {F16, F16, F16, F16}, C_B[4] = {BF16, BF16, BF16, BF16},
                          C_HS[4] = {F16, F16, F16, F32}, C_SB[4] = {F32, F32, F32, BF16},
                          C_MIX[4] = {BF16, F16, F32, F16}, C_X[4] = {F16, BF16, BF16, BF16};
#define CPU CLATTN_SOFTMAX_TILED_CPU
#define GPU CLATTN_SOFTMAX_TILED_GPU
#define ROWS CLATTN_SOFTMAX_TILED_GPU_ROWS
#define NAIVE CLATTN_SOFTMAX_NAIVE
#define AUTO CLATTN_SOFTMAX_AUTO

static void run(size_t B, size_t Hq, size_t Hk, size_t Nq, size_t Nk, size_t D, int causal,
                int kl, float amp, float scale, clattn_softmax_algo algo, int bnhd,
                const clattn_dtype dt[4])
{
    dcase c = {B, Hq, Hk, Nq, Nk, D, causal, kl, amp, scale, algo, bnhd, {F32, F32, F32, F32}};
    memcpy(c.dt, dt, sizeof c.dt);
    run_case(&c);
}

/* The type matrix, non-tile shapes (Nq 19, Nk 37; D 40 once). */
static void test_type_matrix(void **state)
{
    (void)state;
    const clattn_dtype *cpu[] = {C_H, C_B, C_HS, C_SB, C_MIX};
    for (size_t m = 0; m < 5; m++)
        run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, CPU, 0, cpu[m]);
    run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, GPU, 0, C_MIX);
    run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, GPU, 0, C_X);
    run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, ROWS, 0, C_X);
    run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, NAIVE, 0, C_MIX);
    run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, NAIVE, 0, C_X);
    run(1, 2, 2, 19, 37, 16, 0, 0, 0, 0, AUTO, 0, C_MIX);
    run(1, 1, 1, 19, 37, 40, 0, 0, 0, 0, GPU, 0, C_MIX);
}

/* Causal, GQA (Hq 4 over Hk 2), key lengths with a zero-length batch (zeros in out, -inf lse). */
static void test_masks_gqa(void **state)
{
    (void)state;
    run(3, 4, 2, 21, 33, 16, 1, 1, 0, 0, CPU, 0, C_H);
    run(3, 4, 2, 33, 21, 16, 1, 1, 0, 0, CPU, 0, C_B);
    run(3, 4, 2, 21, 33, 16, 1, 1, 0, 0, GPU, 0, C_X);
    run(3, 4, 2, 21, 33, 16, 1, 1, 0, 0, ROWS, 0, C_X);
    run(3, 4, 2, 21, 33, 16, 1, 1, 0, 0, NAIVE, 0, C_MIX);
    run(3, 4, 2, 33, 21, 16, 1, 1, 0, 0, AUTO, 0, C_MIX);
}

/* Logits reaching +-1000: inputs in [-1, 1] (half-representable after rounding), desc.scale 250
 * with D 16 lifts |q.k| * scale to ~1000. */
static void test_large_logits(void **state)
{
    (void)state;
    run(1, 2, 1, 17, 29, 16, 0, 0, 1.0f, 250.0f, CPU, 0, C_H);
    run(1, 2, 1, 17, 29, 16, 1, 0, 1.0f, -250.0f, CPU, 0, C_B);
    run(1, 2, 1, 17, 29, 16, 1, 0, 1.0f, 250.0f, GPU, 0, C_MIX);
    run(1, 2, 1, 17, 29, 16, 0, 0, 1.0f, 250.0f, ROWS, 0, C_X);
    run(1, 2, 1, 17, 29, 16, 1, 0, 1.0f, 250.0f, NAIVE, 0, C_X);
}

/* N = 1: one query over a longer key sequence (TILED_CPU packs half panels there, f16 here, and
 * bf16 K / f16 V with key lengths), Nq = Nk = 1, and a query count past TILED_CPU's 32-row block
 * (float32 panels read by two work-items). */
static void test_lengths(void **state)
{
    (void)state;
    static const clattn_dtype bh[4] = {F16, BF16, F16, F32};
    run(1, 2, 2, 1, 70, 16, 0, 0, 0, 0, CPU, 0, C_H);
    run(2, 2, 2, 1, 50, 16, 0, 1, 0, 0, CPU, 0, bh);
    run(1, 1, 1, 1, 1, 16, 1, 0, 0, 0, CPU, 0, C_SB);
    run(1, 1, 1, 45, 45, 16, 1, 0, 0, 0, CPU, 0, C_B);
    run(1, 2, 2, 1, 70, 16, 0, 0, 0, 0, GPU, 0, C_X);
    run(1, 1, 1, 1, 1, 16, 1, 0, 0, 0, GPU, 0, C_MIX);
    run(1, 2, 2, 1, 70, 16, 0, 0, 0, 0, ROWS, 0, C_X);
    run(1, 2, 2, 1, 70, 16, 0, 0, 0, 0, NAIVE, 0, C_MIX);
    run(1, 1, 1, 1, 1, 16, 0, 0, 0, 0, NAIVE, 0, C_X);
}

/* Strided views: every tensor a [B, N, H, D] half view (NAIVE stages them, any strides). */
static void test_strided(void **state)
{
    (void)state;
    run(2, 2, 1, 13, 27, 16, 1, 0, 0, 0, CPU, 1, C_MIX);
    run(2, 2, 1, 13, 27, 16, 1, 0, 0, 0, GPU, 1, C_X);
    run(2, 2, 1, 13, 27, 16, 1, 0, 0, 0, ROWS, 1, C_X);
    run(2, 2, 1, 13, 27, 16, 1, 0, 0, 0, NAIVE, 1, C_MIX);
}

/* The one-shot enqueue takes the element types from its tensors (the desc says f32). AUTO: the
 * mixed types of test_type_matrix. */
static void test_oneshot_types(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 9, D = 16, n = B * H * N * D, nl = B * H * N;
    uint64_t seed = 7;
    float *q = tu_random(n, 1.0f, &seed), *k = tu_random(n, 1.0f, &seed);
    float *v = tu_random(n, 1.0f, &seed);
    tu_round_to(q, n, CLATTN_BF16);
    tu_round_to(k, n, CLATTN_F16);
    float *ref = malloc(n * 4), *rl = malloc(nl * 4);
    double *rd = malloc(n * sizeof(double));
    assert_true(ref && rl && rd);
    ref_softmax(q, k, v, ref, rl, B, H, H, N, N, D, 1.0 / sqrt((double)D), 0, NULL);
    for (size_t i = 0; i < n; i++)
        rd[i] = ref[i];
    cl_mem bq = upload(q, B, H, N, D, 0, CLATTN_BF16), bk = upload(k, B, H, N, D, 0, CLATTN_F16);
    cl_mem bv = upload(v, B, H, N, D, 0, CLATTN_F32), bo = poisoned(n * 2);
    clattn_tensor tq = clattn_tensor_make_typed(bq, CLATTN_BF16, B, H, N, D);
    clattn_tensor tk = clattn_tensor_make_typed(bk, CLATTN_F16, B, H, N, D);
    clattn_tensor tv = clattn_tensor_make_typed(bv, CLATTN_F32, B, H, N, D);
    clattn_tensor to = clattn_tensor_make_typed(bo, CLATTN_F16, B, H, N, D);
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    assert_int_equal(clattn_softmax_enqueue(ctx, &desc, &tq, &tk, &tv, &to, NULL, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    uint16_t *got = malloc(n * 2);
    assert_non_null(got);
    tu_read(ctx, bo, n * 2, got);
    tu_check_typed(got, CLATTN_F16, rd, n, TU_TOL_FP32, "one-shot bf16/f16/f32 -> f16");
    cl_mem all[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(got);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(rl);
    free(rd);
}

/* Bad input: an unknown dtype in the desc or on a one-shot tensor (INVALID_ARGUMENT), a tensor of
 * another type than the plan's, a half lse (DTYPE_MISMATCH); nothing written. */
static void test_bad_types(void **state)
{
    (void)state;
    size_t B = 1, H = 1, N = 8, D = 16, n = B * H * N * D;
    size_t shp[4] = {B, H, N, D};
    cl_mem bq = poisoned(n * 4), bk = poisoned(n * 4), bv = poisoned(n * 4);
    cl_mem bo = poisoned(n * 4), bl = poisoned(N * 4);
    clattn_plan *plan = NULL;
    clattn_softmax_desc desc;
    for (int role = 0; role < 4; role++) {
        clattn_softmax_desc_init(&desc);
        clattn_dtype *f[4] = {&desc.q_dtype, &desc.k_dtype, &desc.v_dtype, &desc.out_dtype};
        *f[role] = (clattn_dtype)(role == 3 ? -1 : 3 + role);
        tu_stale_messages(ctx);
        tu_expect_fresh_status(ctx, clattn_softmax_plan_create(ctx, &desc, shp, shp, shp, &plan),
                               CLATTN_INVALID_ARGUMENT, "plan_create with a bad dtype");
        assert_null(plan);
    }
    /* Plans of types the other tests already built (no new compilation). */
    clattn_softmax_algo plan_algos[] = {CLATTN_SOFTMAX_TILED_CPU, CLATTN_SOFTMAX_NAIVE};
    const clattn_dtype *plan_types[] = {C_H, C_MIX};
    for (int a = 0; a < 2; a++) {
        const clattn_dtype *dt = plan_types[a];
        clattn_softmax_desc_init(&desc);
        desc.algorithm = plan_algos[a];
        desc.q_dtype = dt[0];
        desc.k_dtype = dt[1];
        desc.v_dtype = dt[2];
        desc.out_dtype = dt[3];
        assert_int_equal(clattn_softmax_plan_create(ctx, &desc, shp, shp, shp, &plan),
                         CLATTN_SUCCESS);
        clattn_tensor tq = clattn_tensor_make_typed(bq, dt[0], B, H, N, D);
        clattn_tensor tk = clattn_tensor_make_typed(bk, dt[1], B, H, N, D);
        clattn_tensor tv = clattn_tensor_make_typed(bv, dt[2], B, H, N, D);
        clattn_tensor to = clattn_tensor_make_typed(bo, dt[3], B, H, N, D);
        clattn_tensor tl = clattn_tensor_make(bl, B, H, N, 1);
        tu_watch w;
        tu_watch_init(&w, ctx);
        tu_watch_buffer(&w, bo, n * 4, "out");
        tu_watch_buffer(&w, bl, N * 4, "lse");
        clattn_tensor *ts[4] = {&tq, &tk, &tv, &to};
        for (int i = 0; i < 4; i++) {
            clattn_tensor bad = *ts[i];
            bad.dtype = (clattn_dtype)(((int)dt[i] + 1 + a) % 3); /* any other type */
            const clattn_tensor *x[4] = {&tq, &tk, &tv, &to};
            x[i] = &bad;
            tu_stale_messages(ctx);
            tu_expect_fresh_status(
                ctx, clattn_softmax_plan_enqueue(plan, x[0], x[1], x[2], x[3], &tl, 0, NULL, NULL),
                CLATTN_DTYPE_MISMATCH, "enqueue with a tensor of another type");
        }
        clattn_tensor hl = tl;
        hl.dtype = CLATTN_F16;
        tu_expect_status(ctx, clattn_softmax_plan_enqueue(plan, &tq, &tk, &tv, &to, &hl, 0, NULL,
                                                          NULL),
                         CLATTN_DTYPE_MISMATCH, "enqueue with a half lse");
        /* One-shot: a tensor dtype that is not a clattn_dtype. */
        clattn_tensor odd = tq;
        odd.dtype = (clattn_dtype)9;
        tu_expect_status(ctx, clattn_softmax_enqueue(ctx, NULL, &odd, &tk, &tv, &to, &tl, 0, NULL,
                                                     NULL),
                         CLATTN_INVALID_ARGUMENT, "one-shot with dtype 9");
        assert_int_equal(clFinish(clattn_context_get_cl_queue(ctx)), CL_SUCCESS);
        tu_watch_check(&w, "refused half enqueues");
        tu_watch_free(&w);
        clattn_plan_destroy(plan);
        plan = NULL;
    }
    cl_mem all[] = {bq, bk, bv, bo, bl};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
}

/* The scheduler's launch string names the types; f32 plans keep theirs. */
static void test_schedule_string(void **state)
{
    (void)state;
    clattn_device_info dev;
    clattn_context_get_device_info(ctx, &dev);
    size_t shp[4] = {1, 2, 64, 64};
    clattn_softmax_desc desc;
    clattn_softmax_desc_init(&desc);
    clattn_plan_info a, b;
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, shp, shp, &a), CLATTN_SUCCESS);
    assert_null(strstr(a.launch, "dtype"));
    desc.q_dtype = CLATTN_BF16;
    desc.out_dtype = CLATTN_F16;
    assert_int_equal(clattn_softmax_schedule(&dev, &desc, shp, shp, &b), CLATTN_SUCCESS);
    assert_non_null(strstr(b.launch, "dtype=bssh"));
    assert_int_equal(a.tile_q, b.tile_q);
    assert_int_equal(a.tile_kv, b.tile_kv);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_matrix),   cmocka_unit_test(test_masks_gqa),
        cmocka_unit_test(test_large_logits),  cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_strided),       cmocka_unit_test(test_oneshot_types),
        cmocka_unit_test(test_bad_types),     cmocka_unit_test(test_schedule_string),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
