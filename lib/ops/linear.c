/* Host side of linear (kernelized) attention and its recurrent decoding state: validate, fetch the
 * program (kernels_cl/linear.cl), enqueue. Every form starts by writing the features of the
 * queries and keys (lib/ops/linear_features.c) and a padded copy of the values, then either
 *   - chunk sums, a scan over chunks and one pass over the query rows (plain and fixed momentum:
 *     non-causal, causal, prefill), or
 *   - a state update and the same output pass (decoding steps), or
 *   - the sequential adaptive-momentum scan.
 * States are [BH][MP][DW] floats (kernels_cl/linear.cl explains the layout and the log-scales). */
#include "linear_features.h"
#include "sched/sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIN_CHUNK CLATTN__LIN_CAUSAL_CHUNK /* LIN_CHUNK in linear.cl (-DLIN_CHUNK=64) */
#define LIN_RB 8           /* query rows per output work-item (LIN_RB in linear.cl) */
#define LIN_EB 2           /* float16 value blocks per work-item (LIN_EB in linear.cl) */

struct clattn_linear_state {
    clattn_context *ctx;
    clattn_linear_desc desc; /* validated copy; projection points at w_host */
    float *w_host;           /* FAVOR's W [M][D], NULL otherwise */
    cl_mem w;
    uint64_t w_hash;
    size_t shape[4];              /* batch, heads, d, dv */
    size_t m, mp, dvp, dw;        /* features, padded features, padded dv, state row length */
    cl_mem sa, sb, s1, u1, sr, st; /* see lin_bufs */
    size_t bytes;                 /* of one [BH][MP][DW] buffer */
};

/* The buffers a recurrent state needs: sa = A (or S when adaptive; z in its DVP column); sb = the
 * mu-decayed B (fixed momentum) or P (adaptive); s1, u1 = S_{i-1}, U_{i-1} (adaptive); sr = the
 * log-scale r per (b, h); st = the adaptive token count. Unused ones are NULL. */
typedef struct lin_bufs {
    cl_mem sa, sb, s1, u1, sr, st;
} lin_bufs;

/* What one enqueue does; out may be NULL (prefill without output), state NULL (plain calls). */
typedef struct lin_job {
    const clattn_linear_desc *d; /* validated */
    cl_mem w;                    /* FAVOR projection or NULL */
    int causal, step;
    const clattn_tensor *q, *k, *v, *out;
    const lin_bufs *state;
} lin_job;

void clattn_linear_desc_init(clattn_linear_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->feature_map = CLATTN_FEATURE_ELU;
    desc->eps = CLATTN_LINEAR_DEFAULT_EPS;
    desc->features = 256;
    desc->scaling = CLATTN_FAVOR_GAUSSIAN_NORMS;
    desc->momentum = CLATTN_MOMENTUM_NONE;
    desc->step_size = 1.0f;
}

size_t clattn_linear_feature_count(const clattn_linear_desc *desc, size_t d)
{
    clattn_linear_desc def;
    clattn_linear_desc_init(&def);
    return clattn__linear_feature_dim(desc ? desc : &def, d);
}

/* Copies the caller's desc honouring struct_size (fields it does not reach keep their defaults),
 * validates it and resolves eps 0 and eta 0 to their defaults. */
static clattn_status read_desc(clattn_context *ctx, const clattn_linear_desc *in,
                               clattn_linear_desc *out)
{
    clattn_linear_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_linear_desc, feature_map) + sizeof(int) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: struct_size %zu is not valid (call "
                            "clattn_linear_desc_init first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (out->feature_map != CLATTN_FEATURE_ELU && out->feature_map != CLATTN_FEATURE_RELU &&
        out->feature_map != CLATTN_FEATURE_IDENTITY && out->feature_map != CLATTN_FEATURE_FAVOR)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown feature map %d",
                            (int)out->feature_map);
    if (!isfinite(out->eps) || out->eps < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: eps %g must be finite and >= 0", (double)out->eps);
    if (out->eps == 0.0f)
        out->eps = CLATTN_LINEAR_DEFAULT_EPS;
    if (out->feature_map == CLATTN_FEATURE_FAVOR &&
        (out->features == 0 || out->features > CLATTN__LIN_MAX_M))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: FAVOR features %zu must be in [1, %d]", out->features,
                            CLATTN__LIN_MAX_M);
    /* llvmpipe (rusticl) returns wrong sums from the fused kernels from M = 1008 on (exact up to
     * 896), most likely its loop-iteration cap; refuse rather than answer wrongly. */
    if (out->feature_map == CLATTN_FEATURE_FAVOR && out->features > 896 && ctx &&
        strstr(ctx->info.name, "llvmpipe"))
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "linear desc: FAVOR features %zu > 896 are not supported on llvmpipe",
                            out->features);
    if (out->scaling != CLATTN_FAVOR_GAUSSIAN_NORMS && out->scaling != CLATTN_FAVOR_SQRT_D)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown FAVOR scaling %d",
                            (int)out->scaling);
    if (out->momentum != CLATTN_MOMENTUM_NONE && out->momentum != CLATTN_MOMENTUM_FIXED &&
        out->momentum != CLATTN_MOMENTUM_ADAPTIVE)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown momentum %d",
                            (int)out->momentum);
    if (out->momentum == CLATTN_MOMENTUM_FIXED && !(out->mu >= 0.0f && out->mu < 1.0f))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: momentum mu %g must be in [0, 1)", (double)out->mu);
    if (out->algorithm != CLATTN_LINEAR_AUTO && out->algorithm != CLATTN_LINEAR_FUSED &&
        out->algorithm != CLATTN_LINEAR_GEMM)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown algorithm %d",
                            (int)out->algorithm);
    if (out->algorithm == CLATTN_LINEAR_GEMM &&
        (out->causal || out->momentum != CLATTN_MOMENTUM_NONE))
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "linear desc: the GEMM algorithm is for the non-causal form without "
                            "momentum");
    if (out->step_size == 0.0f)
        out->step_size = 1.0f;
    if (!(out->step_size > 0.0f) || !isfinite(out->step_size))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: step size eta %g must be finite and > 0",
                            (double)out->step_size);
    return CLATTN_SUCCESS;
}

/* Shapes of q [B,H,Nq,D], k [B,H,Nk,D], v [B,H,Nk,Dv] among themselves and against the kernels'
 * limits (32-bit row and head indices; LIN_MAX_D). */
static clattn_status check_dims(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                const size_t v[4], int causal)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "linear: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    if (q[3] > CLATTN__LIN_MAX_D || v[3] > CLATTN__LIN_MAX_D)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "linear: D %zu or Dv %zu > %d", q[3],
                            v[3], CLATTN__LIN_MAX_D);
    if (q[0] != k[0] || q[0] != v[0] || q[1] != k[1] || q[1] != v[1])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "linear: batch/heads differ: q [%zu, %zu], k [%zu, %zu], v [%zu, %zu]",
                            q[0], q[1], k[0], k[1], v[0], v[1]);
    if (k[2] != v[2])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "linear: %zu keys but %zu values", k[2],
                            v[2]);
    if (q[3] != k[3])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "linear: head dim %zu (q) != %zu (k)",
                            q[3], k[3]);
    const size_t lim = (size_t)1 << 31;
    if (q[0] > (lim - 1) / q[1] || q[2] >= lim || k[2] >= lim ||
        q[2] > (lim - 1) / (q[0] * q[1]) || k[2] > (lim - 1) / (q[0] * q[1]))
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "linear: sizes beyond 2^31");
    if (causal && q[2] != k[2])
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "linear: causal form needs Nq == Nk (got %zu and %zu)", q[2], k[2]);
    return CLATTN_SUCCESS;
}

