/* Diagonal state-space models (S4D / DSS) against the fp64 host reference
 * (tests/reference/ref_ssm.c: the kernel by its definition with complex exponentials, the causal
 * convolution as a direct sum), on the device chosen by CLATTN_DEVICE: the kernel K, the
 * convolution through handle plans, convolution plans and the one-shot calls, by FFT and directly;
 * plans baked once (no program lookup or kernel creation on enqueue); wait lists and out-of-order
 * queues. The decoding state is tested in test_ssm_state.c, invalid arguments in
 * test_ssm_validation.c.
 *
 * Parameters: S4D-Lin (test_ssm_fixture.h). Inputs are random from fixed seeds; outputs are
 * poisoned with NaN before each run. Tolerance (DESIGN.md section 4, ssm_check_close): every
 * element within 1e-4 * max(1, max|ref|), normalised error within 1e-5. */
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
#include "test_ssm_fixture.h"
#include "test_util.h"
#include "../lib/blocks/fft.h"
#include "reference/ref_ssm.h"

static clattn_context *ctx;
static int basic_device; /* PoCL's serial device: user events deadlock it */

#define EXPECT_OK(call) SSM_OK(ctx, call)

static void test_zoh(void **state)
{
    (void)state;
    size_t H = 3, N = 5;
    uint64_t seed = 11;
    float *A = tu_random(2 * H * N, 1.0f, &seed), *B = tu_random(2 * H * N, 1.0f, &seed);
    float *C = tu_random(2 * H * N, 1.0f, &seed), *ldt = tu_random(H, 2.0f, &seed);
    for (size_t i = 0; i < H * N; i++)
        A[2 * i] = -fabsf(A[2 * i]) - 0.01f;
    float got[30], ref[30];
    for (int pairs = 0; pairs < 2; pairs++) {
        assert_int_equal(clattn_ssm_s4d_zoh(H, N, A, B, C, ldt, pairs, got), CLATTN_SUCCESS);
        ref_ssm_s4d_zoh(A, B, C, ldt, H, N, pairs, ref);
        ssm_check_close(got, ref, 2 * H * N, "zoh");
    }
    assert_int_equal(clattn_ssm_s4d_zoh(H, N, A, NULL, C, ldt, 1, got), CLATTN_SUCCESS);
    ref_ssm_s4d_zoh(A, NULL, C, ldt, H, N, 1, ref);
    ssm_check_close(got, ref, 2 * H * N, "zoh B=1");
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
    ssm_params p;
    ssm_params_make(&p, 3, 16, 21);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    for (size_t i = 0; i < sizeof Ls / sizeof Ls[0]; i++) {
        size_t L = Ls[i];
        double *refd = malloc(p.H * L * sizeof(double));
        float *ref = malloc(p.H * L * sizeof(float));
        assert_true(refd && ref);
        ref_ssm_kernel(p.A, p.Ct, p.log_dt, p.H, p.N, L, refd);
        for (size_t j = 0; j < p.H * L; j++)
            ref[j] = (float)refd[j];
        cl_mem bk = ssm_poisoned_dev(ctx, p.H * L);
        clattn_tensor k = clattn_tensor_make(bk, 1, p.H, L, 1);
        EXPECT_OK(clattn_ssm_kernel_enqueue(s, &k, 0, NULL, NULL));
        float *got = ssm_read_dev(ctx, bk, p.H * L);
        ssm_check_close(got, ref, p.H * L, "kernel");
        free(got);
        /* [L, H] storage: positions H apart. */
        tu_poison_buffer(ctx, bk, p.H * L * sizeof(float));
        k.strides[1] = 1;
        k.strides[2] = p.H;
        k.strides[0] = p.H * L;
        EXPECT_OK(clattn_ssm_kernel_enqueue(s, &k, 0, NULL, NULL));
        got = ssm_read_dev(ctx, bk, p.H * L);
        float *back = malloc(p.H * L * sizeof(float));
        assert_non_null(back);
        for (size_t h = 0; h < p.H; h++)
            for (size_t l = 0; l < L; l++)
                back[h * L + l] = got[l * p.H + h];
        ssm_check_close(back, ref, p.H * L, "strided kernel");
        free(back);
        free(got);
        clReleaseMemObject(bk);
        free(refd);
        free(ref);
    }
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
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
    EXPECT_OK(clattn_ssm_create(ctx, 1, 2, A, Ct, ldt, NULL, &s));
    double *refd = malloc(L * sizeof(double));
    float *ref = malloc(L * sizeof(float));
    assert_true(refd && ref);
    ref_ssm_kernel(A, Ct, ldt, 1, 2, L, refd);
    for (size_t j = 0; j < L; j++)
        ref[j] = (float)refd[j];
    cl_mem bk = ssm_poisoned_dev(ctx, L);
    clattn_tensor k = clattn_tensor_make(bk, 1, 1, L, 1);
    EXPECT_OK(clattn_ssm_kernel_enqueue(s, &k, 0, NULL, NULL));
    float *got = ssm_read_dev(ctx, bk, L);
    /* Absolute check at the tail too, where the modes are still strong. */
    ssm_check_close(got, ref, L, "long kernel");
    ssm_check_close(got + L - 1000, ref + L - 1000, 1000, "long kernel, last 1000");
    free(got);
    free(ref);
    free(refd);
    clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
}

