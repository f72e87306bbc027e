/* Host side of the diagonal state-space models (S4D / DSS): the parameter handle, and the plans
 * of the long causal convolution, by FFT (lib/blocks/fft.c on clFFT) or directly. The recurrent
 * decoding state lives in lib/ops/ssm_state.c, the GSS layer built on top in lib/ops/gss.c;
 * kernels in kernels_cl/ssm.cl, launch decisions in lib/sched/sched_ssm.c.
 *
 * A plan is baked for one shape u {B, H, L, 1}. A handle plan generates K from the handle's
 * parameters at bake time (DIRECT: K [H][L]; FFT: K's spectrum [H][M/2 + 1]) and only convolves
 * when enqueued; a convolution plan takes the kernel with each enqueue. FFT path: pack each (b, h)
 * row into M = good_length(2L) reals with zeros after L (so the circular convolution of length M
 * equals the linear one on the first L outputs), r2c, multiply by K's spectrum, c2r into the same
 * rows, then y = conv + D u into the caller's view. */
#include "ssm.h"
#include "../blocks/fft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSM_PI 3.14159265358979323846

typedef struct ssm_plan {
    clattn_plan base;
    bool conv;           /* a convolution plan: the kernel comes with each enqueue */
    size_t shape[4];     /* u and y: {B, H, L, 1} */
    size_t rows, bins;   /* B * H sequences; FFT bins M/2 + 1 */
    clattn__ssm_launch launch;
    clattn_dtype u_dt, y_dt; /* element types of u and y */
    cl_kernel pack, pack_k, cmul, finish, direct; /* pack_k: a float32 kernel k (pack, when u is
                                                   * float32 too) */
    cl_mem d;            /* handle plans: the handle's D (retained), NULL without one */
    cl_mem k;            /* DIRECT handle plans: K [H][L], generated at bake time */
    cl_mem ur, uf, kf;   /* FFT: padded rows [rows][M] (K's rows too while K is transformed),
                          * their spectra [rows][bins], K's spectrum [H][bins] */
} ssm_plan;

static void plan_release(clattn_plan *base)
{
    ssm_plan *p = (ssm_plan *)base;
    if (p->d)
        clReleaseMemObject(p->d);
}

static const clattn__plan_ops ssm_ops = {CLATTN_OP_SSM, plan_release, NULL};
/* The handle's own plan: it only holds the kernel-generation kernel. */
static const clattn__plan_ops gen_ops = {CLATTN_OP_SSM, NULL, NULL};

void clattn_ssm_desc_init(clattn_ssm_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->algorithm = CLATTN_SSM_AUTO;
    desc->u_dtype = CLATTN_F32;
    desc->y_dtype = CLATTN_F32;
}

static clattn_status read_desc(clattn_context *ctx, const clattn_ssm_desc *in,
                               clattn_ssm_desc *out)
{
    clattn_ssm_desc_init(out);
    clattn_status status = clattn__desc_read(
        ctx, in, out, sizeof *out, offsetof(clattn_ssm_desc, algorithm) + sizeof(int), "ssm desc");
    if (status != CLATTN_SUCCESS)
        return status;
    if (out->algorithm != CLATTN_SSM_AUTO && out->algorithm != CLATTN_SSM_FFT &&
        out->algorithm != CLATTN_SSM_DIRECT)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "ssm desc: unknown algorithm %d",
                            (int)out->algorithm);
    status = clattn__dtype_check(ctx, out->u_dtype, "ssm desc u_dtype");
    if (status == CLATTN_SUCCESS)
        status = clattn__dtype_check(ctx, out->y_dtype, "ssm desc y_dtype");
    return status;
}

/* ---- host-side parameter preparation ---- */