/* Every view fits its buffer and out (if any) is one-to-one and overlaps no input. The shapes
 * among q, k, v were checked by check_dims; out must be [B, H, Nq, Dv]. */
static clattn_status check_views(clattn_context *ctx, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", NULL, sizeof(float)));
    if (!out)
        return CLATTN_SUCCESS;
    size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", oshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, out, "out"));
    const clattn_tensor *ins[] = {q, k, v};
    const char *names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++)
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", ins[i], names[i], sizeof(float)));
cleanup:
    return status;
}

/* ---- command sequences (lib/core/seq.c) with linear attention's launch rules ---- */

typedef struct seq {
    clattn__seq q;
    clattn_context *ctx;
    bool cpu; /* CPU family: register-blocked kernels run one work-item per group */
    bool ws;  /* the context's workspace is held (clattn__ws_begin) */
    /* llvmpipe runs a work-group's items in one loop and stops any loop after 65535 iterations
     * counted over the whole group, so there every kernel runs one work-item per group. */
    bool tiny;
} seq;

static clattn_status seq_init(seq *s, clattn_context *ctx, cl_uint nwait, const cl_event *wait)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->cpu = clattn__softmax_family(&ctx->info) == CLATTN_SOFTMAX_TILED_CPU;
    s->tiny = strstr(ctx->info.name, "llvmpipe") != NULL;
    return clattn__seq_init(&s->q, ctx, nwait, wait);
}

/* The wait list and event slot for the next non-kernel command (`last`: the caller's event). */
static void seq_next(seq *s, bool last, cl_event *event, cl_uint *nw, const cl_event **w,
                     cl_event **evp)
{
    clattn__seq_next(&s->q, last, event);
    *nw = s->q.nw;
    *w = s->q.w;
    *evp = s->q.evp;
}

static void seq_done(seq *s) { clattn__seq_done(&s->q); }

static void seq_end(seq *s) { clattn__seq_end(&s->q); }

/* `blocked`: a register-blocked kernel (float16 rows per work-item); on the CPU family it runs
 * one work-item per group so PoCL does not also vectorise across work-items. */
static clattn_status seq_kernel_ex(seq *s, cl_kernel kernel, cl_uint dims, const size_t *global,
                                   bool blocked, bool last, cl_event *event)
{
    const size_t ones[3] = {1, 1, 1};
    return clattn__seq_kernel_local(&s->q, kernel, dims, global,
                                    (blocked && s->cpu) || s->tiny ? ones : NULL, last, event);
}

static clattn_status seq_kernel(seq *s, cl_kernel kernel, cl_uint dims, const size_t *global,
                                bool last, cl_event *event)
{
    return seq_kernel_ex(s, kernel, dims, global, false, last, event);
}

static clattn_status seq_fill(seq *s, cl_mem buf, float value, size_t bytes, bool last,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint nw;
    const cl_event *w;
    cl_event *evp;
    seq_next(s, last, event, &nw, &w, &evp);
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, buf, &value, sizeof value, 0, bytes, nw, w, evp));
    seq_done(s);
cleanup:
    return status;
}

static clattn_status seq_copy(seq *s, cl_mem src, cl_mem dst, size_t bytes, bool last,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint nw;
    const cl_event *w;
    cl_event *evp;
    seq_next(s, last, event, &nw, &w, &evp);
    CLATTN_CL(clEnqueueCopyBuffer(ctx->queue, src, dst, 0, 0, bytes, nw, w, evp));
    seq_done(s);
cleanup:
    return status;
}

static clattn_status seq_features(seq *s, const lin_job *j, const clattn_tensor *x, int stab,
                                  cl_mem f, cl_mem l)
{
    cl_uint nw;
    const cl_event *w;
    cl_event *evp;
    seq_next(s, false, NULL, &nw, &w, &evp);
    clattn_status st = clattn__linear_features(s->ctx, j->d, j->w, x, stab, f, l, nw, w, evp);
    if (st == CLATTN_SUCCESS)
        seq_done(s);
    return st;
}

static clattn_status get_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel)
{
    cl_program prog = NULL;
    clattn_status status = clattn__program_get(ctx, "linear.cl", CLATTN__LIN_OPTIONS, &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, kernel);
    return status;
}

/* Checks the arguments (already collected in a) and enqueues; releases the kernel. */
static clattn_status launch_ex(seq *s, cl_kernel kern, clattn__args *a, cl_uint dims,
                               const size_t *global, bool blocked, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(a->err);
    CLATTN_FORWARD(seq_kernel_ex(s, kern, dims, global, blocked, last, event));
cleanup:
    clReleaseKernel(kern);
    return status;
}

static clattn_status launch(seq *s, cl_kernel kern, clattn__args *a, cl_uint dims,
                            const size_t *global, bool last, cl_event *event)
{
    return launch_ex(s, kern, a, dims, global, false, last, event);
}

/* ---- the forms ---- */

typedef struct lin_dims {
    size_t bh, heads, nq, nk, d, dv, m, mp, dvp, dw;
} lin_dims;

static lin_dims dims_of(const lin_job *j)
{
    lin_dims z;
    z.heads = j->q->shape[1];
    z.bh = j->q->shape[0] * z.heads;
    z.nq = j->q->shape[2];
    z.nk = j->k->shape[2];
    z.d = j->q->shape[3];
    z.dv = j->v->shape[3];
    z.m = clattn__linear_feature_dim(j->d, z.d);
    z.mp = clattn__linear_feature_stride(j->d, z.d);
    z.dvp = clattn__div_up(z.dv, 16) * 16;
    z.dw = z.dvp + 16;
    return z;
}

static bool is_fixed(const clattn_linear_desc *d) { return d->momentum == CLATTN_MOMENTUM_FIXED; }

/* vp [BH][Nk][width] = v zero padded, with 1 in column ones_at (>= width: none). */
static clattn_status launch_pack(seq *s, const lin_job *j, const lin_dims *z, size_t width,
                                 size_t ones_at, cl_mem vp)
{
    cl_kernel k = NULL;
    clattn_status status = get_kernel(s->ctx, "clattn_linear_pack_v", &k);
    if (status != CLATTN_SUCCESS)
        return status;
    cl_uint heads = (cl_uint)z->heads, dv = (cl_uint)z->dv, w = (cl_uint)width;
    cl_uint ones = (cl_uint)ones_at;
    clattn__args a = {k, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, ones);
    CLATTN_ARG(&a, vp);
    size_t g[2] = {j->v->shape[2], z->bh};
    return launch(s, k, &a, 2, g, false, NULL);
}

/* Output rows from a carried state: per chunk (causal; ps holds their log-scales) or one per
 * (b, h). `fixed` selects the momentum combination coef (A - mu B). */
