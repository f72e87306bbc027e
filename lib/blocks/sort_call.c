/* One-shot calls of the device building blocks on a context (lib/blocks/sort.h), for tests and
 * standalone use: validate, make a short-lived plan holding the kernels and scratch of this one
 * call, enqueue it as one command sequence, release the plan (OpenCL keeps its objects alive
 * until the commands have run). Operators use the blocks inside their own plans instead. */
#include "sort.h"

#include <string.h>

/* ---- checks ---- */

static clattn_status check_buf(clattn_context *ctx, cl_mem m, size_t bytes, const char *what)
{
    if (!m)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "%s: buffer is NULL", what);
    size_t have = 0;
    cl_int err = clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof have, &have, NULL);
    if (err != CL_SUCCESS)
        return clattn__fail(ctx, (clattn_status)err, "%s: clGetMemObjectInfo failed: %s", what,
                            clattn_status_string((clattn_status)err));
    if (have < bytes)
        return clattn__fail(ctx, CLATTN_BUFFER_TOO_SMALL, "%s: buffer holds %zu bytes, needs %zu",
                            what, have, bytes);
    return CLATTN_SUCCESS;
}

/* a * b elements, below 2^32. */
static clattn_status check_count(clattn_context *ctx, size_t a, size_t b, const char *what,
                                 size_t *count)
{
    if (a == 0 || b == 0)
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "%s: sizes must be >= 1 (%zu x %zu)",
                            what, a, b);
    if (!clattn__mul_ok(a, b, count) || *count >= ((size_t)1 << 32))
        return clattn__fail(ctx, CLATTN_INVALID_SHAPE, "%s: %zu x %zu elements reach 2^32", what,
                            a, b);
    return CLATTN_SUCCESS;
}

static clattn_status check_distinct(clattn_context *ctx, const cl_mem *bufs, int n,
                                    const char *what)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (bufs[i] && bufs[i] == bufs[j])
                return clattn__fail(ctx, CLATTN_ALIASING,
                                    "%s: an output buffer is also an input or another output",
                                    what);
    return CLATTN_SUCCESS;
}

static clattn_status check_common(clattn_context *ctx, cl_uint num_wait, const cl_event *wait,
                                  const char *what)
{
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "%s: ctx is NULL", what);
    if (num_wait > 0 && !wait)
        return clattn__fail(ctx, CLATTN_NULL_POINTER, "%s: num_wait > 0, wait NULL", what);
    return CLATTN_SUCCESS;
}

/* ---- the short-lived plan of one call ---- */

static const clattn__plan_ops blocks_ops = {(clattn_operator)0, NULL, NULL};

typedef struct one_call {
    clattn_plan *plan;
    clattn__sort_kernels k;
    clattn__sort_scratch ws;
    clattn__seq s;
    bool seq;
} one_call;

/* The kernels of `uses`; the caller then adds its scratch needs and calls begin(). */
static clattn_status prepare(one_call *c, clattn_context *ctx, unsigned uses)
{
    memset(c, 0, sizeof *c);
    clattn_status st = clattn__plan_alloc(ctx, sizeof(clattn_plan), &blocks_ops, &c->plan);
    if (st == CLATTN_SUCCESS)
        st = clattn__sort_kernels_create(c->plan, uses, &c->k);
    return st;
}

static clattn_status begin(one_call *c, cl_uint num_wait, const cl_event *wait)
{
    clattn_status st = clattn__sort_scratch_alloc(c->plan, &c->ws);
    if (st == CLATTN_SUCCESS)
        st = clattn__seq_init(&c->s, c->plan->ctx, num_wait, wait);
    c->seq = st == CLATTN_SUCCESS;
    return st;
}

static clattn_status finish(one_call *c, clattn_status st)
{
    if (c->seq)
        clattn__seq_end(&c->s);
    clattn_plan_destroy(c->plan);
    return st;
}

/* ---- the calls ---- */

