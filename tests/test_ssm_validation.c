/* Every invalid path of every SSM entry point (the parameter handle, the kernel, handle and
 * convolution plans, the one-shot and host calls) returns its status with a message and leaves
 * the outputs byte-identical (tu_watch); a NULL desc means the defaults; refused one-shot calls
 * bake nothing. The decoding state's refusals are in test_ssm_state.c. */
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

static clattn_context *ctx;

#define EXPECT(call, want) tu_expect_status(ctx, (call), (want), #call)
#define EXPECT_NOCTX(call, want) tu_expect_status(NULL, (call), (want), #call)

static void test_zoh_and_create(void **state)
{
    (void)state;
    ssm_params p;
    ssm_params_make(&p, 2, 4, 1);
    size_t H = 2, N = 4;
    float *ct = tu_random(2 * H * N, 1.0f, &(uint64_t){3});
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_host(&w, ct, 2 * H * N * sizeof(float), "Ct");
    EXPECT_NOCTX(clattn_ssm_s4d_zoh(H, N, NULL, NULL, p.A, p.log_dt, 1, ct), CLATTN_NULL_POINTER);
    EXPECT_NOCTX(clattn_ssm_s4d_zoh(H, N, p.A, NULL, p.A, p.log_dt, 1, NULL), CLATTN_NULL_POINTER);
    EXPECT_NOCTX(clattn_ssm_s4d_zoh(0, N, p.A, NULL, p.A, p.log_dt, 1, ct), CLATTN_INVALID_SHAPE);
    EXPECT_NOCTX(clattn_ssm_s4d_zoh(H, 0, p.A, NULL, p.A, p.log_dt, 1, ct), CLATTN_INVALID_SHAPE);
    float keep = p.log_dt[1];
    p.log_dt[1] = INFINITY;
    EXPECT_NOCTX(clattn_ssm_s4d_zoh(H, N, p.A, NULL, p.A, p.log_dt, 1, ct),
                 CLATTN_INVALID_ARGUMENT);
    p.log_dt[1] = keep;
    float a2 = p.A[2], a3 = p.A[3];
    p.A[2] = p.A[3] = 0.0f; /* A = 0 */
    EXPECT_NOCTX(clattn_ssm_s4d_zoh(H, N, p.A, NULL, p.Ct, p.log_dt, 1, ct),
                 CLATTN_INVALID_ARGUMENT);
    p.A[2] = a2;
    p.A[3] = a3;
    tu_watch_check(&w, "refused clattn_ssm_s4d_zoh");
    tu_watch_free(&w);

    /* Creation: *ssm stays NULL. */
    clattn_ssm *s = NULL;
    EXPECT_NOCTX(clattn_ssm_create(NULL, H, N, p.A, p.Ct, p.log_dt, NULL, &s),
                 CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, NULL, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_create(ctx, H, N, NULL, p.Ct, p.log_dt, NULL, &s), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, NULL, p.log_dt, NULL, &s), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, NULL, NULL, &s), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_create(ctx, 0, N, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_SHAPE);
    EXPECT(clattn_ssm_create(ctx, H, 0, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_SHAPE);
    EXPECT(clattn_ssm_create(ctx, (size_t)1 << 13, (size_t)1 << 12, p.A, p.Ct, p.log_dt, NULL,
                             &s),
           CLATTN_INVALID_SHAPE); /* H * N = 2^25 */
    p.log_dt[1] = NAN;
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_ARGUMENT);
    p.log_dt[1] = 200.0f; /* exp overflows float */
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "dt"));
    p.log_dt[1] = keep;
    p.A[3] = INFINITY;
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_ARGUMENT);
    p.A[3] = a3;
    p.A[2] = 0.5f; /* Re A > 0: a growing kernel */
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_ARGUMENT);
    p.A[2] = a2;
    p.Ct[5] = NAN;
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, NULL, &s), CLATTN_INVALID_ARGUMENT);
    p.Ct[5] = 0.25f;
    p.D[1] = INFINITY;
    EXPECT(clattn_ssm_create(ctx, H, N, p.A, p.Ct, p.log_dt, p.D, &s), CLATTN_INVALID_ARGUMENT);
    assert_null(s);
    EXPECT_NOCTX(clattn_ssm_get_shape(NULL, &H, &N), CLATTN_NULL_POINTER);
    clattn_ssm_destroy(NULL); /* NULL-safe */
    free(ct);
    ssm_params_free(&p);
}

