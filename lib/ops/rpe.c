/* Host side of kernelized attention with relative positional encoding (kernels_cl/rpe.cl):
 * validate, compute the features (lib/ops/linear_features.h, every map of the linear family), the
 * per-head bias maximum and exp(b - max), then either the direct sums or the FFT path (circulant
 * embedding, clFFT through lib/core/fft.h, spectra multiplied, contracted with phi(q)). Every
 * command goes on the context's queue in one chain: the first honours the caller's wait list, the
 * last returns the caller's event. */
#include "../blocks/fft.h"
#include "../core/internal.h"
#include "linear_features.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RPE_MAX_D CLATTN__LIN_MAX_D /* head dims, as linear attention (RPE_MAX_DV in rpe.cl) */
#define RPE_PARTS 256                 /* partial maxima per head (RPE_PARTS in rpe.cl) */
#define RPE_OPTIONS "-DRPE_MAX_DV=256 -DRPE_PARTS=256"
/* AUTO's choice by a cost model: the direct sums cost ~ N^2 (M + Dv) (half that when causal), the
 * FFT path ~ N log2(2N) M (Dv + 1), so FFT is taken when
 *   N (M + Dv) (1/2 when causal) >= RPE_FFT_CROSSOVER M (Dv + 1) log2(2N).
 * The constant is the measured crossover on PoCL (2-vCPU EPYC shared with other jobs, `clattn
 * bench rpe`, B1 H1, non-causal): equal times near N = 3000 for M = Dv = 16 (C = 28) and
 * N = 8800 for M = Dv = 64 (C = 19); causal, M = Dv = 16, between 4k and 16k as predicted. */
#define RPE_FFT_CROSSOVER 24.0
/* Device scratch for the FFT signals of one group (real rows + their spectra); the environment
 * variable CLATTN_RPE_FFT_SCRATCH (bytes) overrides it, which lets tests split small problems into
 * many groups. */
#define RPE_FFT_SCRATCH ((size_t)128 << 20)

void clattn_rpe_desc_init(clattn_rpe_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    clattn_linear_desc_init(&desc->features);
    desc->algorithm = CLATTN_RPE_AUTO;
}

/* Copies the caller's desc honouring struct_size, checks it and resolves eps 0 to the default. */
static clattn_status read_desc(clattn_context *ctx, const clattn_rpe_desc *in, clattn_rpe_desc *out)
{
    clattn_rpe_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_rpe_desc, features) + sizeof(clattn_linear_desc) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: struct_size %zu is not valid (call clattn_rpe_desc_init "
                            "first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    const clattn_linear_desc *f = &out->features;
    if (f->struct_size != sizeof(clattn_linear_desc))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: features.struct_size %zu is not valid (call "
                            "clattn_rpe_desc_init first)",
                            f->struct_size);
    if (f->feature_map == CLATTN_FEATURE_IDENTITY)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: the identity feature map is refused (weights must be "
                            "non-negative: use ELU, RELU or FAVOR)");
    if (f->feature_map != CLATTN_FEATURE_ELU && f->feature_map != CLATTN_FEATURE_RELU &&
        f->feature_map != CLATTN_FEATURE_FAVOR)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "rpe desc: unknown feature map %d",
                            (int)f->feature_map);
    if (f->feature_map == CLATTN_FEATURE_FAVOR &&
        (f->features == 0 || f->features > CLATTN__LIN_MAX_M))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: FAVOR features %zu must be in [1, %d]", f->features,
                            CLATTN__LIN_MAX_M);
    if (f->scaling != CLATTN_FAVOR_GAUSSIAN_NORMS && f->scaling != CLATTN_FAVOR_SQRT_D)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "rpe desc: unknown FAVOR scaling %d",
                            (int)f->scaling);
    if (f->momentum != CLATTN_MOMENTUM_NONE)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: momentum is not defined for RPE attention (set "
                            "features.momentum to CLATTN_MOMENTUM_NONE)");
    if (!isfinite(f->eps) || f->eps < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: eps %g must be finite and >= 0", (double)f->eps);
    if (out->features.eps == 0.0f)
        out->features.eps = CLATTN_LINEAR_DEFAULT_EPS;
    if (out->algorithm != CLATTN_RPE_AUTO && out->algorithm != CLATTN_RPE_FFT &&
        out->algorithm != CLATTN_RPE_DIRECT)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "rpe desc: unknown algorithm %d",
                            (int)out->algorithm);
    return CLATTN_SUCCESS;
}

