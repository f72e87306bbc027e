/* Internal to the SSM family (lib/ops/ssm.c, ssm_state.c, gss.c): the parameter handle and the
 * entry points the decoding state and the GSS layer build on. */
#ifndef CLATTN_OPS_SSM_H
#define CLATTN_OPS_SSM_H

#include "../core/internal.h"
#include "../sched/sched.h"

/* The parameters of one diagonal SSM on the device, and the plan holding the kernel-generation
 * kernel (made at creation; clattn_ssm_kernel_enqueue and every plan's bake launch it). */
struct clattn_ssm {
    clattn_context *ctx;
    size_t heads, n;
    cl_mem wct; /* [H * N] float4: w (re, im), Ct (re, im) */
    cl_mem ph;  /* [H * N] float4: Re z (hi, lo), Im z / 2pi reduced to [-0.5, 0.5] (hi, lo) */
    cl_mem d;   /* [H] float, or NULL */
    clattn__ssm_launch launch; /* the device's -D options for ssm.cl (any length) */
    clattn_plan *plan;         /* owns `gen` */
    cl_kernel gen;             /* clattn_ssm_kernel_gen */
    size_t max_len;            /* S4 handles: the longest kernel (0: any length) */
    struct clattn__ssm_s4 *s4; /* S4 (DPLR) handles (lib/ops/ssm_s4.c): NULL when diagonal. Then
                                * wct holds the step constants of kernels_cl/ssm_s4.cl, ph is NULL,
                                * gen is unused and `plan` owns the S4 kernels and scratch */
};

/* Enqueues K of `ssm` for positions l < rowlen (zeros from L on) into the view at element
 * k_off of k, row stride k_row and position stride k_pos, as one command of sequence s. */
clattn_status clattn__ssm_gen(const clattn_ssm *ssm, clattn__seq *s, cl_mem k, size_t k_off,
                              size_t k_row, size_t k_pos, size_t L, size_t rowlen, bool last,
                              cl_event *event);

/* Enqueues a baked SSM plan (made by clattn_ssm_plan_create) on views already validated against
 * it, as commands of the caller's sequence s (the GSS layer runs its DSS this way). */
clattn_status clattn__ssm_plan_run(clattn_plan *plan, clattn__seq *s, const clattn_tensor *u,
                                   const clattn_tensor *y, bool last, cl_event *event);

/* The S4 handle's generation (lib/ops/ssm_s4.c), with clattn__ssm_gen's arguments (L at most
 * the handle's generation length), and the release of its host part. */
clattn_status clattn__ssm_s4_gen(const clattn_ssm *ssm, clattn__seq *s, cl_mem k, size_t k_off,
                                 size_t k_row, size_t k_pos, size_t L, size_t rowlen, bool last,
                                 cl_event *event);
void clattn__ssm_s4_free(struct clattn__ssm_s4 *s4);

#endif
