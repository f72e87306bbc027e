/* Host side of Transformer-MGK (include/clattn/mgk.h): validate, plan (lib/sched/sched_mgk.c),
 * fetch programs, enqueue the kernels of kernels_cl/mgk.cl. */
#include "mgk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef clattn__mgk_plan mgk_plan;

void clattn_mgk_desc_init(clattn_mgk_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->form = CLATTN_MGK_SOFTMAX;
    desc->eps = 1e-5f;
    desc->algorithm = CLATTN_MGK_AUTO;
}

static void plan_release(clattn_plan *base)
{
    mgk_plan *plan = (mgk_plan *)base;
    if (plan->desc.key_lengths)
        clReleaseMemObject(plan->desc.key_lengths);
    clattn_plan_destroy(plan->lin);
}

static void plan_info(const clattn_plan *base, clattn_plan_info *info);

static const clattn__plan_ops mgk_ops = {CLATTN_OP_MGK, plan_release, plan_info};

clattn_status clattn__mgk_read_desc(clattn_context *ctx, const clattn_mgk_desc *in,
                                    clattn_mgk_desc *out)
{
    clattn_mgk_desc_init(out);
    clattn_status status = clattn__desc_read(ctx, in, out, sizeof *out,
                                             offsetof(clattn_mgk_desc, form) +
                                                 sizeof(clattn_mgk_form),
                                             "mgk desc");
    if (status != CLATTN_SUCCESS)
        return status;
    if (out->form != CLATTN_MGK_SOFTMAX && out->form != CLATTN_MGK_LINEAR)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "mgk desc: unknown form %d",
                            (int)out->form);
    for (int r = 0; r < CLATTN_MGK_MAX_COMPONENTS; r++)
        if (!isfinite(out->sigma[r]) || out->sigma[r] < 0.0f)
            return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                                "mgk desc: sigma[%d] = %g is not finite and >= 0 (0: default)", r,
                                (double)out->sigma[r]);
    if (!isfinite(out->eps) || out->eps < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "mgk desc: eps %g is not finite and >= 0",
                            (double)out->eps);
    status = clattn__check_flag(ctx, out->causal, "mgk desc: causal");
    if (status != CLATTN_SUCCESS)
        return status;
    if (out->algorithm < CLATTN_MGK_AUTO || out->algorithm > CLATTN_MGK_LINEAR_SCAN)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "mgk desc: unknown algorithm %d",
                            (int)out->algorithm);
    if (out->form == CLATTN_MGK_LINEAR && out->key_lengths)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "mgk desc: key_lengths apply to the softmax form only");
    const clattn_dtype dts[5] = {out->q_dtype, out->k_dtype, out->v_dtype, out->pi_dtype,
                                 out->out_dtype};
    static const char *const names[5] = {"mgk desc q_dtype", "mgk desc k_dtype",
                                         "mgk desc v_dtype", "mgk desc pi_dtype",
                                         "mgk desc out_dtype"};
    for (int i = 0; i < 5; i++) {
        status = clattn__dtype_check(ctx, dts[i], names[i]);
        if (status != CLATTN_SUCCESS)
            return status;
    }
    return CLATTN_SUCCESS;
}

/* The one-shot's and the host call's element types: the tensors' (NULL: float32 everywhere). */
static void set_dtypes(clattn_mgk_desc *d, const clattn_tensor *q, const clattn_tensor *k,
                       const clattn_tensor *v, const clattn_tensor *pi, const clattn_tensor *out)
{
    d->q_dtype = q ? q->dtype : CLATTN_F32;
    d->k_dtype = k ? k->dtype : CLATTN_F32;
    d->v_dtype = v ? v->dtype : CLATTN_F32;
    d->pi_dtype = pi ? pi->dtype : CLATTN_F32;
    d->out_dtype = out ? out->dtype : CLATTN_F32;
}

