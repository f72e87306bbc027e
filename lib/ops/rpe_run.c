/* The command sequence of one RPE enqueue (lib/ops/rpe.h): the features of q and k (linear.cl's
 * kernels, created by the plan), the per-head bias maximum and exp(b - max), then the direct sums
 * or the FFT path (circulant embedding, clFFT through lib/blocks/fft.h, spectra multiplied by each
 * query head's bias spectrum, contracted with phi(q)). Every kernel and buffer is the plan's; the
 * launch sizes are the scheduler's (plan->launch). */
#include "rpe.h"

#include "../blocks/fft.h"

#include <math.h>

typedef clattn__seq seq;

/* ---- features ---- */

/* phi(x) into f [bh][N][MS] for x [B, heads, N, D], through the plan's baked feature block. keys:
 * FAVOR's keys share one stabiliser per (b, h) (stab 1: Performer's non-causal one, kept in the
 * causal form since the FFT has no running maximum; head scales into kmax); queries are
 * stabilised per row (their log-scales into lq). Both cancel in the quotient; the kernels add
 * eps in the formula's scale from lq and kmax. */
static clattn_status launch_features(seq *s, clattn__rpe_plan *p, const clattn_tensor *x,
                                     int keys, cl_mem f)
{
    /* Half q / k: staged into float32 scratch (dense [B, H, N, D]) for the feature kernels, which
     * read float32 (lib/ops/rpe.c's bake_kernels says why that costs little). */
    cl_kernel cast = keys ? p->cast_k : p->cast_q;
    clattn_tensor staged;
    if (cast) {
        clattn_status status = clattn__cast_enqueue(s, cast, x, p->xs, 0, false, false, NULL);
        if (status != CLATTN_SUCCESS)
            return status;
        staged = clattn_tensor_make(p->xs, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
        x = &staged;
    }
    if (!p->favor)
        return clattn__features_enqueue(&p->feat, s, x, 0, f, NULL, NULL, false, NULL);
    if (keys)
        return clattn__features_enqueue(&p->feat, s, x, 1, f, p->kscale, p->kmax, false, NULL);
    return clattn__features_enqueue(&p->feat, s, x, 0, f, p->lq, NULL, false, NULL);
}

/* log(eps) for the kernels, which add eps in the formula's scale (clattn_rpe_eps); -inf for eps
 * 0 (no eps). */
static cl_float log_eps(const clattn__rpe_plan *p)
{
    float eps = p->desc.linear.eps;
    return eps > 0.0f ? (cl_float)log((double)eps) : -INFINITY;
}

/* The eps arguments of clattn_rpe_direct and clattn_rpe_normalize: log_eps, scaled, lq, lk
 * (FAVOR's log-scales; for the other maps any valid buffer, unread). */
static void arg_eps(clattn__args *a, const clattn__rpe_plan *p)
{
    cl_float le = log_eps(p);
    cl_int scaled = p->favor;
    cl_mem lq = p->favor ? p->lq : p->bmaxb, lk = p->favor ? p->kmax : p->bmaxb;
    CLATTN_ARG(a, le);
    CLATTN_ARG(a, scaled);
    CLATTN_ARG(a, lq);
    CLATTN_ARG(a, lk);
}

/* ---- bias ---- */

/* bmax[h]: the largest bias entry query head h uses (NaN when one is not finite), through
 * launch.parts partial maxima per head. */
static clattn_status launch_bias_max(seq *s, clattn__rpe_plan *p, const clattn_tensor *bias)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint used = (cl_uint)(p->desc.causal ? p->N : 2 * p->N - 1);
    clattn__args a = {p->parts, 0, CL_SUCCESS};
    clattn__arg_view(&a, bias);
    CLATTN_ARG(&a, used);
    CLATTN_ARG(&a, p->part);
    CLATTN_CL(a.err);
    size_t gp[2] = {p->launch.parts, p->Hq};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->parts, 2, gp, false, NULL));
    clattn__args b = {p->bmax, 0, CL_SUCCESS};
    CLATTN_ARG(&b, p->part);
    CLATTN_ARG(&b, p->bmaxb);
    CLATTN_CL(b.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, p->bmax, 1, &p->Hq, false, NULL));
cleanup:
    return status;
}

/* exp(b - bmax) per query head into `out`: [Hq][2N - 1] (len 0) or the circulant column
 * [Hq][len]. */
static clattn_status launch_exp_bias(seq *s, clattn__rpe_plan *p, const clattn_tensor *bias,
                                     size_t len, cl_mem out)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint n = (cl_uint)p->N, ulen = (cl_uint)len;
    cl_int causal = p->desc.causal != 0;
    clattn__args b = {p->exp_bias, 0, CL_SUCCESS};
    clattn__arg_view(&b, bias);
    CLATTN_ARG(&b, n);
    CLATTN_ARG(&b, causal);
    CLATTN_ARG(&b, p->bmaxb);
    CLATTN_ARG(&b, ulen);
    CLATTN_ARG(&b, out);
    CLATTN_CL(b.err);
    size_t ge[2] = {len ? len : 2 * p->N - 1, p->Hq};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->exp_bias, 2, ge, false, NULL));
