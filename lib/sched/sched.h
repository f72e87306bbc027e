/* The host scheduler: a pure function from (device description, operator, shape) to a launch
 * plan. No OpenCL calls here, so it is unit-tested with made-up devices. */
#ifndef CLATTN_SCHED_H
#define CLATTN_SCHED_H

#include "clattn.h"

#define CLATTN__KEY_BLOCK 16 /* keys per float16 score vector in the CPU family and K panels */
#define CLATTN__MAX_HEAD_DIM 256
#define CLATTN__SOFTMAX_MAX_HEAD_DIM 512 /* softmax attention's D and Dv (issue 16) */

typedef struct clattn__softmax_problem {
    size_t head_dim;
    size_t nq, nk;
    int causal;
    size_t head_dim_v; /* V's and out's head dim; 0 = head_dim */
} clattn__softmax_problem;

typedef struct clattn__softmax_launch {
    clattn_softmax_algo algo; /* TILED_CPU, TILED_GPU or NAIVE, never AUTO */
    unsigned rows_per_item;     /* query rows owned by one work-item (TILED_CPU: per register group) */
    unsigned tile_q;            /* query rows per work-group (TILED_CPU: x its groups) */
    unsigned tile_kv;           /* keys per inner tile */
    size_t local_size;          /* work-group size along the query dimension */
    size_t local_mem_bytes;     /* __local bytes per work-group */
    char defines[256];          /* -D options for the kernel build */
    /* TILED_GPU's register-tiled kernel (kernels_cl/softmax_gpu.cl): work-group gpu_tx x gpu_ty,
     * micro-tiles gpu_rm rows x gpu_rn keys, K and V tiles sharing one buffer when gpu_kv_shared.
     * gpu_tx == 0: TILED_GPU's one-row-per-work-item kernel (softmax.cl, clattn_softmax_fwd_gpu). */
    unsigned gpu_tx, gpu_ty, gpu_rm, gpu_rn, gpu_kv_shared;
    /* The register-tiled kernel's head-dim chunk (issue 16, D/Dv up to 512): 0 stages whole head
     * dims; else Q, K and V go through __local memory gpu_dchunk head dims at a time. */
    unsigned gpu_dchunk;
} clattn__softmax_launch;

/* Chooses the kernel family (when `requested` is AUTO) and its tiles. Returns UNSUPPORTED when a
 * requested family cannot run on the device (e.g. TILED_GPU with too little local memory for one
 * key row), INVALID_SHAPE for D outside [1, 256]. Writes a reason into `why` (may be NULL). */
clattn_status clattn__schedule_softmax(const clattn_device_info *dev,
                                         const clattn__softmax_problem *prob,
                                         clattn_softmax_algo requested,
                                         clattn__softmax_launch *out, char *why, size_t why_len);

/* Split-KV (issue 17): the number of key ranges S a TILED_CPU launch `L` of problem `p` with
 * `heads` = B * Hq (query heads times batch) splits its keys into; 1 = unsplit (launches of other
 * families, prefill-sized Nq, short key sequences). The rule is in lib/sched/sched_softmax.c. */
unsigned clattn__softmax_cpu_splits(const clattn_device_info *dev,
                                    const clattn__softmax_problem *p,
                                    const clattn__softmax_launch *L, size_t heads);
/* GQA folding (issue 17): the query heads G a TILED_CPU work-item of launch `L` runs per KV head
 * (-DSOFTMAX_GQA_FOLD=G), 1 = none; `uniform`: no option varies by head within a group. Rule and
 * how it combines with the splits: lib/sched/sched_softmax.c. */
unsigned clattn__softmax_cpu_fold(const clattn__softmax_launch *L, size_t nq, size_t hq,
                                  size_t hk, int uniform);

/* The same for TILED_GPU's register-tiled kernel (gpu_tx != 0; 1 for every other launch);
 * CLATTN_SOFTMAX_GPU_SPLITS=<n> forces it. The rule is in lib/sched/sched_softmax.c. */
