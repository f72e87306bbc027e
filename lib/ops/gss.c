/* The GSS layer forward (Mehta et al. 2022, Figure 1) on top of the diagonal SSM: layer norm,
 * two gated dense branches (CLBlast GEMMs plus element-wise kernels from kernels_cl/ssm.cl), the
 * DSS along each sequence (lib/ops/ssm.c), and the output projection with the residual.
 *
 * Ordering: CLBlast takes no wait list, so the caller's list gates a barrier enqueued first, and
 * a barrier follows every step; on an in-order queue those barriers cost nothing. */
#include "../core/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

clattn_context *clattn__ssm_context(const clattn_ssm *ssm); /* lib/ops/ssm.c */

#define SSM_OPTIONS "-DSSM_CHUNK=32 -DSSM_DIRECT_ROWS=8 -DSSM_DIRECT_BLOCK=4096" /* as lib/ops/ssm.c: one program */

void clattn_gss_desc_init(clattn_gss_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->ln_eps = 1e-5f;
    desc->algorithm = CLATTN_SSM_AUTO;
}

static clattn_status read_desc(clattn_context *ctx, const clattn_gss_desc *in,
                               clattn_gss_desc *out)
{
    clattn_gss_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_gss_desc, ln_eps) + sizeof(float) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "gss desc: struct_size %zu is not valid (call clattn_gss_desc_init "
                            "first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (!isfinite(out->ln_eps) || out->ln_eps <= 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "gss desc: ln_eps %g must be finite and > 0", (double)out->ln_eps);
    if (out->algorithm != CLATTN_SSM_AUTO && out->algorithm != CLATTN_SSM_FFT &&
        out->algorithm != CLATTN_SSM_DIRECT)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "gss desc: unknown algorithm %d",
                            (int)out->algorithm);
    return CLATTN_SUCCESS;
}

/* A weight buffer holds at least `floats` elements; NULL is an error only when required. */
static clattn_status check_weight(clattn_context *ctx, cl_mem m, size_t floats, bool required,
                                  const char *name)
{
    if (!m)
        return required ? clattn__fail(ctx, CLATTN_NULL_POINTER, "gss: weight %s is NULL", name)
                        : CLATTN_SUCCESS;
    size_t size = 0, need;
    cl_int err = clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "gss: weight %s is not a valid cl_mem", name);
    if (!clattn__mul_ok(floats, sizeof(float), &need))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "gss: weight %s size overflows", name);
    if (size < need)
        return clattn__fail(ctx, CLATTN_BUFFER_TOO_SMALL,
                            "gss: weight %s needs %zu bytes but its buffer holds %zu", name, need,
                            size);
    return CLATTN_SUCCESS;
}

static clattn_status get_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel)
{
    cl_program prog = NULL;
    clattn_status status = clattn__program_get(ctx, "ssm.cl", SSM_OPTIONS, &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, kernel);
    return status;
}

static clattn_status barrier(clattn_context *ctx)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
cleanup:
    return status;
}

static clattn_status run_kernel(clattn_context *ctx, cl_kernel k, size_t g0, size_t g1)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t gl[2] = {g0, g1};
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, k, g1 ? 2 : 1, NULL, gl, NULL, 0, NULL, NULL));
    CLATTN_FORWARD(barrier(ctx));
cleanup:
    return status;
}

/* a[T x width] = gelu(a + bias) */
static clattn_status bias_gelu(clattn_context *ctx, cl_mem a, size_t T, size_t width, cl_mem bias)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel k = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_gss_bias_gelu", &k));
    cl_uint w = (cl_uint)width;
    cl_int has = bias != NULL;
    cl_mem b = bias ? bias : a;
    clattn__args ar = {k, 0, CL_SUCCESS};
    CLATTN_ARG(&ar, a);
    CLATTN_ARG(&ar, w);
    CLATTN_ARG(&ar, b);
    CLATTN_ARG(&ar, has);
    CLATTN_CL(ar.err);
    CLATTN_FORWARD(run_kernel(ctx, k, width, T));
cleanup:
    if (k)
        clReleaseKernel(k);
    return status;
}

static clattn_status gemm(clattn_context *ctx, size_t m, size_t n, size_t k, cl_mem a,
                          size_t a_off, cl_mem b, cl_mem c, size_t c_off, float beta,
                          cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_FORWARD(
        clattn__sgemm(ctx, false, m, n, k, 1.0f, a, a_off, k, b, 0, n, beta, c, c_off, n, event));
    if (!event)
        CLATTN_FORWARD(barrier(ctx));
cleanup:
    return status;
}

