/* Host side of the diagonal state-space models (S4D / DSS): parameter handle, kernel generation,
 * the long causal convolution by FFT (lib/core/fft.c on clFFT) or directly, and the recurrent
 * step. Kernels: kernels_cl/ssm.cl. The GSS layer built on top lives in lib/ops/gss.c.
 *
 * FFT path for u [B, H, L]: pack each (b, h) row into M = good_length(2L) reals with zeros after
 * L (so the circular convolution of length M equals the linear one on the first L outputs), r2c,
 * multiply by K's spectrum (kept in the handle per length), c2r into the same rows, then
 * y = conv + D u into the caller's view. */
#include "../core/internal.h"
#include "../blocks/fft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SSM_CHUNK 32 /* SSM_CHUNK in ssm.cl */
#define SSM_DIRECT_ROWS 8 /* SSM_DIRECT_ROWS in ssm.cl */
#define SSM_OPTIONS "-DSSM_CHUNK=32 -DSSM_DIRECT_ROWS=8 -DSSM_DIRECT_BLOCK=4096"
#define SSM_MAX_L ((size_t)1 << 24) /* positions stay exact in float inside the kernels */
#define SSM_PI 3.14159265358979323846

struct clattn_ssm {
    clattn_context *ctx;
    size_t heads, n;
    cl_mem wct;  /* [H * N] float4: w (re, im), Ct (re, im) */
    cl_mem ph;   /* [H * N] float4: Re z (hi, lo), Im z / 2pi reduced to [-0.5, 0.5] (hi, lo) */
    cl_mem d;    /* [H] float, or NULL */
    /* K for the last length used: time domain [H][L] and spectrum [H][M/2 + 1] complex. */
    size_t k_len, f_len, f_m;
    cl_mem k_time, k_freq;
    cl_event k_time_ev, k_freq_ev; /* completion of their generation (for out-of-order queues) */
};

struct clattn_ssm_state {
    clattn_ssm *ssm;
    size_t batch;
    cl_mem x; /* [B * H * N] complex */
    size_t bytes;
};

void clattn_ssm_desc_init(clattn_ssm_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->algorithm = CLATTN_SSM_AUTO;
}

static clattn_status read_desc(clattn_context *ctx, const clattn_ssm_desc *in,
                               clattn_ssm_desc *out)
{
    clattn_ssm_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_ssm_desc, algorithm) + sizeof(int) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "ssm desc: struct_size %zu is not valid (call clattn_ssm_desc_init "
                            "first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (out->algorithm != CLATTN_SSM_AUTO && out->algorithm != CLATTN_SSM_FFT &&
        out->algorithm != CLATTN_SSM_DIRECT)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "ssm desc: unknown algorithm %d",
                            (int)out->algorithm);
    return CLATTN_SUCCESS;
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
    *out = s;
    s = NULL;
cleanup:
    clattn_ssm_destroy(s);
    free(wct);
    free(ph);
    return status;
}

static void drop_k_time(clattn_ssm *s)
{
    if (s->k_time)
        clReleaseMemObject(s->k_time);
    if (s->k_time_ev)
        clReleaseEvent(s->k_time_ev);
    s->k_time = NULL;
    s->k_time_ev = NULL;
    s->k_len = 0;
}

static void drop_k_freq(clattn_ssm *s)
{
    if (s->k_freq)
        clReleaseMemObject(s->k_freq);
    if (s->k_freq_ev)
        clReleaseEvent(s->k_freq_ev);
    s->k_freq = NULL;
    s->k_freq_ev = NULL;
    s->f_len = 0;
}

void clattn_ssm_destroy(clattn_ssm *ssm)
{
    if (!ssm)
        return;
    drop_k_time(ssm);
    drop_k_freq(ssm);
    if (ssm->wct)
        clReleaseMemObject(ssm->wct);
    if (ssm->ph)
        clReleaseMemObject(ssm->ph);
    if (ssm->d)
        clReleaseMemObject(ssm->d);
    free(ssm);
}

/* The context a handle belongs to (lib/ops/gss.c checks it against its own). */
clattn_context *clattn__ssm_context(const clattn_ssm *ssm);
clattn_context *clattn__ssm_context(const clattn_ssm *ssm) { return ssm->ctx; }

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

/* ---- command sequences ---- */

