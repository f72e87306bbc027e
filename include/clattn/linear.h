/* clattn: linear (kernelized) attention with momentum and its decoding state. Part of the public API: include <clattn.h>, which includes this
 * file (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_LINEAR_H
#define CLATTN_LINEAR_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/linear.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Linear (kernelized) attention                                                                  */
/* ---------------------------------------------------------------------------------------------- */

/* Linear Transformers (Katharopoulos et al. 2020): softmax(q k^T) is replaced by phi(q) . phi(k)
 * for a feature map phi, so the keys can be summed into an M x Dv state once:
 *   non-causal:  O = phi(Q) (phi(K)^T V) / (phi(Q) . (phi(K)^T 1) + eps)
 *   causal:      O_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),
 *                S_i = sum_{j <= i} phi(k_j) v_j^T,  z_i = sum_{j <= i} phi(k_j)
 * eps is added exactly there, in the formula's own scale, for every feature map and form (the
 * stabilisers below never change what it means); eps = 0 adds nothing, and a row whose
 * denominator is then exactly 0 (e.g. RELU features of an all-negative query) outputs 0.
 * Time O(N * M * Dv), memory O(N * M) of scratch (the features); nothing of size N x N. The causal
 * form is computed chunk-parallel (chunks of 64 positions: per-chunk sums, a scan over chunks,
 * then a masked product inside each chunk plus the carried state), equal to the sequential
 * recurrence at every position. On CPU-like devices (the scheduler's device family) the causal
 * form of the element-wise maps without momentum runs as one fused kernel instead: per (batch,
 * key head, block of value columns) a work-item walks chunks of 16 positions in order, the state
 * in private memory, reading q, k and v once and using no scratch (equal to the recurrence too);
 * the non-causal FUSED form of those maps runs it as well (all keys, then the query rows) where
 * batch x key heads gives the device's cores enough work-items.
 *
 * Feature maps (M = D except for FAVOR+):
 *   ELU       phi(x) = elu(x) + 1, element-wise
 *   RELU      phi(x) = max(x, 0), element-wise
 *   IDENTITY  phi(x) = x: the caller applied its own (non-negative) map
 *   FAVOR     Performer's positive random features (Choromanski et al. 2021):
 *             phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(M), x' = x * D^(-1/4), W float32 [M, D], either
 *             the caller's (desc.projection) or drawn from desc.seed by clattn_linear_favor_draw().
 *             Stabilisers (exact: they cancel in the normalised output, and no output depends on a
 *             later token): each query row is divided by exp(max_m (W q')_m - |q'|^2/2); each key
 *             j carries its own log-scale c_j = max_m (W k_j')_m - |k_j'|^2/2 and the sums are kept
 *             relative to the running maximum r_i = max_{j <= i} c_j (rescaled when it grows, as
 *             online softmax does) -- for the non-causal form r = max_j c_j, Performer's per-head
 *             key maximum. eps keeps the formula's scale: the stabilised quotient
 *             out_i = phit(q_i)^T St_i / (phit(q_i)^T zt_i + eps exp(-(c_q + r_i))), with
 *             phit(q) = phi(q) exp(-c_q), c_q = max_m (W q')_m - |q'|^2/2, St_i = S_i exp(-r_i),
 *             zt_i = z_i exp(-r_i), is the formula's quotient exactly (the eps term is computed
 *             in the log domain; where it underflows it is negligible). The other maps have
 *             c = 0.
 *
 * Momentum (Momentum Transformer, Nguyen et al. 2022, arXiv 2208.00579; the authors' recurrent
 * code, fast_transformers/recurrent/attention/self_attention/momentum_attention.py, is the
 * definition): linear attention read as gradient descent on the state with heavy-ball momentum,
 *   P_i = mu P_{i-1} - eta phi(k_i) v_i^T,  S_i = S_{i-1} - P_i,  z_i = z_{i-1} + phi(k_i)
 * (P_0 = S_0 = 0, z without momentum), outputs as above. Unrolled,
 *   S_i = sum_{j <= i} eta (1 - mu^(i-j+1)) / (1 - mu) phi(k_j) v_j^T,
 * which the causal form computes chunk-parallel with a carried (S, mu-decayed sum) pair, equal to
 * the recurrence at every position. Non-causal: the state after the whole sequence (i = Nk - 1)
 * applied to every query. mu = 0 and eta = 1 is plain linear attention.
 * Adaptive momentum (the authors' frmomentum_attention.py): per sequence and head,
 *   U_i = phi(k_i) v_i^T;  first token: P_1 = -U_1 (no step size, as in the authors' code);
 *   later: mu_i = clamp((1 - sqrt(eta ||U_i - U_{i-1}||_F / ||S_{i-1} - S_{i-2}||_F))^2, 0, 0.9999)
 *          (S_0 = 0; mu_i = 0.9999 when ||S_{i-1} - S_{i-2}||_F = 0), P_i = mu_i P_{i-1} - eta U_i;
 *   S_i = S_{i-1} - P_i, z as above. It is sequential: the causal and non-causal forms run one
 *   scan per (batch, head) over the tokens, O(N M Dv) work but no parallelism along N; decoding
 *   steps cost O(M Dv) as for the other forms. With FAVOR the norms are taken in the stabilised
 *   scale, which leaves their ratio unchanged. */

