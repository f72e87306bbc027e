/* The DEQ solvers (clattn_deq_*, lib/ops/deq.c) on small problems with the test's own f kernels:
 * a contractive linear map f(z) = A z + c (spectral norm < 1) whose fixed point (I - A)^{-1} c is
 * known in double, solved to tolerance by every method; the implicit gradient of
 * L = sum(c * z*) for z* = tanh(W z* + x) (adjoint solve with a VJP callback) against central
 * finite differences of the fixed point in double; non-convergence within max_iter as its own
 * status with the residual; and refused calls leaving z byte-identical. */
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
static cl_program prog;

#define EXPECT(call, want) tu_expect_status(ctx, (call), (want), #call)
#define OK(call) EXPECT(call, CLATTN_SUCCESS)

/* out = act(W z + x) (act: tanh or identity); vjp: out = W^T (act'(.) v) with y = f(z*). */
static const char *kSrc =
    "__kernel void t_fwd(__global const float *W, __global const float *z, ulong zo,\n"
    "                    __global const float *x, __global float *out, ulong oo, uint n, int act)\n"
    "{\n"
    "    uint i = get_global_id(0);\n"
    "    float acc = x[i];\n"
    "    for (uint j = 0; j < n; j++) acc += W[i * n + j] * z[zo + j];\n"
    "    out[oo + i] = act ? tanh(acc) : acc;\n"
    "}\n"
    "__kernel void t_vjp(__global const float *W, __global const float *y,\n"
    "                    __global const float *v,\n"
    "                    ulong vo, __global float *out, ulong oo, uint n, int act)\n"
    "{\n"
    "    uint j = get_global_id(0);\n"
    "    float acc = 0.0f;\n"
    "    for (uint i = 0; i < n; i++) {\n"
    "        float d = act ? 1.0f - y[i] * y[i] : 1.0f;\n"
    "        acc += W[i * n + j] * d * v[vo + i];\n"
    "    }\n"
    "    out[oo + j] = acc;\n"
    "}\n";

typedef struct prob {
    cl_kernel k;
    cl_mem W, aux; /* aux: x (forward) or y = z* (vjp) */
    cl_uint n;
    cl_int act;
    unsigned calls;
} prob;

static clattn_status fwd_cb(void *user, const clattn_tensor *z, const clattn_tensor *out,
                            cl_uint nw, const cl_event *w, cl_event *ev)
{
    prob *p = user;
    cl_ulong zo = z->offset, oo = out->offset;
    cl_int e = 0;
    e |= clSetKernelArg(p->k, 0, sizeof(cl_mem), &p->W);
    e |= clSetKernelArg(p->k, 1, sizeof(cl_mem), &z->buffer);
    e |= clSetKernelArg(p->k, 2, sizeof zo, &zo);
    e |= clSetKernelArg(p->k, 3, sizeof(cl_mem), &p->aux);
    e |= clSetKernelArg(p->k, 4, sizeof(cl_mem), &out->buffer);
    e |= clSetKernelArg(p->k, 5, sizeof oo, &oo);
    e |= clSetKernelArg(p->k, 6, sizeof p->n, &p->n);
    e |= clSetKernelArg(p->k, 7, sizeof p->act, &p->act);
    size_t g = p->n;
    if (e == CL_SUCCESS)
        e = clEnqueueNDRangeKernel(clattn_context_get_cl_queue(ctx), p->k, 1, NULL, &g, NULL, nw,
                                   w, ev);
    p->calls++;
    return e == CL_SUCCESS ? CLATTN_SUCCESS : CLATTN_INTERNAL_ERROR;
}

