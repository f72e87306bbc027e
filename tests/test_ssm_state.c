/* The SSM decoding state (clattn_ssm_state_*, clattn_ssm_step) against the fp64 recurrence and
 * convolution (tests/reference/ref_ssm.c), on the device chosen by CLATTN_DEVICE: steps over a
 * sequence equal the convolution, the state can be saved, restored and reset, steps create no
 * kernel and look up no program, and every refused call leaves the state and the outputs as they
 * were. Tolerance: ssm_check_close (test_ssm_fixture.h). */
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
#include "reference/ref_ssm.h"

static clattn_context *ctx;

#define EXPECT_OK(call) SSM_OK(ctx, call)

/* Steps over a sequence equal the convolution (and the fp64 recurrence) with no program lookup
 * or kernel creation over its 300 steps; the state can be read, written back and reset; the
 * handle may go before the state. */
static void test_step(void **state)
{
    (void)state;
    size_t B = 2, H = 3, N = 8, L = 300;
    ssm_params p;
    ssm_params_make(&p, H, N, 9);
    uint64_t seed = 3;
    float *u = tu_random(B * H * L, 1.0f, &seed);
    float *ref = malloc(B * H * L * sizeof(float)), *rec = malloc(B * H * L * sizeof(float));
    float *got = malloc(B * H * L * sizeof(float));
    assert_true(ref && rec && got);
    ref_ssm_forward(u, p.A, p.Ct, p.log_dt, p.D, B, H, N, L, ref);
    ref_ssm_recurrence(u, p.A, p.Ct, p.log_dt, p.D, B, H, N, L, rec);
    ssm_check_close(rec, ref, B * H * L, "reference recurrence vs convolution");
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    clattn_ssm_state *st = NULL;
    EXPECT_OK(clattn_ssm_state_create(s, B, &st));
    clattn_ssm_destroy(s); /* the state keeps what it needs */
    cl_mem bu = tu_buffer(ctx, B * H * 4, NULL), by = tu_buffer(ctx, B * H * 4, NULL);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, 1, 1), ty = clattn_tensor_make(by, B, H, 1, 1);
    cl_command_queue q = clattn_context_get_cl_queue(ctx);
    float *saved = malloc(B * H * N * 2 * sizeof(float));
    assert_non_null(saved);
    float ut[6], yt[6];
    clattn_context_stats before, after;
    EXPECT_OK(clattn_context_get_stats(ctx, &before));
    for (size_t l = 0; l < L; l++) {
        for (size_t i = 0; i < B * H; i++)
            ut[i] = u[i * L + l];
        assert_int_equal(clEnqueueWriteBuffer(q, bu, CL_TRUE, 0, sizeof ut, ut, 0, NULL, NULL),
                         CL_SUCCESS);
        tu_poison_buffer(ctx, by, sizeof yt);
        EXPECT_OK(clattn_ssm_step(st, &tu, &ty, 0, NULL, NULL));
        tu_read(ctx, by, sizeof yt, yt);
        for (size_t i = 0; i < B * H; i++)
            got[i * L + l] = yt[i];
        if (l == L / 2) {
            /* Save, scribble, restore: the continuation must not notice. */
            EXPECT_OK(clattn_ssm_state_read(st, saved));
            EXPECT_OK(clattn_ssm_state_reset(st, 0, NULL, NULL));
            EXPECT_OK(clattn_ssm_state_write(st, saved));
        }
    }
    EXPECT_OK(clattn_context_get_stats(ctx, &after));
    assert_int_equal(after.program_lookups, before.program_lookups);
    assert_int_equal(after.kernels_created, before.kernels_created);
    ssm_check_close(got, ref, B * H * L, "steps vs convolution");
    /* Reset: the first step after it sees a zero state. */
    EXPECT_OK(clattn_ssm_state_reset(st, 0, NULL, NULL));
    EXPECT_OK(clattn_ssm_state_read(st, saved));
    for (size_t i = 0; i < B * H * N * 2; i++)
        assert_true(saved[i] == 0.0f);
    free(saved);
    clattn_ssm_state_destroy(st);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    free(u);
    free(ref);
    free(rec);
    free(got);
    ssm_params_free(&p);
}

/* The caller's wait list gates a step; its event completes it. */
static void test_step_events(void **state)
{
    (void)state;
    size_t H = 2, N = 3;
    ssm_params p;
    ssm_params_make(&p, H, N, 12);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 0);
    clattn_ssm_state *st = NULL;
    EXPECT_OK(clattn_ssm_state_create(s, 1, &st));
    float u[2] = {0.5f, -1.0f}, y[2], ref[2];
    ref_ssm_recurrence(u, p.A, p.Ct, p.log_dt, NULL, 1, H, N, 1, ref);
    cl_mem bu = tu_buffer(ctx, sizeof u, NULL), by = ssm_poisoned_dev(ctx, 2);
    cl_event wrote = NULL, done = NULL;
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bu, CL_FALSE, 0,
                                          sizeof u, u, 0, NULL, &wrote),
                     CL_SUCCESS);
    clattn_tensor tu = clattn_tensor_make(bu, 1, H, 1, 1), ty = clattn_tensor_make(by, 1, H, 1, 1);
    EXPECT_OK(clattn_ssm_step(st, &tu, &ty, 1, &wrote, &done));
    assert_non_null(done);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    tu_read(ctx, by, sizeof y, y);
    ssm_check_close(y, ref, 2, "one step");
    clReleaseEvent(wrote);
    clReleaseEvent(done);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

