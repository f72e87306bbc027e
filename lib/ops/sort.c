/* Host side of the device building blocks (lib/ops/sort.h, kernels_cl/sort.cl): stable radix sort,
 * segmented top-k, row gather / scatter / scatter-mean, and the command-sequence helper the
 * operators built on them share. */
#include "sort.h"

#include <stdlib.h>
#include <string.h>

#define SORT_BITS 8       /* SORT_BITS in sort.cl: 256 counters per work-item */
#define SORT_RADIX 256u
#define SORT_MIN_BLOCK 1024 /* the 256 counters per work-item stay a quarter of its work */
#define SORT_MAX_BLOCK 16384 /* keeps each work-item's loop short (llvmpipe stops at 65535) */
#define SORT_ITEMS 8192     /* work-items to aim for over all segments */
#define SORT_LOCAL 8        /* work-group size at most: 256 private counters per work-item */

/* ---- command sequences ---- */

clattn_status clattn__sort_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel)
{
    cl_program prog = NULL;
    clattn_status status = clattn__program_get(ctx, "sort.cl", "", &prog);
    if (status == CLATTN_SUCCESS)
        status = clattn__kernel_create(ctx, prog, name, kernel);
    return status;
}

void clattn__release_kernels(cl_kernel *k, int n)
{
    for (int i = 0; i < n; i++)
        if (k[i])
            clReleaseKernel(k[i]);
}

void clattn__release_mems(cl_mem *m, int n)
{
    for (int i = 0; i < n; i++)
        if (m[i])
            clReleaseMemObject(m[i]);
}
#define release_kernels clattn__release_kernels
#define release_mems clattn__release_mems

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

/* a * b elements of `elem` bytes, below 2^32 elements. */
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

/* Elements per work-item: enough work-items in all (SORT_ITEMS) for the device, but blocks long
 * enough that the 256 counters each work-item clears, scans and writes stay a small part of its
 * work (SORT_MIN_BLOCK), and short enough for llvmpipe's loop limit (SORT_MAX_BLOCK). */
static size_t block_for(size_t len, size_t nseg)
{
    size_t b = clattn__div_up(len * nseg, SORT_ITEMS);
    return b < SORT_MIN_BLOCK ? SORT_MIN_BLOCK : b > SORT_MAX_BLOCK ? SORT_MAX_BLOCK : b;
}

/* ---- radix sort ---- */

/* One pass: histograms, scan, scatter from (ki, vi) to (ko, vo). */
static clattn_status sort_pass(clattn__seq *s, cl_kernel kh, cl_kernel ks, cl_kernel kx,
                               cl_mem ki, cl_mem vi, int has_vals, cl_mem ko, cl_mem vo,
                               size_t nseg, size_t len, unsigned shift, unsigned key_bits,
                               cl_mem hist, cl_mem tot, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_uint ulen = (cl_uint)len, block = (cl_uint)block_for(len, nseg);
    cl_uint nblk = (cl_uint)clattn__div_up(len, block), ushift = shift;
    unsigned bits = key_bits - shift < SORT_BITS ? key_bits - shift : SORT_BITS;
    cl_uint mask = (1u << bits) - 1u;
    clattn__args a = {kh, 0, CL_SUCCESS};
    CLATTN_ARG(&a, ki);
    CLATTN_ARG(&a, ulen);
    CLATTN_ARG(&a, block);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, ushift);
    CLATTN_ARG(&a, mask);
    CLATTN_ARG(&a, hist);
    CLATTN_CL(a.err);
    size_t gb = nseg * nblk, gd = nseg * SORT_RADIX, lb = clattn__local_for(gb, SORT_LOCAL);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, kh, 1, &gb, &lb, false, NULL));
    a = (clattn__args){ks, 0, CL_SUCCESS};
    CLATTN_ARG(&a, hist);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, tot);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, ks, 1, &gd, false, NULL));
    a = (clattn__args){kx, 0, CL_SUCCESS};
    cl_mem vin = has_vals ? vi : ki; /* any valid buffer when unused */
    cl_int hv = has_vals;
    CLATTN_ARG(&a, ki);
    CLATTN_ARG(&a, vin);
    CLATTN_ARG(&a, hv);
    CLATTN_ARG(&a, ulen);
    CLATTN_ARG(&a, block);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, ushift);
    CLATTN_ARG(&a, mask);
    CLATTN_ARG(&a, hist);
    CLATTN_ARG(&a, tot);
    CLATTN_ARG(&a, ko);
    CLATTN_ARG(&a, vo);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, kx, 1, &gb, &lb, last, event));
cleanup:
    return status;
}

