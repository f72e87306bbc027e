/* Host side of Reformer LSH attention, in the operator shape (lib/ops/softmax.c is the worked
 * example): desc_init -> plan_create (validate, choose the launch in lib/sched/sched_lsh.c, upload
 * the rotations once, create the kernels once, allocate the scratch) -> plan_enqueue (validate the
 * views, enqueue hash -> sort -> pack -> attend -> combine through one command sequence) -> the
 * one-shot enqueue and the blocking host call on top. What each kernel does: kernels_cl/lsh.cl.
 *
 * The sort is lsh.cl's counting sort rather than the generic key-value sort of lib/blocks/sort while
 * the buckets are few (the keys are bucket numbers known in advance, so a per-tile histogram, one
 * scan and an in-order scatter give a stable sort in one pass, without barriers); with many
 * buckets the plan uses the radix-sort block (the scheduler's choice, sched_lsh.c). */
#include "../core/internal.h"
#include "../sched/sched.h"
#include "../blocks/sort.h"
#include "../tune/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lsh_plan {
    clattn_plan base;
    clattn_lsh_desc desc; /* rotations cleared: the plan holds its own copy (rp) */
    size_t qshape[4], vshape[4];
    clattn__lsh_launch launch;
    cl_uint heads, n, dk, dv, nh, nb, half, halfp, chunk, cp, nchunks, tiles;
    size_t bh, segs;
    cl_kernel hash, hist, scan, scatter, keys, vals, attend, combine;
    clattn__sort_kernels radix;   /* the radix-sort block, when the launch does not count */
    clattn__sort_scratch radix_ws; /* its scratch (owned by the plan) */
    cl_mem rp;                /* rotations [n_hashes][D][halfp], zero-padded, uploaded once */
    cl_mem bkt, khat, cnt, sorted, skeys, kp, spos, sbkt, vp, ro, rl;
} lsh_plan;

void clattn_lsh_desc_init(clattn_lsh_desc *desc)
{
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->struct_size = sizeof *desc;
    desc->n_hashes = 4;
    desc->n_buckets = 64;
    desc->chunk_size = 64;
}

static clattn_status check_params(clattn_context *ctx, size_t n_hashes, size_t n_buckets)
{
    if (n_hashes < 1 || n_hashes > CLATTN_LSH_MAX_HASHES)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "lsh: n_hashes %zu is not in 1..%d",
                            n_hashes, CLATTN_LSH_MAX_HASHES);
    if (n_buckets < 2 || n_buckets > CLATTN_LSH_MAX_BUCKETS || n_buckets % 2 != 0)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "lsh: n_buckets %zu must be even and in 2..%d", n_buckets,
                            CLATTN_LSH_MAX_BUCKETS);
    return CLATTN_SUCCESS;
}

/* The caller's desc (NULL: the defaults) over the defaults, honouring struct_size, then checked. */
static clattn_status read_desc(clattn_context *ctx, const clattn_lsh_desc *in, clattn_lsh_desc *out)
{
    clattn_lsh_desc_init(out);
    clattn_status st = clattn__desc_read(ctx, in, out, sizeof *out,
                                         offsetof(clattn_lsh_desc, chunk_size) + sizeof(size_t),
                                         "lsh desc");
    if (st == CLATTN_SUCCESS)
        st = check_params(ctx, out->n_hashes, out->n_buckets);
    if (st == CLATTN_SUCCESS && out->chunk_size < 1)
        st = clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "lsh desc: chunk_size must be >= 1");
    if (st == CLATTN_SUCCESS)
        st = clattn__check_flag(ctx, out->causal, "lsh desc: causal");
    if (st == CLATTN_SUCCESS)
        st = clattn__check_flag(ctx, out->attend_across_buckets,
                                "lsh desc: attend_across_buckets");
    if (st == CLATTN_SUCCESS)
        st = clattn__dtype_check(ctx, out->q_dtype, "lsh desc q_dtype");
    if (st == CLATTN_SUCCESS)
        st = clattn__dtype_check(ctx, out->v_dtype, "lsh desc v_dtype");
    if (st == CLATTN_SUCCESS)
        st = clattn__dtype_check(ctx, out->out_dtype, "lsh desc out_dtype");
    return st;
}

