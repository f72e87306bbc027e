/* Routing attention against the fp64 host reference (tests/reference/ref_routing.c) given the
 * same centroids, on the device chosen by CLATTN_DEVICE, through the plan API: random shapes (N
 * not a multiple of the window, N = 1, windows that leave positions unrouted or overlap), causal
 * and not, [B, N, H, D] strides, grouped-query and multi-query heads; one cluster with w = N
 * against exact attention (ref_softmax); k-means++ and the EMA update against their references;
 * a baked plan's enqueues make no program lookup and create no kernel; wait lists and events;
 * out-of-order queues. Invalid calls: tests/test_routing_invalid.c.
 *
 * Inputs are random (fixed seeds); outputs are poisoned with NaN first. Tolerance TU_TOL_FP32
 * (DESIGN.md §4: |x - r| <= 1e-4 + 1e-4 |r| per element, normalised error <= 1e-5). The routing
 * choice itself is discrete: a score within fp32 rounding of a cluster's selection boundary
 * could legitimately be chosen otherwise on the device, so every case first checks (from the
 * reference) that its boundaries are at least 1e-5 apart -- a failure there means "pick another
 * seed", not a wrong kernel. */
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
#include "reference/ref_routing.h"
#include "reference/ref_softmax.h"
#include "test_util.h"

#define MIN_GAP 1e-5

static clattn_context *ctx;

typedef struct tcase {
    size_t B, Hq, Hk, N, D, Dv, C, w; /* w 0: CLATTN_ROUTING_WINDOW_AUTO */
    int causal;
    int bnhd; /* q, k, v, out stored [B, N, H, D] (strided views) */
} tcase;

static size_t window_of(const tcase *c) { return c->w ? c->w : (c->N + c->C - 1) / c->C; }

static void ok(clattn_status st, const char *what)
{
    tu_expect_status(ctx, st, CLATTN_SUCCESS, what);
}

static clattn_routing_desc desc_of(const tcase *c)
{
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.causal = c->causal;
    if (c->w)
        d.window = c->w;
    return d;
}

/* Runs one case on a plan; returns the output in [B, Hq, N, Dv] order. q/k/v/mu are dense
 * [B, H, N, *] / [Hk, C, D] host arrays. */
static float *device_run(const tcase *c, const float *q, const float *k, const float *v,
                         const float *mu)
{
    size_t nq = c->B * c->Hq * c->N * c->D, nk = c->B * c->Hk * c->N * c->D;
    size_t nv = c->B * c->Hk * c->N * c->Dv, no = c->B * c->Hq * c->N * c->Dv;
    float *hq = c->bnhd ? tu_relayout(q, c->B, c->Hq, c->N, c->D, 1) : (float *)q;
    float *hk = c->bnhd ? tu_relayout(k, c->B, c->Hk, c->N, c->D, 1) : (float *)k;
    float *hv = c->bnhd ? tu_relayout(v, c->B, c->Hk, c->N, c->Dv, 1) : (float *)v;
    float *out = tu_poisoned(no);
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, nk * 4, hk);
    cl_mem bv = tu_buffer(ctx, nv * 4, hv), bo = tu_buffer(ctx, no * 4, out);
    cl_mem bmu = tu_buffer(ctx, c->Hk * c->C * c->D * 4, mu);
    clattn_routing_desc d = desc_of(c);
    clattn_tensor tq = tu_view(bq, c->B, c->Hq, c->N, c->D, c->bnhd);
    clattn_tensor tk = tu_view(bk, c->B, c->Hk, c->N, c->D, c->bnhd);
    clattn_tensor tv = tu_view(bv, c->B, c->Hk, c->N, c->Dv, c->bnhd);
    clattn_tensor to = tu_view(bo, c->B, c->Hq, c->N, c->Dv, c->bnhd);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, c->Hk, c->C, c->D);
    clattn_plan *plan = NULL;
    ok(clattn_routing_plan_create(ctx, &d, tq.shape, tk.shape, tv.shape, tmu.shape, &plan),
       "plan");
    cl_event ev = NULL;
    ok(clattn_routing_plan_enqueue(plan, &tq, &tk, &tv, &tmu, &to, 0, NULL, &ev), "enqueue");
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    clattn_plan_destroy(plan);
    tu_read(ctx, bo, no * 4, out);
    float *got = out;
    if (c->bnhd) {
        got = tu_relayout(out, c->B, c->Hq, c->N, c->Dv, 0);
        free(out);
        free(hq);
        free(hk);
        free(hv);
    }
    cl_mem all[] = {bq, bk, bv, bmu, bo};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    return got;
}

