/* The host scheduler: a pure function from (device description, operator, shape) to a launch
 * plan. No OpenCL calls here, so it is unit-tested with made-up devices. */
#ifndef CLATTN_SCHED_H
#define CLATTN_SCHED_H

#include "clattn.h"

#define CLATTN__KEY_BLOCK 16 /* keys per float16 score vector in the CPU family and K panels */
#define CLATTN__MAX_HEAD_DIM 256

typedef struct clattn__softmax_problem {
    size_t head_dim;
    size_t nq, nk;
    int causal;
} clattn__softmax_problem;

typedef struct clattn__softmax_launch {
    clattn_softmax_algo algo; /* TILED_CPU, TILED_GPU or NAIVE, never AUTO */
    unsigned rows_per_item;     /* query rows owned by one work-item */
    unsigned tile_q;            /* query rows per work-group = rows_per_item * local_size */
    unsigned tile_kv;           /* keys per inner tile */
    size_t local_size;          /* work-group size along the query dimension */
    size_t local_mem_bytes;     /* __local bytes per work-group */
    char defines[256];          /* -D options for the kernel build */
} clattn__softmax_launch;

/* Chooses the kernel family (when `requested` is AUTO) and its tiles. Returns UNSUPPORTED when a
 * requested family cannot run on the device (e.g. TILED_GPU with too little local memory for one
 * key row), INVALID_SHAPE for D outside [1, 256]. Writes a reason into `why` (may be NULL). */
clattn_status clattn__schedule_softmax(const clattn_device_info *dev,
                                         const clattn__softmax_problem *prob,
                                         clattn_softmax_algo requested,
                                         clattn__softmax_launch *out, char *why, size_t why_len);

/* Shipped per-vendor defaults (lib/tune/defaults.c, pure): the family name ("NVIDIA", "AMD",
 * "Intel", "Apple/ARM", "other GPU") and the TILED_GPU work-group size for a head dimension. */
const char *clattn__vendor_family(const clattn_device_info *dev);
size_t clattn__default_gpu_wg(const clattn_device_info *dev, size_t head_dim);

/* The family AUTO resolves to on this device. */
clattn_softmax_algo clattn__softmax_family(const clattn_device_info *dev);

/* A launch of a tiled family (TILED_CPU or TILED_GPU) from explicit parameters, validated against
 * the device: rows per work-item, work-group size and key tile (0 means the fixed key block for
 * TILED_CPU). UNSUPPORTED with a reason in `why` when they do not fit. */
clattn_status clattn__softmax_launch_from(const clattn_device_info *dev,
                                            const clattn__softmax_problem *prob,
                                            clattn_softmax_algo algo, unsigned rows,
                                            size_t local_size, unsigned tile_kv,
                                            clattn__softmax_launch *out, char *why, size_t why_len);

/* The tuner's search space: valid launches of the family `requested` resolves to (AUTO: the
 * device's family), the scheduler's default first, then by promise (fewest parameter steps away
 * from the default first). Writes at most `cap` and returns how many (0 when none applies, e.g.
 * NAIVE or an invalid head dimension). */
size_t clattn__softmax_candidates(const clattn_device_info *dev,
                                    const clattn__softmax_problem *prob,
                                    clattn_softmax_algo requested, clattn__softmax_launch *out,
                                    size_t cap);

/* ---------------------------------------------------------------------------------------------
 * Every other operator's launch decisions, one section each (pure functions of the device
 * description and the problem; unit-tested in tests/test_scheduler.c on made-up devices).
 * Constants that set a crossover are named here with the measurement that set them.
 * ------------------------------------------------------------------------------------------- */

/* ---- linear attention (lib/sched/sched_linear.c) ---- */
typedef struct clattn__linear_problem {
    size_t bh;      /* batch x query heads */
    size_t nq, nk;  /* query and key lengths (1 for a decoding step) */
    size_t d, dv;   /* head dims of q/k and of v */
    size_t m;       /* features */
    int causal;     /* 0 or 1 */
    int momentum;   /* clattn_momentum */
    int favor;      /* 1 for FAVOR+ features */
    size_t bh_kv;   /* batch x key/value heads (GQA: bh / bh_kv query heads share one); 0: bh */
} clattn__linear_problem;

/* What a linear plan launches: the form (FUSED or GEMM for the non-causal form without
 * momentum, FUSED otherwise), the chunking, the register blocking and work-group sizes of its
 * kernels. Every tunable reaches linear.cl through `defines` (LINEAR_-prefixed). */
typedef struct clattn__linear_launch {
    int algo;            /* clattn_linear_algo, never AUTO */
    size_t chunk;        /* keys per chunk of the chunk-state kernels (causal: block_chunk) */
    size_t local_size;   /* work-group size of the register-blocked kernels (0: driver) */
    size_t feature_local;/* work-group size of the element-wise feature kernels (0: driver) */
    int one_item_groups; /* every kernel runs one item per group (device quirk) */
    char defines[256];   /* -D options of linear.cl: every one LINEAR_-prefixed */
    unsigned block_chunk;  /* LINEAR_CHUNK: keys per causal chunk (in-chunk masked block) */
    unsigned rows;         /* LINEAR_RB: query rows per output work-item (divides block_chunk) */
    unsigned value_blocks; /* LINEAR_EB: float16 value blocks per output/chunk-state item */
    unsigned feature_rows; /* LINEAR_MB: feature rows per chunk-state item (divides 16) */
    size_t adaptive_span;  /* tokens per launch of the sequential adaptive scan (0: all) */
} clattn__linear_launch;

