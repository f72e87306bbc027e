/* Host side of linear (kernelized) attention: descriptor, plan (launch from lib/sched, kernels
 * created once, FAVOR's W uploaded once, scratch owned), and the public entry points built on it.
 * The command sequences of each form are in linear_forms.c, the decoding state in
 * linear_state.c. */
#include "linear.h"
#include "../tune/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clattn_linear_desc_init(clattn_linear_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->feature_map = CLATTN_LINEAR_FEATURE_ELU;
    desc->eps = CLATTN_LINEAR_DEFAULT_EPS;
    desc->features = 256;
    desc->scaling = CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS;
    desc->momentum = CLATTN_LINEAR_MOMENTUM_NONE;
    desc->step_size = 1.0f;
}

size_t clattn_linear_feature_count(const clattn_linear_desc *desc, size_t d)
{
    clattn_linear_desc def;
    clattn_linear_desc_init(&def);
    return clattn__features_count(desc ? desc : &def, d);
}

clattn_status clattn__linear_read_desc(clattn_context *ctx, const clattn_linear_desc *in,
                                       clattn_linear_desc *out)
{
    clattn_linear_desc_init(out);
    clattn_status status = clattn__desc_read(ctx, in, out, sizeof *out,
                                             offsetof(clattn_linear_desc, feature_map) +
                                                 sizeof(int),
                                             "linear desc");
    if (status != CLATTN_SUCCESS)
        return status;
    if (out->feature_map != CLATTN_LINEAR_FEATURE_ELU && out->feature_map != CLATTN_LINEAR_FEATURE_RELU &&
        out->feature_map != CLATTN_LINEAR_FEATURE_IDENTITY && out->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown feature map %d",
                            (int)out->feature_map);
    status = clattn__check_flag(ctx, out->causal, "linear desc: causal");
    if (status != CLATTN_SUCCESS)
        return status;
    if (!isfinite(out->eps) || out->eps < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: eps %g must be finite and >= 0", (double)out->eps);
    if (out->feature_map == CLATTN_LINEAR_FEATURE_FAVOR &&
        (out->features == 0 || out->features > CLATTN__FEATURES_MAX_M))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: FAVOR features %zu must be in [1, %d]", out->features,
                            CLATTN__FEATURES_MAX_M);
    if (out->scaling != CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS && out->scaling != CLATTN_LINEAR_FAVOR_SQRT_D)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown FAVOR scaling %d",
                            (int)out->scaling);
    if (out->momentum != CLATTN_LINEAR_MOMENTUM_NONE && out->momentum != CLATTN_LINEAR_MOMENTUM_FIXED &&
        out->momentum != CLATTN_LINEAR_MOMENTUM_ADAPTIVE)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown momentum %d",
                            (int)out->momentum);
    if (out->momentum == CLATTN_LINEAR_MOMENTUM_FIXED && !(out->mu >= 0.0f && out->mu < 1.0f))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: momentum mu %g must be in [0, 1)", (double)out->mu);
    if (out->algorithm != CLATTN_LINEAR_AUTO && out->algorithm != CLATTN_LINEAR_FUSED &&
        out->algorithm != CLATTN_LINEAR_GEMM)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "linear desc: unknown algorithm %d",
                            (int)out->algorithm);
    if (out->algorithm == CLATTN_LINEAR_GEMM &&
        (out->causal || out->momentum != CLATTN_LINEAR_MOMENTUM_NONE))
        return clattn__fail(ctx, CLATTN_UNSUPPORTED,
                            "linear desc: the GEMM algorithm is for the non-causal form without "
                            "momentum");
    const clattn_dtype dts[4] = {out->q_dtype, out->k_dtype, out->v_dtype, out->out_dtype};
    const char *dtn[4] = {"linear desc q_dtype", "linear desc k_dtype", "linear desc v_dtype",
                          "linear desc out_dtype"};
    for (int i = 0; i < 4; i++) {
        status = clattn__dtype_check(ctx, dts[i], dtn[i]);
        if (status != CLATTN_SUCCESS)
            return status;
    }
    if (out->step_size == 0.0f)
        out->step_size = 1.0f;
    if (!(out->step_size > 0.0f) || !isfinite(out->step_size))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "linear desc: step size eta %g must be finite and > 0",
                            (double)out->step_size);
    return CLATTN_SUCCESS;
}

