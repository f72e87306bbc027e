/* Internal to the linear decoding state: shared by lib/ops/linear_state.c (creation, the whole
 * state's verbs, prefill and step) and lib/ops/linear_state_seq.c (the per-sequence verbs). */
#ifndef CLATTN_OPS_LINEAR_STATE_H
#define CLATTN_OPS_LINEAR_STATE_H

#include "linear.h"

struct clattn_linear_state {
    clattn_context *ctx;
    clattn_plan *plan;            /* a stateful linear plan (linear.h) */
    size_t shape[4];              /* batch, heads, d, dv */
    size_t m, mp, dvp, dw;        /* features, padded features, padded dv, state row length */
    cl_mem sa, sb, s1, u1, sr, st; /* clattn__linear_bufs */
    size_t bytes;                 /* of one [BH][MP][DW] buffer */
    /* The batched step (kernels_cl/states.cl): its own plan (the linear plan's element types),
     * the per-sequence token counts, the kernel's feature / value rows, and a dummy selection. */
    clattn_plan *kp;
    cl_kernel kstep, kfill, kpos;
    cl_mem pos;            /* uint [B] */
    cl_mem fk, vp, fq;     /* [BHk][MP], [BHk][DVP], [BHk * group][MP] */
    size_t fq_bytes;
};

/* A state's buffers, each with the bytes one sequence holds in it, in snapshot order (A or S,
 * B or P, S_{i-1}, U_{i-1}, token counts, scale, position; unused ones skipped). Every buffer is
 * sequence-major, so sequences b0 .. b0 + n - 1 are one contiguous range of each. */
typedef struct clattn__lstate_part {
    cl_mem buf;
    size_t per;
} clattn__lstate_part;

/* Fills p (room for 8) with the state's parts; returns their count. */
int clattn__lstate_parts(const clattn_linear_state *st, clattn__lstate_part *p);

/* Enqueues the zero state (r = -inf: no key seen) with the caller's wait list and event. */
clattn_status clattn__lstate_clear(clattn_linear_state *st, cl_uint num_wait, const cl_event *wait,
                                   cl_event *event);

/* Checks two states for a copy: same context, shape (the batch too when whole), desc. */
clattn_status clattn__lstate_check_pair(const clattn_linear_state *dst,
                                        const clattn_linear_state *src, bool whole,
                                        const char *what);

/* Enqueues sequences [sb, sb + n) of src into [db, db + n) of dst (validated). */
clattn_status clattn__lstate_copy_range(clattn_linear_state *dst, size_t db,
                                        const clattn_linear_state *src, size_t sb, size_t n,
                                        cl_uint num_wait, const cl_event *wait, cl_event *event);

/* S and z of sequences [b0, b0 + nb), blocking (clattn_linear_state_read's layout for that
 * batch); and their write (clattn_linear_state_write's checks). */
clattn_status clattn__lstate_read_range(clattn_linear_state *state, size_t b0, size_t nb, float *s,
                                        float *z);
clattn_status clattn__lstate_write_range(clattn_linear_state *state, size_t b0, size_t nb,
                                         const float *s, const float *z);

/* Bytes of a snapshot of nb sequences; the snapshot of sequences [b0, b0 + nb) saved into and
 * loaded from buf (size bytes; `what` names the caller in messages). */
size_t clattn__lstate_snap_size(const clattn_linear_state *st, size_t nb);
clattn_status clattn__lstate_save_range(clattn_linear_state *state, size_t b0, size_t nb,
                                        void *buf, size_t size, const char *what);
clattn_status clattn__lstate_load_range(clattn_linear_state *state, size_t b0, size_t nb,
                                        const void *buf, size_t size, const char *what);

#endif
