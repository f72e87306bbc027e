/* Host side of Reformer LSH attention: validate, draw or pack the rotations, fetch the program
 * (kernels_cl/lsh.cl, built per padded head dims), then enqueue hash -> counting sort -> pack ->
 * attend (see lsh.cl for what each kernel does).
 *
 * The sort is a counting sort written here rather than the generic key-value sort of
 * lib/ops/sort: the keys are bucket numbers (few, known in advance), so a per-tile histogram, one
 * scan and an in-order scatter give a stable sort in O(N + n_buckets) per round without the
 * log N passes a radix or bitonic sort of arbitrary keys needs, and without barriers (PoCL). */
#include "../core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LSH_MAX_D 256
#define LSH_MIN_TILE 256 /* positions per counting-sort tile (at least n_buckets) */

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

/* Copies the caller's desc honouring struct_size and checks its ranges. */
static clattn_status read_desc(clattn_context *ctx, const clattn_lsh_desc *in, clattn_lsh_desc *out)
{
    clattn_lsh_desc_init(out);
    if (!in)
        return CLATTN_SUCCESS;
    if (in->struct_size < offsetof(clattn_lsh_desc, chunk_size) + sizeof(size_t) ||
        in->struct_size > 4096)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT,
                            "lsh desc: struct_size %zu is not valid (call clattn_lsh_desc_init "
                            "first)",
                            in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    clattn_status st = check_params(ctx, out->n_hashes, out->n_buckets);
    if (st != CLATTN_SUCCESS)
        return st;
    if (out->chunk_size < 1)
        return clattn__fail(ctx, CLATTN_INVALID_ARGUMENT, "lsh: chunk_size must be >= 1");
    return CLATTN_SUCCESS;
}

/* ---- rotations from a seed ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

clattn_status clattn_lsh_rotations(uint64_t seed, size_t n_hashes, size_t d, size_t n_buckets,
                                   float *rot)
{
    if (!rot)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh rotations: rot is NULL");
    clattn_status st = check_params(NULL, n_hashes, n_buckets);
    if (st != CLATTN_SUCCESS)
        return st;
    if (d < 1 || d > LSH_MAX_D)
        return clattn__fail(NULL, CLATTN_INVALID_SHAPE, "lsh rotations: d %zu is not in 1..%d",
                            d, LSH_MAX_D);
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

static size_t round16(size_t x) { return (x + 15) / 16 * 16; }

static clattn_status check_dims(clattn_context *ctx, const size_t q[4], const size_t v[4],
                                const clattn_lsh_desc *d)
{
    for (int i = 0; i < 4; i++)
        if (q[i] == 0 || v[i] == 0)
            return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                                "lsh: every shape entry must be >= 1 (q [%zu, %zu, %zu, %zu], "
                                "v [%zu, %zu, %zu, %zu])",
                                q[0], q[1], q[2], q[3], v[0], v[1], v[2], v[3]);
    if (q[3] > LSH_MAX_D || v[3] > LSH_MAX_D)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "lsh: D %zu or Dv %zu > %d", q[3], v[3],
                            LSH_MAX_D);
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
    if (clattn__div_up(q[2], chunk) * round16(chunk) >= lim)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE,
                            "lsh: %zu positions in chunks of %zu (padded to 16) exceed 2^31 slots",
                            q[2], chunk);
    return CLATTN_SUCCESS;
}

static clattn_status check_views(clattn_context *ctx, const clattn_lsh_desc *d,
                                 const clattn_tensor *q, const clattn_tensor *v,
                                 const clattn_tensor *rot, const clattn_tensor *out,
                                 const clattn_tensor *lse, const clattn_tensor *bk)
{
    clattn_status status = CLATTN_SUCCESS;
    const size_t *qs = q->shape;
    CLATTN_FORWARD(check_dims(ctx, q->shape, v->shape, d));
    CLATTN_FORWARD(clattn__tensor_check(ctx, q, "q", NULL, sizeof(float)));
    CLATTN_FORWARD(clattn__tensor_check(ctx, v, "v", NULL, sizeof(float)));
    size_t rs[4] = {1, d->n_hashes, qs[3], d->n_buckets / 2};
    if (rot)
        CLATTN_FORWARD(clattn__tensor_check(ctx, rot, "rotations", rs, sizeof(float)));
    size_t os[4] = {qs[0], qs[1], qs[2], v->shape[3]}, ls[4] = {qs[0], qs[1], qs[2], 1};
    size_t bs[4] = {qs[0], qs[1], d->n_hashes, qs[2]};
    /* Outputs: each one-to-one, none overlapping an input or another output. */
    const clattn_tensor *outs[] = {out, lse, bk};
    const char *onames[] = {"out", "lse", "buckets"};
    const size_t *oshape[] = {os, ls, bs};
    const clattn_tensor *ins[] = {q, v, rot};
    const char *inames[] = {"q", "v", "rotations"};
    for (int i = 0; i < 3; i++) {
        if (!outs[i])
            continue;
        CLATTN_FORWARD(clattn__tensor_check(ctx, outs[i], onames[i], oshape[i], 4));
        CLATTN_FORWARD(clattn__tensor_check_disjoint(ctx, outs[i], onames[i]));
        for (int j = 0; j < 3; j++)
            if (ins[j])
                CLATTN_FORWARD(
                    clattn__check_no_alias(ctx, outs[i], onames[i], ins[j], inames[j], 4));
        for (int j = 0; j < i; j++)
            if (outs[j])
                CLATTN_FORWARD(
                    clattn__check_no_alias(ctx, outs[i], onames[i], outs[j], onames[j], 4));
    }
