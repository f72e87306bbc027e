/* RPE attention's plan, shared by lib/ops/rpe.c (descriptor, validation, baking, the public entry
 * points) and lib/ops/rpe_run.c (the command sequence one enqueue makes). */
#ifndef CLATTN_OPS_RPE_H
#define CLATTN_OPS_RPE_H

#include "../core/internal.h"
#include "../sched/sched.h"
#include "../blocks/feature_maps.h"

typedef struct clattn__rpe_plan {
    clattn_plan base;
    clattn_rpe_desc desc; /* linear.projection dropped (uploaded by the features bake) */
    size_t qshape[4], kshape[4], vshape[4];
    size_t B, Hq, Hk, G, N, D, M, MS, Dv; /* G = Hq / Hk; M features in rows of MS floats */
    clattn__rpe_launch launch;            /* lib/sched/sched_rpe.c */
    int favor;
    /* The feature maps (lib/blocks/feature_maps.h), baked once: kernels and FAVOR's W^T owned by the
     * plan ... */
    clattn__features feat;
    /* ... and rpe.cl's kernels (NULL when the launch does not use them). */
    cl_kernel parts, bmax, exp_bias, direct, signals, cmul, contract, normalize;
    /* Half q / k: cast.cl kernels staging them into float32 `xs` before the feature kernels,
     * which read float32 (NULL for float32 q / k). */
    cl_kernel cast_q, cast_k;
    /* Scratch (owned by the base; NULL when unused). */
    cl_mem fq, fk;               /* features [B*Hq][N][MS], [B*Hk][N][MS] */
    cl_mem xs;                   /* half q or k staged as float32 [B*Hq][N][D] (one at a time) */
    cl_mem lq;                   /* FAVOR: query row log-scales [B*Hq][N] (eps's scale) */
    cl_mem kscale, kmax;         /* FAVOR: key log-scales [B*Hk][N] and their head maxima */
    cl_mem part, bmaxb;          /* partial and whole bias maxima per query head */
    cl_mem c;                    /* exp(b - bmax) rows [Hq][2N - 1] for the direct sums */
    cl_mem g, gf;                /* FFT: circulant columns [Hq][L] and their spectra */
    cl_mem x, xf, yf, acc;       /* FFT: one group's signals, spectra, products; numerators */
} clattn__rpe_plan;

/* Enqueues one run of the plan on views already validated against it, through `s` (started with
 * the caller's wait list); the last command returns `event` (may be NULL). */
clattn_status clattn__rpe_run(clattn__rpe_plan *p, const clattn_tensor *q, const clattn_tensor *k,
                              const clattn_tensor *v, const clattn_tensor *bias,
                              const clattn_tensor *out, clattn__seq *s, cl_event *event);

/* Bakes the plan's three clFFT transforms into the context's clFFT plan cache
 * (lib/blocks/fft.h's clattn__fft_prepare), so enqueues compile nothing. */
clattn_status clattn__rpe_fft_prepare(clattn__rpe_plan *p);

#endif
