/* Host side of exact softmax attention: validate, plan (lib/sched), fetch programs, enqueue.
 * The tiled families live in kernels_cl/tiled.cl; the naive baseline (CLBlast GEMMs + a softmax
 * kernel, kernels_cl/naive.cl) shares the plan so benchmarks compare like with like. */
#include "../core/internal.h"
#include "../sched/sched.h"
#include "../tune/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct clattn_plan {
    clattn_context *ctx;
    clattn_attention_desc desc; /* key_lengths retained */
    size_t qshape[4], kshape[4];
    clattn__attn_launch launch;
    float scale;
    size_t npad;           /* keys padded to a multiple of the key block (TILED_CPU) */
    cl_kernel pack, fwd;   /* tiled */
    cl_kernel softmax;     /* naive */
    cl_mem kp, vp;         /* packed K panels and V rows (TILED_CPU) */
    cl_mem scores;         /* Nq x Nk scores of one head (NAIVE) */
    size_t scratch_bytes;
    char options[256];
    bool from_db; /* the launch came from the tuning database */
};

void clattn_attention_desc_init(clattn_attention_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->algorithm = CLATTN_ALGO_AUTO;
}

void clattn_plan_destroy(clattn_plan *plan)
{
    if (!plan)
        return;
    if (plan->pack)
        clReleaseKernel(plan->pack);
    if (plan->fwd)
        clReleaseKernel(plan->fwd);
    if (plan->softmax)
        clReleaseKernel(plan->softmax);
    if (plan->kp)
        clReleaseMemObject(plan->kp);
    if (plan->vp)
        clReleaseMemObject(plan->vp);
    if (plan->scores)
        clReleaseMemObject(plan->scores);
    if (plan->desc.key_lengths)
        clReleaseMemObject(plan->desc.key_lengths);
    free(plan);
}

/* Copies the caller's desc, honouring struct_size so older callers with a shorter struct work. */
static clattn_status read_desc(clattn_context *ctx, const clattn_attention_desc *in,
                               clattn_attention_desc *out)
{
    clattn_attention_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS; /* defaults */
    if (in->struct_size < offsetof(clattn_attention_desc, scale) + sizeof(float) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "attention desc: struct_size %zu is not valid (call "
                            "clattn_attention_desc_init first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (!isfinite(out->scale))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "attention desc: scale is not finite");
    if (out->algorithm < CLATTN_ALGO_AUTO || out->algorithm > CLATTN_ALGO_NAIVE)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "attention desc: unknown algorithm %d",
                            (int)out->algorithm);
    return CLATTN_SUCCESS;
}

static clattn_status check_shapes(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                  const size_t v[4])
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "attention: every shape entry must be >= 1 (q [%zu, %zu, %zu, "
                                "%zu], k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    for (int i = 0; i < 4; i++)
        if (k[i] != v[i])
            return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                                "attention: k [%zu, %zu, %zu, %zu] and v [%zu, %zu, %zu, %zu] "
                                "differ",
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
    if (q[3] > CLATTN__MAX_HEAD_DIM)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "attention: head dim %zu > %d", q[3],
                            CLATTN__MAX_HEAD_DIM);
    /* Kernels index rows and heads with 32-bit integers. */
    const size_t lim = (size_t)1 << 31;
    if (q[0] > (lim - 1) / q[1] || q[2] >= lim || k[2] >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "attention: sizes beyond 2^31");
    return CLATTN_SUCCESS;
}

/* The launch of a new plan: the caller's (tuner), else the tuning database's (AUTO only), else
 * the scheduler's rule. */