cleanup:
    return status;
}

/* ---- launch plan ---- */

typedef struct lsh_job {
    const clattn_lsh_desc *d;
    const clattn_tensor *q, *v, *out, *lse, *bk;
    cl_uint heads, n, dk, dv, nh, nb, half, halfp;
    cl_uint chunk, cp, nchunks, tile, tiles, dp, dvp, rows;
    size_t bh, segs;
    cl_mem rot_src; /* the rotations view's buffer, or the drawn copy */
    clattn_tensor rot;
    cl_mem rp, bkt, khat, cnt, sorted, kp, spos, sbkt, vp, ro, rl;
} lsh_job;

static void plan_job(lsh_job *j)
{
    const size_t *qs = j->q->shape;
    j->bh = qs[0] * qs[1];
    j->heads = (cl_uint)qs[1];
    j->n = (cl_uint)qs[2];
    j->dk = (cl_uint)qs[3];
    j->dv = (cl_uint)j->v->shape[3];
    j->nh = (cl_uint)j->d->n_hashes;
    j->nb = (cl_uint)j->d->n_buckets;
    j->half = j->nb / 2;
    j->halfp = (cl_uint)round16(j->half);
    /* A chunk of N or more is one chunk holding everything. */
    j->chunk = (cl_uint)(j->d->chunk_size < qs[2] ? j->d->chunk_size : qs[2]);
    j->cp = (cl_uint)round16(j->chunk);
    j->nchunks = (cl_uint)clattn__div_up(j->n, j->chunk);
    j->tile = j->nb > LSH_MIN_TILE ? j->nb : LSH_MIN_TILE;
    j->tiles = (cl_uint)clattn__div_up(j->n, j->tile);
    j->dp = (cl_uint)round16(j->dk);
    j->dvp = (cl_uint)round16(j->dv);
    /* Sorted queries per attention work-item: as many as keep their accumulators and scores in
     * registers (the rule of the tiled CPU kernel). */
    j->rows = j->dp <= 64 && j->dvp <= 64 ? 4 : j->dp <= 128 && j->dvp <= 128 ? 2 : 1;
    j->segs = j->bh * j->nh;
}

static clattn_status scratch(clattn_context *ctx, size_t a, size_t b, size_t c, size_t elem,
                             const char *what, cl_mem *out)
{
    size_t ab, abc, bytes;
    if (!clattn__mul_ok(a, b, &ab) || !clattn__mul_ok(ab, c, &abc) ||
        !clattn__mul_ok(abc, elem, &bytes))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "lsh: %s size overflows", what);
    return clattn__buffer_create(ctx, bytes, what, out);
}

