/* Linear attention with half-precision storage (issue 15): q, k, v read and out written as f16 /
 * bf16 / f32, independently per tensor, in every form, against the fp64 reference computed on
 * the SAME half-rounded inputs (clattn.h's accuracy contract, checked by tu_check_typed with
 * the fp32 tolerance LIN_TOL). Small shapes (non-tile N, D and Dv; N = 1), so the suite stays
 * within a few seconds per device. Also: the decoding state's prefills and steps in f16, the
 * bad inputs (unknown dtype, a tensor of another type than the plan's) with outputs untouched,
 * and the plan info naming the types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linear_fixture.h"
#include "reference/ref_linear.h"

#define F32 CLATTN_F32
#define F16 CLATTN_F16
#define BF16 CLATTN_BF16

/* The type matrix {q, k, v, out}: all-f16, all-bf16, f16 in / f32 out, and a mixed case with
 * f32 inputs and a half output (every tensor sees every type; k's f32 is the f32 suites'). Each
 * combination costs one build of linear.cl and one of linear_fused.cl (~10 s of CPU together on
 * PoCL, where a whole program is compiled whatever runs), so the matrix is kept to these four;
 * the state test and the bad-input plan reuse combinations 0 and 2. */
typedef struct combo {
    clattn_dtype t[4];
    const char *name;
} combo;
static const combo combos[] = {
    {{F16, F16, F16, F16}, "all f16"},
    {{BF16, BF16, BF16, BF16}, "all bf16"},
    {{F16, F16, F16, F32}, "f16 in, f32 out"},
    {{F32, BF16, F32, F16}, "mixed f32/bf16 in, f16 out"},
};
#define NCOMBOS (sizeof combos / sizeof combos[0])

/* An uploaded copy of x (float, already rounded through dt) packed as dt. */
static cl_mem upload(const float *x, size_t n, clattn_dtype dt)
{
    void *p = tu_pack(x, n, dt);
    cl_mem m = tu_buffer(ctx, n * clattn_dtype_size(dt), p);
    free(p);
    return m;
}

/* One run of desc d (its causal flag; the types from the tensors: the one-shot call, or a plan
 * baked with them when use_plan) against the reference on the half-rounded inputs. */