static void run_case(const tcase *c, uint64_t seed)
{
    size_t nq = c->B * c->Hq * c->N * c->D, nk = c->B * c->Hk * c->N * c->D;
    size_t nv = c->B * c->Hk * c->N * c->Dv, no = c->B * c->Hq * c->N * c->Dv;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *mu = tu_random(c->Hk * c->C * c->D, 1.0f, &seed);
    float *ref = malloc(no * sizeof(float));
    double gap;
    ref_routing_attention_gqa(q, k, v, mu, ref, c->B, c->Hq, c->Hk, c->N, c->D, c->Dv, c->C,
                              window_of(c), 1.0 / sqrt((double)c->D), c->causal, &gap);
    char what[160];
    snprintf(what, sizeof what, "B%zu Hq%zu Hk%zu N%zu D%zu Dv%zu C%zu w%zu causal%d bnhd%d",
             c->B, c->Hq, c->Hk, c->N, c->D, c->Dv, c->C, window_of(c), c->causal, c->bnhd);
    if (!(gap >= MIN_GAP))
        fail_msg("%s: a selection boundary is only %.2e wide: choose another seed", what, gap);
    float *got = device_run(c, q, k, v, mu);
    tu_check_close(got, ref, no, TU_TOL_FP32, what);
    free(q);
    free(k);
    free(v);
    free(mu);
    free(ref);
    free(got);
}

static void test_shapes(void **state)
{
    (void)state;
    static const tcase cases[] = {
        {1, 1, 1, 1, 8, 8, 1, 0, 0, 0},      /* N = 1 */
        {1, 1, 1, 1, 8, 8, 1, 0, 1, 0},      /* N = 1, causal */
        {2, 3, 3, 7, 16, 5, 2, 0, 0, 0},     /* w = 4: one position in two clusters */
        {1, 2, 2, 50, 16, 16, 7, 0, 0, 0},   /* N not a multiple of w = 8 */
        {1, 2, 2, 50, 16, 16, 7, 0, 1, 0},
        {2, 1, 1, 130, 32, 24, 11, 5, 0, 0}, /* 55 slots for 130 positions: many unrouted */
        {2, 1, 1, 130, 32, 24, 11, 5, 1, 0},
        {1, 2, 2, 97, 8, 12, 3, 60, 1, 0},   /* overlapping clusters */
        {1, 1, 1, 257, 64, 64, 16, 0, 1, 0}, /* C = sqrt(N), the benchmark's rule */
        {1, 1, 1, 64, 2, 3, 4, 0, 0, 0},     /* D = 2 */
        {1, 1, 1, 40, 256, 256, 5, 0, 1, 0}, /* the largest head dims */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 100 + i);
}

static void test_strided(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase c = {2, 3, 3, 45, 16, 8, 5, 0, causal, 1};
        run_case(&c, 7 + (uint64_t)causal);
    }
}

/* Query heads sharing key/value heads (GQA, and MQA with one key head), against the reference
 * that repeats each key head and its centroids for its query heads. */
static void test_gqa(void **state)
{
    (void)state;
    static const tcase cases[] = {
        {2, 4, 2, 60, 16, 8, 5, 0, 0, 0},
        {2, 4, 2, 60, 16, 8, 5, 0, 1, 0},
        {1, 3, 1, 77, 8, 12, 6, 20, 1, 0}, /* MQA, overlapping clusters */
        {2, 6, 2, 33, 16, 16, 3, 0, 0, 1}, /* strided */
        {1, 2, 1, 40, 16, 16, 1, 40, 1, 0}, /* one cluster: exact GQA attention */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 500 + i);
}

/* The register-tiled attend (clattn_routing_attend_gpu, issue 12) forced on every device through
 * CLATTN_ROUTING_ATTEND_KERNEL: the default tile and a second one of its space (16 x 4 work-items
 * of 2 x 4), at D = Dv = 256 (four Q/K and four V chunks: both barrier structures' loops),
 * windows that are not tile multiples (w 50 in 64-key tiles), overlapping clusters, causal and
 * not, GQA, strided views, N = 1. The 8-wide tiles run every other case of this file on rusticl
 * (its default there). Head dims of test_shapes: one more program per tile, no other. */