/* q, k [B, H, N, D] and v [B, H, N, Dv] among themselves and against the kernels' limits. */
static clattn_status check_dims(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                const size_t v[4])
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "rpe: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    if (q[3] > RPE_MAX_D || v[3] > RPE_MAX_D)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "rpe: D %zu or Dv %zu > %d", q[3], v[3],
                            RPE_MAX_D);
    if (memcmp(q, k, 4 * sizeof q[0]) != 0 || q[0] != v[0] || q[1] != v[1] || q[2] != v[2])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "rpe: q [%zu, %zu, %zu, %zu], k [%zu, %zu, %zu, %zu] and v [%zu, %zu, "
                            "%zu, %zu] must be [B, H, N, D], [B, H, N, D], [B, H, N, Dv]",
                            q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                            v[3]);
    const size_t lim = (size_t)1 << 30;
    if (q[2] >= lim || q[0] > (lim - 1) / q[1])
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "rpe: N %zu or B*H beyond 2^30", q[2]);
    return CLATTN_SUCCESS;
}

/* Views fit their buffers, the bias is [1, H, 1, 2N - 1], out is one-to-one and overlaps no
 * input. */
static clattn_status check_views(clattn_context *ctx, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *bias, const clattn_tensor *out)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t n = q->shape[2];
    size_t bshape[4] = {1, q->shape[1], 1, 2 * n - 1};
    size_t oshape[4] = {q->shape[0], q->shape[1], n, v->shape[3]};
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, bias, "bias [1, H, 1, 2N-1]", bshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", oshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, out, "out"));
    const clattn_tensor *ins[] = {q, k, v, bias};
    const char *names[] = {"q", "k", "v", "bias"};
    for (int i = 0; i < 4; i++)
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", ins[i], names[i], sizeof(float)));
cleanup:
    return status;
}

/* ---- a chain of commands: lib/core/seq.c ---- */

typedef clattn__seq seq;

/* ---- one call ---- */

typedef struct rpe_job {
    clattn_rpe_desc desc;
    const clattn_tensor *q, *k, *v, *bias, *out;
    size_t B, H, N, D, M, MS, Dv; /* M features per row, in rows of MS floats */
    cl_mem w;                     /* FAVOR's projection (clattn__linear_projection), else NULL */
    /* kernels, created once per call */
    cl_kernel parts, bmax, exp_bias, direct, signals, cmul, contract, normalize;
} rpe_job;

static void job_release(rpe_job *j)
{
    cl_kernel ks[] = {j->parts,   j->bmax, j->exp_bias, j->direct,
                      j->signals, j->cmul, j->contract, j->normalize};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (ks[i])
            clReleaseKernel(ks[i]);
    if (j->w)
        clReleaseMemObject(j->w);
}

static clattn_status job_kernels(clattn_context *ctx, rpe_job *j, bool fft)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_program prog = NULL;
    CLATTN_FORWARD(clattn__program_get(ctx, "rpe.cl", RPE_OPTIONS, &prog));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_bias_parts", &j->parts));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_bias_max", &j->bmax));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_exp_bias", &j->exp_bias));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_direct", &j->direct));
    if (!fft)
        return CLATTN_SUCCESS;
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_signals", &j->signals));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_cmul", &j->cmul));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_contract", &j->contract));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_rpe_normalize", &j->normalize));
cleanup:
    return status;
}