static void test_kernel_enqueue(void **state)
{
    (void)state;
    ssm_params p;
    ssm_params_make(&p, 2, 4, 2);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    size_t L = 40;
    cl_mem bk = tu_buffer(ctx, (2 * L + 8) * 4, NULL);
    tu_poison_buffer(ctx, bk, (2 * L + 8) * 4);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bk, (2 * L + 8) * 4, "k");
    clattn_tensor k = clattn_tensor_make(bk, 1, 2, L, 1), t;
    EXPECT_NOCTX(clattn_ssm_kernel_enqueue(NULL, &k, 0, NULL, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_kernel_enqueue(s, NULL, 0, NULL, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_kernel_enqueue(s, &k, 1, NULL, NULL), CLATTN_NULL_POINTER);
    t = clattn_tensor_make(bk, 1, 3, L, 1);
    EXPECT(clattn_ssm_kernel_enqueue(s, &t, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    t = clattn_tensor_make(bk, 2, 2, L, 1);
    EXPECT(clattn_ssm_kernel_enqueue(s, &t, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    t = k;
    t.shape[2] = 0;
    EXPECT(clattn_ssm_kernel_enqueue(s, &t, 0, NULL, NULL), CLATTN_INVALID_SHAPE);
    t = k;
    t.offset = 9;
    EXPECT(clattn_ssm_kernel_enqueue(s, &t, 0, NULL, NULL), CLATTN_BUFFER_TOO_SMALL);
    t = k;
    t.strides[2] = 0;
    EXPECT(clattn_ssm_kernel_enqueue(s, &t, 0, NULL, NULL), CLATTN_ALIASING);
    t = k;
    t.buffer = NULL;
    EXPECT(clattn_ssm_kernel_enqueue(s, &t, 0, NULL, NULL), CLATTN_NULL_POINTER);
    tu_watch_check(&w, "refused clattn_ssm_kernel_enqueue");
    tu_watch_free(&w);
    clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

/* Plan creation: *plan stays NULL; a NULL desc bakes what the defaults bake. */
static void test_plan_create(void **state)
{
    (void)state;
    ssm_params p;
    ssm_params_make(&p, 2, 4, 3);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    clattn_context *other = tu_context();
    clattn_ssm *foreign = ssm_params_handle(other, &p, 1);
    clattn_plan *plan = NULL;
    size_t shape[4] = {1, 2, 50, 1}, bad[4];
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    EXPECT_NOCTX(clattn_ssm_plan_create(NULL, &d, s, shape, &plan), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_plan_create(ctx, &d, NULL, shape, &plan), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_plan_create(ctx, &d, s, NULL, &plan), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_plan_create(ctx, &d, s, shape, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_plan_create(ctx, &d, foreign, shape, &plan), CLATTN_INVALID_CONTEXT);
    EXPECT_NOCTX(clattn_ssm_conv_plan_create(NULL, &d, shape, &plan), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_conv_plan_create(ctx, &d, NULL, &plan), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_conv_plan_create(ctx, &d, shape, NULL), CLATTN_NULL_POINTER);
    for (int conv = 0; conv < 2; conv++) {
        clattn_ssm_desc bd = d;
        bd.algorithm = (clattn_ssm_algo)7;
#define CREATE(desc, sh)                                                                           \
    (conv ? clattn_ssm_conv_plan_create(ctx, (desc), (sh), &plan)                                  \
          : clattn_ssm_plan_create(ctx, (desc), s, (sh), &plan))
        EXPECT(CREATE(&bd, shape), CLATTN_INVALID_ARGUMENT);
        bd.algorithm = (clattn_ssm_algo)-1;
        EXPECT(CREATE(&bd, shape), CLATTN_INVALID_ARGUMENT);
        bd = d;
        bd.struct_size = 1;
        EXPECT(CREATE(&bd, shape), CLATTN_INVALID_ARGUMENT);
        bd.struct_size = 5000;
        EXPECT(CREATE(&bd, shape), CLATTN_INVALID_ARGUMENT);
        for (int i = 0; i < 4; i++) {
            memcpy(bad, shape, sizeof bad);
            bad[i] = 0;
            EXPECT(CREATE(&d, bad), CLATTN_INVALID_SHAPE);
        }
        memcpy(bad, shape, sizeof bad);
        bad[3] = 2;
        EXPECT(CREATE(&d, bad), CLATTN_INVALID_SHAPE);
        bad[3] = 1;
        bad[2] = (size_t)1 << 24;
        EXPECT(CREATE(&d, bad), CLATTN_INVALID_SHAPE);
        bad[2] = 50;
        bad[0] = ((size_t)1 << 30) + 1; /* B * H beyond 2^31 */
        EXPECT(CREATE(&d, bad), CLATTN_INVALID_SHAPE);
#undef CREATE
    }
    memcpy(bad, shape, sizeof bad);
    bad[1] = 3;
    EXPECT(clattn_ssm_plan_create(ctx, &d, s, bad, &plan), CLATTN_SHAPE_MISMATCH);
    assert_null(plan);
    /* desc NULL = the defaults, for both kinds. */
    for (int conv = 0; conv < 2; conv++) {
        clattn_plan *a = NULL, *b = NULL;
        clattn_plan_info ia, ib;
        if (conv) {
            assert_int_equal(clattn_ssm_conv_plan_create(ctx, NULL, shape, &a), CLATTN_SUCCESS);
            assert_int_equal(clattn_ssm_conv_plan_create(ctx, &d, shape, &b), CLATTN_SUCCESS);
        } else {
            assert_int_equal(clattn_ssm_plan_create(ctx, NULL, s, shape, &a), CLATTN_SUCCESS);
            assert_int_equal(clattn_ssm_plan_create(ctx, &d, s, shape, &b), CLATTN_SUCCESS);
        }
        assert_int_equal(clattn_plan_get_info(a, &ia), CLATTN_SUCCESS);
        assert_int_equal(clattn_plan_get_info(b, &ib), CLATTN_SUCCESS);
        assert_int_equal(ia.algorithm, ib.algorithm);
        assert_string_equal(ia.launch, ib.launch);
        assert_int_equal(ia.num_kernels, ib.num_kernels);
        clattn_plan_destroy(a);
        clattn_plan_destroy(b);
    }
    clattn_ssm_destroy(foreign);
    clattn_context_destroy(other);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

/* Enqueues of plans and the one-shot calls: y (and its tail) never touched, and the refused
 * one-shot calls bake nothing (no program lookup). */
static void test_enqueue(void **state)
{
    (void)state;
    size_t B = 1, H = 2, L = 50, n = B * H * L;
    ssm_params p;
    ssm_params_make(&p, H, 4, 4);
    clattn_ssm *s = ssm_params_handle(ctx, &p, 1);
    cl_mem bu = tu_buffer(ctx, n * 4, NULL), by = tu_buffer(ctx, (n + 8) * 4, NULL);
    cl_mem bk = tu_buffer(ctx, H * L * 4, NULL);
    tu_poison_buffer(ctx, by, (n + 8) * 4);
    clattn_tensor tu = clattn_tensor_make(bu, B, H, L, 1), ty = clattn_tensor_make(by, B, H, L, 1);
    clattn_tensor tk = clattn_tensor_make(bk, 1, H, L, 1), t;
    clattn_plan *hp = NULL, *cp = NULL;
    assert_int_equal(clattn_ssm_plan_create(ctx, NULL, s, tu.shape, &hp), CLATTN_SUCCESS);
    assert_int_equal(clattn_ssm_conv_plan_create(ctx, NULL, tu.shape, &cp), CLATTN_SUCCESS);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, by, (n + 8) * 4, "y");
    clattn_context_stats before, after;
    assert_int_equal(clattn_context_get_stats(ctx, &before), CLATTN_SUCCESS);
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);

    /* The views every kind of call refuses alike, through each of the four calls. */
    for (int call = 0; call < 4; call++) {
#define RUN(u_, y_, nw_)                                                                           \
    (call == 0   ? clattn_ssm_plan_enqueue(hp, (u_), (y_), (nw_), NULL, NULL)                      \
     : call == 1 ? clattn_ssm_conv_plan_enqueue(cp, (u_), &tk, NULL, (y_), (nw_), NULL, NULL)      \
     : call == 2 ? clattn_ssm_enqueue(s, &d, (u_), (y_), (nw_), NULL, NULL)                        \
                 : clattn_ssm_conv_enqueue(ctx, &d, (u_), &tk, NULL, (y_), (nw_), NULL, NULL))
        EXPECT(RUN(&tu, &ty, 1), CLATTN_NULL_POINTER);
        EXPECT(RUN(NULL, &ty, 0), CLATTN_NULL_POINTER);
        EXPECT(RUN(&tu, NULL, 0), CLATTN_NULL_POINTER);
        t = tu;
        t.shape[2] = 0;
        EXPECT(RUN(&t, &ty, 0), CLATTN_INVALID_SHAPE);
        t = ty;
        t.shape[2] = 0;
        EXPECT(RUN(&tu, &t, 0), CLATTN_INVALID_SHAPE);
        t = ty;
        t.shape[2] = L - 1;
        EXPECT(RUN(&tu, &t, 0), CLATTN_SHAPE_MISMATCH);
        t = ty;
        t.offset = 9; /* beyond the buffer */
        EXPECT(RUN(&tu, &t, 0), CLATTN_BUFFER_TOO_SMALL);
        t = tu;
        EXPECT(RUN(&tu, &t, 0), CLATTN_ALIASING);
        t = ty;
        t.strides[2] = 0;
        EXPECT(RUN(&tu, &t, 0), CLATTN_ALIASING);
        t = tu;
        t.buffer = NULL;
        EXPECT(RUN(&t, &ty, 0), CLATTN_NULL_POINTER);
#undef RUN
    }
    /* Plans of the other kind, and of another operator. */
    EXPECT_NOCTX(clattn_ssm_plan_enqueue(NULL, &tu, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_plan_enqueue(cp, &tu, &ty, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    EXPECT(clattn_ssm_conv_plan_enqueue(hp, &tu, &tk, NULL, &ty, 0, NULL, NULL),
           CLATTN_INVALID_ARGUMENT);
    {
        clattn_softmax_desc sd;
        clattn_softmax_desc_init(&sd);
        size_t qs[4] = {1, 1, 4, 4};
        clattn_plan *other = NULL;
        assert_int_equal(clattn_softmax_plan_create(ctx, &sd, qs, qs, qs, &other),
                         CLATTN_SUCCESS);
        EXPECT(clattn_ssm_plan_enqueue(other, &tu, &ty, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
        EXPECT(clattn_ssm_conv_plan_enqueue(other, &tu, &tk, NULL, &ty, 0, NULL, NULL),
               CLATTN_INVALID_ARGUMENT);
        clattn_plan_destroy(other);
        assert_int_equal(clattn_context_get_stats(ctx, &before), CLATTN_SUCCESS);
    }
    /* The one-shot calls' own arguments. */
    EXPECT_NOCTX(clattn_ssm_enqueue(NULL, &d, &tu, &ty, 0, NULL, NULL), CLATTN_NULL_POINTER);
    EXPECT_NOCTX(clattn_ssm_conv_enqueue(NULL, &d, &tu, &tk, NULL, &ty, 0, NULL, NULL),
                 CLATTN_NULL_POINTER);
    clattn_ssm_desc bd = d;
    bd.algorithm = (clattn_ssm_algo)7;
    EXPECT(clattn_ssm_enqueue(s, &bd, &tu, &ty, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    EXPECT(clattn_ssm_conv_enqueue(ctx, &bd, &tu, &tk, NULL, &ty, 0, NULL, NULL),
           CLATTN_INVALID_ARGUMENT);
    bd = d;
    bd.struct_size = 1;
    EXPECT(clattn_ssm_enqueue(s, &bd, &tu, &ty, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    t = tu;
    t.shape[3] = 2;
    EXPECT(clattn_ssm_enqueue(s, &d, &t, &ty, 0, NULL, NULL), CLATTN_INVALID_SHAPE);
    clattn_tensor u3 = clattn_tensor_make(bu, 1, 1, L, 1), y3 = clattn_tensor_make(by, 1, 1, L, 1);
    EXPECT(clattn_ssm_enqueue(s, &d, &u3, &y3, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    /* A convolution's kernel and skip term. */
    for (int oneshot = 0; oneshot < 2; oneshot++) {
#define CONV(k_, d_)                                                                               \
    (oneshot ? clattn_ssm_conv_enqueue(ctx, &d, &tu, (k_), (d_), &ty, 0, NULL, NULL)               \
             : clattn_ssm_conv_plan_enqueue(cp, &tu, (k_), (d_), &ty, 0, NULL, NULL))
        EXPECT(CONV(NULL, NULL), CLATTN_NULL_POINTER);
        t = clattn_tensor_make(bk, 1, H, L - 1, 1);
        EXPECT(CONV(&t, NULL), CLATTN_SHAPE_MISMATCH);
        t = clattn_tensor_make(bk, 1, H + 1, L, 1);
        EXPECT(CONV(&t, NULL), CLATTN_SHAPE_MISMATCH);
        clattn_tensor td = clattn_tensor_make(bk, 1, 1, 1, 1);
        EXPECT(CONV(&tk, &td), CLATTN_SHAPE_MISMATCH);
        t = clattn_tensor_make(by, 1, H, L, 1);
        EXPECT(CONV(&t, NULL), CLATTN_ALIASING);
        td = clattn_tensor_make(by, 1, H, 1, 1);
        EXPECT(CONV(&tk, &td), CLATTN_ALIASING);
        t = tk;
        t.offset = 1;
        EXPECT(CONV(&t, NULL), CLATTN_BUFFER_TOO_SMALL);
#undef CONV
    }
    assert_int_equal(clattn_context_get_stats(ctx, &after), CLATTN_SUCCESS);
    assert_int_equal(after.program_lookups, before.program_lookups);
    assert_int_equal(after.kernels_created, before.kernels_created);
    tu_watch_check(&w, "refused SSM enqueues");
    tu_watch_free(&w);
    clattn_plan_destroy(hp);
    clattn_plan_destroy(cp);
    clReleaseMemObject(bu);
    clReleaseMemObject(by);
    clReleaseMemObject(bk);
    clattn_ssm_destroy(s);
    ssm_params_free(&p);
}

static void test_host(void **state)
{
    (void)state;
    size_t B = 1, H = 2, N = 4, L = 6;
    ssm_params p;
    ssm_params_make(&p, H, N, 6);
    float u[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, *y = tu_poisoned(B * H * L);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_host(&w, y, B * H * L * 4, "y");
    clattn_ssm_desc d;
    clattn_ssm_desc_init(&d);
    EXPECT_NOCTX(clattn_ssm_host(NULL, &d, B, H, N, L, p.A, p.Ct, p.log_dt, p.D, u, y),
                 CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_host(ctx, &d, B, H, N, L, p.A, p.Ct, p.log_dt, p.D, NULL, y),
           CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_host(ctx, &d, B, H, N, L, p.A, p.Ct, p.log_dt, p.D, u, NULL),
           CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_host(ctx, &d, B, H, N, L, NULL, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_NULL_POINTER);
    EXPECT(clattn_ssm_host(ctx, &d, B, H, N, 0, p.A, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_INVALID_SHAPE);
    EXPECT(clattn_ssm_host(ctx, &d, 0, H, N, L, p.A, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_INVALID_SHAPE);
    EXPECT(clattn_ssm_host(ctx, &d, B, 0, N, L, p.A, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_INVALID_SHAPE);
    EXPECT(clattn_ssm_host(ctx, &d, B, H, N, (size_t)1 << 24, p.A, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_INVALID_SHAPE);
    clattn_ssm_desc bd = d;
    bd.algorithm = (clattn_ssm_algo)3;
    EXPECT(clattn_ssm_host(ctx, &bd, B, H, N, L, p.A, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_INVALID_ARGUMENT);
    p.log_dt[0] = -INFINITY; /* dt = 0 */
    EXPECT(clattn_ssm_host(ctx, &d, B, H, N, L, p.A, p.Ct, p.log_dt, p.D, u, y),
           CLATTN_INVALID_ARGUMENT);
    tu_watch_check(&w, "refused clattn_ssm_host");
    tu_watch_free(&w);
    free(y);
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
        cmocka_unit_test(test_zoh_and_create),
        cmocka_unit_test(test_kernel_enqueue),
        cmocka_unit_test(test_plan_create),
        cmocka_unit_test(test_enqueue),
        cmocka_unit_test(test_host),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
