/* Host side of routing attention (Routing Transformer, balanced routing), in the operator shape:
 * desc -> plan (validate, lib/sched/sched_routing.c's launch, the kernels of routing.cl and of the
 * sort blocks created once, scratch) -> plan_enqueue: centroid panels, scores, segmented top-w
 * (lib/blocks/sort.c), key packing, attention inside each cluster, scatter-mean back to positions,
 * store into the caller's view. The centroid helpers run on the same plan
 * (lib/ops/routing_centroids.c). Kernels in kernels_cl/routing.cl. */
#include "routing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTING_DEFAULT_DECAY 0.999f

void clattn_routing_desc_init(clattn_routing_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->window = CLATTN_ROUTING_WINDOW_AUTO;
    desc->decay = ROUTING_DEFAULT_DECAY;
}

/* Copies the caller's desc (NULL: the defaults) and checks its ranges. */
static clattn_status read_desc(clattn_context *ctx, const clattn_routing_desc *in,
                               clattn_routing_desc *out)
{
    clattn_routing_desc_init(out);
    clattn_status st = clattn__desc_read(ctx, in, out, sizeof *out,
                                         offsetof(clattn_routing_desc, window) + sizeof(size_t),
                                         "routing desc");
    if (st != CLATTN_SUCCESS)
        return st;
    if (out->window == 0)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "routing desc: window 0 (use CLATTN_ROUTING_WINDOW_AUTO for "
                            "ceil(N / C))");
    st = clattn__check_flag(ctx, out->causal, "routing desc: causal");
    if (st != CLATTN_SUCCESS)
        return st;
    if (!isfinite(out->scale))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing desc: scale %g is not finite",
                            (double)out->scale);
    if (!(out->decay >= 0.0f && out->decay <= 1.0f))
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing desc: decay %g not in [0, 1]",
                            (double)out->decay);
    const clattn_dtype dts[] = {out->q_dtype, out->k_dtype, out->v_dtype, out->out_dtype};
    static const char *const names[] = {"routing desc q_dtype", "routing desc k_dtype",
                                        "routing desc v_dtype", "routing desc out_dtype"};
    for (int i = 0; i < 4; i++)
        if ((st = clattn__dtype_check(ctx, dts[i], names[i])) != CLATTN_SUCCESS)
            return st;
    return CLATTN_SUCCESS;
}

/* a * b * c, saturating at SIZE_MAX. */
static size_t prod3(size_t a, size_t b, size_t c)
{
    size_t ab, abc;
    return clattn__mul_ok(a, b, &ab) && clattn__mul_ok(ab, c, &abc) ? abc : SIZE_MAX;
}

/* Shapes q [B, Hq, N, D], k [B, Hk, N, D], v [B, Hk, N, Dv], centroids [1, Hk, C, D] among
 * themselves, against the kernels' limits, and the window; fills the problem. */
static clattn_status check_shapes(clattn_context *ctx, const clattn_routing_desc *d,
                                  const size_t q[4], const size_t k[4], const size_t v[4],
                                  const size_t mu[4], clattn__routing_problem *p)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || k[i] == 0 || v[i] == 0 || mu[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "routing: every shape entry must be >= 1");
    if (q[3] > CLATTN__ROUTING_MAX_D || v[3] > CLATTN__ROUTING_MAX_D)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "routing: D %zu or Dv %zu > %d", q[3],
                            v[3], CLATTN__ROUTING_MAX_D);
    if (k[0] != q[0] || k[2] != q[2] || k[3] != q[3] || q[1] % k[1] != 0)
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "routing: k [%zu, %zu, %zu, %zu] does not match q [%zu, %zu, %zu, "
                            "%zu] (same B, N and D; query heads a multiple of key heads)",
                            k[0], k[1], k[2], k[3], q[0], q[1], q[2], q[3]);
    if (v[0] != k[0] || v[1] != k[1] || v[2] != k[2])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "routing: v [%zu, %zu, %zu, %zu] does not match k's B, H, N", v[0],
                            v[1], v[2], v[3]);
    if (mu[0] != 1 || mu[1] != k[1] || mu[3] != q[3])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "routing: centroids [%zu, %zu, %zu, %zu] must be [1, Hk = %zu, C, D = "
                            "%zu]",
                            mu[0], mu[1], mu[2], mu[3], k[1], q[3]);
    clattn__routing_problem r = {q[0], q[1], k[1], q[2], q[3], v[3], mu[2], 0, d->causal, 0, {0}};
    if (d->clusters != 0 && d->clusters != r.clusters)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "routing: desc asks for %zu clusters but the centroids hold %zu",
                            d->clusters, r.clusters);
    if (r.clusters > r.n)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing: %zu clusters > N = %zu",
                            r.clusters, r.n);
    r.window = d->window == CLATTN_ROUTING_WINDOW_AUTO ? clattn__div_up(r.n, r.clusters)
                                                       : d->window;
    if (r.window > r.n)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "routing: window %zu > N = %zu",
                            r.window, r.n);
    /* Device indices are 32-bit: every scratch array and output stays below 2^31 elements. */
    const size_t lim = (size_t)1 << 31;
    size_t units = prod3(r.batch, r.heads_q + r.heads_k, 1), dmax = r.dv > r.d ? r.dv : r.d;
    if (units >= lim || prod3(units, r.clusters, r.n) >= lim ||
        prod3(units, r.n, dmax + 16) >= lim ||
        prod3(prod3(r.batch, r.heads_q, r.clusters), r.window, dmax + 16) >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "routing: sizes beyond 2^31");
    *p = r;
    return CLATTN_SUCCESS;
}

