/* Half storage (f16, bf16) in the SSM family (issue 15): u and y of the SSM plans (direct and FFT,
 * handle and convolution plans, full S4), the decoding steps (diagonal and S4), and x and out of
 * the GSS layer, against fp64 references computed on the same half-rounded inputs, with the
 * accuracy contract's check (tu_check_typed: one ulp of the output type plus the fp32 suites'
 * tolerance, 1e-4 at the outputs' scale, normalised error 1e-5). The type matrix of issue 15:
 * all-f16, all-bf16, f16 in / f32 out, f32 in / f16 out, bf16 in / f16 out; L = 1; bad input (an
 * unknown dtype: INVALID_ARGUMENT; a tensor of another type than the plan's: DTYPE_MISMATCH)
 * leaves the outputs byte-identical. Shapes of tens. */
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
#include "reference/ref_gss.h"
#include "reference/ref_ssm.h"
#include "reference/ref_ssm_s4.h"
#include "test_ssm_fixture.h"
#include "test_util.h"

static clattn_context *ctx;

#define EXPECT_OK(call) SSM_OK(ctx, call)
#define EXPECT(call, want) tu_expect_status(ctx, (call), (want), #call)

typedef struct combo {
    clattn_dtype in, out;
} combo;

static const combo combos[] = {{CLATTN_F16, CLATTN_F16},
                               {CLATTN_BF16, CLATTN_BF16},
                               {CLATTN_F16, CLATTN_F32},
                               {CLATTN_F32, CLATTN_F16},
                               {CLATTN_BF16, CLATTN_F16}};
#define NCOMBO (sizeof combos / sizeof combos[0])

/* The contract's check at the outputs' scale (as ssm_check_close for float32).
 */
static void check_typed(const void *got, clattn_dtype dt, const double *ref, size_t n,
                        const char *what, const combo *c)
{
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    char name[160];
    snprintf(name, sizeof name, "%s (%s -> %s)", what, clattn_dtype_name(c->in),
             clattn_dtype_name(c->out));
    tu_check_typed(got, dt, ref, n, (tu_tol){1e-4 * scale, 0.0, 1e-5}, name);
}

/* y = K * u + D u in fp64 (K [H][L]; D NULL: none). */
static void conv_d(const float *u, const double *K, const float *D, size_t B, size_t H, size_t L,
                   double *y)
{
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            const float *ur = u + (b * H + h) * L;
            for (size_t l = 0; l < L; l++) {
                double s = D ? (double)D[h] * ur[l] : 0.0;
                for (size_t j = 0; j <= l; j++)
                    s += K[h * L + j] * ur[l - j];
                y[(b * H + h) * L + l] = s;
            }
        }
}

/* A device copy of x as dt, and a device buffer of n poisoned dt elements. */
static cl_mem typed_buffer(const float *x, size_t n, clattn_dtype dt)
{
    void *p = tu_pack(x, n, dt);
    cl_mem m = tu_buffer(ctx, n * clattn_dtype_size(dt), p);
    free(p);
    return m;
}

static cl_mem typed_poisoned(size_t n, clattn_dtype dt)
{
    cl_mem m = tu_buffer(ctx, n * clattn_dtype_size(dt), NULL);
    tu_poison_buffer(ctx, m, n * clattn_dtype_size(dt));
    return m;
}

static void write_dev(cl_mem m, size_t bytes, const void *src)
{
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    assert_int_equal(clEnqueueWriteBuffer(q, m, CL_TRUE, 0, bytes, src, 0, NULL, NULL), CL_SUCCESS);
}

static void *read_typed(cl_mem m, size_t n, clattn_dtype dt)
{
    void *p = malloc(n * clattn_dtype_size(dt));
    assert_non_null(p);
    tu_read(ctx, m, n * clattn_dtype_size(dt), p);
    return p;
}

/* One SSM convolution case of handle `s` (K given in fp64) for every
 * combination: plans by FFT and directly, the one-shot call, and (diag) a
 * convolution plan with K as a float32 tensor. */