clattn_status clattn__sort_pairs(clattn_context *ctx, cl_mem keys_in, cl_mem vals_in,
                                 cl_mem keys_out, cl_mem vals_out, size_t nseg, size_t len,
                                 unsigned key_bits, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_status status = check_common(ctx, num_wait, wait, "sort");
    one_call c;
    memset(&c, 0, sizeof c);
    size_t n = 0;
    if (status != CLATTN_SUCCESS)
        return status;
    CLATTN_CHECK(key_bits >= 1 && key_bits <= 32, CLATTN_INVALID_ARGUMENT,
                 "sort: key_bits %u not in 1..32", key_bits);
    CLATTN_FORWARD(check_count(ctx, nseg, len, "sort", &n));
    CLATTN_FORWARD(check_buf(ctx, keys_in, n * 4, "sort keys_in"));
    if (vals_in)
        CLATTN_FORWARD(check_buf(ctx, vals_in, n * 4, "sort vals_in"));
    CLATTN_FORWARD(check_buf(ctx, keys_out, n * 4, "sort keys_out"));
    CLATTN_FORWARD(check_buf(ctx, vals_out, n * 4, "sort vals_out"));
    cl_mem all[] = {keys_out, vals_out, keys_in, vals_in};
    CLATTN_FORWARD(check_distinct(ctx, all, 4, "sort"));
    CLATTN_FORWARD(prepare(&c, ctx, CLATTN__SORT_USE_SORT));
    clattn__sort_scratch_sort(&c.ws, &c.k.launch, nseg, len, key_bits);
    CLATTN_FORWARD(begin(&c, num_wait, wait));
    status = clattn__sort_pairs_seq(&c.s, &c.k, &c.ws, keys_in, vals_in, keys_out, vals_out,
                                    nseg, len, key_bits, true, event);
cleanup:
    return finish(&c, status);
}

clattn_status clattn__topk(clattn_context *ctx, cl_mem scores, size_t nseg, size_t len, size_t k,
                           clattn__topk_order order, cl_mem idx, cl_mem out_scores,
                           cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = check_common(ctx, num_wait, wait, "top-k");
    one_call c;
    memset(&c, 0, sizeof c);
    size_t n = 0, nk = 0;
    if (status != CLATTN_SUCCESS)
        return status;
    CLATTN_CHECK(order == CLATTN__TOPK_BY_INDEX || order == CLATTN__TOPK_BY_SCORE,
                 CLATTN_INVALID_ARGUMENT, "top-k: unknown order %d", (int)order);
    CLATTN_FORWARD(check_count(ctx, nseg, len, "top-k", &n));
    CLATTN_CHECK(k >= 1 && k <= len, CLATTN_INVALID_ARGUMENT, "top-k: k %zu not in 1..%zu", k,
                 len);
    nk = nseg * k;
    CLATTN_FORWARD(check_buf(ctx, scores, n * 4, "top-k scores"));
    CLATTN_FORWARD(check_buf(ctx, idx, nk * 4, "top-k idx"));
    if (out_scores)
        CLATTN_FORWARD(check_buf(ctx, out_scores, nk * 4, "top-k out_scores"));
    cl_mem all[] = {idx, out_scores, scores};
    CLATTN_FORWARD(check_distinct(ctx, all, 3, "top-k"));
    CLATTN_FORWARD(prepare(&c, ctx,
                           order == CLATTN__TOPK_BY_SCORE ? CLATTN__SORT_USE_TOPK_BY_SCORE
                                                          : CLATTN__SORT_USE_TOPK));
    clattn__sort_scratch_topk(&c.ws, &c.k.launch, nseg, len, k, order);
    CLATTN_FORWARD(begin(&c, num_wait, wait));
    status = clattn__topk_seq(&c.s, &c.k, &c.ws, scores, nseg, len, k, order, idx, out_scores,
                              true, event);
cleanup:
    return finish(&c, status);
}

/* Gather (scatter = 0) or scatter (1) of n rows between a table of `ntab` rows and the dense
 * rows, after the checks both share. */
