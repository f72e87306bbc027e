/* Routing attention's invalid calls: every refused path of every public entry point
 * (clattn_routing_plan_create, _plan_enqueue, _enqueue, _centroids_init, _update_centroids,
 * _host) returns its status with a message and leaves every output byte-identical (tu_watch);
 * out-of-range flags are refused; desc NULL means the defaults. */
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

static clattn_context *ctx;

enum { B = 1, H = 2, N = 8, D = 4, DV = 6, C = 3, NBIG = B * H * N * DV };

/* Inputs, outputs and their views, shared by the cases below. */
typedef struct fixture {
    cl_mem bq, bk, bv, bmu, bo, bmu7;
    clattn_tensor q, k, v, mu, o, mu7;
    tu_watch w;
} fixture;

static void fixture_make(fixture *f)
{
    float half[NBIG], sev[NBIG];
    for (size_t i = 0; i < NBIG; i++) {
        half[i] = 0.5f + 0.01f * (float)i;
        sev[i] = 7.0f;
    }
    f->bq = tu_buffer(ctx, sizeof half, half);
    f->bk = tu_buffer(ctx, sizeof half, half);
    f->bv = tu_buffer(ctx, sizeof half, half);
    f->bmu = tu_buffer(ctx, sizeof half, half);
    f->bo = tu_buffer(ctx, sizeof sev, sev);
    f->bmu7 = tu_buffer(ctx, sizeof sev, sev);
    f->q = clattn_tensor_make(f->bq, B, H, N, D);
    f->k = clattn_tensor_make(f->bk, B, H, N, D);
    f->v = clattn_tensor_make(f->bv, B, H, N, DV);
    f->mu = clattn_tensor_make(f->bmu, 1, H, C, D);
    f->o = clattn_tensor_make(f->bo, B, H, N, DV);
    f->mu7 = clattn_tensor_make(f->bmu7, 1, H, C, D);
    /* The outputs of every call below, and the inputs too: nothing may change. */
    tu_watch_init(&f->w, ctx);
    tu_watch_buffer(&f->w, f->bo, sizeof sev, "out");
    tu_watch_buffer(&f->w, f->bmu7, sizeof sev, "centroids (output)");
    tu_watch_buffer(&f->w, f->bmu, sizeof half, "centroids (input)");
    tu_watch_buffer(&f->w, f->bq, sizeof half, "q");
}