static void run_conv_matrix(clattn_ssm *s, const double *K, const float *D, size_t B, size_t H,
                            size_t L, int conv_too, const char *what)
{
    size_t n = B * H * L;
    uint64_t seed = 77 + L;
    float *u0 = tu_random(n, 1.0f, &seed);
    float *u = malloc(n * sizeof(float)), *kf = malloc(H * L * sizeof(float));
    double *ref = malloc(n * sizeof(double));
    assert_true(u && kf && ref);
    for (size_t i = 0; i < H * L; i++)
        kf[i] = (float)K[i];
    double *kd = malloc(H * L * sizeof(double));
    assert_non_null(kd);
    for (size_t i = 0; i < H * L; i++)
        kd[i] = kf[i]; /* the convolution plan's float32 kernel */
    size_t shape[4] = {B, H, L, 1};
    cl_mem bk = tu_buffer(ctx, H * L * 4, kf), bd = tu_buffer(ctx, H * 4, (void *)D);
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L, 1), td = clattn_tensor_make(bd, 1, H, 1, 1);
    for (size_t c = 0; c < NCOMBO; c++) {
        const combo *cb = &combos[c];
        memcpy(u, u0, n * sizeof(float));
        tu_round_to(u, n, cb->in);
        conv_d(u, K, D, B, H, L, ref);
        cl_mem bu = typed_buffer(u, n, cb->in), by = typed_poisoned(n, cb->out);
        clattn_tensor tu = clattn_tensor_make_typed(bu, cb->in, B, H, L, 1);
        clattn_tensor ty = clattn_tensor_make_typed(by, cb->out, B, H, L, 1);
        static const clattn_ssm_algo algos[2] = {CLATTN_SSM_FFT, CLATTN_SSM_DIRECT};
        for (int a = 0; a < 2; a++) {
            char name[96];
            clattn_ssm_desc d;
            clattn_ssm_desc_init(&d);
            d.algorithm = algos[a];
            d.u_dtype = cb->in;
            d.y_dtype = cb->out;
            clattn_plan *plan = NULL;
            EXPECT_OK(clattn_ssm_plan_create(ctx, &d, s, shape, &plan));
            EXPECT_OK(clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, NULL));
            void *got = read_typed(by, n, cb->out);
            snprintf(name, sizeof name, "%s %s plan", what, a ? "direct" : "fft");
            check_typed(got, cb->out, ref, n, name, cb);
            free(got);
            clattn_plan_destroy(plan);
            if (conv_too) {
                /* The convolution plan's one-shot takes the types from the tensors. */
                double *rk = malloc(n * sizeof(double));
                assert_non_null(rk);
                conv_d(u, kd, D, B, H, L, rk);
                tu_poison_buffer(ctx, by, n * clattn_dtype_size(cb->out));
                clattn_ssm_desc_init(&d);
                d.algorithm = algos[a];
                EXPECT_OK(clattn_ssm_conv_enqueue(ctx, &d, &tu, &tk, &td, &ty, 0, NULL, NULL));
                got = read_typed(by, n, cb->out);
                snprintf(name, sizeof name, "%s conv %s", what, a ? "direct" : "fft");
                check_typed(got, cb->out, rk, n, name, cb);
                free(got);
                free(rk);
            }
        }
        /* The handle's one-shot (AUTO), types from the tensors. */
        tu_poison_buffer(ctx, by, n * clattn_dtype_size(cb->out));
        EXPECT_OK(clattn_ssm_enqueue(s, NULL, &tu, &ty, 0, NULL, NULL));
        void *got = read_typed(by, n, cb->out);
        char name[96];
        snprintf(name, sizeof name, "%s one-shot", what);
        check_typed(got, cb->out, ref, n, name, cb);
        free(got);
        clReleaseMemObject(bu);
        clReleaseMemObject(by);
    }
    clReleaseMemObject(bk);
    clReleaseMemObject(bd);
    free(u0), free(u), free(kf), free(kd), free(ref);
}

static void test_ssm_matrix(void **state)
{
    (void)state;
    size_t B = 2, H = 3, N = 8, L = 37;
    ssm_params p;
    ssm_params_make(&p, H, N, 5);
    double *K = malloc(H * L * sizeof(double));
    assert_non_null(K);
    ref_ssm_kernel(p.A, p.Ct, p.log_dt, H, N, L, K);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    run_conv_matrix(s, K, p.D, B, H, L, 1, "ssm");
    clattn_ssm_destroy(s);
    /* L = 1 */
    ref_ssm_kernel(p.A, p.Ct, p.log_dt, H, N, 1, K);
    s = ssm_params_handle(ctx, &p, 1);
    run_conv_matrix(s, K, p.D, 3, H, 1, 0, "ssm L=1");
    clattn_ssm_destroy(s);
    free(K);
    ssm_params_free(&p);
}

