/* Routing attention against the fp64 host reference (tests/reference/ref_routing.c) given the
 * same centroids, on the device chosen by CLATTN_DEVICE: random shapes (N not a multiple of the
 * window, N = 1, windows that leave positions unrouted or overlap), causal and not, [B, N, H, D]
 * strides; one cluster with w = N against exact attention (ref_softmax); k-means++ and the EMA
 * update against their references; invalid arguments leave the output untouched.
 *
 * Inputs are random (fixed seeds); outputs are poisoned with NaN first. Tolerance, DESIGN.md §4:
 * max|out - ref| <= 1e-4 * max(1, max|ref|). The routing choice itself is discrete: a score
 * within fp32 rounding of a cluster's selection boundary could legitimately be chosen otherwise
 * on the device, so every case first checks (from the reference) that its boundaries are at
 * least 1e-5 apart — a failure there means "pick another seed", not a wrong kernel. */
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
#include "reference/ref_routing.h"

#define TOL 1e-4
#define MIN_GAP 1e-5

static clattn_context *ctx;

typedef struct tcase {
    size_t B, H, N, D, Dv, C, w; /* w 0: CLATTN_ROUTING_WINDOW_AUTO */
    int causal;
    int bnhd; /* q, k, v, out stored [B, N, H, D] (strided views) */
} tcase;

static cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

static float *rand_floats(size_t n, float amp, uint64_t *seed)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    ref_fill_uniform(x, n, amp, seed);
    return x;
}

static float *poisoned(size_t n)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

static void check_close(const float *got, const float *ref, size_t n, const char *what)
{
    double maxref = 0, err = ref_max_abs_diff(got, ref, n, &maxref);
    if (!(err <= TOL * fmax(1.0, maxref)))
        fail_msg("%s: error %.3e (max|ref| %.3e)", what, err, maxref);
}

static void expect(clattn_status got, clattn_status want, const char *what)
{
    if (got != want)
        fail_msg("%s: got %s, want %s (%s)", what, clattn_status_string(got),
                 clattn_status_string(want), clattn_context_last_error(ctx));
}

/* Runs one case through clattn_routing_enqueue; returns the output in [B, H, N, Dv] order.
 * q/k/v/mu are dense [B, H, N, *] / [H, C, D] host arrays. */
static float *device_run(const tcase *c, const float *q, const float *k, const float *v,
                         const float *mu)
{
    size_t nq = c->B * c->H * c->N * c->D, nv = c->B * c->H * c->N * c->Dv;
    float *hq = c->bnhd ? tu_relayout(q, c->B, c->H, c->N, c->D, 1) : (float *)q;
    float *hk = c->bnhd ? tu_relayout(k, c->B, c->H, c->N, c->D, 1) : (float *)k;
    float *hv = c->bnhd ? tu_relayout(v, c->B, c->H, c->N, c->Dv, 1) : (float *)v;
    float *out = poisoned(nv);
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, nq * 4, hk), bv = tu_buffer(ctx, nv * 4, hv);
    cl_mem bmu = tu_buffer(ctx, c->H * c->C * c->D * 4, mu), bo = tu_buffer(ctx, nv * 4, out);
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.causal = c->causal;
    if (c->w)
        d.window = c->w;
    clattn_tensor tq = tu_view(bq, c->B, c->H, c->N, c->D, c->bnhd);
    clattn_tensor tk = tu_view(bk, c->B, c->H, c->N, c->D, c->bnhd);
    clattn_tensor tv = tu_view(bv, c->B, c->H, c->N, c->Dv, c->bnhd);
    clattn_tensor to = tu_view(bo, c->B, c->H, c->N, c->Dv, c->bnhd);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, c->H, c->C, c->D);
    cl_event ev = NULL;
    if (clattn_routing_enqueue(ctx, &d, &tq, &tk, &tv, &tmu, &to, 0, NULL, &ev) !=
        CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, bo, nv * 4, out);
    float *got = out;
    if (c->bnhd) {
        got = tu_relayout(out, c->B, c->H, c->N, c->Dv, 0);
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
    size_t nq = c->B * c->H * c->N * c->D, nv = c->B * c->H * c->N * c->Dv;
    float *q = rand_floats(nq, 1.0f, &seed), *k = rand_floats(nq, 1.0f, &seed);
    float *v = rand_floats(nv, 1.0f, &seed), *mu = rand_floats(c->H * c->C * c->D, 1.0f, &seed);
    float *ref = malloc(nv * sizeof(float));
    size_t w = c->w ? c->w : (c->N + c->C - 1) / c->C;
    double gap;
    ref_routing_attention(q, k, v, mu, ref, c->B, c->H, c->N, c->D, c->Dv, c->C, w,
                          1.0 / sqrt((double)c->D), c->causal, &gap);
    char what[160];
    snprintf(what, sizeof what, "B%zu H%zu N%zu D%zu Dv%zu C%zu w%zu causal%d bnhd%d", c->B,
             c->H, c->N, c->D, c->Dv, c->C, w, c->causal, c->bnhd);
    if (!(gap >= MIN_GAP))
        fail_msg("%s: a selection boundary is only %.2e wide: choose another seed", what, gap);
    float *got = device_run(c, q, k, v, mu);
    check_close(got, ref, nv, what);
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
        {1, 1, 1, 8, 8, 1, 0, 0, 0},     /* N = 1 */
        {1, 1, 1, 8, 8, 1, 0, 1, 0},     /* N = 1, causal */
        {2, 3, 7, 16, 5, 2, 0, 0, 0},    /* w = 4: one position in two clusters */
        {1, 2, 50, 16, 16, 7, 0, 0, 0},  /* N not a multiple of w = 8 */
        {1, 2, 50, 16, 16, 7, 0, 1, 0},
        {2, 1, 130, 32, 24, 11, 5, 0, 0}, /* 55 slots for 130 positions: many unrouted */
        {2, 1, 130, 32, 24, 11, 5, 1, 0},
        {1, 2, 97, 8, 12, 3, 60, 1, 0},  /* overlapping clusters */
        {1, 1, 257, 64, 64, 16, 0, 1, 0}, /* C = sqrt(N), the benchmark's rule */
        {1, 1, 64, 2, 3, 4, 0, 0, 0},    /* D = 2 */
        {1, 1, 40, 256, 256, 5, 0, 1, 0}, /* the largest head dims */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 100 + i);
}

