/* The device building blocks inside a plan (lib/blocks/sort.h, kernels_cl/sort.cl): their kernels
 * and scratch, made once at bake time, and the stable radix sort, segmented top-k and row
 * gather / scatter / scatter-mean as commands of an operator's sequence. */
#include "sort.h"

#include <stdio.h>
#include <string.h>

/* ---- kernels and scratch, at bake time ---- */

static clattn_status make(clattn_plan *plan, const clattn__blocks_launch *L, const char *name,
                          size_t local, cl_kernel *k)
{
    return clattn__plan_kernel(plan, "sort.cl", L->defines, name, local, "scheduler", k);
}

clattn_status clattn__sort_kernels_create(clattn_plan *plan, unsigned uses,
                                          clattn__sort_kernels *k)
{
    clattn_context *ctx = plan->ctx;
    clattn_status status = CLATTN_SUCCESS;
    memset(k, 0, sizeof *k);
    clattn__schedule_blocks(&ctx->info, &k->launch);
    const clattn__blocks_launch *L = &k->launch;
    size_t lb = L->local_size;
    if (uses & CLATTN__SORT_USE_TOPK_BY_SCORE)
        uses |= CLATTN__SORT_USE_TOPK | CLATTN__SORT_USE_SORT;
    if (uses & CLATTN__SORT_USE_SCATTER_MEAN)
        uses |= CLATTN__SORT_USE_SORT;
    if (uses & CLATTN__SORT_USE_SORT) {
        CLATTN_FORWARD(make(plan, L, "clattn_sort_hist", lb, &k->sort_hist));
        CLATTN_FORWARD(make(plan, L, "clattn_sort_scan", 0, &k->sort_scan));
        CLATTN_FORWARD(make(plan, L, "clattn_sort_scatter", lb, &k->sort_scatter));
    }
    if (uses & CLATTN__SORT_USE_TOPK) {
        CLATTN_FORWARD(make(plan, L, "clattn_topk_hist", lb, &k->topk_hist));
        CLATTN_FORWARD(make(plan, L, "clattn_topk_choose", 0, &k->topk_choose));
        CLATTN_FORWARD(make(plan, L, "clattn_topk_count", 0, &k->topk_count));
        CLATTN_FORWARD(make(plan, L, "clattn_topk_collect", 0, &k->topk_collect));
    }
    if (uses & CLATTN__SORT_USE_TOPK_BY_SCORE) {
        CLATTN_FORWARD(make(plan, L, "clattn_topk_keys", 0, &k->topk_keys));
        CLATTN_FORWARD(make(plan, L, "clattn_topk_fetch", 0, &k->topk_fetch));
    }
    if (uses & CLATTN__SORT_USE_GATHER)
        CLATTN_FORWARD(make(plan, L, "clattn_rows_gather", 0, &k->gather));
    if (uses & CLATTN__SORT_USE_SCATTER)
        CLATTN_FORWARD(make(plan, L, "clattn_rows_scatter", 0, &k->scatter));
    if (uses & CLATTN__SORT_USE_SCATTER_MEAN) {
        CLATTN_FORWARD(make(plan, L, "clattn_rows_dest_keys", 0, &k->dest_keys));
        CLATTN_FORWARD(make(plan, L, "clattn_rows_mean", 0, &k->mean));
    }
cleanup:
    return status;
}

/* a * b, or SIZE_MAX when it overflows (the allocation then fails as too large). */
static size_t mul_sat(size_t a, size_t b)
{
    size_t r;
    return clattn__mul_ok(a, b, &r) ? r : SIZE_MAX;
}

static void need(clattn__sort_scratch *ws, int slot, size_t bytes)
{
    if (bytes > ws->need[slot])
        ws->need[slot] = bytes;
}

static size_t radix(const clattn__blocks_launch *L) { return (size_t)1 << L->bits; }

static size_t blocks_per_segment(const clattn__blocks_launch *L, size_t nseg, size_t len)
{
    return clattn__div_up(len, clattn__sort_block(L, nseg, len));
}

void clattn__sort_scratch_sort(clattn__sort_scratch *ws, const clattn__blocks_launch *L,
                               size_t nseg, size_t len, unsigned key_bits)
{
    size_t nblk = blocks_per_segment(L, nseg, len), n = mul_sat(nseg, len);
    need(ws, CLATTN__SORT_WS_HIST, mul_sat(mul_sat(nseg, nblk), radix(L) * sizeof(cl_uint)));
    need(ws, CLATTN__SORT_WS_TOT, mul_sat(nseg, radix(L) * sizeof(cl_uint)));
    if (key_bits > L->bits) { /* more than one pass: ping-pong buffers */
        need(ws, CLATTN__SORT_WS_T3, mul_sat(n, sizeof(cl_uint)));
        need(ws, CLATTN__SORT_WS_T4, mul_sat(n, sizeof(cl_uint)));
    }
}