/* Commands on the context's queue: the first waits for the caller's list (plus an extra event
 * of ours), the last returns the caller's event; between them an event chain only when the queue
 * is out of order. */
typedef struct seq {
    clattn__seq q;   /* lib/core/seq.c */
    cl_event *owned; /* the caller's wait list plus the extra event */
} seq;

static clattn_status seq_init(seq *s, clattn_context *ctx, cl_uint nwait, const cl_event *wait,
                              cl_event extra)
{
    memset(s, 0, sizeof *s);
    clattn_status st = clattn__seq_init(&s->q, ctx, 0, NULL);
    if (st != CLATTN_SUCCESS)
        return st;
    if (extra && s->q.in_order)
        extra = NULL; /* the queue orders it already */
    size_t total = (size_t)nwait + (extra ? 1 : 0);
    if (total) {
        s->owned = malloc(total * sizeof(cl_event));
        if (!s->owned)
            return clattn__fail(ctx, CLATTN_OUT_OF_HOST_MEMORY, "ssm: wait list");
        if (nwait)
            memcpy(s->owned, wait, nwait * sizeof(cl_event));
        if (extra)
            s->owned[nwait] = extra;
    }
    s->q.nwait = (cl_uint)total;
    s->q.wait = s->owned;
    return CLATTN_SUCCESS;
}

static clattn_status seq_kernel(seq *s, cl_kernel kernel, cl_uint dims, const size_t *global,
                                bool last, cl_event *event)
{
    return clattn__seq_kernel(&s->q, kernel, dims, global, last, event);
}

typedef enum { FFT_R2C, FFT_C2R } fft_dir;

static clattn_status seq_fft(seq *s, fft_dir dir, size_t len, size_t batch, cl_mem in,
                             size_t in_stride, cl_mem out, size_t out_stride, bool last,
                             cl_event *event)
{
    clattn__seq *q = &s->q;
    clattn__seq_next(q, last, event);
    clattn_status status =
        dir == FFT_R2C ? clattn__fft_r2c(q->ctx, len, batch, in, 0, in_stride, out, 0,
                                         out_stride, q->nw, q->w, q->evp)
                       : clattn__fft_c2r(q->ctx, len, batch, in, 0, in_stride, out, 0,
                                         out_stride, q->nw, q->w, q->evp);
    if (status == CLATTN_SUCCESS)
        clattn__seq_done(q);
    return status;
}

/* The event of the last command (for the handle's cache); NULL on an in-order queue. */
static cl_event seq_take(seq *s)
{
    cl_event e = s->q.prev;
    s->q.prev = NULL;
    return e;
}

static void seq_end(seq *s)
{
    clattn__seq_end(&s->q);
    free(s->owned);
    memset(s, 0, sizeof *s);
}

static clattn_status get_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel)
{
    cl_program prog = NULL;
    clattn_status status = clattn__program_get(ctx, "ssm.cl", SSM_OPTIONS, &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, kernel);
    return status;
}

/* ---- launches ---- */