/* R from the shapes; SHAPE_MISMATCH / INVALID_SHAPE with a message. */
static clattn_status check_shapes(clattn_context *ctx, const clattn_mgk_desc *d, const size_t q[4],
                                  const size_t k[4], size_t *r)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "mgk: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "k [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3]);
    if (q[0] != k[0])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "mgk: batch %zu (q) != %zu (k)", q[0],
                            k[0]);
    if (q[3] != k[3])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH, "mgk: head dim %zu (q) != %zu (k)", q[3],
                            k[3]);
    if (k[1] % q[1] != 0 || k[1] / q[1] > CLATTN_MGK_MAX_COMPONENTS)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "mgk: k's dimension 1 (%zu) must be H * R with H = %zu (q's heads) and "
                            "1 <= R <= %d",
                            k[1], q[1], CLATTN_MGK_MAX_COMPONENTS);
    if (q[3] > CLATTN__MAX_HEAD_DIM)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "mgk: head dim %zu > %d", q[3],
                            CLATTN__MAX_HEAD_DIM);
    const size_t lim = (size_t)1 << 31;
    if (q[0] > (lim - 1) / q[1] || q[2] >= lim || k[2] >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "mgk: sizes beyond 2^31");
    if (d->form == CLATTN_MGK_LINEAR && d->causal && q[2] != k[2])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "mgk: the causal linear form needs Nq = Nk (%zu, %zu)", q[2], k[2]);
    *r = k[1] / q[1];
    return CLATTN_SUCCESS;
}

static const char *algo_name(clattn_mgk_algo a)
{
    return a == CLATTN_MGK_TILED_CPU   ? "tiled_cpu"
           : a == CLATTN_MGK_TILED_GPU ? "tiled_gpu"
           : a == CLATTN_MGK_LINEAR_SCAN ? "linear_scan"
                                         : "auto";
}

static clattn_status retain_key_lengths(clattn_context *ctx, mgk_plan *plan,
                                        const clattn_mgk_desc *desc)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t sz = 0, need;
    CLATTN_CL(clGetMemObjectInfo(desc->key_lengths, CL_MEM_SIZE, sizeof sz, &sz, NULL));
    CLATTN_CHECK(desc->key_lengths_offset <= SIZE_MAX - plan->qshape[0] &&
                     clattn__mul_ok(desc->key_lengths_offset + plan->qshape[0], sizeof(cl_int),
                                    &need) &&
                     need <= sz,
                 CLATTN_BUFFER_TOO_SMALL,
                 "key_lengths: needs %zu int32 from offset %zu, buffer holds %zu bytes",
                 plan->qshape[0], desc->key_lengths_offset, sz);
    CLATTN_CL(clRetainMemObject(desc->key_lengths));
    plan->desc.key_lengths = desc->key_lengths;
cleanup:
    return status;
}

