/* RPE attention with half storage (issue 15): q, k, v, the bias and out each f32, f16 or bf16,
 * against the fp64 reference (tests/reference/ref_rpe.c) computed on the SAME half-rounded
 * inputs, checked by clattn.h's accuracy contract (tu_check_typed: one ulp of the output type
 * plus TOL, the fp32 suites' tolerance). The type matrix of issue 15 (all f16, all bf16, f16 in /
 * f32 out, f32 in / f16 out, f32 in / bf16 out, two mixed rows) on each path: the per-row direct
 * kernel and the GPU-tiled one (both forced through CLATTN_RPE_DIRECT_KERNEL on every device) and
 * the FFT path forced; ELU, RELU (rows with no weight: eps 0 gives zeros) and FAVOR+, causal and
 * not, grouped query heads, N = 1 and a non-tile N, a large bias (+-40: weights spread over 80
 * nats, what float32 holds; direct only, as rpe.h advises), strided half views, the one-shot
 * call (types from the tensors) and clattn_rpe_host (float32 whatever the desc's types). Bad
 * input: an unknown dtype (INVALID_ARGUMENT) and a tensor of another type than the plan's
 * (DTYPE_MISMATCH), outputs untouched; a baked half plan's enqueue creates no kernel and looks up
 * no program. Small shapes: about a second per device config once the program cache is warm. */
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
#include "reference/ref_rpe.h"

#define TOL ((tu_tol){1e-4, 1e-4, 1e-4})

#define S CLATTN_F32
#define H CLATTN_F16
#define BF CLATTN_BF16

static clattn_context *ctx;

/* q, k, v, bias, out */
typedef struct types {
    clattn_dtype t[5];
} types;

/* issue 15's matrix: all f16, all bf16, f16 in / f32 out, f32 in / f16 out, f32 in / bf16 out,
 * and two mixed rows. */
static const types matrix[] = {
    {{H, H, H, H, H}},   {{BF, BF, BF, BF, BF}}, {{H, H, H, H, S}}, {{S, S, S, S, H}},
    {{S, S, S, S, BF}},  {{BF, H, S, BF, H}},    {{S, BF, H, S, BF}},
};
#define MATRIX_N (sizeof matrix / sizeof matrix[0])

typedef struct tcase {
    size_t B, Hq, Hk, N, D, Dv;
    int causal;
    clattn_linear_feature_map fmap;
    size_t features; /* FAVOR's M */
    clattn_rpe_algo algo;
    const char *kernel; /* CLATTN_RPE_DIRECT_KERNEL: "rows", "tiled" or NULL */
    float bias_scale;
    float eps; /* < 0: the default */
    int dead_rows; /* query row 0 of every head all negative (RELU: no weight) */
    int bnhd;      /* v and out as [B, N, H, D] strided views */
    int one_shot;  /* clattn_rpe_enqueue (types from the tensors) instead of a plan */
    types ty;
} tcase;

static cl_mem make_buffer(const void *host, size_t bytes)
{
    cl_int err = CL_SUCCESS;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE, bytes, NULL,
                              &err);
    assert_int_equal(err, CL_SUCCESS);
    if (host)
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), m, CL_TRUE, 0,
                                              bytes, host, 0, NULL, NULL),
                         CL_SUCCESS);
    return m;
}

/* All-ones bytes: NaN as f32, f16 and bf16 alike (tu_poison_buffer's float NaN pattern holds
 * half zeros). */
static cl_mem poisoned_buffer(size_t bytes)
{
    unsigned char *p = malloc(bytes);
    assert_non_null(p);
    memset(p, 0xff, bytes);
    cl_mem m = make_buffer(p, bytes);
    free(p);
    return m;
}

/* A [B, H, N, D] view of `dt` elements, dense or (bnhd) stored as [B, N, H, D]. */
static clattn_tensor view(cl_mem m, clattn_dtype dt, const size_t s[4], int bnhd)
{
    clattn_tensor t = clattn_tensor_make_typed(m, dt, s[0], s[1], s[2], s[3]);
    if (bnhd) {
        t.strides[3] = 1;
        t.strides[1] = s[3];
        t.strides[2] = s[1] * s[3];
        t.strides[0] = s[1] * s[2] * s[3];
    }
    return t;
}