static clattn_status alloc_scratch(clattn_context *ctx, lsh_job *j)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t slots = (size_t)j->nchunks * j->cp;
    CLATTN_FORWARD(scratch(ctx, j->nh, j->dk, j->halfp, 4, "lsh rotations", &j->rp));
    CLATTN_FORWARD(scratch(ctx, j->segs, j->n, 1, 4, "lsh buckets", &j->bkt));
    CLATTN_FORWARD(scratch(ctx, j->segs, j->nb, j->tiles, 4, "lsh sort counts", &j->cnt));
    CLATTN_FORWARD(scratch(ctx, j->segs, j->n, 1, 4, "lsh sorted positions", &j->sorted));
    CLATTN_FORWARD(scratch(ctx, j->bh, j->n, j->dp, 4, "lsh normalised keys", &j->khat));
    CLATTN_FORWARD(scratch(ctx, j->segs, j->n, j->dvp, 4, "lsh round outputs", &j->ro));
    CLATTN_FORWARD(scratch(ctx, j->segs, j->n, 1, 4, "lsh round log-sum-exps", &j->rl));
    CLATTN_FORWARD(scratch(ctx, j->segs, slots, j->dp, 4, "lsh sorted keys", &j->kp));
    CLATTN_FORWARD(scratch(ctx, j->segs, slots, 1, 4, "lsh sorted positions", &j->spos));
    CLATTN_FORWARD(scratch(ctx, j->segs, slots, 1, 4, "lsh sorted buckets", &j->sbkt));
    CLATTN_FORWARD(scratch(ctx, j->bh, j->n, j->dvp, 4, "lsh values", &j->vp));
cleanup:
    return status;
}

static void release_job(lsh_job *j)
{
    cl_mem all[] = {j->rp,   j->bkt,  j->khat, j->cnt, j->sorted, j->kp,
                    j->spos, j->sbkt, j->vp,   j->ro,  j->rl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
}

/* ---- a chain of commands: lib/core/seq.c ---- */

typedef clattn__seq seq;

/* ---- the kernels ---- */

typedef struct lsh_kernels {
    cl_kernel rot, hash, hist, scan, scatter, keys, vals, attend, combine;
} lsh_kernels;

static clattn_status get_kernels(clattn_context *ctx, const lsh_job *j, lsh_kernels *k)
{
    clattn_status status = CLATTN_SUCCESS;
    char opts[128];
    cl_program prog = NULL;
    snprintf(opts, sizeof opts, "-DLSH_DP=%u -DLSH_DVP=%u -DLSH_ROWS=%u", j->dp, j->dvp, j->rows);
    CLATTN_FORWARD(clattn__program_get(ctx, "lsh.cl", opts, &prog));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_pack_rot", &k->rot));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_hash", &k->hash));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_hist", &k->hist));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_scan", &k->scan));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_scatter", &k->scatter));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_pack_keys", &k->keys));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_pack_v", &k->vals));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_attend", &k->attend));
    CLATTN_FORWARD(clattn__kernel_create(ctx, prog, "clattn_lsh_combine", &k->combine));
cleanup:
    return status;
}

static void release_kernels(lsh_kernels *k)
{
    cl_kernel all[] = {k->rot,  k->hash, k->hist,   k->scan,   k->scatter,
                       k->keys, k->vals, k->attend, k->combine};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseKernel(all[i]);
}

/* Rows padded up to whole work-groups of 16 for the per-row kernels (they return past n). */
static size_t rows_global(cl_uint n) { return round16(n); }