/* Kernels and scratch of the chosen launch. */
static clattn_status bake(mgk_plan *plan, int stateful)
{
    clattn_plan *base = &plan->base;
    clattn_context *ctx = base->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__mgk_launch *L = &plan->launch;
    const char *by = plan->desc.algorithm == CLATTN_MGK_AUTO ? "scheduler" : "caller";
    size_t bh = plan->qshape[0] * plan->qshape[1], d = plan->qshape[3], r = plan->r;
    size_t nq = plan->qshape[2], nk = plan->kshape[2], b1, b2, b3;

    float c2[CLATTN_MGK_MAX_COMPONENTS];
    for (size_t i = 0; i < r; i++) {
        double s = plan->desc.sigma[i] > 0.0f ? plan->desc.sigma[i] : pow((double)d, 0.25);
        c2[i] = (float)(1.4426950408889634 / (s * s));
        CLATTN_CHECK(isfinite(c2[i]) && c2[i] > 0.0f, CLATTN_INVALID_ARGUMENT,
                     "mgk desc: sigma[%zu] = %g gives 1/sigma^2 out of float range", i, s);
    }
    CLATTN_FORWARD(clattn__plan_upload(base, c2, r * sizeof(float), "mgk 1/sigma^2", &plan->c2));
    const clattn__dtype_role roles[5] = {{"Q", plan->desc.q_dtype},
                                         {"K", plan->desc.k_dtype},
                                         {"PI", plan->desc.pi_dtype},
                                         {"V", plan->desc.v_dtype},
                                         {"O", plan->desc.out_dtype}};
    /* The linear form's plan (not a state's) hands v and out to its inner linear plan, baked for
     * their types: its features kernel is built for the types of q, k and pi only, so the
     * programs of plans differing in v or out alone are shared. */
    bool inner = L->algo == CLATTN_MGK_LINEAR_SCAN && !stateful;
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, inner ? 3 : 5));

    if (L->algo == CLATTN_MGK_LINEAR_SCAN) {
        CLATTN_FORWARD(clattn__plan_kernel(base, "mgk.cl", L->defines, "clattn_mgk_lin_features",
                                           0, by, &plan->feat));
        if (stateful) {
            CLATTN_FORWARD(clattn__plan_kernel(base, "mgk.cl", L->defines, "clattn_mgk_lin_scan", 0,
                                               by, &plan->scan));
        } else {
            /* The features are non-negative and already mapped: the linear family's plan with the
             * identity map computes phi(q)^T S / (phi(q)^T z + eps) with its own algorithms. It
             * reads the float32 features and the caller's v and writes the caller's out, in
             * their types. */
            clattn_linear_desc ld;
            clattn_linear_desc_init(&ld);
            ld.feature_map = CLATTN_LINEAR_FEATURE_IDENTITY;
            ld.causal = plan->desc.causal;
            ld.eps = plan->desc.eps;
            ld.v_dtype = plan->desc.v_dtype;
            ld.out_dtype = plan->desc.out_dtype;
            size_t lq[4] = {plan->qshape[0], plan->qshape[1], nq, d};
            CLATTN_FORWARD(clattn_linear_plan_create(ctx, &ld, lq, plan->vshape, plan->vshape,
                                                     &plan->lin));
        }
        CLATTN_CHECK(clattn__mul_ok(bh * nq, d * sizeof(float), &b1) &&
                         clattn__mul_ok(bh * nk, d * sizeof(float), &b2),
                     CLATTN_SIZE_OVERFLOW, "mgk plan: feature sizes overflow");
        CLATTN_FORWARD(clattn__plan_scratch(base, b1, "mgk query features", &plan->fq));
        CLATTN_FORWARD(clattn__plan_scratch(base, b2, "mgk key features", &plan->fk));
        goto cleanup;
    }
    CLATTN_FORWARD(clattn__plan_kernel(base, "mgk.cl", L->defines, "clattn_mgk_pack", 0, by,
                                       &plan->pack));
    CLATTN_FORWARD(clattn__plan_kernel(base, "mgk.cl", L->defines,
                                       L->algo == CLATTN_MGK_TILED_CPU ? "clattn_mgk_fwd_cpu"
                                                                       : "clattn_mgk_fwd_gpu",
                                       L->local_size, by, &plan->fwd));
    plan->npad = clattn__div_up(nk, CLATTN__KEY_BLOCK) * CLATTN__KEY_BLOCK;
    size_t dpad = clattn__div_up(d, 16) * 16;
    CLATTN_CHECK(clattn__mul_ok(bh * r * plan->npad, d * sizeof(float), &b1) &&
                     clattn__mul_ok(bh * r, plan->npad * sizeof(float), &b2) &&
                     clattn__mul_ok(bh * plan->npad, dpad * sizeof(float), &b3),
                 CLATTN_SIZE_OVERFLOW, "mgk plan: packed K/V size overflows");
    CLATTN_FORWARD(clattn__plan_scratch(base, b1, "mgk packed K panels", &plan->kp));
    CLATTN_FORWARD(clattn__plan_scratch(base, b2, "mgk key biases", &plan->a2));
    CLATTN_FORWARD(clattn__plan_scratch(base, b3, "mgk packed V rows", &plan->vp));
cleanup:
    return status;
}

clattn_status clattn_mgk_plan_create(clattn_context *ctx, const clattn_mgk_desc *desc,
                                     const size_t q_shape[4], const size_t k_shape[4],
                                     clattn_plan **out)
{
    return clattn__mgk_plan_create(ctx, desc, q_shape, k_shape, 0, out);
}