clattn_status clattn_gss_enqueue(clattn_context *ctx, const clattn_gss_desc *desc,
                                 clattn_ssm *dss, const clattn_gss_weights *w, size_t F,
                                 const clattn_tensor *x, const clattn_tensor *out,
                                 cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "gss: ctx is NULL");
    clattn_status status = CLATTN_SUCCESS;
    cl_mem xn = NULL, v = NULL, u = NULL, y = NULL, uc = NULL;
    cl_kernel k = NULL;
    clattn_gss_desc d;
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_CHECK(dss && w && x && out, CLATTN_NULL_POINTER,
                 "gss: dss, weights, x and out are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "gss: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(clattn__ssm_context(dss) == ctx, CLATTN_INVALID_CONTEXT,
                 "gss: the DSS handle belongs to another context");
    size_t H = 0;
    CLATTN_FORWARD(clattn_ssm_get_shape(dss, &H, NULL));
    CLATTN_FORWARD(clattn__tensor_check(ctx, x, "x", NULL, sizeof(float)));
    size_t B = x->shape[0], L = x->shape[2], E = x->shape[3];
    CLATTN_CHECK(x->shape[1] == 1, CLATTN_INVALID_SHAPE, "gss: x must be {B, 1, L, E}");
    CLATTN_CHECK(F >= 1 && F < ((size_t)1 << 24) && E < ((size_t)1 << 24), CLATTN_INVALID_SHAPE,
                 "gss: F = %zu and E = %zu must lie in [1, 2^24)", F, E);
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", x->shape, sizeof(float)));
    const clattn_tensor *views[2] = {x, out};
    for (int i = 0; i < 2; i++)
        CLATTN_CHECK(views[i]->strides[3] == 1 && views[i]->strides[2] == E &&
                         (B == 1 || views[i]->strides[0] == L * E),
                     CLATTN_UNSUPPORTED,
                     "gss: %s must have dense rows (strides {L*E, -, E, 1}) for the GEMMs",
                     i ? "out" : "x");
    CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", x, "x", sizeof(float)));
    size_t T = B * L, sizes[5];
    CLATTN_CHECK(T <= ((size_t)1 << 31) && clattn__mul_ok(T, E, &sizes[0]) &&
                     clattn__mul_ok(T, F, &sizes[1]) && clattn__mul_ok(T, H, &sizes[2]) &&
                     clattn__mul_ok(E, F, &sizes[3]) && clattn__mul_ok(H, F, &sizes[4]),
                 CLATTN_SIZE_OVERFLOW, "gss: sizes overflow");
    CLATTN_FORWARD(check_weight(ctx, w->ln_gamma, E, false, "ln_gamma"));
    CLATTN_FORWARD(check_weight(ctx, w->ln_beta, E, false, "ln_beta"));
    CLATTN_FORWARD(check_weight(ctx, w->w_v, sizes[3], true, "w_v"));
    CLATTN_FORWARD(check_weight(ctx, w->b_v, F, false, "b_v"));
    CLATTN_FORWARD(check_weight(ctx, w->w_u, E * H, true, "w_u"));
    CLATTN_FORWARD(check_weight(ctx, w->b_u, H, false, "b_u"));
    CLATTN_FORWARD(check_weight(ctx, w->w_o1, sizes[4], true, "w_o1"));
    CLATTN_FORWARD(check_weight(ctx, w->b_o1, F, false, "b_o1"));
    CLATTN_FORWARD(check_weight(ctx, w->w_o2, sizes[3], true, "w_o2"));
    CLATTN_FORWARD(check_weight(ctx, w->b_o2, E, false, "b_o2"));
    {
        const cl_mem ws[] = {w->ln_gamma, w->ln_beta, w->w_v, w->b_v, w->w_u,
                             w->b_u,      w->w_o1,    w->b_o1, w->w_o2, w->b_o2};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]) {
                size_t size = 0;
                clGetMemObjectInfo(ws[i], CL_MEM_SIZE, sizeof size, &size, NULL);
                clattn_tensor wt = clattn_tensor_make(ws[i], 1, 1, 1, size / sizeof(float));
                CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", &wt, "a weight",
                                                      sizeof(float)));
            }
    }
    /* The DSS views of u and y: [B, L, H] rows seen as {B, H, L, 1}. */
    clattn_tensor uv, yv;
    memset(&uv, 0, sizeof uv);
    uv.shape[0] = B;
    uv.shape[1] = H;
    uv.shape[2] = L;
    uv.shape[3] = 1;
    uv.strides[0] = L * H;
    uv.strides[1] = 1;
    uv.strides[2] = H;
    uv.strides[3] = 1;
    yv = uv;

    CLATTN_FORWARD(clattn__buffer_create(ctx, sizes[0] * sizeof(float), "gss normalised x", &xn));
    CLATTN_FORWARD(clattn__buffer_create(ctx, sizes[1] * sizeof(float), "gss v", &v));
    CLATTN_FORWARD(clattn__buffer_create(ctx, sizes[2] * sizeof(float), "gss u", &u));
    CLATTN_FORWARD(clattn__buffer_create(ctx, sizes[2] * sizeof(float), "gss y", &y));
    CLATTN_FORWARD(clattn__buffer_create(ctx, sizes[1] * sizeof(float), "gss uc", &uc));
    uv.buffer = u;
    yv.buffer = y;

    if (num_wait)
        CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, num_wait, wait, NULL));
    {
        CLATTN_FORWARD(get_kernel(ctx, "clattn_gss_layernorm", &k));
        cl_ulong xo = x->offset;
        cl_uint ue = (cl_uint)E;
        cl_float eps = d.ln_eps;
        cl_int hg = w->ln_gamma != NULL, hb = w->ln_beta != NULL;
        cl_mem g = hg ? w->ln_gamma : x->buffer, bt = hb ? w->ln_beta : x->buffer;
        clattn__args a = {k, 0, CL_SUCCESS};
        CLATTN_ARG(&a, x->buffer);
        CLATTN_ARG(&a, xo);
        CLATTN_ARG(&a, xn);
        CLATTN_ARG(&a, ue);
        CLATTN_ARG(&a, eps);
        CLATTN_ARG(&a, g);
        CLATTN_ARG(&a, hg);
        CLATTN_ARG(&a, bt);
        CLATTN_ARG(&a, hb);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(run_kernel(ctx, k, T, 0));
        clReleaseKernel(k);
        k = NULL;
    }
    CLATTN_FORWARD(gemm(ctx, T, F, E, xn, 0, w->w_v, v, 0, 0.0f, NULL));
    CLATTN_FORWARD(bias_gelu(ctx, v, T, F, w->b_v));
    CLATTN_FORWARD(gemm(ctx, T, H, E, xn, 0, w->w_u, u, 0, 0.0f, NULL));
    CLATTN_FORWARD(bias_gelu(ctx, u, T, H, w->b_u));
    {
        clattn_ssm_desc sd;
        clattn_ssm_desc_init(&sd);
        sd.algorithm = d.algorithm;
        CLATTN_FORWARD(clattn_ssm_enqueue(dss, &sd, &uv, &yv, 0, NULL, NULL));
        CLATTN_FORWARD(barrier(ctx));
    }
    CLATTN_FORWARD(gemm(ctx, T, F, H, y, 0, w->w_o1, uc, 0, 0.0f, NULL));
    {
        CLATTN_FORWARD(get_kernel(ctx, "clattn_gss_gate", &k));
        cl_uint uf = (cl_uint)F;
        cl_int hb = w->b_o1 != NULL;
        cl_mem b = hb ? w->b_o1 : v;
        clattn__args a = {k, 0, CL_SUCCESS};
        CLATTN_ARG(&a, v);
        CLATTN_ARG(&a, uc);
        CLATTN_ARG(&a, uf);
        CLATTN_ARG(&a, b);
        CLATTN_ARG(&a, hb);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(run_kernel(ctx, k, F, T));
        clReleaseKernel(k);
        k = NULL;
    }
    {
        CLATTN_FORWARD(get_kernel(ctx, "clattn_gss_residual", &k));
        cl_ulong xo = x->offset, oo = out->offset;
        cl_uint ue = (cl_uint)E;
        cl_int hb = w->b_o2 != NULL;
        cl_mem b = hb ? w->b_o2 : x->buffer;
        clattn__args a = {k, 0, CL_SUCCESS};
        CLATTN_ARG(&a, x->buffer);
        CLATTN_ARG(&a, xo);
        CLATTN_ARG(&a, out->buffer);
        CLATTN_ARG(&a, oo);
        CLATTN_ARG(&a, ue);
        CLATTN_ARG(&a, b);
        CLATTN_ARG(&a, hb);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(run_kernel(ctx, k, E, T));
    }
    CLATTN_FORWARD(gemm(ctx, T, E, F, v, 0, w->w_o2, out->buffer, out->offset, 1.0f, event));
cleanup:
    if (k)
        clReleaseKernel(k);
    cl_mem scratch[] = {xn, v, u, y, uc};
    for (size_t i = 0; i < 5; i++)
        if (scratch[i])
            clReleaseMemObject(scratch[i]);
    return status;
}