static clattn_status launch_out(seq *s, const lin_job *j, const lin_dims *z, cl_mem fq, cl_mem vp,
                                cl_mem sa, cl_mem sb, cl_mem ps, cl_mem iw, cl_mem imi,
                                size_t nchunks, int causal, int fixed, cl_event *event)
{
    cl_kernel k = NULL;
    clattn_status status = get_kernel(s->ctx, "clattn_linear_out", &k);
    if (status != CLATTN_SUCCESS)
        return status;
    cl_uint heads = (cl_uint)z->heads, nq = (cl_uint)z->nq, mp = (cl_uint)z->mp;
    cl_uint dv = (cl_uint)z->dv, dvp = (cl_uint)z->dvp, unch = (cl_uint)nchunks;
    cl_int c = causal, mom = fixed;
    cl_float mu = fixed ? j->d->mu : 0.0f;
    cl_float coef = fixed ? j->d->step_size / (1.0f - j->d->mu) : 1.0f, eps = j->d->eps;
    cl_mem sbb = sb ? sb : sa, psb = ps ? ps : sa, iwb = iw ? iw : sa, imb = imi ? imi : sa;
    clattn__args a = {k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fq);
    CLATTN_ARG(&a, vp);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    CLATTN_ARG(&a, nq);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, sa);
    CLATTN_ARG(&a, sbb);
    CLATTN_ARG(&a, psb);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, iwb);
    CLATTN_ARG(&a, imb);
    CLATTN_ARG(&a, c);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, coef);
    CLATTN_ARG(&a, eps);
    size_t g[3] = {clattn__div_up(z->dvp, 16 * LIN_EB), clattn__div_up(z->nq, LIN_RB), z->bh};
    return launch_ex(s, k, &a, 3, g, true, true, event);
}

static clattn_status launch_adaptive(seq *s, const lin_job *j, const lin_dims *z, cl_mem fq,
                                     cl_mem fk, cl_mem l, cl_mem vp, const lin_bufs *b,
                                     int want_out, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    cl_kernel k = NULL;
    clattn_status status = get_kernel(ctx, "clattn_linear_adaptive", &k);
    if (status != CLATTN_SUCCESS)
        return status;
    cl_uint n = (cl_uint)z->nk, mp = (cl_uint)z->mp, dv = (cl_uint)z->dv;
    cl_uint dvp = (cl_uint)z->dvp, heads = (cl_uint)z->heads;
    cl_float eta = j->d->step_size, eps = j->d->eps;
    cl_int wo = want_out;
    /* Without an output the view arguments still need a valid buffer. */
    clattn_tensor dummy = clattn_tensor_make(fq, 1, 1, 1, 1);
    clattn__args a = {k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fq);
    CLATTN_ARG(&a, fk);
    CLATTN_ARG(&a, l);
    CLATTN_ARG(&a, vp);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, eta);
    CLATTN_ARG(&a, eps);
    CLATTN_ARG(&a, b->sa);
    CLATTN_ARG(&a, b->sb);
    CLATTN_ARG(&a, b->s1);
    CLATTN_ARG(&a, b->u1);
    CLATTN_ARG(&a, b->sr);
    CLATTN_ARG(&a, b->st);
    CLATTN_ARG(&a, wo);
    clattn__arg_view(&a, want_out ? j->out : &dummy);
    CLATTN_ARG(&a, heads);
    CLATTN_CL(a.err);
    /* llvmpipe (rusticl) ends any loop after 65535 iterations per work-item, so there the scan
     * is split into launches of a bounded number of tokens; the state lives in global memory. */
    size_t per_token = 3 * z->mp * z->dvp + z->mp * (z->dv + 1), span = z->nk;
    if (strstr(s->ctx->info.name, "llvmpipe"))
        span = per_token < 30000 ? 30000 / per_token : 1;
    size_t g = z->bh;
    for (size_t t0 = 0; t0 < z->nk; t0 += span) {
        cl_uint j0 = (cl_uint)t0, j1 = (cl_uint)(t0 + span < z->nk ? t0 + span : z->nk);
        CLATTN_CL(clSetKernelArg(k, a.i, sizeof j0, &j0));
        CLATTN_CL(clSetKernelArg(k, a.i + 1, sizeof j1, &j1));
        bool fin = j1 == z->nk;
        CLATTN_FORWARD(seq_kernel(s, k, 1, &g, last && fin, event));
    }
cleanup:
    clReleaseKernel(k);
    return status;
}

/* Zeroed scratch state for the plain (stateless) adaptive form. */
static clattn_status adaptive_scratch(seq *s, const lin_dims *z, lin_bufs *b)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t bytes = z->bh * z->mp * z->dw * sizeof(float);
    cl_mem *big[] = {&b->sa, &b->sb, &b->s1, &b->u1};
    for (int i = 0; i < 4; i++) {
        CLATTN_FORWARD(clattn__buffer_create(ctx, bytes, "adaptive momentum state", big[i]));
        CLATTN_FORWARD(seq_fill(s, *big[i], 0.0f, bytes, false, NULL));
    }
    CLATTN_FORWARD(clattn__buffer_create(ctx, z->bh * sizeof(float), "state scale", &b->sr));
    CLATTN_FORWARD(seq_fill(s, b->sr, -INFINITY, z->bh * sizeof(float), false, NULL));
    CLATTN_FORWARD(clattn__buffer_create(ctx, z->bh * sizeof(cl_uint), "state steps", &b->st));
    CLATTN_FORWARD(seq_fill(s, b->st, 0.0f, z->bh * sizeof(cl_uint), false, NULL));
cleanup:
    return status;
}

static void release_bufs(lin_bufs *b)
{
    cl_mem *all[] = {&b->sa, &b->sb, &b->s1, &b->u1, &b->sr, &b->st};
    for (int i = 0; i < 6; i++)
        if (*all[i]) {
            clReleaseMemObject(*all[i]);
            *all[i] = NULL;
        }
}


