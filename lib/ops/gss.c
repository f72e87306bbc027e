/* The GSS layer forward (Mehta et al. 2022, Figure 1) on top of the diagonal SSM: layer norm,
 * two gated dense branches (CLBlast GEMMs plus the element-wise kernels of kernels_cl/gss.cl), the
 * DSS along each sequence (an SSM plan of lib/ops/ssm.c, run inside this plan's sequence), and
 * the output projection with the residual.
 *
 * A plan is baked for one x shape {B, 1, L, E} and width F: its kernels, its scratch (about
 * T * (E + 2F + 2H) floats for T = B * L tokens) and the DSS's plan (K generated once). Every
 * command goes through one sequence (lib/core/seq.c): the caller's wait list gates the first,
 * CLBlast calls get a barrier in front when they must wait (clattn__seq_library), the last
 * returns the caller's event. */
#include "ssm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sizes of one layer: T = B * L tokens of E features, width F, H DSS channels. */
typedef struct gss_dims {
    size_t B, L, E, F, H, T;
    size_t shape[4]; /* x and out: {B, 1, L, E} */
} gss_dims;

typedef struct gss_plan {
    clattn_plan base;
    clattn_gss_desc desc;
    gss_dims dims;
    clattn_plan *dss; /* the SSM plan of the DSS, on u [B, L, H] seen as {B, H, L, 1} */
    cl_kernel ln, gelu, gate, residual;
    cl_mem xn, v, u, y, uc; /* [T, E], [T, F], [T, H], [T, H], [T, F] */
} gss_plan;

static void plan_release(clattn_plan *base) { clattn_plan_destroy(((gss_plan *)base)->dss); }

/* The DSS's kernels and scratch belong to the layer too. */
static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    clattn_plan_info di;
    if (clattn_plan_get_info(((const gss_plan *)base)->dss, &di) != CLATTN_SUCCESS)
        return;
    for (unsigned i = 0; i < di.num_kernels && info->num_kernels < CLATTN_PLAN_MAX_KERNELS; i++)
        info->kernels[info->num_kernels++] = di.kernels[i];
    info->scratch_bytes += di.scratch_bytes;
}

static const clattn__plan_ops gss_ops = {CLATTN_OP_GSS, plan_release, plan_info};

void clattn_gss_desc_init(clattn_gss_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->ln_eps = 1e-5f;
    desc->algorithm = CLATTN_SSM_AUTO;
    desc->x_dtype = CLATTN_F32;
    desc->out_dtype = CLATTN_F32;
}

static clattn_status read_desc(clattn_context *ctx, const clattn_gss_desc *in,
                               clattn_gss_desc *out)
{
    clattn_gss_desc_init(out);
    clattn_status status = clattn__desc_read(
        ctx, in, out, sizeof *out, offsetof(clattn_gss_desc, ln_eps) + sizeof(float), "gss desc");
    if (status != CLATTN_SUCCESS)
        return status;
    if (!isfinite(out->ln_eps) || out->ln_eps <= 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "gss desc: ln_eps %g must be finite and > 0", (double)out->ln_eps);
    if (out->algorithm != CLATTN_SSM_AUTO && out->algorithm != CLATTN_SSM_FFT &&
        out->algorithm != CLATTN_SSM_DIRECT)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "gss desc: unknown algorithm %d",
                            (int)out->algorithm);
    status = clattn__dtype_check(ctx, out->x_dtype, "gss desc x_dtype");
    if (status == CLATTN_SUCCESS)
        status = clattn__dtype_check(ctx, out->out_dtype, "gss desc out_dtype");
    return status;
}