clattn_status clattn__linear_check_dims(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                        const size_t v[4], int causal)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "linear: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    if (q[3] > CLATTN__FEATURES_MAX_D || v[3] > CLATTN__FEATURES_MAX_D)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "linear: D %zu or Dv %zu > %d", q[3],
                            v[3], CLATTN__FEATURES_MAX_D);
    if (q[0] != k[0] || q[0] != v[0] || k[1] != v[1] || q[1] % k[1] != 0)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "linear: batch/heads differ: q [%zu, %zu], k [%zu, %zu], v [%zu, %zu] "
                            "(k and v need q's batch and the same heads, q's heads a multiple "
                            "of them)",
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

void clattn__linear_dtypes(const clattn_linear_desc *d, clattn_dtype dts[4])
{
    dts[0] = d->q_dtype;
    dts[1] = d->k_dtype;
    dts[2] = d->v_dtype;
    dts[3] = d->out_dtype;
}

static size_t dt_size(clattn_dtype dt)
{
    size_t e = clattn_dtype_size(dt);
    return e ? e : sizeof(float);
}

clattn_status clattn__linear_check_views(clattn_context *ctx, const clattn_tensor *q,
                                         const clattn_tensor *k, const clattn_tensor *v,
                                         const clattn_tensor *out, const clattn_dtype dts[4])
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn_tensor *ins[] = {q, k, v};
    const char *names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        CLATTN_FORWARD(clattn__tensor_check(ctx, ins[i], names[i], NULL, dt_size(dts[i])));
        CLATTN_FORWARD(clattn__tensor_dtype(ctx, ins[i], names[i], dts[i]));
    }
    if (!out)
        return CLATTN_SUCCESS;
    size_t oshape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]};
    CLATTN_FORWARD(clattn__tensor_check(ctx, out, "out", oshape, dt_size(dts[3])));
    CLATTN_FORWARD(clattn__tensor_dtype(ctx, out, "out", dts[3]));
    CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, out, "out"));
    for (int i = 0; i < 3; i++) {
        /* One element size for both extents: the larger (never misses an overlap). */
        size_t e = dt_size(dts[3]) > dt_size(dts[i]) ? dt_size(dts[3]) : dt_size(dts[i]);
        CLATTN_FORWARD(clattn__check_no_alias(ctx, out, "out", ins[i], names[i], e));
    }
cleanup:
    return status;
}

void clattn__linear_problem_make(const clattn_linear_desc *desc, const size_t q_shape[4],
                                 const size_t k_shape[4], const size_t v_shape[4],
                                 clattn__linear_problem *out)
{
    memset(out, 0, sizeof *out);
    out->bh = q_shape[0] * q_shape[1];
    out->bh_kv = k_shape[0] * k_shape[1];
    out->nq = q_shape[2];
    out->nk = k_shape[2];
    out->d = q_shape[3];
    out->dv = v_shape[3];
    out->m = clattn__features_count(desc, q_shape[3]);
    out->causal = desc->causal != 0;
    out->momentum = (int)desc->momentum;
    out->favor = desc->feature_map == CLATTN_LINEAR_FEATURE_FAVOR;
    /* CLATTN_LINEAR_OUT_KERNEL=rows or tiled forces the non-causal output kernel (tests run the
     * GPU kernel on every device; measurements compare them); "tiled:TX,TY,RM,RN" a tile of its
     * candidate space as well (lib/sched/sched_linear.c). */
    const char *env = getenv("CLATTN_LINEAR_OUT_KERNEL");
    if (env && strcmp(env, "rows") == 0)
        out->out_kernel = 1;
    else if (env && strncmp(env, "tiled", 5) == 0) {
        unsigned t[4];
        out->out_kernel = 2;
        if (sscanf(env + 5, ":%u,%u,%u,%u", &t[0], &t[1], &t[2], &t[3]) == 4)
            memcpy(out->out_tile, t, sizeof t);
    }
}