/* Full S4 (HiPPO-LegS) handle plans in every combination. */
static void test_s4_matrix(void **state)
{
    (void)state;
    size_t B = 2, H = 2, N = 8, L = 29;
    uint64_t seed = 31;
    float lam[16], P[16], Bv[16];
    assert_int_equal(clattn_ssm_s4_hippo_legs(N, lam, P, Bv), CLATTN_SUCCESS);
    float *Lm = malloc(2 * H * N * 4), *Pm = malloc(2 * H * N * 4), *Bm = malloc(2 * H * N * 4);
    assert_true(Lm && Pm && Bm);
    for (size_t h = 0; h < H; h++) {
        memcpy(Lm + 2 * h * N, lam, sizeof lam);
        memcpy(Pm + 2 * h * N, P, sizeof P);
        memcpy(Bm + 2 * h * N, Bv, sizeof Bv);
    }
    float *C = tu_random(2 * H * N, 1.0f, &seed), *D = tu_random(H, 1.0f, &seed);
    float ldt[2] = {(float)log(0.01), (float)log(0.05)};
    double *K = malloc(H * L * sizeof(double));
    assert_non_null(K);
    ref_ssm_s4_kernel(Lm, Pm, NULL, Bm, C, ldt, H, N, L, K);
    clattn_ssm *s = NULL;
    EXPECT_OK(clattn_ssm_s4_create(ctx, H, N, L, Lm, Pm, NULL, Bm, C, ldt, D, &s));
    run_conv_matrix(s, K, D, B, H, L, 0, "s4");
    /* A few S4 decoding steps in f16 (state float32), against the convolution. */
    {
        size_t T = 4, n = B * H * T;
        float *u = tu_random(n, 1.0f, &seed);
        tu_round_to(u, n, CLATTN_F16);
        double *ref = malloc(n * sizeof(double)), *K4 = malloc(H * T * sizeof(double));
        assert_true(ref && K4);
        for (size_t h = 0; h < H; h++)
            for (size_t l = 0; l < T; l++)
                K4[h * T + l] = K[h * L + l];
        conv_d(u, K4, D, B, H, T, ref);
        clattn_ssm_state *st = NULL;
        EXPECT_OK(clattn_ssm_state_create(s, B, &st));
        cl_mem bu = tu_buffer(ctx, B * H * 2, NULL), by = tu_buffer(ctx, B * H * 2, NULL);
        clattn_tensor tu = clattn_tensor_make_typed(bu, CLATTN_F16, B, H, 1, 1);
        clattn_tensor ty = clattn_tensor_make_typed(by, CLATTN_F16, B, H, 1, 1);
        combo cb = {CLATTN_F16, CLATTN_F16};
        for (size_t l = 0; l < T; l++) {
            float ut[4];
            double rt[4];
            for (size_t i = 0; i < B * H; i++) {
                ut[i] = u[i * T + l];
                rt[i] = ref[i * T + l];
            }
            void *pk = tu_pack(ut, B * H, CLATTN_F16);
            write_dev(bu, B * H * 2, pk);
            free(pk);
            tu_poison_buffer(ctx, by, B * H * 2);
            EXPECT_OK(clattn_ssm_step(st, &tu, &ty, 0, NULL, NULL));
            void *got = read_typed(by, B * H, CLATTN_F16);
            check_typed(got, CLATTN_F16, rt, B * H, "s4 step", &cb);
            free(got);
        }
        clattn_ssm_state_destroy(st);
        clReleaseMemObject(bu);
        clReleaseMemObject(by);
        free(u), free(ref), free(K4);
    }
    clattn_ssm_destroy(s);
    free(K), free(Lm), free(Pm), free(Bm), free(C), free(D);
}

/* Diagonal decoding steps: f16 u and y, then bf16 u with f32 y, from a zero
 * state against the fp64 recurrence on the rounded inputs. */
