/* Diagonal state-space models (S4D / DSS) and the GSS layer against the fp64 host reference
 * (tests/reference/ref_ssm.c: the kernel by its definition with complex exponentials, the causal
 * convolution as a direct sum, the recurrence step by step, GSS as Figure 1's pseudocode), on the
 * device chosen by CLATTN_DEVICE.
 *
 * Parameters follow S4D-Lin's initialisation (A = -1/2 + i pi n, log dt uniform in
 * [log 0.001, log 0.1]), with C random and Ct from the zero-order hold, so kernels decay slowly
 * for small dt and oscillate fast for large n: the long-L cases test the accuracy of the powers.
 * Inputs are random from fixed seeds; outputs are poisoned with NaN before each run.
 * Tolerance (DESIGN.md §4): max|out - ref| <= 1e-4 * max(1, max|ref|). */
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
#include "reference/ref_softmax.h"
#include "reference/ref_ssm.h"

#define TOL 1e-4
#define PI 3.14159265358979323846

static clattn_context *ctx;
static int basic_device; /* PoCL's serial device: user events deadlock it */

static cl_command_queue queue(void) { return clattn_context_get_cl_queue(ctx); }

static cl_mem make_buf(size_t floats, const float *init)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_get_cl_context(ctx), CL_MEM_READ_WRITE,
                              floats * sizeof(float), NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    if (init)
        assert_int_equal(clEnqueueWriteBuffer(queue(), m, CL_TRUE, 0, floats * sizeof(float),
                                              init, 0, NULL, NULL),
                         CL_SUCCESS);
    return m;
}

static cl_mem poisoned_buf(size_t floats)
{
    float nan = NAN;
    cl_mem m = make_buf(floats, NULL);
    assert_int_equal(clEnqueueFillBuffer(queue(), m, &nan, sizeof nan, 0, floats * sizeof(float),
                                         0, NULL, NULL),
                     CL_SUCCESS);
    return m;
}

static float *read_buf(cl_mem m, size_t floats)
{
    float *x = malloc(floats * sizeof(float));
    assert_non_null(x);
    assert_int_equal(clattn_context_finish(ctx), CLATTN_SUCCESS);
    assert_int_equal(
        clEnqueueReadBuffer(queue(), m, CL_TRUE, 0, floats * sizeof(float), x, 0, NULL, NULL),
        CL_SUCCESS);
    return x;
}

static float *rand_floats(size_t n, float amp, uint64_t *seed)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    ref_fill_uniform(x, n, amp, seed);
    return x;
}

static void check_close(const float *got, const float *ref, size_t n, const char *what)
{
    double maxref = 0, err = ref_max_abs_diff(got, ref, n, &maxref);
    if (!(err <= TOL * fmax(1.0, maxref)))
        fail_msg("%s: error %.3e (max|ref| %.3e)", what, err, maxref);
}

/* S4D-Lin parameters with Ct from the zero-order hold (computed by the library, checked against
 * the reference in test_zoh). */
typedef struct params {
    size_t H, N;
    float *A, *Ct, *log_dt, *D;
} params;

static void params_make(params *p, size_t H, size_t N, uint64_t seed)
{
    p->H = H;
    p->N = N;
    p->A = malloc(2 * H * N * sizeof(float));
    p->Ct = malloc(2 * H * N * sizeof(float));
    p->log_dt = malloc(H * sizeof(float));
    p->D = rand_floats(H, 1.0f, &seed);
    assert_true(p->A && p->Ct && p->log_dt);
    float *C = rand_floats(2 * H * N, 1.0f, &seed), *r = rand_floats(H, 1.0f, &seed);
    for (size_t h = 0; h < H; h++) {
        p->log_dt[h] = (float)(log(0.001) + (0.5 + 0.5 * r[h]) * (log(0.1) - log(0.001)));
        for (size_t n = 0; n < N; n++) {
            p->A[2 * (h * N + n)] = -0.5f;
            p->A[2 * (h * N + n) + 1] = (float)(PI * (double)n);
        }
    }
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, p->A, NULL, C, p->log_dt, 1, p->Ct),
                     CLATTN_SUCCESS);
    free(C);
    free(r);
}

static void params_free(params *p)
{
    free(p->A);
    free(p->Ct);
    free(p->log_dt);
    free(p->D);
}