/* ---- rotations from a seed ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

clattn_status clattn_lsh_rotations(size_t n_hashes, size_t d, size_t n_buckets, uint64_t seed,
                                   float *rot)
{
    if (!rot)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh rotations: rot is NULL");
    clattn_status st = check_params(NULL, n_hashes, n_buckets);
    if (st != CLATTN_SUCCESS)
        return st;
    if (d < 1 || d > CLATTN__MAX_HEAD_DIM)
        return clattn__fail(NULL, CLATTN_INVALID_SHAPE, "lsh rotations: d %zu is not in 1..%d",
                            d, CLATTN__MAX_HEAD_DIM);
    const double two_pi = 6.283185307179586476925286766559;
    size_t n = n_hashes * d * (n_buckets / 2);
    uint64_t s = seed;
    for (size_t k = 0; k < n; k += 2) {
        double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1]: log is finite */
        double u2 = (double)(splitmix64(&s) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        rot[k] = (float)(r * cos(two_pi * u2));
        if (k + 1 < n)
            rot[k + 1] = (float)(r * sin(two_pi * u2));
    }
    return CLATTN_SUCCESS;
}

/* ---- validation ---- */

static size_t pad_panel(size_t x)
{
    return (x + CLATTN__LSH_PANEL - 1) / CLATTN__LSH_PANEL * CLATTN__LSH_PANEL;
}

static clattn_status check_dims(clattn_context *ctx, const size_t q[4], const size_t v[4],
                                const clattn_lsh_desc *d)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "lsh: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], v[0], v[1], v[2], v[3]);
    if (q[3] > CLATTN__MAX_HEAD_DIM || v[3] > CLATTN__MAX_HEAD_DIM)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "lsh: D %zu or Dv %zu > %d", q[3], v[3],
                            CLATTN__MAX_HEAD_DIM);
    if (q[0] != v[0] || q[1] != v[1] || q[2] != v[2])
        return clattn__fail(ctx, CLATTN_SHAPE_MISMATCH,
                            "lsh: q [%zu, %zu, %zu, .] and v [%zu, %zu, %zu, .] differ in batch, "
                            "heads or length",
                            q[0], q[1], q[2], v[0], v[1], v[2]);
    /* 32-bit positions, (b, h) and (b, h, round) indices, and padded chunk slots in the kernels. */
    const size_t lim = (size_t)1 << 31;
    if (q[0] > (lim - 1) / q[1] || q[2] >= lim / 2 || q[0] * q[1] > (lim - 1) / d->n_hashes)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "lsh: sizes beyond 2^31");
    size_t chunk = d->chunk_size < q[2] ? d->chunk_size : q[2];
    if (clattn__div_up(q[2], chunk) * pad_panel(chunk) >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "lsh: %zu positions in chunks of %zu (padded to %d) exceed 2^31 slots",
                            q[2], chunk, CLATTN__LSH_PANEL);
    return CLATTN_SUCCESS;
}

/* The enqueue's views against the plan's shapes: each fits its buffer; outputs are one-to-one and
 * overlap no input and no other output. */
static clattn_status check_views(const lsh_plan *plan, const clattn_tensor *q,
                                 const clattn_tensor *v, const clattn_tensor *out,
                                 const clattn_tensor *lse, const clattn_tensor *bk)
{
    const size_t *qs = plan->qshape;
    size_t os[4] = {qs[0], qs[1], qs[2], plan->vshape[3]}, ls[4] = {qs[0], qs[1], qs[2], 1};
    size_t bs[4] = {qs[0], qs[1], plan->desc.n_hashes, qs[2]};
    const clattn_lsh_desc *d = &plan->desc;
    const clattn__view ins[] = {{q, "q", plan->qshape, false, d->q_dtype},
                                {v, "v", plan->vshape, false, d->v_dtype}};
    /* buckets are int32: sized as 4-byte elements, like float32. */
    const clattn__view outs[] = {{out, "out", os, true, d->out_dtype},
                                 {lse, "lse", ls, true, CLATTN_F32},
                                 {bk, "buckets", bs, true, CLATTN_F32}};
    return clattn__check_views(plan->base.ctx, ins, 2, outs, 3);
}

/* ---- baking ---- */

static void plan_info(const clattn_plan *base, clattn_plan_info *info);

static const clattn__plan_ops lsh_ops = {CLATTN_OP_LSH, NULL, plan_info};

static void plan_dims(lsh_plan *p)
{
    const size_t *qs = p->qshape;
    p->bh = qs[0] * qs[1];
    p->heads = (cl_uint)qs[1];
    p->n = (cl_uint)qs[2];
    p->dk = (cl_uint)qs[3];
    p->dv = (cl_uint)p->vshape[3];
    p->nh = (cl_uint)p->desc.n_hashes;
    p->nb = (cl_uint)p->desc.n_buckets;
    p->half = p->nb / 2;
    p->halfp = (cl_uint)pad_panel(p->half);
    /* A chunk of N or more is one chunk holding everything. */
    p->chunk = (cl_uint)(p->desc.chunk_size < qs[2] ? p->desc.chunk_size : qs[2]);
    p->cp = (cl_uint)pad_panel(p->chunk);
    p->nchunks = (cl_uint)clattn__div_up(p->n, p->chunk);
    p->tiles = (cl_uint)clattn__div_up(p->n, p->launch.sort_tile);
    p->segs = p->bh * p->nh;
}