static clattn_status choose_launch(clattn_context *ctx, clattn_plan *plan,
                                   const clattn__attn_problem *prob,
                                   const clattn__attn_launch *forced)
{
    char why[160];
    if (forced) {
        if (forced->algo != CLATTN_ALGO_TILED_CPU && forced->algo != CLATTN_ALGO_TILED_GPU &&
            forced->algo != CLATTN_ALGO_NAIVE)
            return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "attention plan: bad launch");
        plan->launch = *forced;
        return CLATTN_SUCCESS;
    }
    if (plan->desc.algorithm == CLATTN_ALGO_AUTO &&
        clattn__tune_launch(ctx, prob, clattn__attention_family(&ctx->info), &plan->launch)) {
        plan->from_db = true;
        return CLATTN_SUCCESS;
    }
    clattn_status status = clattn__schedule_attention(&ctx->info, prob, plan->desc.algorithm,
                                                      &plan->launch, why, sizeof why);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(ctx, status, "attention plan on '%s': %s", ctx->info.name, why);
    return CLATTN_SUCCESS;
}

static clattn_status plan_create(clattn_context *ctx, const clattn_attention_desc *desc,
                                 const size_t q_shape[4], const size_t k_shape[4],
                                 const size_t v_shape[4], const clattn__attn_launch *forced,
                                 clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *plan = NULL;
    cl_program prog = NULL;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "attention plan: ctx is NULL");
    CLATTN_CHECK(out && q_shape && k_shape && v_shape, CLATTN_NULL_POINTER,
                 "attention plan: plan, q_shape, k_shape and v_shape are required");
    *out = NULL;
    plan = calloc(1, sizeof *plan);
    CLATTN_CHECK(plan != NULL, CLATTN_OUT_OF_HOST_MEMORY, "attention plan");
    plan->ctx = ctx;
    CLATTN_FORWARD(read_desc(ctx, desc, &plan->desc));
    plan->desc.key_lengths = NULL; /* retained below, once known to be valid */
    CLATTN_FORWARD(check_shapes(ctx, q_shape, k_shape, v_shape));
    memcpy(plan->qshape, q_shape, sizeof plan->qshape);
    memcpy(plan->kshape, k_shape, sizeof plan->kshape);
    if (desc && desc->key_lengths) {
        size_t sz = 0, need;
        CLATTN_CL(clGetMemObjectInfo(desc->key_lengths, CL_MEM_SIZE, sizeof sz, &sz, NULL));
        CLATTN_CHECK(desc->key_lengths_offset <= SIZE_MAX - q_shape[0] &&
                         clattn__mul_ok(desc->key_lengths_offset + q_shape[0], sizeof(cl_int),
                                        &need) &&
                         need <= sz,
                     CLATTN_BUFFER_TOO_SMALL,
                     "key_lengths: needs %zu int32 from offset %zu, buffer holds %zu bytes",
                     q_shape[0], desc->key_lengths_offset, sz);
        CLATTN_CL(clRetainMemObject(desc->key_lengths));
        plan->desc.key_lengths = desc->key_lengths;
    }
    size_t d = q_shape[3];
    plan->scale = plan->desc.scale != 0.0f ? plan->desc.scale : (float)(1.0 / sqrt((double)d));

    clattn__attn_problem prob = {d, q_shape[2], k_shape[2], plan->desc.causal != 0};
    CLATTN_FORWARD(choose_launch(ctx, plan, &prob, forced));

    const clattn__attn_launch *L = &plan->launch;
    snprintf(plan->options, sizeof plan->options, "%s", L->defines);
    size_t bhk = k_shape[0] * k_shape[1];
    switch (L->algo) {
    case CLATTN_ALGO_TILED_CPU: {
        CLATTN_FORWARD(clattn__program_get(ctx, "tiled.cl", plan->options, &prog));
        CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_tiled_pack_kv", &plan->pack));
        CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_tiled_fwd_cpu", &plan->fwd));
        plan->npad = clattn__div_up(k_shape[2], CLATTN__KEY_BLOCK) * CLATTN__KEY_BLOCK;
        size_t dpad = clattn__div_up(d, 16) * 16, kbytes, vbytes;
        CLATTN_CHECK(clattn__mul_ok(bhk * plan->npad, d * sizeof(float), &kbytes) &&
                         clattn__mul_ok(bhk * plan->npad, dpad * sizeof(float), &vbytes),
                     CLATTN_SIZE_OVERFLOW, "attention plan: packed K/V size overflows");
        CLATTN_FORWARD(clattn__buffer_create(ctx, kbytes, "packed K panels", &plan->kp));
        CLATTN_FORWARD(clattn__buffer_create(ctx, vbytes, "packed V rows", &plan->vp));
        plan->scratch_bytes = kbytes + vbytes;
        break;
    }
    case CLATTN_ALGO_TILED_GPU:
        CLATTN_FORWARD(clattn__program_get(ctx, "tiled.cl", plan->options, &prog));
        CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_tiled_fwd_gpu", &plan->fwd));
        break;
    case CLATTN_ALGO_NAIVE: {
        CLATTN_FORWARD(clattn__program_get(ctx, "naive.cl", plan->options, &prog));
        CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_naive_softmax", &plan->softmax));
        size_t bytes;
        CLATTN_CHECK(clattn__mul_ok(q_shape[2] * k_shape[2], sizeof(float), &bytes),
                     CLATTN_SIZE_OVERFLOW, "attention plan: score matrix size overflows");
        CLATTN_FORWARD(clattn__buffer_create(ctx, bytes, "naive score matrix", &plan->scores));
        plan->scratch_bytes = bytes;
        break;
    }
    default:
        CLATTN_CHECK(0, CLATTN_INVALID_ARGUMENT, "attention plan: no family chosen");
    }
    *out = plan;
    plan = NULL;