/* phi(x) into f, [BH][N][MS], through the linear family's feature code (every map, FAVOR
 * included). FAVOR's stabilisers: queries per row, keys one per (b, h) (stab 1); both are constant
 * factors of a row's weights and cancel in the quotient, up to eps. */
static clattn_status launch_features(seq *s, rpe_job *j, const clattn_tensor *x, int stab,
                                     cl_mem f)
{
    clattn_status status;
    clattn__seq_next(s, false, NULL);
    status = clattn__linear_features(s->ctx, &j->desc.features, j->w, x, stab, f, NULL, s->nw,
                                     s->w, s->evp);
    if (status == CLATTN_SUCCESS)
        clattn__seq_done(s);
    return status;
}

/* bmax[h]: the largest bias entry head h uses (NaN when one is not finite), through RPE_PARTS
 * partial maxima per head. */
static clattn_status launch_bias_max(seq *s, rpe_job *j, cl_mem part, cl_mem bmax)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint used = (cl_uint)(j->desc.causal ? j->N : 2 * j->N - 1);
    clattn__args a = {j->parts, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->bias);
    CLATTN_ARG(&a, used);
    CLATTN_ARG(&a, part);
    CLATTN_CL(a.err);
    size_t gp[2] = {RPE_PARTS, j->H};
    CLATTN_FORWARD(clattn__seq_kernel(s, j->parts, 2, gp, false, NULL));
    clattn__args b = {j->bmax, 0, CL_SUCCESS};
    CLATTN_ARG(&b, part);
    CLATTN_ARG(&b, bmax);
    CLATTN_CL(b.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, j->bmax, 1, &j->H, false, NULL));
cleanup:
    return status;
}

/* exp(b - bmax) per head into `out`: [H][2N - 1] (len 0) or the circulant column [H][len]. */
static clattn_status launch_exp_bias(seq *s, rpe_job *j, cl_mem bmax, size_t len, cl_mem out)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint n = (cl_uint)j->N, ulen = (cl_uint)len;
    cl_int causal = j->desc.causal != 0;
    clattn__args b = {j->exp_bias, 0, CL_SUCCESS};
    clattn__arg_view(&b, j->bias);
    CLATTN_ARG(&b, n);
    CLATTN_ARG(&b, causal);
    CLATTN_ARG(&b, bmax);
    CLATTN_ARG(&b, ulen);
    CLATTN_ARG(&b, out);
    CLATTN_CL(b.err);
    size_t ge[2] = {len ? len : 2 * j->N - 1, j->H};
    CLATTN_FORWARD(clattn__seq_kernel(s, j->exp_bias, 2, ge, false, NULL));
cleanup:
    return status;
}

/* Rows [0, rows) by the direct sums; the last command. */
static clattn_status run_direct(seq *s, rpe_job *j, cl_mem fq, cl_mem fk, cl_mem bmax,
                                size_t rows, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_mem c = NULL;
    size_t bytes;
    CLATTN_CHECK(clattn__mul_ok(j->H * (2 * j->N - 1), sizeof(float), &bytes),
                 CLATTN_SIZE_OVERFLOW, "rpe: bias scratch size overflows");
    CLATTN_FORWARD(clattn__buffer_create(ctx, bytes, "rpe exp(bias)", &c));
    CLATTN_FORWARD(launch_exp_bias(s, j, bmax, 0, c));
    cl_uint heads = (cl_uint)j->H, n = (cl_uint)j->N, m = (cl_uint)j->M, dv = (cl_uint)j->Dv;
    cl_uint mst = (cl_uint)j->MS;
    cl_int causal = j->desc.causal != 0;
    cl_float eps = j->desc.features.eps;
    clattn__args a = {j->direct, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fq);
    CLATTN_ARG(&a, fk);
    CLATTN_ARG(&a, mst);
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, c);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, m);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, causal);
    CLATTN_ARG(&a, eps);
    CLATTN_CL(a.err);
    size_t gl[2] = {rows, j->B * j->H};
    CLATTN_FORWARD(clattn__seq_kernel(s, j->direct, 2, gl, true, event));
