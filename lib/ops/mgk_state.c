/* Linear MGK's decoding state (include/clattn/mgk.h): S [B*H][D][D] and z [B*H][D], advanced by
 * the causal scan kernel of a one-position linear plan made at creation. z is double-buffered:
 * the scan's work-items read z from one buffer while item 0 writes the new z into the other. */
#include "mgk.h"

#include <stdlib.h>
#include <string.h>

struct clattn_mgk_state {
    clattn_context *ctx;
    size_t batch, heads, r, d;
    clattn_plan *plan; /* a linear, causal plan of one position; owns s and z[2] */
    cl_mem s, z[2];
    size_t s_bytes, z_bytes;
    int cur; /* z[cur] holds the current z */
};

clattn_status clattn_mgk_state_create(clattn_context *ctx, const clattn_mgk_desc *desc,
                                      size_t batch, size_t heads, size_t components, size_t d,
                                      clattn_mgk_state **out)
{
    clattn_status status = CLATTN_SUCCESS;
    clattn_mgk_state *st = NULL;
    clattn_mgk_desc dd;
    if (out)
        *out = NULL;
    if (!ctx)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "mgk state: ctx is NULL");
    CLATTN_CHECK(out, CLATTN_NULL_POINTER, "mgk state: state is NULL");
    CLATTN_FORWARD(clattn__mgk_read_desc(ctx, desc, &dd));
    CLATTN_CHECK(dd.form == CLATTN_MGK_LINEAR, CLATTN_INVALID_ARGUMENT,
                 "mgk state: the decoding state is for the linear form (desc.form = "
                 "CLATTN_MGK_LINEAR)");
    CLATTN_CHECK(batch >= 1 && heads >= 1 && d >= 1 && d <= CLATTN__MAX_HEAD_DIM &&
                     components >= 1 && components <= CLATTN_MGK_MAX_COMPONENTS &&
                     batch <= ((size_t)1 << 31) / heads,
                 CLATTN_INVALID_SHAPE,
                 "mgk state: batch %zu, heads %zu, components %zu (1..%d), d %zu (1..%d)", batch,
                 heads, components, CLATTN_MGK_MAX_COMPONENTS, d, CLATTN__MAX_HEAD_DIM);
    st = calloc(1, sizeof *st);
    CLATTN_CHECK(st, CLATTN_OUT_OF_HOST_MEMORY, "mgk state: out of host memory");
    st->ctx = ctx;
    st->batch = batch;
    st->heads = heads;
    st->r = components;
    st->d = d;
    dd.causal = 1;
    size_t qs[4] = {batch, heads, 1, d}, ks[4] = {batch, heads * components, 1, d};
    CLATTN_FORWARD(clattn__mgk_plan_create(ctx, &dd, qs, ks, 1, &st->plan));
    st->s_bytes = batch * heads * d * d * sizeof(float);
    st->z_bytes = batch * heads * d * sizeof(float);
    CLATTN_FORWARD(clattn__plan_scratch(st->plan, st->s_bytes, "mgk state S", &st->s));
    CLATTN_FORWARD(clattn__plan_scratch(st->plan, st->z_bytes, "mgk state z", &st->z[0]));
    CLATTN_FORWARD(clattn__plan_scratch(st->plan, st->z_bytes, "mgk state z'", &st->z[1]));
    CLATTN_FORWARD(clattn_mgk_state_reset(st, 0, NULL, NULL));
    CLATTN_CL(clFinish(ctx->queue));
    *out = st;
    st = NULL;
cleanup:
    clattn_mgk_state_destroy(st);
    return status;
}

void clattn_mgk_state_destroy(clattn_mgk_state *state)
{
    if (!state)
        return;
    clattn_plan_destroy(state->plan);
    free(state);
}

clattn_status clattn_mgk_state_reset(clattn_mgk_state *state, cl_uint num_wait,
                                     const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "mgk state reset: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    cl_float zero = 0.0f;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "mgk state reset: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    clattn__seq_next(&s, false, NULL);
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, state->s, &zero, sizeof zero, 0, state->s_bytes,
                                  s.nw, s.w, s.evp));
    clattn__seq_done(&s);
    clattn__seq_next(&s, true, event);
    CLATTN_CL(clEnqueueFillBuffer(ctx->queue, state->z[state->cur], &zero, sizeof zero, 0,
                                  state->z_bytes, s.nw, s.w, s.evp));
    clattn__seq_done(&s);
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}

clattn_status clattn_mgk_state_step(clattn_mgk_state *state, const clattn_tensor *q,
                                    const clattn_tensor *k, const clattn_tensor *v,
                                    const clattn_tensor *pi, const clattn_tensor *out,
                                    cl_uint num_wait, const cl_event *wait, cl_event *event)
{
    if (!state)
        return clattn__fail(NULL, CLATTN_NULL_POINTER, "mgk state step: state is NULL");
    clattn_context *ctx = state->ctx;
    clattn_status status = CLATTN_SUCCESS;
    clattn__mgk_plan *plan = (clattn__mgk_plan *)state->plan;
    clattn__seq s;
    bool seq = false;
    CLATTN_CHECK(num_wait == 0 || wait, CLATTN_NULL_POINTER,
                 "mgk state step: num_wait > 0 but wait is NULL");
    CLATTN_FORWARD(clattn__mgk_validate(plan, q, k, v, pi, out, NULL));
    CLATTN_FORWARD(clattn__seq_init(&s, ctx, num_wait, wait));
    seq = true;
    clattn__mgk_state_bufs bufs = {state->s, state->z[state->cur], state->z[1 - state->cur]};
    CLATTN_FORWARD(clattn__mgk_enqueue_linear(plan, q, k, v, pi, out, &bufs, &s, event));
    state->cur = 1 - state->cur;
cleanup:
    if (seq)
        clattn__seq_end(&s);
    return status;
}
