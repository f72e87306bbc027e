/* Device building blocks shared by the hashed (LSH) and clustered (routing) attention operators
 * and tested on their own (tests/test_sort.c): stable key-value sort, segmented top-k, row gather,
 * scatter and scatter-mean. Kernels in kernels_cl/sort.cl.
 *
 * Common rules for every function here:
 *  - Buffers are plain cl_mem of uint32 or float32 elements starting at element 0, dense, owned
 *    by the caller; the functions check that each buffer is large enough (BUFFER_TOO_SMALL) and
 *    that outputs are not inputs where that matters (ALIASING), but not partial overlaps of
 *    distinct buffers (sub-buffers): callers are internal.
 *  - Commands go on ctx->queue, the first waits for (num_wait, wait), the last returns *event
 *    (event may be NULL); on an out-of-order queue the commands in between are chained by
 *    events. Nothing blocks. Scratch is allocated per call and released when the commands that
 *    use it have finished (OpenCL keeps it alive).
 *  - Element counts and indices are 32-bit on the device: every size (segments * length, rows,
 *    rows * d) must stay below 2^32 (INVALID_SHAPE otherwise).
 *  - Statuses: NULL_POINTER, INVALID_ARGUMENT, INVALID_SHAPE, BUFFER_TOO_SMALL, ALIASING,
 *    UNSUPPORTED (scratch beyond the device's max allocation), BUILD_FAILED, OpenCL codes. On a
 *    failure before enqueueing nothing is written. */
#ifndef CLATTN_OPS_SORT_H
#define CLATTN_OPS_SORT_H

#include "../core/internal.h"

/* A row index meaning "no row": scatter and scatter-mean drop rows sent there (any value >= the
 * number of destinations does the same). */
#define CLATTN__ROW_NONE 0xffffffffu

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

/* The same sort as part of an operator's plan: its kernels are created once at bake time (on the
 * plan, recorded for clattn_plan_get_info) and its scratch is owned by the plan, so enqueueing
 * makes no kernel, program lookup or buffer. The sizes (nseg segments of len keys, key_bits) are
 * fixed at bake time; the enqueue takes buffers of that size (not re-checked: callers are
 * internal) within the caller's command sequence, the last command returning *event when `last`.
 * Contract otherwise as clattn__sort_pairs. */
typedef struct clattn__sort_baked {
    cl_kernel hist, scan, scatter; /* owned by the plan */
    cl_mem histo, tot, tk, tv;     /* plan scratch; tk, tv only when it takes several passes */
    size_t nseg, len;
    unsigned key_bits;
} clattn__sort_baked;

clattn_status clattn__sort_bake(clattn_plan *plan, size_t nseg, size_t len, unsigned key_bits,
                                const char *chosen_by, clattn__sort_baked *out);
clattn_status clattn__sort_baked_enqueue(clattn__seq *s, const clattn__sort_baked *b,
                                         cl_mem keys_in, cl_mem vals_in, cl_mem keys_out,
                                         cl_mem vals_out, bool last, cl_event *event);

typedef enum clattn__topk_order {
    CLATTN__TOPK_BY_INDEX = 0, /* the k chosen elements in increasing index order */
    CLATTN__TOPK_BY_SCORE = 1  /* largest score first, ties by lower index */
} clattn__topk_order;

/* Segmented top-k: for each of `nseg` segments of `len` float scores (dense, segment s at
 * s * len), the k largest (1 <= k <= len), ties broken by lower index: an element is chosen iff
 * fewer than k elements beat it, where a beats b when score_a > score_b, or they are equal and a
 * has the lower index. -0 equals +0; NaN ranks below every number (then by index).
 * idx [nseg * k] receives indices within the segment; out_scores [nseg * k] (may be NULL) the
 * scores, in the order `order` asks. Deterministic (radix select: four passes of per-block
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

/* Release the non-NULL entries of an array of kernels / buffers (cleanup paths). */
void clattn__release_kernels(cl_kernel *k, int n);
void clattn__release_mems(cl_mem *m, int n);

/* A kernel of kernels_cl/sort.cl (built without options). The caller releases it. */
clattn_status clattn__sort_kernel(clattn_context *ctx, const char *name, cl_kernel *kernel);

#endif