/* ---- the plan ---- */

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const clattn__routing_plan *p = (const clattn__routing_plan *)base;
    snprintf(info->variant, sizeof info->variant, "%s",
             p->launch.attend_tiled ? "clattn_routing_attend_gpu" : "clattn_routing_attend");
    snprintf(info->build_options, sizeof info->build_options, "%s",
             p->launch.attend_tiled ? p->launch.attend_defines : p->launch.defines);
    if (base->dtype_defines[0]) { /* the element types' -D options the plan's kernels got */
        size_t used = strlen(info->build_options);
        snprintf(info->build_options + used, sizeof info->build_options - used, " %s",
                 base->dtype_defines);
    }
    info->local_size = p->launch.attend_local;
}

static const clattn__plan_ops routing_ops = {CLATTN_OP_ROUTING, NULL, plan_info};

/* Which attend kernel: CLATTN_ROUTING_ATTEND_KERNEL=rows or tiled forces one (tests run the
 * GPU kernel on every device); "tiled:TX,TY,RM,RN" a tile of its candidate space as well. */
static void attend_kernel_env(clattn__routing_problem *r)
{
    const char *env = getenv("CLATTN_ROUTING_ATTEND_KERNEL");
    if (!env)
        return;
    if (strcmp(env, "rows") == 0)
        r->attend_kernel = CLATTN__ROUTING_ATTEND_ROWS;
    else if (strncmp(env, "tiled", 5) == 0) {
        r->attend_kernel = CLATTN__ROUTING_ATTEND_TILED;
        unsigned t[4];
        if (sscanf(env + 5, ":%u,%u,%u,%u", &t[0], &t[1], &t[2], &t[3]) == 4)
            memcpy(r->gpu_tile, t, sizeof t);
    }
}

static clattn_status make_kernel(clattn__routing_plan *p, const char *name, size_t local,
                                 cl_kernel *k)
{
    return clattn__plan_kernel(&p->base, "routing.cl", p->launch.defines, name, local,
                               "scheduler", k);
}

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