/* Every pass of a sort whose kernels and scratch exist (b->nseg x b->len keys). */
static clattn_status run_passes(clattn__seq *s, const clattn__sort_baked *b, cl_mem keys_in,
                                cl_mem vals_in, cl_mem keys_out, cl_mem vals_out, bool last,
                                cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    unsigned passes = (b->key_bits + SORT_BITS - 1) / SORT_BITS;
    cl_mem ki = keys_in, vi = vals_in;
    for (unsigned p = 0; p < passes; p++) {
        /* Ping-pong so that the last pass lands in the outputs. */
        bool to_out = ((passes - 1 - p) % 2) == 0;
        cl_mem ko = to_out ? keys_out : b->tk, vo = to_out ? vals_out : b->tv;
        status = sort_pass(s, b->hist, b->scan, b->scatter, ki, vi, p > 0 || vals_in != NULL, ko,
                           vo, b->nseg, b->len, p * SORT_BITS, b->key_bits, b->histo, b->tot,
                           last && p + 1 == passes, event);
        if (status != CLATTN_SUCCESS)
            return status;
        ki = ko;
        vi = vo;
    }
    return status;
}

/* Scratch bytes of a sort: histograms, totals, and the ping-pong pair when it takes passes. */
static clattn_status sort_sizes(clattn_context *ctx, size_t nseg, size_t len, unsigned key_bits,
                                size_t *hbytes, size_t *pbytes)
{
    size_t nblk = clattn__div_up(len, block_for(len, nseg));
    unsigned passes = (key_bits + SORT_BITS - 1) / SORT_BITS;
    if (!clattn__mul_ok(nseg * nblk, SORT_RADIX * sizeof(cl_uint), hbytes))
        return clattn__fail(ctx, CLATTN_SIZE_OVERFLOW, "sort: histogram size overflows");
    *pbytes = passes > 1 ? nseg * len * sizeof(cl_uint) : 0;
    return CLATTN_SUCCESS;
}

/* The sort inside a sequence (arguments already checked), with kernels and scratch made for
 * this call. */
static clattn_status sort_in_seq(clattn__seq *s, cl_mem keys_in, cl_mem vals_in, cl_mem keys_out,
                                 cl_mem vals_out, size_t nseg, size_t len, unsigned key_bits,
                                 bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__sort_baked b;
    memset(&b, 0, sizeof b);
    b.nseg = nseg;
    b.len = len;
    b.key_bits = key_bits;
    size_t hbytes, pbytes;
    CLATTN_FORWARD(sort_sizes(ctx, nseg, len, key_bits, &hbytes, &pbytes));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_sort_hist", &b.hist));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_sort_scan", &b.scan));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_sort_scatter", &b.scatter));
    CLATTN_FORWARD(clattn__buffer_create(ctx, hbytes, "sort histograms", &b.histo));
    CLATTN_FORWARD(
        clattn__buffer_create(ctx, nseg * SORT_RADIX * sizeof(cl_uint), "sort totals", &b.tot));
    if (pbytes) {
        CLATTN_FORWARD(clattn__buffer_create(ctx, pbytes, "sort keys", &b.tk));
        CLATTN_FORWARD(clattn__buffer_create(ctx, pbytes, "sort values", &b.tv));
    }
    status = run_passes(s, &b, keys_in, vals_in, keys_out, vals_out, last, event);
cleanup:
    release_kernels((cl_kernel[]){b.hist, b.scan, b.scatter}, 3);
    release_mems((cl_mem[]){b.histo, b.tot, b.tk, b.tv}, 4);
    return status;
}

clattn_status clattn__sort_bake(clattn_plan *plan, size_t nseg, size_t len, unsigned key_bits,
                                const char *chosen_by, clattn__sort_baked *out)
{
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    size_t n = 0, hbytes, pbytes;
    memset(out, 0, sizeof *out);
    CLATTN_CHECK(key_bits >= 1 && key_bits <= 32, CLATTN_INVALID_ARGUMENT,
                 "sort: key_bits %u not in 1..32", key_bits);
    CLATTN_FORWARD(check_count(ctx, nseg, len, "sort", &n));
    CLATTN_FORWARD(sort_sizes(ctx, nseg, len, key_bits, &hbytes, &pbytes));
    /* The work-group sizes are chosen per launch (sort_pass); 0 records "per launch". */
    CLATTN_FORWARD(clattn__plan_kernel(plan, "sort.cl", "", "clattn_sort_hist", 0, chosen_by,
                                       &out->hist));
    CLATTN_FORWARD(clattn__plan_kernel(plan, "sort.cl", "", "clattn_sort_scan", 0, chosen_by,
                                       &out->scan));
    CLATTN_FORWARD(clattn__plan_kernel(plan, "sort.cl", "", "clattn_sort_scatter", 0, chosen_by,
                                       &out->scatter));
    CLATTN_FORWARD(clattn__plan_scratch(plan, hbytes, "sort histograms", &out->histo));
    CLATTN_FORWARD(clattn__plan_scratch(plan, nseg * SORT_RADIX * sizeof(cl_uint), "sort totals",
                                        &out->tot));
    if (pbytes) {
        CLATTN_FORWARD(clattn__plan_scratch(plan, pbytes, "sort keys", &out->tk));
        CLATTN_FORWARD(clattn__plan_scratch(plan, pbytes, "sort values", &out->tv));
    }
    out->nseg = nseg;
    out->len = len;
    out->key_bits = key_bits;
cleanup:
    return status;
}