void clattn__sort_scratch_topk(clattn__sort_scratch *ws, const clattn__blocks_launch *L,
                               size_t nseg, size_t len, size_t k, clattn__topk_order order)
{
    size_t nblk = blocks_per_segment(L, nseg, len), gb = mul_sat(nseg, nblk);
    need(ws, CLATTN__SORT_WS_HIST, mul_sat(gb, radix(L) * sizeof(cl_uint)));
    need(ws, CLATTN__SORT_WS_STATE, mul_sat(nseg, 2 * sizeof(cl_uint)));
    need(ws, CLATTN__SORT_WS_CNT, mul_sat(gb, 2 * sizeof(cl_uint)));
    if (order == CLATTN__TOPK_BY_SCORE) {
        size_t nk = mul_sat(mul_sat(nseg, k), sizeof(cl_uint));
        need(ws, CLATTN__SORT_WS_T0, nk);
        need(ws, CLATTN__SORT_WS_T1, nk);
        need(ws, CLATTN__SORT_WS_T2, nk);
        clattn__sort_scratch_sort(ws, L, nseg, k, 32);
    }
}

/* Bits needed to hold values 0..x. */
static unsigned bits_for(size_t x)
{
    unsigned b = 1;
    while (b < 32 && (x >> b) != 0)
        b++;
    return b;
}

void clattn__sort_scratch_scatter_mean(clattn__sort_scratch *ws, const clattn__blocks_launch *L,
                                       size_t n, size_t ndst)
{
    size_t bytes = mul_sat(n, sizeof(cl_uint));
    need(ws, CLATTN__SORT_WS_T0, bytes);
    need(ws, CLATTN__SORT_WS_T1, bytes);
    need(ws, CLATTN__SORT_WS_T2, bytes);
    clattn__sort_scratch_sort(ws, L, 1, n, bits_for(ndst));
}

clattn_status clattn__sort_scratch_alloc(clattn_plan *plan, clattn__sort_scratch *ws)
{
    static const char *const what[CLATTN__SORT_WS_COUNT] = {
        "sort histograms",   "sort totals",      "top-k state",
        "top-k counts",      "sort scratch 0",   "sort scratch 1",
        "sort scratch 2",    "sort ping-pong keys", "sort ping-pong values"};
    for (int i = 0; i < CLATTN__SORT_WS_COUNT; i++)
        if (ws->need[i] && !ws->buf[i]) {
            clattn_status st = clattn__plan_scratch(plan, ws->need[i], what[i], &ws->buf[i]);
            if (st != CLATTN_SUCCESS)
                return st;
        }
    return CLATTN_SUCCESS;
}

/* ---- radix sort ---- */

/* One pass: histograms, scan, scatter from (ki, vi) to (ko, vo). */
static clattn_status sort_pass(clattn__seq *s, const clattn__sort_kernels *k,
                               const clattn__sort_scratch *ws, cl_mem ki, cl_mem vi,
                               int has_vals, cl_mem ko, cl_mem vo, size_t nseg, size_t len,
                               unsigned shift, unsigned key_bits, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__blocks_launch *L = &k->launch;
    cl_mem hist = ws->buf[CLATTN__SORT_WS_HIST], tot = ws->buf[CLATTN__SORT_WS_TOT];
    cl_uint ulen = (cl_uint)len, block = (cl_uint)clattn__sort_block(L, nseg, len);
    cl_uint nblk = (cl_uint)clattn__div_up(len, block), ushift = shift;
    unsigned bits = key_bits - shift < L->bits ? key_bits - shift : L->bits;
    cl_uint mask = (1u << bits) - 1u;
    clattn__args a = {k->sort_hist, 0, CL_SUCCESS};
    CLATTN_ARG(&a, ki);
    CLATTN_ARG(&a, ulen);
    CLATTN_ARG(&a, block);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, ushift);
    CLATTN_ARG(&a, mask);
    CLATTN_ARG(&a, hist);
    CLATTN_CL(a.err);
    size_t gb = nseg * nblk, gd = nseg * radix(L), lb = clattn__local_for(gb, L->local_size);
    CLATTN_FORWARD(clattn__seq_kernel_local(s, k->sort_hist, 1, &gb, &lb, false, NULL));
    a = (clattn__args){k->sort_scan, 0, CL_SUCCESS};
    CLATTN_ARG(&a, hist);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, tot);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, k->sort_scan, 1, &gd, false, NULL));
    a = (clattn__args){k->sort_scatter, 0, CL_SUCCESS};
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
    CLATTN_FORWARD(clattn__seq_kernel_local(s, k->sort_scatter, 1, &gb, &lb, last, event));
