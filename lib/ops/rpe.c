/* Host side of kernelized attention with relative positional encoding (kernels_cl/rpe.cl):
 * validate, compute the features (lib/blocks/feature_maps.h, every map of the linear family), the
 * per-head bias maximum and exp(b - max), then either the direct sums or the FFT path (circulant
 * embedding, clFFT through lib/blocks/fft.h, spectra multiplied, contracted with phi(q)). Every
 * command goes on the context's queue in one chain: the first honours the caller's wait list, the
 * last returns the caller's event. */
#include "../blocks/fft.h"
#include "../core/internal.h"

#include "rpe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The operator shape (lib/ops/softmax.c is the worked example): clattn_rpe_plan_create validates,
 * asks lib/sched/sched_rpe.c for the launch, creates every kernel once, allocates the scratch,
 * uploads FAVOR's projection and bakes the clFFT plans; clattn_rpe_plan_enqueue validates the
 * views and enqueues one command sequence (lib/ops/rpe_run.c) with no program lookup, kernel
 * creation or upload; the one-shot and host calls are built on a plan. */

typedef clattn__rpe_plan rpe_plan;

void clattn_rpe_desc_init(clattn_rpe_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    clattn_linear_desc_init(&desc->linear);
    desc->algorithm = CLATTN_RPE_AUTO;
}

/* Everything the plan holds is the base's; clattn_plan_get_info's defaults fit: the main kernel
 * (the last made) is clattn_rpe_direct[_tiled] or clattn_rpe_contract, with the launch's -D
 * options; the tiled kernel adds its work-group and __local sizes. */
static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const clattn__rpe_plan *p = (const clattn__rpe_plan *)base;
    if (p->launch.algo == CLATTN_RPE_DIRECT && p->launch.direct_tiled) {
        info->local_size = p->launch.tile_local; /* clattn_rpe_direct_tiled's work-group */
        info->local_mem_bytes = p->launch.tile_local_bytes;
    }
}

static const clattn__plan_ops rpe_ops = {CLATTN_OP_RPE, NULL, plan_info};

/* Reads the caller's desc by the one rule (NULL: the defaults); read_desc also checks it (eps 0
 * means no eps). */
static clattn_status copy_desc(clattn_context *ctx, const clattn_rpe_desc *in, clattn_rpe_desc *out)
{
    clattn_rpe_desc_init(out);
    return clattn__desc_read(ctx, in, out, sizeof *out,
                             offsetof(clattn_rpe_desc, linear) + sizeof(clattn_linear_desc),
                             "rpe desc");
}

static clattn_status read_desc(clattn_context *ctx, const clattn_rpe_desc *in, clattn_rpe_desc *out)
{
    clattn_status status = copy_desc(ctx, in, out);
    if (status != CLATTN_SUCCESS)
        return status;
    const clattn_linear_desc *f = &out->linear;
    if (f->struct_size != sizeof(clattn_linear_desc))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: linear.struct_size %zu is not valid (call "
                            "clattn_rpe_desc_init first)",
                            f->struct_size);
    if (f->feature_map == CLATTN_LINEAR_FEATURE_IDENTITY)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: the identity feature map is refused (weights must be "
                            "non-negative: use ELU, RELU or FAVOR)");
    if (f->feature_map != CLATTN_LINEAR_FEATURE_ELU && f->feature_map != CLATTN_LINEAR_FEATURE_RELU &&
        f->feature_map != CLATTN_LINEAR_FEATURE_FAVOR)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "rpe desc: unknown feature map %d",
                            (int)f->feature_map);
    if (f->feature_map == CLATTN_LINEAR_FEATURE_FAVOR &&
        (f->features == 0 || f->features > CLATTN__FEATURES_MAX_M))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: FAVOR features %zu must be in [1, %d]", f->features,
                            CLATTN__FEATURES_MAX_M);
    if (f->scaling != CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS && f->scaling != CLATTN_LINEAR_FAVOR_SQRT_D)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "rpe desc: unknown FAVOR scaling %d",
                            (int)f->scaling);
    if (f->momentum != CLATTN_LINEAR_MOMENTUM_NONE)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: momentum is not defined for RPE attention (set "
                            "features.momentum to CLATTN_LINEAR_MOMENTUM_NONE)");
    if (!isfinite(f->eps) || f->eps < 0.0f)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "rpe desc: eps %g must be finite and >= 0", (double)f->eps);
    status = clattn__check_flag(ctx, out->causal, "rpe desc: causal");
    if (status != CLATTN_SUCCESS)
        return status;
    if (out->algorithm != CLATTN_RPE_AUTO && out->algorithm != CLATTN_RPE_FFT &&
        out->algorithm != CLATTN_RPE_DIRECT)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "rpe desc: unknown algorithm %d",
                            (int)out->algorithm);
    const clattn_dtype dts[5] = {out->q_dtype, out->k_dtype, out->v_dtype, out->bias_dtype,
                                 out->out_dtype};
    static const char *const what[5] = {"rpe desc q_dtype", "rpe desc k_dtype",
                                        "rpe desc v_dtype", "rpe desc bias_dtype",
                                        "rpe desc out_dtype"};
    for (int i = 0; i < 5; i++) {
        status = clattn__dtype_check(ctx, dts[i], what[i]);
        if (status != CLATTN_SUCCESS)
            return status;
    }
    return CLATTN_SUCCESS;
}