clattn_status clattn__sort_baked_enqueue(clattn__seq *s, const clattn__sort_baked *b,
                                         cl_mem keys_in, cl_mem vals_in, cl_mem keys_out,
                                         cl_mem vals_out, bool last, cl_event *event)
{
    return run_passes(s, b, keys_in, vals_in, keys_out, vals_out, last, event);
}

clattn_status clattn__sort_pairs(clattn_context *ctx, cl_mem keys_in, cl_mem vals_in,
                                 cl_mem keys_out, cl_mem vals_out, size_t nseg, size_t len,
                                 unsigned key_bits, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    size_t n = 0;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "sort: ctx is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "sort: num_wait > 0, wait NULL");
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
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    status = sort_in_seq(&s, keys_in, vals_in, keys_out, vals_out, nseg, len, key_bits, true,
                         event);
cleanup:
    clattn__seq_end(&s);
    return status;
}

/* ---- segmented top-k ---- */

static clattn_status topk_in_seq(clattn__seq *s, cl_mem scores, size_t nseg, size_t len,
                                 size_t k, clattn__topk_order order, cl_mem idx,
                                 cl_mem out_scores, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kh = NULL, kc = NULL, kn = NULL, kl = NULL, kk = NULL, kf = NULL;
    cl_mem hist = NULL, state = NULL, cnt = NULL, sel = NULL, selk = NULL, sortk = NULL;
    cl_uint ulen = (cl_uint)len, block = (cl_uint)block_for(len, nseg), uk = (cl_uint)k;
    cl_uint nblk = (cl_uint)clattn__div_up(len, block);
    size_t gb = nseg * nblk, gs = nseg, hbytes, lb = clattn__local_for(gb, SORT_LOCAL);
    CLATTN_CHECK(clattn__mul_ok(gb, SORT_RADIX * sizeof(cl_uint), &hbytes), CLATTN_SIZE_OVERFLOW,
                 "top-k: histogram size overflows");
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_topk_hist", &kh));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_topk_choose", &kc));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_topk_count", &kn));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_topk_collect", &kl));
    CLATTN_FORWARD(clattn__buffer_create(ctx, hbytes, "top-k histograms", &hist));
    CLATTN_FORWARD(clattn__buffer_create(ctx, nseg * 2 * sizeof(cl_uint), "top-k state", &state));
    CLATTN_FORWARD(clattn__buffer_create(ctx, gb * 2 * sizeof(cl_uint), "top-k counts", &cnt));
    bool by_score = order == CLATTN__TOPK_BY_SCORE;
    size_t nk = nseg * k;
    if (by_score) {
        CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_topk_keys", &kk));
        CLATTN_FORWARD(clattn__buffer_create(ctx, nk * sizeof(cl_uint), "top-k chosen", &sel));
        CLATTN_FORWARD(
            clattn__buffer_create(ctx, nk * sizeof(cl_uint), "top-k chosen keys", &selk));
        CLATTN_FORWARD(
            clattn__buffer_create(ctx, nk * sizeof(cl_uint), "top-k sorted keys", &sortk));
        if (out_scores)
            CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_topk_fetch", &kf));
    }
    for (int p = 3; p >= 0; p--) {
        cl_uint shift = (cl_uint)p * SORT_BITS;
        cl_int first = p == 3;
        clattn__args a = {kh, 0, CL_SUCCESS};
        CLATTN_ARG(&a, scores);
        CLATTN_ARG(&a, ulen);
        CLATTN_ARG(&a, block);
        CLATTN_ARG(&a, nblk);
        CLATTN_ARG(&a, shift);
        CLATTN_ARG(&a, state);
        CLATTN_ARG(&a, hist);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_kernel_local(s, kh, 1, &gb, &lb, false, NULL));
        a = (clattn__args){kc, 0, CL_SUCCESS};
        CLATTN_ARG(&a, hist);
        CLATTN_ARG(&a, nblk);
        CLATTN_ARG(&a, shift);
        CLATTN_ARG(&a, uk);
        CLATTN_ARG(&a, first);
        CLATTN_ARG(&a, state);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_kernel(s, kc, 1, &gs, false, NULL));
    }
    clattn__args a = {kn, 0, CL_SUCCESS};
    CLATTN_ARG(&a, scores);
    CLATTN_ARG(&a, ulen);
    CLATTN_ARG(&a, block);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, state);
    CLATTN_ARG(&a, cnt);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, kn, 1, &gb, false, NULL));
    /* BY_SCORE: collect into scratch (indices in sel, scores in selk), key the chosen scores
     * into sortk and sort them stably (the scratch is in index order, so equal scores stay
     * lowest index first); the sorted keys land in selk, no longer needed as scores by then. */
    cl_mem cidx = by_score ? sel : idx;
    cl_int has_scores = by_score || out_scores != NULL;
    cl_mem sc_buf = by_score ? selk : out_scores;
    cl_mem sc_arg = has_scores ? sc_buf : cidx; /* any valid buffer when unused */
    a = (clattn__args){kl, 0, CL_SUCCESS};
    CLATTN_ARG(&a, scores);
    CLATTN_ARG(&a, ulen);
    CLATTN_ARG(&a, block);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, uk);
    CLATTN_ARG(&a, state);
    CLATTN_ARG(&a, cnt);
    CLATTN_ARG(&a, cidx);
    CLATTN_ARG(&a, sc_arg);
    CLATTN_ARG(&a, has_scores);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, kl, 1, &gb, last && !by_score, event));
    if (by_score) {
        a = (clattn__args){kk, 0, CL_SUCCESS};
        CLATTN_ARG(&a, sc_buf);
        CLATTN_ARG(&a, sortk);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_kernel(s, kk, 1, &nk, false, NULL));
        CLATTN_FORWARD(
            sort_in_seq(s, sortk, sel, selk, idx, nseg, k, 32, last && !out_scores, event));
        if (out_scores) {
            a = (clattn__args){kf, 0, CL_SUCCESS};
            CLATTN_ARG(&a, scores);
            CLATTN_ARG(&a, ulen);
            CLATTN_ARG(&a, uk);
            CLATTN_ARG(&a, idx);
            CLATTN_ARG(&a, out_scores);
            CLATTN_CL(a.err);
            CLATTN_FORWARD(clattn__seq_kernel(s, kf, 1, &nk, last, event));
        }
    }
