/* Internal declarations of linear attention, shared by lib/ops/linear.c (descriptor, plan, public
 * entry points), lib/ops/linear_forms.c (the command sequences of each form) and
 * lib/ops/linear_state.c (the recurrent decoding state, which runs through a plan). */
#ifndef CLATTN_OPS_LINEAR_H
#define CLATTN_OPS_LINEAR_H

#include "../blocks/feature_maps.h"
#include "../core/internal.h"
#include "../sched/sched.h"

/* The plan's scratch buffers, by purpose (sizes in clattn__linear_reserve). */
enum {
    LIN_FQ,   /* query features [BHq][Nq][MP] */
    LIN_LQ,   /* query log-scales [BHq][Nq] (eps in the formula's scale) */
    LIN_FK,   /* key features [BHk][Nk][MP] */
    LIN_LK,   /* key log-scales [BHk][Nk] */
    LIN_VP,   /* padded values [BHk][Nk][DVP] (GEMM: [V 1], [BHk][Nk][DW]) */
    LIN_CW,   /* chunk weights [BHk][Nk] */
    LIN_CM,   /* chunk scales [BHk][nchunks] */
    LIN_CA,   /* chunk states [BHk][nchunks][MP][DW] */
    LIN_CB,   /* momentum chunk states, likewise */
    LIN_PS,   /* prefix scales [BHk][nchunks] */
    LIN_FR,   /* final scale [BHk] (causal) */
    LIN_FAC,  /* scan factors [BHk][nchunks][2] */
    LIN_TA,   /* non-causal total state [BHk][MP][DW] */
    LIN_TB,   /* its momentum part */
    LIN_TR,   /* its scale [BHk] */
    LIN_IW,   /* in-chunk weights [BHq][Nq][CHUNK] */
    LIN_IMI,  /* row scales [BHq][Nq] */
    LIN_KT,   /* transposed key features [BHk][nchunks][MP][CHUNK] */
    LIN_LMAX, /* GEMM + FAVOR: head key scale [BHk] */
    LIN_KV,   /* GEMM: phi(K)^T [V 1], [BHk][MP][DW] */
    LIN_OP,   /* GEMM: unnormalised outputs [BHq][Nq][DW] */
    LIN_AS,   /* plain adaptive form: S, P, S_{i-1}, U_{i-1} [BHk][MP][DW] each (4 slots) */
    LIN_AR = LIN_AS + 4, /* its scale [BHk] */
    LIN_AT,   /* its token count [BHk] */
    LIN_SLOTS
};

typedef struct clattn__linear_plan {
    clattn_plan base;
    clattn_linear_desc desc; /* validated copy; projection cleared (W lives in feat.wt) */
    uint64_t w_hash;         /* hash of FAVOR's W (0 for the other maps) */
    size_t qshape[4], kshape[4], vshape[4];
    int stateful; /* a decoding state's plan: prefill (any length) and steps */
    clattn__linear_launch launch;
    clattn__features feat;
    cl_kernel pack, chunk_weights, chunk_state, scan_scales, scan, kt, intra, out;
    cl_kernel adaptive, step_update, step_commit, normalize;
    /* The fused non-causal form (element-wise maps, no adaptive momentum, not a decoding state):
     * chunk sums and output rows read q, k, v directly and compute phi in registers; no feature
     * or padded-value buffers (linear_forms.c, run_fused). */
    int fused_nc;
    cl_kernel fused_state, fused_out;
    /* The fused causal form (kernels_cl/linear_causal.cl; a plain causal plan of an element-wise
     * map without momentum on a CPU-like device: clattn__linear_causal_fused): one kernel reads
     * q, k, v and writes out, no scratch. causal_eb: its value blocks per work-item (0: not this
     * form). */
    unsigned causal_eb;
    cl_kernel fused_causal;
    /* The register-tiled non-causal output rows (linear_fused.cl clattn_linear_out_tiled; the
     * launch's out_tiled on a non-causal plan): they replace clattn_linear_fused_out and
     * clattn_linear_out's non-causal rows. */
    int out_tiled;
    cl_kernel out_tiled_k;
    cl_mem slot[LIN_SLOTS];
    size_t slot_bytes[LIN_SLOTS];
} clattn__linear_plan;