unsigned clattn__softmax_gpu_splits(const clattn_device_info *dev,
                                    const clattn__softmax_problem *p,
                                    const clattn__softmax_launch *L, size_t heads);

/* Shipped per-vendor defaults (lib/tune/defaults.c, pure): the family name ("NVIDIA", "AMD",
 * "Intel", "Apple/ARM", "other GPU") and the TILED_GPU work-group size for a head dimension. */
const char *clattn__vendor_family(const clattn_device_info *dev);
size_t clattn__default_gpu_wg(const clattn_device_info *dev, size_t head_dim);

/* The family AUTO resolves to on this device. */
clattn_softmax_algo clattn__softmax_family(const clattn_device_info *dev);

/* A launch of a tiled family (TILED_CPU or TILED_GPU) from explicit parameters, validated against
 * the device: rows per work-item (TILED_CPU: per register group), work-group size and key tile
 * (TILED_CPU: the key block, 0 for the default). UNSUPPORTED with a reason in `why` when they do
 * not fit. */
clattn_status clattn__softmax_launch_from(const clattn_device_info *dev,
                                            const clattn__softmax_problem *prob,
                                            clattn_softmax_algo algo, unsigned rows,
                                            size_t local_size, unsigned tile_kv,
                                            clattn__softmax_launch *out, char *why, size_t why_len);

/* A launch of TILED_GPU's register-tiled kernel from explicit parameters (work-group tx x ty,
 * micro-tile rm x rn, K/V buffer shared or not), validated against the device (work-group limit,
 * local memory, register budget). UNSUPPORTED with a reason in `why` when they do not fit. */
clattn_status clattn__softmax_launch_gpu_rt(const clattn_device_info *dev,
                                            const clattn__softmax_problem *prob, unsigned tx,
                                            unsigned ty, unsigned rm, unsigned rn,
                                            unsigned kv_shared, clattn__softmax_launch *out,
                                            char *why, size_t why_len);
/* __local bytes of that kernel's work-group, and its micro-tile state in floats per work-item. */
size_t clattn__softmax_gpu_rt_local_bytes(size_t d, unsigned tx, unsigned ty, unsigned rm,
                                          unsigned rn, unsigned kv_shared);
size_t clattn__softmax_gpu_rt_regs(size_t d, unsigned tx, unsigned rm, unsigned rn);
/* The scheduler's model of a register-tiled launch (higher is better; lib/sched/sched_softmax.c). */
double clattn__softmax_gpu_rt_score(const clattn_device_info *dev, size_t d,
                                    const clattn__softmax_launch *L);
/* The same with V's head dim dv (0 = d) and a head-dim chunk (0: whole head dims); the
 * functions above are these at dv = d, dchunk = 0. */
clattn_status clattn__softmax_launch_gpu_rt_dc(const clattn_device_info *dev,
                                               const clattn__softmax_problem *prob, unsigned tx,
                                               unsigned ty, unsigned rm, unsigned rn,
                                               unsigned kv_shared, unsigned dchunk,
                                               clattn__softmax_launch *out, char *why,
                                               size_t why_len);
size_t clattn__softmax_gpu_rt_local_bytes_dv(size_t d, size_t dv, unsigned tx, unsigned ty,
                                             unsigned rm, unsigned rn, unsigned kv_shared,
                                             unsigned dchunk);
size_t clattn__softmax_gpu_rt_regs_dv(size_t dv, unsigned tx, unsigned rm, unsigned rn,
                                      unsigned dchunk);
double clattn__softmax_gpu_rt_score_dv(const clattn_device_info *dev, size_t d, size_t dv,
                                       const clattn__softmax_launch *L);
/* SIMD width of a GPU vendor family (lib/tune/defaults.c): 32 NVIDIA, 64 AMD, 16 Intel, 32
 * Apple/ARM, 0 unknown. */
unsigned clattn__gpu_simd_width(const clattn_device_info *dev);

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
 * description and the problem; unit-tested in tests/test_sched_<op>.c on made-up devices).
 * Constants that set a crossover are named here with the measurement that set them.
 * ------------------------------------------------------------------------------------------- */