/* Every buffer of the plan, sized for the largest of its uses (attention, update, k-means++). */
static clattn_status make_scratch(clattn__routing_plan *p)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__routing_problem *r = &p->prob;
    clattn_plan *base = &p->base;
    clattn_context *ctx = base->ctx;
    size_t units = r->batch * (r->heads_q + r->heads_k), lanes = p->launch.lanes;
    size_t kcl = r->batch * r->heads_k * r->clusters, qcl = r->batch * r->heads_q * r->clusters;
    size_t nmu = r->heads_k * r->clusters * r->d, nslot = qcl * r->window;
    size_t big = max2(max2(units * r->clusters * r->n, r->batch * r->heads_q * r->n * r->dv),
                      max2(units * r->n * r->d, nmu));
    struct {
        cl_mem *m;
        size_t count;
        const char *what;
    } bufs[] = {
        {&p->mp, r->heads_k * p->cb * lanes * r->d, "routing centroid panels"},
        {&p->big, big, "routing scores"},
        {&p->sel, max2(units * r->clusters * r->window, units * r->n), "routing selections"},
        {&p->kp, max2(kcl * p->wp * r->d, nmu), "routing key panels"},
        {&p->vp, kcl * p->wp * p->dvp, "routing value rows"},
        {&p->kpos, max2(kcl * p->wp, r->heads_k * r->clusters), "routing key positions"},
        {&p->slots, nslot * r->dv, "routing cluster outputs"},
        {&p->dest, nslot, "routing destinations"},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        size_t bytes;
        CLATTN_CHECK(clattn__mul_ok(bufs[i].count, 4, &bytes), CLATTN_SIZE_OVERFLOW,
                     "routing plan: %s size overflows", bufs[i].what);
        CLATTN_FORWARD(clattn__plan_scratch(base, bytes, bufs[i].what, bufs[i].m));
    }
    const clattn__blocks_launch *L = &p->blocks.launch;
    clattn__sort_scratch_topk(&p->ws, L, units * r->clusters, r->n, r->window,
                              CLATTN__TOPK_BY_INDEX);
    clattn__sort_scratch_scatter_mean(&p->ws, L, nslot, r->batch * r->heads_q * r->n);
    clattn__sort_scratch_scatter_mean(&p->ws, L, units * r->n, r->heads_k * r->clusters);
    CLATTN_FORWARD(clattn__sort_scratch_alloc(base, &p->ws));
cleanup:
    return status;
}