static void test_strided(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase c = {2, 3, 45, 16, 8, 5, 0, causal, 1};
        run_case(&c, 7 + (uint64_t)causal);
    }
}

/* One cluster with w = N is exact attention over every key. */
static void test_one_cluster_is_exact(void **state)
{
    (void)state;
    static const size_t ns[] = {1, 33, 200};
    for (size_t i = 0; i < 3; i++)
        for (int causal = 0; causal < 2; causal++) {
            tcase c = {2, 2, ns[i], 16, 16, 1, ns[i], causal, 0};
            uint64_t seed = 300 + i;
            size_t nq = c.B * c.H * c.N * c.D;
            float *q = rand_floats(nq, 1.0f, &seed), *k = rand_floats(nq, 1.0f, &seed);
            float *v = rand_floats(nq, 1.0f, &seed), *mu = rand_floats(c.H * c.D, 1.0f, &seed);
            float *ref = malloc(nq * 4);
            ref_softmax(q, k, v, ref, NULL, c.B, c.H, c.H, c.N, c.N, c.D,
                          1.0 / sqrt((double)c.D), causal, NULL);
            float *got = device_run(&c, q, k, v, mu);
            check_close(got, ref, nq, causal ? "one cluster causal" : "one cluster");
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
    tcase c = {1, 1, 60, 4, 4, 6, 0, 1, 0};
    uint64_t seed = 77;
    size_t nq = c.N * c.D;
    float *q = rand_floats(nq, 1.0f, &seed), *k = rand_floats(nq, 1.0f, &seed);
    float *v = rand_floats(nq, 1.0f, &seed), *mu = rand_floats(c.C * c.D, 1.0f, &seed);
    for (size_t n = c.N; n-- > 0;) /* rows repeat with period 10, scaled exactly */
        for (size_t d = 0; d < c.D; d++) {
            q[n * c.D + d] = q[(n % 10) * c.D + d] * (n >= 10 ? 1.0f : 64.0f);
            k[n * c.D + d] = k[(n % 10) * c.D + d] * (n >= 10 ? 1.0f : 32.0f);
        }
    float *ref = malloc(nq * 4);
    double gap;
    ref_routing_attention(q, k, v, mu, ref, 1, 1, c.N, c.D, c.D, c.C, 10, 0.5, 1, &gap);
    assert_true(gap >= MIN_GAP);
    float *got = device_run(&c, q, k, v, mu);
    check_close(got, ref, nq, "ties and large logits");
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

/* k-means++ on the device path equals the reference's choices; the host call without centroids
 * uses them. */
static void test_kmeanspp_and_host(void **state)
{
    (void)state;
    size_t B = 2, H = 2, N = 40, D = 8, Dv = 6, C = 6;
    uint64_t seed = 5;
    size_t nq = B * H * N * D, nv = B * H * N * Dv, nmu = H * C * D;
    float *q = rand_floats(nq, 1.0f, &seed), *k = rand_floats(nq, 1.0f, &seed);
    float *v = rand_floats(nv, 1.0f, &seed), *rmu = malloc(nmu * 4), *gmu = poisoned(nmu);
    ref_routing_kmeanspp(q, k, B, H, N, D, C, 1234, rmu);
    /* Centroids are data points: unit vectors. */
    for (size_t c = 0; c < H * C; c++) {
        double nn = 0;
        for (size_t d = 0; d < D; d++)
            nn += (double)rmu[c * D + d] * rmu[c * D + d];
        assert_true(fabs(nn - 1.0) < 1e-5);
    }
    cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nq * 4, k), bmu = tu_buffer(ctx, nmu * 4, gmu);
    clattn_tensor tq = clattn_tensor_make(bq, B, H, N, D), tk = clattn_tensor_make(bk, B, H, N, D);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, H, C, D);
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.seed = 1234;
    if (clattn_routing_centroids_init(ctx, &d, &tq, &tk, &tmu) != CLATTN_SUCCESS)
        fail_msg("centroids init: %s", clattn_context_last_error(ctx));
    tu_read(ctx, bmu, nmu * 4, gmu);
    for (size_t i = 0; i < nmu; i++)
        assert_true(fabsf(gmu[i] - rmu[i]) <= 1e-6f);
    /* Another seed gives other centroids. */
    d.seed = 99;
    assert_int_equal(clattn_routing_centroids_init(ctx, &d, &tq, &tk, &tmu), CLATTN_SUCCESS);
    tu_read(ctx, bmu, nmu * 4, gmu);
    assert_true(memcmp(gmu, rmu, nmu * 4) != 0);

    /* Host call: without centroids (k-means++ with desc.seed) and with them. */
    float *out = poisoned(nv), *ref = malloc(nv * 4);
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    for (int causal = 0; causal < 2; causal++) {
        d.seed = 1234;
        d.clusters = C;
        d.causal = causal;
        double gap;
        ref_routing_attention(q, k, v, rmu, ref, B, H, N, D, Dv, C, (N + C - 1) / C,
                              1.0 / sqrt((double)D), causal, &gap);
        assert_true(gap >= MIN_GAP);
        if (clattn_routing_host(ctx, &d, qs, vs, q, k, v, NULL, out) != CLATTN_SUCCESS)
            fail_msg("host: %s", clattn_context_last_error(ctx));
        check_close(out, ref, nv, "host call, k-means++ centroids");
        for (size_t i = 0; i < nv; i++)
            out[i] = NAN;
        assert_int_equal(clattn_routing_host(ctx, &d, qs, vs, q, k, v, rmu, out), CLATTN_SUCCESS);
        check_close(out, ref, nv, "host call, given centroids");
    }
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bmu);
    free(q);
    free(k);
    free(v);
    free(rmu);
    free(gmu);
    free(out);
    free(ref);
}

