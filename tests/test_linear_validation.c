/* Every invalid path of every linear-attention entry point returns its status with a message and
 * leaves its outputs byte-identical: device output buffers and host arrays (tu_watch), created
 * handles (NULL), and decoding states (their exact snapshot, clattn_linear_state_save, compared
 * before and after). A NULL desc means the defaults everywhere; flags other than 0 and 1 are
 * refused. */
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

enum { N = 8, D = 4, DV = 6, H = 2, NQ = H * N * D, NO = H * N * DV };

/* Inputs of 0.5, an output of 7.0 (watched), and views [1, H, N, *] of them. */
typedef struct io {
    cl_mem bq, bk, bv, bo;
    clattn_tensor q, k, v, o;
    tu_watch watch;
} io;

static void io_make(io *b)
{
    float ones[H * N * DV], sev[NO];
    for (size_t i = 0; i < H * N * DV; i++)
        ones[i] = 0.5f;
    for (size_t i = 0; i < NO; i++)
        sev[i] = 7.0f;
    b->bq = tu_buffer(ctx, sizeof ones, ones);
    b->bk = tu_buffer(ctx, sizeof ones, ones);
    b->bv = tu_buffer(ctx, sizeof ones, ones);
    b->bo = tu_buffer(ctx, sizeof sev, sev);
    b->q = clattn_tensor_make(b->bq, 1, H, N, D);
    b->k = clattn_tensor_make(b->bk, 1, H, N, D);
    b->v = clattn_tensor_make(b->bv, 1, H, N, DV);
    b->o = clattn_tensor_make(b->bo, 1, H, N, DV);
    tu_watch_init(&b->watch, ctx);
    tu_watch_buffer(&b->watch, b->bo, sizeof sev, "out");
    tu_watch_buffer(&b->watch, b->bq, NQ * 4, "q");
}

static void io_free(io *b)
{
    tu_watch_free(&b->watch);
    cl_mem all[] = {b->bq, b->bk, b->bv, b->bo};
    for (int i = 0; i < 4; i++)
        clReleaseMemObject(all[i]);
}

/* The status, a message, and nothing watched changed. */
static void refused(const tu_watch *w, clattn_status got, clattn_status want, const char *what)
{
    lin_expect(got, want, what);
    tu_watch_check(w, what);
}

/* The same for a call that has no context to record its message on (a NULL context, plan or
 * state, or clattn_linear_favor_draw): the message is the thread's (clattn_context_last_error(NULL)). */
static void refused_nctx(const tu_watch *w, clattn_status got, clattn_status want, const char *what)
{
    tu_expect_status(NULL, got, want, what);
    tu_watch_check(w, what);
}

/* ---- descs refused by every entry point that takes one ---- */

typedef struct bad_desc {
    const char *what;
    clattn_linear_desc d;
    clattn_status want;
} bad_desc;

