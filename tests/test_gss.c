/* The GSS layer (clattn_gss_*) against the fp64 reference of Figure 1's pseudocode
 * (tests/reference/ref_gss.c), on the device chosen by CLATTN_DEVICE: through a plan (enqueued
 * twice, identical) and the one-shot call, with and without biases, by both DSS algorithms; the
 * plan baked once (no program lookup or kernel creation on enqueue); the wait list; and every
 * refused call leaving out byte-identical. Parameters: S4D-Lin (test_ssm_fixture.h). Tolerance:
 * ssm_check_close (every element within 1e-4 * max(1, max|ref|), normalised error within 1e-5). */
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
#include "reference/ref_gss.h"

static clattn_context *ctx;

#define EXPECT_OK(call) SSM_OK(ctx, call)
#define EXPECT(call, want) tu_expect_status(ctx, (call), (want), #call)

typedef struct gss_case {
    size_t B, L, E, F, H, N;
    int with_bias;
    clattn_ssm_algo algo;
} gss_case;

/* One layer's inputs on the host and the device, and its fp64 reference output. */
typedef struct layer {
    const gss_case *c;
    size_t T;
    ssm_params p;
    clattn_ssm *s;
    float *host[11]; /* x, gamma, beta, wv, bv, wu, bu, wo1, bo1, wo2, bo2 */
    float *ref;
    clattn_gss_weights w;
    cl_mem bufs[10];
    size_t nb;
    cl_mem bx, bo;
    clattn_tensor tx, to;
} layer;

static void layer_make(layer *ly, const gss_case *c)
{
    memset(ly, 0, sizeof *ly);
    ly->c = c;
    size_t T = ly->T = c->B * c->L;
    uint64_t seed = 1234 + c->L;
    ssm_params_make(&ly->p, c->H, c->N, 55);
    float **h = ly->host;
    h[0] = tu_random(T * c->E, 2.0f, &seed);
    for (size_t i = 0; i < T * c->E; i += 3)
        h[0][i] += 5.0f; /* rows with a large mean */
    float ws = 1.0f / sqrtf((float)c->E);
    h[1] = tu_random(c->E, 1.0f, &seed);
    h[2] = tu_random(c->E, 0.5f, &seed);
    h[3] = tu_random(c->E * c->F, ws, &seed);
    h[4] = tu_random(c->F, 0.2f, &seed);
    h[5] = tu_random(c->E * c->H, ws, &seed);
    h[6] = tu_random(c->H, 0.2f, &seed);
    h[7] = tu_random(c->H * c->F, 1.0f / sqrtf((float)c->H), &seed);
    h[8] = tu_random(c->F, 0.2f, &seed);
    h[9] = tu_random(c->F * c->E, 1.0f / sqrtf((float)c->F), &seed);
    h[10] = tu_random(c->E, 0.2f, &seed);
    ly->ref = malloc(T * c->E * sizeof(float));
    assert_non_null(ly->ref);
    int wb = c->with_bias;
    ref_gss(h[0], c->B, c->L, c->E, c->F, c->H, c->N, wb ? h[1] : NULL, wb ? h[2] : NULL, 1e-5,
            h[3], wb ? h[4] : NULL, h[5], wb ? h[6] : NULL, h[7], wb ? h[8] : NULL, h[9],
            wb ? h[10] : NULL, ly->p.A, ly->p.Ct, ly->p.log_dt, ly->p.D, ly->ref);
    ly->s = ssm_params_handle(ctx, &ly->p, 1);
    clattn_gss_weights *w = &ly->w;
    ly->bufs[ly->nb++] = w->w_v = tu_buffer(ctx, c->E * c->F * 4, h[3]);
    ly->bufs[ly->nb++] = w->w_u = tu_buffer(ctx, c->E * c->H * 4, h[5]);
    ly->bufs[ly->nb++] = w->w_o1 = tu_buffer(ctx, c->H * c->F * 4, h[7]);
    ly->bufs[ly->nb++] = w->w_o2 = tu_buffer(ctx, c->F * c->E * 4, h[9]);
    if (wb) {
        ly->bufs[ly->nb++] = w->ln_gamma = tu_buffer(ctx, c->E * 4, h[1]);
        ly->bufs[ly->nb++] = w->ln_beta = tu_buffer(ctx, c->E * 4, h[2]);
        ly->bufs[ly->nb++] = w->b_v = tu_buffer(ctx, c->F * 4, h[4]);
        ly->bufs[ly->nb++] = w->b_u = tu_buffer(ctx, c->H * 4, h[6]);
        ly->bufs[ly->nb++] = w->b_o1 = tu_buffer(ctx, c->F * 4, h[8]);
        ly->bufs[ly->nb++] = w->b_o2 = tu_buffer(ctx, c->E * 4, h[10]);
    }
    ly->bx = tu_buffer(ctx, T * c->E * 4, h[0]);
    ly->bo = ssm_poisoned_dev(ctx, T * c->E);
    ly->tx = clattn_tensor_make(ly->bx, c->B, 1, c->L, c->E);
    ly->to = clattn_tensor_make(ly->bo, c->B, 1, c->L, c->E);
}