clattn_status clattn__mgk_plan_create(clattn_context *ctx, const clattn_mgk_desc *desc,
                                      const size_t q_shape[4], const size_t k_shape[4],
                                      int stateful, clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    mgk_plan *plan = NULL;
    char why[160];

    if (out)
        *out = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "mgk plan: ctx is NULL");
    CLATTN_CHECK(out && q_shape && k_shape, CLATTN_NULL_POINTER,
                 "mgk plan: plan, q_shape and k_shape are required");
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof *plan, &mgk_ops, &base));
    plan = (mgk_plan *)base;
    clattn_mgk_desc rd;
    CLATTN_FORWARD(clattn__mgk_read_desc(ctx, desc, &rd));
    plan->desc = rd;
    plan->desc.key_lengths = NULL; /* retained below, once known to be valid: the plan releases
                                    * only a buffer it retained */
    CLATTN_FORWARD(check_shapes(ctx, &plan->desc, q_shape, k_shape, &plan->r));
    memcpy(plan->qshape, q_shape, sizeof plan->qshape);
    memcpy(plan->kshape, k_shape, sizeof plan->kshape);
    size_t vs[4] = {q_shape[0], q_shape[1], k_shape[2], q_shape[3]};
    size_t ps[4] = {1, q_shape[1], plan->r, k_shape[2]};
    memcpy(plan->vshape, vs, sizeof vs);
    memcpy(plan->pshape, ps, sizeof ps);
    if (desc && desc->key_lengths)
        CLATTN_FORWARD(retain_key_lengths(ctx, plan, desc));

    clattn__mgk_problem prob = {q_shape[3], plan->r, q_shape[2], k_shape[2],
                                plan->desc.causal != 0, plan->desc.form == CLATTN_MGK_LINEAR};
    status = clattn__schedule_mgk(&ctx->info, &prob, plan->desc.algorithm, &plan->launch, why,
                                  sizeof why);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "mgk plan on '%s': %s", ctx->info.name, why);
    const clattn__mgk_launch *L = &plan->launch;
    base->algorithm = L->algo;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s", algo_name(L->algo));
    const clattn_dtype dts[5] = {plan->desc.q_dtype, plan->desc.k_dtype, plan->desc.v_dtype,
                                 plan->desc.pi_dtype, plan->desc.out_dtype};
    char dl[16];
    clattn__dtype_launch(dl, sizeof dl, dts, 5);
    snprintf(base->launch, sizeof base->launch, "R=%zu rows=%u step=%u tile_kv=%u wg=%zu%s",
             plan->r, L->rows_per_item, L->step_blocks, L->tile_kv, L->local_size, dl);
    CLATTN_FORWARD(bake(plan, stateful));
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const mgk_plan *plan = (const mgk_plan *)base;
    const clattn__mgk_launch *L = &plan->launch;
    snprintf(info->variant, sizeof info->variant, "%s",
             L->algo == CLATTN_MGK_TILED_CPU   ? "clattn_mgk_fwd_cpu"
             : L->algo == CLATTN_MGK_TILED_GPU ? "clattn_mgk_fwd_gpu"
             : plan->scan                      ? "clattn_mgk_lin_scan"
                                               : "clattn_mgk_lin_features+linear");
    info->tile_kv = L->tile_kv;
    info->rows_per_item = L->rows_per_item;
    info->tile_q = L->rows_per_item * (unsigned)(L->local_size ? L->local_size : 1);
    info->local_size = L->local_size;
    info->local_mem_bytes = L->local_mem_bytes;
    snprintf(info->build_options, sizeof info->build_options, "%s", L->defines);
    size_t used = strlen(info->build_options);
    if (base->dtype_defines[0] && used < sizeof info->build_options)
        snprintf(info->build_options + used, sizeof info->build_options - used, " %s",
                 base->dtype_defines);
}

/* ---- enqueue ---- */