/* Host [B, H, N, D] data laid out as the view wants it (a copy). */
static float *layout(const float *x, const size_t s[4], int bnhd)
{
    size_t n = s[0] * s[1] * s[2] * s[3];
    float *y = malloc(n * sizeof *y);
    assert_non_null(y);
    for (size_t b = 0; b < s[0]; b++)
        for (size_t h = 0; h < s[1]; h++)
            for (size_t i = 0; i < s[2]; i++)
                for (size_t d = 0; d < s[3]; d++) {
                    size_t from = ((b * s[1] + h) * s[2] + i) * s[3] + d;
                    size_t to = bnhd ? ((b * s[2] + i) * s[1] + h) * s[3] + d : from;
                    y[to] = x[from];
                }
    return y;
}

static void run_case(const tcase *c)
{
    const clattn_dtype *ty = c->ty.t;
    size_t qs[4] = {c->B, c->Hq, c->N, c->D}, ks[4] = {c->B, c->Hk, c->N, c->D};
    size_t vs[4] = {c->B, c->Hk, c->N, c->Dv}, os[4] = {c->B, c->Hq, c->N, c->Dv};
    size_t bs[4] = {1, c->Hq, 1, 2 * c->N - 1};
    size_t nq = c->B * c->Hq * c->N * c->D, nk = c->B * c->Hk * c->N * c->D;
    size_t nv = c->B * c->Hk * c->N * c->Dv, no = c->B * c->Hq * c->N * c->Dv;
    size_t nb = c->Hq * (2 * c->N - 1), M = c->features;
    uint64_t seed = 77 + c->N * 13 + c->Dv + (size_t)ty[0] * 3 + (size_t)ty[3];
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(nb, c->bias_scale, &seed);
    float *w = NULL;
    if (c->dead_rows)
        for (size_t bh = 0; bh < c->B * c->Hq; bh++)
            for (size_t d = 0; d < c->D; d++)
                q[bh * c->N * c->D + d] = -0.25f - 0.5f * (float)d / (float)c->D;
    /* the reference reads exactly what the device reads */
    tu_round_to(q, nq, ty[0]);
    tu_round_to(k, nk, ty[1]);
    tu_round_to(v, nv, ty[2]);
    tu_round_to(bias, nb, ty[3]);
    clattn_rpe_desc d;
    clattn_rpe_desc_init(&d);
    d.causal = c->causal;
    d.algorithm = c->algo;
    d.linear.feature_map = c->fmap;
    if (c->eps >= 0.0f)
        d.linear.eps = c->eps;
    if (c->fmap == CLATTN_LINEAR_FEATURE_FAVOR) {
        w = tu_random(M * c->D, 1.0f, &seed);
        d.linear.features = M;
        d.linear.projection = w;
        d.linear.projection_shape[0] = M;
        d.linear.projection_shape[1] = c->D;
    }
    double *ref = malloc(no * sizeof *ref);
    assert_non_null(ref);
    ref_rpe_gqa_d(q, k, v, bias, ref, c->B, c->Hq, c->Hk, c->N, c->D, c->Dv, (int)c->fmap, w, M,
                  d.linear.eps, c->causal);

    float *vl = layout(v, vs, c->bnhd);
    void *pq = tu_pack(q, nq, ty[0]), *pk = tu_pack(k, nk, ty[1]);
    void *pv = tu_pack(vl, nv, ty[2]), *pb = tu_pack(bias, nb, ty[3]);
    cl_mem bq = make_buffer(pq, nq * clattn_dtype_size(ty[0]));
    cl_mem bk = make_buffer(pk, nk * clattn_dtype_size(ty[1]));
    cl_mem bv = make_buffer(pv, nv * clattn_dtype_size(ty[2]));
    cl_mem bb = make_buffer(pb, nb * clattn_dtype_size(ty[3]));
    size_t obytes = no * clattn_dtype_size(ty[4]);
    cl_mem bo = poisoned_buffer(obytes);
    clattn_tensor tq = view(bq, ty[0], qs, 0), tk = view(bk, ty[1], ks, 0);
    clattn_tensor tv = view(bv, ty[2], vs, c->bnhd), tb = view(bb, ty[3], bs, 0);
    clattn_tensor to = view(bo, ty[4], os, c->bnhd);

    char what[200];
    snprintf(what, sizeof what,
             "%s%s q %s k %s v %s bias %s out %s; B%zu H%zu/%zu N%zu D%zu Dv%zu causal %d fmap "
             "%d%s%s",
             c->algo == CLATTN_RPE_FFT ? "fft" : "direct ", c->kernel ? c->kernel : "",
             clattn_dtype_name(ty[0]), clattn_dtype_name(ty[1]), clattn_dtype_name(ty[2]),
             clattn_dtype_name(ty[3]), clattn_dtype_name(ty[4]), c->B, c->Hq, c->Hk, c->N, c->D,
             c->Dv, c->causal, (int)c->fmap, c->bnhd ? " bnhd" : "",
             c->one_shot ? " one-shot" : "");
    if (c->kernel)
        assert_int_equal(setenv("CLATTN_RPE_DIRECT_KERNEL", c->kernel, 1), 0);
    clattn_status st;
    if (c->one_shot) { /* the desc's dtypes stay f32: the tensors' count */
        st = clattn_rpe_enqueue(ctx, &d, &tq, &tk, &tv, &tb, &to, 0, NULL, NULL);
    } else {
        d.q_dtype = ty[0], d.k_dtype = ty[1], d.v_dtype = ty[2];
        d.bias_dtype = ty[3], d.out_dtype = ty[4];
        clattn_plan *plan = NULL;
        st = clattn_rpe_plan_create(ctx, &d, qs, ks, vs, &plan);
        if (st == CLATTN_SUCCESS) {
            clattn_plan_info info;
            assert_int_equal(clattn_plan_get_info(plan, &info), CLATTN_SUCCESS);
            assert_int_equal(info.algorithm, c->algo);
            int all32 = 1;
            for (int i = 0; i < 5; i++)
                all32 &= ty[i] == CLATTN_F32;
            if (all32 != (strstr(info.launch, "dtype=") == NULL))
                fail_msg("%s: launch '%s'", what, info.launch);
            clattn_context_stats before, after;
            assert_int_equal(clattn_context_get_stats(ctx, &before), CLATTN_SUCCESS);
            st = clattn_rpe_plan_enqueue(plan, &tq, &tk, &tv, &tb, &to, 0, NULL, NULL);
            assert_int_equal(clattn_context_get_stats(ctx, &after), CLATTN_SUCCESS);
            if (after.kernels_created != before.kernels_created ||
                after.program_lookups != before.program_lookups)
                fail_msg("%s: the enqueue created kernels or looked up programs", what);
        }
        clattn_plan_destroy(plan);
    }
    if (c->kernel)
        unsetenv("CLATTN_RPE_DIRECT_KERNEL");
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s", what, clattn_context_last_error(ctx));
    unsigned char *got = malloc(obytes);
    assert_non_null(got);
    assert_int_equal(clEnqueueReadBuffer(clattn_context_get_cl_queue(ctx), bo, CL_TRUE, 0, obytes,
                                         got, 0, NULL, NULL),
                     CL_SUCCESS);
    if (c->bnhd) { /* back to [B, H, N, Dv] */
        size_t es = clattn_dtype_size(ty[4]);
        unsigned char *g2 = malloc(obytes);
        assert_non_null(g2);
        for (size_t b = 0; b < c->B; b++)
            for (size_t h = 0; h < c->Hq; h++)
                for (size_t i = 0; i < c->N; i++)
                    memcpy(g2 + (((b * c->Hq + h) * c->N + i) * c->Dv) * es,
                           got + (((b * c->N + i) * c->Hq + h) * c->Dv) * es, c->Dv * es);
        free(got);
        got = g2;
    }
    tu_check_typed(got, ty[4], ref, no, TOL, what);
    if (c->dead_rows && c->fmap == CLATTN_LINEAR_FEATURE_RELU && c->eps == 0.0f) {
        float *g = tu_unpack(got, no, ty[4]);
        for (size_t bh = 0; bh < c->B * c->Hq; bh++)
            for (size_t e = 0; e < c->Dv; e++)
                if (g[bh * c->N * c->Dv + e] != 0.0f)
                    fail_msg("%s: row 0 of head %zu has no weight, out %g", what, bh,
                             (double)g[bh * c->N * c->Dv + e]);
        free(g);
    }
    free(got);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    clReleaseMemObject(bb);
    clReleaseMemObject(bo);
    free(pq);
    free(pk);
    free(pv);
    free(pb);
    free(vl);
    free(q);
    free(k);
    free(v);
    free(bias);
    free(w);
    free(ref);
}