/* ---- linear attention (lib/sched/sched_linear.c) ---- */
typedef struct clattn__linear_problem {
    size_t bh;      /* batch x query heads */
    size_t nq, nk;  /* query and key lengths (1 for a decoding step) */
    size_t d, dv;   /* head dims of q/k and of v */
    size_t m;       /* features */
    int causal;     /* 0 or 1 */
    int momentum;   /* clattn_linear_momentum */
    int favor;      /* 1 for FAVOR+ features */
    size_t bh_kv;   /* batch x key/value heads (GQA: bh / bh_kv query heads share one); 0: bh */
    /* The non-causal output kernel (CLATTN_LINEAR_OUT_KERNEL=rows|tiled|tiled:TX,TY,RM,RN, read
     * by lib/ops/linear.c): 0 the scheduler's, 1 the per-row kernels, 2 the register-tiled
     * clattn_linear_out_tiled (out_tile: its tile, 0s for the scheduler's). */
    int out_kernel;
    unsigned out_tile[4];
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
    /* The non-causal output rows through linear_fused.cl's register-tiled
     * clattn_linear_out_tiled (GPU-like devices): work-group ot_tx x ot_ty (1-D, out_local items),
     * micro-tile ot_rm rows x ot_rn value columns. 0: the per-row output kernels. */
    int out_tiled;
    unsigned ot_tx, ot_ty, ot_rm, ot_rn;
    size_t out_local;
} clattn__linear_launch;

/* Keys per causal chunk (the kernels' default LINEAR_CHUNK). */
#define CLATTN__LIN_CAUSAL_CHUNK 64

/* Linear attention's non-causal chunking (pure): keys per chunk for `nk` keys and `bh` (batch x
 * key heads) sequences. Causal: CLATTN__LIN_CAUSAL_CHUNK. Non-causal: chunks only split the key
 * sums for parallelism, so as few as give `parallel` (batch x heads x chunk) tasks, at least
 * CLATTN__LIN_CAUSAL_CHUNK keys each and at most 256 chunks per sequence (each adds a partial
 * state to the scan). */
size_t clattn__linear_chunk(const clattn_device_info *dev, size_t nk, size_t bh, int causal);
/* The non-causal chunk a launch uses: clattn__linear_chunk, capped on the CPU family so that a
 * chunk's key rows stay in a core's L2 (at most 256 chunks per key head). */
size_t clattn__linear_cpu_chunk(const clattn_device_info *dev, const clattn__linear_problem *p);

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
/* Sets a linear launch's non-causal output kernel: tx = 0 the per-row kernels, else the tiled
 * clattn_linear_out_tiled with work-group tx x ty and micro-tile rm x rn (powers of two: tx, ty
 * up to 32, rm, rn up to 8), validated against the device (work-group limit, local memory, loop
 * cap) and the launch (the tiled kernel serves the FUSED algorithm's non-causal forms).
 * UNSUPPORTED with a reason when it does not fit; the launch is unchanged then. */
clattn_status clattn__linear_launch_out_tile(const clattn_device_info *dev,
                                             const clattn__linear_problem *p, unsigned tx,
                                             unsigned ty, unsigned rm, unsigned rn,
                                             clattn__linear_launch *launch, char *why,
                                             size_t why_len);
/* __local bytes of a clattn_linear_out_tiled work-group. */
size_t clattn__linear_out_tile_local_bytes(unsigned tx, unsigned ty, unsigned rm, unsigned rn);

/* A launch of TILED_GPU's register-tiled kernel from explicit parameters (work-group tx x ty,
 * micro-tile rm x rn, K/V buffer shared or not), validated against the device (work-group limit,
 * local memory, register budget). UNSUPPORTED with a reason in `why` when they do not fit. */
clattn_status clattn__softmax_launch_gpu_rt(const clattn_device_info *dev,
                                            const clattn__softmax_problem *prob, unsigned tx,
                                            unsigned ty, unsigned rm, unsigned rn,
                                            unsigned kv_shared, clattn__softmax_launch *out,
                                            char *why, size_t why_len);