static void fixture_free(fixture *f)
{
    tu_watch_check(&f->w, "the refused calls");
    tu_watch_free(&f->w);
    cl_mem all[] = {f->bq, f->bk, f->bv, f->bmu, f->bo, f->bmu7};
    for (int i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
}

/* A plan for the fixture's shapes (desc as given). */
static clattn_plan *plan_for(const fixture *f, const clattn_routing_desc *d)
{
    clattn_plan *p = NULL;
    tu_expect_status(ctx,
                     clattn_routing_plan_create(ctx, d, f->q.shape, f->k.shape, f->v.shape,
                                                f->mu.shape, &p),
                     CLATTN_SUCCESS, "plan");
    return p;
}

/* plan_create: refused descs and shapes; *plan stays NULL. */
static void test_plan_create(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    clattn_routing_desc d, dd;
    clattn_routing_desc_init(&d);
    size_t q[4] = {B, H, N, D}, k[4] = {B, H, N, D}, v[4] = {B, H, N, DV}, mu[4] = {1, H, C, D};
    size_t t[4];
    clattn_plan *p = (clattn_plan *)&f; /* must be reset to NULL */
#define PLAN(desc_, q_, k_, v_, mu_, want, what)                                                   \
    do {                                                                                           \
        p = (clattn_plan *)&f;                                                                     \
        tu_expect_status(ctx, clattn_routing_plan_create(ctx, (desc_), (q_), (k_), (v_), (mu_),    \
                                                         &p),                                      \
                         (want), (what));                                                          \
        assert_null(p);                                                                            \
    } while (0)
    tu_expect_status(NULL, clattn_routing_plan_create(NULL, &d, q, k, v, mu, &p),
                     CLATTN_NULL_POINTER, "ctx NULL");
    tu_expect_status(ctx, clattn_routing_plan_create(ctx, &d, q, k, v, mu, NULL),
                     CLATTN_NULL_POINTER, "plan NULL");
    PLAN(&d, NULL, k, v, mu, CLATTN_NULL_POINTER, "q_shape NULL");
    PLAN(&d, q, k, v, NULL, CLATTN_NULL_POINTER, "centroids_shape NULL");
    dd = d;
    dd.struct_size = 3;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "struct_size 3");
    dd = d;
    dd.window = 0;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "window 0");
    dd = d;
    dd.window = N + 1;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "window > N");
    dd = d;
    dd.causal = 2;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "causal 2");
    dd.causal = -1;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "causal -1");
    dd = d;
    dd.scale = NAN;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "scale NaN");
    dd.scale = INFINITY;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "scale inf");
    dd = d;
    dd.decay = 1.5f;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "decay 1.5");
    dd.decay = NAN;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "decay NaN");
    dd = d;
    dd.clusters = C + 1;
    PLAN(&dd, q, k, v, mu, CLATTN_INVALID_ARGUMENT, "clusters != C");
    memcpy(t, mu, sizeof t);
    t[2] = N + 1;
    PLAN(&d, q, k, v, t, CLATTN_INVALID_ARGUMENT, "C > N");
    memcpy(t, mu, sizeof t);
    t[1] = H + 1;
    PLAN(&d, q, k, v, t, CLATTN_SHAPE_MISMATCH, "centroid heads");
    t[1] = H;
    t[3] = D + 1;
    PLAN(&d, q, k, v, t, CLATTN_SHAPE_MISMATCH, "centroid dim");
    t[3] = D;
    t[0] = 2;
    PLAN(&d, q, k, v, t, CLATTN_SHAPE_MISMATCH, "centroid batch");
    memcpy(t, k, sizeof t);
    t[2] = N - 1;
    PLAN(&d, q, t, v, mu, CLATTN_SHAPE_MISMATCH, "k length");
    memcpy(t, q, sizeof t);
    t[1] = 3; /* 3 query heads on 2 key heads */
    PLAN(&d, t, k, v, mu, CLATTN_SHAPE_MISMATCH, "query heads not a multiple of key heads");
    memcpy(t, v, sizeof t);
    t[1] = 1;
    PLAN(&d, q, k, t, mu, CLATTN_SHAPE_MISMATCH, "v heads");
    memcpy(t, q, sizeof t);
    t[2] = 0;
    PLAN(&d, t, k, v, mu, CLATTN_INVALID_SHAPE, "zero length");
    size_t q257[4] = {1, 1, 1, 257}, mu257[4] = {1, 1, 1, 257}, v1[4] = {1, 1, 1, 1};
    PLAN(&d, q257, q257, v1, mu257, CLATTN_INVALID_SHAPE, "D > 256");
    memcpy(t, v, sizeof t);
    t[3] = 257;
    PLAN(&d, q, k, t, mu, CLATTN_INVALID_SHAPE, "Dv > 256");
    size_t big[4] = {(size_t)1 << 20, 1, (size_t)1 << 12, 1}, mub[4] = {1, 1, 1, 1};
    PLAN(&d, big, big, big, mub, CLATTN_INVALID_SHAPE, "sizes beyond 2^31");
#undef PLAN
    fixture_free(&f);
}

