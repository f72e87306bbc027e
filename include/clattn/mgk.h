/* clattn: Transformer-MGK, attention with a mixture of Gaussian keys (Nguyen et al., ICML 2022,
 * "Improving Transformers with Probabilistic Attention Keys"). Part of the public API: include
 * <clattn.h>, which includes this file. */
#ifndef CLATTN_MGK_H
#define CLATTN_MGK_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/mgk.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Mixture-of-Gaussian-keys attention                                                             */
/* ---------------------------------------------------------------------------------------------- */
/*
 * Each head's key at position j is a mixture of R Gaussians (1 <= R <= CLATTN_MGK_MAX_COMPONENTS)
 * with means k_jr, mixing weights pi_jr and variances sigma_r^2.
 *
 * Softmax MGK (form CLATTN_MGK_SOFTMAX), for query i and the keys j it sees (causal mask and key
 * lengths as in softmax attention):
 *
 *   w_ij  = sum_r pi_jr exp(-|q_i - k_jr|^2 / (2 sigma_r^2))
 *   out_i = sum_j w_ij v_j / sum_j w_ij,        lse_i = log sum_j w_ij   (natural log)
 *
 * The squared distance is used in full: -|q - k|^2 / (2 s^2) = (q.k)/s^2 - |k|^2/(2 s^2)
 * - |q|^2/(2 s^2). The |k_jr|^2 term and log pi_jr form a per-key bias computed once per plan
 * enqueue (a pack kernel). The |q_i|^2 term cancels in the normalisation over j only when every
 * component has the same sigma; with per-component sigmas it weighs the components differently
 * for each query, so it is kept: the kernels add -|q_i|^2/(2 sigma_r^2) minus its largest value
 * over r (a per-row constant, which cancels in out_i) and add that constant back into lse_i, so
 * lse_i is the exact log of the unnormalised mixture density sum above. Everything runs in an
 * online softmax over j whose running maximum covers all R terms of every key, so each of the R
 * exponentials has a non-positive argument: the log-sum over r is done stably (it is a logaddexp
 * of the R terms log pi_jr - |q_i - k_jr|^2 / (2 sigma_r^2) folded into the online maximum).
 * pi_jr <= 0 (or NaN) drops component r of key j; a key whose every pi is 0 gets weight 0; a row
 * whose visible keys all have weight 0, or that sees no key, gets out = 0 and lse = -INFINITY.
 *
 * With R = 1, one sigma, and keys of equal norm, this is softmax attention with scale 1/sigma^2.
 *
 * Linear MGK (form CLATTN_MGK_LINEAR), the kernelised variant:
 *
 *   phi(x)   = (elu(x) + 1) / sum_d (elu(x_d) + 1)          (a feature map normalised to sum 1)
 *   psi_j    = sum_r pi_jr phi(k_jr)                         (the mixture of the keys' features)
 *   out_i    = sum_{j in J(i)} (phi(q_i) . psi_j) v_j / (phi(q_i) . sum_{j in J(i)} psi_j + eps)
 *
 * with J(i) every key (causal = 0) or j <= i (causal = 1, which needs Nq = Nk). sigma plays no
 * part. pi_jr is used as given (no clamping), so it should be >= 0.
 *
 * What the authors train (github.com/minhtannguyen/transformer-mgk) and how it maps here:
 *  - softmax MGK (language modelling, MGKAttn with update_mode 'rbf2keys'): R = 2 key projections,
 *    w_ij = pi0[h, j] exp(-|q - k_j1|^2 / (2 sqrt(D))) + pi1[h, j] exp(-3 |q - k_j2|^2 /
 *    (2 sqrt(D))), i.e. sigma_1^2 = sqrt(D), sigma_2^2 = sqrt(D)/3 (desc.sigma[] = {D^(1/4),
 *    D^(1/4)/sqrt(3)}); pi0, pi1 are learned per head and key position, clamped to [0, 1] and not
 *    tied to sum to 1 (pass the clamped values as pi); |q|^2 is kept (torch.cdist), there is no
 *    max subtraction, and their normalisation adds 1e-6 to the denominator (we normalise exactly).
 *    Their LRA code uses one sigma^2 = sqrt(D) for both components (our default) and one pi per
 *    layer (pass pi with stride 0 over heads and positions).
 *  - linear MGK ('rbf2keys' linear layer): phi = elu + 1 normalised to sum 1 for q and for each
 *    k_r, the key features mixed as psi_j above, causal, eps = 1e-5 added to the denominator. Their
 *    layer also multiplies the output by 1/sqrt(D); that constant is left to the caller (an output
 *    projection absorbs it).
 *
 * Tensors: q [B, H, Nq, D]; k [B, H, R, Nk, D] passed as a 4-D view of shape [B, H * R, Nk, D]
 * (component r of head h is entry h * R + r of dimension 1, as a dense [B, H, R, Nk, D] array
 * is laid out), so R = k_shape[1] / H; v [B, H, Nk, D]; pi [1, H, R, Nk] (zero strides broadcast
 * one pi over heads or positions); out [B, H, Nq, D]; lse [B, H, Nq, 1] (softmax form only).
 * 1 <= D <= 256. q, k, v, pi and out may be float16 or bfloat16 (desc's *_dtype fields); lse is
 * float32.
 */

