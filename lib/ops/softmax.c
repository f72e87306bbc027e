/* Host side of exact softmax attention: validate, plan (lib/sched), fetch programs; the enqueue
 * side is lib/ops/softmax_enqueue.c (the plan struct both share: lib/ops/softmax_plan.h).
 * The tiled families live in kernels_cl/softmax.cl; the naive baseline (CLBlast GEMMs + a softmax
 * kernel, kernels_cl/softmax.cl) shares the plan so benchmarks compare like with like. */
#include "../core/internal.h"
#include "../sched/sched.h"
#include "../tune/tune.h"
#include "softmax_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bits of softmax_plan.opts: the kernels' opt_flags (kernels_cl/softmax_opts.clh). */
enum {
    OPT_BIAS = 1,
    OPT_MASK = 2,
    OPT_ALIBI = 4,
    OPT_WINDOW = 8,
    OPT_SOFTCAP = 16,
    OPT_SINKS = 32,
    OPT_BLOCKS = 64,
    OPT_QLENS = 128,
    OPT_VARLEN = 256,
    OPT_PAGED = 512,
    OPT_POSITION = 1024 /* position_offset != 0: the kernels take it as opt_pos either way */
};

void clattn_softmax_desc_init(clattn_softmax_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->algorithm = CLATTN_SOFTMAX_AUTO;
    desc->window_left = -1;
    desc->window_right = -1;
}

/* The desc's retained buffers (bias, mask, block mask, slopes, sinks, q_lengths, q_offsets, block
 * table; key_lengths apart). */
static cl_mem *opt_buffers(clattn_softmax_desc *d, int i)
{
    cl_mem *all[8] = {&d->bias.buffer, &d->mask.buffer, &d->block_mask.buffer, &d->alibi_slopes,
                      &d->sinks, &d->q_lengths, &d->q_offsets, &d->block_table.buffer};
    return all[i];
}
#define OPT_BUFFERS 8

static void plan_release(clattn_plan *base)
{
    softmax_plan *plan = (softmax_plan *)base;
    if (plan->desc.key_lengths)
        clReleaseMemObject(plan->desc.key_lengths);
    for (int i = 0; i < OPT_BUFFERS; i++)
        if (*opt_buffers(&plan->desc, i))
            clReleaseMemObject(*opt_buffers(&plan->desc, i));
}

static void plan_info(const clattn_plan *base, clattn_plan_info *info);

static const clattn__plan_ops softmax_ops = {CLATTN_OP_SOFTMAX, plan_release, plan_info};

/* Copies the caller's desc, honouring struct_size so older callers with a shorter struct work. */
clattn_status clattn__softmax_read_desc(clattn_context *ctx, const clattn_softmax_desc *in,
                                        clattn_softmax_desc *out)
{
    clattn_softmax_desc_init(out);
    clattn_status status = clattn__desc_read(ctx, in, out, sizeof *out,
                                             offsetof(clattn_softmax_desc, scale) + sizeof(float),
                                             "softmax desc");
    if (status != CLATTN_SUCCESS)
        return status;
    if (!isfinite(out->scale))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "softmax desc: scale is not finite");
    status = clattn__check_flag(ctx, out->causal, "softmax desc: causal");
    if (status != CLATTN_SUCCESS)
        return status;
    if (out->algorithm < CLATTN_SOFTMAX_AUTO || out->algorithm > CLATTN_SOFTMAX_TILED_GPU_ROWS)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "softmax desc: unknown algorithm %d",
                            (int)out->algorithm);
    const clattn_dtype dts[4] = {out->q_dtype, out->k_dtype, out->v_dtype, out->out_dtype};
    static const char *const names[4] = {"softmax desc: q_dtype", "softmax desc: k_dtype",
                                         "softmax desc: v_dtype", "softmax desc: out_dtype"};
    for (int i = 0; i < 4; i++) {
        clattn_status st = clattn__dtype_check(ctx, dts[i], names[i]);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    status = clattn__check_flag(ctx, out->alibi, "softmax desc: alibi");
    if (status != CLATTN_SUCCESS)
        return status;
    if (!out->alibi && out->alibi_slopes)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "softmax desc: alibi_slopes given but alibi is 0");
    if (out->window_left < -1 || out->window_right < -1)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "softmax desc: window (%d, %d): each side must be >= -1 (-1: unbounded)",
                            out->window_left, out->window_right);
    if (!isfinite(out->softcap) || out->softcap < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "softmax desc: softcap %g must be finite and >= 0 (0: none)",
                            (double)out->softcap);
    if (out->block_mask.buffer) {
        const unsigned bs[2] = {out->block_q, out->block_k};
        for (int i = 0; i < 2; i++)
            if (bs[i] < 16 || bs[i] > 256 || (bs[i] & (bs[i] - 1)))
                return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                    "softmax desc: block_q %u, block_k %u: each must be 16, 32, "
                                    "64, 128 or 256",
                                    out->block_q, out->block_k);
    }
    if (out->q_lengths && out->q_offsets)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "softmax desc: q_lengths and q_offsets exclude each other");
    /* kernels hold positions in int lanes: keep i + Nk - Nq + offset far from 2^31 */
    if (out->position_offset > ((int64_t)1 << 30) || out->position_offset < -((int64_t)1 << 30))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "softmax desc: position_offset %lld is outside [-2^30, 2^30]",
                            (long long)out->position_offset);
    if (out->block_table.buffer) {
        size_t ps = out->page_size;
        if (ps < 16 || ps > 256 || (ps & (ps - 1)))
            return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                "softmax desc: page_size %zu must be 16, 32, 64, 128 or 256", ps);
    }
    return CLATTN_SUCCESS;
}

/* The effective view of an option tensor: each axis of size 1 broadcast to full[i] at stride 0.
 * Checks the element type, that each axis is 1 or full, and that the view fits its buffer. */