/* Chunk sums, scan, output (plain and fixed momentum; not steps). */
static clattn_status run_chunked(seq *s, const lin_job *j, const lin_dims *z, cl_mem fq,
                                 cl_mem fk, cl_mem l, cl_mem vp, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_mem cw = NULL, cm = NULL, ca = NULL, cb = NULL, ps = NULL, fr = NULL, iw = NULL, imi = NULL;
    cl_mem fac = NULL, kt = NULL;
    lin_bufs tot = {0};
    cl_kernel k = NULL;
    bool fixed = is_fixed(j->d);
    const lin_bufs *st = j->state;
    size_t chunk = clattn__linear_chunk(&ctx->info, z->nk, z->bh, j->causal), nchunks = clattn__div_up(z->nk, chunk);
    size_t one = z->bh * z->mp * z->dw * sizeof(float), all;
    CLATTN_CHECK(clattn__mul_ok(one, nchunks, &all), CLATTN_SIZE_OVERFLOW,
                 "linear: scratch size overflows");
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 4, z->bh * z->nk * sizeof(float), "chunk weights",
                                         &cw));
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 5, z->bh * nchunks * sizeof(float), "chunk scales",
                                         &cm));
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 6, all, "linear attention chunk states", &ca));
    if (fixed)
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 7, all, "momentum chunk states", &cb));
    if (j->causal)
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 8, z->bh * nchunks * sizeof(float),
                                             "prefix scales", &ps));
    if (j->causal) /* the final log-scale, copied into the state (if any) after the scan */
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 9, z->bh * sizeof(float), "state scale", &fr));
    if (!j->causal) {
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 13, one, "linear attention state", &tot.sa));
        if (fixed)
            CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 14, one, "momentum state", &tot.sb));
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 15, z->bh * sizeof(float), "state scale",
                                             &tot.sr));
    }

    cl_uint un = (cl_uint)z->nk, uchunk = (cl_uint)chunk, unch = (cl_uint)nchunks;
    cl_uint mp = (cl_uint)z->mp, dvp = (cl_uint)z->dvp;
    cl_int mom = fixed;
    cl_float mu = fixed ? j->d->mu : 0.0f;
    clattn__args a;

    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_chunk_weights", &k));
    a = (clattn__args){k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, l);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, cw);
    CLATTN_ARG(&a, cm);
    size_t g1[2] = {nchunks, z->bh};
    status = launch(s, k, &a, 2, g1, false, NULL);
    k = NULL;
    CLATTN_FORWARD(status);

    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_chunk_state", &k));
    cl_mem cbb = cb ? cb : ca;
    a = (clattn__args){k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fk);
    CLATTN_ARG(&a, vp);
    CLATTN_ARG(&a, cw);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    size_t g2[3] = {clattn__div_up(z->dvp, 16 * LIN_EB) + 1, z->mp / CLATTN__LIN_MB,
                    z->bh * nchunks};
    status = launch_ex(s, k, &a, 3, g2, true, false, NULL);
    k = NULL;
    CLATTN_FORWARD(status);

    /* Causal: chunk sums become carried prefixes, the state (if any) seeds them and receives the
     * total (its scale through fr, copied after). Non-causal: the total goes to tot. */
    bool scan_last = !j->out && !(j->causal && st);
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 12, z->bh * nchunks * 2 * sizeof(float),
                                         "chunk factors", &fac));
    if (!ps)
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 8, z->bh * nchunks * sizeof(float),
                                             "prefix scales", &ps));
    cl_int has_init = st != NULL, has_fin = !j->causal || st != NULL, prefix = j->causal != 0;
    cl_mem ir = st ? st->sr : cm, frr = j->causal ? fr : tot.sr;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_scan_scales", &k));
    a = (clattn__args){k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, cm);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, has_init);
    CLATTN_ARG(&a, ir);
    CLATTN_ARG(&a, fac);
    CLATTN_ARG(&a, ps);
    CLATTN_ARG(&a, frr);
    size_t gs = z->bh;
    status = launch(s, k, &a, 1, &gs, false, NULL);
    k = NULL;
    CLATTN_FORWARD(status);
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_scan", &k));
    cl_mem ia = st ? st->sa : ca, ib = st && st->sb ? st->sb : ca;
    cl_mem fa = j->causal ? (st ? st->sa : ca) : tot.sa;
    cl_mem fb = j->causal ? (st && st->sb ? st->sb : ca) : (tot.sb ? tot.sb : ca);
    a = (clattn__args){k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, ca);
    CLATTN_ARG(&a, cbb);
    CLATTN_ARG(&a, fac);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, uchunk);
    CLATTN_ARG(&a, unch);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, has_init);
    CLATTN_ARG(&a, ia);
    CLATTN_ARG(&a, ib);
    CLATTN_ARG(&a, has_fin);
    CLATTN_ARG(&a, fa);
    CLATTN_ARG(&a, fb);
    CLATTN_ARG(&a, prefix);
    size_t g3[3] = {z->dw / 16, z->mp, z->bh};
    status = launch_ex(s, k, &a, 3, g3, true, scan_last, event);
    k = NULL;
    CLATTN_FORWARD(status);
    if (j->causal && st)
        CLATTN_FORWARD(seq_copy(s, fr, st->sr, z->bh * sizeof(float), !j->out, event));
    if (j->out && j->causal) {
        size_t nw;
        CLATTN_CHECK(clattn__mul_ok(z->bh * z->nq, LIN_CHUNK * sizeof(float), &nw),
                     CLATTN_SIZE_OVERFLOW, "linear: in-chunk weights overflow");
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 10, nw, "in-chunk weights", &iw));
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 11, z->bh * z->nq * sizeof(float), "row scales",
                                             &imi));
        CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 14, all / z->dw * LIN_CHUNK,
                                      "transposed key features", &kt));
        CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_kt", &k));
        a = (clattn__args){k, 0, CL_SUCCESS};
        CLATTN_ARG(&a, fk);
        CLATTN_ARG(&a, un);
        CLATTN_ARG(&a, unch);
        CLATTN_ARG(&a, kt);
        size_t gk[3] = {LIN_CHUNK, z->mp, z->bh * nchunks};
        status = launch(s, k, &a, 3, gk, false, NULL);
        k = NULL;
        CLATTN_FORWARD(status);
        CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_intra", &k));
        a = (clattn__args){k, 0, CL_SUCCESS};
        CLATTN_ARG(&a, fq);
        CLATTN_ARG(&a, kt);
        CLATTN_ARG(&a, l);
        CLATTN_ARG(&a, ps);
        CLATTN_ARG(&a, mp);
        CLATTN_ARG(&a, unch);
        CLATTN_ARG(&a, iw);
        CLATTN_ARG(&a, imi);
        size_t g4[2] = {z->nq, z->bh};
        status = launch_ex(s, k, &a, 2, g4, true, false, NULL);
        k = NULL;
        CLATTN_FORWARD(status);
        CLATTN_FORWARD(launch_out(s, j, z, fq, vp, ca, cb, ps, iw, imi, nchunks, 1, fixed, event));
    } else if (j->out) {
        CLATTN_FORWARD(
            launch_out(s, j, z, fq, vp, tot.sa, tot.sb, NULL, NULL, NULL, 1, 0, fixed, event));
    }
cleanup:
    if (k)
        clReleaseKernel(k);
    cl_mem bufs[] = {cw, cm, ca, cb, ps, fr, iw, imi, fac, kt};
    for (int i = 0; i < 10; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    release_bufs(&tot);
    return status;
}

/* A decoding step without adaptive momentum: update, commit the scale, output. */
static clattn_status run_step(seq *s, const lin_job *j, const lin_dims *z, cl_mem fq, cl_mem fk,
                              cl_mem l, cl_mem vp, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel k = NULL;
    const lin_bufs *st = j->state;
    bool fixed = is_fixed(j->d);
    cl_uint mp = (cl_uint)z->mp, dvp = (cl_uint)z->dvp;
    cl_int mom = fixed;
    cl_float mu = fixed ? j->d->mu : 0.0f;
    cl_mem sbb = st->sb ? st->sb : st->sa;
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_step_update", &k));
    clattn__args a = {k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, fk);
    CLATTN_ARG(&a, l);
    CLATTN_ARG(&a, vp);
    CLATTN_ARG(&a, mp);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, mom);
    CLATTN_ARG(&a, mu);
    CLATTN_ARG(&a, st->sa);
    CLATTN_ARG(&a, sbb);
    CLATTN_ARG(&a, st->sr);
    size_t g[3] = {z->dw, z->mp, z->bh};
    status = launch(s, k, &a, 3, g, false, NULL);
    k = NULL;
    CLATTN_FORWARD(status);
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_step_commit", &k));
    a = (clattn__args){k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, st->sr);
    CLATTN_ARG(&a, l);
    size_t g1 = z->bh;
    status = launch(s, k, &a, 1, &g1, false, NULL);
    k = NULL;
    CLATTN_FORWARD(status);
    CLATTN_FORWARD(
        launch_out(s, j, z, fq, vp, st->sa, st->sb, NULL, NULL, NULL, 1, 0, fixed, event));