cleanup:
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_attention_plan_create(clattn_context *ctx, const clattn_attention_desc *desc,
                                           const size_t q_shape[4], const size_t k_shape[4],
                                           const size_t v_shape[4], clattn_plan **out)
{
    return plan_create(ctx, desc, q_shape, k_shape, v_shape, NULL, out);
}

clattn_status clattn__attention_plan_create_launch(clattn_context *ctx,
                                                   const clattn_attention_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   const clattn__attn_launch *launch,
                                                   clattn_plan **out)
{
    if (!launch)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "attention plan: launch is NULL");
    return plan_create(ctx, desc, q_shape, k_shape, k_shape, launch, out);
}

clattn_status clattn_plan_get_info(const clattn_plan *plan, clattn_plan_info *info)
{
    if (!plan || !info)
        return clattn__fail(plan ? plan->ctx : NULL, CLATTN_NULL_POINTER,
                            "clattn_plan_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    const clattn__attn_launch *L = &plan->launch;
    info->algorithm = L->algo;
    snprintf(info->variant, sizeof info->variant, "%s",
             L->algo == CLATTN_ALGO_TILED_CPU   ? "clattn_tiled_fwd_cpu"
             : L->algo == CLATTN_ALGO_TILED_GPU ? "clattn_tiled_fwd_gpu"
                                                : "clattn_naive_softmax+sgemm");
    info->tile_q = L->tile_q;
    info->tile_kv = L->tile_kv;
    info->rows_per_item = L->rows_per_item;
    info->local_size = L->local_size;
    info->local_mem_bytes = L->local_mem_bytes;
    info->scratch_bytes = plan->scratch_bytes;
    snprintf(info->build_options, sizeof info->build_options, "%s", plan->options);
    info->from_tuning_db = plan->from_db;
    return CLATTN_SUCCESS;
}

/* ---- enqueue ---- */

static clattn_status validate_io(clattn_plan *plan, const clattn_tensor *q,
                                  const clattn_tensor *k, const clattn_tensor *v,
                                  const clattn_tensor *out, const clattn_tensor *lse)
{
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t lshape[4] = {plan->qshape[0], plan->qshape[1], plan->qshape[2], 1};
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", plan->qshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, k, "k", plan->kshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", plan->kshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", plan->qshape, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, out, "out"));
    const clattn_tensor *ins[] = {q, k, v};
    const char *names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++)
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", ins[i], names[i], sizeof(float)));
    if (lse) {
        CLATTN_FORWARD(clattn__tensor_check(ctx, lse, "lse", lshape, sizeof(float)));
        CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, lse, "lse"));
        for (int i = 0; i < 3; i++)
            CLATTN_FORWARD(
                clattn__check_no_alias(ctx, lse, "lse", ins[i], names[i], sizeof(float)));
        CLATTN_FORWARD(clattn__check_no_alias(ctx, lse, "lse", out, "out", sizeof(float)));
    }
    if (plan->desc.key_lengths) {
        clattn_tensor kl = clattn_tensor_make(plan->desc.key_lengths, 1, 1, 1, plan->qshape[0]);
        kl.offset = plan->desc.key_lengths_offset;
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", &kl, "key_lengths", 4));
        if (lse)
            CLATTN_FORWARD(clattn__check_no_alias(ctx, lse, "lse", &kl, "key_lengths", 4));
    }
    if (plan->launch.algo == CLATTN_ALGO_NAIVE) {
        const clattn_tensor *all[] = {q, k, v, out};
        for (int i = 0; i < 4; i++)
            CLATTN_CHECK(all[i]->strides[3] == 1, CLATTN_UNSUPPORTED,
                         "the naive algorithm needs unit stride along D (CLBlast rows)");
    }