typedef enum clattn_linear_feature_map {
    CLATTN_LINEAR_FEATURE_ELU = 0,      /* phi(x) = elu(x) + 1 (x + 1 for x > 0, exp(x) otherwise) > 0 */
    CLATTN_LINEAR_FEATURE_RELU = 1,     /* phi(x) = max(x, 0) */
    CLATTN_LINEAR_FEATURE_IDENTITY = 2, /* phi(x) = x: the caller applied its own (non-negative) map */
    CLATTN_LINEAR_FEATURE_FAVOR = 3     /* FAVOR+ positive orthogonal random features (see above) */
} clattn_linear_feature_map;

typedef enum clattn_linear_momentum {
    CLATTN_LINEAR_MOMENTUM_NONE = 0,    /* plain linear attention */
    CLATTN_LINEAR_MOMENTUM_FIXED = 1,   /* heavy-ball momentum with fixed mu and step size eta */
    CLATTN_LINEAR_MOMENTUM_ADAPTIVE = 2 /* the authors' adaptive mu (sequential; see above) */
} clattn_linear_momentum;

/* How the non-causal form without momentum is computed (the other forms have one way). */
typedef enum clattn_linear_algo {
    CLATTN_LINEAR_AUTO = 0,  /* the library's choice for the device (see clattn_linear_desc) */
    CLATTN_LINEAR_FUSED = 1, /* clattn's kernels: chunk sums, a scan, register-blocked outputs
                              * (non-causal with elu/relu/identity: phi computed in registers,
                              * q, k, v read once from their views) */
    CLATTN_LINEAR_GEMM = 2   /* two strided-batched CLBlast SGEMMs, phi(K)^T [V 1] then phi(Q) KV,
                                and a normalising kernel */
} clattn_linear_algo;

/* How clattn_linear_favor_draw rescales its orthonormal rows. */
typedef enum clattn_linear_favor_scaling {
    CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS = 0, /* norms of independent Gaussian D-vectors (Performer's default) */
    CLATTN_LINEAR_FAVOR_SQRT_D = 1          /* every row to sqrt(D) */
} clattn_linear_favor_scaling;

/* Describes one linear attention operator. Fill with clattn_linear_desc_init() first (defaults:
 * ELU, non-causal, eps 1e-6, no momentum, eta 1; FAVOR: M = 256, seed 0, drawn W, Gaussian norms),
 * then set fields; struct_size lets the struct grow. */