/* __local bytes of that kernel's work-group, and its micro-tile state in floats per work-item. */
size_t clattn__softmax_gpu_rt_local_bytes(size_t d, unsigned tx, unsigned ty, unsigned rm,
                                          unsigned rn, unsigned kv_shared);
size_t clattn__softmax_gpu_rt_regs(size_t d, unsigned tx, unsigned rm, unsigned rn);
/* The scheduler's model of a register-tiled launch (higher is better; lib/sched/sched_softmax.c). */
double clattn__softmax_gpu_rt_score(const clattn_device_info *dev, size_t d,
                                    const clattn__softmax_launch *L);
/* SIMD width of a GPU vendor family (lib/tune/defaults.c): 32 NVIDIA, 64 AMD, 16 Intel, 32
 * Apple/ARM, 0 unknown. */
unsigned clattn__gpu_simd_width(const clattn_device_info *dev);

/* The tuner's search space: valid launches of the algorithm AUTO resolves to, the scheduler's
 * default first (then the nearest variations). Writes at most `cap`; returns how many (0 when the
 * problem cannot run on the device). On loop-capped devices only the default (the quirk limits
 * were measured for it) and, where it runs the tiled output kernel, its other output tiles and
 * the per-row output kernel. */
size_t clattn__linear_candidates(const clattn_device_info *dev, const clattn__linear_problem *p,
                                 clattn__linear_launch *out, size_t cap);

/* The fused causal kernel (kernels_cl/linear_causal.cl: one work-item per (batch, key head,
 * value-column block) walking the chunks in order, the state in private memory) for a plain
 * causal plan of an element-wise map without momentum on a CPU-like device that is not
 * loop-capped: returns its float16 value blocks per work-item (1, 2 or 4), or 0 where the
 * materialised chunk pipeline runs instead (GPU-like or loop-capped devices, FAVOR, momentum,
 * more than 256 features). Non-causal problems of the same kind take it too (all keys into the
 * state, then the query rows) where B * Hk * ceil(Dv / 16) gives 4 work-items per compute unit;
 * else 0 (the chunk-parallel fused kernels of linear_fused.cl). */
unsigned clattn__linear_causal_fused(const clattn_device_info *dev,
                                     const clattn__linear_problem *p);

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
/* Keys per panel of the attend kernel and the granule the head dims and chunks are padded to:
 * one float16 vector (kernels_cl/lsh.cl's LSH_PANEL, passed as -DLSH_PANEL). */
#define CLATTN__LSH_PANEL 16

typedef struct clattn__lsh_problem {
    size_t bh, n, d, dv;                     /* batch x heads, length, head dims of q and v */
    size_t n_hashes, n_buckets, chunk_size;  /* as in clattn_lsh_desc (validated by the caller) */
    int causal;
    clattn_dtype dtypes[3]; /* q, v, out (the tuning key's suffix) */
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
    /* The register-tiled attend clattn_lsh_attend_gpu (attend_tiled 1; GPU-like devices): TX x
     * TY work-items (attend_local), BR = TY RM sorted slots per group, BC = TX RN window slots
     * per key tile, Q/K head dims QC and V's VC at a time; built with
     * clattn__lsh_attend_defines (defines plus its own: its own program). No string here: the
     * launch is stored by the tuner (CLATTN__TUNE_MAX_LAUNCH bytes). */
    int attend_tiled;
    unsigned gpu_tx, gpu_ty, gpu_rm, gpu_rn, gpu_qc, gpu_vc;
    size_t attend_rows, attend_local, attend_local_bytes;
} clattn__lsh_launch;

/* The -D options of the tiled attend's program: the launch's defines and the tile's. */
void clattn__lsh_attend_defines(const clattn__lsh_launch *L, char *out, size_t len);

/* Which attend kernel: by the device (the tiled one on GPU-like devices where a tile fits), the
 * per-row CPU kernel, or the tiled one (with `tile` = TX, TY, RM, RN when not NULL, else the
 * first fitting default). Sets (or clears) the attend_* fields of a filled launch; UNSUPPORTED
 * with a reason when a requested tile does not fit the device. */