cleanup:
    return status;
}

/* The arguments both tiled families take after their K/V inputs, in the same order. */
static void arg_tail(clattn__args *f, const clattn_plan *plan, const clattn_tensor *q,
                     const clattn_tensor *out, const clattn_tensor *lse)
{
    cl_uint hq = (cl_uint)plan->qshape[1], hk = (cl_uint)plan->kshape[1];
    cl_uint nq = (cl_uint)plan->qshape[2], nk = (cl_uint)plan->kshape[2];
    cl_float scale_log2 = plan->scale * 1.4426950408889634f;
    cl_int causal = plan->desc.causal != 0;
    cl_int has_lse = lse != NULL, has_kl = plan->desc.key_lengths != NULL;
    /* Unused buffers still need a valid cl_mem: the kernels never touch them when the flag is 0. */
    cl_mem klbuf = has_kl ? plan->desc.key_lengths : q->buffer;
    cl_ulong kloff = plan->desc.key_lengths_offset;
    clattn__arg_view(f, out);
    clattn__arg_view(f, lse ? lse : out);
    CLATTN_ARG(f, has_lse);
    CLATTN_ARG(f, klbuf);
    CLATTN_ARG(f, kloff);
    CLATTN_ARG(f, has_kl);
    CLATTN_ARG(f, hq);
    CLATTN_ARG(f, hk);
    CLATTN_ARG(f, nq);
    CLATTN_ARG(f, nk);
    CLATTN_ARG(f, scale_log2);
    CLATTN_ARG(f, causal);
}