clattn_status clattn_routing_plan_create(clattn_context *ctx, const clattn_routing_desc *desc,
                                         const size_t q_shape[4], const size_t k_shape[4],
                                         const size_t v_shape[4], const size_t centroids_shape[4],
                                         clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    clattn__routing_plan *p = NULL;
    char why[160];
    if (out)
        *out = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing plan: ctx is NULL");
    CLATTN_CHECK(out && q_shape && k_shape && v_shape && centroids_shape, CLATTN_NULL_POINTER,
                 "routing plan: plan, q_shape, k_shape, v_shape and centroids_shape are "
                 "required");
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof *p, &routing_ops, &base));
    p = (clattn__routing_plan *)base;
    CLATTN_FORWARD(read_desc(ctx, desc, &p->desc));
    CLATTN_FORWARD(check_shapes(ctx, &p->desc, q_shape, k_shape, v_shape, centroids_shape,
                                &p->prob));
    memcpy(p->qshape, q_shape, sizeof p->qshape);
    memcpy(p->kshape, k_shape, sizeof p->kshape);
    memcpy(p->vshape, v_shape, sizeof p->vshape);
    memcpy(p->mushape, centroids_shape, sizeof p->mushape);
    attend_kernel_env(&p->prob);
    status = clattn__schedule_routing(&ctx->info, &p->prob, &p->launch, why, sizeof why);
    CLATTN_CHECK(status == CLATTN_SUCCESS, status, "routing plan on '%s': %s", ctx->info.name,
                 why);
    const clattn__routing_problem *r = &p->prob;
    size_t lanes = p->launch.lanes;
    p->wp = clattn__div_up(r->window, lanes) * lanes;
    p->dvp = clattn__div_up(r->dv, lanes) * lanes;
    p->cb = clattn__div_up(r->clusters, lanes);
    p->scale = p->desc.scale != 0.0f ? p->desc.scale : 1.0f / sqrtf((float)r->d);
    base->algorithm = 0;
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "balanced");
    const clattn_routing_desc *dd = &p->desc;
    const clattn__dtype_role roles[] = {
        {"Q", dd->q_dtype}, {"K", dd->k_dtype}, {"V", dd->v_dtype}, {"O", dd->out_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 4));

    CLATTN_FORWARD(make_kernel(p, "clattn_routing_pack_centroids", 0, &p->pack_centroids));
    CLATTN_FORWARD(make_kernel(p, "clattn_routing_scores", p->launch.rows_local, &p->scores));
    CLATTN_FORWARD(make_kernel(p, "clattn_routing_pack_keys", 0, &p->pack_keys));
    if (p->launch.attend_tiled) /* its own program: the tile and head dims are compiled in */
        CLATTN_FORWARD(clattn__plan_kernel(&p->base, "routing.cl", p->launch.attend_defines,
                                           "clattn_routing_attend_gpu", p->launch.attend_local,
                                           "scheduler", &p->attend));
    else
        CLATTN_FORWARD(
            make_kernel(p, "clattn_routing_attend", p->launch.attend_local, &p->attend));
    CLATTN_FORWARD(make_kernel(p, "clattn_routing_store", 0, &p->store));
    /* The centroids' float32 store: the output's store when out is float32 too. */
    if (dd->out_dtype == CLATTN_F32)
        p->store_f32 = p->store; /* the plan owns (and releases) each kernel once */
    else
        CLATTN_FORWARD(make_kernel(p, "clattn_routing_store_f32", 0, &p->store_f32));
    CLATTN_FORWARD(make_kernel(p, "clattn_routing_assign", p->launch.rows_local, &p->assign));
    CLATTN_FORWARD(make_kernel(p, "clattn_routing_ema", 0, &p->ema));
    /* The sort blocks work on the plan's float32 scores and int32 indices: built without the
     * element types' defines, so every typed plan shares their programs with float32 plans. */
    char dt_saved[sizeof base->dtype_defines];
    memcpy(dt_saved, base->dtype_defines, sizeof dt_saved);
    base->dtype_defines[0] = '\0';
    status = clattn__sort_kernels_create(
        base, CLATTN__SORT_USE_TOPK | CLATTN__SORT_USE_SCATTER_MEAN, &p->blocks);
    memcpy(base->dtype_defines, dt_saved, sizeof dt_saved);
    CLATTN_FORWARD(status);
    snprintf(base->launch, sizeof base->launch,
             "clusters=%zu window=%zu rows_wg=%zu attend_wg=%zu sort_block=%zu", r->clusters,
             r->window, p->launch.rows_local, p->launch.attend_local,
             clattn__sort_block(&p->blocks.launch, r->batch * (r->heads_q + r->heads_k) *
                                                       r->clusters,
                                r->n));
    if (p->launch.attend_tiled) {
        size_t used = strlen(base->launch);
        snprintf(base->launch + used, sizeof base->launch - used,
                 " attend=tiled:%u,%u,%u,%u qc=%u vc=%u", p->launch.gpu_tx, p->launch.gpu_ty,
                 p->launch.gpu_rm, p->launch.gpu_rn, p->launch.gpu_qc, p->launch.gpu_vc);
    }
    if (base->dtype_defines[0]) {
        size_t used = strlen(base->launch);
        snprintf(base->launch + used, sizeof base->launch - used, " dtype=q:%s,k:%s,v:%s,out:%s",
                 clattn_dtype_name(dd->q_dtype), clattn_dtype_name(dd->k_dtype),
                 clattn_dtype_name(dd->v_dtype), clattn_dtype_name(dd->out_dtype));
    }
    CLATTN_FORWARD(make_scratch(p));
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

/* ---- checks and shared steps ---- */

clattn_status clattn__routing_check_io(const clattn__routing_plan *p, const clattn_tensor *q,
                                       const clattn_tensor *k, const clattn_tensor *v,
                                       const clattn_tensor *mu_in, const clattn_tensor *out,
                                       const char *out_name, const size_t out_shape[4],
                                       clattn_dtype out_dtype)
{
    const clattn_routing_desc *d = &p->desc;
    const clattn__view ins[] = {{q, "q", p->qshape, true, d->q_dtype},
                                {k, "k", p->kshape, true, d->k_dtype},
                                {v, "v", p->vshape, true, d->v_dtype},
                                {mu_in, "centroids", p->mushape, true, CLATTN_F32}};
    const clattn__view outs[] = {{out, out_name, out_shape, false, out_dtype}};
    return clattn__check_views(p->base.ctx, ins, 4, outs, 1);
}