/* The layer's sizes from x's shape, the width F and the DSS handle. */
static clattn_status get_dims(clattn_context *ctx, const clattn_ssm *dss, size_t F,
                              const size_t x[4], gss_dims *g)
{
    for (int i = 0; i < 4; i++)
        if (x[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "gss: x shape [%zu, %zu, %zu, %zu] has a zero entry", x[0], x[1],
                                x[2], x[3]);
    if (x[1] != 1)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "gss: x must be {B, 1, L, E}");
    if (F < 1 || F >= ((size_t)1 << 24) || x[3] >= ((size_t)1 << 24))
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "gss: F = %zu and E = %zu must lie in [1, 2^24)", F, x[3]);
    memset(g, 0, sizeof *g);
    memcpy(g->shape, x, sizeof g->shape);
    g->B = x[0];
    g->L = x[2];
    g->E = x[3];
    g->F = F;
    g->H = dss->heads;
    size_t widest = g->E > F ? g->E : F, n;
    widest = widest > g->H ? widest : g->H;
    if (!clattn__mul_ok(g->B, g->L, &g->T) || g->T > ((size_t)1 << 31) ||
        !clattn__mul_ok(g->T, widest, &n) || !clattn__mul_ok(n, sizeof(float), &n))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "gss: sizes overflow");
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

/* The weights, x and out of one call against the layer's sizes. */
static clattn_status check_io(clattn_context *ctx, const gss_dims *g, const clattn_gss_weights *w,
                              const clattn_tensor *x, const clattn_tensor *out,
                              clattn_dtype x_dt, clattn_dtype out_dt)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t E = g->E, F = g->F, H = g->H;
    CLATTN_CHECK(w && x && out, CLATTN_NULL_POINTER, "gss: weights, x and out are required");
    CLATTN_FORWARD(check_weight(ctx, w->ln_gamma, E, false, "ln_gamma"));
    CLATTN_FORWARD(check_weight(ctx, w->ln_beta, E, false, "ln_beta"));
    CLATTN_FORWARD(check_weight(ctx, w->w_v, E * F, true, "w_v"));
    CLATTN_FORWARD(check_weight(ctx, w->b_v, F, false, "b_v"));
    CLATTN_FORWARD(check_weight(ctx, w->w_u, E * H, true, "w_u"));
    CLATTN_FORWARD(check_weight(ctx, w->b_u, H, false, "b_u"));
    CLATTN_FORWARD(check_weight(ctx, w->w_o1, H * F, true, "w_o1"));
    CLATTN_FORWARD(check_weight(ctx, w->b_o1, F, false, "b_o1"));
    CLATTN_FORWARD(check_weight(ctx, w->w_o2, F * E, true, "w_o2"));
    CLATTN_FORWARD(check_weight(ctx, w->b_o2, E, false, "b_o2"));
    CLATTN_FORWARD(clattn__tensor_check(ctx, x, "x", g->shape, clattn_dtype_size(x_dt)));
    CLATTN_FORWARD(clattn__tensor_dtype(ctx, x, "x", x_dt));
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", g->shape, clattn_dtype_size(out_dt)));
    CLATTN_FORWARD(clattn__tensor_dtype(ctx, out, "out", out_dt));
    const clattn_tensor *views[2] = {x, out};
    for (int i = 0; i < 2; i++)
        CLATTN_CHECK(views[i]->strides[3] == 1 && views[i]->strides[2] == E &&
                         (g->B == 1 || views[i]->strides[0] == g->L * E),
                     CLATTN_UNSUPPORTED,
                     "gss: %s must have dense rows (strides {L*E, -, E, 1}) for the GEMMs",
                     i ? "out" : "x");
    CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", x, "x", sizeof(float)));
    const cl_mem ws[] = {w->ln_gamma, w->ln_beta, w->w_v, w->b_v, w->w_u,
                         w->b_u,      w->w_o1,    w->b_o1, w->w_o2, w->b_o2};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        if (!ws[i])
            continue;
        size_t size = 0;
        CLATTN_CL(clGetMemObjectInfo(ws[i], CL_MEM_SIZE, sizeof size, &size, NULL));
        clattn_tensor wt = clattn_tensor_make(ws[i], 1, 1, 1, size / sizeof(float));
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", &wt, "a weight", sizeof(float)));
    }