/* t_vjp takes (W, y, v, vo, out, oo, n, act): the same slots as t_fwd but y before v. */
static clattn_status vjp_cb(void *user, const clattn_tensor *v, const clattn_tensor *out,
                            cl_uint nw, const cl_event *w, cl_event *ev)
{
    prob *p = user;
    cl_ulong vo = v->offset, oo = out->offset;
    cl_int e = 0;
    e |= clSetKernelArg(p->k, 0, sizeof(cl_mem), &p->W);
    e |= clSetKernelArg(p->k, 1, sizeof(cl_mem), &p->aux);
    e |= clSetKernelArg(p->k, 2, sizeof(cl_mem), &v->buffer);
    e |= clSetKernelArg(p->k, 3, sizeof vo, &vo);
    e |= clSetKernelArg(p->k, 4, sizeof(cl_mem), &out->buffer);
    e |= clSetKernelArg(p->k, 5, sizeof oo, &oo);
    e |= clSetKernelArg(p->k, 6, sizeof p->n, &p->n);
    e |= clSetKernelArg(p->k, 7, sizeof p->act, &p->act);
    size_t g = p->n;
    if (e == CL_SUCCESS)
        e = clEnqueueNDRangeKernel(clattn_context_get_cl_queue(ctx), p->k, 1, NULL, &g, NULL, nw,
                                   w, ev);
    p->calls++;
    return e == CL_SUCCESS ? CLATTN_SUCCESS : CLATTN_INTERNAL_ERROR;
}

/* An f that refuses (as a caller's layer might): its status comes back, z stays untouched. */
static clattn_status failing_cb(void *user, const clattn_tensor *z, const clattn_tensor *out,
                                cl_uint nw, const cl_event *w, cl_event *ev)
{
    (void)user, (void)z, (void)out, (void)nw, (void)w, (void)ev;
    return CLATTN_UNSUPPORTED;
}

static cl_kernel kernel(const char *name)
{
    cl_int e;
    cl_kernel k = clCreateKernel(prog, name, &e);
    assert_int_equal(e, CL_SUCCESS);
    return k;
}

static int setup(void **state)
{
    (void)state;
    ctx = tu_context();
    cl_int e;
    prog = clCreateProgramWithSource(clattn_context_get_cl_context(ctx), 1, &kSrc, NULL, &e);
    if (e != CL_SUCCESS)
        return -1;
    cl_device_id dev = clattn_context_get_cl_device(ctx);
    e = clBuildProgram(prog, 1, &dev, "", NULL, NULL);
    return e == CL_SUCCESS ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    clReleaseProgram(prog);
    clattn_context_destroy(ctx);
    return 0;
}

static const size_t kShape[4] = {1, 2, 4, 6}; /* n = 48 */
#define NLIN 48

/* A [n, n] with Frobenius norm `frob` (so spectral norm <= frob), c [n], both random. */
static void linear_problem(uint64_t seed, double frob, float **A, float **c)
{
    *A = tu_random(NLIN * NLIN, 1.0f, &seed);
    *c = tu_random(NLIN, 1.0f, &seed);
    double s = 0.0;
    for (size_t i = 0; i < NLIN * NLIN; i++)
        s += (double)(*A)[i] * (*A)[i];
    for (size_t i = 0; i < NLIN * NLIN; i++)
        (*A)[i] = (float)((*A)[i] * frob / sqrt(s));
}

static clattn_deq_desc desc_of(clattn_deq_method m, unsigned memory, float beta)
{
    clattn_deq_desc d;
    clattn_deq_desc_init(&d);
    d.method = m;
    d.memory = memory;
    d.broyden_memory = memory;
    d.beta = beta;
    return d;
}