/* The algorithm AUTO resolves to on this context's device (the crossovers of sched.h). */
static clattn_ssm_algo auto_algo(size_t L)
{
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
    return L <= (info.device_class == CLATTN_DEVICE_GPU ? 2048u : 256u) ? CLATTN_SSM_DIRECT
                                                                        : CLATTN_SSM_FFT;
}

/* y = K * u + D u through a plan (twice: identical), then the one-shot call (identical too),
 * against the direct fp64 sum. */
static void run_forward(size_t B, size_t H, size_t N, size_t L, clattn_ssm_algo algo, int with_d)
{
    ssm_params p;
    ssm_params_make(&p, H, N, 100 + L);
    uint64_t seed = 5 + L;
    size_t n = B * H * L;
    float *u = tu_random(n, 1.0f, &seed), *ref = malloc(n * sizeof(float));
    assert_non_null(ref);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, with_d ? p.D : NULL, B, H, N, L, ref);
    clattn_ssm *s = ssm_params_handle(ctx, &p, with_d);
    cl_mem bu = tu_buffer(ctx, n * sizeof(float), u), by = ssm_poisoned_dev(ctx, n);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1), ty = clattn_tensor_make(by, B, H, L, 1);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = algo;
    clattn_plan *plan = NULL;
    EXPECT_OK(clattn_ssm_plan_create(ctx, &d, s, tu.shape, &plan));
    clattn_plan_info info;
    EXPECT_OK(clattn_plan_get_info(plan, &info));
    assert_int_equal(info.op, CLATTN_OP_SSM);
    clattn_ssm_algo want = algo == CLATTN_SSM_AUTO ? auto_algo(L) : algo;
    assert_int_equal(info.algorithm, want);
    assert_string_equal(info.algorithm_name, want == CLATTN_SSM_FFT ? "fft" : "direct");
    assert_true(info.num_kernels >= 1 && strstr(info.kernels[0].build_options, "-DSSM_CHUNK="));
    EXPECT_OK(clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, NULL));
    float *got = ssm_read_dev(ctx, by, n);
    char what[96];
    snprintf(what, sizeof what, "ssm B%zu H%zu N%zu L%zu algo %d", B, H, N, L, (int)algo);
    ssm_check_close(got, ref, n, what);
    for (int again = 0; again < 2; again++) {
        tu_poison_buffer(ctx, by, n * sizeof(float));
        if (again == 0)
            EXPECT_OK(clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, NULL));
        else
            EXPECT_OK(clattn_ssm_enqueue(s, &d, &tu, &ty, 0, NULL, NULL));
        float *got2 = ssm_read_dev(ctx, by, n);
        assert_memory_equal(got, got2, n * sizeof(float));
        free(got2);
    }
    clattn_plan_destroy(plan);
    free(got);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clattn_ssm_destroy(s);
    free(u);
    free(ref);
    ssm_params_free(&p);
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

/* The long convolution alone with a random kernel and strided [B, L, H] views, through a
 * convolution plan and the one-shot call: FFT equals direct, and both equal the reference. */