clattn_status clattn_ssm_s4d_zoh(size_t heads, size_t state_dim, const float *A, const float *B,
                                 const float *C, const float *log_dt, int conj_pairs, float *Ct)
{
    if (!A || !C || !log_dt || !Ct)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm zoh: A, C, log_dt and Ct are required");
    if (heads == 0 || state_dim == 0 || heads > SIZE_MAX / 2 / state_dim)
        return clattn__fail(NULL, CLATTN_INVALID_SHAPE, "ssm zoh: H %zu and N %zu", heads,
                            state_dim);
    size_t count = heads * state_dim;
    double *tmp = malloc(2 * count * sizeof(double));
    if (!tmp)
        return clattn__fail(NULL, CLATTN_OUT_OF_HOST_MEMORY, "ssm zoh");
    double f = conj_pairs ? 2.0 : 1.0;
    for (size_t h = 0; h < heads; h++) {
        double dt = exp((double)log_dt[h]);
        if (!isfinite(log_dt[h]) || !isfinite(dt) || dt <= 0) {
            free(tmp);
            return clattn__fail(NULL, CLATTN_INVALID_ARGUMENT,
                                "ssm zoh: dt = exp(log_dt[%zu] = %g) is not finite and positive",
                                h, (double)log_dt[h]);
        }
        for (size_t n = 0; n < state_dim; n++) {
            size_t i = h * state_dim + n;
            double ar = A[2 * i], ai = A[2 * i + 1], cr = C[2 * i], ci = C[2 * i + 1];
            double br = B ? B[2 * i] : 1.0, bi = B ? B[2 * i + 1] : 0.0;
            double den = ar * ar + ai * ai;
            if (den == 0) {
                free(tmp);
                return clattn__fail(NULL, CLATTN_INVALID_ARGUMENT, "ssm zoh: A[%zu][%zu] is 0",
                                    h, n);
            }
            /* (exp(dt A) - 1) / A; expm1 keeps precision when |dt A| is small. */
            double er = expm1(dt * ar) * cos(dt * ai) - 2.0 * sin(dt * ai / 2) * sin(dt * ai / 2);
            double ei = exp(dt * ar) * sin(dt * ai);
            double qr = (er * ar + ei * ai) / den, qi = (ei * ar - er * ai) / den;
            double cbr = cr * br - ci * bi, cbi = cr * bi + ci * br;
            tmp[2 * i] = f * (cbr * qr - cbi * qi);
            tmp[2 * i + 1] = f * (cbr * qi + cbi * qr);
            if (!isfinite(tmp[2 * i]) || !isfinite(tmp[2 * i + 1]) ||
                fabs(tmp[2 * i]) > 3.4e38 || fabs(tmp[2 * i + 1]) > 3.4e38) {
                free(tmp);
                return clattn__fail(NULL, CLATTN_INVALID_ARGUMENT,
                                    "ssm zoh: Ct[%zu][%zu] is not finite (non-finite inputs?)",
                                    h, n);
            }
        }
    }
    for (size_t i = 0; i < 2 * count; i++)
        Ct[i] = (float)tmp[i];
    free(tmp);
    return CLATTN_SUCCESS;
}

clattn_status clattn_ssm_create(clattn_context *ctx, size_t heads, size_t state_dim,
                                const float *A, const float *Ct, const float *log_dt,
                                const float *D, clattn_ssm **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_ssm *s = NULL;
    cl_float *wct = NULL, *ph = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm create: ctx is NULL");
    CLATTN_CHECK(out, CLATTN_NULL_POINTER, "ssm create: handle pointer is NULL");
    *out = NULL;
    CLATTN_CHECK(A && Ct && log_dt, CLATTN_NULL_POINTER, "ssm create: A, Ct and log_dt are required");
    CLATTN_CHECK(heads >= 1 && state_dim >= 1 && heads <= ((size_t)1 << 24) / state_dim,
                 CLATTN_INVALID_SHAPE, "ssm create: H %zu and N %zu (need H, N >= 1, H * N <= 2^24)",
                 heads, state_dim);
    size_t count = heads * state_dim;
    for (size_t h = 0; h < heads; h++) {
        double dt = exp((double)log_dt[h]);
        CLATTN_CHECK(isfinite(log_dt[h]) && isfinite(dt) && dt > 0 && dt < 3.4e38,
                     CLATTN_INVALID_ARGUMENT,
                     "ssm create: dt = exp(log_dt[%zu] = %g) is not finite and positive", h,
                     (double)log_dt[h]);
        CLATTN_CHECK(!D || isfinite(D[h]), CLATTN_INVALID_ARGUMENT, "ssm create: D[%zu] = %g",
                     h, D ? (double)D[h] : 0.0);
    }
    for (size_t i = 0; i < 2 * count; i++)
        CLATTN_CHECK(isfinite(A[i]) && isfinite(Ct[i]), CLATTN_INVALID_ARGUMENT,
                     "ssm create: A or Ct [%zu][%zu] is not finite", i / 2 / state_dim,
                     i / 2 % state_dim);

    s = calloc(1, sizeof *s);
    wct = malloc(4 * count * sizeof(cl_float));
    ph = malloc(4 * count * sizeof(cl_float));
    CLATTN_CHECK(s && wct && ph, CLATTN_OUT_OF_HOST_MEMORY, "ssm create");
    s->ctx = ctx;
    s->heads = heads;
    s->n = state_dim;
    for (size_t h = 0; h < heads; h++) {
        double dt = exp((double)log_dt[h]);
        for (size_t n = 0; n < state_dim; n++) {
            size_t i = h * state_dim + n;
            double zr = dt * A[2 * i], zi = dt * A[2 * i + 1];
            CLATTN_CHECK(zr <= 0 && isfinite(zi), CLATTN_INVALID_ARGUMENT,
                         "ssm create: Re(dt A[%zu][%zu]) = %g > 0 (the kernel would grow "
                         "without bound) or dt A not finite",
                         h, n, zr);
            double mag = exp(zr);
            wct[4 * i] = (cl_float)(mag * cos(zi));
            wct[4 * i + 1] = (cl_float)(mag * sin(zi));
            wct[4 * i + 2] = Ct[2 * i];
            wct[4 * i + 3] = Ct[2 * i + 1];
            double t = zi / (2 * SSM_PI);
            t -= rint(t); /* whole turns do not change w^l for integer l */
            ph[4 * i] = (cl_float)zr;
            ph[4 * i + 1] = (cl_float)(zr - (double)(cl_float)zr);
            ph[4 * i + 2] = (cl_float)t;
            ph[4 * i + 3] = (cl_float)(t - (double)(cl_float)t);
        }
    }
    CLATTN_FORWARD(clattn__buffer_upload(ctx, wct, 4 * count * sizeof(cl_float), &s->wct));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, ph, 4 * count * sizeof(cl_float), &s->ph));
    if (D)
        CLATTN_FORWARD(clattn__buffer_upload(ctx, D, heads * sizeof(float), &s->d));
    {
        /* The kernel-generation kernel, made once: its sizes do not depend on the length. */
        char why[160];
        clattn__ssm_problem prob = {heads, heads, 1};
        status = clattn__schedule_ssm(&ctx->info, &prob, CLATTN_SSM_DIRECT, &s->launch, why,
                                      sizeof why);
        CLATTN_CHECK(status == CLATTN_SUCCESS, status, "ssm create on '%s': %s", ctx->info.name,
                     why);
    }
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(clattn_plan), &gen_ops, &s->plan));
    s->plan->algorithm = CLATTN_SSM_DIRECT;
    snprintf(s->plan->algorithm_name, sizeof s->plan->algorithm_name, "kernel");
    CLATTN_FORWARD(clattn__plan_kernel(s->plan, "ssm.cl", s->launch.defines,
                                       "clattn_ssm_kernel_gen", 0, "scheduler", &s->gen));
    *out = s;
    s = NULL;