cleanup:
    return status;
}

clattn_status clattn_gss_plan_create(clattn_context *ctx, const clattn_gss_desc *desc,
                                     clattn_ssm *dss, size_t ffn_dim, const size_t x_shape[4],
                                     clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "gss plan: ctx is NULL");
    CLATTN_CHECK(out && dss && x_shape, CLATTN_NULL_POINTER,
                 "gss plan: plan, dss and x_shape are required");
    *out = NULL;
    CLATTN_CHECK(dss->ctx == ctx, CLATTN_INVALID_CONTEXT,
                 "gss plan: the DSS handle belongs to another context");
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(gss_plan), &gss_ops, &base));
    gss_plan *p = (gss_plan *)base;
    CLATTN_FORWARD(read_desc(ctx, desc, &p->desc));
    CLATTN_FORWARD(get_dims(ctx, dss, ffn_dim, x_shape, &p->dims));
    const gss_dims *g = &p->dims;
    clattn_ssm_desc sd;
    clattn_ssm_desc_init(&sd);
    sd.algorithm = p->desc.algorithm;
    size_t ushape[4] = {g->B, g->H, g->L, 1};
    CLATTN_FORWARD(clattn_ssm_plan_create(ctx, &sd, dss, ushape, &p->dss));
    base->algorithm = p->dss->algorithm;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s", p->dss->algorithm_name);
    {
        const clattn_dtype dts[2] = {p->desc.x_dtype, p->desc.out_dtype};
        char dl[16];
        clattn__dtype_launch(dl, sizeof dl, dts, 2);
        snprintf(base->launch, sizeof base->launch, "%.140s%s", p->dss->launch, dl);
    }
    const clattn__dtype_role roles[2] = {{"X", p->desc.x_dtype}, {"OUT", p->desc.out_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 2));
    /* gss.cl has no tunables: every kernel runs one work-item per element or token row. */
    CLATTN_FORWARD(clattn__plan_kernel(base, "gss.cl", "", "clattn_gss_layernorm", 0, "fixed",
                                       &p->ln));
    CLATTN_FORWARD(clattn__plan_kernel(base, "gss.cl", "", "clattn_gss_bias_gelu", 0, "fixed",
                                       &p->gelu));
    CLATTN_FORWARD(clattn__plan_kernel(base, "gss.cl", "", "clattn_gss_gate", 0, "fixed",
                                       &p->gate));
    CLATTN_FORWARD(clattn__plan_kernel(base, "gss.cl", "", "clattn_gss_residual", 0, "fixed",
                                       &p->residual));
    size_t T = g->T * sizeof(float);
    CLATTN_FORWARD(clattn__plan_scratch(base, T * g->E, "gss normalised x", &p->xn));
    CLATTN_FORWARD(clattn__plan_scratch(base, T * g->F, "gss v", &p->v));
    CLATTN_FORWARD(clattn__plan_scratch(base, T * g->H, "gss u", &p->u));
    CLATTN_FORWARD(clattn__plan_scratch(base, T * g->H, "gss y", &p->y));
    CLATTN_FORWARD(clattn__plan_scratch(base, T * g->F, "gss uc", &p->uc));
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

/* ---- enqueue ---- */

/* C[m x n] (+)= A[m x k] B[k x n], row-major, dense, as a command of the sequence. */
static clattn_status gemm(clattn__seq *s, size_t m, size_t n, size_t k, cl_mem a, cl_mem b,
                          cl_mem c, size_t c_off, float beta, bool last, cl_event *event)
{
    clattn_status status = clattn__seq_library(s, last, event);
    if (status == CLATTN_SUCCESS)
        status = clattn__sgemm(s->ctx, false, m, n, k, 1.0f, a, 0, k, b, 0, n, beta, c, c_off, n,
                               s->evp);
    if (status == CLATTN_SUCCESS)
        clattn__seq_done(s);
    return status;
}