/* The EMA update against the reference, with a strided [B, N, H, D] input and a cluster that
 * receives nothing (a centroid pointing away from all data stays as it was). */
static void test_update(void **state)
{
    (void)state;
    size_t B = 2, H = 2, N = 70, D = 8, C = 5;
    uint64_t seed = 41;
    size_t nq = B * H * N * D, nmu = H * C * D;
    float *q = rand_floats(nq, 1.0f, &seed), *k = rand_floats(nq, 1.0f, &seed);
    float *mu = rand_floats(nmu, 1.0f, &seed), *ref = malloc(nmu * 4), *got = malloc(nmu * 4);
    /* Data in the positive orthant; centroid (h 1, c 4) in the negative one: never nearest. */
    for (size_t i = 0; i < nq; i++) {
        q[i] = fabsf(q[i]);
        k[i] = fabsf(k[i]);
    }
    for (size_t dd = 0; dd < D; dd++)
        mu[(1 * C + 4) * D + dd] = -fabsf(mu[(1 * C + 4) * D + dd]) - 0.1f;
    float *hq = tu_relayout(q, B, H, N, D, 1), *hk = tu_relayout(k, B, H, N, D, 1);
    cl_mem bq = tu_buffer(ctx, nq * 4, hq), bk = tu_buffer(ctx, nq * 4, hk), bmu = tu_buffer(ctx, nmu * 4, mu);
    clattn_tensor tq = tu_view(bq, B, H, N, D, 1), tk = tu_view(bk, B, H, N, D, 1);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, H, C, D);
    memcpy(ref, mu, nmu * 4);
    const float decays[] = {0.9f, 0.0f, 1.0f};
    for (int i = 0; i < 3; i++) {
        clattn_routing_desc d;
        clattn_routing_desc_init(&d);
        d.decay = decays[i];
        double gap;
        ref_routing_update(q, k, ref, B, H, N, D, C, decays[i], &gap);
        assert_true(gap >= MIN_GAP);
        if (clattn_routing_update_centroids(ctx, &d, &tq, &tk, &tmu, 0, NULL, NULL) !=
            CLATTN_SUCCESS)
            fail_msg("update: %s", clattn_context_last_error(ctx));
        tu_read(ctx, bmu, nmu * 4, got);
        check_close(got, ref, nmu, "EMA update");
        /* Take the reference's values as the next step's start so errors do not compound. */
        assert_int_equal(
            clEnqueueWriteBuffer(queue(), bmu, CL_TRUE, 0, nmu * 4, ref, 0, NULL, NULL),
            CL_SUCCESS);
    }
    for (size_t dd = 0; dd < D; dd++) /* the empty cluster kept its value */
        assert_true(got[(1 * C + 4) * D + dd] == mu[(1 * C + 4) * D + dd]);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bmu);
    free(q);
    free(k);
    free(mu);
    free(ref);
    free(got);
    free(hq);
    free(hk);
}