cleanup:
    clattn_ssm_destroy(s);
    free(wct);
    free(ph);
    return status;
}

void clattn_ssm_destroy(clattn_ssm *ssm)
{
    if (!ssm)
        return;
    clattn_plan_destroy(ssm->plan);
    clattn__ssm_s4_free(ssm->s4);
    if (ssm->wct)
        clReleaseMemObject(ssm->wct);
    if (ssm->ph)
        clReleaseMemObject(ssm->ph);
    if (ssm->d)
        clReleaseMemObject(ssm->d);
    free(ssm);
}

clattn_status clattn_ssm_get_shape(const clattn_ssm *ssm, size_t *heads, size_t *state_dim)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm shape: handle is NULL");
    if (heads)
        *heads = ssm->heads;
    if (state_dim)
        *state_dim = ssm->n;
    return CLATTN_SUCCESS;
}

/* ---- the kernel K ---- */

clattn_status clattn__ssm_gen(const clattn_ssm *ssm, clattn__seq *s, cl_mem k, size_t k_off,
                              size_t k_row, size_t k_pos, size_t L, size_t rowlen, bool last,
                              cl_event *event)
{
    if (ssm->s4)
        return clattn__ssm_s4_gen(ssm, s, k, k_off, k_row, k_pos, L, rowlen, last, event);
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_ulong off = k_off, row = k_row, pos = k_pos;
    cl_uint ul = (cl_uint)L, ur = (cl_uint)rowlen, un = (cl_uint)ssm->n;
    clattn__args a = {ssm->gen, 0, CL_SUCCESS};
    CLATTN_ARG(&a, k);
    CLATTN_ARG(&a, off);
    CLATTN_ARG(&a, row);
    CLATTN_ARG(&a, pos);
    CLATTN_ARG(&a, ul);
    CLATTN_ARG(&a, ur);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, ssm->wct);
    CLATTN_ARG(&a, ssm->ph);
    CLATTN_CL(a.err);
    size_t gl[2] = {clattn__div_up(rowlen, ssm->launch.chunk), ssm->heads};
    CLATTN_FORWARD(clattn__seq_kernel(s, ssm->gen, 2, gl, last, event));
cleanup:
    return status;
}