/* Every refused state call returns its status with a message and leaves the state and y as they
 * were. */
static void test_state_invalid(void **state)
{
    (void)state;
    size_t B = 2, H = 3, N = 4, nx = B * H * N * 2;
    ssm_params p;
    ssm_params_make(&p, H, N, 5);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    clattn_ssm_state *st = NULL;
    /* Creation. */
    tu_expect_status(NULL, clattn_ssm_state_create(NULL, B, &st), CLATTN_NULL_POINTER,
                     "state_create(NULL handle)");
    tu_expect_status(ctx, clattn_ssm_state_create(s, B, NULL), CLATTN_NULL_POINTER,
                     "state_create(NULL out)");
    tu_expect_status(ctx, clattn_ssm_state_create(s, 0, &st), CLATTN_INVALID_SHAPE,
                     "state_create(batch 0)");
    assert_null(st);
    EXPECT_OK(clattn_ssm_state_create(s, B, &st));
    /* A non-zero state to protect. */
    uint64_t seed = 6;
    float *x0 = tu_random(nx, 1.0f, &seed), *x = malloc(nx * 4);
    assert_non_null(x);
    EXPECT_OK(clattn_ssm_state_write(st, x0));
    cl_mem bu = tu_buffer(ctx, B * H * 4, x0), by = tu_buffer(ctx, B * H * 4 + 16, x0);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, 1, 1), ty = clattn_tensor_make(by, B, H, 1, 1);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, by, B * H * 4 + 16, "y");
    clattn_tensor t;
    tu_expect_status(NULL, clattn_ssm_step(NULL, &tu, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER,
                     "step(NULL state)");
    tu_expect_status(ctx, clattn_ssm_step(st, NULL, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER,
                     "step(NULL u)");
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, NULL, 0, NULL, NULL), CLATTN_NULL_POINTER,
                     "step(NULL y)");
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, &ty, 1, NULL, NULL), CLATTN_NULL_POINTER,
                     "step(num_wait 1, wait NULL)");
    t = clattn_tensor_make(bu, 1, H, 1, 1);
    tu_expect_status(ctx, clattn_ssm_step(st, &t, &ty, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
                     "step(u of batch 1)");
    t = ty;
    t.shape[1] = H + 1;
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, &t, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH,
                     "step(y of H + 1)");
    t = ty;
    t.offset = 5;
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, &t, 0, NULL, NULL), CLATTN_BUFFER_TOO_SMALL,
                     "step(y beyond its buffer)");
    t = ty;
    t.strides[1] = 0;
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, &t, 0, NULL, NULL), CLATTN_ALIASING,
                     "step(y with stride 0)");
    t = tu;
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, &t, 0, NULL, NULL), CLATTN_ALIASING,
                     "step(y = u)");
    t = ty;
    t.buffer = NULL;
    tu_expect_status(ctx, clattn_ssm_step(st, &tu, &t, 0, NULL, NULL), CLATTN_NULL_POINTER,
                     "step(y buffer NULL)");
    /* Reads, writes and resets refused. */
    tu_expect_status(NULL, clattn_ssm_state_read(NULL, x), CLATTN_NULL_POINTER, "read(NULL)");
    tu_expect_status(ctx, clattn_ssm_state_read(st, NULL), CLATTN_NULL_POINTER, "read(x NULL)");
    tu_expect_status(NULL, clattn_ssm_state_write(NULL, x0), CLATTN_NULL_POINTER, "write(NULL)");
    tu_expect_status(ctx, clattn_ssm_state_write(st, NULL), CLATTN_NULL_POINTER,
                     "write(x NULL)");
    memcpy(x, x0, nx * 4);
    x[7] = NAN;
    tu_expect_status(ctx, clattn_ssm_state_write(st, x), CLATTN_INVALID_ARGUMENT,
                     "write(a NaN)");
    x[7] = INFINITY;
    tu_expect_status(ctx, clattn_ssm_state_write(st, x), CLATTN_INVALID_ARGUMENT,
                     "write(an Inf)");
    tu_expect_status(NULL, clattn_ssm_state_reset(NULL, 0, NULL, NULL), CLATTN_NULL_POINTER,
                     "reset(NULL)");
    tu_expect_status(ctx, clattn_ssm_state_reset(st, 2, NULL, NULL), CLATTN_NULL_POINTER,
                     "reset(num_wait 2, wait NULL)");
    tu_watch_check(&w, "refused state calls");
    EXPECT_OK(clattn_ssm_state_read(st, x));
    assert_memory_equal(x, x0, nx * 4);
    clattn_ssm_state_destroy(NULL); /* NULL-safe */
    tu_watch_free(&w);
    clattn_ssm_state_destroy(st);
    clattn_ssm_destroy(s);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    free(x0);
    free(x);
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
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_step_events),
        cmocka_unit_test(test_state_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