static void test_tiled_attend(void **state)
{
    (void)state;
    static const char *tiles[] = {"tiled", "tiled:16,4,2,4"};
    static const tcase cases[] = {
        {2, 4, 2, 150, 256, 256, 3, 0, 1, 0}, /* GQA, causal, w 50 */
        {1, 2, 2, 61, 256, 256, 4, 20, 0, 1}, /* overlapping clusters, strided */
        {1, 1, 1, 1, 256, 256, 1, 0, 1, 0},   /* N = 1 */
    };
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
        assert_int_equal(setenv("CLATTN_ROUTING_ATTEND_KERNEL", tiles[t], 1), 0);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(&cases[i], 900 + 10 * t + i);
    }
    unsetenv("CLATTN_ROUTING_ATTEND_KERNEL");
}

/* One cluster with w = N is exact attention over every key. */
static void test_one_cluster_is_exact(void **state)
{
    (void)state;
    static const size_t ns[] = {1, 33, 200};
    for (size_t i = 0; i < 3; i++)
        for (int causal = 0; causal < 2; causal++) {
            tcase c = {2, 2, 2, ns[i], 16, 16, 1, ns[i], causal, 0};
            uint64_t seed = 300 + i;
            size_t nq = c.B * c.Hq * c.N * c.D;
            float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed);
            float *v = tu_random(nq, 1.0f, &seed), *mu = tu_random(c.Hk * c.D, 1.0f, &seed);
            float *ref = malloc(nq * 4);
            ref_softmax(q, k, v, ref, NULL, c.B, c.Hq, c.Hk, c.N, c.N, c.D,
                        1.0 / sqrt((double)c.D), causal, NULL);
            float *got = device_run(&c, q, k, v, mu);
            tu_check_close(got, ref, nq, TU_TOL_FP32,
                           causal ? "one cluster causal" : "one cluster");
            free(q);
            free(k);
            free(v);
            free(mu);
            free(ref);
            free(got);
        }
}

/* Duplicated rows tie exactly: the lower position must win on the device as in the reference;
 * large logits (|q.k| ~ 1e3) must not overflow the online softmax. */
static void test_ties_and_large(void **state)
{
    (void)state;
    tcase c = {1, 1, 1, 60, 4, 4, 6, 0, 1, 0};
    uint64_t seed = 77;
    size_t nq = c.N * c.D;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed);
    float *v = tu_random(nq, 1.0f, &seed), *mu = tu_random(c.C * c.D, 1.0f, &seed);
    for (size_t n = c.N; n-- > 0;) /* rows repeat with period 10, scaled exactly */
        for (size_t d = 0; d < c.D; d++) {
            q[n * c.D + d] = q[(n % 10) * c.D + d] * (n >= 10 ? 1.0f : 64.0f);
            k[n * c.D + d] = k[(n % 10) * c.D + d] * (n >= 10 ? 1.0f : 32.0f);
        }
    float *ref = malloc(nq * 4);
    double gap;
    /* scale 1/sqrt(4) = 0.5, as the device's default */
    ref_routing_attention(q, k, v, mu, ref, 1, 1, c.N, c.D, c.D, c.C, 10, 0.5, 1, &gap);
    assert_true(gap >= MIN_GAP);
    float *got = device_run(&c, q, k, v, mu);
    tu_check_close(got, ref, nq, TU_TOL_FP32, "ties and large logits");
    /* The same call again gives the same bits. */
    float *again = device_run(&c, q, k, v, mu);
    assert_memory_equal(got, again, nq * 4);
    free(q);
    free(k);
    free(v);
    free(mu);
    free(ref);
    free(got);
    free(again);
}

/* k-means++ through a plan equals the reference's choices (GQA included); the host call
 * without centroids uses them; desc NULL is the defaults. */