typedef struct clattn_linear_desc {
    size_t struct_size;
    clattn_linear_feature_map feature_map;
    /* Causal form (query i sees keys j <= i); needs Nq == Nk. */
    int causal;
    /* Added to every denominator phi(q) . z in the formula's scale (see above; the default,
     * from clattn_linear_desc_init, is CLATTN_LINEAR_DEFAULT_EPS). 0 means no eps: a row whose
     * denominator is exactly 0 then outputs 0 (as it does with eps > 0). Must be finite and >= 0.
     * eps only guards the division by zero; it does not make a denominator well conditioned: with
     * IDENTITY (or any map the caller applies) and signed features, phi(q) . z can cancel to
     * nearly 0 and the output is then as ill-conditioned as the quotient itself. Use non-negative
     * features. */
    float eps;
    /* FAVOR only. Number of random features M, 1..4096 (default 256; at most 896 on Mesa's
     * llvmpipe, whose loop-iteration cap breaks the fused kernels beyond: UNSUPPORTED there, by
     * the scheduler's rule on clattn_device_info.loop_iteration_cap). */
    size_t features;
    /* FAVOR only: the caller's projection W, host float32 [M][D] row-major (copied by the call;
     * finite values) with projection_shape = {M, D} (SHAPE_MISMATCH otherwise), or NULL to draw
     * it from `seed` with `scaling` (clattn_linear_favor_draw). */
    const float *projection;
    size_t projection_shape[2];
    uint64_t seed;
    clattn_linear_favor_scaling scaling;
    /* Momentum form; mu in [0, 1) (FIXED only), step size eta > 0 and finite (FIXED and ADAPTIVE;
     * 0 means 1). */
    clattn_linear_momentum momentum;
    float mu;
    float step_size;
    /* Non-causal form without momentum only (UNSUPPORTED otherwise, except AUTO): FUSED or GEMM;
     * AUTO takes GEMM on GPU-like devices and FUSED on CPU-like ones (the scheduler's device
     * families), the faster of the two where measured (H100: GEMM 2.2-3x; PoCL: FUSED 2.4-2.6x).
     * With GEMM, FAVOR's keys share their head's largest log-scale (Performer's non-causal
     * stabiliser); eps keeps the formula's scale there too. */
    clattn_linear_algo algorithm;
    /* Storage element types of the data tensors (clattn_dtype; default CLATTN_F32), independent
     * per tensor: q, k and v are read and out is written in these types (f16 through
     * vload_half/vstore_half_rte, bf16 by shifts, round to nearest even on store) by every form:
     * element-wise maps, FAVOR+, fixed and adaptive momentum, causal and non-causal, FUSED and
     * GEMM (whose CLBlast products run on float32 features), and a decoding state's prefills and
     * steps. Arithmetic, features, FAVOR's projection W, the decoding state (S, z and the
     * momentum parts) and all scratch stay float32. A plan's tensors must carry exactly these
     * types (DTYPE_MISMATCH otherwise); the one-shot clattn_linear_enqueue takes them from its
     * tensors instead; the _host call is float32. Accuracy: clattn.h's contract. */
    clattn_dtype q_dtype, k_dtype, v_dtype, out_dtype;
} clattn_linear_desc;

#define CLATTN_LINEAR_DEFAULT_EPS 1e-6f

CLATTN_API void clattn_linear_desc_init(clattn_linear_desc *desc);

/* The feature count M the desc gives for head dim d: d for ELU/RELU/IDENTITY, desc->features for
 * FAVOR (NULL desc: the defaults). */
CLATTN_API size_t clattn_linear_feature_count(const clattn_linear_desc *desc, size_t d);

/* Draws FAVOR+'s projection W [m][d] (row-major float32) from `seed`, host only, reproducible
 * across platforms: blocks of d x d standard Gaussians (xoshiro256** seeded by splitmix64(seed),
 * Box-Muller in double), each block's rows orthonormalised by modified Gram-Schmidt in double
 * precision, the blocks stacked and cut to m rows, then row r scaled to the norm of an
 * independent Gaussian d-vector (CLATTN_LINEAR_FAVOR_GAUSSIAN_NORMS) or to sqrt(d). Rows within a block
 * are orthogonal. Status: NULL_POINTER (w), INVALID_SHAPE (m or d 0, m > 4096, d > 256),
 * INVALID_ARGUMENT (scaling), OUT_OF_HOST_MEMORY. */
CLATTN_API clattn_status clattn_linear_favor_draw(size_t m, size_t d, uint64_t seed,
                                           clattn_linear_favor_scaling scaling, float *w);

/* Bakes a plan for linear attention on fixed shapes (shapes and desc as for
 * clattn_linear_enqueue below): validates the desc and shapes, takes the launch (the form --
 * FUSED or GEMM --, chunking, register blocking, work-group sizes) from the tuning database when
 * algorithm is AUTO and it holds an entry for the shape class (clattn_tune), else from the
 * scheduler, creates every kernel the form runs once, draws or copies FAVOR's W and uploads
 * it once, and allocates the scratch (features, padded values, chunk states). The plan copies what it needs of the desc
 * (desc.projection may be freed afterwards). Status as for clattn_linear_enqueue's validation
 * (UNSUPPORTED also for FAVOR beyond the features the device computes correctly), then
 * BUILD_FAILED or OpenCL allocation codes. Release with clattn_plan_destroy. */