clattn__linear_dims clattn__linear_dims_of(const clattn__linear_plan *p, const size_t q[4],
                                           const size_t k[4], const size_t v[4])
{
    clattn__linear_dims z;
    memset(&z, 0, sizeof z);
    z.b = q[0];
    z.hq = q[1];
    z.hk = k[1];
    z.group = z.hq / z.hk;
    z.bh = z.b * z.hq;
    z.bhk = z.b * z.hk;
    z.nq = q[2];
    z.nk = k[2];
    z.d = q[3];
    z.dv = v[3];
    z.m = p->feat.m;
    z.mp = p->feat.mp;
    z.dvp = clattn__div_up(z.dv, 16) * 16;
    z.dw = z.dvp + 16;
    /* A decoding state's prefill is causal; a plain plan's non-causal chunk is its launch's. */
    z.chunk = p->stateful || p->desc.causal ? p->launch.block_chunk : p->launch.chunk;
    z.nchunks = clattn__div_up(z.nk, z.chunk);
    return z;
}

/* ---- the plan ---- */

static void plan_release(clattn_plan *base)
{
    clattn__linear_plan *p = (clattn__linear_plan *)base;
    for (int i = 0; i < LIN_SLOTS; i++)
        if (p->slot[i])
            clReleaseMemObject(p->slot[i]);
}

static const char *algo_name(int algo) { return algo == CLATTN_LINEAR_GEMM ? "gemm" : "fused"; }

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const clattn__linear_plan *p = (const clattn__linear_plan *)base;
    const clattn__linear_launch *L = &p->launch;
    snprintf(info->variant, sizeof info->variant, "%s",
             L->algo == CLATTN_LINEAR_GEMM                  ? "clattn_linear_normalize+sgemm"
             : p->desc.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE ? "clattn_linear_adaptive"
             : p->causal_eb                                 ? "clattn_linear_causal"
             : p->out_tiled                                 ? "clattn_linear_out_tiled"
             : p->fused_nc                                  ? "clattn_linear_fused_out"
                                                            : "clattn_linear_out");
    snprintf(info->build_options, sizeof info->build_options, "%.190s%s%.60s", L->defines,
             base->dtype_defines[0] ? " " : "", base->dtype_defines);
    info->local_size = L->local_size;
    info->rows_per_item = L->rows;
}

static const clattn__plan_ops linear_ops = {CLATTN_OP_LINEAR, plan_release, plan_info};

/* The launch of a new plan: the caller's (tuner), else the tuning database's (AUTO), else the
 * scheduler's rule. */
static clattn_status choose_launch(clattn_context *ctx, clattn__linear_plan *p,
                                   const clattn__linear_problem *prob,
                                   const clattn__linear_launch *forced, const char **by)
{
    char why[200];
    *by = "scheduler";
    if (forced) {
        /* The same parameters through the scheduler's validation (device limits, problem). */
        clattn__linear_launch chk;
        clattn_status st = clattn__linear_launch_from(
            &ctx->info, prob, forced->algo, forced->chunk, forced->block_chunk, forced->rows,
            forced->value_blocks, forced->feature_rows, forced->local_size, &chk, why, sizeof why);
        if (st == CLATTN_SUCCESS) /* and its output kernel */
            st = clattn__linear_launch_out_tile(&ctx->info, prob, forced->ot_tx, forced->ot_ty,
                                                forced->ot_rm, forced->ot_rn, &chk, why,
                                                sizeof why);
        if (st != CLATTN_SUCCESS)
            return clattn__fail(ctx, st, "linear plan: the caller's launch does not fit: %s",
                                why);
        p->launch = chk;
        *by = "caller";
        return CLATTN_SUCCESS;
    }
    /* AUTO (a plain plan, not a decoding state's): the tuning database first. */
    if (!p->stateful && p->desc.algorithm == CLATTN_LINEAR_AUTO &&
        clattn__tune_linear_launch_desc(ctx, &p->desc, prob, &p->launch)) {
        p->base.from_db = true;
        *by = "tuning-db";
        return CLATTN_SUCCESS;
    }
    int requested = p->stateful ? CLATTN_LINEAR_FUSED : (int)p->desc.algorithm;
    clattn_status status = clattn__schedule_linear(&ctx->info, prob, requested, &p->launch, why,
                                                   sizeof why);
    if (status != CLATTN_SUCCESS)
        return clattn__fail(ctx, status, "linear plan on '%s': %s", ctx->info.name, why);
    if (p->desc.algorithm != CLATTN_LINEAR_AUTO)
        *by = "caller";
    return CLATTN_SUCCESS;
}