/* K into `k` (element offset k_off, row stride k_row), rows of `rowlen` with zeros from L on. */
static clattn_status launch_gen(seq *s, clattn_ssm *ssm, cl_mem k, size_t k_off, size_t k_row,
                                size_t L, size_t rowlen, bool last, cl_event *event)
{
    clattn_context *ctx = s->q.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_ssm_kernel_gen", &kern));
    cl_ulong off = k_off, row = k_row;
    cl_uint ul = (cl_uint)L, ur = (cl_uint)rowlen, un = (cl_uint)ssm->n;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, k);
    CLATTN_ARG(&a, off);
    CLATTN_ARG(&a, row);
    CLATTN_ARG(&a, ul);
    CLATTN_ARG(&a, ur);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, ssm->wct);
    CLATTN_ARG(&a, ssm->ph);
    CLATTN_CL(a.err);
    size_t gl[2] = {clattn__div_up(rowlen, SSM_CHUNK), ssm->heads};
    CLATTN_FORWARD(seq_kernel(s, kern, 2, gl, last, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

static clattn_status launch_pack(seq *s, const clattn_tensor *src, cl_mem dst, size_t M,
                                 size_t L, size_t H, size_t rows)
{
    clattn_context *ctx = s->q.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_ssm_pack", &kern));
    cl_uint um = (cl_uint)M, ul = (cl_uint)L, uh = (cl_uint)H;
    clattn__args a = {kern, 0, CL_SUCCESS};
    clattn__arg_view(&a, src);
    CLATTN_ARG(&a, dst);
    CLATTN_ARG(&a, um);
    CLATTN_ARG(&a, ul);
    CLATTN_ARG(&a, uh);
    CLATTN_CL(a.err);
    size_t gl[2] = {M, rows};
    CLATTN_FORWARD(seq_kernel(s, kern, 2, gl, false, NULL));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

static clattn_status launch_cmul(seq *s, cl_mem uf, cl_mem kf, size_t bins, size_t H, size_t rows)
{
    clattn_context *ctx = s->q.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_ssm_cmul", &kern));
    cl_uint ub = (cl_uint)bins, uh = (cl_uint)H;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, uf);
    CLATTN_ARG(&a, kf);
    CLATTN_ARG(&a, ub);
    CLATTN_ARG(&a, uh);
    CLATTN_CL(a.err);
    size_t gl[2] = {bins, rows};
    CLATTN_FORWARD(seq_kernel(s, kern, 2, gl, false, NULL));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* D as a view {1, H, 1, 1}; has_d 0 binds `any` in its place. */
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

static clattn_status launch_finish(seq *s, cl_mem conv, size_t M, const clattn_tensor *u,
                                   const clattn_tensor *d, const clattn_tensor *y, cl_event *event)
{
    clattn_context *ctx = s->q.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_ssm_finish", &kern));
    cl_uint um = (cl_uint)M, uh = (cl_uint)u->shape[1];
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, conv);
    CLATTN_ARG(&a, um);
    CLATTN_ARG(&a, uh);
    clattn__arg_view(&a, u);
    arg_d(&a, d, u->buffer);
    clattn__arg_view(&a, y);
    CLATTN_CL(a.err);
    size_t gl[2] = {u->shape[2], u->shape[0] * u->shape[1]};
    CLATTN_FORWARD(seq_kernel(s, kern, 2, gl, true, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

static clattn_status launch_direct(seq *s, const clattn_tensor *u, const clattn_tensor *k,
                                   const clattn_tensor *d, const clattn_tensor *y, cl_event *event)
{
    clattn_context *ctx = s->q.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_ssm_direct", &kern));
    cl_uint uh = (cl_uint)u->shape[1], ul = (cl_uint)u->shape[2];
    clattn__args a = {kern, 0, CL_SUCCESS};
    clattn__arg_view(&a, u);
    clattn__arg_view(&a, k);
    arg_d(&a, d, u->buffer);
    clattn__arg_view(&a, y);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, ul);
    CLATTN_CL(a.err);
    size_t gl[2] = {clattn__div_up(u->shape[2], SSM_DIRECT_ROWS), u->shape[0] * u->shape[1]};
    CLATTN_FORWARD(seq_kernel(s, kern, 2, gl, true, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}

/* ---- validation ---- */

static clattn_status check_io(clattn_context *ctx, const clattn_tensor *u, const clattn_tensor *y)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm: u and y are required");
    CLATTN_CHECK(u->shape[3] == 1, CLATTN_INVALID_SHAPE,
                 "ssm: u must be {B, H, L, 1} (shape[3] is %zu)", u->shape[3]);
    CLATTN_FORWARD(clattn__tensor_check(ctx, u, "u", NULL, sizeof(float)));
    CLATTN_CHECK(u->shape[2] < SSM_MAX_L, CLATTN_INVALID_SHAPE, "ssm: L = %zu is not below 2^24",
                 u->shape[2]);
    CLATTN_CHECK(u->shape[0] <= ((size_t)1 << 31) / u->shape[1], CLATTN_INVALID_SHAPE,
                 "ssm: B * H beyond 2^31");
    CLATTN_FORWARD(clattn__tensor_check(ctx, y, "y", u->shape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, y, "y"));
    CLATTN_FORWARD(clattn__check_no_alias(ctx, y, "y", u, "u", sizeof(float)));
cleanup:
    return status;
}

static clattn_ssm_algo resolve(const clattn_context *ctx, clattn_ssm_algo a, size_t L)
{
    if (a != CLATTN_SSM_AUTO)
        return a;
    size_t max = ctx->info.device_class == CLATTN_DEVICE_GPU ? CLATTN_SSM_DIRECT_MAX_L_GPU
                                                              : CLATTN_SSM_DIRECT_MAX_L;
    return L <= max ? CLATTN_SSM_DIRECT : CLATTN_SSM_FFT;
}

/* FFT length and scratch sizes for B*H rows of length L. */
static clattn_status fft_sizes(clattn_context *ctx, size_t rows, size_t L, size_t *M,
                               size_t *real_bytes, size_t *cplx_bytes)
{
    *M = clattn__fft_good_length(2 * L);
    size_t bins = *M / 2 + 1, a, b;
    if (*M == 0 || !clattn__mul_ok(rows, *M * sizeof(float), &a) ||
        !clattn__mul_ok(rows, bins * 2 * sizeof(float), &b))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "ssm: FFT scratch size overflows");
    if (a > ctx->info.max_alloc_size || b > ctx->info.max_alloc_size)
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "ssm: FFT scratch of %zu bytes beyond the device's max allocation %llu",
                            b, (unsigned long long)ctx->info.max_alloc_size);
    *real_bytes = a;
    *cplx_bytes = b;
    return CLATTN_SUCCESS;
}

/* The convolution of validated u by a kernel spectrum kf [H][M/2+1] (kf_ready: its generation,
 * on out-of-order queues), + D u, into y. */
static clattn_status conv_fft(clattn_context *ctx, const clattn_tensor *u, cl_mem kf,
                              cl_event kf_ready, const clattn_tensor *d, const clattn_tensor *y,
                              cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem ur = NULL, uf = NULL;
    seq s;
    memset(&s, 0, sizeof s);
    size_t H = u->shape[1], L = u->shape[2], rows = u->shape[0] * H, M, rb, cb;
    CLATTN_FORWARD(fft_sizes(ctx, rows, L, &M, &rb, &cb));
    size_t bins = M / 2 + 1;
    CLATTN_FORWARD(clattn__buffer_create(ctx, rb, "ssm padded rows", &ur));
    CLATTN_FORWARD(clattn__buffer_create(ctx, cb, "ssm spectra", &uf));
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait, kf_ready));
    CLATTN_FORWARD(launch_pack(&s, u, ur, M, L, H, rows));
    CLATTN_FORWARD(seq_fft(&s, FFT_R2C, M, rows, ur, M, uf, bins, false, NULL));
    CLATTN_FORWARD(launch_cmul(&s, uf, kf, bins, H, rows));
    CLATTN_FORWARD(seq_fft(&s, FFT_C2R, M, rows, uf, bins, ur, M, false, NULL));
    CLATTN_FORWARD(launch_finish(&s, ur, M, u, d, y, event));
cleanup:
    seq_end(&s);
    if (ur)
        clReleaseMemObject(ur);
    if (uf)
        clReleaseMemObject(uf);
    return status;
}

static clattn_status conv_direct(clattn_context *ctx, const clattn_tensor *u,
                                 const clattn_tensor *k, cl_event k_ready,
                                 const clattn_tensor *d, const clattn_tensor *y, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    seq s;
    memset(&s, 0, sizeof s);
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait, k_ready));
    CLATTN_FORWARD(launch_direct(&s, u, k, d, y, event));
