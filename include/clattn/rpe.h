/* clattn: kernelized attention with relative positional encoding. Part of the public API: include <clattn.h>, which includes this
 * file (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_RPE_H
#define CLATTN_RPE_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/rpe.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Kernelized attention with relative positional encoding                                         */
/* ---------------------------------------------------------------------------------------------- */

/* Luo et al. 2021, "Stable, Fast and Accurate: Kernelized Attention with Relative Positional
 * Encoding": linear attention whose weights carry a learned bias per head and relative offset,
 *   w_ij = phi(q_i) . phi(k_j) * exp(b_(j-i)),   o_i = sum_j w_ij v_j / (sum_j w_ij + eps),
 * j over every position (or j <= i when causal). Query heads may share key/value heads (GQA/MQA:
 * Hq a multiple of Hk, query head h reading key head h / (Hq / Hk)); the bias is per query head.
 * Two algorithms give the same result:
 *  - FFT: for every feature m and value column (and the denominator's column of ones) the Toeplitz
 *    product sum_j exp(b_(j-i)) phi(k_j)_m v_j is a circular convolution of length L >= 2N - 1
 *    (the smallest 2,3,5,7-smooth length), computed with clFFT: O(B*H*M*(Dv+1) * L log L) time and
 *    scratch bounded by a fixed budget (the signals go through in groups). A key head's signals
 *    are transformed once and their spectra shared by its query heads;
 *  - DIRECT: the O(N^2 (M + Dv)) sums, one query row per work-item; faster for short sequences.
 * eps is added exactly there, in the formula's own scale (sum_j w_ij + eps with the true weights),
 * for every feature map and both algorithms: the stabilisers below never change what it means.
 * eps = 0 adds nothing, and a row whose denominator is then exactly 0 (e.g. RELU features of an
 * all-negative query) outputs 0.
 * Numerics: the weights are computed as exp(b_r - bmax_h) with bmax_h the largest bias entry head
 * h uses (r <= 0 when causal), on features that may be stabilised too (FAVOR, see the desc); these
 * shifts cancel in the quotient, and eps is added to the shifted sums as eps exp(-(every shift)),
 * computed in the log domain (where it underflows it is negligible). The FFT path's error is
 * absolute, relative to the largest shifted weight times the largest |phi(k) v|: rows whose
 * every weight is far below a head's largest weight (bias spreads beyond ~10 nats within one
 * head) lose accuracy there; use DIRECT for such biases.
 * In the causal form the first ceil(N / 64) rows, which sum too few weights for that absolute
 * error, are computed by the direct sums inside the FFT path.
 *
 * The operator shape (see "Plans"): clattn_rpe_desc_init, clattn_rpe_plan_create (validates, takes
 * the launch from the scheduler, creates its kernels, allocates its scratch, uploads FAVOR's
 * projection and bakes the clFFT plans it uses), clattn_rpe_plan_enqueue (no program lookup, kernel
 * creation or upload), and clattn_rpe_enqueue / clattn_rpe_host built on a plan. */

typedef enum clattn_rpe_algo {
    CLATTN_RPE_AUTO = 0,  /* by a cost model calibrated on PoCL: FFT from N ~ 3000 (M = Dv = 16),
                           * N ~ 9000 (M = Dv = 64); DIRECT below */
    CLATTN_RPE_FFT = 1,   /* circulant embedding + clFFT, O(N log N) */
    CLATTN_RPE_DIRECT = 2 /* direct sums, O(N^2): a row per work-item on CPUs, register-tiled
                           * with __local tiles on GPU-like devices */
} clattn_rpe_algo;

/* Describes one RPE attention operator. Fill with clattn_rpe_desc_init() (defaults: ELU features,
 * eps CLATTN_LINEAR_DEFAULT_EPS, non-causal, AUTO), then set fields; struct_size lets it grow. A
 * NULL desc means these defaults wherever a desc is taken. */
typedef struct clattn_rpe_desc {
    size_t struct_size;
    /* The feature map, eps and FAVOR+ fields (features M, projection or seed, scaling), as for
     * linear attention; its causal flag is ignored and momentum must be NONE. The map must give
     * non-negative features so that the weights are: ELU, RELU or FAVOR; IDENTITY is refused.
     * eps is the formula's (see above; the default, from clattn_rpe_desc_init, is
     * CLATTN_LINEAR_DEFAULT_EPS): 0 means no eps, a row with a denominator of exactly 0 then
     * outputs 0. It is one meaning for linear and RPE attention.
     * FAVOR's stabilisers: each query row scaled by its own maximum c_q, the keys of a (b, key
     * head) by one common maximum c_k (Performer's non-causal stabiliser, in the causal form too:
     * the FFT path has no running maximum); both cancel in the quotient, and eps keeps the
     * formula's scale: eps exp(-(c_q + c_k + bmax_h)) is added to the stabilised denominator. In
     * the causal form a row whose visible keys' log-scales all lie far (tens of nats) below the
     * head's largest loses its weights to underflow (it then outputs 0). */
    clattn_linear_desc linear;
    /* Only j <= i: 0 or 1 (INVALID_ARGUMENT otherwise). */
    int causal;
    clattn_rpe_algo algorithm;
    /* Element types (clattn_dtype; CLATTN_F32 from clattn_rpe_desc_init) of q, k, v, the bias and
     * out, each independent (e.g. f16 q/k/v with an f32 out, a bf16 bias): every tensor of the
     * enqueue takes half storage, arithmetic and accumulation stay float32 (clattn.h's accuracy
     * contract), and the scratch (features, exp(bias), FFT signals and spectra) stays float32.
     * Both algorithms read v and the bias in their types in their own kernels (the FFT path's
     * kernel that builds the signals included) and write out in its type; half q and k are
     * staged into a float32 scratch copy first (the feature kernels read float32; q and k are
     * small next to the N x Dv value work). Dtype fields of `linear`, if it has any, are not
     * read: these are RPE's. */
    clattn_dtype q_dtype, k_dtype, v_dtype, bias_dtype, out_dtype;
} clattn_rpe_desc;

