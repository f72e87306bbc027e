/* test_mgk_validation.c - invalid paths of Transformer-MGK's entry points (clattn_mgk_plan_create,
 * _plan_enqueue, _enqueue, _host, _state_create, _state_step, _state_reset): the documented status
 * comes back with the call's own message (tu_expect_fresh_status) and no output has been touched
 * (tu_watch: every watched buffer and host array compared byte for byte). Shapes use D = 20 and
 * R = 2, as the other MGK suites, so the programs they build are shared. */
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
#include "test_util.h"

enum { B = 2, H = 2, R = 2, NQ = 9, NK = 11, D = 20 };
#define Q_EL ((size_t)B * H * NQ * D)
#define K_EL ((size_t)B * H * R * NK * D)
#define V_EL ((size_t)B * H * NK * D)
#define P_EL ((size_t)H * R * NK)
#define L_EL ((size_t)B * H * NQ)

static clattn_context *ctx;
static cl_mem bq, bk, bv, bp, bo, bl;
static float *hq, *hk, *hv, *hp, *ho, *hl;
static tu_watch w;

#define EXPECT(want, on_ctx, call)                                                                 \
    do {                                                                                           \
        tu_stale_messages(ctx);                                                                    \
        clattn_status st_ = (call);                                                                \
        char what_[300];                                                                           \
        snprintf(what_, sizeof what_, "line %d: %.250s", __LINE__, #call);                         \
        tu_expect_fresh_status((on_ctx) ? ctx : NULL, st_, (want), what_);                         \
        tu_watch_check(&w, what_);                                                                 \
    } while (0)

#define EXPECT_PLAN(want, desc_, qs_, ks_)                                                         \
    do {                                                                                           \
        clattn_plan *p_ = (clattn_plan *)(uintptr_t)1;                                             \
        EXPECT(want, 1, clattn_mgk_plan_create(ctx, (desc_), (qs_), (ks_), &p_));                 \
        assert_null(p_);                                                                           \
    } while (0)

static const size_t QS[4] = {B, H, NQ, D}, KS[4] = {B, H * R, NK, D};

static void test_plan_create(void **st)
{
    (void)st;
    clattn_mgk_desc d;
    clattn_plan *p = NULL;
    EXPECT(CLATTN_NULL_POINTER, 0, clattn_mgk_plan_create(NULL, NULL, QS, KS, &p));
    EXPECT(CLATTN_NULL_POINTER, 1, clattn_mgk_plan_create(ctx, NULL, NULL, KS, &p));
    EXPECT(CLATTN_NULL_POINTER, 1, clattn_mgk_plan_create(ctx, NULL, QS, KS, NULL));
    /* desc fields */
    clattn_mgk_desc_init(&d);
    d.form = (clattn_mgk_form)2;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.sigma[1] = -1.0f;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    d.sigma[1] = NAN;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.sigma[0] = 1e-30f; /* 1/sigma^2 beyond float */
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.eps = -1e-3f;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.causal = 2;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.algorithm = (clattn_mgk_algo)9;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    d.algorithm = CLATTN_MGK_LINEAR_SCAN; /* softmax form has no such family */
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.form = CLATTN_MGK_LINEAR;
    d.algorithm = CLATTN_MGK_TILED_CPU;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    d.algorithm = CLATTN_MGK_AUTO;
    d.key_lengths = bl;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    clattn_mgk_desc_init(&d);
    d.struct_size = 3;
    EXPECT_PLAN(CLATTN_INVALID_ARGUMENT, &d, QS, KS);
    /* key lengths buffer too small */
    cl_mem small = tu_buffer(ctx, 4, NULL);
    clattn_mgk_desc_init(&d);
    d.key_lengths = small;
    EXPECT_PLAN(CLATTN_BUFFER_TOO_SMALL, &d, QS, KS);
    clReleaseMemObject(small);
    /* shapes */
    size_t q0[4] = {B, H, 0, D}, k3[4] = {B, H * R + 1, NK, D}, k9[4] = {B, H * 9, NK, D};
    size_t kd[4] = {B, H * R, NK, D + 1}, kb[4] = {B + 1, H * R, NK, D};
    size_t qd[4] = {B, H, NQ, 300}, kdd[4] = {B, H * R, NK, 300};
    EXPECT_PLAN(CLATTN_INVALID_SHAPE, NULL, q0, KS);
    EXPECT_PLAN(CLATTN_SHAPE_MISMATCH, NULL, QS, k3);
    EXPECT_PLAN(CLATTN_SHAPE_MISMATCH, NULL, QS, k9);
    EXPECT_PLAN(CLATTN_SHAPE_MISMATCH, NULL, QS, kd);
    EXPECT_PLAN(CLATTN_SHAPE_MISMATCH, NULL, QS, kb);
    EXPECT_PLAN(CLATTN_INVALID_SHAPE, NULL, qd, kdd);
    clattn_mgk_desc_init(&d);
    d.form = CLATTN_MGK_LINEAR;
    d.causal = 1; /* needs Nq = Nk */
    EXPECT_PLAN(CLATTN_SHAPE_MISMATCH, &d, QS, KS);
}

typedef struct views {
    clattn_tensor q, k, v, p, o, l;
} views;

static views base(void)
{
    views x;
    x.q = clattn_tensor_make(bq, B, H, NQ, D);
    x.k = clattn_tensor_make(bk, B, H * R, NK, D);
    x.v = clattn_tensor_make(bv, B, H, NK, D);
    x.p = clattn_tensor_make(bp, 1, H, R, NK);
    x.o = clattn_tensor_make(bo, B, H, NQ, D);
    x.l = clattn_tensor_make(bl, B, H, NQ, 1);
    return x;
}

static void test_enqueue(void **st)
{
    (void)st;
    clattn_plan *plan = NULL, *lin = NULL, *other = NULL;
    assert_int_equal(clattn_mgk_plan_create(ctx, NULL, QS, KS, &plan), CLATTN_SUCCESS);
    clattn_mgk_desc d;
    clattn_mgk_desc_init(&d);
    d.form = CLATTN_MGK_LINEAR;
    assert_int_equal(clattn_mgk_plan_create(ctx, &d, QS, KS, &lin), CLATTN_SUCCESS);
    views x = base();
    EXPECT(CLATTN_NULL_POINTER, 0,
           clattn_mgk_plan_enqueue(NULL, &x.q, &x.k, &x.v, &x.p, &x.o, &x.l, 0, NULL, NULL));
    EXPECT(CLATTN_NULL_POINTER, 1,
           clattn_mgk_plan_enqueue(plan, &x.q, &x.k, &x.v, NULL, &x.o, &x.l, 0, NULL, NULL));
    EXPECT(CLATTN_NULL_POINTER, 1,
           clattn_mgk_plan_enqueue(plan, &x.q, &x.k, &x.v, &x.p, &x.o, &x.l, 1, NULL, NULL));
    /* lse with the linear form */
    EXPECT(CLATTN_INVALID_ARGUMENT, 1,
           clattn_mgk_plan_enqueue(lin, &x.q, &x.k, &x.v, &x.p, &x.o, &x.l, 0, NULL, NULL));
    /* a plan of another operator */
    size_t s4[4] = {B, H, NQ, D};
    assert_int_equal(clattn_softmax_plan_create(ctx, NULL, s4, s4, s4, &other), CLATTN_SUCCESS);
    EXPECT(CLATTN_INVALID_ARGUMENT, 1,
           clattn_mgk_plan_enqueue(other, &x.q, &x.k, &x.v, &x.p, &x.o, &x.l, 0, NULL, NULL));
    clattn_plan_destroy(other);
    /* shapes: pi of the wrong length, k of the wrong R, v of q's length */
    views y = base();
    y.p.shape[3] = NK - 1;
    EXPECT(CLATTN_SHAPE_MISMATCH, 1,
           clattn_mgk_plan_enqueue(plan, &y.q, &y.k, &y.v, &y.p, &y.o, &y.l, 0, NULL, NULL));
    y = base();
    y.k.shape[1] = H;
    EXPECT(CLATTN_SHAPE_MISMATCH, 1,
           clattn_mgk_plan_enqueue(plan, &y.q, &y.k, &y.v, &y.p, &y.o, &y.l, 0, NULL, NULL));
    y = base();
    y.v.shape[2] = NQ;
    EXPECT(CLATTN_SHAPE_MISMATCH, 1,
           clattn_mgk_plan_enqueue(plan, &y.q, &y.k, &y.v, &y.p, &y.o, &y.l, 0, NULL, NULL));
    /* pi beyond its buffer */
    y = base();
    y.p.offset = 1;
    EXPECT(CLATTN_BUFFER_TOO_SMALL, 1,
           clattn_mgk_plan_enqueue(plan, &y.q, &y.k, &y.v, &y.p, &y.o, &y.l, 0, NULL, NULL));
    /* out overlapping pi (one buffer holding both), out with a zero stride */
    views z = base();
    cl_mem big = tu_buffer(ctx, (Q_EL + P_EL) * 4, NULL);
    z.p = clattn_tensor_make(big, 1, H, R, NK);
    z.o = clattn_tensor_make(big, B, H, NQ, D);
    EXPECT(CLATTN_ALIASING, 1,
           clattn_mgk_plan_enqueue(plan, &z.q, &z.k, &z.v, &z.p, &z.o, &z.l, 0, NULL, NULL));
    z = base();
    z.o.strides[0] = 0;
    EXPECT(CLATTN_ALIASING, 1,
           clattn_mgk_plan_enqueue(plan, &z.q, &z.k, &z.v, &z.p, &z.o, &z.l, 0, NULL, NULL));
    /* one-shot: NULL tensors, then a bad desc */
    EXPECT(CLATTN_NULL_POINTER, 0,
           clattn_mgk_enqueue(NULL, NULL, &x.q, &x.k, &x.v, &x.p, &x.o, NULL, 0, NULL, NULL));
    EXPECT(CLATTN_NULL_POINTER, 1,
           clattn_mgk_enqueue(ctx, NULL, &x.q, &x.k, &x.v, NULL, &x.o, NULL, 0, NULL, NULL));
    clattn_mgk_desc_init(&d);
    d.causal = 7;
    EXPECT(CLATTN_INVALID_ARGUMENT, 1,
           clattn_mgk_enqueue(ctx, &d, &x.q, &x.k, &x.v, &x.p, &x.o, &x.l, 0, NULL, NULL));
    clattn_plan_destroy(plan);
    clattn_plan_destroy(lin);
    clReleaseMemObject(big);
}

static void test_host_and_state(void **st)
{
    (void)st;
    EXPECT(CLATTN_NULL_POINTER, 0, clattn_mgk_host(NULL, NULL, QS, KS, hq, hk, hv, hp, ho, hl));
    EXPECT(CLATTN_NULL_POINTER, 1, clattn_mgk_host(ctx, NULL, QS, KS, hq, hk, hv, NULL, ho, hl));
    size_t k3[4] = {B, H * R + 1, NK, D};
    EXPECT(CLATTN_SHAPE_MISMATCH, 1, clattn_mgk_host(ctx, NULL, QS, k3, hq, hk, hv, hp, ho, hl));
    clattn_mgk_desc d;
    clattn_mgk_desc_init(&d);
    d.form = CLATTN_MGK_LINEAR;
    EXPECT(CLATTN_INVALID_ARGUMENT, 1, clattn_mgk_host(ctx, &d, QS, KS, hq, hk, hv, hp, ho, hl));

    clattn_mgk_state *s = (clattn_mgk_state *)(uintptr_t)1;
    EXPECT(CLATTN_NULL_POINTER, 0, clattn_mgk_state_create(NULL, &d, B, H, R, D, &s));
    assert_null(s);
    EXPECT(CLATTN_INVALID_ARGUMENT, 1, clattn_mgk_state_create(ctx, NULL, B, H, R, D, &s));
    EXPECT(CLATTN_INVALID_SHAPE, 1, clattn_mgk_state_create(ctx, &d, B, H, 9, D, &s));
    EXPECT(CLATTN_INVALID_SHAPE, 1, clattn_mgk_state_create(ctx, &d, B, H, R, 0, &s));
    EXPECT(CLATTN_NULL_POINTER, 0, clattn_mgk_state_reset(NULL, 0, NULL, NULL));
    assert_int_equal(clattn_mgk_state_create(ctx, &d, B, H, R, D, &s), CLATTN_SUCCESS);
    EXPECT(CLATTN_NULL_POINTER, 1, clattn_mgk_state_reset(s, 1, NULL, NULL));
    /* a step with whole sequences (N = NQ, not 1) is refused, out untouched */
    views x = base();
    EXPECT(CLATTN_SHAPE_MISMATCH, 1,
           clattn_mgk_state_step(s, &x.q, &x.k, &x.v, &x.p, &x.o, 0, NULL, NULL));
    EXPECT(CLATTN_NULL_POINTER, 0,
           clattn_mgk_state_step(NULL, &x.q, &x.k, &x.v, &x.p, &x.o, 0, NULL, NULL));
    clattn_mgk_state_destroy(s);
    clattn_mgk_state_destroy(NULL);
}

static int setup(void **st)
{
    (void)st;
    ctx = tu_context();
    if (!ctx)
        return -1;
    uint64_t seed = 5;
    hq = tu_random(Q_EL, 1, &seed), hk = tu_random(K_EL, 1, &seed), hv = tu_random(V_EL, 1, &seed);
    hp = tu_random(P_EL, 1, &seed), ho = tu_poisoned(Q_EL), hl = tu_poisoned(L_EL);
    bq = tu_buffer(ctx, Q_EL * 4, hq), bk = tu_buffer(ctx, K_EL * 4, hk);
    bv = tu_buffer(ctx, V_EL * 4, hv), bp = tu_buffer(ctx, P_EL * 4, hp);
    bo = tu_buffer(ctx, Q_EL * 4, ho), bl = tu_buffer(ctx, L_EL * 4, hl);
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bo, Q_EL * 4, "out");
    tu_watch_buffer(&w, bl, L_EL * 4, "lse");
    tu_watch_buffer(&w, bp, P_EL * 4, "pi");
    tu_watch_host(&w, ho, Q_EL * 4, "host out");
    tu_watch_host(&w, hl, L_EL * 4, "host lse");
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    tu_watch_free(&w);
    cl_mem all[] = {bq, bk, bv, bp, bo, bl};
    for (int i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
    free(hq), free(hk), free(hv), free(hp), free(ho), free(hl);
    clattn_context_destroy(ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_create),
        cmocka_unit_test(test_enqueue),
        cmocka_unit_test(test_host_and_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