static clattn_ssm *ssm_of(const params *p, int with_d)
{
    clattn_ssm *s = NULL;
    assert_int_equal(
        clattn_ssm_create(ctx, p->H, p->N, p->A, p->Ct, p->log_dt, with_d ? p->D : NULL, &s),
        CLATTN_SUCCESS);
    return s;
}

static void test_zoh(void **state)
{
    (void)state;
    size_t H = 3, N = 5;
    uint64_t seed = 11;
    float *A = rand_floats(2 * H * N, 1.0f, &seed), *B = rand_floats(2 * H * N, 1.0f, &seed);
    float *C = rand_floats(2 * H * N, 1.0f, &seed), *ldt = rand_floats(H, 2.0f, &seed);
    for (size_t i = 0; i < H * N; i++)
        A[2 * i] = -fabsf(A[2 * i]) - 0.01f;
    float got[30], ref[30];
    for (int pairs = 0; pairs < 2; pairs++) {
        assert_int_equal(clattn_ssm_s4d_zoh(H, N, A, B, C, ldt, pairs, got), CLATTN_SUCCESS);
        ref_ssm_s4d_zoh(A, B, C, ldt, H, N, pairs, ref);
        check_close(got, ref, 2 * H * N, "zoh");
    }
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, A, NULL, C, ldt, 1, got), CLATTN_SUCCESS);
    ref_ssm_s4d_zoh(A, NULL, C, ldt, H, N, 1, ref);
    check_close(got, ref, 2 * H * N, "zoh B=1");
    /* Invalid: Ct untouched. */
    float keep[30];
    memcpy(keep, got, sizeof keep);
    ldt[1] = INFINITY;
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, A, B, C, ldt, 1, got), CLATTN_INVALID_ARGUMENT);
    ldt[1] = 0.0f;
    A[4] = A[5] = 0.0f;
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, A, B, C, ldt, 1, got), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_ssm_s4d_zoh(0, N, A, B, C, ldt, 1, got), CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, NULL, B, C, ldt, 1, got), CLATTN_NULL_POINTER);
    assert_memory_equal(keep, got, sizeof keep);
    free(A);
    free(B);
    free(C);
    free(ldt);
}

/* K against its definition, at lengths that need accurate powers; also a strided view. */
static void test_kernel(void **state)
{
    (void)state;
    static const size_t Ls[] = {1, 1000, 4097};
    params p;
    params_make(&p, 3, 16, 21);
    clattn_ssm *s = ssm_of(&p, 1);
    for (size_t i = 0; i < sizeof Ls / sizeof Ls[0]; i++) {
        size_t L = Ls[i];
        double *refd = malloc(p.H * L * sizeof(double));
        float *ref = malloc(p.H * L * sizeof(float));
        assert_true(refd && ref);
        ref_ssm_kernel(p.A, p.Ct, p.log_dt, p.H, p.N, L, refd);
        for (size_t j = 0; j < p.H * L; j++)
            ref[j] = (float)refd[j];
        cl_mem bk = poisoned_buf(p.H * L);
        clattn_tensor k = clattn_tensor_make(bk, 1, p.H, L, 1);
        assert_int_equal(clattn_ssm_kernel_enqueue(s, &k, 0, NULL, NULL), CLATTN_SUCCESS);
        float *got = read_buf(bk, p.H * L);
        check_close(got, ref, p.H * L, "kernel");
        free(got);
        clReleaseMemObject(bk);
        /* [L, H] storage: positions H apart. */
        bk = poisoned_buf(p.H * L);
        k.buffer = bk;
        k.strides[1] = 1;
        k.strides[2] = p.H;
        k.strides[0] = p.H * L;
        assert_int_equal(clattn_ssm_kernel_enqueue(s, &k, 0, NULL, NULL), CLATTN_SUCCESS);
        got = read_buf(bk, p.H * L);
        for (size_t h = 0; h < p.H; h++)
            for (size_t l = 0; l < L; l++)
                if (!(fabs(got[l * p.H + h] - refd[h * L + l]) <= TOL))
                    fail_msg("strided kernel h %zu l %zu: %g vs %g", h, l, got[l * p.H + h],
                             refd[h * L + l]);
        free(got);
        clReleaseMemObject(bk);
        free(refd);
        free(ref);
    }
    clattn_ssm_destroy(s);
    params_free(&p);
}

/* Slowly decaying, fast-oscillating modes over 70000 positions: l * Im(dt A) reaches 4e5 rad,
 * where a float product l * Im(dt A) is off by ~0.03 rad, while the modes keep a quarter and a
 * half of their amplitude at the end (|w|^L = exp(-1.4) and exp(-0.7)). */