/* plan_enqueue, the one-shot enqueue: refused views; out untouched, no event made. */
static void test_enqueue(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    clattn_routing_desc d, dd;
    clattn_routing_desc_init(&d);
    clattn_plan *p = plan_for(&f, &d);
    clattn_tensor t;
    cl_event ev = NULL;
#define ENQ(q_, k_, v_, mu_, o_, want, what)                                                       \
    do {                                                                                           \
        tu_expect_status(ctx, clattn_routing_plan_enqueue(p, (q_), (k_), (v_), (mu_), (o_), 0,     \
                                                          NULL, &ev),                              \
                         (want), "plan_enqueue: " what);                                           \
        tu_expect_status(ctx, clattn_routing_enqueue(ctx, &d, (q_), (k_), (v_), (mu_), (o_), 0,    \
                                                     NULL, &ev),                                   \
                         (want), "enqueue: " what);                                                \
    } while (0)
    tu_expect_status(NULL, clattn_routing_plan_enqueue(NULL, &f.q, &f.k, &f.v, &f.mu, &f.o, 0,
                                                       NULL, &ev),
                     CLATTN_NULL_POINTER, "plan NULL");
    tu_expect_status(NULL, clattn_routing_enqueue(NULL, &d, &f.q, &f.k, &f.v, &f.mu, &f.o, 0,
                                                  NULL, &ev),
                     CLATTN_NULL_POINTER, "ctx NULL");
    ENQ(NULL, &f.k, &f.v, &f.mu, &f.o, CLATTN_NULL_POINTER, "q NULL");
    ENQ(&f.q, &f.k, &f.v, NULL, &f.o, CLATTN_NULL_POINTER, "centroids NULL");
    ENQ(&f.q, &f.k, &f.v, &f.mu, NULL, CLATTN_NULL_POINTER, "out NULL");
    tu_expect_status(ctx, clattn_routing_plan_enqueue(p, &f.q, &f.k, &f.v, &f.mu, &f.o, 2, NULL,
                                                      &ev),
                     CLATTN_NULL_POINTER, "plan_enqueue: wait NULL");
    tu_expect_status(ctx, clattn_routing_enqueue(ctx, &d, &f.q, &f.k, &f.v, &f.mu, &f.o, 2, NULL,
                                                 &ev),
                     CLATTN_NULL_POINTER, "enqueue: wait NULL");
    t = f.mu;
    t.buffer = NULL;
    ENQ(&f.q, &f.k, &f.v, &t, &f.o, CLATTN_NULL_POINTER, "centroid buffer NULL");
    t = f.k;
    t.offset = 1000;
    ENQ(&f.q, &t, &f.v, &f.mu, &f.o, CLATTN_BUFFER_TOO_SMALL, "k beyond its buffer");
    t = f.o;
    t.strides[2] = 0;
    ENQ(&f.q, &f.k, &f.v, &f.mu, &t, CLATTN_ALIASING, "out with a zero stride");
    t = clattn_tensor_make(f.bv, B, H, N, DV);
    ENQ(&f.q, &f.k, &f.v, &f.mu, &t, CLATTN_ALIASING, "out is v");
    t = clattn_tensor_make(f.bmu, B, H, N, DV);
    ENQ(&f.q, &f.k, &f.v, &f.mu, &t, CLATTN_ALIASING, "out is the centroids");
    /* A view of another shape than the plan's; for the one-shot call it is a shape error of the
     * plan it bakes. */
    t = f.o;
    t.shape[3] = DV - 1;
    tu_expect_status(ctx, clattn_routing_plan_enqueue(p, &f.q, &f.k, &f.v, &f.mu, &t, 0, NULL,
                                                      &ev),
                     CLATTN_SHAPE_MISMATCH, "plan_enqueue: out Dv");
    tu_expect_status(ctx, clattn_routing_enqueue(ctx, &d, &f.q, &f.k, &f.v, &f.mu, &t, 0, NULL,
                                                 &ev),
                     CLATTN_SHAPE_MISMATCH, "enqueue: out Dv");
    t = f.q;
    t.shape[2] = N - 1;
    tu_expect_status(ctx, clattn_routing_plan_enqueue(p, &t, &f.k, &f.v, &f.mu, &f.o, 0, NULL,
                                                      &ev),
                     CLATTN_SHAPE_MISMATCH, "plan_enqueue: q of another length");
    dd = d;
    dd.causal = 2;
    tu_expect_status(ctx, clattn_routing_enqueue(ctx, &dd, &f.q, &f.k, &f.v, &f.mu, &f.o, 0,
                                                 NULL, &ev),
                     CLATTN_INVALID_ARGUMENT, "enqueue: causal 2");
    /* A plan of another operator. */
    clattn_plan *sp = NULL;
    size_t s4[4] = {B, H, N, D};
    tu_expect_status(ctx, clattn_softmax_plan_create(ctx, NULL, s4, s4, s4, &sp),
                     CLATTN_SUCCESS, "softmax plan");
    tu_expect_status(ctx, clattn_routing_plan_enqueue(sp, &f.q, &f.k, &f.v, &f.mu, &f.o, 0, NULL,
                                                      &ev),
                     CLATTN_INVALID_ARGUMENT, "plan_enqueue on a softmax plan");
    tu_expect_status(ctx, clattn_routing_update_centroids(sp, &f.q, &f.k, &f.mu7, 0, NULL, &ev),
                     CLATTN_INVALID_ARGUMENT, "update on a softmax plan");
    tu_expect_status(ctx, clattn_routing_centroids_draw(sp, &f.q, &f.k, 1, &f.mu7),
                     CLATTN_INVALID_ARGUMENT, "init on a softmax plan");
    clattn_plan_destroy(sp);
#undef ENQ
    assert_null(ev);
    clattn_plan_destroy(p);
    fixture_free(&f);
}

