/* Device building blocks shared by the hashed (LSH) and clustered (routing) attention operators
 * and tested on their own (tests/test_sort.c): stable key-value sort, segmented top-k, row gather,
 * scatter and scatter-mean. Kernels in kernels_cl/sort.cl; launch sizes from
 * clattn__schedule_blocks (lib/sched/sched_blocks.c).
 *
 * Two ways in:
 *  - inside an operator's plan (what operators use): at bake time clattn__sort_kernels_create
 *    makes the kernels the plan needs (through clattn__plan_kernel, so the plan owns and reports
 *    them), the clattn__sort_scratch_* functions add up the scratch each use needs and
 *    clattn__sort_scratch_alloc makes it plan-owned; at enqueue time the *_seq functions add
 *    their commands to the operator's command sequence (lib/core/seq.c) and make no program,
 *    kernel or buffer. Their arguments are the operator's own, already validated: they check
 *    nothing.
 *  - one-shot calls on a context (lib/blocks/sort_call.c: clattn__sort_pairs, clattn__topk, ...),
 *    for tests and standalone use: they validate everything, make a short-lived plan with the
 *    kernels and scratch of that one call, and enqueue it.
 *
 * Common rules for every function here:
 *  - Buffers are plain cl_mem of uint32 or float32 elements starting at element 0, dense, owned
 *    by the caller; the one-shot calls check that each buffer is large enough (BUFFER_TOO_SMALL)
 *    and that outputs are not inputs where that matters (ALIASING), but not partial overlaps of
 *    distinct buffers (sub-buffers): callers are internal.
 *  - The one-shot calls put their commands on ctx->queue, the first waits for (num_wait, wait),
 *    the last returns *event (event may be NULL); on an out-of-order queue the commands in
 *    between are chained by events. Nothing blocks. Their scratch is released when the commands
 *    that use it have finished (OpenCL keeps it alive).
 *  - Element counts and indices are 32-bit on the device: every size (segments * length, rows,
 *    rows * d) must stay below 2^32 (INVALID_SHAPE otherwise).
 *  - Statuses: NULL_POINTER, INVALID_ARGUMENT, INVALID_SHAPE, BUFFER_TOO_SMALL, ALIASING,
 *    UNSUPPORTED (scratch beyond the device's max allocation), BUILD_FAILED, OpenCL codes. On a
 *    failure before enqueueing nothing is written. */
#ifndef CLATTN_BLOCKS_SORT_H
#define CLATTN_BLOCKS_SORT_H

#include "../core/internal.h"
#include "../sched/sched.h"

/* A row index meaning "no row": scatter and scatter-mean drop rows sent there (any value >= the
 * number of destinations does the same). */
#define CLATTN__ROW_NONE 0xffffffffu

typedef enum clattn__topk_order {
    CLATTN__TOPK_BY_INDEX = 0, /* the k chosen elements in increasing index order */
    CLATTN__TOPK_BY_SCORE = 1  /* largest score first, ties by lower index */
} clattn__topk_order;

/* ---- inside a plan ---- */

/* The blocks a plan uses (a bit set for clattn__sort_kernels_create). */
#define CLATTN__SORT_USE_SORT 1u
#define CLATTN__SORT_USE_TOPK 2u
#define CLATTN__SORT_USE_TOPK_BY_SCORE 4u /* implies TOPK and SORT */
#define CLATTN__SORT_USE_GATHER 8u
#define CLATTN__SORT_USE_SCATTER 16u
#define CLATTN__SORT_USE_SCATTER_MEAN 32u /* implies SORT */

/* The block kernels of one plan (NULL where not used) and their launch. */
typedef struct clattn__sort_kernels {
    clattn__blocks_launch launch;
    cl_kernel sort_hist, sort_scan, sort_scatter;
    cl_kernel topk_hist, topk_choose, topk_count, topk_collect, topk_keys, topk_fetch;
    cl_kernel gather, scatter, dest_keys, mean;
} clattn__sort_kernels;