CLATTN_API clattn_status clattn_linear_plan_create(clattn_context *ctx,
                                                   const clattn_linear_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   const size_t v_shape[4], clattn_plan **plan);

/* Enqueues a baked linear plan on tensors of its shapes (any strides); no program is built, no
 * kernel created and nothing uploaded here. The first command waits for the wait list; `event`
 * (may be NULL) receives an event for the last. Status: NULL_POINTER, INVALID_ARGUMENT (not a
 * linear plan, or a decoding state's), SHAPE_MISMATCH (a tensor of another shape), and the view
 * checks of clattn_linear_enqueue (BUFFER_TOO_SMALL, ALIASING); nothing is enqueued on failure. */
CLATTN_API clattn_status clattn_linear_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                    const clattn_tensor *k,
                                                    const clattn_tensor *v,
                                                    const clattn_tensor *out, cl_uint num_wait,
                                                    const cl_event *wait, cl_event *event);

/* Enqueues linear attention (see above) on the context's queue.
 * Tensors: q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk, Dv], out [B, Hq, Nq, Dv], with
 * 1 <= D, Dv <= 256 (Dv may differ from D), any strides (e.g. [B, N, H, D] layouts), and Hq a
 * multiple of Hk: grouped-query and multi-query attention, query head h reading key/value head
 * h / (Hq / Hk), in every form (the key-side sums are computed once per key head and shared by
 * its query heads). desc NULL means the defaults; the element types are the tensors' own (the
 * desc's q_dtype ... out_dtype are ignored here). One-shot: bakes a plan
 * (clattn_linear_plan_create), enqueues it and releases it, so its scratch (features, padded
 * values and per-chunk states: about 4 * B * H * (Nq * M + Nk * (M + Dv + 2)) bytes plus the
 * chunk states) and kernels are made per call; callers that repeat a shape keep a plan instead.
 * Every element of out is written.
 * Validation (before anything is enqueued; nothing is touched on failure):
 *   NULL_POINTER (ctx, q, k, v, out, or num_wait > 0 with wait NULL), INVALID_ARGUMENT (struct_size,
 *   unknown feature map / momentum / scaling / algorithm / dtype, causal not 0 or 1, eps negative or not
 *   finite, mu outside [0, 1), eta <= 0 or not finite, FAVOR with M = 0 or M > 4096, a
 *   projection value not finite), INVALID_SHAPE (a zero entry, D or Dv > 256, sizes beyond 2^31),
 *   SHAPE_MISMATCH (B, heads -- Hq not a multiple of Hk --, D, Nk or out's shape disagree;
 *   projection_shape != {M, D}), UNSUPPORTED (causal with Nq != Nk, GEMM with the causal or
 *   momentum forms, FAVOR beyond the features a loop-capped device computes correctly -- 896 on
 *   Mesa's llvmpipe --, scratch beyond the device's max allocation),
 *   DTYPE_MISMATCH (plan_enqueue, prefill, step: a tensor's dtype differs from the desc's),
 *   BUFFER_TOO_SMALL (a view beyond its buffer), ALIASING (out overlaps q, k or v, or maps two
 *   elements to one address), then BUILD_FAILED or OpenCL codes. `event` (may be NULL) receives
 *   an event for the last command. */
CLATTN_API clattn_status clattn_linear_enqueue(clattn_context *ctx, const clattn_linear_desc *desc,
                                               const clattn_tensor *q, const clattn_tensor *k,
                                               const clattn_tensor *v, const clattn_tensor *out,
                                               cl_uint num_wait, const cl_event *wait,
                                               cl_event *event);

/* Blocking host-memory convenience: contiguous float32 arrays q [B,Hq,Nq,D], k [B,Hk,Nk,D],
 * v [B,Hk,Nk,Dv], out [B,Hq,Nq,Dv] (shapes as above). `out` is only written on success. Status as
 * for clattn_linear_enqueue. */
CLATTN_API clattn_status clattn_linear_host(clattn_context *ctx, const clattn_linear_desc *desc,
                                            const size_t q_shape[4], const size_t k_shape[4],
                                            const size_t v_shape[4], const float *q,
                                            const float *k, const float *v, float *out);