/* The rotations, the caller's (desc.rotations, checked here) or drawn from the seed, padded to
 * [n_hashes][D][halfp] on the host and uploaded once. */
static clattn_status bake_rotations(lsh_plan *p, const float *given)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t nr = (size_t)p->nh * p->dk * p->half, np = (size_t)p->nh * p->dk * p->halfp;
    float *drawn = NULL, *padded = NULL;
    if (given) {
        const size_t *rs = p->desc.rotations_shape;
        CLATTN_CHECK(rs[0] == p->nh && rs[1] == p->dk && rs[2] == p->half, CLATTN_SHAPE_MISMATCH,
                     "lsh desc: rotations_shape {%zu, %zu, %zu} is not {n_hashes %u, D %u, "
                     "n_buckets / 2 %u}",
                     rs[0], rs[1], rs[2], p->nh, p->dk, p->half);
        for (size_t i = 0; i < nr; i++)
            CLATTN_CHECK(isfinite(given[i]), CLATTN_INVALID_ARGUMENT,
                         "lsh desc: rotations[%zu] is not finite", i);
    } else {
        drawn = malloc(nr * sizeof(float));
        CLATTN_CHECK(drawn != NULL, CLATTN_OUT_OF_HOST_MEMORY, "lsh: rotations (%zu floats)", nr);
        CLATTN_FORWARD(clattn_lsh_rotations(p->nh, p->dk, p->nb, p->desc.seed, drawn));
        given = drawn;
    }
    padded = calloc(np, sizeof(float));
    CLATTN_CHECK(padded != NULL, CLATTN_OUT_OF_HOST_MEMORY, "lsh: rotations (%zu floats)", np);
    for (size_t rk = 0; rk < (size_t)p->nh * p->dk; rk++)
        memcpy(padded + rk * p->halfp, given + rk * p->half, p->half * sizeof(float));
    CLATTN_FORWARD(clattn__plan_upload(&p->base, padded, np * sizeof(float), "lsh rotations",
                                       &p->rp));
cleanup:
    free(drawn);
    free(padded);
    return status;
}

static clattn_status scratch(lsh_plan *p, size_t a, size_t b, size_t c, const char *what,
                             cl_mem *out)
{
    size_t ab, abc, bytes;
    if (!clattn__mul_ok(a, b, &ab) || !clattn__mul_ok(ab, c, &abc) ||
        !clattn__mul_ok(abc, 4, &bytes))
        return clattn__fail(p->base.ctx, CLATTN_SIZE_OVERFLOW, "lsh: %s size overflows", what);
    return clattn__plan_scratch(&p->base, bytes, what, out);
}

static clattn_status bake_scratch(lsh_plan *p)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t slots = (size_t)p->nchunks * p->cp;
    CLATTN_FORWARD(scratch(p, p->segs, p->n, 1, "lsh buckets", &p->bkt));
    CLATTN_FORWARD(scratch(p, p->segs, p->n, 1, "lsh sorted positions", &p->sorted));
    if (p->launch.counting_sort)
        CLATTN_FORWARD(scratch(p, p->segs, p->nb, p->tiles, "lsh sort counts", &p->cnt));
    else
        CLATTN_FORWARD(scratch(p, p->segs, p->n, 1, "lsh sorted buckets", &p->skeys));
    CLATTN_FORWARD(scratch(p, p->bh, p->n, pad_panel(p->dk), "lsh normalised keys", &p->khat));
    CLATTN_FORWARD(scratch(p, p->segs, p->n, pad_panel(p->dv), "lsh round outputs", &p->ro));
    CLATTN_FORWARD(scratch(p, p->segs, p->n, 1, "lsh round log-sum-exps", &p->rl));
    CLATTN_FORWARD(scratch(p, p->segs, slots, pad_panel(p->dk), "lsh sorted keys", &p->kp));
    CLATTN_FORWARD(scratch(p, p->segs, slots, 1, "lsh slot positions", &p->spos));
    CLATTN_FORWARD(scratch(p, p->segs, slots, 1, "lsh slot buckets", &p->sbkt));
    CLATTN_FORWARD(scratch(p, p->bh, p->n, pad_panel(p->dv), "lsh values", &p->vp));