/* Every method reaches tol on A z + c (|A|_2 <= 0.6) and z matches (I - A)^{-1} c. */
static void test_linear_map(void **state)
{
    (void)state;
    float *A, *c;
    linear_problem(11, 0.6, &A, &c);
    double Ad[NLIN * NLIN], cd[NLIN], zs[NLIN];
    for (size_t i = 0; i < NLIN * NLIN; i++)
        Ad[i] = A[i];
    for (size_t i = 0; i < NLIN; i++)
        cd[i] = c[i];
    assert_true(ref_deq_linear_fixed(NLIN, Ad, cd, zs));
    prob p = {kernel("t_fwd"), tu_buffer(ctx, sizeof(float) * NLIN * NLIN, A),
              tu_buffer(ctx, sizeof(float) * NLIN, c), NLIN, 0, 0};
    uint64_t seed = 5;
    float *z0 = tu_random(NLIN, 0.1f, &seed);
    /* z at a non-zero offset inside a larger buffer */
    cl_mem zb = tu_buffer(ctx, sizeof(float) * (NLIN + 16), NULL);
    struct {
        clattn_deq_desc d;
        const char *what;
    } cases[] = {
        {desc_of(CLATTN_DEQ_ITERATE, 5, 1.0f), "iterate"},
        {desc_of(CLATTN_DEQ_ANDERSON, 5, 1.0f), "anderson m5"},
        {desc_of(CLATTN_DEQ_ANDERSON, 1, 1.0f), "anderson m1"},
        {desc_of(CLATTN_DEQ_ANDERSON, 16, 0.5f), "anderson m16 beta 0.5"},
        {desc_of(CLATTN_DEQ_BROYDEN, 5, 1.0f), "broyden m5"},
        {desc_of(CLATTN_DEQ_BROYDEN, 2, 1.0f), "broyden m2"},
        {desc_of(CLATTN_DEQ_BROYDEN, 16, 1.0f), "broyden m16"},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        clattn_plan *plan = NULL;
        OK(clattn_deq_plan_create(ctx, &cases[t].d, kShape, &plan));
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), zb, CL_TRUE,
                                              16 * sizeof(float), NLIN * sizeof(float), z0, 0,
                                              NULL, NULL),
                         CL_SUCCESS);
        clattn_tensor z = clattn_tensor_make(zb, 1, 2, 4, 6);
        z.offset = 16;
        clattn_deq_result r;
        p.calls = 0;
        OK(clattn_deq_solve(plan, fwd_cb, &p, &z, &r));
        assert_true(r.converged);
        assert_true(r.residual <= 1e-5);
        assert_int_equal(r.f_evals, p.calls);
        assert_true(r.iterations >= 1 && r.iterations <= r.f_evals);
        float got[NLIN + 16];
        tu_read(ctx, zb, sizeof got, got);
        /* |z - z*| <= |f(z) - z| / (1 - |A|) <= 2.5e-5 |z| */
        tu_check_close_d(got + 16, zs, NLIN, (tu_tol){2e-4, 2e-4, 1e-4}, cases[t].what);
        print_message("%-24s evals %2u residual %.2e\n", cases[t].what, r.f_evals, r.residual);
        clattn_plan_info info;
        OK(clattn_plan_get_info(plan, &info));
        assert_int_equal(info.op, CLATTN_OP_DEQ);
        assert_string_equal(clattn_operator_name(info.op), "deq");
        clattn_plan_destroy(plan);
    }
    clReleaseMemObject(zb);
    clReleaseMemObject(p.W);
    clReleaseMemObject(p.aux);
    clReleaseKernel(p.k);
    free(A);
    free(c);
    free(z0);
}

/* max_iter reached: NOT_CONVERGED with the residual and the last iterate, never SUCCESS; a
 * diverging iteration (f(z) = 1.5 z + c) likewise, which Anderson still solves. */