/* q [B, Hq, N, D], k [B, Hk, N, D] and v [B, Hk, N, Dv] among themselves (Hq a multiple of Hk)
 * and against the kernels' limits. */
static clattn_status check_shapes(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                  const size_t v[4])
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "rpe: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "k [%zu, %zu, %zu, %zu], v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                                v[3]);
    if (q[3] > CLATTN__RPE_MAX_DV || v[3] > CLATTN__RPE_MAX_DV)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "rpe: D %zu or Dv %zu > %d", q[3], v[3],
                            CLATTN__RPE_MAX_DV);
    if (q[0] != k[0] || q[2] != k[2] || q[3] != k[3] || k[0] != v[0] || k[1] != v[1] ||
        k[2] != v[2] || q[1] % k[1] != 0)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "rpe: q [%zu, %zu, %zu, %zu], k [%zu, %zu, %zu, %zu] and v [%zu, %zu, "
                            "%zu, %zu] must be [B, Hq, N, D], [B, Hk, N, D], [B, Hk, N, Dv] with "
                            "Hq a multiple of Hk",
                            q[0], q[1], q[2], q[3], k[0], k[1], k[2], k[3], v[0], v[1], v[2],
                            v[3]);
    const size_t lim = (size_t)1 << 30;
    if (q[2] >= lim || q[0] > (lim - 1) / q[1])
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "rpe: N %zu or B*H beyond 2^30", q[2]);
    return CLATTN_SUCCESS;
}

/* Views match the plan's shapes and element types and fit their buffers, the bias is
 * [1, Hq, 1, 2N - 1], out is one-to-one and overlaps no input. */
static clattn_status check_views(const rpe_plan *p, const clattn_tensor *q,
                                 const clattn_tensor *k, const clattn_tensor *v,
                                 const clattn_tensor *bias, const clattn_tensor *out)
{
    const clattn_rpe_desc *d = &p->desc;
    size_t bshape[4] = {1, p->Hq, 1, 2 * p->N - 1};
    size_t oshape[4] = {p->B, p->Hq, p->N, p->Dv};
    const clattn__view ins[4] = {{q, "q", p->qshape, false, d->q_dtype},
                                 {k, "k", p->kshape, false, d->k_dtype},
                                 {v, "v", p->vshape, false, d->v_dtype},
                                 {bias, "bias [1, H, 1, 2N-1]", bshape, false, d->bias_dtype}};
    const clattn__view outs[1] = {{out, "out", oshape, false, d->out_dtype}};
    return clattn__check_views(p->base.ctx, ins, 4, outs, 1);
}

/* ---- baking ---- */

/* The scratch budget of the FFT groups: CLATTN_RPE_FFT_SCRATCH (bytes) when set, else 0 (the
 * scheduler's default). */