static clattn_status opt_view(clattn_context *ctx, const clattn_tensor *t, const char *what,
                              const size_t full[4], bool boolean, clattn_tensor *out)
{
    clattn_status status = CLATTN_SUCCESS;
    if (boolean)
        CLATTN_CHECK(t->dtype == CLATTN_U8, CLATTN_DTYPE_MISMATCH,
                     "%s: dtype %s, but masks are CLATTN_U8", what, clattn_dtype_name(t->dtype));
    else
        CLATTN_CHECK(clattn_dtype_size(t->dtype) != 0 && t->dtype != CLATTN_U8,
                     CLATTN_DTYPE_MISMATCH, "%s: dtype %s, but the bias is f32, f16 or bf16", what,
                     clattn_dtype_name(t->dtype));
    for (int i = 0; i < 4; i++)
        CLATTN_CHECK(t->shape[i] == 1 || t->shape[i] == full[i], CLATTN_SHAPE_MISMATCH,
                     "%s: shape [%zu, %zu, %zu, %zu] does not broadcast to [%zu, %zu, %zu, %zu] "
                     "(each axis 1 or full)",
                     what, t->shape[0], t->shape[1], t->shape[2], t->shape[3], full[0], full[1],
                     full[2], full[3]);
    CLATTN_FORWARD(clattn__tensor_check(ctx, t, what, NULL, clattn_dtype_size(t->dtype)));
    *out = *t;
    for (int i = 0; i < 4; i++) {
        if (t->shape[i] == 1)
            out->strides[i] = 0;
        out->shape[i] = full[i];
    }
cleanup:
    return status;
}

/* A vector of n 4-byte elements (float32 or int32) from `offset` must fit `buf`. */
static clattn_status check_vector(clattn_context *ctx, cl_mem buf, size_t offset, size_t n,
                                  const char *what)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t sz = 0, need;
    CLATTN_CL(clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof sz, &sz, NULL));
    CLATTN_CHECK(offset <= SIZE_MAX - n && clattn__mul_ok(offset + n, sizeof(cl_float), &need) &&
                     need <= sz,
                 CLATTN_BUFFER_TOO_SMALL, "%s: needs %zu 4-byte elements from offset %zu, buffer holds "
                 "%zu bytes", what, n, offset, sz);
cleanup:
    return status;
}

/* The standard ALiBi slopes of Press et al. (get_slopes of the reference code): hq a power of two
 * p: 2^(-8 (h + 1) / p); otherwise the p = 2^floor(log2 hq) slopes for p heads followed by the
 * first hq - p odd-indexed slopes for 2p heads, 2^(-8 (2m + 1) / (2p)). */
static void alibi_slopes(size_t hq, float *out)
{
    size_t p = 1;
    while (p * 2 <= hq)
        p *= 2;
    for (size_t h = 0; h < p && h < hq; h++)
        out[h] = (float)exp2(-8.0 * (double)(h + 1) / (double)p);
    for (size_t m = 0; p + m < hq; m++)
        out[p + m] = (float)exp2(-8.0 * (double)(2 * m + 1) / (double)(2 * p));
}

/* Validates and records the desc's options: `given` holds the caller's option buffers (bias, mask,
 * block mask, slopes, sinks; plan->desc holds NULL there until they are checked and retained). */
static clattn_status plan_options(clattn_context *ctx, softmax_plan *plan,
                                  const cl_mem given[OPT_BUFFERS])
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_softmax_desc *d = &plan->desc;
    size_t B = plan->batch, hq = plan->qshape[1], nq = plan->qshape[2], nk = plan->kshape[2];
    const size_t full[4] = {B, hq, nq, nk};
    if (given[0]) {
        clattn_tensor t = d->bias;
        t.buffer = given[0];
        CLATTN_FORWARD(opt_view(ctx, &t, "softmax bias", full, false, &plan->bias));
        plan->opts |= OPT_BIAS;
    }
    if (given[1]) {
        clattn_tensor t = d->mask;
        t.buffer = given[1];
        CLATTN_FORWARD(opt_view(ctx, &t, "softmax mask", full, true, &plan->mask));
        plan->opts |= OPT_MASK;
    }
    if (given[2]) {
        const size_t bfull[4] = {B, hq, clattn__div_up(nq, d->block_q),
                                 clattn__div_up(nk, d->block_k)};
        clattn_tensor t = d->block_mask;
        t.buffer = given[2];
        CLATTN_FORWARD(opt_view(ctx, &t, "softmax block_mask", bfull, true, &plan->bmask));
        plan->opts |= OPT_BLOCKS;
    }
    if (given[3])
        CLATTN_FORWARD(check_vector(ctx, given[3], d->alibi_slopes_offset, hq, "alibi_slopes"));
    if (given[4])
        CLATTN_FORWARD(check_vector(ctx, given[4], d->sinks_offset, hq, "sinks"));
    if (d->alibi)
        plan->opts |= OPT_ALIBI;
    if (given[4])
        plan->opts |= OPT_SINKS;
    if (d->window_left >= 0 || d->window_right >= 0)
        plan->opts |= OPT_WINDOW;
    if (d->softcap > 0.0f)
        plan->opts |= OPT_SOFTCAP;
    if (given[5]) {
        CLATTN_FORWARD(check_vector(ctx, given[5], d->q_lengths_offset, B, "q_lengths"));
        plan->opts |= OPT_QLENS;
    }
    if (given[6]) {
        CLATTN_FORWARD(check_vector(ctx, given[6], d->q_offsets_offset, B + 1, "q_offsets"));
        plan->opts |= OPT_VARLEN;
    }
    if (given[7]) /* the table's view was checked with the shapes (plan_shapes) */
        plan->opts |= OPT_PAGED;
    if (d->position_offset)
        plan->opts |= OPT_POSITION;
    /* Valid: retain what the plan keeps. */
    for (int i = 0; i < OPT_BUFFERS; i++)
        if (given[i]) {
            CLATTN_CL(clRetainMemObject(given[i]));
            *opt_buffers(d, i) = given[i];
        }
    plan->bias.buffer = d->bias.buffer;
    plan->mask.buffer = d->mask.buffer;
    plan->bmask.buffer = d->block_mask.buffer;
    plan->bt.buffer = d->block_table.buffer;
    if (!plan->opts)
        return CLATTN_SUCCESS;
    /* One buffer for every absent pointer, and the standard slopes when asked. */
    CLATTN_FORWARD(clattn__plan_scratch(&plan->base, 64, "absent option buffers", &plan->dummy));
    float zeros[16] = {0};
    CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, plan->dummy, CL_TRUE, 0, sizeof zeros, zeros, 0,
                                   NULL, NULL));
    plan->slopes = d->alibi_slopes ? d->alibi_slopes : plan->dummy;
    plan->slopes_off = d->alibi_slopes ? d->alibi_slopes_offset : 0;
    if (d->alibi && !d->alibi_slopes) {
        float *sl = malloc(hq * sizeof *sl);
        CLATTN_CHECK(sl != NULL, CLATTN_OUT_OF_HOST_MEMORY, "alibi slopes");
        alibi_slopes(hq, sl);
        status = clattn__plan_scratch(&plan->base, hq * sizeof *sl, "alibi slopes", &plan->slopes);
        if (status == CLATTN_SUCCESS) {
            cl_int err = clEnqueueWriteBuffer(ctx->queue, plan->slopes, CL_TRUE, 0,
                                              hq * sizeof *sl, sl, 0, NULL, NULL);
            if (err != CL_SUCCESS)
                status = clattn__fail(ctx, (clattn_status)err, "writing alibi slopes: %s",
                                      clattn_status_string((clattn_status)err));
        }
        free(sl);
        CLATTN_FORWARD(status);
    }