cleanup:
    return status;
}

static clattn_status bake_kernels(lsh_plan *p, const char *by)
{
    clattn_plan *b = &p->base;
    clattn_status status = CLATTN_SUCCESS;
    clattn_context *ctx = b->ctx;
    const clattn__lsh_launch *L = &p->launch;
    const char *o = L->defines;
    CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_hash", L->hash_local, by,
                                       &p->hash));
    CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_pack_v", L->row_local, by,
                                       &p->vals));
    if (L->counting_sort) {
        CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_hist", 1, by, &p->hist));
        CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_scan", 1, by, &p->scan));
        CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_scatter", 1, by,
                                           &p->scatter));
    } else {
        /* The radix sort works on int32 buckets and positions: built without the element
         * types' defines, so typed plans share its programs with float32 plans. */
        char dt_saved[sizeof b->dtype_defines];
        memcpy(dt_saved, b->dtype_defines, sizeof dt_saved);
        b->dtype_defines[0] = '\0';
        status = clattn__sort_kernels_create(b, CLATTN__SORT_USE_SORT, &p->radix);
        memcpy(b->dtype_defines, dt_saved, sizeof dt_saved);
        CLATTN_FORWARD(status);
        clattn__sort_scratch_sort(&p->radix_ws, &p->radix.launch, p->segs, p->n, L->key_bits);
        CLATTN_FORWARD(clattn__sort_scratch_alloc(b, &p->radix_ws));
    }
    CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_pack_keys", 1, by, &p->keys));
    CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_combine", L->row_local, by,
                                       &p->combine));
    /* The main kernel last: clattn_plan_get_info reports it. */
    char gdef[384];
    clattn__lsh_attend_defines(L, gdef, sizeof gdef);
    if (L->attend_tiled) /* its own program: the tile compiled in */
        CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", gdef, "clattn_lsh_attend_gpu",
                                           L->attend_local, by, &p->attend));
    else
        CLATTN_FORWARD(clattn__plan_kernel(b, "lsh.cl", o, "clattn_lsh_attend", L->local_size,
                                           by, &p->attend));

    /* Arguments that never change: everything of the sort and key-packing kernels. */
    clattn__args a;
    if (L->counting_sort) {
        cl_uint tile = L->sort_tile;
        a = (clattn__args){p->hist, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p->bkt);
        CLATTN_ARG(&a, p->n);
        CLATTN_ARG(&a, p->nb);
        CLATTN_ARG(&a, tile);
        CLATTN_ARG(&a, p->tiles);
        CLATTN_ARG(&a, p->cnt);
        CLATTN_CL(a.err);
        a = (clattn__args){p->scan, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p->cnt);
        CLATTN_ARG(&a, p->nb);
        CLATTN_ARG(&a, p->tiles);
        CLATTN_CL(a.err);
        a = (clattn__args){p->scatter, 0, CL_SUCCESS};
        CLATTN_ARG(&a, p->bkt);
        CLATTN_ARG(&a, p->n);
        CLATTN_ARG(&a, p->nb);
        CLATTN_ARG(&a, tile);
        CLATTN_ARG(&a, p->tiles);
        CLATTN_ARG(&a, p->cnt);
        CLATTN_ARG(&a, p->sorted);
        CLATTN_CL(a.err);
    }
    a = (clattn__args){p->keys, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->n);
    CLATTN_ARG(&a, p->nh);
    CLATTN_ARG(&a, p->chunk);
    CLATTN_ARG(&a, p->cp);
    CLATTN_ARG(&a, p->nchunks);
    CLATTN_ARG(&a, p->sorted);
    CLATTN_ARG(&a, p->bkt);
    CLATTN_ARG(&a, p->khat);
    CLATTN_ARG(&a, p->kp);
    CLATTN_ARG(&a, p->spos);
    CLATTN_ARG(&a, p->sbkt);
    CLATTN_CL(a.err);
cleanup:
    return status;
}

static void problem_of(const clattn_lsh_desc *d, const size_t q[4], const size_t v[4],
                       clattn__lsh_problem *out)
{
    clattn__lsh_problem prob = {q[0] * q[1],
                                q[2],
                                q[3],
                                v[3],
                                d->n_hashes,
                                d->n_buckets,
                                d->chunk_size,
                                d->causal,
                                {d->q_dtype, d->v_dtype, d->out_dtype}};
    *out = prob;
}

