/* Kernelized attention with relative positional encoding against the fp64 host reference
 * (tests/reference/ref_rpe.c: the direct double sums), both algorithms (FFT and direct), grouped
 * query heads included, on the device chosen by CLATTN_DEVICE; eps in the formula's scale (eps 0:
 * none). The plan API, its reuse and the validation of every entry point are in test_rpe_plan.c.
 *
 * Inputs are random (never zero), the bias uniform in [-1, 1] unless said; outputs are poisoned
 * with NaN before each run so an unwritten element fails. Tolerance (tests/test_util.h's
 * harness, TOL below): per element |out - ref| <= 1e-4 + 1e-4 |ref| (DESIGN.md §4 for outputs
 * of unit scale) and a normalised error ||out - ref||_2 / ||ref||_2 <= 1e-4: outputs are
 * averages of many random values, so ||ref|| is small and the FFT path's absolute error (relative
 * to the largest weight, see clattn.h) weighs more there than in data of unit scale. */
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
#include "reference/ref_linear.h"
#include "reference/ref_rpe.h"

#define TOL ((tu_tol){1e-4, 1e-4, 1e-4})

static clattn_context *ctx;
static int basic_device; /* PoCL's serial device: no user-event gating (driver deadlock) */
/* Devices with a loop-iteration cap (llvmpipe under rusticl: 65535, its quirk field) stop kernel
 * loops there: the direct path loops N * (M + Dv) times per row, so N = 4097 exceeds it (rows
 * come back unwritten). */
static int loop_cap;

static const clattn_rpe_algo algos[] = {CLATTN_RPE_FFT, CLATTN_RPE_DIRECT};

typedef struct tcase {
    size_t B, H, N, D, Dv;
    int causal;
    clattn_linear_feature_map fmap;
    clattn_rpe_algo algo;
    int bnhd;         /* q, k, v, out stored [B, N, H, D] (strided views) */
    int bias_strided; /* bias stored transposed, [2N-1][H] */
    float bias_shift; /* added to every bias entry (exp would overflow without the max shift) */
    size_t Hk;        /* key/value heads (0: H) */
} tcase;

static size_t key_heads(const tcase *c) { return c->Hk ? c->Hk : c->H; }

static cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

static float *filled(size_t n, float value)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = value;
    return x;
}

static const char *algo_name(clattn_rpe_algo a)
{
    return a == CLATTN_RPE_FFT ? "fft" : a == CLATTN_RPE_DIRECT ? "direct" : "auto";
}

/* Runs the device on host arrays through strided views; returns out [B, H, N, Dv] (malloc). */
static float *run_device(const tcase *c, const float *q, const float *k, const float *v,
                         const float *bias)
{
    size_t Hk = key_heads(c);
    size_t nq = c->B * c->H * c->N * c->D, nk = c->B * Hk * c->N * c->D;
    size_t nv = c->B * Hk * c->N * c->Dv, no = c->B * c->H * c->N * c->Dv;
    size_t L = 2 * c->N - 1, nb = c->H * L;
    float *hq = c->bnhd ? tu_relayout(q, c->B, c->H, c->N, c->D, 1) : NULL;
    float *hk = c->bnhd ? tu_relayout(k, c->B, Hk, c->N, c->D, 1) : NULL;
    float *hv = c->bnhd ? tu_relayout(v, c->B, Hk, c->N, c->Dv, 1) : NULL;
    float *hb = malloc(nb * sizeof(float)), *out = tu_poisoned(no);
    assert_non_null(hb);
    for (size_t h = 0; h < c->H; h++)
        for (size_t x = 0; x < L; x++)
            hb[c->bias_strided ? x * c->H + h : h * L + x] = bias[h * L + x];
    cl_mem bq = tu_buffer(ctx, nq * 4, hq ? hq : q), bk = tu_buffer(ctx, nk * 4, hk ? hk : k);
    cl_mem bv = tu_buffer(ctx, nv * 4, hv ? hv : v), bb = tu_buffer(ctx, nb * 4, hb);
    cl_mem bo = tu_buffer(ctx, no * 4, out);
    clattn_rpe_desc desc;
    clattn_rpe_desc_init(&desc);
    desc.causal = c->causal;
    desc.linear.feature_map = c->fmap;
    desc.algorithm = c->algo;
    clattn_tensor tq = tu_view(bq, c->B, c->H, c->N, c->D, c->bnhd);
    clattn_tensor tk = tu_view(bk, c->B, Hk, c->N, c->D, c->bnhd);
    clattn_tensor tv = tu_view(bv, c->B, Hk, c->N, c->Dv, c->bnhd);
    clattn_tensor to = tu_view(bo, c->B, c->H, c->N, c->Dv, c->bnhd);
    clattn_tensor tb = clattn_tensor_make(bb, 1, c->H, 1, L);
    if (c->bias_strided) {
        tb.strides[1] = 1;
        tb.strides[3] = c->H;
        tb.strides[2] = tb.strides[0] = L * c->H;
    }
    cl_event ev = NULL;
    if (clattn_rpe_enqueue(ctx, &desc, &tq, &tk, &tv, &tb, &to, 0, NULL, &ev) != CLATTN_SUCCESS)
        fail_msg("enqueue: %s", clattn_context_last_error(ctx));
    assert_non_null(ev);
    assert_int_equal(clWaitForEvents(1, &ev), CL_SUCCESS);
    clReleaseEvent(ev);
    tu_read(ctx, bo, no * 4, out);
    float *got = out;
    if (c->bnhd) {
        got = tu_relayout(out, c->B, c->H, c->N, c->Dv, 0);
        free(out);
    }
    cl_mem all[] = {bq, bk, bv, bb, bo};
    for (int i = 0; i < 5; i++)
        clReleaseMemObject(all[i]);
    free(hq);
    free(hk);
    free(hv);
    free(hb);
    return got;
}