static size_t fft_scratch_env(void)
{
    const char *env = getenv("CLATTN_RPE_FFT_SCRATCH");
    if (!env || !*env)
        return 0;
    char *end = NULL;
    unsigned long long b = strtoull(env, &end, 10);
    return end && *end == '\0' ? (size_t)b : 0;
}

/* Which direct kernel: CLATTN_RPE_DIRECT_KERNEL=rows or tiled forces one (tests run the GPU
 * kernel on PoCL and the per-row one on rusticl this way); unset or anything else: the device's
 * (lib/sched/sched_rpe.c). */
static int direct_kernel_env(void)
{
    const char *env = getenv("CLATTN_RPE_DIRECT_KERNEL");
    if (env && strcmp(env, "rows") == 0)
        return CLATTN__RPE_DIRECT_ROWS;
    if (env && strcmp(env, "tiled") == 0)
        return CLATTN__RPE_DIRECT_TILED;
    return CLATTN__RPE_DIRECT_AUTO;
}

static clattn_status bake_kernels(rpe_plan *p, const float *w_host, const char *by)
{
    clattn_plan *base = &p->base;
    clattn_status status = CLATTN_SUCCESS;
    const char *opt = p->launch.defines;
    bool fft = p->launch.algo == CLATTN_RPE_FFT;
    /* Keys of FAVOR share one stabiliser per head (stab 1): the head-scale kernels too. */
    CLATTN_FORWARD(clattn__features_bake(base, &p->desc.linear, p->D, w_host, p->favor,
                                         p->launch.features_local, p->launch.favor_local != 0,
                                         by, &p->feat));
    /* The feature kernels above read float32 (made before the types are recorded, so they get
     * no -D*_DT options): half q / k are staged into float32 scratch by cast.cl first. q and k
     * are [N, D] per head, small next to the N x Dv value work and the O(N log N) or O(N^2)
     * sums, which read v and the bias in their own types (rpe.cl's kernels, made below with
     * -DV_DT, -DBIAS_DT and -DO_DT). */
    if (p->desc.q_dtype != CLATTN_F32)
        CLATTN_FORWARD(clattn__plan_cast_kernel(base, p->desc.q_dtype, CLATTN_F32, &p->cast_q));
    if (p->desc.k_dtype != CLATTN_F32)
        CLATTN_FORWARD(clattn__plan_cast_kernel(base, p->desc.k_dtype, CLATTN_F32, &p->cast_k));
    const clattn__dtype_role roles[3] = {
        {"V", p->desc.v_dtype}, {"BIAS", p->desc.bias_dtype}, {"O", p->desc.out_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 3));
    CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_bias_parts", 0, by,
                                       &p->parts));
    CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_bias_max", 0, by,
                                       &p->bmax));
    CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_exp_bias", 0, by,
                                       &p->exp_bias));
    if (fft) {
        CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_signals", 0, by,
                                           &p->signals));
        CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_cmul", 0, by,
                                           &p->cmul));
        CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_normalize", 0, by,
                                           &p->normalize));
    }
    if (!fft || p->launch.head_rows > 0)
        CLATTN_FORWARD(clattn__plan_kernel(
            base, "rpe.cl", opt,
            p->launch.direct_tiled ? "clattn_rpe_direct_tiled" : "clattn_rpe_direct",
            p->launch.direct_tiled ? p->launch.tile_local : 0, by,
            &p->direct));
    if (fft) /* last: the main kernel of clattn_plan_get_info */
        CLATTN_FORWARD(clattn__plan_kernel(base, "rpe.cl", opt, "clattn_rpe_contract", 0, by,
                                           &p->contract));
cleanup:
    return status;
}

/* One scratch buffer of n floats (n = a * b * c, checked). */
static clattn_status scratch(rpe_plan *p, size_t a, size_t b, size_t c, const char *what,
                             cl_mem *out)
{
    size_t ab, n, bytes;
    if (!clattn__mul_ok(a, b, &ab) || !clattn__mul_ok(ab, c, &n) ||
        !clattn__mul_ok(n, sizeof(float), &bytes))
        return clattn__fail(p->base.ctx, CLATTN_SIZE_OVERFLOW, "rpe plan: %s size overflows",
                            what);
    return clattn__plan_scratch(&p->base, bytes, what, out);
}