#define CLATTN_MGK_MAX_COMPONENTS 8

typedef enum clattn_mgk_form {
    CLATTN_MGK_SOFTMAX = 0, /* normalised mixture of Gaussian kernels (exact, tiled) */
    CLATTN_MGK_LINEAR = 1   /* kernelised: mixed elu+1 features, O(N) */
} clattn_mgk_form;

typedef enum clattn_mgk_algo {
    CLATTN_MGK_AUTO = 0,      /* softmax form: the scheduler picks; linear form: LINEAR_SCAN */
    CLATTN_MGK_TILED_CPU = 1, /* softmax form: register-blocked, K packed in panels, no __local */
    CLATTN_MGK_TILED_GPU = 2, /* softmax form: work-groups sharing K/V tiles in __local memory */
    CLATTN_MGK_LINEAR_SCAN = 3 /* linear form: features, then S = sum psi v^T (or a causal scan) */
} clattn_mgk_algo;

typedef struct clattn_mgk_desc {
    size_t struct_size;
    clattn_mgk_form form;
    /* sigma_r (standard deviations, finite and > 0) for r < R; 0 (the default) means D^(1/4),
     * i.e. sigma_r^2 = sqrt(D), the authors' default. Entries r >= R are not used (they are
     * still checked: finite and >= 0, as clattn_mgk_desc_init leaves them). */
    float sigma[CLATTN_MGK_MAX_COMPONENTS];
    /* Causal mask, bottom-right aligned as in softmax attention (linear form: needs Nq = Nk). */
    int causal;
    /* Softmax form only: optional int32 buffer of `batch` key lengths, as in clattn_softmax_desc.
     * NULL: all keys. */
    cl_mem key_lengths;
    size_t key_lengths_offset;
    /* Linear form: added to the denominator (finite, >= 0). Default 1e-5. */
    float eps;
    clattn_mgk_algo algorithm;
    /* Storage types of the tensors (default CLATTN_F32; any combination): q, k, v, pi and out
     * are read and written in these types, arithmetic is float32 (the ACCURACY CONTRACT of
     * clattn.h). lse, the decoding state's S and z, and all plan scratch stay float32. The
     * one-shot clattn_mgk_enqueue takes the types from its tensors; clattn_mgk_host is float32. */
    clattn_dtype q_dtype, k_dtype, v_dtype, pi_dtype, out_dtype;
} clattn_mgk_desc;

CLATTN_API void clattn_mgk_desc_init(clattn_mgk_desc *desc);

/* Bakes a plan: q_shape = {B, H, Nq, D}, k_shape = {B, H * R, Nk, D} (R = k_shape[1] / H, at most
 * CLATTN_MGK_MAX_COMPONENTS), v has shape {B, H, Nk, D}. desc NULL means the defaults.
 * Status: NULL_POINTER, INVALID_SHAPE (zero sizes, D > 256), SHAPE_MISMATCH (k's heads not a
 * multiple of H, R too large, batch / length / D disagreeing, causal linear with Nq != Nk),
 * INVALID_ARGUMENT (desc fields: form, algorithm, sigma, eps, causal flag, dtypes; key_lengths
 * with the linear form), BUFFER_TOO_SMALL (key_lengths), UNSUPPORTED (TILED_GPU without the
 * local memory), BUILD_FAILED, OpenCL allocation codes. *plan is NULL on failure. */