CLATTN_API void clattn_rpe_desc_init(clattn_rpe_desc *desc);

/* Bakes RPE attention (see above) for q [B, Hq, N, D], k [B, Hk, N, D] and v [B, Hk, N, Dv]
 * (shapes; 1 <= D, Dv <= 256, Hq a multiple of Hk; M features per row: D, or
 * desc->linear.features for FAVOR): chooses the algorithm and its sizes (lib/sched), creates
 * the kernels, allocates the scratch (held until clattn_plan_destroy), uploads FAVOR's projection
 * (desc->linear.projection is copied; the caller's array may be freed after the call) and, for
 * the FFT path, bakes its clFFT plans into the context's FFT plan cache (by running its
 * transforms once on the scratch: on an out-of-order queue the first enqueue waits for that run).
 * The context's FFT cache keeps the 32 most recently used clFFT plans: when other FFT users evict
 * this plan's, its next enqueue bakes them again. *plan is NULL on failure.
 * Status: NULL_POINTER (ctx, plan or a shape), INVALID_ARGUMENT (struct_size, a dtype field that
 * is not a clattn_dtype, unknown or IDENTITY feature map, eps negative or not finite, FAVOR M
 * outside 1..4096 or a non-finite projection, momentum, causal not 0 or 1, unknown algorithm),
 * INVALID_SHAPE (a zero entry, D or
 * Dv > 256, N >= 2^30, B*Hq*M*(Dv+1) beyond 2^31), SHAPE_MISMATCH (q, k, v disagree on B, N or
 * D, k and v on Hk, Hq not a multiple of Hk, FAVOR projection_shape not {M, D}), UNSUPPORTED
 * (scratch beyond the device's max allocation), then BUILD_FAILED or OpenCL codes. */
CLATTN_API clattn_status clattn_rpe_plan_create(clattn_context *ctx, const clattn_rpe_desc *desc,
                                                const size_t q_shape[4], const size_t k_shape[4],
                                                const size_t v_shape[4], clattn_plan **plan);

/* Enqueues a baked RPE plan on the context's queue. Tensors (any strides; each of the type the
 * plan's desc gave it, q_dtype ... out_dtype): q, k, v of the plan's shapes, out [B, Hq, N, Dv];
 * bias [1, Hq, 1, 2N - 1]: bias->shape[3] element r + N - 1 holds b_r
 * of query head h for the offset r = j - i, r in [-(N-1), N-1] (entries r > 0 are unused when
 * causal). Every element of out is written. Bias values are not read back by this asynchronous
 * call: a non-finite entry among those a head uses makes that head's outputs NaN
 * (clattn_rpe_host checks the values and refuses them). The enqueues of one plan share its
 * scratch (see "Plans").
 * Validation (before anything is enqueued; nothing is touched on failure): NULL_POINTER (plan, a
 * tensor, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (not an RPE plan), SHAPE_MISMATCH (a
 * view differs from the plan's shapes, bias not [1, Hq, 1, 2N - 1]), DTYPE_MISMATCH (a tensor's
 * dtype differs from the desc's type it was baked for), BUFFER_TOO_SMALL, ALIASING
 * (out overlaps an input or maps two elements to one address), then OpenCL codes. `event` (may
 * be NULL) receives an event for the last command. */
CLATTN_API clattn_status clattn_rpe_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                 const clattn_tensor *k, const clattn_tensor *v,
                                                 const clattn_tensor *bias,
                                                 const clattn_tensor *out, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: a plan for the views' shapes and element types (each tensor's dtype, in place of the
 * desc's dtype fields), enqueued once and released (OpenCL keeps what the commands use alive
 * until they have run). Status as for clattn_rpe_plan_create and
 * clattn_rpe_plan_enqueue (NULL_POINTER for ctx). */
CLATTN_API clattn_status clattn_rpe_enqueue(clattn_context *ctx, const clattn_rpe_desc *desc,
                                            const clattn_tensor *q, const clattn_tensor *k,
                                            const clattn_tensor *v, const clattn_tensor *bias,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience on a plan (float32 throughout: the desc's dtype fields are
 * ignored): contiguous float32 q [B, Hq, N, D] (q_shape),
 * k [B, Hk, N, D] (k_shape), v [B, Hk, N, Dv] (v_shape), bias [Hq][2N - 1], out [B, Hq, N, Dv].
 * Every bias entry must be finite, else INVALID_ARGUMENT. `out` is only written on success (read
 * back after the operator's last command, on in-order and out-of-order queues). Status as for
 * clattn_rpe_plan_create and clattn_rpe_plan_enqueue. */
CLATTN_API clattn_status clattn_rpe_host(clattn_context *ctx, const clattn_rpe_desc *desc,
                                         const size_t q_shape[4], const size_t k_shape[4],
                                         const size_t v_shape[4], const float *q, const float *k,
                                         const float *v, const float *bias, float *out);

#endif /* CLATTN_RPE_H */