cleanup:
    return status;
}

clattn_status clattn__sort_pairs_seq(clattn__seq *s, const clattn__sort_kernels *k,
                                     const clattn__sort_scratch *ws, cl_mem keys_in,
                                     cl_mem vals_in, cl_mem keys_out, cl_mem vals_out,
                                     size_t nseg, size_t len, unsigned key_bits, bool last,
                                     cl_event *event)
{
    clattn_status status = CLATTN_SUCCESS;
    unsigned passes = (key_bits + k->launch.bits - 1) / k->launch.bits;
    cl_mem ki = keys_in, vi = vals_in;
    for (unsigned p = 0; p < passes; p++) {
        /* Ping-pong so that the last pass lands in the outputs. */
        bool to_out = ((passes - 1 - p) % 2) == 0;
        cl_mem ko = to_out ? keys_out : ws->buf[CLATTN__SORT_WS_T3];
        cl_mem vo = to_out ? vals_out : ws->buf[CLATTN__SORT_WS_T4];
        status = sort_pass(s, k, ws, ki, vi, p > 0 || vals_in != NULL, ko, vo, nseg, len,
                           p * k->launch.bits, key_bits, last && p + 1 == passes, event);
        if (status != CLATTN_SUCCESS)
            return status;
        ki = ko;
        vi = vo;
    }
    return status;
}

/* ---- segmented top-k ---- */

clattn_status clattn__topk_seq(clattn__seq *s, const clattn__sort_kernels *k,
                               const clattn__sort_scratch *ws, cl_mem scores, size_t nseg,
                               size_t len, size_t kk, clattn__topk_order order, cl_mem idx,
                               cl_mem out_scores, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    const clattn__blocks_launch *L = &k->launch;
    cl_mem hist = ws->buf[CLATTN__SORT_WS_HIST], state = ws->buf[CLATTN__SORT_WS_STATE];
    cl_mem cnt = ws->buf[CLATTN__SORT_WS_CNT], sel = ws->buf[CLATTN__SORT_WS_T0];
    cl_mem selk = ws->buf[CLATTN__SORT_WS_T1], sortk = ws->buf[CLATTN__SORT_WS_T2];
    cl_uint ulen = (cl_uint)len, block = (cl_uint)clattn__sort_block(L, nseg, len);
    cl_uint uk = (cl_uint)kk, nblk = (cl_uint)clattn__div_up(len, block);
    size_t gb = nseg * nblk, gs = nseg, lb = clattn__local_for(gb, L->local_size);
    bool by_score = order == CLATTN__TOPK_BY_SCORE;
    size_t nk = nseg * kk;
    /* Radix select from the most significant digit down. */
    for (int p = (int)(32 / L->bits) - 1; p >= 0; p--) {
        cl_uint shift = (cl_uint)p * L->bits;
        cl_int first = p == (int)(32 / L->bits) - 1;
        clattn__args a = {k->topk_hist, 0, CL_SUCCESS};
        CLATTN_ARG(&a, scores);
        CLATTN_ARG(&a, ulen);
        CLATTN_ARG(&a, block);
        CLATTN_ARG(&a, nblk);
        CLATTN_ARG(&a, shift);
        CLATTN_ARG(&a, state);
        CLATTN_ARG(&a, hist);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_kernel_local(s, k->topk_hist, 1, &gb, &lb, false, NULL));
        a = (clattn__args){k->topk_choose, 0, CL_SUCCESS};
        CLATTN_ARG(&a, hist);
        CLATTN_ARG(&a, nblk);
        CLATTN_ARG(&a, shift);
        CLATTN_ARG(&a, uk);
        CLATTN_ARG(&a, first);
        CLATTN_ARG(&a, state);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_kernel(s, k->topk_choose, 1, &gs, false, NULL));
    }
    clattn__args a = {k->topk_count, 0, CL_SUCCESS};
    CLATTN_ARG(&a, scores);
    CLATTN_ARG(&a, ulen);
    CLATTN_ARG(&a, block);
    CLATTN_ARG(&a, nblk);
    CLATTN_ARG(&a, state);
    CLATTN_ARG(&a, cnt);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, k->topk_count, 1, &gb, false, NULL));
    /* BY_SCORE: collect into scratch (indices in sel, scores in selk), key the chosen scores
     * into sortk and sort them stably (the scratch is in index order, so equal scores stay
     * lowest index first); the sorted keys land in selk, no longer needed as scores by then. */
    cl_mem cidx = by_score ? sel : idx;
    cl_int has_scores = by_score || out_scores != NULL;
    cl_mem sc_buf = by_score ? selk : out_scores;
    cl_mem sc_arg = has_scores ? sc_buf : cidx; /* any valid buffer when unused */
    a = (clattn__args){k->topk_collect, 0, CL_SUCCESS};
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
    CLATTN_FORWARD(
        clattn__seq_kernel(s, k->topk_collect, 1, &gb, last && !by_score, event));
    if (by_score) {
        a = (clattn__args){k->topk_keys, 0, CL_SUCCESS};
        CLATTN_ARG(&a, sc_buf);
        CLATTN_ARG(&a, sortk);
        CLATTN_CL(a.err);
        CLATTN_FORWARD(clattn__seq_kernel(s, k->topk_keys, 1, &nk, false, NULL));
        CLATTN_FORWARD(clattn__sort_pairs_seq(s, k, ws, sortk, sel, selk, idx, nseg, kk, 32,
                                              last && !out_scores, event));
        if (out_scores) {
            a = (clattn__args){k->topk_fetch, 0, CL_SUCCESS};
            CLATTN_ARG(&a, scores);
            CLATTN_ARG(&a, ulen);
            CLATTN_ARG(&a, uk);
            CLATTN_ARG(&a, idx);
            CLATTN_ARG(&a, out_scores);
            CLATTN_CL(a.err);
            CLATTN_FORWARD(clattn__seq_kernel(s, k->topk_fetch, 1, &nk, last, event));
        }
    }