static size_t bad_descs(bad_desc *cases, const float *wgood, const float *wbad)
{
    size_t nc = 0;
    clattn_linear_desc plain, fav, mom;
    clattn_linear_desc_init(&plain);
    clattn_linear_desc_init(&fav);
    fav.feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
    fav.features = 16;
    clattn_linear_desc_init(&mom);
    mom.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
    mom.mu = 0.5f;
#define BAD(name, base, field, value, status)                                                      \
    do {                                                                                           \
        cases[nc].what = name;                                                                     \
        cases[nc].d = base;                                                                        \
        cases[nc].d.field = value;                                                                 \
        cases[nc++].want = status;                                                                 \
    } while (0)
    BAD("struct_size 0", plain, struct_size, 0, CLATTN_INVALID_ARGUMENT);
    BAD("struct_size 3", plain, struct_size, 3, CLATTN_INVALID_ARGUMENT);
    BAD("struct_size 1 MiB", plain, struct_size, 1 << 20, CLATTN_INVALID_ARGUMENT);
    BAD("feature map 7", plain, feature_map, (clattn_linear_feature_map)7, CLATTN_INVALID_ARGUMENT);
    BAD("feature map -1", plain, feature_map, (clattn_linear_feature_map)-1, CLATTN_INVALID_ARGUMENT);
    BAD("causal 2", plain, causal, 2, CLATTN_INVALID_ARGUMENT);
    BAD("causal -1", plain, causal, -1, CLATTN_INVALID_ARGUMENT);
    BAD("eps -1e-6", plain, eps, -1e-6f, CLATTN_INVALID_ARGUMENT);
    BAD("eps NaN", plain, eps, NAN, CLATTN_INVALID_ARGUMENT);
    BAD("eps inf", plain, eps, INFINITY, CLATTN_INVALID_ARGUMENT);
    BAD("algorithm 3", plain, algorithm, (clattn_linear_algo)3, CLATTN_INVALID_ARGUMENT);
    BAD("algorithm -1", plain, algorithm, (clattn_linear_algo)-1, CLATTN_INVALID_ARGUMENT);
    BAD("favor M 0", fav, features, 0, CLATTN_INVALID_ARGUMENT);
    BAD("favor M 4097", fav, features, 4097, CLATTN_INVALID_ARGUMENT);
    BAD("favor scaling", fav, scaling, (clattn_linear_favor_scaling)5, CLATTN_INVALID_ARGUMENT);
    BAD("mu -0.1", mom, mu, -0.1f, CLATTN_INVALID_ARGUMENT);
    BAD("mu 1", mom, mu, 1.0f, CLATTN_INVALID_ARGUMENT);
    BAD("mu NaN", mom, mu, NAN, CLATTN_INVALID_ARGUMENT);
    BAD("eta -1", mom, step_size, -1.0f, CLATTN_INVALID_ARGUMENT);
    BAD("eta NaN", mom, step_size, NAN, CLATTN_INVALID_ARGUMENT);
    BAD("eta inf", mom, step_size, INFINITY, CLATTN_INVALID_ARGUMENT);
    BAD("momentum 3", mom, momentum, (clattn_linear_momentum)3, CLATTN_INVALID_ARGUMENT);
    BAD("momentum -1", mom, momentum, (clattn_linear_momentum)-1, CLATTN_INVALID_ARGUMENT);
    BAD("GEMM with momentum", mom, algorithm, CLATTN_LINEAR_GEMM, CLATTN_UNSUPPORTED);
    mom.momentum = CLATTN_LINEAR_MOMENTUM_ADAPTIVE;
    BAD("adaptive eta -1", mom, step_size, -1.0f, CLATTN_INVALID_ARGUMENT);
    BAD("adaptive eta NaN", mom, step_size, NAN, CLATTN_INVALID_ARGUMENT);
    BAD("GEMM with adaptive momentum", mom, algorithm, CLATTN_LINEAR_GEMM, CLATTN_UNSUPPORTED);
    fav.projection = wbad;
    fav.projection_shape[0] = 16;
    fav.projection_shape[1] = D;
    BAD("NaN in projection", fav, features, 16, CLATTN_INVALID_ARGUMENT);
    fav.projection = wgood;
    BAD("projection_shape M", fav, projection_shape[0], 15, CLATTN_SHAPE_MISMATCH);
    BAD("projection_shape D", fav, projection_shape[1], D + 1, CLATTN_SHAPE_MISMATCH);
    BAD("projection_shape 0", fav, projection_shape[1], 0, CLATTN_SHAPE_MISMATCH);
#undef BAD
    return nc;
}

/* Each bad desc refused by the one-shot enqueue (causal and not), the plan (handle NULL), the
 * host call (its output array untouched) and state creation (handle NULL); GEMM with the causal
 * form too. */
static void test_bad_descs(void **state)
{
    (void)state;
    io b;
    io_make(&b);
    float wgood[16 * D], wbad[16 * D], ones[NO], hout[NO];
    for (size_t i = 0; i < 16 * D; i++)
        wgood[i] = wbad[i] = 0.25f;
    wbad[5] = NAN;
    for (size_t i = 0; i < NO; i++)
        ones[i] = 0.5f, hout[i] = 7.0f;
    tu_watch_host(&b.watch, hout, sizeof hout, "host out");
    bad_desc cases[40];
    size_t nc = bad_descs(cases, wgood, wbad);
    size_t qs[4] = {1, H, N, D}, vs[4] = {1, H, N, DV};
    for (size_t i = 0; i < nc; i++)
        for (int causal = 0; causal < 2; causal++) {
            clattn_linear_desc d = cases[i].d;
            if (d.causal == 0 || d.causal == 1)
                d.causal = causal;
            char what[96];
            snprintf(what, sizeof what, "%s (causal %d)", cases[i].what, causal);
            refused(&b.watch, clattn_linear_enqueue(ctx, &d, &b.q, &b.k, &b.v, &b.o, 0, NULL, NULL),
                    cases[i].want, what);
            clattn_plan *plan = (clattn_plan *)&b;
            refused(&b.watch, clattn_linear_plan_create(ctx, &d, qs, qs, vs, &plan), cases[i].want,
                    what);
            assert_null(plan);
            refused(&b.watch, clattn_linear_host(ctx, &d, qs, qs, vs, ones, ones, ones, hout),
                    cases[i].want, what);
            clattn_linear_state *st = (clattn_linear_state *)&b;
            refused(&b.watch, clattn_linear_state_create(ctx, &d, 1, H, D, DV, &st), cases[i].want,
                    what);
            assert_null(st);
        }
    clattn_linear_desc g;
    clattn_linear_desc_init(&g);
    g.algorithm = CLATTN_LINEAR_GEMM;
    g.causal = 1;
    refused(&b.watch, clattn_linear_enqueue(ctx, &g, &b.q, &b.k, &b.v, &b.o, 0, NULL, NULL),
            CLATTN_UNSUPPORTED, "GEMM causal");
    io_free(&b);
}