static void test_not_converged(void **state)
{
    (void)state;
    float *A, *c;
    linear_problem(12, 0.6, &A, &c);
    prob p = {kernel("t_fwd"), tu_buffer(ctx, sizeof(float) * NLIN * NLIN, A),
              tu_buffer(ctx, sizeof(float) * NLIN, c), NLIN, 0, 0};
    float z0[NLIN] = {0};
    z0[0] = 1.0f;
    cl_mem zb = tu_buffer(ctx, sizeof z0, z0);
    clattn_tensor z = clattn_tensor_make(zb, 1, 2, 4, 6);
    for (int m = 0; m < 3; m++) {
        clattn_deq_desc d = desc_of((clattn_deq_method)m, 5, 1.0f);
        d.max_iter = 2;
        clattn_plan *plan = NULL;
        OK(clattn_deq_plan_create(ctx, &d, kShape, &plan));
        clattn_deq_result r;
        EXPECT(clattn_deq_solve(plan, fwd_cb, &p, &z, &r), CLATTN_NOT_CONVERGED);
        assert_false(r.converged);
        assert_int_equal(r.f_evals, 2);
        assert_true(isfinite(r.residual) && r.residual > 1e-5);
        assert_non_null(strstr(clattn_context_last_error(ctx), "residual"));
        clattn_plan_destroy(plan);
    }
    float got[NLIN];
    tu_read(ctx, zb, sizeof got, got);
    assert_true(got[1] != 0.0f); /* the last iterate was written */
    /* diverging: A = 1.5 I */
    float *D = calloc(NLIN * NLIN, sizeof(float));
    for (size_t i = 0; i < NLIN; i++)
        D[i * NLIN + i] = 1.5f;
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), p.W, CL_TRUE, 0,
                                          sizeof(float) * NLIN * NLIN, D, 0, NULL, NULL),
                     CL_SUCCESS);
    clattn_deq_desc d = desc_of(CLATTN_DEQ_ITERATE, 5, 1.0f);
    d.max_iter = 20;
    clattn_plan *plan = NULL;
    OK(clattn_deq_plan_create(ctx, &d, kShape, &plan));
    clattn_deq_result r;
    EXPECT(clattn_deq_solve(plan, fwd_cb, &p, &z, &r), CLATTN_NOT_CONVERGED);
    assert_true(r.residual > 0.1);
    clattn_plan_destroy(plan);
    d.method = CLATTN_DEQ_ANDERSON;
    d.lambda = 0.0f;
    OK(clattn_deq_plan_create(ctx, &d, kShape, &plan));
    OK(clattn_deq_solve(plan, fwd_cb, &p, &z, &r));
    tu_read(ctx, zb, sizeof got, got);
    for (size_t i = 0; i < NLIN; i++) /* z* = -2 c */
        assert_true(fabs(got[i] + 2.0 * c[i]) <= 1e-3 * (1.0 + fabs(2.0 * c[i])));
    clattn_plan_destroy(plan);
    free(D);
    clReleaseMemObject(zb);
    clReleaseMemObject(p.W);
    clReleaseMemObject(p.aux);
    clReleaseKernel(p.k);
    free(A);
    free(c);
}

#define NT 6
/* dL/dx for L = sum(c z*), z* = tanh(W z* + x): the adjoint g = J^T g + c (J = diag(1 - z*^2) W)
 * gives dL/dx = (1 - z*^2) g; against central differences of the fp64 fixed point. */