static void test_kernel_long_phase(void **state)
{
    (void)state;
    size_t L = 70000;
    float A[4] = {-0.002f, 600.0f, -0.001f, 151.3f}, Ct[4] = {0.7f, -0.2f, 0.3f, 0.4f};
    float ldt[1] = {(float)log(0.01)};
    clattn_ssm *s = NULL;
    assert_int_equal(clattn_ssm_create(ctx, 1, 2, A, Ct, ldt, NULL, &s), CLATTN_SUCCESS);
    double *refd = malloc(L * sizeof(double));
    float *ref = malloc(L * sizeof(float));
    assert_true(refd && ref);
    ref_ssm_kernel(A, Ct, ldt, 1, 2, L, refd);
    for (size_t j = 0; j < L; j++)
        ref[j] = (float)refd[j];
    cl_mem bk = poisoned_buf(L);
    clattn_tensor k = clattn_tensor_make(bk, 1, 1, L, 1);
    assert_int_equal(clattn_ssm_kernel_enqueue(s, &k, 0, NULL, NULL), CLATTN_SUCCESS);
    float *got = read_buf(bk, L);
    /* Absolute check at the tail too, where the modes are still strong. */
    double tail = 0;
    for (size_t l = L - 1000; l < L; l++)
        tail = fmax(tail, fabs(got[l] - refd[l]));
    check_close(got, ref, L, "long kernel");
    assert_true(tail <= TOL);
    free(got);
    free(ref);
    free(refd);
    clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
}

/* y = K * u + D u by both algorithms, against the direct fp64 sum. */
static void run_forward(size_t B, size_t H, size_t N, size_t L, clattn_ssm_algo algo, int with_d)
{
    params p;
    params_make(&p, H, N, 100 + L);
    uint64_t seed = 5 + L;
    float *u = rand_floats(B * H * L, 1.0f, &seed), *ref = malloc(B * H * L * sizeof(float));
    assert_non_null(ref);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, with_d ? p.D : NULL, B, H, N, L, ref);
    clattn_ssm *s = ssm_of(&p, with_d);
    cl_mem bu = make_buf(B * H * L, u), by = poisoned_buf(B * H * L);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1), ty = clattn_tensor_make(by, B, H, L, 1);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = algo;
    assert_int_equal(clattn_ssm_enqueue(s, &d, &tu, &ty, 0, NULL, NULL), CLATTN_SUCCESS);
    float *got = read_buf(by, B * H * L);
    char what[96];
    snprintf(what, sizeof what, "ssm B%zu H%zu N%zu L%zu algo %d", B, H, N, L, (int)algo);
    check_close(got, ref, B * H * L, what);
    /* Again at the same length (cached kernel), then at another one, then back. */
    cl_mem by2 = poisoned_buf(B * H * L);
    ty.buffer = by2;
    assert_int_equal(clattn_ssm_enqueue(s, &d, &tu, &ty, 0, NULL, NULL), CLATTN_SUCCESS);
    float *got2 = read_buf(by2, B * H * L);
    assert_memory_equal(got, got2, B * H * L * sizeof(float));
    free(got2);
    free(got);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clReleaseMemObject(by2);
    clattn_ssm_destroy(s);
    free(u);
    free(ref);
    params_free(&p);
}

static void test_forward_fft(void **state)
{
    (void)state;
    run_forward(2, 3, 8, 1, CLATTN_SSM_FFT, 1);
    run_forward(2, 3, 8, 1000, CLATTN_SSM_FFT, 1);
    run_forward(1, 2, 16, 4097, CLATTN_SSM_FFT, 0);
    run_forward(1, 1, 1, 64, CLATTN_SSM_FFT, 1); /* N = 1 */
}

static void test_forward_direct(void **state)
{
    (void)state;
    run_forward(2, 3, 8, 1, CLATTN_SSM_DIRECT, 1);
    run_forward(2, 3, 8, 1000, CLATTN_SSM_DIRECT, 0);
    run_forward(1, 2, 16, 4097, CLATTN_SSM_DIRECT, 1);
    run_forward(1, 1, 1, 77, CLATTN_SSM_AUTO, 1);
    run_forward(1, 2, 4, 1500, CLATTN_SSM_AUTO, 1);
}