clattn_status clattn__lsh_problem_make(clattn_context *ctx, const clattn_lsh_desc *desc,
                                       const size_t q_shape[4], const size_t v_shape[4],
                                       clattn__lsh_problem *out)
{
    clattn_lsh_desc d;
    clattn_status st = CLATTN_NULL_POINTER;
    if (!q_shape || !v_shape)
        return clattn__fail(ctx, st, "lsh: q_shape and v_shape are required");
    st = read_desc(ctx, desc, &d);
    if (st == CLATTN_SUCCESS)
        st = check_dims(ctx, q_shape, v_shape, &d);
    if (st == CLATTN_SUCCESS)
        problem_of(&d, q_shape, v_shape, out);
    return st;
}

/* The launch: the caller's (the tuner's), else the tuning database's, else the scheduler's
 * rule. */
static clattn_status choose_launch(lsh_plan *p, const clattn__lsh_launch *forced, const char **by)
{
    clattn_context *ctx = p->base.ctx;
    char why[160];
    clattn__lsh_problem prob;
    problem_of(&p->desc, p->qshape, p->vshape, &prob);
    clattn_status st;
    if (forced) {
        st = clattn__lsh_launch_from(&ctx->info, &prob, forced->rows, forced->local_size,
                                     forced->counting_sort, &p->launch, why, sizeof why);
        *by = "caller";
    } else if (clattn__tune_lsh_launch(ctx, &prob, &p->launch)) {
        p->base.from_db = true;
        *by = "tuning-db";
        return CLATTN_SUCCESS;
    } else {
        st = clattn__schedule_lsh(&ctx->info, &prob, &p->launch, why, sizeof why);
        *by = "scheduler";
    }
    if (st != CLATTN_SUCCESS)
        return clattn__fail(ctx, st, "lsh plan on '%s': %s", ctx->info.name, why);
    /* CLATTN_LSH_ATTEND_KERNEL=rows or tiled forces an attend kernel (tests run the GPU kernel
     * on every device); "tiled:TX,TY,RM,RN" a tile of its candidates as well. */
    const char *env = getenv("CLATTN_LSH_ATTEND_KERNEL");
    if (env) {
        unsigned t[4];
        int k = strcmp(env, "rows") == 0 ? CLATTN__LSH_ATTEND_ROWS
                : strncmp(env, "tiled", 5) == 0 ? CLATTN__LSH_ATTEND_TILED
                                                : CLATTN__LSH_ATTEND_AUTO;
        bool has_tile = k == CLATTN__LSH_ATTEND_TILED &&
                        sscanf(env + 5, ":%u,%u,%u,%u", &t[0], &t[1], &t[2], &t[3]) == 4;
        st = clattn__lsh_attend_kernel(&ctx->info, &prob, k, has_tile ? t : NULL, &p->launch,
                                       why, sizeof why);
        if (st != CLATTN_SUCCESS)
            return clattn__fail(ctx, st, "lsh plan on '%s': %s", ctx->info.name, why);
    }
    return CLATTN_SUCCESS;
}