/* Tensors refused by the one-shot enqueue (and its NULLs and wait list). */
static void test_enqueue_tensors(void **state)
{
    (void)state;
    io b;
    io_make(&b);
    clattn_linear_desc d, dd;
    clattn_linear_desc_init(&d);
    clattn_tensor t;
    cl_event ev = NULL;
    const tu_watch *w = &b.watch;
#define RUN(desc, q, k, v, o) clattn_linear_enqueue(ctx, (desc), (q), (k), (v), (o), 0, NULL, &ev)
    refused_nctx(w, clattn_linear_enqueue(NULL, &d, &b.q, &b.k, &b.v, &b.o, 0, NULL, &ev),
                 CLATTN_NULL_POINTER, "ctx NULL");
    refused(w, RUN(&d, NULL, &b.k, &b.v, &b.o), CLATTN_NULL_POINTER, "q NULL");
    refused(w, RUN(&d, &b.q, NULL, &b.v, &b.o), CLATTN_NULL_POINTER, "k NULL");
    refused(w, RUN(&d, &b.q, &b.k, NULL, &b.o), CLATTN_NULL_POINTER, "v NULL");
    refused(w, RUN(&d, &b.q, &b.k, &b.v, NULL), CLATTN_NULL_POINTER, "out NULL");
    refused(w, clattn_linear_enqueue(ctx, &d, &b.q, &b.k, &b.v, &b.o, 1, NULL, &ev),
            CLATTN_NULL_POINTER, "wait NULL");
    t = b.q;
    t.buffer = NULL;
    refused(w, RUN(&d, &t, &b.k, &b.v, &b.o), CLATTN_NULL_POINTER, "q buffer NULL");
    t = b.q;
    t.shape[2] = 0;
    refused(w, RUN(&d, &t, &b.k, &b.v, &b.o), CLATTN_INVALID_SHAPE, "zero length");
    clattn_tensor q2 = b.q, k2 = b.k;
    q2.shape[3] = k2.shape[3] = 257;
    refused(w, RUN(&d, &q2, &k2, &b.v, &b.o), CLATTN_INVALID_SHAPE, "D > 256");
    t = b.v;
    t.shape[3] = 257;
    refused(w, RUN(&d, &b.q, &b.k, &t, &b.o), CLATTN_INVALID_SHAPE, "Dv > 256");
    t = b.k;
    t.shape[3] = 3;
    refused(w, RUN(&d, &b.q, &t, &b.v, &b.o), CLATTN_SHAPE_MISMATCH, "k head dim");
    t = b.v;
    t.shape[2] = N - 1;
    refused(w, RUN(&d, &b.q, &b.k, &t, &b.o), CLATTN_SHAPE_MISMATCH, "v length");
    t = b.v;
    t.shape[1] = 1;
    refused(w, RUN(&d, &b.q, &b.k, &t, &b.o), CLATTN_SHAPE_MISMATCH, "v heads");
    t = b.k;
    t.shape[0] = 2;
    refused(w, RUN(&d, &b.q, &t, &b.v, &b.o), CLATTN_SHAPE_MISMATCH, "k batch");
    /* GQA needs the query heads to be a multiple of the key heads. */
    clattn_tensor q3 = clattn_tensor_make(b.bq, 1, 3, 2, D),
                  o3 = clattn_tensor_make(b.bo, 1, 3, 2, DV);
    clattn_tensor k1 = clattn_tensor_make(b.bk, 1, 2, 2, D),
                  v1 = clattn_tensor_make(b.bv, 1, 2, 2, DV);
    refused(w, RUN(&d, &q3, &k1, &v1, &o3), CLATTN_SHAPE_MISMATCH, "3 query heads over 2");
    t = b.o;
    t.shape[3] = DV - 1;
    refused(w, RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_SHAPE_MISMATCH, "out Dv");
    t = b.o;
    t.shape[2] = N - 1;
    refused(w, RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_SHAPE_MISMATCH, "out length");
    dd = d;
    dd.causal = 1;
    t = b.q;
    t.shape[2] = N - 2;
    clattn_tensor o2 = b.o;
    o2.shape[2] = N - 2;
    refused(w, RUN(&dd, &t, &b.k, &b.v, &o2), CLATTN_UNSUPPORTED, "causal Nq != Nk");
    t = b.k;
    t.offset = 1000;
    refused(w, RUN(&d, &b.q, &t, &b.v, &b.o), CLATTN_BUFFER_TOO_SMALL, "k beyond buffer");
    t = b.o;
    t.strides[2] = 0;
    refused(w, RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_ALIASING, "out zero stride");
    t = clattn_tensor_make(b.bv, 1, H, N, DV);
    refused(w, RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_ALIASING, "out aliases v");
    t = clattn_tensor_make(b.bq, 1, H, N, DV);
    refused(w, RUN(&d, &b.q, &b.k, &b.v, &t), CLATTN_ALIASING, "out aliases q");
#undef RUN
    assert_null(ev);
    io_free(&b);
}