CLATTN_API clattn_status clattn_mgk_plan_create(clattn_context *ctx, const clattn_mgk_desc *desc,
                                                const size_t q_shape[4], const size_t k_shape[4],
                                                clattn_plan **plan);

/* Enqueues the formula above. lse (softmax form only, else INVALID_ARGUMENT) may be NULL. Every
 * element of out (and lse) is written. Validation as for softmax attention (shapes, buffer sizes,
 * aliasing of outputs with any input, pi included), before anything is enqueued; a tensor whose
 * dtype is not the plan's: DTYPE_MISMATCH. */
CLATTN_API clattn_status clattn_mgk_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                 const clattn_tensor *k, const clattn_tensor *v,
                                                 const clattn_tensor *pi,
                                                 const clattn_tensor *out,
                                                 const clattn_tensor *lse, cl_uint num_wait,
                                                 const cl_event *wait, cl_event *event);

/* One-shot: plan from the tensors' shapes and element types (the desc's dtype fields are
 * ignored), enqueue, release. */
CLATTN_API clattn_status clattn_mgk_enqueue(clattn_context *ctx, const clattn_mgk_desc *desc,
                                            const clattn_tensor *q, const clattn_tensor *k,
                                            const clattn_tensor *v, const clattn_tensor *pi,
                                            const clattn_tensor *out, const clattn_tensor *lse,
                                            cl_uint num_wait, const cl_event *wait,
                                            cl_event *event);

/* Blocking host-memory convenience: contiguous float32 q [B,H,Nq,D], k [B,H,R,Nk,D],
 * v [B,H,Nk,D], pi [H,R,Nk], out [B,H,Nq,D], lse [B,H,Nq] (may be NULL; softmax form only).
 * Outputs are written only on success. */
CLATTN_API clattn_status clattn_mgk_host(clattn_context *ctx, const clattn_mgk_desc *desc,
                                         const size_t q_shape[4], const size_t k_shape[4],
                                         const float *q, const float *k, const float *v,
                                         const float *pi, float *out, float *lse);

/* ---- decoding state of linear MGK ----
 * S = sum_j psi_j v_j^T [D x D] and z = sum_j psi_j [D] per (batch, head); a step adds one
 * position and writes that position's causal output, so steps over a sequence equal the causal
 * linear form over it. The handle keeps a pointer to its context and must not be used from two
 * threads at once. */
typedef struct clattn_mgk_state clattn_mgk_state;

/* desc: form must be CLATTN_MGK_LINEAR (its causal flag is ignored; eps and the dtypes of q, k,
 * v, pi and out, which every step's tensors must have, are used; S and z are float32). Creates a
 * zeroed state (blocking) for `batch` sequences of `heads` heads, `components` keys per position
 * and head dim d (1..256). Status: NULL_POINTER, INVALID_ARGUMENT, INVALID_SHAPE, OpenCL codes. */
CLATTN_API clattn_status clattn_mgk_state_create(clattn_context *ctx, const clattn_mgk_desc *desc,
                                                 size_t batch, size_t heads, size_t components,
                                                 size_t d, clattn_mgk_state **state);
/* NULL-safe. */
CLATTN_API void clattn_mgk_state_destroy(clattn_mgk_state *state);
/* Enqueues S = 0, z = 0. */
CLATTN_API clattn_status clattn_mgk_state_reset(clattn_mgk_state *state, cl_uint num_wait,
                                                const cl_event *wait, cl_event *event);
/* One position: q [B, H, 1, D], k [B, H * R, 1, D], v [B, H, 1, D], pi [1, H, R, 1] (this
 * position's weights), out [B, H, 1, D]. Status as for clattn_mgk_plan_enqueue (SHAPE_MISMATCH
 * when a tensor disagrees with the state); on failure the state is unchanged. */
CLATTN_API clattn_status clattn_mgk_state_step(clattn_mgk_state *state, const clattn_tensor *q,
                                               const clattn_tensor *k, const clattn_tensor *v,
                                               const clattn_tensor *pi, const clattn_tensor *out,
                                               cl_uint num_wait, const cl_event *wait,
                                               cl_event *event);

#endif /* CLATTN_MGK_H */
