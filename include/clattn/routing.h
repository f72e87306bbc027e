/* clattn: Routing Transformer attention. Part of the public API: include <clattn.h>, which includes this
 * file (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_ROUTING_H
#define CLATTN_ROUTING_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/routing.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Routing attention (Routing Transformer)                                                        */
/* ---------------------------------------------------------------------------------------------- */

/* Routing Transformer (Roy et al. 2021) attention with balanced routing. Inputs q [B, Hq, N, D],
 * k [B, Hk, N, D], v [B, Hk, N, Dv] with Hq a multiple of Hk (multi-head, grouped-query and
 * multi-query attention: query head h uses key/value head h / (Hq / Hk)) and centroids
 * [1, Hk, C, D] (per key head, shared by every batch and by the query heads of its group),
 * 1 <= C <= N:
 *  - routing: queries and keys are L2-normalised (x / |x|; a zero vector stays zero) and scored
 *    against every centroid of their key head by the dot product (centroids are used as given);
 *    cluster c takes, for every query head, the w queries and, for every key head, the w keys
 *    with the highest scores (equal fp32 scores: lower position first; vectors of one direction
 *    but different lengths may differ in the last bit after normalisation), so every cluster has
 *    exactly w of each (balanced) and a position may be routed to several clusters or to none.
 *    The keys of a key head are routed once and serve all the query heads of its group;
 *  - within each cluster: exact softmax attention of the query head's w queries over the w keys
 *    its key head routed to the same cluster, logits scale * q_i . k_j on the un-normalised
 *    vectors (scale 1/sqrt(D) by default); causal: key j is visible to query i only when j <= i
 *    in original positions;
 *  - back to original positions: query i's output is the mean, over the clusters that routed i
 *    AND in which i saw at least one key, of its outputs there; a position with no such cluster
 *    (routed nowhere, or only where causality hid every key) gets zeros.
 * With Hq = Hk this is the per-head Routing Transformer; with Hq > Hk it equals running it with
 * every key/value head and its centroids repeated for the query heads of its group.
 * Window w: CLATTN_ROUTING_WINDOW_AUTO (the default) means ceil(N / C); otherwise 1..N.
 * With C = 1 and w = N this is exact attention (causal or not).
 * Cost: scoring O(B (Hq + Hk) N C D), selection O(B (Hq + Hk) C N) (a radix select per cluster),
 * attention O(B Hq C w^2 (D + Dv)) = O(N^1.5) per head for C = sqrt(N). The plan's device scratch:
 * the scores, 4 B (Hq + Hk) C N bytes (also holding the update's normalised rows,
 * 4 B (Hq + Hk) N D), the selection's per-block histograms (at most a quarter of the scores
 * again), and ~ 4 B C w (Hk (D + Dv + 1) + Hq (Dv + 4)) + 4 B Hq N Dv bytes for the packed keys,
 * values and per-cluster outputs (clattn_plan_get_info reports the total). Deterministic: the
 * same inputs give the same bits (no atomics). */

#define CLATTN_ROUTING_WINDOW_AUTO ((size_t)-1)

typedef struct clattn_routing_desc {
    size_t struct_size;
    size_t clusters; /* C: 0 = take it from the centroids' shape; the host call needs it (> 0).
                      * When both are given they must agree. Default 0. */
    size_t window;   /* w, see above. Default CLATTN_ROUTING_WINDOW_AUTO; 0 is invalid. */
    int causal;      /* 0 or 1; default 0 */
    float scale;     /* logits scale; 0 (the default) means 1/sqrt(D). Finite. */
    float decay;     /* clattn_routing_update_centroids: new = decay * old + (1 - decay) * mean
                      * direction. In [0, 1], default 0.999. */
    uint64_t seed;   /* k-means++ seed of the host call without centroids. Default 0. */
    /* Element types (clattn_dtype, default CLATTN_F32) of q, k, v and out, each independently
     * f32, f16 or bf16: the kernels read q, k and v in their types (routing, packing, attention)
     * and write out in its type; arithmetic is float32. The centroids stay float32 in every call
     * (they are state the library updates: clattn_routing_update_centroids writes them and
     * clattn_routing_centroids_draw fills them), as does the plan's scratch (scores, packed keys
     * and values). Routing sees q and k as stored, so half inputs may be routed differently from
     * their float32 originals. clattn_routing_enqueue takes the types from its tensors instead;
     * the host call is float32 only. */
    clattn_dtype q_dtype, k_dtype, v_dtype, out_dtype;
} clattn_routing_desc;