/* The centroid calls: their output (the centroids) untouched on failure. */
static void test_centroid_calls(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    clattn_plan *p = plan_for(&f, NULL);
    clattn_tensor t;
    cl_event ev = NULL;
    tu_expect_status(NULL, clattn_routing_update_centroids(NULL, &f.q, &f.k, &f.mu7, 0, NULL,
                                                           &ev),
                     CLATTN_NULL_POINTER, "update: plan NULL");
    tu_expect_status(NULL, clattn_routing_centroids_draw(NULL, &f.q, &f.k, 1, &f.mu7),
                     CLATTN_NULL_POINTER, "init: plan NULL");
    tu_expect_status(ctx, clattn_routing_update_centroids(p, &f.q, NULL, &f.mu7, 0, NULL, &ev),
                     CLATTN_NULL_POINTER, "update: k NULL");
    tu_expect_status(ctx, clattn_routing_update_centroids(p, &f.q, &f.k, &f.mu7, 1, NULL, &ev),
                     CLATTN_NULL_POINTER, "update: wait NULL");
    tu_expect_status(ctx, clattn_routing_centroids_draw(p, &f.q, &f.k, 1, NULL),
                     CLATTN_NULL_POINTER, "init: centroids NULL");
    t = clattn_tensor_make(f.bmu7, 1, H, N + 1, D);
    tu_expect_status(ctx, clattn_routing_update_centroids(p, &f.q, &f.k, &t, 0, NULL, &ev),
                     CLATTN_SHAPE_MISMATCH, "update: centroids of another C");
    t = clattn_tensor_make(f.bmu7, 1, H, C, D - 1);
    tu_expect_status(ctx, clattn_routing_centroids_draw(p, &f.q, &f.k, 1, &t),
                     CLATTN_SHAPE_MISMATCH, "init: centroid dim");
    t = clattn_tensor_make(f.bq, 1, H, C, D);
    tu_expect_status(ctx, clattn_routing_update_centroids(p, &f.q, &f.k, &t, 0, NULL, &ev),
                     CLATTN_ALIASING, "update: centroids overlap q");
    tu_expect_status(ctx, clattn_routing_centroids_draw(p, &f.q, &f.k, 1, &t), CLATTN_ALIASING,
                     "init: centroids overlap q");
    t = f.mu7;
    t.strides[2] = 0;
    tu_expect_status(ctx, clattn_routing_update_centroids(p, &f.q, &f.k, &t, 0, NULL, &ev),
                     CLATTN_ALIASING, "update: centroids with a zero stride");
    t = f.k;
    t.offset = 1000;
    tu_expect_status(ctx, clattn_routing_centroids_draw(p, &f.q, &t, 1, &f.mu7),
                     CLATTN_BUFFER_TOO_SMALL, "init: k beyond its buffer");
    assert_null(ev);
    clattn_plan_destroy(p);
    fixture_free(&f);
}