cleanup:
    if (k)
        clReleaseKernel(k);
    return status;
}

static clattn_status seq_gemm(seq *s, bool trans_a, size_t m, size_t n, size_t k, cl_mem a,
                              size_t lda, size_t sa, cl_mem b, size_t ldb, size_t sb, cl_mem c,
                              size_t ldc, size_t sc, size_t batch)
{
    cl_uint nw;
    const cl_event *w;
    cl_event *evp;
    seq_next(s, false, NULL, &nw, &w, &evp);
    /* CLBlast takes no wait list: on an out-of-order queue a barrier carries it. */
    if (nw > 0) {
        cl_int err = clEnqueueBarrierWithWaitList(s->ctx->queue, nw, w, NULL);
        if (err != CL_SUCCESS)
            return clattn__fail(s->ctx, (clattn_status)err, "linear gemm: barrier failed");
    }
    clattn_status st = clattn__sgemm_batched(s->ctx, trans_a, false, m, n, k, 1.0f, a, 0, lda, sa,
                                             b, 0, ldb, sb, 0.0f, c, 0, ldc, sc, batch, evp);
    if (st == CLATTN_SUCCESS)
        seq_done(s);
    return st;
}

/* The GEMM form: KV = phi(K)^T [V 1] and O' = phi(Q) KV per (b, h) by CLBlast, then out =
 * O'[:, :Dv] / (O'[:, Dv] + eps). Keys carry their head's scale (features with stab 1). */
static clattn_status run_gemm(seq *s, const lin_job *j, const lin_dims *z, cl_mem fq, cl_mem fk,
                              cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_mem vp1 = NULL, kv = NULL, op = NULL;
    cl_kernel k = NULL;
    size_t vb, ob;
    CLATTN_CHECK(clattn__mul_ok(z->bh * z->nk, z->dw * sizeof(float), &vb) &&
                     clattn__mul_ok(z->bh * z->nq, z->dw * sizeof(float), &ob),
                 CLATTN_SIZE_OVERFLOW, "linear gemm: scratch overflows");
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 3, vb, "values with a ones column", &vp1));
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 13, z->bh * z->mp * z->dw * sizeof(float),
                                  "linear attention state", &kv));
    CLATTN_FORWARD(clattn__ws_get(ctx, s->ws, 6, ob, "unnormalised outputs", &op));
    CLATTN_FORWARD(launch_pack(s, j, z, z->dw, z->dvp, vp1));
    CLATTN_FORWARD(seq_gemm(s, true, z->mp, z->dw, z->nk, fk, z->mp, z->nk * z->mp, vp1, z->dw,
                            z->nk * z->dw, kv, z->dw, z->mp * z->dw, z->bh));
    CLATTN_FORWARD(seq_gemm(s, false, z->nq, z->dw, z->mp, fq, z->mp, z->nq * z->mp, kv, z->dw,
                            z->mp * z->dw, op, z->dw, z->nq * z->dw, z->bh));
    CLATTN_FORWARD(get_kernel(ctx, "clattn_linear_normalize", &k));
    cl_uint heads = (cl_uint)z->heads, dv = (cl_uint)z->dv, dvp = (cl_uint)z->dvp;
    cl_float eps = j->d->eps;
    clattn__args a = {k, 0, CL_SUCCESS};
    CLATTN_ARG(&a, op);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, dvp);
    CLATTN_ARG(&a, eps);
    clattn__arg_view(&a, j->out);
    CLATTN_ARG(&a, heads);
    size_t g2[2] = {z->nq, z->bh};
    status = launch(s, k, &a, 2, g2, true, event);
    k = NULL;
cleanup:
    if (k)
        clReleaseKernel(k);
    cl_mem bufs[] = {vp1, kv, op};
    for (int i = 0; i < 3; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}

/* Validated job: features, padded values, then the form's kernels. Scratch is released here;
 * OpenCL keeps it alive until the commands using it have finished. */
static clattn_status run_job(clattn_context *ctx, const lin_job *j, cl_uint num_wait,
                             const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem fq = NULL, fk = NULL, l = NULL, vp = NULL;
    lin_bufs scratch = {0};
    seq s;
    memset(&s, 0, sizeof s);
    bool ws = clattn__ws_begin(ctx);
    lin_dims z = dims_of(j);
    size_t fqb, fkb, vpb;
    CLATTN_CHECK(clattn__mul_ok(z.bh * z.nq, z.mp * sizeof(float), &fqb) &&
                     clattn__mul_ok(z.bh * z.nk, z.mp * sizeof(float), &fkb) &&
                     clattn__mul_ok(z.bh * z.nk, z.dvp * sizeof(float), &vpb),
                 CLATTN_SIZE_OVERFLOW, "linear: feature buffers overflow");
    CLATTN_FORWARD(clattn__ws_get(ctx, ws, 0, fqb, "query features", &fq));
    CLATTN_FORWARD(clattn__ws_get(ctx, ws, 1, fkb, "key features", &fk));
    CLATTN_FORWARD(clattn__ws_get(ctx, ws, 2, z.bh * z.nk * sizeof(float), "key scales", &l));
    CLATTN_FORWARD(clattn__ws_get(ctx, ws, 3, vpb, "padded values", &vp));
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait));
    s.ws = ws;
    /* GEMM when asked, or by default on GPUs, where CLBlast's tiles beat the fused kernels (H100:
     * 2.2-3x) while on CPUs the fused kernels win (PoCL: 2.4-2.6x). */
    bool gemm_ok = !j->causal && !j->step && j->d->momentum == CLATTN_MOMENTUM_NONE && j->out;
    bool gemm = gemm_ok && (j->d->algorithm == CLATTN_LINEAR_GEMM ||
                            (j->d->algorithm == CLATTN_LINEAR_AUTO &&
                             clattn__softmax_family(&ctx->info) == CLATTN_SOFTMAX_TILED_GPU));
    CLATTN_FORWARD(seq_features(&s, j, j->q, 0, fq, NULL));
    CLATTN_FORWARD(seq_features(&s, j, j->k, gemm ? 1 : 0, fk, l));
    if (gemm) {
        CLATTN_FORWARD(run_gemm(&s, j, &z, fq, fk, event));
        goto cleanup;
    }
    CLATTN_FORWARD(launch_pack(&s, j, &z, z.dvp, z.dvp, vp));
    if (j->d->momentum == CLATTN_MOMENTUM_ADAPTIVE) {
        const lin_bufs *b = j->state;
        if (!b) {
            CLATTN_FORWARD(adaptive_scratch(&s, &z, &scratch));
            b = &scratch;
        }
        bool outs_here = j->out && (j->causal || j->step);
        CLATTN_FORWARD(launch_adaptive(&s, j, &z, fq, fk, l, vp, b, outs_here,
                                       outs_here || !j->out, event));
        if (j->out && !outs_here)
            CLATTN_FORWARD(launch_out(&s, j, &z, fq, vp, b->sa, NULL, NULL, NULL, NULL, 1, 0, 0,
                                      event));
    } else if (j->step) {
        CLATTN_FORWARD(run_step(&s, j, &z, fq, fk, l, vp, event));
    } else {
        CLATTN_FORWARD(run_chunked(&s, j, &z, fq, fk, l, vp, event));
    }