/* The plan: creation's NULLs and shapes (handle NULL), enqueue's plan, tensors and wait list. */
static void test_plan_invalid(void **state)
{
    (void)state;
    io b;
    io_make(&b);
    const tu_watch *w = &b.watch;
    size_t qs[4] = {1, H, N, D}, vs[4] = {1, H, N, DV}, zero[4] = {1, H, 0, D};
    size_t big[4] = {1, H, N, 257}, q3[4] = {1, 3, N, D}, qc[4] = {1, H, N - 1, D};
    size_t vc[4] = {1, H, N - 1, DV};
    clattn_plan *plan = (clattn_plan *)&b;
    refused_nctx(w, clattn_linear_plan_create(NULL, NULL, qs, qs, vs, &plan), CLATTN_NULL_POINTER,
                 "plan ctx NULL");
    assert_null(plan);
    plan = (clattn_plan *)&b;
    refused(w, clattn_linear_plan_create(ctx, NULL, qs, qs, vs, NULL), CLATTN_NULL_POINTER,
            "plan out NULL");
    refused(w, clattn_linear_plan_create(ctx, NULL, NULL, qs, vs, &plan), CLATTN_NULL_POINTER,
            "plan q_shape NULL");
    assert_null(plan);
    plan = (clattn_plan *)&b;
    refused(w, clattn_linear_plan_create(ctx, NULL, qs, qs, NULL, &plan), CLATTN_NULL_POINTER,
            "plan v_shape NULL");
    assert_null(plan);
    const size_t *bad_shapes[][3] = {{zero, zero, vs}, {big, big, vs}, {qs, qs, vc},
                                     {q3, qs, vs},     {qs, qc, vs},   {qs, qs, big}};
    const clattn_status want[] = {CLATTN_INVALID_SHAPE,  CLATTN_INVALID_SHAPE,
                                  CLATTN_SHAPE_MISMATCH, CLATTN_SHAPE_MISMATCH,
                                  CLATTN_SHAPE_MISMATCH, CLATTN_INVALID_SHAPE};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "plan shapes %zu", i);
        plan = (clattn_plan *)&b;
        refused(w,
                clattn_linear_plan_create(ctx, NULL, bad_shapes[i][0], bad_shapes[i][1],
                                          bad_shapes[i][2], &plan),
                want[i], what);
        assert_null(plan);
    }
    clattn_linear_desc c;
    clattn_linear_desc_init(&c);
    c.causal = 1;
    refused(w, clattn_linear_plan_create(ctx, &c, qs, qc, qc, &plan), CLATTN_UNSUPPORTED,
            "plan causal Nq != Nk");

    /* Enqueue on a good plan. */
    assert_int_equal(clattn_linear_plan_create(ctx, NULL, qs, qs, vs, &plan), CLATTN_SUCCESS);
    cl_event ev = NULL;
    refused_nctx(w, clattn_linear_plan_enqueue(NULL, &b.q, &b.k, &b.v, &b.o, 0, NULL, &ev),
                 CLATTN_NULL_POINTER, "enqueue plan NULL");
    refused(w, clattn_linear_plan_enqueue(plan, NULL, &b.k, &b.v, &b.o, 0, NULL, &ev),
            CLATTN_NULL_POINTER, "enqueue q NULL");
    refused(w, clattn_linear_plan_enqueue(plan, &b.q, &b.k, &b.v, NULL, 0, NULL, &ev),
            CLATTN_NULL_POINTER, "enqueue out NULL");
    refused(w, clattn_linear_plan_enqueue(plan, &b.q, &b.k, &b.v, &b.o, 2, NULL, &ev),
            CLATTN_NULL_POINTER, "enqueue wait NULL");
    clattn_tensor t = b.q;
    t.shape[2] = N - 1;
    refused(w, clattn_linear_plan_enqueue(plan, &t, &b.k, &b.v, &b.o, 0, NULL, &ev),
            CLATTN_SHAPE_MISMATCH, "enqueue q of another shape");
    t = b.o;
    t.shape[3] = DV - 1;
    refused(w, clattn_linear_plan_enqueue(plan, &b.q, &b.k, &b.v, &t, 0, NULL, &ev),
            CLATTN_SHAPE_MISMATCH, "enqueue out of another shape");
    t = b.v;
    t.offset = 1;
    refused(w, clattn_linear_plan_enqueue(plan, &b.q, &b.k, &t, &b.o, 0, NULL, &ev),
            CLATTN_BUFFER_TOO_SMALL, "enqueue v beyond buffer");
    t = clattn_tensor_make(b.bk, 1, H, N, DV);
    refused(w, clattn_linear_plan_enqueue(plan, &b.q, &b.k, &b.v, &t, 0, NULL, &ev),
            CLATTN_ALIASING, "enqueue out aliases k");
    /* A plan of another operator. */
    clattn_plan *soft = NULL;
    size_t ss[4] = {1, H, N, D};
    assert_int_equal(clattn_softmax_plan_create(ctx, NULL, ss, ss, ss, &soft), CLATTN_SUCCESS);
    clattn_tensor o4 = clattn_tensor_make(b.bo, 1, H, N, D);
    refused(w, clattn_linear_plan_enqueue(soft, &b.q, &b.k, &b.k, &o4, 0, NULL, &ev),
            CLATTN_INVALID_ARGUMENT, "enqueue softmax plan");
    assert_null(ev);
    clattn_plan_destroy(soft);
    clattn_plan_destroy(plan);
    clattn_plan_destroy(NULL);
    io_free(&b);
}