cleanup:
    return status;
}

clattn_status clattn__softmax_check_shapes(clattn_context *ctx, const size_t q[4],
                                           const size_t k[4], const size_t v[4])
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "attention: every shape entry must be >= 1 (q [%zu, %zu, %zu, "
                                "%zu], k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    for (int i = 0; i < 3; i++)
        if (k[i] != v[i])
            return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                                "attention: k [%zu, %zu, %zu, %zu] and v [%zu, %zu, %zu, %zu] "
                                "differ in batch, heads or keys",
                                k[0], k[1], k[2], k[3], v[0], v[1], v[2], v[3]);
    if (q[0] != k[0])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "attention: batch %zu (q) != %zu (k)",
                            q[0], k[0]);
    if (q[3] != k[3])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "attention: head dim %zu (q) != %zu (k)", q[3], k[3]);
    if (q[1] % k[1] != 0)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "attention: query heads %zu not a multiple of key heads %zu", q[1],
                            k[1]);
    if (q[3] > CLATTN__SOFTMAX_MAX_HEAD_DIM || v[3] > CLATTN__SOFTMAX_MAX_HEAD_DIM)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "attention: head dims %zu (q, k) and %zu (v) must be <= %d", q[3],
                            v[3], CLATTN__SOFTMAX_MAX_HEAD_DIM);
    /* Kernels index rows and heads with 32-bit integers. */
    const size_t lim = (size_t)1 << 31;
    if (q[0] > (lim - 1) / q[1] || q[2] >= lim || k[2] >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "attention: sizes beyond 2^31");
    return CLATTN_SUCCESS;
}

/* The plan's logical shapes from the caller's (q, k, v): packed queries (q_offsets) take B from k
 * or the block table, page pools become {B, Hk, max_pages * page_size, D}. `given` as in
 * plan_options (the caller's q_offsets at 6, block table at 7). */
static clattn_status plan_shapes(clattn_context *ctx, softmax_plan *plan,
                                 const cl_mem given[OPT_BUFFERS], const size_t q[4],
                                 const size_t k[4], const size_t v[4])
{
    clattn_status status = CLATTN_SUCCESS;
    size_t ql[4], kl[4], vl[4];
    memcpy(ql, q, sizeof ql);
    memcpy(kl, k, sizeof kl);
    memcpy(vl, v, sizeof vl);
    memcpy(plan->kin, k, sizeof plan->kin);
    memcpy(plan->vin, v, sizeof plan->vin);
    if (given[7]) {
        clattn_tensor t = plan->desc.block_table;
        t.buffer = given[7];
        size_t ps = plan->desc.page_size;
        CLATTN_CHECK(t.shape[0] == 1 && t.shape[1] == 1 && t.shape[2] >= 1 && t.shape[3] >= 1,
                     CLATTN_SHAPE_MISMATCH,
                     "softmax block_table: shape [%zu, %zu, %zu, %zu], want [1, 1, B, max_pages]",
                     t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
        CLATTN_FORWARD(clattn__tensor_check(ctx, &t, "softmax block_table", NULL, sizeof(cl_int)));
        CLATTN_CHECK(t.shape[3] == 1 || t.strides[3] == 1, CLATTN_UNSUPPORTED,
                     "softmax block_table: a row's entries must be contiguous (stride 1)");
        CLATTN_CHECK(k[0] >= 1 && v[0] >= 1, CLATTN_INVALID_SHAPE,
                     "softmax: the page pools need at least one page");
        CLATTN_CHECK(k[0] == v[0] && k[2] == ps && v[2] == ps, CLATTN_SHAPE_MISMATCH,
                     "softmax paged: k pool [%zu, %zu, %zu, %zu] and v pool [%zu, %zu, %zu, %zu] "
                     "must be [num_pages, Hk, page_size %zu, D or Dv] with the same num_pages",
                     k[0], k[1], k[2], k[3], v[0], v[1], v[2], v[3], ps);
        CLATTN_CHECK(t.shape[3] < ((size_t)1 << 31) / ps && k[0] < ((size_t)1 << 31),
                     CLATTN_INVALID_SHAPE, "softmax paged: pages or slots beyond 2^31");
        kl[0] = vl[0] = t.shape[2];
        kl[2] = vl[2] = t.shape[3] * ps;
        plan->bt = t;
        plan->bt.buffer = NULL; /* set once retained (plan_options) */
    }
    if (given[6]) {
        CLATTN_CHECK(q[0] == 1, CLATTN_SHAPE_MISMATCH,
                     "softmax q_offsets: q must be packed as {1, Hq, T, D}, got batch %zu", q[0]);
        ql[0] = kl[0];
    }
    CLATTN_FORWARD(clattn__softmax_check_shapes(ctx, ql, kl, vl));
    memcpy(plan->qshape, q, sizeof plan->qshape);
    memcpy(plan->kshape, kl, sizeof plan->kshape);
    memcpy(plan->vshape, vl, sizeof plan->vshape);
    plan->batch = kl[0];
cleanup:
    return status;
}

static const char *algo_name(clattn_softmax_algo a)
{
    return a == CLATTN_SOFTMAX_TILED_CPU   ? "tiled_cpu"
           : a == CLATTN_SOFTMAX_TILED_GPU ? "tiled_gpu"
           : a == CLATTN_SOFTMAX_NAIVE     ? "naive"
                                           : "auto";
}

/* The launch of a new plan: the caller's (tuner), else the tuning database's (AUTO only), else
 * the scheduler's rule. Writes who chose it into `by`. */
static clattn_status choose_launch(clattn_context *ctx, softmax_plan *plan,
                                   const clattn__softmax_problem *prob,
                                   const clattn__softmax_launch *forced, const char **by)
{
    char why[160];
    *by = "scheduler";
    if (forced) {
        if (forced->algo != CLATTN_SOFTMAX_TILED_CPU && forced->algo != CLATTN_SOFTMAX_TILED_GPU &&
            forced->algo != CLATTN_SOFTMAX_NAIVE)
            return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "softmax plan: bad launch");
        plan->launch = *forced;
        *by = "caller";
        return CLATTN_SUCCESS;
    }
    /* Tuning entries are keyed by D (= Dv): a plan with Dv != D sizes its V tiles by Dv, so it
     * takes the scheduler's launch. */
    if (plan->desc.algorithm == CLATTN_SOFTMAX_AUTO && plan->dv == prob->head_dim &&
        clattn__tune_launch_typed(ctx, prob, clattn__softmax_family(&ctx->info), plan->dt,
                                  &plan->launch)) {
        plan->base.from_db = true;
        *by = "tuning-db";
        return CLATTN_SUCCESS;
    }
    clattn_status status = clattn__schedule_softmax(&ctx->info, prob, plan->desc.algorithm,
                                                    &plan->launch, why, sizeof why);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(ctx, status, "softmax plan on '%s': %s", ctx->info.name, why);
    if (plan->desc.algorithm != CLATTN_SOFTMAX_AUTO)
        *by = "caller";
    return CLATTN_SUCCESS;
}