/* Chooses the launch (clattn__schedule_blocks on the plan's device) and creates the kernels of
 * `uses` once, owned by the plan. */
clattn_status clattn__sort_kernels_create(clattn_plan *plan, unsigned uses,
                                          clattn__sort_kernels *k);

/* Plan-owned scratch of the blocks: a slot per purpose, sized for the largest of the uses added
 * (the sequence orders the uses, so they share it). Zero-fill, add each use with the calls below,
 * then allocate. */
enum {
    CLATTN__SORT_WS_HIST, /* per-block digit histograms */
    CLATTN__SORT_WS_TOT,  /* per-digit totals of the sort */
    CLATTN__SORT_WS_STATE, /* top-k: the digits chosen so far per segment */
    CLATTN__SORT_WS_CNT,  /* top-k: per-block counts below / equal to the threshold */
    CLATTN__SORT_WS_T0,   /* top-k by score: chosen indices; scatter-mean: keys */
    CLATTN__SORT_WS_T1,   /* top-k by score: chosen scores; scatter-mean: sorted keys */
    CLATTN__SORT_WS_T2,   /* top-k by score: sort keys; scatter-mean: order */
    CLATTN__SORT_WS_T3,   /* sort: ping-pong keys */
    CLATTN__SORT_WS_T4,   /* sort: ping-pong values */
    CLATTN__SORT_WS_COUNT
};
typedef struct clattn__sort_scratch {
    size_t need[CLATTN__SORT_WS_COUNT]; /* bytes */
    cl_mem buf[CLATTN__SORT_WS_COUNT];  /* owned by the plan */
} clattn__sort_scratch;

void clattn__sort_scratch_sort(clattn__sort_scratch *ws, const clattn__blocks_launch *L,
                               size_t nseg, size_t len, unsigned key_bits);
void clattn__sort_scratch_topk(clattn__sort_scratch *ws, const clattn__blocks_launch *L,
                               size_t nseg, size_t len, size_t k, clattn__topk_order order);
void clattn__sort_scratch_scatter_mean(clattn__sort_scratch *ws, const clattn__blocks_launch *L,
                                       size_t n, size_t ndst);
clattn_status clattn__sort_scratch_alloc(clattn_plan *plan, clattn__sort_scratch *ws);

/* The blocks as commands of a sequence (semantics as the one-shot calls below; `last` and
 * `event` as for clattn__seq_kernel). */
clattn_status clattn__sort_pairs_seq(clattn__seq *s, const clattn__sort_kernels *k,
                                     const clattn__sort_scratch *ws, cl_mem keys_in,
                                     cl_mem vals_in, cl_mem keys_out, cl_mem vals_out,
                                     size_t nseg, size_t len, unsigned key_bits, bool last,
                                     cl_event *event);
clattn_status clattn__topk_seq(clattn__seq *s, const clattn__sort_kernels *k,
                               const clattn__sort_scratch *ws, cl_mem scores, size_t nseg,
                               size_t len, size_t kk, clattn__topk_order order, cl_mem idx,
                               cl_mem out_scores, bool last, cl_event *event);
clattn_status clattn__gather_rows_seq(clattn__seq *s, const clattn__sort_kernels *k, cl_mem src,
                                      size_t nsrc, size_t d, cl_mem idx, size_t n, cl_mem dst,
                                      bool last, cl_event *event);
clattn_status clattn__scatter_rows_seq(clattn__seq *s, const clattn__sort_kernels *k, cl_mem src,
                                       size_t n, size_t d, cl_mem idx, size_t ndst, cl_mem dst,
                                       bool last, cl_event *event);
clattn_status clattn__scatter_mean_rows_seq(clattn__seq *s, const clattn__sort_kernels *k,
                                            const clattn__sort_scratch *ws, cl_mem src, size_t n,
                                            size_t d, cl_mem dest, size_t ndst, cl_mem dst,
                                            cl_mem counts, bool last, cl_event *event);