cleanup:
    seq_end(&s);
    cl_mem bufs[] = {fq, fk, l, vp};
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    release_bufs(&scratch);
    clattn__ws_end(ctx, ws);
    return status;
}

clattn_status clattn_linear_enqueue(clattn_context *ctx, const clattn_linear_desc *desc,
                                    const clattn_tensor *q, const clattn_tensor *k,
                                    const clattn_tensor *v, const clattn_tensor *out,
                                    cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_linear_desc d;
    cl_mem w = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear enqueue: ctx is NULL");
    CLATTN_CHECK(q && k && v && out, CLATTN_NULL_POINTER,
                 "linear enqueue: q, k, v and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_dims(ctx, q->shape, k->shape, v->shape, d.causal));
    CLATTN_FORWARD(check_views(ctx, q, k, v, out));
    CLATTN_FORWARD(clattn__linear_projection(ctx, &d, q->shape[3], &w));
    lin_job j = {&d, w, d.causal != 0, 0, q, k, v, out, NULL};
    status = run_job(ctx, &j, num_wait, wait, event);
cleanup:
    if (w)
        clReleaseMemObject(w);
    return status;
}

static size_t numel(const size_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

clattn_status clattn_linear_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                 const size_t q_shape[4], const size_t k_shape[4],
                                 const size_t v_shape[4], const float *q, const float *k,
                                 const float *v, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL;
    clattn_linear_desc d;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear host: ctx is NULL");
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "linear host: shapes, q, k, v and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_dims(ctx, q_shape, k_shape, v_shape, d.causal));
    size_t o_shape[4] = {q_shape[0], q_shape[1], q_shape[2], v_shape[3]};
    const size_t *shapes[] = {q_shape, k_shape, v_shape, o_shape};
    for (int i = 0; i < 4; i++) {
        size_t a, b;
        CLATTN_CHECK(clattn__mul_ok(shapes[i][0] * shapes[i][1], shapes[i][2], &a) &&
                         clattn__mul_ok(a, shapes[i][3], &b) && b < SIZE_MAX / sizeof(float),
                     CLATTN_SIZE_OVERFLOW, "linear host: sizes overflow");
    }
    CLATTN_FORWARD(clattn__buffer_upload(ctx, q, numel(q_shape) * sizeof(float), &bq));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, k, numel(k_shape) * sizeof(float), &bk));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, v, numel(v_shape) * sizeof(float), &bv));
    CLATTN_FORWARD(clattn__buffer_create(ctx, numel(o_shape) * sizeof(float), "output", &bo));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, o_shape[0], o_shape[1], o_shape[2], o_shape[3]);
    CLATTN_FORWARD(clattn_linear_enqueue(ctx, &d, &tq, &tk, &tv, &to, 0, NULL, NULL));
    /* Blocking read after the kernels (a barrier also orders an out-of-order queue). */
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, numel(o_shape) * sizeof(float), out,
                                  0, NULL, NULL));
cleanup:
    if (ctx)
        clFinish(ctx->queue); /* the buffers below may still be used by failed-midway commands */
    cl_mem bufs[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}

/* ---- recurrent decoding state ---- */

static lin_bufs state_bufs(const clattn_linear_state *s)
{
    lin_bufs b = {s->sa, s->sb, s->s1, s->u1, s->sr, s->st};
    return b;
}

/* Enqueues the zero state (r = -inf: no key seen) with the caller's wait list and event. */
static clattn_status state_clear(clattn_linear_state *st, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_context *ctx = st->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t bh = st->shape[0] * st->shape[1];
    seq s;
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait));
    cl_mem big[] = {st->sa, st->sb, st->s1, st->u1};
    for (int i = 0; i < 4; i++)
        if (big[i])
            CLATTN_FORWARD(seq_fill(&s, big[i], 0.0f, st->bytes, false, NULL));
    if (st->st)
        CLATTN_FORWARD(seq_fill(&s, st->st, 0.0f, bh * sizeof(cl_uint), false, NULL));
    CLATTN_FORWARD(seq_fill(&s, st->sr, -INFINITY, bh * sizeof(float), true, event));
cleanup:
    seq_end(&s);
    return status;
}

clattn_status clattn_linear_state_create(clattn_context *ctx, const clattn_linear_desc *desc,
                                         size_t batch, size_t heads, size_t d, size_t dv,
                                         clattn_linear_state **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_linear_state *s = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state: ctx is NULL");
    CLATTN_CHECK(out != NULL, CLATTN_NULL_POINTER, "linear state: state pointer is NULL");
    *out = NULL;
    s = calloc(1, sizeof *s);
    CLATTN_CHECK(s != NULL, CLATTN_OUT_OF_HOST_MEMORY, "linear state");
    s->ctx = ctx;
    CLATTN_FORWARD(read_desc(ctx, desc, &s->desc));
    size_t qs[4] = {batch, heads, 1, d}, vs[4] = {batch, heads, 1, dv};
    CLATTN_FORWARD(check_dims(ctx, qs, qs, vs, 0));
    size_t shape[4] = {batch, heads, d, dv};
    memcpy(s->shape, shape, sizeof shape);
    CLATTN_FORWARD(clattn__linear_projection_host(ctx, &s->desc, d, &s->w_host));
    s->desc.projection = s->w_host;
    s->desc.projection_shape[0] = s->w_host ? s->desc.features : 0;
    s->desc.projection_shape[1] = s->w_host ? d : 0;
    s->w_hash = s->w_host ? clattn__hash64(CLATTN__HASH_SEED, s->w_host,
                                           s->desc.features * d * sizeof(float))
                          : 0;
    CLATTN_FORWARD(clattn__linear_projection(ctx, &s->desc, d, &s->w));
    s->m = clattn__linear_feature_dim(&s->desc, d);
    s->mp = clattn__linear_feature_stride(&s->desc, d);
    s->dvp = clattn__div_up(dv, 16) * 16;
    s->dw = s->dvp + 16;
    size_t bh = batch * heads;
    CLATTN_CHECK(clattn__mul_ok(bh * s->mp, s->dw * sizeof(float), &s->bytes),
                 CLATTN_SIZE_OVERFLOW, "linear state: size overflows");
    bool adaptive = s->desc.momentum == CLATTN_MOMENTUM_ADAPTIVE;
    CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "linear state", &s->sa));
    if (s->desc.momentum != CLATTN_MOMENTUM_NONE)
        CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "momentum state", &s->sb));
    if (adaptive) {
        CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "adaptive S_{i-1}", &s->s1));
        CLATTN_FORWARD(clattn__buffer_create(ctx, s->bytes, "adaptive U_{i-1}", &s->u1));
        CLATTN_FORWARD(clattn__buffer_create(ctx, bh * sizeof(cl_uint), "adaptive steps", &s->st));
    }
    CLATTN_FORWARD(clattn__buffer_create(ctx, bh * sizeof(float), "state scale", &s->sr));
    CLATTN_FORWARD(state_clear(s, 0, NULL, NULL));
    CLATTN_CL(clFinish(ctx->queue));
    *out = s;
    s = NULL;
cleanup:
    clattn_linear_state_destroy(s);
    return status;
}