clattn_status clattn_ssm_kernel_enqueue(clattn_ssm *ssm, const clattn_tensor *k, cl_uint num_wait,
                                        const cl_event *wait, cl_event *event)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm kernel: handle is NULL");
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(k, CLATTN_NULL_POINTER, "ssm kernel: k is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm kernel: num_wait > 0 but wait is NULL");
    size_t expect[4] = {1, ssm->heads, k->shape[2], 1};
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", expect, sizeof(float)));
    CLATTN_CHECK(k->shape[2] < CLATTN__SSM_MAX_L, CLATTN_INVALID_SHAPE,
                 "ssm kernel: L = %zu beyond 2^24", k->shape[2]);
    CLATTN_CHECK(!ssm->max_len || k->shape[2] <= ssm->max_len, CLATTN_INVALID_SHAPE,
                 "ssm kernel: L = %zu beyond the S4 handle's max_length %zu", k->shape[2],
                 ssm->max_len);
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, k, "k"));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    CLATTN_FORWARD(clattn__ssm_gen(ssm, &s, k->buffer, k->offset, k->strides[1], k->strides[2],
                                   k->shape[2], k->shape[2], true, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

/* ---- plans ---- */

/* The shape of u (and y) a plan can be baked for, and against the handle when there is one. */
static clattn_status check_shape(clattn_context *ctx, const size_t u[4], const clattn_ssm *ssm)
{
    for (int i = 0; i < 4; i++)
        if (u[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "ssm: u shape [%zu, %zu, %zu, %zu] has a zero entry", u[0], u[1],
                                u[2], u[3]);
    if (u[3] != 1)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "ssm: u must be {B, H, L, 1} (shape[3] is %zu)", u[3]);
    if (u[2] >= CLATTN__SSM_MAX_L)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "ssm: L = %zu is not below 2^24", u[2]);
    if (u[0] > ((size_t)1 << 31) / u[1])
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "ssm: B * H beyond 2^31");
    if (ssm && u[1] != ssm->heads)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "ssm: u has %zu channels but the SSM %zu",
                            u[1], ssm->heads);
    if (ssm && ssm->max_len && u[2] > ssm->max_len)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "ssm: L = %zu beyond the S4 handle's max_length %zu", u[2],
                            ssm->max_len);
    return CLATTN_SUCCESS;
}

/* u and y against the plan's shape and element types: y one-to-one and not overlapping u. */
static clattn_status check_views(clattn_context *ctx, const size_t shape[4],
                                 const clattn_tensor *u, const clattn_tensor *y, clattn_dtype u_dt,
                                 clattn_dtype y_dt)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm: u and y are required");
    const clattn__view ins[1] = {{u, "u", shape, false, u_dt}};
    const clattn__view outs[1] = {{y, "y", shape, false, y_dt}};
    CLATTN_FORWARD(clattn__check_views(ctx, ins, 1, outs, 1));
cleanup:
    return status;
}

/* A convolution plan's kernel k {1, H, L, 1} and skip term d {1, H, 1, 1} (or NULL). */
static clattn_status check_kernel_views(clattn_context *ctx, const size_t shape[4],
                                        const clattn_tensor *k, const clattn_tensor *d,
                                        const clattn_tensor *y)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t kshape[4] = {1, shape[1], shape[2], 1}, dshape[4] = {1, shape[1], 1, 1};
    CLATTN_CHECK(k, CLATTN_NULL_POINTER, "ssm conv: k is NULL");
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", kshape, sizeof(float)));
    CLATTN_FORWARD(clattn__check_no_alias(ctx, y, "y", k, "k", sizeof(float)));
    if (d) {
        CLATTN_FORWARD(clattn__tensor_check(ctx, d, "d", dshape, sizeof(float)));
        CLATTN_FORWARD(clattn__check_no_alias(ctx, y, "y", d, "d", sizeof(float)));
    }
cleanup:
    return status;
}

typedef enum { FFT_R2C, FFT_C2R } fft_dir;

/* One clFFT transform of `batch` rows as a command of sequence s (clFFT takes a wait list). */
static clattn_status seq_fft(clattn__seq *s, fft_dir dir, size_t M, size_t batch, cl_mem in,
                             size_t in_stride, cl_mem out, size_t out_stride, bool last,
                             cl_event *event)
{
    clattn__seq_next(s, last, event);
    clattn_status status =
        dir == FFT_R2C ? clattn__fft_r2c(s->ctx, M, batch, in, 0, in_stride, out, 0, out_stride,
                                         s->nw, s->w, s->evp)
                       : clattn__fft_c2r(s->ctx, M, batch, in, 0, in_stride, out, 0, out_stride,
                                         s->nw, s->w, s->evp);
    if (status == CLATTN_SUCCESS)
        clattn__seq_done(s);
    return status;
}

