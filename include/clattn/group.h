/* clattn: device groups, attention split over several OpenCL devices of one host (issue 18).
 * Part of the public API: include <clattn.h>, which includes this file. */
#ifndef CLATTN_GROUP_H
#define CLATTN_GROUP_H

#ifndef CLATTN_H
#error "include <clattn.h> instead of <clattn/group.h>"
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Device groups                                                                                  */
/* ---------------------------------------------------------------------------------------------- */

/* A device group runs one attention call over several clattn contexts (devices of any vendors
 * and speeds, e.g. PoCL's CPU and rusticl's llvmpipe), each doing a share of the work in
 * proportion to its weight. Two ways to split:
 *
 *   KEYS   the key/value sequence is cut into one contiguous slice per device; every device
 *          computes the partial output and lse of ALL queries over its slice (the desc's
 *          position_offset keeps causal masks, windows and ALiBi exact), then the partials are
 *          merged by lse on the first device (clattn_softmax_merge_enqueue). Partials of a device
 *          whose cl_context is the first device's (clGetContextInfo: contexts made with
 *          clattn_context_create_from_cl on one cl_context) are merged from their device buffers;
 *          the others are staged through host memory. Under causal masking the cut points balance
 *          visible (query, key) pairs, not keys (early keys are seen by more queries), and keys
 *          no query sees (causal, window, key lengths) are left out: slices are trimmed to their
 *          visible keys, empty ones skipped. Linear attention: causal, an exclusive scan of
 *          the slices' (S, z) states over the devices (each device runs its slice from the sum
 *          of the earlier slices' states, so the causal form is exact); non-causal, the slices'
 *          states summed and every device then runs the query pass of its query slice against
 *          the total (a prefill from the total over keys whose features are exactly 0).
 *   HEADS  the (batch, key head) pairs are dealt out in contiguous runs (a key head with all of
 *          its query heads): no merge, no replicated queries; exact for every linear form and
 *          every softmax option but ALiBi and sinks with more than one key head (refused).
 *
 * AUTO picks HEADS when one device has all the weight (its plain call), when the pairs are
 * plentiful (B * Hk >= 4 * devices of positive weight: rounding to whole pairs then costs a
 * device at most about a quarter of its share) or the keys are few (Nk < 16 * devices), else
 * KEYS; then, where that split cannot run the call (see the calls below), it takes the other.
 * The caller may force either (per call, or as the group's default in its options).
 *
 * Weights: a group's devices get shares proportional to their weights (non-negative, not all 0;
 * a device of weight 0 gets no work). At creation they are taken, per
 * clattn_group_options.weights: from each device's tuning database (clattn_tune) when every
 * device has a softmax entry for one common shape class (its tuned time, as GFLOP/s), else from a
 * quick calibration (one small softmax block, {1, 4, 256, 64} non-causal, timed on each device
 * after a warm-up run), or equal. A measured device below 2% of the fastest one gets weight 0
 * (its fixed costs -- uploads, a pass over every query of its slice -- would outweigh its
 * share). clattn_group_set_weights overrides them (taken as given).
 *
 * Ownership: the group keeps pointers to the caller's contexts and does not own them: destroy the
 * group first. A group must not be used from two threads at once, nor its contexts used by
 * others while a group call runs (the group enqueues on their queues and waits on them).
 *
 * Failures: every group call validates first; a failing device makes the call return that
 * device's status with a message naming the device ("device 1 (rusticl llvmpipe ...): ...") in
 * clattn_group_last_error; outputs are written only after every part succeeded. */

typedef struct clattn_group clattn_group;

typedef enum clattn_group_split {
    CLATTN_GROUP_SPLIT_AUTO = 0,  /* the rule above */
    CLATTN_GROUP_SPLIT_KEYS = 1,  /* key/value sequence slices, merged by lse (linear: states) */
    CLATTN_GROUP_SPLIT_HEADS = 2  /* (batch, key head) pairs, no merge */
} clattn_group_split;

typedef enum clattn_group_weights {
    CLATTN_GROUP_WEIGHTS_AUTO = 0,      /* tuning database when it has a figure, else calibrate */
    CLATTN_GROUP_WEIGHTS_CALIBRATE = 1, /* always time the calibration block */
    CLATTN_GROUP_WEIGHTS_EQUAL = 2,     /* 1 each (no device work at creation) */
    CLATTN_GROUP_WEIGHTS_TUNING_DB = 3, /* the database's figures; set by the library only */
    CLATTN_GROUP_WEIGHTS_CALLER = 4     /* clattn_group_set_weights; set by the library only */
} clattn_group_weights;

typedef struct clattn_group_options {
    size_t struct_size;
    /* How the initial weights are found (AUTO, CALIBRATE or EQUAL; default AUTO). */
    clattn_group_weights weights;
    /* The split of calls made with CLATTN_GROUP_SPLIT_AUTO (default AUTO: the rule above). */
    clattn_group_split split;
} clattn_group_options;

CLATTN_API void clattn_group_options_init(clattn_group_options *opts);

/* Creates a group over contexts[0 .. n) (1 <= n <= 64; distinct pointers; the same device may
 * appear in two contexts). contexts[0] is the first device: merges run there. opts NULL: the
 * defaults. Calibration (when chosen) runs here and blocks. *group is NULL on failure.
 * Status: NULL_POINTER, INVALID_ARGUMENT (n, a repeated context, struct_size, unknown enums),
 * OUT_OF_HOST_MEMORY, a calibrating device's status (message names it). */
CLATTN_API clattn_status clattn_group_create(clattn_context *const *contexts, size_t n,
                                             const clattn_group_options *opts,
                                             clattn_group **group);

