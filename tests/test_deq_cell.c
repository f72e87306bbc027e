/* The built-in DEQ attention cell (clattn_deq_cell_*, lib/ops/deq_cell.c): one evaluation
 * against the fp64 reference (tests/reference/ref_deq.c; causal and not, several heads, N not a
 * tile multiple), its fixed point solved by each method with |f(z*) - z*| / |z*| <= tol checked
 * by a separate evaluation and against the reference, Anderson using fewer f evaluations than
 * plain iteration, no kernel creation or program lookup per evaluation, the linear-attention
 * cell, and refused calls leaving outputs byte-identical. */
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
#include "reference/ref_deq.h"

static clattn_context *ctx;

#define EXPECT(call, want) tu_expect_status(ctx, (call), (want), #call)
#define OK(call) EXPECT(call, CLATTN_SUCCESS)

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

/* The weights (amplitude amp / sqrt(D)) and x of one cell, on the host and the device. */
typedef struct cell_data {
    size_t B, N, D;
    float *w[4], *x;
    cl_mem bw[4], bx;
} cell_data;

static void data_make(cell_data *c, size_t B, size_t N, size_t D, float amp, uint64_t seed)
{
    c->B = B;
    c->N = N;
    c->D = D;
    for (int i = 0; i < 4; i++) {
        c->w[i] = tu_random(D * D, amp / sqrtf((float)D), &seed);
        c->bw[i] = tu_buffer(ctx, D * D * sizeof(float), c->w[i]);
    }
    c->x = tu_random(B * N * D, 1.0f, &seed);
    c->bx = tu_buffer(ctx, B * N * D * sizeof(float), c->x);
}

static void data_free(cell_data *c)
{
    for (int i = 0; i < 4; i++) {
        free(c->w[i]);
        clReleaseMemObject(c->bw[i]);
    }
    free(c->x);
    clReleaseMemObject(c->bx);
}

static clattn_plan *cell_make(cell_data *c, unsigned heads, int causal,
                              clattn_deq_attention attn)
{
    clattn_deq_cell_desc d;
    clattn_deq_cell_desc_init(&d);
    d.heads = heads;
    d.causal = causal;
    d.attention = attn;
    clattn_plan *cell = NULL;
    OK(clattn_deq_cell_create(ctx, &d, c->B, c->N, c->D, c->bw[0], c->bw[1], c->bw[2], c->bw[3],
                              &cell));
    clattn_tensor x = clattn_tensor_make(c->bx, c->B, 1, c->N, c->D);
    OK(clattn_deq_cell_set_input(cell, &x));
    return cell;
}

/* out = f(z) on the device (blocking). */
static void eval(clattn_plan *cell, const cell_data *c, cl_mem bz, cl_mem bo, float *out)
{
    clattn_tensor z = clattn_tensor_make(bz, c->B, 1, c->N, c->D),
                  o = clattn_tensor_make(bo, c->B, 1, c->N, c->D);
    OK(clattn_deq_cell_eval(cell, &z, &o, 0, NULL, NULL));
    tu_read(ctx, bo, c->B * c->N * c->D * sizeof(float), out);
}

/* One evaluation against the reference. Tolerance: fp32 against fp64, unit-scale LayerNorm
 * output: 1e-4 per element (absolute and relative), 1e-5 normalised. */
static void test_cell_eval(void **state)
{
    (void)state;
    const struct {
        size_t B, N, D;
        unsigned H;
        int causal;
    } cases[] = {{2, 7, 8, 2, 0}, {1, 13, 12, 3, 1}, {1, 1, 4, 1, 0}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        cell_data c;
        data_make(&c, cases[t].B, cases[t].N, cases[t].D, 1.0f, 100 + t);
        size_t L = c.B * c.N * c.D;
        uint64_t seed = 7;
        float *z = tu_random(L, 1.0f, &seed), *got = tu_poisoned(L);
        double *zd = malloc(L * sizeof *zd), *ref = malloc(L * sizeof *ref);
        for (size_t i = 0; i < L; i++)
            zd[i] = z[i];
        ref_deq_cell(c.B, c.N, c.D, cases[t].H, cases[t].causal, c.w[0], c.w[1], c.w[2], c.w[3],
                     c.x, zd, ref);
        clattn_plan *cell = cell_make(&c, cases[t].H, cases[t].causal, CLATTN_DEQ_CELL_SOFTMAX);
        cl_mem bz = tu_buffer(ctx, L * 4, z), bo = tu_buffer(ctx, L * 4, got);
        eval(cell, &c, bz, bo, got);
        tu_check_close_d(got, ref, L, (tu_tol){1e-4, 1e-4, 1e-5}, "cell f(z)");
        clattn_plan_destroy(cell);
        clReleaseMemObject(bz);
        clReleaseMemObject(bo);
        free(z);
        free(got);
        free(zd);
        free(ref);
        data_free(&c);
    }
}