cleanup:
    release_kernels((cl_kernel[]){kh, kc, kn, kl, kk, kf}, 6);
    release_mems((cl_mem[]){hist, state, cnt, sel, selk, sortk}, 6);
    return status;
}

clattn_status clattn__topk(clattn_context *ctx, cl_mem scores, size_t nseg, size_t len, size_t k,
                           clattn__topk_order order, cl_mem idx, cl_mem out_scores,
                           cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    size_t n = 0, nk = 0;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "top-k: ctx is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "top-k: num_wait > 0, wait NULL");
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
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    status = topk_in_seq(&s, scores, nseg, len, k, order, idx, out_scores, true, event);
cleanup:
    clattn__seq_end(&s);
    return status;
}

/* ---- rows ---- */

static clattn_status rows_kernel(clattn_context *ctx, const char *name, cl_mem src, cl_uint lim,
                                 cl_uint d, cl_mem idx, cl_mem dst, size_t n, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    cl_kernel kern = NULL;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    CLATTN_FORWARD(clattn__sort_kernel(ctx, name, &kern));
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, src);
    CLATTN_ARG(&a, lim);
    CLATTN_ARG(&a, d);
    CLATTN_ARG(&a, idx);
    CLATTN_ARG(&a, dst);
    CLATTN_CL(a.err);
    size_t gl[2] = {d, n};
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    CLATTN_FORWARD(clattn__seq_kernel(&s, kern, 2, gl, true, event));
cleanup:
    clattn__seq_end(&s);
    if (kern)
        clReleaseKernel(kern);
    return status;
}