static void test_implicit_gradient(void **state)
{
    (void)state;
    uint64_t seed = 21;
    float *W = tu_random(NT * NT, 0.3f, &seed), *x = tu_random(NT, 1.0f, &seed),
          *c = tu_random(NT, 1.0f, &seed);
    double Wd[NT * NT], xd[NT], zs[NT], fd[NT];
    for (size_t i = 0; i < NT * NT; i++)
        Wd[i] = W[i];
    for (size_t i = 0; i < NT; i++)
        xd[i] = x[i];
    const double h = 1e-5;
    for (size_t i = 0; i < NT; i++) {
        double lp = 0.0, lm = 0.0;
        xd[i] = x[i] + h;
        assert_true(ref_deq_tanh_fixed(NT, Wd, xd, zs) > 0);
        for (size_t j = 0; j < NT; j++)
            lp += c[j] * zs[j];
        xd[i] = x[i] - h;
        assert_true(ref_deq_tanh_fixed(NT, Wd, xd, zs) > 0);
        for (size_t j = 0; j < NT; j++)
            lm += c[j] * zs[j];
        xd[i] = x[i];
        fd[i] = (lp - lm) / (2.0 * h);
    }
    const size_t shape[4] = {1, 1, 2, 3};
    cl_mem bW = tu_buffer(ctx, sizeof(float) * NT * NT, W), bx = tu_buffer(ctx, 4 * NT, x),
           bc = tu_buffer(ctx, 4 * NT, c), bz = tu_buffer(ctx, 4 * NT, NULL),
           bg = tu_buffer(ctx, 4 * NT, NULL);
    prob pf = {kernel("t_fwd"), bW, bx, NT, 1, 0}, pv = {kernel("t_vjp"), bW, bz, NT, 1, 0};
    clattn_tensor tz = clattn_tensor_make(bz, 1, 1, 2, 3), tg = clattn_tensor_make(bg, 1, 1, 2, 3),
                  tc = clattn_tensor_make(bc, 1, 1, 2, 3);
    for (int m = 0; m < 3; m++) {
        clattn_deq_desc d = desc_of((clattn_deq_method)m, 4, 1.0f);
        d.tol = 1e-6;
        d.max_iter = 200;
        clattn_plan *plan = NULL;
        OK(clattn_deq_plan_create(ctx, &d, shape, &plan));
        float zero[NT] = {0};
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bz, CL_TRUE, 0,
                                              sizeof zero, zero, 0, NULL, NULL),
                         CL_SUCCESS);
        clattn_deq_result r;
        OK(clattn_deq_solve(plan, fwd_cb, &pf, &tz, &r));
        assert_int_equal(clEnqueueWriteBuffer(clattn_context_get_cl_queue(ctx), bg, CL_TRUE, 0,
                                              4 * NT, c, 0, NULL, NULL),
                         CL_SUCCESS);
        OK(clattn_deq_solve_adjoint(plan, vjp_cb, &pv, &tc, &tg, &r));
        assert_true(r.converged);
        float z[NT], g[NT];
        tu_read(ctx, bz, sizeof z, z);
        tu_read(ctx, bg, sizeof g, g);
        float grad[NT];
        for (size_t i = 0; i < NT; i++)
            grad[i] = (1.0f - z[i] * z[i]) * g[i];
        tu_check_close_d(grad, fd, NT, (tu_tol){1e-4, 1e-3, 1e-4}, "dL/dx");
        clattn_plan_destroy(plan);
    }
    clReleaseKernel(pf.k);
    clReleaseKernel(pv.k);
    clReleaseMemObject(bW);
    clReleaseMemObject(bx);
    clReleaseMemObject(bc);
    clReleaseMemObject(bz);
    clReleaseMemObject(bg);
    free(W);
    free(x);
    free(c);
}