/* TILED_CPU's packed panel types. The pack kernel reads K/V once in their types and writes the
 * panels; the main kernel reads each panel once per work-item that owns a query block of the
 * key head: reuse = ceil(Nq / tile_q) * (Hq / Hk). Float32 panels cost one conversion per
 * element (in the pack) and 4 + 4 bytes written + read; half panels cost 2 + 2 bytes and one
 * conversion per element per read. With reuse 1 (decoding-like Nq <= tile_q, no GQA sharing)
 * half panels move fewer bytes for the same conversions, so they are chosen then; otherwise
 * float32 panels, converted once and read many times. */
static void panel_dtypes(const softmax_plan *plan, const clattn__softmax_launch *L,
                         clattn_dtype *kp, clattn_dtype *vp)
{
    size_t per_item = L->local_size ? L->tile_q / L->local_size : 0;
    size_t reuse = clattn__div_up(plan->qshape[2], per_item ? per_item : 1) *
                   (plan->qshape[1] / plan->kshape[1]);
    bool half = reuse <= 1;
    /* CLATTN_SOFTMAX_HALF_PANELS=0/1 forces the choice (for measuring it; not a public knob). */
    const char *force = getenv("CLATTN_SOFTMAX_HALF_PANELS");
    if (force && (force[0] == '0' || force[0] == '1') && force[1] == '\0')
        half = force[0] == '1';
    *kp = half ? plan->dt[1] : CLATTN_F32;
    *vp = half ? plan->dt[2] : CLATTN_F32;
}

/* TILED_CPU's GQA folding and split count (issue 17; lib/sched/sched_softmax.c has the rules):
 * heads fold where no option varies by head within a group (no ALiBi, no sinks, option tensors
 * broadcast over heads, i.e. stride 0 on their head axis), and the splits are counted over the
 * folded work-items (G x Nq rows each, B x Hk of them). 1 and 1 for other families. */
static void cpu_fold_splits(const softmax_plan *plan, const clattn_device_info *dev,
                            const clattn__softmax_problem *prob, unsigned *fold,
                            unsigned *splits)
{
    bool uniform = !(plan->opts & (OPT_ALIBI | OPT_SINKS)) &&
                   (!(plan->opts & OPT_BIAS) || plan->bias.strides[1] == 0) &&
                   (!(plan->opts & OPT_MASK) || plan->mask.strides[1] == 0) &&
                   (!(plan->opts & OPT_BLOCKS) || plan->bmask.strides[1] == 0);
    size_t hq = plan->qshape[1], hk = plan->kshape[1];
    *fold = clattn__softmax_cpu_fold(&plan->launch, prob->nq, hq, hk, uniform);
    clattn__softmax_problem p = *prob;
    p.nq = prob->nq * *fold;
    *splits = clattn__softmax_cpu_splits(dev, &p, &plan->launch, plan->batch * hq / *fold);
}