static void layer_free(layer *ly)
{
    for (size_t i = 0; i < ly->nb; i++)
        clReleaseMemObject(ly->bufs[i]);
    clReleaseMemObject(ly->bx);
    clReleaseMemObject(ly->bo);
    clattn_ssm_destroy(ly->s);
    for (size_t i = 0; i < 11; i++)
        free(ly->host[i]);
    free(ly->ref);
    ssm_params_free(&ly->p);
}

static void run_gss(const gss_case *c)
{
    layer ly;
    layer_make(&ly, c);
    size_t n = ly.T * c->E;
    clattn_gss_desc d;
    clattn_gss_desc_init(&d);
    d.algorithm = c->algo;
    clattn_plan *plan = NULL;
    EXPECT_OK(clattn_gss_plan_create(ctx, &d, ly.s, c->F, ly.tx.shape, &plan));
    clattn_plan_info info;
    EXPECT_OK(clattn_plan_get_info(plan, &info));
    assert_int_equal(info.op, CLATTN_OP_GSS);
    if (c->algo != CLATTN_SSM_AUTO)
        assert_int_equal(info.algorithm, c->algo);
    /* The layer's four kernels, then the DSS's. */
    assert_true(info.num_kernels >= 5);
    assert_string_equal(info.kernels[0].name, "clattn_gss_layernorm");
    assert_non_null(strstr(info.kernels[4].name, "clattn_ssm_"));
    EXPECT_OK(clattn_gss_plan_enqueue(plan, &ly.w, &ly.tx, &ly.to, 0, NULL, NULL));
    float *got = ssm_read_dev(ctx, ly.bo, n);
    char what[96];
    snprintf(what, sizeof what, "gss B%zu L%zu E%zu F%zu H%zu bias %d algo %d", c->B, c->L, c->E,
             c->F, c->H, c->with_bias, (int)c->algo);
    ssm_check_close(got, ly.ref, n, what);
    for (int oneshot = 0; oneshot < 2; oneshot++) {
        tu_poison_buffer(ctx, ly.bo, n * 4);
        if (oneshot)
            EXPECT_OK(clattn_gss_enqueue(ctx, &d, ly.s, &ly.w, c->F, &ly.tx, &ly.to, 0, NULL,
                                         NULL));
        else
            EXPECT_OK(clattn_gss_plan_enqueue(plan, &ly.w, &ly.tx, &ly.to, 0, NULL, NULL));
        float *again = ssm_read_dev(ctx, ly.bo, n);
        assert_memory_equal(got, again, n * sizeof(float));
        free(again);
    }
    free(got);
    clattn_plan_destroy(plan);
    layer_free(&ly);
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

/* Enqueues of a baked layer make no program lookup and create no kernel; the caller's wait list
 * gates the layer and the returned event completes it. */
static void test_bake_once_and_events(void **state)
{
    (void)state;
    const gss_case c = {2, 40, 8, 12, 4, 4, 1, CLATTN_SSM_AUTO};
    layer ly;
    layer_make(&ly, &c);
    size_t n = ly.T * c.E;
    clattn_plan *plan = NULL;
    EXPECT_OK(clattn_gss_plan_create(ctx, NULL, ly.s, c.F, ly.tx.shape, &plan));
    /* Warm CLBlast's own kernel cache: it is not the library's. */
    EXPECT_OK(clattn_gss_plan_enqueue(plan, &ly.w, &ly.tx, &ly.to, 0, NULL, NULL));
    EXPECT_OK(clattn_context_finish(ctx));
    clattn_context_stats before, after;
    EXPECT_OK(clattn_context_get_stats(ctx, &before));
    for (int i = 0; i < 5; i++) {
        tu_poison_buffer(ctx, ly.bo, n * 4);
        cl_event wrote = NULL, done = NULL;
        /* x is rewritten (same values) before each layer; the layer waits for it. */
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), ly.bx, CL_FALSE,
                                              0, n * 4, ly.host[0], 0, NULL, &wrote),
                         CL_SUCCESS);
        EXPECT_OK(clattn_gss_plan_enqueue(plan, &ly.w, &ly.tx, &ly.to, 1, &wrote, &done));
        assert_non_null(done);
        assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
        float *got = ssm_read_dev(ctx, ly.bo, n);
        ssm_check_close(got, ly.ref, n, "gss after its wait list");
        free(got);
        clReleaseEvent(wrote);
        clReleaseEvent(done);
    }
    EXPECT_OK(clattn_context_get_stats(ctx, &after));
    assert_int_equal(after.program_lookups, before.program_lookups);
    assert_int_equal(after.kernels_created, before.kernels_created);
    clattn_plan_destroy(plan);
    layer_free(&ly);
}