/* The host call: clusters required, shapes and flags checked; out untouched. */
static void test_host(void **state)
{
    (void)state;
    float half[NBIG], out[NBIG];
    for (size_t i = 0; i < NBIG; i++) {
        half[i] = 0.5f + 0.01f * (float)i;
        out[i] = 7.0f;
    }
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_host(&w, out, sizeof out, "host out");
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, DV}, t[4];
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    tu_expect_status(NULL, clattn_routing_host(NULL, &d, qs, qs, vs, half, half, half, NULL, out),
                     CLATTN_NULL_POINTER, "host: ctx NULL");
    tu_expect_status(ctx, clattn_routing_host(ctx, &d, qs, qs, vs, half, half, half, NULL, out),
                     CLATTN_INVALID_ARGUMENT, "host: clusters 0");
    tu_expect_status(ctx, clattn_routing_host(ctx, NULL, qs, qs, vs, half, half, half, NULL, out),
                     CLATTN_INVALID_ARGUMENT, "host: desc NULL (clusters 0)");
    d.clusters = N + 1;
    tu_expect_status(ctx, clattn_routing_host(ctx, &d, qs, qs, vs, half, half, half, NULL, out),
                     CLATTN_INVALID_ARGUMENT, "host: C > N");
    d.clusters = C;
    tu_expect_status(ctx, clattn_routing_host(ctx, &d, qs, qs, vs, half, NULL, half, NULL, out),
                     CLATTN_NULL_POINTER, "host: k NULL");
    tu_expect_status(ctx, clattn_routing_host(ctx, &d, qs, NULL, vs, half, half, half, NULL, out),
                     CLATTN_NULL_POINTER, "host: k_shape NULL");
    memcpy(t, qs, sizeof t);
    t[1] = 3;
    tu_expect_status(ctx, clattn_routing_host(ctx, &d, t, qs, vs, half, half, half, NULL, out),
                     CLATTN_SHAPE_MISMATCH, "host: 3 query heads on 2 key heads");
    d.causal = 2;
    tu_expect_status(ctx, clattn_routing_host(ctx, &d, qs, qs, vs, half, half, half, NULL, out),
                     CLATTN_INVALID_ARGUMENT, "host: causal 2");
    tu_watch_check(&w, "host");
    tu_watch_free(&w);
}

/* desc NULL means the defaults: the same bits as an explicitly initialised desc. */
static void test_desc_null_is_default(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f);
    tu_watch_free(&f.w); /* this test writes the outputs */
    tu_watch_init(&f.w, ctx);
    float a[NBIG], b[NBIG];
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    tu_expect_status(ctx, clattn_routing_enqueue(ctx, NULL, &f.q, &f.k, &f.v, &f.mu, &f.o, 0,
                                                 NULL, NULL),
                     CLATTN_SUCCESS, "desc NULL");
    tu_read(ctx, f.bo, sizeof a, a);
    tu_poison_buffer(ctx, f.bo, sizeof b);
    tu_expect_status(ctx, clattn_routing_enqueue(ctx, &d, &f.q, &f.k, &f.v, &f.mu, &f.o, 0, NULL,
                                                 NULL),
                     CLATTN_SUCCESS, "desc defaults");
    tu_read(ctx, f.bo, sizeof b, b);
    assert_memory_equal(a, b, sizeof a);
    fixture_free(&f);
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
        cmocka_unit_test(test_plan_create),
        cmocka_unit_test(test_enqueue),
        cmocka_unit_test(test_centroid_calls),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_desc_null_is_default),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