cleanup:
    seq_end(&s);
    return status;
}

/* Makes the handle's K for length L: time domain (direct path) or spectrum (FFT path). Runs on
 * its own chain, without the caller's wait list: it only reads the handle's parameters. */
static clattn_status ensure_k(clattn_ssm *ssm, size_t L, bool spectrum)
{
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_mem kpad = NULL;
    seq s;
    memset(&s, 0, sizeof s);
    if (!spectrum && ssm->k_time && ssm->k_len == L)
        return CLATTN_SUCCESS;
    if (spectrum && ssm->k_freq && ssm->f_len == L)
        return CLATTN_SUCCESS;
    size_t H = ssm->heads;
    CLATTN_FORWARD(seq_init(&s, ctx, 0, NULL, NULL));
    if (!spectrum) {
        drop_k_time(ssm);
        size_t bytes;
        CLATTN_CHECK(clattn__mul_ok(H, L * sizeof(float), &bytes), CLATTN_SIZE_OVERFLOW,
                     "ssm: kernel size overflows");
        CLATTN_FORWARD(clattn__buffer_create(ctx, bytes, "ssm kernel", &ssm->k_time));
        CLATTN_FORWARD(launch_gen(&s, ssm, ssm->k_time, 0, L, L, L, false, NULL));
        ssm->k_time_ev = seq_take(&s);
        ssm->k_len = L;
    } else {
        drop_k_freq(ssm);
        size_t M, rb, cb;
        CLATTN_FORWARD(fft_sizes(ctx, H, L, &M, &rb, &cb));
        CLATTN_FORWARD(clattn__buffer_create(ctx, rb, "ssm padded kernel", &kpad));
        CLATTN_FORWARD(clattn__buffer_create(ctx, cb, "ssm kernel spectrum", &ssm->k_freq));
        CLATTN_FORWARD(launch_gen(&s, ssm, kpad, 0, M, L, M, false, NULL));
        CLATTN_FORWARD(seq_fft(&s, FFT_R2C, M, H, kpad, M, ssm->k_freq, M / 2 + 1, false, NULL));
        ssm->k_freq_ev = seq_take(&s);
        ssm->f_len = L;
        ssm->f_m = M;
    }
cleanup:
    if (status != CLATTN_SUCCESS) {
        if (spectrum)
            drop_k_freq(ssm);
        else
            drop_k_time(ssm);
    }
    seq_end(&s);
    if (kpad)
        clReleaseMemObject(kpad);
    return status;
}

