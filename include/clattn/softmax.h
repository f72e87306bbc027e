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

    /* ---- Options of real models (issue 16). All optional (the _desc_init defaults turn each
     * off), all composable with each other and with causal, GQA/MQA, key_lengths and lse, in every
     * algorithm. Per (b, h, i, j), with i' = i + Nk - Nq the query's bottom-right aligned position
     * (the one the causal mask uses), the logit is built in this order:
     *   1. s = scale * q_i . k_j
     *   2. softcap > 0:   s = softcap * tanh(s / softcap)            (Gemma 2; before anything is
     *                                                                 added or masked)
     *   3. s += bias[b, h, i, j] - slope[h] * |i' - j|               (each term when given)
     *   4. key j is left out of row i's softmax when any of: causal and j > i';
     *      j >= key_lengths[b]; mask[b, h, i, j] == 0; j < i' - window_left (window_left >= 0);
     *      j > i' + window_right (window_right >= 0); block_mask[b, h, i / block_q, j / block_k]
     *      == 0; or s == -inf (a -inf bias entry masks).
     *   5. softmax over the kept keys plus, with sinks, one value-less logit sinks[h] (taken as
     *      is: not scaled, capped or biased) in the denominator; lse includes it.
     * A row with no kept key gets zeros in out and lse = -inf (with sinks: lse = sinks[h]).
     * Tensors below are recorded (their buffers retained) by the plan; their contents are read at
     * each enqueue, so they may change between enqueues. Broadcasting: an axis of size 1 is
     * broadcast (its stride is ignored); a full-size axis with stride 0 broadcasts as well. None
     * of these buffers may overlap out or lse (ALIASING). */

    /* Additive bias: float (bias.dtype f32, f16 or bf16), shape [B|1, Hq|1, Nq|1, Nk|1] (e.g. one
     * [Nq, Nk] for every batch and head: shape {1, 1, Nq, Nk}; a key-padding bias: {B, 1, 1, Nk}),
     * added to the (capped) scaled logits. Entries -inf mask; +inf and NaN are the caller's
     * error (rows they reach come out NaN). bias.buffer NULL: none. */
    clattn_tensor bias;
    /* Boolean mask: uint8 (mask.dtype CLATTN_U8), shape [B|1, Hq|1, Nq|1, Nk|1]; nonzero = attend.
     * mask.buffer NULL: none. */
    clattn_tensor mask;
    /* ALiBi (Press et al.): 1 adds -slope[h] * |i' - j| to the logits. Slopes from the float32
     * buffer alibi_slopes ([Hq] from alibi_slopes_offset, in elements), or, when it is NULL, the
     * standard geometric slopes of Hq heads (2^(-8 (h+1) / Hq) for Hq a power of two; the
     * interleaved rule of the reference code otherwise). alibi 0 with a slopes buffer is
     * INVALID_ARGUMENT. */
    int alibi;
    cl_mem alibi_slopes;
    size_t alibi_slopes_offset;
    /* Sliding window: row i sees keys j with i' - window_left <= j <= i' + window_right; -1 (the
     * _desc_init default) leaves that side unbounded. With causal and window_left = W - 1 this is
     * the local attention of Mistral / Gemma 2 (W keys including the query's own). The tiled
     * kernels skip keys outside every window of a tile: the cost grows with the window, not
     * with Nk. Values below -1 are INVALID_ARGUMENT. */
    int window_left, window_right;
    /* Logit softcap c: 0 = none; else finite and > 0 (INVALID_ARGUMENT otherwise). */
    float softcap;
    /* Attention sinks: float32 buffer of Hq logits (from sinks_offset, in elements), one per query
     * head, joining every row's softmax denominator without a value (gpt-oss). NULL: none. */
    cl_mem sinks;
    size_t sinks_offset;
    /* Block-sparse layout: uint8 (block_mask.dtype CLATTN_U8), shape
     * [B|1, Hq|1, ceil(Nq / block_q), ceil(Nk / block_k)]; a zero block is skipped entirely (its
     * keys are neither loaded nor computed for its query rows), and the result equals that of
     * the dense mask the layout expands to (the last blocks may be ragged). block_q and block_k
     * must each be 16, 32, 64, 128 or 256 when block_mask is given (INVALID_ARGUMENT otherwise)
     * and are ignored without it. block_mask.buffer NULL: none. */
    clattn_tensor block_mask;
    unsigned block_q, block_k;

    /* ---- Serving and decoding (issue 17): one plan for a whole generation, mixed batches, paged
     * caches. All optional (NULL / 0 from _desc_init), composable with each other and with every
     * option above, in every algorithm (NAIVE: not q_offsets). The buffers are recorded (retained)
     * by the plan and read at each enqueue on the device: an engine bakes one plan for its
     * capacities (Nq_max queries, Nk_max keys per sequence), then per token updates the lengths
     * (and block table) in device memory and enqueues again -- no re-planning, no host round
     * trip. Length values are device data the library cannot check: each is clamped to its
     * range, so no value makes a kernel read or write outside the tensors.
     *
     * Sequence lengths: with q_lengths or q_offsets, sequence b has ql queries and kl keys
     * (kl = key_lengths[b] clamped to [0, Nk], or Nk without key_lengths) and its positions are
     * aligned to them: query row i (0 <= i < ql) sits at position i' = i + kl - ql, the position
     * the causal mask, the window and ALiBi use (without either field i' = i + Nk - Nq, as
     * above). A decoding step is ql = 1 at position kl - 1; a prefill chunk ql = n. Option
     * tensors (bias, mask, block mask) are indexed by (b, h, i, j) with i the sequence's own row.
     *
     * Per-sequence query lengths: int32 [B] from q_lengths_offset (elements): sequence b's
     * queries are rows 0 .. ql - 1 (ql = q_lengths[b] clamped to [0, Nq]) of its Nq rows of q;
     * rows ql .. Nq - 1 are padding, written as rows that see no key (zeros in out; lse -inf,
     * or the sink's logit with sinks). */
    cl_mem q_lengths;
    size_t q_lengths_offset;
    /* Packed variable-length queries (FlashAttention's cu_seqlens_q): int32 [B + 1]
     * nondecreasing offsets from q_offsets_offset. q, out and lse are then packed: q_shape
     * {1, Hq, T, D} (out {1, Hq, T, Dv}, lse {1, Hq, T, 1}) and sequence b's queries are rows
     * q_offsets[b] .. q_offsets[b + 1] - 1 (each offset clamped to [0, T], the end to at least the
     * start); B is k's batch (or the block table's rows). Rows outside every sequence are not
     * written; overlapping ranges (decreasing offsets) are the caller's error (rows written twice,
     * never outside out). Excludes q_lengths (INVALID_ARGUMENT). Mixed batches -- some sequences
     * prefilling many tokens, others decoding one -- run in one launch. NAIVE: UNSUPPORTED. */
    cl_mem q_offsets;
    size_t q_offsets_offset;
    /* Paged KV cache (include/clattn/kvcache.h documents the layout; clattn_kvcache_append_plan_*
     * writes new rows into it): block_table int32, shape [1, 1, B, max_pages] (a clattn_tensor view
     * of int32 elements, dtype left 0, as kvcache.h's tables), and page_size tokens per page (16, 32, 64, 128 or 256;
     * INVALID_ARGUMENT otherwise). With a block table, k and v are page pools: k_shape
     * {num_pages, Hk, page_size, D}, v_shape {num_pages, Hk, page_size, Dv}; each sequence has
     * Nk = max_pages * page_size key slots, key j in slot j % page_size of page
     * block_table[b][j / page_size], and key_lengths[b] (else Nk) of them are its keys. Pages
     * may be shared between sequences and appear in any order. A page id outside
     * [0, num_pages) masks the keys it would hold (never read; a row left with no key is a row
     * that sees none); clattn_kvcache_validate checks a table on the host when asked. Unlike
     * the other tensors the pools may be larger than any one sequence: q_shape[0] = B. */
    clattn_tensor block_table;
    size_t page_size;

    /* ---- Pieces of a longer sequence (issue 18: device groups, ring attention). A signed shift
     * of every query's aligned position: query row i sits at i' = i + Nk - Nq + position_offset
     * (with q_lengths / q_offsets: i + kl - ql + position_offset), the position the causal mask,
     * the window and ALiBi compare with the key index j. 0 (the default) keeps the alignment
     * above. For a block of a self-attention whose queries are the sequence's positions
     * [qa, qa + Nq) and whose keys are its positions [ka, ka + Nk), position_offset =
     * (qa - ka) - (Nk - Nq) makes the block's mask the full problem's: key j is visible from row
     * i iff ka + j <= qa + i. Partial results over key blocks merge exactly by their lse
     * (clattn_softmax_merge_enqueue). |position_offset| <= 2^30 (INVALID_ARGUMENT otherwise). */
    int64_t position_offset;
} clattn_softmax_desc;

