/* Transformer-MGK with half storage (issue 15): q, k, v, pi and out each f32, f16 or bf16, for the
 * softmax form (both tiled families forced and the scheduler's choice; causal, key lengths, lse),
 * the linear form (causal and not; v and out passed straight to its inner linear plan, no cast
 * kernel) and the linear decoding state; plus refused calls that leave the outputs untouched.
 *
 * Reference: the fp64 host references (tests/reference/ref_mgk.c) computed from the SAME
 * half-rounded inputs (tu_round_to). Tolerance: clattn.h's accuracy contract through
 * tu_check_typed with TU_TOL_FP32 (|x - r| <= ulp_dt(r) + 1e-4 + 1e-4 |r|, normalised error
 * <= 1e-5 + half an ulp); the large-logit case uses test_mgk.c's {2e-4, 2e-4, 2e-5}. lse (always
 * float32) with tu_check_close_d (-inf rows exactly). Outputs are poisoned with 0xff bytes (NaN in
 * every type). Small shapes with one D and R, so that each type combination builds one program
 * per family. */
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

/* The softmax form's head dim: small (each type combination compiles its own program per family)
 * and not a multiple of 16. */
#ifndef SOFT_D
#define SOFT_D 12
#endif
#define F32 CLATTN_F32
#define F16 CLATTN_F16
#define BF16 CLATTN_BF16
enum { TQ, TK, TV, TP, TO }; /* the roles' indices in dt[] */

typedef struct dcase {
    size_t B, H, R, Nq, Nk, D;
    clattn_mgk_form form;
    int causal;
    int key_lengths; /* per batch {0, Nk, random}: batch 0's rows see no key */
    float amp;       /* q and k uniform in [-amp, amp] (0: 1) */
    float sigma;     /* every component's sigma (0: default) */
    clattn_mgk_algo algo;
    int one_shot;    /* clattn_mgk_enqueue (types from the tensors) instead of a plan */
    tu_tol tol;      /* {0}: TU_TOL_FP32 */
    clattn_dtype dt[5]; /* q, k, v, pi, out */
} dcase;

/* The type matrix of the common design: all f16, all bf16, f16 in / f32 out, f32 in / f16 out,
 * f32 in / bf16 out, mixed bf16 / f16 / f32. */
static const clattn_dtype mats[][5] = {
    {F16, F16, F16, F16, F16}, {BF16, BF16, BF16, BF16, BF16}, {F16, F16, F16, F16, F32},
    {F32, F32, F32, F32, F16}, {F32, F32, F32, F32, BF16},     {BF16, F16, F32, BF16, F16}};
#define NMATS (sizeof mats / sizeof mats[0])

static const char *dn(clattn_dtype d) { return clattn_dtype_name(d); }

static cl_mem poisoned(size_t bytes)
{
    unsigned char *p = malloc(bytes);
    assert_non_null(p);
    memset(p, 0xff, bytes);
    cl_mem m = tu_buffer(ctx, bytes, p);
    free(p);
    return m;
}

static cl_mem upload(const float *x, size_t n, clattn_dtype dt)
{
    void *p = tu_pack(x, n, dt);
    cl_mem m = tu_buffer(ctx, n * clattn_dtype_size(dt), p);
    free(p);
    return m;
}