static clattn_tensor d_view(const clattn_ssm *ssm)
{
    clattn_tensor t = clattn_tensor_make(ssm->d, 1, ssm->heads, 1, 1);
    return t;
}

clattn_status clattn_ssm_kernel_enqueue(clattn_ssm *ssm, const clattn_tensor *k, cl_uint num_wait,
                                        const cl_event *wait, cl_event *event)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm kernel: handle is NULL");
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    seq s;
    memset(&s, 0, sizeof s);
    CLATTN_CHECK(k, CLATTN_NULL_POINTER, "ssm kernel: k is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm kernel: num_wait > 0 but wait is NULL");
    size_t expect[4] = {1, ssm->heads, k->shape[2], 1};
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", expect, sizeof(float)));
    CLATTN_CHECK(k->shape[2] < SSM_MAX_L, CLATTN_INVALID_SHAPE, "ssm kernel: L = %zu beyond 2^24",
                 k->shape[2]);
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, k, "k"));
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait, NULL));
    if (k->strides[2] == 1) {
        CLATTN_FORWARD(launch_gen(&s, ssm, k->buffer, k->offset, k->strides[1], k->shape[2],
                                  k->shape[2], true, event));
    } else {
        /* Positions not adjacent: generate dense rows into the handle's cache and scatter them
         * with the finish kernel (conv = K, no D term). */
        CLATTN_FORWARD(ensure_k(ssm, k->shape[2], false));
        clattn_tensor src = clattn_tensor_make(ssm->k_time, 1, ssm->heads, k->shape[2], 1);
        seq_end(&s);
        CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait, ssm->k_time_ev));
        CLATTN_FORWARD(launch_finish(&s, ssm->k_time, k->shape[2], &src, NULL, k, event));
    }
cleanup:
    seq_end(&s);
    return status;
}