clattn_status clattn__mgk_validate(mgk_plan *plan, const clattn_tensor *q, const clattn_tensor *k,
                                   const clattn_tensor *v, const clattn_tensor *pi,
                                   const clattn_tensor *out, const clattn_tensor *lse)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t lshape[4] = {plan->qshape[0], plan->qshape[1], plan->qshape[2], 1};
    CLATTN_CHECK(!lse || plan->desc.form == CLATTN_MGK_SOFTMAX, CLATTN_INVALID_ARGUMENT,
                 "mgk enqueue: lse is for the softmax form only (pass NULL)");
    const clattn_mgk_desc *dd = &plan->desc;
    const clattn__view ins[] = {{q, "q", plan->qshape, false, dd->q_dtype},
                                {k, "k", plan->kshape, false, dd->k_dtype},
                                {v, "v", plan->vshape, false, dd->v_dtype},
                                {pi, "pi", plan->pshape, false, dd->pi_dtype}};
    const clattn__view outs[] = {{out, "out", plan->qshape, false, dd->out_dtype},
                                 {lse, "lse", lshape, true, CLATTN_F32}};
    CLATTN_FORWARD(clattn__check_views(ctx, ins, 4, outs, 2));
    if (plan->desc.key_lengths) {
        clattn_tensor kl = clattn_tensor_make(plan->desc.key_lengths, 1, 1, 1, plan->qshape[0]);
        kl.offset = plan->desc.key_lengths_offset;
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", &kl, "key_lengths", 4));
        if (lse)
            CLATTN_FORWARD(clattn__check_no_alias(ctx, lse, "lse", &kl, "key_lengths", 4));
    }
cleanup:
    return status;
}

static clattn_status enqueue_softmax(mgk_plan *plan, const clattn_tensor *q, const clattn_tensor *k,
                                     const clattn_tensor *v, const clattn_tensor *pi,
                                     const clattn_tensor *out, const clattn_tensor *lse,
                                     clattn__seq *s, cl_event *event)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__mgk_launch *L = &plan->launch;
    cl_uint h = (cl_uint)plan->qshape[1], nq = (cl_uint)plan->qshape[2];
    cl_uint nk = (cl_uint)plan->kshape[2], npad = (cl_uint)plan->npad;
    size_t bh = plan->qshape[0] * plan->qshape[1];

    clattn__args a = {plan->pack, 0, CL_SUCCESS};
    clattn__arg_view(&a, k);
    clattn__arg_view(&a, v);
    clattn__arg_view(&a, pi);
    CLATTN_ARG(&a, plan->c2);
    CLATTN_ARG(&a, h);
    CLATTN_ARG(&a, nk);
    CLATTN_ARG(&a, npad);
    CLATTN_ARG(&a, plan->kp);
    CLATTN_ARG(&a, plan->a2);
    CLATTN_ARG(&a, plan->vp);
    CLATTN_CL(a.err);
    size_t gp[2] = {plan->npad, bh};
    CLATTN_FORWARD(clattn__seq_kernel(s, plan->pack, 2, gp, false, NULL));

    cl_int has_lse = lse != NULL, has_kl = plan->desc.key_lengths != NULL;
    cl_int causal = plan->desc.causal != 0;
    cl_mem klbuf = has_kl ? plan->desc.key_lengths : q->buffer;
    cl_ulong kloff = plan->desc.key_lengths_offset;
    clattn__args f = {plan->fwd, 0, CL_SUCCESS};
    clattn__arg_view(&f, q);
    CLATTN_ARG(&f, plan->kp);
    CLATTN_ARG(&f, plan->a2);
    CLATTN_ARG(&f, plan->vp);
    CLATTN_ARG(&f, npad);
    CLATTN_ARG(&f, plan->c2);
    clattn__arg_view(&f, out);
    clattn__arg_view(&f, lse ? lse : out);
    CLATTN_ARG(&f, has_lse);
    CLATTN_ARG(&f, klbuf);
    CLATTN_ARG(&f, kloff);
    CLATTN_ARG(&f, has_kl);
    CLATTN_ARG(&f, h);
    CLATTN_ARG(&f, nq);
    CLATTN_ARG(&f, nk);
    CLATTN_ARG(&f, causal);
    CLATTN_CL(f.err);
    size_t items = clattn__div_up(plan->qshape[2], L->rows_per_item);
    size_t gl[2] = {clattn__div_up(items, L->local_size) * L->local_size, bh};
    size_t lo[2] = {L->local_size, 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(s, plan->fwd, 2, gl, lo, true, event));
