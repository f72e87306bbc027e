/* Internal declarations of Transformer-MGK, shared by lib/ops/mgk.c (descriptor, plan, public
 * entry points) and lib/ops/mgk_state.c (linear MGK's decoding state, which runs a plan's
 * kernels). */
#ifndef CLATTN_OPS_MGK_H
#define CLATTN_OPS_MGK_H

#include "../core/internal.h"
#include "../sched/sched.h"

typedef struct clattn__mgk_plan {
    clattn_plan base;
    clattn_mgk_desc desc; /* validated copy; key_lengths retained */
    size_t qshape[4], kshape[4], vshape[4], pshape[4];
    size_t r; /* components per key */
    clattn__mgk_launch launch;
    size_t npad;                     /* softmax form: keys padded to the key block */
    cl_kernel pack, fwd;             /* softmax form */
    cl_kernel feat, scan;            /* linear form: features; the state's causal scan */
    clattn_plan *lin;                /* linear form (not a state's): the linear family's plan
                                      * run on the features (identity feature map) */
    cl_mem c2;                       /* log2(e) / sigma_r^2, r < R */
    cl_mem kp, a2, vp;               /* softmax form: packed K panels, key biases, V rows */
    cl_mem fq, fk;                   /* linear form: features [B*H][N][D] */
} clattn__mgk_plan;

/* clattn_mgk_plan_create; stateful: a decoding state's one-position linear plan (the scan kernel
 * instead of a linear-family plan). */
clattn_status clattn__mgk_plan_create(clattn_context *ctx, const clattn_mgk_desc *desc,
                                      const size_t q_shape[4], const size_t k_shape[4],
                                      int stateful, clattn_plan **out);

clattn_status clattn__mgk_read_desc(clattn_context *ctx, const clattn_mgk_desc *in,
                                    clattn_mgk_desc *out);

/* The linear form's commands: features, then (state == NULL) the linear-family plan, or (state
 * given: st_s, z_in, z_out) the causal scan continuing the state. */
typedef struct clattn__mgk_state_bufs {
    cl_mem s, z_in, z_out;
} clattn__mgk_state_bufs;
clattn_status clattn__mgk_enqueue_linear(clattn__mgk_plan *plan, const clattn_tensor *q,
                                         const clattn_tensor *k, const clattn_tensor *v,
                                         const clattn_tensor *pi, const clattn_tensor *out,
                                         const clattn__mgk_state_bufs *state, clattn__seq *s,
                                         cl_event *event);
/* Shape and buffer validation of one call's views against the plan's shapes. */
clattn_status clattn__mgk_validate(clattn__mgk_plan *plan, const clattn_tensor *q,
                                   const clattn_tensor *k, const clattn_tensor *v,
                                   const clattn_tensor *pi, const clattn_tensor *out,
                                   const clattn_tensor *lse);

#endif