clattn_status clattn_ssm_enqueue(clattn_ssm *ssm, const clattn_ssm_desc *desc,
                                 const clattn_tensor *u, const clattn_tensor *y, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm: handle is NULL");
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn_ssm_desc d;
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "ssm: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_io(ctx, u, y));
    CLATTN_CHECK(u->shape[1] == ssm->heads, CLATTN_SHAPE_MISMATCH,
                 "ssm: u has %zu channels but the SSM %zu", u->shape[1], ssm->heads);
    size_t L = u->shape[2];
    clattn_tensor dv = d_view(ssm);
    const clattn_tensor *dp = ssm->d ? &dv : NULL;
    if (resolve(ctx, d.algorithm, L) == CLATTN_SSM_DIRECT) {
        CLATTN_FORWARD(ensure_k(ssm, L, false));
        clattn_tensor k = clattn_tensor_make(ssm->k_time, 1, ssm->heads, L, 1);
        CLATTN_FORWARD(conv_direct(ctx, u, &k, ssm->k_time_ev, dp, y, num_wait, wait, event));
    } else {
        CLATTN_FORWARD(ensure_k(ssm, L, true));
        CLATTN_FORWARD(
            conv_fft(ctx, u, ssm->k_freq, ssm->k_freq_ev, dp, y, num_wait, wait, event));
    }
cleanup:
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
    cl_mem kpad = NULL, kf = NULL;
    cl_event kev = NULL;
    seq s;
    memset(&s, 0, sizeof s);
    clattn_ssm_desc dd;
    CLATTN_FORWARD(read_desc(ctx, desc, &dd));
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm conv: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_io(ctx, u, y));
    CLATTN_CHECK(k, CLATTN_NULL_POINTER, "ssm conv: k is NULL");
    size_t H = u->shape[1], L = u->shape[2];
    size_t kshape[4] = {1, H, L, 1}, dshape[4] = {1, H, 1, 1};
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", kshape, sizeof(float)));
    CLATTN_FORWARD(clattn__check_no_alias(ctx, y, "y", k, "k", sizeof(float)));
    if (d) {
        CLATTN_FORWARD(clattn__tensor_check(ctx, d, "d", dshape, sizeof(float)));
        CLATTN_FORWARD(clattn__check_no_alias(ctx, y, "y", d, "d", sizeof(float)));
    }
    if (resolve(ctx, dd.algorithm, L) == CLATTN_SSM_DIRECT) {
        CLATTN_FORWARD(conv_direct(ctx, u, k, NULL, d, y, num_wait, wait, event));
    } else {
        size_t M, rb, cb;
        CLATTN_FORWARD(fft_sizes(ctx, H, L, &M, &rb, &cb));
        CLATTN_FORWARD(clattn__buffer_create(ctx, rb, "ssm padded kernel", &kpad));
        CLATTN_FORWARD(clattn__buffer_create(ctx, cb, "ssm kernel spectrum", &kf));
        /* The caller's k may be written by a command in the wait list: the kernel's transform
         * honours it too. */
        CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait, NULL));
        CLATTN_FORWARD(launch_pack(&s, k, kpad, M, L, H, H));
        CLATTN_FORWARD(seq_fft(&s, FFT_R2C, M, H, kpad, M, kf, M / 2 + 1, false, NULL));
        kev = seq_take(&s);
        CLATTN_FORWARD(conv_fft(ctx, u, kf, kev, d, y, num_wait, wait, event));
    }
cleanup:
    seq_end(&s);
    if (kev)
        clReleaseEvent(kev);
    if (kpad)
        clReleaseMemObject(kpad);
    if (kf)
        clReleaseMemObject(kf);
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
    clattn_ssm *ssm = NULL;
    cl_mem bu = NULL, by = NULL;
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm host: u and y are required");
    CLATTN_CHECK(batch >= 1 && length >= 1 && length < SSM_MAX_L, CLATTN_INVALID_SHAPE,
                 "ssm host: B = %zu, L = %zu (need B >= 1, 1 <= L < 2^24)", batch, length);
    CLATTN_FORWARD(clattn_ssm_create(ctx, heads, state_dim, A, Ct, log_dt, D, &ssm));
    size_t count, bytes;
    CLATTN_CHECK(clattn__mul_ok(batch * heads, length, &count) &&
                     clattn__mul_ok(count, sizeof(float), &bytes),
                 CLATTN_SIZE_OVERFLOW, "ssm host: sizes overflow");
    CLATTN_FORWARD(clattn__buffer_upload(ctx, u, bytes, &bu));
    CLATTN_FORWARD(clattn__buffer_create(ctx, bytes, "ssm host output", &by));
    clattn_tensor tu = clattn_tensor_make(bu, batch, heads, length, 1);
    clattn_tensor ty = clattn_tensor_make(by, batch, heads, length, 1);
    CLATTN_FORWARD(clattn_ssm_enqueue(ssm, desc, &tu, &ty, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, by, CL_TRUE, 0, bytes, y, 0, NULL, NULL));
cleanup:
    if (bu)
        clReleaseMemObject(bu);
    if (by)
        clReleaseMemObject(by);
    clattn_ssm_destroy(ssm);
    return status;
}

/* ---- recurrent state ---- */