static clattn_status enqueue_tiled(clattn_plan *plan, const clattn_tensor *q,
                                   const clattn_tensor *k, const clattn_tensor *v,
                                   const clattn_tensor *out, const clattn_tensor *lse,
                                   cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__attn_launch *L = &plan->launch;
    cl_event packed = NULL;
    size_t lo[2] = {L->local_size, 1};
    size_t bh = plan->qshape[0] * plan->qshape[1];
    clattn__args f = {plan->fwd, 0, CL_SUCCESS};
    clattn__arg_view(&f, q);

    if (L->algo == CLATTN_ALGO_TILED_CPU) {
        cl_uint hk = (cl_uint)plan->kshape[1], nk = (cl_uint)plan->kshape[2];
        cl_uint npad = (cl_uint)plan->npad;
        clattn__args a = {plan->pack, 0, CL_SUCCESS};
        clattn__arg_view(&a, k);
        clattn__arg_view(&a, v);
        CLATTN_ARG(&a, hk);
        CLATTN_ARG(&a, nk);
        CLATTN_ARG(&a, npad);
        CLATTN_ARG(&a, plan->kp);
        CLATTN_ARG(&a, plan->vp);
        CLATTN_CL(a.err);
        size_t gp[2] = {plan->npad, plan->kshape[0] * plan->kshape[1]};
        /* An in-order queue already orders pack before forward; only an out-of-order queue
         * needs the event (and PoCL 3.1 can deadlock in clReleaseEvent when several threads
         * enqueue on one queue, so events are not made without need). */
        cl_command_queue_properties qp = 0;
        CLATTN_CL(clGetCommandQueueInfo(ctx->queue, CL_QUEUE_PROPERTIES, sizeof qp, &qp, NULL));
        bool in_order = !(qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
        CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, plan->pack, 2, NULL, gp, NULL, num_wait,
                                         wait, in_order ? NULL : &packed));
        CLATTN_ARG(&f, plan->kp);
        CLATTN_ARG(&f, plan->vp);
        CLATTN_ARG(&f, npad);
        arg_tail(&f, plan, q, out, lse);
        CLATTN_CL(f.err);
        size_t items = clattn__div_up(plan->qshape[2], L->rows_per_item);
        size_t gl[2] = {clattn__div_up(items, L->local_size) * L->local_size, bh};
        CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, plan->fwd, 2, NULL, gl, lo, packed ? 1 : 0,
                                         packed ? &packed : NULL, event));
    } else {
        clattn__arg_view(&f, k);
        clattn__arg_view(&f, v);
        arg_tail(&f, plan, q, out, lse);
        CLATTN_CL(f.err);
        size_t gl[2] = {clattn__div_up(plan->qshape[2], L->local_size) * L->local_size, bh};
        CLATTN_CL(clEnqueueNDRangeKernel(ctx->queue, plan->fwd, 2, NULL, gl, lo, num_wait, wait,
                                         event));
    }
cleanup:
    if (packed)
        clReleaseEvent(packed);
    return status;
}

static clattn_status enqueue_naive(clattn_plan *plan, const clattn_tensor *q,
                                   const clattn_tensor *k, const clattn_tensor *v,
                                   const clattn_tensor *out, const clattn_tensor *lse,
                                   cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t B = plan->qshape[0], hq = plan->qshape[1], group = hq / plan->kshape[1];
    size_t nq = plan->qshape[2], nk = plan->kshape[2], d = plan->qshape[3];
    cl_uint unq = (cl_uint)nq, unk = (cl_uint)nk;
    cl_float scale = plan->scale;
    cl_int causal = plan->desc.causal != 0, has_lse = lse != NULL;
    cl_int has_kl = plan->desc.key_lengths != NULL;
    cl_mem klbuf = has_kl ? plan->desc.key_lengths : q->buffer;
    cl_ulong kloff = plan->desc.key_lengths_offset, zero = 0;
    cl_mem lbuf = lse ? lse->buffer : out->buffer;
    cl_event ev = NULL;

    /* CLBlast takes no wait list: a marker makes the in-order queue wait for the caller's events. */
    if (num_wait > 0)
        CLATTN_CL(clEnqueueMarkerWithWaitList(ctx->queue, num_wait, wait, NULL));
    for (size_t b = 0; b < B; b++) {
        for (size_t h = 0; h < hq; h++) {
            size_t qo = q->offset + b * q->strides[0] + h * q->strides[1];
            size_t ko = k->offset + b * k->strides[0] + (h / group) * k->strides[1];
            size_t vo = v->offset + b * v->strides[0] + (h / group) * v->strides[1];
            size_t oo = out->offset + b * out->strides[0] + h * out->strides[1];
            CLATTN_FORWARD(clattn__sgemm(ctx, true, nq, nk, d, 1.0f, q->buffer, qo,
                                         q->strides[2], k->buffer, ko, k->strides[2], 0.0f,
                                         plan->scores, 0, nk, NULL));
            cl_ulong loff = lse ? lse->offset + b * lse->strides[0] + h * lse->strides[1] : 0;
            cl_uint ub = (cl_uint)b;
            clattn__args a = {plan->softmax, 0, CL_SUCCESS};
            CLATTN_ARG(&a, plan->scores);
            CLATTN_ARG(&a, zero);
            CLATTN_ARG(&a, unq);
            CLATTN_ARG(&a, unk);
            CLATTN_ARG(&a, scale);
            CLATTN_ARG(&a, causal);
            CLATTN_ARG(&a, klbuf);
            CLATTN_ARG(&a, kloff);
            CLATTN_ARG(&a, has_kl);
            CLATTN_ARG(&a, ub);
            CLATTN_ARG(&a, lbuf);
            CLATTN_ARG(&a, loff);
            CLATTN_ARG(&a, has_lse);
            CLATTN_CL(a.err);
            size_t lo = plan->launch.local_size, gl = nq * lo;
            CLATTN_CL(
                clEnqueueNDRangeKernel(ctx->queue, plan->softmax, 1, NULL, &gl, &lo, 0, NULL, NULL));
            bool last = b == B - 1 && h == hq - 1;
            CLATTN_FORWARD(clattn__sgemm(ctx, false, nq, d, nk, 1.0f, plan->scores, 0, nk,
                                         v->buffer, vo, v->strides[2], 0.0f, out->buffer, oo,
                                         out->strides[2], last ? &ev : NULL));
        }
    }
    if (event) {
        *event = ev;
        ev = NULL;
    }
cleanup:
    if (ev)
        clReleaseEvent(ev);
    return status;
}