static void run_case(const tcase *c)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (c->N * 131 + c->D * 7 + c->Dv + (size_t)c->causal);
    size_t Hk = key_heads(c);
    size_t nq = c->B * c->H * c->N * c->D, nk = c->B * Hk * c->N * c->D;
    size_t nv = c->B * Hk * c->N * c->Dv, no = c->B * c->H * c->N * c->Dv;
    size_t nb = c->H * (2 * c->N - 1);
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(nb, 1.0f, &seed);
    float *ref = malloc(no * sizeof(float));
    assert_non_null(ref);
    for (size_t x = 0; x < nb; x++)
        bias[x] += c->bias_shift;
    ref_rpe_gqa(q, k, v, bias, ref, c->B, c->H, Hk, c->N, c->D, c->Dv, (int)c->fmap, NULL, c->D,
                CLATTN_LINEAR_DEFAULT_EPS, c->causal);
    float *got = run_device(c, q, k, v, bias);
    char what[200];
    snprintf(what, sizeof what,
             "B%zu H%zu Hk%zu N%zu D%zu Dv%zu causal%d fmap%d %s bnhd%d bias_strided%d shift%g",
             c->B, c->H, Hk, c->N, c->D, c->Dv, c->causal, (int)c->fmap, algo_name(c->algo),
             c->bnhd, c->bias_strided, (double)c->bias_shift);
    tu_check_close(got, ref, no, TOL, what);
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
    free(got);
}

/* N = 1, 7 (shorter than any tile or FFT radix), 1000 (not a power of two; its FFT length is
 * 2000 = 2^4 5^3), for both maps, both paths, causal and not. */
static void test_small(void **state)
{
    (void)state;
    static const size_t lengths[] = {1, 7, 1000};
    for (size_t a = 0; a < 2; a++)
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
            for (int causal = 0; causal < 2; causal++) {
                clattn_linear_feature_map f = (i + (size_t)causal) % 2 ? CLATTN_LINEAR_FEATURE_RELU
                                                                : CLATTN_LINEAR_FEATURE_ELU;
                size_t H = lengths[i] < 100 ? 3 : 2;
                tcase c = {2, H, lengths[i], 16, 12, causal, f, algos[a], 0, 0, 0.0f, 0};
                run_case(&c);
            }
}

/* N = 4097 = 2^12 + 1: the FFT length 8232 = 2^3 3 7^3 is not a power of two. The direct path
 * once (non-causal), to keep the fp64 reference and the O(N^2) sums short. */
static void test_long(void **state)
{
    (void)state;
    for (int causal = 0; causal < 2; causal++) {
        tcase c = {1, 1, 4097, 8, 6, causal, CLATTN_LINEAR_FEATURE_ELU, CLATTN_RPE_FFT, 0, 0, 0.0f, 0};
        run_case(&c);
    }
    if (loop_cap) {
        fprintf(stderr,
                "note: direct path at N = 4097 skipped (the device's loop-iteration cap)\n");
        return;
    }
    tcase c = {1, 1, 4097, 8, 6, 0, CLATTN_LINEAR_FEATURE_RELU, CLATTN_RPE_DIRECT, 0, 0, 0.0f, 0};
    run_case(&c);
}