static clattn_status plan_create(clattn_context *ctx, const clattn_softmax_desc *desc,
                                 const size_t q_shape[4], const size_t k_shape[4],
                                 const size_t v_shape[4], const clattn__softmax_launch *forced,
                                 clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    softmax_plan *plan = NULL;
    const char *by = NULL;

    if (out)
        *out = NULL; /* on every failure */
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "softmax plan: ctx is NULL");
    CLATTN_CHECK(out && q_shape && k_shape && v_shape, CLATTN_NULL_POINTER,
                 "softmax plan: plan, q_shape, k_shape and v_shape are required");
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof *plan, &softmax_ops, &base));
    plan = (softmax_plan *)base;
    /* The copy holds the caller's key_lengths unretained: clear it before acting on a refused desc,
     * or the plan's release would drop a reference it never took (retained below once valid). */
    status = clattn__softmax_read_desc(ctx, desc, &plan->desc);
    plan->desc.key_lengths = NULL;
    /* The option buffers likewise: plan_options records them once they are checked. */
    cl_mem opt_given[OPT_BUFFERS];
    for (int i = 0; i < OPT_BUFFERS; i++) {
        opt_given[i] = *opt_buffers(&plan->desc, i);
        *opt_buffers(&plan->desc, i) = NULL;
    }
    CLATTN_FORWARD(status);
    CLATTN_FORWARD(plan_shapes(ctx, plan, opt_given, q_shape, k_shape, v_shape));
    memcpy(plan->oshape, q_shape, sizeof plan->oshape);
    plan->oshape[3] = plan->dv = v_shape[3];
    CLATTN_FORWARD(plan_options(ctx, plan, opt_given));
    if (desc && desc->key_lengths) {
        size_t sz = 0, need;
        CLATTN_CL(clGetMemObjectInfo(desc->key_lengths, CL_MEM_SIZE, sizeof sz, &sz, NULL));
        CLATTN_CHECK(desc->key_lengths_offset <= SIZE_MAX - plan->batch &&
                         clattn__mul_ok(desc->key_lengths_offset + plan->batch, sizeof(cl_int),
                                        &need) &&
                         need <= sz,
                     CLATTN_BUFFER_TOO_SMALL,
                     "key_lengths: needs %zu int32 from offset %zu, buffer holds %zu bytes",
                     plan->batch, desc->key_lengths_offset, sz);
        CLATTN_CL(clRetainMemObject(desc->key_lengths));
        plan->desc.key_lengths = desc->key_lengths;
    }
    size_t d = q_shape[3];
    plan->scale = plan->desc.scale != 0.0f ? plan->desc.scale : (float)(1.0 / sqrt((double)d));
    plan->dt[0] = plan->desc.q_dtype;
    plan->dt[1] = plan->desc.k_dtype;
    plan->dt[2] = plan->desc.v_dtype;
    plan->dt[3] = plan->desc.out_dtype;
    /* Before any kernel is created: every kernel of the plan gets -DQ_DT=.. -DK_DT=.. etc. */
    const clattn__dtype_role roles[4] = {
        {"Q", plan->dt[0]}, {"K", plan->dt[1]}, {"V", plan->dt[2]}, {"O", plan->dt[3]}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 4));

    clattn__softmax_problem prob = {d, q_shape[2], plan->kshape[2], plan->desc.causal != 0,
                                    plan->dv};
    CLATTN_FORWARD(choose_launch(ctx, plan, &prob, forced, &by));
    /* Every kernel of the plan: -DSOFTMAX_OPTS=1 (and the bias type) when options are on, and
     * V's head dim when it is not D. */
    char optdefs[96] = "";
    /* TILED_CPU plans use the options build of clattn_softmax_fwd_cpu even without options
     * (opt_flags 0): measured on PoCL (2 vCPU Xeon, quiet, B1 H8, same run), that build ran
     * 206-212 GFLOP/s against 136-139 for the plain one at N 1024-4096 D 64 (causal too), f16 207
     * against 136, D 16/128/256 +9/+6/+18%, a single query over 64k keys the same: a code
     * generation difference of PoCL's compiler, not extra work (the options build does more). */
    /* Split-KV plans without options (decoding: bandwidth-bound, where both builds measured the
     * same) keep the plain build: in the options build oclgrind --uninitialized flagged the merge
     * kernel's reads of the partials of such a plan (oclgrind_softmax_split_uninitialized; the
     * forward kernel's own float16-accumulator reports are waived as known false positives;
     * not isolated further). */
    /* TILED_CPU: GQA folding and the split count, decided together (cpu_fold_splits). */
    cpu_fold_splits(plan, &ctx->info, &prob, &plan->fold, &plan->splits);
    plan->optk = plan->opts != 0 ||
                 (plan->launch.algo == CLATTN_SOFTMAX_TILED_CPU && plan->splits <= 1);
    if (plan->optk && !plan->dummy) {
        /* plan_options made none (no option): the absent buffers' stand-in, zeroed (the
         * kernels read its first element for slopes and sinks whatever the flags) */
        float zeros[16] = {0};
        CLATTN_FORWARD(clattn__plan_scratch(base, 64, "absent option buffers", &plan->dummy));
        CLATTN_CL(clEnqueueWriteBuffer(ctx->queue, plan->dummy, CL_TRUE, 0, sizeof zeros, zeros,
                                       0, NULL, NULL));
        plan->slopes = plan->dummy;
        plan->slopes_off = 0;
    }
    if (plan->optk)
        snprintf(optdefs, sizeof optdefs, " -DSOFTMAX_OPTS=1");
    if (plan->opts & OPT_BIAS && plan->bias.dtype != CLATTN_F32)
        snprintf(optdefs + strlen(optdefs), sizeof optdefs - strlen(optdefs), " -DB_DT=%d",
                 (int)plan->bias.dtype);
    if (plan->dv != d)
        snprintf(optdefs + strlen(optdefs), sizeof optdefs - strlen(optdefs),
                 " -DSOFTMAX_HEAD_DIM_V=%zu", plan->dv);

    const clattn__softmax_launch *L = &plan->launch;
    base->algorithm = L->algo;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s", algo_name(L->algo));
    char dtinfo[32] = "";
    clattn__dtype_launch(dtinfo, sizeof dtinfo, plan->dt, 4);
    snprintf(base->launch, sizeof base->launch, "rows=%u tile_q=%u tile_kv=%u wg=%zu%s",
             L->rows_per_item, L->tile_q, L->tile_kv, L->local_size, dtinfo);
    if (L->gpu_dchunk) /* TILED_GPU's register-tiled kernel staging head dims in chunks */
        snprintf(base->launch + strlen(base->launch), sizeof base->launch - strlen(base->launch),
                 " dchunk=%u", L->gpu_dchunk);
    size_t bhk = plan->batch * k_shape[1];
    switch (L->algo) {
    case CLATTN_SOFTMAX_TILED_CPU: {
        /* Packed panels: float32, or K's / V's own half type when every panel is read by one
         * work-item only (see panel_dtypes); -DKP_DT / -DVP_DT name them. */
        clattn_dtype kpdt, vpdt;
        panel_dtypes(plan, L, &kpdt, &vpdt);
        plan->vpdt = vpdt;
        /* Four key panels: the kernel's steps take up to 64 keys (up to D 64, else 32:
         * sched_softmax.c cpu_step_keys) and never test the panel count. */
        plan->npad = clattn__div_up(plan->kshape[2], 4 * CLATTN__KEY_BLOCK) * 4 * CLATTN__KEY_BLOCK;
        /* Split-KV for few queries (the scheduler's S, cpu_fold_splits; -DSOFTMAX_SPLIT=1 only
         * when S > 1) and GQA folding (-DSOFTMAX_GQA_FOLD=G only when G > 1). */
        if (plan->fold > 1) {
            snprintf(plan->launch.defines + strlen(L->defines),
                     sizeof plan->launch.defines - strlen(L->defines), " -DSOFTMAX_GQA_FOLD=%u",
                     plan->fold);
            snprintf(base->launch + strlen(base->launch),
                     sizeof base->launch - strlen(base->launch), " gqa_fold=%u", plan->fold);
        }
        if (plan->splits > 1) {
            plan->split_keys = (unsigned)(clattn__div_up(plan->npad, (size_t)plan->splits *
                                                                         L->tile_kv) *
                                          L->tile_kv);
            snprintf(plan->launch.defines + strlen(L->defines),
                     sizeof plan->launch.defines - strlen(L->defines), " -DSOFTMAX_SPLIT=1");
            snprintf(base->launch + strlen(base->launch),
                     sizeof base->launch - strlen(base->launch), " splits=%u", plan->splits);
        }
        /* K read in place where each KV head's keys meet one query block: G x Nq (folded) or Nq
         * rows fit a work-item's block, so packing K would copy as many bytes as the kernel
         * then reads (decoding); not paged (the pools' rows are scattered), D a multiple of 16.
         * CLATTN_SOFTMAX_K_DIRECT=0 when the plan is made: packed (for measuring and testing;
         * not a public knob). */
        size_t per_item = L->local_size ? L->tile_q / L->local_size : 0;
        plan->k_direct = !clattn__env_is_zero("CLATTN_SOFTMAX_K_DIRECT") &&
                         plan->bt.buffer == NULL && d % 16 == 0 &&
                         q_shape[2] * plan->fold <= per_item;
        char defs[sizeof L->defines + 64 + sizeof optdefs];
        snprintf(defs, sizeof defs, "%s", L->defines);
        if (plan->k_direct) {
            snprintf(defs + strlen(defs), sizeof defs - strlen(defs), " -DSOFTMAX_K_DIRECT=1");
            snprintf(base->launch + strlen(base->launch),
                     sizeof base->launch - strlen(base->launch), " k_direct=1");
        }
        if (kpdt != CLATTN_F32 || vpdt != CLATTN_F32)
            snprintf(defs + strlen(defs), sizeof defs - strlen(defs), " -DKP_DT=%d -DVP_DT=%d",
                     (int)kpdt, (int)vpdt);
        snprintf(defs + strlen(defs), sizeof defs - strlen(defs), "%s", optdefs);
        /* D or Dv above 256: the scheduler's P.V passes (sched_softmax.c, cpu_pv_passes). */
        const char *passes = strstr(L->defines, "-DSOFTMAX_PV_PASSES=");
        if (passes)
            snprintf(base->launch + strlen(base->launch),
                     sizeof base->launch - strlen(base->launch), " pv_passes=%d",
                     atoi(passes + strlen("-DSOFTMAX_PV_PASSES=")));
        CLATTN_FORWARD(clattn__plan_kernel(base, "softmax.cl", defs, "clattn_softmax_pack_kv", 0,
                                           by, &plan->pack));
        CLATTN_FORWARD(clattn__plan_kernel(base, "softmax.cl", defs, "clattn_softmax_fwd_cpu",
                                           L->local_size, by, &plan->fwd));
        if (plan->splits > 1) {
            size_t rows = plan->batch * q_shape[1] * q_shape[2] * plan->splits, abytes, mbytes;
            CLATTN_CHECK(clattn__mul_ok(rows, clattn__div_up(plan->dv, 16) * 16 * sizeof(float),
                                        &abytes) &&
                             clattn__mul_ok(rows, 2 * sizeof(float), &mbytes),
                         CLATTN_SIZE_OVERFLOW, "softmax plan: split partials size overflows");
            CLATTN_FORWARD(clattn__plan_kernel(base, "softmax.cl", defs,
                                               "clattn_softmax_split_merge", 0, by, &plan->merge));
            CLATTN_FORWARD(clattn__plan_scratch(base, abytes, "split-KV partial rows",
                                                &plan->part_acc));
            CLATTN_FORWARD(clattn__plan_scratch(base, mbytes, "split-KV partial max and sum",
                                                &plan->part_ml));
        }
        size_t dpad = clattn__div_up(plan->dv, 16) * 16, kbytes, vbytes;
        CLATTN_CHECK(clattn__mul_ok(bhk * plan->npad, d * clattn_dtype_size(kpdt), &kbytes) &&
                         clattn__mul_ok(bhk * plan->npad, dpad * clattn_dtype_size(vpdt), &vbytes),
                     CLATTN_SIZE_OVERFLOW, "softmax plan: packed K/V size overflows");
        plan->kp_bytes = kbytes;
        if (!plan->k_direct) /* else allocated by the first enqueue that packs K (k_in_place) */
            CLATTN_FORWARD(clattn__plan_scratch(base, kbytes, "packed K panels", &plan->kp));
        /* The packed V rows only when an enqueue needs them (softmax_enqueue.c, v_in_place):
         * most calls read V in place. */
        plan->vp_bytes = vbytes;
        plan->pack_v_always = clattn__env_is_zero("CLATTN_SOFTMAX_V_DIRECT");
        break;
    }
    case CLATTN_SOFTMAX_TILED_GPU: {
        /* gpu_tx != 0: the register-tiled kernel; else the one-row-per-work-item one. */
        /* Split-KV for few queries (issue 17; register-tiled kernel only): S key ranges of
         * split_keys keys (whole key tiles), partial rows merged by clattn_softmax_split_merge
         * (softmax.cl, built with the head dims, element types and options of the plan). */
        plan->splits = clattn__softmax_gpu_splits(&ctx->info, &prob, L, plan->batch * q_shape[1]);
        /* Not with q_offsets yet: clattn_softmax_split_merge places packed rows (the CPU
         * family's change), but the GPU kernel's split partials of packed sequences are untested:
         * such plans stay unsplit (packed batches mix prefills: rarely few queries anyway). */
        if (plan->opts & OPT_VARLEN)
            plan->splits = 1;
        char sdefs[24] = "";
        if (plan->splits > 1) {
            plan->split_keys = (unsigned)(clattn__div_up(plan->kshape[2], (size_t)plan->splits *
                                                                              L->tile_kv) *
                                          L->tile_kv);
            snprintf(sdefs, sizeof sdefs, " -DSOFTMAX_SPLIT=1");
            snprintf(base->launch + strlen(base->launch),
                     sizeof base->launch - strlen(base->launch), " splits=%u", plan->splits);
        }
        char defs[sizeof L->defines + sizeof optdefs + sizeof sdefs];
        snprintf(defs, sizeof defs, "%s%s%s", L->defines, optdefs, sdefs);
        CLATTN_FORWARD(clattn__plan_kernel(
            base, L->gpu_tx ? "softmax_gpu.cl" : "softmax.cl", defs,
            L->gpu_tx ? "clattn_softmax_fwd_gpu_rt" : "clattn_softmax_fwd_gpu", L->local_size, by,
            &plan->fwd));
        if (plan->splits > 1) {
            char mdefs[48 + sizeof optdefs + sizeof sdefs];
            snprintf(mdefs, sizeof mdefs, "-DSOFTMAX_HEAD_DIM=%zu%s%s", d, optdefs, sdefs);
            size_t rows = plan->batch * q_shape[1] * q_shape[2] * plan->splits, abytes, mbytes;
            CLATTN_CHECK(clattn__mul_ok(rows, clattn__div_up(plan->dv, 16) * 16 * sizeof(float),
                                        &abytes) &&
                             clattn__mul_ok(rows, 2 * sizeof(float), &mbytes),
                         CLATTN_SIZE_OVERFLOW, "softmax plan: split partials size overflows");
            CLATTN_FORWARD(clattn__plan_kernel(base, "softmax.cl", mdefs,
                                               "clattn_softmax_split_merge", 0, by, &plan->merge));
            CLATTN_FORWARD(clattn__plan_scratch(base, abytes, "split-KV partial rows",
                                                &plan->part_acc));
            CLATTN_FORWARD(clattn__plan_scratch(base, mbytes, "split-KV partial max and sum",
                                                &plan->part_ml));
        }
        break;
    }
    case CLATTN_SOFTMAX_NAIVE: {
        /* The row kernel only sees the float32 score matrix: built without the element-type
         * defines (as the core builds its cast kernels), so half plans share the f32 program. */
        char saved[sizeof base->dtype_defines];
        memcpy(saved, base->dtype_defines, sizeof saved);
        base->dtype_defines[0] = '\0';
        char defs[sizeof L->defines + sizeof optdefs];
        snprintf(defs, sizeof defs, "%s%s", L->defines, optdefs);
        status = clattn__plan_kernel(base, "softmax.cl", defs, "clattn_softmax_naive_rows",
                                     L->local_size, by, &plan->softmax);
        memcpy(base->dtype_defines, saved, sizeof saved);
        CLATTN_FORWARD(status);
        /* CLBlast needs each (b, h)'s query rows at an offset known on the host. */
        CLATTN_CHECK(!(plan->opts & OPT_VARLEN), CLATTN_UNSUPPORTED,
                     "softmax plan: the naive algorithm does not take q_offsets (packed queries); "
                     "use q_lengths with padded queries, or a tiled algorithm");
        size_t bytes;
        CLATTN_CHECK(clattn__mul_ok(q_shape[2] * plan->kshape[2], sizeof(float), &bytes),
                     CLATTN_SIZE_OVERFLOW, "softmax plan: score matrix size overflows");
        CLATTN_FORWARD(clattn__plan_scratch(base, bytes, "naive score matrix", &plan->scores));
        /* CLBlast takes float32: half q, k, v are staged into dense float32 scratch, and a half
         * out is computed into float32 scratch and cast into the caller's view. Paged K/V are
         * gathered from the pools into dense float32 scratch (clattn_softmax_gather_paged). */
        bool paged = plan->bt.buffer != NULL;
        if (paged)
            CLATTN_FORWARD(clattn__plan_kernel(base, "softmax.cl", defs,
                                               "clattn_softmax_gather_paged", 0, by,
                                               &plan->gather));
        const size_t *shp[4] = {q_shape, plan->kshape, plan->vshape, plan->oshape};
        static const char *const what[4] = {"naive float32 q", "naive float32 k",
                                            "naive float32 v", "naive float32 out"};
        for (int i = 0; i < 4; i++) {
            bool gathered = paged && (i == 1 || i == 2);
            if (plan->dt[i] == CLATTN_F32 && !gathered)
                continue;
            size_t n;
            CLATTN_CHECK(clattn__mul_ok(shp[i][0] * shp[i][1], shp[i][2] * shp[i][3], &n) &&
                             clattn__mul_ok(n, sizeof(float), &bytes),
                         CLATTN_SIZE_OVERFLOW, "softmax plan: staging size overflows");
            if (!gathered)
                CLATTN_FORWARD(clattn__plan_cast_kernel(base, i < 3 ? plan->dt[i] : CLATTN_F32,
                                                        i < 3 ? CLATTN_F32 : plan->dt[i],
                                                        &plan->cast[i]));
            CLATTN_FORWARD(clattn__plan_scratch(base, bytes, what[i], &plan->staged[i]));
        }
        break;
    }
    default:
        CLATTN_CHECK(0, CLATTN_INVALID_ARGUMENT, "softmax plan: no family chosen");
    }
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_softmax_plan_create(clattn_context *ctx, const clattn_softmax_desc *desc,
                                         const size_t q_shape[4], const size_t k_shape[4],
                                         const size_t v_shape[4], clattn_plan **out)
{
    return plan_create(ctx, desc, q_shape, k_shape, v_shape, NULL, out);
}

