/* clattn: Reformer LSH attention. Part of the public API: include <clattn.h>, which includes this
 * file (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_LSH_H
#define CLATTN_LSH_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/lsh.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* LSH attention (Reformer)                                                                       */
/* ---------------------------------------------------------------------------------------------- */

/* Reformer (Kitaev et al. 2020) locality-sensitive-hashing attention with shared queries and keys.
 * Inputs q [B, H, N, D] and v [B, H, N, Dv]; the keys are the L2-normalised queries
 * k_j = q_j / max(|q_j|, 1e-12). For each of n_hashes rounds r:
 *  - hashing: bucket_r(i) = argmax over the concatenation [q_i R_r, -q_i R_r] (first index on
 *    ties), with rotations R [n_hashes, D, n_buckets / 2] shared by every batch and head;
 *  - per (batch, head, round) the positions are sorted stably by (bucket, position) on the
 *    device and the sorted sequence is cut into chunks of chunk_size (the last may be shorter);
 *  - a query sees the keys of its own chunk and of the previous one (chunk 0 looks back to the
 *    last; with a single chunk only that one, never twice), restricted to its own bucket unless
 *    attend_across_buckets, and to original positions j <= i when causal;
 *  - logits q_i . k_j / sqrt(D), except its own position, which gets -1e5 (a query attends to
 *    itself only when nothing else is visible; it always sees itself, so no row is empty).
 * Rounds are combined by their log-sum-exps: o_i = sum_r exp(lse_i^r - logsumexp_r lse_i^r) o_i^r,
 * which is one softmax over the concatenation of every round's visible keys. Keys seen in several
 * rounds are NOT de-duplicated (they count once per round), as in the paper's plain form.
 * The result is in the original order; lse_i = logsumexp_r lse_i^r. Any N >= 1 (N need not be a
 * multiple of chunk_size or n_buckets); a chunk_size >= N gives a single chunk.
 * Cost: hashing O(N D n_buckets n_hashes), sorting O(N + n_buckets) per round (a counting sort;
 * above 1024 buckets, or where a device's loop cap requires it, the library's radix sort),
 * attention O(N chunk_size (D + Dv) n_hashes): with fixed n_buckets and chunk_size, linear in N.
 *
 * Plans (the shape of every operator, see "Plans" above): clattn_lsh_plan_create bakes the shapes,
 * the desc and the rotations; each clattn_lsh_plan_enqueue then only sets arguments and launches
 * (no program lookup, no kernel creation, no upload). The plan owns its device scratch,
 * ~ 4 B H N (n_hashes (Dp + Dvp + 5) + Dp + Dvp) bytes, Dp and Dvp the head dims rounded up to 16
 * (the sorted keys and the round outputs are kept per round: at N = 64k, D = 64, 4 hashes, about
 * 170 MB), plus the rotations. clattn_plan_get_info reports algorithm 0 with algorithm_name
 * "counting_sort" or "radix_sort" (the sort the scheduler chose), the launch
 * ("rows=.. wg=.. hash_wg=.. row_wg=.. sort=.. tile=.. bits=..") and every kernel.
 *
 * Rotations: a caller with trained rotations gives them in the desc (desc.rotations, host float32
 * row-major [n_hashes][D][n_buckets / 2], with desc.rotations_shape = {n_hashes, D,
 * n_buckets / 2}); they are read and uploaded once, when the plan is created (the plan keeps its
 * own device copy: the array may be freed or changed afterwards). Without them the plan draws
 * them from desc.seed with clattn_lsh_rotations. The one-shot and host calls take them the same
 * way (through the desc). */

typedef struct clattn_lsh_desc {
    size_t struct_size;
    size_t n_hashes;   /* rounds, 1..CLATTN_LSH_MAX_HASHES (default 4) */
    size_t n_buckets;  /* even, 2..CLATTN_LSH_MAX_BUCKETS (default 64) */
    size_t chunk_size; /* >= 1 (default 64) */
    int causal;        /* key j visible only when j <= i (original positions); 0 or 1 */
    /* Lift the same-bucket restriction inside the chunk window (reformer-pytorch's
     * attend_across_buckets); 0 or 1. */
    int attend_across_buckets;
    uint64_t seed; /* draws the rotations when none are given (default 0) */
    /* The caller's rotations (see above), or NULL (the default) to draw them from `seed`. Read
     * only by clattn_lsh_plan_create (and the one-shot calls built on it). Finite values. */
    const float *rotations;
    size_t rotations_shape[3];
    /* Element types (clattn_dtype, default CLATTN_F32) of q (the shared queries and keys), v and
     * out; each independently f32, f16 or bf16. The kernels read q and v in their types and write
     * out in its type; arithmetic, the plan's scratch (normalised keys, packed values, per-round
     * outputs), lse (float32) and buckets (int32) are unaffected. Hashing sees the q values as
     * stored, so a half q may fall in other buckets than its float32 original would. The one-shot
     * clattn_lsh_enqueue takes them from its tensors instead; the host call is float32 only. */
    clattn_dtype q_dtype, v_dtype, out_dtype;
} clattn_lsh_desc;

#define CLATTN_LSH_MAX_HASHES 64
#define CLATTN_LSH_MAX_BUCKETS 65536

/* Fills the defaults (above); nothing else. NULL-safe. */
CLATTN_API void clattn_lsh_desc_init(clattn_lsh_desc *desc);