/* The long convolution alone with a random kernel and strided [B, L, H] views: FFT equals
 * direct, and both equal the reference. The length switches between calls. */
static void test_conv_strided(void **state)
{
    (void)state;
    size_t B = 2, H = 3, L = 1000;
    uint64_t seed = 77;
    float *u = rand_floats(B * H * L, 1.0f, &seed), *kf = rand_floats(H * L, 0.05f, &seed);
    float *dv = rand_floats(H, 1.0f, &seed);
    double *kd = malloc(H * L * sizeof(double));
    float *ref = malloc(B * H * L * sizeof(float)), *ublh = malloc(B * H * L * sizeof(float));
    assert_true(kd && ref && ublh);
    for (size_t i = 0; i < H * L; i++)
        kd[i] = kf[i];
    ref_ssm_conv(u, kd, dv, B, H, L, ref);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t l = 0; l < L; l++)
                ublh[(b * L + l) * H + h] = u[(b * H + h) * L + l];
    cl_mem bu = make_buf(B * H * L, ublh), bk = make_buf(H * L, kf), bd = make_buf(H, dv);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1);
    tu.strides[1] = 1;
    tu.strides[2] = H;
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L, 1), td = clattn_tensor_make(bd, 1, H, 1, 1);
    float *outs[2];
    for (int a = 0; a < 2; a++) {
        cl_mem by = poisoned_buf(B * H * L);
        clattn_tensor ty = tu;
        ty.buffer = by;
        clattn_ssm_desc d;
        clattn_ssm_desc_init(&d);
        d.algorithm = a ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        assert_int_equal(clattn_ssm_conv_enqueue(ctx, &d, &tu, &tk, &td, &ty, 0, NULL, NULL),
                         CLATTN_SUCCESS);
        float *got = read_buf(by, B * H * L);
        outs[a] = malloc(B * H * L * sizeof(float));
        assert_non_null(outs[a]);
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t l = 0; l < L; l++)
                    outs[a][(b * H + h) * L + l] = got[(b * L + l) * H + h];
        check_close(outs[a], ref, B * H * L, a ? "conv direct" : "conv fft");
        free(got);
        clReleaseMemObject(by);
    }
    check_close(outs[0], outs[1], B * H * L, "fft vs direct");
    free(outs[0]);
    free(outs[1]);
    clReleaseMemObject(bu);
    clReleaseMemObject(bk);
    clReleaseMemObject(bd);
    free(u);
    free(kf);
    free(dv);
    free(kd);
    free(ref);
    free(ublh);
}

/* Steps over a sequence equal the convolution (and the fp64 recurrence); the state can be read,
 * written back and reset. */