void clattn_linear_state_destroy(clattn_linear_state *state)
{
    if (!state)
        return;
    cl_mem all[] = {state->w, state->sa, state->sb, state->s1, state->u1, state->sr, state->st};
    for (int i = 0; i < 7; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(state->w_host);
    free(state);
}

clattn_status clattn_linear_state_get_shape(const clattn_linear_state *state, size_t shape[4])
{
    if (!state || !shape)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state shape: NULL argument");
    memcpy(shape, state->shape, sizeof state->shape);
    return CLATTN_SUCCESS;
}

clattn_status clattn_linear_state_reset(clattn_linear_state *state, cl_uint num_wait,
                                        const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state reset: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state reset: num_wait > 0 but wait is NULL");
    status = state_clear(state, num_wait, wait, event);
cleanup:
    return status;
}

/* Same operator: everything that changes what the state means. */
static bool same_desc(const clattn_linear_state *a, const clattn_linear_state *b)
{
    const clattn_linear_desc *x = &a->desc, *y = &b->desc;
    return x->feature_map == y->feature_map && x->eps == y->eps && a->m == b->m &&
           x->momentum == y->momentum && x->mu == y->mu && x->step_size == y->step_size &&
           a->w_hash == b->w_hash;
}

clattn_status clattn_linear_state_copy(clattn_linear_state *dst, const clattn_linear_state *src,
                                       cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!dst || !src)
        return clattn__fail(dst ? dst->ctx : src ? src->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state copy: dst and src are required");
    clattn_context *ctx = dst->ctx;
    clattn_status status = CLATTN_SUCCESS;
    seq s;
    memset(&s, 0, sizeof s);
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear state copy: num_wait > 0 but wait is NULL");
    CLATTN_CHECK(src->ctx == dst->ctx, CLATTN_INVALID_CONTEXT,
                 "linear state copy: states belong to different contexts");
    CLATTN_CHECK(memcmp(src->shape, dst->shape, sizeof dst->shape) == 0, CLATTN_SHAPE_MISMATCH,
                 "linear state copy: shapes [%zu, %zu, %zu, %zu] and [%zu, %zu, %zu, %zu] differ",
                 src->shape[0], src->shape[1], src->shape[2], src->shape[3], dst->shape[0],
                 dst->shape[1], dst->shape[2], dst->shape[3]);
    CLATTN_CHECK(same_desc(src, dst), CLATTN_INVALID_ARGUMENT,
                 "linear state copy: the two states have different descs (feature map, eps, M, "
                 "momentum or projection)");
    CLATTN_FORWARD(seq_init(&s, ctx, num_wait, wait));
    if (dst == src) { /* nothing to copy, but the caller's wait list and event still hold */
        cl_uint nw;
        const cl_event *w;
        cl_event *evp;
        seq_next(&s, true, event, &nw, &w, &evp);
        CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, nw, w, evp));
        seq_done(&s);
        goto cleanup;
    }
    size_t bh = dst->shape[0] * dst->shape[1];
    cl_mem from[] = {src->sa, src->sb, src->s1, src->u1, src->st};
    cl_mem to[] = {dst->sa, dst->sb, dst->s1, dst->u1, dst->st};
    size_t sizes[] = {dst->bytes, dst->bytes, dst->bytes, dst->bytes, bh * sizeof(cl_uint)};
    for (int i = 0; i < 5; i++)
        if (from[i])
            CLATTN_FORWARD(seq_copy(&s, from[i], to[i], sizes[i], false, NULL));
    CLATTN_FORWARD(seq_copy(&s, src->sr, dst->sr, bh * sizeof(float), true, event));
cleanup:
    seq_end(&s);
    return status;
}

/* Blocking read of one device buffer after everything enqueued before. */
static clattn_status read_buf(clattn_context *ctx, cl_mem b, size_t bytes, void *dst)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, b, CL_TRUE, 0, bytes, dst, 0, NULL, NULL));
cleanup:
    return status;
}

static clattn_status write_buf(clattn_context *ctx, cl_mem b, size_t bytes, const void *src)
{
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, b, CL_TRUE, 0, bytes, src, 0, NULL, NULL));
cleanup:
    return status;
}

clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state read: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t bh = state->shape[0] * state->shape[1], dv = state->shape[3];
    size_t m = state->m, mp = state->mp, dw = state->dw, dvp = state->dvp;
    bool fixed = state->desc.momentum == CLATTN_MOMENTUM_FIXED;
    float *a = malloc(state->bytes), *b = fixed ? malloc(state->bytes) : NULL;
    float *r = malloc(bh * sizeof *r);
    CLATTN_CHECK(a && r && (b || !fixed), CLATTN_OUT_OF_HOST_MEMORY,
                 "linear state read: staging");
    CLATTN_FORWARD(read_buf(ctx, state->sa, state->bytes, a));
    if (fixed)
        CLATTN_FORWARD(read_buf(ctx, state->sb, state->bytes, b));
    CLATTN_FORWARD(read_buf(ctx, state->sr, bh * sizeof *r, r));
    double coef = fixed ? (double)state->desc.step_size / (1.0 - (double)state->desc.mu) : 1.0;
    double mu = fixed ? state->desc.mu : 0.0;
    for (size_t g = 0; g < bh; g++) {
        double sc = isinf(r[g]) && r[g] < 0 ? 0.0 : exp((double)r[g]);
        for (size_t i = 0; i < m; i++) {
            const float *ar = a + (g * mp + i) * dw, *br = b ? b + (g * mp + i) * dw : NULL;
            if (s)
                for (size_t e = 0; e < dv; e++) {
                    double val = br ? coef * ((double)ar[e] - mu * br[e]) : ar[e];
                    s[(g * m + i) * dv + e] = (float)(val * sc);
                }
            if (z)
                z[g * m + i] = (float)(ar[dvp] * sc);
        }
    }
cleanup:
    free(a);
    free(b);
    free(r);
    return status;
}

clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                        const float *z)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear state write: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    float *t = NULL, *r = NULL;
    CLATTN_CHECK(s && z, CLATTN_NULL_POINTER, "linear state write: s and z are required");
    CLATTN_CHECK(state->desc.momentum == CLATTN_MOMENTUM_NONE, CLATTN_UNSUPPORTED,
                 "linear state write: a momentum state cannot be rebuilt from S and z (use "
                 "clattn_linear_state_save / _load)");
    size_t bh = state->shape[0] * state->shape[1], dv = state->shape[3];
    size_t m = state->m, mp = state->mp, dw = state->dw, dvp = state->dvp;
    t = calloc(1, state->bytes);
    r = calloc(bh, sizeof *r);
    CLATTN_CHECK(t && r, CLATTN_OUT_OF_HOST_MEMORY, "linear state write: staging");
    for (size_t g = 0; g < bh; g++)
        for (size_t i = 0; i < m; i++) {
            float *tr = t + (g * mp + i) * dw;
            for (size_t e = 0; e < dv; e++) {
                float x = s[(g * m + i) * dv + e];
                CLATTN_CHECK(isfinite(x), CLATTN_INVALID_ARGUMENT,
                             "linear state write: s[%zu] is not finite", (g * m + i) * dv + e);
                tr[e] = x;
            }
            CLATTN_CHECK(isfinite(z[g * m + i]), CLATTN_INVALID_ARGUMENT,
                         "linear state write: z[%zu] is not finite", g * m + i);
            tr[dvp] = z[g * m + i];
        }
    CLATTN_FORWARD(write_buf(ctx, state->sa, state->bytes, t));
    CLATTN_FORWARD(write_buf(ctx, state->sr, bh * sizeof *r, r));