cleanup:
    return status;
}

/* ---- the two paths ---- */

/* Rows [0, rows) by the direct sums; the last command. */
static clattn_status run_direct(seq *s, clattn__rpe_plan *p, const clattn_tensor *v,
                                const clattn_tensor *bias, const clattn_tensor *out, size_t rows,
                                cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_FORWARD(launch_exp_bias(s, p, bias, 0, p->c));
    cl_uint heads = (cl_uint)p->Hq, group = (cl_uint)p->G, n = (cl_uint)p->N;
    cl_uint m = (cl_uint)p->M, dv = (cl_uint)p->Dv, mst = (cl_uint)p->MS;
    cl_int causal = p->desc.causal != 0;
    clattn__args a = {p->direct, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->fq);
    CLATTN_ARG(&a, p->fk);
    CLATTN_ARG(&a, mst);
    clattn__arg_view(&a, v);
    CLATTN_ARG(&a, p->c);
    clattn__arg_view(&a, out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, group);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, m);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, causal);
    arg_eps(&a, p);
    CLATTN_ARG(&a, p->bmaxb);
    const clattn__rpe_launch *L = &p->launch;
    if (L->direct_tiled) { /* clattn_rpe_direct_tiled: work-groups of tile_rows rows */
        cl_uint urows = (cl_uint)rows;
        CLATTN_ARG(&a, urows);
        CLATTN_CL(a.err);
        size_t gt[3] = {(rows + L->tile_rows - 1) / L->tile_rows * L->tile_local,
                        L->tile_dv_groups, p->B * p->Hq};
        size_t lt[3] = {L->tile_local, 1, 1};
        CLATTN_FORWARD(clattn__seq_kernel_local(s, p->direct, 3, gt, lt, true, event));
        goto cleanup;
    }
    CLATTN_CL(a.err);
    size_t gl[2] = {rows, p->B * p->Hq};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->direct, 2, gl, true, event));
cleanup:
    return status;
}

/* One FFT group: triples [bm0, bm1) of (batch, key head, feature), their signals transformed
 * once, then per query head of the key head: multiplied by its bias spectrum, transformed back
 * and contracted with its phi(q) into the numerators. */
static clattn_status run_fft_group(seq *s, clattn__rpe_plan *p, const clattn_tensor *v,
                                   size_t bm0, size_t bm1)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__rpe_launch *L = &p->launch;
    cl_uint kheads = (cl_uint)p->Hk, n = (cl_uint)p->N, m = (cl_uint)p->M, dv = (cl_uint)p->Dv;
    cl_uint len = (cl_uint)L->fft_len, bins = (cl_uint)L->fft_bins, mst = (cl_uint)p->MS;
    cl_uint group = (cl_uint)p->G;
    cl_uint ubm0 = (cl_uint)bm0, ubm1 = (cl_uint)bm1, ubh0 = (cl_uint)(bm0 / p->M);
    size_t nbh = (bm1 - 1) / p->M - bm0 / p->M + 1, cols = p->Dv + 1;
    cl_mem yf = L->spectra_shared ? p->yf : p->xf;
    /* Rows past bm1 (padding of the last group) are zeros: the signals kernel only reads for
     * bm < bm1, and their spectra and products stay zero. */
    clattn__args a = {p->signals, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->fk);
    CLATTN_ARG(&a, mst);
    clattn__arg_view(&a, v);
    CLATTN_ARG(&a, kheads);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, m);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, ubm0);
    CLATTN_ARG(&a, ubm1);
    CLATTN_ARG(&a, len);
    CLATTN_ARG(&a, p->x);
    CLATTN_CL(a.err);
    size_t gs[2] = {L->fft_len, L->signals};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->signals, 2, gs, false, NULL));
    clattn__seq_next(s, false, NULL);
    CLATTN_FORWARD(clattn__fft_r2c(ctx, L->fft_len, L->signals, p->x, 0, L->fft_len, p->xf, 0,
                                   L->fft_bins, s->nw, s->w, s->evp));
    clattn__seq_done(s);
    for (cl_uint sub = 0; sub < group; sub++) {
        clattn__args b = {p->cmul, 0, CL_SUCCESS};
        CLATTN_ARG(&b, p->xf);
        CLATTN_ARG(&b, yf);
        CLATTN_ARG(&b, p->gf);
        CLATTN_ARG(&b, bins);
        CLATTN_ARG(&b, kheads);
        CLATTN_ARG(&b, m);
        CLATTN_ARG(&b, dv);
        CLATTN_ARG(&b, ubm0);
        CLATTN_ARG(&b, group);
        CLATTN_ARG(&b, sub);
        CLATTN_CL(b.err);
        size_t gc[2] = {L->fft_bins, L->signals}; /* padding rows too: 0 x G stays 0 */
        CLATTN_FORWARD(clattn__seq_kernel(s, p->cmul, 2, gc, false, NULL));
        clattn__seq_next(s, false, NULL);
        CLATTN_FORWARD(clattn__fft_c2r(ctx, L->fft_len, L->signals, yf, 0, L->fft_bins, p->x, 0,
                                       L->fft_len, s->nw, s->w, s->evp));
        clattn__seq_done(s);
        clattn__args c = {p->contract, 0, CL_SUCCESS};
        CLATTN_ARG(&c, p->fq);
        CLATTN_ARG(&c, mst);
        CLATTN_ARG(&c, p->x);
        CLATTN_ARG(&c, n);
        CLATTN_ARG(&c, m);
        CLATTN_ARG(&c, dv);
        CLATTN_ARG(&c, ubm0);
        CLATTN_ARG(&c, ubm1);
        CLATTN_ARG(&c, ubh0);
        CLATTN_ARG(&c, len);
        CLATTN_ARG(&c, group);
        CLATTN_ARG(&c, sub);
        CLATTN_ARG(&c, p->acc);
        CLATTN_CL(c.err);
        size_t gk[3] = {p->N, cols, nbh};
        CLATTN_FORWARD(clattn__seq_kernel(s, p->contract, 3, gk, false, NULL));
    }