/* Every refused call returns its status with a message and leaves out byte-identical. */
static void test_invalid(void **state)
{
    (void)state;
    const gss_case c = {2, 6, 8, 5, 3, 2, 1, CLATTN_SSM_DIRECT};
    layer ly;
    layer_make(&ly, &c);
    size_t n = ly.T * c.E, F = c.F;
    clattn_gss_desc d;
    clattn_gss_desc_init(&d);
    clattn_plan *plan = NULL;
    EXPECT_OK(clattn_gss_plan_create(ctx, &d, ly.s, F, ly.tx.shape, &plan));
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, ly.bo, n * 4, "out");
    clattn_tensor tx = ly.tx, to = ly.to, t;
    clattn_plan *none = NULL;

    /* Plan creation: *plan stays NULL. */
    tu_expect_status(NULL, clattn_gss_plan_create(NULL, &d, ly.s, F, tx.shape, &none),
                     CLATTN_NULL_POINTER, "gss_plan_create(NULL ctx)");
    EXPECT(clattn_gss_plan_create(ctx, &d, NULL, F, tx.shape, &none), CLATTN_NULL_POINTER);
    EXPECT(clattn_gss_plan_create(ctx, &d, ly.s, F, NULL, &none), CLATTN_NULL_POINTER);
    EXPECT(clattn_gss_plan_create(ctx, &d, ly.s, F, tx.shape, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_gss_plan_create(ctx, &d, ly.s, 0, tx.shape, &none), CLATTN_INVALID_SHAPE);
    EXPECT(clattn_gss_plan_create(ctx, &d, ly.s, (size_t)1 << 24, tx.shape, &none),
           CLATTN_INVALID_SHAPE);
    size_t bad[4] = {c.B, 2, c.L, c.E};
    EXPECT(clattn_gss_plan_create(ctx, &d, ly.s, F, bad, &none), CLATTN_INVALID_SHAPE);
    bad[1] = 1;
    bad[2] = 0;
    EXPECT(clattn_gss_plan_create(ctx, &d, ly.s, F, bad, &none), CLATTN_INVALID_SHAPE);
    clattn_gss_desc bd = d;
    bd.ln_eps = 0.0f;
    EXPECT(clattn_gss_plan_create(ctx, &bd, ly.s, F, tx.shape, &none), CLATTN_INVALID_ARGUMENT);
    bd.ln_eps = NAN;
    EXPECT(clattn_gss_plan_create(ctx, &bd, ly.s, F, tx.shape, &none), CLATTN_INVALID_ARGUMENT);
    bd = d;
    bd.algorithm = (clattn_ssm_algo)9;
    EXPECT(clattn_gss_plan_create(ctx, &bd, ly.s, F, tx.shape, &none), CLATTN_INVALID_ARGUMENT);
    bd = d;
    bd.struct_size = 2;
    EXPECT(clattn_gss_plan_create(ctx, &bd, ly.s, F, tx.shape, &none), CLATTN_INVALID_ARGUMENT);
    {
        clattn_context *other = tu_context();
        tu_expect_status(other, clattn_gss_plan_create(other, &d, ly.s, F, tx.shape, &none),
                         CLATTN_INVALID_CONTEXT, "gss_plan_create(dss of another context)");
        clattn_context_destroy(other);
    }
    assert_null(none);

    /* Enqueues, through the plan and the one-shot call alike. */
    for (int oneshot = 0; oneshot < 2; oneshot++) {
#define RUN(w_, x_, o_, nw_)                                                                       \
    (oneshot ? clattn_gss_enqueue(ctx, &d, ly.s, (w_), F, (x_), (o_), (nw_), NULL, NULL)           \
             : clattn_gss_plan_enqueue(plan, (w_), (x_), (o_), (nw_), NULL, NULL))
        EXPECT(RUN(NULL, &tx, &to, 0), CLATTN_NULL_POINTER);
        EXPECT(RUN(&ly.w, NULL, &to, 0), CLATTN_NULL_POINTER);
        EXPECT(RUN(&ly.w, &tx, NULL, 0), CLATTN_NULL_POINTER);
        EXPECT(RUN(&ly.w, &tx, &to, 1), CLATTN_NULL_POINTER);
        clattn_gss_weights bw = ly.w;
        bw.w_o2 = NULL;
        EXPECT(RUN(&bw, &tx, &to, 0), CLATTN_NULL_POINTER);
        bw = ly.w;
        bw.b_v = ly.w.b_u; /* H floats where F are needed */
        EXPECT(RUN(&bw, &tx, &to, 0), CLATTN_BUFFER_TOO_SMALL);
        bw = ly.w;
        bw.w_u = ly.w.b_o2; /* E floats where E * H are needed */
        EXPECT(RUN(&bw, &tx, &to, 0), CLATTN_BUFFER_TOO_SMALL);
        EXPECT(RUN(&ly.w, &tx, &tx, 0), CLATTN_ALIASING);
        bw = ly.w;
        bw.b_o1 = ly.bo; /* out overlaps a weight */
        EXPECT(RUN(&bw, &tx, &to, 0), CLATTN_ALIASING);
        t = to; /* features L apart: same extent, rows not dense */
        t.strides[2] = 1;
        t.strides[3] = c.L;
        EXPECT(RUN(&ly.w, &tx, &t, 0), CLATTN_UNSUPPORTED);
        t = to;
        t.offset = 3;
        EXPECT(RUN(&ly.w, &tx, &t, 0), CLATTN_BUFFER_TOO_SMALL);
#undef RUN
    }
    t = clattn_tensor_make(ly.bo, 1, 1, c.L, c.E); /* B = 1: another shape than the plan's */
    EXPECT(clattn_gss_plan_enqueue(plan, &ly.w, &tx, &t, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    tu_expect_status(NULL, clattn_gss_plan_enqueue(NULL, &ly.w, &tx, &to, 0, NULL, NULL),
                     CLATTN_NULL_POINTER, "gss_plan_enqueue(NULL plan)");
    {
        clattn_plan *sp = NULL;
        size_t us[4] = {1, c.H, 8, 1};
        EXPECT_OK(clattn_ssm_plan_create(ctx, NULL, ly.s, us, &sp));
        EXPECT(clattn_gss_plan_enqueue(sp, &ly.w, &tx, &to, 0, NULL, NULL),
               CLATTN_INVALID_ARGUMENT);
        clattn_plan_destroy(sp);
    }
    tu_expect_status(NULL, clattn_gss_enqueue(NULL, &d, ly.s, &ly.w, F, &tx, &to, 0, NULL, NULL),
                     CLATTN_NULL_POINTER, "gss_enqueue(NULL ctx)");
    EXPECT(clattn_gss_enqueue(ctx, &d, NULL, &ly.w, F, &tx, &to, 0, NULL, NULL),
           CLATTN_NULL_POINTER);
    EXPECT(clattn_gss_enqueue(ctx, &d, ly.s, &ly.w, 0, &tx, &to, 0, NULL, NULL),
           CLATTN_INVALID_SHAPE);
    bd = d;
    bd.ln_eps = -1.0f;
    EXPECT(clattn_gss_enqueue(ctx, &bd, ly.s, &ly.w, F, &tx, &to, 0, NULL, NULL),
           CLATTN_INVALID_ARGUMENT);
    tu_watch_check(&w, "refused GSS calls");
    tu_watch_free(&w);
    /* desc NULL = the defaults. */
    EXPECT_OK(clattn_gss_enqueue(ctx, NULL, ly.s, &ly.w, F, &tx, &to, 0, NULL, NULL));
    float *got = ssm_read_dev(ctx, ly.bo, n);
    ssm_check_close(got, ly.ref, n, "gss, desc NULL");
    free(got);
    clattn_plan_destroy(plan);
    layer_free(&ly);
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
        cmocka_unit_test(test_gss),
        cmocka_unit_test(test_bake_once_and_events),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