/* ---- one-shot calls on a context (lib/blocks/sort_call.c) ---- */

/* Stable sort of (key, value) pairs, independently in each of `nseg` segments of `len` pairs
 * (segment s is elements [s * len, (s + 1) * len) of every buffer). Only the low `key_bits` bits
 * of each key are compared (1..32; fewer bits = fewer passes: 8 bits per pass); pairs with equal
 * keys keep their input order. keys_out/vals_out receive the sorted pairs; keys_in and vals_in are
 * not modified. vals_in NULL: each value is the pair's index within its segment, so vals_out is the
 * stable argsort. keys_out and vals_out must be distinct from the inputs and from each other.
 * Any len >= 1 (no padding needed). LSD radix sort: per pass, per-block digit histograms, a scan
 * over blocks and an in-order scatter, so the cost is O(nseg * len * passes). */
clattn_status clattn__sort_pairs(clattn_context *ctx, cl_mem keys_in, cl_mem vals_in,
                                 cl_mem keys_out, cl_mem vals_out, size_t nseg, size_t len,
                                 unsigned key_bits, cl_uint num_wait, const cl_event *wait,
                                 cl_event *event);

/* Segmented top-k: for each of `nseg` segments of `len` float scores (dense, segment s at
 * s * len), the k largest (1 <= k <= len), ties broken by lower index: an element is chosen iff
 * fewer than k elements beat it, where a beats b when score_a > score_b, or they are equal and a
 * has the lower index. -0 equals +0; NaN ranks below every number (then by index).
 * idx [nseg * k] receives indices within the segment; out_scores [nseg * k] (may be NULL) the
 * scores, in the order `order` asks. Deterministic (radix select: per-digit passes of per-block
 * histograms, then an in-order collection; BY_SCORE adds a stable sort of the k chosen). */
clattn_status clattn__topk(clattn_context *ctx, cl_mem scores, size_t nseg, size_t len, size_t k,
                           clattn__topk_order order, cl_mem idx, cl_mem out_scores,
                           cl_uint num_wait, const cl_event *wait, cl_event *event);

/* dst[i][:] = src[idx[i]][:] for i < n, rows of d floats (dense); rows whose idx[i] >= nsrc get
 * zeros. dst must not be src. */
clattn_status clattn__gather_rows(clattn_context *ctx, cl_mem src, size_t nsrc, size_t d,
                                  cl_mem idx, size_t n, cl_mem dst, cl_uint num_wait,
                                  const cl_event *wait, cl_event *event);

/* dst[idx[i]][:] = src[i][:] for i < n with idx[i] < ndst; other rows are dropped and dst rows
 * that no row targets are left as they were. When two rows target one destination, which one
 * lands is unspecified: use scatter-mean for that. dst must not be src. */
clattn_status clattn__scatter_rows(clattn_context *ctx, cl_mem src, size_t n, size_t d,
                                   cl_mem idx, size_t ndst, cl_mem dst, cl_uint num_wait,
                                   const cl_event *wait, cl_event *event);

/* dst[r][:] = the mean of the rows src[i][:] with dest[i] == r (i < n), for every r < ndst;
 * rows with dest[i] >= ndst (e.g. CLATTN__ROW_NONE) are dropped. A destination that receives no
 * row gets 0.0 in every column (and count 0): every element of dst is written. counts [ndst]
 * (may be NULL) receives how many rows each destination received. Deterministic: each mean sums
 * its rows in increasing source order (a stable sort of the destinations, then one reduction
 * per destination; no atomics). */
clattn_status clattn__scatter_mean_rows(clattn_context *ctx, cl_mem src, size_t n, size_t d,
                                        cl_mem dest, size_t ndst, cl_mem dst, cl_mem counts,
                                        cl_uint num_wait, const cl_event *wait,
                                        cl_event *event);

#endif