cleanup:
    if (c)
        clReleaseMemObject(c);
    return status;
}

/* The FFT path's sizes: length L, Hermitian bins, and (bh, m) pairs per group so that the group's
 * real rows and spectra stay within RPE_FFT_SCRATCH and the device's max allocation. Every group
 * has the same number of signals (the last one padded with zero rows) so that clFFT bakes one plan
 * per direction. */
typedef struct fft_sizes {
    size_t len, bins, per_group, groups, signals;
} fft_sizes;

static clattn_status fft_plan_sizes(clattn_context *ctx, const rpe_job *j, fft_sizes *z)
{
    z->len = clattn__fft_good_length(2 * j->N - 1);
    if (z->len < 2)
        z->len = 2; /* N = 1: clFFT needs a length of at least 2 */
    z->bins = z->len / 2 + 1;
    size_t per_signal = z->len * sizeof(float) + z->bins * 2 * sizeof(float);
    size_t cols = j->Dv + 1, total = j->B * j->H * j->M;
    size_t budget = RPE_FFT_SCRATCH;
    const char *env = getenv("CLATTN_RPE_FFT_SCRATCH");
    if (env && *env) {
        char *end = NULL;
        unsigned long long b = strtoull(env, &end, 10);
        if (end && *end == '\0' && b > 0)
            budget = (size_t)b;
    }
    if (ctx->info.max_alloc_size && ctx->info.max_alloc_size / 2 < budget)
        budget = (size_t)(ctx->info.max_alloc_size / 2);
    size_t cap = budget / (per_signal * cols);
    if (cap == 0)
        cap = 1; /* one (bh, m) pair at least; buffer_create reports if even that is too big */
    z->groups = clattn__div_up(total, cap);
    z->per_group = clattn__div_up(total, z->groups);
    z->signals = z->per_group * cols;
    return CLATTN_SUCCESS;
}