#define CLATTN__LSH_ATTEND_AUTO 0
#define CLATTN__LSH_ATTEND_ROWS 1
#define CLATTN__LSH_ATTEND_TILED 2
clattn_status clattn__lsh_attend_kernel(const clattn_device_info *dev, const clattn__lsh_problem *p,
                                        int kernel, const unsigned *tile, clattn__lsh_launch *out,
                                        char *why, size_t why_len);

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
/* Head and value dims the RPE kernels take (RPE_MAX_DV: the direct kernel's accumulator row). */
#define CLATTN__RPE_MAX_DV 256

typedef struct clattn__rpe_problem {
    size_t batch, hq, hk; /* batch, query heads, key/value heads (hq a multiple of hk) */
    size_t n;             /* sequence length (queries and keys) */
    size_t m, dv;         /* features per row, value columns */
    int causal;           /* 0 or 1 */
    size_t fft_len;       /* the FFT length for 2N - 1 points (>= 2, a length clFFT supports) */
    size_t fft_scratch;   /* bytes for one FFT group's signals and spectra; 0: the default */
    int direct_kernel;    /* CLATTN__RPE_DIRECT_*: which direct kernel (AUTO: by the device) */
} clattn__rpe_problem;

/* The direct sums' kernel: clattn_rpe_direct (a row per work-item, CPUs) or
 * clattn_rpe_direct_tiled (register micro-tiles and __local tiles, GPU-like devices). */
enum { CLATTN__RPE_DIRECT_AUTO = 0, CLATTN__RPE_DIRECT_ROWS = 1, CLATTN__RPE_DIRECT_TILED = 2 };

/* What an RPE plan launches. */
typedef struct clattn__rpe_launch {
    int algo;               /* CLATTN_RPE_FFT or CLATTN_RPE_DIRECT, never AUTO */
    size_t head_rows;       /* causal FFT: rows [0, head_rows) by the direct sums; else 0 */
    size_t fft_len;         /* FFT: L >= 2N - 1, and its L/2 + 1 Hermitian bins */
    size_t fft_bins;
    size_t per_group;       /* FFT: (batch, key head, feature) triples per group */
    size_t groups;          /* FFT: groups, each of per_group triples (the last zero-padded) */
    size_t signals;         /* FFT: per_group * (dv + 1) rows, one clFFT batch */
    int spectra_shared;     /* FFT, hq > hk: a key head's spectra kept for its query heads */
    size_t parts;           /* partial bias maxima per head */
    size_t features_local;  /* work-group size of the feature kernels (1, or 0: the driver's) */
    size_t favor_local;     /* the same for FAVOR's projection and key-rescale kernels */
    int direct_tiled;       /* the direct sums run clattn_rpe_direct_tiled */
    size_t tile_rows;       /* tiled: query rows per work-group (RPE_RM x RPE_TY) */
    size_t tile_local;      /* tiled: work-items per work-group (RPE_TX x RPE_TY) */
    size_t tile_dv_groups;  /* tiled: work-groups along the value columns (RPE_RD x RPE_TX each) */
    size_t tile_local_bytes; /* tiled: its __local memory */
    char defines[256];      /* -D options of rpe.cl, RPE_-prefixed */
} clattn__rpe_launch;

/* Chooses the algorithm (AUTO: by the cost model in sched_rpe.c; FFT falls back to DIRECT when
 * the causal head rows are every row) and its sizes. INVALID_SHAPE for a zero size or dv beyond
 * CLATTN__RPE_MAX_DV, INVALID_ARGUMENT for an unknown algorithm or hq not a multiple of hk;
 * writes a reason into `why` (may be NULL). */
clattn_status clattn__schedule_rpe(const clattn_device_info *dev, const clattn__rpe_problem *p,
                                   clattn_rpe_algo requested, clattn__rpe_launch *out, char *why,
                                   size_t why_len);

/* ---- end RPE ---- */