/* The host call: NULLs, shapes and overflowing sizes, its output untouched. */
static void test_host_invalid(void **state)
{
    (void)state;
    float ones[NO], hout[NO];
    for (size_t i = 0; i < NO; i++)
        ones[i] = 0.5f, hout[i] = 7.0f;
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_host(&w, hout, sizeof hout, "host out");
    size_t qs[4] = {1, H, N, D}, vs[4] = {1, H, N, DV}, huge[4] = {1, 1, (size_t)1 << 40, D};
    size_t kh[4] = {1, 3, N, D};
    refused_nctx(&w, clattn_linear_host(NULL, NULL, qs, qs, vs, ones, ones, ones, hout),
                 CLATTN_NULL_POINTER, "host ctx NULL");
    refused(&w, clattn_linear_host(ctx, NULL, NULL, qs, vs, ones, ones, ones, hout),
            CLATTN_NULL_POINTER, "host q_shape NULL");
    refused(&w, clattn_linear_host(ctx, NULL, qs, qs, vs, ones, NULL, ones, hout),
            CLATTN_NULL_POINTER, "host k NULL");
    refused(&w, clattn_linear_host(ctx, NULL, qs, qs, vs, ones, ones, ones, NULL),
            CLATTN_NULL_POINTER, "host out NULL");
    refused(&w, clattn_linear_host(ctx, NULL, qs, kh, vs, ones, ones, ones, hout),
            CLATTN_SHAPE_MISMATCH, "host k heads");
    clattn_status st = clattn_linear_host(ctx, NULL, huge, huge, huge, ones, ones, ones, hout);
    if (st != CLATTN_INVALID_SHAPE && st != CLATTN_SIZE_OVERFLOW)
        fail_msg("host huge: %s", clattn_status_string(st));
    tu_expect_status(ctx, st, st, "host huge");
    tu_watch_check(&w, "host huge");
    tu_watch_free(&w);
}