/* Sizes of one run: q [B, Hq, Nq, D], k [B, Hk, Nk, D], v [B, Hk, Nk, Dv]. */
typedef struct clattn__linear_dims {
    size_t b, hq, hk, group; /* group = Hq / Hk query heads per key head */
    size_t bh, bhk;          /* B * Hq, B * Hk */
    size_t nq, nk, d, dv, m, mp, dvp, dw, chunk, nchunks;
} clattn__linear_dims;

/* A decoding state's device buffers: sa = A (or S when adaptive; z in its DVP column); sb = the
 * mu-decayed B (fixed momentum) or P (adaptive); s1, u1 = S_{i-1}, U_{i-1} (adaptive); sr = the
 * log-scale r per (b, key head); st = the adaptive token count. Unused ones are NULL. */
typedef struct clattn__linear_bufs {
    cl_mem sa, sb, s1, u1, sr, st;
} clattn__linear_bufs;

/* One run: out may be NULL (prefill without output), state NULL (plain calls). */
typedef struct clattn__linear_job {
    clattn__linear_plan *p;
    clattn__linear_dims z;
    int causal, step;
    const clattn_tensor *q, *k, *v, *out;
    const clattn__linear_bufs *state;
} clattn__linear_job;

/* lib/ops/linear.c */
/* Copies the caller's desc (NULL: defaults; struct_size honoured) and validates it. */
clattn_status clattn__linear_read_desc(clattn_context *ctx, const clattn_linear_desc *in,
                                       clattn_linear_desc *out);
/* Shapes of q, k, v among themselves and against the kernels' limits. */
clattn_status clattn__linear_check_dims(clattn_context *ctx, const size_t q[4], const size_t k[4],
                                        const size_t v[4], int causal);
/* Every view fits its buffer; out (if any) is [B, Hq, Nq, Dv], one-to-one and overlaps no
 * input. */
clattn_status clattn__linear_check_views(clattn_context *ctx, const clattn_tensor *q,
                                         const clattn_tensor *k, const clattn_tensor *v,
                                         const clattn_tensor *out, const clattn_dtype dts[4]);
/* The desc's element types {q, k, v, out}. */
void clattn__linear_dtypes(const clattn_linear_desc *d, clattn_dtype dts[4]);
/* lib/tune/tune_linear.c: the tuning database's launch for a plain AUTO plan of this desc (its
 * variant key carries the element-type suffix, so f16 plans never use f32 entries). */
bool clattn__tune_linear_launch_desc(clattn_context *ctx, const clattn_linear_desc *desc,
                                     const clattn__linear_problem *prob,
                                     clattn__linear_launch *out);
/* A plan for the shapes (validated here); stateful: the union of kernels a decoding state needs
 * (prefill and steps), with scratch grown to each run. forced: the tuner's launch, or NULL. */
clattn_status clattn__linear_plan_make(clattn_context *ctx, const clattn_linear_desc *desc,
                                       const size_t q[4], const size_t k[4], const size_t v[4],
                                       const clattn__linear_launch *forced, int stateful,
                                       clattn_plan **out);
clattn__linear_dims clattn__linear_dims_of(const clattn__linear_plan *p, const size_t q[4],
                                           const size_t k[4], const size_t v[4]);

/* lib/ops/linear_forms.c */
/* Makes sure the plan's scratch holds what the job needs (allocating only when it grew: at bake
 * time, or when a decoding state's prefill is longer than any before). */
clattn_status clattn__linear_reserve(clattn__linear_plan *p, const clattn__linear_job *j);
/* Enqueues a validated job through the plan's kernels: features, padded values, then the form's
 * kernels; the first command waits for the wait list, the last returns event. */
clattn_status clattn__linear_run(const clattn__linear_job *j, cl_uint num_wait,
                                 const cl_event *wait, cl_event *event);

#endif