/* On an out-of-order queue the library chains its commands by events: same answer. */
static void test_out_of_order_queue(void **state)
{
    (void)state;
    cl_int err;
    cl_command_queue oq = clCreateCommandQueue(
        clattn_context_get_cl_context(ctx), clattn_context_get_cl_device(ctx),
        CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "note: out-of-order queues unsupported here (%d): skipped\n", (int)err);
        return;
    }
    clattn_context *octx = NULL;
    assert_int_equal(clattn_context_create_from_cl(clattn_context_get_cl_context(ctx),
                                                   clattn_context_get_cl_device(ctx), oq, &octx),
                     CLATTN_SUCCESS);
    size_t B = 1, H = 2, N = 90, D = 16, Dv = 8, C = 6;
    uint64_t seed = 61;
    size_t nq = B * H * N * D, nv = B * H * N * Dv;
    float *q = rand_floats(nq, 1.0f, &seed), *k = rand_floats(nq, 1.0f, &seed);
    float *v = rand_floats(nv, 1.0f, &seed), *mu = malloc(H * C * D * 4);
    float *out = poisoned(nv), *ref = malloc(nv * 4);
    ref_routing_kmeanspp(q, k, B, H, N, D, C, 2, mu);
    double gap;
    ref_routing_attention(q, k, v, mu, ref, B, H, N, D, Dv, C, (N + C - 1) / C,
                          1.0 / sqrt((double)D), 1, &gap);
    assert_true(gap >= MIN_GAP);
    clattn_routing_desc d;
    clattn_routing_desc_init(&d);
    d.clusters = C;
    d.causal = 1;
    d.seed = 2;
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    if (clattn_routing_host(octx, &d, qs, vs, q, k, v, NULL, out) != CLATTN_SUCCESS)
        fail_msg("out-of-order host call: %s", clattn_context_last_error(octx));
    check_close(out, ref, nv, "out-of-order queue");
    clattn_context_destroy(octx);
    clReleaseCommandQueue(oq);
    free(q);
    free(k);
    free(v);
    free(mu);
    free(out);
    free(ref);
}

/* ---- invalid arguments: the status, and the output untouched ---- */

static void check_untouched(cl_mem b, size_t n)
{
    float *x = malloc(n * 4);
    tu_read(ctx, b, n * 4, x);
    for (size_t i = 0; i < n; i++)
        assert_true(x[i] == 7.0f);
    free(x);
}