clattn_status clattn_ssm_state_create(clattn_ssm *ssm, size_t batch, clattn_ssm_state **out)
{
    if (!ssm)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state: handle is NULL");
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn_ssm_state *st = NULL;
    CLATTN_CHECK(out, CLATTN_NULL_POINTER, "ssm state: state pointer is NULL");
    *out = NULL;
    CLATTN_CHECK(batch >= 1 && batch <= ((size_t)1 << 31) / (ssm->heads * ssm->n),
                 CLATTN_INVALID_SHAPE, "ssm state: batch %zu (need 1 <= B * H * N <= 2^31)",
                 batch);
    st = calloc(1, sizeof *st);
    CLATTN_CHECK(st, CLATTN_OUT_OF_HOST_MEMORY, "ssm state");
    st->ssm = ssm;
    st->batch = batch;
    st->bytes = batch * ssm->heads * ssm->n * 2 * sizeof(float);
    CLATTN_FORWARD(clattn__buffer_create(ctx, st->bytes, "ssm state", &st->x));
    CLATTN_FORWARD(clattn_ssm_state_reset(st, 0, NULL, NULL));
    CLATTN_CL(clFinish(ctx->queue));
    *out = st;
    st = NULL;
cleanup:
    clattn_ssm_state_destroy(st);
    return status;
}

void clattn_ssm_state_destroy(clattn_ssm_state *state)
{
    if (!state)
        return;
    if (state->x)
        clReleaseMemObject(state->x);
    free(state);
}

clattn_status clattn_ssm_state_reset(clattn_ssm_state *state, cl_uint num_wait,
                                     const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state reset: state is NULL");
    clattn_context *ctx = state->ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_float zero = 0.0f;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm state reset: num_wait > 0 but wait is NULL");
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, state->x, &zero, sizeof zero, 0, state->bytes,
                                  num_wait, wait, event));
cleanup:
    return status;
}

clattn_status clattn_ssm_state_read(clattn_ssm_state *state, float *x)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state read: state is NULL");
    clattn_context *ctx = state->ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(x, CLATTN_NULL_POINTER, "ssm state read: x is NULL");
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, state->x, CL_TRUE, 0, state->bytes, x, 0, NULL,
                                  NULL));
cleanup:
    return status;
}

clattn_status clattn_ssm_state_write(clattn_ssm_state *state, const float *x)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm state write: state is NULL");
    clattn_context *ctx = state->ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(x, CLATTN_NULL_POINTER, "ssm state write: x is NULL");
    for (size_t i = 0; i < state->bytes / sizeof(float); i++)
        CLATTN_CHECK(isfinite(x[i]), CLATTN_INVALID_ARGUMENT,
                     "ssm state write: element %zu is not finite", i);
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, state->x, CL_TRUE, 0, state->bytes, x, 0, NULL,
                                   NULL));
cleanup:
    return status;
}

clattn_status clattn_ssm_step(clattn_ssm_state *state, const clattn_tensor *u,
                              const clattn_tensor *y, cl_uint num_wait, const cl_event *wait,
                              cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "ssm step: state is NULL");
    clattn_ssm *ssm = state->ssm;
    clattn_context *ctx = ssm->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    CLATTN_CHECK(u && y, CLATTN_NULL_POINTER, "ssm step: u and y are required");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "ssm step: num_wait > 0 but wait is NULL");
    size_t shape[4] = {state->batch, ssm->heads, 1, 1};
    CLATTN_FORWARD(clattn__tensor_check(ctx, u, "u", shape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, y, "y", shape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, y, "y"));
    CLATTN_FORWARD(clattn__check_no_alias(ctx, y, "y", u, "u", sizeof(float)));
    CLATTN_FORWARD(get_kernel(ctx, "clattn_ssm_step", &kern));
    cl_uint uh = (cl_uint)ssm->heads, un = (cl_uint)ssm->n;
    cl_mem d = ssm->d ? ssm->d : ssm->wct;
    cl_int has_d = ssm->d != NULL;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, state->x);
    CLATTN_ARG(&a, ssm->wct);
    CLATTN_ARG(&a, d);
    CLATTN_ARG(&a, has_d);
    clattn__arg_view(&a, u);
    clattn__arg_view(&a, y);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, un);
    CLATTN_CL(a.err);
    size_t gl[1] = {state->batch * ssm->heads};
    CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, kern, 1, NULL, gl, NULL, num_wait, wait, event));
cleanup:
    if (kern)
        clReleaseKernel(kern);
    return status;
}
