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
#define CLATTN__ROUTING_MAX_D 256 /* ROUTING_MAX_D: longest q/k/v row the kernels hold privately */

typedef struct clattn__routing_problem {
    size_t batch, heads_q, heads_k; /* heads_q a multiple of heads_k (GQA) */
    size_t n;                       /* sequence length */
    size_t d, dv;                   /* head dims of q/k and of v */
    size_t clusters, window;        /* C and w (resolved: never WINDOW_AUTO) */
    int causal;
} clattn__routing_problem;

/* What a routing plan launches: the panel width of its float16 kernels, the private row length
 * and the work-group sizes of the kernels that keep private rows. (The sort/top-k blocks it uses
 * take clattn__schedule_blocks' launch.) */
typedef struct clattn__routing_launch {
    unsigned lanes;       /* ROUTING_LANES: centroids / keys per float16 score vector */
    unsigned max_d;       /* ROUTING_MAX_D: private row length (one program for every D) */
    size_t rows_local;    /* work-group size of clattn_routing_scores / _assign (divides N) */
    size_t attend_local;  /* work-group size of clattn_routing_attend (divides w) */
    char defines[128];    /* -D options of routing.cl, every one ROUTING_-prefixed */
} clattn__routing_launch;

/* The launch of a routing plan. INVALID_SHAPE (with a reason in `why`, may be NULL) when a size is
 * 0, D or Dv is above CLATTN__ROUTING_MAX_D, or heads_q is not a multiple of heads_k. */
clattn_status clattn__schedule_routing(const clattn_device_info *dev,
                                       const clattn__routing_problem *p,
                                       clattn__routing_launch *out, char *why, size_t why_len);

/* ---- end routing ---- */



/* ---- SSM and GSS (lib/sched/sched_ssm.c) ---- */

/* ---- end SSM ---- */



/* ---- building blocks: sort, top-k, gather (lib/sched/sched_blocks.c) ---- */
/* How the radix sort, segmented top-k and scatter-mean of lib/blocks/sort.c are launched: each
 * work-item walks a contiguous block of one segment with 2^bits private counters. */
typedef struct clattn__blocks_launch {
    unsigned bits;        /* SORT_BITS: bits per radix digit (divides 32) */
    size_t min_block;     /* elements per work-item, at least (counters stay a small part) */
    size_t max_block;     /* elements per work-item, at most (loop length; driver loop caps) */
    size_t items;         /* work-items to aim for over all segments */
    size_t local_size;    /* work-group size at most of the per-block kernels */
    char defines[64];     /* -D options of sort.cl, every one SORT_-prefixed */
} clattn__blocks_launch;

void clattn__schedule_blocks(const clattn_device_info *dev, clattn__blocks_launch *out);
/* Elements per work-item for `nseg` segments of `len` elements (within [min_block, max_block]). */
size_t clattn__sort_block(const clattn__blocks_launch *L, size_t nseg, size_t len);

/* ---- end building blocks ---- */

#endif