/* Keys per causal chunk (the kernels' default LINEAR_CHUNK). */
#define CLATTN__LIN_CAUSAL_CHUNK 64

/* Linear attention's non-causal chunking (pure): keys per chunk for `nk` keys and `bh` (batch x
 * key heads) sequences. Causal: CLATTN__LIN_CAUSAL_CHUNK. Non-causal: chunks only split the key
 * sums for parallelism, so as few as give `parallel` (batch x heads x chunk) tasks, at least
 * CLATTN__LIN_CAUSAL_CHUNK keys each and at most 256 chunks per sequence (each adds a partial
 * state to the scan). */
size_t clattn__linear_chunk(const clattn_device_info *dev, size_t nk, size_t bh, int causal);

/* The launch of a linear plan: the form (AUTO: GEMM on GPU-like devices for the non-causal form
 * without momentum, FUSED otherwise), chunking, register blocking, work-group sizes (one item per
 * group on CPU-like devices for the register-blocked kernels; for every kernel on devices with a
 * loop_iteration_cap or simt_cpu) and the adaptive scan's split on loop-capped devices.
 * UNSUPPORTED (with a reason in `why`) for GEMM with the causal or momentum forms and for FAVOR
 * with more features than a loop-capped device computes correctly; INVALID_ARGUMENT for an
 * unknown algorithm; INVALID_SHAPE for empty or oversized dimensions. */
clattn_status clattn__schedule_linear(const clattn_device_info *dev,
                                      const clattn__linear_problem *p, int requested_algo,
                                      clattn__linear_launch *out, char *why, size_t why_len);

/* A launch from explicit parameters, validated against the device and the problem: algo (FUSED
 * or GEMM), non-causal chunk (0: the scheduler's), causal block chunk (32, 64 or 128), rows per
 * output item (4, 8 or 16, dividing block_chunk), value blocks (1, 2 or 4), feature rows (2, 4 or
 * 8) and the register-blocked kernels' work-group size (0: driver, or 1). UNSUPPORTED with a
 * reason when they do not fit. */
clattn_status clattn__linear_launch_from(const clattn_device_info *dev,
                                         const clattn__linear_problem *p, int algo, size_t chunk,
                                         unsigned block_chunk, unsigned rows,
                                         unsigned value_blocks, unsigned feature_rows,
                                         size_t local_size, clattn__linear_launch *out, char *why,
                                         size_t why_len);

/* The tuner's search space: valid launches of the algorithm AUTO resolves to, the scheduler's
 * default first (then the nearest variations). Writes at most `cap`; returns how many (0 when the
 * problem cannot run on the device). On loop-capped devices only the default (the quirk limits
 * were measured for it). */
size_t clattn__linear_candidates(const clattn_device_info *dev, const clattn__linear_problem *p,
                                 clattn__linear_launch *out, size_t cap);

/* The problem of a validated desc and shapes q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk,
 * Dv] (lib/ops/linear.c). */
void clattn__linear_problem_make(const clattn_linear_desc *desc, const size_t q_shape[4],
                                 const size_t k_shape[4], const size_t v_shape[4],
                                 clattn__linear_problem *out);

/* A linear plan with the caller's launch instead of the scheduler's (the tuner; lib/ops/linear.c).
 * The launch must come from clattn__linear_candidates / _launch_from for this problem. */
clattn_status clattn__linear_plan_create_launch(clattn_context *ctx,
                                                const clattn_linear_desc *desc,
                                                const size_t q_shape[4], const size_t k_shape[4],
                                                const size_t v_shape[4],
                                                const clattn__linear_launch *launch,
                                                clattn_plan **plan);

/* ---- end linear ---- */



/* ---- LSH attention (lib/sched/sched_lsh.c) ---- */
typedef struct clattn__lsh_problem {
    size_t bh, n, d, dv;
    size_t n_hashes, n_buckets, chunk_size;
    int causal;
} clattn__lsh_problem;

typedef struct clattn__lsh_launch {
    unsigned rows;       /* query rows per attend work-item */
    size_t local_size;   /* attend work-group size (0: driver) */
    int counting_sort;   /* bucket sort: counting sort (few buckets) or the radix sort block */
    char defines[256];   /* -D options of lsh.cl, LSH_-prefixed */
} clattn__lsh_launch;

/* ---- end LSH ---- */



/* ---- RPE attention (lib/sched/sched_rpe.c) ---- */

/* ---- end RPE ---- */



/* ---- routing attention (lib/sched/sched_routing.c) ---- */

/* ---- end routing ---- */



/* ---- SSM and GSS (lib/sched/sched_ssm.c) ---- */

/* ---- end SSM ---- */



/* ---- building blocks: sort, top-k, gather (lib/sched/sched_blocks.c) ---- */

/* ---- end building blocks ---- */

#endif