/* The matrix on one path: grouped query heads, N 37 (no tile or radix multiple), D 5, Dv 6;
 * causal on odd rows; ELU, with RELU on row 2 (and its dead rows, eps 0) and FAVOR+ on row 5. */
static void matrix_on(clattn_rpe_algo algo, const char *kernel)
{
    for (size_t r = 0; r < MATRIX_N; r++) {
        tcase c = {1, 2, 1, 37, 5, 6, (int)(r & 1), CLATTN_LINEAR_FEATURE_ELU, 0, algo, kernel,
                   1.0f, -1.0f, 0, 0, 0, matrix[r]};
        if (r == 2) {
            c.fmap = CLATTN_LINEAR_FEATURE_RELU;
            c.dead_rows = 1;
            c.eps = 0.0f;
        }
        if (r == 5) {
            c.fmap = CLATTN_LINEAR_FEATURE_FAVOR;
            c.features = 12;
        }
        run_case(&c);
    }
}

static void test_matrix_direct_rows(void **state)
{
    (void)state;
    matrix_on(CLATTN_RPE_DIRECT, "rows");
}

static void test_matrix_direct_tiled(void **state)
{
    (void)state;
    matrix_on(CLATTN_RPE_DIRECT, "tiled");
}

static void test_matrix_fft(void **state)
{
    (void)state;
    matrix_on(CLATTN_RPE_FFT, NULL);
}