CLATTN_API void clattn_routing_desc_init(clattn_routing_desc *desc);

/* Bakes a routing plan for fixed shapes: q_shape {B, Hq, N, D}, k_shape {B, Hk, N, D}, v_shape
 * {B, Hk, N, Dv}, centroids_shape {1, Hk, C, D}; 1 <= D, Dv <= 256. Chooses the launch
 * (scheduler), creates every kernel once (routing.cl and the sort/top-k/scatter-mean blocks it
 * uses) and allocates the scratch of the attention, the centroid update and the k-means++
 * initialisation (shared: the plan's commands are ordered on an in-order queue; on an
 * out-of-order queue make each of its calls wait for the previous one's event).
 * desc NULL means the defaults. Status: NULL_POINTER, INVALID_ARGUMENT (struct_size, window 0 or
 * > N, causal not 0/1, scale or decay out of range, C > N, desc->clusters != C, a dtype that is
 * not a clattn_dtype),
 * INVALID_SHAPE (a zero entry, D or Dv > 256, sizes beyond 2^31), SHAPE_MISMATCH (k, v or
 * centroids not matching q, Hq not a multiple of Hk), UNSUPPORTED (scratch beyond the device's
 * max allocation), BUILD_FAILED, OpenCL codes. */
CLATTN_API clattn_status clattn_routing_plan_create(clattn_context *ctx,
                                                    const clattn_routing_desc *desc,
                                                    const size_t q_shape[4],
                                                    const size_t k_shape[4],
                                                    const size_t v_shape[4],
                                                    const size_t centroids_shape[4],
                                                    clattn_plan **plan);

/* Enqueues routing attention on the plan's context queue: no program or kernel is built or
 * created, no buffer allocated. Tensors (any strides) of the plan's shapes: q, k, v, centroids,
 * out [B, Hq, N, Dv]. Every element of out is written. The first command waits for (num_wait,
 * wait); `event` (may be NULL) receives an event for the last.
 * Validation (before anything is enqueued; nothing is touched on failure): NULL_POINTER (plan, a
 * tensor, a view's buffer, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (a plan of another
 * operator), SHAPE_MISMATCH (a view not of the plan's shape), DTYPE_MISMATCH (q, k, v or out not
 * of the plan's types, centroids not float32), BUFFER_TOO_SMALL, ALIASING (out overlapping an
 * input or mapping two elements to one address); then OpenCL codes. */
CLATTN_API clattn_status clattn_routing_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                     const clattn_tensor *k,
                                                     const clattn_tensor *v,
                                                     const clattn_tensor *centroids,
                                                     const clattn_tensor *out, cl_uint num_wait,
                                                     const cl_event *wait, cl_event *event);

/* One-shot: bakes a plan for the tensors' shapes and element types (q, k, v, out: overriding the
 * desc's), enqueues it and releases it. Status as for
 * clattn_routing_plan_create and clattn_routing_plan_enqueue (ctx NULL: NULL_POINTER). */
CLATTN_API clattn_status clattn_routing_enqueue(clattn_context *ctx,
                                                const clattn_routing_desc *desc,
                                                const clattn_tensor *q, const clattn_tensor *k,
                                                const clattn_tensor *v,
                                                const clattn_tensor *centroids,
                                                const clattn_tensor *out, cl_uint num_wait,
                                                const cl_event *wait, cl_event *event);