static clattn_status rows_call(clattn_context *ctx, int scatter, cl_mem src, size_t nsrc_rows,
                               size_t ntab, size_t d, cl_mem idx, size_t n, cl_mem dst,
                               cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    const char *what = scatter ? "scatter" : "gather";
    clattn_status status = check_common(ctx, num_wait, wait, what);
    one_call c;
    memset(&c, 0, sizeof c);
    size_t ns = 0, nd = 0, ni = 0;
    if (status != CLATTN_SUCCESS)
        return status;
    CLATTN_FORWARD(check_count(ctx, nsrc_rows, d, scatter ? "scatter source" : "gather source",
                               &ns));
    CLATTN_FORWARD(check_count(ctx, scatter ? ntab : n, d,
                               scatter ? "scatter destination" : "gather destination", &nd));
    CLATTN_FORWARD(check_count(ctx, n, 1, scatter ? "scatter indices" : "gather indices", &ni));
    CLATTN_FORWARD(check_buf(ctx, src, ns * 4, scatter ? "scatter src" : "gather src"));
    CLATTN_FORWARD(check_buf(ctx, idx, ni * 4, scatter ? "scatter idx" : "gather idx"));
    CLATTN_FORWARD(check_buf(ctx, dst, nd * 4, scatter ? "scatter dst" : "gather dst"));
    cl_mem all[] = {dst, src, idx};
    CLATTN_FORWARD(check_distinct(ctx, all, 3, what));
    CLATTN_FORWARD(prepare(&c, ctx, scatter ? CLATTN__SORT_USE_SCATTER : CLATTN__SORT_USE_GATHER));
    CLATTN_FORWARD(begin(&c, num_wait, wait));
    if (scatter)
        status = clattn__scatter_rows_seq(&c.s, &c.k, src, n, d, idx, ntab, dst, true, event);
    else
        status = clattn__gather_rows_seq(&c.s, &c.k, src, ntab, d, idx, n, dst, true, event);
cleanup:
    return finish(&c, status);
}

clattn_status clattn__gather_rows(clattn_context *ctx, cl_mem src, size_t nsrc, size_t d,
                                  cl_mem idx, size_t n, cl_mem dst, cl_uint num_wait,
                                  const cl_event *wait, cl_event *event)
{
    return rows_call(ctx, 0, src, nsrc, nsrc, d, idx, n, dst, num_wait, wait, event);
}

clattn_status clattn__scatter_rows(clattn_context *ctx, cl_mem src, size_t n, size_t d,
                                   cl_mem idx, size_t ndst, cl_mem dst, cl_uint num_wait,
                                   const cl_event *wait, cl_event *event)
{
    return rows_call(ctx, 1, src, n, ndst, d, idx, n, dst, num_wait, wait, event);
}

clattn_status clattn__scatter_mean_rows(clattn_context *ctx, cl_mem src, size_t n, size_t d,
                                        cl_mem dest, size_t ndst, cl_mem dst, cl_mem counts,
                                        cl_uint num_wait, const cl_event *wait,
                                        cl_event *event)
{
    clattn_status status = check_common(ctx, num_wait, wait, "scatter-mean");
    one_call c;
    memset(&c, 0, sizeof c);
    size_t ns = 0, nd = 0;
    if (status != CLATTN_SUCCESS)
        return status;
    CLATTN_FORWARD(check_count(ctx, n, d, "scatter-mean source", &ns));
    CLATTN_FORWARD(check_count(ctx, ndst, d, "scatter-mean destination", &nd));
    /* ndst itself is the "dropped" key: it must fit in 32 bits too. */
    CLATTN_CHECK(ndst < 0xffffffffu, CLATTN_INVALID_SHAPE, "scatter-mean: %zu destinations",
                 ndst);
    CLATTN_FORWARD(check_buf(ctx, src, ns * 4, "scatter-mean src"));
    CLATTN_FORWARD(check_buf(ctx, dest, n * 4, "scatter-mean dest"));
    CLATTN_FORWARD(check_buf(ctx, dst, nd * 4, "scatter-mean dst"));
    if (counts)
        CLATTN_FORWARD(check_buf(ctx, counts, ndst * 4, "scatter-mean counts"));
    cl_mem all[] = {dst, counts, src, dest};
    CLATTN_FORWARD(check_distinct(ctx, all, 4, "scatter-mean"));
    CLATTN_FORWARD(prepare(&c, ctx, CLATTN__SORT_USE_SCATTER_MEAN));
    clattn__sort_scratch_scatter_mean(&c.ws, &c.k.launch, n, ndst);
    CLATTN_FORWARD(begin(&c, num_wait, wait));
    status = clattn__scatter_mean_rows_seq(&c.s, &c.k, &c.ws, src, n, d, dest, ndst, dst, counts,
                                           true, event);
cleanup:
    return finish(&c, status);
}