static double rel_res(const float *fz, const float *z, size_t L)
{
    double r = 0.0, n = 0.0;
    for (size_t i = 0; i < L; i++) {
        r += ((double)fz[i] - z[i]) * ((double)fz[i] - z[i]);
        n += (double)z[i] * z[i];
    }
    return sqrt(r) / sqrt(n);
}

/* Solves the cell with `m` within max_iter evaluations and returns how many it used. When
 * `expect_conv`: checks the residual by a separate evaluation (<= tol, with 20% room for the
 * reduction order) and, with check_ref, against the fp64 cell (<= 1e-4); otherwise expects
 * NOT_CONVERGED after exactly max_iter evaluations. Either way the solve creates no kernel and
 * looks up no program. */
static unsigned solve_cell(clattn_plan *cell, const cell_data *c, clattn_deq_method m,
                           unsigned heads, int check_ref, unsigned max_iter, int expect_conv)
{
    size_t L = c->B * c->N * c->D;
    clattn_deq_desc d;
    clattn_deq_desc_init(&d);
    d.method = m;
    d.max_iter = max_iter;
    const size_t shape[4] = {c->B, 1, c->N, c->D};
    clattn_plan *solver = NULL;
    OK(clattn_deq_plan_create(ctx, &d, shape, &solver));
    float *z = calloc(L, sizeof *z), *fz = tu_poisoned(L);
    cl_mem bz = tu_buffer(ctx, L * 4, z), bo = tu_buffer(ctx, L * 4, fz);
    clattn_tensor tz = clattn_tensor_make(bz, c->B, 1, c->N, c->D);
    clattn_deq_result r;
    /* one evaluation first (CLBlast builds its kernels on its first GEMM), then count */
    eval(cell, c, bz, bo, fz);
    clattn_context_stats before, after;
    OK(clattn_context_get_stats(ctx, &before));
    EXPECT(clattn_deq_solve(solver, clattn_deq_cell_eval, cell, &tz, &r),
           expect_conv ? CLATTN_SUCCESS : CLATTN_NOT_CONVERGED);
    OK(clattn_context_get_stats(ctx, &after));
    assert_int_equal(after.kernels_created, before.kernels_created);
    assert_int_equal(after.program_lookups, before.program_lookups);
    if (!expect_conv) {
        assert_int_equal(r.f_evals, max_iter);
        assert_true(!r.converged && r.residual > d.tol);
        print_message("method %d: not converged in %u evaluations, residual %.2e\n", (int)m,
                      r.f_evals, r.residual);
        goto done;
    }
    assert_true(r.converged && r.residual <= d.tol);
    tu_read(ctx, bz, L * 4, z);
    eval(cell, c, bz, bo, fz);
    double res = rel_res(fz, z, L);
    if (!(res <= 1.2 * d.tol))
        fail_msg("method %d: separate evaluation gives residual %g (solver %g)", (int)m, res,
                 r.residual);
    if (check_ref) {
        double *zd = malloc(L * sizeof *zd), *ref = malloc(L * sizeof *ref);
        for (size_t i = 0; i < L; i++)
            zd[i] = z[i];
        ref_deq_cell(c->B, c->N, c->D, heads, 0, c->w[0], c->w[1], c->w[2], c->w[3], c->x, zd,
                     ref);
        double rr = 0.0, nn = 0.0;
        for (size_t i = 0; i < L; i++) {
            rr += (ref[i] - zd[i]) * (ref[i] - zd[i]);
            nn += zd[i] * zd[i];
        }
        if (!(sqrt(rr / nn) <= 1e-4))
            fail_msg("method %d: the fp64 cell's residual at z* is %g", (int)m, sqrt(rr / nn));
        free(zd);
        free(ref);
    }
    print_message("method %d: %u evaluations, residual %.2e (separate: %.2e)\n", (int)m,
                  r.f_evals, r.residual, res);
done:
    clattn_plan_destroy(solver);
    clReleaseMemObject(bz);
    clReleaseMemObject(bo);
    free(z);
    free(fz);
    return r.f_evals;
}