/* Bakes the kernels, scratch, clFFT plans and (handle plans) K of a plan whose launch is set. */
static clattn_status bake(ssm_plan *p, const clattn_ssm *ssm, const char *by)
{
    clattn_plan *base = &p->base;
    clattn_context *ctx = base->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__ssm_launch *L = &p->launch;
    size_t H = p->shape[1], len = p->shape[2], M = L->fft_len;
    clattn__seq s;
    bool seq = false;
    cl_event done = NULL;
    if (L->algo == CLATTN_SSM_DIRECT) {
        CLATTN_FORWARD(clattn__plan_kernel(base, "ssm.cl", L->defines, "clattn_ssm_direct", 0, by,
                                           &p->direct));
        if (ssm)
            CLATTN_FORWARD(clattn__plan_scratch(base, H * len * sizeof(float), "ssm kernel K",
                                                &p->k));
    } else {
        CLATTN_FORWARD(clattn__plan_kernel(base, "ssm.cl", L->defines, "clattn_ssm_pack", 0, by,
                                           &p->pack));
        p->pack_k = p->pack;
        if (p->conv && p->u_dt != CLATTN_F32)
            CLATTN_FORWARD(clattn__plan_kernel(base, "ssm.cl", L->defines, "clattn_ssm_pack_k", 0,
                                               by, &p->pack_k));
        CLATTN_FORWARD(clattn__plan_kernel(base, "ssm.cl", L->defines, "clattn_ssm_finish", 0, by,
                                           &p->finish));
        CLATTN_FORWARD(clattn__plan_kernel(base, "ssm.cl", L->defines, "clattn_ssm_cmul", 0, by,
                                           &p->cmul));
        CLATTN_FORWARD(clattn__plan_scratch(base, L->fft_real_bytes, "ssm padded rows", &p->ur));
        CLATTN_FORWARD(clattn__plan_scratch(base, L->fft_cplx_bytes, "ssm spectra", &p->uf));
        CLATTN_FORWARD(clattn__plan_scratch(base, H * p->bins * 2 * sizeof(float),
                                            "ssm kernel spectrum", &p->kf));
        CLATTN_FORWARD(clattn__fft_prepare(ctx, false, M, p->rows, M, p->bins));
        CLATTN_FORWARD(clattn__fft_prepare(ctx, true, M, p->rows, p->bins, M));
        if (p->rows != H)
            CLATTN_FORWARD(clattn__fft_prepare(ctx, false, M, H, M, p->bins));
    }
    if (!ssm)
        goto cleanup;
    /* K (and its spectrum) once, on the context's queue behind whatever is pending there. On an
     * out-of-order queue nothing orders it before the first enqueue, so wait for it here: its
     * commands wait for nothing of the caller's. */
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, 0, NULL));
    seq = true;
    cl_event *dp = s.in_order ? NULL : &done;
    if (L->algo == CLATTN_SSM_DIRECT) {
        CLATTN_FORWARD(clattn__ssm_gen(ssm, &s, p->k, 0, len, 1, len, len, true, dp));
    } else {
        CLATTN_FORWARD(clattn__ssm_gen(ssm, &s, p->ur, 0, M, 1, len, M, false, NULL));
        CLATTN_FORWARD(seq_fft(&s, FFT_R2C, M, H, p->ur, M, p->kf, p->bins, true, dp));
    }
    if (done)
        CLATTN_CL(clWaitForEvents(1, &done));
    if (ssm->d) {
        CLATTN_CL(clRetainMemObject(ssm->d));
        p->d = ssm->d;
    }
cleanup:
    if (done)
        clReleaseEvent(done);
    if (seq)
        clattn__seq_end(&s);
    return status;
}