/* Recurrent decoding state (the "RNN view" of causal linear attention): S [B, H, M, Dv] and
 * z [B, H, M] (M = clattn_linear_feature_count) in device buffers owned by the handle, plus what
 * the desc's form needs (the mu-decayed sum for fixed momentum; P, S_{i-1}, U_{i-1} and a token
 * count for adaptive momentum; the running key log-scale for FAVOR), for one desc (copied at
 * creation, FAVOR's W drawn or copied once; its causal flag is ignored). A step costs
 * O(M * Dv) per sequence whatever the position. The prefills' and steps' q, k, v and out take
 * the desc's q_dtype ... out_dtype (the state itself is float32). The handle keeps a pointer to its context (destroy the state first) and must not be
 * used from two threads at once. As everywhere, commands on an out-of-order queue are ordered only
 * by the events the caller passes. */
typedef struct clattn_linear_state clattn_linear_state;

/* Creates a zeroed state for `batch` sequences of `heads` key/value heads, key dim d and value
 * dim dv (1..256). With grouped-query attention the state holds the key/value heads only; the
 * prefills and steps then take queries (and outputs) with any multiple of `heads` heads. The
 * state's plan (its kernels, FAVOR's W) is made here, so prefills and steps build, create and
 * upload nothing (scratch grows when a prefill is longer, or has more query heads, than any
 * before). Blocking (the zero fill is finished on return). Status: NULL_POINTER, INVALID_ARGUMENT
 * (desc as above), INVALID_SHAPE, OpenCL allocation codes. On failure *state is NULL. */
CLATTN_API clattn_status clattn_linear_state_create(clattn_context *ctx,
                                                    const clattn_linear_desc *desc, size_t batch,
                                                    size_t heads, size_t d, size_t dv,
                                                    clattn_linear_state **state);

/* Releases the state's buffer. NULL-safe. */
CLATTN_API void clattn_linear_state_destroy(clattn_linear_state *state);

/* The shape the state was created with: {batch, heads, d, dv}. NULL_POINTER on NULL arguments. */
CLATTN_API clattn_status clattn_linear_state_get_shape(const clattn_linear_state *state,
                                                       size_t shape[4]);

/* Enqueues S = 0, z = 0 (the start of a new sequence). */
CLATTN_API clattn_status clattn_linear_state_reset(clattn_linear_state *state, cl_uint num_wait,
                                                   const cl_event *wait, cl_event *event);

/* Enqueues dst = src (e.g. to fork a session after a shared prompt), on dst's context's queue.
 * Status: NULL_POINTER, INVALID_CONTEXT (different contexts), SHAPE_MISMATCH (different shapes),
 * INVALID_ARGUMENT (different descs: feature map, eps, M, momentum, mu, eta or W). dst == src is
 * a no-op. */
CLATTN_API clattn_status clattn_linear_state_copy(clattn_linear_state *dst,
                                                  const clattn_linear_state *src,
                                                  cl_uint num_wait, const cl_event *wait,
                                                  cl_event *event);

/* Blocking read-back, after everything enqueued before it: s receives the effective S (with
 * momentum, S_i itself, not its parts) as contiguous float32 [B][H][M][Dv]
 * (s[((b*H + h)*M + m)*Dv + e]) and z receives [B][H][M]; either may be NULL. With FAVOR the
 * values are the true sums, exp(r) times the stored stabilised ones (which may overflow to inf
 * for extreme keys; the state itself is unaffected). */
CLATTN_API clattn_status clattn_linear_state_read(clattn_linear_state *state, float *s, float *z);

/* Blocking write of S and z in clattn_linear_state_read's layout (both required; values must be
 * finite, else INVALID_ARGUMENT and the state is unchanged). For states without momentum (a
 * momentum state cannot be rebuilt from S and z: UNSUPPORTED; use save/load). */
CLATTN_API clattn_status clattn_linear_state_write(clattn_linear_state *state, const float *s,
                                                   const float *z);