/* a[T x width] = gelu(a + bias) */
static clattn_status bias_gelu(gss_plan *p, clattn__seq *s, cl_mem a, size_t width, cl_mem bias)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint w = (cl_uint)width;
    cl_int has = bias != NULL;
    cl_mem b = bias ? bias : a;
    clattn__args ar = {p->gelu, 0, CL_SUCCESS};
    CLATTN_ARG(&ar, a);
    CLATTN_ARG(&ar, w);
    CLATTN_ARG(&ar, b);
    CLATTN_ARG(&ar, has);
    CLATTN_CL(ar.err);
    size_t gl[2] = {width, p->dims.T};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->gelu, 2, gl, false, NULL));
cleanup:
    return status;
}

static clattn_status layernorm(gss_plan *p, clattn__seq *s, const clattn_gss_weights *w,
                               const clattn_tensor *x)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_ulong xo = x->offset;
    cl_uint ue = (cl_uint)p->dims.E;
    cl_float eps = p->desc.ln_eps;
    cl_int hg = w->ln_gamma != NULL, hb = w->ln_beta != NULL;
    cl_mem g = hg ? w->ln_gamma : x->buffer, bt = hb ? w->ln_beta : x->buffer;
    clattn__args a = {p->ln, 0, CL_SUCCESS};
    CLATTN_ARG(&a, x->buffer);
    CLATTN_ARG(&a, xo);
    CLATTN_ARG(&a, p->xn);
    CLATTN_ARG(&a, ue);
    CLATTN_ARG(&a, eps);
    CLATTN_ARG(&a, g);
    CLATTN_ARG(&a, hg);
    CLATTN_ARG(&a, bt);
    CLATTN_ARG(&a, hb);
    CLATTN_CL(a.err);
    size_t gl[1] = {p->dims.T};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->ln, 1, gl, false, NULL));
cleanup:
    return status;
}

/* v *= y W_o1 + b_o1 (uc holds y W_o1). */
static clattn_status gate(gss_plan *p, clattn__seq *s, const clattn_gss_weights *w)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    const gss_dims *g = &p->dims;
    {
        cl_uint uf = (cl_uint)g->F;
        cl_int hb = w->b_o1 != NULL;
        cl_mem b = hb ? w->b_o1 : p->v;
        clattn__args a = {p->gate, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p->v);
        CLATTN_ARG(&a, p->uc);
        CLATTN_ARG(&a, uf);
        CLATTN_ARG(&a, b);
        CLATTN_ARG(&a, hb);
        CLATTN_CL(a.err);
        size_t gl[2] = {g->F, g->T};
        CLATTN_FORWARD(clattn__seq_kernel(s, p->gate, 2, gl, false, NULL));
    }
cleanup:
    return status;
}

/* out = x + b_o2 + o, o the last GEMM's float32 result (in xn), out in its type. */
static clattn_status residual(gss_plan *p, clattn__seq *s, const clattn_gss_weights *w,
                              const clattn_tensor *x, const clattn_tensor *out, cl_event *event)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    const gss_dims *g = &p->dims;
    {
        cl_ulong xo = x->offset, oo = out->offset;
        cl_uint ue = (cl_uint)g->E;
        cl_int hb = w->b_o2 != NULL;
        cl_mem b = hb ? w->b_o2 : x->buffer;
        clattn__args a = {p->residual, 0, CL_SUCCESS};
        CLATTN_ARG(&a, x->buffer);
        CLATTN_ARG(&a, xo);
        CLATTN_ARG(&a, out->buffer);
        CLATTN_ARG(&a, oo);
        CLATTN_ARG(&a, ue);
        CLATTN_ARG(&a, b);
        CLATTN_ARG(&a, hb);
        CLATTN_ARG(&a, p->xn);
        CLATTN_CL(a.err);
        size_t gl[2] = {g->E, g->T};
        CLATTN_FORWARD(clattn__seq_kernel(s, p->residual, 2, gl, true, event));
    }