static void test_cell_fixed_point(void **state)
{
    (void)state;
    cell_data c;
    data_make(&c, 1, 20, 16, 1.0f, 42);
    clattn_plan *cell = cell_make(&c, 2, 0, CLATTN_DEQ_CELL_SOFTMAX);
    unsigned an = solve_cell(cell, &c, CLATTN_DEQ_ANDERSON, 2, 1, 100, 1);
    solve_cell(cell, &c, CLATTN_DEQ_BROYDEN, 2, 1, 100, 1);
    /* plain iteration does not get there with Anderson's evaluations */
    solve_cell(cell, &c, CLATTN_DEQ_ITERATE, 2, 0, an, 0);
    clattn_plan_info info;
    OK(clattn_plan_get_info(cell, &info));
    assert_int_equal(info.op, CLATTN_OP_DEQ);
    clattn_plan_destroy(cell);
    /* the linear-attention cell, causal */
    cell = cell_make(&c, 4, 1, CLATTN_DEQ_CELL_LINEAR);
    solve_cell(cell, &c, CLATTN_DEQ_ANDERSON, 4, 0, 100, 1);
    clattn_plan_destroy(cell);
    data_free(&c);
}

/* The solvers and the cell on a context wrapping an out-of-order queue (their commands chained by
 * events): the same fixed point as on the in-order queue. Skipped where the device has no
 * out-of-order queues (rusticl). */
static void test_out_of_order_queue(void **state)
{
    (void)state;
    cl_command_queue oq = tu_out_of_order_queue(ctx);
    clattn_context *octx = NULL;
    tu_expect_status(NULL,
                     clattn_context_create_from_cl(clattn_context_get_cl_context(ctx),
                                                   clattn_context_get_cl_device(ctx), oq, &octx),
                     CLATTN_SUCCESS, "context on an out-of-order queue");
    cell_data c;
    data_make(&c, 1, 9, 8, 1.0f, 77);
    size_t L = c.B * c.N * c.D;
    float *ref = calloc(L, sizeof *ref), *got = calloc(L, sizeof *got);
    const size_t shape[4] = {c.B, 1, c.N, c.D};
    clattn_tensor tx = clattn_tensor_make(c.bx, c.B, 1, c.N, c.D);
    for (int m = 0; m < 3; m++) {
        for (int side = 0; side < 2; side++) {
            clattn_context *cx = side ? octx : ctx;
            clattn_plan *cell = NULL, *solver = NULL;
            tu_expect_status(cx,
                             clattn_deq_cell_create(cx, NULL, c.B, c.N, c.D, c.bw[0], c.bw[1],
                                                    c.bw[2], c.bw[3], &cell),
                             CLATTN_SUCCESS, "cell");
            tu_expect_status(cx, clattn_deq_cell_set_input(cell, &tx), CLATTN_SUCCESS, "input");
            clattn_deq_desc d;
            clattn_deq_desc_init(&d);
            d.method = (clattn_deq_method)m;
            d.max_iter = 100;
            tu_expect_status(cx, clattn_deq_plan_create(cx, &d, shape, &solver), CLATTN_SUCCESS,
                             "solver");
            float *zero = calloc(L, sizeof *zero);
            cl_mem bz = tu_buffer(ctx, L * 4, zero);
            clattn_tensor tz = clattn_tensor_make(bz, c.B, 1, c.N, c.D);
            clattn_deq_result r;
            tu_expect_status(cx, clattn_deq_solve(solver, clattn_deq_cell_eval, cell, &tz, &r),
                             CLATTN_SUCCESS, side ? "out-of-order solve" : "in-order solve");
            tu_read(ctx, bz, L * 4, side ? got : ref);
            clattn_plan_destroy(solver);
            clattn_plan_destroy(cell);
            clReleaseMemObject(bz);
            free(zero);
        }
        /* both within tol of the fixed point: |z - z'| <= 2 tol |z| / (1 - rate), elementwise
         * with room */
        tu_check_close(got, ref, L, (tu_tol){1e-3, 1e-3, 1e-4}, "out-of-order fixed point");
    }
    free(ref);
    free(got);
    data_free(&c);
    clattn_context_destroy(octx);
    clReleaseCommandQueue(oq);
}