/* ---- routing attention (lib/sched/sched_routing.c) ---- */
/* Loop iterations per work-item of the register-tiled attend kernels (routing and LSH: the same
 * tile structure), every loop together and counted without unrolling, for devices that end loops
 * past clattn_device_info.loop_iteration_cap: `tiles` key tiles of bc keys, each staging nqc Q/K
 * chunks of qc dims and nvc V chunks of vc dims over wg work-items, br = rows of the
 * work-group, rm x rn scores and ra accumulators per work-item, tx work-items across a row. */
uint64_t clattn__attend_tiled_loops(uint64_t tiles, uint64_t nqc, uint64_t nvc, size_t br,
                                    size_t bc, size_t qc, size_t vc, size_t wg, unsigned tx,
                                    unsigned rm, unsigned rn, size_t ra);

#define CLATTN__ROUTING_MAX_D 256 /* ROUTING_MAX_D: longest q/k/v row the kernels hold privately */

typedef struct clattn__routing_problem {
    size_t batch, heads_q, heads_k; /* heads_q a multiple of heads_k (GQA) */
    size_t n;                       /* sequence length */
    size_t d, dv;                   /* head dims of q/k and of v */
    size_t clusters, window;        /* C and w (resolved: never WINDOW_AUTO) */
    int causal;
    int attend_kernel;              /* CLATTN__ROUTING_ATTEND_*: AUTO picks by the device */
    unsigned gpu_tile[4];           /* tiled attend: TX, TY, RM, RN (0s: the default) */
} clattn__routing_problem;

/* Which attention kernel: by the device (tiled on GPU-like ones, clattn__softmax_family), the
 * per-slot CPU kernel clattn_routing_attend, or the register-tiled clattn_routing_attend_gpu. */
#define CLATTN__ROUTING_ATTEND_AUTO 0
#define CLATTN__ROUTING_ATTEND_ROWS 1
#define CLATTN__ROUTING_ATTEND_TILED 2

/* What a routing plan launches: the panel width of its float16 kernels, the private row length
 * and the work-group sizes of the kernels that keep private rows. (The sort/top-k blocks it uses
 * take clattn__schedule_blocks' launch.) */
typedef struct clattn__routing_launch {
    unsigned lanes;       /* ROUTING_LANES: centroids / keys per float16 score vector */
    unsigned max_d;       /* ROUTING_MAX_D: private row length (one program for every D) */
    size_t rows_local;    /* work-group size of clattn_routing_scores / _assign (divides N) */
    size_t attend_local;  /* work-group size of clattn_routing_attend (divides w) */
    char defines[128];    /* -D options of routing.cl, every one ROUTING_-prefixed */
    /* The tiled attend (attend_tiled 1): work-group TX x TY (attend_local = TX * TY), BR = TY RM
     * query slots per group, BC = TX RN keys per tile, Q/K head dims QC and V's VC at a time,
     * __local bytes; built from routing.cl with attend_defines (its own program). */
    int attend_tiled;
    unsigned gpu_tx, gpu_ty, gpu_rm, gpu_rn, gpu_qc, gpu_vc;
    size_t attend_rows, attend_local_bytes;
    char attend_defines[256];
} clattn__routing_launch;

/* The tiled attend's launch for the given tile (TX, TY, RM, RN powers of two, TX, TY <= 64, RM,
 * RN <= 8): UNSUPPORTED (reason in why) when it does not fit the device (work-group, __local
 * memory, CLATTN__ROUTING_GPU_REGS accumulator floats). Fills the attend_* fields of `out`. */
#define CLATTN__ROUTING_GPU_REGS 64
clattn_status clattn__routing_launch_tiled(const clattn_device_info *dev,
                                           const clattn__routing_problem *p, unsigned tx,
                                           unsigned ty, unsigned rm, unsigned rn,
                                           clattn__routing_launch *out, char *why,
                                           size_t why_len);

/* The launch of a routing plan. INVALID_SHAPE (with a reason in `why`, may be NULL) when a size is
 * 0, D or Dv is above CLATTN__ROUTING_MAX_D, or heads_q is not a multiple of heads_k. */