/* Rows [head, N) by FFT, then rows [0, head) by the direct sums (see head_rows). */
static clattn_status run_fft(seq *s, rpe_job *j, cl_mem fq, cl_mem fk, cl_mem bmax,
                             size_t head, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_mem g = NULL, gf = NULL, x = NULL, xf = NULL, acc = NULL;
    fft_sizes z;
    CLATTN_FORWARD(fft_plan_sizes(ctx, j, &z));
    size_t bh_all = j->B * j->H, total = bh_all * j->M, cols = j->Dv + 1;
    size_t gb, gfb, xb, xfb, ab;
    CLATTN_CHECK(clattn__mul_ok(j->H * z.len, sizeof(float), &gb) &&
                     clattn__mul_ok(j->H * z.bins, 2 * sizeof(float), &gfb) &&
                     clattn__mul_ok(z.signals * z.len, sizeof(float), &xb) &&
                     clattn__mul_ok(z.signals * z.bins, 2 * sizeof(float), &xfb) &&
                     clattn__mul_ok(bh_all * j->N * cols, sizeof(float), &ab),
                 CLATTN_SIZE_OVERFLOW, "rpe: FFT scratch size overflows");
    CLATTN_FORWARD(clattn__buffer_create(ctx, gb, "rpe circulant kernel", &g));
    CLATTN_FORWARD(clattn__buffer_create(ctx, gfb, "rpe kernel spectrum", &gf));
    CLATTN_FORWARD(clattn__buffer_create(ctx, xb, "rpe FFT signals", &x));
    CLATTN_FORWARD(clattn__buffer_create(ctx, xfb, "rpe FFT spectra", &xf));
    CLATTN_FORWARD(clattn__buffer_create(ctx, ab, "rpe numerators", &acc));
    CLATTN_FORWARD(launch_exp_bias(s, j, bmax, z.len, g));
    clattn__seq_next(s, false, NULL);
    CLATTN_FORWARD(clattn__fft_r2c(ctx, z.len, j->H, g, 0, z.len, gf, 0, z.bins, s->nw, s->w,
                                   s->evp));
    clattn__seq_done(s);

    cl_uint heads = (cl_uint)j->H, n = (cl_uint)j->N, m = (cl_uint)j->M, dv = (cl_uint)j->Dv;
    cl_uint len = (cl_uint)z.len, bins = (cl_uint)z.bins, mst = (cl_uint)j->MS;
    for (size_t grp = 0; grp < z.groups; grp++) {
        size_t bm0 = grp * z.per_group, bm1 = bm0 + z.per_group;
        if (bm1 > total)
            bm1 = total;
        cl_uint ubm0 = (cl_uint)bm0, ubm1 = (cl_uint)bm1, ubh0 = (cl_uint)(bm0 / j->M);
        size_t nbh = (bm1 - 1) / j->M - bm0 / j->M + 1;
        /* Rows past bm1 (padding of the last group) are zeros: their features index stays in
         * range because the signals kernel only reads for bm < total. */
        clattn__args a = {j->signals, 0, CL_SUCCESS};
        CLATTN_ARG(&a, fk);
        CLATTN_ARG(&a, mst);
        clattn__arg_view(&a, j->v);
        CLATTN_ARG(&a, heads);
        CLATTN_ARG(&a, n);
        CLATTN_ARG(&a, m);
        CLATTN_ARG(&a, dv);
        CLATTN_ARG(&a, ubm0);
        CLATTN_ARG(&a, ubm1);
        CLATTN_ARG(&a, len);
        CLATTN_ARG(&a, x);
        CLATTN_CL(a.err);
        size_t gs[2] = {z.len, z.signals};
        CLATTN_FORWARD(clattn__seq_kernel(s, j->signals, 2, gs, false, NULL));
        clattn__seq_next(s, false, NULL);
        CLATTN_FORWARD(clattn__fft_r2c(ctx, z.len, z.signals, x, 0, z.len, xf, 0, z.bins, s->nw,
                                       s->w, s->evp));
        clattn__seq_done(s);
        clattn__args b = {j->cmul, 0, CL_SUCCESS};
        CLATTN_ARG(&b, xf);
        CLATTN_ARG(&b, gf);
        CLATTN_ARG(&b, bins);
        CLATTN_ARG(&b, heads);
        CLATTN_ARG(&b, m);
        CLATTN_ARG(&b, dv);
        CLATTN_ARG(&b, ubm0);
        CLATTN_CL(b.err);
        size_t gc[2] = {z.bins, (bm1 - bm0) * cols};
        CLATTN_FORWARD(clattn__seq_kernel(s, j->cmul, 2, gc, false, NULL));
        clattn__seq_next(s, false, NULL);
        CLATTN_FORWARD(clattn__fft_c2r(ctx, z.len, z.signals, xf, 0, z.bins, x, 0, z.len, s->nw,
                                       s->w, s->evp));
        clattn__seq_done(s);
        clattn__args c = {j->contract, 0, CL_SUCCESS};
        CLATTN_ARG(&c, fq);
        CLATTN_ARG(&c, mst);
        CLATTN_ARG(&c, x);
        CLATTN_ARG(&c, n);
        CLATTN_ARG(&c, m);
        CLATTN_ARG(&c, dv);
        CLATTN_ARG(&c, ubm0);
        CLATTN_ARG(&c, ubm1);
        CLATTN_ARG(&c, ubh0);
        CLATTN_ARG(&c, len);
        CLATTN_ARG(&c, acc);
        CLATTN_CL(c.err);
        size_t gk[3] = {j->N, cols, nbh};
        CLATTN_FORWARD(clattn__seq_kernel(s, j->contract, 3, gk, false, NULL));
    }
    cl_float eps = j->desc.features.eps;
    cl_uint row0 = (cl_uint)head;
    clattn__args a = {j->normalize, 0, CL_SUCCESS};
    CLATTN_ARG(&a, acc);
    CLATTN_ARG(&a, bmax);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, row0);
    CLATTN_ARG(&a, eps);
    CLATTN_CL(a.err);
    size_t gn[3] = {j->Dv, j->N - head, bh_all};
    CLATTN_FORWARD(clattn__seq_kernel(s, j->normalize, 3, gn, head == 0, event));
    if (head > 0)
        CLATTN_FORWARD(run_direct(s, j, fq, fk, bmax, head, event));