/* Every refused call returns its status with a message and leaves z byte-identical. */
static void test_invalid(void **state)
{
    (void)state;
    float *A, *c;
    linear_problem(13, 0.6, &A, &c);
    prob p = {kernel("t_fwd"), tu_buffer(ctx, sizeof(float) * NLIN * NLIN, A),
              tu_buffer(ctx, sizeof(float) * NLIN, c), NLIN, 0, 0};
    cl_mem zb = tu_buffer(ctx, sizeof(float) * NLIN, c);
    tu_watch w;
    tu_watch_init(&w, ctx);
    tu_watch_buffer(&w, zb, sizeof(float) * NLIN, "z");
    clattn_plan *plan = NULL, *none = NULL;
    clattn_deq_desc d;
    for (int k = 0; k < 11; k++) {
        clattn_deq_desc_init(&d);
        switch (k) {
        case 0: d.method = (clattn_deq_method)7; break;
        case 1: d.max_iter = 0; break;
        case 2: d.tol = NAN; break;
        case 3: d.tol = -1.0; break;
        case 4: d.memory = 0; break;
        case 5: d.memory = CLATTN_DEQ_MAX_MEMORY + 1; break;
        case 6: d.beta = 0.0f; break;
        case 7: d.lambda = -1.0f; break;
        case 8: d.broyden_memory = 0; break;
        case 9: d.broyden_memory = CLATTN_DEQ_MAX_MEMORY + 1; break;
        default: d.struct_size = 3; break;
        }
        EXPECT(clattn_deq_plan_create(ctx, &d, kShape, &none), CLATTN_INVALID_ARGUMENT);
        assert_null(none);
    }
    size_t zero_shape[4] = {1, 0, 4, 6};
    EXPECT(clattn_deq_plan_create(ctx, NULL, zero_shape, &none), CLATTN_INVALID_SHAPE);
    EXPECT(clattn_deq_plan_create(ctx, NULL, NULL, &none), CLATTN_NULL_POINTER);
    tu_expect_status(NULL, clattn_deq_plan_create(NULL, NULL, kShape, &none),
                     CLATTN_NULL_POINTER, "plan_create(NULL ctx)");
    OK(clattn_deq_plan_create(ctx, NULL, kShape, &plan));
    clattn_tensor z = clattn_tensor_make(zb, 1, 2, 4, 6), bad_shape = z, strided = z, tiny = z;
    bad_shape.shape[3] = 3;
    bad_shape.shape[2] = 8;
    strided.strides[1] = 4; /* overlapping heads: not dense */
    tiny.offset = 8;
    clattn_deq_result r;
    EXPECT(clattn_deq_solve(plan, NULL, &p, &z, &r), CLATTN_NULL_POINTER);
    EXPECT(clattn_deq_solve(plan, fwd_cb, &p, NULL, &r), CLATTN_NULL_POINTER);
    EXPECT(clattn_deq_solve(plan, fwd_cb, &p, &z, NULL), CLATTN_NULL_POINTER);
    EXPECT(clattn_deq_solve(plan, fwd_cb, &p, &bad_shape, &r), CLATTN_SHAPE_MISMATCH);
    EXPECT(clattn_deq_solve(plan, fwd_cb, &p, &strided, &r), CLATTN_UNSUPPORTED);
    EXPECT(clattn_deq_solve(plan, fwd_cb, &p, &tiny, &r), CLATTN_BUFFER_TOO_SMALL);
    tu_expect_status(NULL, clattn_deq_solve(NULL, fwd_cb, &p, &z, &r), CLATTN_NULL_POINTER,
                     "solve(NULL plan)");
    EXPECT(clattn_deq_solve_adjoint(plan, fwd_cb, &p, NULL, &z, &r), CLATTN_NULL_POINTER);
    EXPECT(clattn_deq_solve_adjoint(plan, fwd_cb, &p, &z, &z, &r), CLATTN_ALIASING);
    assert_int_equal(clattn_deq_solve(plan, failing_cb, NULL, &z, &r), CLATTN_UNSUPPORTED);
    /* a plan of another operator */
    clattn_plan *sm = NULL;
    size_t s4[4] = {1, 1, 4, 8};
    OK(clattn_softmax_plan_create(ctx, NULL, s4, s4, s4, &sm));
    EXPECT(clattn_deq_solve(sm, fwd_cb, &p, &z, &r), CLATTN_INVALID_ARGUMENT);
    clattn_plan_destroy(sm);
    tu_watch_check(&w, "refused DEQ calls");
    tu_watch_free(&w);
    clattn_plan_destroy(plan);
    clReleaseMemObject(zb);
    clReleaseMemObject(p.W);
    clReleaseMemObject(p.aux);
    clReleaseKernel(p.k);
    free(A);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_map),
        cmocka_unit_test(test_not_converged),
        cmocka_unit_test(test_implicit_gradient),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