static void test_conv_strided(void **state)
{
    (void)state;
    size_t B = 2, H = 3, L = 1000, n = B * H * L;
    uint64_t seed = 77;
    float *u = tu_random(n, 1.0f, &seed), *kf = tu_random(H * L, 0.05f, &seed);
    float *dv = tu_random(H, 1.0f, &seed);
    double *kd = malloc(H * L * sizeof(double));
    float *ref = malloc(n * sizeof(float)), *ublh = malloc(n * sizeof(float));
    assert_true(kd && ref && ublh);
    for (size_t i = 0; i < H * L; i++)
        kd[i] = kf[i];
    ref_ssm_conv(u, kd, dv, B, H, L, ref);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t l = 0; l < L; l++)
                ublh[(b * L + l) * H + h] = u[(b * H + h) * L + l];
    cl_mem bu = tu_buffer(ctx, n * 4, ublh), bk = tu_buffer(ctx, H * L * 4, kf);
    cl_mem bd = tu_buffer(ctx, H * 4, dv), by = ssm_poisoned_dev(ctx, n);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1);
    tu.strides[1] = 1;
    tu.strides[2] = H;
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L, 1), td = clattn_tensor_make(bd, 1, H, 1, 1);
    clattn_tensor ty = tu;
    ty.buffer = by;
    float *outs[2];
    for (int a = 0; a < 2; a++) {
        clattn_ssm_desc d;
        clattn_ssm_desc_init(&d);
        d.algorithm = a ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        clattn_plan *plan = NULL;
        EXPECT_OK(clattn_ssm_conv_plan_create(ctx, &d, tu.shape, &plan));
        tu_poison_buffer(ctx, by, n * 4);
        EXPECT_OK(clattn_ssm_conv_plan_enqueue(plan, &tu, &tk, &td, &ty, 0, NULL, NULL));
        float *got = ssm_read_dev(ctx, by, n);
        outs[a] = malloc(n * sizeof(float));
        assert_non_null(outs[a]);
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t l = 0; l < L; l++)
                    outs[a][(b * H + h) * L + l] = got[(b * L + l) * H + h];
        ssm_check_close(outs[a], ref, n, a ? "conv direct" : "conv fft");
        /* The one-shot call on a plan of its own: the same bytes. */
        tu_poison_buffer(ctx, by, n * 4);
        EXPECT_OK(clattn_ssm_conv_enqueue(ctx, &d, &tu, &tk, &td, &ty, 0, NULL, NULL));
        float *again = ssm_read_dev(ctx, by, n);
        assert_memory_equal(got, again, n * sizeof(float));
        free(again);
        free(got);
        clattn_plan_destroy(plan);
    }
    ssm_check_close(outs[0], outs[1], n, "fft vs direct");
    free(outs[0]);
    free(outs[1]);
    clReleaseMemObject(bu);
    clReleaseMemObject(bk);
    clReleaseMemObject(bd);
    clReleaseMemObject(by);
    free(u);
    free(kf);
    free(dv);
    free(kd);
    free(ref);
    free(ublh);
}

/* After baking, enqueues make no program lookup, create no kernel and bake no clFFT plan: handle
 * plans and convolution plans by both algorithms, and the handle's kernel generation. */
static void test_bake_once(void **state)
{
    (void)state;
    size_t B = 1, H = 2, L = 1000, n = B * H * L;
    ssm_params p;
    ssm_params_make(&p, H, 4, 17);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    uint64_t seed = 4;
    float *u = tu_random(n, 1.0f, &seed);
    cl_mem bu = tu_buffer(ctx, n * 4, u), by = ssm_poisoned_dev(ctx, n), bk = ssm_poisoned_dev(ctx, H * L);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1), ty = clattn_tensor_make(by, B, H, L, 1);
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L, 1);
    clattn_plan *plans[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        clattn_ssm_desc d;
        clattn_ssm_desc_init(&d);
        d.algorithm = i % 2 ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        if (i < 2)
            EXPECT_OK(clattn_ssm_plan_create(ctx, &d, s, tu.shape, &plans[i]));
        else
            EXPECT_OK(clattn_ssm_conv_plan_create(ctx, &d, tu.shape, &plans[i]));
    }
    EXPECT_OK(clattn_context_finish(ctx));
    clattn_context_stats before, after;
    EXPECT_OK(clattn_context_get_stats(ctx, &before));
    size_t fft_plans = clattn__fft_plan_count(ctx);
    for (int rep = 0; rep < 5; rep++) {
        EXPECT_OK(clattn_ssm_kernel_enqueue(s, &tk, 0, NULL, NULL));
        for (int i = 0; i < 4; i++) {
            if (i < 2)
                EXPECT_OK(clattn_ssm_plan_enqueue(plans[i], &tu, &ty, 0, NULL, NULL));
            else
                EXPECT_OK(clattn_ssm_conv_plan_enqueue(plans[i], &tu, &tk, NULL, &ty, 0, NULL,
                                                       NULL));
        }
    }
    EXPECT_OK(clattn_context_finish(ctx));
    EXPECT_OK(clattn_context_get_stats(ctx, &after));
    assert_int_equal(after.program_lookups, before.program_lookups);
    assert_int_equal(after.kernels_created, before.kernels_created);
    assert_int_equal(clattn__fft_plan_count(ctx), fft_plans);
    for (int i = 0; i < 4; i++)
        clattn_plan_destroy(plans[i]);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
    free(u);
    ssm_params_free(&p);
}

/* The caller's wait list gates the convolution (plan baked before and inside the gated window);
 * the returned event completes it. */