/* N = 1 on every path; a +-40 bias (weights down to exp(-80); direct only: the FFT path's error
 * is relative to a head's largest weight, rpe.h); [B, N, H, D] strided half views of v and out;
 * the one-shot call taking its types from the tensors. */
static void test_edges(void **state)
{
    (void)state;
    const types all16 = {{H, H, H, H, H}}, mixed = {{BF, H, S, BF, H}};
    static const clattn_rpe_algo algos[3] = {CLATTN_RPE_DIRECT, CLATTN_RPE_DIRECT, CLATTN_RPE_FFT};
    static const char *kernels[3] = {"rows", "tiled", NULL};
    for (int p = 0; p < 3; p++) {
        tcase one = {1, 2, 2, 1, 3, 4, p == 1, CLATTN_LINEAR_FEATURE_ELU, 0, algos[p], kernels[p],
                     1.0f, -1.0f, 0, 0, 0, all16};
        run_case(&one);
    }
    tcase big = {1, 2, 1, 37, 5, 6, 1, CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_RPE_DIRECT, "rows",
                 40.0f, -1.0f, 0, 0, 0, mixed};
    run_case(&big);
    big.causal = 0;
    big.ty = all16;
    big.kernel = "tiled";
    run_case(&big);
    tcase strided = {2, 2, 2, 37, 5, 6, 0, CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_RPE_DIRECT,
                     "rows", 1.0f, -1.0f, 0, 1, 0, mixed};
    run_case(&strided);
    strided.algo = CLATTN_RPE_FFT;
    strided.kernel = NULL;
    strided.B = 1;
    strided.Hk = 1;
    strided.causal = 1;
    run_case(&strided);
    tcase shot = {1, 2, 1, 37, 5, 6, 1, CLATTN_LINEAR_FEATURE_ELU, 0, CLATTN_RPE_DIRECT, "rows",
                  1.0f, -1.0f, 0, 0, 1, mixed};
    run_case(&shot);
}