/* pi in (0.5, 1], rounded through dt. */
static float *positive_pi(size_t n, clattn_dtype dt, uint64_t *seed)
{
    float *p = tu_random(n, 0.5f, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = 0.5f + fabsf(p[i]);
    tu_round_to(p, n, dt);
    return p;
}

static void run_case(const dcase *c)
{
    uint64_t seed = 0x3c6ef372u ^ (c->Nq * 131 + c->Nk * 17 + c->D * 7 + c->R +
                                   (uint64_t)(c->dt[0] * 81 + c->dt[1] * 27 + c->dt[2] * 9 +
                                              c->dt[3] * 3 + c->dt[4]));
    size_t nq = c->B * c->H * c->Nq * c->D, nk = c->B * c->H * c->R * c->Nk * c->D;
    size_t nv = c->B * c->H * c->Nk * c->D, np = c->H * c->R * c->Nk, nl = c->B * c->H * c->Nq;
    float amp = c->amp > 0 ? c->amp : 1.0f;
    float *q = tu_random(nq, amp, &seed), *k = tu_random(nk, amp, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *pi = positive_pi(np, c->dt[TP], &seed);
    tu_round_to(q, nq, c->dt[TQ]);
    tu_round_to(k, nk, c->dt[TK]);
    tu_round_to(v, nv, c->dt[TV]);
    double *ref = malloc(nq * sizeof *ref), *ref_lse = malloc(nl * sizeof *ref_lse);
    int32_t *kl = calloc(c->B, sizeof *kl);
    assert_true(ref && ref_lse && kl);
    for (size_t b = 0; b < c->B; b++)
        kl[b] = (int32_t)(b == 0 ? 0 : b == 1 ? c->Nk : (seed >> 11) % (c->Nk + 1));
    int soft = c->form == CLATTN_MGK_SOFTMAX;
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = c->form;
    desc.causal = c->causal;
    desc.algorithm = c->algo;
    double sig2[CLATTN_MGK_MAX_COMPONENTS];
    for (size_t r = 0; r < c->R; r++) {
        desc.sigma[r] = c->sigma;
        double s = c->sigma > 0 ? c->sigma : pow((double)c->D, 0.25);
        sig2[r] = s * s;
    }
    if (soft)
        ref_mgk_softmax(q, k, v, pi, ref, ref_lse, c->B, c->H, c->R, c->Nq, c->Nk, c->D, sig2,
                        c->causal, c->key_lengths ? kl : NULL);
    else
        ref_mgk_linear(q, k, v, pi, ref, c->B, c->H, c->R, c->Nq, c->Nk, c->D, desc.eps,
                       c->causal);

    cl_mem bq = upload(q, nq, c->dt[TQ]), bk = upload(k, nk, c->dt[TK]);
    cl_mem bv = upload(v, nv, c->dt[TV]), bp = upload(pi, np, c->dt[TP]);
    size_t obytes = nq * clattn_dtype_size(c->dt[TO]);
    cl_mem bo = poisoned(obytes), bl = poisoned(nl * 4);
    cl_mem bkl = tu_buffer(ctx, c->B * sizeof(int32_t), kl);
    if (c->key_lengths)
        desc.key_lengths = bkl;
    clattn_tensor tq = clattn_tensor_make_typed(bq, c->dt[TQ], c->B, c->H, c->Nq, c->D);
    clattn_tensor tk = clattn_tensor_make_typed(bk, c->dt[TK], c->B, c->H * c->R, c->Nk, c->D);
    clattn_tensor tv = clattn_tensor_make_typed(bv, c->dt[TV], c->B, c->H, c->Nk, c->D);
    clattn_tensor tp = clattn_tensor_make_typed(bp, c->dt[TP], 1, c->H, c->R, c->Nk);
    clattn_tensor to = clattn_tensor_make_typed(bo, c->dt[TO], c->B, c->H, c->Nq, c->D);
    clattn_tensor tl = clattn_tensor_make(bl, c->B, c->H, c->Nq, 1);
    char what[200];
    snprintf(what, sizeof what,
             "mgk %s algo %d q %s k %s v %s pi %s out %s B%zu H%zu R%zu Nq%zu Nk%zu D%zu "
             "causal%d kl%d",
             soft ? "softmax" : "linear", (int)c->algo, dn(c->dt[TQ]), dn(c->dt[TK]),
             dn(c->dt[TV]), dn(c->dt[TP]), dn(c->dt[TO]), c->B, c->H, c->R, c->Nq, c->Nk, c->D,
             c->causal, c->key_lengths);
    clattn_status st;
    if (c->one_shot) {
        /* the desc's dtype fields stay f32: the one-shot takes the tensors' */
        st = clattn_mgk_enqueue(ctx, &desc, &tq, &tk, &tv, &tp, &to, soft ? &tl : NULL, 0, NULL,
                                NULL);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: one-shot: %s", what, clattn_context_last_error(ctx));
    } else {
        desc.q_dtype = c->dt[TQ];
        desc.k_dtype = c->dt[TK];
        desc.v_dtype = c->dt[TV];
        desc.pi_dtype = c->dt[TP];
        desc.out_dtype = c->dt[TO];
        size_t qs[4] = {c->B, c->H, c->Nq, c->D}, ks[4] = {c->B, c->H * c->R, c->Nk, c->D};
        clattn_plan *plan = NULL;
        st = clattn_mgk_plan_create(ctx, &desc, qs, ks, &plan);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: plan: %s", what, clattn_context_last_error(ctx));
        clattn_plan_info info;
        assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
        if (c->dt[TQ] != F32 && !strstr(info.build_options, "-DQ_DT="))
            fail_msg("%s: build options '%s' lack -DQ_DT", what, info.build_options);
        if (c->dt[TO] != F32 && !strstr(info.launch, "dtype="))
            fail_msg("%s: launch '%s' lacks dtype=", what, info.launch);
        /* the linear form hands half v and out to its inner linear plan: no staging casts */
        for (unsigned i = 0; !soft && i < info.num_kernels; i++)
            if (strcmp(info.kernels[i].name, "clattn_cast") == 0)
                fail_msg("%s: the linear form's plan has a clattn_cast kernel", what);
        /* a baked plan creates no kernel per enqueue */
        clattn_context_stats s0, s1;
        assert_int_equal(clattn_context_get_stats(ctx, &s0), CLATTN_SUCCESS);
        for (int rep = 0; rep < 2; rep++) {
            st = clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, soft ? &tl : NULL, 0,
                                         NULL, NULL);
            if (st != CLATTN_SUCCESS)
                fail_msg("%s: enqueue: %s", what, clattn_context_last_error(ctx));
        }
        assert_int_equal(clattn_context_get_stats(ctx, &s1), CLATTN_SUCCESS);
        assert_int_equal(s1.kernels_created, s0.kernels_created);
        clattn_plan_destroy(plan);
    }
    unsigned char *raw = malloc(obytes);
    float *lse = malloc(nl * 4);
    assert_true(raw && lse);
    tu_read(ctx, bo, obytes, raw);
    tu_read(ctx, bl, nl * 4, lse);
    tu_tol tol = c->tol.atol > 0 ? c->tol : TU_TOL_FP32;
    tu_check_typed(raw, c->dt[TO], ref, nq, tol, what);
    if (soft)
        tu_check_close_d(lse, ref_lse, nl, tol, what);
    cl_mem all[] = {bq, bk, bv, bp, bo, bl, bkl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    free(raw), free(lse), free(q), free(k), free(v), free(pi), free(ref), free(ref_lse), free(kl);
}

/* The CPU family forced over the type matrix (f32 in / bf16 out left to the linear form), the GPU
 * family over all-f16 and all-bf16 (every role in both types; each combination costs a program
 * build per family): non-tile lengths
 * (Nq 19, Nk 37), causal on every other combination, key lengths {0, Nk, random} (batch 0: out 0,
 * lse -inf), lse. */
static void test_softmax_matrix(void **state)
{
    (void)state;
    static const clattn_mgk_algo fam[] = {CLATTN_MGK_TILED_CPU, CLATTN_MGK_TILED_GPU};
    static const size_t cpu[] = {0, 1, 2, 3, 5}, gpu[] = {0, 1};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < (a == 0 ? 5u : 2u); i++) {
            size_t m = a == 0 ? cpu[i] : gpu[i];
            dcase c = {.B = 3, .H = 2, .R = 2, .Nq = 19, .Nk = 37, .D = SOFT_D,
                       .causal = (int)(i % 2), .key_lengths = 1, .algo = fam[a]};
            memcpy(c.dt, mats[m], sizeof c.dt);
            run_case(&c);
        }
}

/* The scheduler's choice with large logits (|q - k|^2 / (2 sigma^2) up to ~1000) and N = 1 (one
 * query, one key); one query over many keys through the one-shot call taking the types from the
 * tensors (the CPU family forced: the matrix built its mixed-type program). Shapes repeat the
 * matrix's where they can: PoCL compiles each kernel once per work-group shape. */
static void test_softmax_edges(void **state)
{
    (void)state;
    dcase big = {.B = 3, .H = 2, .R = 2, .Nq = 29, .Nk = 37, .D = SOFT_D, .amp = 3.0f,
                 .sigma = 0.6f, .tol = {2e-4, 2e-4, 2e-5}};
    for (size_t m = 0; m < 2; m++) {
        memcpy(big.dt, mats[m], sizeof big.dt);
        run_case(&big);
    }
    dcase one = {.B = 1, .H = 1, .R = 2, .Nq = 1, .Nk = 1, .D = SOFT_D};
    memcpy(one.dt, mats[1], sizeof one.dt);
    run_case(&one);
    dcase row = {.B = 3, .H = 2, .R = 2, .Nq = 1, .Nk = 37, .D = SOFT_D, .causal = 1,
                 .key_lengths = 1, .algo = CLATTN_MGK_TILED_CPU, .one_shot = 1};
    memcpy(row.dt, mats[5], sizeof row.dt);
    run_case(&row);
}

/* The linear form over the type matrix, non-causal (Nq 19, Nk 37) and causal (N 37); N = 1; the
 * one-shot call. */
static void test_linear_matrix(void **state)
{
    (void)state;
    for (size_t m = 0; m < NMATS; m++)
        for (int causal = 0; causal <= 1; causal++) {
            dcase c = {.B = 2, .H = 2, .R = 2, .Nq = causal ? 37 : 19, .Nk = 37,
                       .D = 20, .form = CLATTN_MGK_LINEAR, .causal = causal};
            memcpy(c.dt, mats[m], sizeof c.dt);
            run_case(&c);
        }
    dcase one = {.B = 1, .H = 1, .R = 2, .Nq = 1, .Nk = 1, .D = 20, .form = CLATTN_MGK_LINEAR,
                 .causal = 1, .one_shot = 1};
    memcpy(one.dt, mats[0], sizeof one.dt);
    run_case(&one);
}

/* The decoding state stepped over 7 positions with f16 q, k, v, pi and out (S and z float32)
 * equals the causal linear reference on the rounded inputs. */
static void test_state_f16(void **state)
{
    (void)state;
    size_t B = 1, H = 2, R = 2, N = 7, D = 20;
    uint64_t seed = 0xf16;
    size_t nq = B * H * N * D, nk = nq * R, np = H * R * N;
    float *q = tu_random(nq, 1.5f, &seed), *k = tu_random(nk, 1.5f, &seed);
    float *v = tu_random(nq, 1.0f, &seed), *pi = positive_pi(np, F16, &seed);
    tu_round_to(q, nq, F16);
    tu_round_to(k, nk, F16);
    tu_round_to(v, nq, F16);
    double *ref = malloc(nq * sizeof *ref);
    assert_non_null(ref);
    clattn_mgk_desc desc;
    clattn_mgk_desc_init(&desc);
    desc.form = CLATTN_MGK_LINEAR;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.pi_dtype = desc.out_dtype = CLATTN_F16;
    ref_mgk_linear(q, k, v, pi, ref, B, H, R, N, N, D, desc.eps, 1);
    cl_mem bq = upload(q, nq, F16), bk = upload(k, nk, F16), bv = upload(v, nq, F16);
    cl_mem bp = upload(pi, np, F16), bo = poisoned(nq * 2);
    clattn_mgk_state *st = NULL;
    assert_int_equal(clattn_mgk_state_create(ctx, &desc, B, H, R, D, &st), CLATTN_SUCCESS);
    for (size_t j = 0; j < N; j++) {
        clattn_tensor tq = clattn_tensor_make_typed(bq, F16, B, H, N, D);
        clattn_tensor tv = clattn_tensor_make_typed(bv, F16, B, H, N, D);
        clattn_tensor tk = clattn_tensor_make_typed(bk, F16, B, H * R, N, D);
        clattn_tensor to = clattn_tensor_make_typed(bo, F16, B, H, N, D);
        clattn_tensor tp = clattn_tensor_make_typed(bp, F16, 1, H, R, N);
        clattn_tensor *all[] = {&tq, &tv, &tk, &to, &tp};
        for (int i = 0; i < 5; i++) {
            all[i]->shape[all[i] == &tp ? 3 : 2] = 1;
            all[i]->offset = j * all[i]->strides[all[i] == &tp ? 3 : 2];
        }
        clattn_status s = clattn_mgk_state_step(st, &tq, &tk, &tv, &tp, &to, 0, NULL, NULL);
        if (s != CLATTN_SUCCESS)
            fail_msg("step %zu: %s", j, clattn_context_last_error(ctx));
    }
    uint16_t *raw = malloc(nq * 2);
    assert_non_null(raw);
    tu_read(ctx, bo, nq * 2, raw);
    tu_check_typed(raw, F16, ref, nq, TU_TOL_FP32, "mgk state f16 steps");
    clattn_mgk_state_destroy(st);
    cl_mem all[] = {bq, bk, bv, bp, bo};
    for (size_t i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(raw), free(q), free(k), free(v), free(pi), free(ref);
}

/* Refused: an unknown dtype in the desc (plan and state: INVALID_ARGUMENT); a tensor whose type is
 * not the plan's, an f16 lse, a state step with an f32 tensor (DTYPE_MISMATCH); an unknown tensor
 * type through the one-shot (INVALID_ARGUMENT). Outputs untouched, nothing enqueued. */
static void test_bad_input(void **state)
{
    (void)state;
    size_t B = 1, H = 1, R = 2, N = 5, D = 20;
    size_t qs[4] = {B, H, N, D}, ks[4] = {B, H * R, N, D};
    clattn_mgk_desc desc;
    clattn_plan *plan = NULL;
    clattn_mgk_state *st = NULL;
    clattn_dtype *fields[5];
    for (int f = 0; f < 5; f++) {
        clattn_mgk_desc_init(&desc);
        fields[0] = &desc.q_dtype, fields[1] = &desc.k_dtype, fields[2] = &desc.v_dtype;
        fields[3] = &desc.pi_dtype, fields[4] = &desc.out_dtype;
        *fields[f] = (clattn_dtype)3;
        tu_stale_messages(ctx);
        tu_expect_fresh_status(ctx, clattn_mgk_plan_create(ctx, &desc, qs, ks, &plan),
                               CLATTN_INVALID_ARGUMENT, "mgk plan, unknown dtype");
        assert_null(plan);
        desc.form = CLATTN_MGK_LINEAR;
        tu_expect_status(ctx, clattn_mgk_state_create(ctx, &desc, B, H, R, D, &st),
                         CLATTN_INVALID_ARGUMENT, "mgk state, unknown dtype");
        assert_null(st);
    }

    uint64_t seed = 5;
    size_t nq = B * H * N * D;
    float *x = tu_random(nq * R, 1.0f, &seed);
    cl_mem b16 = upload(x, nq * R, F16), b32 = upload(x, nq * R, F32);
    cl_mem bo = poisoned(nq * 4), bl = poisoned(N * 4);
    clattn_mgk_desc_init(&desc);
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.pi_dtype = CLATTN_F16;
    assert_int_equal(clattn_mgk_plan_create(ctx, &desc, qs, ks, &plan), CLATTN_SUCCESS);
    clattn_tensor tq = clattn_tensor_make_typed(b16, F16, B, H, N, D);
    clattn_tensor tk = clattn_tensor_make_typed(b16, F16, B, H * R, N, D);
    clattn_tensor tv = clattn_tensor_make_typed(b16, F16, B, H, N, D);
    clattn_tensor tp = clattn_tensor_make_typed(b16, F16, 1, H, R, N);
    clattn_tensor to = clattn_tensor_make(bo, B, H, N, D);
    clattn_tensor tl = clattn_tensor_make(bl, B, H, N, 1);
    clattn_tensor q32 = clattn_tensor_make(b32, B, H, N, D);
    clattn_tensor o16 = clattn_tensor_make_typed(bo, F16, B, H, N, D);
    clattn_tensor l16 = clattn_tensor_make_typed(bl, F16, B, H, N, 1);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bo, nq * 4, "out");
    tu_watch_buffer(&w, bl, N * 4, "lse");
    tu_stale_messages(ctx);
    tu_expect_fresh_status(ctx,
                           clattn_mgk_plan_enqueue(plan, &q32, &tk, &tv, &tp, &to, &tl, 0, NULL,
                                                   NULL),
                           CLATTN_DTYPE_MISMATCH, "mgk enqueue, f32 q on an f16 plan");
    tu_expect_status(ctx,
                     clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &o16, &tl, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "mgk enqueue, f16 out on an f32-out plan");
    tu_expect_status(ctx,
                     clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, &l16, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "mgk enqueue, f16 lse");
    clattn_tensor bad = tq;
    bad.dtype = (clattn_dtype)7;
    tu_expect_status(ctx,
                     clattn_mgk_enqueue(ctx, NULL, &bad, &tk, &tv, &tp, &to, &tl, 0, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT, "mgk one-shot, unknown tensor dtype");
    clattn_plan_destroy(plan);

    /* a state of f16 tensors refuses an f32 q; its S and z are unchanged (next step is right) */
    clattn_mgk_desc_init(&desc);
    desc.form = CLATTN_MGK_LINEAR;
    desc.q_dtype = desc.k_dtype = desc.v_dtype = desc.pi_dtype = CLATTN_F16;
    assert_int_equal(clattn_mgk_state_create(ctx, &desc, B, H, R, D, &st), CLATTN_SUCCESS);
    clattn_tensor sq = clattn_tensor_make(b32, B, H, 1, D);
    clattn_tensor sq16 = clattn_tensor_make_typed(b16, F16, B, H, 1, D);
    clattn_tensor sk = clattn_tensor_make_typed(b16, F16, B, H * R, 1, D);
    clattn_tensor sv = clattn_tensor_make_typed(b16, F16, B, H, 1, D);
    clattn_tensor sp = clattn_tensor_make_typed(b16, F16, 1, H, R, 1);
    clattn_tensor so = clattn_tensor_make(bo, B, H, 1, D);
    tu_expect_status(ctx, clattn_mgk_state_step(st, &sq, &sk, &sv, &sp, &so, 0, NULL, NULL),
                     CLATTN_DTYPE_MISMATCH, "mgk state step, f32 q on an f16 state");
    tu_watch_check(&w, "refused mgk calls");
    tu_watch_free(&w);
    assert_int_equal(clattn_mgk_state_step(st, &sq16, &sk, &sv, &sp, &so, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    clattn_mgk_state_destroy(st);
    cl_mem all[] = {b16, b32, bo, bl};
    for (size_t i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(x);
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
        cmocka_unit_test(test_softmax_matrix), cmocka_unit_test(test_softmax_edges),
        cmocka_unit_test(test_linear_matrix),  cmocka_unit_test(test_state_f16),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