static void check_typed(const clattn_linear_desc *d0, const combo *c, size_t B, size_t H,
                        size_t Nq, size_t Nk, size_t D, size_t Dv, int use_plan,
                        const char *what)
{
    clattn_linear_desc d = *d0;
    uint64_t seed = 0xd7e ^ (Nq * 131 + Nk * 17 + D * 7 + Dv);
    size_t nq = B * H * Nq * D, nk = B * H * Nk * D, nv = B * H * Nk * Dv, no = B * H * Nq * Dv;
    int pos = d.feature_map == CLATTN_LINEAR_FEATURE_IDENTITY;
    float *q = inputs(nq, pos, &seed), *k = inputs(nk, pos, &seed), *v = inputs(nv, 0, &seed);
    tu_round_to(q, nq, c->t[0]);
    tu_round_to(k, nk, c->t[1]);
    tu_round_to(v, nv, c->t[2]);
    float *w = desc_w(&d, D);
    double *ref = malloc(no * sizeof *ref);
    assert_non_null(ref);
    ref_linear_general_d(q, k, v, ref, B, H, Nq, Nk, D, Dv, (int)d.feature_map, w, d.features,
                         desc_eps(&d), d.causal, (int)d.momentum, (double)d.mu, desc_eta(&d));
    cl_mem bq = upload(q, nq, c->t[0]), bk = upload(k, nk, c->t[1]), bv = upload(v, nv, c->t[2]);
    size_t ob = no * clattn_dtype_size(c->t[3]);
    cl_mem bo = tu_buffer(ctx, ob, NULL);
    tu_poison_buffer(ctx, bo, ob);
    clattn_tensor tq = clattn_tensor_make_typed(bq, c->t[0], B, H, Nq, D);
    clattn_tensor tk = clattn_tensor_make_typed(bk, c->t[1], B, H, Nk, D);
    clattn_tensor tv = clattn_tensor_make_typed(bv, c->t[2], B, H, Nk, Dv);
    clattn_tensor to = clattn_tensor_make_typed(bo, c->t[3], B, H, Nq, Dv);
    char full[256];
    snprintf(full, sizeof full, "%s [%s]: %s %s causal%d algo%d B%zu H%zu Nq%zu Nk%zu D%zu Dv%zu",
             what, c->name, fmap_name(d.feature_map), mom_name(d.momentum), d.causal,
             (int)d.algorithm, B, H, Nq, Nk, D, Dv);
    clattn_status st;
    if (use_plan) {
        d.q_dtype = c->t[0], d.k_dtype = c->t[1], d.v_dtype = c->t[2], d.out_dtype = c->t[3];
        size_t qs[4] = {B, H, Nq, D}, ks[4] = {B, H, Nk, D}, vs[4] = {B, H, Nk, Dv};
        clattn_plan *plan = NULL;
        st = clattn_linear_plan_create(ctx, &d, qs, ks, vs, &plan);
        if (st == CLATTN_SUCCESS)
            st = clattn_linear_plan_enqueue(plan, &tq, &tk, &tv, &to, 0, NULL, NULL);
        clattn_plan_destroy(plan);
    } else {
        /* the desc's types say f32: the one-shot call must take the tensors' */
        st = clattn_linear_enqueue(ctx, &d, &tq, &tk, &tv, &to, 0, NULL, NULL);
    }
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s", full, clattn_context_last_error(ctx));
    void *got = malloc(ob);
    assert_non_null(got);
    tu_read(ctx, bo, ob, got);
    tu_check_typed(got, c->t[3], ref, no, LIN_TOL, full);
    cl_mem all[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
    free(got);
    free(q);
    free(k);
    free(v);
    free(w);
    free(ref);
}

static clattn_linear_desc desc_of(clattn_linear_feature_map f, int causal,
                                  clattn_linear_momentum mom, clattn_linear_algo algo)
{
    float *wbuf = NULL;
    clattn_linear_desc d = make_desc(f, 40, 0, 11, 20, mom, 0.6f, 0.8f, &wbuf);
    d.causal = causal;
    d.algorithm = algo;
    return d;
}

/* Element-wise ELU, non-causal: the fused path (FUSED), whole matrix, non-tile shapes and N 1;
 * AUTO (GEMM on rusticl: CLBlast on float32 features, our kernels reading and writing the half
 * tensors). The suite's cost is compiling linear.cl (and linear_fused.cl) once per type
 * combination (every form shares those programs), so every form below runs the whole matrix at no
 * extra build time. */
static void test_elu_noncausal(void **state)
{
    (void)state;
    clattn_linear_desc d = desc_of(CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_LINEAR_MOMENTUM_NONE,
                                   CLATTN_LINEAR_FUSED);
    for (size_t c = 0; c < NCOMBOS; c++) {
        check_typed(&d, &combos[c], 1, 2, 37, 37, 20, 24, 0, "fused");
        check_typed(&d, &combos[c], 1, 2, 37, 37, 20, 24, 1, "fused plan");
    }
    check_typed(&d, &combos[0], 2, 1, 1, 1, 20, 24, 0, "fused N 1");
    check_typed(&d, &combos[3], 1, 1, 5, 70, 7, 33, 0, "fused cross");
    /* AUTO: the GEMM form on rusticl (GPU-like), fused on PoCL; GEMM is not forced on PoCL,
     * where its CLBlast kernels would be compiled for this suite alone. */
    d.algorithm = CLATTN_LINEAR_AUTO;
    check_typed(&d, &combos[0], 1, 2, 37, 37, 20, 24, 0, "auto");
    check_typed(&d, &combos[3], 1, 2, 37, 37, 20, 24, 0, "auto");
}

/* ELU causal (chunked: features, scan, in-chunk block) and RELU both ways. */
static void test_elu_causal_relu(void **state)
{
    (void)state;
    clattn_linear_desc d = desc_of(CLATTN_LINEAR_FEATURE_ELU, 1, CLATTN_LINEAR_MOMENTUM_NONE,
                                   CLATTN_LINEAR_AUTO);
    for (size_t c = 0; c < NCOMBOS; c++)
        check_typed(&d, &combos[c], 1, 2, 37, 37, 20, 24, 0, "elu causal");
    check_typed(&d, &combos[1], 2, 1, 1, 1, 20, 24, 0, "elu causal N 1");
    clattn_linear_desc r = desc_of(CLATTN_LINEAR_FEATURE_RELU, 0, CLATTN_LINEAR_MOMENTUM_NONE,
                                   CLATTN_LINEAR_AUTO);
    for (size_t c = 0; c < NCOMBOS; c++)
        check_typed(&r, &combos[c], 1, 2, 37, 37, 20, 24, 0, "relu");
    r.causal = 1;
    check_typed(&r, &combos[0], 1, 2, 37, 37, 20, 24, 0, "relu causal");
}

/* FAVOR+ (W stays float32): non-causal and causal. */
static void test_favor(void **state)
{
    (void)state;
    clattn_linear_desc d = desc_of(CLATTN_LINEAR_FEATURE_FAVOR, 0, CLATTN_LINEAR_MOMENTUM_NONE,
                                   CLATTN_LINEAR_AUTO);
    for (size_t c = 0; c < NCOMBOS; c++)
        check_typed(&d, &combos[c], 1, 2, 37, 37, 20, 24, 0, "favor");
    d.causal = 1;
    check_typed(&d, &combos[0], 1, 2, 37, 37, 20, 24, 0, "favor causal");
    check_typed(&d, &combos[3], 1, 2, 37, 37, 20, 24, 0, "favor causal");
}

/* Fixed momentum (fused non-causal, chunked causal) and adaptive momentum (sequential). */
static void test_momentum(void **state)
{
    (void)state;
    clattn_linear_desc d = desc_of(CLATTN_LINEAR_FEATURE_ELU, 1, CLATTN_LINEAR_MOMENTUM_FIXED,
                                   CLATTN_LINEAR_AUTO);
    for (size_t c = 0; c < NCOMBOS; c++)
        check_typed(&d, &combos[c], 1, 2, 37, 37, 20, 24, 0, "fixed momentum");
    d.causal = 0;
    check_typed(&d, &combos[0], 1, 2, 37, 37, 20, 24, 0, "fixed momentum non-causal");
    clattn_linear_desc a = desc_of(CLATTN_LINEAR_FEATURE_ELU, 1, CLATTN_LINEAR_MOMENTUM_ADAPTIVE,
                                   CLATTN_LINEAR_AUTO);
    check_typed(&a, &combos[0], 1, 2, 21, 21, 20, 24, 0, "adaptive");
    check_typed(&a, &combos[3], 1, 2, 21, 21, 20, 24, 0, "adaptive");
    a.causal = 0;
    check_typed(&a, &combos[1], 1, 2, 21, 21, 20, 24, 0, "adaptive non-causal");
}

/* The decoding state with f16 q/k/v/out: a prefill of 5 tokens then steps over the rest, every
 * output against causal attention over the whole (rounded) sequence. */
static void test_state_f16(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, N = 9, D = 20, Dv = 24, P = 5;
    const clattn_linear_momentum moms[2] = {CLATTN_LINEAR_MOMENTUM_NONE,
                                            CLATTN_LINEAR_MOMENTUM_FIXED};
    for (int mi = 0; mi < 2; mi++) {
        clattn_linear_desc d = desc_of(CLATTN_LINEAR_FEATURE_ELU, 0, moms[mi],
                                       CLATTN_LINEAR_AUTO);
        d.q_dtype = d.k_dtype = d.v_dtype = d.out_dtype = F16;
        uint64_t seed = 99;
        size_t nq = B * H * N * D, nv = B * H * N * Dv;
        float *q = inputs(nq, 0, &seed), *k = inputs(nq, 0, &seed), *v = inputs(nv, 0, &seed);
        tu_round_to(q, nq, F16);
        tu_round_to(k, nq, F16);
        tu_round_to(v, nv, F16);
        double *ref = malloc(nv * sizeof *ref);
        assert_non_null(ref);
        ref_linear_general_d(q, k, v, ref, B, H, N, N, D, Dv, (int)d.feature_map, NULL, D,
                             desc_eps(&d), 1, (int)d.momentum, (double)d.mu, desc_eta(&d));
        cl_mem bq = upload(q, nq, F16), bk = upload(k, nq, F16), bv = upload(v, nv, F16);
        cl_mem bo = tu_buffer(ctx, nv * 2, NULL);
        tu_poison_buffer(ctx, bo, nv * 2);
        clattn_linear_state *st = NULL;
        if (clattn_linear_state_create(ctx, &d, B, H, D, Dv, &st) != CLATTN_SUCCESS)
            fail_msg("state create: %s", clattn_context_last_error(ctx));
        /* [B=1, H, n0.., *] windows of the dense [1, H, N, *] buffers */
        for (size_t n0 = 0; n0 < N;) {
            size_t len = n0 == 0 ? P : 1;
            clattn_tensor tq = clattn_tensor_make_typed(bq, F16, B, H, len, D);
            clattn_tensor tk = clattn_tensor_make_typed(bk, F16, B, H, len, D);
            clattn_tensor tv = clattn_tensor_make_typed(bv, F16, B, H, len, Dv);
            clattn_tensor to = clattn_tensor_make_typed(bo, F16, B, H, len, Dv);
            clattn_tensor *ts[4] = {&tq, &tk, &tv, &to};
            size_t dims[4] = {D, D, Dv, Dv};
            for (int i = 0; i < 4; i++) {
                ts[i]->strides[1] = N * dims[i];
                ts[i]->offset = n0 * dims[i];
            }
            clattn_status s = len > 1 ? clattn_linear_prefill(st, &tq, &tk, &tv, &to, 0, NULL, NULL)
                                      : clattn_linear_step(st, &tq, &tk, &tv, &to, 0, NULL, NULL);
            if (s != CLATTN_SUCCESS)
                fail_msg("state run at %zu: %s", n0, clattn_context_last_error(ctx));
            n0 += len;
        }
        uint16_t *got = malloc(nv * 2);
        assert_non_null(got);
        tu_read(ctx, bo, nv * 2, got);
        tu_check_typed(got, F16, ref, nv, LIN_TOL, moms[mi] ? "state f16 fixed" : "state f16");
        /* a step with f32 tensors on an f16 state: refused, out untouched */
        cl_mem b32 = tu_buffer(ctx, 4 * Dv * H, NULL);
        clattn_tensor q32 = clattn_tensor_make(b32, B, H, 1, D);
        clattn_tensor tk = clattn_tensor_make_typed(bk, F16, B, H, 1, D);
        clattn_tensor tv = clattn_tensor_make_typed(bv, F16, B, H, 1, Dv);
        clattn_tensor to = clattn_tensor_make_typed(bo, F16, B, H, 1, Dv);
        tu_watch w;
        tu_watch_init(&w, ctx);
        tu_watch_buffer(&w, bo, nv * 2, "out");
        lin_expect(clattn_linear_step(st, &q32, &tk, &tv, &to, 0, NULL, NULL),
                   CLATTN_DTYPE_MISMATCH, "step with an f32 q on an f16 state");
        tu_watch_check(&w, "step with an f32 q");
        tu_watch_free(&w);
        clattn_linear_state_destroy(st);
        cl_mem all[] = {bq, bk, bv, bo, b32};
        for (int i = 0; i < 5; i++)
            clReleaseMemObject(all[i]);
        free(got);
        free(q);
        free(k);
        free(v);
        free(ref);
    }
}

/* Unknown dtype in the desc (INVALID_ARGUMENT), tensors of other types than the plan's
 * (DTYPE_MISMATCH), an unknown dtype on a tensor: nothing written. The plan's info names the
 * types. */
static void test_bad_input(void **state)
{
    (void)state;
    const size_t B = 1, H = 1, N = 8, D = 16;
    size_t sh[4] = {B, H, N, D};
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    clattn_plan *plan = NULL;
    clattn_dtype *fields[4] = {&d.q_dtype, &d.k_dtype, &d.v_dtype, &d.out_dtype};
    for (int i = 0; i < 4; i++) {
        clattn_linear_desc_init(&d);
        *fields[i] = (clattn_dtype)7;
        lin_expect(clattn_linear_plan_create(ctx, &d, sh, sh, sh, &plan),
                   CLATTN_INVALID_ARGUMENT, "plan with an unknown dtype");
        assert_null(plan);
        clattn_linear_state *st = NULL;
        lin_expect(clattn_linear_state_create(ctx, &d, B, H, D, D, &st), CLATTN_INVALID_ARGUMENT,
                   "state with an unknown dtype");
        assert_null(st);
    }
    clattn_linear_desc_init(&d);
    d.q_dtype = d.k_dtype = d.v_dtype = F16;
    d.out_dtype = F32; /* combination 2's program */
    if (clattn_linear_plan_create(ctx, &d, sh, sh, sh, &plan) != CLATTN_SUCCESS)
        fail_msg("plan: %s", clattn_context_last_error(ctx));
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
    if (!strstr(info.launch, "dtype=hhhs"))
        fail_msg("plan launch '%s' does not name the types", info.launch);
    size_t n = B * H * N * D;
    cl_mem b16[4], b32 = tu_buffer(ctx, 4 * n, NULL);
    for (int i = 0; i < 4; i++) {
        b16[i] = tu_buffer(ctx, 2 * n, NULL);
        tu_poison_buffer(ctx, b16[i], 2 * n);
    }
    tu_poison_buffer(ctx, b32, 4 * n);
    clattn_tensor q = clattn_tensor_make_typed(b16[0], F16, B, H, N, D);
    clattn_tensor k = clattn_tensor_make_typed(b16[1], F16, B, H, N, D);
    clattn_tensor v = clattn_tensor_make_typed(b16[2], F16, B, H, N, D);
    clattn_tensor o = clattn_tensor_make(b32, B, H, N, D);
    clattn_tensor f32 = clattn_tensor_make(b32, B, H, N, D);
    clattn_tensor oh = clattn_tensor_make_typed(b16[3], F16, B, H, N, D);
    clattn_tensor ob = clattn_tensor_make_typed(b16[3], BF16, B, H, N, D);
    clattn_tensor bogus = clattn_tensor_make_typed(b16[0], (clattn_dtype)9, B, H, N, D);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, b16[3], 2 * n, "out");
    tu_watch_buffer(&w, b32, 4 * n, "f32 buffer");
    lin_expect(clattn_linear_plan_enqueue(plan, &f32, &k, &v, &oh, 0, NULL, NULL),
               CLATTN_DTYPE_MISMATCH, "f32 q on an f16 plan");
    lin_expect(clattn_linear_plan_enqueue(plan, &q, &k, &ob, &oh, 0, NULL, NULL),
               CLATTN_DTYPE_MISMATCH, "bf16 v on an f16 plan");
    lin_expect(clattn_linear_plan_enqueue(plan, &q, &k, &v, &oh, 0, NULL, NULL),
               CLATTN_DTYPE_MISMATCH, "f16 out on an f32-out plan");
    lin_expect(clattn_linear_plan_enqueue(plan, &q, &k, &v, &ob, 0, NULL, NULL),
               CLATTN_DTYPE_MISMATCH, "bf16 out on an f32-out plan");
    lin_expect(clattn_linear_plan_enqueue(plan, &bogus, &k, &v, &o, 0, NULL, NULL),
               CLATTN_DTYPE_MISMATCH, "unknown dtype q on a plan");
    lin_expect(clattn_linear_enqueue(ctx, NULL, &bogus, &k, &v, &o, 0, NULL, NULL),
               CLATTN_INVALID_ARGUMENT, "one-shot with an unknown dtype q");
    tu_watch_check(&w, "refused calls");
    tu_watch_free(&w);
    clattn_plan_destroy(plan);
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(b16[i]);
    clReleaseMemObject(b32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elu_noncausal), cmocka_unit_test(test_elu_causal_relu),
        cmocka_unit_test(test_favor),         cmocka_unit_test(test_momentum),
        cmocka_unit_test(test_state_f16),     cmocka_unit_test(test_bad_input),
    };
    return lin_run("test_linear_dtype", tests, sizeof tests / sizeof tests[0]);
}