/* Releases the group (not its contexts). NULL-safe. */
CLATTN_API void clattn_group_destroy(clattn_group *group);

/* The number of devices. 0 for NULL. */
CLATTN_API size_t clattn_group_size(const clattn_group *group);

/* Sets the weights: n must equal the group's size, each finite and >= 0, their sum > 0
 * (INVALID_ARGUMENT otherwise, weights unchanged). They are stored normalised to sum 1. */
CLATTN_API clattn_status clattn_group_set_weights(clattn_group *group, const double *weights,
                                                  size_t n);

/* Copies the normalised weights into weights[0 .. n) (n >= the group's size, else
 * BUFFER_TOO_SMALL) and, when source is not NULL, where they came from (CALIBRATE, EQUAL,
 * TUNING_DB or CALLER). */
CLATTN_API clattn_status clattn_group_get_weights(const clattn_group *group, double *weights,
                                                  size_t n, clattn_group_weights *source);

/* The message of the group's most recent failure ("" when none). Library-owned, valid until the
 * next group call. */
CLATTN_API const char *clattn_group_last_error(const clattn_group *group);

/* What the last successful call did: the split used, and per device the keys (KEYS) or (batch,
 * key head) pairs (HEADS) it got, 0 for a device left out (weight 0, or a causal slice no query
 * sees). */
typedef struct clattn_group_run_info {
    clattn_group_split split;
    size_t parts;         /* devices that ran something */
    size_t share[64];     /* per device: keys or pairs */
    size_t share_start[64];
} clattn_group_run_info;
CLATTN_API clattn_status clattn_group_get_run_info(const clattn_group *group,
                                                   clattn_group_run_info *info);

/* Exact softmax attention over the group, blocking, on host memory as clattn_softmax_host takes:
 * contiguous float32 q [B,Hq,Nq,D], k [B,Hk,Nk,D], v [B,Hk,Nk,Dv], out [B,Hq,Nq,Dv], lse
 * [B,Hq,Nq] (may be NULL), key_lengths int32 [B] (may be NULL; values in [0, Nk]). Shapes and
 * the desc as for clattn_softmax_plan_create: causal, cross attention (Nq != Nk), GQA/MQA,
 * scale, softcap, window, ALiBi with its standard slopes, position_offset and algorithm work in
 * both splits. Sinks and ALiBi slopes buffers (float32 [Hq] on the FIRST context, read once per
 * call): KEYS gives the sinks to one slice only (a sink is not a per-key term); HEADS needs
 * Hk == 1 for them (UNSUPPORTED otherwise; AUTO then takes KEYS). Desc fields that are tensors
 * of one context (bias, mask, block_mask, q_lengths, q_offsets, block_table, a key_lengths
 * buffer: pass key_lengths as the host array instead) are UNSUPPORTED with a message. The desc's
 * dtype fields are ignored (float32). `split`: AUTO uses the group's default (options). out and
 * lse are written only on success.
 * Status: as clattn_softmax_host, plus UNSUPPORTED as above and each device's own failures. */
CLATTN_API clattn_status clattn_group_softmax_host(clattn_group *group,
                                                   const clattn_softmax_desc *desc,
                                                   clattn_group_split split,
                                                   const size_t q_shape[4],
                                                   const size_t k_shape[4],
                                                   const size_t v_shape[4], const float *q,
                                                   const float *k, const float *v,
                                                   const int32_t *key_lengths, float *out,
                                                   float *lse);

/* clattn_group_softmax_host on device tensors of the group's FIRST context: q, k, v, out and lse
 * (may be NULL) float32, dense [b, h, n, d] views (clattn_tensor_make's strides, any offset) of
 * buffers of the first context's cl_context. Blocking: the inputs are read after everything
 * enqueued before on the first context's queue, staged through host memory to every device
 * (the first device's part too), and out / lse are written (blocking) only on success.
 * Status: as clattn_group_softmax_host, plus DTYPE_MISMATCH (not float32), UNSUPPORTED (not
 * dense), INVALID_CONTEXT (a buffer of another context), BUFFER_TOO_SMALL, SHAPE_MISMATCH (out
 * or lse), ALIASING (out or lse overlapping another tensor). */
CLATTN_API clattn_status clattn_group_softmax_tensors(clattn_group *group,
                                                      const clattn_softmax_desc *desc,
                                                      clattn_group_split split,
                                                      const clattn_tensor *q,
                                                      const clattn_tensor *k,
                                                      const clattn_tensor *v,
                                                      const int32_t *key_lengths,
                                                      const clattn_tensor *out,
                                                      const clattn_tensor *lse);

/* Linear attention over the group, blocking, on host memory as clattn_linear_host takes. KEYS
 * (the sequence split above; causal: exclusive scan of the states; non-causal: summed states and
 * a query pass) needs the element-wise maps (ELU, RELU, IDENTITY) without momentum: FAVOR's
 * stabilised states and the momentum forms, whose states do not add, are UNSUPPORTED there
 * (AUTO takes HEADS for them, which is exact for every form). out is written only on success.
 * Status: as clattn_linear_host, plus UNSUPPORTED as above and each device's own failures. */
CLATTN_API clattn_status clattn_group_linear_host(clattn_group *group,
                                                  const clattn_linear_desc *desc,
                                                  clattn_group_split split,
                                                  const size_t q_shape[4],
                                                  const size_t k_shape[4],
                                                  const size_t v_shape[4], const float *q,
                                                  const float *k, const float *v, float *out);

#endif /* CLATTN_GROUP_H */