/* Head dims at the limits, Dv != D. */
static void test_head_dims(void **state)
{
    (void)state;
    static const size_t dims[][2] = {{1, 1}, {256, 3}, {5, 256}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (size_t a = 0; a < 2; a++) {
            tcase c = {1, 2, 37, dims[i][0], dims[i][1], (int)a, CLATTN_LINEAR_FEATURE_ELU, algos[a],
                       0, 0, 0.0f, 0};
            run_case(&c);
        }
}

/* [B, N, H, D] views, a transposed bias, and a bias around 100: exp(100) overflows float32, so
 * this fails unless the maximum is subtracted first. */
static void test_strides_and_large_bias(void **state)
{
    (void)state;
    for (size_t a = 0; a < 2; a++)
        for (int causal = 0; causal < 2; causal++) {
            tcase c = {2, 3, 50, 8, 5, causal, CLATTN_LINEAR_FEATURE_ELU, algos[a], 1, 1, 100.0f, 0};
            run_case(&c);
        }
}

/* The FFT signals split into groups (a small scratch budget): a head's features spread over
 * several groups, and the last group padded. */
static void test_fft_groups(void **state)
{
    (void)state;
    setenv("CLATTN_RPE_FFT_SCRATCH", "60000", 1);
    for (int causal = 0; causal < 2; causal++) {
        tcase c = {2, 2, 45, 7, 4, causal, CLATTN_LINEAR_FEATURE_ELU, CLATTN_RPE_FFT, 0, 0, 0.0f, 0};
        run_case(&c);
    }
    unsetenv("CLATTN_RPE_FFT_SCRATCH");
}

/* AUTO gives the same result on both sides of its threshold (M = Dv = 4: direct at N = 20, FFT
 * at N = 1500 by the cost model in lib/ops/rpe.c). */
static void test_auto(void **state)
{
    (void)state;
    static const size_t lengths[] = {20, 1500};
    for (size_t i = 0; i < 2; i++) {
        tcase c = {1, 1, lengths[i], 4, 4, 0, CLATTN_LINEAR_FEATURE_ELU, CLATTN_RPE_AUTO, 0, 0, 0.0f, 0};
        run_case(&c);
    }
}

/* FAVOR+ features (lib/blocks/feature_maps.c), with the projection drawn from the desc's seed and
 * with the caller's projection, against the reference on the same W. */
static void test_favor(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, N = 50, D = 8, Dv = 5, M = 24;
    size_t nq = B * H * N * D, nv = B * H * N * Dv, nb = H * (2 * N - 1);
    uint64_t seed = 77;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed),
          *v = tu_random(nv, 1.0f, &seed);
    float *bias = tu_random(nb, 1.0f, &seed), *ref = malloc(nv * 4), *w = malloc(M * D * 4);
    float *out = tu_poisoned(nv);
    assert_non_null(ref);
    assert_non_null(w);
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    for (int own = 0; own < 2; own++) {
        if (own)
            ref_fill_uniform(w, M * D, 1.0f, &seed);
        else
            assert_int_equal(clattn_linear_favor_draw(M, D, 7, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w),
                             CLATTN_SUCCESS);
        for (size_t a = 0; a < 2; a++)
            for (int causal = 0; causal < 2; causal++) {
                clattn_rpe_desc d;
                clattn_rpe_desc_init(&d);
                d.linear.feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
                d.linear.features = M;
                d.linear.seed = 7;
                if (own) {
                    d.linear.projection = w;
                    d.linear.projection_shape[0] = M;
                    d.linear.projection_shape[1] = D;
                }
                d.causal = causal;
                d.algorithm = algos[a];
                ref_rpe_general(q, k, v, bias, ref, B, H, N, D, Dv, 3, w, M,
                                CLATTN_LINEAR_DEFAULT_EPS, causal);
                if (clattn_rpe_host(ctx, &d, qs, qs, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
                    fail_msg("favor: %s", clattn_context_last_error(ctx));
                char what[64];
                snprintf(what, sizeof what, "favor own W %d %s causal %d", own,
                         algo_name(algos[a]), causal);
                tu_check_close(out, ref, nv, TOL, what);
            }
    }
    /* A projection of the wrong shape is refused. */
    clattn_rpe_desc d;
    clattn_rpe_desc_init(&d);
    d.linear.feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
    d.linear.features = M;
    d.linear.projection = w;
    d.linear.projection_shape[0] = M;
    d.linear.projection_shape[1] = D + 1;
    tu_expect_status(ctx, clattn_rpe_host(ctx, &d, qs, qs, vs, q, k, v, bias, out),
                     CLATTN_SHAPE_MISMATCH, "favor projection shape");
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
    free(w);
    free(out);
}

/* b = 0: exactly linear attention (clattn_linear_host, same map and eps). */
static void test_zero_bias_is_linear(void **state)
{
    (void)state;
    size_t B = 2, H = 2, N = 77, D = 9, Dv = 6, nq = B * H * N * D, nv = B * H * N * Dv;
    uint64_t seed = 42;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed),
          *v = tu_random(nv, 1.0f, &seed);
    float *bias = filled(H * (2 * N - 1), 0.0f), *lin = tu_poisoned(nv);
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    for (size_t a = 0; a < 2; a++)
        for (int causal = 0; causal < 2; causal++) {
            clattn_linear_desc ld;
            clattn_linear_desc_init(&ld);
            ld.causal = causal;
            ld.feature_map = CLATTN_LINEAR_FEATURE_RELU;
            if (clattn_linear_host(ctx, &ld, qs, qs, vs, q, k, v, lin) != CLATTN_SUCCESS)
                fail_msg("linear: %s", clattn_context_last_error(ctx));
            tcase c = {B, H, N, D, Dv, causal, CLATTN_LINEAR_FEATURE_RELU, algos[a], 0, 0, 0.0f, 0};
            float *got = run_device(&c, q, k, v, bias);
            char what[64];
            snprintf(what, sizeof what, "b = 0 vs linear, %s causal %d", algo_name(algos[a]),
                     causal);
            tu_check_close(got, lin, nv, TOL, what);
            free(got);
        }
    free(q);
    free(k);
    free(v);
    free(bias);
    free(lin);
}

/* One nonzero offset r0: with q = k = 0 (elu + 1 gives features 1, so phi(q).phi(k) = D for every
 * pair) and v_j = j, row i averages the positions it sees, weighting j = i + r0 by 20:
 *   o_i = (20 (i + r0) + sum of the other visible j) / (20 + count - 1)
 * or the plain mean when i + r0 is not visible. Computed here in closed form, independently of
 * the reference, so that an off-by-one or a sign flip of r (in the library and the reference
 * alike) would fail. Causal with r0 > 0: the bias entry is never used. */
static void test_single_offset(void **state)
{
    (void)state;
    const size_t N = 9, D = 3;
    const double big = 20.0;
    float *q = filled(N * D, 0.0f), *v = malloc(N * sizeof(float));
    assert_non_null(v);
    for (size_t j = 0; j < N; j++)
        v[j] = (float)j;
    static const long offsets[] = {2, -3, 0, 8, -8};
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
        for (size_t a = 0; a < 2; a++)
            for (int causal = 0; causal < 2; causal++) {
                long r0 = offsets[o];
                float *bias = filled(2 * N - 1, 0.0f);
                bias[r0 + (long)N - 1] = (float)log(big);
                tcase c = {1, 1, N, D, 1, causal, CLATTN_LINEAR_FEATURE_ELU, algos[a], 0, 0, 0.0f, 0};
                float *got = run_device(&c, q, q, v, bias);
                /* eps is added to the true weights' sum (the formula's scale): */
                double eps = CLATTN_LINEAR_DEFAULT_EPS;
                for (size_t i = 0; i < N; i++) {
                    size_t last = causal ? i : N - 1;
                    double num = 0, den = 0;
                    for (size_t j = 0; j <= last; j++) {
                        double w = (long)j - (long)i == r0 ? big : 1.0;
                        num += (double)D * w * (double)j;
                        den += (double)D * w;
                    }
                    double want = num / (den + eps);
                    if (!(fabs(got[i] - want) <= 1e-4 * fmax(1.0, fabs(want))))
                        fail_msg("r0 %ld %s causal %d row %zu: got %.6f, want %.6f", r0,
                                 algo_name(algos[a]), causal, i, (double)got[i], want);
                }
                free(got);
                free(bias);
            }
    free(q);
    free(v);
}

/* A non-finite bias given on the device makes its head's outputs NaN (the enqueue cannot read
 * values back); the other heads are unaffected. */
static void test_nonfinite_device_bias(void **state)
{
    (void)state;
    size_t N = 6, H = 2, D = 4, Dv = 3, nq = H * N * D, nv = H * N * Dv;
    uint64_t seed = 9;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed),
          *v = tu_random(nv, 1.0f, &seed);
    float *bias = tu_random(H * (2 * N - 1), 1.0f, &seed), *ref = malloc(nv * 4);
    ref_rpe_attention(q, k, v, bias, ref, 1, H, N, D, Dv, 0, CLATTN_LINEAR_DEFAULT_EPS, 0);
    bias[(2 * N - 1) + 3] = NAN; /* head 1 */
    for (size_t a = 0; a < 2; a++) {
        tcase c = {1, H, N, D, Dv, 0, CLATTN_LINEAR_FEATURE_ELU, algos[a], 0, 0, 0.0f, 0};
        float *got = run_device(&c, q, k, v, bias);
        tu_check_close(got, ref, N * Dv, TOL, "head 0 next to a NaN bias");
        for (size_t x = N * Dv; x < nv; x++)
            assert_true(isnan(got[x]));
        free(got);
    }
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
}