cleanup:
    return status;
}

/* ---- rows ---- */

static clattn_status rows_kernel(clattn__seq *s, cl_kernel kern, cl_mem src, cl_uint lim,
                                 cl_uint d, cl_mem idx, cl_mem dst, size_t n, bool last,
                                 cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__args a = {kern, 0, CL_SUCCESS};
    CLATTN_ARG(&a, src);
    CLATTN_ARG(&a, lim);
    CLATTN_ARG(&a, d);
    CLATTN_ARG(&a, idx);
    CLATTN_ARG(&a, dst);
    CLATTN_CL(a.err);
    size_t gl[2] = {d, n};
    CLATTN_FORWARD(clattn__seq_kernel(s, kern, 2, gl, last, event));
cleanup:
    return status;
}

clattn_status clattn__gather_rows_seq(clattn__seq *s, const clattn__sort_kernels *k, cl_mem src,
                                      size_t nsrc, size_t d, cl_mem idx, size_t n, cl_mem dst,
                                      bool last, cl_event *event)
{
    return rows_kernel(s, k->gather, src, (cl_uint)nsrc, (cl_uint)d, idx, dst, n, last, event);
}

clattn_status clattn__scatter_rows_seq(clattn__seq *s, const clattn__sort_kernels *k, cl_mem src,
                                       size_t n, size_t d, cl_mem idx, size_t ndst, cl_mem dst,
                                       bool last, cl_event *event)
{
    return rows_kernel(s, k->scatter, src, (cl_uint)ndst, (cl_uint)d, idx, dst, n, last, event);
}

clattn_status clattn__scatter_mean_rows_seq(clattn__seq *s, const clattn__sort_kernels *k,
                                            const clattn__sort_scratch *ws, cl_mem src, size_t n,
                                            size_t d, cl_mem dest, size_t ndst, cl_mem dst,
                                            cl_mem counts, bool last, cl_event *event)
{
    clattn_context *ctx = s->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_mem keys = ws->buf[CLATTN__SORT_WS_T0], sorted = ws->buf[CLATTN__SORT_WS_T1];
    cl_mem order = ws->buf[CLATTN__SORT_WS_T2];
    cl_uint undst = (cl_uint)ndst, ud = (cl_uint)d, un = (cl_uint)n;
    clattn__args a = {k->dest_keys, 0, CL_SUCCESS};
    CLATTN_ARG(&a, dest);
    CLATTN_ARG(&a, undst);
    CLATTN_ARG(&a, keys);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, k->dest_keys, 1, &n, false, NULL));
    CLATTN_FORWARD(clattn__sort_pairs_seq(s, k, ws, keys, NULL, sorted, order, 1, n,
                                          bits_for(ndst), false, NULL));
    cl_int has_counts = counts != NULL;
    cl_mem cbuf = counts ? counts : order; /* any valid buffer when unused */
    a = (clattn__args){k->mean, 0, CL_SUCCESS};
    CLATTN_ARG(&a, src);
    CLATTN_ARG(&a, ud);
    CLATTN_ARG(&a, un);
    CLATTN_ARG(&a, sorted);
    CLATTN_ARG(&a, order);
    CLATTN_ARG(&a, dst);
    CLATTN_ARG(&a, cbuf);
    CLATTN_ARG(&a, has_counts);
    CLATTN_CL(a.err);
    CLATTN_FORWARD(clattn__seq_kernel(s, k->mean, 1, &ndst, last, event));
cleanup:
    return status;
}