clattn_status clattn__routing_pack_centroids(clattn__seq *s, const clattn__routing_plan *p,
                                             const clattn_tensor *mu)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__routing_problem *r = &p->prob;
    cl_uint dk = (cl_uint)r->d, nc = (cl_uint)r->clusters, ucb = (cl_uint)p->cb;
    clattn__args a = {p->pack_centroids, 0, CL_SUCCESS};
    clattn__arg_view(&a, mu);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, ucb);
    CLATTN_ARG(&a, p->mp);
    CLATTN_CL(a.err);
    size_t gl[2] = {p->cb * p->launch.lanes, r->heads_k};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->pack_centroids, 2, gl, false, NULL));
cleanup:
    return status;
}

clattn_status clattn__routing_store(clattn__seq *s, const clattn__routing_plan *p, bool f32,
                                    cl_mem dense, size_t bh, size_t heads, size_t n, size_t d,
                                    const clattn_tensor *out, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint uh = (cl_uint)heads, un = (cl_uint)n, ud = (cl_uint)d;
    cl_kernel kern = f32 ? p->store_f32 : p->store;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, dense);
    CLATTN_ARG(&a, uh);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, ud);
    clattn__arg_view(&a, out);
    CLATTN_CL(a.err);
    size_t gl[3] = {d, n, bh};
    CLATTN_FORWARD(clattn__seq_kernel(s, kern, 3, gl, last, event));
cleanup:
    return status;
}

/* ---- enqueue ---- */

void clattn__routing_rows_args(clattn__args *a, const clattn__routing_plan *p,
                               const clattn_tensor *q, const clattn_tensor *k)
{
    const clattn__routing_problem *r = &p->prob;
    cl_uint ub = (cl_uint)r->batch, hq = (cl_uint)r->heads_q, hk = (cl_uint)r->heads_k;
    cl_uint n = (cl_uint)r->n, dk = (cl_uint)r->d, nc = (cl_uint)r->clusters;
    cl_uint ucb = (cl_uint)p->cb;
    clattn__arg_view(a, q);
    clattn__arg_view(a, k);
    CLATTN_ARG(a, p->mp);
    CLATTN_ARG(a, ub);
    CLATTN_ARG(a, hq);
    CLATTN_ARG(a, hk);
    CLATTN_ARG(a, n);
    CLATTN_ARG(a, dk);
    CLATTN_ARG(a, nc);
    CLATTN_ARG(a, ucb);
    CLATTN_ARG(a, p->big);
}

void clattn__routing_rows_sizes(const clattn__routing_plan *p, size_t global[2], size_t local[2])
{
    global[0] = p->prob.n;
    global[1] = p->prob.batch * (p->prob.heads_q + p->prob.heads_k);
    local[0] = p->launch.rows_local;
    local[1] = 1;
}

/* scores, then the top-w selections of every (unit, cluster) segment. */
static clattn_status enqueue_select(clattn__seq *s, const clattn__routing_plan *p,
                                    const clattn_tensor *q, const clattn_tensor *k)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__routing_problem *r = &p->prob;
    size_t units = r->batch * (r->heads_q + r->heads_k);
    clattn__args a = {p->scores, 0, CL_SUCCESS};
    clattn__routing_rows_args(&a, p, q, k);
    CLATTN_CL(a.err);
    size_t gs[2], ls[2];
    clattn__routing_rows_sizes(p, gs, ls);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->scores, 2, gs, ls, false, NULL));
    /* Position order inside each selection: the causal mask then hides a suffix of the keys. */
    CLATTN_FORWARD(clattn__topk_seq(s, &p->blocks, &p->ws, p->big, units * r->clusters, r->n,
                                    r->window, CLATTN__TOPK_BY_INDEX, p->sel, NULL, false,
                                    NULL));
cleanup:
    return status;
}