clattn_status clattn__schedule_routing(const clattn_device_info *dev,
                                       const clattn__routing_problem *p,
                                       clattn__routing_launch *out, char *why, size_t why_len);

/* ---- end routing ---- */



/* ---- SSM and GSS (lib/sched/sched_ssm.c) ---- */

/* AUTO's FFT vs direct crossover: the direct sum for L up to these, the FFT above. Measured with
 * `clattn bench ssm` (B 1, H 4, N 64; README's table): on PoCL (2-vCPU EPYC) both took the same
 * time at L = 256 and FFT was 2.6x faster at 512; on an NVIDIA H100 (NVIDIA OpenCL) the crossover
 * lay between 2k and 4k (direct 0.09 ms against FFT 0.18 ms at 1k, 0.26 against 0.29 at 4k). */
#define CLATTN__SSM_DIRECT_MAX_L 256      /* CPUs and every other device class */
#define CLATTN__SSM_DIRECT_MAX_L_GPU 2048 /* devices of class CLATTN_DEVICE_GPU */
/* Kernel positions per work-item of the K generation: one accurate power, then SSM_CHUNK - 1
 * complex products (their rounding error grows by about one ulp per product). */
#define CLATTN__SSM_CHUNK 32
/* Outputs per work-item of the direct convolution (each K and u value loaded once per item). */
#define CLATTN__SSM_DIRECT_ROWS 8
/* Iterations of the direct sum's inner loop between two outer ones; a device with a loop
 * iteration cap (llvmpipe: 65535) gets at most its cap. */
#define CLATTN__SSM_DIRECT_BLOCK 4096
#define CLATTN__SSM_MAX_L ((size_t)1 << 24) /* positions stay exact in float inside the kernels */

typedef struct clattn__ssm_problem {
    size_t rows;  /* sequences convolved: batch x channels */
    size_t heads; /* channels H (rows of the kernel K) */
    size_t L;     /* sequence length, 1 <= L < 2^24 */
} clattn__ssm_problem;

/* What an SSM plan launches: the algorithm, the FFT length and the kernels' -D options. */
typedef struct clattn__ssm_launch {
    int algo;               /* clattn_ssm_algo: FFT or DIRECT, never AUTO */
    unsigned chunk;         /* SSM_CHUNK */
    unsigned direct_rows;   /* SSM_DIRECT_ROWS */
    unsigned direct_block;  /* SSM_DIRECT_BLOCK */
    size_t fft_len;         /* FFT: M, the smallest 2^a 3^b 5^c 7^d >= 2L (0 for DIRECT) */
    size_t fft_real_bytes;  /* FFT: padded rows, rows x M floats */
    size_t fft_cplx_bytes;  /* FFT: spectra, rows x (M/2 + 1) complex */
    char defines[256];      /* -D options of ssm.cl, every one SSM_-prefixed */
} clattn__ssm_launch;

/* Chooses FFT or direct (when `requested` is AUTO: by the crossover of the device class) and the
 * kernels' sizes. INVALID_SHAPE for a zero size or L >= 2^24, UNSUPPORTED when the FFT's scratch
 * exceeds the device's max allocation, SIZE_OVERFLOW; a reason goes to `why` (may be NULL). */
clattn_status clattn__schedule_ssm(const clattn_device_info *dev, const clattn__ssm_problem *prob,
                                   clattn_ssm_algo requested, clattn__ssm_launch *out, char *why,
                                   size_t why_len);

/* Full S4's kernel generation (lib/ops/ssm_s4.c): the generation length Lg, the smallest length
 * >= max_length whose only prime factors are 2, 3, 5, 7 (kernels of any L <= max_length are
 * prefixes of the one of length Lg), its bins Lg/2 + 1, and the scratch: the spectrum (H x bins
 * complex) and the inverse FFT's rows (H x Lg floats). The launches are fixed: the Cauchy kernel
 * over (bins, H), the copy over (row length, H), the step over B x H, the driver's work-groups. */