static clattn_status plan_create(clattn_context *ctx, const clattn_lsh_desc *desc,
                                 const size_t q_shape[4], const size_t v_shape[4],
                                 const clattn__lsh_launch *forced, clattn_plan **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_plan *base = NULL;
    lsh_plan *p = NULL;
    const char *by = NULL;

    if (out)
        *out = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh plan: ctx is NULL");
    CLATTN_CHECK(out && q_shape && v_shape, CLATTN_NULL_POINTER,
                 "lsh plan: plan, q_shape and v_shape are required");
    CLATTN_FORWARD(clattn__plan_alloc(ctx, sizeof *p, &lsh_ops, &base));
    p = (lsh_plan *)base;
    CLATTN_FORWARD(read_desc(ctx, desc, &p->desc));
    const float *given = p->desc.rotations;
    p->desc.rotations = NULL; /* read once, below; never kept */
    CLATTN_FORWARD(check_dims(ctx, q_shape, v_shape, &p->desc));
    memcpy(p->qshape, q_shape, sizeof p->qshape);
    memcpy(p->vshape, v_shape, sizeof p->vshape);
    CLATTN_FORWARD(choose_launch(p, forced, &by));
    plan_dims(p);

    const clattn__lsh_launch *L = &p->launch;
    base->algorithm = 0; /* one algorithm; the sort is what varies */
    snprintf(base->algorithm_name, sizeof base->algorithm_name, "%s",
             L->counting_sort ? "counting_sort" : "radix_sort");
    snprintf(base->launch, sizeof base->launch,
             "rows=%u wg=%zu hash_wg=%zu row_wg=%zu sort=%s tile=%u bits=%u", L->rows,
             L->local_size, L->hash_local, L->row_local, L->counting_sort ? "counting" : "radix",
             L->counting_sort ? L->sort_tile : 0, L->counting_sort ? 0 : L->key_bits);
    if (L->attend_tiled) {
        size_t used = strlen(base->launch);
        snprintf(base->launch + used, sizeof base->launch - used,
                 " attend=tiled:%u,%u,%u,%u qc=%u vc=%u", L->gpu_tx, L->gpu_ty, L->gpu_rm,
                 L->gpu_rn, L->gpu_qc, L->gpu_vc);
    }
    const clattn_lsh_desc *dd = &p->desc;
    const clattn__dtype_role roles[] = {
        {"Q", dd->q_dtype}, {"V", dd->v_dtype}, {"O", dd->out_dtype}};
    CLATTN_FORWARD(clattn__plan_set_dtypes(base, roles, 3));
    if (dd->q_dtype != CLATTN_F32 || dd->v_dtype != CLATTN_F32 || dd->out_dtype != CLATTN_F32) {
        size_t used = strlen(base->launch);
        snprintf(base->launch + used, sizeof base->launch - used, " dtype=q:%s,v:%s,out:%s",
                 clattn_dtype_name(dd->q_dtype), clattn_dtype_name(dd->v_dtype),
                 clattn_dtype_name(dd->out_dtype));
    }
    CLATTN_FORWARD(bake_rotations(p, given));
    CLATTN_FORWARD(bake_scratch(p));
    CLATTN_FORWARD(bake_kernels(p, by));
    *out = base;
    base = NULL;
cleanup:
    clattn_plan_destroy(base);
    return status;
}

clattn_status clattn_lsh_plan_create(clattn_context *ctx, const clattn_lsh_desc *desc,
                                     const size_t q_shape[4], const size_t v_shape[4],
                                     clattn_plan **plan)
{
    return plan_create(ctx, desc, q_shape, v_shape, NULL, plan);
}

clattn_status clattn__lsh_plan_create_launch(clattn_context *ctx, const clattn_lsh_desc *desc,
                                             const size_t q_shape[4], const size_t v_shape[4],
                                             const clattn__lsh_launch *launch, clattn_plan **plan)
{
    if (!launch)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "lsh plan: launch is NULL");
    return plan_create(ctx, desc, q_shape, v_shape, launch, plan);
}

static void plan_info(const clattn_plan *base, clattn_plan_info *info)
{
    const lsh_plan *p = (const lsh_plan *)base;
    snprintf(info->variant, sizeof info->variant, "%s",
             p->launch.attend_tiled ? "clattn_lsh_attend_gpu" : "clattn_lsh_attend");
    char gdef[384];
    clattn__lsh_attend_defines(&p->launch, gdef, sizeof gdef);
    snprintf(info->build_options, sizeof info->build_options, "%.255s",
             p->launch.attend_tiled ? gdef : p->launch.defines);
    if (base->dtype_defines[0]) { /* the element types' -D options the plan's kernels got */
        size_t used = strlen(info->build_options);
        snprintf(info->build_options + used, sizeof info->build_options - used, " %s",
                 base->dtype_defines);
    }
    info->local_size = p->launch.attend_tiled ? p->launch.attend_local : p->launch.local_size;
}

/* ---- enqueue ---- */

