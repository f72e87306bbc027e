/* clattn: exact softmax attention. Part of the public API: include <clattn.h>, which includes this
 * file (the header is split by operator so that none runs past a few hundred lines). */
#ifndef CLATTN_SOFTMAX_H
#define CLATTN_SOFTMAX_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/softmax.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Exact softmax attention (FlashAttention-style tiled forward)                                    */
/* ---------------------------------------------------------------------------------------------- */

typedef enum clattn_softmax_algo {
    CLATTN_SOFTMAX_AUTO = 0,      /* the scheduler picks the kernel family for the device */
    CLATTN_SOFTMAX_TILED_CPU = 1, /* register-blocked, no __local memory, no barriers (CPU-like) */
    CLATTN_SOFTMAX_TILED_GPU = 2, /* work-groups sharing K/V tiles in __local memory, scores and
                                   * output in register micro-tiles (GPU-like) */
    CLATTN_SOFTMAX_NAIVE = 3,     /* scores materialised by CLBlast GEMMs + softmax: a baseline */
    /* TILED_GPU's previous kernel, one query row per work-item (K/V tiles in __local memory, q and
     * the accumulator in private arrays): kept to measure the register-tiled kernel against; AUTO
     * never picks it. Plans report it as TILED_GPU (variant clattn_softmax_fwd_gpu). */
    CLATTN_SOFTMAX_TILED_GPU_ROWS = 4
} clattn_softmax_algo;

/* Describes one attention operator. Fill with clattn_softmax_desc_init() first, then set fields;
 * struct_size lets the struct grow without breaking the ABI. */
typedef struct clattn_softmax_desc {
    size_t struct_size;
    /* Logits are scale * (q . k). 0 (the default) means 1/sqrt(D). Must be finite. */
    float scale;
    /* Causal mask, bottom-right aligned: query i sees key j iff j <= i + Nk - Nq. With Nq < Nk this
     * is Perceiver AR's causal cross-attention of the last Nq positions; with Nq > Nk the first
     * Nq - Nk queries see no key. */
    int causal;
    /* Optional int32 buffer of `batch` key lengths (padding / varlen): batch b sees keys j < L[b].
     * Values are clamped to [0, Nk]. key_lengths_offset counts int32 elements. NULL: all keys. */
    cl_mem key_lengths;
    size_t key_lengths_offset;
    /* Kernel family; AUTO lets the scheduler choose from the device description. */
    clattn_softmax_algo algorithm;
    /* Element types of q, k, v and out (clattn_dtype; 0 = CLATTN_F32 from _desc_init), each
     * independent of the others: e.g. f16 q/k/v with an f32 out, or bf16 q with f16 k and f32 v.
     * Arithmetic is always fp32 (see the ACCURACY CONTRACT in clattn.h). lse, key_lengths and the
     * plan's scratch stay float32 / int32. The tiled families read q/k/v and write out in these
     * types inside their kernels (no float32 copies: half the bytes of q/k/v/out are moved);
     * TILED_CPU's packed K/V panels are float32, or of K's / V's own half type when each panel
     * is read only once (one query block per key head: Nq <= 32 at D 64 without GQA sharing,
     * i.e. decoding). There the pack and the main kernel are both one pass over K/V: half
     * panels move 2 + 2 + 2 bytes per element instead of 2 + 4 + 4 (Nq 1, Nk 512, D 64 f16
     * under oclgrind --inst-counts: 393 KB against 655 KB, half the scratch, the same
     * instruction counts: each panel element is converted once either way). With reuse the
     * panels are read from cache many times and float32 panels keep the conversion out of the
     * inner loop. NAIVE (CLBlast) stages half q/k/v into float32 plan scratch and writes the
     * half out from float32 scratch. clattn_softmax_enqueue takes the types from its tensors. */
    clattn_dtype q_dtype, k_dtype, v_dtype, out_dtype;
} clattn_softmax_desc;

CLATTN_API void clattn_softmax_desc_init(clattn_softmax_desc *desc);