/* Key packing and the attention inside every query cluster. */
static clattn_status enqueue_attend(clattn__seq *s, const clattn__routing_plan *p,
                                    const clattn_tensor *q, const clattn_tensor *k,
                                    const clattn_tensor *v)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__routing_problem *r = &p->prob;
    size_t kcl = r->batch * r->heads_k * r->clusters, qcl = r->batch * r->heads_q * r->clusters;
    cl_uint kseg0 = (cl_uint)qcl, hq = (cl_uint)r->heads_q, hk = (cl_uint)r->heads_k;
    cl_uint n = (cl_uint)r->n, dk = (cl_uint)r->d, dv = (cl_uint)r->dv;
    cl_uint udvp = (cl_uint)p->dvp, nc = (cl_uint)r->clusters, w = (cl_uint)r->window;
    cl_uint uwp = (cl_uint)p->wp;
    clattn__args a = {p->pack_keys, 0, CL_SUCCESS};
    clattn__arg_view(&a, k);
    clattn__arg_view(&a, v);
    CLATTN_ARG(&a, p->sel);
    CLATTN_ARG(&a, kseg0);
    CLATTN_ARG(&a, hk);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, udvp);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, uwp);
    CLATTN_ARG(&a, p->kp);
    CLATTN_ARG(&a, p->vp);
    CLATTN_ARG(&a, p->kpos);
    CLATTN_CL(a.err);
    size_t gk[2] = {p->wp, kcl};
    CLATTN_FORWARD(clattn__seq_kernel(s, p->pack_keys, 2, gk, false, NULL));

    cl_float scale_log2 = p->scale * 1.4426950408889634f; /* exp2 in the kernel */
    cl_int causal = r->causal != 0;
    a = (clattn__args){p->attend, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    CLATTN_ARG(&a, p->sel);
    CLATTN_ARG(&a, p->kp);
    CLATTN_ARG(&a, p->vp);
    CLATTN_ARG(&a, p->kpos);
    CLATTN_ARG(&a, hq);
    CLATTN_ARG(&a, hk);
    CLATTN_ARG(&a, n);
    CLATTN_ARG(&a, dk);
    CLATTN_ARG(&a, dv);
    CLATTN_ARG(&a, udvp);
    CLATTN_ARG(&a, nc);
    CLATTN_ARG(&a, w);
    CLATTN_ARG(&a, uwp);
    CLATTN_ARG(&a, scale_log2);
    CLATTN_ARG(&a, causal);
    CLATTN_ARG(&a, p->slots);
    CLATTN_ARG(&a, p->dest);
    CLATTN_CL(a.err);
    size_t ga[2] = {r->window, qcl}, la[2] = {p->launch.attend_local, 1};
    if (p->launch.attend_tiled) /* a work-group per BR query slots of a cluster */
        ga[0] = clattn__div_up(r->window, p->launch.attend_rows) * p->launch.attend_local;
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->attend, 2, ga, la, false, NULL));
cleanup:
    return status;
}