/* The arguments that name the caller's views (set on every enqueue). */
static clattn_status set_view_args(lsh_plan *p, const clattn_tensor *q, const clattn_tensor *v,
                                   const clattn_tensor *out, const clattn_tensor *lse,
                                   const clattn_tensor *bk)
{
    clattn_context *ctx = p->base.ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_int has_out = bk != NULL;
    /* Any valid view when the buckets or lse are not wanted: the kernels do not touch them. */
    clattn_tensor bview = bk ? *bk : clattn_tensor_make(p->bkt, 1, 1, 1, 1);
    clattn_tensor lview = lse ? *lse : *out;
    clattn__args a = {p->hash, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    CLATTN_ARG(&a, p->heads);
    CLATTN_ARG(&a, p->n);
    CLATTN_ARG(&a, p->dk);
    CLATTN_ARG(&a, p->nh);
    CLATTN_ARG(&a, p->half);
    CLATTN_ARG(&a, p->halfp);
    CLATTN_ARG(&a, p->rp);
    CLATTN_ARG(&a, p->bkt);
    clattn__arg_view(&a, &bview);
    CLATTN_ARG(&a, has_out);
    CLATTN_ARG(&a, p->khat);
    CLATTN_CL(a.err);

    a = (clattn__args){p->vals, 0, CL_SUCCESS};
    clattn__arg_view(&a, v);
    CLATTN_ARG(&a, p->heads);
    CLATTN_ARG(&a, p->n);
    CLATTN_ARG(&a, p->dv);
    CLATTN_ARG(&a, p->vp);
    CLATTN_CL(a.err);

    cl_int causal = p->desc.causal, across = p->desc.attend_across_buckets;
    cl_float scale2 = (cl_float)(1.4426950408889634 / sqrt((double)p->dk));
    a = (clattn__args){p->attend, 0, CL_SUCCESS};
    clattn__arg_view(&a, q);
    CLATTN_ARG(&a, p->heads);
    CLATTN_ARG(&a, p->n);
    CLATTN_ARG(&a, p->dk);
    CLATTN_ARG(&a, p->nh);
    CLATTN_ARG(&a, p->cp);
    CLATTN_ARG(&a, p->nchunks);
    CLATTN_ARG(&a, p->kp);
    CLATTN_ARG(&a, p->spos);
    CLATTN_ARG(&a, p->sbkt);
    CLATTN_ARG(&a, p->vp);
    CLATTN_ARG(&a, causal);
    CLATTN_ARG(&a, across);
    CLATTN_ARG(&a, scale2);
    CLATTN_ARG(&a, p->ro);
    CLATTN_ARG(&a, p->rl);
    CLATTN_CL(a.err);

    cl_int has_lse = lse != NULL;
    a = (clattn__args){p->combine, 0, CL_SUCCESS};
    CLATTN_ARG(&a, p->ro);
    CLATTN_ARG(&a, p->rl);
    CLATTN_ARG(&a, p->heads);
    CLATTN_ARG(&a, p->n);
    CLATTN_ARG(&a, p->dv);
    CLATTN_ARG(&a, p->nh);
    clattn__arg_view(&a, out);
    clattn__arg_view(&a, &lview);
    CLATTN_ARG(&a, has_lse);
    CLATTN_CL(a.err);
cleanup:
    return status;
}

static size_t round_up(size_t x, size_t m) { return clattn__div_up(x, m) * m; }

static clattn_status enqueue_all(lsh_plan *p, clattn__seq *s, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    const clattn__lsh_launch *L = &p->launch;
    size_t g_hash[2] = {round_up(clattn__div_up(p->n, L->rows), L->hash_local), p->bh};
    size_t l_hash[2] = {L->hash_local, 1};
    size_t g_rows[2] = {round_up(p->n, L->row_local), p->bh}, l_rows[2] = {L->row_local, 1};
    size_t g_tiles[2] = {p->tiles, p->segs}, l_one[2] = {1, 1};
    size_t g_panels[2] = {(size_t)p->nchunks * p->cp / CLATTN__LSH_PANEL, p->segs};
    size_t g_attend[2] = {(size_t)p->nchunks * p->cp / L->rows, p->segs};
    size_t l_attend[2] = {L->local_size, 1};
    if (L->attend_tiled) { /* a work-group per BR sorted slots of a chunk */
        g_attend[0] = (size_t)p->nchunks * clattn__div_up(p->cp, L->attend_rows) * L->attend_local;
        l_attend[0] = L->attend_local;
    }
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->hash, 2, g_hash, l_hash, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->vals, 2, g_rows, l_rows, false, NULL));
    if (L->counting_sort) {
        CLATTN_FORWARD(clattn__seq_kernel_local(s, p->hist, 2, g_tiles, l_one, false, NULL));
        CLATTN_FORWARD(clattn__seq_kernel_local(s, p->scan, 1, &p->segs, l_one, false, NULL));
        CLATTN_FORWARD(clattn__seq_kernel_local(s, p->scatter, 2, g_tiles, l_one, false, NULL));
    } else {
        /* Keys: the buckets of each (b, h, round) segment; values: their positions. */
        CLATTN_FORWARD(clattn__sort_pairs_seq(s, &p->radix, &p->radix_ws, p->bkt, NULL,
                                              p->skeys, p->sorted, p->segs, p->n,
                                              p->launch.key_bits, false, NULL));
    }
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->keys, 2, g_panels, l_one, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->attend, 2, g_attend, l_attend, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(s, p->combine, 2, g_rows, l_rows, true, event));
cleanup:
    return status;
}