clattn_status clattn_attention_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                            const clattn_tensor *k, const clattn_tensor *v,
                                            const clattn_tensor *out, const clattn_tensor *lse,
                                            cl_uint num_wait, const cl_event *wait,
                                            cl_event *event)
{
    if (!plan)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "attention enqueue: plan is NULL");
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "attention enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(validate_io(plan, q, k, v, out, lse));
    if (plan->launch.algo == CLATTN_ALGO_NAIVE) {
        CLATTN_CHECK(!lse || lse->strides[2] == 1, CLATTN_UNSUPPORTED,
                     "naive algorithm: lse needs unit row stride");
        status = enqueue_naive(plan, q, k, v, out, lse, num_wait, wait, event);
    } else {
        status = enqueue_tiled(plan, q, k, v, out, lse, num_wait, wait, event);
    }
cleanup:
    return status;
}

clattn_status clattn_attention_enqueue(clattn_context *ctx, const clattn_attention_desc *desc,
                                       const clattn_tensor *q, const clattn_tensor *k,
                                       const clattn_tensor *v, const clattn_tensor *out,
                                       const clattn_tensor *lse, cl_uint num_wait,
                                       const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "attention enqueue: ctx is NULL");
    if (!q || !k || !v || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "attention enqueue: q, k, v and out are required");
    clattn_plan *plan = NULL;
    clattn_status status = clattn_attention_plan_create(ctx, desc, q->shape, k->shape, v->shape,
                                                        &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_attention_plan_enqueue(plan, q, k, v, out, lse, num_wait, wait, event);
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_attention_host(clattn_context *ctx, const clattn_attention_desc *desc,
                                    const size_t q_shape[4], const size_t k_shape[4],
                                    const size_t v_shape[4], const float *q, const float *k,
                                    const float *v, const int32_t *key_lengths, float *out,
                                    float *lse)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL, bl = NULL, bkl = NULL;
    float *tmp_o = NULL, *tmp_l = NULL;
    clattn_attention_desc d;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "attention host: ctx is NULL");
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "attention host: shapes, q, k, v and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_shapes(ctx, q_shape, k_shape, v_shape));
    size_t nq_el, nk_el, nl_el;
    CLATTN_CHECK(clattn__mul_ok(q_shape[0] * q_shape[1], q_shape[2] * q_shape[3], &nq_el) &&
                     clattn__mul_ok(k_shape[0] * k_shape[1], k_shape[2] * k_shape[3], &nk_el) &&
                     nq_el < SIZE_MAX / 4 && nk_el < SIZE_MAX / 4,
                 CLATTN_SIZE_OVERFLOW, "attention host: sizes overflow");
    nl_el = q_shape[0] * q_shape[1] * q_shape[2];
    if (key_lengths) {
        for (size_t b = 0; b < q_shape[0]; b++)
            CLATTN_CHECK(key_lengths[b] >= 0 && (size_t)key_lengths[b] <= k_shape[2],
                         CLATTN_INVALID_ARGUMENT, "key_lengths[%zu] = %d outside [0, %zu]", b,
                         (int)key_lengths[b], k_shape[2]);
        CLATTN_FORWARD(clattn__buffer_upload(ctx, key_lengths, q_shape[0] * sizeof(int32_t), &bkl));
        d.key_lengths = bkl;
        d.key_lengths_offset = 0;
    }
    tmp_o = malloc(nq_el * sizeof(float));
    tmp_l = lse ? malloc(nl_el * sizeof(float)) : NULL;
    CLATTN_CHECK(tmp_o && (!lse || tmp_l), CLATTN_OUT_OF_HOST_MEMORY,
                 "attention host: staging output");
    CLATTN_FORWARD(clattn__buffer_upload(ctx, q, nq_el * sizeof(float), &bq));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, k, nk_el * sizeof(float), &bk));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, v, nk_el * sizeof(float), &bv));
    CLATTN_FORWARD(clattn__buffer_create(ctx, nq_el * sizeof(float), "output", &bo));
    if (lse)
        CLATTN_FORWARD(clattn__buffer_create(ctx, nl_el * sizeof(float), "lse", &bl));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tl = clattn_tensor_make(bl, q_shape[0], q_shape[1], q_shape[2], 1);
    CLATTN_FORWARD(clattn_attention_enqueue(ctx, &d, &tq, &tk, &tv, &to, lse ? &tl : NULL, 0,
                                            NULL, NULL));
    CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, nq_el * sizeof(float), tmp_o, 0,
                                  NULL, NULL));
    if (lse)
        CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bl, CL_TRUE, 0, nl_el * sizeof(float), tmp_l,
                                      0, NULL, NULL));
    memcpy(out, tmp_o, nq_el * sizeof(float));
    if (lse)
        memcpy(lse, tmp_l, nl_el * sizeof(float));