static void test_cell_invalid(void **state)
{
    (void)state;
    cell_data c;
    data_make(&c, 1, 5, 8, 1.0f, 9);
    size_t L = c.B * c.N * c.D;
    cl_mem bz = tu_buffer(ctx, L * 4, c.x), bo = tu_buffer(ctx, L * 4, c.x),
           small = tu_buffer(ctx, 16, NULL);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, bo, L * 4, "out");
    clattn_deq_cell_desc d;
    clattn_plan *none = NULL;
    clattn_deq_cell_desc_init(&d);
    d.heads = 3;
    EXPECT(clattn_deq_cell_create(ctx, &d, 1, 5, 8, c.bw[0], c.bw[1], c.bw[2], c.bw[3], &none),
           CLATTN_INVALID_ARGUMENT);
    clattn_deq_cell_desc_init(&d);
    d.causal = 2;
    EXPECT(clattn_deq_cell_create(ctx, &d, 1, 5, 8, c.bw[0], c.bw[1], c.bw[2], c.bw[3], &none),
           CLATTN_INVALID_ARGUMENT);
    d.causal = 0;
    d.attention = (clattn_deq_attention)5;
    EXPECT(clattn_deq_cell_create(ctx, &d, 1, 5, 8, c.bw[0], c.bw[1], c.bw[2], c.bw[3], &none),
           CLATTN_INVALID_ARGUMENT);
    EXPECT(clattn_deq_cell_create(ctx, NULL, 1, 5, 8, c.bw[0], small, c.bw[2], c.bw[3], &none),
           CLATTN_BUFFER_TOO_SMALL);
    EXPECT(clattn_deq_cell_create(ctx, NULL, 1, 5, 8, c.bw[0], NULL, c.bw[2], c.bw[3], &none),
           CLATTN_NULL_POINTER);
    EXPECT(clattn_deq_cell_create(ctx, NULL, 1, 0, 8, c.bw[0], c.bw[1], c.bw[2], c.bw[3], &none),
           CLATTN_INVALID_SHAPE);
    assert_null(none);
    clattn_plan *cell = NULL;
    OK(clattn_deq_cell_create(ctx, NULL, 1, 5, 8, c.bw[0], c.bw[1], c.bw[2], c.bw[3], &cell));
    clattn_tensor z = clattn_tensor_make(bz, 1, 1, 5, 8), o = clattn_tensor_make(bo, 1, 1, 5, 8);
    EXPECT(clattn_deq_cell_eval(cell, &z, &o, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    clattn_tensor xb = clattn_tensor_make(bz, 1, 1, 4, 8);
    EXPECT(clattn_deq_cell_set_input(cell, &xb), CLATTN_SHAPE_MISMATCH);
    clattn_tensor x = clattn_tensor_make(c.bx, 1, 1, 5, 8);
    OK(clattn_deq_cell_set_input(cell, &x));
    clattn_tensor o4 = clattn_tensor_make(bo, 1, 1, 4, 8);
    EXPECT(clattn_deq_cell_eval(cell, &z, &o4, 0, NULL, NULL), CLATTN_SHAPE_MISMATCH);
    EXPECT(clattn_deq_cell_eval(cell, &z, &z, 0, NULL, NULL), CLATTN_ALIASING);
    EXPECT(clattn_deq_cell_eval(cell, &z, &o, 1, NULL, NULL), CLATTN_NULL_POINTER);
    /* a cell is not a solver and a solver not a cell */
    clattn_deq_result r;
    EXPECT(clattn_deq_solve(cell, clattn_deq_cell_eval, cell, &z, &r), CLATTN_INVALID_ARGUMENT);
    clattn_plan *solver = NULL;
    const size_t shape[4] = {1, 1, 5, 8};
    OK(clattn_deq_plan_create(ctx, NULL, shape, &solver));
    EXPECT(clattn_deq_cell_set_input(solver, &x), CLATTN_INVALID_ARGUMENT);
    EXPECT(clattn_deq_cell_eval(solver, &z, &o, 0, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    tu_watch_check(&w, "refused DEQ cell calls");
    tu_watch_free(&w);
    clattn_plan_destroy(solver);
    clattn_plan_destroy(cell);
    clReleaseMemObject(bz);
    clReleaseMemObject(bo);
    clReleaseMemObject(small);
    data_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cell_eval),
        cmocka_unit_test(test_cell_fixed_point),
        cmocka_unit_test(test_out_of_order_queue),
        cmocka_unit_test(test_cell_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