static void test_step(void **state)
{
    (void)state;
    size_t B = 2, H = 3, N = 8, L = 300;
    params p;
    params_make(&p, H, N, 9);
    uint64_t seed = 3;
    float *u = rand_floats(B * H * L, 1.0f, &seed);
    float *ref = malloc(B * H * L * sizeof(float)), *rec = malloc(B * H * L * sizeof(float));
    float *got = malloc(B * H * L * sizeof(float));
    assert_true(ref && rec && got);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, p.D, B, H, N, L, ref);
    ref_ssm_recurrence(u, p.A, p.Ct, p.log_dt, p.D, B, H, N, L, rec);
    check_close(rec, ref, B * H * L, "reference recurrence vs convolution");
    clattn_ssm *s = ssm_of(&p, 1);
    clattn_ssm_state *st = NULL;
    assert_int_equal(clattn_ssm_state_create(s, B, &st), CLATTN_SUCCESS);
    cl_mem bu = make_buf(B * H, NULL), by = make_buf(B * H, NULL);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, 1, 1), ty = clattn_tensor_make(by, B, H, 1, 1);
    float *saved = malloc(B * H * N * 2 * sizeof(float));
    assert_non_null(saved);
    float ut[6], yt[6];
    for (size_t l = 0; l < L; l++) {
        for (size_t i = 0; i < B * H; i++)
            ut[i] = u[i * L + l];
        assert_int_equal(clEnqueueWriteBuffer(queue(), bu, CL_TRUE, 0, sizeof ut, ut, 0, NULL,
                                              NULL),
                         CL_SUCCESS);
        float nan6[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
        assert_int_equal(clEnqueueWriteBuffer(queue(), by, CL_TRUE, 0, sizeof nan6, nan6, 0, NULL,
                                              NULL),
                         CL_SUCCESS);
        assert_int_equal(clattn_ssm_step(st, &tu, &ty, 0, NULL, NULL), CLATTN_SUCCESS);
        assert_int_equal(clEnqueueReadBuffer(queue(), by, CL_TRUE, 0, sizeof yt, yt, 0, NULL,
                                             NULL),
                         CL_SUCCESS);
        for (size_t i = 0; i < B * H; i++)
            got[i * L + l] = yt[i];
        if (l == L / 2) {
            /* Save, scribble, restore: the continuation must not notice. */
            assert_int_equal(clattn_ssm_state_read(st, saved), CLATTN_SUCCESS);
            assert_int_equal(clattn_ssm_state_reset(st, 0, NULL, NULL), CLATTN_SUCCESS);
            assert_int_equal(clattn_ssm_state_write(st, saved), CLATTN_SUCCESS);
        }
    }
    check_close(got, ref, B * H * L, "steps vs convolution");
    /* Invalid: a non-finite state write leaves the state as it was. */
    float *before = malloc(B * H * N * 2 * sizeof(float)), *after = malloc(B * H * N * 2 * sizeof(float));
    assert_true(before && after);
    assert_int_equal(clattn_ssm_state_read(st, before), CLATTN_SUCCESS);
    memcpy(saved, before, B * H * N * 2 * sizeof(float));
    saved[7] = NAN;
    assert_int_equal(clattn_ssm_state_write(st, saved), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_ssm_state_read(st, after), CLATTN_SUCCESS);
    assert_memory_equal(before, after, B * H * N * 2 * sizeof(float));
    clattn_tensor wrong = clattn_tensor_make(bu, 1, H, 1, 1);
    assert_int_equal(clattn_ssm_step(st, &wrong, &ty, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    assert_int_equal(clattn_ssm_step(st, &tu, &tu, 0, NULL, NULL), CLATTN_ALIASING);
    assert_int_equal(clattn_ssm_step(NULL, &tu, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_ssm_state_read(st, after), CLATTN_SUCCESS);
    assert_memory_equal(before, after, B * H * N * 2 * sizeof(float));
    /* Reset: the first step after it sees a zero state. */
    assert_int_equal(clattn_ssm_state_reset(st, 0, NULL, NULL), CLATTN_SUCCESS);
    assert_int_equal(clattn_ssm_state_read(st, after), CLATTN_SUCCESS);
    for (size_t i = 0; i < B * H * N * 2; i++)
        assert_true(after[i] == 0.0f);
    free(before);
    free(after);
    free(saved);
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(s);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    free(u);
    free(ref);
    free(rec);
    free(got);
    params_free(&p);
}

static void test_invalid(void **state)
{
    (void)state;
    params p;
    params_make(&p, 2, 4, 1);
    clattn_ssm *s = NULL;
    /* Creation: dt non-finite, NaN in A, growing modes, shapes, NULLs. */
    float keep = p.log_dt[1];
    p.log_dt[1] = NAN;
    assert_int_equal(clattn_ssm_create(ctx, 2, 4, p.A, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_INVALID_ARGUMENT);
    assert_null(s);
    p.log_dt[1] = 200.0f; /* exp overflows float */
    assert_int_equal(clattn_ssm_create(ctx, 2, 4, p.A, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "dt"));
    p.log_dt[1] = keep;
    p.A[3] = INFINITY;
    assert_int_equal(clattn_ssm_create(ctx, 2, 4, p.A, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_INVALID_ARGUMENT);
    p.A[3] = 1.0f;
    p.A[2] = 0.5f; /* Re A > 0 */
    assert_int_equal(clattn_ssm_create(ctx, 2, 4, p.A, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_INVALID_ARGUMENT);
    p.A[2] = -0.5f;
    assert_int_equal(clattn_ssm_create(ctx, 0, 4, p.A, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_INVALID_SHAPE);
    assert_int_equal(clattn_ssm_create(ctx, 2, 4, NULL, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_NULL_POINTER);
    assert_int_equal(clattn_ssm_create(NULL, 2, 4, p.A, p.Ct, p.log_dt, NULL, &s),
                     CLATTN_NULL_POINTER);
    assert_null(s);
    s = ssm_of(&p, 1);

    size_t B = 1, H = 2, L = 50;
    cl_mem bu = make_buf(B * H * L, NULL), by = make_buf(B * H * L + 8, NULL);
    float *mark = malloc((B * H * L + 8) * sizeof(float));
    assert_non_null(mark);
    for (size_t i = 0; i < B * H * L + 8; i++)
        mark[i] = 7.0f;
    assert_int_equal(clEnqueueWriteBuffer(queue(), by, CL_TRUE, 0, (B * H * L + 8) * 4, mark, 0,
                                          NULL, NULL),
                     CL_SUCCESS);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1), ty = clattn_tensor_make(by, B, H, L, 1);
    clattn_tensor t;
    t = tu;
    t.shape[2] = 0; /* L = 0 */
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &t, &ty, 0, NULL, NULL), CLATTN_INVALID_SHAPE);
    t = ty;
    t.shape[2] = 0;
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &tu, &t, 0, NULL, NULL), CLATTN_INVALID_SHAPE);
    t = tu;
    t.shape[3] = 2;
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &t, &ty, 0, NULL, NULL), CLATTN_INVALID_SHAPE);
    clattn_tensor u3 = clattn_tensor_make(bu, 1, 1, L, 1), y3 = clattn_tensor_make(by, 1, 1, L, 1);
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &u3, &y3, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    t = ty;
    t.offset = 9; /* beyond the buffer */
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &tu, &t, 0, NULL, NULL),
                     CLATTN_BUFFER_TOO_SMALL);
    t = tu;
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &tu, &t, 0, NULL, NULL), CLATTN_ALIASING);
    t = ty;
    t.strides[2] = 0;
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &tu, &t, 0, NULL, NULL), CLATTN_ALIASING);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = (clattn_ssm_algo)7;
    assert_int_equal(clattn_ssm_enqueue(s, &d, &tu, &ty, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    d.algorithm = CLATTN_SSM_FFT;
    d.struct_size = 1;
    assert_int_equal(clattn_ssm_enqueue(s, &d, &tu, &ty, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_ssm_enqueue(s, NULL, &tu, &ty, 1, NULL, NULL), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_ssm_enqueue(NULL, NULL, &tu, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER);
    assert_int_equal(clattn_ssm_enqueue(s, NULL, NULL, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER);
    /* Caller-supplied kernels of the wrong length or channel count. */
    cl_mem bk = make_buf(H * L, NULL);
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L - 1, 1);
    assert_int_equal(clattn_ssm_conv_enqueue(ctx, NULL, &tu, &tk, NULL, &ty, 0, NULL, NULL),
                     CLATTN_SHAPE_MISMATCH);
    tk = clattn_tensor_make(bk, 1, H, L, 1);
    clattn_tensor td = clattn_tensor_make(bk, 1, 1, 1, 1);
    assert_int_equal(clattn_ssm_conv_enqueue(ctx, NULL, &tu, &tk, &td, &ty, 0, NULL, NULL),
                     CLATTN_SHAPE_MISMATCH);
    clattn_tensor ky = clattn_tensor_make(by, 1, H, L, 1);
    assert_int_equal(clattn_ssm_conv_enqueue(ctx, NULL, &tu, &ky, NULL, &ty, 0, NULL, NULL),
                     CLATTN_ALIASING);
    clattn_tensor kbad = clattn_tensor_make(bk, 1, 3, L, 1);
    assert_int_equal(clattn_ssm_kernel_enqueue(s, &kbad, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    /* The output was never touched. */
    float *after = read_buf(by, B * H * L + 8);
    assert_memory_equal(after, mark, (B * H * L + 8) * sizeof(float));
    /* Host convenience with L = 0 and non-finite dt. */
    float yv[4];
    assert_int_equal(clattn_ssm_host(ctx, NULL, 1, 2, 4, 0, p.A, p.Ct, p.log_dt, NULL, mark, yv),
                     CLATTN_INVALID_SHAPE);
    p.log_dt[0] = -INFINITY; /* dt = 0 */
    assert_int_equal(clattn_ssm_host(ctx, NULL, 1, 2, 4, 2, p.A, p.Ct, p.log_dt, NULL, mark, yv),
                     CLATTN_INVALID_ARGUMENT);
    free(after);
    free(mark);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
    params_free(&p);
}

/* The caller's wait list gates the convolution; the returned event completes it. */
static void test_wait_list(void **state)
{
    (void)state;
    if (basic_device) {
        fprintf(stderr, "note: user-event gating skipped on PoCL's basic device (driver bug)\n");
        return;
    }
    size_t H = 2, L = 1000; /* the FFT length of test_forward_fft (plans are costly to build) */
    params p;
    params_make(&p, H, 4, 31);
    uint64_t seed = 8;
    float *u = rand_floats(H * L, 1.0f, &seed), *ref = malloc(H * L * sizeof(float));
    assert_non_null(ref);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, p.D, 1, H, 4, L, ref);
    clattn_ssm *s = ssm_of(&p, 1);
    cl_mem bu = make_buf(H * L, NULL), by = poisoned_buf(H * L);
    clattn_tensor tu = clattn_tensor_make(bu, 1, H, L, 1), ty = clattn_tensor_make(by, 1, H, L, 1);
    cl_int err;
    cl_event user = clCreateUserEvent(clattn_context_get_cl_context(ctx), &err), done = NULL;
    assert_int_equal(err, CL_SUCCESS);
    /* u is written only once the user event fires. */
    cl_event wrote = NULL;
    assert_int_equal(clEnqueueWriteBuffer(queue(), bu, CL_FALSE, 0, H * L * 4, u, 1, &user, &wrote),
                     CL_SUCCESS);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = CLATTN_SSM_FFT;
    assert_int_equal(clattn_ssm_enqueue(s, &d, &tu, &ty, 1, &wrote, &done), CLATTN_SUCCESS);
    assert_non_null(done);
    clSetUserEventStatus(user, CL_COMPLETE);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    float *got = read_buf(by, H * L);
    check_close(got, ref, H * L, "after wait list");
    clReleaseEvent(done);
    clReleaseEvent(wrote);
    clReleaseEvent(user);
    free(got);
    free(u);
    free(ref);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clattn_ssm_destroy(s);
    params_free(&p);
}

/* ---- GSS ---- */

typedef struct gss_case {
    size_t B, L, E, F, H, N;
    int with_bias;
    clattn_ssm_algo algo;
} gss_case;

static void run_gss(const gss_case *c)
{
    size_t T = c->B * c->L;
    uint64_t seed = 1234 + c->L;
    params p;
    params_make(&p, c->H, c->N, 55);
    float *x = rand_floats(T * c->E, 2.0f, &seed);
    for (size_t i = 0; i < T * c->E; i += 3)
        x[i] += 5.0f; /* rows with a large mean */
    float ws = 1.0f / sqrtf((float)c->E);
    float *gamma = rand_floats(c->E, 1.0f, &seed), *beta = rand_floats(c->E, 0.5f, &seed);
    float *wv = rand_floats(c->E * c->F, ws, &seed), *bv = rand_floats(c->F, 0.2f, &seed);
    float *wu = rand_floats(c->E * c->H, ws, &seed), *bu = rand_floats(c->H, 0.2f, &seed);
    float *wo1 = rand_floats(c->H * c->F, 1.0f / sqrtf((float)c->H), &seed);
    float *bo1 = rand_floats(c->F, 0.2f, &seed);
    float *wo2 = rand_floats(c->F * c->E, 1.0f / sqrtf((float)c->F), &seed);
    float *bo2 = rand_floats(c->E, 0.2f, &seed);
    float *ref = malloc(T * c->E * sizeof(float));
    assert_non_null(ref);
    int wb = c->with_bias;
    ref_gss(x, c->B, c->L, c->E, c->F, c->H, c->N, wb ? gamma : NULL, wb ? beta : NULL, 1e-5,
            wv, wb ? bv : NULL, wu, wb ? bu : NULL, wo1, wb ? bo1 : NULL, wo2, wb ? bo2 : NULL,
            p.A, p.Ct, p.log_dt, p.D, ref);
    clattn_ssm *s = ssm_of(&p, 1);
    clattn_gss_weights w;
    memset(&w, 0, sizeof w);
    cl_mem bufs[10];
    bufs[0] = w.w_v = make_buf(c->E * c->F, wv);
    bufs[1] = w.w_u = make_buf(c->E * c->H, wu);
    bufs[2] = w.w_o1 = make_buf(c->H * c->F, wo1);
    bufs[3] = w.w_o2 = make_buf(c->F * c->E, wo2);
    size_t nb = 4;
    if (wb) {
        bufs[nb++] = w.ln_gamma = make_buf(c->E, gamma);
        bufs[nb++] = w.ln_beta = make_buf(c->E, beta);
        bufs[nb++] = w.b_v = make_buf(c->F, bv);
        bufs[nb++] = w.b_u = make_buf(c->H, bu);
        bufs[nb++] = w.b_o1 = make_buf(c->F, bo1);
        bufs[nb++] = w.b_o2 = make_buf(c->E, bo2);
    }
    cl_mem bx = make_buf(T * c->E, x), bo = poisoned_buf(T * c->E);
    clattn_tensor tx = clattn_tensor_make(bx, c->B, 1, c->L, c->E);
    clattn_tensor to = clattn_tensor_make(bo, c->B, 1, c->L, c->E);
    clattn_gss_desc d;
    clattn_gss_desc_init(&d);
    d.algorithm = c->algo;
    assert_int_equal(clattn_gss_enqueue(ctx, &d, s, &w, c->F, &tx, &to, 0, NULL, NULL),
                     CLATTN_SUCCESS);
    float *got = read_buf(bo, T * c->E);
    char what[96];
    snprintf(what, sizeof what, "gss B%zu L%zu E%zu F%zu H%zu bias %d algo %d", c->B, c->L, c->E,
             c->F, c->H, wb, (int)c->algo);
    check_close(got, ref, T * c->E, what);
    free(got);

    if (wb) {
        /* Invalid arguments leave out untouched (it holds the result now). */
        float *before = read_buf(bo, T * c->E);
        clattn_gss_weights bad = w;
        bad.w_o2 = NULL;
        assert_int_equal(clattn_gss_enqueue(ctx, &d, s, &bad, c->F, &tx, &to, 0, NULL, NULL),
                         CLATTN_NULL_POINTER);
        bad = w;
        bad.b_v = w.b_u; /* H floats where F are needed */
        assert_int_equal(clattn_gss_enqueue(ctx, &d, s, &bad, c->F, &tx, &to, 0, NULL, NULL),
                         CLATTN_BUFFER_TOO_SMALL);
        assert_int_equal(clattn_gss_enqueue(ctx, &d, s, &w, c->F, &tx, &tx, 0, NULL, NULL),
                         CLATTN_ALIASING);
        clattn_tensor strided = to; /* features L apart: same extent, rows not dense */
        strided.strides[2] = 1;
        strided.strides[3] = c->L;
        assert_int_equal(clattn_gss_enqueue(ctx, &d, s, &w, c->F, &tx, &strided, 0, NULL, NULL),
                         c->L > 1 ? CLATTN_UNSUPPORTED : CLATTN_SUCCESS);
        clattn_gss_desc bd = d;
        bd.ln_eps = 0.0f;
        assert_int_equal(clattn_gss_enqueue(ctx, &bd, s, &w, c->F, &tx, &to, 0, NULL, NULL),
                         CLATTN_INVALID_ARGUMENT);
        assert_int_equal(clattn_gss_enqueue(ctx, &d, s, &w, 0, &tx, &to, 0, NULL, NULL),
                         CLATTN_INVALID_SHAPE);
        assert_int_equal(clattn_gss_enqueue(ctx, &d, NULL, &w, c->F, &tx, &to, 0, NULL, NULL),
                         CLATTN_NULL_POINTER);
        float *after = read_buf(bo, T * c->E);
        assert_memory_equal(before, after, T * c->E * sizeof(float));
        free(before);
        free(after);
    }

    for (size_t i = 0; i < nb; i++)
        clReleaseMemObject(bufs[i]);
    clReleaseMemObject(bx);
    clReleaseMemObject(bo);
    clattn_ssm_destroy(s);
    float *hs[] = {x, gamma, beta, wv, bv, wu, bu, wo1, bo1, wo2, bo2, ref};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        free(hs[i]);
    params_free(&p);
}

static void test_gss(void **state)
{
    (void)state;
    const gss_case cases[] = {
        {2, 32, 16, 24, 8, 4, 1, CLATTN_SSM_FFT},
        {1, 300, 12, 20, 6, 8, 1, CLATTN_SSM_AUTO},
        {3, 1, 8, 5, 3, 2, 0, CLATTN_SSM_DIRECT},
        {1, 50, 20, 33, 5, 1, 0, CLATTN_SSM_DIRECT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_gss(&cases[i]);
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
        cmocka_unit_test(test_zoh),           cmocka_unit_test(test_kernel),
        cmocka_unit_test(test_kernel_long_phase), cmocka_unit_test(test_forward_fft),
        cmocka_unit_test(test_forward_direct), cmocka_unit_test(test_conv_strided),
        cmocka_unit_test(test_step),          cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_wait_list),     cmocka_unit_test(test_gss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