/* A kernel of kernels_cl/linear.cl, or (fused) of kernels_cl/linear_fused.cl: the same -D
 * options build both programs. */
static clattn_status kernel_from(clattn__linear_plan *p, bool fused, const char *name,
                                 size_t local, const char *by, cl_kernel *k)
{
    /* linear.cl does not read the tiled output kernel's tile (-DLINEAR_OT_*, last in the
     * defines): its program is built without them, the same program as the per-row launches'. */
    char defs[sizeof p->launch.defines];
    snprintf(defs, sizeof defs, "%s", p->launch.defines);
    char *ot = fused ? NULL : strstr(defs, " -DLINEAR_OT_");
    if (ot)
        *ot = '\0';
    return clattn__plan_kernel(&p->base, fused ? "linear_fused.cl" : "linear.cl", defs, name,
                               local, by, k);
}

static clattn_status kernel(clattn__linear_plan *p, const char *name, size_t local,
                            const char *by, cl_kernel *k)
{
    return kernel_from(p, false, name, local, by, k);
}

/* Creates the kernels the plan's form runs, each once. */
static clattn_status make_kernels(clattn__linear_plan *p, const char *by)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__linear_launch *L = &p->launch;
    size_t blocked = L->local_size, plain = L->one_item_groups ? 1 : 0;
    bool adaptive = p->desc.momentum == CLATTN_LINEAR_MOMENTUM_ADAPTIVE;
    bool causal = p->desc.causal || p->stateful;
    CLATTN_FORWARD(kernel(p, "clattn_linear_pack_v", plain, by, &p->pack));
    if (L->algo == CLATTN_LINEAR_GEMM) {
        CLATTN_FORWARD(kernel(p, "clattn_linear_normalize", plain, by, &p->normalize));
        goto cleanup;
    }
    /* The register-tiled non-causal output rows (GPU-like devices), for every form below that
     * has them. */
    p->out_tiled = L->out_tiled && !causal;
    if (p->out_tiled)
        CLATTN_FORWARD(kernel_from(p, true, "clattn_linear_out_tiled", L->out_local, by,
                                   &p->out_tiled_k));
    if (adaptive) {
        CLATTN_FORWARD(kernel(p, "clattn_linear_adaptive", plain, by, &p->adaptive));
        if (!causal && !p->out_tiled)
            CLATTN_FORWARD(kernel(p, "clattn_linear_out", blocked, by, &p->out));
        goto cleanup;
    }
    if (p->causal_eb) {
        char opts[320];
        snprintf(opts, sizeof opts, "%s -DLINC_EB=%u -DLINC_MPMAX=%u", L->defines, p->causal_eb,
                 p->feat.mp <= 64 ? 64u : 256u);
        CLATTN_FORWARD(clattn__plan_kernel(&p->base, "linear_causal.cl", opts,
                                           "clattn_linear_causal", 1, by, &p->fused_causal));
        goto cleanup;
    }
    p->fused_nc = !causal && p->desc.feature_map != CLATTN_LINEAR_FEATURE_FAVOR;
    if (p->fused_nc) {
        CLATTN_FORWARD(
            kernel_from(p, true, "clattn_linear_fused_state", blocked, by, &p->fused_state));
        CLATTN_FORWARD(kernel(p, "clattn_linear_scan_scales", plain, by, &p->scan_scales));
        CLATTN_FORWARD(kernel(p, "clattn_linear_scan", blocked, by, &p->scan));
        if (!p->out_tiled)
            CLATTN_FORWARD(
                kernel_from(p, true, "clattn_linear_fused_out", blocked, by, &p->fused_out));
        goto cleanup;
    }
    CLATTN_FORWARD(kernel(p, "clattn_linear_chunk_weights", plain, by, &p->chunk_weights));
    CLATTN_FORWARD(kernel(p, "clattn_linear_chunk_state", blocked, by, &p->chunk_state));
    CLATTN_FORWARD(kernel(p, "clattn_linear_scan_scales", plain, by, &p->scan_scales));
    CLATTN_FORWARD(kernel(p, "clattn_linear_scan", blocked, by, &p->scan));
    if (causal) {
        CLATTN_FORWARD(kernel(p, "clattn_linear_kt", plain, by, &p->kt));
        CLATTN_FORWARD(kernel(p, "clattn_linear_intra", blocked, by, &p->intra));
    }
    if (p->stateful) {
        CLATTN_FORWARD(kernel(p, "clattn_linear_step_update", plain, by, &p->step_update));
        CLATTN_FORWARD(kernel(p, "clattn_linear_step_commit", plain, by, &p->step_commit));
    }
    if (!p->out_tiled)
        CLATTN_FORWARD(kernel(p, "clattn_linear_out", blocked, by, &p->out));