clattn_status clattn__gather_rows(clattn_context *ctx, cl_mem src, size_t nsrc, size_t d,
                                  cl_mem idx, size_t n, cl_mem dst, cl_uint num_wait,
                                  const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t ns = 0, nd = 0, ni = 0;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "gather: ctx is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "gather: num_wait > 0, wait NULL");
    CLATTN_FORWARD(check_count(ctx, nsrc, d, "gather source", &ns));
    CLATTN_FORWARD(check_count(ctx, n, d, "gather destination", &nd));
    CLATTN_FORWARD(check_count(ctx, n, 1, "gather indices", &ni));
    CLATTN_FORWARD(check_buf(ctx, src, ns * 4, "gather src"));
    CLATTN_FORWARD(check_buf(ctx, idx, ni * 4, "gather idx"));
    CLATTN_FORWARD(check_buf(ctx, dst, nd * 4, "gather dst"));
    cl_mem all[] = {dst, src, idx};
    CLATTN_FORWARD(check_distinct(ctx, all, 3, "gather"));
    status = rows_kernel(ctx, "clattn_rows_gather", src, (cl_uint)nsrc, (cl_uint)d, idx, dst, n,
                         num_wait, wait, event);
cleanup:
    return status;
}

clattn_status clattn__scatter_rows(clattn_context *ctx, cl_mem src, size_t n, size_t d,
                                   cl_mem idx, size_t ndst, cl_mem dst, cl_uint num_wait,
                                   const cl_event *wait, cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    size_t ns = 0, nd = 0;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "scatter: ctx is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER, "scatter: num_wait > 0, wait NULL");
    CLATTN_FORWARD(check_count(ctx, n, d, "scatter source", &ns));
    CLATTN_FORWARD(check_count(ctx, ndst, d, "scatter destination", &nd));
    CLATTN_FORWARD(check_buf(ctx, src, ns * 4, "scatter src"));
    CLATTN_FORWARD(check_buf(ctx, idx, n * 4, "scatter idx"));
    CLATTN_FORWARD(check_buf(ctx, dst, nd * 4, "scatter dst"));
    cl_mem all[] = {dst, src, idx};
    CLATTN_FORWARD(check_distinct(ctx, all, 3, "scatter"));
    status = rows_kernel(ctx, "clattn_rows_scatter", src, (cl_uint)ndst, (cl_uint)d, idx, dst, n,
                         num_wait, wait, event);
cleanup:
    return status;
}

/* Bits needed to hold values 0..x. */
static unsigned bits_for(size_t x)
{
    unsigned b = 1;
    while (b < 32 && (x >> b) != 0)
        b++;
    return b;
}

clattn_status clattn__scatter_mean_rows(clattn_context *ctx, cl_mem src, size_t n, size_t d,
                                        cl_mem dest, size_t ndst, cl_mem dst, cl_mem counts,
                                        cl_uint num_wait, const cl_event *wait,
                                        cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn__seq s;
    memset(&s, 0, sizeof s);
    cl_kernel kd = NULL, km = NULL;
    cl_mem keys = NULL, sorted = NULL, order = NULL;
    size_t ns = 0, nd = 0;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "scatter-mean: ctx is NULL");
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "scatter-mean: num_wait > 0, wait NULL");
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
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_rows_dest_keys", &kd));
    CLATTN_FORWARD(clattn__sort_kernel(ctx, "clattn_rows_mean", &km));
    CLATTN_FORWARD(clattn__buffer_create(ctx, n * 4, "scatter-mean keys", &keys));
    CLATTN_FORWARD(clattn__buffer_create(ctx, n * 4, "scatter-mean sorted keys", &sorted));
    CLATTN_FORWARD(clattn__buffer_create(ctx, n * 4, "scatter-mean order", &order));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    cl_uint undst = (cl_uint)ndst, ud = (cl_uint)d, un = (cl_uint)n;
    clattn__args a = {kd, 0, CL_SUCCESS};
    CLATTN_ARG(&a, dest);
    CLATTN_ARG(&a, undst);
    CLATTN_ARG(&a, keys);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(&s, kd, 1, &n, false, NULL));
    CLATTN_FORWARD(sort_in_seq(&s, keys, NULL, sorted, order, 1, n, bits_for(ndst), false, NULL));
    cl_int has_counts = counts != NULL;
    cl_mem cbuf = counts ? counts : order; /* any valid buffer when unused */
    a = (clattn__args){km, 0, CL_SUCCESS};
    CLATTN_ARG(&a, src);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, sorted);
    CLATTN_ARG(&a, order);
    CLATTN_ARG(&a, dst);
    CLATTN_ARG(&a, cbuf);
    CLATTN_ARG(&a, has_counts);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(&s, km, 1, &ndst, true, event));
cleanup:
    clattn__seq_end(&s);
    release_kernels((cl_kernel[]){kd, km}, 2);
    release_mems((cl_mem[]){keys, sorted, order}, 3);
    return status;
}