static void test_kmeanspp_and_host(void **state)
{
    (void)state;
    static const size_t heads[][2] = {{2, 2}, {4, 2}};
    for (int hh = 0; hh < 2; hh++) {
        size_t B = 2, Hq = heads[hh][0], Hk = heads[hh][1], N = 40, D = 8, Dv = 6, C = 6;
        uint64_t seed = 5 + (uint64_t)hh;
        size_t nq = B * Hq * N * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv;
        size_t no = B * Hq * N * Dv, nmu = Hk * C * D;
        float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
        float *v = tu_random(nv, 1.0f, &seed), *rmu = malloc(nmu * 4), *gmu = tu_poisoned(nmu);
        ref_routing_kmeanspp_gqa(q, k, B, Hq, Hk, N, D, C, 1234, rmu);
        for (size_t c = 0; c < Hk * C; c++) { /* centroids are data points: unit vectors */
            double nn = 0;
            for (size_t d = 0; d < D; d++)
                nn += (double)rmu[c * D + d] * rmu[c * D + d];
            assert_true(fabs(nn - 1.0) < 1e-5);
        }
        cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
        cl_mem bv = tu_buffer(ctx, nv * 4, v), bmu = tu_buffer(ctx, nmu * 4, gmu);
        clattn_tensor tq = clattn_tensor_make(bq, B, Hq, N, D);
        clattn_tensor tk = clattn_tensor_make(bk, B, Hk, N, D);
        clattn_tensor tv = clattn_tensor_make(bv, B, Hk, N, Dv);
        clattn_tensor tmu = clattn_tensor_make(bmu, 1, Hk, C, D);
        clattn_plan *plan = NULL;
        ok(clattn_routing_plan_create(ctx, NULL, tq.shape, tk.shape, tv.shape, tmu.shape, &plan),
           "plan, desc NULL");
        ok(clattn_routing_centroids_draw(plan, &tq, &tk, 1234, &tmu), "centroids init");
        tu_read(ctx, bmu, nmu * 4, gmu);
        for (size_t i = 0; i < nmu; i++)
            assert_true(fabsf(gmu[i] - rmu[i]) <= 1e-6f);
        /* Another seed gives other centroids. */
        ok(clattn_routing_centroids_draw(plan, &tq, &tk, 99, &tmu), "centroids init, seed 99");
        tu_read(ctx, bmu, nmu * 4, gmu);
        assert_true(memcmp(gmu, rmu, nmu * 4) != 0);
        clattn_plan_destroy(plan);

        /* Host call: without centroids (k-means++ with desc.seed) and with them. */
        float *out = tu_poisoned(no), *ref = malloc(no * 4);
        size_t qs[4] = {B, Hq, N, D}, ks[4] = {B, Hk, N, D}, vs[4] = {B, Hk, N, Dv};
        for (int causal = 0; causal < 2; causal++) {
            clattn_routing_desc d;
            clattn_routing_desc_init(&d);
            d.seed = 1234;
            d.clusters = C;
            d.causal = causal;
            double gap;
            ref_routing_attention_gqa(q, k, v, rmu, ref, B, Hq, Hk, N, D, Dv, C,
                                      (N + C - 1) / C, 1.0 / sqrt((double)D), causal, &gap);
            assert_true(gap >= MIN_GAP);
            ok(clattn_routing_host(ctx, &d, qs, ks, vs, q, k, v, NULL, out), "host, k-means++");
            tu_check_close(out, ref, no, TU_TOL_FP32, "host call, k-means++ centroids");
            for (size_t i = 0; i < no; i++)
                out[i] = NAN;
            ok(clattn_routing_host(ctx, &d, qs, ks, vs, q, k, v, rmu, out), "host, centroids");
            tu_check_close(out, ref, no, TU_TOL_FP32, "host call, given centroids");
        }
        cl_mem all[] = {bq, bk, bv, bmu};
        for (int i = 0; i < 4; i++)
            clReleaseMemObject(all[i]);
        free(q);
        free(k);
        free(v);
        free(rmu);
        free(gmu);
        free(out);
        free(ref);
    }
}

/* The EMA update against the reference, with strided [B, N, H, D] inputs, grouped heads, and a
 * cluster that receives nothing (a centroid pointing away from all data stays as it was). */