cleanup:
    return status;
}

clattn_status clattn__linear_plan_make(clattn_context *ctx, const clattn_linear_desc *desc,
                                       const size_t q[4], const size_t k[4], const size_t v[4],
                                       const clattn__linear_launch *forced, int stateful,
                                       clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    clattn__linear_plan *p = NULL;
    float *w_host = NULL;
    const char *by = NULL;

    if (out)
        *out = NULL; /* on every failure */
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear plan: ctx is NULL");
    CLATTN_CHECK(out && q && k && v, CLATTN_NULL_POINTER,
                 "linear plan: plan, q_shape, k_shape and v_shape are required");
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof *p, &linear_ops, &base));
    p = (clattn__linear_plan *)base;
    p->stateful = stateful;
    CLATTN_FORWARD(clattn__linear_read_desc(ctx, desc, &p->desc));
    if (stateful)
        p->desc.causal = 0; /* a state's desc: its causal flag is ignored */
    CLATTN_FORWARD(clattn__linear_check_dims(ctx, q, k, v, p->desc.causal));
    memcpy(p->qshape, q, sizeof p->qshape);
    memcpy(p->kshape, k, sizeof p->kshape);
    memcpy(p->vshape, v, sizeof p->vshape);
    CLATTN_FORWARD(clattn__features_projection_host(ctx, &p->desc, q[3], &w_host));
    if (w_host)
        p->w_hash = clattn__hash64(CLATTN__HASH_SEED, w_host,
                                   p->desc.features * q[3] * sizeof(float));
    p->desc.projection = NULL;
    p->desc.projection_shape[0] = p->desc.projection_shape[1] = 0;

    /* Element types before any kernel: every kernel of the plan gets -DQ_DT=... (non-f32). */
    const clattn__dtype_role roles[4] = {{"Q", p->desc.q_dtype},
                                         {"K", p->desc.k_dtype},
                                         {"V", p->desc.v_dtype},
                                         {"O", p->desc.out_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 4));

    clattn__linear_problem prob;
    clattn__linear_problem_make(&p->desc, q, k, v, &prob);
    prob.causal = prob.causal || stateful;
    CLATTN_FORWARD(choose_launch(ctx, p, &prob, forced, &by));
    /* The one-pass kernel (linear_causal.cl) where the scheduler's rule takes it (a plain plan
     * only: decoding states keep the chunk pipeline for their prefills; the non-causal form only
     * with the FUSED algorithm). CLATTN_LINEAR_CAUSAL=chunked (CLATTN_LINEAR_NONCAUSAL=chunked)
     * forces the previous kernels, =fused this kernel on any device where the form allows it
     * (comparisons, oclgrind's instruction counts). */
    if (!stateful && (p->desc.causal || p->launch.algo == CLATTN_LINEAR_FUSED)) {
        const char *force =
            getenv(p->desc.causal ? "CLATTN_LINEAR_CAUSAL" : "CLATTN_LINEAR_NONCAUSAL");
        clattn_device_info di = ctx->info;
        if (force && strcmp(force, "fused") == 0) {
            di.device_class = CLATTN_DEVICE_CPU;
            if (di.native_vector_width_float < 4)
                di.native_vector_width_float = 4;
            di.loop_iteration_cap = 0;
            di.simt_cpu = 0;
        }
        if (!(force && strcmp(force, "chunked") == 0))
            p->causal_eb = clattn__linear_causal_fused(&di, &prob);
    }
    const clattn__linear_launch *L = &p->launch;
    base->algorithm = L->algo;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s", algo_name(L->algo));
    clattn_dtype dts[4];
    char dl[16];
    clattn__linear_dtypes(&p->desc, dts);
    clattn__dtype_launch(dl, sizeof dl, dts, 4);
    snprintf(base->launch, sizeof base->launch,
             "chunk=%zu block=%u rows=%u eb=%u mb=%u wg=%zu%s%s", L->chunk, L->block_chunk,
             L->rows, L->value_blocks, L->feature_rows, L->local_size,
             L->one_item_groups ? " one-item" : "", dl);
    if (p->causal_eb) {
        size_t used = strlen(base->launch);
        snprintf(base->launch + used, sizeof base->launch - used, " causal-fused eb=%u",
                 p->causal_eb);
    }
    bool head_scale = L->algo == CLATTN_LINEAR_GEMM;
    const clattn_dtype xdts[2] = {p->desc.q_dtype, p->desc.k_dtype};
    CLATTN_FORWARD(clattn__features_bake_typed(base, &p->desc, q[3], w_host, head_scale,
                                               L->feature_local, L->one_item_groups, by, xdts,
                                               2, &p->feat));
    CLATTN_FORWARD(make_kernels(p, by));
    /* A plain plan's scratch is allocated here, once; a state's grows with its prefills. */
    clattn__linear_job j;
    memset(&j, 0, sizeof j);
    j.p = p;
    j.z = clattn__linear_dims_of(p, q, k, v);
    j.causal = p->desc.causal || stateful;
    j.step = stateful;
    CLATTN_FORWARD(clattn__linear_reserve(p, &j));
    *out = base;
    base = NULL;