clattn_status clattn_routing_plan_enqueue(clattn_plan *base, const clattn_tensor *q,
                                          const clattn_tensor *k, const clattn_tensor *v,
                                          const clattn_tensor *centroids,
                                          const clattn_tensor *out, cl_uint num_wait,
                                          const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_ROUTING, "routing enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    clattn__routing_plan *p = (clattn__routing_plan *)base;
    clattn_context *ctx = base->ctx;
    const clattn__routing_problem *r = &p->prob;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(q && k && v && centroids && out, CLATTN_NULL_POINTER,
                 "routing enqueue: q, k, v, centroids and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "routing enqueue: num_wait > 0 but wait is NULL");
    size_t oshape[4] = {r->batch, r->heads_q, r->n, r->dv};
    CLATTN_FORWARD(
        clattn__routing_check_io(p, q, k, v, centroids, out, "out", oshape, p->desc.out_dtype));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    size_t bhq = r->batch * r->heads_q;
    CLATTN_FORWARD(clattn__routing_pack_centroids(&s, p, centroids));
    CLATTN_FORWARD(enqueue_select(&s, p, q, k));
    CLATTN_FORWARD(enqueue_attend(&s, p, q, k, v));
    /* The dense outputs reuse the score buffer, dead since the selection. */
    CLATTN_FORWARD(clattn__scatter_mean_rows_seq(&s, &p->blocks, &p->ws, p->slots,
                                                 bhq * r->clusters * r->window, r->dv, p->dest,
                                                 bhq * r->n, p->big, NULL, false, NULL));
    CLATTN_FORWARD(
        clattn__routing_store(&s, p, false, p->big, bhq, r->heads_q, r->n, r->dv, out, true,
                              event));
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_routing_enqueue(clattn_context *ctx, const clattn_routing_desc *desc,
                                     const clattn_tensor *q, const clattn_tensor *k,
                                     const clattn_tensor *v, const clattn_tensor *centroids,
                                     const clattn_tensor *out, cl_uint num_wait,
                                     const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing enqueue: ctx is NULL");
    if (!q || !k || !v || !centroids || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "routing enqueue: q, k, v, centroids and out are required");
    if (num_wait > 0 && !wait)
        return clattn__fail(ctx, CLATTN_NULL_POINTER,
                            "routing enqueue: num_wait > 0 but wait is NULL");
    clattn_plan *plan = NULL;
    clattn_routing_desc d;
    clattn_status status = read_desc(ctx, desc, &d);
    if (status != CLATTN_SUCCESS)
        return status;
    d.q_dtype = q->dtype; /* the tensors' types, not the desc's */
    d.k_dtype = k->dtype;
    d.v_dtype = v->dtype;
    d.out_dtype = out->dtype;
    status = clattn_routing_plan_create(ctx, &d, q->shape, k->shape, v->shape, centroids->shape,
                                        &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_routing_plan_enqueue(plan, q, k, v, centroids, out, num_wait, wait,
                                             event);
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

/* ---- blocking host-memory convenience ---- */

static size_t numel(const size_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

clattn_status clattn_routing_host(clattn_context *ctx, const clattn_routing_desc *desc,
                                  const size_t q_shape[4], const size_t k_shape[4],
                                  const size_t v_shape[4], const float *q, const float *k,
                                  const float *v, const float *centroids, float *out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    cl_mem bq, bk, bv, bmu, bo;
    clattn_routing_desc d;
    clattn__routing_problem r;
    clattn_plan *plan = NULL;
    cl_event done = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "routing host: ctx is NULL");
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(q_shape && k_shape && v_shape && q && k && v && out, CLATTN_NULL_POINTER,
                 "routing host: shapes, q, k, v and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    d.q_dtype = d.k_dtype = d.v_dtype = d.out_dtype = CLATTN_F32; /* host arrays are float32 */
    CLATTN_CHECK(d.clusters > 0, CLATTN_INVALID_ARGUMENT,
                 "routing host: desc->clusters must give C (> 0)");
    size_t mu_shape[4] = {1, k_shape[1], d.clusters, q_shape[3]};
    CLATTN_FORWARD(check_shapes(ctx, &d, q_shape, k_shape, v_shape, mu_shape, &r));
    size_t o_shape[4] = {r.batch, r.heads_q, r.n, r.dv};
    const size_t *shapes[] = {q_shape, k_shape, v_shape, mu_shape, o_shape};
    for (int i = 0; i < 5; i++)
        CLATTN_CHECK(prod3(shapes[i][0] * shapes[i][1], shapes[i][2], shapes[i][3]) <
                         SIZE_MAX / sizeof(float),
                     CLATTN_SIZE_OVERFLOW, "routing host: sizes overflow");
    CLATTN_FORWARD(clattn_routing_plan_create(ctx, &d, q_shape, k_shape, v_shape, mu_shape, &plan));
    CLATTN_FORWARD(clattn__stage_in(&st, q, numel(q_shape) * sizeof(float), "q", &bq));
    CLATTN_FORWARD(clattn__stage_in(&st, k, numel(k_shape) * sizeof(float), "k", &bk));
    CLATTN_FORWARD(clattn__stage_in(&st, v, numel(v_shape) * sizeof(float), "v", &bv));
    if (centroids)
        CLATTN_FORWARD(
            clattn__stage_in(&st, centroids, numel(mu_shape) * sizeof(float), "centroids", &bmu));
    else
        CLATTN_FORWARD(
            clattn__stage_out(&st, NULL, numel(mu_shape) * sizeof(float), "centroids", &bmu));
    CLATTN_FORWARD(clattn__stage_out(&st, out, numel(o_shape) * sizeof(float), "output", &bo));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tk = clattn_tensor_make(bk, k_shape[0], k_shape[1], k_shape[2], k_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor tmu = clattn_tensor_make(bmu, 1, mu_shape[1], mu_shape[2], mu_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, o_shape[0], o_shape[1], o_shape[2], o_shape[3]);
    if (!centroids)
        CLATTN_FORWARD(clattn_routing_centroids_draw(plan, &tq, &tk, d.seed, &tmu));
    CLATTN_FORWARD(clattn_routing_plan_enqueue(plan, &tq, &tk, &tv, &tmu, &to, 0, NULL, &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    return status;
}