static void test_update(void **state)
{
    (void)state;
    static const size_t heads[][2] = {{2, 2}, {4, 2}};
    for (int hh = 0; hh < 2; hh++) {
        size_t B = 2, Hq = heads[hh][0], Hk = heads[hh][1], N = 70, D = 8, C = 5;
        uint64_t seed = 141 + (uint64_t)hh;
        size_t nq = B * Hq * N * D, nk = B * Hk * N * D, nmu = Hk * C * D;
        float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
        float *mu = tu_random(nmu, 1.0f, &seed), *ref = malloc(nmu * 4), *got = malloc(nmu * 4);
        /* Data in the positive orthant; centroid (h 1, c 4) in the negative one: never nearest. */
        for (size_t i = 0; i < nq; i++)
            q[i] = fabsf(q[i]);
        for (size_t i = 0; i < nk; i++)
            k[i] = fabsf(k[i]);
        for (size_t dd = 0; dd < D; dd++)
            mu[(1 * C + 4) * D + dd] = -fabsf(mu[(1 * C + 4) * D + dd]) - 0.1f;
        float *hq = tu_relayout(q, B, Hq, N, D, 1), *hk = tu_relayout(k, B, Hk, N, D, 1);
        cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, nk * 4, hk);
        cl_mem bmu = tu_buffer(ctx, nmu * 4, mu);
        clattn_tensor tq = tu_view(bq, B, Hq, N, D, 1), tk = tu_view(bk, B, Hk, N, D, 1);
        clattn_tensor tmu = clattn_tensor_make(bmu, 1, Hk, C, D);
        size_t vs[4] = {B, Hk, N, 4};
        memcpy(ref, mu, nmu * 4);
        const float decays[] = {0.9f, 0.0f, 1.0f};
        for (int i = 0; i < 3; i++) {
            clattn_routing_desc d;
            clattn_routing_desc_init(&d);
            d.decay = decays[i];
            clattn_plan *plan = NULL;
            ok(clattn_routing_plan_create(ctx, &d, tq.shape, tk.shape, vs, tmu.shape, &plan),
               "plan");
            double gap;
            ref_routing_update_gqa(q, k, ref, B, Hq, Hk, N, D, C, decays[i], &gap);
            assert_true(gap >= MIN_GAP);
            cl_event ev = NULL;
            ok(clattn_routing_update_centroids(plan, &tq, &tk, &tmu, 0, NULL, &ev), "update");
            assert_non_null(ev);
            clReleaseEvent(ev);
            clattn_plan_destroy(plan);
            tu_read(ctx, bmu, nmu * 4, got);
            tu_check_close(got, ref, nmu, TU_TOL_FP32, "EMA update");
            /* Take the reference's values as the next step's start so errors do not compound. */
            assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bmu, CL_TRUE,
                                                  0, nmu * 4, ref, 0, NULL, NULL),
                             CL_SUCCESS);
        }
        for (size_t dd = 0; dd < D; dd++) /* the empty cluster kept its value */
            assert_true(got[(1 * C + 4) * D + dd] == mu[(1 * C + 4) * D + dd]);
        cl_mem all[] = {bq, bk, bmu};
        for (int i = 0; i < 3; i++)
            clReleaseMemObject(all[i]);
        free(q);
        free(k);
        free(mu);
        free(ref);
        free(got);
        free(hq);
        free(hk);
    }
}

/* A baked plan: its info names every kernel it made (routing.cl and the sort blocks, each with
 * its operator's -D options), and its enqueues -- attention, centroid update, k-means++ --
 * make no program lookup and create no kernel. The one-shot enqueue gives the same bits. */
