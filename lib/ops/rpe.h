/* RPE attention's plan, shared by lib/ops/rpe.c (descriptor, validation, baking, the public entry
 * points) and lib/ops/rpe_run.c (the command sequence one enqueue makes). */
#ifndef CLATTN_OPS_RPE_H
#define CLATTN_OPS_RPE_H

#include "../core/internal.h"
#include "../sched/sched.h"

typedef struct clattn__rpe_plan {
    clattn_plan base;
    clattn_rpe_desc desc; /* eps resolved; features.projection dropped (uploaded into w) */
    size_t qshape[4], kshape[4], vshape[4];
    size_t B, Hq, Hk, G, N, D, M, MS, Dv; /* G = Hq / Hk; M features in rows of MS floats */
    clattn__rpe_launch launch;            /* lib/sched/sched_rpe.c */
    int favor;
    cl_mem w; /* FAVOR's projection W^T [D][M] (owned), else NULL */
    /* Kernels, created once at bake time (owned by the base): linear.cl's feature maps ... */
    cl_kernel feat;                  /* element-wise maps */
    cl_kernel proj, fexp, hmax, hrs; /* FAVOR: exponents, exp, head maxima, key rescale */
    /* ... and rpe.cl's (NULL when the launch does not use them). */
    cl_kernel parts, bmax, exp_bias, direct, signals, cmul, contract, normalize;
    /* Scratch (owned by the base; NULL when unused). */
    cl_mem fq, fk;               /* features [B*Hq][N][MS], [B*Hk][N][MS] */
    cl_mem kscale, kmax;         /* FAVOR: key log-scales [B*Hk][N] and their head maxima */
    cl_mem part, bmaxb;          /* partial and whole bias maxima per query head */
    cl_mem c;                    /* exp(b - bmax) rows [Hq][2N - 1] for the direct sums */
    cl_mem g, gf;                /* FFT: circulant columns [Hq][L] and their spectra */
    cl_mem x, xf, yf, acc;       /* FFT: one group's signals, spectra, products; numerators */
    /* The bake's clFFT warm-up on an out-of-order queue (it writes the FFT scratch): the first
     * enqueue waits for it. NULL on in-order queues and once waited for. */
    cl_event warm;
} clattn__rpe_plan;

/* Enqueues one run of the plan on views already validated against it, through `s` (started with
 * the caller's wait list); the last command returns `event` (may be NULL). */
clattn_status clattn__rpe_run(clattn__rpe_plan *p, const clattn_tensor *q, const clattn_tensor *k,
                              const clattn_tensor *v, const clattn_tensor *bias,
                              const clattn_tensor *out, clattn__seq *s, cl_event *event);

/* The bake's clFFT warm-up: runs the plan's three transforms once on its scratch so that the
 * context's clFFT plan cache holds them before the first enqueue (lib/core/fft.c bakes a plan on
 * its first use and offers no bake-only call). */
clattn_status clattn__rpe_fft_warm(clattn__rpe_plan *p);

#endif