cleanup:
    cl_mem bufs[] = {g, gf, x, xf, acc};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}

/* The causal FFT path's error is absolute, about 1.4e-7 * N times a row's typical weight (measured
 * on PoCL with clFFT), while row i sums only i + 1 weights: early rows would lose accuracy
 * (2e-4 at row 0 for N = 1500). The first ceil(N / RPE_CAUSAL_HEAD_DIV) rows are therefore summed
 * directly (O(N^2 / RPE_CAUSAL_HEAD_DIV^2), negligible), which bounds the relative error of the
 * others near 1.4e-7 * RPE_CAUSAL_HEAD_DIV. */
#define RPE_CAUSAL_HEAD_DIV 64

static size_t head_rows(const rpe_job *j)
{
    return j->desc.causal ? clattn__div_up(j->N, RPE_CAUSAL_HEAD_DIV) : 0;
}

static bool use_fft(const rpe_job *j)
{
    if (head_rows(j) >= j->N)
        return false; /* N = 1 causal: the head rows are every row */
    if (j->desc.algorithm == CLATTN_RPE_FFT)
        return true;
    if (j->desc.algorithm == CLATTN_RPE_DIRECT)
        return false;
    double n = (double)j->N, m = (double)j->M, dv = (double)j->Dv;
    double direct = n * (m + dv) * (j->desc.causal ? 0.5 : 1.0);
    return direct >= RPE_FFT_CROSSOVER * m * (dv + 1.0) * log2(2.0 * n);
}

/* Validated job → features, bias maximum, then one of the two paths. */
static clattn_status run_job(clattn_context *ctx, rpe_job *j, cl_uint num_wait,
                             const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem fq = NULL, fk = NULL, part = NULL, bmax = NULL;
    seq s;
    memset(&s, 0, sizeof s);
    bool fft = use_fft(j);
    size_t fbytes;
    CLATTN_CHECK(clattn__mul_ok(j->B * j->H * j->N, j->MS * sizeof(float), &fbytes),
                 CLATTN_SIZE_OVERFLOW, "rpe: feature scratch size overflows");
    CLATTN_FORWARD(job_kernels(ctx, j, fft));
    CLATTN_FORWARD(clattn__buffer_create(ctx, fbytes, "rpe query features", &fq));
    CLATTN_FORWARD(clattn__buffer_create(ctx, fbytes, "rpe key features", &fk));
    CLATTN_FORWARD(clattn__buffer_create(ctx, j->H * RPE_PARTS * sizeof(float),
                                         "rpe partial bias maxima", &part));
    CLATTN_FORWARD(clattn__buffer_create(ctx, j->H * sizeof(float), "rpe bias maxima", &bmax));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    CLATTN_FORWARD(launch_features(&s, j, j->q, 0, fq));
    CLATTN_FORWARD(launch_features(&s, j, j->k, 1, fk));
    CLATTN_FORWARD(launch_bias_max(&s, j, part, bmax));
    if (fft)
        CLATTN_FORWARD(run_fft(&s, j, fq, fk, bmax, head_rows(j), event));
    else
        CLATTN_FORWARD(run_direct(&s, j, fq, fk, bmax, j->N, event));
cleanup:
    clattn__seq_end(&s);
    cl_mem bufs[] = {fq, fk, part, bmax};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}