static void test_host(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 30, D = 5, Dv = 4, nq = B * H * N * D, nv = B * H * N * Dv;
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv}, nb = H * (2 * N - 1);
    uint64_t seed = 5;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed),
          *v = tu_random(nv, 1.0f, &seed);
    float *bias = tu_random(nb, 2.0f, &seed), *ref = malloc(nv * 4), *out = tu_poisoned(nv);
    ref_rpe_attention(q, k, v, bias, ref, B, H, N, D, Dv, 0, CLATTN_LINEAR_DEFAULT_EPS, 0);
    /* desc NULL: ELU, non-causal, AUTO. */
    if (clattn_rpe_host(ctx, NULL, qs, qs, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
        fail_msg("host: %s", clattn_context_last_error(ctx));
    tu_check_close(out, ref, nv, TOL, "clattn_rpe_host defaults");
    clattn_rpe_desc d;
    clattn_rpe_desc_init(&d);
    d.causal = 1;
    d.algorithm = CLATTN_RPE_FFT;
    ref_rpe_attention(q, k, v, bias, ref, B, H, N, D, Dv, 0, CLATTN_LINEAR_DEFAULT_EPS, 1);
    assert_int_equal(clattn_rpe_host(ctx, &d, qs, qs, vs, q, k, v, bias, out), CLATTN_SUCCESS);
    tu_check_close(out, ref, nv, TOL, "clattn_rpe_host causal fft");
    /* Non-finite bias values are refused on the host, the output untouched. */
    const float bad[] = {NAN, INFINITY, -INFINITY};
    float *sev = filled(nv, 7.0f);
    for (int i = 0; i < 3; i++) {
        float keep = bias[nb - 1];
        bias[nb - 1] = bad[i];
        tu_watch w;
        tu_watch_init(&w, ctx);
        tu_watch_host(&w, sev, nv * 4, "out");
        tu_expect_status(ctx, clattn_rpe_host(ctx, &d, qs, qs, vs, q, k, v, bias, sev),
                         CLATTN_INVALID_ARGUMENT, "non-finite bias");
        tu_watch_check(&w, "non-finite bias");
        tu_watch_free(&w);
        bias[nb - 1] = keep;
    }
    free(sev);
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
    free(out);
}

/* Query heads sharing key/value heads (GQA 4:2 and MQA 3:1) on both paths, causal and not, with
 * [B, N, H, D] views, against the fp64 reference reading key head h / (Hq / Hk); the FFT path
 * once with its signals split into several groups, so that a key head's shared spectra straddle
 * groups. */
static void test_gqa(void **state)
{
    (void)state;
    static const size_t heads[][2] = {{4, 2}, {3, 1}};
    for (size_t g = 0; g < 2; g++)
        for (size_t a = 0; a < 2; a++)
            for (int causal = 0; causal < 2; causal++) {
                tcase c = {2, heads[g][0], 40, 6, 5, causal, CLATTN_LINEAR_FEATURE_ELU, algos[a],
                           (int)g, 0, 0.0f, heads[g][1]};
                run_case(&c);
            }
    setenv("CLATTN_RPE_FFT_SCRATCH", "60000", 1);
    for (int causal = 0; causal < 2; causal++) {
        tcase c = {2, 4, 45, 7, 4, causal, CLATTN_LINEAR_FEATURE_RELU, CLATTN_RPE_FFT, 0, 0, 0.0f, 2};
        run_case(&c);
    }
    unsetenv("CLATTN_RPE_FFT_SCRATCH");
}

/* FAVOR+ with grouped query heads through the host call: the keys' stabiliser is per (b, key
 * head), as in the reference. */
static void test_gqa_favor(void **state)
{
    (void)state;
    const size_t B = 1, H = 4, Hk = 2, N = 33, D = 8, Dv = 3, M = 20;
    size_t nq = B * H * N * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv, no = B * H * N * Dv;
    uint64_t seed = 91;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(H * (2 * N - 1), 1.0f, &seed);
    float *w = malloc(M * D * 4), *ref = malloc(no * 4), *out = tu_poisoned(no);
    assert_non_null(w);
    assert_non_null(ref);
    assert_int_equal(clattn_linear_favor_draw(M, D, 3, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w), CLATTN_SUCCESS);
    size_t qs[4] = {B, H, N, D}, ks[4] = {B, Hk, N, D}, vs[4] = {B, Hk, N, Dv};
    for (size_t a = 0; a < 2; a++)
        for (int causal = 0; causal < 2; causal++) {
            clattn_rpe_desc d;
            clattn_rpe_desc_init(&d);
            d.linear.feature_map = CLATTN_LINEAR_FEATURE_FAVOR;
            d.linear.features = M;
            d.linear.seed = 3;
            d.causal = causal;
            d.algorithm = algos[a];
            ref_rpe_gqa(q, k, v, bias, ref, B, H, Hk, N, D, Dv, 3, w, M,
                        CLATTN_LINEAR_DEFAULT_EPS, causal);
            if (clattn_rpe_host(ctx, &d, qs, ks, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
                fail_msg("gqa favor: %s", clattn_context_last_error(ctx));
            char what[64];
            snprintf(what, sizeof what, "gqa favor %s causal %d", algo_name(algos[a]), causal);
            tu_check_close(out, ref, no, TOL, what);
        }
    free(q);
    free(k);
    free(v);
    free(bias);
    free(w);
    free(ref);
    free(out);
}

/* ||a - b||_2 / ||b||_2 */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double e = 0, r = 0;
    for (size_t x = 0; x < n; x++) {
        e += ((double)a[x] - b[x]) * ((double)a[x] - b[x]);
        r += (double)b[x] * b[x];
    }
    return sqrt(e / r);
}

/* eps means the formula's eps (clattn.h): o_i = sum_j w_ij v_j / (sum_j w_ij + eps) with the true
 * weights, whatever stabilisers the sums run on -- FAVOR's query row scales and key head scales,
 * each query head's bias maximum. Keys of large |k| (FAVOR: their log-scales spread, the largest
 * sets the head's scale) and a bias far below 0 (ELU) put the true denominators far from the
 * stabilised ones, so eps added to a stabilised denominator moves the outputs away from the
 * reference, which adds it in the formula's scale. The data are checked to make eps visible
 * there (the outputs with and without it differ by >= 3e-3, 30 times the tolerance). Both paths,
 * causal and not, grouped query heads (the key scale per (b, key head)). */
static void test_eps_formula_scale(void **state)
{
    (void)state;
    const size_t B = 1, H = 4, Hk = 2, N = 40, D = 8, Dv = 4, M = 16;
    size_t nq = B * H * N * D, nk = B * Hk * N * D, nv = B * Hk * N * Dv, no = B * H * N * Dv;
    size_t nb = H * (2 * N - 1), qs[4] = {B, H, N, D}, ks[4] = {B, Hk, N, D}, vs[4] = {B, Hk, N, Dv};
    static const struct {
        clattn_linear_feature_map fmap;
        float k_amp, bias_shift, eps;
    } cases[] = {{CLATTN_LINEAR_FEATURE_FAVOR, 4.0f, 0.0f, 0.2f},
                 {CLATTN_LINEAR_FEATURE_ELU, 1.0f, -6.0f, 0.05f}};
    float *w = malloc(M * D * 4), *ref = malloc(no * 4), *ref0 = malloc(no * 4);
    assert_non_null(w);
    assert_non_null(ref);
    assert_non_null(ref0);
    assert_int_equal(clattn_linear_favor_draw(M, D, 5, CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS, w),
                     CLATTN_SUCCESS);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint64_t seed = 123;
        float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nk, cases[c].k_amp, &seed);
        float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(nb, 1.0f, &seed);
        for (size_t x = 0; x < nb; x++)
            bias[x] += cases[c].bias_shift;
        int fmap = (int)cases[c].fmap;
        for (size_t a = 0; a < 2; a++)
            for (int causal = 0; causal < 2; causal++) {
                char what[96];
                snprintf(what, sizeof what, "eps %g fmap %d %s causal %d",
                         (double)cases[c].eps, fmap, algo_name(algos[a]), causal);
                ref_rpe_gqa(q, k, v, bias, ref, B, H, Hk, N, D, Dv, fmap, w, M, cases[c].eps,
                            causal);
                ref_rpe_gqa(q, k, v, bias, ref0, B, H, Hk, N, D, Dv, fmap, w, M, 0.0, causal);
                double moved = rel_diff(ref0, ref, no);
                if (!(moved >= 3e-3))
                    fail_msg("%s: eps moves the reference by only %.2e", what, moved);
                clattn_rpe_desc d;
                clattn_rpe_desc_init(&d);
                d.linear.feature_map = cases[c].fmap;
                d.linear.features = M;
                d.linear.seed = 5;
                d.linear.eps = cases[c].eps;
                d.causal = causal;
                d.algorithm = algos[a];
                float *out = tu_poisoned(no);
                if (clattn_rpe_host(ctx, &d, qs, ks, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
                    fail_msg("%s: %s", what, clattn_context_last_error(ctx));
                tu_check_close(out, ref, no, TOL, what);
                free(out);
            }
        free(q);
        free(k);
        free(v);
        free(bias);
    }
    free(w);
    free(ref);
    free(ref0);
}

/* eps = 0 means no eps (not the default): RELU features with every fourth query row all negative
 * (phi(q) = 0: a denominator of exactly 0, whose row outputs 0) and the rows after them tiny
 * (phi(q) ~ 1e-6: a denominator near the default eps, which would move them visibly), against
 * the reference without eps, on both paths, causal and not. */
static void test_eps_zero(void **state)
{
    (void)state;
    const size_t B = 1, H = 2, N = 40, D = 6, Dv = 3;
    size_t nq = B * H * N * D, nv = B * H * N * Dv, nb = H * (2 * N - 1);
    size_t qs[4] = {B, H, N, D}, vs[4] = {B, H, N, Dv};
    uint64_t seed = 29;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed);
    float *v = tu_random(nv, 1.0f, &seed), *bias = tu_random(nb, 1.0f, &seed);
    float *ref = malloc(nv * 4), *refd = malloc(nv * 4);
    assert_non_null(ref);
    assert_non_null(refd);
    for (size_t row = 0; row < B * H * N; row++)
        for (size_t x = 0; x < D; x++) {
            float *e = &q[row * D + x];
            if (row % 4 == 0)
                *e = -fabsf(*e) - 0.1f;
            else if (row % 4 == 1)
                *e = (fabsf(*e) + 0.1f) * 1e-6f;
        }
    for (size_t a = 0; a < 2; a++)
        for (int causal = 0; causal < 2; causal++) {
            char what[64];
            snprintf(what, sizeof what, "eps 0, %s causal %d", algo_name(algos[a]), causal);
            ref_rpe_attention(q, k, v, bias, ref, B, H, N, D, Dv, 1, 0.0, causal);
            ref_rpe_attention(q, k, v, bias, refd, B, H, N, D, Dv, 1, CLATTN_LINEAR_DEFAULT_EPS,
                              causal);
            double moved = rel_diff(refd, ref, nv);
            if (!(moved >= 3e-3))
                fail_msg("%s: the default eps moves the reference by only %.2e", what, moved);
            clattn_rpe_desc d;
            clattn_rpe_desc_init(&d);
            d.linear.feature_map = CLATTN_LINEAR_FEATURE_RELU;
            d.linear.eps = 0.0f;
            d.causal = causal;
            d.algorithm = algos[a];
            float *out = tu_poisoned(nv);
            if (clattn_rpe_host(ctx, &d, qs, qs, vs, q, k, v, bias, out) != CLATTN_SUCCESS)
                fail_msg("%s: %s", what, clattn_context_last_error(ctx));
            tu_check_close(out, ref, nv, TOL, what);
            for (size_t row = 0; row < B * H * N; row += 4)
                for (size_t e = 0; e < Dv; e++)
                    if (out[row * Dv + e] != 0.0f)
                        fail_msg("%s, zero denominator, row %zu: %g, want 0", what, row,
                                 (double)out[row * Dv + e]);
            free(out);
        }
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
    free(refd);
}

/* The caller's wait list is honoured on both paths: nothing runs before its user event. The FFT
 * plans of this shape are baked inside the gated call (no shape here is used elsewhere): clFFT's
 * baking writes blocking on its queue, so the adapter must not bake on the context's queue, where
 * it would wait forever behind the gated commands. */
static void test_wait_list(void **state)
{
    (void)state;
    if (basic_device) {
        fprintf(stderr, "note: user-event gating skipped on PoCL's basic device (driver bug)\n");
        return;
    }
    size_t N = 20, D = 4, nq = N * D;
    uint64_t seed = 3;
    float *q = tu_random(nq, 1.0f, &seed), *k = tu_random(nq, 1.0f, &seed),
          *v = tu_random(nq, 1.0f, &seed);
    float *bias = tu_random(2 * N - 1, 1.0f, &seed), *ref = malloc(nq * 4), *out = tu_poisoned(nq);
    ref_rpe_attention(q, k, v, bias, ref, 1, 1, N, D, D, 0, CLATTN_LINEAR_DEFAULT_EPS, 1);
    for (size_t a = 0; a < 2; a++) {
        cl_int err;
        cl_event user = clCreateUserEvent(clattn_context_get_cl_context(ctx), &err);
        assert_int_equal(err, CL_SUCCESS);
        cl_mem bq = tu_buffer(ctx, nq * 4, q), bk = tu_buffer(ctx, nq * 4, k),
               bv = tu_buffer(ctx, nq * 4, v);
        cl_mem bb = tu_buffer(ctx, (2 * N - 1) * 4, bias), bo = tu_buffer(ctx, nq * 4, out);
        clattn_tensor tq = clattn_tensor_make(bq, 1, 1, N, D);
        clattn_tensor tk = clattn_tensor_make(bk, 1, 1, N, D);
        clattn_tensor tv = clattn_tensor_make(bv, 1, 1, N, D);
        clattn_tensor to = clattn_tensor_make(bo, 1, 1, N, D);
        clattn_tensor tb = clattn_tensor_make(bb, 1, 1, 1, 2 * N - 1);
        clattn_rpe_desc d;
        clattn_rpe_desc_init(&d);
        d.causal = 1;
        d.algorithm = algos[a];
        cl_event done = NULL;
        assert_int_equal(clattn_rpe_enqueue(ctx, &d, &tq, &tk, &tv, &tb, &to, 1, &user, &done),
                         CLATTN_SUCCESS);
        assert_non_null(done);
        clFlush(queue());
        cl_int es = 0;
        clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof es, &es, NULL);
        assert_true(es != CL_COMPLETE);
        clSetUserEventStatus(user, CL_COMPLETE);
        assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
        clReleaseEvent(done);
        clReleaseEvent(user);
        float *got = tu_poisoned(nq);
        tu_read(ctx, bo, nq * 4, got);
        tu_check_close(got, ref, nq, TOL, "after wait list");
        free(got);
        cl_mem all[] = {bq, bk, bv, bb, bo};
        for (int i = 0; i < 5; i++)
            clReleaseMemObject(all[i]);
    }
    free(q);
    free(k);
    free(v);
    free(bias);
    free(ref);
    free(out);
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
    basic_device = strncmp(info.name, "basic", 5) == 0;
    loop_cap = info.loop_iteration_cap != 0;
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
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_head_dims),
        cmocka_unit_test(test_strides_and_large_bias),
        cmocka_unit_test(test_fft_groups),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_favor),
        cmocka_unit_test(test_zero_bias_is_linear),
        cmocka_unit_test(test_single_offset),
        cmocka_unit_test(test_nonfinite_device_bias),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_gqa_favor),
        cmocka_unit_test(test_eps_formula_scale),
        cmocka_unit_test(test_eps_zero),
        cmocka_unit_test(test_wait_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