static clattn_status set_hash_sort_args(clattn_context *ctx, lsh_job *j, lsh_kernels *k)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__args a = {k->rot, 0, CL_SUCCESS};
    clattn__arg_view(&a, &j->rot);
    CLATTN_ARG(&a, j->half);
    CLATTN_ARG(&a, j->halfp);
    CLATTN_ARG(&a, j->rp);
    CLATTN_CL(a.err);

    cl_int has_out = j->bk != NULL;
    clattn_tensor bview = j->bk ? *j->bk : clattn_tensor_make(j->bkt, 1, 1, 1, 1);
    a = (clattn__args){k->hash, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->q);
    CLATTN_ARG(&a, j->heads);
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->dk);
    CLATTN_ARG(&a, j->nh);
    CLATTN_ARG(&a, j->half);
    CLATTN_ARG(&a, j->halfp);
    CLATTN_ARG(&a, j->rp);
    CLATTN_ARG(&a, j->bkt);
    clattn__arg_view(&a, &bview);
    CLATTN_ARG(&a, has_out);
    CLATTN_ARG(&a, j->khat);
    CLATTN_CL(a.err);

    a = (clattn__args){k->hist, 0, CL_SUCCESS};
    CLATTN_ARG(&a, j->bkt);
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->nb);
    CLATTN_ARG(&a, j->tile);
    CLATTN_ARG(&a, j->tiles);
    CLATTN_ARG(&a, j->cnt);
    CLATTN_CL(a.err);

    a = (clattn__args){k->scan, 0, CL_SUCCESS};
    CLATTN_ARG(&a, j->cnt);
    CLATTN_ARG(&a, j->nb);
    CLATTN_ARG(&a, j->tiles);
    CLATTN_CL(a.err);

    a = (clattn__args){k->scatter, 0, CL_SUCCESS};
    CLATTN_ARG(&a, j->bkt);
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->nb);
    CLATTN_ARG(&a, j->tile);
    CLATTN_ARG(&a, j->tiles);
    CLATTN_ARG(&a, j->cnt);
    CLATTN_ARG(&a, j->sorted);
    CLATTN_CL(a.err);
cleanup:
    return status;
}

static clattn_status set_attend_args(clattn_context *ctx, lsh_job *j, lsh_kernels *k)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__args a = {k->keys, 0, CL_SUCCESS};
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->nh);
    CLATTN_ARG(&a, j->chunk);
    CLATTN_ARG(&a, j->cp);
    CLATTN_ARG(&a, j->nchunks);
    CLATTN_ARG(&a, j->sorted);
    CLATTN_ARG(&a, j->bkt);
    CLATTN_ARG(&a, j->khat);
    CLATTN_ARG(&a, j->kp);
    CLATTN_ARG(&a, j->spos);
    CLATTN_ARG(&a, j->sbkt);
    CLATTN_CL(a.err);

    a = (clattn__args){k->vals, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->v);
    CLATTN_ARG(&a, j->heads);
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->dv);
    CLATTN_ARG(&a, j->vp);
    CLATTN_CL(a.err);

    cl_int has_lse = j->lse != NULL, causal = j->d->causal != 0;
    cl_int across = j->d->attend_across_buckets != 0;
    cl_float scale2 = (cl_float)(1.4426950408889634 / sqrt((double)j->dk));
    /* Any valid view when lse is not wanted: the kernel does not touch it. */
    clattn_tensor lview = j->lse ? *j->lse : *j->out;
    a = (clattn__args){k->attend, 0, CL_SUCCESS};
    clattn__arg_view(&a, j->q);
    CLATTN_ARG(&a, j->heads);
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->dk);
    CLATTN_ARG(&a, j->nh);
    CLATTN_ARG(&a, j->cp);
    CLATTN_ARG(&a, j->nchunks);
    CLATTN_ARG(&a, j->kp);
    CLATTN_ARG(&a, j->spos);
    CLATTN_ARG(&a, j->sbkt);
    CLATTN_ARG(&a, j->vp);
    CLATTN_ARG(&a, causal);
    CLATTN_ARG(&a, across);
    CLATTN_ARG(&a, scale2);
    CLATTN_ARG(&a, j->ro);
    CLATTN_ARG(&a, j->rl);
    CLATTN_CL(a.err);

    a = (clattn__args){k->combine, 0, CL_SUCCESS};
    CLATTN_ARG(&a, j->ro);
    CLATTN_ARG(&a, j->rl);
    CLATTN_ARG(&a, j->heads);
    CLATTN_ARG(&a, j->n);
    CLATTN_ARG(&a, j->dv);
    CLATTN_ARG(&a, j->nh);
    clattn__arg_view(&a, j->out);
    clattn__arg_view(&a, &lview);
    CLATTN_ARG(&a, has_lse);
    CLATTN_CL(a.err);
cleanup:
    return status;
}