static clattn_status bake_scratch(rpe_plan *p)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__rpe_launch *L = &p->launch;
    size_t bhq = p->B * p->Hq, bhk = p->B * p->Hk;
    CLATTN_FORWARD(scratch(p, bhq, p->N, p->MS, "rpe query features", &p->fq));
    CLATTN_FORWARD(scratch(p, bhk, p->N, p->MS, "rpe key features", &p->fk));
    if (p->cast_q || p->cast_k) /* q, then k (Hk <= Hq), as float32 for the feature kernels */
        CLATTN_FORWARD(scratch(p, bhq, p->N, p->D, "rpe q/k staged as float32", &p->xs));
    if (p->favor) {
        CLATTN_FORWARD(scratch(p, bhq, p->N, 1, "rpe query log-scales", &p->lq));
        CLATTN_FORWARD(scratch(p, bhk, p->N, 1, "rpe key log-scales", &p->kscale));
        CLATTN_FORWARD(scratch(p, bhk, 1, 1, "rpe key head scales", &p->kmax));
    }
    CLATTN_FORWARD(scratch(p, p->Hq, L->parts, 1, "rpe partial bias maxima", &p->part));
    CLATTN_FORWARD(scratch(p, p->Hq, 1, 1, "rpe bias maxima", &p->bmaxb));
    if (p->direct)
        CLATTN_FORWARD(scratch(p, p->Hq, 2 * p->N - 1, 1, "rpe exp(bias)", &p->c));
    if (L->algo != CLATTN_RPE_FFT)
        goto cleanup;
    CLATTN_FORWARD(scratch(p, p->Hq, L->fft_len, 1, "rpe circulant kernel", &p->g));
    CLATTN_FORWARD(scratch(p, p->Hq, L->fft_bins, 2, "rpe kernel spectrum", &p->gf));
    CLATTN_FORWARD(scratch(p, L->signals, L->fft_len, 1, "rpe FFT signals", &p->x));
    CLATTN_FORWARD(scratch(p, L->signals, L->fft_bins, 2, "rpe FFT spectra", &p->xf));
    if (L->spectra_shared)
        CLATTN_FORWARD(scratch(p, L->signals, L->fft_bins, 2, "rpe FFT products", &p->yf));
    CLATTN_FORWARD(scratch(p, bhq * p->N, p->Dv + 1, 1, "rpe numerators", &p->acc));
cleanup:
    return status;
}

static const char *algo_name(int a)
{
    return a == CLATTN_RPE_FFT ? "fft" : a == CLATTN_RPE_DIRECT ? "direct" : "auto";
}

/* bake_fft: bake the clFFT plans now (public plans, enqueued many times); the one-shot calls skip
 * it, their single enqueue baking the clFFT plans on first use instead. */