static void test_wait_list(void **state)
{
    (void)state;
    if (basic_device) {
        fprintf(stderr, "note: user-event gating skipped on PoCL's basic device (driver bug)\n");
        return;
    }
    size_t H = 2, L = 1000; /* the FFT length of test_forward_fft (plans are costly to build) */
    ssm_params p;
    ssm_params_make(&p, H, 4, 31);
    uint64_t seed = 8;
    float *u = tu_random(H * L, 1.0f, &seed), *ref = malloc(H * L * sizeof(float));
    assert_non_null(ref);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, p.D, 1, H, 4, L, ref);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    d.algorithm = CLATTN_SSM_FFT;
    size_t shape[4] = {1, H, L, 1};
    clattn_plan *plan = NULL;
    EXPECT_OK(clattn_ssm_plan_create(ctx, &d, s, shape, &plan));
    for (int oneshot = 0; oneshot < 2; oneshot++) {
        cl_mem bu = tu_buffer(ctx, H * L * 4, NULL), by = ssm_poisoned_dev(ctx, H * L);
        clattn_tensor tu = clattn_tensor_make(bu, 1, H, L, 1);
        clattn_tensor ty = clattn_tensor_make(by, 1, H, L, 1);
        cl_int err;
        cl_event user = clCreateUserEvent(clattn_context_get_cl_context(ctx), &err), done = NULL;
        assert_int_equal(err, CL_SUCCESS);
        /* u is written only once the user event fires. */
        cl_event wrote = NULL;
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bu, CL_FALSE, 0,
                                              H * L * 4, u, 1, &user, &wrote),
                         CL_SUCCESS);
        if (oneshot)
            EXPECT_OK(clattn_ssm_enqueue(s, &d, &tu, &ty, 1, &wrote, &done));
        else
            EXPECT_OK(clattn_ssm_plan_enqueue(plan, &tu, &ty, 1, &wrote, &done));
        assert_non_null(done);
        clSetUserEventStatus(user, CL_COMPLETE);
        assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
        float *got = ssm_read_dev(ctx, by, H * L);
        ssm_check_close(got, ref, H * L, oneshot ? "one-shot after wait list" : "after wait list");
        clReleaseEvent(done);
        clReleaseEvent(wrote);
        clReleaseEvent(user);
        free(got);
        clReleaseMemObject(bu);
        clReleaseMemObject(by);
    }
    clattn_plan_destroy(plan);
    free(u);
    free(ref);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

/* On an out-of-order queue: a plan's K is ready before its first enqueue, the commands of one
 * enqueue are chained, and the host call reads back after the convolution. */
static void test_out_of_order_queue(void **state)
{
    (void)state;
    cl_command_queue oq = tu_out_of_order_queue(ctx);
    clattn_context *octx = NULL;
    EXPECT_OK(clattn_context_create_from_cl(clattn_context_get_cl_context(ctx),
                                            clattn_context_get_cl_device(ctx), oq, &octx));
    size_t B = 2, H = 3, N = 8, L = 1000, n = B * H * L;
    ssm_params p;
    ssm_params_make(&p, H, N, 44);
    uint64_t seed = 45;
    float *u = tu_random(n, 1.0f, &seed), *ref = malloc(n * 4), *got = tu_poisoned(n);
    assert_non_null(ref);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, p.D, B, H, N, L, ref);
    for (int a = 0; a < 2; a++) {
        clattn_ssm_desc d;
        clattn_ssm_desc_init(&d);
        d.algorithm = a ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
        if (clattn_ssm_host(octx, &d, B, H, N, L, p.A, p.Ct, p.log_dt, p.D, u, got) !=
            CLATTN_SUCCESS)
            fail_msg("out-of-order host call: %s", clattn_context_last_error(octx));
        ssm_check_close(got, ref, n, a ? "out-of-order direct" : "out-of-order fft");
    }
    clattn_context_destroy(octx);
    clReleaseCommandQueue(oq);
    free(u);
    free(ref);
    free(got);
    ssm_params_free(&p);
}

static int setup(void **state)
{
    (void)state;
    if (ssm_open(&ctx) != 0)
        return -1;
    clattn_device_info info;
    clattn_context_get_device_info(ctx, &info);
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
        cmocka_unit_test(test_zoh),
        cmocka_unit_test(test_kernel),
        cmocka_unit_test(test_kernel_long_phase),
        cmocka_unit_test(test_forward_fft),
        cmocka_unit_test(test_forward_direct),
        cmocka_unit_test(test_conv_strided),
        cmocka_unit_test(test_bake_once),
        cmocka_unit_test(test_wait_list),
        cmocka_unit_test(test_out_of_order_queue),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