static void test_plan_bakes_once(void **state)
{
    (void)state;
    size_t B = 1, Hq = 4, Hk = 2, N = 50, D = 16, Dv = 8, C = 4;
    uint64_t seed = 9;
    size_t nq = B * Hq * N * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv, no = B * Hq * N * Dv;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *o1 = tu_poisoned(no), *o2 = tu_poisoned(no);
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nk * 4, k);
    cl_mem bv = tu_buffer(ctx, nv * 4, v), bo = tu_buffer(ctx, no * 4, o1);
    cl_mem bmu = tu_buffer(ctx, Hk * C * D * 4, NULL);
    clattn_tensor tq = clattn_tensor_make(bq, B, Hq, N, D);
    clattn_tensor tk = clattn_tensor_make(bk, B, Hk, N, D);
    clattn_tensor tv = clattn_tensor_make(bv, B, Hk, N, Dv);
    clattn_tensor to = clattn_tensor_make(bo, B, Hq, N, Dv);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, Hk, C, D);
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.causal = 1;
    clattn_plan *plan = NULL;
    ok(clattn_routing_plan_create(ctx, &d, tq.shape, tk.shape, tv.shape, tmu.shape, &plan),
       "plan");

    clattn_plan_info info;
    ok(clattn_plan_get_info(plan, &info), "info");
    assert_int_equal(info.op, CLATTN_OP_ROUTING);
    /* The per-slot kernel, or the register-tiled one on GPU-like devices (rusticl). */
    assert_true(strcmp(info.variant, "clattn_routing_attend") == 0 ||
                strcmp(info.variant, "clattn_routing_attend_gpu") == 0);
    assert_true(info.scratch_bytes > 0);
    assert_true(strstr(info.launch, "clusters=4") != NULL);
    int routing = 0, sort = 0;
    for (unsigned i = 0; i < info.num_kernels; i++) {
        const clattn_plan_kernel *kk = &info.kernels[i];
        if (strcmp(kk->program, "routing.cl") == 0) {
            routing++;
            assert_true(strncmp(kk->name, "clattn_routing_", 15) == 0);
            assert_true(strstr(kk->build_options, "-DROUTING_MAX_D=") != NULL);
        } else {
            assert_string_equal(kk->program, "sort.cl");
            sort++;
            assert_true(strstr(kk->build_options, "-DSORT_BITS=") != NULL);
        }
        assert_string_equal(kk->chosen_by, "scheduler");
    }
    /* pack_centroids, scores, pack_keys, attend, store, assign, ema */
    assert_int_equal(routing, 7);
    assert_int_equal(sort, 9);    /* top-k: 4; scatter-mean: 2 + the radix sort's 3 */

    clattn_context_stats before, after;
    ok(clattn_context_get_stats(ctx, &before), "stats");
    ok(clattn_routing_centroids_draw(plan, &tq, &tk, 3, &tmu), "init");
    for (int i = 0; i < 3; i++) {
        ok(clattn_routing_plan_enqueue(plan, &tq, &tk, &tv, &tmu, &to, 0, NULL, NULL), "enqueue");
        ok(clattn_routing_update_centroids(plan, &tq, &tk, &tmu, 0, NULL, NULL), "update");
    }
    ok(clattn_routing_plan_enqueue(plan, &tq, &tk, &tv, &tmu, &to, 0, NULL, NULL), "enqueue");
    ok(clattn_context_finish(ctx), "finish");
    ok(clattn_context_get_stats(ctx, &after), "stats");
    assert_int_equal(after.kernels_created, before.kernels_created);
    assert_int_equal(after.program_lookups, before.program_lookups);
    tu_read(ctx, bo, no * 4, o1);

    /* The same through the one-shot call (it bakes its own plan). */
    tu_poison_buffer(ctx, bo, no * 4);
    ok(clattn_routing_enqueue(ctx, &d, &tq, &tk, &tv, &tmu, &to, 0, NULL, NULL), "one-shot");
    tu_read(ctx, bo, no * 4, o2);
    assert_memory_equal(o1, o2, no * 4);
    clattn_context_stats oneshot;
    ok(clattn_context_get_stats(ctx, &oneshot), "stats");
    assert_true(oneshot.kernels_created > after.kernels_created); /* the counters do count */

    clattn_plan_destroy(plan);
    cl_mem all[] = {bq, bk, bv, bo, bmu};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(q);
    free(k);
    free(v);
    free(o1);
    free(o2);
}

/* The plan's enqueue honours its wait list and returns an event; so does the centroid update.
 * The inputs are written on a second queue: only the wait list orders that write before the
 * routing commands. (A user event as the gate deadlocks PoCL 3.1's basic device when it is set
 * complete.) */