/* Exact save and restore of a session, any form: clattn_linear_state_save_size gives the bytes
 * a snapshot takes; clattn_linear_state_save writes one (blocking, after everything enqueued
 * before it) into buf of at least that size; clattn_linear_state_load restores it into a state
 * created with the same shape and desc (feature map, eps, M, momentum, mu, eta, and FAVOR's W).
 * The snapshot is a private little-endian format with a header and a checksum. Status:
 * NULL_POINTER, BUFFER_TOO_SMALL (size), INVALID_ARGUMENT (not a snapshot, corrupt, or from a
 * state of another shape or desc; the state is then unchanged). */
CLATTN_API clattn_status clattn_linear_state_save_size(const clattn_linear_state *state,
                                                       size_t *bytes);
CLATTN_API clattn_status clattn_linear_state_save(clattn_linear_state *state, void *buf,
                                                  size_t size);
CLATTN_API clattn_status clattn_linear_state_load(clattn_linear_state *state, const void *buf,
                                                  size_t size);

/* Causal linear attention over a prompt that continues the state: the recurrence above run from
 * the state over the prompt (without momentum: out row i = phi(q_i)^T (S0 + sum_{j<=i} phi(k_j)
 * v_j^T) / (phi(q_i)^T (z0 + sum_{j<=i} phi(k_j)) + eps)), and the state becomes the one after
 * the whole prompt. After a reset this is exactly
 * clattn_linear_enqueue with causal = 1; two prefills in a row equal one over the concatenation.
 * Tensors: q [B, Hq, N, D], k [B, H, N, D], v [B, H, N, Dv], out [B, Hq, N, Dv] or NULL (only
 * the state is updated), with the state's B, H, D, Dv, Hq a multiple of H, and any N >= 1. Status as for clattn_linear_enqueue
 * (SHAPE_MISMATCH when a tensor disagrees with the state); on failure the state is unchanged. */
CLATTN_API clattn_status clattn_linear_prefill(clattn_linear_state *state, const clattn_tensor *q,
                                               const clattn_tensor *k, const clattn_tensor *v,
                                               const clattn_tensor *out, cl_uint num_wait,
                                               const cl_event *wait, cl_event *event);

/* One decoding step for every sequence: q [B, Hq, 1, D], k [B, H, 1, D], v [B, H, 1, Dv] and
 * out [B, Hq, 1, Dv] (Hq a multiple of the state's H). Advances
 * the recurrence by one token (without momentum: adds phi(k) v^T to S and phi(k) to z), then
 * writes out = phi(q)^T S / (phi(q)^T z + eps), so a prefill of a prompt followed by steps over
 * the rest equals causal attention over the whole sequence. Cost O(B * H * M * Dv), independent
 * of the position. Status as for clattn_linear_prefill. */
CLATTN_API clattn_status clattn_linear_step(clattn_linear_state *state, const clattn_tensor *q,
                                            const clattn_tensor *k, const clattn_tensor *v,
                                            const clattn_tensor *out, cl_uint num_wait,
                                            const cl_event *wait, cl_event *event);

/* ---- Batched decoding states: per-sequence operations (serving engines) ----
 * A state of `batch` sequences (linear here, clattn_ssm_state in ssm.h) is stepped for the whole
 * batch in one launch. Each sequence b owns its slice of every state buffer and a position (its
 * token count: prefills add their length, steps add 1 for the sequences they advance; resets set
 * it to 0, copies and snapshots carry it). A step may advance only a subset of the sequences (the
 * ones decoding this tick), chosen by a device-side selection; unselected sequences keep their
 * state and position bit for bit, and their rows of out are not written (they keep whatever the
 * caller had there).
 *
 * clattn_seq_select names the subset in a device buffer (no host round trip):
 *   CLATTN_SEQ_ALL       every sequence (buffer unused; a NULL selection means the same);
 *   CLATTN_SEQ_MASK_U8   uint8 [B] at element `offset`: sequence b selected when mask[b] != 0;
 *   CLATTN_SEQ_MASK_I32  int32 [B] likewise;
 *   CLATTN_SEQ_LIST_I32  int32 [count] sequence indices at element `offset`, count <= B. Entries
 *                        outside 0..B-1 are skipped (the library cannot check device data
 *                        without a round trip); a step's list must not repeat an entry (two
 *                        updates of one sequence race: undefined state), a reset's may.
 * The host checks the kind, that the buffer holds the entries (INVALID_ARGUMENT otherwise) and,
 * for lists, count <= B; an empty list (count 0) enqueues only a marker. */