typedef struct clattn__ssm_s4_launch {
    size_t gen_len, bins;
    size_t spec_bytes, kernel_bytes;
} clattn__ssm_s4_launch;

/* INVALID_SHAPE for H 0, max_length 0 or >= 2^24; SIZE_OVERFLOW; UNSUPPORTED when a scratch
 * buffer exceeds the device's max allocation; a reason goes to `why` (may be NULL). */
clattn_status clattn__schedule_ssm_s4(const clattn_device_info *dev, size_t heads,
                                      size_t max_length, clattn__ssm_s4_launch *out, char *why,
                                      size_t why_len);

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

/* ---- Transformer-MGK (lib/sched/sched_mgk.c) ---- */
/* float16 vectors the CPU family's work-item keeps live: accumulators (rows x ceil(D/16)) plus
 * score vectors (R x step blocks x rows); 32 is the vector register file of AVX-512, the bound
 * softmax's TILED_CPU candidates use (beyond it they spill). */
#define CLATTN__MGK_MAX_LIVE_VECTORS 32

typedef struct clattn__mgk_problem {
    size_t head_dim;   /* D, 1..256 */
    size_t components; /* R, 1..CLATTN_MGK_MAX_COMPONENTS */
    size_t nq, nk;
    int causal;
    int linear;        /* 1: the linear form */
} clattn__mgk_problem;

typedef struct clattn__mgk_launch {
    clattn_mgk_algo algo;     /* TILED_CPU, TILED_GPU or LINEAR_SCAN, never AUTO */
    unsigned rows_per_item;   /* TILED_CPU: query rows per work-item (1 otherwise) */
    unsigned step_blocks;     /* TILED_CPU: 16-key panels per online-softmax step */
    unsigned tile_kv;         /* keys per inner tile */
    size_t local_size;        /* work-group size of the forward kernel (0: driver's choice) */
    size_t local_mem_bytes;   /* __local bytes per work-group */
    char defines[256];        /* -D options of mgk.cl, every one MGK_-prefixed */
} clattn__mgk_launch;

/* Softmax form: the family (AUTO: clattn__softmax_family's rule, the same devices and the same
 * measurements) and its tiles; linear form: LINEAR_SCAN (AUTO or LINEAR_SCAN only). INVALID_SHAPE
 * for D or R out of range, UNSUPPORTED for TILED_GPU without local memory for one key of every
 * tile, INVALID_ARGUMENT for an algorithm the form does not have. Reason into `why`. */
clattn_status clattn__schedule_mgk(const clattn_device_info *dev, const clattn__mgk_problem *prob,
                                   clattn_mgk_algo requested, clattn__mgk_launch *out, char *why,
                                   size_t why_len);

/* ---- end Transformer-MGK ---- */

/* ---- DEQ solvers' vector kernels (lib/sched/sched_deq.c) ---- */
typedef struct clattn__deq_launch {
    size_t parts;         /* DEQ_PARTS: partial sums per dot product (power of two) */
    size_t dots_local;    /* work-group size of the dots kernel (divides parts) */
    size_t comb_local;    /* work-group size of the linear-combination kernel */
    size_t ln_local;      /* work-group size of the attention cell's LayerNorm kernel */
    char defines[64];     /* -D options of deq.cl, every one DEQ_-prefixed */
} clattn__deq_launch;

/* Launch sizes for vectors of `len` elements: parts = the largest power of two <= len /
 * CLATTN__DEQ_MIN_PER_PART, within [1, CLATTN__DEQ_MAX_PARTS]; work-groups of CLATTN__DEQ_LOCAL
 * (dots: at most parts), except on loop-capped and SIMT CPU devices (llvmpipe), where the looping
 * kernels (dots, LayerNorm) get work-groups of one item. */
#define CLATTN__DEQ_MAX_PARTS 256
#define CLATTN__DEQ_MIN_PER_PART 32
#define CLATTN__DEQ_LOCAL 64
void clattn__schedule_deq(const clattn_device_info *dev, size_t len, clattn__deq_launch *out);

/* ---- end DEQ ---- */

#endif