/* Draws the plan's initial centroids by k-means++ from the data (a seeded draw: "_init" only ever
 * fills defaults in this library), on the host, blocking (reads q
 * and k back after everything enqueued before; writes the centroids through the plan's store
 * kernel). Arguments in the order of every draw of the library: the sizes (here the plan and its
 * data q, k), then the seed, then the output.
 * For key head h, with G = Hq / Hk, the data are the M = (G + 1) B N L2-normalised vectors
 * x_m = q[b, h G + g, n] / |q| for m = (g B + b) N + n (g < G), then k[b, h, n] / |k| for
 * m = G B N + b N + n (a zero vector stays zero), in double precision. A splitmix64 stream seeded
 * with seed + (h + 1) * 0x9E3779B97F4A7C15 gives uniforms u = (x >> 11) / 2^53. The first
 * centroid is x_m with m = floor(u M); each next one is drawn with probability proportional to
 * the squared distance d_m = min over chosen centroids |x_m - c|^2: with total T = sum_m d_m
 * (summed in order of m), the first m whose running sum exceeds u T (the last m with d_m > 0 if
 * rounding runs past the end; if T = 0, m = floor(u M)). Centroids are the chosen x_m rounded to
 * float (unit length unless the vector was zero). The result does not depend on the device.
 * Tensors of the plan's shapes: q, k (any strides, the plan's q and k types; the data are their
 * stored values), centroids [1, Hk, C, D] float32 written (must not overlap q or k).
 * Status: as clattn_routing_plan_enqueue's validation, OUT_OF_HOST_MEMORY,
 * OpenCL codes. */
CLATTN_API clattn_status clattn_routing_centroids_draw(clattn_plan *plan, const clattn_tensor *q,
                                                       const clattn_tensor *k, uint64_t seed,
                                                       const clattn_tensor *centroids);

/* Enqueues one exponential-moving-average step of the centroids (mini-batch k-means, for training
 * loops) through the plan's kernels and scratch, as lucidrains' routing_transformer does: every
 * normalised query and key of key head h's group (the data of clattn_routing_centroids_draw,
 * over all batches) is assigned to its nearest centroid of head h (largest dot product, lower
 * cluster on ties); for each cluster c with at least one vector whose sum s is non-zero,
 *   centroid[h, c] = decay * centroid[h, c] + (1 - decay) * s / |s|     (decay: the plan's desc)
 * and other clusters are left unchanged. Tensors of the plan's shapes (q and k in the plan's
 * types; centroids float32, read and written; they must not overlap q or k). Deterministic
 * (sums in a fixed order). Wait list,
 * event and status as for clattn_routing_plan_enqueue. */
CLATTN_API clattn_status clattn_routing_update_centroids(clattn_plan *plan,
                                                         const clattn_tensor *q,
                                                         const clattn_tensor *k,
                                                         const clattn_tensor *centroids,
                                                         cl_uint num_wait, const cl_event *wait,
                                                         cl_event *event);

/* Blocking host-memory convenience on a plan: contiguous float32 q (q_shape), k (k_shape),
 * v (v_shape), out [B, Hq, N, Dv]. centroids: [Hk][C][D] with C = desc->clusters (required,
 * > 0), or NULL to initialise them by k-means++ from q and k with desc->seed (as
 * clattn_routing_centroids_draw). out is only written on success. Status as for
 * clattn_routing_plan_create (INVALID_ARGUMENT also for desc->clusters 0), SIZE_OVERFLOW,
 * OUT_OF_HOST_MEMORY. */
CLATTN_API clattn_status clattn_routing_host(clattn_context *ctx, const clattn_routing_desc *desc,
                                             const size_t q_shape[4], const size_t k_shape[4],
                                             const size_t v_shape[4], const float *q,
                                             const float *k, const float *v,
                                             const float *centroids, float *out);

#endif /* CLATTN_ROUTING_H */
