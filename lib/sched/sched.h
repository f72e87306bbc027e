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

/* Linear attention's chunking (pure): keys per chunk for `nk` keys and `bh` (batch x heads)
 * sequences. Causal: CLATTN__LIN_CAUSAL_CHUNK, the in-chunk masked part costing that much per
 * query row (the kernels are built for it). Non-causal: chunks only split the key sums for
 * parallelism, so as few as give `parallel` (batch x heads x chunk) tasks, at least
 * CLATTN__LIN_CAUSAL_CHUNK keys each and at most 256 chunks per sequence (each adds a partial
 * state to the scan). */
#define CLATTN__LIN_CAUSAL_CHUNK 64
size_t clattn__linear_chunk(const clattn_device_info *dev, size_t nk, size_t bh, int causal);


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
} clattn__linear_problem;

/* What a linear plan launches: the form (FUSED or GEMM for the non-causal form without
 * momentum, FUSED otherwise), the chunking and work-group sizes of its kernels. */
typedef struct clattn__linear_launch {
    int algo;            /* clattn_linear_algo, never AUTO */
    size_t chunk;        /* keys per chunk of the chunk-state kernels */
    size_t local_size;   /* work-group size of the chunk-state and output kernels (0: driver) */
    size_t feature_local;/* work-group size of the feature kernels (0: driver) */
    int one_item_groups; /* long-loop kernels run one item per group (device quirk) */
    char defines[256];   /* -D options of linear.cl: every one LINEAR_-prefixed */
} clattn__linear_launch;

/* ---- end linear ---- */



/* ---- LSH attention (lib/sched/sched_lsh.c) ---- */
/* Keys per panel of the attend kernel and the granule the head dims and chunks are padded to:
 * one float16 vector (kernels_cl/lsh.cl's LSH_PANEL, passed as -DLSH_PANEL). */
#define CLATTN__LSH_PANEL 16

typedef struct clattn__lsh_problem {
    size_t bh, n, d, dv;                     /* batch x heads, length, head dims of q and v */
    size_t n_hashes, n_buckets, chunk_size;  /* as in clattn_lsh_desc (validated by the caller) */
    int causal;
} clattn__lsh_problem;

/* What an LSH plan launches. Every kernel runs with a fixed work-group size (PoCL compiles a
 * kernel once per local size; the driver's own choice would follow N). */
typedef struct clattn__lsh_launch {
    unsigned rows;       /* LSH_ROWS: positions per hash work-item and sorted queries per attend
                          * work-item; 1, 2, 4 or 8 */
    size_t local_size;   /* attend work-group size; rows * local_size divides CLATTN__LSH_PANEL */
    size_t hash_local;   /* hash work-group size (rows * hash_local = row_local) */
    size_t row_local;    /* work-group size of the per-position kernels (pack_v, combine) */
    int counting_sort;   /* 1: lsh.cl's per-(b, h, round) counting sort; 0: the radix-sort block
                          * (lib/ops/sort.h) */
    unsigned sort_tile;  /* counting sort: positions per histogram tile (>= n_buckets) */
    unsigned key_bits;   /* radix sort: bits of a bucket number */
    char defines[256];   /* -D options of lsh.cl, every one LSH_-prefixed */
} clattn__lsh_launch;

/* The counting sort of a (b, h, round) segment clears n_buckets counters per histogram tile of
 * max(n_buckets, CLATTN__LSH_MIN_TILE) positions and scans n_buckets x tiles counters in one
 * work-item; above CLATTN__LSH_COUNTING_MAX_BUCKETS buckets (or where one of those loops would
 * pass the device's loop-iteration cap) the radix-sort block sorts instead. sched_lsh.c says
 * where the figures come from. */
#define CLATTN__LSH_MIN_TILE 256
#define CLATTN__LSH_COUNTING_MAX_BUCKETS 1024

/* The rule-based launch. INVALID_SHAPE for D or Dv outside [1, 256] or a zero length,
 * INVALID_ARGUMENT for hashes, buckets or chunk outside the desc's ranges; writes a reason into
 * `why` (may be NULL). */
clattn_status clattn__schedule_lsh(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                   clattn__lsh_launch *out, char *why, size_t why_len);

/* A launch from explicit parameters (the tuner's candidates, a tuning-database entry): rows
 * per work-item, attend work-group size and the sort, validated against the device and the
 * problem (UNSUPPORTED with a reason when they do not fit); the rest as the scheduler sets it. */
clattn_status clattn__lsh_launch_from(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                      unsigned rows, size_t local_size, int counting_sort,
                                      clattn__lsh_launch *out, char *why, size_t why_len);

/* The tuner's search space: the scheduler's launch first, then the valid (rows, attend
 * work-group) combinations with the default's sort, fewest steps from the default first. Writes
 * at most `cap` and returns how many (0 when the problem is invalid). */
size_t clattn__lsh_candidates(const clattn_device_info *dev, const clattn__lsh_problem *p,
                              clattn__lsh_launch *out, size_t cap);

/* An LSH plan with a given launch instead of the scheduler's (lib/ops/lsh.c; the tuner's entry). */
clattn_status clattn__lsh_plan_create_launch(clattn_context *ctx, const clattn_lsh_desc *desc,
                                             const size_t q_shape[4], const size_t v_shape[4],
                                             const clattn__lsh_launch *launch, clattn_plan **plan);

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