static clattn_status plan_create(clattn_context *ctx, const clattn_rpe_desc *desc,
                                 const size_t q_shape[4], const size_t k_shape[4],
                                 const size_t v_shape[4], bool bake_fft, clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    rpe_plan *p = NULL;
    float *w_host = NULL;
    char why[160] = "";

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "rpe plan: ctx is NULL");
    CLATTN_CHECK(out && q_shape && k_shape && v_shape, CLATTN_NULL_POINTER,
                 "rpe plan: plan, q_shape, k_shape and v_shape are required");
    *out = NULL;
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof *p, &rpe_ops, &base));
    p = (rpe_plan *)base;
    CLATTN_FORWARD(read_desc(ctx, desc, &p->desc));
    CLATTN_FORWARD(check_shapes(ctx, q_shape, k_shape, v_shape));
    memcpy(p->qshape, q_shape, sizeof p->qshape);
    memcpy(p->kshape, k_shape, sizeof p->kshape);
    memcpy(p->vshape, v_shape, sizeof p->vshape);
    p->B = q_shape[0], p->Hq = q_shape[1], p->Hk = k_shape[1], p->G = p->Hq / p->Hk;
    p->N = q_shape[2], p->D = q_shape[3], p->Dv = v_shape[3];
    p->M = clattn__features_count(&p->desc.linear, p->D);
    p->MS = clattn__features_stride(&p->desc.linear, p->D);
    p->favor = p->desc.linear.feature_map == CLATTN_LINEAR_FEATURE_FAVOR;
    CLATTN_CHECK(p->B * p->Hq <= ((size_t)1 << 31) / (p->MS * (p->Dv + 1)), CLATTN_INVALID_SHAPE,
                 "rpe: B*H %zu times %zu features and %zu value columns beyond 2^31",
                 p->B * p->Hq, p->M, p->Dv + 1);
    /* FAVOR's projection, validated against D (uploaded once by the features bake). */
    CLATTN_FORWARD(clattn__features_projection_host(ctx, &p->desc.linear, p->D, &w_host));
    p->desc.linear.projection = NULL;

    size_t len = clattn__fft_good_length(2 * p->N - 1);
    clattn__rpe_problem prob = {p->B,     p->Hq, p->Hk,          p->N,
                                p->M,     p->Dv, p->desc.causal, len < 2 ? 2 : len,
                                fft_scratch_env(), direct_kernel_env()};
    status = clattn__schedule_rpe(&ctx->info, &prob, p->desc.algorithm, &p->launch, why,
                                  sizeof why);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "rpe plan on '%s': %s", ctx->info.name, why);
    const clattn__rpe_launch *L = &p->launch;
    base->algorithm = L->algo;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s", algo_name(L->algo));
    if (L->algo == CLATTN_RPE_FFT)
        snprintf(base->launch, sizeof base->launch,
                 "fft_len=%zu groups=%zu signals=%zu head_rows=%zu shared_spectra=%d parts=%zu",
                 L->fft_len, L->groups, L->signals, L->head_rows, L->spectra_shared, L->parts);
    else
        snprintf(base->launch, sizeof base->launch, "parts=%zu", L->parts);
    const clattn_dtype dts[5] = {p->desc.q_dtype, p->desc.k_dtype, p->desc.v_dtype,
                                 p->desc.bias_dtype, p->desc.out_dtype};
    char dl[16];
    clattn__dtype_launch(dl, sizeof dl, dts, 5);
    size_t used = strlen(base->launch);
    snprintf(base->launch + used, sizeof base->launch - used, "%s", dl);
    const char *by = p->desc.algorithm == CLATTN_RPE_AUTO ? "scheduler" : "caller";
    CLATTN_FORWARD(bake_kernels(p, w_host, by));
    CLATTN_FORWARD(bake_scratch(p));
    if (bake_fft && L->algo == CLATTN_RPE_FFT)
        CLATTN_FORWARD(clattn__rpe_fft_prepare(p));
    *out = base;
    base = NULL;
cleanup:
    free(w_host);
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_rpe_plan_create(clattn_context *ctx, const clattn_rpe_desc *desc,
                                     const size_t q_shape[4], const size_t k_shape[4],
                                     const size_t v_shape[4], clattn_plan **plan)
{
    return plan_create(ctx, desc, q_shape, k_shape, v_shape, true, plan);
}

/* ---- enqueue ---- */