typedef enum clattn_seq_kind {
    CLATTN_SEQ_ALL = 0,
    CLATTN_SEQ_MASK_U8 = 1,
    CLATTN_SEQ_MASK_I32 = 2,
    CLATTN_SEQ_LIST_I32 = 3
} clattn_seq_kind;

typedef struct clattn_seq_select {
    clattn_seq_kind kind;
    cl_mem buffer; /* not retained: must live until the command using it has run */
    size_t offset; /* in elements of the selection's type */
    size_t count;  /* CLATTN_SEQ_LIST_I32: entries; ignored by masks (B entries) */
} clattn_seq_select;

/* clattn_linear_step for the selected sequences only (select NULL: all, as clattn_linear_step;
 * both are one kernel launch for the whole batch: features, state update and output fused).
 * q, k, v and out keep the full batch shapes; only the selected sequences' rows are read and
 * written. Status as for clattn_linear_step, plus the selection's (above). */
CLATTN_API clattn_status clattn_linear_step_select(clattn_linear_state *state,
                                                   const clattn_tensor *q, const clattn_tensor *k,
                                                   const clattn_tensor *v,
                                                   const clattn_tensor *out,
                                                   const clattn_seq_select *select,
                                                   cl_uint num_wait, const cl_event *wait,
                                                   cl_event *event);

/* Enqueues the reset (empty state, position 0) of the sequences seqs[0..count) (host list;
 * repeats harmless; count 0: a marker) or of a device selection (select NULL or CLATTN_SEQ_ALL:
 * clattn_linear_state_reset). Other sequences stay bit-identical. INVALID_ARGUMENT (nothing
 * enqueued) for a host index >= batch or a bad selection. */
CLATTN_API clattn_status clattn_linear_state_reset_seqs(clattn_linear_state *state,
                                                        const size_t *seqs, size_t count,
                                                        cl_uint num_wait, const cl_event *wait,
                                                        cl_event *event);
CLATTN_API clattn_status clattn_linear_state_reset_select(clattn_linear_state *state,
                                                          const clattn_seq_select *select,
                                                          cl_uint num_wait, const cl_event *wait,
                                                          cl_event *event);

/* Enqueues sequence src_seq of src into sequence dst_seq of dst (fork after a shared prompt),
 * state and position. The states may differ in batch but must share context, heads, d, dv and
 * desc (statuses as for clattn_linear_state_copy); dst == src with dst_seq == src_seq is a
 * no-op. INVALID_ARGUMENT (nothing enqueued) for an index out of range. */
CLATTN_API clattn_status clattn_linear_state_copy_seq(clattn_linear_state *dst, size_t dst_seq,
                                                      const clattn_linear_state *src,
                                                      size_t src_seq, cl_uint num_wait,
                                                      const cl_event *wait, cl_event *event);

/* One sequence's S and z (blocking; layouts of clattn_linear_state_read with B = 1), and its
 * write (as clattn_linear_state_write; position unchanged). INVALID_ARGUMENT for seq >= batch. */
CLATTN_API clattn_status clattn_linear_state_read_seq(clattn_linear_state *state, size_t seq,
                                                      float *s, float *z);
CLATTN_API clattn_status clattn_linear_state_write_seq(clattn_linear_state *state, size_t seq,
                                                       const float *s, const float *z);

/* One sequence's snapshot (blocking): the format of clattn_linear_state_save, byte for byte the
 * snapshot of a batch-1 state holding that sequence (so it loads into any sequence of a state of
 * the same heads, d, dv and desc, or into a whole batch-1 state, and back). Status as for
 * save / load, plus INVALID_ARGUMENT for seq >= batch. */
CLATTN_API clattn_status clattn_linear_state_seq_save_size(const clattn_linear_state *state,
                                                           size_t *bytes);
CLATTN_API clattn_status clattn_linear_state_save_seq(clattn_linear_state *state, size_t seq,
                                                      void *buf, size_t size);
CLATTN_API clattn_status clattn_linear_state_load_seq(clattn_linear_state *state, size_t seq,
                                                      const void *buf, size_t size);

/* Blocking read of the B sequences' positions (token counts, see above). */
CLATTN_API clattn_status clattn_linear_state_positions(clattn_linear_state *state,
                                                       uint32_t *positions);

#endif /* CLATTN_LINEAR_H */