static void test_steps(void **state)
{
    (void)state;
    size_t B = 2, H = 3, N = 8, T = 5;
    ssm_params p;
    ssm_params_make(&p, H, N, 9);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    clattn_ssm_state *st = NULL;
    EXPECT_OK(clattn_ssm_state_create(s, B, &st));
    static const combo cs[2] = {{CLATTN_F16, CLATTN_F16}, {CLATTN_BF16, CLATTN_F32}};
    uint64_t seed = 4;
    for (int c = 0; c < 2; c++) {
        size_t n = B * H * T;
        float *u = tu_random(n, 1.0f, &seed), *rf = malloc(n * sizeof(float));
        assert_non_null(rf);
        tu_round_to(u, n, cs[c].in);
        ref_ssm_recurrence(u, p.A, p.Ct, p.log_dt, p.D, B, H, N, T, rf);
        EXPECT_OK(clattn_ssm_state_reset(st, 0, NULL, NULL));
        cl_mem bu = tu_buffer(ctx, B * H * 4, NULL), by = tu_buffer(ctx, B * H * 4, NULL);
        clattn_tensor tu = clattn_tensor_make_typed(bu, cs[c].in, B, H, 1, 1);
        clattn_tensor ty = clattn_tensor_make_typed(by, cs[c].out, B, H, 1, 1);
        for (size_t l = 0; l < T; l++) {
            float ut[6];
            double rt[6];
            for (size_t i = 0; i < B * H; i++) {
                ut[i] = u[i * T + l];
                rt[i] = rf[i * T + l];
            }
            void *pk = tu_pack(ut, B * H, cs[c].in);
            write_dev(bu, B * H * clattn_dtype_size(cs[c].in), pk);
            free(pk);
            tu_poison_buffer(ctx, by, B * H * 4);
            EXPECT_OK(clattn_ssm_step(st, &tu, &ty, 0, NULL, NULL));
            void *got = read_typed(by, B * H, cs[c].out);
            check_typed(got, cs[c].out, rt, B * H, "ssm step", &cs[c]);
            free(got);
        }
        clReleaseMemObject(bu);
        clReleaseMemObject(by);
        free(u), free(rf);
    }
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

/* The GSS layer: x and out in every combination (plans from the desc, and one
 * one-shot). */
static void test_gss_matrix(void **state)
{
    (void)state;
    size_t B = 2, L = 13, E = 12, F = 10, H = 4, N = 4, T = B * L, n = T * E;
    ssm_params p;
    ssm_params_make(&p, H, N, 55);
    uint64_t seed = 99;
    float *h[11];
    h[0] = tu_random(n, 2.0f, &seed);
    for (size_t i = 0; i < n; i += 3)
        h[0][i] += 5.0f;
    h[1] = tu_random(E, 1.0f, &seed);
    h[2] = tu_random(E, 0.5f, &seed);
    h[3] = tu_random(E * F, 1.0f / sqrtf((float)E), &seed);
    h[4] = tu_random(F, 0.2f, &seed);
    h[5] = tu_random(E * H, 1.0f / sqrtf((float)E), &seed);
    h[6] = tu_random(H, 0.2f, &seed);
    h[7] = tu_random(H * F, 0.5f, &seed);
    h[8] = tu_random(F, 0.2f, &seed);
    h[9] = tu_random(F * E, 1.0f / sqrtf((float)F), &seed);
    h[10] = tu_random(E, 0.2f, &seed);
    clattn_gss_weights w;
    cl_mem *slots[10] = {&w.ln_gamma, &w.ln_beta, &w.w_v,  &w.b_v,  &w.w_u,
                         &w.b_u,      &w.w_o1,    &w.b_o1, &w.w_o2, &w.b_o2};
    size_t sizes[10] = {E, E, E * F, F, E * H, H, H * F, F, F * E, E};
    for (int i = 0; i < 10; i++)
        *slots[i] = tu_buffer(ctx, sizes[i] * 4, h[i + 1]);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    size_t shape[4] = {B, 1, L, E};
    float *x = malloc(n * sizeof(float)), *rf = malloc(n * sizeof(float));
    double *ref = malloc(n * sizeof(double));
    assert_true(x && rf && ref);
    for (size_t c = 0; c < NCOMBO; c++) {
        const combo *cb = &combos[c];
        memcpy(x, h[0], n * sizeof(float));
        tu_round_to(x, n, cb->in);
        ref_gss(x, B, L, E, F, H, N, h[1], h[2], 1e-5, h[3], h[4], h[5], h[6], h[7], h[8], h[9],
                h[10], p.A, p.Ct, p.log_dt, p.D, rf);
        for (size_t i = 0; i < n; i++)
            ref[i] = rf[i];
        cl_mem bx = typed_buffer(x, n, cb->in), bo = typed_poisoned(n, cb->out);
        clattn_tensor tx = clattn_tensor_make_typed(bx, cb->in, B, 1, L, E);
        clattn_tensor to = clattn_tensor_make_typed(bo, cb->out, B, 1, L, E);
        clattn_gss_desc d;
        clattn_gss_desc_init(&d);
        d.algorithm = c % 2 ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        d.x_dtype = cb->in;
        d.out_dtype = cb->out;
        clattn_plan *plan = NULL;
        EXPECT_OK(clattn_gss_plan_create(ctx, &d, s, F, shape, &plan));
        EXPECT_OK(clattn_gss_plan_enqueue(plan, &w, &tx, &to, 0, NULL, NULL));
        void *got = read_typed(bo, n, cb->out);
        check_typed(got, cb->out, ref, n, "gss plan", cb);
        free(got);
        clattn_plan_destroy(plan);
        if (c == 0) {
            tu_poison_buffer(ctx, bo, n * clattn_dtype_size(cb->out));
            EXPECT_OK(clattn_gss_enqueue(ctx, NULL, s, &w, F, &tx, &to, 0, NULL, NULL));
            got = read_typed(bo, n, cb->out);
            check_typed(got, cb->out, ref, n, "gss one-shot", cb);
            free(got);
        }
        clReleaseMemObject(bx);
        clReleaseMemObject(bo);
    }
    for (int i = 0; i < 10; i++)
        clReleaseMemObject(*slots[i]);
    for (int i = 0; i < 11; i++)
        free(h[i]);
    free(x), free(rf), free(ref);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

/* Unknown dtypes (INVALID_ARGUMENT) and tensors of another type than the plan's
 * (DTYPE_MISMATCH): refused, outputs untouched. */
static void test_bad_input(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 4, L = 9, n = B * H * L;
    ssm_params p;
    ssm_params_make(&p, H, N, 3);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    size_t shape[4] = {B, H, L, 1};
    cl_mem bu = tu_buffer(ctx, n * 4, NULL), by = typed_poisoned(n, CLATTN_F32);
    cl_mem bk = tu_buffer(ctx, H * L * 4, NULL);
    tu_poison_buffer(ctx, bu, n * 4);
    clattn_tensor u32 = clattn_tensor_make(bu, B, H, L, 1),
                  y32 = clattn_tensor_make(by, B, H, L, 1);
    clattn_tensor u16 = clattn_tensor_make_typed(bu, CLATTN_F16, B, H, L, 1);
    clattn_tensor y16 = clattn_tensor_make_typed(by, CLATTN_F16, B, H, L, 1);
    clattn_tensor k16 = clattn_tensor_make_typed(bk, CLATTN_F16, 1, H, L, 1);
    clattn_tensor ubad = u32;
    ubad.dtype = (clattn_dtype)7;
    tu_watch wt;
    tu_watch_init(&wt, ctx);
    tu_watch_buffer(&wt, by, n * 4, "y");
    clattn_plan *plan = NULL;
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.u_dtype = (clattn_dtype)3;
    EXPECT(clattn_ssm_plan_create(ctx, &d, s, shape, &plan), CLATTN_INVALID_ARGUMENT);
    assert_null(plan);
    clattn_ssm_desc_init(&d);
    d.y_dtype = (clattn_dtype)-1;
    EXPECT(clattn_ssm_conv_plan_create(ctx, &d, shape, &plan), CLATTN_INVALID_ARGUMENT);
    EXPECT(clattn_ssm_enqueue(s, &d, &u32, &y32, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    EXPECT(clattn_ssm_enqueue(s, NULL, &ubad, &y32, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    /* An f16 plan given float32 views (and the reverse). */
    clattn_ssm_desc_init(&d);
    d.u_dtype = CLATTN_F16;
    d.y_dtype = CLATTN_F32;
    d.algorithm = CLATTN_SSM_DIRECT;
    EXPECT_OK(clattn_ssm_plan_create(ctx, &d, s, shape, &plan));
    /* The types are in the plan's launch string and its kernels' options. */
    clattn_plan_info info;
    EXPECT_OK(clattn_plan_get_info(plan, &info));
    if (!strstr(info.launch, "dtype=hs") || !strstr(info.build_options, "-DU_DT=1"))
        fail_msg("f16/f32 plan info: launch '%s', options '%s'", info.launch, info.build_options);
    EXPECT(clattn_ssm_plan_enqueue(plan, &u32, &y32, 0, NULL, NULL), CLATTN_DTYPE_MISMATCH);
    EXPECT(clattn_ssm_plan_enqueue(plan, &u16, &y16, 0, NULL, NULL), CLATTN_DTYPE_MISMATCH);
    clattn_plan_destroy(plan);
    plan = NULL;
    /* A convolution plan's kernel stays float32. */
    EXPECT(clattn_ssm_conv_enqueue(ctx, NULL, &u32, &k16, NULL, &y32, 0, NULL, NULL),
           CLATTN_DTYPE_MISMATCH);
    /* The step: an unknown type. */
    clattn_ssm_state *st = NULL;
    EXPECT_OK(clattn_ssm_state_create(s, B, &st));
    clattn_tensor su = clattn_tensor_make(bu, B, H, 1, 1), sy = clattn_tensor_make(by, B, H, 1, 1);
    su.dtype = (clattn_dtype)5;
    EXPECT(clattn_ssm_step(st, &su, &sy, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    clattn_ssm_state_destroy(st);
    tu_watch_check(&wt, "refused SSM calls");
    tu_watch_free(&wt);
    /* GSS: unknown desc type, and a plan of f16 x given float32 x. */
    {
        size_t E = 4, F = 3, T = 9, Lg = 9;
        clattn_gss_weights w;
        memset(&w, 0, sizeof w);
        w.w_v = tu_buffer(ctx, E * F * 4, NULL);
        w.w_u = tu_buffer(ctx, E * H * 4, NULL);
        w.w_o1 = tu_buffer(ctx, H * F * 4, NULL);
        w.w_o2 = tu_buffer(ctx, F * E * 4, NULL);
        cl_mem bx = tu_buffer(ctx, T * E * 4, NULL), bo = typed_poisoned(T * E, CLATTN_F32);
        tu_poison_buffer(ctx, bx, T * E * 4);
        clattn_tensor tx = clattn_tensor_make(bx, 1, 1, Lg, E),
                      to = clattn_tensor_make(bo, 1, 1, Lg, E);
        size_t xs[4] = {1, 1, Lg, E};
        tu_watch_init(&wt, ctx);
        tu_watch_buffer(&wt, bo, T * E * 4, "out");
        clattn_gss_desc gd;
        clattn_gss_desc_init(&gd);
        gd.out_dtype = (clattn_dtype)9;
        EXPECT(clattn_gss_plan_create(ctx, &gd, s, F, xs, &plan), CLATTN_INVALID_ARGUMENT);
        assert_null(plan);
        clattn_tensor xbad = tx;
        xbad.dtype = (clattn_dtype)4;
        EXPECT(clattn_gss_enqueue(ctx, NULL, s, &w, F, &xbad, &to, 0, NULL, NULL),
               CLATTN_INVALID_ARGUMENT);
        clattn_gss_desc_init(&gd);
        gd.x_dtype = CLATTN_F16;
        EXPECT_OK(clattn_gss_plan_create(ctx, &gd, s, F, xs, &plan));
        EXPECT(clattn_gss_plan_enqueue(plan, &w, &tx, &to, 0, NULL, NULL), CLATTN_DTYPE_MISMATCH);
        clattn_plan_destroy(plan);
        tu_watch_check(&wt, "refused GSS calls");
        tu_watch_free(&wt);
        clReleaseMemObject(w.w_v), clReleaseMemObject(w.w_u), clReleaseMemObject(w.w_o1);
        clReleaseMemObject(w.w_o2), clReleaseMemObject(bx), clReleaseMemObject(bo);
    }
    clReleaseMemObject(bu), clReleaseMemObject(by), clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

static int setup(void **state)
{
    (void)state;
    return ssm_open(&ctx);
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
        cmocka_unit_test(test_ssm_matrix), cmocka_unit_test(test_s4_matrix),
        cmocka_unit_test(test_steps),      cmocka_unit_test(test_gss_matrix),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