static clattn_status plan_create(clattn_context *ctx, const clattn_ssm_desc *desc,
                                 const clattn_ssm *ssm, bool conv, const size_t u_shape[4],
                                 clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    clattn_ssm_desc d;
    char why[160];
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm plan: ctx is NULL");
    CLATTN_CHECK(out && u_shape, CLATTN_NULL_POINTER, "ssm plan: plan and u_shape are required");
    *out = NULL;
    if (!conv) {
        CLATTN_CHECK(ssm, CLATTN_NULL_POINTER, "ssm plan: the SSM handle is NULL");
        CLATTN_CHECK(ssm->ctx == ctx, CLATTN_INVALID_CONTEXT,
                     "ssm plan: the SSM handle belongs to another context");
    }
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_shape(ctx, u_shape, ssm));
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof(ssm_plan), &ssm_ops, &base));
    ssm_plan *p = (ssm_plan *)base;
    p->conv = conv;
    memcpy(p->shape, u_shape, sizeof p->shape);
    p->rows = u_shape[0] * u_shape[1];
    p->u_dt = d.u_dtype;
    p->y_dt = d.y_dtype;
    const clattn__dtype_role roles[2] = {{"U", d.u_dtype}, {"Y", d.y_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 2));
    clattn__ssm_problem prob = {p->rows, u_shape[1], u_shape[2]};
    status = clattn__schedule_ssm(&ctx->info, &prob, d.algorithm, &p->launch, why, sizeof why);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "ssm plan on '%s': %s", ctx->info.name, why);
    p->bins = p->launch.fft_len / 2 + 1;
    base->algorithm = p->launch.algo;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s",
             p->launch.algo == CLATTN_SSM_FFT ? "fft" : "direct");
    const clattn_dtype dts[2] = {d.u_dtype, d.y_dtype};
    char dl[16];
    clattn__dtype_launch(dl, sizeof dl, dts, 2);
    snprintf(base->launch, sizeof base->launch, "fft_len=%zu chunk=%u rows=%u block=%u%s%s",
             p->launch.fft_len, p->launch.chunk, p->launch.direct_rows, p->launch.direct_block,
             conv ? " kernel=caller" : "", dl);
    CLATTN_FORWARD(bake(p, conv ? NULL : ssm,
                        d.algorithm == CLATTN_SSM_AUTO ? "scheduler" : "caller"));
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_ssm_plan_create(clattn_context *ctx, const clattn_ssm_desc *desc,
                                     clattn_ssm *ssm, const size_t u_shape[4], clattn_plan **plan)
{
    return plan_create(ctx, desc, ssm, false, u_shape, plan);
}

clattn_status clattn_ssm_conv_plan_create(clattn_context *ctx, const clattn_ssm_desc *desc,
                                          const size_t u_shape[4], clattn_plan **plan)
{
    return plan_create(ctx, desc, NULL, true, u_shape, plan);
}

/* ---- launches ---- */

/* D as a view {1, H, 1, 1}; without one, has_d 0 and `any` bound in its place. */
static void arg_d(clattn__args *a, const clattn_tensor *d, cl_mem any)
{
    clattn_tensor t;
    if (d) {
        clattn__arg_view(a, d);
    } else {
        memset(&t, 0, sizeof t);
        t.buffer = any;
        clattn__arg_view(a, &t);
    }
    cl_int has_d = d != NULL;
    CLATTN_ARG(a, has_d);
}

/* Rows of the FFT input: dst[r][m] = src(b, h, m) for m < L, zeros up to M. */
static clattn_status launch_pack(ssm_plan *p, clattn__seq *s, cl_kernel pack,
                                 const clattn_tensor *src, size_t rows)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint um = (cl_uint)p->launch.fft_len, ul = (cl_uint)p->shape[2], uh = (cl_uint)p->shape[1];
    clattn__args a = {pack, 0, CL_SUCCESS};
    clattn__arg_view(&a, src);
    CLATTN_ARG(&a, p->ur);
    CLATTN_ARG(&a, um);
    CLATTN_ARG(&a, ul);
    CLATTN_ARG(&a, uh);
    CLATTN_CL(a.err);
    size_t gl[2] = {p->launch.fft_len, rows};
    CLATTN_FORWARD(clattn__seq_kernel(s, pack, 2, gl, false, NULL));
cleanup:
    return status;
}

static clattn_status run_fft(ssm_plan *p, clattn__seq *s, const clattn_tensor *u,
                             const clattn_tensor *k, const clattn_tensor *d,
                             const clattn_tensor *y, bool last, cl_event *event)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t H = p->shape[1], M = p->launch.fft_len, bins = p->bins;
    if (k) {
        /* The caller's kernel: its spectrum first, through the same padded rows. */
        CLATTN_FORWARD(launch_pack(p, s, p->pack_k, k, H));
        CLATTN_FORWARD(seq_fft(s, FFT_R2C, M, H, p->ur, M, p->kf, bins, false, NULL));
    }
    CLATTN_FORWARD(launch_pack(p, s, p->pack, u, p->rows));
    CLATTN_FORWARD(seq_fft(s, FFT_R2C, M, p->rows, p->ur, M, p->uf, bins, false, NULL));
    {
        cl_uint ub = (cl_uint)bins, uh = (cl_uint)H;
        clattn__args a = {p->cmul, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p->uf);
        CLATTN_ARG(&a, p->kf);
        CLATTN_ARG(&a, ub);
        CLATTN_ARG(&a, uh);
        CLATTN_CL(a.err);
        size_t gl[2] = {bins, p->rows};
        CLATTN_FORWARD(clattn__seq_kernel(s, p->cmul, 2, gl, false, NULL));
    }
    CLATTN_FORWARD(seq_fft(s, FFT_C2R, M, p->rows, p->uf, bins, p->ur, M, false, NULL));
    {
        cl_uint um = (cl_uint)M, uh = (cl_uint)H;
        clattn__args a = {p->finish, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p->ur);
        CLATTN_ARG(&a, um);
        CLATTN_ARG(&a, uh);
        clattn__arg_view(&a, u);
        arg_d(&a, d, u->buffer);
        clattn__arg_view(&a, y);
        CLATTN_CL(a.err);
        size_t gl[2] = {p->shape[2], p->rows};
        CLATTN_FORWARD(clattn__seq_kernel(s, p->finish, 2, gl, last, event));
    }