cleanup:
    return status;
}

/* Rows [head_rows, N) by FFT, then rows [0, head_rows) by the direct sums. */
static clattn_status run_fft(seq *s, clattn__rpe_plan *p, const clattn_tensor *v,
                             const clattn_tensor *bias, const clattn_tensor *out,
                             cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__rpe_launch *L = &p->launch;
    size_t total = p->B * p->Hk * p->M, head = L->head_rows;
    CLATTN_FORWARD(launch_exp_bias(s, p, bias, L->fft_len, p->g));
    clattn__seq_next(s, false, NULL);
    CLATTN_FORWARD(clattn__fft_r2c(ctx, L->fft_len, p->Hq, p->g, 0, L->fft_len, p->gf, 0,
                                   L->fft_bins, s->nw, s->w, s->evp));
    clattn__seq_done(s);
    for (size_t grp = 0; grp < L->groups; grp++) {
        size_t bm0 = grp * L->per_group, bm1 = bm0 + L->per_group;
        CLATTN_FORWARD(run_fft_group(s, p, v, bm0, bm1 < total ? bm1 : total));
    }
    cl_uint heads = (cl_uint)p->Hq, group = (cl_uint)p->G, n = (cl_uint)p->N, dv = (cl_uint)p->Dv;
    cl_uint row0 = (cl_uint)head;
    clattn__args a = {p->normalize, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->acc);
    CLATTN_ARG(&a, p->bmaxb);
    clattn__arg_view(&a, out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, group);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, row0);
    arg_eps(&a, p);
    CLATTN_CL(a.err);
    size_t gn[3] = {p->Dv, p->N - head, p->B * p->Hq};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->normalize, 3, gn, head == 0, event));
    if (head > 0)
        CLATTN_FORWARD(run_direct(s, p, v, bias, out, head, event));
cleanup:
    return status;
}

clattn_status clattn__rpe_run(clattn__rpe_plan *p, const clattn_tensor *q, const clattn_tensor *k,
                              const clattn_tensor *v, const clattn_tensor *bias,
                              const clattn_tensor *out, clattn__seq *s, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_FORWARD(launch_features(s, p, q, 0, p->fq));
    CLATTN_FORWARD(launch_features(s, p, k, 1, p->fk));
    CLATTN_FORWARD(launch_bias_max(s, p, bias));
    if (p->launch.algo == CLATTN_RPE_FFT)
        CLATTN_FORWARD(run_fft(s, p, v, bias, out, event));
    else
        CLATTN_FORWARD(run_direct(s, p, v, bias, out, p->N, event));
cleanup:
    return status;
}

clattn_status clattn__rpe_fft_prepare(clattn__rpe_plan *p)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__rpe_launch *L = &p->launch;
    CLATTN_FORWARD(clattn__fft_prepare(ctx, false, L->fft_len, p->Hq, L->fft_len, L->fft_bins));
    CLATTN_FORWARD(clattn__fft_prepare(ctx, false, L->fft_len, L->signals, L->fft_len,
                                       L->fft_bins));
    CLATTN_FORWARD(clattn__fft_prepare(ctx, true, L->fft_len, L->signals, L->fft_bins,
                                       L->fft_len));
cleanup:
    return status;
}
