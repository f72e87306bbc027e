/* The host scheduler: a pure function from (device description, operator, shape) to a launch
 * plan. No OpenCL calls here, so it is unit-tested with made-up devices. */
#ifndef CLATTN_SCHED_H
#define CLATTN_SCHED_H

#include "clattn.h"

#define CLATTN__KEY_BLOCK 16 /* keys per float16 score vector in the CPU family and K panels */
#define CLATTN__MAX_HEAD_DIM 256

typedef struct clattn__attn_problem {
    size_t head_dim;
    size_t nq, nk;
    int causal;
} clattn__attn_problem;

typedef struct clattn__attn_launch {
    clattn_attention_algo algo; /* TILED_CPU, TILED_GPU or NAIVE, never AUTO */
    unsigned rows_per_item;     /* query rows owned by one work-item */
    unsigned tile_q;            /* query rows per work-group = rows_per_item * local_size */
    unsigned tile_kv;           /* keys per inner tile */
    size_t local_size;          /* work-group size along the query dimension */
    size_t local_mem_bytes;     /* __local bytes per work-group */
    char defines[256];          /* -D options for the kernel build */
} clattn__attn_launch;

/* Chooses the kernel family (when `requested` is AUTO) and its tiles. Returns UNSUPPORTED when a
 * requested family cannot run on the device (e.g. TILED_GPU with too little local memory for one
 * key row), INVALID_SHAPE for D outside [1, 256]. Writes a reason into `why` (may be NULL). */
clattn_status clattn__schedule_attention(const clattn_device_info *dev,
                                         const clattn__attn_problem *prob,
                                         clattn_attention_algo requested,
                                         clattn__attn_launch *out, char *why, size_t why_len);

/* Shipped per-vendor defaults (lib/tune/defaults.c, pure): the family name ("NVIDIA", "AMD",
 * "Intel", "Apple/ARM", "other GPU") and the TILED_GPU work-group size for a head dimension. */
const char *clattn__vendor_family(const clattn_device_info *dev);
size_t clattn__default_gpu_wg(const clattn_device_info *dev, size_t head_dim);

/* The family AUTO resolves to on this device. */
clattn_attention_algo clattn__attention_family(const clattn_device_info *dev);

/* A launch of a tiled family (TILED_CPU or TILED_GPU) from explicit parameters, validated against
 * the device: rows per work-item, work-group size and key tile (0 means the fixed key block for
 * TILED_CPU). UNSUPPORTED with a reason in `why` when they do not fit. */
clattn_status clattn__attention_launch_from(const clattn_device_info *dev,
                                            const clattn__attn_problem *prob,
                                            clattn_attention_algo algo, unsigned rows,
                                            size_t local_size, unsigned tile_kv,
                                            clattn__attn_launch *out, char *why, size_t why_len);

/* The tuner's search space: valid launches of the family `requested` resolves to (AUTO: the
 * device's family), the scheduler's default first, then by promise (fewest parameter steps away
 * from the default first). Writes at most `cap` and returns how many (0 when none applies, e.g.
 * NAIVE or an invalid head dimension). */
size_t clattn__attention_candidates(const clattn_device_info *dev,
                                    const clattn__attn_problem *prob,
                                    clattn_attention_algo requested, clattn__attn_launch *out,
                                    size_t cap);

/* Linear attention's chunking (pure): keys per chunk for `nk` keys and `bh` (batch x heads)
 * sequences. Causal: CLATTN__LIN_CAUSAL_CHUNK, the in-chunk masked part costing that much per
 * query row (the kernels are built for it). Non-causal: chunks only split the key sums for
 * parallelism, so as few as give `parallel` (batch x heads x chunk) tasks, at least
 * CLATTN__LIN_CAUSAL_CHUNK keys each and at most 256 chunks per sequence (each adds a partial
 * state to the scan). */
#define CLATTN__LIN_CAUSAL_CHUNK 64
size_t clattn__linear_chunk(const clattn_device_info *dev, size_t nk, size_t bh, int causal);

#endif