cleanup:
    free(t);
    free(r);
    return status;
}

/* ---- snapshots: header, then the device buffers in a fixed order, then a checksum ---- */

#define SNAP_MAGIC 0x534c4e5441434c43ull /* "CLATNLS" + 'S', little-endian */
#define SNAP_VERSION 1u

typedef struct snap_header {
    uint64_t magic;
    uint32_t version, feature_map, momentum, reserved;
    float mu, step_size, eps, pad;
    uint64_t shape[4], m, w_hash, payload;
} snap_header;

static size_t snap_payload(const clattn_linear_state *st)
{
    size_t bh = st->shape[0] * st->shape[1], n = st->bytes + bh * sizeof(float);
    if (st->sb)
        n += st->bytes;
    if (st->s1)
        n += 2 * st->bytes + bh * sizeof(cl_uint);
    return n;
}

static void snap_fill_header(const clattn_linear_state *st, snap_header *h)
{
    memset(h, 0, sizeof *h);
    h->magic = SNAP_MAGIC;
    h->version = SNAP_VERSION;
    h->feature_map = (uint32_t)st->desc.feature_map;
    h->momentum = (uint32_t)st->desc.momentum;
    h->mu = st->desc.mu;
    h->step_size = st->desc.step_size;
    h->eps = st->desc.eps;
    for (int i = 0; i < 4; i++)
        h->shape[i] = st->shape[i];
    h->m = st->m;
    h->w_hash = st->w_hash;
    h->payload = snap_payload(st);
}

clattn_status clattn_linear_state_save_size(const clattn_linear_state *state, size_t *bytes)
{
    if (!state || !bytes)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save size: NULL argument");
    *bytes = sizeof(snap_header) + snap_payload(state) + sizeof(uint64_t);
    return CLATTN_SUCCESS;
}

/* The state's buffers in snapshot order, with their sizes. Returns the count. */
static int snap_parts(const clattn_linear_state *st, cl_mem *bufs, size_t *sizes)
{
    size_t bh = st->shape[0] * st->shape[1];
    int n = 0;
    bufs[n] = st->sa, sizes[n++] = st->bytes;
    if (st->sb)
        bufs[n] = st->sb, sizes[n++] = st->bytes;
    if (st->s1) {
        bufs[n] = st->s1, sizes[n++] = st->bytes;
        bufs[n] = st->u1, sizes[n++] = st->bytes;
        bufs[n] = st->st, sizes[n++] = bh * sizeof(cl_uint);
    }
    bufs[n] = st->sr, sizes[n++] = bh * sizeof(float);
    return n;
}

clattn_status clattn_linear_state_save(clattn_linear_state *state, void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state save: NULL argument");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t need = 0;
    clattn_linear_state_save_size(state, &need);
    CLATTN_CHECK(size >= need, CLATTN_BUFFER_TOO_SMALL,
                 "linear state save: %zu bytes given, %zu needed", size, need);
    snap_header h;
    snap_fill_header(state, &h);
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    unsigned char *body = p + sizeof h, *at = body;
    cl_mem bufs[6];
    size_t sizes[6];
    int n = snap_parts(state, bufs, sizes);
    for (int i = 0; i < n; i++) {
        CLATTN_FORWARD(read_buf(ctx, bufs[i], sizes[i], at));
        at += sizes[i];
    }
    uint64_t sum = clattn__hash64(CLATTN__HASH_SEED, p, sizeof h + h.payload);
    memcpy(at, &sum, sizeof sum);
cleanup:
    return status;
}

clattn_status clattn_linear_state_load(clattn_linear_state *state, const void *buf, size_t size)
{
    if (!state || !buf)
        return clattn__fail(state ? state->ctx : NULL, CLATTN_NULL_POINTER,
                            "linear state load: NULL argument");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t need = 0;
    clattn_linear_state_save_size(state, &need);
    CLATTN_CHECK(size >= sizeof(snap_header), CLATTN_BUFFER_TOO_SMALL,
                 "linear state load: %zu bytes is shorter than a snapshot header", size);
    snap_header h, mine;
    memcpy(&h, buf, sizeof h);
    snap_fill_header(state, &mine);
    CLATTN_CHECK(h.magic == SNAP_MAGIC && h.version == SNAP_VERSION, CLATTN_INVALID_ARGUMENT,
                 "linear state load: not a clattn linear-state snapshot (or another version)");
    CLATTN_CHECK(memcmp(&h, &mine, sizeof h) == 0, CLATTN_INVALID_ARGUMENT,
                 "linear state load: the snapshot is of a state with another shape or desc");
    CLATTN_CHECK(size >= need, CLATTN_BUFFER_TOO_SMALL,
                 "linear state load: %zu bytes given, the snapshot needs %zu", size, need);
    const unsigned char *p = buf;
    uint64_t sum;
    memcpy(&sum, p + sizeof h + h.payload, sizeof sum);
    CLATTN_CHECK(sum == clattn__hash64(CLATTN__HASH_SEED, p, sizeof h + h.payload),
                 CLATTN_INVALID_ARGUMENT, "linear state load: checksum mismatch (corrupt)");
    const unsigned char *at = p + sizeof h;
    cl_mem bufs[6];
    size_t sizes[6];
    int n = snap_parts(state, bufs, sizes);
    for (int i = 0; i < n; i++) {
        CLATTN_FORWARD(write_buf(ctx, bufs[i], sizes[i], at));
        at += sizes[i];
    }
cleanup:
    return status;
}

/* Tensors of a prefill (n = their length) or a step (n = 1) against the state's shape. */
static clattn_status check_state_io(clattn_linear_state *state, const clattn_tensor *q,
                                    const clattn_tensor *k, const clattn_tensor *v,
                                    const clattn_tensor *out, bool step)
{
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(q && k && v && (out || !step), CLATTN_NULL_POINTER,
                 "linear %s: q, k, v%s are required", step ? "step" : "prefill",
                 step ? " and out" : "");
    const size_t *sh = state->shape;
    size_t n = step ? 1 : q->shape[2];
    size_t qs[4] = {sh[0], sh[1], n, sh[2]}, vs[4] = {sh[0], sh[1], n, sh[3]};
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", qs, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", qs, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", vs, sizeof(float)));
    CLATTN_FORWARD(check_dims(ctx, q->shape, k->shape, v->shape, 1));
    CLATTN_FORWARD(check_views(ctx, q, k, v, out));
cleanup:
    return status;
}

clattn_status clattn_linear_prefill(clattn_linear_state *state, const clattn_tensor *q,
                                    const clattn_tensor *k, const clattn_tensor *v,
                                    const clattn_tensor *out, cl_uint num_wait,
                                    const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear prefill: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear prefill: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, false));
    lin_bufs b = state_bufs(state);
    lin_job j = {&state->desc, state->w, 1, 0, q, k, v, out, &b};
    status = run_job(ctx, &j, num_wait, wait, event);
cleanup:
    return status;
}

clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear step: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear step: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_state_io(state, q, k, v, out, true));
    lin_bufs b = state_bufs(state);
    lin_job j = {&state->desc, state->w, 0, 1, q, k, v, out, &b};
    status = run_job(ctx, &j, num_wait, wait, event);
cleanup:
    return status;
}