cleanup:
    return status;
}

clattn_status clattn__mgk_enqueue_linear(mgk_plan *plan, const clattn_tensor *q,
                                         const clattn_tensor *k, const clattn_tensor *v,
                                         const clattn_tensor *pi, const clattn_tensor *out,
                                         const clattn__mgk_state_bufs *state, clattn__seq *s,
                                         cl_event *event)
{
    clattn_context *ctx = plan->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint h = (cl_uint)plan->qshape[1], nq = (cl_uint)plan->qshape[2];
    cl_uint nk = (cl_uint)plan->kshape[2];
    size_t bh = plan->qshape[0] * plan->qshape[1], d = plan->qshape[3];
    cl_float eps = plan->desc.eps;

    clattn__args a = {plan->feat, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    clattn__arg_view(&a, k);
    clattn__arg_view(&a, pi);
    CLATTN_ARG(&a, h);
    CLATTN_ARG(&a, nq);
    CLATTN_ARG(&a, nk);
    CLATTN_ARG(&a, plan->fq);
    CLATTN_ARG(&a, plan->fk);
    CLATTN_CL(a.err);
    size_t gf[2] = {nq > nk ? nq : nk, bh};
    CLATTN_FORWARD(clattn__seq_kernel(s, plan->feat, 2, gf, false, NULL));

    if (state) {
        cl_int has_state = 1;
        clattn__args c = {plan->scan, 0, CL_SUCCESS};
        CLATTN_ARG(&c, plan->fq);
        CLATTN_ARG(&c, plan->fk);
        clattn__arg_view(&c, v);
        CLATTN_ARG(&c, eps);
        CLATTN_ARG(&c, h);
        CLATTN_ARG(&c, nk);
        clattn__arg_view(&c, out);
        CLATTN_ARG(&c, has_state);
        CLATTN_ARG(&c, state->s);
        CLATTN_ARG(&c, state->z_in);
        CLATTN_ARG(&c, state->z_out);
        CLATTN_CL(c.err);
        size_t gs[2] = {d, bh};
        CLATTN_FORWARD(clattn__seq_kernel(s, plan->scan, 2, gs, true, event));
        goto cleanup;
    }
    /* The linear plan waits for the features kernel and returns the caller's event. */
    clattn_tensor tq = clattn_tensor_make(plan->fq, plan->qshape[0], h, nq, d);
    clattn_tensor tk = clattn_tensor_make(plan->fk, plan->qshape[0], h, nk, d);
    clattn__seq_next(s, true, event);
    status = clattn_linear_plan_enqueue(plan->lin, &tq, &tk, v, out, s->nw, s->w, s->evp);
    if (status != CLATTN_SUCCESS)
        goto cleanup;
    clattn__seq_done(s);
cleanup:
    return status;
}

clattn_status clattn_mgk_plan_enqueue(clattn_plan *base, const clattn_tensor *q,
                                      const clattn_tensor *k, const clattn_tensor *v,
                                      const clattn_tensor *pi, const clattn_tensor *out,
                                      const clattn_tensor *lse, cl_uint num_wait,
                                      const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_MGK, "mgk enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    mgk_plan *plan = (mgk_plan *)base;
    clattn_context *ctx = base->ctx;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "mgk enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(clattn__mgk_validate(plan, q, k, v, pi, out, lse));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    if (plan->launch.algo == CLATTN_MGK_LINEAR_SCAN)
        status = clattn__mgk_enqueue_linear(plan, q, k, v, pi, out, NULL, &s, event);
    else
        status = enqueue_softmax(plan, q, k, v, pi, out, lse, &s, event);
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_mgk_enqueue(clattn_context *ctx, const clattn_mgk_desc *desc,
                                 const clattn_tensor *q, const clattn_tensor *k,
                                 const clattn_tensor *v, const clattn_tensor *pi,
                                 const clattn_tensor *out, const clattn_tensor *lse,
                                 cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "mgk enqueue: ctx is NULL");
    if (!q || !k || !v || !pi || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "mgk enqueue: q, k, v, pi and out are required");
    clattn_plan *plan = NULL;
    clattn_mgk_desc d;
    clattn_status status = clattn__mgk_read_desc(ctx, desc, &d);
    if (status != CLATTN_SUCCESS)
        return status;
    set_dtypes(&d, q, k, v, pi, out);
    status = clattn_mgk_plan_create(ctx, &d, q->shape, k->shape, &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_mgk_plan_enqueue(plan, q, k, v, pi, out, lse, num_wait, wait, event);
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_mgk_host(clattn_context *ctx, const clattn_mgk_desc *desc,
                              const size_t q_shape[4], const size_t k_shape[4], const float *q,
                              const float *k, const float *v, const float *pi, float *out,
                              float *lse)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    cl_mem bq, bk, bv, bp, bo, bl = NULL;
    clattn_mgk_desc d;
    clattn_plan *plan = NULL;
    cl_event done = NULL;
    size_t r = 0;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "mgk host: ctx is NULL");
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(q_shape && k_shape && q && k && v && pi && out, CLATTN_NULL_POINTER,
                 "mgk host: shapes, q, k, v, pi and out are required");
    CLATTN_FORWARD(clattn__mgk_read_desc(ctx, desc, &d));
    set_dtypes(&d, NULL, NULL, NULL, NULL, NULL); /* host memory is float32 */
    CLATTN_FORWARD(check_shapes(ctx, &d, q_shape, k_shape, &r));
    size_t nq_el, nk_el, nv_el, np_el, nl_el;
    CLATTN_CHECK(clattn__mul_ok(q_shape[0] * q_shape[1], q_shape[2] * q_shape[3], &nq_el) &&
                     clattn__mul_ok(k_shape[0] * k_shape[1], k_shape[2] * k_shape[3], &nk_el) &&
                     nq_el < SIZE_MAX / 4 && nk_el < SIZE_MAX / 4,
                 CLATTN_SIZE_OVERFLOW, "mgk host: sizes overflow");
    nv_el = nk_el / r;
    np_el = q_shape[1] * r * k_shape[2];
    nl_el = q_shape[0] * q_shape[1] * q_shape[2];
    CLATTN_FORWARD(clattn_mgk_plan_create(ctx, &d, q_shape, k_shape, &plan));
    CLATTN_FORWARD(clattn__stage_in(&st, q, nq_el * sizeof(float), "q", &bq));
    CLATTN_FORWARD(clattn__stage_in(&st, k, nk_el * sizeof(float), "k", &bk));
    CLATTN_FORWARD(clattn__stage_in(&st, v, nv_el * sizeof(float), "v", &bv));
    CLATTN_FORWARD(clattn__stage_in(&st, pi, np_el * sizeof(float), "pi", &bp));
    CLATTN_FORWARD(clattn__stage_out(&st, out, nq_el * sizeof(float), "output", &bo));
    if (lse)
        CLATTN_FORWARD(clattn__stage_out(&st, lse, nl_el * sizeof(float), "lse", &bl));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, q_shape[0], q_shape[1], k_shape[2], q_shape[3]);
    clattn_tensor tp = clattn_tensor_make(bp, 1, q_shape[1], r, k_shape[2]);
    clattn_tensor to = clattn_tensor_make(bo, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tl = clattn_tensor_make(bl, q_shape[0], q_shape[1], q_shape[2], 1);
    CLATTN_FORWARD(clattn_mgk_plan_enqueue(plan, &tq, &tk, &tv, &tp, &to, lse ? &tl : NULL, 0,
                                           NULL, &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    return status;
}