clattn_status clattn_rpe_enqueue(clattn_context *ctx, const clattn_rpe_desc *desc,
                                 const clattn_tensor *q, const clattn_tensor *k,
                                 const clattn_tensor *v, const clattn_tensor *bias,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    rpe_job j;
    memset(&j, 0, sizeof j);
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "rpe enqueue: ctx is NULL");
    CLATTN_CHECK(q && k && v && bias && out, CLATTN_NULL_POINTER,
                 "rpe enqueue: q, k, v, bias and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "rpe enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(read_desc(ctx, desc, &j.desc));
    CLATTN_FORWARD(check_dims(ctx, q->shape, k->shape, v->shape));
    CLATTN_FORWARD(check_views(ctx, q, k, v, bias, out));
    j.q = q, j.k = k, j.v = v, j.bias = bias, j.out = out;
    j.B = q->shape[0], j.H = q->shape[1], j.N = q->shape[2], j.D = q->shape[3];
    j.M = clattn__linear_feature_dim(&j.desc.features, j.D);
    j.MS = clattn__linear_feature_stride(&j.desc.features, j.D);
    j.Dv = v->shape[3];
    CLATTN_CHECK(j.B * j.H <= ((size_t)1 << 31) / (j.MS * (j.Dv + 1)), CLATTN_INVALID_SHAPE,
                 "rpe: B*H %zu times %zu features and %zu value columns beyond 2^31", j.B * j.H,
                 j.M, j.Dv + 1);
    /* FAVOR's projection (validated against D here, before anything is enqueued). */
    CLATTN_FORWARD(clattn__linear_projection(ctx, &j.desc.features, j.D, &j.w));
    status = run_job(ctx, &j, num_wait, wait, event);
cleanup:
    job_release(&j);
    return status;
}

clattn_status clattn_rpe_host(clattn_context *ctx, const clattn_rpe_desc *desc,
                              const size_t q_shape[4], const size_t v_shape[4], const float *q,
                              const float *k, const float *v, const float *bias, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem bq = NULL, bk = NULL, bv = NULL, bb = NULL, bo = NULL;
    clattn_rpe_desc d;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "rpe host: ctx is NULL");
    CLATTN_CHECK(q_shape && v_shape && q && k && v && bias && out, CLATTN_NULL_POINTER,
                 "rpe host: shapes, q, k, v, bias and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_dims(ctx, q_shape, q_shape, v_shape));
    size_t B = q_shape[0], H = q_shape[1], N = q_shape[2];
    size_t nq, nv, nb = H * (2 * N - 1);
    CLATTN_CHECK(clattn__mul_ok(B * H * N, q_shape[3] * sizeof(float), &nq) &&
                     clattn__mul_ok(B * H * N, v_shape[3] * sizeof(float), &nv),
                 CLATTN_SIZE_OVERFLOW, "rpe host: sizes overflow");
    for (size_t x = 0; x < nb; x++)
        CLATTN_CHECK(isfinite(bias[x]), CLATTN_INVALID_ARGUMENT,
                     "rpe host: bias[%zu][%zu] (offset r = %td) is not finite", x / (2 * N - 1),
                     x % (2 * N - 1), (ptrdiff_t)(x % (2 * N - 1)) - (ptrdiff_t)(N - 1));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, q, nq, &bq));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, k, nq, &bk));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, v, nv, &bv));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, bias, nb * sizeof(float), &bb));
    CLATTN_FORWARD(clattn__buffer_create(ctx, nv, "output", &bo));
    clattn_tensor tq = clattn_tensor_make(bq, B, H, N, q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, B, H, N, q_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, B, H, N, v_shape[3]);
    clattn_tensor tb = clattn_tensor_make(bb, 1, H, 1, 2 * N - 1);
    clattn_tensor to = clattn_tensor_make(bo, B, H, N, v_shape[3]);
    CLATTN_FORWARD(clattn_rpe_enqueue(ctx, &d, &tq, &tk, &tv, &tb, &to, 0, NULL, NULL));
    /* Blocking read after the kernels (a barrier also orders an out-of-order queue). */
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, nv, out, 0, NULL, NULL));
cleanup:
    if (ctx)
        clFinish(ctx->queue); /* the buffers below may still be used by failed-midway commands */
    cl_mem bufs[] = {bq, bk, bv, bb, bo};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}