static void test_invalid(void **state)
{
    (void)state;
    enum { B = 1, H = 2, N = 8, D = 4, DV = 6, C = 3 };
    float half[B * H * N * DV], sev[B * H * N * DV];
    for (size_t i = 0; i < sizeof half / sizeof half[0]; i++) {
        half[i] = 0.5f + 0.01f * (float)i;
        sev[i] = 7.0f;
    }
    cl_mem bq = tu_buffer(ctx, sizeof half, half), bk = tu_buffer(ctx, sizeof half, half);
    cl_mem bv = tu_buffer(ctx, sizeof half, half), bmu = tu_buffer(ctx, sizeof half, half);
    cl_mem bo = tu_buffer(ctx, sizeof sev, sev), bmu7 = tu_buffer(ctx, sizeof sev, sev);
    clattn_tensor q = clattn_tensor_make(bq, B, H, N, D), k = clattn_tensor_make(bk, B, H, N, D);
    clattn_tensor v = clattn_tensor_make(bv, B, H, N, DV), o = clattn_tensor_make(bo, B, H, N, DV);
    clattn_tensor mu = clattn_tensor_make(bmu, 1, H, C, D), t, t2;
    clattn_routing_desc d, dd;
    clattn_routing_desc_init(&d);
    cl_event ev = NULL;
#define RUN(desc, q_, k_, v_, mu_, o_)                                                             \
    clattn_routing_enqueue(ctx, (desc), (q_), (k_), (v_), (mu_), (o_), 0, NULL, NULL)
    expect(clattn_routing_enqueue(NULL, &d, &q, &k, &v, &mu, &o, 0, NULL, NULL),
           CLATTN_NULL_POINTER, "ctx NULL");
    expect(RUN(&d, NULL, &k, &v, &mu, &o), CLATTN_NULL_POINTER, "q NULL");
    expect(RUN(&d, &q, &k, &v, NULL, &o), CLATTN_NULL_POINTER, "centroids NULL");
    expect(RUN(&d, &q, &k, &v, &mu, NULL), CLATTN_NULL_POINTER, "out NULL");
    expect(clattn_routing_enqueue(ctx, &d, &q, &k, &v, &mu, &o, 2, NULL, &ev),
           CLATTN_NULL_POINTER, "wait NULL");
    t = mu;
    t.buffer = NULL;
    expect(RUN(&d, &q, &k, &v, &t, &o), CLATTN_NULL_POINTER, "centroid buffer NULL");
    dd = d;
    dd.window = 0;
    expect(RUN(&dd, &q, &k, &v, &mu, &o), CLATTN_INVALID_ARGUMENT, "window 0");
    dd = d;
    dd.window = N + 1;
    expect(RUN(&dd, &q, &k, &v, &mu, &o), CLATTN_INVALID_ARGUMENT, "window > N");
    dd = d;
    dd.struct_size = 3;
    expect(RUN(&dd, &q, &k, &v, &mu, &o), CLATTN_INVALID_ARGUMENT, "struct_size");
    dd = d;
    dd.scale = NAN;
    expect(RUN(&dd, &q, &k, &v, &mu, &o), CLATTN_INVALID_ARGUMENT, "scale NaN");
    dd = d;
    dd.decay = 1.5f;
    expect(RUN(&dd, &q, &k, &v, &mu, &o), CLATTN_INVALID_ARGUMENT, "decay 1.5");
    dd = d;
    dd.clusters = C + 1;
    expect(RUN(&dd, &q, &k, &v, &mu, &o), CLATTN_INVALID_ARGUMENT, "clusters != C");
    t = clattn_tensor_make(bmu, 1, H, N + 1, D); /* C = 9 > N = 8 (the buffer holds 96 floats) */
    expect(RUN(&d, &q, &k, &v, &t, &o), CLATTN_INVALID_ARGUMENT, "C > N");
    t = clattn_tensor_make(bmu, 1, H + 1, C, D);
    expect(RUN(&d, &q, &k, &v, &t, &o), CLATTN_SHAPE_MISMATCH, "centroid heads");
    t = clattn_tensor_make(bmu, 1, H, C, D + 1);
    expect(RUN(&d, &q, &k, &v, &t, &o), CLATTN_SHAPE_MISMATCH, "centroid dim");
    t = clattn_tensor_make(bmu, 2, H, C, D);
    expect(RUN(&d, &q, &k, &v, &t, &o), CLATTN_SHAPE_MISMATCH, "centroid batch");
    t = k;
    t.shape[2] = N - 1;
    expect(RUN(&d, &q, &t, &v, &mu, &o), CLATTN_SHAPE_MISMATCH, "k length");
    t = v;
    t.shape[1] = 1;
    expect(RUN(&d, &q, &k, &t, &mu, &o), CLATTN_SHAPE_MISMATCH, "v heads");
    t = o;
    t.shape[3] = DV - 1;
    expect(RUN(&d, &q, &k, &v, &mu, &t), CLATTN_SHAPE_MISMATCH, "out Dv");
    t = q;
    t.shape[2] = 0;
    expect(RUN(&d, &t, &k, &v, &mu, &o), CLATTN_INVALID_SHAPE, "zero length");
    t = clattn_tensor_make(bq, 1, 1, 1, 257);
    t2 = clattn_tensor_make(bk, 1, 1, 1, 257);
    expect(RUN(&d, &t, &t2, &v, &mu, &o), CLATTN_INVALID_SHAPE, "D > 256");
    t = k;
    t.offset = 1000;
    expect(RUN(&d, &q, &t, &v, &mu, &o), CLATTN_BUFFER_TOO_SMALL, "k beyond buffer");
    t = o;
    t.strides[2] = 0;
    expect(RUN(&d, &q, &k, &v, &mu, &t), CLATTN_ALIASING, "out zero stride");
    t = clattn_tensor_make(bv, B, H, N, DV);
    expect(RUN(&d, &q, &k, &v, &mu, &t), CLATTN_ALIASING, "out is v");
    t = clattn_tensor_make(bmu, B, H, N, DV);
    expect(RUN(&d, &q, &k, &v, &mu, &t), CLATTN_ALIASING, "out is centroids");
    assert_null(ev);
    check_untouched(bo, B * H * N * DV);

    /* The centroid calls: their output (the centroids) untouched on failure. */
    clattn_tensor mu7 = clattn_tensor_make(bmu7, 1, H, C, D);
    dd = d;
    dd.decay = -0.1f;
    expect(clattn_routing_update_centroids(ctx, &dd, &q, &k, &mu7, 0, NULL, NULL),
           CLATTN_INVALID_ARGUMENT, "update decay");
    t = clattn_tensor_make(bmu7, 1, H, N + 1, D);
    expect(clattn_routing_update_centroids(ctx, &d, &q, &k, &t, 0, NULL, NULL),
           CLATTN_INVALID_ARGUMENT, "update C > N");
    expect(clattn_routing_update_centroids(ctx, &d, &q, NULL, &mu7, 0, NULL, NULL),
           CLATTN_NULL_POINTER, "update k NULL");
    t = clattn_tensor_make(bq, 1, H, C, D);
    expect(clattn_routing_update_centroids(ctx, &d, &q, &k, &t, 0, NULL, NULL), CLATTN_ALIASING,
           "update centroids overlap q");
    t = clattn_tensor_make(bmu7, 1, H, C, D - 1);
    expect(clattn_routing_centroids_init(ctx, &d, &q, &k, &t), CLATTN_SHAPE_MISMATCH,
           "init centroid dim");
    expect(clattn_routing_centroids_init(ctx, &d, &q, &k, NULL), CLATTN_NULL_POINTER,
           "init centroids NULL");
    check_untouched(bmu7, B * H * N * DV);

    /* The host call: clusters required, C > N refused; out untouched. */
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, DV};
    float out[B * H * N * DV];
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        out[i] = 7.0f;
    expect(clattn_routing_host(ctx, &d, qs, vs, half, half, half, NULL, out),
           CLATTN_INVALID_ARGUMENT, "host clusters 0");
    dd = d;
    dd.clusters = N + 1;
    expect(clattn_routing_host(ctx, &dd, qs, vs, half, half, half, NULL, out),
           CLATTN_INVALID_ARGUMENT, "host C > N");
    dd.clusters = C;
    expect(clattn_routing_host(ctx, &dd, qs, vs, half, NULL, half, NULL, out),
           CLATTN_NULL_POINTER, "host k NULL");
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        assert_true(out[i] == 7.0f);
#undef RUN
    cl_mem all[] = {bq, bk, bv, bmu, bo, bmu7};
    for (int i = 0; i < 6; i++)
        clReleaseMemObject(all[i]);
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no device: %s\n", clattn_context_last_error(NULL));
        return -1;
    }
    return 0;
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
        cmocka_unit_test(test_one_cluster_is_exact),
        cmocka_unit_test(test_ties_and_large),
        cmocka_unit_test(test_kmeanspp_and_host),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_out_of_order_queue),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