cleanup:
    return status;
}

static clattn_status run_direct(ssm_plan *p, clattn__seq *s, const clattn_tensor *u,
                                const clattn_tensor *k, const clattn_tensor *d,
                                const clattn_tensor *y, bool last, cl_event *event)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint uh = (cl_uint)p->shape[1], ul = (cl_uint)p->shape[2];
    clattn__args a = {p->direct, 0, CL_SUCCESS};
    clattn__arg_view(&a, u);
    clattn__arg_view(&a, k);
    arg_d(&a, d, u->buffer);
    clattn__arg_view(&a, y);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, ul);
    CLATTN_CL(a.err);
    size_t gl[2] = {clattn__div_up(p->shape[2], p->launch.direct_rows), p->rows};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->direct, 2, gl, last, event));
cleanup:
    return status;
}

/* The convolution of validated views: k and d are the caller's (convolution plans) or NULL
 * (handle plans: the plan's K and D). */
static clattn_status run(ssm_plan *p, clattn__seq *s, const clattn_tensor *u,
                         const clattn_tensor *k, const clattn_tensor *d, const clattn_tensor *y,
                         bool last, cl_event *event)
{
    clattn_tensor kt, dt;
    if (!p->conv) {
        kt = clattn_tensor_make(p->k, 1, p->shape[1], p->shape[2], 1);
        dt = clattn_tensor_make(p->d, 1, p->shape[1], 1, 1);
        d = p->d ? &dt : NULL;
    }
    if (p->launch.algo == CLATTN_SSM_FFT)
        return run_fft(p, s, u, p->conv ? k : NULL, d, y, last, event);
    return run_direct(p, s, u, p->conv ? k : &kt, d, y, last, event);
}

/* ---- enqueue ---- */

/* The plan behind a public SSM plan argument (the handle's and the state's own plans are never
 * handed out, but their operator is SSM too). */
static clattn_status plan_of(clattn_plan *base, bool conv, const char *fn, ssm_plan **out)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_SSM, fn);
    if (status != CLATTN_SUCCESS)
        return status;
    ssm_plan *p = (ssm_plan *)base;
    if (base->ops != &ssm_ops || p->conv != conv)
        return clattn__fail(base->ctx, CLATTN_INVALID_ARGUMENT,
                            conv ? "%s: not a convolution plan (clattn_ssm_conv_plan_create)"
                                 : "%s: a convolution plan takes its kernel "
                                   "(clattn_ssm_conv_plan_enqueue)",
                            fn);
    *out = p;
    return CLATTN_SUCCESS;
}