clattn_status clattn_rpe_plan_enqueue(clattn_plan *base, const clattn_tensor *q,
                                      const clattn_tensor *k, const clattn_tensor *v,
                                      const clattn_tensor *bias, const clattn_tensor *out,
                                      cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_RPE, "rpe enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    rpe_plan *p = (rpe_plan *)base;
    clattn_context *ctx = base->ctx;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(q && k && v && bias && out, CLATTN_NULL_POINTER,
                 "rpe enqueue: q, k, v, bias and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "rpe enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_views(p, q, k, v, bias, out));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    CLATTN_FORWARD(clattn__rpe_run(p, q, k, v, bias, out, &s, event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_rpe_enqueue(clattn_context *ctx, const clattn_rpe_desc *desc,
                                 const clattn_tensor *q, const clattn_tensor *k,
                                 const clattn_tensor *v, const clattn_tensor *bias,
                                 const clattn_tensor *out, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "rpe enqueue: ctx is NULL");
    if (!q || !k || !v || !bias || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "rpe enqueue: q, k, v, bias and out are required");
    if (num_wait > 0 && !wait)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "rpe enqueue: num_wait > 0 but wait is NULL");
    clattn_plan *plan = NULL;
    /* The element types are the tensors': the desc's are overridden (the plan validates them). */
    clattn_rpe_desc d;
    clattn_status status = copy_desc(ctx, desc, &d);
    if (status != CLATTN_SUCCESS)
        return status;
    d.q_dtype = q->dtype, d.k_dtype = k->dtype, d.v_dtype = v->dtype;
    d.bias_dtype = bias->dtype, d.out_dtype = out->dtype;
    status = plan_create(ctx, &d, q->shape, k->shape, v->shape, false, &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_rpe_plan_enqueue(plan, q, k, v, bias, out, num_wait, wait, event);
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

clattn_status clattn_rpe_host(clattn_context *ctx, const clattn_rpe_desc *desc,
                              const size_t q_shape[4], const size_t k_shape[4],
                              const size_t v_shape[4], const float *q, const float *k,
                              const float *v, const float *bias, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    cl_mem bq, bk, bv, bb, bo;
    clattn_rpe_desc raw, d;
    clattn_plan *plan = NULL;
    cl_event done = NULL;

    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "rpe host: ctx is NULL");
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && bias && out, CLATTN_NULL_POINTER,
                 "rpe host: shapes, q, k, v, bias and out are required");
    CLATTN_FORWARD(copy_desc(ctx, desc, &raw));
    raw.q_dtype = raw.k_dtype = raw.v_dtype = raw.bias_dtype = raw.out_dtype = CLATTN_F32;
    CLATTN_FORWARD(read_desc(ctx, &raw, &d)); /* float32 host arrays whatever the desc says */
    CLATTN_FORWARD(check_shapes(ctx, q_shape, k_shape, v_shape));
    size_t B = q_shape[0], Hq = q_shape[1], Hk = k_shape[1], N = q_shape[2];
    size_t nq, nk, nv, no, nb = Hq * (2 * N - 1);
    CLATTN_CHECK(clattn__mul_ok(B * Hq * N, q_shape[3] * sizeof(float), &nq) &&
                     clattn__mul_ok(B * Hk * N, k_shape[3] * sizeof(float), &nk) &&
                     clattn__mul_ok(B * Hk * N, v_shape[3] * sizeof(float), &nv) &&
                     clattn__mul_ok(B * Hq * N, v_shape[3] * sizeof(float), &no),
                 CLATTN_SIZE_OVERFLOW, "rpe host: sizes overflow");
    for (size_t x = 0; x < nb; x++)
        CLATTN_CHECK(isfinite(bias[x]), CLATTN_INVALID_ARGUMENT,
                     "rpe host: bias[%zu][%zu] (offset r = %td) is not finite", x / (2 * N - 1),
                     x % (2 * N - 1), (ptrdiff_t)(x % (2 * N - 1)) - (ptrdiff_t)(N - 1));
    CLATTN_FORWARD(plan_create(ctx, &d, q_shape, k_shape, v_shape, false, &plan));
    CLATTN_FORWARD(clattn__stage_in(&st, q, nq, "q", &bq));
    CLATTN_FORWARD(clattn__stage_in(&st, k, nk, "k", &bk));
    CLATTN_FORWARD(clattn__stage_in(&st, v, nv, "v", &bv));
    CLATTN_FORWARD(clattn__stage_in(&st, bias, nb * sizeof(float), "bias", &bb));
    CLATTN_FORWARD(clattn__stage_out(&st, out, no, "output", &bo));
    clattn_tensor tq = clattn_tensor_make(bq, B, Hq, N, q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, B, Hk, N, k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, B, Hk, N, v_shape[3]);
    clattn_tensor tb = clattn_tensor_make(bb, 1, Hq, 1, 2 * N - 1);
    clattn_tensor to = clattn_tensor_make(bo, B, Hq, N, v_shape[3]);
    CLATTN_FORWARD(clattn_rpe_plan_enqueue(plan, &tq, &tk, &tv, &tb, &to, 0, NULL, &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    return status;
}