CLATTN_API void clattn_softmax_desc_init(clattn_softmax_desc *desc);


/* Bakes a plan for softmax attention on fixed shapes:
 *   q_shape = {B, Hq, Nq, D}, k_shape = {B, Hk, Nk, D}, v_shape = {B, Hk, Nk, Dv}, with Hq a
 *   multiple of Hk (multi-head, grouped-query and multi-query attention), 1 <= D <= 512 and
 *   1 <= Dv <= 512 (Dv != D as MLA-style models need), any N >= 1. Out is [B, Hq, Nq, Dv].
 *   Where a kernel family's registers or local memory run out at large D, the scheduler picks a
 *   variant that still works (the plan info's launch string says which).
 * Chooses the kernel family and tiles (scheduler), builds or fetches the kernels (program cache)
 * and allocates any scratch. The desc's key_lengths buffer, if any, is recorded (retained).
 * desc NULL means the defaults of clattn_softmax_desc_init. *plan is set to NULL on every failure.
 * Status: NULL_POINTER, INVALID_SHAPE (zero sizes, D or Dv > 512), SHAPE_MISMATCH (also an
 * option tensor whose shape does not broadcast), INVALID_ARGUMENT (non-finite scale, causal or
 * alibi not 0 or 1, unknown algorithm, struct_size not set by _desc_init, window below -1,
 * softcap not finite or negative, block sizes not in {16, 32, 64, 128, 256}, slopes without
 * alibi), DTYPE_MISMATCH (a bias not float, a mask or block mask not CLATTN_U8),
 * BUFFER_TOO_SMALL (key_lengths, an option tensor's view, slopes or sinks beyond their buffer),
 * UNSUPPORTED (e.g. NAIVE with strided K), BUILD_FAILED, OpenCL allocation codes. An unknown
 * q/k/v/out_dtype is INVALID_ARGUMENT. */