cleanup:
    free(w_host);
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_linear_plan_create(clattn_context *ctx, const clattn_linear_desc *desc,
                                        const size_t q_shape[4], const size_t k_shape[4],
                                        const size_t v_shape[4], clattn_plan **plan)
{
    return clattn__linear_plan_make(ctx, desc, q_shape, k_shape, v_shape, NULL, 0, plan);
}

clattn_status clattn__linear_plan_create_launch(clattn_context *ctx,
                                                const clattn_linear_desc *desc,
                                                const size_t q_shape[4], const size_t k_shape[4],
                                                const size_t v_shape[4],
                                                const clattn__linear_launch *launch,
                                                clattn_plan **plan)
{
    if (!launch)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "linear plan: launch is NULL");
    return clattn__linear_plan_make(ctx, desc, q_shape, k_shape, v_shape, launch, 0, plan);
}

/* ---- enqueue ---- */

clattn_status clattn_linear_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                         const clattn_tensor *k, const clattn_tensor *v,
                                         const clattn_tensor *out, cl_uint num_wait,
                                         const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(plan, CLATTN_OP_LINEAR, "linear enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    clattn__linear_plan *p = (clattn__linear_plan *)plan;
    clattn_context *ctx = plan->ctx;
    CLATTN_CHECK(!p->stateful, CLATTN_INVALID_ARGUMENT,
                 "linear enqueue: the plan belongs to a decoding state");
    CLATTN_CHECK(q && k && v && out, CLATTN_NULL_POINTER,
                 "linear enqueue: q, k, v and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "linear enqueue: num_wait > 0 but wait is NULL");
    size_t oshape[4] = {p->qshape[0], p->qshape[1], p->qshape[2], p->vshape[3]};
    clattn_dtype dts[4];
    clattn__linear_dtypes(&p->desc, dts);
    const clattn_tensor *ts[4] = {q, k, v, out};
    const size_t *shapes[4] = {p->qshape, p->kshape, p->vshape, oshape};
    const char *names[4] = {"q", "k", "v", "out"};
    for (int i = 0; i < 4; i++)
        CLATTN_FORWARD(clattn__tensor_check(ctx, ts[i], names[i], shapes[i], dt_size(dts[i])));
    CLATTN_FORWARD(clattn__linear_check_views(ctx, q, k, v, out, dts));
    clattn__linear_job j;
    memset(&j, 0, sizeof j);
    j.p = p;
    j.z = clattn__linear_dims_of(p, p->qshape, p->kshape, p->vshape);
    j.causal = p->desc.causal;
    j.q = q;
    j.k = k;
    j.v = v;
    j.out = out;
    status = clattn__linear_run(&j, num_wait, wait, event);
cleanup:
    return status;
}

clattn_status clattn_linear_enqueue(clattn_context *ctx, const clattn_linear_desc *desc,
                                    const clattn_tensor *q, const clattn_tensor *k,
                                    const clattn_tensor *v, const clattn_tensor *out,
                                    cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear enqueue: ctx is NULL");
    if (!q || !k || !v || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "linear enqueue: q, k, v and out are required");
    if (num_wait > 0 && !wait)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "linear enqueue: num_wait > 0 but wait is NULL");
    clattn_plan *plan = NULL;
    /* One-shot: the element types are the tensors' own. */
    clattn_linear_desc d;
    clattn_status status = clattn__linear_read_desc(ctx, desc, &d);
    if (status != CLATTN_SUCCESS)
        return status;
    d.q_dtype = q->dtype;
    d.k_dtype = k->dtype;
    d.v_dtype = v->dtype;
    d.out_dtype = out->dtype;
    status = clattn_linear_plan_create(ctx, &d, q->shape, k->shape, v->shape, &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_linear_plan_enqueue(plan, q, k, v, out, num_wait, wait, event);
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

static size_t numel(const size_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

clattn_status clattn_linear_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                 const size_t q_shape[4], const size_t k_shape[4],
                                 const size_t v_shape[4], const float *q, const float *k,
                                 const float *v, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    clattn_plan *plan = NULL;
    cl_mem bq, bk, bv, bo;
    cl_event done = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "linear host: ctx is NULL");
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "linear host: shapes, q, k, v and out are required");
    size_t o_shape[4] = {q_shape[0], q_shape[1], q_shape[2], v_shape[3]};
    const size_t *shapes[] = {q_shape, k_shape, v_shape, o_shape};
    for (int i = 0; i < 4; i++) {
        size_t a, b;
        CLATTN_CHECK(clattn__mul_ok(shapes[i][0] * shapes[i][1], shapes[i][2], &a) &&
                         clattn__mul_ok(a, shapes[i][3], &b) && b < SIZE_MAX / sizeof(float),
                     CLATTN_SIZE_OVERFLOW, "linear host: sizes overflow");
    }
    /* float32 host arrays whatever the desc's element types say. */
    clattn_linear_desc d;
    CLATTN_FORWARD(clattn__linear_read_desc(ctx, desc, &d));
    d.q_dtype = d.k_dtype = d.v_dtype = d.out_dtype = CLATTN_F32;
    CLATTN_FORWARD(clattn_linear_plan_create(ctx, &d, q_shape, k_shape, v_shape, &plan));
    CLATTN_FORWARD(clattn__stage_in(&st, q, numel(q_shape) * sizeof(float), "q", &bq));
    CLATTN_FORWARD(clattn__stage_in(&st, k, numel(k_shape) * sizeof(float), "k", &bk));
    CLATTN_FORWARD(clattn__stage_in(&st, v, numel(v_shape) * sizeof(float), "v", &bv));
    CLATTN_FORWARD(clattn__stage_out(&st, out, numel(o_shape) * sizeof(float), "output", &bo));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, o_shape[0], o_shape[1], o_shape[2], o_shape[3]);
    CLATTN_FORWARD(clattn_linear_plan_enqueue(plan, &tq, &tk, &tv, &to, 0, NULL, &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    return status;
}