/* clattn_linear_favor_draw leaves w untouched when it refuses. */
static void test_favor_draw_invalid(void **state)
{
    (void)state;
    float w[64];
    for (size_t i = 0; i < 64; i++)
        w[i] = 7.0f;
    tu_watch wt;
    tu_watch_init(&wt, ctx);
    tu_watch_host(&wt, w, sizeof w, "w");
    refused_nctx(&wt, clattn_linear_favor_draw(4, 4, 1, CLATTN_LINEAR_FAVOR_SQRT_D, NULL), CLATTN_NULL_POINTER,
                 "draw NULL");
    refused_nctx(&wt, clattn_linear_favor_draw(0, 4, 1, CLATTN_LINEAR_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE,
                 "draw m 0");
    refused_nctx(&wt, clattn_linear_favor_draw(4, 0, 1, CLATTN_LINEAR_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE,
                 "draw d 0");
    refused_nctx(&wt, clattn_linear_favor_draw(4097, 1, 1, CLATTN_LINEAR_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE,
                 "draw m 4097");
    refused_nctx(&wt, clattn_linear_favor_draw(1, 257, 1, CLATTN_LINEAR_FAVOR_SQRT_D, w), CLATTN_INVALID_SHAPE,
                 "draw d 257");
    refused_nctx(&wt, clattn_linear_favor_draw(4, 4, 1, (clattn_linear_favor_scaling)2, w),
                 CLATTN_INVALID_ARGUMENT, "draw scaling");
    tu_watch_free(&wt);
}

/* ---- the decoding state ---- */

/* The exact snapshot of a state (malloc'd), to prove a refused call left it as it was. */
static unsigned char *snapshot(clattn_linear_state *st, size_t *bytes)
{
    assert_int_equal(clattn_linear_state_save_size(st, bytes), CLATTN_SUCCESS);
    unsigned char *p = malloc(*bytes);
    assert_non_null(p);
    assert_int_equal(clattn_linear_state_save(st, p, *bytes), CLATTN_SUCCESS);
    return p;
}

static void same_state(clattn_linear_state *st, const unsigned char *before, size_t bytes,
                       const char *what)
{
    size_t n = 0;
    unsigned char *now = snapshot(st, &n);
    if (n != bytes || memcmp(now, before, bytes) != 0)
        fail_msg("%s: refused, but the state changed", what);
    free(now);
}

static void test_state_create_invalid(void **state)
{
    (void)state;
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    clattn_linear_state *st = (clattn_linear_state *)&d;
    lin_expect(clattn_linear_state_create(ctx, &d, 1, 2, 0, 4, &st), CLATTN_INVALID_SHAPE, "D 0");
    assert_null(st);
    st = (clattn_linear_state *)&d;
    lin_expect(clattn_linear_state_create(ctx, &d, 1, 2, 4, 300, &st), CLATTN_INVALID_SHAPE,
               "Dv 300");
    assert_null(st);
    st = (clattn_linear_state *)&d;
    lin_expect(clattn_linear_state_create(ctx, &d, 0, 2, 4, 4, &st), CLATTN_INVALID_SHAPE,
               "batch 0");
    assert_null(st);
    st = (clattn_linear_state *)&d;
    tu_expect_status(NULL, clattn_linear_state_create(NULL, &d, 1, 2, 4, 4, &st),
                     CLATTN_NULL_POINTER, "ctx");
    assert_null(st);
    lin_expect(clattn_linear_state_create(ctx, &d, 1, 2, 4, 4, NULL), CLATTN_NULL_POINTER, "out");
    /* NULL desc: the defaults. */
    assert_int_equal(clattn_linear_state_create(ctx, NULL, 1, 2, 4, 4, &st), CLATTN_SUCCESS);
    clattn_linear_state_destroy(st);
    clattn_linear_state_destroy(NULL);
}

/* Prefill, step, reset, copy, write and load refused: the state (exact snapshot) and the
 * outputs unchanged. */
static void test_state_verbs_invalid(void **state)
{
    (void)state;
    seqdata s;
    seq_make(&s, 1, 2, 10, 4, 6, CLATTN_LINEAR_FEATURE_ELU);
    clattn_linear_state *st = state_new(&s, CLATTN_LINEAR_FEATURE_ELU), *other = NULL;
    prefill(st, &s, 0, 3, 0); /* a state that is not all zeros */
    size_t bytes = 0;
    unsigned char *before = snapshot(st, &bytes);
    size_t nv = s.B * s.H * s.N * s.Dv;
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, s.bo, nv * 4, "out");
#define CHECK(call, want, what)                                                                    \
    do {                                                                                           \
        refused(&w, (call), (want), (what));                                                       \
        same_state(st, before, bytes, (what));                                                     \
    } while (0)
#define CHECK_NCTX(call, want, what)                                                               \
    do {                                                                                           \
        refused_nctx(&w, (call), (want), (what));                                                  \
        same_state(st, before, bytes, (what));                                                     \
    } while (0)
    clattn_tensor q = window(s.bq, &s, s.D, 0, 2), k = window(s.bk, &s, s.D, 0, 2);
    clattn_tensor v = window(s.bv, &s, s.Dv, 0, 2), o = window(s.bo, &s, s.Dv, 0, 2);
    CHECK(clattn_linear_step(st, &q, &k, &v, &o, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
          "step of 2 tokens");
    q.shape[2] = k.shape[2] = v.shape[2] = o.shape[2] = 1;
    CHECK(clattn_linear_step(st, &q, &k, &v, NULL, 0, NULL, NULL), CLATTN_NULL_POINTER,
          "step out NULL");
    CHECK(clattn_linear_step(st, NULL, &k, &v, &o, 0, NULL, NULL), CLATTN_NULL_POINTER,
          "step q NULL");
    CHECK_NCTX(clattn_linear_step(NULL, &q, &k, &v, &o, 0, NULL, NULL), CLATTN_NULL_POINTER,
               "step NULL state");
    CHECK(clattn_linear_step(st, &q, &k, &v, &o, 1, NULL, NULL), CLATTN_NULL_POINTER,
          "step wait NULL");
    clattn_tensor q3 = q;
    q3.shape[3] = 3;
    CHECK(clattn_linear_step(st, &q3, &k, &v, &o, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH, "step D");
    clattn_tensor qh = q, oh = o;
    qh.shape[1] = oh.shape[1] = 3;
    CHECK(clattn_linear_step(st, &qh, &k, &v, &oh, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
          "step 3 query heads over 2");
    clattn_tensor o2 = window(s.bv, &s, s.Dv, 0, 1);
    CHECK(clattn_linear_step(st, &q, &k, &v, &o2, 0, NULL, NULL), CLATTN_ALIASING,
          "step out aliases v");
    clattn_tensor kb = k;
    kb.offset = 1u << 20;
    CHECK(clattn_linear_step(st, &q, &kb, &v, &o, 0, NULL, NULL), CLATTN_BUFFER_TOO_SMALL,
          "step k beyond buffer");
    clattn_tensor k4 = window(s.bk, &s, s.D, 0, 4);
    CHECK(clattn_linear_prefill(st, &q, &k4, &v, NULL, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
          "prefill lengths");
    clattn_tensor v2 = v;
    v2.shape[1] = 1;
    CHECK(clattn_linear_prefill(st, &q, &k, &v2, NULL, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
          "prefill heads");
    CHECK_NCTX(clattn_linear_prefill(NULL, &q, &k, &v, NULL, 0, NULL, NULL), CLATTN_NULL_POINTER,
               "prefill NULL state");
    CHECK(clattn_linear_prefill(st, &q, &k, &v, &o, 3, NULL, NULL), CLATTN_NULL_POINTER,
          "prefill wait NULL");
    CHECK_NCTX(clattn_linear_state_reset(NULL, 0, NULL, NULL), CLATTN_NULL_POINTER, "reset NULL");
    CHECK(clattn_linear_state_reset(st, 1, NULL, NULL), CLATTN_NULL_POINTER, "reset wait");
    /* Copies into st from states it cannot take. */
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 2, 4, 5, &other), CLATTN_SUCCESS);
    CHECK(clattn_linear_state_copy(st, other, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH, "copy shapes");
    clattn_linear_state_destroy(other);
    d.feature_map = CLATTN_LINEAR_FEATURE_RELU;
    assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 2, 4, 6, &other), CLATTN_SUCCESS);
    CHECK(clattn_linear_state_copy(st, other, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
          "copy feature maps");
    d.feature_map = CLATTN_LINEAR_FEATURE_ELU;
    d.eps = 0.0f;
    clattn_linear_state *noeps = NULL;
    assert_int_equal(clattn_linear_state_create(ctx, &d, 1, 2, 4, 6, &noeps), CLATTN_SUCCESS);
    CHECK(clattn_linear_state_copy(st, noeps, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
          "copy across eps");
    clattn_linear_state_destroy(noeps);
    CHECK(clattn_linear_state_copy(NULL, st, 0, NULL, NULL), CLATTN_NULL_POINTER, "copy NULL");
    CHECK(clattn_linear_state_copy(st, other, 1, NULL, NULL), CLATTN_NULL_POINTER, "copy wait");
    clattn_linear_state_destroy(other);
    /* Write and load. */
    size_t ns = 2 * 4 * 6, nz = 2 * 4;
    float sv[48], zv[8];
    for (size_t i = 0; i < ns; i++)
        sv[i] = 1.0f;
    for (size_t i = 0; i < nz; i++)
        zv[i] = 1.0f;
    zv[3] = NAN;
    CHECK(clattn_linear_state_write(st, sv, zv), CLATTN_INVALID_ARGUMENT, "write NaN z");
    zv[3] = 1.0f;
    sv[7] = INFINITY;
    CHECK(clattn_linear_state_write(st, sv, zv), CLATTN_INVALID_ARGUMENT, "write inf s");
    CHECK(clattn_linear_state_write(st, NULL, zv), CLATTN_NULL_POINTER, "write s NULL");
    CHECK_NCTX(clattn_linear_state_write(NULL, sv, zv), CLATTN_NULL_POINTER, "write NULL state");
    unsigned char *bad = malloc(bytes);
    memcpy(bad, before, bytes);
    bad[bytes / 2] ^= 1;
    CHECK(clattn_linear_state_load(st, bad, bytes), CLATTN_INVALID_ARGUMENT, "load corrupt");
    CHECK(clattn_linear_state_load(st, before, bytes - 1), CLATTN_BUFFER_TOO_SMALL,
          "load truncated");
    CHECK(clattn_linear_state_load(st, NULL, bytes), CLATTN_NULL_POINTER, "load NULL");
    /* Save into a short buffer leaves it untouched. */
    memset(bad, 0x5a, bytes);
    tu_watch_host(&w, bad, bytes, "save buffer");
    CHECK(clattn_linear_state_save(st, bad, bytes - 1), CLATTN_BUFFER_TOO_SMALL, "save short");
    CHECK(clattn_linear_state_save(st, NULL, bytes), CLATTN_NULL_POINTER, "save NULL");
    CHECK(clattn_linear_state_save_size(st, NULL), CLATTN_NULL_POINTER, "save_size NULL");
    size_t shape[4];
    CHECK_NCTX(clattn_linear_state_get_shape(NULL, shape), CLATTN_NULL_POINTER, "get_shape NULL");
    CHECK_NCTX(clattn_linear_state_read(NULL, sv, zv), CLATTN_NULL_POINTER, "read NULL");
#undef CHECK
#undef CHECK_NCTX
    free(bad);
    free(before);
    tu_watch_free(&w);
    clattn_linear_state_destroy(st);
    seq_free(&s);
}

/* A momentum state cannot be rebuilt from S and z; FAVOR and momentum states of other descs
 * are refused by copy; a FAVOR state used with tensors of another shape. */
static void test_state_forms_invalid(void **state)
{
    (void)state;
    io b;
    io_make(&b);
    clattn_linear_desc fav, dm;
    clattn_linear_desc_init(&fav);
    fav.feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
    fav.features = 16;
    clattn_linear_state *st = NULL, *sm = NULL, *sm2 = NULL;
    assert_int_equal(clattn_linear_state_create(ctx, &fav, 1, H, D, DV, &st), CLATTN_SUCCESS);
    size_t bytes;
    unsigned char *before = snapshot(st, &bytes);
    clattn_tensor q1 = clattn_tensor_make(b.bq, 1, H, 1, D),
                  k1 = clattn_tensor_make(b.bk, 1, H, 1, D);
    clattn_tensor v1 = clattn_tensor_make(b.bv, 1, H, 1, DV),
                  o1 = clattn_tensor_make(b.bo, 1, H, 1, DV);
    clattn_tensor qd = clattn_tensor_make(b.bq, 1, H, 1, D - 1),
                  kd = clattn_tensor_make(b.bk, 1, H, 1, D - 1);
    refused(&b.watch, clattn_linear_step(st, &qd, &kd, &v1, &o1, 0, NULL, NULL),
            CLATTN_SHAPE_MISMATCH, "favor step D");
    clattn_tensor qh = clattn_tensor_make(b.bq, 1, 1, N, D),
                  kh = clattn_tensor_make(b.bk, 1, 1, N, D);
    clattn_tensor vh = clattn_tensor_make(b.bv, 1, 1, N, DV),
                  oh = clattn_tensor_make(b.bo, 1, 1, N, DV);
    refused(&b.watch, clattn_linear_prefill(st, &qh, &kh, &vh, &oh, 0, NULL, NULL),
            CLATTN_SHAPE_MISMATCH, "favor prefill heads");
    clattn_tensor v5 = clattn_tensor_make(b.bv, 1, H, 1, DV - 1),
                  o5 = clattn_tensor_make(b.bo, 1, H, 1, DV - 1);
    refused(&b.watch, clattn_linear_step(st, &q1, &k1, &v5, &o5, 0, NULL, NULL),
            CLATTN_SHAPE_MISMATCH, "favor step Dv");
    same_state(st, before, bytes, "favor state");
    clattn_linear_desc_init(&dm);
    dm.momentum = CLATTN_LINEAR_MOMENTUM_FIXED;
    dm.mu = 0.5f;
    assert_int_equal(clattn_linear_state_create(ctx, &dm, 1, H, D, DV, &sm), CLATTN_SUCCESS);
    size_t mbytes;
    unsigned char *mbefore = snapshot(sm, &mbytes);
    refused(&b.watch, clattn_linear_state_copy(sm, st, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
            "copy favor into momentum");
    float sv[H * D * DV], zv[H * D];
    for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++)
        sv[i] = 0.5f;
    for (size_t i = 0; i < sizeof zv / sizeof zv[0]; i++)
        zv[i] = 0.5f;
    refused(&b.watch, clattn_linear_state_write(sm, sv, zv), CLATTN_UNSUPPORTED,
            "write momentum state");
    dm.mu = 0.25f;
    assert_int_equal(clattn_linear_state_create(ctx, &dm, 1, H, D, DV, &sm2), CLATTN_SUCCESS);
    refused(&b.watch, clattn_linear_state_copy(sm, sm2, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT,
            "copy across mu");
    refused(&b.watch, clattn_linear_state_load(sm, before, bytes), CLATTN_INVALID_ARGUMENT,
            "load a favor snapshot into a momentum state");
    clattn_linear_state_destroy(sm2);
    dm.mu = 0.5f;
    assert_int_equal(clattn_linear_state_create(ctx, &dm, 1, H, D, DV + 1, &sm2), CLATTN_SUCCESS);
    refused(&b.watch, clattn_linear_state_copy(sm, sm2, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
            "copy across shapes");
    clattn_linear_state_destroy(sm2);
    same_state(sm, mbefore, mbytes, "momentum state");
    free(before);
    free(mbefore);
    clattn_linear_state_destroy(sm);
    clattn_linear_state_destroy(st);
    io_free(&b);
}

/* desc NULL means the defaults (ELU, non-causal, eps CLATTN_LINEAR_DEFAULT_EPS) for every entry
 * point that takes a desc: the same output as an explicitly initialised desc. */
static void test_desc_null_defaults(void **state)
{
    (void)state;
    io b;
    io_make(&b);
    clattn_linear_desc d;
    clattn_linear_desc_init(&d);
    float a[NO], c[NO], hq[NQ], hv[NO];
    for (size_t i = 0; i < NQ; i++)
        hq[i] = 0.1f * (float)(i % 7);
    for (size_t i = 0; i < NO; i++)
        hv[i] = 0.2f * (float)(i % 5) - 0.3f;
    size_t qs[4] = {1, H, N, D}, vs[4] = {1, H, N, DV};
    assert_int_equal(clattn_linear_host(ctx, NULL, qs, qs, vs, hq, hq, hv, a), CLATTN_SUCCESS);
    assert_int_equal(clattn_linear_host(ctx, &d, qs, qs, vs, hq, hq, hv, c), CLATTN_SUCCESS);
    assert_memory_equal(a, c, sizeof a);
    clattn_plan *p = NULL;
    assert_int_equal(clattn_linear_plan_create(ctx, NULL, qs, qs, vs, &p), CLATTN_SUCCESS);
    clattn_plan_info info;
    assert_int_equal(clattn_plan_get_info(p, &info), CLATTN_SUCCESS);
    assert_int_equal(info.op, CLATTN_OP_LINEAR);
    clattn_plan_destroy(p);
    assert_int_equal(clattn_linear_enqueue(ctx, NULL, &b.q, &b.k, &b.v, &b.o, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    io_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_descs),           cmocka_unit_test(test_enqueue_tensors),
        cmocka_unit_test(test_plan_invalid),        cmocka_unit_test(test_host_invalid),
        cmocka_unit_test(test_favor_draw_invalid),  cmocka_unit_test(test_state_create_invalid),
        cmocka_unit_test(test_state_verbs_invalid), cmocka_unit_test(test_state_forms_invalid),
        cmocka_unit_test(test_desc_null_defaults),
    };
    return lin_run("test_linear_validation", tests, sizeof tests / sizeof tests[0]);
}