cleanup:
    return status;
}

clattn_status clattn_gss_plan_enqueue(clattn_plan *plan, const clattn_gss_weights *w,
                                      const clattn_tensor *x, const clattn_tensor *out,
                                      cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(plan, CLATTN_OP_GSS, "gss enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    gss_plan *p = (gss_plan *)plan;
    clattn_context *ctx = plan->ctx;
    const gss_dims *g = &p->dims;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "gss enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_io(ctx, g, w, x, out, p->desc.x_dtype, p->desc.out_dtype));
    /* The DSS views of u and y: [B, L, H] rows seen as {B, H, L, 1}. */
    clattn_tensor uv = clattn_tensor_make(p->u, g->B, g->H, g->L, 1), yv;
    uv.strides[0] = g->L * g->H;
    uv.strides[1] = 1;
    uv.strides[2] = g->H;
    yv = uv;
    yv.buffer = p->y;

    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    CLATTN_FORWARD(layernorm(p, &s, w, x));
    CLATTN_FORWARD(gemm(&s, g->T, g->F, g->E, p->xn, w->w_v, p->v, 0, 0.0f, false, NULL));
    CLATTN_FORWARD(bias_gelu(p, &s, p->v, g->F, w->b_v));
    CLATTN_FORWARD(gemm(&s, g->T, g->H, g->E, p->xn, w->w_u, p->u, 0, 0.0f, false, NULL));
    CLATTN_FORWARD(bias_gelu(p, &s, p->u, g->H, w->b_u));
    CLATTN_FORWARD(clattn__ssm_plan_run(p->dss, &s, &uv, &yv, false, NULL));
    CLATTN_FORWARD(gemm(&s, g->T, g->F, g->H, p->y, w->w_o1, p->uc, 0, 0.0f, false, NULL));
    CLATTN_FORWARD(gate(p, &s, w));
    /* The last GEMM into float32 scratch (xn is free by now), then the residual kernel writes
     * out = x + b_o2 + that in out's type. */
    CLATTN_FORWARD(gemm(&s, g->T, g->E, g->F, p->v, w->w_o2, p->xn, 0, 0.0f, false, NULL));
    CLATTN_FORWARD(residual(p, &s, w, x, out, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_gss_enqueue(clattn_context *ctx, const clattn_gss_desc *desc,
                                 clattn_ssm *dss, const clattn_gss_weights *w, size_t ffn_dim,
                                 const clattn_tensor *x, const clattn_tensor *out,
                                 cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "gss: ctx is NULL");
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *plan = NULL;
    clattn_gss_desc d;
    gss_dims g;
    /* Everything the enqueue would refuse is refused before the plan is baked. */
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_CHECK(dss && w && x && out, CLATTN_NULL_POINTER,
                 "gss: dss, weights, x and out are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "gss: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(dss->ctx == ctx, CLATTN_INVALID_CONTEXT,
                 "gss: the DSS handle belongs to another context");
    /* The element types come from the tensors. */
    CLATTN_FORWARD(clattn__dtype_check(ctx, x->dtype, "gss: x dtype"));
    CLATTN_FORWARD(clattn__dtype_check(ctx, out->dtype, "gss: out dtype"));
    d.x_dtype = x->dtype;
    d.out_dtype = out->dtype;
    CLATTN_FORWARD(get_dims(ctx, dss, ffn_dim, x->shape, &g));
    CLATTN_FORWARD(check_io(ctx, &g, w, x, out, d.x_dtype, d.out_dtype));
    CLATTN_FORWARD(clattn_gss_plan_create(ctx, &d, dss, ffn_dim, x->shape, &plan));
    CLATTN_FORWARD(clattn_gss_plan_enqueue(plan, w, x, out, num_wait, wait, event));
cleanup:
    clattn_plan_destroy(plan);
    return status;
}