clattn_status clattn__softmax_plan_create_launch(clattn_context *ctx,
                                                 const clattn_softmax_desc *desc,
                                                 const size_t q_shape[4],
                                                 const size_t k_shape[4],
                                                 const clattn__softmax_launch *launch,
                                                 clattn_plan **out)
{
    if (!launch)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "softmax plan: launch is NULL");
    return plan_create(ctx, desc, q_shape, k_shape, k_shape, launch, out);
}

/* The softmax-specific fields of the plan info, from a launch. */
static void launch_info(const clattn__softmax_launch *L, clattn_plan_info *info)
{
    info->algorithm = L->algo;
    snprintf(info->algorithm_name, sizeof info->algorithm_name, "%s", algo_name(L->algo));
    snprintf(info->variant, sizeof info->variant, "%s",
             L->algo == CLATTN_SOFTMAX_TILED_CPU   ? "clattn_softmax_fwd_cpu"
             : L->algo == CLATTN_SOFTMAX_TILED_GPU
                 ? (L->gpu_tx ? "clattn_softmax_fwd_gpu_rt" : "clattn_softmax_fwd_gpu")
                 : "clattn_softmax_naive_rows+sgemm");
    info->tile_q = L->tile_q;
    info->tile_kv = L->tile_kv;
    info->rows_per_item = L->rows_per_item;
    info->local_size = L->local_size;
    info->local_mem_bytes = L->local_mem_bytes;
    snprintf(info->build_options, sizeof info->build_options, "%s", L->defines);
}

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    launch_info(&((const softmax_plan *)base)->launch, info);
}