static clattn_status enqueue_all(clattn_context *ctx, lsh_job *j, lsh_kernels *k,
                                 cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    seq s;
    memset(&s, 0, sizeof s);
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    /* Every launch has a fixed local size: PoCL compiles a kernel once per local size, and its own
     * choice would follow N (a build per new length). Sizes of 16 divide globals padded to 16;
     * the rest (counts of tiles, panels, segments) run one work-item per group, each a long
     * loop. */
    size_t g_rot[3] = {j->halfp, j->dk, j->nh}, l_rot[3] = {16, 1, 1};
    size_t g_rows[2] = {rows_global(j->n), j->bh}, l_rows[2] = {16, 1};
    size_t g_tiles[2] = {j->tiles, j->segs}, l_one[2] = {1, 1};
    size_t g_panels[2] = {(size_t)j->nchunks * j->cp / 16, j->segs};
    size_t g_attend[2] = {(size_t)j->nchunks * j->cp / j->rows, j->segs};
    /* PoCL replicates each work-item's private arrays (LSH_ROWS query rows, scores, accumulators)
     * across the work-group; a large group overflows its worker stack. 16 / rows divides the
     * global size (whole panels of slots). */
    size_t l_attend[2] = {16 / j->rows, 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->rot, 3, g_rot, l_rot, false, NULL));
    size_t g_hash[2] = {rows_global(j->n) / j->rows, j->bh}, l_hash[2] = {16 / j->rows, 1};
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->hash, 2, g_hash, l_hash, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->vals, 2, g_rows, l_rows, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->hist, 2, g_tiles, l_one, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->scan, 1, &j->segs, l_one, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->scatter, 2, g_tiles, l_one, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->keys, 2, g_panels, l_one, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->attend, 2, g_attend, l_attend, false, NULL));
    CLATTN_FORWARD(clattn__seq_kernel_local(&s, k->combine, 2, g_rows, l_rows, true, event));
cleanup:
    clattn__seq_end(&s);
    return status;
}