clattn_status clattn_lsh_plan_enqueue(clattn_plan *base, const clattn_tensor *q,
                                      const clattn_tensor *v, const clattn_tensor *out,
                                      const clattn_tensor *lse, const clattn_tensor *buckets,
                                      cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = clattn__plan_check(base, CLATTN_OP_LSH, "lsh enqueue");
    if (status != CLATTN_SUCCESS)
        return status;
    lsh_plan *p = (lsh_plan *)base;
    clattn_context *ctx = base->ctx;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(q && v && out, CLATTN_NULL_POINTER, "lsh enqueue: q, v and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "lsh enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(check_views(p, q, v, out, lse, buckets));
    CLATTN_FORWARD(set_view_args(p, q, v, out, lse, buckets));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    status = enqueue_all(p, &s, event);
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_lsh_enqueue(clattn_context *ctx, const clattn_lsh_desc *desc,
                                 const clattn_tensor *q, const clattn_tensor *v,
                                 const clattn_tensor *out, const clattn_tensor *lse,
                                 const clattn_tensor *buckets, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh enqueue: ctx is NULL");
    if (!q || !v || !out)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "lsh enqueue: q, v and out are required");
    if (num_wait > 0 && !wait)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "lsh enqueue: num_wait > 0 but wait is NULL");
    clattn_plan *plan = NULL;
    clattn_lsh_desc d;
    clattn_status status = read_desc(ctx, desc, &d);
    if (status != CLATTN_SUCCESS)
        return status;
    d.q_dtype = q->dtype; /* the tensors' types, not the desc's */
    d.v_dtype = v->dtype;
    d.out_dtype = out->dtype;
    status = clattn_lsh_plan_create(ctx, &d, q->shape, v->shape, &plan);
    if (status == CLATTN_SUCCESS)
        status = clattn_lsh_plan_enqueue(plan, q, v, out, lse, buckets, num_wait, wait, event);
    /* OpenCL keeps kernels and buffers alive until the commands using them have finished. */
    clattn_plan_destroy(plan);
    return status;
}

static bool numel(const size_t s[4], size_t *n)
{
    size_t a, b;
    return clattn__mul_ok(s[0], s[1], &a) && clattn__mul_ok(a, s[2], &b) &&
           clattn__mul_ok(b, s[3], n) && *n < SIZE_MAX / sizeof(float);
}

clattn_status clattn_lsh_host(clattn_context *ctx, const clattn_lsh_desc *desc,
                              const size_t q_shape[4], const size_t v_shape[4], const float *q,
                              const float *v, float *out, float *lse)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__stage st;
    cl_mem bq, bv, bo, bl = NULL;
    clattn_plan *plan = NULL;
    cl_event done = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh host: ctx is NULL");
    clattn__stage_init(&st, ctx);
    CLATTN_CHECK(q_shape && v_shape && q && v && out, CLATTN_NULL_POINTER,
                 "lsh host: shapes, q, v and out are required");
    clattn_lsh_desc d;
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    d.q_dtype = d.v_dtype = d.out_dtype = CLATTN_F32; /* host arrays are float32 */
    CLATTN_FORWARD(clattn_lsh_plan_create(ctx, &d, q_shape, v_shape, &plan));
    size_t o_shape[4] = {q_shape[0], q_shape[1], q_shape[2], v_shape[3]};
    size_t l_shape[4] = {q_shape[0], q_shape[1], q_shape[2], 1};
    size_t nq, nv, no, nl;
    CLATTN_CHECK(numel(q_shape, &nq) && numel(v_shape, &nv) && numel(o_shape, &no) &&
                     numel(l_shape, &nl),
                 CLATTN_SIZE_OVERFLOW, "lsh host: sizes overflow");
    CLATTN_FORWARD(clattn__stage_in(&st, q, nq * sizeof(float), "q", &bq));
    CLATTN_FORWARD(clattn__stage_in(&st, v, nv * sizeof(float), "v", &bv));
    CLATTN_FORWARD(clattn__stage_out(&st, out, no * sizeof(float), "output", &bo));
    if (lse)
        CLATTN_FORWARD(clattn__stage_out(&st, lse, nl * sizeof(float), "lse", &bl));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, o_shape[0], o_shape[1], o_shape[2], o_shape[3]);
    clattn_tensor tl = clattn_tensor_make(bl, l_shape[0], l_shape[1], l_shape[2], 1);
    CLATTN_FORWARD(clattn_lsh_plan_enqueue(plan, &tq, &tv, &to, lse ? &tl : NULL, NULL, 0, NULL,
                                           &done));
    status = clattn__stage_read(&st, done);
    done = NULL;
cleanup:
    if (done)
        clReleaseEvent(done);
    clattn__stage_end(&st);
    clattn_plan_destroy(plan);
    return status;
}