clattn_status clattn_softmax_schedule(const clattn_device_info *device,
                                      const clattn_softmax_desc *desc, const size_t q_shape[4],
                                      const size_t k_shape[4], clattn_plan_info *info)
{
    clattn_softmax_desc d;
    char why[160] = "";
    /* No context here: messages go to the thread's (clattn_context_last_error(NULL)). */
    if (!device || !q_shape || !k_shape || !info)
        return clattn__fail(NULL, CLATTN_NULL_POINTER,
                            "softmax schedule: device, q_shape, k_shape and info are required");
    clattn_status status = clattn__softmax_read_desc(NULL, desc, &d);
    if (status == CLATTN_SUCCESS)
        status = clattn__softmax_check_shapes(NULL, q_shape, k_shape, k_shape);
    if (status != CLATTN_SUCCESS)
        return status;
    clattn__softmax_launch L;
    clattn__softmax_problem prob = {q_shape[3], q_shape[2], k_shape[2], d.causal != 0, 0};
    const clattn_dtype dts[4] = {d.q_dtype, d.k_dtype, d.v_dtype, d.out_dtype};
    status = clattn__schedule_softmax(device, &prob, d.algorithm, &L, why, sizeof why);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(NULL, status, "softmax schedule on '%s': %s", device->name, why);
    memset(info, 0, sizeof *info);
    info->op = CLATTN_OP_SOFTMAX;
    launch_info(&L, info);
    char dtinfo[32] = "";
    clattn__dtype_launch(dtinfo, sizeof dtinfo, dts, 4);
    snprintf(info->launch, sizeof info->launch, "rows=%u tile_q=%u tile_kv=%u wg=%zu%s",
             L.rows_per_item, L.tile_q, L.tile_kv, L.local_size, dtinfo);
    if (L.gpu_dchunk)
        snprintf(info->launch + strlen(info->launch), sizeof info->launch - strlen(info->launch),
                 " dchunk=%u", L.gpu_dchunk);
    /* GQA folding and splits as plan_create decides them (cpu_fold_splits), options counted as
     * present where the desc names their buffers. */
    const clattn_tensor *ot[3] = {&d.bias, &d.mask, &d.block_mask};
    bool uniform = !d.alibi && !d.sinks;
    for (int i = 0; i < 3; i++)
        uniform = uniform && (!ot[i]->buffer || ot[i]->shape[1] == 1 || ot[i]->strides[1] == 0);
    unsigned fold = clattn__softmax_cpu_fold(&L, q_shape[2], q_shape[1], k_shape[1], uniform);
    clattn__softmax_problem pf = prob;
    pf.nq = prob.nq * fold;
    unsigned splits = clattn__softmax_cpu_splits(device, &pf, &L, q_shape[0] * q_shape[1] / fold);
    if (fold > 1) {
        snprintf(info->launch + strlen(info->launch), sizeof info->launch - strlen(info->launch),
                 " gqa_fold=%u", fold);
        snprintf(info->build_options + strlen(info->build_options),
                 sizeof info->build_options - strlen(info->build_options),
                 " -DSOFTMAX_GQA_FOLD=%u", fold);
    }
    if (splits <= 1 && !d.q_offsets) /* TILED_GPU's register-tiled kernel (as plan_create) */
        splits = clattn__softmax_gpu_splits(device, &prob, &L, q_shape[0] * q_shape[1]);
    if (splits > 1) { /* as plan_create records it */
        snprintf(info->launch + strlen(info->launch), sizeof info->launch - strlen(info->launch),
                 " splits=%u", splits);
        snprintf(info->build_options + strlen(info->build_options),
                 sizeof info->build_options - strlen(info->build_options), " -DSOFTMAX_SPLIT=1");
    }
    return CLATTN_SUCCESS;
}