/* Bakes a plan for softmax attention on fixed shapes:
 *   q_shape = {B, Hq, Nq, D}, k_shape = v_shape = {B, Hk, Nk, D}, with Hq a multiple of Hk
 *   (multi-head, grouped-query and multi-query attention), 1 <= D <= 256, any N >= 1.
 * Chooses the kernel family and tiles (scheduler), builds or fetches the kernels (program cache)
 * and allocates any scratch. The desc's key_lengths buffer, if any, is recorded (retained).
 * desc NULL means the defaults of clattn_softmax_desc_init. *plan is set to NULL on every failure.
 * Status: NULL_POINTER, INVALID_SHAPE (zero sizes, D > 256), SHAPE_MISMATCH, INVALID_ARGUMENT
 * (non-finite scale, causal not 0 or 1, unknown algorithm, struct_size not set by _desc_init),
 * BUFFER_TOO_SMALL (key_lengths), UNSUPPORTED (e.g. NAIVE with strided K), BUILD_FAILED, OpenCL
 * allocation codes. An unknown q/k/v/out_dtype is INVALID_ARGUMENT. */
CLATTN_API clattn_status clattn_softmax_plan_create(clattn_context *ctx,
                                                      const clattn_softmax_desc *desc,
                                                      const size_t q_shape[4],
                                                      const size_t k_shape[4],
                                                      const size_t v_shape[4],
                                                      clattn_plan **plan);

/* Enqueues out = softmax(scale * q k^T + mask) v on the context's queue.
 * Tensors: q [B, Hq, Nq, D], k and v [B, Hk, Nk, D], out [B, Hq, Nq, D] with the plan's shapes;
 * lse optional (NULL): [B, Hq, Nq, 1] receives the natural-log log-sum-exp of each row's scaled
 * logits. A row that sees no key (causal offset, key length 0) gets zeros in out and -INFINITY in
 * lse. Every element of out (and lse) is written.
 * Validation (before anything is enqueued): shapes match the plan, every view fits its buffer
 * (BUFFER_TOO_SMALL), out/lse do not alias q, k, v or each other (ALIASING), out has no zero
 * stride. The NAIVE algorithm additionally needs unit strides along D for q, k and v.
 * Each tensor's dtype must be the plan's (desc q/k/v/out_dtype; lse float32): DTYPE_MISMATCH
 * otherwise, with nothing enqueued and nothing written.
 * `event` (may be NULL) receives an event for the last command enqueued. */
CLATTN_API clattn_status clattn_softmax_plan_enqueue(clattn_plan *plan, const clattn_tensor *q,
                                                       const clattn_tensor *k,
                                                       const clattn_tensor *v,
                                                       const clattn_tensor *out,
                                                       const clattn_tensor *lse,
                                                       cl_uint num_wait, const cl_event *wait,
                                                       cl_event *event);

/* One-shot: plan (shapes and element types from the tensors: the desc's q/k/v/out_dtype are
 * ignored) + enqueue + release. Plans are cheap to re-bake because
 * programs are cached, but engines calling many times should keep a plan. */
CLATTN_API clattn_status clattn_softmax_enqueue(clattn_context *ctx,
                                                  const clattn_softmax_desc *desc,
                                                  const clattn_tensor *q, const clattn_tensor *k,
                                                  const clattn_tensor *v, const clattn_tensor *out,
                                                  const clattn_tensor *lse, cl_uint num_wait,
                                                  const cl_event *wait, cl_event *event);

/* Blocking host-memory convenience (float32 only: the desc's dtype fields are ignored): contiguous
 * float32 arrays q [B,Hq,Nq,D], k, v [B,Hk,Nk,D],
 * out [B,Hq,Nq,D], lse [B,Hq,Nq] (may be NULL), key_lengths int32 [B] (may be NULL; overrides
 * desc->key_lengths; values must lie in [0, Nk], else INVALID_ARGUMENT). `out` and `lse` are only
 * written on success. */
CLATTN_API clattn_status clattn_softmax_host(clattn_context *ctx,
                                               const clattn_softmax_desc *desc,
                                               const size_t q_shape[4], const size_t k_shape[4],
                                               const size_t v_shape[4], const float *q,
                                               const float *k, const float *v,
                                               const int32_t *key_lengths, float *out, float *lse);


/* The plan the scheduler would choose for these shapes on a described device, without building
 * anything (pure function; `clattn devices` prints it). scratch_bytes is left 0. Status as for
 * clattn_softmax_plan_create's validation and scheduling steps; having no context, a refusal
 * leaves its message on the thread (clattn_context_last_error(NULL)) and *info untouched. */
CLATTN_API clattn_status clattn_softmax_schedule(const clattn_device_info *device,
                                                   const clattn_softmax_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   clattn_plan_info *info);

#endif /* CLATTN_SOFTMAX_H */