CLATTN_API clattn_status clattn_softmax_plan_create(clattn_context *ctx,
                                                      const clattn_softmax_desc *desc,
                                                      const size_t q_shape[4],
                                                      const size_t k_shape[4],
                                                      const size_t v_shape[4],
                                                      clattn_plan **plan);

/* Enqueues out = softmax(scale * q k^T + mask) v on the context's queue.
 * Tensors: q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk, Dv], out [B, Hq, Nq, Dv] with the
 * plan's shapes;
 * lse optional (NULL): [B, Hq, Nq, 1] receives the natural-log log-sum-exp of each row's scaled
 * logits (and the sink, see the desc). A row that sees no key (causal offset, key length 0, masks)
 * gets zeros in out and -INFINITY in lse (the sink's logit with sinks). Every element of out (and
 * lse) is written.
 * Validation (before anything is enqueued): shapes match the plan, every view fits its buffer
 * (BUFFER_TOO_SMALL), out/lse do not alias q, k, v, the desc's option buffers or each other
 * (ALIASING), out has no zero
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
 * float32 arrays q [B,Hq,Nq,D], k [B,Hk,Nk,D], v [B,Hk,Nk,Dv], out [B,Hq,Nq,Dv], lse [B,Hq,Nq]
 * (may be NULL); the desc's option buffers (device memory) are used as given, key_lengths int32 [B] (may be NULL; overrides
 * desc->key_lengths; values must lie in [0, Nk], else INVALID_ARGUMENT). `out` and `lse` are only
 * written on success. */
CLATTN_API clattn_status clattn_softmax_host(clattn_context *ctx,
                                               const clattn_softmax_desc *desc,
                                               const size_t q_shape[4], const size_t k_shape[4],
                                               const size_t v_shape[4], const float *q,
                                               const float *k, const float *v,
                                               const int32_t *key_lengths, float *out, float *lse);


/* The plan the scheduler would choose for these shapes on a described device, without building
 * anything (pure function; `clattn devices` prints it); v is taken as k's shape (Dv = D) and the
 * desc's option tensors are not checked against buffers (none need exist). scratch_bytes is left 0. Status as for
 * clattn_softmax_plan_create's validation and scheduling steps; having no context, a refusal
 * leaves its message on the thread (clattn_context_last_error(NULL)) and *info untouched. */
CLATTN_API clattn_status clattn_softmax_schedule(const clattn_device_info *device,
                                                   const clattn_softmax_desc *desc,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   clattn_plan_info *info);

/* Merges the partial results of two disjoint key blocks of the same queries (split-KV, device
 * groups, ring attention: issue 18), in place on the first: with L = log(exp(lse) + exp(part_lse)),
 *   out = out * exp(lse - L) + part_out * exp(part_lse - L),  lse = L
 * per row. A row whose lse is -inf (it saw no key) takes the other's row as is; two such rows give
 * zeros and -inf. Exact in the sense that merging the partials of any split of the keys gives the
 * unsplit result to rounding (softmax is associative under this rule); an option that is not a
 * per-key term must be given to one block only (sinks: join exactly one block's denominator).
 * out / part_out: {B, Hq, Nq, Dv} of any element type (each its own tensor's dtype, any strides);
 * lse / part_lse: float32 {B, Hq, Nq, 1}. out and lse are read and written, the part tensors only
 * read; no output may overlap another tensor (ALIASING). Asynchronous: ordered after `wait` on
 * the context's queue, `event` (may be NULL) completes with it.
 * Status: NULL_POINTER, SHAPE_MISMATCH, DTYPE_MISMATCH, ALIASING, INVALID_SHAPE, OpenCL errors. */
CLATTN_API clattn_status clattn_softmax_merge_enqueue(clattn_context *ctx, const clattn_tensor *out,
                                                      const clattn_tensor *lse,
                                                      const clattn_tensor *part_out,
                                                      const clattn_tensor *part_lse,
                                                      cl_uint num_wait, const cl_event *wait,
                                                      cl_event *event);

#endif /* CLATTN_SOFTMAX_H */