/* Draws the rotations a seed gives, host only, into rot: row-major [n_hashes][d][n_buckets / 2]
 * (n_hashes * d * n_buckets / 2 floats). Arguments in the order of every draw of the library
 * (clattn_linear_favor_draw(m, d, seed, scaling, w)): the sizes, then the seed, then the output.
 * Element k is a standard normal from the Box-Muller transform of a splitmix64 stream seeded with
 * `seed`: values are produced in pairs, pair p from the uniforms u1 = (x_{2p} >> 11 + 1) / 2^53
 * and u2 = (x_{2p+1} >> 11) / 2^53 (x_t the splitmix64 outputs) as sqrt(-2 ln u1) cos(2 pi u2)
 * for element 2p and sqrt(-2 ln u1) sin(2 pi u2) for element 2p + 1, computed in double and
 * rounded to float. A plan without desc.rotations uses exactly these values.
 * Status: NULL_POINTER (rot), INVALID_ARGUMENT (n_hashes or n_buckets outside the desc's ranges,
 * or n_buckets odd), INVALID_SHAPE (d outside 1..256). */
CLATTN_API clattn_status clattn_lsh_rotations(size_t n_hashes, size_t d, size_t n_buckets,
                                              uint64_t seed, float *rot);

/* Bakes a plan for LSH attention on q_shape = {B, H, N, D} and v_shape = {B, H, N, Dv},
 * 1 <= D, Dv <= 256: reads the desc (NULL: the defaults), validates, chooses the launch (rows per
 * work-item, work-group sizes, the sort: the tuning database's entry for the shape class when
 * there is one (clattn_tune), else the scheduler's), uploads the rotations (given or drawn),
 * creates its kernels and allocates its scratch.
 * Status: NULL_POINTER (ctx, shapes, plan), INVALID_ARGUMENT (struct_size; n_hashes, n_buckets
 * (odd, < 2, too large) or chunk_size 0; a dtype that is not a clattn_dtype; causal or
 * attend_across_buckets not 0 or 1; a non-finite
 * rotation), INVALID_SHAPE (a zero entry, D or Dv > 256, sizes beyond 2^31), SHAPE_MISMATCH (q and
 * v differ in batch, heads or length; rotations_shape not {n_hashes, D, n_buckets / 2}),
 * UNSUPPORTED (scratch beyond the device's max allocation; on a device that ends long loops,
 * Mesa's llvmpipe, a problem whose hashing or attention loops would pass its limit -- thousands
 * of buckets with many hashes or a large D, or chunks of thousands of positions -- refused rather
 * than answered wrongly), BUILD_FAILED, OpenCL codes. */
CLATTN_API clattn_status clattn_lsh_plan_create(clattn_context *ctx, const clattn_lsh_desc *desc,
                                                const size_t q_shape[4], const size_t v_shape[4],
                                                clattn_plan **plan);

/* Enqueues LSH attention with a plan on the context's queue.
 * Tensors (any strides): q [B, H, N, D], v [B, H, N, Dv], out [B, H, N, Dv] with the plan's
 * shapes; lse: NULL or [B, H, N, 1] (natural log); buckets: NULL or an int32 view
 * [B, H, n_hashes, N] receiving every round's bucket of every position (for inspection and
 * tests). Every element of out (and lse, buckets) is written.
 * Validation (before anything is enqueued; nothing is touched on failure):
 *   NULL_POINTER (plan, q, v, out, a view's buffer, or num_wait > 0 with wait NULL),
 *   INVALID_ARGUMENT (not an LSH plan), SHAPE_MISMATCH (a view not of the plan's shape),
 *   DTYPE_MISMATCH (q, v or out not of the plan's q_dtype, v_dtype, out_dtype; lse not float32),
 *   BUFFER_TOO_SMALL, ALIASING (an output overlapping an input or another output, or mapping two
 *   elements to one address), then OpenCL codes.
 * The first command waits for (num_wait, wait); `event` (may be NULL) receives an event for the
 * last command. The enqueues of one plan share its scratch (see "Plans" above). */
CLATTN_API clattn_status clattn_lsh_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                 const clattn_tensor *v, const clattn_tensor *out,
                                                 const clattn_tensor *lse,
                                                 const clattn_tensor *buckets, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: plan (shapes from q and v, element types from q, v and out, overriding the desc's)
 * + enqueue + release; views and status as above.
 * Engines calling many times should keep a plan (this one re-draws or re-uploads the rotations
 * and allocates the scratch on every call). */
CLATTN_API clattn_status clattn_lsh_enqueue(clattn_context *ctx, const clattn_lsh_desc *desc,
                                            const clattn_tensor *q, const clattn_tensor *v,
                                            const clattn_tensor *out, const clattn_tensor *lse,
                                            const clattn_tensor *buckets, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience on a plan: contiguous float32 q [B, H, N, D] (q_shape),
 * v [B, H, N, Dv] (v_shape), out [B, H, N, Dv], lse NULL or [B, H, N]; rotations through the desc
 * as for plans. Outputs are only written on success (read back after the attention's event, on
 * in-order and out-of-order queues). Status as for clattn_lsh_plan_create, plus NULL_POINTER
 * (q, v, out), SIZE_OVERFLOW and OpenCL codes. */
CLATTN_API clattn_status clattn_lsh_host(clattn_context *ctx, const clattn_lsh_desc *desc,
                                         const size_t q_shape[4], const size_t v_shape[4],
                                         const float *q, const float *v, float *out, float *lse);

#endif /* CLATTN_LSH_H */