clattn_status clattn_lsh_enqueue(clattn_context *ctx, const clattn_lsh_desc *desc,
                                 const clattn_tensor *q, const clattn_tensor *v,
                                 const clattn_tensor *rotations, const clattn_tensor *out,
                                 const clattn_tensor *lse, const clattn_tensor *buckets,
                                 cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_lsh_desc d;
    lsh_job j;
    lsh_kernels k;
    float *host_rot = NULL;
    memset(&j, 0, sizeof j);
    memset(&k, 0, sizeof k);
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh enqueue: ctx is NULL");
    CLATTN_CHECK(q && v && out, CLATTN_NULL_POINTER, "lsh enqueue: q, v and out are required");
    CLATTN_CHECK(num_wait == 0 || wait != NULL, CLATTN_NULL_POINTER,
                 "lsh enqueue: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_views(ctx, &d, q, v, rotations, out, lse, buckets));
    j.d = &d;
    j.q = q;
    j.v = v;
    j.out = out;
    j.lse = lse;
    j.bk = buckets;
    plan_job(&j);
    CLATTN_FORWARD(get_kernels(ctx, &j, &k));
    if (rotations) {
        j.rot = *rotations;
    } else {
        size_t nr = (size_t)j.nh * j.dk * j.half;
        host_rot = malloc(nr * sizeof(float));
        CLATTN_CHECK(host_rot != NULL, CLATTN_OUT_OF_HOST_MEMORY, "lsh: rotations (%zu floats)",
                     nr);
        CLATTN_FORWARD(clattn_lsh_rotations(d.seed, j.nh, j.dk, j.nb, host_rot));
        cl_int err = CL_SUCCESS;
        j.rot_src = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                   nr * sizeof(float), host_rot, &err);
        CLATTN_CL(err);
        j.rot = clattn_tensor_make(j.rot_src, 1, j.nh, j.dk, j.half);
    }
    CLATTN_FORWARD(alloc_scratch(ctx, &j));
    CLATTN_FORWARD(set_hash_sort_args(ctx, &j, &k));
    CLATTN_FORWARD(set_attend_args(ctx, &j, &k));
    CLATTN_FORWARD(enqueue_all(ctx, &j, &k, num_wait, wait, event));
cleanup:
    /* OpenCL keeps released buffers alive until the commands using them have run. */
    release_kernels(&k);
    release_job(&j);
    if (j.rot_src)
        clReleaseMemObject(j.rot_src);
    free(host_rot);
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
                              const float *v, const float *rotations, float *out, float *lse)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_mem bq = NULL, bv = NULL, br = NULL, bo = NULL, bl = NULL;
    clattn_lsh_desc d;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "lsh host: ctx is NULL");
    CLATTN_CHECK(q_shape && v_shape && q && v && out, CLATTN_NULL_POINTER,
                 "lsh host: shapes, q, v and out are required");
    CLATTN_FORWARD(read_desc(ctx, desc, &d));
    CLATTN_FORWARD(check_dims(ctx, q_shape, v_shape, &d));
    size_t o_shape[4] = {q_shape[0], q_shape[1], q_shape[2], v_shape[3]};
    size_t l_shape[4] = {q_shape[0], q_shape[1], q_shape[2], 1};
    size_t r_shape[4] = {1, d.n_hashes, q_shape[3], d.n_buckets / 2};
    size_t nq, nv, no, nl, nr;
    CLATTN_CHECK(numel(q_shape, &nq) && numel(v_shape, &nv) && numel(o_shape, &no) &&
                     numel(l_shape, &nl) && numel(r_shape, &nr),
                 CLATTN_SIZE_OVERFLOW, "lsh host: sizes overflow");
    CLATTN_FORWARD(clattn__buffer_upload(ctx, q, nq * sizeof(float), &bq));
    CLATTN_FORWARD(clattn__buffer_upload(ctx, v, nv * sizeof(float), &bv));
    if (rotations)
        CLATTN_FORWARD(clattn__buffer_upload(ctx, rotations, nr * sizeof(float), &br));
    CLATTN_FORWARD(clattn__buffer_create(ctx, no * sizeof(float), "output", &bo));
    if (lse)
        CLATTN_FORWARD(clattn__buffer_create(ctx, nl * sizeof(float), "lse", &bl));
    clattn_tensor tq = clattn_tensor_make(bq, q_shape[0], q_shape[1], q_shape[2], q_shape[3]);
    clattn_tensor tv = clattn_tensor_make(bv, v_shape[0], v_shape[1], v_shape[2], v_shape[3]);
    clattn_tensor to = clattn_tensor_make(bo, o_shape[0], o_shape[1], o_shape[2], o_shape[3]);
    clattn_tensor tl = clattn_tensor_make(bl, l_shape[0], l_shape[1], l_shape[2], 1);
    clattn_tensor tr = clattn_tensor_make(br, 1, r_shape[1], r_shape[2], r_shape[3]);
    CLATTN_FORWARD(clattn_lsh_enqueue(ctx, &d, &tq, &tv, rotations ? &tr : NULL, &to,
                                      lse ? &tl : NULL, NULL, 0, NULL, NULL));
    /* Read into staging first so a failed second read leaves both outputs untouched. */
    CLATTN_CL(clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL));
    if (lse) {
        float *tmp = malloc(nl * sizeof(float));
        CLATTN_CHECK(tmp != NULL, CLATTN_OUT_OF_HOST_MEMORY, "lsh host: lse staging");
        cl_int err = clEnqueueReadBuffer(ctx->queue, bl, CL_TRUE, 0, nl * sizeof(float), tmp, 0,
                                         NULL, NULL);
        if (err == CL_SUCCESS)
            err = clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, no * sizeof(float), out, 0,
                                      NULL, NULL);
        if (err == CL_SUCCESS)
            memcpy(lse, tmp, nl * sizeof(float));
        free(tmp);
        CLATTN_CL(err);
    } else {
        CLATTN_CL(clEnqueueReadBuffer(ctx->queue, bo, CL_TRUE, 0, no * sizeof(float), out, 0,
                                      NULL, NULL));
    }
cleanup:
    if (ctx)
        clFinish(ctx->queue); /* the buffers below may still be used by failed-midway commands */
    cl_mem bufs[] = {bq, bv, br, bo, bl};
    for (int i = 0; i < 5; i++)
        if (bufs[i])
            clReleaseMemObject(bufs[i]);
    return status;
}