static clattn_status enqueue(ssm_plan *p, const clattn_tensor *u, const clattn_tensor *k,
                             const clattn_tensor *d, const clattn_tensor *y, cl_uint num_wait,
                             const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_views(ctx, p->shape, u, y, p->u_dt, p->y_dt));
    if (p->conv)
        CLATTN_FORWARD(check_kernel_views(ctx, p->shape, k, d, y));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    CLATTN_FORWARD(run(p, &s, u, k, d, y, true, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_ssm_plan_enqueue(clattn_plan *plan, const clattn_tensor *u,
                                      const clattn_tensor *y, cl_uint num_wait,
                                      const cl_event *wait, cl_event *event)
{
    ssm_plan *p = NULL;
    clattn_status status = plan_of(plan, false, "ssm enqueue", &p);
    return status != CLATTN_SUCCESS ? status : enqueue(p, u, NULL, NULL, y, num_wait, wait, event);
}

clattn_status clattn_ssm_conv_plan_enqueue(clattn_plan *plan, const clattn_tensor *u,
                                           const clattn_tensor *k, const clattn_tensor *d,
                                           const clattn_tensor *y, cl_uint num_wait,
                                           const cl_event *wait, cl_event *event)
{
    ssm_plan *p = NULL;
    clattn_status status = plan_of(plan, true, "ssm conv enqueue", &p);
    return status != CLATTN_SUCCESS ? status : enqueue(p, u, k, d, y, num_wait, wait, event);
}

clattn_status clattn__ssm_plan_run(clattn_plan *plan, clattn__seq *s, const clattn_tensor *u,
                                   const clattn_tensor *y, bool last, cl_event *event)
{
    return run((ssm_plan *)plan, s, u, NULL, NULL, y, last, event);
}

/* ---- one-shot calls, on a plan ---- */

clattn_status clattn_ssm_enqueue(clattn_ssm *ssm, const clattn_ssm_desc *desc,
                                 const clattn_tensor *u, const clattn_tensor *y, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm enqueue: handle is NULL");
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *plan = NULL;
    clattn_ssm_desc d;
    /* Everything the enqueue would refuse is refused before the plan is baked. */
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm enqueue: u and y are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm enqueue: num_wait > 0 but wait is NULL");
    /* The element types come from the tensors. */
    CLATTN_FORWARD(clattn__dtype_check(ctx, u->dtype, "ssm enqueue: u dtype"));
    CLATTN_FORWARD(clattn__dtype_check(ctx, y->dtype, "ssm enqueue: y dtype"));
    d.u_dtype = u->dtype;
    d.y_dtype = y->dtype;
    CLATTN_FORWARD(check_shape(ctx, u->shape, ssm));
    CLATTN_FORWARD(check_views(ctx, u->shape, u, y, d.u_dtype, d.y_dtype));
    CLATTN_FORWARD(clattn_ssm_plan_create(ctx, &d, ssm, u->shape, &plan));
    CLATTN_FORWARD(clattn_ssm_plan_enqueue(plan, u, y, num_wait, wait, event));
cleanup:
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_ssm_conv_enqueue(clattn_context *ctx, const clattn_ssm_desc *desc,
                                      const clattn_tensor *u, const clattn_tensor *k,
                                      const clattn_tensor *d, const clattn_tensor *y,
                                      cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm conv: ctx is NULL");
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *plan = NULL;
    clattn_ssm_desc dd;
    CLATTN_FORWARD(read_desc(ctx, desc, &dd));
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm conv: u and y are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm conv: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(clattn__dtype_check(ctx, u->dtype, "ssm conv: u dtype"));
    CLATTN_FORWARD(clattn__dtype_check(ctx, y->dtype, "ssm conv: y dtype"));
    dd.u_dtype = u->dtype;
    dd.y_dtype = y->dtype;
    CLATTN_FORWARD(check_shape(ctx, u->shape, NULL));
    CLATTN_FORWARD(check_views(ctx, u->shape, u, y, dd.u_dtype, dd.y_dtype));
    CLATTN_FORWARD(check_kernel_views(ctx, u->shape, k, d, y));
    CLATTN_FORWARD(clattn_ssm_conv_plan_create(ctx, &dd, u->shape, &plan));
    CLATTN_FORWARD(clattn_ssm_conv_plan_enqueue(plan, u, k, d, y, num_wait, wait, event));
cleanup:
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_ssm_host(clattn_context *ctx, const clattn_ssm_desc *desc, size_t batch,
                              size_t heads, size_t state_dim, size_t length, const float *A,
                              const float *Ct, const float *log_dt, const float *D,
                              const float *u, float *y)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm host: ctx is NULL");
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    clattn_ssm *ssm = NULL;
    clattn_plan *plan = NULL;
    clattn_ssm_desc d;
    cl_mem bu, by;
    cl_event done = NULL;
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm host: u and y are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    d.u_dtype = d.y_dtype = CLATTN_F32; /* host arrays are float32 */
    CLATTN_CHECK(batch >= 1 && length >= 1 && length < CLATTN__SSM_MAX_L, CLATTN_INVALID_SHAPE,
                 "ssm host: B = %zu, L = %zu (need B >= 1, 1 <= L < 2^24)", batch, length);
    size_t count, bytes;
    CLATTN_CHECK(clattn__mul_ok(batch, heads, &count) && clattn__mul_ok(count, length, &count) &&
                     clattn__mul_ok(count, sizeof(float), &bytes),
                 CLATTN_SIZE_OVERFLOW, "ssm host: sizes overflow");
    CLATTN_FORWARD(clattn_ssm_create(ctx, heads, state_dim, A, Ct, log_dt, D, &ssm));
    size_t shape[4] = {batch, heads, length, 1};
    CLATTN_FORWARD(clattn_ssm_plan_create(ctx, &d, ssm, shape, &plan));
    CLATTN_FORWARD(clattn__stage_in(&st, u, bytes, "u", &bu));
    CLATTN_FORWARD(clattn__stage_out(&st, y, bytes, "y", &by));
    clattn_tensor tu = clattn_tensor_make(bu, batch, heads, length, 1);
    clattn_tensor ty = clattn_tensor_make(by, batch, heads, length, 1);
    CLATTN_FORWARD(clattn_ssm_plan_enqueue(plan, &tu, &ty, 0, NULL, &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    clattn_ssm_destroy(ssm);
    return status;
}