cleanup:
    if (ctx)
        clFinish(ctx->queue); /* buffers below may still be in use by failed-midway commands */
    cl_mem all[] = {bq, bk, bv, bo, bl, bkl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(tmp_o);
    free(tmp_l);
    return status;
}

clattn_status clattn_attention_schedule(const clattn_device_info *device,
                                        const clattn_attention_desc *desc,
                                        const size_t q_shape[4], const size_t k_shape[4],
                                        clattn_plan_info *info)
{
    clattn_attention_desc d;
    char why[160];
    if (!device || !q_shape || !k_shape || !info)
        return CLATTN_NULL_POINTER;
    clattn_status status = read_desc(NULL, desc, &d);
    if (status == CLATTN_SUCCESS)
        status = check_shapes(NULL, q_shape, k_shape, k_shape);
    if (status != CLATTN_SUCCESS)
        return status;
    clattn_plan plan;
    memset(&plan, 0, sizeof plan);
    clattn__attn_problem prob = {q_shape[3], q_shape[2], k_shape[2], d.causal != 0};
    status = clattn__schedule_attention(device, &prob, d.algorithm, &plan.launch, why, sizeof why);
    if (status != CLATTN_SUCCESS)
        return status;
    snprintf(plan.options, sizeof plan.options, "%s", plan.launch.defines);
    return clattn_plan_get_info(&plan, info);
}