/* clattn_rpe_host stays float32 whatever the desc's dtype fields hold (even unknown values). */
static void test_host_ignores_dtypes(void **state)
{
    (void)state;
    size_t qs[4] = {1, 2, 9, 3}, vs[4] = {1, 2, 9, 4}, nq = 54, nv = 72, nb = 2 * 17;
    uint64_t seed = 5;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(nb, 1.0f, &seed);
    float *out = tu_poisoned(nv), *ref = malloc(nv * sizeof *ref);
    assert_non_null(ref);
    clattn_rpe_desc d;
    clattn_rpe_desc_init(&d);
    d.algorithm = CLATTN_RPE_DIRECT;
    d.q_dtype = d.v_dtype = CLATTN_F16;
    d.out_dtype = CLATTN_BF16;
    d.k_dtype = (clattn_dtype)9;
    if (clattn_rpe_host(ctx, &d, qs, qs, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
        fail_msg("host: %s", clattn_context_last_error(ctx));
    ref_rpe_gqa(q, k, v, bias, ref, 1, 2, 2, 9, 3, 4, 0, NULL, 0, d.linear.eps, 0);
    tu_check_close(out, ref, nv, TOL, "clattn_rpe_host with half dtypes in the desc");
    free(q);
    free(k);
    free(v);
    free(bias);
    free(out);
    free(ref);
}

/* An unknown dtype in the desc or on a one-shot tensor (INVALID_ARGUMENT), a tensor whose type
 * differs from the plan's (DTYPE_MISMATCH): nothing written. */
static void test_bad_input(void **state)
{
    (void)state;
    size_t qs[4] = {1, 2, 5, 3}, vs[4] = {1, 2, 5, 4};
    cl_mem bq = poisoned_buffer(30 * 4), bk = poisoned_buffer(30 * 4);
    cl_mem bv = poisoned_buffer(40 * 4), bb = poisoned_buffer(18 * 4);
    cl_mem bo = make_buffer(NULL, 40 * 4);
    float zeros[40] = {0};
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bo, CL_TRUE, 0,
                                          sizeof zeros, zeros, 0, NULL, NULL),
                     CL_SUCCESS);
    clattn_rpe_desc d;
    clattn_rpe_desc_init(&d);
    clattn_plan *plan = NULL;
    tu_watch watch;
    tu_watch_init(&watch, ctx);
    tu_watch_buffer(&watch, bo, 40 * 4, "out");
    tu_watch_host(&watch, &plan, sizeof plan, "plan");

    clattn_dtype *fields[5] = {&d.q_dtype, &d.k_dtype, &d.v_dtype, &d.bias_dtype, &d.out_dtype};
    for (int f = 0; f < 5; f++) {
        clattn_rpe_desc_init(&d);
        *fields[f] = (clattn_dtype)3;
        plan = NULL;
        tu_expect_status(ctx, clattn_rpe_plan_create(ctx, &d, qs, qs, vs, &plan),
                         CLATTN_INVALID_ARGUMENT, "unknown dtype in the desc");
        assert_null(plan);
        tu_watch_check(&watch, "unknown dtype in the desc");
    }

    /* plan: f16 q/k/v/bias, bf16 out */
    clattn_rpe_desc_init(&d);
    d.q_dtype = d.k_dtype = d.v_dtype = d.bias_dtype = CLATTN_F16;
    d.out_dtype = CLATTN_BF16;
    d.algorithm = CLATTN_RPE_DIRECT;
    clattn_plan *good = NULL;
    assert_int_equal(clattn_rpe_plan_create(ctx, &d, qs, qs, vs, &good), CLATTN_SUCCESS);
    clattn_tensor t[5] = {clattn_tensor_make_typed(bq, CLATTN_F16, 1, 2, 5, 3),
                          clattn_tensor_make_typed(bk, CLATTN_F16, 1, 2, 5, 3),
                          clattn_tensor_make_typed(bv, CLATTN_F16, 1, 2, 5, 4),
                          clattn_tensor_make_typed(bb, CLATTN_F16, 1, 2, 1, 9),
                          clattn_tensor_make_typed(bo, CLATTN_BF16, 1, 2, 5, 4)};
    static const clattn_dtype wrong[5] = {CLATTN_F32, CLATTN_BF16, CLATTN_F32, CLATTN_BF16,
                                          CLATTN_F16};
    for (int i = 0; i < 5; i++) {
        clattn_tensor u[5];
        memcpy(u, t, sizeof u);
        u[i].dtype = wrong[i];
        tu_expect_status(ctx, clattn_rpe_plan_enqueue(good, &u[0], &u[1], &u[2], &u[3], &u[4], 0,
                                                      NULL, NULL),
                         CLATTN_DTYPE_MISMATCH, "tensor dtype != plan");
        tu_watch_check(&watch, "tensor dtype != plan");
    }
    /* one-shot: an unknown tensor dtype; the desc's dtypes do not matter there */
    clattn_tensor u[5];
    memcpy(u, t, sizeof u);
    u[2].dtype = (clattn_dtype)7;
    tu_expect_status(ctx, clattn_rpe_enqueue(ctx, &d, &u[0], &u[1], &u[2], &u[3], &u[4], 0, NULL,
                                             NULL),
                     CLATTN_INVALID_ARGUMENT, "one-shot unknown tensor dtype");
    tu_watch_check(&watch, "one-shot unknown tensor dtype");
    clattn_plan_destroy(good);
    tu_watch_free(&watch);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    clReleaseMemObject(bb);
    clReleaseMemObject(bo);
}

static int setup(void **state)
{
    (void)state;
    if (clattn_context_create(NULL, &ctx) != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_context_last_error(NULL));
        return -1; /* a missing device is a failure, never a skip */
    }
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    fprintf(stderr, "device: %s / %s\n", info.platform_name, info.name);
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
        cmocka_unit_test(test_matrix_direct_rows),
        cmocka_unit_test(test_matrix_direct_tiled),
        cmocka_unit_test(test_matrix_fft),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_host_ignores_dtypes),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