static void test_wait_list(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 300, D = 8, C = 3, n = B * H * N * D;
    uint64_t seed = 12;
    float *x = tu_random(n, 1.0f, &seed), *mu = tu_random(H * C * D, 1.0f, &seed);
    float *out = tu_poisoned(n), *mu2 = tu_poisoned(H * C * D), *ref = malloc(n * 4);
    cl_mem bx = tu_buffer(ctx, n * 4, NULL), bo = tu_buffer(ctx, n * 4, out);
    cl_mem bmu = tu_buffer(ctx, H * C * D * 4, mu);
    clattn_tensor t = clattn_tensor_make(bx, B, H, N, D), to = clattn_tensor_make(bo, B, H, N, D);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, H, C, D);
    double gap;
    ref_routing_attention(x, x, x, mu, ref, B, H, N, D, D, C, (N + C - 1) / C,
                          1.0 / sqrt((double)D), 0, &gap);
    assert_true(gap >= MIN_GAP);
    clattn_plan *plan = NULL;
    ok(clattn_routing_plan_create(ctx, NULL, t.shape, t.shape, t.shape, tmu.shape, &plan),
       "plan");
    cl_int err;
    cl_command_queue other = clCreateCommandQueue(clattn_context_get_cl_context(ctx),
                                                  clattn_context_get_cl_device(ctx), 0, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_event gate = NULL, ev = NULL;
    assert_int_equal(clEnqueueWriteBuffer(other, bx, CL_FALSE, 0, n * 4, x, 0, NULL, &gate),
                     CL_SUCCESS);
    assert_int_equal(clFlush(other), CL_SUCCESS);
    ok(clattn_routing_plan_enqueue(plan, &t, &t, &t, &tmu, &to, 1, &gate, &ev), "gated");
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    ev = NULL;
    tu_read(ctx, bo, n * 4, out);
    tu_check_close(out, ref, n, TU_TOL_FP32, "after a write on another queue");
    ok(clattn_routing_update_centroids(plan, &t, &t, &tmu, 1, &gate, &ev), "update after gate");
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, bmu, H * C * D * 4, mu2);
    for (size_t i = 0; i < H * C * D; i++)
        assert_false(isnan(mu2[i]));
    clReleaseEvent(gate);
    clReleaseCommandQueue(other);
    clattn_plan_destroy(plan);
    clReleaseMemObject(bx);
    clReleaseMemObject(bo);
    clReleaseMemObject(bmu);
    free(x);
    free(mu);
    free(out);
    free(mu2);
    free(ref);
}

/* On an out-of-order queue the library chains its commands by events: same answer. */
static void test_out_of_order_queue(void **state)
{
    (void)state;
    cl_command_queue oq = tu_out_of_order_queue(ctx);
    clattn_context *octx = NULL;
    ok(clattn_context_create_from_cl(clattn_context_get_cl_context(ctx),
                                     clattn_context_get_cl_device(ctx), oq, &octx),
       "context on an out-of-order queue");
    size_t B = 1, Hq = 2, Hk = 1, N = 90, D = 16, Dv = 8, C = 6;
    uint64_t seed = 61;
    size_t nq = B * Hq * N * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv, no = B * Hq * N * Dv;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *mu = malloc(Hk * C * D * 4);
    float *out = tu_poisoned(no), *ref = malloc(no * 4);
    ref_routing_kmeanspp_gqa(q, k, B, Hq, Hk, N, D, C, 2, mu);
    double gap;
    ref_routing_attention_gqa(q, k, v, mu, ref, B, Hq, Hk, N, D, Dv, C, (N + C - 1) / C,
                              1.0 / sqrt((double)D), 1, &gap);
    assert_true(gap >= MIN_GAP);
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.clusters = C;
    d.causal = 1;
    d.seed = 2;
    size_t qs[4] = {B, Hq, N, D}, ks[4] = {B, Hk, N, D}, vs[4] = {B, Hk, N, Dv};
    tu_expect_status(octx, clattn_routing_host(octx, &d, qs, ks, vs, q, k, v, NULL, out),
                     CLATTN_SUCCESS, "out-of-order host call");
    tu_check_close(out, ref, no, TU_TOL_FP32, "out-of-order queue");
    clattn_context_destroy(octx);
    clReleaseCommandQueue(oq);
    free(q);
    free(k);
    free(v);
    free(mu);
    free(out);
    free(ref);
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
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_one_cluster_is_exact),
        cmocka_unit_test(test_tiled_attend),
        cmocka_unit_test(test_ties_and_large),
        cmocka_unit_test(test_kmeanspp_and_host),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_plan_bakes_once),
        cmocka_unit_test(test_wait_list),
        cmocka_unit_test(test_out_of_order_queue),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
